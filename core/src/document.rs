//! The save and load pipeline every backend runs on the state document.
//!
//! [`seal`] turns a [`ChecklistState`] into the exact document to store: revision set,
//! checksum computed, schema checked. [`unseal`] turns a parsed document back into a
//! [`ChecklistState`] after checking, in order, the schema version, the schema and the
//! checksum. Backends only move bytes and parse them; they never compute or skip these
//! checks themselves, which is what makes every backend verify the same way.

use std::path::Path;

use serde_json::Value;

use crate::canonical::{CHECKSUM_FIELD, document_checksum};
use crate::error::{CorruptionKind, Error, Result};
use crate::migrate::typescript;
use crate::model::ChecklistState;
use crate::schema;

pub use crate::model::SUPPORTED_MAJOR;

/// A document ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedDocument {
    /// The document, with `revision` and `checksum` set; keys in the model's order.
    pub value: Value,
    /// Its revision.
    pub revision: u64,
    /// Its checksum (`sha256:<hex>`).
    pub checksum: String,
}

/// Prepares `state` to be stored as `revision`: sets the revision and the checksum and
/// validates the result against the state schema. `path` only names the target in
/// errors.
///
/// # Errors
/// [`Error::SchemaInvalid`] when the document breaks the schema.
pub fn seal(state: &ChecklistState, revision: u64, path: &Path) -> Result<SealedDocument> {
    let mut value = serde_json::to_value(state).map_err(|e| Error::SchemaInvalid {
        path: path.to_owned(),
        field_path: "/".to_owned(),
        message: e.to_string(),
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("revision".to_owned(), Value::from(revision));
    }
    let checksum = document_checksum(&value);
    if let Some(map) = value.as_object_mut() {
        // Keep the checksum right after schemaVersion and revision, where a reader
        // of the file looks for it.
        let slot = map.len().min(2);
        map.shift_remove(CHECKSUM_FIELD);
        map.shift_insert(slot, CHECKSUM_FIELD.to_owned(), Value::String(checksum.clone()));
    }
    schema::validate_state(&value).map_err(|v| Error::SchemaInvalid {
        path: path.to_owned(),
        field_path: v.field_path,
        message: v.message,
    })?;
    Ok(SealedDocument {
        value,
        revision,
        checksum,
    })
}

/// Verifies a parsed document and turns it into a [`ChecklistState`].
///
/// Checks, in order: that it is a mapping, that the TypeScript checklist did not write
/// it ([`typescript::detect`]: such a file is refused as an unsupported version, never
/// as corrupt), its `schemaVersion` (major version 1 is read; anything else is refused
/// without modification), the state schema, then the checksum. `path` names the source
/// in errors.
///
/// # Errors
/// [`Error::UnsupportedVersion`] (with `typescript` set for a file of the TypeScript
/// checklist) or [`Error::Corrupted`] with the failing [`CorruptionKind`].
pub fn unseal(value: Value, path: &Path) -> Result<ChecklistState> {
    unseal_checked(value, path, true)
}

/// Like [`unseal`] but without the checksum check: how `checklist reseal` reads a
/// deliberate hand edit, whose only fault may be its stale checksum. The returned
/// state keeps the stored (stale) checksum; sealing it again computes a fresh one.
///
/// # Errors
/// As [`unseal`], except never [`CorruptionKind::ChecksumMismatch`].
pub fn unseal_ignoring_checksum(value: Value, path: &Path) -> Result<ChecklistState> {
    unseal_checked(value, path, false)
}

fn unseal_checked(value: Value, path: &Path, check_checksum: bool) -> Result<ChecklistState> {
    let corrupted = |kind, detail: String| Error::Corrupted {
        kind,
        path: path.to_owned(),
        detail,
    };
    let Some(map) = value.as_object() else {
        return Err(corrupted(
            CorruptionKind::SchemaInvalid,
            format!("the document is {}, not a mapping", describe(&value)),
        ));
    };
    // Before any check of this format: such a file is not corrupt, and a message
    // saying so would advise a recovery that throws its content away.
    if let Some(origin) = typescript::detect(&value) {
        return Err(typescript::unsupported(&origin, path));
    }
    if let Some(Value::String(version)) = map.get("schemaVersion") {
        check_version(version, path)?;
    }
    schema::validate_state(&value).map_err(|v| {
        corrupted(
            CorruptionKind::SchemaInvalid,
            format!("{} ({})", v.message, v.field_path),
        )
    })?;
    let stored = map
        .get(CHECKSUM_FIELD)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let computed = document_checksum(&value);
    if check_checksum && stored != computed {
        return Err(corrupted(
            CorruptionKind::ChecksumMismatch,
            format!("the stored checksum is {stored} but the content hashes to {computed}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        corrupted(
            CorruptionKind::SchemaInvalid,
            format!("the document does not fit the state model: {e}"),
        )
    })
}

/// Checks that a `schemaVersion` string is one this build reads.
///
/// # Errors
/// [`Error::UnsupportedVersion`] naming the version found.
pub fn check_version(version: &str, path: &Path) -> Result<()> {
    let major = version.split('.').next().and_then(|m| m.parse::<u64>().ok());
    if major == Some(SUPPORTED_MAJOR) {
        return Ok(());
    }
    Err(crate::migrate::unsupported_version(path, version, false))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceStart, StepCompletion, StepResult};
    use chrono::Utc;
    use serde_json::json;

    fn path() -> &'static Path {
        Path::new("/p/.checklist/state.yaml")
    }

    fn sample() -> ChecklistState {
        let mut s = ChecklistState::new();
        s.start_instance(
            InstanceStart {
                template_id: "deploy".into(),
                template_version: Some("2.1.0".into()),
                project_path: Some("/p".into()),
                first_step_id: Some("build".into()),
            },
            Utc::now(),
        )
        .unwrap();
        s.complete_step(
            StepCompletion {
                step_id: "build".into(),
                result: StepResult::Success,
                execution_time_ms: 1200,
                command_results: vec![],
            },
            Utc::now(),
        )
        .unwrap();
        s
    }

    #[test]
    fn seal_then_unseal_is_identity_apart_from_revision_and_checksum() {
        let state = sample();
        let sealed = seal(&state, 7, path()).unwrap();
        let back = unseal(sealed.value.clone(), path()).unwrap();
        assert_eq!(back.revision, 7);
        assert_eq!(back.checksum.as_deref(), Some(sealed.checksum.as_str()));
        let mut expected = state;
        expected.revision = 7;
        expected.checksum = Some(sealed.checksum);
        assert_eq!(back, expected);
    }

    #[test]
    fn checksum_sits_after_revision_in_the_written_order() {
        let sealed = seal(&sample(), 1, path()).unwrap();
        let keys: Vec<_> = sealed.value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(&keys[..3], ["schemaVersion", "revision", "checksum"]);
    }

    #[test]
    fn unknown_fields_survive_at_every_level() {
        let mut value = seal(&sample(), 1, path()).unwrap().value;
        value["x-top"] = json!({"nested": [1, 2]});
        value["activeInstance"]["x-owner"] = json!("ops");
        value["completedSteps"][0]["x-note"] = json!("flaky");
        value["checksum"] = json!(document_checksum(&value));
        let state = unseal(value, path()).unwrap();
        let resealed = seal(&state, 2, path()).unwrap().value;
        assert_eq!(resealed["x-top"], json!({"nested": [1, 2]}));
        assert_eq!(resealed["activeInstance"]["x-owner"], json!("ops"));
        assert_eq!(resealed["completedSteps"][0]["x-note"], json!("flaky"));
    }

    #[test]
    fn each_corruption_kind_is_reported() {
        let good = seal(&sample(), 3, path()).unwrap().value;

        let mut edited = good.clone();
        edited["completedSteps"][0]["executionTime"] = json!(1201);
        let err = unseal(edited, path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corrupted {
                    kind: CorruptionKind::ChecksumMismatch,
                    ..
                }
            ),
            "{err}"
        );

        let mut broken = good.clone();
        broken["activeInstance"]["status"] = json!("exploded");
        let err = unseal(broken, path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corrupted {
                    kind: CorruptionKind::SchemaInvalid,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("/activeInstance/status"), "{err}");

        let err = unseal(json!("just a string"), path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corrupted {
                    kind: CorruptionKind::SchemaInvalid,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn newer_major_versions_are_refused() {
        let mut value = seal(&sample(), 3, path()).unwrap().value;
        value["schemaVersion"] = json!("2.0.0");
        let err = unseal(value, path()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
    }

    #[test]
    fn seal_refuses_a_document_that_breaks_the_schema() {
        let mut state = sample();
        state.completed_steps[0].step_id = String::new();
        let err = seal(&state, 1, path()).unwrap_err();
        match err {
            Error::SchemaInvalid { field_path, .. } => {
                assert_eq!(field_path, "/completedSteps/0/stepId")
            }
            other => panic!("unexpected {other}"),
        }
    }
}
