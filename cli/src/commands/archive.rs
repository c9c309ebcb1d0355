//! `checklist archive`: the finished instance leaves the state for `archive/`, indexed
//! in `history.yaml`, in one transaction.
//!
//! The archived document is stored before the state is committed without the
//! instance, so a crash in between leaves the instance in both places (archiving again
//! replaces the archive), never in neither.

use std::io::Write;
use std::sync::Arc;

use checklist_backends::{Codec, YamlCodec};
use checklist_core::archive::HistoryEntry;
use checklist_core::model::{InstanceStatus, now};
use checklist_core::{Error, Result, StateStore};
use serde_json::json;

use super::Context;
use super::change::{committed_json, coordinator};
use crate::args::{ArchiveArgs, FinishArg};
use crate::output::{Outcome, count};

pub(crate) async fn run(ctx: &Context<'_>, args: ArchiveArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    if args.list {
        return list(opened.backend.store.history().await?);
    }
    if let Some(id) = &args.show {
        return show(&opened.backend.store, id).await;
    }
    let finish_as = args.finish_as.map(|finish| match finish {
        FinishArg::Completed => InstanceStatus::Completed,
        FinishArg::Failed => InstanceStatus::Failed,
    });
    // A corrupt state is recovered (when config.yaml allows it) before the transaction.
    super::recover::load(&opened, err).await?;
    let store: Arc<dyn StateStore> = Arc::clone(&opened.backend.store);
    let outcome = coordinator(&opened)
        .transact_async("archive", |mut state| {
            let store = Arc::clone(&store);
            async move {
                let unfinished = finish_as.is_none()
                    && state
                        .active_instance
                        .as_ref()
                        .is_some_and(|instance| !instance.status.is_finished());
                let archived = state.archive_instance(finish_as, now()).map_err(|error| {
                    if unfinished {
                        Error::invalid(format!(
                            "{error}: `checklist archive --as completed` or `--as failed`"
                        ))
                    } else {
                        error
                    }
                })?;
                let entry = store.archive(&archived).await?;
                Ok((state, entry))
            }
        })
        .await?;
    let entry = &outcome.value;
    let mut fields = committed_json(&outcome);
    fields.insert("archived".into(), json!(entry));
    Ok(Outcome::report(
        format!(
            "Archived instance {} of template {} ({}, {}) as {}; the state is at revision {} with no instance \
             (`checklist archive --show {}` shows it).",
            entry.instance_id,
            entry.template_id,
            entry.status.as_str(),
            count(entry.steps, "step"),
            entry.location,
            outcome.revision,
            entry.instance_id
        ),
        fields.into(),
    ))
}

/// The archived instance `id`, verified, as YAML (or JSON with `--json`).
async fn show(store: &Arc<dyn StateStore>, id: &str) -> Result<Outcome> {
    let archived = store.read_archived(id).await?;
    let value = serde_json::to_value(&archived).map_err(|e| Error::invalid(e.to_string()))?;
    let yaml = YamlCodec
        .encode(&value)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(Outcome::report(
        String::from_utf8_lossy(&yaml).trim_end().to_owned(),
        json!({"ok": true, "archived": value}),
    ))
}

fn list(history: Vec<HistoryEntry>) -> Result<Outcome> {
    let human = if history.is_empty() {
        "No archived instances.".to_owned()
    } else {
        history
            .iter()
            .map(|e| {
                format!(
                    "{}  {}  {:<9}  {:>4} steps  archived {}  {}",
                    e.instance_id,
                    e.template_id,
                    e.status.as_str(),
                    e.steps,
                    e.archived_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    e.location
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::report(human, json!({"ok": true, "instances": history})))
}
