//! The JSON Schemas of the store's files, compiled once and applied on every load and
//! before every save.
//!
//! The schema texts live in this crate's `schemas/` directory (`core/schemas/`, so that
//! the published crate carries them; the repository's `schemas/` links to them) and
//! are compiled into this crate, so a build always validates against the schemas it
//! was built with.

use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::Value;

/// The text of `schemas/state.schema.json`.
pub const STATE_SCHEMA: &str = include_str!("../schemas/state.schema.json");

/// The text of `schemas/config.schema.json`.
pub const CONFIG_SCHEMA: &str = include_str!("../schemas/config.schema.json");

/// The text of `schemas/lock.schema.json`.
pub const LOCK_SCHEMA: &str = include_str!("../schemas/lock.schema.json");

static STATE: LazyLock<Validator> = LazyLock::new(|| compile(STATE_SCHEMA));
static CONFIG: LazyLock<Validator> = LazyLock::new(|| compile(CONFIG_SCHEMA));
static LOCK: LazyLock<Validator> = LazyLock::new(|| compile(LOCK_SCHEMA));

fn compile(text: &str) -> Validator {
    // The schemas are part of this crate; a broken one is a build defect that the
    // unit tests below catch, not a run-time condition.
    let schema: Value = serde_json::from_str(text).expect("bundled schema is valid JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("bundled schema compiles")
}

/// The first place where a document breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer of the offending value (`/` for the document root).
    pub field_path: String,
    /// What the schema requires there.
    pub message: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.field_path, self.message)
    }
}

/// The deepest a state document may nest: objects and arrays inside one another, the
/// document itself counting as 1. Every codec must read a document this deep back
/// (serde-saphyr's depth budget, which guards its stack, is 64 and is the lowest), so
/// a store never writes a document it could not read again; a deeper one is refused
/// before anything is written.
pub const MAX_DOCUMENT_DEPTH: usize = 64;

/// Validates a state document against `schemas/state.schema.json` and
/// [`MAX_DOCUMENT_DEPTH`].
pub fn validate_state(document: &Value) -> Result<(), SchemaViolation> {
    check_depth(document, 1, &mut String::new())?;
    first_violation(&STATE, document)
}

/// Fails at the first container nested deeper than [`MAX_DOCUMENT_DEPTH`], `depth`
/// being that of `value` and `at` its JSON pointer. Stops there, so its recursion is
/// bounded whatever the value.
///
/// Every commit checks every value of the document, so the pointer is built only for
/// the path that fails: the walk itself allocates nothing.
fn check_depth(value: &Value, depth: usize, at: &mut String) -> Result<(), SchemaViolation> {
    if !nests_deeper(value, depth) {
        return Ok(());
    }
    if depth > MAX_DOCUMENT_DEPTH {
        return Err(SchemaViolation {
            field_path: if at.is_empty() { "/".to_owned() } else { at.clone() },
            message: format!(
                "the document nests {depth} levels deep here, more than the {MAX_DOCUMENT_DEPTH} every \
                 backend reads back"
            ),
        });
    }
    let children: Box<dyn Iterator<Item = (String, &Value)>> = match value {
        Value::Object(map) => Box::new(
            map.iter()
                .map(|(key, child)| (key.replace('~', "~0").replace('/', "~1"), child)),
        ),
        Value::Array(items) => Box::new(items.iter().enumerate().map(|(i, child)| (i.to_string(), child))),
        _ => return Ok(()),
    };
    for (key, child) in children {
        let len = at.len();
        at.push('/');
        at.push_str(&key);
        check_depth(child, depth + 1, at)?;
        at.truncate(len);
    }
    Ok(())
}

/// Whether `value`, at depth `depth`, is or holds a container deeper than
/// [`MAX_DOCUMENT_DEPTH`]. Stops at the first, so its recursion is bounded.
fn nests_deeper(value: &Value, depth: usize) -> bool {
    let is_container = matches!(value, Value::Object(_) | Value::Array(_));
    if !is_container {
        return false;
    }
    if depth > MAX_DOCUMENT_DEPTH {
        return true;
    }
    match value {
        Value::Object(map) => map.values().any(|child| nests_deeper(child, depth + 1)),
        Value::Array(items) => items.iter().any(|child| nests_deeper(child, depth + 1)),
        _ => false,
    }
}

/// Validates a configuration against `schemas/config.schema.json`.
pub fn validate_config(config: &Value) -> Result<(), SchemaViolation> {
    first_violation(&CONFIG, config)
}

/// Validates a lock file against `schemas/lock.schema.json`.
pub fn validate_lock(lock: &Value) -> Result<(), SchemaViolation> {
    first_violation(&LOCK, lock)
}

fn first_violation(validator: &Validator, instance: &Value) -> Result<(), SchemaViolation> {
    // `is_valid` builds no errors, and nearly every document is valid: a state of
    // thousands of steps is checked on every commit.
    if validator.is_valid(instance) {
        return Ok(());
    }
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(error) => {
            let pointer = error.instance_path().to_string();
            Err(SchemaViolation {
                field_path: if pointer.is_empty() {
                    "/".to_owned()
                } else {
                    pointer
                },
                message: error.masked().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A state document whose unknown field nests containers until the document is
    /// `depth` deep.
    pub(crate) fn state_nested(depth: usize) -> Value {
        let mut deep = json!("bottom");
        // The document and the `x-deep` object count as two levels.
        for level in 0..depth - 1 {
            deep = if level % 2 == 0 {
                json!([deep])
            } else {
                json!({ "in": deep })
            };
        }
        json!({
            "schemaVersion": "1.0.0", "revision": 1,
            "checksum": format!("sha256:{}", "0".repeat(64)),
            "activeInstance": null, "completedSteps": [], "x-deep": deep,
        })
    }

    #[test]
    fn documents_deeper_than_the_limit_are_refused_where_they_go_too_deep() {
        assert_eq!(validate_state(&state_nested(MAX_DOCUMENT_DEPTH)), Ok(()));
        let violation = validate_state(&state_nested(MAX_DOCUMENT_DEPTH + 1)).unwrap_err();
        assert!(violation.field_path.starts_with("/x-deep/"), "{violation}");
        assert_eq!(
            violation.field_path.matches('/').count(),
            MAX_DOCUMENT_DEPTH,
            "{violation}"
        );
        assert!(violation.message.contains("65 levels"), "{violation}");
    }

    #[test]
    fn bundled_schemas_compile() {
        LazyLock::force(&STATE);
        LazyLock::force(&CONFIG);
        LazyLock::force(&LOCK);
    }

    #[test]
    fn violations_name_the_field() {
        let doc = json!({
            "schemaVersion": "1.0.0",
            "revision": 1,
            "checksum": format!("sha256:{}", "0".repeat(64)),
            "completedSteps": [{"stepId": "a", "completedAt": "2026-01-01T00:00:00Z",
                                "executionTime": -1, "result": "success"}]
        });
        let v = validate_state(&doc).unwrap_err();
        assert_eq!(v.field_path, "/completedSteps/0/executionTime");
    }

    #[test]
    fn timestamps_must_be_rfc3339() {
        let doc = json!({
            "schemaVersion": "1.0.0",
            "revision": 1,
            "checksum": format!("sha256:{}", "0".repeat(64)),
            "completedSteps": [{"stepId": "a", "completedAt": "yesterday",
                                "executionTime": 1, "result": "success"}]
        });
        assert_eq!(
            validate_state(&doc).unwrap_err().field_path,
            "/completedSteps/0/completedAt"
        );
    }

    #[test]
    fn config_typos_are_reported() {
        let v = validate_config(&json!({"lock": {"timeoutMS": 5}})).unwrap_err();
        assert_eq!(v.field_path, "/lock");
        assert!(v.message.contains("timeoutMS"), "{}", v.message);
    }
}
