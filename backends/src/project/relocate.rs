//! Moving a project's store to another backend and switching its config.yaml
//! (`checklist backend migrate`; docs/backends.md, "Moving a store to another backend";
//! docs/decisions/0030-moving-a-store.md).

use std::path::Path;
use std::sync::Arc;

use checklist_core::config::BackendSelection;
use checklist_core::lock::{LockRequest, Operation};
use checklist_core::relocation::{Relocation, RelocationPlan, RelocationStep};
use checklist_core::{BackendRegistry, Config, LockNote, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::file_store::check_store_dir;
use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::project::config::{load_config, write_config};
use crate::project::state_home::{self, Located};

/// What to move where ([`move_project_store`]).
#[derive(Debug, Clone, Default)]
pub struct MoveOptions {
    /// The backend to move the store to.
    pub to: String,
    /// Its options, written into config.yaml beside `backend.type` (a server's URL
    /// without its password, a store key).
    pub to_options: Map<String, Value>,
    /// Options the new store is opened with on top of `to_options` and never written
    /// anywhere (a URL with its password).
    pub connection_options: Map<String, Value>,
    /// The backend whose store of this directory to move, when config.yaml no longer
    /// names it (its `backend.type` was edited by hand); default the one it names.
    pub from: Option<String>,
    /// Work out and report what would move, and change nothing.
    pub dry_run: bool,
    /// The note of the locks the move takes.
    pub lock_note: Option<LockNote>,
    /// Overrides config.yaml's `lock.timeoutMs` for both stores' locks.
    pub lock_timeout_ms: Option<u64>,
    /// The per-user state directory to find the project's store in
    /// ([`state_home::locate`]).
    pub state_home: Option<std::path::PathBuf>,
}

/// What [`move_project_store`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveReport {
    /// What was (or, for a dry run, would be) carried.
    pub plan: RelocationPlan,
    /// Nothing was changed.
    pub dry_run: bool,
    /// config.yaml, which now names the new store (unless a dry run).
    pub config: String,
}

/// Moves the store of the project at `root` to the backend `options.to`: under both
/// stores' locks it carries the state at its revision, the audit trail, backups,
/// archive and quarantine ([`Relocation`]), marks the old store's state as moved, and
/// switches config.yaml to the new store last, atomically, before the locks are let
/// go — so that no writer waiting for the old store's lock commits to it afterwards
/// (the mark refuses it). Interrupted anywhere, the old store is the live one or the
/// new one is complete; running it again finishes the move.
///
/// # Errors
/// Those of opening the project and its backends, of [`Relocation::run`], and of
/// writing config.yaml.
pub async fn move_project_store(
    root: &Path,
    registry: &BackendRegistry,
    options: &MoveOptions,
    progress: &(dyn Fn(&RelocationStep) + Send + Sync),
) -> Result<MoveReport> {
    move_project_store_with_vfs(root, registry, options, progress, Arc::new(RealFs)).await
}

/// Like [`move_project_store`], finding the store and writing config.yaml through
/// `vfs` (fault injection; the registry's factories bring their own).
///
/// # Errors
/// As [`move_project_store`].
pub async fn move_project_store_with_vfs(
    root: &Path,
    registry: &BackendRegistry,
    options: &MoveOptions,
    progress: &(dyn Fn(&RelocationStep) + Send + Sync),
    vfs: Arc<dyn Vfs>,
) -> Result<MoveReport> {
    let Located { layout, .. } = state_home::locate(vfs.as_ref(), root, options.state_home.as_deref())?;
    check_store_dir(vfs.as_ref(), layout.dir())?;
    let confined = ConfinedFs::wrap(layout.dir(), Arc::clone(&vfs));
    let file_config = load_config(confined.as_ref(), &layout)?;
    // This run's own lock settings, which config.yaml does not keep.
    let mut config = file_config.clone();
    config.lock.note = options.lock_note.clone();
    if let Some(timeout) = options.lock_timeout_ms {
        config.lock.timeout_ms = timeout;
    }
    if options.from.is_none() && config.backend.kind == options.to {
        return Err(checklist_core::Error::invalid(format!(
            "{} names the {} backend already; there is nothing to move (--from names the backend whose \
             state to move into it)",
            layout.config().display(),
            options.to
        )));
    }
    let mut from_config = config.clone();
    if let Some(from) = options.from.as_ref().filter(|from| **from != config.backend.kind) {
        from_config.backend = BackendSelection::named(from);
    }
    let backend = BackendSelection {
        kind: options.to.clone(),
        options: options.to_options.clone(),
    };
    let written = Config {
        backend: backend.clone(),
        ..file_config
    };
    let mut opened = Config {
        backend,
        ..config.clone()
    };
    opened.backend.options.extend(options.connection_options.clone());
    let from = registry.open(layout.dir(), &from_config).await?;
    let to = registry.open(layout.dir(), &opened).await?;
    let relocation = Relocation::new(
        &from,
        &to,
        LockRequest::from_settings(Operation::Write, &config.lock),
    );
    let config_path = layout.config().display().to_string();
    if options.dry_run {
        return Ok(MoveReport {
            plan: relocation.plan().await?,
            dry_run: true,
            config: config_path,
        });
    }
    let relocated = relocation.run(progress).await?;
    let switched = write_config(confined.as_ref(), &layout, &written, config.durability);
    let plan = relocated.plan.clone();
    let released = relocated.release().await;
    switched?;
    released?;
    Ok(MoveReport {
        plan,
        dry_run: false,
        config: config_path,
    })
}
