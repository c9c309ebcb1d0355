//! Corruption recovery, explicit restores, reseal and backup upkeep (docs/decisions/0010-recovery-through-the-store-trait.md),
//! written once over the [`StateStore`] trait so every backend recovers the same way
//! (docs/decisions/0010-recovery-through-the-store-trait.md).
//!
//! Recovery of a corrupt current state, always under the store's lock:
//! 1. read the raw bytes and check again that they are still corrupt (another process
//!    may have recovered while this one waited for the lock);
//! 2. pick the newest backup that verifies, in the policy's recovery order (rebuilding
//!    a lost or damaged backup index first); with none, stop with
//!    [`Error::Corrupted`] (exit 5) unless a reset was asked for;
//! 3. keep the corrupt bytes in quarantine with a note of why — never delete them;
//! 4. write the restored state over exactly those bytes, at a revision above every
//!    revision known to have been committed, with `recovery` filled in and a correct
//!    checksum, so the next load is clean;
//! 5. audit a `recovery` record (`restore` for an explicit restore).
//!
//! `dataLoss` is true when the restored revision is older than the last revision known
//! to have been committed — the highest `revisionAfter` in the audit trail or revision
//! in the backup index — and always for a reset. A recovery or reseal that cannot read
//! the audit trail stops with that error before changing anything: it could not know
//! either.
//!
//! Every command lets go of the lock by dropping its guard: what it did stands whether
//! or not the lock comes off, so a failure to release is logged, not returned.

use std::fmt;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditEvent, AuditRecord};
use crate::backup::{BackupPolicy, BackupRecord, SkippedBackup, validate_backup_id};
use crate::config::{LockSettings, RecoverySettings};
use crate::error::{CorruptionKind, Error, Remedy, Result};
use crate::lock::{LockGuard, LockProvider, LockRequest, Operation};
use crate::model::{ChecklistState, RecoveryMethod, RecoveryRecord, now};
use crate::quarantine::{QuarantineNote, QuarantineRecord};
use crate::store::{DocumentStoreExt, Expectation, StateStore, StateStoreExt};

/// What to recover from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverRequest {
    /// Restore this backup instead of the newest one that verifies.
    pub from: Option<String>,
    /// Start again from an empty state (`recoveryMethod: reset`, `dataLoss: true`).
    pub reset: bool,
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    /// The state recovered: its file, or the store's location.
    pub path: std::path::PathBuf,
    /// How the state was corrupted.
    pub corruption_type: CorruptionKind,
    /// The verification error of the corrupt state.
    pub detail: String,
    /// Where the corrupt bytes are kept; `None` when the state was missing, with no
    /// bytes to keep.
    pub quarantined: Option<QuarantineRecord>,
    /// How the state was recovered.
    pub method: RecoveryMethod,
    /// The backup restored (`None` for a reset).
    pub backup: Option<BackupRecord>,
    /// The last revision known to have been committed before the corruption.
    pub last_committed: Option<u64>,
    /// Whether a committed revision was lost.
    pub data_loss: bool,
    /// The revision the recovered state was written as.
    pub revision: u64,
    /// Its checksum.
    pub checksum: String,
    /// Backups tried first that did not verify.
    pub skipped: Vec<SkippedBackup>,
}

impl RecoveryReport {
    /// The one line a command prints when it recovered.
    pub fn summary(&self) -> String {
        let path = &self.path;
        let how = match &self.backup {
            Some(b) => format!("restored backup {} (revision {})", b.id, b.revision),
            None => "reset it to an empty state".to_owned(),
        };
        let what = match &self.quarantined {
            Some(kept) => format!(
                "{} was corrupted ({}); moved it to {}, {how}",
                path.display(),
                self.corruption_type,
                kept.location
            ),
            None => format!("{} was missing; {how}", path.display()),
        };
        format!(
            "recovered: {what} as revision {}{}",
            self.revision,
            if self.data_loss {
                match (&self.backup, self.last_committed) {
                    (Some(b), Some(last)) => format!(
                        "; data loss: the changes after revision {} up to revision {last} are lost",
                        b.revision
                    ),
                    (None, Some(last)) => format!("; data loss: every change up to revision {last} is lost"),
                    (_, None) => "; data loss: the previous state is lost".to_owned(),
                }
            } else {
                "; no committed change was lost".to_owned()
            }
        )
    }
}

/// A state loaded for a command, and the recovery that made it loadable, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The verified state, shared with what this process remembers of it (a command
    /// that loads it only looks at it; [`ChecklistState::clone`] makes a copy to
    /// change).
    pub state: Arc<ChecklistState>,
    /// The automatic recovery that ran first, if the state was corrupt.
    pub recovered: Option<RecoveryReport>,
}

/// What an explicit restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: BackupRecord,
    /// The backup of the state it replaced (`None` when that state was corrupt and was
    /// quarantined instead).
    pub replaced: Option<BackupRecord>,
    /// The revision written.
    pub revision: u64,
    /// Its checksum.
    pub checksum: String,
    /// Set when the current state was corrupt and the restore recovered it.
    pub recovery: Option<RecoveryReport>,
}

/// What a reseal did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResealReport {
    /// The hand-edited bytes as they were, kept before they were replaced.
    pub kept: QuarantineRecord,
    /// The stale checksum the edit carried.
    pub stale_checksum: Option<String>,
    /// The revision written.
    pub revision: u64,
    /// Its (correct) checksum.
    pub checksum: String,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// The backups deleted.
    pub deleted: Vec<String>,
    /// Backups the policy would have deleted but that were kept because no other
    /// backup verifies.
    pub spared: Vec<String>,
}

/// The damage `error` (a corrupt or missing state) as [`Error::Unrecovered`], saying
/// `why` it was not repaired; what can still be done follows from the damage.
fn not_recovered(error: Error, why: &str) -> Error {
    let (kind, path, detail) = match error {
        Error::Corrupted { kind, path, detail } => (kind, path, detail),
        Error::StateMissing { path, evidence } => (CorruptionKind::Missing, path, evidence),
        other => return other,
    };
    Error::Unrecovered {
        kind,
        path,
        detail: format!("{detail}; {why}"),
        remedies: Remedy::for_corruption(kind).to_vec(),
    }
}

/// Recovery, restore, reseal and backup upkeep for one store; see the module docs.
pub struct Recovery<S, L, B> {
    store: S,
    locks: L,
    policy: B,
    lock: LockSettings,
    auto: bool,
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> fmt::Debug for Recovery<S, L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("store", &self.store)
            .field("locks", &self.locks)
            .field("policy", &self.policy)
            .field("auto", &self.auto)
            .finish()
    }
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> Recovery<S, L, B> {
    /// Recovery of `store`, under `locks`, trying backups in `policy`'s order, with the
    /// default lock timing and automatic recovery on.
    pub fn new(store: S, locks: L, policy: B) -> Self {
        Self {
            store,
            locks,
            policy,
            lock: LockSettings::default(),
            auto: RecoverySettings::default().auto,
        }
    }

    /// The same, with config.yaml's `lock:` timing and `recovery:` settings.
    pub fn with_settings(mut self, lock: &LockSettings, recovery: &RecoverySettings) -> Self {
        self.lock = lock.clone();
        self.auto = recovery.auto;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    async fn acquire(&self) -> Result<LockGuard> {
        self.locks
            .acquire(&LockRequest::from_settings(Operation::Write, &self.lock))
            .await
    }

    /// Reads the state; if it is corrupt and automatic recovery is on, recovers it
    /// first (under the lock) and says so in [`Loaded::recovered`].
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Corrupted`] when recovery is off or no
    /// backup verifies (the message says what to run); the store's and the lock's
    /// errors.
    pub async fn load(&self) -> Result<Loaded> {
        let damage = match self.store.read_existing_shared().await {
            Ok(state) => {
                return Ok(Loaded {
                    state,
                    recovered: None,
                });
            }
            Err(damage @ (Error::Corrupted { .. } | Error::StateMissing { .. })) => damage,
            Err(error) => return Err(error),
        };
        if !self.auto {
            return Err(not_recovered(
                damage,
                "automatic recovery is off (recovery.auto: false in config.yaml), so nothing was changed",
            ));
        }
        let outcome = match self.acquire().await {
            Ok(guard) => {
                let outcome = self
                    .recover_locked(&guard, &RecoverRequest::default(), AuditEvent::Recovery)
                    .await;
                guard.release_logging_failure().await;
                outcome
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(Some((report, state))) => Ok(Loaded {
                state: Arc::new(state),
                recovered: Some(report),
            }),
            // Another process recovered it while this one waited for the lock.
            Ok(None) => Ok(Loaded {
                state: self.store.read_existing_shared().await?,
                recovered: None,
            }),
            // The store cannot be written (a read-only mount, a full disk): the damage
            // is what the user needs to hear about first, and why it stays.
            Err(failure @ Error::Io { .. }) => Err(not_recovered(
                damage,
                &format!("automatic recovery could not write to the store: {failure}"),
            )),
            Err(error) => Err(error),
        }
    }

    /// `checklist recover`: recovers a corrupt state from the newest backup that
    /// verifies, from `request.from`, or by a reset. `Ok(None)` when the state
    /// verifies and there is nothing to recover.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when no backup verifies and no reset was asked for;
    /// [`Error::InvalidOperation`] for an unknown or malformed backup id.
    pub async fn recover(&self, request: &RecoverRequest) -> Result<Option<RecoveryReport>> {
        if let Some(id) = &request.from {
            validate_backup_id(id)?;
        }
        let guard = self.acquire().await?;
        let outcome = self.recover_locked(&guard, request, AuditEvent::Recovery).await;
        guard.release_logging_failure().await;
        Ok(outcome?.map(|(report, _)| report))
    }

    /// `checklist backup restore ID`: replaces the state with the backup `id`. A state
    /// that verifies is backed up first (`pre-restore`); a corrupt one is quarantined.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] for an unknown or malformed id; [`Error::Corrupted`]
    /// when the backup does not verify (nothing changes).
    pub async fn restore(&self, id: &str) -> Result<RestoreReport> {
        validate_backup_id(id)?;
        let guard = self.acquire().await?;
        let outcome = self.restore_locked(&guard, id).await;
        guard.release_logging_failure().await;
        outcome
    }

    async fn restore_locked(&self, guard: &LockGuard, id: &str) -> Result<RestoreReport> {
        let current = match self.store.read_existing().await {
            Ok(current) => current,
            // A corrupt or missing state is recovered from the backup asked for.
            Err(Error::Corrupted { .. } | Error::StateMissing { .. }) => {
                let request = RecoverRequest {
                    from: Some(id.to_owned()),
                    reset: false,
                };
                let Some((report, _)) = self.recover_locked(guard, &request, AuditEvent::Restore).await?
                else {
                    return Err(Error::invalid(format!(
                        "{} changed while it was being restored; run the command again",
                        self.store.info().location
                    )));
                };
                let backup = report.backup.clone().ok_or_else(|| {
                    Error::invalid("a restore from a backup reported no backup; this is a bug")
                })?;
                return Ok(RestoreReport {
                    backup,
                    replaced: None,
                    revision: report.revision,
                    checksum: report.checksum.clone(),
                    recovery: Some(report),
                });
            }
            Err(error) => return Err(error),
        };
        // Not even a pre-restore backup is added to a moved store.
        current.ensure_not_moved(self.store.info().location_path())?;
        let backup = self.listed_backup(id).await?;
        let restored = self.store.read_verified_backup(id).await?;
        let replaced = self.store.create_backup("pre-restore").await?;
        guard.ensure_held().await?;
        let committed = self
            .store
            .commit(&restored, Expectation::Revision(current.revision))
            .await?;
        let mut record = AuditRecord::new(AuditEvent::Restore)
            .revisions(Some(current.revision), Some(committed.revision))
            .checksum(committed.checksum.clone())
            .operations(vec![format!(
                "backup restore {id}: revision {} restored over revision {}{}",
                backup.revision,
                current.revision,
                replaced
                    .as_ref()
                    .map(|r| format!(", which was kept as backup {}", r.id))
                    .unwrap_or_default()
            )]);
        record.extra.insert("backupId".into(), json!(id));
        self.audit(&record).await;
        Ok(RestoreReport {
            backup,
            replaced,
            revision: committed.revision,
            checksum: committed.checksum,
            recovery: None,
        })
    }

    /// `checklist reseal`: accepts a deliberate hand edit whose only fault is its
    /// checksum. The edited bytes are kept (in quarantine, with a note) before they are
    /// replaced by the same document with a fresh checksum, at a new revision, audited
    /// as a `recovery` with `recoveryMethod: manual`. `Ok(None)` when the state already
    /// verifies.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (exit 5) when the document is not schema valid or does not
    /// parse: reseal never accepts that; nothing changes.
    pub async fn reseal(&self) -> Result<Option<ResealReport>> {
        let guard = self.acquire().await?;
        let outcome = self.reseal_locked(&guard).await;
        guard.release_logging_failure().await;
        outcome
    }

    async fn reseal_locked(&self, guard: &LockGuard) -> Result<Option<ResealReport>> {
        let Some(raw) = self.store.read_raw().await? else {
            return Err(self.store.missing_state().await?);
        };
        let detail = match self.store.read().await {
            Ok(_) => return Ok(None),
            Err(Error::Corrupted {
                kind: CorruptionKind::ChecksumMismatch,
                detail,
                ..
            }) => detail,
            Err(Error::Corrupted { kind, path, detail }) => {
                return Err(Error::Unrecovered {
                    kind,
                    path,
                    detail: format!(
                        "{detail}; reseal only accepts an edit whose sole fault is its checksum, so nothing was \
                         changed"
                    ),
                    remedies: vec![Remedy::RepairByHandThenReseal, Remedy::RestoreNewestBackup],
                });
            }
            Err(error) => return Err(error),
        };
        let mut edited = self.store.parse_ignoring_checksum(&raw)?;
        let stale_checksum = edited.checksum.take();
        let note = QuarantineNote {
            corruption_type: CorruptionKind::ChecksumMismatch,
            detail,
            reason: "reseal: the hand-edited document as it was, kept before its checksum was replaced"
                .to_owned(),
        };
        let last = self.last_committed().await?;
        let kept = self.store.quarantine(&raw, &note).await?;
        let revision = last.unwrap_or(0).max(edited.revision) + 1;
        edited.recovery = Some(RecoveryRecord {
            last_corruption: now(),
            corruption_type: CorruptionKind::ChecksumMismatch,
            recovery_method: RecoveryMethod::Manual,
            data_loss: false,
            extra: Default::default(),
        });
        guard.ensure_held().await?;
        let committed = self.store.replace(Some(&raw), &edited, revision).await?;
        let mut record = AuditRecord::new(AuditEvent::Recovery)
            .revisions(last, Some(committed.revision))
            .checksum(committed.checksum.clone())
            .operations(vec![format!(
                "reseal: accepted a hand edit with a stale checksum; the edited bytes are kept at {}",
                kept.location
            )]);
        record.extra.insert("recoveryMethod".into(), json!("manual"));
        record
            .extra
            .insert("corruptionType".into(), json!(CorruptionKind::ChecksumMismatch));
        record.extra.insert("dataLoss".into(), json!(false));
        self.audit(&record).await;
        Ok(Some(ResealReport {
            kept,
            stale_checksum,
            revision: committed.revision,
            checksum: committed.checksum,
        }))
    }

    /// `checklist backup create`: backs up the current state under the lock and audits
    /// it. `Ok(None)` when there is no state.
    ///
    /// # Errors
    /// The store's errors ([`Error::Corrupted`] for a corrupt state: only verified
    /// states are backed up).
    pub async fn backup_now(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let guard = self.acquire().await?;
        let outcome = self.store.create_backup(reason).await;
        guard.release_logging_failure().await;
        let record = outcome?;
        if let Some(backup) = &record {
            let mut audit = AuditRecord::new(AuditEvent::Backup)
                .revisions(Some(backup.revision), Some(backup.revision))
                .checksum(backup.checksum.clone())
                .operations(vec![format!("backup create: {} ({reason})", backup.id)]);
            audit.extra.insert("backupId".into(), json!(backup.id));
            self.audit(&audit).await;
        }
        Ok(record)
    }

    /// `checklist backup prune`: deletes what the policy prunes, except that the last
    /// backups that verify are never all deleted: if every survivor fails to verify,
    /// the newest pruned backup that verifies is spared.
    ///
    /// # Errors
    /// The store's and the lock's errors.
    pub async fn prune(&self) -> Result<PruneReport> {
        let guard = self.acquire().await?;
        let outcome = self.prune_locked().await;
        guard.release_logging_failure().await;
        let report = outcome?;
        if !report.deleted.is_empty() {
            let mut operations: Vec<String> = report
                .deleted
                .iter()
                .map(|id| format!("backup prune: deleted {id}"))
                .collect();
            operations.extend(
                report
                    .spared
                    .iter()
                    .map(|id| format!("backup prune: kept {id}, the newest backup that verifies")),
            );
            self.audit(&AuditRecord::new(AuditEvent::Backup).operations(operations))
                .await;
        }
        Ok(report)
    }

    async fn prune_locked(&self) -> Result<PruneReport> {
        let backups = self.store.list_backups().await?;
        let mut to_prune = self.policy.to_prune(&backups, Utc::now());
        let mut spared = Vec::new();
        let mut survivor_verifies = false;
        for backup in backups.iter().filter(|b| !to_prune.contains(&b.id)) {
            if self.store.read_verified_backup(&backup.id).await.is_ok() {
                survivor_verifies = true;
                break;
            }
        }
        if !survivor_verifies {
            for id in self.policy.recovery_order(&backups) {
                if to_prune.contains(&id) && self.store.read_verified_backup(&id).await.is_ok() {
                    to_prune.retain(|p| p != &id);
                    spared.push(id);
                    break;
                }
            }
        }
        let mut deleted = Vec::new();
        for id in to_prune {
            self.store.delete_backup(&id).await?;
            deleted.push(id);
        }
        Ok(PruneReport { deleted, spared })
    }

    /// The backups recovery can choose from: the index, or the index rebuilt from the
    /// backup files when it is missing, empty or damaged.
    ///
    /// An index or a backup directory that cannot be read (permission refused, an I/O
    /// error) is an error, not an empty list: "there are no backups" would send the user
    /// to `recover --reset` and lose the backups that are there.
    async fn recovery_candidates(&self) -> Result<(Vec<BackupRecord>, Vec<SkippedBackup>)> {
        let listed = match self.store.list_backups().await {
            Ok(listed) if !listed.is_empty() => return Ok((listed, Vec::new())),
            listed => listed,
        };
        // A backend that keeps no index apart from its backups has listed them all.
        if !self.store.info().capabilities.backup_index {
            return Ok((listed?, Vec::new()));
        }
        let rebuilt = self.store.rebuild_backup_index().await?;
        Ok((rebuilt.kept, rebuilt.skipped))
    }

    async fn listed_backup(&self, id: &str) -> Result<BackupRecord> {
        let (backups, _) = self.recovery_candidates().await?;
        backups
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "backup",
                id: id.to_owned(),
                location: self.store.info().location.clone(),
            })
    }

    /// The highest revision known to have been committed: from the audit trail and the
    /// backup index. The corrupt document's own `revision` is not trusted.
    ///
    /// # Errors
    /// The audit trail's read error: without it the last committed revision is not
    /// known, so a recovered state could be written at a revision already committed (a
    /// writer holding it would not conflict) and `dataLoss` could not be decided.
    async fn last_committed(&self) -> Result<Option<u64>> {
        let audited = self.store.read_audit().await?.last_revision();
        let backed_up = self
            .store
            .list_backups()
            .await
            .ok()
            .and_then(|b| b.iter().map(|b| b.revision).max());
        Ok(audited.max(backed_up))
    }

    async fn recover_locked(
        &self,
        guard: &LockGuard,
        request: &RecoverRequest,
        event: AuditEvent,
    ) -> Result<Option<(RecoveryReport, ChecklistState)>> {
        let raw = self.store.read_raw().await?;
        let (kind, path, detail) = match &raw {
            Some(_) => match self.store.read().await {
                Ok(_) => return Ok(None),
                Err(Error::Corrupted { kind, path, detail }) => (kind, path, detail),
                Err(error) => return Err(error),
            },
            // No document: a new store, or a lost state to restore.
            None => match self.store.missing_state().await? {
                Error::StateMissing { path, evidence } => (CorruptionKind::Missing, path, evidence),
                other => return Err(other),
            },
        };
        let (backups, mut skipped) = self.recovery_candidates().await?;
        let order = match &request.from {
            Some(id) if backups.iter().any(|b| &b.id == id) => vec![id.clone()],
            Some(id) => {
                return Err(Error::NotFound {
                    what: "backup",
                    id: id.clone(),
                    location: path.display().to_string(),
                });
            }
            None if request.reset => Vec::new(),
            None => self.policy.recovery_order(&backups),
        };
        let mut chosen = None;
        for id in order {
            match self.store.read_verified_backup(&id).await {
                Ok(state) => {
                    chosen = backups.iter().find(|b| b.id == id).cloned().map(|b| (b, state));
                    break;
                }
                // An I/O error says nothing about the backup: passing over it would restore an
                // older revision than needed, and record a data loss a retry would not have.
                Err(error) if request.from.is_some() || error.is_access_failure() => return Err(error),
                Err(error) => skipped.push(SkippedBackup {
                    location: id,
                    reason: error.to_string(),
                }),
            }
        }
        let last_committed = self.last_committed().await?;
        let (mut state, backup, method, data_loss) = match chosen {
            Some((backup, state)) => {
                let lost = last_committed.is_some_and(|last| backup.revision < last);
                (state, Some(backup), RecoveryMethod::Backup, lost)
            }
            None if request.reset => (ChecklistState::new(), None, RecoveryMethod::Reset, true),
            None => {
                let names = || {
                    skipped
                        .iter()
                        .map(|s| s.location.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let tried = match skipped.len() {
                    0 => "there are no backups".to_owned(),
                    1 => format!("its only backup, {}, does not verify", names()),
                    n => format!("none of its {n} backups verifies ({})", names()),
                };
                let (changed, remedies) = if kind == CorruptionKind::Missing {
                    ("nothing was changed", vec![Remedy::PutBackACopy, Remedy::Reset])
                } else {
                    (
                        "nothing was changed or deleted",
                        vec![Remedy::RepairByHandThenReseal, Remedy::Reset],
                    )
                };
                return Err(Error::Unrecovered {
                    kind,
                    path,
                    detail: format!("{detail}; it could not be recovered because {tried}; {changed}"),
                    remedies,
                });
            }
        };
        let note = QuarantineNote {
            corruption_type: kind,
            detail: detail.clone(),
            reason: match &backup {
                Some(b) => format!(
                    "{}: replaced by backup {} (revision {})",
                    event.as_str(),
                    b.id,
                    b.revision
                ),
                None => format!("{}: replaced by an empty state (reset)", event.as_str()),
            },
        };
        let quarantined = match &raw {
            Some(raw) => Some(self.store.quarantine(raw, &note).await?),
            None => None,
        };
        let revision = last_committed
            .unwrap_or(0)
            .max(backup.as_ref().map_or(0, |b| b.revision))
            .max(state.revision)
            + 1;
        state.recovery = Some(RecoveryRecord {
            last_corruption: now(),
            corruption_type: kind,
            recovery_method: method,
            data_loss,
            extra: Default::default(),
        });
        guard.ensure_held().await?;
        let committed = self.store.replace(raw.as_deref(), &state, revision).await?;
        state.revision = committed.revision;
        state.checksum = Some(committed.checksum.clone());
        let report = RecoveryReport {
            path: path.clone(),
            corruption_type: kind,
            detail,
            quarantined,
            method,
            backup,
            last_committed,
            data_loss,
            revision: committed.revision,
            checksum: committed.checksum,
            skipped,
        };
        let mut record = AuditRecord::new(event)
            .revisions(last_committed, Some(report.revision))
            .checksum(report.checksum.clone())
            .operations(vec![report.summary()]);
        record.extra.insert("corruptionType".into(), json!(kind));
        record.extra.insert("recoveryMethod".into(), json!(method));
        record.extra.insert("dataLoss".into(), json!(data_loss));
        if let Some(kept) = &report.quarantined {
            record.extra.insert("quarantined".into(), json!(kept.location));
        }
        if let Some(b) = &report.backup {
            record.extra.insert("backupId".into(), json!(b.id));
        }
        self.audit(&record).await;
        Ok(Some((report, state)))
    }

    /// Appends an audit record. The change it describes already stands, so a failure is
    /// logged rather than returned: undoing a recovery would bring the corruption back.
    /// Appends `record`, with the note of the lock it was made under: every record of
    /// recovery is written under (or right after) a lock taken with `self.lock`.
    async fn audit(&self, record: &AuditRecord) {
        let record = record.clone().lock_note(self.lock.note.as_ref());
        if let Err(error) = self.store.append_audit(&record).await {
            tracing::warn!(%error, event = record.event.as_str(), "could not audit");
        }
    }
}
