//! `checklist backup list | create | restore ID | restore --revision REV | prune`.

use std::io::Write;

use checklist_backends::OpenedStore;
use checklist_core::prelude::*;
use checklist_core::revision::{HeldCopy, HeldRevisions};
use checklist_core::{BackupRecord, Error, Result};
use chrono::SecondsFormat;
use serde_json::json;

use super::Context;
use super::recover::recovery;
use crate::output::{Outcome, count};

fn line(b: &BackupRecord) -> String {
    format!(
        "  {}  revision {}  {} bytes  {}  {}",
        b.id,
        b.revision,
        b.size,
        b.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        b.reason
    )
}

pub(crate) async fn list(ctx: &Context<'_>, rebuild: bool, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let (backups, skipped) = if rebuild {
        let rebuilt = store.rebuild_backup_index().await?;
        (rebuilt.kept, rebuilt.skipped)
    } else {
        let backups = store.list_backups().await.map_err(|e| match e {
            Error::InvalidOperation { message } => Error::invalid(format!(
                "{message}; run `checklist backup list --rebuild` to rebuild the index from them"
            )),
            other => other,
        })?;
        (backups, Vec::new())
    };
    let mut lines = vec![if backups.is_empty() {
        format!("No backups of {}.", store.info().location_path().display())
    } else {
        format!(
            "{} of {}, oldest first:",
            count(backups.len(), "backup"),
            store.info().location_path().display()
        )
    }];
    lines.extend(backups.iter().map(line));
    for s in &skipped {
        lines.push(format!(
            "  skipped {} (left where it is): {}",
            s.location, s.reason
        ));
    }
    Ok(Outcome::report(
        lines.join("\n"),
        json!({"ok": true, "backups": backups, "rebuilt": rebuild, "skipped": skipped}),
    ))
}

pub(crate) async fn create(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let backup = recovery(&opened)
        .backup_now("manual")
        .await?
        .ok_or_else(|| Error::NotInitialized {
            path: store.info().location_path().to_owned(),
        })?;
    Ok(Outcome::report(
        format!(
            "Backed up revision {} of {} as {}.",
            backup.revision,
            store.info().location_path().display(),
            backup.id
        ),
        json!({"ok": true, "backup": backup}),
    ))
}

pub(crate) async fn restore(
    ctx: &Context<'_>,
    id: Option<String>,
    revision: Option<u64>,
    err: &mut dyn Write,
) -> Result<Outcome> {
    if let Some(id) = &id {
        checklist_core::backup::validate_backup_id(id)?;
    }
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let id = match (id, revision) {
        (Some(id), _) => id,
        (None, Some(revision)) => backup_holding(&opened, revision).await?.id,
        (None, None) => {
            return Err(Error::invalid(
                "name the backup to restore: an id `checklist backup list` shows, or --revision REV",
            ));
        }
    };
    let report = recovery(&opened).restore(&id).await?;
    let kept = match (&report.replaced, &report.recovery) {
        (Some(replaced), _) => format!("; the replaced state is backup {}", replaced.id),
        (None, Some(recovered)) => match &recovered.quarantined {
            Some(kept) => format!("; the corrupt state it replaced is kept at {}", kept.location),
            None => "; the state file was missing".to_owned(),
        },
        (None, None) => String::new(),
    };
    Ok(Outcome::report(
        format!(
            "Restored backup {} (revision {}) into {} as revision {}{kept}.",
            report.backup.id,
            report.backup.revision,
            store.info().location_path().display(),
            report.revision
        ),
        json!({"ok": true, "revision": report.revision, "checksum": report.checksum, "restore": report}),
    ))
}

/// The backup holding `revision` (the newest of them when several hold the same
/// document). A live state that does not verify still lets a backup be restored over it,
/// so it only counts when it verifies (docs/decisions/0026-diff-and-revisions.md).
async fn backup_holding(opened: &OpenedStore, revision: u64) -> Result<BackupRecord> {
    let store = &opened.backend.store;
    let live = match store.read().await {
        Ok(live) => live,
        Err(Error::Corrupted { .. }) => None,
        Err(other) => return Err(other),
    };
    let held = HeldRevisions::new(
        store.info().location.clone(),
        live.as_ref(),
        store.list_backups().await?,
    );
    match held.locate(revision)? {
        HeldCopy::Backup(record) => Ok(record),
        HeldCopy::Live => Err(Error::invalid(format!(
            "revision {revision} is the live state of {}, so there is nothing to restore; `checklist backup \
             list` shows the revisions the backups hold",
            store.info().location
        ))),
    }
}

pub(crate) async fn prune(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let report = recovery(&opened).prune().await?;
    let mut human = if report.deleted.is_empty() {
        "Nothing to prune.".to_owned()
    } else {
        format!(
            "Deleted {}: {}.",
            count(report.deleted.len(), "backup"),
            report.deleted.join(", ")
        )
    };
    for id in &report.spared {
        human.push_str(&format!(
            " Kept {id}: it is the newest backup that verifies, and none of the kept ones does."
        ));
    }
    Ok(Outcome::report(
        human,
        json!({"ok": true, "deleted": report.deleted, "spared": report.spared}),
    ))
}
