//! The memory store's side of recovery: the same API as the file engine, with its
//! quarantine kept in memory beside the store.

use checklist_core::backup::{BackupIndexRebuild, validate_backup_id};
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, bytes_sha256, new_quarantine_id};
use checklist_core::{ChecklistState, Committed, CorruptionKind, Error, Result, document};
use serde_json::Value;

use super::{MemoryStore, Slot, lock, put_sealed};

impl MemoryStore {
    pub(super) fn parse_ignoring_checksum_impl(&self, bytes: &[u8]) -> Result<ChecklistState> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Corrupted {
            kind: CorruptionKind::ParseError,
            path: self.inner.location.clone(),
            detail: e.to_string(),
        })?;
        document::unseal_ignoring_checksum(value, &self.inner.location)
    }

    fn check_unchanged(&self, slot: &Slot, found: Option<&[u8]>, doing: &str) -> Result<()> {
        if Self::raw_of(slot).as_deref() == found {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "{} changed while it was being {doing}; nothing was changed, run the command again",
            self.inner.location.display()
        )))
    }

    pub(super) fn quarantine_impl(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let slot = self.slot();
        self.check_unchanged(&slot, Some(found), "quarantined")?;
        let now = checklist_core::model::now();
        let id = new_quarantine_id(now);
        let record = QuarantineRecord {
            location: format!("{}/quarantine/{id}", self.inner.location.display()),
            id,
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        };
        lock(&self.inner.quarantine).push((record.clone(), found.to_vec()));
        Ok(record)
    }

    pub(super) fn list_quarantine_impl(&self) -> Vec<QuarantineRecord> {
        lock(&self.inner.quarantine)
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub(super) fn read_quarantined_impl(&self, id: &str) -> Result<Vec<u8>> {
        validate_backup_id(id)?;
        lock(&self.inner.quarantine)
            .iter()
            .find(|(r, _)| r.id == id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "there is no quarantined document {id} in {}",
                    self.inner.location.display()
                ))
            })
    }

    pub(super) fn write_over_impl(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        let sealed = document::seal(state, revision, &self.inner.location)?;
        let mut slot = self.slot();
        self.check_unchanged(&slot, found, "recovered")?;
        Ok(put_sealed(&mut slot, state, sealed))
    }

    pub(super) fn read_backup_impl(&self, id: &str) -> Result<ChecklistState> {
        validate_backup_id(id)?;
        lock(&self.inner.backups)
            .iter()
            .find(|(b, _)| b.id == id)
            // A memory backup is a sealed document nothing else can reach: it verified
            // when it was sealed and cannot have changed since.
            .map(|(_, sealed)| sealed.state.clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "there is no backup {id} in {}; `checklist backup list` shows the backups",
                    self.inner.location.display()
                ))
            })
    }

    pub(super) fn rebuild_backup_index_impl(&self) -> Result<BackupIndexRebuild> {
        Err(Error::invalid(format!(
            "the memory backend at {} keeps its backup index with the backups themselves, in memory; \
             there is no index file that could be lost, so there is nothing to rebuild",
            self.inner.location.display()
        )))
    }
}
