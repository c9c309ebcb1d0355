//! The [`StateStore`] trait: where the state document lives.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::archive::{ArchivedInstance, HistoryEntry};
use crate::audit::{AuditLog, AuditRecord};
use crate::backup::{BackupIndexRebuild, BackupPolicy, BackupRecord};
use crate::error::{Error, Result};
use crate::model::ChecklistState;
use crate::quarantine::{QuarantineNote, QuarantineRecord};

/// What a compare-and-swap write expects to find in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase", tag = "expect", content = "revision")]
pub enum Expectation {
    /// No state yet: the write creates the store's first revision.
    Absent,
    /// The stored state is at exactly this revision.
    Revision(u64),
}

impl Expectation {
    /// The expectation that replaces `state` as it was read: its revision.
    pub fn current(state: &ChecklistState) -> Self {
        Self::Revision(state.revision)
    }

    /// The revision a successful write under this expectation creates.
    pub fn next_revision(self) -> u64 {
        match self {
            Self::Absent => 1,
            Self::Revision(r) => r.saturating_add(1),
        }
    }

    /// Whether a store whose current revision is `found` meets this expectation.
    pub fn is_met_by(self, found: Option<u64>) -> bool {
        match self {
            Self::Absent => found.is_none(),
            Self::Revision(r) => found == Some(r),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("no state"),
            Self::Revision(r) => write!(f, "revision {r}"),
        }
    }
}

/// What a successful write committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Committed {
    /// The new revision.
    pub revision: u64,
    /// The checksum of the document as stored.
    pub checksum: String,
}

/// What [`StateStore::write_keeping_backup`] keeps of the state it replaces.
#[derive(Debug, Clone)]
pub struct KeepBackup {
    /// Why the backup is taken, as recorded in the backup index (`commit`, `migration` …).
    pub reason: String,
    /// Which backups stay once the new one is added.
    pub policy: Arc<dyn BackupPolicy>,
}

/// What [`StateStore::write_keeping_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUpWrite {
    /// The committed write.
    pub committed: Committed,
    /// The backup of the replaced state (`None` when there was no state to replace).
    pub backup: Option<BackupRecord>,
    /// The ids of the backups the policy pruned.
    pub pruned: Vec<String>,
}

/// Where the state document lives: read it verified, replace it atomically with a
/// compare-and-swap on its revision.
///
/// Implementations are cheap to share (`Arc<dyn StateStore>`) and safe to call from
/// many tasks at once. File backends do their blocking I/O on tokio's blocking pool,
/// so the futures must be polled inside a tokio runtime.
///
/// # Contract
/// Each bullet has a case of the same name in `checklist-conformance`.
/// - `read_of_empty_store_is_absent`: before the first write, [`read`](Self::read)
///   returns `Ok(None)`.
/// - `first_write_creates_revision_1`: a write expecting [`Expectation::Absent`] on an
///   empty store commits revision 1.
/// - `write_then_read_round_trips`: a read returns exactly what the last committed
///   write stored, with `revision` and `checksum` set to the values the write returned;
///   unknown fields survive.
/// - `revision_increases_by_one_per_write`: every committed write adds exactly 1.
/// - `absent_expectation_conflicts_when_state_exists`, `stale_revision_conflicts`,
///   `future_revision_conflicts`: a write whose expectation does not match the stored
///   revision fails with [`Error::Conflict`] (carrying the revision found) and changes
///   nothing.
/// - `concurrent_writers_with_the_same_expectation_exactly_one_wins`: of many writers
///   racing with the same expectation, exactly one commits; the others get
///   [`Error::Conflict`].
/// - `readers_never_see_a_torn_write`: while writes commit, a read through another
///   handle returns the previous revision or the new one, complete and verified —
///   never a torn, corrupt or missing document, and never a revision older than one it
///   already saw.
/// - `caller_revision_and_checksum_are_ignored`: the store sets `revision` and
///   `checksum` itself; whatever the caller put there has no effect.
/// - `invalid_document_is_refused_and_nothing_changes`: a document that breaks the
///   schema fails with [`Error::SchemaInvalid`] before anything is written.
/// - `checksum_is_verified_on_read`: a read never returns a document whose checksum
///   does not match; it fails with [`Error::Corrupted`] instead (see the corruption
///   cases of the file backends).
/// - `failed_write_leaves_the_previous_state`: a write that fails for any reason leaves
///   the previous committed state readable and unchanged — never a torn or missing
///   document.
/// - `audit_records_read_back_in_order`: records appended with
///   [`append_audit`](Self::append_audit) are returned by
///   [`read_audit`](Self::read_audit) in append order, unchanged.
/// - `concurrent_audit_appends_are_all_kept`: records appended at the same time from
///   many tasks and through several handles are all kept, each once and intact, each
///   appender's in its order (appends never rewrite the trail).
/// - `audit_rotation_keeps_records_in_order`: after
///   [`rotate_audit`](Self::rotate_audit), every record still reads back, oldest first,
///   until the oldest rotated file falls off the retention limit.
/// - `backup_keeps_the_current_state`: [`create_backup`](Self::create_backup) records
///   the revision and checksum stored at that moment; later writes do not change it;
///   [`list_backups`](Self::list_backups) lists it and
///   [`delete_backup`](Self::delete_backup) removes it.
/// - `write_keeping_backup_keeps_the_replaced_revision`:
///   [`write_keeping_backup`](Self::write_keeping_backup) commits like
///   [`write`](Self::write) and lists a backup holding exactly the replaced revision and
///   checksum; a conflicting one changes nothing and keeps no backup of a revision it did
///   not replace.
/// - `write_keeping_backup_prunes_by_the_policy`: after it, the listed backups are what
///   the policy leaves: a keep-N policy leaves exactly the N newest.
/// - `archive_round_trips_and_indexes_once_per_instance`:
///   [`archive`](Self::archive) stores a finished instance so that
///   [`read_archived`](Self::read_archived) returns it verified, with the checksum the
///   history entry carries, and [`history`](Self::history) lists it once; archiving the
///   same instance again replaces both.
/// - `unknown_or_unsafe_archive_ids_are_refused`: reading an id that was never
///   archived, or one that cannot be a file name (`../x`, `a/b`), fails with
///   [`Error::InvalidOperation`].
///
/// The recovery methods (used by [`crate::recovery`]; cases in the `recovery` suite):
/// - `read_raw_returns_the_stored_bytes`: [`read_raw`](Self::read_raw) returns the
///   bytes as stored, corrupt or not.
/// - `quarantine_keeps_the_exact_bytes`: [`quarantine`](Self::quarantine) keeps the
///   corrupt bytes unchanged with its note, lists them and reads them back.
/// - `write_over_needs_the_exact_bytes`: [`write_over`](Self::write_over) replaces
///   the stored document only while it holds exactly the bytes the caller found.
/// - `read_backup_verifies`: [`read_backup`](Self::read_backup) returns a backup only
///   when it verifies and matches its listed revision and checksum.
/// - `backup_index_is_rebuilt_after_deletion`: where backups are indexed in a file,
///   [`rebuild_backup_index`](Self::rebuild_backup_index) lists again every backup file
///   that verifies and reports the others; elsewhere it fails with
///   [`Error::InvalidOperation`].
///
/// Those methods have default implementations that refuse with
/// [`Error::InvalidOperation`], so a backend written before them still compiles; it then
/// cannot be recovered automatically, and says so.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug + 'static {
    /// The backend's registered name (`yaml`, `json`, `memory`, …).
    fn backend_name(&self) -> &str;

    /// Where the state lives, for messages: the state file's path, or a
    /// `memory:` pseudo-path.
    fn location(&self) -> &Path;

    /// Reads and verifies the current state.
    ///
    /// # Contract
    /// Returns `Ok(None)` when no state has been written, otherwise the verified
    /// document (schema, then checksum) with its `revision` and `checksum` set.
    /// Never returns a document that failed verification.
    async fn read(&self) -> Result<Option<ChecklistState>>;

    /// Atomically replaces the state if the store meets `expect`.
    ///
    /// # Contract
    /// On success the stored revision is `expect.next_revision()` and the returned
    /// [`Committed`] carries it and the stored checksum. On [`Error::Conflict`] and on
    /// any other error nothing observable changed: readers see the previous state,
    /// complete. `state.revision` and `state.checksum` are ignored.
    async fn write(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed>;

    /// Like [`write`](Self::write), but first keeps the state it replaces as a backup
    /// and then prunes the backups by `keep.policy`.
    ///
    /// The provided implementation calls [`create_backup`](Self::create_backup),
    /// [`write`](Self::write), [`list_backups`](Self::list_backups) and
    /// [`delete_backup`](Self::delete_backup); a store that can do it in one step (the
    /// file engine links the old file and rewrites the backup index once, while it holds
    /// its write lock) should override it.
    ///
    /// # Contract
    /// On success the state is committed as by [`write`](Self::write), the backup of the
    /// replaced revision is listed (with that revision's checksum), and the backups the
    /// policy names for pruning are gone. On failure the stored state and the backups
    /// are as they were: nothing is pruned before the commit that justifies it has
    /// succeeded, and a backup taken for a write that then failed is removed again. A
    /// backup that cannot be taken fails the write before anything is replaced; a prune
    /// that fails only leaves an extra backup.
    async fn write_keeping_backup(
        &self,
        state: &ChecklistState,
        expect: Expectation,
        keep: KeepBackup,
    ) -> Result<BackedUpWrite> {
        let backup = self.create_backup(&keep.reason).await?;
        let committed = match self.write(state, expect).await {
            Ok(committed) => committed,
            Err(error) => {
                if let Some(backup) = &backup
                    && let Err(cleanup) = self.delete_backup(&backup.id).await
                {
                    tracing::warn!(%cleanup, id = backup.id, "could not remove the backup of a failed write");
                }
                return Err(error);
            }
        };
        let listed = self.list_backups().await?;
        let mut pruned = Vec::new();
        for id in keep.policy.to_prune(&listed, chrono::Utc::now()) {
            match self.delete_backup(&id).await {
                Ok(()) => pruned.push(id),
                Err(error) => tracing::warn!(%error, id, "could not prune a backup"),
            }
        }
        Ok(BackedUpWrite {
            committed,
            backup,
            pruned,
        })
    }

    /// Appends one record to the audit trail.
    ///
    /// # Contract
    /// The record is added after every record appended before; nothing already in the
    /// trail is rewritten. Safe to call without holding the lock.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;

    /// Reads the whole audit trail, oldest first, across rotated parts.
    ///
    /// # Contract
    /// Lines that are not records (a record torn by a crash mid-append, damage) are
    /// reported in [`AuditLog::problems`], never as an error.
    async fn read_audit(&self) -> Result<AuditLog>;

    /// Starts a new audit part if the current one exceeds the store's size limit,
    /// dropping parts beyond its retention. Returns whether it rotated.
    ///
    /// # Contract
    /// Call it while holding the store's lock. No record is lost except those in parts
    /// beyond the retention limit.
    async fn rotate_audit(&self) -> Result<bool>;

    /// Keeps the state stored now as a backup; `Ok(None)` when there is no state.
    ///
    /// # Contract
    /// The backup holds exactly the revision and checksum stored at the moment of the
    /// call, and no later write changes it.
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>>;

    /// The backups, oldest first.
    async fn list_backups(&self) -> Result<Vec<BackupRecord>>;

    /// Deletes a backup.
    ///
    /// # Contract
    /// Fails with [`Error::InvalidOperation`] for an id that is not listed.
    async fn delete_backup(&self, id: &str) -> Result<()>;

    /// Stores a finished instance in the archive, sealed (checksummed), and indexes it
    /// in the history. Call it while holding the store's lock, before committing the
    /// state without the instance: a crash in between leaves the instance in both
    /// places, never in neither.
    ///
    /// # Contract
    /// The archived document is stored durably (as the store's writes are) before the
    /// history lists it. Archiving an instance id again replaces its document and its
    /// history entry. Fails with [`Error::SchemaInvalid`] or
    /// [`Error::InvalidOperation`] (an id that cannot be a file name) before anything
    /// is stored.
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry>;

    /// The history: one entry per archived instance, in archiving order.
    async fn history(&self) -> Result<Vec<HistoryEntry>>;

    /// Reads and verifies an archived instance.
    ///
    /// # Contract
    /// Fails with [`Error::InvalidOperation`] for an id that was never archived or
    /// cannot be a file name, and with [`Error::Corrupted`] when the archived document
    /// does not verify.
    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance>;

    /// The stored document's bytes exactly as they are, without verifying them;
    /// `Ok(None)` when no state has been written.
    ///
    /// # Contract
    /// Returns the bytes a read would verify, unchanged, whether or not they verify.
    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        Err(unsupported(self, "reading the raw state"))
    }

    /// Parses `bytes` in this store's format and checks them as a read would — schema
    /// version, then schema — but not the checksum.
    ///
    /// # Contract
    /// Fails with [`Error::Corrupted`] (`parse_error`, `schema_invalid`) or
    /// [`Error::UnsupportedVersion`] exactly where a read would, never with
    /// `checksum_mismatch`. Pure: touches nothing.
    fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
        let _ = bytes;
        Err(unsupported(self, "parsing a document without its checksum"))
    }

    /// Keeps `found` — the current document as the caller read it with
    /// [`read_raw`](Self::read_raw) — in quarantine with `note`.
    ///
    /// # Contract
    /// Fails with [`Error::InvalidOperation`] (run it again) if the stored bytes are no
    /// longer `found`. The kept bytes equal `found`; nothing is deleted; the current document is left in
    /// place (call [`write_over`](Self::write_over) next), so a crash in between
    /// never leaves the store without a state. Call it while holding the lock.
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let _ = (found, note);
        Err(unsupported(self, "quarantine"))
    }

    /// The quarantined documents, oldest first.
    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        Err(unsupported(self, "quarantine"))
    }

    /// The bytes of the quarantined document `id`.
    ///
    /// # Contract
    /// Returns exactly the bytes given to [`quarantine`](Self::quarantine); fails with
    /// [`Error::InvalidOperation`] for an id that is not listed.
    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        let _ = id;
        Err(unsupported(self, "quarantine"))
    }

    /// Atomically replaces the stored document, whatever it holds, with `state` sealed
    /// as `revision` — if and only if the store still holds exactly the bytes `found`,
    /// or, for `None`, still holds no document at all. How recovery replaces a document
    /// that no read can verify, or one that is missing.
    ///
    /// # Contract
    /// Fails with [`Error::InvalidOperation`] (run it again) when the stored bytes
    /// differ from `found` (nothing changes); [`Error::SchemaInvalid`] for an invalid `state` (nothing changes). On
    /// success the next read returns `state` at `revision` with a correct checksum.
    /// Call it while holding the lock, with a `revision` above every revision committed
    /// before, so compare-and-swap writers that read an older state still conflict.
    async fn write_over(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        let _ = (found, state, revision);
        Err(unsupported(self, "replacing a corrupt state"))
    }

    /// Reads the backup `id`, verified like the current state, and checks that it holds
    /// the revision and checksum it is listed with.
    ///
    /// # Contract
    /// Fails with [`Error::Corrupted`] naming the backup when it does not verify or
    /// does not match its listing, and with [`Error::InvalidOperation`] for an id that
    /// is not listed.
    async fn read_backup(&self, id: &str) -> Result<ChecklistState> {
        let _ = id;
        Err(unsupported(self, "reading a backup"))
    }

    /// Rebuilds the backup index from the backup files after it was lost or damaged:
    /// every file that verifies is listed again; the others are reported and left
    /// where they are.
    ///
    /// # Contract
    /// Never deletes or changes a backup file. A backup file that cannot be read for a
    /// reason other than its content ([`Error::is_access_failure`]: a refused
    /// permission, an I/O error) fails the rebuild with that error rather than dropping
    /// the backup from the index. Fails with [`Error::InvalidOperation`] where the backend
    /// keeps no index that could be lost (memory).
    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        Err(unsupported(self, "rebuilding the backup index"))
    }
}

fn unsupported<S: StateStore + ?Sized>(store: &S, what: &str) -> Error {
    Error::invalid(format!(
        "the {} backend at {} does not support {what}; repair or replace the state by hand",
        store.backend_name(),
        store.location().display()
    ))
}

/// Conveniences on top of [`StateStore`], for every implementation.
#[async_trait]
pub trait StateStoreExt: StateStore {
    /// Reads the state, treating "no state" as an error: [`Error::StateMissing`] when
    /// the store holds backups or an audit trail of committed revisions (the state was
    /// lost, and `checklist recover` restores it), otherwise
    /// [`Error::NotInitialized`].
    async fn read_existing(&self) -> Result<ChecklistState> {
        match self.read().await? {
            Some(state) => Ok(state),
            None => Err(self.missing_state().await?),
        }
    }

    /// The error for a store without a state document: [`Error::StateMissing`] naming
    /// what the store still holds of the state's history, or
    /// [`Error::NotInitialized`] when it holds nothing.
    ///
    /// # Errors
    /// The errors of listing the backups and reading the audit trail: without them it
    /// is not known whether a committed state was lost.
    async fn missing_state(&self) -> Result<Error> {
        let path = self.location().to_owned();
        Ok(match lost_state_evidence(self).await? {
            Some(evidence) => Error::StateMissing { path, evidence },
            None => Error::NotInitialized { path },
        })
    }
}

impl<T: StateStore + ?Sized> StateStoreExt for T {}

/// What a store without a state document still holds of committed revisions, in words
/// ("3 backups, the newest of revision 22, and an audit trail up to revision 23"), or
/// `None` when it holds nothing: a new store.
///
/// # Errors
/// Listing the backups or reading the audit trail.
pub async fn lost_state_evidence<S: StateStore + ?Sized>(store: &S) -> Result<Option<String>> {
    let backups = store.list_backups().await?;
    let audited = store.read_audit().await?.last_revision();
    let newest_backup = backups.iter().map(|b| b.revision).max();
    let held = match (newest_backup, audited) {
        (None, None) => return Ok(None),
        (Some(newest), None) => format!(
            "the store holds {} (the newest of revision {newest})",
            count(backups.len(), "backup")
        ),
        (None, Some(last)) => format!("the store has an audit trail up to revision {last} (but no backup)"),
        (Some(newest), Some(last)) => format!(
            "the store holds {} (the newest of revision {newest}) and an audit trail up to revision {last}",
            count(backups.len(), "backup")
        ),
    };
    Ok(Some(held))
}

/// `n` and `noun`, plural when `n` is not 1 ("1 backup", "3 backups").
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Forwarding impls, so `Arc<dyn StateStore>` and `Box<dyn StateStore>` are stores.
macro_rules! forward_state_store {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        impl<T: StateStore + ?Sized> StateStore for $wrapper<T> {
            fn backend_name(&self) -> &str {
                (**self).backend_name()
            }
            fn location(&self) -> &Path {
                (**self).location()
            }
            async fn read(&self) -> Result<Option<ChecklistState>> {
                (**self).read().await
            }
            async fn write(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
                (**self).write(state, expect).await
            }
            async fn write_keeping_backup(
                &self,
                state: &ChecklistState,
                expect: Expectation,
                keep: KeepBackup,
            ) -> Result<BackedUpWrite> {
                (**self).write_keeping_backup(state, expect, keep).await
            }
            async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
                (**self).append_audit(record).await
            }
            async fn read_audit(&self) -> Result<AuditLog> {
                (**self).read_audit().await
            }
            async fn rotate_audit(&self) -> Result<bool> {
                (**self).rotate_audit().await
            }
            async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
                (**self).create_backup(reason).await
            }
            async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
                (**self).list_backups().await
            }
            async fn delete_backup(&self, id: &str) -> Result<()> {
                (**self).delete_backup(id).await
            }
            async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
                (**self).archive(archived).await
            }
            async fn history(&self) -> Result<Vec<HistoryEntry>> {
                (**self).history().await
            }
            async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
                (**self).read_archived(instance_id).await
            }
            async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
                (**self).read_raw().await
            }
            fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
                (**self).parse_ignoring_checksum(bytes)
            }
            async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
                (**self).quarantine(found, note).await
            }
            async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
                (**self).list_quarantine().await
            }
            async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
                (**self).read_quarantined(id).await
            }
            async fn write_over(
                &self,
                found: Option<&[u8]>,
                state: &ChecklistState,
                revision: u64,
            ) -> Result<Committed> {
                (**self).write_over(found, state, revision).await
            }
            async fn read_backup(&self, id: &str) -> Result<ChecklistState> {
                (**self).read_backup(id).await
            }
            async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
                (**self).rebuild_backup_index().await
            }
        }
    )*};
}

forward_state_store!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        assert_eq!(Expectation::Absent.next_revision(), 1);
        assert_eq!(Expectation::Revision(4).next_revision(), 5);
        assert!(Expectation::Absent.is_met_by(None));
        assert!(!Expectation::Absent.is_met_by(Some(1)));
        assert!(Expectation::Revision(2).is_met_by(Some(2)));
        assert!(!Expectation::Revision(2).is_met_by(Some(3)));
        assert!(!Expectation::Revision(2).is_met_by(None));
    }

    fn _is_dyn_compatible(_: &dyn StateStore) {}
}
