//! The state document: what `.checklist/state.yaml` holds.
//!
//! Every struct keeps the fields it does not know in `extra`, so a document written by
//! a newer tool (or edited by hand) loses nothing when this build loads and saves it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CorruptionKind, Error, Result};
use crate::store::expectation::Expectation;

/// The schema version this build writes.
pub const CURRENT_SCHEMA_VERSION: &str = "1.0.0";

/// The major schema version this build reads and writes.
pub const SUPPORTED_MAJOR: u64 = 1;

/// The current time, truncated to whole milliseconds: the precision timestamps are
/// written with.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// Longest accepted step, template or instance identifier, in bytes.
pub const MAX_ID_LEN: usize = 200;

/// The whole state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChecklistState {
    /// Version of the document format (`1.0.0`).
    pub schema_version: String,
    /// Monotonic revision, +1 per committed write; the compare-and-swap key. A store
    /// sets it on write; the value a caller puts here is ignored.
    pub revision: u64,
    /// `sha256:<hex>` over the canonical JSON of the document without this field. A
    /// store sets it on write and checks it on read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The workflow instance in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_instance: Option<ActiveInstance>,
    /// Steps completed in the active instance, oldest first.
    #[serde(default, deserialize_with = "exact_vec")]
    pub completed_steps: Vec<CompletedStep>,
    /// What the last corruption recovery did, if one happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryRecord>,
    /// The last detected write conflict and how it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<ConflictRecord>,
    /// Where this state was moved to, in a store it was moved out of
    /// ([`relocation`](crate::relocation)): such a store is kept as it was and refuses
    /// every write but one that names its exact bytes
    /// ([`Precondition::Bytes`](crate::store::Precondition::Bytes)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<crate::relocation::moved::MovedTo>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The workflow instance in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveInstance {
    /// Unique id of this run of the template.
    pub id: String,
    /// The template being run.
    pub template_id: String,
    /// The template's version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    /// The project directory the instance runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_path: Option<String>,
    /// Where the instance is in its life cycle.
    pub status: InstanceStatus,
    /// The step the user is on, if one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_id: Option<String>,
    /// When the instance was started.
    pub started_at: DateTime<Utc>,
    /// When the instance last changed.
    pub last_modified_at: DateTime<Utc>,
    /// When the instance completed, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Life-cycle status of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    /// Being worked on.
    Active,
    /// Put aside; can be resumed.
    Paused,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully.
    Failed,
}

impl InstanceStatus {
    /// Whether the instance is over (`completed` or `failed`).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    /// The name used in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// One completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedStep {
    /// The step's id within its template.
    pub step_id: String,
    /// When it was completed.
    pub completed_at: DateTime<Utc>,
    /// How long it took, in whole milliseconds.
    pub execution_time: u64,
    /// How it ended.
    pub result: StepResult,
    /// Commands the step ran, in order.
    #[serde(default, deserialize_with = "exact_vec")]
    pub command_results: Vec<CommandResult>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A sequence read without spare capacity. A decoder that cannot tell a sequence's
/// length grows its vector by doubling from four, so a step's one command result took
/// four results' room: a state of thousands of steps held several times the memory
/// its file needs, in every process that reads it.
fn exact_vec<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut items = Vec::<T>::deserialize(deserializer)?;
    items.shrink_to_fit();
    Ok(items)
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    /// The step succeeded.
    Success,
    /// The step failed; it may be completed again later.
    Failure,
    /// The step was skipped.
    Skipped,
}

impl StepResult {
    /// The name used in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
        }
    }
}

/// The outcome of one command a step ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// The command line.
    pub command: String,
    /// Its exit code.
    pub exit_code: i32,
    /// What it printed on stdout.
    #[serde(default)]
    pub stdout: String,
    /// What it printed on stderr.
    #[serde(default)]
    pub stderr: String,
    /// How long it ran, in whole milliseconds.
    pub duration: u64,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the last corruption recovery did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryRecord {
    /// When the corruption was found.
    pub last_corruption: DateTime<Utc>,
    /// What kind of corruption it was.
    pub corruption_type: CorruptionKind,
    /// How the state was recovered.
    pub recovery_method: RecoveryMethod,
    /// Whether any committed revision was lost.
    pub data_loss: bool,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a corrupted state was recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryMethod {
    /// Restored from a backup.
    Backup,
    /// Reset to an empty state.
    Reset,
    /// Repaired by hand.
    Manual,
}

/// The last detected write conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictRecord {
    /// When the conflict was detected.
    pub detected: DateTime<Utc>,
    /// How it was resolved.
    pub resolution: ConflictResolution,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a write conflict was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictResolution {
    /// The local change won.
    Local,
    /// The stored (remote) change won.
    Remote,
    /// The two were merged.
    Merge,
}

/// A request to record a completed step; see [`ChecklistState::complete_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepCompletion {
    /// The step's id.
    pub step_id: String,
    /// How it ended.
    pub result: StepResult,
    /// How long it took, in milliseconds.
    pub execution_time_ms: u64,
    /// Commands it ran.
    pub command_results: Vec<CommandResult>,
}

/// A request to start an instance; see [`ChecklistState::start_instance`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStart {
    /// The template to run.
    pub template_id: String,
    /// Its version, if known.
    pub template_version: Option<String>,
    /// The project directory.
    pub project_path: Option<String>,
    /// The step to begin with, if known.
    pub first_step_id: Option<String>,
}

impl Default for ChecklistState {
    fn default() -> Self {
        Self::new()
    }
}

impl ChecklistState {
    /// An empty document of the current schema version: no instance, no steps.
    pub fn new() -> Self {
        Self {
            schema_version: CURRENT_SCHEMA_VERSION.to_owned(),
            revision: 0,
            checksum: None,
            active_instance: None,
            completed_steps: Vec::new(),
            recovery: None,
            conflicts: None,
            moved_to: None,
            extra: Map::new(),
        }
    }

    /// Refuses a state that was moved to another store ([`moved_to`](Self::moved_to)),
    /// naming `location` (its store) and where it went: how a write stops before it
    /// touches anything of a moved store.
    ///
    /// # Errors
    /// [`Error::StoreMoved`].
    pub fn ensure_not_moved(&self, location: &std::path::Path) -> crate::Result<()> {
        match &self.moved_to {
            Some(moved_to) => Err(crate::Error::StoreMoved {
                path: location.to_owned(),
                moved_to: Box::new(moved_to.clone()),
            }),
            None => Ok(()),
        }
    }

    /// Starts a new instance of a template.
    ///
    /// Refused while another instance is still in the document (whatever its status),
    /// so completed steps are never silently discarded.
    pub fn start_instance(&mut self, start: InstanceStart, now: DateTime<Utc>) -> Result<&ActiveInstance> {
        validate_id("template id", &start.template_id)?;
        if let Some(step) = &start.first_step_id {
            validate_id("step id", step)?;
        }
        if let Some(existing) = &self.active_instance {
            return Err(Error::invalid(format!(
                "instance {} of template {} is still in the state ({}); it must be archived before another starts",
                existing.id,
                existing.template_id,
                existing.status.as_str()
            )));
        }
        self.completed_steps.clear();
        Ok(self.active_instance.insert(ActiveInstance {
            id: uuid::Uuid::new_v4().to_string(),
            template_id: start.template_id,
            template_version: start.template_version,
            project_path: start.project_path,
            status: InstanceStatus::Active,
            current_step_id: start.first_step_id,
            started_at: now,
            last_modified_at: now,
            completed_at: None,
            extra: Map::new(),
        }))
    }

    /// Records a completed step in the active instance.
    ///
    /// Refused without an active instance, and for a step already recorded as
    /// `success` or `skipped` (a step that failed may be completed again).
    pub fn complete_step(
        &mut self,
        completion: StepCompletion,
        now: DateTime<Utc>,
    ) -> Result<&CompletedStep> {
        validate_id("step id", &completion.step_id)?;
        self.active_instance_mut()?;
        if let Some(done) = self
            .completed_steps
            .iter()
            .find(|s| s.step_id == completion.step_id && s.result != StepResult::Failure)
        {
            return Err(Error::invalid(format!(
                "step {} was already completed ({}) at {}",
                done.step_id,
                done.result.as_str(),
                done.completed_at.to_rfc3339()
            )));
        }
        self.active_instance_mut()?.last_modified_at = now;
        self.completed_steps.push(CompletedStep {
            step_id: completion.step_id,
            completed_at: now,
            execution_time: completion.execution_time_ms,
            result: completion.result,
            command_results: completion.command_results,
            extra: Map::new(),
        });
        Ok(self.completed_steps.last().expect("a step was just pushed"))
    }

    /// Sets the step the active instance is on.
    pub fn set_current_step(&mut self, step_id: &str, now: DateTime<Utc>) -> Result<&ActiveInstance> {
        validate_id("step id", step_id)?;
        let instance = self.active_instance_mut()?;
        instance.current_step_id = Some(step_id.to_owned());
        instance.last_modified_at = now;
        Ok(instance)
    }

    fn active_instance_mut(&mut self) -> Result<&mut ActiveInstance> {
        match &mut self.active_instance {
            Some(instance) => {
                if instance.status != InstanceStatus::Active {
                    return Err(Error::invalid(format!(
                        "instance {} is {}, not active; steps can only change in an active instance",
                        instance.id,
                        instance.status.as_str()
                    )));
                }
                Ok(instance)
            }
            None => Err(Error::invalid("there is no active instance: start one first")),
        }
    }
}

/// Checks that an identifier is non-empty, at most [`MAX_ID_LEN`] bytes and free of
/// control characters.
pub fn validate_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(format!("the {what} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "the {what} is {} bytes long; at most {MAX_ID_LEN} are allowed",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "the {what} {id:?} contains control characters"
        )));
    }
    Ok(())
}

impl Expectation {
    /// The expectation that replaces `state` as it was read: its revision.
    pub fn current(state: &ChecklistState) -> Self {
        Self::Revision(state.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(state: &mut ChecklistState) {
        state
            .start_instance(
                InstanceStart {
                    template_id: "t".into(),
                    template_version: None,
                    project_path: None,
                    first_step_id: Some("s1".into()),
                },
                Utc::now(),
            )
            .unwrap();
    }

    fn completion(step: &str, result: StepResult) -> StepCompletion {
        StepCompletion {
            step_id: step.into(),
            result,
            execution_time_ms: 5,
            command_results: vec![],
        }
    }

    #[test]
    fn steps_need_an_active_instance() {
        let mut state = ChecklistState::new();
        let err = state
            .complete_step(completion("s1", StepResult::Success), Utc::now())
            .unwrap_err();
        assert!(err.to_string().contains("no active instance"), "{err}");
        start(&mut state);
        state
            .complete_step(completion("s1", StepResult::Success), Utc::now())
            .unwrap();
        assert_eq!(state.completed_steps.len(), 1);
    }

    #[test]
    fn a_successful_step_is_not_recorded_twice_but_a_failed_one_can_be_retried() {
        let mut state = ChecklistState::new();
        start(&mut state);
        state
            .complete_step(completion("a", StepResult::Failure), Utc::now())
            .unwrap();
        state
            .complete_step(completion("a", StepResult::Success), Utc::now())
            .unwrap();
        let err = state
            .complete_step(completion("a", StepResult::Success), Utc::now())
            .unwrap_err();
        assert!(err.to_string().contains("already completed"), "{err}");
        assert_eq!(state.completed_steps.len(), 2);
    }

    #[test]
    fn a_second_instance_does_not_replace_the_first() {
        let mut state = ChecklistState::new();
        start(&mut state);
        let first = state.active_instance.clone();
        let err = state
            .start_instance(
                InstanceStart {
                    template_id: "u".into(),
                    template_version: None,
                    project_path: None,
                    first_step_id: None,
                },
                Utc::now(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("archived"), "{err}");
        assert_eq!(state.active_instance, first);
    }

    #[test]
    fn identifiers_are_validated() {
        assert!(validate_id("step id", "").is_err());
        assert!(validate_id("step id", "a\nb").is_err());
        assert!(validate_id("step id", &"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(validate_id("step id", "build-and-test_2").is_ok());
    }
}
