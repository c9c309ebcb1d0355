//! The planes beside the document: the audit trail, backups, the archive, the
//! quarantine and the change feed. Each is small enough to read on one screen and
//! implement on its own.

use std::fmt;

use async_trait::async_trait;

use crate::archive::{ArchivedInstance, HistoryEntry};
use crate::audit::{AuditLog, AuditRecord};
use crate::backup::{BackupIndexRebuild, BackupRecord};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::quarantine::{QuarantineNote, QuarantineRecord};

/// The audit trail: an append-only log of what happened to the state.
///
/// # Contract
/// - `audit_records_read_back_in_order`: records appended are read back in append
///   order, unchanged.
/// - `concurrent_audit_appends_are_all_kept`: records appended at the same time from
///   many tasks and through several handles are all kept, each once and intact, each
///   appender's in its order (appends never rewrite the trail).
/// - `audit_rotation_keeps_records_in_order`: after a rotation every record still
///   reads back, oldest first, until the oldest part falls off the retention limit.
/// - `audit_records_keep_every_character`: a record reads back with every character
///   of every field, non-ASCII and control characters included; none is dropped.
/// - `a_torn_audit_record_is_reported_not_fatal`: a record torn by a crash mid-append
///   is one of [`AuditLog::problems`]; the records around it and those appended after
///   it read back, and reading never fails for it.
#[async_trait]
pub trait AuditTrail: Send + Sync + fmt::Debug {
    /// Appends one record.
    ///
    /// # Contract
    /// The record is added after every record appended before; nothing already in the
    /// trail is rewritten. Safe to call without holding the lock.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;

    /// The whole trail, oldest first, across rotated parts.
    ///
    /// # Contract
    /// Lines that are not records (one torn by a crash mid-append, damage) are
    /// reported in [`AuditLog::problems`], never as an error.
    async fn read_audit(&self) -> Result<AuditLog>;

    /// Starts a new part if the current one exceeds the store's size limit, dropping
    /// parts beyond its retention. Returns whether it rotated.
    ///
    /// # Contract
    /// Call it while holding the store's lock. No record is lost except those in parts
    /// beyond the retention limit; a store that keeps no parts returns `Ok(false)`.
    async fn rotate_audit(&self) -> Result<bool>;
}

/// Backups: copies of earlier documents, listed with what they hold.
///
/// # Contract
/// - `backup_keeps_the_current_state`: a backup holds the revision and checksum
///   stored when it was taken; later writes do not change it; it is listed until
///   deleted.
/// - `prune_counts_a_revision_once`: see [`RollingBackups`](crate::RollingBackups).
/// - `read_backup_verifies`: a backup read back verifies and matches its listing
///   (core checks, through [`StateStoreExt::read_verified_backup`](super::StateStoreExt::read_verified_backup)).
/// - `backup_index_is_rebuilt_after_deletion`: see
///   [`rebuild_backup_index`](Self::rebuild_backup_index).
/// - `delete_backup_removes_only_that_backup`: deleting a backup leaves every other
///   one listed and readable.
/// - `a_deleted_backup_is_gone_for_good`: a deleted backup's bytes are gone with its
///   listing; no rebuild of the index brings it back.
/// - `a_damaged_backup_is_refused`: [`read_backup`](Self::read_backup) returns a
///   damaged backup's bytes as they are (never another backup's, never repaired), so
///   core's check against the listing refuses it with [`Error::Corrupted`].
/// - `rebuilding_the_backup_index_deletes_nothing`: a rebuild reports a backup it
///   cannot verify and leaves its bytes, and every other backup's, as they were.
#[async_trait]
pub trait BackupStore: Send + Sync + fmt::Debug {
    /// Keeps the document stored now as a backup; `Ok(None)` when there is none.
    ///
    /// # Contract
    /// The backup holds exactly the revision and checksum stored at the moment of the
    /// call, and no later write changes it.
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>>;

    /// The backups, oldest first.
    ///
    /// # Contract
    /// Every backup taken and not deleted, each once.
    async fn list_backups(&self) -> Result<Vec<BackupRecord>>;

    /// The bytes of the backup `id`, exactly as they were stored.
    ///
    /// # Contract
    /// Fails with [`Error::NotFound`] for an id that is not listed. The bytes are not
    /// verified here: core checks them against the listing.
    async fn read_backup(&self, id: &str) -> Result<Vec<u8>>;

    /// Deletes the backup `id`: its listing and its bytes.
    ///
    /// # Contract
    /// Fails with [`Error::NotFound`] for an id that is not listed; removes no other.
    async fn delete_backup(&self, id: &str) -> Result<()>;

    /// Keeps `document` as the backup `record` describes, as another store listed it:
    /// how a store moved to this backend brings its backups along
    /// ([`relocation`](crate::relocation)). `document` is in this store's format; core
    /// re-encodes it and checks it against `record` before the call.
    ///
    /// # Contract
    /// - `an_imported_backup_is_listed_as_it_was`: it is then listed once, with the
    ///   record's id, revision, checksum, creation time and reason, and
    ///   [`read_backup`](Self::read_backup) returns exactly `document`. Fails with
    ///   [`Error::PreconditionFailed`] when a backup with that id is already listed,
    ///   changing nothing, and with [`Error::InvalidOperation`] for an unsafe id
    ///   ([`validate_backup_id`](crate::backup::validate_backup_id)).
    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord>;

    /// Lists again every kept backup that verifies, after the index that lists them
    /// was lost or damaged, and reports the others, left where they are.
    ///
    /// # Contract
    /// Never deletes or changes a backup. One that cannot be read for a reason other
    /// than its content ([`Error::is_access_failure`]) fails the rebuild rather than
    /// dropping it. Fails with [`Error::Unsupported`] where the
    /// [capabilities](super::Capabilities::backup_index) say the store keeps no index
    /// apart from its backups.
    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild>;
}

/// The archive: finished instances, sealed, and the history that lists them.
///
/// # Contract
/// - `archive_round_trips_and_indexes_once_per_instance`: an archived instance reads
///   back verified, with the checksum its history entry carries, and is listed once;
///   archiving the same instance again replaces both.
/// - `read_archived_returns_the_instance_asked_for`: reading an id returns that
///   instance, whichever was archived last, with every value it held.
/// - `archiving_again_replaces_the_archived_document`: archiving an instance id again
///   replaces its stored document as well as its history entry.
/// - `an_invalid_instance_is_not_archived`: an instance that breaks the schema fails
///   with [`Error::SchemaInvalid`], and neither a document nor a history entry is kept.
/// - `unknown_or_unsafe_archive_ids_are_refused`: reading an id never archived fails
///   with [`Error::NotFound`]; one that is not a safe id
///   ([`archive::validate_file_stem`](crate::archive::validate_file_stem)) with
///   [`Error::InvalidOperation`].
#[async_trait]
pub trait ArchiveStore: Send + Sync + fmt::Debug {
    /// Stores a finished instance, sealed, and lists it in the history. Call it while
    /// holding the store's lock, before committing the state without the instance: a
    /// crash in between leaves the instance in both places, never in neither.
    ///
    /// # Contract
    /// The archived document is stored durably (as the store's writes are) before the
    /// history lists it. Fails with [`Error::SchemaInvalid`] or
    /// [`Error::InvalidOperation`] (an unsafe id) before anything is stored.
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry>;

    /// One entry per archived instance, in archiving order.
    ///
    /// # Contract
    /// Each archived instance once, with the checksum of its stored document.
    async fn history(&self) -> Result<Vec<HistoryEntry>>;

    /// The archived instance `instance_id`, verified.
    ///
    /// # Contract
    /// Fails with [`Error::NotFound`] for an id never archived, with
    /// [`Error::InvalidOperation`] for an unsafe one, and with [`Error::Corrupted`]
    /// when the stored document does not verify.
    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance>;
}

/// The quarantine: corrupt documents, kept byte for byte once recovery replaced them.
///
/// # Contract
/// - `quarantine_keeps_the_exact_bytes`: quarantined bytes are kept unchanged with
///   their note and read back exactly, whatever happens to the stored document
///   afterwards (rewritten in place, damaged further): they are a copy, not another name
///   of the document's storage.
/// - `quarantine_is_listed_oldest_first`: the quarantine lists its documents in the
///   order they were quarantined, each once.
#[async_trait]
pub trait QuarantineStore: Send + Sync + fmt::Debug {
    /// Keeps `found` — the document as the caller read it with
    /// [`read_raw`](super::DocumentStore::read_raw) — with `note`.
    ///
    /// # Contract
    /// Fails with [`Error::PreconditionFailed`] if the stored bytes are no longer
    /// `found`. The kept bytes equal `found`; the current document is left in place (a
    /// [`Precondition::Bytes`](super::Precondition::Bytes) write replaces it next), so
    /// a crash in between never leaves the store without a state. Call it while
    /// holding the lock.
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord>;

    /// The quarantined documents, oldest first.
    ///
    /// # Contract
    /// Every quarantined document, each once; nothing is ever removed by the store.
    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>>;

    /// The bytes of the quarantined document `id`.
    ///
    /// # Contract
    /// Exactly the bytes given to [`quarantine`](Self::quarantine); fails with
    /// [`Error::NotFound`] for an id that is not listed.
    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>>;

    /// Keeps `found` as the quarantined document `record` describes, as another store
    /// listed it: how a store moved to this backend brings its quarantine along
    /// ([`relocation`](crate::relocation)). Core checks `found` against the record's
    /// size and `sha256` before the call.
    ///
    /// # Contract
    /// - `an_imported_quarantined_document_is_kept_as_it_was`: it is then listed once,
    ///   with the record's id, time, size, sha256 and note, and
    ///   [`read_quarantined`](Self::read_quarantined) returns exactly `found`. Fails with
    ///   [`Error::PreconditionFailed`] when a document with that id is already listed,
    ///   changing nothing, and with [`Error::InvalidOperation`] for an unsafe id.
    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord>;
}

/// The change feed: how a follower learns that the store changed, without reading the
/// document over and over (`checklist status --follow`, [`Follower`](crate::follow::Follower)).
///
/// A [`ChangeWatch`] only says "look again": core reads the state and the audit trail
/// after each wake-up and decides what changed, so a backend may wake a watch more
/// often than needed, never less.
///
/// # Contract
/// - `a_watch_wakes_for_a_commit_through_another_handle`: a watch made before a commit
///   through another handle of the store (another process, another connection) wakes
///   after that commit.
/// - `a_watch_wakes_for_every_commit_after_it_was_made`: after waking, the same watch
///   wakes again for a later commit; a commit made between two calls to
///   [`ChangeWatch::changed`] is not lost.
/// - `a_follower_sees_every_commit_in_order_once`: a [`Follower`](crate::follow::Follower)
///   reports every commit made by other handles, in revision order, none twice, each
///   with its audit record.
/// - `a_follower_starting_between_commits_misses_none_after_its_start`: a follower
///   started after revision `r` reports every revision after `r` and none before.
#[async_trait]
pub trait ChangeFeed: Send + Sync + fmt::Debug {
    /// Starts watching the store's document and audit trail.
    ///
    /// # Contract
    /// Every change made after this returns, through any handle, makes the watch's
    /// [`changed`](ChangeWatch::changed) return: at once where the
    /// [capabilities](super::Capabilities::pushed_changes) say changes are pushed,
    /// otherwise within the backend's polling interval (docs/backends.md, "Following
    /// changes"). Fails only when the store cannot be watched at all (its location is
    /// gone, the server refuses).
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>>;
}

/// One watch of a [`ChangeFeed`], owned by one follower.
///
/// `changed` takes `&mut self`: a watch is a cursor over the changes since the last
/// call, like a stream, and is never shared.
#[async_trait]
pub trait ChangeWatch: Send + Sync + fmt::Debug {
    /// Waits until the document or the audit trail may have changed since the watch
    /// was made or since this last returned.
    ///
    /// # Contract
    /// Never misses a change; may return when nothing changed (the caller reads again
    /// and waits again). Fails only when the watch can no longer tell (its directory
    /// removed, the server gone beyond reconnecting); a caller may make a new watch.
    async fn changed(&mut self) -> Result<()>;
}
