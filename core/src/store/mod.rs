//! The storage traits, one plane each, and what core does above them.
//!
//! A backend implements six small traits — [`DocumentStore`] (the state document's
//! bytes and one conditional write), [`AuditTrail`], [`BackupStore`],
//! [`ArchiveStore`], [`QuarantineStore`] and [`ChangeFeed`] — and is then a [`StateStore`], the bundle
//! the coordinator and recovery work on (a blanket impl: nothing more to write). It
//! only stores and returns bytes and records: sealing, encoding, decoding and
//! verifying are core's ([`DocumentStoreExt`]), as are the transaction coordinator,
//! recovery and migration, so every backend behaves the same above its storage.
//! What a backend can and cannot do is data ([`Capabilities`] in its [`StoreInfo`]),
//! never a compare on its name. docs/backends.md walks through writing one.

use std::path::Path;

use serde::Serialize;

mod document;
pub(crate) mod expectation;
mod ext;
mod forward;
mod planes;
mod verified;

pub use document::{
    Committed, DocumentStore, EncodedDocument, KeepBackup, Precondition, StoredBytes, WriteReceipt,
    WriteRequest, decode,
};
pub use expectation::Expectation;
pub use ext::{BackedUpWrite, DocumentStoreExt, StateStoreExt, lost_state_evidence};
pub use planes::{ArchiveStore, AuditTrail, BackupStore, ChangeFeed, ChangeWatch, QuarantineStore};
pub use verified::{
    recall, recall_shared, remember, remembers, verify, verify_afresh, verify_revision, verify_shared,
};

/// What a store can do, as data its backend declares: callers choose their behaviour
/// from it, never from the backend's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Capabilities {
    /// The state outlives the process (`false`: memory, gone when the process exits).
    pub persistent: bool,
    /// Backups are listed in an index kept apart from them, which can be lost and
    /// rebuilt ([`BackupStore::rebuild_backup_index`]).
    pub backup_index: bool,
    /// A write's audit record is appended in the commit's own transaction, never
    /// missing after a commit that stands.
    pub transactional_audit: bool,
    /// A [`ChangeWatch`] wakes as soon as any handle changes the store (file-system
    /// notification, a database's notification); without it the watch finds a change
    /// by polling (docs/backends.md, "Following changes").
    pub pushed_changes: bool,
}

impl Capabilities {
    /// A store that keeps nothing beyond the process and has no index to rebuild.
    pub const EPHEMERAL: Self = Self {
        persistent: false,
        backup_index: false,
        transactional_audit: false,
        pushed_changes: false,
    };

    /// A store whose state outlives the process, with no backup index of its own and
    /// the audit record appended after the commit; the `with_` methods say more.
    pub const PERSISTENT: Self = Self {
        persistent: true,
        ..Self::EPHEMERAL
    };

    /// These capabilities with [`backup_index`](Self::backup_index) set.
    pub const fn with_backup_index(self) -> Self {
        Self {
            backup_index: true,
            ..self
        }
    }

    /// These capabilities with [`pushed_changes`](Self::pushed_changes) set to `pushed`.
    pub const fn with_pushed_changes(self, pushed: bool) -> Self {
        Self {
            pushed_changes: pushed,
            ..self
        }
    }

    /// These capabilities with [`transactional_audit`](Self::transactional_audit) set.
    pub const fn with_transactional_audit(self) -> Self {
        Self {
            transactional_audit: true,
            ..self
        }
    }
}

/// A store's name, location and capabilities, for messages and decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreInfo {
    /// The backend's registered name (`yaml`, `json`, `sqlite`, `memory`, …).
    pub backend: String,
    /// Where the state lives, as messages name it: a file's path, a database's
    /// address, a `memory:` name. Never a password.
    pub location: String,
    /// What the store can do.
    pub capabilities: Capabilities,
    /// Where each plane beside the document keeps its data.
    pub planes: PlaneLocations,
}

/// Where each plane beside the document keeps its data, named so that two stores can be
/// compared: a plane whose location is the same in two stores is one plane they share
/// (the file and SQLite backends of one directory share its `audit.log`), which a move
/// between them must not copy onto itself ([`relocation`](crate::relocation)). A
/// location names the data one store sees, not only a place: the file backends of one
/// directory keep each format's backups apart in one `.backup/`, so theirs names the
/// format too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PlaneLocations {
    /// The audit trail's.
    pub audit: String,
    /// The backups'.
    pub backups: String,
    /// The archive's, with its history.
    pub archive: String,
    /// The quarantine's.
    pub quarantine: String,
}

impl PlaneLocations {
    /// Every plane kept at `location`, with the document: a database, a process's memory.
    pub fn all_at(location: &str) -> Self {
        Self::new(location, location, location, location)
    }

    /// Each plane at a location of its own.
    pub fn new(
        audit: impl Into<String>,
        backups: impl Into<String>,
        archive: impl Into<String>,
        quarantine: impl Into<String>,
    ) -> Self {
        Self {
            audit: audit.into(),
            backups: backups.into(),
            archive: archive.into(),
            quarantine: quarantine.into(),
        }
    }
}

impl StoreInfo {
    /// Describes a store of `backend` at `location`.
    /// Its planes are all kept at `location` until [`with_planes`](Self::with_planes)
    /// says otherwise.
    pub fn new(backend: impl Into<String>, location: impl Into<String>, capabilities: Capabilities) -> Self {
        let location = location.into();
        Self {
            backend: backend.into(),
            planes: PlaneLocations::all_at(&location),
            location,
            capabilities,
        }
    }

    /// This description with its planes kept where `planes` says.
    pub fn with_planes(self, planes: PlaneLocations) -> Self {
        Self { planes, ..self }
    }

    /// The location as the path the error messages name it by.
    pub fn location_path(&self) -> &Path {
        Path::new(&self.location)
    }
}

/// Everything the coordinator, recovery and the CLI work on: the six planes of one
/// store. Implemented for every type that implements them; usable as
/// `Arc<dyn StateStore>`.
pub trait StateStore:
    DocumentStore + AuditTrail + BackupStore + ArchiveStore + QuarantineStore + ChangeFeed
{
}

impl<T> StateStore for T where
    T: DocumentStore + AuditTrail + BackupStore + ArchiveStore + QuarantineStore + ChangeFeed + ?Sized
{
}

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

    #[test]
    fn capabilities_are_built_from_two_bases() {
        let (ephemeral, files) = (
            Capabilities::EPHEMERAL,
            Capabilities::PERSISTENT.with_backup_index(),
        );
        assert_eq!((ephemeral.persistent, ephemeral.backup_index), (false, false));
        assert_eq!(
            (files.persistent, files.backup_index, files.transactional_audit),
            (true, true, false)
        );
        let database = Capabilities::PERSISTENT.with_transactional_audit();
        assert_eq!(
            (database.backup_index, database.transactional_audit),
            (false, true)
        );
    }

    fn _is_dyn_compatible(store: &dyn StateStore) -> &dyn DocumentStore {
        store
    }
}
