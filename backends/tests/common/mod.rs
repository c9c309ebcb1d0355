//! Helpers shared by the backends' integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use checklist_core::ChecklistState;
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};

/// A state with an active instance and `steps` completed steps.
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
        .unwrap();
    for i in 0..steps {
        add_step(&mut state, &format!("step-{i}"));
    }
    state
}

/// Adds one successful step with a command result.
pub fn add_step(state: &mut ChecklistState, id: &str) {
    state
        .complete_step(
            StepCompletion {
                step_id: id.to_owned(),
                result: StepResult::Success,
                execution_time_ms: 42,
                command_results: vec![CommandResult {
                    command: format!("make {id}"),
                    exit_code: 0,
                    stdout: "line one\nline two: with colon\n".into(),
                    stderr: String::new(),
                    duration: 40,
                    extra: Default::default(),
                }],
            },
            now(),
        )
        .unwrap();
}

/// Names of the files in `dir` that look like temp files.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}
