//! `checklist migrate [--dry-run]`: upgrades a state file of an older schema version.
//!
//! Reads never migrate (docs/decisions/0009-explicit-migration.md): a store whose
//! state file is of an older version refuses every command with exit 8 and points
//! here. This command reads the raw file, runs the chain of [`migrate`] steps and shows
//! every change; without `--dry-run` it then, under the store's lock, keeps the file's
//! bytes as a backup, writes the migrated state through the sealed write path and
//! audits a `migration` record.
//!
//! A state file written by the original TypeScript checklist takes the same path with
//! one import step instead of the chain, and the report says so first
//! (docs/decisions/0018-importing-the-typescript-checklist.md).

use std::io::Write;

use checklist_core::lock::Operation;
use checklist_core::migrate::typescript::{Layer, Origin};
use checklist_core::migrate::{self, Migrated};
use checklist_core::{AuditEvent, AuditRecord, AuditTrail, Error, LockRequest, Result, StateStoreExt};
use serde_json::json;

use super::Context;
use crate::args::MigrateArgs;
use crate::output::Outcome;

pub(crate) async fn run(ctx: &Context<'_>, args: MigrateArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let dry_run = args.dry_run;
    let path = store.info().location_path().to_owned();
    // A dry run writes nothing, so it needs no lock: every write replaces the document
    // atomically, and it reads one whole version or the other.
    let guard = if dry_run {
        None
    } else {
        let request = LockRequest::from_settings(Operation::Write, &opened.config.lock);
        Some(opened.backend.locks.acquire(&request).await?)
    };
    let pending = match migrate::prepare(store.as_ref()).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Err(store.missing_state().await?),
        Err(error) => return Err(not_migratable(error)),
    };
    let migrated = &pending.migrated;
    if migrated.steps.is_empty() {
        // Already current: say so only for a state that verifies, so a corrupt file
        // is not reported as fine.
        let state = store.read_existing().await?;
        return Ok(Outcome::report(
            format!(
                "Nothing to migrate: {} is already schema {} (revision {}).",
                path.display(),
                migrated.from,
                state.revision
            ),
            json!({"ok": true, "migrated": false, "dryRun": dry_run, "path": path,
                   "from": migrated.from, "to": migrated.to, "steps": [], "changes": [],
                   "revision": state.revision}),
        ));
    }
    let mut lines = vec![match &migrated.typescript {
        Some(origin) => format!(
            "{} was written by the TypeScript checklist ({}); importing it as schema {}:",
            path.display(),
            written_as(origin),
            migrated.to
        ),
        None => format!(
            "{} is schema {}; migrating to {} in {} step{}:",
            path.display(),
            migrated.from,
            migrated.to,
            migrated.steps.len(),
            if migrated.steps.len() == 1 { "" } else { "s" }
        ),
    }];
    lines.extend(describe(migrated));
    let mut report = json!({
        "ok": true,
        "migrated": !dry_run,
        "dryRun": dry_run,
        "path": path,
        "from": migrated.from,
        "to": migrated.to,
        "steps": migrated.steps,
        "changes": migrated.changes().collect::<Vec<_>>(),
        "typescript": migrated.typescript,
    });
    if dry_run {
        lines.push("Dry run: nothing was written; run `checklist migrate` to apply it.".to_owned());
        return Ok(Outcome::report(lines.join("\n"), report));
    }

    let (from, to) = (migrated.from.clone(), migrated.to.clone());
    let origin = migrated.typescript.clone();
    let operations = operations(migrated);
    let original_revision = pending.found.revision;
    if let Some(guard) = &guard {
        guard.ensure_held().await?;
    }
    let commit = migrate::apply(store.as_ref(), pending)
        .await
        .map_err(not_migratable)?;
    let mut record = AuditRecord::new(AuditEvent::Migration)
        .revisions(Some(original_revision), Some(commit.committed.revision))
        .checksum(commit.committed.checksum.clone())
        .operations(operations)
        .lock_note(guard.as_ref().and_then(|guard| guard.info().note.as_ref()))
        .field("fromVersion", from.as_str())
        .field("toVersion", to.as_str())
        .field("backupId", commit.backup.id.as_str());
    if let Some(origin) = &origin {
        record = record.field("typescript", json!(origin));
    }
    // The migration stands once written; an audit trail that cannot be appended to
    // is reported, not turned into a failure of a change that happened.
    let audit_error = store.append_audit(&record).await.err().map(|e| e.to_string());
    // Released here, before the report is printed; like the audit append, a failure to
    // release does not undo the migration, so it is logged.
    if let Some(guard) = guard {
        guard.release_logging_failure().await;
    }
    lines.push(format!(
        "{} schema {to} at revision {} ({}); the original is kept as backup {} ({}).",
        if origin.is_some() {
            "Imported as"
        } else {
            "Migrated to"
        },
        commit.committed.revision,
        commit.committed.checksum,
        commit.backup.id,
        commit.backup.location
    ));
    if let Some(error) = &audit_error {
        lines.push(format!(
            "warning: the migration record could not be audited: {error}"
        ));
    }
    let fields = report.as_object_mut().expect("the report is an object");
    fields.insert("revision".into(), json!(commit.committed.revision));
    fields.insert("checksum".into(), json!(commit.committed.checksum));
    fields.insert("backupId".into(), json!(commit.backup.id));
    fields.insert("backupLocation".into(), json!(commit.backup.location));
    fields.insert("auditError".into(), json!(audit_error));
    Ok(Outcome::report(lines.join("\n"), report))
}

/// How the TypeScript checklist named the file's format.
pub(crate) fn written_as(origin: &Origin) -> String {
    match origin.layer {
        Layer::State => format!("its schema {}", origin.version),
        Layer::Instances => format!("its instances file, version {}", origin.version),
    }
}

/// A document that does not have the shape its version promises: `recover` and
/// `reseal` read only the current format, so the way on is to fix the field.
fn not_migratable(error: Error) -> Error {
    match error {
        Error::Corrupted { kind, path, detail } => Error::Unrecovered {
            kind,
            path,
            detail: format!(
                "{detail}; nothing was changed: fix that field by hand and run `checklist migrate` again"
            ),
            // The sentence above says what to do; no store remedy applies.
            remedies: Vec::new(),
        },
        other => other,
    }
}

/// The chain and every change, one line each.
fn describe(migrated: &Migrated) -> Vec<String> {
    let tool = if migrated.typescript.is_some() {
        "TypeScript checklist "
    } else {
        ""
    };
    let mut lines = Vec::new();
    for step in &migrated.steps {
        lines.push(format!("{tool}{} → {}: {}", step.from, step.to, step.description));
        lines.extend(step.changes.iter().map(|c| format!("  - {c}")));
    }
    lines
}

/// The audit record's summary: the versions and how many changes each step made
/// (the changes themselves can run to thousands of lines).
fn operations(migrated: &Migrated) -> Vec<String> {
    let verb = if migrated.typescript.is_some() {
        "import TypeScript checklist"
    } else {
        "migrate"
    };
    let mut operations = vec![format!("{verb} {} -> {}", migrated.from, migrated.to)];
    operations.extend(
        migrated
            .steps
            .iter()
            .map(|s| format!("{} -> {}: {} changes", s.from, s.to, s.changes.len())),
    );
    operations
}
