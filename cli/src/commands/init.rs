//! `checklist init`.
//!
//! `--from FILE` starts the store from an export, or from a state file of the original
//! TypeScript checklist, imported through the same conversion as `checklist migrate`
//! (docs/decisions/0018-importing-the-typescript-checklist.md).

use std::io::Write;

use std::io::Read;
use std::path::Path;

use checklist_backends::state_home::default_state_home;
use checklist_backends::{Codec, InitOptions, InitOutcome, JsonCodec, YamlCodec, init_project};
use checklist_core::migrate::{self, typescript};
use checklist_core::{ChecklistState, CorruptionKind, Error, Result, document};
use serde_json::json;

use super::{Context, warn_if_ephemeral};
use crate::args::InitArgs;
use crate::output::{Outcome, count};

/// Largest export `init --from` reads (the state files' default read limit).
const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) async fn run(ctx: &Context<'_>, args: InitArgs, err: &mut dyn Write) -> Result<Outcome> {
    let imported = args.from.as_deref().map(read_export).transpose()?;
    let server = super::server::ServerOptions::for_init(args.backend.as_deref(), &args.server)?;
    let report = init_project(
        &ctx.root,
        &InitOptions {
            backend: args.backend.clone(),
            durability: None,
            repair: args.force,
            initial_state: imported.as_ref().map(|i| i.state.clone()),
            state_home: default_state_home(),
            backend_options: server.backend_options.clone(),
            connection_options: server.connection_options.clone(),
            lock_note: ctx.lock_note.clone(),
        },
        ctx.registry,
    )
    .await?;
    warn_if_ephemeral(&report.backend, report.capabilities, ctx.quiet, err);
    if report.fallback {
        ctx.warn_fallback(&report.dir, err);
    }
    let dir = report.dir.display();
    let revision = report
        .revision
        .map_or_else(|| "unreadable state".to_owned(), |r| format!("revision {r}"));
    let mut human = match report.outcome {
        InitOutcome::Created if report.joined => format!(
            "Joined the existing state{} at {revision}; this checkout's store settings are in {dir} (backend {}).",
            server.describe_location(),
            report.backend
        ),
        InitOutcome::Created => format!(
            "Initialized a checklist store at {dir} (backend {}, {revision}){}.",
            report.backend,
            server.describe_location()
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
    let mut json = json!({ "ok": true, "init": report });
    match (&imported, &args.from) {
        (
            Some(Imported {
                state,
                typescript: Some((origin, changes)),
            }),
            Some(from),
        ) => {
            human.push_str(&format!(
                " Imported {}, a state written by the TypeScript checklist ({}), with {}; what this format has \
                 no place for is kept under {}:",
                from.display(),
                super::migrate::written_as(origin),
                count(state.completed_steps.len(), "completed step"),
                typescript::KEPT_FIELD
            ));
            for change in changes {
                human.push_str(&format!("\n  - {change}"));
            }
            json["typescript"] = json!(origin);
            json["changes"] = json!(changes);
        }
        (
            Some(Imported {
                state,
                typescript: None,
            }),
            Some(from),
        ) => {
            human.push_str(&format!(
                " Imported {} (exported at revision {}, {}).",
                from.display(),
                state.revision,
                count(state.completed_steps.len(), "completed step")
            ));
        }
        _ => {}
    }
    if let Some(note) = server.password_note() {
        human.push_str(&format!(" {note}"));
    }
    if let Some(asked) = args.backend.filter(|b| *b != report.backend) {
        human.push_str(&format!(
            " It uses the {} backend, not {asked}: change backend.type in config.yaml to switch.",
            report.backend
        ));
    }
    Ok(Outcome::report(human, json))
}

/// What `--from` starts the store with.
struct Imported {
    state: ChecklistState,
    /// For a file of the TypeScript checklist: what wrote it, and every change line of
    /// its import.
    typescript: Option<(typescript::Origin, Vec<String>)>,
}

/// Reads and verifies an export: the file must hold a sealed state document (schema
/// and checksum), exactly as `checklist export` writes it, or be a state file of the
/// TypeScript checklist, which is imported.
fn read_export(path: &Path) -> Result<Imported> {
    read_export_file(path).map_err(|error| match error {
        // No store is involved: the remedies for a corrupt state do not apply.
        Error::Corrupted { kind, path, detail } => Error::Unrecovered {
            kind,
            path,
            detail: format!(
                "{detail}; nothing was created: `--from` takes a file written by `checklist export` (or a \
                 state file of the TypeScript checklist)"
            ),
            // The sentence above says what to do; no store remedy applies.
            remedies: Vec::new(),
        },
        other => other,
    })
}

fn read_export_file(path: &Path) -> Result<Imported> {
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
    if let Some(origin) = typescript::detect(&value) {
        let migrated = migrate::migrate(&value, path)?;
        let changes = migrated.changes().map(str::to_owned).collect();
        return Ok(Imported {
            state: migrated.into_state(path)?,
            typescript: Some((origin, changes)),
        });
    }
    Ok(Imported {
        state: document::unseal(value, path)?,
        typescript: None,
    })
}
