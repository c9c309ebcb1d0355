//! Helpers shared by the cases.

use checklist_core::ChecklistState;
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};
use serde_json::json;

use crate::Failure;

/// A marker the corruption cases look for in the stored bytes; it appears verbatim
/// in every text format.
pub(crate) const MARKER: &str = "conformance-marker-AAAA";

/// Fails the case with a formatted message unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// Turns a store error into a failure that says what the case was doing.
pub(crate) fn step<T>(doing: &str, result: checklist_core::Result<T>) -> Result<T, Failure> {
    result.map_err(|e| Failure(format!("{doing} failed: {e}")))
}

/// A document with an active instance, `steps` completed steps, and unknown fields at
/// the top level and inside a step.
pub(crate) fn sample_state(steps: usize) -> ChecklistState {
    let mut state = ChecklistState::new();
    state
        .start_instance(
            InstanceStart {
                template_id: MARKER.to_owned(),
                template_version: Some("1.0.0".into()),
                project_path: Some("/conformance/project".into()),
                first_step_id: Some("step-0".into()),
            },
            now(),
        )
        .expect("a fresh state accepts an instance");
    for i in 0..steps {
        add_step(&mut state, &format!("step-{i}"));
    }
    state
        .extra
        .insert("x-conformance".into(), json!({"nested": [1, "two", null, true]}));
    if let Some(first) = state.completed_steps.first_mut() {
        first.extra.insert("x-note".into(), json!("kept"));
    }
    state
}

/// Adds one successful step.
pub(crate) fn add_step(state: &mut ChecklistState, id: &str) {
    state
        .complete_step(
            StepCompletion {
                step_id: id.to_owned(),
                result: StepResult::Success,
                execution_time_ms: 7,
                command_results: vec![CommandResult {
                    command: format!("run {id}"),
                    exit_code: 0,
                    stdout: "first line\nsecond line: yes\n".into(),
                    stderr: String::new(),
                    duration: 6,
                    extra: Default::default(),
                }],
            },
            now(),
        )
        .expect("an active instance accepts a new step");
}
