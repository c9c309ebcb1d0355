//! One file lock per store directory, shared by the backends a factory opens there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use checklist_core::OpenContext;

use crate::fs::vfs::{ConfinedFs, Vfs};
use crate::lock::file::{FileLockProvider, log_event};
use crate::sidecar::audit_log::AuditFiles;

/// One [`audited_file_lock`] per store directory, shared by every backend a factory
/// opens there, so the tasks of this process that wait for it are woken as soon as one
/// of them releases it.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryLocks {
    vfs: Arc<dyn Vfs>,
    locks: Arc<Mutex<HashMap<PathBuf, FileLockProvider>>>,
}

impl DirectoryLocks {
    /// No locks yet; those made will do their I/O through `vfs`.
    pub(crate) fn new(vfs: Arc<dyn Vfs>) -> Self {
        Self {
            vfs,
            locks: Arc::default(),
        }
    }

    /// The lock of `ctx.dir`, made on first use.
    pub(crate) fn of(&self, ctx: &OpenContext<'_>) -> FileLockProvider {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ctx.dir.to_owned())
            .or_insert_with(|| audited_file_lock(ctx, &self.vfs))
            .clone()
    }
}

/// The file lock of `ctx.dir`, whose broken and force-released locks are logged and
/// written to the store's audit trail.
fn audited_file_lock(ctx: &OpenContext<'_>, vfs: &Arc<dyn Vfs>) -> FileLockProvider {
    let locks = FileLockProvider::with_vfs(ctx.dir, Arc::clone(vfs));
    let audit = AuditFiles::new(ctx.dir, ctx.config.audit.clone(), ctx.config.durability);
    let vfs = ConfinedFs::wrap(ctx.dir, Arc::clone(vfs));
    locks.set_observer(move |event| {
        log_event(event);
        if let Err(error) = audit.append(vfs.as_ref(), &event.audit_record()) {
            tracing::warn!(%error, "could not audit a broken lock");
        }
    });
    locks
}
