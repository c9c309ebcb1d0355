//! `checklist backend migrate --to TYPE [--from TYPE] [--dry-run]`: moves the store to
//! another backend (docs/backends.md, "Moving a store to another backend";
//! docs/decisions/0030-moving-a-store.md).

use checklist_backends::state_home::default_state_home;
use checklist_backends::{MoveOptions, MoveReport, move_project_store};
use checklist_core::relocation::{DocumentMove, PlaneMove, RelocationStep};
use checklist_core::{Error, Result};
use serde_json::json;

use super::Context;
use super::server::ServerOptions;
use crate::args::BackendMigrateArgs;
use crate::output::Outcome;
use crate::progress::Progress;

pub(crate) async fn migrate(ctx: &Context<'_>, args: BackendMigrateArgs) -> Result<Outcome> {
    let server = ServerOptions::for_init(Some(&args.to), &args.server)?;
    if !ctx.registry.contains(&args.to) {
        return Err(Error::UnknownBackend {
            name: args.to.clone(),
            origin: checklist_core::BackendOrigin::Requested("the --to option".to_owned()),
            registered: ctx.registry.names(),
        });
    }
    let options = MoveOptions {
        to: args.to.clone(),
        to_options: server.backend_options.clone(),
        connection_options: server.connection_options.clone(),
        from: args.from.clone(),
        dry_run: args.dry_run,
        lock_note: ctx.lock_note.clone(),
        lock_timeout_ms: ctx.lock_timeout_ms,
        state_home: default_state_home(),
    };
    // Its length is known once the move is planned, under the locks.
    let progress = Progress::counting(ctx.progress, 0, "moving the store");
    let moved = move_project_store(
        &ctx.root,
        ctx.registry,
        &options,
        &|step: &RelocationStep| match step {
            RelocationStep::Planned(steps) => progress.set_total(*steps as u64),
            _ => progress.advance(),
        },
    )
    .await?;
    drop(progress);
    Ok(outcome(&moved, server.password_note()))
}

fn outcome(report: &MoveReport, password_note: Option<&str>) -> Outcome {
    let plan = &report.plan;
    let (from, to) = (&plan.from, &plan.to);
    let mut lines = vec![match (report.dry_run, plan.document) {
        (true, DocumentMove::Moved) => format!(
            "The {} store at {} was moved to {} already; only {} is left to switch to it.",
            from.0, from.1, to.1, report.config
        ),
        (true, _) => format!(
            "Would move the {} store at {} to the {} backend at {}, at revision {}:",
            from.0, from.1, to.0, to.1, plan.revision
        ),
        (false, _) => format!(
            "Moved the {} store at {} to the {} backend at {}, at revision {} ({}); {} names the new store, \
             and the old one is kept as it was, marked as moved.",
            from.0, from.1, to.0, to.1, plan.revision, plan.checksum, report.config
        ),
    }];
    if plan.document != DocumentMove::Moved {
        for (name, plane) in [
            ("audit records", &plan.audit),
            ("backups", &plan.backups),
            ("archived instances", &plan.archive),
            ("quarantined documents", &plan.quarantine),
        ] {
            lines.push(format!("  {name}: {}", describe(plane, report.dry_run)));
        }
    }
    if let Some(note) = password_note {
        lines.push(note.to_owned());
    }
    Outcome::report(
        lines.join("\n"),
        json!({"ok": true, "dryRun": report.dry_run, "config": report.config, "plan": plan}),
    )
}

fn describe(plane: &PlaneMove, dry_run: bool) -> String {
    if plane.shared {
        return "shared by both stores, nothing to copy".to_owned();
    }
    let verb = if dry_run { "to copy" } else { "copied" };
    let mut text = format!("{} {verb}", plane.to_copy.len());
    if plane.already_there > 0 {
        text.push_str(&format!(", {} there already", plane.already_there));
    }
    for left in &plane.left_behind {
        text.push_str(&format!("; left in the old store only: {left}"));
    }
    text
}
