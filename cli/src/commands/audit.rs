//! `checklist audit [--tail N]`.

use std::io::Write;

use checklist_core::{AuditRecord, LockNote, Result};
use chrono::SecondsFormat;
use serde_json::json;

use super::Context;
use crate::args::AuditArgs;
use crate::output::Outcome;

fn line(record: &AuditRecord) -> String {
    let mut text = format!(
        "{} {:<11} pid {} {}@{}",
        record.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
        record.event.as_str(),
        record.pid,
        record.user,
        record.host
    );
    if let Some(tx) = &record.tx_id {
        text.push_str(&format!(" tx {tx}"));
    }
    match (record.revision_before, record.revision_after) {
        (Some(before), Some(after)) if before == after => text.push_str(&format!(" kept revision {before}")),
        (Some(before), Some(after)) => text.push_str(&format!(" revision {before} -> {after}")),
        (Some(before), None) => text.push_str(&format!(" at revision {before}")),
        _ => {}
    }
    if !record.operations.is_empty() {
        text.push_str(&format!(": {}", record.operations.join("; ")));
    }
    if let Some(error) = &record.error {
        text.push_str(&format!(" — error: {error}"));
    }
    if let Some(note) = &record.lock_note {
        // This build writes notes as one line, but a trail is also read as another
        // tool or a hand edit left it: a note never adds lines of its own here.
        text.push_str(&format!(" (lock note: {})", LockNote::one_line(note)));
    }
    text
}

pub(crate) async fn run(ctx: &Context<'_>, args: AuditArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let log = opened.backend.store.read_audit().await?;
    let skip = args.tail.map_or(0, |n| log.records.len().saturating_sub(n));
    let records = &log.records[skip..];
    let mut lines: Vec<String> = records.iter().map(line).collect();
    for problem in &log.problems {
        lines.push(format!(
            "note: {} line {} is {}: {}",
            problem.file.display(),
            problem.line,
            if problem.torn {
                "a record torn by a crash mid-append (harmless)"
            } else {
                "not a record"
            },
            problem.detail
        ));
    }
    if lines.is_empty() {
        lines.push("The audit trail is empty.".to_owned());
    }
    Ok(Outcome::report(
        lines.join("\n"),
        json!({"ok": true, "records": records, "problems": log.problems}),
    ))
}
