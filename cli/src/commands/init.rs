//! `checklist init`.

use std::io::Write;

use checklist_backends::{InitOptions, InitOutcome, init_project};
use checklist_core::Result;
use serde_json::json;

use super::{Context, warn_if_ephemeral};
use crate::args::InitArgs;
use crate::output::Outcome;

pub(crate) async fn run(ctx: &Context<'_>, args: InitArgs, err: &mut dyn Write) -> Result<Outcome> {
    let report = init_project(
        &ctx.root,
        &InitOptions {
            backend: args.backend.clone(),
            durability: None,
            repair: args.force,
        },
        ctx.registry,
    )
    .await?;
    warn_if_ephemeral(&report.backend, ctx.quiet, err);
    let dir = report.dir.display();
    let revision = report
        .revision
        .map_or_else(|| "unreadable state".to_owned(), |r| format!("revision {r}"));
    let mut human = match report.outcome {
        InitOutcome::Created => format!(
            "Initialized a checklist store at {dir} (backend {}, {revision}).",
            report.backend
        ),
        InitOutcome::Repaired => format!(
            "Repaired the checklist store at {dir}: created {} missing item(s) (backend {}, {revision}).",
            report.created.len(),
            report.backend
        ),
        InitOutcome::AlreadyInitialized => format!(
            "A checklist store already exists at {dir} (backend {}, {revision}); kept it as it is.",
            report.backend
        ),
    };
    if let Some(asked) = args.backend.filter(|b| *b != report.backend) {
        human.push_str(&format!(
            " It uses the {} backend, not {asked}: change backend.type in config.yaml to switch.",
            report.backend
        ));
    }
    Ok(Outcome::report(human, json!({ "ok": true, "init": report })))
}
