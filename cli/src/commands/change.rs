//! The commands that change the state: `start`, `step complete`, `step current`.
//!
//! Each is one transaction of the [`TransactionCoordinator`]: it holds the store's lock
//! for its whole read-modify-write, and the write is a compare-and-swap on the
//! revision it read, so even a writer that lost its lock cannot overwrite a newer
//! state.

use std::io::Write;

use std::sync::Arc;

use checklist_backends::OpenedStore;
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator, TxOutcome};
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};
use checklist_core::{ChecklistState, LockProvider, Result, RollingBackups, StateStore};
use serde_json::json;

use super::Context;
use crate::args::{CompleteArgs, ResultArg, StartArgs};
use crate::output::Outcome;

/// The transaction coordinator of the opened store, set up by its config.
pub(crate) type Coordinator =
    TransactionCoordinator<Arc<dyn StateStore>, Arc<dyn LockProvider>, RollingBackups>;

/// The coordinator for the opened store, as its config sets it up.
pub(crate) fn coordinator(opened: &OpenedStore) -> Coordinator {
    TransactionCoordinator::with_options(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
        CoordinatorOptions::from_config(&opened.config),
    )
}

/// Runs `apply` as one transaction of the opened store: lock, read, change, secret
/// scan, backup, compare-and-swap write, audit.
async fn change<T: Send>(
    opened: &OpenedStore,
    operation: &str,
    apply: impl FnMut(&mut ChecklistState) -> Result<T> + Send,
    err: &mut dyn Write,
) -> Result<TxOutcome<T>> {
    // A corrupt state is recovered (when config.yaml allows it) before the
    // transaction, which would otherwise refuse to build on it.
    super::recover::load(opened, err).await?;
    coordinator(opened).transact(operation, apply).await
}

/// The JSON fields every change reports.
pub(crate) fn committed_json<T>(outcome: &TxOutcome<T>) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("ok".into(), json!(true));
    fields.insert("txId".into(), json!(outcome.transaction.id));
    fields.insert("revision".into(), json!(outcome.revision));
    fields.insert("checksum".into(), json!(outcome.checksum));
    fields.insert("operations".into(), json!(outcome.transaction.operations));
    fields
}

pub(crate) async fn start(ctx: &Context<'_>, args: StartArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
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
    let operation = format!("start --template {}", start.template_id);
    let outcome = change(
        &opened,
        &operation,
        |state| state.start_instance(start.clone(), now()).cloned(),
        err,
    )
    .await?;
    let instance = &outcome.value;
    let mut fields = committed_json(&outcome);
    fields.insert("instance".into(), json!(instance));
    Ok(Outcome::report(
        format!(
            "Started instance {} of template {} (revision {}).",
            instance.id, instance.template_id, outcome.revision
        ),
        fields.into(),
    ))
}

pub(crate) async fn complete(ctx: &Context<'_>, args: CompleteArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
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
    let operation = format!("step complete {}", completion.step_id);
    let outcome = change(
        &opened,
        &operation,
        |state| state.complete_step(completion.clone(), now()).cloned(),
        err,
    )
    .await?;
    let step = &outcome.value;
    let mut fields = committed_json(&outcome);
    fields.insert("step".into(), json!(step));
    Ok(Outcome::report(
        format!(
            "Completed step {} ({}) at revision {}.",
            step.step_id,
            step.result.as_str(),
            outcome.revision
        ),
        fields.into(),
    ))
}

pub(crate) async fn current(ctx: &Context<'_>, step_id: &str, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let operation = format!("step current {step_id}");
    let outcome = change(
        &opened,
        &operation,
        |state| state.set_current_step(step_id, now()).cloned(),
        err,
    )
    .await?;
    let mut fields = committed_json(&outcome);
    fields.insert("instanceId".into(), json!(outcome.value.id));
    fields.insert("currentStepId".into(), json!(step_id));
    Ok(Outcome::report(
        format!(
            "The current step is now {step_id} (revision {}).",
            outcome.revision
        ),
        fields.into(),
    ))
}
