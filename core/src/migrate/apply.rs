//! Migrating a store's document in place, for every backend: read the exact bytes,
//! decode them with the store's codec, run the chain ([`migrate`](super::migrate)),
//! then one conditional write on those bytes that keeps them as a `migration` backup
//! (docs/decisions/0009-explicit-migration.md).

use crate::backup::BackupRecord;
use crate::error::{Error, Result};
use crate::store::{
    Committed, DocumentStore, DocumentStoreExt, KeepBackup, Precondition, StoredBytes, decode,
};

use super::Migrated;

/// A store's document and its migration, not yet written.
#[derive(Debug, Clone)]
pub struct PendingMigration {
    /// The document's bytes as the store holds them, and what they say of themselves.
    pub found: StoredBytes,
    /// What the migration makes of them (no steps: the document is current).
    pub migrated: Migrated,
}

/// What [`apply`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationCommit {
    /// The backup holding the original bytes, untouched.
    pub backup: BackupRecord,
    /// The revision and checksum of the migrated state as written.
    pub committed: Committed,
}

/// Reads the store's document without verifying it (a read refuses older schema
/// versions) and plans its migration; `Ok(None)` when the store holds no document.
///
/// # Errors
/// [`Error::Corrupted`] (`parse_error`) when the bytes are not a document, the errors
/// of [`migrate`](super::migrate), and the store's read errors.
pub async fn prepare<S: DocumentStore + ?Sized>(store: &S) -> Result<Option<PendingMigration>> {
    let Some(bytes) = store.read_raw().await? else {
        return Ok(None);
    };
    let location = store.info().location_path();
    let document = decode(store.codec(), &bytes, location)?;
    let migrated = super::migrate(&document, location)?;
    Ok(Some(PendingMigration {
        found: StoredBytes::new(bytes, Some(&document)),
        migrated,
    }))
}

/// Writes a prepared migration as revision `found.revision + 1`, only while the store
/// still holds exactly the bytes it was prepared from, keeping them as a backup
/// (reason `migration`, pruned by no policy). Call it holding the store's lock.
///
/// # Errors
/// [`Error::PreconditionFailed`] when the document changed since [`prepare`] (nothing
/// is written); [`Error::Corrupted`] (`schema_invalid`) when the migrated document
/// does not fit the model; the errors of sealing and of the store's write.
pub async fn apply<S: DocumentStore + ?Sized>(
    store: &S,
    pending: PendingMigration,
) -> Result<MigrationCommit> {
    let PendingMigration { found, migrated } = pending;
    let revision = found.revision.saturating_add(1);
    let state = migrated.into_state(store.info().location_path())?;
    let keep = KeepBackup {
        reason: "migration".to_owned(),
        policy: None,
    };
    let receipt = store
        .write_state(&state, revision, Precondition::Bytes(found), Some(keep), None)
        .await?;
    let backup = receipt.backup.ok_or_else(|| {
        Error::invalid(format!(
            "the {} backend wrote the migrated state of {} without keeping the original as a backup",
            store.info().backend,
            store.info().location
        ))
    })?;
    Ok(MigrationCommit {
        backup,
        committed: receipt.committed,
    })
}
