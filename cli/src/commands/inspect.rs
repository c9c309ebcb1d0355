//! The read-only commands: `status` and `verify`.

use std::io::Write;

use checklist_core::model::StepResult;
use checklist_core::prelude::*;
use checklist_core::{Result, StateStoreExt};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::Context;
use crate::output::Outcome;

pub(crate) async fn status(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let state = super::recover::load(&opened, err).await?;
    let lock = opened.backend.locks.inspect().await?;

    let count = |r: StepResult| state.completed_steps.iter().filter(|s| s.result == r).count();
    let mut lines = vec![format!(
        "Store:     {} (backend {})",
        store.info().location_path().display(),
        store.info().backend.as_str()
    )];
    if opened.fallback {
        lines.push(format!(
            "           in the per-user state directory, since {} has no .checklist/",
            ctx.root.display()
        ));
    }
    lines.extend([format!(
        "Revision:  {} (integrity ok, {})",
        state.revision,
        state.checksum.as_deref().unwrap_or("no checksum")
    )]);
    if let Some(moved) = &state.moved_to {
        lines.push(format!(
            "Moved:     to the {} backend at {} at revision {} ({}); this copy takes no more writes",
            moved.backend,
            moved.location,
            moved.revision,
            time(&moved.at)
        ));
    }
    match &state.active_instance {
        Some(i) => {
            lines.push(format!(
                "Instance:  {} of template {}{} — {} since {}",
                i.id,
                i.template_id,
                i.template_version
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default(),
                i.status.as_str(),
                time(&i.started_at)
            ));
            lines.push(format!(
                "Current:   {}",
                i.current_step_id.as_deref().unwrap_or("(no current step)")
            ));
        }
        None => lines.push("Instance:  none (start one with `checklist start --template ID`)".to_owned()),
    }
    lines.push(format!(
        "Steps:     {} completed ({} success, {} failure, {} skipped)",
        state.completed_steps.len(),
        count(StepResult::Success),
        count(StepResult::Failure),
        count(StepResult::Skipped)
    ));
    // Only the form that is printed lists the steps: at 10,000 steps each form costs
    // tens of milliseconds (docs/benchmarks.md, "Cold commands").
    if !ctx.as_json {
        for s in &state.completed_steps {
            lines.push(format!(
                "  - {} {} at {} ({} ms)",
                s.step_id,
                s.result.as_str(),
                time(&s.completed_at),
                s.execution_time
            ));
        }
    }
    lines.push(match &lock.holder {
        Some(h) => format!(
            "Lock:      held by pid {} on {} as {} since {} (lock id {}{}), {} waiting",
            h.pid,
            h.hostname,
            h.user,
            time(&h.acquired_at),
            h.lock_id,
            super::lock::note_clause(h),
            lock.waiters.len()
        ),
        None => match &lock.unreadable {
            Some(unreadable) => format!(
                "Lock:      held by {}, {} waiting",
                super::lock::describe_unreadable(unreadable, opened.config.lock.expiry_ms),
                lock.waiters.len()
            ),
            None => "Lock:      free".to_owned(),
        },
    });

    let json = json!({
        "ok": true,
        "store": {
            "backend": store.info().backend.as_str(),
            "location": store.info().location_path(),
            "dir": opened.layout.dir(),
            "fallback": opened.fallback,
        },
        "revision": state.revision,
        "checksum": state.checksum,
        "integrity": "ok",
        "movedTo": state.moved_to,
        "activeInstance": state.active_instance,
        "completedSteps": if ctx.as_json { json!(state.completed_steps) } else { json!([]) },
        "lock": lock,
    });
    Ok(Outcome::report(lines.join("\n"), json))
}

pub(crate) async fn verify(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let state = store.read_existing_shared().await?;
    let checksum = state.checksum.clone().unwrap_or_default();
    Ok(Outcome::report(
        format!(
            "OK: {} verifies (revision {}, {checksum}).",
            store.info().location_path().display(),
            state.revision
        ),
        json!({
            "ok": true,
            "path": store.info().location_path(),
            "revision": state.revision,
            "checksum": checksum,
        }),
    ))
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
