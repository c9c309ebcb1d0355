//! `checklist diff [REV_A] [REV_B]`: what changed between two revisions still held,
//! for people, or as a JSON Patch (RFC 6902) with `--json`
//! (docs/decisions/0026-diff-and-revisions.md).

use std::io::Write;

use checklist_core::diff::{FieldChange, StateDiff, StepRef, json_patch, summarize};
use checklist_core::prelude::*;
use checklist_core::revision::{HeldRevisions, read_revision};
use checklist_core::{ChecklistState, Error, Result, document};
use serde_json::Value;

use super::Context;
use crate::args::DiffArgs;
use crate::output::Outcome;

/// Longest rendering of one value in the summary, in characters; `--json` has them
/// whole.
const MAX_VALUE_CHARS: usize = 80;

pub(crate) async fn run(ctx: &Context<'_>, args: DiffArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let (held, live) = HeldRevisions::of(store.as_ref()).await?;
    let from = match args.from {
        Some(revision) => revision,
        None => held.newest_backup().ok_or_else(|| {
            Error::invalid(format!(
                "{} holds no backup to compare the live state with; name two revisions, or take one with \
                 `checklist backup create`",
                store.info().location
            ))
        })?,
    };
    let to_state = match args.to {
        Some(revision) => read_revision(store.as_ref(), &held, live.as_ref(), revision).await?,
        None => match live {
            Some(ref state) => state.clone(),
            None => store.read_existing().await?,
        },
    };
    let from_state = read_revision(store.as_ref(), &held, live.as_ref(), from).await?;
    let path = store.info().location_path();
    let from_document = as_exported(&from_state, path)?;
    let to_document = as_exported(&to_state, path)?;
    let patch = json_patch(&from_document, &to_document);
    let human = render(&summarize(&from_document, &to_document), &store.info().location);
    let patch = serde_json::to_value(&patch)
        .map_err(|e| Error::invalid(format!("the patch could not be written as JSON: {e}")))?;
    Ok(Outcome::report(human, patch))
}

/// The document `checklist export --format json` prints for `state`: the patch turns
/// one such document into the other.
fn as_exported(state: &ChecklistState, path: &std::path::Path) -> Result<Value> {
    Ok(document::seal(state, state.revision, path)?.value)
}

fn render(diff: &StateDiff, location: &str) -> String {
    let revision = |r: Option<u64>| r.map_or_else(|| "?".to_owned(), |r| r.to_string());
    let mut lines = vec![format!(
        "Revision {} -> {} of {location} (checksum {} -> {}):",
        revision(diff.from_revision),
        revision(diff.to_revision),
        diff.from_checksum.as_deref().unwrap_or("none"),
        diff.to_checksum.as_deref().unwrap_or("none"),
    )];
    if diff.is_empty() {
        lines.push(if diff.from_checksum == diff.to_checksum {
            "  the same document.".to_owned()
        } else {
            "  nothing else differs.".to_owned()
        });
        return lines.join("\n");
    }
    match (&diff.from_instance, &diff.to_instance) {
        // A finished instance archived (or a restore to before it started): its fields
        // are all gone, and listing each says nothing more.
        (Some(id), None) => lines.push(format!("Instance {id} removed.")),
        _ if diff.instance.is_empty() => {}
        (None, Some(id)) => lines.push(format!("Instance {id} added:")),
        (Some(from), Some(to)) if from != to => lines.push(format!("Instance {from} replaced by {to}:")),
        (Some(id), Some(_)) => lines.push(format!("Instance {id}:")),
        (None, None) => lines.push("Instance:".to_owned()),
    }
    if diff.from_instance.is_none() || diff.to_instance.is_some() {
        lines.extend(diff.instance.iter().map(|change| format!("  {}", field(change))));
    }
    let steps = |title: &str, sign: char, steps: &[StepRef], lines: &mut Vec<String>| {
        if !steps.is_empty() {
            lines.push(format!("{title}:"));
            lines.extend(steps.iter().map(|step| {
                let result = step
                    .result
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                format!("  {sign} {}{result}", step_name(step))
            }));
        }
    };
    steps("Steps added", '+', &diff.steps_added, &mut lines);
    if !diff.steps_changed.is_empty() {
        lines.push("Steps changed:".to_owned());
        lines.extend(diff.steps_changed.iter().map(|change| {
            let fields: Vec<String> = change.fields.iter().map(field).collect();
            format!("  ~ {}: {}", step_name(&change.step), fields.join("; "))
        }));
    }
    steps("Steps removed", '-', &diff.steps_removed, &mut lines);
    if !diff.other.is_empty() {
        lines.push("Other fields:".to_owned());
        lines.extend(diff.other.iter().map(|change| format!("  {}", field(change))));
    }
    lines.join("\n")
}

/// "build", or "build #2" for the second step with that id.
fn step_name(step: &StepRef) -> String {
    match step.occurrence {
        1 => step.step_id.clone(),
        n => format!("{} #{n}", step.step_id),
    }
}

/// "status: \"active\" -> \"completed\"".
fn field(change: &FieldChange) -> String {
    format!(
        "{}: {} -> {}",
        change.field,
        value(change.from.as_ref()),
        value(change.to.as_ref())
    )
}

fn value(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_owned();
    };
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        text
    } else {
        let kept: String = text.chars().take(MAX_VALUE_CHARS - 3).collect();
        format!("{kept}...")
    }
}
