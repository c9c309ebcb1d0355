//! `checklist init`.

use std::io::Write;

use std::io::Read;
use std::path::Path;

use checklist_backends::state_home::default_state_home;
use checklist_backends::{Codec, InitOptions, InitOutcome, JsonCodec, YamlCodec, init_project};
use checklist_core::{ChecklistState, CorruptionKind, Error, Result, document};
use serde_json::json;

use super::{Context, warn_if_ephemeral};
use crate::args::InitArgs;
use crate::output::{Outcome, count};

/// Largest export `init --from` reads (the state files' default read limit).
const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) async fn run(ctx: &Context<'_>, args: InitArgs, err: &mut dyn Write) -> Result<Outcome> {
    let imported = args.from.as_deref().map(read_export).transpose()?;
    let report = init_project(
        &ctx.root,
        &InitOptions {
            backend: args.backend.clone(),
            durability: None,
            repair: args.force,
            initial_state: imported.clone(),
            state_home: default_state_home(),
        },
        ctx.registry,
    )
    .await?;
    warn_if_ephemeral(&report.backend, ctx.quiet, err);
    if report.fallback {
        ctx.warn_fallback(&report.dir, err);
    }
    let dir = report.dir.display();
    let revision = report
        .revision
        .map_or_else(|| "unreadable state".to_owned(), |r| format!("revision {r}"));
    let mut human = match report.outcome {
        InitOutcome::Created => format!(
            "Initialized a checklist store at {dir} (backend {}, {revision}).",
            report.backend
        ),
        InitOutcome::Repaired => match &report.recovery {
            Some(recovery) if report.created.is_empty() => format!(
                "Repaired the checklist store at {dir} (backend {}): {}.",
                report.backend,
                recovery.summary()
            ),
            Some(recovery) => format!(
                "Repaired the checklist store at {dir} (backend {}): created {}; {}.",
                report.backend,
                count(report.created.len(), "missing item"),
                recovery.summary()
            ),
            None => format!(
                "Repaired the checklist store at {dir}: created {} (backend {}, {revision}).",
                count(report.created.len(), "missing item"),
                report.backend
            ),
        },
        InitOutcome::AlreadyInitialized => format!(
            "A checklist store already exists at {dir} (backend {}, {revision}); kept it as it is.",
            report.backend
        ),
    };
    if let (Some(state), Some(from)) = (&imported, &args.from) {
        human.push_str(&format!(
            " Imported {} (exported at revision {}, {}).",
            from.display(),
            state.revision,
            count(state.completed_steps.len(), "completed step")
        ));
    }
    if let Some(asked) = args.backend.filter(|b| *b != report.backend) {
        human.push_str(&format!(
            " It uses the {} backend, not {asked}: change backend.type in config.yaml to switch.",
            report.backend
        ));
    }
    Ok(Outcome::report(human, json!({ "ok": true, "init": report })))
}

/// Reads and verifies an export: the file must hold a sealed state document (schema
/// and checksum), exactly as `checklist export` writes it.
fn read_export(path: &Path) -> Result<ChecklistState> {
    // The export may live anywhere and be reached through a link (it is outside
    // .checklist/), so it is opened normally; only its size is bounded.
    let read_error = |e| Error::io("read the export", path, e);
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_IMPORT_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_IMPORT_BYTES,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMPORT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let codec: &dyn Codec = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => &JsonCodec,
        _ => &YamlCodec,
    };
    let value = codec.decode(&bytes).map_err(|e| Error::Corrupted {
        kind: CorruptionKind::ParseError,
        path: path.to_owned(),
        detail: format!("not a {} export: {e}", codec.name()),
    })?;
    document::unseal(value, path)
}
