//! `checklist recover` and `checklist reseal`, and the automatic recovery the other
//! commands run when they find the state corrupt.

use std::io::Write;
use std::sync::Arc;

use checklist_backends::OpenedStore;
use checklist_core::recovery::{RecoverRequest, RecoveryReport};
use checklist_core::{ChecklistState, LockProvider, Recovery, Result, RollingBackups, StateStore};
use serde_json::json;

use super::Context;
use crate::args::RecoverArgs;
use crate::output::Outcome;
use crate::progress::Progress;

/// Recovery over the opened store, with its config.yaml settings.
pub(crate) type StoreRecovery = Recovery<Arc<dyn StateStore>, Arc<dyn LockProvider>, RollingBackups>;

pub(crate) fn recovery(opened: &OpenedStore) -> StoreRecovery {
    Recovery::new(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
    )
    .with_settings(&opened.config.lock, &opened.config.recovery)
}

/// Loads the state, recovering it first when it is corrupt and `recovery.auto` is on;
/// a recovery is reported in one line on stderr, even with `--quiet`: it may have lost
/// data.
pub(crate) async fn load(opened: &OpenedStore, err: &mut dyn Write) -> Result<Arc<ChecklistState>> {
    let loaded = recovery(opened).load().await?;
    if let Some(report) = &loaded.recovered {
        let _ = writeln!(err, "{}", report.summary());
    }
    Ok(loaded.state)
}

fn report_json(report: &RecoveryReport) -> serde_json::Value {
    json!({
        "ok": true,
        "recovered": true,
        "revision": report.revision,
        "checksum": report.checksum,
        "recovery": report,
    })
}

pub(crate) async fn recover(ctx: &Context<'_>, args: RecoverArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let request = RecoverRequest {
        from: args.from,
        reset: args.reset,
    };
    let store = &opened.backend.store;
    let progress = Progress::spinning(ctx.progress, "recovering the state");
    let recovered = recovery(&opened).recover(&request).await;
    drop(progress);
    match recovered? {
        Some(report) => Ok(Outcome::report(report.summary(), report_json(&report))),
        None => {
            let state = checklist_core::StateStoreExt::read_existing_shared(store.as_ref()).await?;
            Ok(Outcome::report(
                format!(
                    "Nothing to recover: {} verifies (revision {}).",
                    store.info().location_path().display(),
                    state.revision
                ),
                json!({"ok": true, "recovered": false, "revision": state.revision, "checksum": state.checksum}),
            ))
        }
    }
}

pub(crate) async fn reseal(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    match recovery(&opened).reseal().await? {
        Some(report) => Ok(Outcome::report(
            format!(
                "Resealed {} as revision {} ({}); the edited file as it was is kept at {}.",
                store.info().location_path().display(),
                report.revision,
                report.checksum,
                report.kept.location
            ),
            json!({"ok": true, "resealed": true, "revision": report.revision, "checksum": report.checksum,
                   "reseal": report}),
        )),
        None => {
            let state = checklist_core::StateStoreExt::read_existing_shared(store.as_ref()).await?;
            Ok(Outcome::report(
                format!(
                    "Nothing to reseal: {} verifies (revision {}).",
                    store.info().location_path().display(),
                    state.revision
                ),
                json!({"ok": true, "resealed": false, "revision": state.revision, "checksum": state.checksum}),
            ))
        }
    }
}
