//! Archived instances (docs/file-formats.md, "Archive"): a finished instance leaves the state for a
//! document of its own, `archive/<instance-id>.<extension>`, indexed in `history.yaml`.
//!
//! An archived instance is sealed like the state: its parts are checked against the
//! state schema's definitions of an instance and its steps, and a checksum over its
//! canonical JSON (without the `checksum` field) is stored in it and verified on read.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::{CHECKSUM_FIELD, document_checksum};
use crate::document::check_version;
use crate::error::{CorruptionKind, Error, Result};
use crate::model::{
    ActiveInstance, CURRENT_SCHEMA_VERSION, ChecklistState, CompletedStep, InstanceStatus, MAX_ID_LEN,
};
use crate::schema;

/// A finished instance as archived: the instance and its steps, when and from which
/// revision of the state it was archived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedInstance {
    /// Version of the document format (the state's schema version).
    pub schema_version: String,
    /// `sha256:<hex>` over the canonical JSON of the document without this field; set
    /// by [`seal`](Self::seal), checked by [`unseal`](Self::unseal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// When it was archived.
    pub archived_at: DateTime<Utc>,
    /// The revision of the state it was taken from.
    pub archived_from_revision: u64,
    /// The instance, finished (`completed` or `failed`).
    pub instance: ActiveInstance,
    /// Its completed steps, oldest first.
    pub completed_steps: Vec<CompletedStep>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An archived instance ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedArchive {
    /// The document, with its checksum set.
    pub value: Value,
    /// Its checksum.
    pub checksum: String,
}

/// One line of `history.yaml`: what was archived, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The instance's id (also the archive file's stem).
    pub instance_id: String,
    /// Its template.
    pub template_id: String,
    /// Its template's version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    /// How it finished.
    pub status: InstanceStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was archived.
    pub archived_at: DateTime<Utc>,
    /// How many steps it completed.
    pub steps: usize,
    /// Where its store keeps the archived document, as the store names it: for the
    /// file backends its file relative to the store directory (`archive/<id>.yaml`).
    /// Serialized as `file`, the name history.yaml has always given it.
    #[serde(rename = "file")]
    pub location: String,
    /// The archived document's checksum.
    pub checksum: String,
}

impl ArchivedInstance {
    /// Checks the document and computes its checksum. `path` names the target in
    /// errors.
    ///
    /// # Errors
    /// [`Error::SchemaInvalid`] when the instance or a step breaks the state schema, or
    /// the instance id cannot be a file name.
    pub fn seal(&self, path: &Path) -> Result<SealedArchive> {
        validate_file_stem("instance id", &self.instance.id)?;
        let invalid = |field_path: String, message: String| Error::SchemaInvalid {
            path: path.to_owned(),
            field_path,
            message,
        };
        let mut value = serde_json::to_value(self).map_err(|e| invalid("/".into(), e.to_string()))?;
        check_parts(&value).map_err(|(field_path, message)| invalid(field_path, message))?;
        let checksum = document_checksum(&value);
        if let Some(map) = value.as_object_mut() {
            map.shift_remove(CHECKSUM_FIELD);
            map.shift_insert(1, CHECKSUM_FIELD.to_owned(), Value::String(checksum.clone()));
        }
        Ok(SealedArchive { value, checksum })
    }

    /// Verifies a parsed archive document: schema version, parts, checksum.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] or [`Error::Corrupted`] naming `path`.
    pub fn unseal(value: Value, path: &Path) -> Result<Self> {
        let corrupted = |kind, detail: String| Error::Corrupted {
            kind,
            path: path.to_owned(),
            detail,
        };
        let Some(map) = value.as_object() else {
            return Err(corrupted(
                CorruptionKind::SchemaInvalid,
                "the archived instance is not a mapping".into(),
            ));
        };
        match map.get("schemaVersion") {
            Some(Value::String(version)) => check_version(version, path)?,
            _ => {
                return Err(corrupted(
                    CorruptionKind::SchemaInvalid,
                    "the archived instance has no schemaVersion".into(),
                ));
            }
        }
        check_parts(&value).map_err(|(field_path, message)| {
            corrupted(CorruptionKind::SchemaInvalid, format!("{message} ({field_path})"))
        })?;
        let stored = map
            .get(CHECKSUM_FIELD)
            .and_then(Value::as_str)
            .unwrap_or_default();
        let computed = document_checksum(&value);
        if stored != computed {
            return Err(corrupted(
                CorruptionKind::ChecksumMismatch,
                format!("the stored checksum is {stored} but the content hashes to {computed}"),
            ));
        }
        let archived: Self = serde_json::from_value(value).map_err(|e| {
            corrupted(
                CorruptionKind::SchemaInvalid,
                format!("the document does not fit the archive model: {e}"),
            )
        })?;
        validate_file_stem("instance id", &archived.instance.id)?;
        Ok(archived)
    }

    /// Its entry in the history, once stored at `location` with `checksum`.
    pub fn history_entry(&self, location: String, checksum: String) -> HistoryEntry {
        HistoryEntry {
            instance_id: self.instance.id.clone(),
            template_id: self.instance.template_id.clone(),
            template_version: self.instance.template_version.clone(),
            status: self.instance.status,
            started_at: self.instance.started_at,
            completed_at: self.instance.completed_at,
            archived_at: self.archived_at,
            steps: self.completed_steps.len(),
            location,
            checksum,
        }
    }
}

/// Checks the instance and the steps of an archive document against the state schema,
/// by placing them where the state document has them. Returns the failing JSON pointer
/// (in the archive document) and the message.
fn check_parts(archive: &Value) -> std::result::Result<(), (String, String)> {
    let part = |name: &str| archive.get(name).cloned().unwrap_or(Value::Null);
    let as_state = serde_json::json!({
        "schemaVersion": CURRENT_SCHEMA_VERSION,
        "revision": archive.get("archivedFromRevision").cloned().unwrap_or(Value::Null),
        // The archive's own checksum is checked separately; this only fills the slot.
        "checksum": format!("sha256:{}", "0".repeat(64)),
        "activeInstance": part("instance"),
        "completedSteps": part("completedSteps"),
    });
    schema::validate_state(&as_state).map_err(|v| {
        let field_path = v.field_path.replacen("/activeInstance", "/instance", 1).replacen(
            "/revision",
            "/archivedFromRevision",
            1,
        );
        (field_path, v.message)
    })
}

/// Checks that a name that becomes part of a file name (an instance id, a backup id)
/// cannot leave its directory or hide: ASCII letters, digits, `-`, `_` and `.`, not
/// starting with `.`, at most [`MAX_ID_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidOperation`] saying what is wrong with it.
pub fn validate_file_stem(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_owned())
    } else if name.len() > MAX_ID_LEN {
        Some(format!(
            "is {} bytes long; at most {MAX_ID_LEN} are allowed",
            name.len()
        ))
    } else if name.starts_with('.') {
        Some("starts with a dot".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .map(|c| format!("contains {c:?}; only ASCII letters, digits, '-', '_' and '.' are allowed"))
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::invalid(format!(
            "the {what} {:?} cannot name a file: it {problem}",
            name.chars().take(80).collect::<String>()
        ))),
    }
}

/// Archiving is a transition of the document: it lives with the archive so the model
/// does not depend on it.
impl ChecklistState {
    /// Takes the instance and its steps out of the document, to be archived; the
    /// document is left with no instance.
    ///
    /// A finished instance (`completed` or `failed`) is taken as it is; an active or
    /// paused one only when `finish_as` says how it finished (it is then marked so,
    /// completed now). The archive records `self.revision` as the revision it came from.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] without an instance, for an unfinished one without
    /// `finish_as`, for a `finish_as` that is not a finished status or contradicts how
    /// the instance finished.
    pub fn archive_instance(
        &mut self,
        finish_as: Option<InstanceStatus>,
        now: DateTime<Utc>,
    ) -> Result<ArchivedInstance> {
        let Some(instance) = &mut self.active_instance else {
            return Err(Error::invalid("there is no instance to archive"));
        };
        if let Some(status) = finish_as
            && !status.is_finished()
        {
            return Err(Error::invalid(format!(
                "an instance is archived as completed or failed, not {}",
                status.as_str()
            )));
        }
        match (instance.status.is_finished(), finish_as) {
            (true, Some(status)) if status != instance.status => {
                return Err(Error::invalid(format!(
                    "instance {} already finished as {}; it cannot be archived as {}",
                    instance.id,
                    instance.status.as_str(),
                    status.as_str()
                )));
            }
            (true, _) => {}
            (false, Some(status)) => {
                instance.status = status;
                instance.completed_at.get_or_insert(now);
                instance.last_modified_at = now;
            }
            (false, None) => {
                return Err(Error::invalid(format!(
                    "instance {} is still {}; say how it finished (completed or failed) to archive it",
                    instance.id,
                    instance.status.as_str()
                )));
            }
        }
        let instance = self.active_instance.take().expect("checked above");
        Ok(ArchivedInstance {
            schema_version: CURRENT_SCHEMA_VERSION.to_owned(),
            checksum: None,
            archived_at: now,
            archived_from_revision: self.revision,
            instance,
            completed_steps: std::mem::take(&mut self.completed_steps),
            extra: Map::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChecklistState, InstanceStart, StepCompletion, StepResult};

    fn archived() -> ArchivedInstance {
        let mut state = ChecklistState::new();
        let now = Utc::now();
        state
            .start_instance(
                InstanceStart {
                    template_id: "release".into(),
                    template_version: Some("1.4.0".into()),
                    project_path: None,
                    first_step_id: None,
                },
                now,
            )
            .unwrap();
        state
            .complete_step(
                StepCompletion {
                    step_id: "build".into(),
                    result: StepResult::Success,
                    execution_time_ms: 10,
                    command_results: vec![],
                },
                now,
            )
            .unwrap();
        state.revision = 3;
        state
            .archive_instance(Some(InstanceStatus::Completed), now)
            .unwrap()
    }

    fn path() -> &'static Path {
        Path::new("archive/x.yaml")
    }

    #[test]
    fn seal_then_unseal_round_trips() {
        let archive = archived();
        let sealed = archive.seal(path()).unwrap();
        let back = ArchivedInstance::unseal(sealed.value.clone(), path()).unwrap();
        assert_eq!(back.checksum.as_deref(), Some(sealed.checksum.as_str()));
        assert_eq!(back.instance, archive.instance);
        assert_eq!(back.completed_steps, archive.completed_steps);
        assert_eq!(back.archived_from_revision, 3);
    }

    #[test]
    fn a_changed_step_is_a_checksum_mismatch_and_a_broken_one_a_schema_error() {
        let sealed = archived().seal(path()).unwrap();
        let mut edited = sealed.value.clone();
        edited["completedSteps"][0]["executionTime"] = serde_json::json!(11);
        let err = ArchivedInstance::unseal(edited, path()).unwrap_err();
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
        let mut broken = sealed.value;
        broken["instance"]["status"] = serde_json::json!("exploded");
        let err = ArchivedInstance::unseal(broken, path()).unwrap_err();
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
        assert!(err.to_string().contains("/instance"), "{err}");
    }

    #[test]
    fn names_that_could_escape_their_directory_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(validate_file_stem("id", bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["0b9c6f7e-3c1d-4a43-9a55-0d7f7c1a2b3c", "release_1.4.0", "a"] {
            validate_file_stem("id", good).unwrap();
        }
    }
}
