//! The in-memory backend: the same semantics as the file backends, no disk.
//!
//! Documents go through the same [`document::seal`] / [`document::unseal`] pipeline,
//! so the revision, checksum, schema and conflict behaviour are exactly those of the
//! file backends. Clones of one [`MemoryStore`] share one store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use checklist_core::{
    AuditLog, AuditRecord, BackupRecord, ChecklistState, Committed, CorruptionKind, Error, Expectation,
    Result, StateStore, document,
};
use serde_json::Value;

/// What the store holds.
#[derive(Debug, Clone)]
enum Slot {
    Empty,
    /// A sealed document and its revision.
    Sealed(Value, u64),
    /// Raw bytes put there by [`MemoryStore::replace_raw`]; parsed (as JSON) on read.
    Raw(Vec<u8>),
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
    backups: Mutex<Vec<(BackupRecord, Value)>>,
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
            }),
        }
    }

    /// The stored document as pretty JSON bytes (`None` when empty), as a file backend
    /// would hold it on disk. For tests and diagnostics.
    pub fn raw(&self) -> Option<Vec<u8>> {
        match &*self.slot() {
            Slot::Empty => None,
            Slot::Sealed(value, _) => serde_json::to_vec_pretty(value).ok(),
            Slot::Raw(bytes) => Some(bytes.clone()),
        }
    }

    /// Replaces the stored document with arbitrary bytes, bypassing every check — the
    /// in-memory equivalent of editing the state file by hand. The next read parses
    /// them as JSON and verifies them like any other document.
    pub fn replace_raw(&self, bytes: Vec<u8>) {
        *self.slot() = Slot::Raw(bytes);
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
            Slot::Sealed(value, _) => document::unseal(value.clone(), &self.inner.location).map(Some),
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
            Slot::Sealed(_, revision) => Some(*revision),
            raw @ Slot::Raw(_) => self.verify(raw)?.map(|s| s.revision),
        };
        if !expect.is_met_by(found) {
            return Err(Error::Conflict {
                path: self.inner.location.clone(),
                expected: expect,
                found,
            });
        }
        *slot = Slot::Sealed(sealed.value, revision);
        Ok(Committed {
            revision,
            checksum: sealed.checksum,
        })
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
        let slot = self.slot().clone();
        let Some(state) = self.verify(&slot)? else {
            return Ok(None);
        };
        let value = document::seal(&state, state.revision, &self.inner.location)?.value;
        let now = checklist_core::model::now();
        let id = format!("{}-{}", state.revision, now.format("%Y%m%dT%H%M%S%3fZ"));
        let record = BackupRecord {
            file: format!("memory-backup-{id}"),
            id,
            revision: state.revision,
            checksum: state.checksum.unwrap_or_default(),
            size: serde_json::to_vec(&value).map_or(0, |b| b.len() as u64),
            created_at: now,
            reason: reason.to_owned(),
        };
        let mut backups = lock(&self.inner.backups);
        backups.retain(|(b, _)| b.id != record.id);
        backups.push((record.clone(), value));
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
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
