//! Differences between two state documents (docs/decisions/0026-diff-and-revisions.md):
//! a JSON Patch (RFC 6902) that turns one into the other, and a summary for people of
//! the steps added, changed and removed and the instance fields changed.
//!
//! Both work on documents as JSON values — the sealed documents `checklist export
//! --format json` prints — so fields this build does not know are compared too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One operation of a JSON Patch (RFC 6902). [`json_patch`] writes only these three;
/// `path` is a JSON Pointer (RFC 6901).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOperation {
    /// Inserts `value` at `path` (an array index inserts before that element).
    Add {
        /// Where.
        path: String,
        /// What.
        value: Value,
    },
    /// Removes what is at `path`.
    Remove {
        /// Where.
        path: String,
    },
    /// Replaces what is at `path` with `value`.
    Replace {
        /// Where.
        path: String,
        /// The new value.
        value: Value,
    },
}

/// The JSON Patch (RFC 6902) that turns `from` into `to`: applied to `from` in order,
/// its operations give a value equal to `to`.
///
/// # Contract
/// - Applying it to `from` gives exactly `to`, for any two JSON values (property-tested
///   below with an independent RFC 6902 applier).
/// - Equal values give an empty patch.
/// - Objects are compared key by key, so one changed field is one operation at its
///   pointer; keys are escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`).
/// - Arrays keep their common beginning and end untouched; the elements between are
///   compared pairwise and the surplus removed (from the back) or added, so a step
///   appended to `completedSteps` is one `add` and a step changed in place is
///   operations on its fields. Correct always, minimal not always.
/// - Anything else that differs (a type change, a scalar) is one `replace`; the whole
///   document differing in type is a `replace` at the root pointer `""`.
pub fn json_patch(from: &Value, to: &Value) -> Vec<PatchOperation> {
    let mut operations = Vec::new();
    diff_values(from, to, &mut String::new(), &mut operations);
    operations
}

/// Appends to `operations` what turns `from` into `to`, both at `pointer`.
fn diff_values(from: &Value, to: &Value, pointer: &mut String, operations: &mut Vec<PatchOperation>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => diff_objects(from, to, pointer, operations),
        (Value::Array(from), Value::Array(to)) => diff_arrays(from, to, pointer, operations),
        _ => operations.push(PatchOperation::Replace {
            path: pointer.clone(),
            value: to.clone(),
        }),
    }
}

fn diff_objects(
    from: &Map<String, Value>,
    to: &Map<String, Value>,
    pointer: &mut String,
    operations: &mut Vec<PatchOperation>,
) {
    for key in from.keys().filter(|key| !to.contains_key(*key)) {
        operations.push(PatchOperation::Remove {
            path: child(pointer, key),
        });
    }
    for (key, new) in to {
        match from.get(key) {
            Some(old) => {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(key));
                diff_values(old, new, pointer, operations);
                pointer.truncate(length);
            }
            None => operations.push(PatchOperation::Add {
                path: child(pointer, key),
                value: new.clone(),
            }),
        }
    }
}

fn diff_arrays(from: &[Value], to: &[Value], pointer: &mut String, operations: &mut Vec<PatchOperation>) {
    let prefix = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let room = from.len().min(to.len()) - prefix;
    let suffix = from
        .iter()
        .rev()
        .zip(to.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let old = &from[prefix..from.len() - suffix];
    let new = &to[prefix..to.len() - suffix];
    for (offset, (a, b)) in old.iter().zip(new).enumerate() {
        let length = pointer.len();
        pointer.push('/');
        pointer.push_str(&(prefix + offset).to_string());
        diff_values(a, b, pointer, operations);
        pointer.truncate(length);
    }
    // From the back, so the indexes still to remove do not move.
    for index in (prefix + new.len()..prefix + old.len()).rev() {
        operations.push(PatchOperation::Remove {
            path: child(pointer, &index.to_string()),
        });
    }
    for (offset, value) in new.iter().enumerate().skip(old.len()) {
        operations.push(PatchOperation::Add {
            path: child(pointer, &(prefix + offset).to_string()),
            value: value.clone(),
        });
    }
}

/// `pointer` extended by the reference token `token`, escaped.
fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape(token))
}

/// A key as a JSON Pointer reference token (RFC 6901 section 3): `~` first, then `/`.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A field of an object that differs between two documents: `from` is `None` where it
/// was added, `to` is `None` where it was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// The field's name.
    pub field: String,
    /// Its value before.
    pub from: Option<Value>,
    /// Its value after.
    pub to: Option<Value>,
}

/// A completed step as the summary names it: its id and which of the steps with that
/// id it is (1 for the first; a step completed again after a failure repeats its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRef {
    /// The step's id.
    pub step_id: String,
    /// 1 for the first step with this id in the document, 2 for the second, …
    pub occurrence: usize,
    /// Its result (`success`, `failure`, `skipped`), when it has one.
    pub result: Option<String>,
}

/// A completed step held by both documents whose fields differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepChange {
    /// The step.
    pub step: StepRef,
    /// Its fields that differ, in the document's order.
    pub fields: Vec<FieldChange>,
}

/// What differs between two state documents, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDiff {
    /// The first document's revision.
    pub from_revision: Option<u64>,
    /// The second document's revision.
    pub to_revision: Option<u64>,
    /// The first document's checksum.
    pub from_checksum: Option<String>,
    /// The second document's checksum.
    pub to_checksum: Option<String>,
    /// The id of the first document's active instance (`None` when it has none).
    pub from_instance: Option<String>,
    /// The id of the second document's active instance (`None` when it has none).
    pub to_instance: Option<String>,
    /// The fields of the active instance that differ (all of them when one document
    /// has an instance and the other none), in the document's order.
    pub instance: Vec<FieldChange>,
    /// The completed steps only the second document holds, in its order.
    pub steps_added: Vec<StepRef>,
    /// The completed steps both hold that differ, in the first document's order.
    pub steps_changed: Vec<StepChange>,
    /// The completed steps only the first document holds, in its order.
    pub steps_removed: Vec<StepRef>,
    /// The other top-level fields that differ (`recovery`, `conflicts`,
    /// `schemaVersion`, fields this build does not know), in the document's order.
    pub other: Vec<FieldChange>,
}

impl StateDiff {
    /// Whether the documents differ in anything but their revision and checksum.
    pub fn is_empty(&self) -> bool {
        self.instance.is_empty()
            && self.steps_added.is_empty()
            && self.steps_changed.is_empty()
            && self.steps_removed.is_empty()
            && self.other.is_empty()
    }
}

/// The fields every commit changes, summarized once as "revision A to B" rather than
/// listed as changes.
const METADATA: [&str; 2] = ["revision", "checksum"];
const INSTANCE: &str = "activeInstance";
const STEPS: &str = "completedSteps";

/// Summarizes what differs between the state documents `from` and `to`.
///
/// # Contract
/// - The `revision` and `checksum` are reported once, as `from_*` and `to_*`, never as
///   field changes.
/// - Completed steps are matched by step id and occurrence (the second `build` of one
///   document is the second `build` of the other), so a step inserted or removed in
///   the middle is one step added or removed, not every later step changed.
/// - Instance fields, step fields and other top-level fields are compared one level
///   deep: a field is listed with its whole old and new value.
/// - The order is stable: the documents' own order, fields only the second has last.
/// - A document that is not an object is read as an empty one.
pub fn summarize(from: &Value, to: &Value) -> StateDiff {
    let empty = Map::new();
    let from = from.as_object().unwrap_or(&empty);
    let to = to.as_object().unwrap_or(&empty);
    let revision = |doc: &Map<String, Value>| doc.get("revision").and_then(Value::as_u64);
    let checksum = |doc: &Map<String, Value>| doc.get("checksum").and_then(Value::as_str).map(str::to_owned);
    let (steps_added, steps_changed, steps_removed) = step_changes(from.get(STEPS), to.get(STEPS));
    let other_from = without(from, &[&METADATA[..], &[INSTANCE, STEPS]].concat());
    let other_to = without(to, &[&METADATA[..], &[INSTANCE, STEPS]].concat());
    StateDiff {
        from_revision: revision(from),
        to_revision: revision(to),
        from_checksum: checksum(from),
        to_checksum: checksum(to),
        from_instance: instance_id(from),
        to_instance: instance_id(to),
        instance: field_changes(
            from.get(INSTANCE).and_then(Value::as_object).unwrap_or(&empty),
            to.get(INSTANCE).and_then(Value::as_object).unwrap_or(&empty),
        ),
        steps_added,
        steps_changed,
        steps_removed,
        other: field_changes(&other_from, &other_to),
    }
}

/// The id of `doc`'s active instance; an instance without a string id is named `?`.
fn instance_id(doc: &Map<String, Value>) -> Option<String> {
    let instance = doc.get(INSTANCE)?.as_object()?;
    Some(
        instance
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    )
}

fn without(doc: &Map<String, Value>, left_out: &[&str]) -> Map<String, Value> {
    doc.iter()
        .filter(|(key, _)| !left_out.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The fields of two objects that differ: those of `from` in its order, then those
/// only `to` has in its order.
fn field_changes(from: &Map<String, Value>, to: &Map<String, Value>) -> Vec<FieldChange> {
    let mut changes: Vec<FieldChange> = from
        .iter()
        .filter(|(key, value)| to.get(*key) != Some(value))
        .map(|(key, value)| FieldChange {
            field: key.clone(),
            from: Some(value.clone()),
            to: to.get(key).cloned(),
        })
        .collect();
    changes.extend(
        to.iter()
            .filter(|(key, _)| !from.contains_key(*key))
            .map(|(key, value)| FieldChange {
                field: key.clone(),
                from: None,
                to: Some(value.clone()),
            }),
    );
    changes
}

/// The steps of a `completedSteps` value, each with its [`StepRef`].
fn keyed_steps(steps: Option<&Value>) -> Vec<(StepRef, Map<String, Value>)> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    steps
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|step| {
            let fields = step.as_object().cloned().unwrap_or_default();
            let step_id = fields
                .get("stepId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let occurrence = seen.entry(step_id.clone()).or_default();
            *occurrence += 1;
            let result = fields.get("result").and_then(Value::as_str).map(str::to_owned);
            (
                StepRef {
                    step_id,
                    occurrence: *occurrence,
                    result,
                },
                fields,
            )
        })
        .collect()
}

/// The fields of the step of `steps` with `wanted`'s id and occurrence.
fn find_step<'a>(
    steps: &'a [(StepRef, Map<String, Value>)],
    wanted: &StepRef,
) -> Option<&'a Map<String, Value>> {
    steps
        .iter()
        .find(|(step, _)| step.step_id == wanted.step_id && step.occurrence == wanted.occurrence)
        .map(|(_, fields)| fields)
}

type StepChanges = (Vec<StepRef>, Vec<StepChange>, Vec<StepRef>);

fn step_changes(from: Option<&Value>, to: Option<&Value>) -> StepChanges {
    let from = keyed_steps(from);
    let to = keyed_steps(to);
    let added = to
        .iter()
        .filter(|(step, _)| find_step(&from, step).is_none())
        .map(|(step, _)| step.clone())
        .collect();
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for (step, fields) in &from {
        match find_step(&to, step) {
            None => removed.push(step.clone()),
            Some(new) if new != fields => changed.push(StepChange {
                step: step.clone(),
                fields: field_changes(fields, new),
            }),
            Some(_) => {}
        }
    }
    (added, changed, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// An RFC 6902 applier for `add`, `remove` and `replace`, written from the RFC and
    /// not from [`json_patch`]: the property below checks one against the other.
    fn apply(document: &Value, patch: &[PatchOperation]) -> std::result::Result<Value, String> {
        let mut document = document.clone();
        for operation in patch {
            let (path, value, op) = match operation {
                PatchOperation::Add { path, value } => (path, Some(value.clone()), "add"),
                PatchOperation::Remove { path } => (path, None, "remove"),
                PatchOperation::Replace { path, value } => (path, Some(value.clone()), "replace"),
            };
            if path.is_empty() {
                match op {
                    "remove" => return Err("remove at the root".into()),
                    _ => document = value.unwrap_or(Value::Null),
                }
                continue;
            }
            let tokens: Vec<String> = path
                .strip_prefix('/')
                .ok_or_else(|| format!("{path:?} does not start with /"))?
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect();
            let (last, parents) = tokens.split_last().ok_or("empty pointer")?;
            let mut target = &mut document;
            for token in parents {
                target = match target {
                    Value::Object(map) => map.get_mut(token).ok_or(format!("no {token:?} in {path}"))?,
                    Value::Array(items) => {
                        let index: usize = token.parse().map_err(|_| format!("bad index {token}"))?;
                        items
                            .get_mut(index)
                            .ok_or(format!("no index {index} in {path}"))?
                    }
                    _ => return Err(format!("{path} goes through a scalar")),
                };
            }
            match (target, op) {
                (Value::Object(map), "add") => {
                    map.insert(last.clone(), value.unwrap_or_default());
                }
                (Value::Object(map), "remove") => {
                    map.remove(last).ok_or(format!("nothing to remove at {path}"))?;
                }
                (Value::Object(map), _) => {
                    *map.get_mut(last).ok_or(format!("nothing to replace at {path}"))? =
                        value.unwrap_or_default();
                }
                (Value::Array(items), op) => {
                    let index: usize = last.parse().map_err(|_| format!("bad index {last}"))?;
                    match op {
                        "add" if index <= items.len() => items.insert(index, value.unwrap_or_default()),
                        "remove" if index < items.len() => {
                            items.remove(index);
                        }
                        "replace" if index < items.len() => items[index] = value.unwrap_or_default(),
                        _ => return Err(format!("index {index} out of bounds in {path}")),
                    }
                }
                _ => return Err(format!("{path} has a scalar parent")),
            }
        }
        Ok(document)
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c~/]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-c~/]{0,3}", inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn applying_the_patch_gives_the_second_value(a in any_json(), b in any_json()) {
            let patch = json_patch(&a, &b);
            prop_assert_eq!(apply(&a, &patch), Ok(b.clone()));
            prop_assert!(json_patch(&b, &b).is_empty());
        }

        #[test]
        fn a_changed_array_element_is_patched_in_place_alone(
            items in prop::collection::vec(any_json(), 1..6),
            index in any::<prop::sample::Index>(),
            new in any_json(),
        ) {
            let mut changed = items.clone();
            let at = index.index(items.len());
            changed[at] = new;
            let (from, to) = (Value::Array(items), Value::Array(changed));
            let patch = json_patch(&from, &to);
            let element = format!("/{at}");
            for operation in &patch {
                let (PatchOperation::Add { path, .. }
                | PatchOperation::Remove { path }
                | PatchOperation::Replace { path, .. }) = operation;
                prop_assert!(path == &element || path.starts_with(&format!("{element}/")), "{} in {:?}", path, patch);
            }
            prop_assert_eq!(apply(&from, &patch), Ok(to));
        }
    }

    #[test]
    fn keys_with_slash_and_tilde_are_escaped() {
        let from = json!({"a/b": 1, "m~n": {"~1": 2}, "keep": 0});
        let to = json!({"a/b": 2, "m~n": {"~1": 3}, "keep": 0, "/": true});
        let patch = json_patch(&from, &to);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "replace", "path": "/a~1b", "value": 2},
                {"op": "replace", "path": "/m~0n/~01", "value": 3},
                {"op": "add", "path": "/~1", "value": true},
            ])
        );
        assert_eq!(apply(&from, &patch), Ok(to));
    }

    #[test]
    fn an_appended_step_is_one_add_and_a_removed_middle_step_one_remove() {
        let steps = |ids: &[&str]| json!({"completedSteps": ids.iter().map(|id| json!({"stepId": id})).collect::<Vec<_>>()});
        assert_eq!(
            serde_json::to_value(json_patch(&steps(&["a", "b"]), &steps(&["a", "b", "c"]))).unwrap(),
            json!([{"op": "add", "path": "/completedSteps/2", "value": {"stepId": "c"}}])
        );
        assert_eq!(
            serde_json::to_value(json_patch(&steps(&["a", "b", "c"]), &steps(&["a", "c"]))).unwrap(),
            json!([{"op": "remove", "path": "/completedSteps/1"}])
        );
        assert_eq!(
            serde_json::to_value(json_patch(&json!([1]), &json!({"x": 1}))).unwrap(),
            json!([{"op": "replace", "path": "", "value": {"x": 1}}])
        );
    }

    #[test]
    fn the_summary_names_steps_by_id_and_occurrence_and_reports_the_revision_once() {
        let from = json!({
            "schemaVersion": "1.0.0", "revision": 3, "checksum": "sha256:a",
            "activeInstance": {"id": "i", "status": "active", "currentStepId": "build"},
            "completedSteps": [
                {"stepId": "build", "result": "failure"},
                {"stepId": "lint", "result": "success"},
            ],
        });
        let to = json!({
            "schemaVersion": "1.0.0", "revision": 5, "checksum": "sha256:b",
            "activeInstance": {"id": "i", "status": "completed", "completedAt": "t"},
            "completedSteps": [
                {"stepId": "build", "result": "success"},
                {"stepId": "build", "result": "success"},
            ],
            "recovery": {"dataLoss": false},
        });
        let diff = summarize(&from, &to);
        assert_eq!((diff.from_revision, diff.to_revision), (Some(3), Some(5)));
        assert_eq!(
            (diff.from_instance.as_deref(), diff.to_instance.as_deref()),
            (Some("i"), Some("i"))
        );
        let fields = |changes: &[FieldChange]| changes.iter().map(|c| c.field.clone()).collect::<Vec<_>>();
        assert_eq!(fields(&diff.instance), ["status", "currentStepId", "completedAt"]);
        assert_eq!(diff.instance[1].to, None);
        assert_eq!(diff.instance[2].from, None);
        assert_eq!(
            diff.steps_added,
            [StepRef {
                step_id: "build".into(),
                occurrence: 2,
                result: Some("success".into())
            }]
        );
        assert_eq!(diff.steps_changed.len(), 1);
        assert_eq!(diff.steps_changed[0].step.step_id, "build");
        assert_eq!(fields(&diff.steps_changed[0].fields), ["result"]);
        assert_eq!(diff.steps_removed[0].step_id, "lint");
        assert_eq!(fields(&diff.other), ["recovery"]);
        assert!(!diff.is_empty());
        let mut next = from.clone();
        next["revision"] = json!(4);
        next["checksum"] = json!("sha256:c");
        assert!(summarize(&from, &next).is_empty());
    }
}
