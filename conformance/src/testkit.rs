//! Fixtures for the tests and benchmarks of any backend: a realistic document of any
//! size, built through the model's own transitions.

use checklist_core::ChecklistState;
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};

/// One successful step with one command and a few lines of output, as a build step
/// records it.
pub fn completion(step_id: impl Into<String>) -> StepCompletion {
    let step_id = step_id.into();
    StepCompletion {
        command_results: vec![CommandResult {
            command: format!("make {step_id}"),
            exit_code: 0,
            stdout: format!(
                "Compiling {step_id} v0.1.0 (/work/project)\nline two: with colon\n\
                 Finished `release` profile in 2.3s\n"
            ),
            stderr: String::new(),
            duration: 40,
            extra: Default::default(),
        }],
        step_id,
        result: StepResult::Success,
        execution_time_ms: 42,
    }
}

/// Adds one [`completion`] named `id` to the active instance.
///
/// # Panics
/// When `state` has no active instance or already holds a successful `id`.
pub fn add_step(state: &mut ChecklistState, id: &str) {
    state
        .complete_step(completion(id), now())
        .expect("an active instance accepts a new step");
}

/// A document with an active instance of template `release` and `steps` completed
/// steps, `step-0` … `step-{steps - 1}`.
pub fn state_with_steps(steps: usize) -> ChecklistState {
    let mut state = ChecklistState::new();
    state
        .start_instance(
            InstanceStart {
                template_id: "release".into(),
                template_version: Some("1.2.0".into()),
                project_path: Some("/work/project".into()),
                first_step_id: Some("step-0".into()),
            },
            now(),
        )
        .expect("a fresh state accepts an instance");
    for i in 0..steps {
        add_step(&mut state, &format!("step-{i}"));
    }
    state
}
