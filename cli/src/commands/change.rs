//! The commands that change the state: `start`, `step complete`, `step current`.
//!
//! Each holds the store's lock for its whole read-modify-write, and the write is a
//! compare-and-swap on the revision it read, so even a writer that lost its lock
//! cannot overwrite a newer state.

use std::io::Write;

use checklist_backends::OpenedStore;
use checklist_core::lock::Operation;
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};
use checklist_core::{ChecklistState, Committed, Expectation, LockRequest, Result, StateStoreExt};
use serde_json::json;

use super::Context;
use crate::args::{CompleteArgs, ResultArg, StartArgs};
use crate::output::Outcome;

/// Applies `apply` to the current state under the lock and writes the result.
async fn change<T>(
    opened: &OpenedStore,
    apply: impl FnOnce(&mut ChecklistState) -> Result<T>,
) -> Result<(T, Committed)> {
    let request = LockRequest::from_settings(Operation::Write, &opened.config.lock);
    let guard = opened.backend.locks.acquire(&request).await?;
    let mut state = opened.backend.store.read_existing().await?;
    let expect = Expectation::current(&state);
    let value = apply(&mut state)?;
    guard.ensure_held()?;
    let committed = opened.backend.store.write(&state, expect).await?;
    guard.release()?;
    Ok((value, committed))
}

pub(crate) async fn start(ctx: &Context<'_>, args: StartArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err)?;
    let start = InstanceStart {
        template_id: args.template,
        template_version: args.template_version,
        project_path: Some(
            ctx.root
                .canonicalize()
                .unwrap_or_else(|_| ctx.root.clone())
                .display()
                .to_string(),
        ),
        first_step_id: args.step,
    };
    let (instance, committed) = change(&opened, |state| state.start_instance(start, now()).cloned()).await?;
    Ok(Outcome::report(
        format!(
            "Started instance {} of template {} (revision {}).",
            instance.id, instance.template_id, committed.revision
        ),
        json!({"ok": true, "instance": instance, "revision": committed.revision, "checksum": committed.checksum}),
    ))
}

pub(crate) async fn complete(ctx: &Context<'_>, args: CompleteArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err)?;
    let command_results = args
        .command
        .map(|command| CommandResult {
            command,
            exit_code: args.exit_code.unwrap_or(0),
            stdout: args.stdout.unwrap_or_default(),
            stderr: args.stderr.unwrap_or_default(),
            duration: args.duration_ms,
            extra: Default::default(),
        })
        .into_iter()
        .collect();
    let completion = StepCompletion {
        step_id: args.step_id,
        result: match args.result {
            ResultArg::Success => StepResult::Success,
            ResultArg::Failure => StepResult::Failure,
            ResultArg::Skipped => StepResult::Skipped,
        },
        execution_time_ms: args.duration_ms,
        command_results,
    };
    let (step, committed) = change(&opened, |state| state.complete_step(completion, now()).cloned()).await?;
    Ok(Outcome::report(
        format!(
            "Completed step {} ({}) at revision {}.",
            step.step_id,
            step.result.as_str(),
            committed.revision
        ),
        json!({"ok": true, "step": step, "revision": committed.revision, "checksum": committed.checksum}),
    ))
}

pub(crate) async fn current(ctx: &Context<'_>, step_id: &str, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err)?;
    let (instance, committed) =
        change(&opened, |state| state.set_current_step(step_id, now()).cloned()).await?;
    Ok(Outcome::report(
        format!(
            "The current step is now {step_id} (revision {}).",
            committed.revision
        ),
        json!({
            "ok": true,
            "instanceId": instance.id,
            "currentStepId": step_id,
            "revision": committed.revision,
            "checksum": committed.checksum,
        }),
    ))
}
