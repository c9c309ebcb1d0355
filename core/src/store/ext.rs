//! What core does above the planes: sealing, encoding and verifying documents, the
//! conditional writes spelled for each use, and reading a state that must exist.

use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::AuditRecord;
use crate::backup::BackupRecord;
use crate::document;
use crate::error::{CorruptionKind, Error, Result};
use crate::model::ChecklistState;

use super::document::{Committed, EncodedDocument, KeepBackup, Precondition, StoredBytes, WriteRequest};
use super::{DocumentStore, Expectation, StateStore, verified};

/// What [`DocumentStoreExt::commit_keeping_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUpWrite {
    /// The committed write.
    pub committed: Committed,
    /// The backup of the replaced state (`None` when there was no state to replace).
    pub backup: Option<BackupRecord>,
    /// The ids of the backups the policy pruned.
    pub pruned: Vec<String>,
}

/// Reading and writing documents as states: core's half of the document plane, for
/// every [`DocumentStore`].
#[async_trait]
pub trait DocumentStoreExt: DocumentStore {
    /// Reads and verifies the current state: `Ok(None)` when there is none, otherwise
    /// the document verified (schema version, schema, checksum) with its `revision` and
    /// `checksum` set. Never returns a document that failed verification.
    async fn read(&self) -> Result<Option<ChecklistState>> {
        match self.read_raw().await? {
            None => Ok(None),
            Some(bytes) => verified::verify(self.codec(), &bytes, self.info().location_path()).map(Some),
        }
    }

    /// Like [`read`](Self::read), sharing the verified state with what this process
    /// remembers of it instead of copying it: for a caller that only looks at the state
    /// (`status`, `verify`, a check before a transaction), to which a copy of thousands
    /// of steps is milliseconds and megabytes for nothing.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    async fn read_shared(&self) -> Result<Option<Arc<ChecklistState>>> {
        match self.read_raw().await? {
            None => Ok(None),
            Some(bytes) => {
                verified::verify_shared(self.codec(), &bytes, self.info().location_path()).map(Some)
            }
        }
    }

    /// Parses `bytes` in this store's format and checks them as a read would — schema
    /// version, then schema — but not the checksum (how a deliberate hand edit is
    /// read). Pure: touches nothing.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (`parse_error`, `schema_invalid`) or
    /// [`Error::UnsupportedVersion`], exactly where a read fails with them.
    fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
        let location = self.info().location_path();
        document::unseal_ignoring_checksum(super::decode(self.codec(), bytes, location)?, location)
    }

    /// Seals `state` as `revision` and encodes it in this store's format: the bytes a
    /// write stores and the state they verify to.
    ///
    /// # Errors
    /// [`Error::SchemaInvalid`] when the state breaks the schema or the codec cannot
    /// encode it.
    fn encode(&self, state: &ChecklistState, revision: u64) -> Result<(EncodedDocument, ChecklistState)> {
        let location = self.info().location_path();
        let sealed = document::seal(state, revision, location)?;
        let bytes = self
            .codec()
            .encode(&sealed.value)
            .map_err(|e| Error::SchemaInvalid {
                path: location.to_owned(),
                field_path: "/".to_owned(),
                message: format!("the {} codec could not encode it: {e}", self.codec().name()),
            })?;
        let mut written = state.clone();
        written.revision = revision;
        written.checksum = Some(sealed.checksum.clone());
        let encoded = EncodedDocument {
            bytes,
            revision,
            checksum: sealed.checksum,
        };
        Ok((encoded, written))
    }

    /// Seals and stores `state` as revision `revision` under `precondition`, keeping a
    /// backup and appending `audit` (given the new document's checksum) when asked: the
    /// one write every other convenience is spelled with.
    ///
    /// # Errors
    /// Those of [`encode`](Self::encode) (nothing written) and of
    /// [`DocumentStore::write`].
    async fn write_state(
        &self,
        state: &ChecklistState,
        revision: u64,
        precondition: Precondition,
        keep: Option<KeepBackup>,
        audit: Option<AuditRecord>,
    ) -> Result<super::WriteReceipt> {
        let (document, written) = self.encode(state, revision)?;
        // Remembered before the write, so a store can keep what they verify to in its
        // own cache as it writes them (true of the bytes whether or not the write lands).
        verified::remember(self.codec().name(), &document.bytes, written);
        let audit = audit.map(|record| record.checksum(document.checksum.clone()));
        self.write(WriteRequest {
            document,
            precondition,
            keep,
            audit,
        })
        .await
    }

    /// Replaces the state with `state` if the store meets `expect` (a compare-and-swap
    /// on the revision): the new revision is `expect.next_revision()`.
    /// `state.revision` and `state.checksum` are ignored.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the store does not meet `expect`, and the errors of
    /// [`write_state`](Self::write_state); on any error nothing changed.
    async fn commit(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
        Ok(self
            .write_state(state, expect.next_revision(), expect.into(), None, None)
            .await?
            .committed)
    }

    /// Like [`commit`](Self::commit), keeping the state it replaces as a backup and
    /// pruning the backups by `keep.policy`.
    ///
    /// # Errors
    /// As [`commit`](Self::commit); a failed write keeps no backup and prunes none.
    async fn commit_keeping_backup(
        &self,
        state: &ChecklistState,
        expect: Expectation,
        keep: KeepBackup,
    ) -> Result<BackedUpWrite> {
        let receipt = self
            .write_state(state, expect.next_revision(), expect.into(), Some(keep), None)
            .await?;
        Ok(BackedUpWrite {
            committed: receipt.committed,
            backup: receipt.backup,
            pruned: receipt.pruned,
        })
    }

    /// Replaces the stored document, whatever it holds, with `state` sealed as
    /// `revision` — if and only if the store still holds exactly the bytes `found`,
    /// or, for `None`, no document at all. How recovery replaces a document no read
    /// verifies, or one that is missing; call it while holding the lock, with a
    /// `revision` above every revision committed before, so compare-and-swap writers
    /// that read an older state still conflict.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] when the store holds something else (nothing
    /// changes), and the errors of [`write_state`](Self::write_state).
    async fn replace(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        let precondition = match found {
            None => Precondition::Absent,
            Some(bytes) => {
                let document = super::decode(self.codec(), bytes, self.info().location_path()).ok();
                Precondition::Bytes(StoredBytes::new(bytes.to_vec(), document.as_ref()))
            }
        };
        Ok(self
            .write_state(state, revision, precondition, None, None)
            .await?
            .committed)
    }
}

impl<T: DocumentStore + ?Sized> DocumentStoreExt for T {}

/// Conveniences across the planes, for every [`StateStore`].
#[async_trait]
pub trait StateStoreExt: StateStore {
    /// Reads the state, treating "no state" as an error: [`Error::StateMissing`] when
    /// the store holds backups or an audit trail of committed revisions (the state was
    /// lost, and recovery restores it), otherwise [`Error::NotInitialized`].
    async fn read_existing(&self) -> Result<ChecklistState> {
        match self.read().await? {
            Some(state) => Ok(state),
            None => Err(self.missing_state().await?),
        }
    }

    /// [`read_existing`](Self::read_existing) sharing the state, as
    /// [`read_shared`](DocumentStoreExt::read_shared) does.
    ///
    /// # Errors
    /// As [`read_existing`](Self::read_existing).
    async fn read_existing_shared(&self) -> Result<Arc<ChecklistState>> {
        match self.read_shared().await? {
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
        let path = self.info().location_path().to_owned();
        Ok(match lost_state_evidence(self).await? {
            Some(evidence) => Error::StateMissing { path, evidence },
            None => Error::NotInitialized { path },
        })
    }

    /// Reads the backup `id` and verifies it like the current state, checking that it
    /// holds the revision and checksum it is listed with.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an id that is not listed; [`Error::Corrupted`] naming
    /// the backup when it does not verify or does not match its listing.
    async fn read_verified_backup(&self, id: &str) -> Result<ChecklistState> {
        let listed = self.list_backups().await?;
        let Some(record) = listed.into_iter().find(|b| b.id == id) else {
            return Err(Error::NotFound {
                what: "backup",
                id: id.to_owned(),
                location: self.info().location.clone(),
            });
        };
        let bytes = self.read_backup(id).await?;
        let named = std::path::PathBuf::from(format!("{} (backup {id})", self.info().location));
        let state = verified::verify(self.codec(), &bytes, &named)?;
        let stored = state.checksum.as_deref().unwrap_or_default();
        if state.revision != record.revision || stored != record.checksum {
            return Err(Error::Corrupted {
                kind: CorruptionKind::ChecksumMismatch,
                path: named,
                detail: format!(
                    "it holds revision {} with checksum {stored}, but it is listed as revision {} with \
                     checksum {}",
                    state.revision, record.revision, record.checksum
                ),
            });
        }
        Ok(state)
    }
}

impl<T: StateStore + ?Sized> StateStoreExt for T {}

/// What a store without a state document still holds of committed revisions, in words
/// ("the store holds 3 backups (the newest of revision 22) and an audit trail up to
/// revision 23"), or `None` when it holds nothing: a new store.
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
