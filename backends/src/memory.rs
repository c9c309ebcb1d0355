//! The in-memory backend: the same semantics as the file backends, no disk.
//!
//! Documents go through the same [`document::seal`] / [`document::unseal`] pipeline,
//! so the revision, checksum, schema and conflict behaviour are exactly those of the
//! file backends. Clones of one [`MemoryStore`] share one store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry, validate_file_stem};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::{
    AuditLog, AuditRecord, BackupRecord, ChecklistState, Committed, CorruptionKind, Error, Expectation,
    Result, StateStore, document,
};
use serde_json::Value;

mod recovery;

/// What the store holds.
#[derive(Debug, Clone)]
enum Slot {
    Empty,
    /// A document this store sealed itself, as stored and as read.
    Sealed(Arc<Sealed>),
    /// Raw bytes put there by [`MemoryStore::replace_raw`]; parsed (as JSON) on read.
    Raw(Vec<u8>),
}

/// A sealed document with the state it reads back as. Nothing but this store can
/// change it (raw edits become [`Slot::Raw`]), so reads return the state without
/// re-verifying it.
#[derive(Debug)]
struct Sealed {
    value: Value,
    state: ChecklistState,
}

/// An in-memory [`StateStore`]. Cheap to clone; clones share one store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> checklist_core::Result<()> {
/// use checklist_backends::MemoryStore;
/// use checklist_core::{ChecklistState, Expectation, StateStore};
///
/// let store = MemoryStore::new();
/// let other_handle = store.clone();
/// store.write(&ChecklistState::new(), Expectation::Absent).await?;
/// assert_eq!(other_handle.read().await?.unwrap().revision, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    location: PathBuf,
    slot: Mutex<Slot>,
    /// The audit trail; kept whole (memory stores are short-lived, so it never
    /// rotates).
    audit: Mutex<Vec<AuditRecord>>,
    /// Backups with the sealed document each keeps.
    backups: Mutex<Vec<(BackupRecord, Arc<Sealed>)>>,
    /// Archived instances as sealed documents, with their history entries, in
    /// archiving order.
    archive: Mutex<Vec<(HistoryEntry, Value)>>,
    /// Quarantined documents with their exact bytes.
    quarantine: Mutex<Vec<(QuarantineRecord, Vec<u8>)>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A new, empty store with a unique `memory:<n>` location.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self::named(format!("memory:{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// A new, empty store whose location (used in messages) is `location`.
    pub fn named(location: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                location: location.into(),
                slot: Mutex::new(Slot::Empty),
                audit: Mutex::new(Vec::new()),
                backups: Mutex::new(Vec::new()),
                archive: Mutex::new(Vec::new()),
                quarantine: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The stored document as pretty JSON bytes (`None` when empty), as a file backend
    /// would hold it on disk. For tests and diagnostics.
    pub fn raw(&self) -> Option<Vec<u8>> {
        Self::raw_of(&self.slot())
    }

    fn raw_of(slot: &Slot) -> Option<Vec<u8>> {
        match slot {
            Slot::Empty => None,
            Slot::Sealed(sealed) => serde_json::to_vec_pretty(&sealed.value).ok(),
            Slot::Raw(bytes) => Some(bytes.clone()),
        }
    }

    /// Replaces the stored document with arbitrary bytes, bypassing every check — the
    /// in-memory equivalent of editing the state file by hand. The next read parses
    /// them as JSON and verifies them like any other document.
    pub fn replace_raw(&self, bytes: Vec<u8>) {
        *self.slot() = Slot::Raw(bytes);
    }

    /// Deletes the stored document, bypassing every check, leaving its backups, audit
    /// trail, archive and quarantine — the in-memory equivalent of deleting the state
    /// file by hand.
    pub fn remove_raw(&self) {
        *self.slot() = Slot::Empty;
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.inner.slot)
    }

    fn unseal_raw(&self, bytes: &[u8]) -> Result<ChecklistState> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Corrupted {
            kind: CorruptionKind::ParseError,
            path: self.inner.location.clone(),
            detail: e.to_string(),
        })?;
        document::unseal(value, &self.inner.location)
    }

    fn verify(&self, slot: &Slot) -> Result<Option<ChecklistState>> {
        match slot {
            Slot::Empty => Ok(None),
            Slot::Sealed(sealed) => Ok(Some(sealed.state.clone())),
            Slot::Raw(bytes) => self.unseal_raw(bytes).map(Some),
        }
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn backend_name(&self) -> &str {
        "memory"
    }

    fn location(&self) -> &Path {
        &self.inner.location
    }

    async fn read(&self) -> Result<Option<ChecklistState>> {
        let slot = self.slot().clone();
        self.verify(&slot)
    }

    async fn write(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
        let revision = expect.next_revision();
        let sealed = document::seal(state, revision, &self.inner.location)?;
        let mut slot = self.slot();
        let found = match &*slot {
            Slot::Empty => None,
            Slot::Sealed(sealed) => Some(sealed.state.revision),
            raw @ Slot::Raw(_) => self.verify(raw)?.map(|s| s.revision),
        };
        if !expect.is_met_by(found) {
            return Err(Error::Conflict {
                path: self.inner.location.clone(),
                expected: expect,
                found,
            });
        }
        Ok(put_sealed(&mut slot, state, sealed))
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        lock(&self.inner.audit).push(record.clone());
        Ok(())
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        Ok(AuditLog {
            records: lock(&self.inner.audit).clone(),
            problems: Vec::new(),
        })
    }

    async fn rotate_audit(&self) -> Result<bool> {
        Ok(false)
    }

    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let sealed = match &*self.slot() {
            Slot::Empty => return Ok(None),
            Slot::Sealed(sealed) => Arc::clone(sealed),
            raw @ Slot::Raw(_) => {
                let Some(state) = self.verify(raw)? else {
                    return Ok(None);
                };
                let value = document::seal(&state, state.revision, &self.inner.location)?.value;
                Arc::new(Sealed { value, state })
            }
        };
        let now = checklist_core::model::now();
        let id = format!("{}-{}", sealed.state.revision, now.format("%Y%m%dT%H%M%S%3fZ"));
        let record = BackupRecord {
            file: format!("memory-backup-{id}"),
            id,
            revision: sealed.state.revision,
            checksum: sealed.state.checksum.clone().unwrap_or_default(),
            size: serde_json::to_vec(&sealed.value).map_or(0, |b| b.len() as u64),
            created_at: now,
            reason: reason.to_owned(),
        };
        let mut backups = lock(&self.inner.backups);
        backups.retain(|(b, _)| b.id != record.id);
        backups.push((record.clone(), sealed));
        Ok(Some(record))
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        let mut backups: Vec<BackupRecord> =
            lock(&self.inner.backups).iter().map(|(b, _)| b.clone()).collect();
        backups.sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
        Ok(backups)
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        let mut backups = lock(&self.inner.backups);
        let before = backups.len();
        backups.retain(|(b, _)| b.id != id);
        if backups.len() == before {
            return Err(Error::invalid(format!(
                "there is no backup {id} in {}",
                self.inner.location.display()
            )));
        }
        Ok(())
    }

    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let id = &archived.instance.id;
        validate_file_stem("instance id", id)?;
        let location = self.inner.location.join("archive").join(id);
        let sealed = archived.seal(&location)?;
        let entry = archived.history_entry(format!("archive/{id}"), sealed.checksum);
        let mut archive = lock(&self.inner.archive);
        archive.retain(|(e, _)| e.instance_id != *id);
        archive.push((entry.clone(), sealed.value));
        Ok(entry)
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(lock(&self.inner.archive).iter().map(|(e, _)| e.clone()).collect())
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        validate_file_stem("instance id", instance_id)?;
        let value = lock(&self.inner.archive)
            .iter()
            .find(|(e, _)| e.instance_id == instance_id)
            .map(|(_, value)| value.clone());
        let location = self.inner.location.join("archive").join(instance_id);
        match value {
            Some(value) => ArchivedInstance::unseal(value, &location),
            None => Err(Error::invalid(format!(
                "instance {instance_id} is not archived in {}",
                self.inner.location.display()
            ))),
        }
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.raw())
    }

    fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
        self.parse_ignoring_checksum_impl(bytes)
    }

    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        self.quarantine_impl(found, note)
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        Ok(self.list_quarantine_impl())
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.read_quarantined_impl(id)
    }

    async fn write_over(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        self.write_over_impl(found, state, revision)
    }

    async fn read_backup(&self, id: &str) -> Result<ChecklistState> {
        self.read_backup_impl(id)
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.rebuild_backup_index_impl()
    }
}

/// Stores `state` as `sealed` holds it, and says what was committed.
fn put_sealed(slot: &mut Slot, state: &ChecklistState, sealed: document::SealedDocument) -> Committed {
    let mut stored = state.clone();
    stored.revision = sealed.revision;
    stored.checksum = Some(sealed.checksum.clone());
    *slot = Slot::Sealed(Arc::new(Sealed {
        value: sealed.value,
        state: stored,
    }));
    Committed {
        revision: sealed.revision,
        checksum: sealed.checksum,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
