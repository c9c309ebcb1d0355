//! Importing the state files of the original TypeScript `checklist`, the tool this
//! project re-implements (docs/decisions/0018-importing-the-typescript-checklist.md).
//!
//! That tool keeps its state in `.checklist/state.yaml` too, and its checksum is this
//! format's byte for byte, but its documents break this format's schema: they have no
//! `revision`, an empty `conflicts: {}`, a `recovery` with only `dataLoss`, a `version`
//! key, a `metadata` block… Such a file is not corrupt, and no read says it is:
//! [`document::unseal`](crate::document::unseal) refuses it with
//! [`Error::UnsupportedVersion`] (exit 8) marked `typescript`, whose message says to run
//! `checklist migrate`; [`plan`](super::plan) and [`migrate`](super::migrate) import it
//! in one step, [`IMPORT`].
//!
//! # Detection
//!
//! Its versions (0.0.0, 0.1.0, 0.2.0, 1.0.0) overlap this format's in name, so [`detect`]
//! goes by shape, never by version. It answers `None` for a document with a `revision`
//! (every document this format stores has one, so a corrupt file of ours stays
//! corrupt) and for one whose `schemaVersion` is of this format's own older series
//! (0.8.x, 0.9.x, which the TypeScript tool never wrote). Otherwise the document is the
//! TypeScript tool's when:
//!
//! - it has `instances` (a list) and `version` but no `schemaVersion`: the file of its
//!   second persistence layer, [`Layer::Instances`];
//! - or ([`Layer::State`], its state layer) it has a `version` text (a key this format
//!   never had); or a `checksum` that is empty or the all-zero placeholder its
//!   migrations write; or a `checklists` list and no version at all (which it reads as
//!   0.0.0); or a 1.x `schemaVersion` with both `recovery` and `conflicts`, one of which
//!   lacks what this format requires (its first-use file: `recovery: {dataLoss: false}`,
//!   `conflicts: {}`).
//!
//! It imports its versions 0.0.x, 0.1.x, 0.2.x and 1.x ([`can_import`]); a file of
//! another version is refused with exit 8 and left as it is.
//!
//! # Conversion
//!
//! One conversion serves every version: the differences between them are which fields
//! are there, and each field is converted where it is found. The TypeScript tool's own
//! migrations are not replayed, since they fill missing times with the time they run.
//!
//! | in the original | becomes |
//! |---|---|
//! | `schemaVersion`, `version` | kept under `typescriptChecklist` ([`KEPT_FIELD`]); the document is schema 1.0.0 with `revision: 0`, and the sealed write sets the revision and checksum |
//! | `checksum` | dropped: it covers the original content (which `checklist migrate` keeps as a backup); the sealed write sets this document's |
//! | `activeInstance` | this format's instance: `checklistId` or `workflowId` becomes `templateId`, `updatedAt` becomes `lastModifiedAt`, an empty `currentStepId` is dropped; without an `id` it gets one derived from the file's content (so a dry run shows the same id), without a `status` it is `active`, without times they come from the file's `metadata.created`, `lastModified` or `metadata.modified`. One that names no template, or has no start time and nothing to take one from, is kept whole under `typescriptChecklist` |
//! | `activeInstance.completedSteps` (before 1.0) | appended to `completedSteps`; a bare step id becomes a `success` of 0 ms completed at the instance's last change (as the original's 1.0 migration reads it), unless a full record of that step is already there |
//! | `activeInstance.stepStates` (the instances layer) | each `completed`, `skipped` or `failed` entry becomes a `success`, `skipped` or `failure` step of 0 ms (that layer records no durations), oldest first; the `pending` ones stay in `stepStates` |
//! | `completedSteps` | this format's steps: `id` becomes `stepId`; `executionTime` and each command's `duration` (milliseconds) are rounded to whole milliseconds; without a `result` a step is a `success`, without an `executionTime` it took 0 ms |
//! | `recovery`, `conflicts` | this format's blocks when they hold what it requires; otherwise (`{dataLoss: false}`, `{enabled, checkpoints, dataLoss}`, `{}`, `{resolutions: []}`, `[]`) kept under `typescriptChecklist` as they are |
//! | `instances` | kept under `typescriptChecklist`, less the copy of the active instance |
//! | anything else (`metadata`, `checklists`, `templates`, `variables`, `settings`, `migrations`, `lastModified`, `config`, `items`, …) | kept under `typescriptChecklist` as it is |
//!
//! Timestamps become RFC 3339 UTC. The fields of an instance, a step or a command that
//! this format does not know stay where they are, as unknown fields. Nothing is dropped
//! without a change line saying so.
//!
//! ```
//! use checklist_core::migrate;
//! use serde_json::json;
//!
//! // What the TypeScript checklist writes on first use.
//! let first_use = json!({
//!     "checksum": "sha256:8e4d5ae25a9ab48552130bc3f3f4d7f7c9a8b6d5e26cc62412571570c7f366e3",
//!     "completedSteps": [], "conflicts": {}, "recovery": {"dataLoss": false},
//!     "schemaVersion": "1.0.0",
//! });
//! let origin = migrate::typescript::detect(&first_use).unwrap();
//! assert_eq!(origin.version, "1.0.0");
//! let path = std::path::Path::new("state.yaml");
//! let imported = migrate::migrate(&first_use, path).unwrap();
//! assert_eq!(imported.typescript, Some(origin));
//! assert_eq!(imported.value["revision"], 0);
//! assert_eq!(imported.value["typescriptChecklist"]["recovery"], json!({"dataLoss": false}));
//! assert!(imported.into_state(path).is_ok());
//! ```

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{MIGRATIONS, Migration, SchemaVersion, ShapeError, Shaped, kind_of, parse_utc, rename};
use crate::canonical::{CHECKSUM_FIELD, document_checksum, to_canonical_string};
use crate::error::Error;
use crate::model::{CURRENT_SCHEMA_VERSION, SUPPORTED_MAJOR};

/// The top-level field of an imported document that keeps, as they were, the original's
/// fields this format has no place for.
pub const KEPT_FIELD: &str = "typescriptChecklist";

/// The checksum the original's migrations write until its store computes one.
const PLACEHOLDER_CHECKSUM: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Which of the TypeScript checklist's writers produced a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Layer {
    /// Its state layer: `schemaVersion`, `checksum`, `activeInstance`, `completedSteps`,
    /// `recovery`, `conflicts`, and in later or older versions `version`, `metadata`,
    /// `checklists`…
    State,
    /// Its second persistence layer: `version`, `instances`, `config`, and the
    /// `activeInstance` among the instances.
    Instances,
}

/// A file the TypeScript checklist wrote, as [`detect`] recognises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The version the file names: its `schemaVersion`, else its `version`, else
    /// `0.0.0` (how the original reads a file that names none).
    pub version: String,
    /// Which of its writers wrote it.
    pub layer: Layer,
}

/// Whether `document` was written by the TypeScript checklist, by its shape (see the
/// module documentation); `None` for every document of this format, corrupt or not.
pub fn detect(document: &Value) -> Option<Origin> {
    let map = document.as_object()?;
    if map.contains_key("revision") || of_our_older_series(map.get("schemaVersion")) {
        return None;
    }
    let instances_layer = map.get("instances").is_some_and(Value::is_array)
        && map.contains_key("version")
        && !map.contains_key("schemaVersion");
    let layer = if instances_layer {
        Layer::Instances
    } else if map.get("version").is_some_and(Value::is_string)
        || map
            .get(CHECKSUM_FIELD)
            .and_then(Value::as_str)
            .is_some_and(|c| c.is_empty() || c == PLACEHOLDER_CHECKSUM)
        || (!map.contains_key("schemaVersion")
            && !map.contains_key("version")
            && map.get("checklists").is_some_and(Value::is_array))
        || first_use_blocks(map)
    {
        Layer::State
    } else {
        return None;
    };
    let named = |key: &str| map.get(key).map(version_text);
    let version = named("schemaVersion")
        .or_else(|| named("version"))
        .unwrap_or_else(|| "0.0.0".to_owned());
    Some(Origin { version, layer })
}

/// Whether this build imports a TypeScript checklist file of `version`: its 0.0.x,
/// 0.1.x and 0.2.x and its 1.x.
pub fn can_import(version: &str) -> bool {
    SchemaVersion::parse(version).is_some_and(|v| (v.major == 0 && v.minor <= 2) || v.major == 1)
}

/// The error every read of such a file reports: [`Error::UnsupportedVersion`] (exit 8)
/// with `typescript` set, so that it is never mistaken for corruption.
pub fn unsupported(origin: &Origin, path: &Path) -> Error {
    super::unsupported_version(path, &origin.version, true)
}

/// The step that imports a file [`detect`] recognises. It is not in [`MIGRATIONS`]:
/// [`plan`](super::plan) picks it by the file's shape, so its `from` names the tool, not
/// a version series.
pub static IMPORT: Migration = Migration {
    from: "typescript",
    to: CURRENT_SCHEMA_VERSION,
    description: "imports a state written by the TypeScript checklist: its fields become this format's, \
                  what has no place here is kept under typescriptChecklist, and the document gets a revision",
    apply: import,
};

fn import(doc: &mut Value) -> Shaped<Vec<String>> {
    let not_ours = || ShapeError::new("/", "the document is not one the TypeScript checklist wrote");
    let origin = detect(doc).ok_or_else(not_ours)?;
    let source = doc.as_object().cloned().ok_or_else(not_ours)?;
    let mut import = Import::new(doc);
    *doc = import.document(source, origin.layer)?;
    Ok(import.changes)
}

/// One of the original's completed steps, converted.
struct Converted {
    /// Where it was in the original.
    from: String,
    step: Value,
    /// When it was completed.
    time: DateTime<Utc>,
    /// How it was converted, for the line saying where it went.
    how: String,
    /// The change lines of its fields, made only if it is kept as converted.
    changes: Vec<String>,
    /// A bare step id.
    bare: bool,
}

enum Instance {
    Absent,
    Mapped {
        fields: Map<String, Value>,
        /// When it last changed: the time its steps without one fall back on.
        last_modified: DateTime<Utc>,
        /// The pre-1.0 `completedSteps` inside it, not yet converted.
        completed_steps: Vec<Value>,
        /// Its step states that are steps of this format.
        from_step_states: Vec<Converted>,
    },
    Kept {
        why: String,
    },
}

struct Import {
    changes: Vec<String>,
    kept: Map<String, Value>,
    /// When the file says it was created (`metadata.created`), and where it says so.
    created: Option<(DateTime<Utc>, &'static str)>,
    /// When the file says it last changed (`lastModified`, `metadata.modified`).
    modified: Option<(DateTime<Utc>, &'static str)>,
    /// Derived from the file's content: the id of an instance that has none.
    fingerprint: [u8; 16],
    /// Whether the file's checksum is this format's checksum of its content.
    checksum_verified: bool,
}

impl Import {
    fn new(doc: &Value) -> Self {
        let time_at = |pointer: &'static str| {
            let time = doc.pointer(pointer)?.as_str().and_then(parse_utc)?;
            Some((time, pointer))
        };
        let digest = Sha256::digest(to_canonical_string(doc).as_bytes());
        let stored = doc.get(CHECKSUM_FIELD).and_then(Value::as_str);
        let mut fingerprint = [0; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        Self {
            changes: Vec::new(),
            kept: Map::new(),
            created: time_at("/metadata/created"),
            modified: time_at("/lastModified").or_else(|| time_at("/metadata/modified")),
            fingerprint,
            checksum_verified: stored == Some(document_checksum(doc).as_str()),
        }
    }

    fn document(&mut self, mut source: Map<String, Value>, layer: Layer) -> Shaped<Value> {
        let mut out = Map::new();
        out.insert("schemaVersion".to_owned(), Value::from(CURRENT_SCHEMA_VERSION));
        out.insert("revision".to_owned(), Value::from(0));
        self.changes
            .push("/revision: added as 0; the sealed write that stores the document sets it".to_owned());
        if let Some(checksum) = source.shift_remove(CHECKSUM_FIELD) {
            let what = match checksum.as_str() {
                Some("") => "empty".to_owned(),
                Some(PLACEHOLDER_CHECKSUM) => "the all-zero placeholder".to_owned(),
                Some(text) if self.checksum_verified => format!("{text} (it verifies)"),
                Some(text) => format!("{text} (it does not match the content)"),
                None => checksum.to_string(),
            };
            self.changes.push(format!(
                "/checksum: {what}, dropped: it covers the original file's content; the sealed write sets this \
                 document's"
            ));
        }

        // The instance first: steps without a time of their own fall back on its last change.
        let original_instance = source.shift_remove("activeInstance");
        let instance = match original_instance.clone() {
            Some(value) => self.instance(value)?,
            None => Instance::Absent,
        };
        let mut steps: Vec<(Converted, bool)> = Vec::new();
        if let Some(list) = source.shift_remove("completedSteps") {
            let Value::Array(list) = list else {
                return Err(ShapeError::new(
                    "/completedSteps",
                    format!("expected a list, found {}", kind_of(&list)),
                ));
            };
            let fallback = match &instance {
                Instance::Mapped { last_modified, .. } => {
                    Some((*last_modified, "/activeInstance/lastModifiedAt".to_owned()))
                }
                _ => self.modified.map(|(t, from)| (t, from.to_owned())),
            };
            for (index, step) in list.into_iter().enumerate() {
                let at = format!("/completedSteps/{index}");
                let converted = self.step(step, &at, fallback.clone())?;
                steps.push((converted, false));
            }
        }
        match instance {
            Instance::Absent => {}
            Instance::Kept { why } => {
                if let Some(value) = original_instance.clone() {
                    self.keep("activeInstance", value, &why);
                }
            }
            Instance::Mapped {
                mut fields,
                last_modified,
                completed_steps,
                from_step_states,
            } => {
                let recorded: Vec<Value> = steps
                    .iter()
                    .filter_map(|(s, _)| s.step.get("stepId").cloned())
                    .collect();
                steps.extend(from_step_states.into_iter().map(|s| (s, true)));
                let fallback = Some((last_modified, "/activeInstance/lastModifiedAt".to_owned()));
                let mut left = Vec::new();
                for (index, original) in completed_steps.into_iter().enumerate() {
                    let at = format!("/activeInstance/completedSteps/{index}");
                    let converted = self.step(original.clone(), &at, fallback.clone())?;
                    let id = converted.step.get("stepId").cloned().unwrap_or_default();
                    if !recorded.contains(&id) {
                        steps.push((converted, true));
                    } else if converted.bare {
                        self.changes.push(format!(
                            "{at}: the step id {id} alone, dropped: /completedSteps records that step"
                        ));
                    } else {
                        self.changes.push(format!(
                            "{at}: {id} is recorded in /completedSteps already; kept as it was in \
                             /activeInstance/completedSteps/{}",
                            left.len()
                        ));
                        left.push(original);
                    }
                }
                if !left.is_empty() {
                    fields.insert("completedSteps".to_owned(), Value::Array(left));
                }
                out.insert("activeInstance".to_owned(), Value::Object(fields));
            }
        }
        // This format keeps them oldest first; the original's steps from inside the
        // instance fall in where they belong.
        let in_order = steps.windows(2).all(|w| w[0].0.time <= w[1].0.time);
        steps.sort_by_key(|(s, _)| s.time);
        if !in_order {
            self.changes
                .push("/completedSteps: sorted oldest first, as this format keeps them".to_owned());
        }
        let mut list = Vec::with_capacity(steps.len());
        for (index, (converted, moved)) in steps.into_iter().enumerate() {
            self.changes.extend(converted.changes);
            if moved {
                self.changes.push(format!(
                    "{}: moved to /completedSteps/{index}{}",
                    converted.from, converted.how
                ));
            }
            list.push(converted.step);
        }
        out.insert("completedSteps".to_owned(), Value::Array(list));

        for (key, fits, what) in [
            (
                "recovery",
                fits_recovery as fn(&Value) -> bool,
                "a corruption recovery, with lastCorruption, corruptionType, recoveryMethod and dataLoss",
            ),
            (
                "conflicts",
                fits_conflicts,
                "a detected write conflict, with detected and resolution",
            ),
        ] {
            let Some(mut block) = source.shift_remove(key) else {
                continue;
            };
            if fits(&block) {
                for field in ["lastCorruption", "detected"] {
                    if let Some(map) = block.as_object_mut() {
                        normalise_time(map, &format!("/{key}"), field, &mut self.changes)?;
                    }
                }
                out.insert(key.to_owned(), block);
            } else {
                let why = format!("this format's {key} records {what}; this one records none");
                self.keep(key, block, &why);
            }
        }

        if layer == Layer::Instances
            && let (Some(active), Some(Value::Array(list))) =
                (&original_instance, source.get_mut("instances"))
        {
            let mut index = 0;
            list.retain(|instance| {
                let copy = instance == active;
                if copy {
                    self.changes.push(format!(
                        "/instances/{index}: the active instance itself (the same data as /activeInstance), not \
                         kept twice"
                    ));
                }
                index += 1;
                !copy
            });
        }
        for (key, value) in source {
            let why = match key.as_str() {
                "schemaVersion" | "version" => format!(
                    "the TypeScript checklist's version of the file; this document is schema {CURRENT_SCHEMA_VERSION}"
                ),
                "instances" => {
                    let count = value.as_array().map_or(0, Vec::len);
                    let instances = if count == 1 { "instance" } else { "instances" };
                    if out.contains_key("activeInstance") {
                        format!("{count} {instances} besides the active one: this format holds one instance")
                    } else {
                        format!(
                            "{count} {instances}, none active: this format holds only the active instance"
                        )
                    }
                }
                _ => "this format has no such field".to_owned(),
            };
            self.keep(&key, value, &why);
        }
        if !self.kept.is_empty() {
            out.insert(
                KEPT_FIELD.to_owned(),
                Value::Object(std::mem::take(&mut self.kept)),
            );
        }
        Ok(Value::Object(out))
    }

    fn keep(&mut self, key: &str, value: Value, why: &str) {
        let key_token = token(key);
        self.changes
            .push(format!("/{key_token}: kept as /{KEPT_FIELD}/{key_token} ({why})"));
        self.kept.insert(key.to_owned(), value);
    }

    fn instance(&mut self, value: Value) -> Shaped<Instance> {
        const AT: &str = "/activeInstance";
        let mut fields = match value {
            Value::Null => return Ok(Instance::Absent),
            Value::Object(fields) => fields,
            other => {
                return Err(ShapeError::new(
                    AT,
                    format!("expected a mapping, found {}", kind_of(&other)),
                ));
            }
        };
        // Collected apart: an instance that cannot be mapped is kept whole, unchanged.
        let mut changes = Vec::new();
        if !fields.contains_key("templateId") {
            let Some(old) = ["checklistId", "workflowId"]
                .into_iter()
                .find(|key| fields.get(*key).is_some_and(non_empty_text))
            else {
                return Ok(Instance::Kept {
                    why: "it names no template (templateId, checklistId or workflowId), which this format \
                          requires of an instance"
                        .to_owned(),
                });
            };
            rename(&mut fields, AT, old, "templateId", &mut changes)?;
        }
        let started_at = match normalise_time(&mut fields, AT, "startedAt", &mut changes)? {
            Some(time) => time,
            None => match self.created.or(self.modified) {
                Some((time, from)) => {
                    fields.insert("startedAt".to_owned(), Value::from(time_text(time)));
                    changes.push(format!(
                        "{AT}/startedAt: none in the original; set to {} from {from}",
                        time_text(time)
                    ));
                    time
                }
                None => {
                    return Ok(Instance::Kept {
                        why: "it has no start time (startedAt), and the file no metadata.created or \
                              lastModified to take one from"
                            .to_owned(),
                    });
                }
            },
        };
        if !fields.contains_key("lastModifiedAt") && fields.contains_key("updatedAt") {
            rename(&mut fields, AT, "updatedAt", "lastModifiedAt", &mut changes)?;
        }
        let last_modified = match normalise_time(&mut fields, AT, "lastModifiedAt", &mut changes)? {
            Some(time) => time,
            None => {
                let (time, from) = self.modified.unwrap_or((started_at, "/activeInstance/startedAt"));
                fields.insert("lastModifiedAt".to_owned(), Value::from(time_text(time)));
                changes.push(format!(
                    "{AT}/lastModifiedAt: none in the original; set to {} from {from}",
                    time_text(time)
                ));
                time
            }
        };
        normalise_time(&mut fields, AT, "completedAt", &mut changes)?;
        if !fields.get("id").is_some_and(non_empty_text) {
            let id = uuid::Builder::from_custom_bytes(self.fingerprint)
                .into_uuid()
                .to_string();
            changes.push(format!(
                "{AT}/id: none in the original; set to {id}, derived from the file's content"
            ));
            fields.shift_remove("id");
            fields.shift_insert(0, "id".to_owned(), Value::from(id));
        }
        match fields.get("status") {
            None => {
                fields.insert("status".to_owned(), Value::from("active"));
                changes.push(format!(
                    "{AT}/status: none in the original; set to active (it keeps an instance here while it runs)"
                ));
            }
            Some(Value::String(s)) if ["active", "paused", "completed", "failed"].contains(&s.as_str()) => {}
            Some(other) => {
                return Err(ShapeError::new(
                    format!("{AT}/status"),
                    format!("{other} is not one of active, paused, completed, failed"),
                ));
            }
        }
        if fields.get("currentStepId").and_then(Value::as_str) == Some("") {
            fields.shift_remove("currentStepId");
            changes.push(format!("{AT}/currentStepId: empty, dropped (no current step)"));
        }
        let completed_steps = match fields.shift_remove("completedSteps") {
            None => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(ShapeError::new(
                    format!("{AT}/completedSteps"),
                    format!("expected a list, found {}", kind_of(&other)),
                ));
            }
        };
        let from_step_states = step_states(&mut fields, last_modified)?;
        self.changes.extend(changes);
        Ok(Instance::Mapped {
            fields,
            last_modified,
            completed_steps,
            from_step_states,
        })
    }

    /// Converts one of the original's completed steps found at `at`; a step without a
    /// time of its own takes `fallback`'s, named by its second part.
    fn step(&self, value: Value, at: &str, fallback: Option<(DateTime<Utc>, String)>) -> Shaped<Converted> {
        let mut changes = Vec::new();
        let mut fields = match value {
            Value::String(id) if !id.is_empty() => {
                let (time, from) = fallback.ok_or_else(|| {
                    ShapeError::new(
                        at,
                        "a bare step id, and nothing in the file says when it was completed",
                    )
                })?;
                let mut step = Map::new();
                step.insert("stepId".to_owned(), Value::from(id));
                step.insert("completedAt".to_owned(), Value::from(time_text(time)));
                step.insert("executionTime".to_owned(), Value::from(0));
                step.insert("result".to_owned(), Value::from("success"));
                return Ok(Converted {
                    from: at.to_owned(),
                    step: Value::Object(step),
                    time,
                    how: format!(
                        " (a bare step id: a success of 0 ms completed at {} from {from}, as the original's \
                         1.0 migration reads it)",
                        time_text(time)
                    ),
                    changes,
                    bare: true,
                });
            }
            Value::Object(fields) => fields,
            other => {
                return Err(ShapeError::new(
                    at,
                    format!(
                        "expected a step (a mapping or a step id), found {}",
                        kind_of(&other)
                    ),
                ));
            }
        };
        if !fields.contains_key("stepId") {
            if fields.contains_key("id") {
                rename(&mut fields, at, "id", "stepId", &mut changes)?;
            } else {
                return Err(ShapeError::new(
                    format!("{at}/stepId"),
                    "the step has no stepId (nor id)",
                ));
            }
        }
        let time = match normalise_time(&mut fields, at, "completedAt", &mut changes)? {
            Some(time) => time,
            None => {
                let (time, from) = fallback.ok_or_else(|| {
                    ShapeError::new(
                        format!("{at}/completedAt"),
                        "the step has no completedAt, and nothing in the file says when it was completed",
                    )
                })?;
                fields.insert("completedAt".to_owned(), Value::from(time_text(time)));
                changes.push(format!(
                    "{at}/completedAt: none in the original; set to {} from {from}",
                    time_text(time)
                ));
                time
            }
        };
        if fields.contains_key("executionTime") {
            whole_millis(&mut fields, at, "executionTime", &mut changes)?;
        } else {
            fields.insert("executionTime".to_owned(), Value::from(0));
            changes.push(format!("{at}/executionTime: none in the original; set to 0 ms"));
        }
        match fields.get("result") {
            None => {
                fields.insert("result".to_owned(), Value::from("success"));
                changes.push(format!(
                    "{at}/result: none in the original; set to success, as the original's 1.0 migration reads it"
                ));
            }
            Some(Value::String(s)) if ["success", "failure", "skipped"].contains(&s.as_str()) => {}
            Some(other) => {
                return Err(ShapeError::new(
                    format!("{at}/result"),
                    format!("{other} is not one of success, failure, skipped"),
                ));
            }
        }
        if let Some(commands) = fields.get_mut("commandResults") {
            let kind = kind_of(commands);
            let commands = commands.as_array_mut().ok_or_else(|| {
                ShapeError::new(
                    format!("{at}/commandResults"),
                    format!("expected a list, found {kind}"),
                )
            })?;
            for (index, command) in commands.iter_mut().enumerate() {
                let at = format!("{at}/commandResults/{index}");
                let kind = kind_of(command);
                let command = command
                    .as_object_mut()
                    .ok_or_else(|| ShapeError::new(&at, format!("expected a mapping, found {kind}")))?;
                if command.contains_key("duration") {
                    whole_millis(command, &at, "duration", &mut changes)?;
                } else {
                    command.insert("duration".to_owned(), Value::from(0));
                    changes.push(format!("{at}/duration: none in the original; set to 0 ms"));
                }
            }
        }
        Ok(Converted {
            from: at.to_owned(),
            step: Value::Object(fields),
            time,
            how: String::new(),
            changes,
            bare: false,
        })
    }
}

/// The instances layer's `stepStates` of `fields` that are steps of this format
/// (completed, skipped, failed), converted; they leave `stepStates`, which keeps the
/// pending ones (and goes when none are left).
fn step_states(fields: &mut Map<String, Value>, last_modified: DateTime<Utc>) -> Shaped<Vec<Converted>> {
    const AT: &str = "/activeInstance/stepStates";
    let Some(states) = fields.get_mut("stepStates") else {
        return Ok(Vec::new());
    };
    let kind = kind_of(states);
    let states = states
        .as_object_mut()
        .ok_or_else(|| ShapeError::new(AT, format!("expected a mapping, found {kind}")))?;
    let mut steps = Vec::new();
    let mut moved = Vec::new();
    for (key, state) in states.iter() {
        let at = format!("{AT}/{}", token(key));
        let kind = kind_of(state);
        let state = state
            .as_object()
            .ok_or_else(|| ShapeError::new(&at, format!("expected a mapping, found {kind}")))?;
        let (status, result) = match state.get("status").and_then(Value::as_str) {
            Some("completed") => ("completed", "success"),
            Some("skipped") => ("skipped", "skipped"),
            Some("failed") => ("failed", "failure"),
            // Pending (or unknown to the original too): not a completed step, it stays.
            _ => continue,
        };
        let mut rest = state.clone();
        rest.shift_remove("status");
        let step_id = match rest.shift_remove("stepId") {
            None => Value::from(key.clone()),
            Some(id) if non_empty_text(&id) => id,
            Some(other) => {
                return Err(ShapeError::new(
                    format!("{at}/stepId"),
                    format!("{other} is not a step id"),
                ));
            }
        };
        let mut step = Map::new();
        step.insert("stepId".to_owned(), step_id);
        let mut changes = Vec::new();
        let time = match normalise_time(&mut rest, &at, "completedAt", &mut changes)? {
            Some(time) => time,
            None => {
                changes.push(format!(
                    "{at}/completedAt: none in the original; set to {} from /activeInstance/lastModifiedAt",
                    time_text(last_modified)
                ));
                last_modified
            }
        };
        rest.shift_remove("completedAt");
        step.insert("completedAt".to_owned(), Value::from(time_text(time)));
        step.insert("executionTime".to_owned(), Value::from(0));
        step.insert("result".to_owned(), Value::from(result));
        step.extend(rest);
        steps.push(Converted {
            from: at,
            step: Value::Object(step),
            time,
            how: format!(" ({status} → {result}; 0 ms: this layer records no durations)"),
            changes,
            bare: false,
        });
        moved.push(key.clone());
    }
    states.retain(|key, _| !moved.contains(key));
    if states.is_empty() {
        fields.shift_remove("stepStates");
    }
    Ok(steps)
}

/// Parses the timestamp `field` of `map` (if there and not null) and writes it back as
/// RFC 3339 UTC.
fn normalise_time(
    map: &mut Map<String, Value>,
    at: &str,
    field: &str,
    changes: &mut Vec<String>,
) -> Shaped<Option<DateTime<Utc>>> {
    let Some(value) = map.get_mut(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = value.as_str().unwrap_or_default();
    let time = parse_utc(text).ok_or_else(|| {
        ShapeError::new(
            format!("{at}/{field}"),
            format!("{value} is not a timestamp (RFC 3339, as 2025-06-11T14:02:09.120Z)"),
        )
    })?;
    let utc = time_text(time);
    if utc != text {
        // Only a change of zone is worth a line: `.000Z` written as `Z` is the same text
        // to every reader of RFC 3339.
        if !text.ends_with('Z') {
            changes.push(format!("{at}/{field}: {text} → {utc} (UTC)"));
        }
        *value = Value::from(utc);
    }
    Ok(Some(time))
}

/// The original measured durations in milliseconds, possibly fractional; this format
/// in whole milliseconds.
fn whole_millis(map: &mut Map<String, Value>, at: &str, field: &str, changes: &mut Vec<String>) -> Shaped {
    let Some(value) = map.get_mut(field) else {
        return Ok(());
    };
    if value.is_u64() {
        return Ok(());
    }
    let millis = value
        .as_f64()
        .filter(|ms| ms.is_finite() && *ms >= 0.0 && *ms <= u64::MAX as f64)
        .map(|ms| ms.round() as u64)
        .ok_or_else(|| {
            ShapeError::new(
                format!("{at}/{field}"),
                format!("{value} is not a non-negative number of milliseconds"),
            )
        })?;
    changes.push(format!("{at}/{field}: {value} ms → {millis} ms"));
    *value = Value::from(millis);
    Ok(())
}

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn non_empty_text(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.is_empty())
}

/// `key` as one token of a JSON pointer.
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn version_text(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().take(64).collect()
}

/// Whether `version` is one of this format's own older series, which the TypeScript
/// tool never wrote.
fn of_our_older_series(version: Option<&Value>) -> bool {
    version
        .and_then(Value::as_str)
        .and_then(SchemaVersion::parse)
        .is_some_and(|v| MIGRATIONS.iter().any(|m| m.reads(v)))
}

/// The first-use shape: a 1.x `schemaVersion` with `recovery` and `conflicts` blocks of
/// which one is not what this format requires.
fn first_use_blocks(map: &Map<String, Value>) -> bool {
    let current = map
        .get("schemaVersion")
        .and_then(Value::as_str)
        .and_then(SchemaVersion::parse)
        .is_some_and(|v| v.major == SUPPORTED_MAJOR);
    match (map.get("recovery"), map.get("conflicts")) {
        (Some(recovery), Some(conflicts)) => {
            current && !(fits_recovery(recovery) && fits_conflicts(conflicts))
        }
        _ => false,
    }
}

fn fits_recovery(block: &Value) -> bool {
    let Some(map) = block.as_object() else {
        return block.is_null();
    };
    map.get("lastCorruption")
        .and_then(Value::as_str)
        .is_some_and(|t| parse_utc(t).is_some())
        && one_of(
            map.get("corruptionType"),
            &["checksum_mismatch", "schema_invalid", "parse_error"],
        )
        && one_of(map.get("recoveryMethod"), &["backup", "reset", "manual"])
        && map.get("dataLoss").is_some_and(Value::is_boolean)
}

fn fits_conflicts(block: &Value) -> bool {
    let Some(map) = block.as_object() else {
        return block.is_null();
    };
    map.get("detected")
        .and_then(Value::as_str)
        .is_some_and(|t| parse_utc(t).is_some())
        && one_of(map.get("resolution"), &["local", "remote", "merge"])
}

fn one_of(value: Option<&Value>, names: &[&str]) -> bool {
    value.and_then(Value::as_str).is_some_and(|v| names.contains(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer_of(document: Value) -> Option<(String, Layer)> {
        detect(&document).map(|o| (o.version, o.layer))
    }

    #[test]
    fn each_sign_of_the_original_is_enough_on_its_own() {
        let state = |v: &str| Some((v.to_owned(), Layer::State));
        assert_eq!(
            layer_of(json!({"version": "1.0.0", "instances": [], "config": {}})),
            Some(("1.0.0".to_owned(), Layer::Instances))
        );
        assert_eq!(
            layer_of(json!({"version": "0.1.0", "completedSteps": []})),
            state("0.1.0")
        );
        assert_eq!(
            layer_of(json!({"schemaVersion": "1.0.0", "checksum": "", "completedSteps": []})),
            state("1.0.0")
        );
        assert_eq!(
            layer_of(json!({"schemaVersion": "1.0.0", "checksum": PLACEHOLDER_CHECKSUM})),
            state("1.0.0")
        );
        assert_eq!(layer_of(json!({"checklists": []})), state("0.0.0"));
        assert_eq!(
            layer_of(json!({"schemaVersion": "1.0.0", "recovery": {"dataLoss": false}, "conflicts": null})),
            state("1.0.0")
        );
        assert_eq!(
            layer_of(json!({"schemaVersion": "1.0.0", "recovery": null, "conflicts": {}})),
            state("1.0.0")
        );
    }

    #[test]
    fn documents_without_a_sign_of_the_original_are_this_format_s() {
        let full = json!({
            "schemaVersion": "1.0.0",
            "checksum": format!("sha256:{}", "1".repeat(64)),
            "completedSteps": [],
            "recovery": {"lastCorruption": "2025-01-01T00:00:00Z", "corruptionType": "parse_error",
                         "recoveryMethod": "reset", "dataLoss": true},
            "conflicts": {"detected": "2025-01-01T00:00:00Z", "resolution": "merge"},
        });
        // Without its revision it is a corrupt document of ours: nothing in it is the
        // original's alone.
        assert_eq!(layer_of(full.clone()), None);
        let mut sealed = full;
        sealed["revision"] = json!(4);
        sealed["version"] = json!("1.0.0");
        sealed["checksum"] = json!("");
        assert_eq!(layer_of(sealed), None, "a revision is this format's");
        assert_eq!(
            layer_of(json!({"schemaVersion": "0.9.3", "version": "0.9.3", "checksum": ""})),
            None,
            "0.9 is this format's own series"
        );
        assert_eq!(
            layer_of(json!({"schemaVersion": "1.0.0", "completedSteps": []})),
            None
        );
        assert_eq!(layer_of(json!(["version"])), None);
        assert_eq!(
            layer_of(json!({"schemaVersion": "2.0.0", "recovery": {}, "conflicts": {}})),
            None,
            "a newer major version of ours stays one"
        );
    }

    #[test]
    fn versions_it_had_are_imported_and_others_refused() {
        for version in ["0.0.0", "0.1.0", "0.2.3", "1.0.0", "1.4.0"] {
            assert!(can_import(version), "{version}");
        }
        for version in ["0.3.0", "2.0.0", "1.0", "v1.0.0", ""] {
            assert!(!can_import(version), "{version}");
        }
        let origin = Origin {
            version: "2.0.0".to_owned(),
            layer: Layer::State,
        };
        let text = unsupported(&origin, Path::new("/p/state.yaml")).to_string();
        assert!(
            text.starts_with("/p/state.yaml was written by the TypeScript checklist at its schema 2.0.0"),
            "{text}"
        );
    }

    #[test]
    fn the_import_step_refuses_a_document_it_does_not_recognise() {
        let mut doc = json!({"schemaVersion": "1.0.0", "revision": 3, "completedSteps": []});
        let before = doc.clone();
        let err = (IMPORT.apply)(&mut doc).unwrap_err();
        assert_eq!(err.field_path, "/");
        assert_eq!(doc, before);
    }
}
