//! The in-memory backend: the same semantics as the file backends, no disk.
//!
//! It keeps bytes, as every backend does: core seals, encodes (as JSON) and verifies
//! the documents, so the revision, checksum, schema and conflict behaviour are exactly
//! those of the file backends. Clones of one [`MemoryStore`] share one store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry, validate_file_stem};
use checklist_core::backup::{BackupIndexRebuild, validate_backup_id};
use checklist_core::codec::Codec;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, bytes_sha256, new_quarantine_id};
use checklist_core::store::{self, Capabilities};
use checklist_core::{
    ArchiveStore, AuditLog, AuditRecord, AuditTrail, BackupRecord, BackupStore, ChangeFeed, ChangeWatch,
    Committed, DocumentStore, Error, QuarantineStore, Result, StoreInfo, WriteReceipt, WriteRequest,
};
use serde_json::Value;

use crate::codec::json::JsonCodec;

/// An in-memory store. Cheap to clone; clones share one store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> checklist_core::Result<()> {
/// use checklist_backends::MemoryStore;
/// use checklist_core::{ChecklistState, DocumentStoreExt, Expectation};
///
/// let store = MemoryStore::new();
/// let other_handle = store.clone();
/// store.commit(&ChecklistState::new(), Expectation::Absent).await?;
/// assert_eq!(other_handle.read().await?.unwrap().revision, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    info: StoreInfo,
    /// The document's bytes, as a file backend would hold them on disk.
    document: Mutex<Option<Vec<u8>>>,
    /// The audit trail as JSON Lines, the bytes a file backend appends to
    /// `audit.log`, read back by the same parser; kept whole (memory stores are
    /// short-lived, so it never rotates).
    audit: Mutex<Vec<u8>>,
    /// Backups with the bytes each keeps.
    backups: Mutex<Vec<(BackupRecord, Vec<u8>)>>,
    /// Archived instances as sealed documents, with their history entries, in
    /// archiving order.
    archive: Mutex<Vec<(HistoryEntry, Value)>>,
    /// Quarantined documents with their exact bytes.
    quarantine: Mutex<Vec<(QuarantineRecord, Vec<u8>)>>,
    /// Counts the changes of the document and the audit trail; every watch holds a
    /// receiver, so a change wakes each at once.
    changes: tokio::sync::watch::Sender<u64>,
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
    pub fn named(location: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                info: StoreInfo::new(
                    "memory",
                    location,
                    Capabilities::EPHEMERAL.with_pushed_changes(true),
                ),
                document: Mutex::new(None),
                audit: Mutex::new(Vec::new()),
                backups: Mutex::new(Vec::new()),
                archive: Mutex::new(Vec::new()),
                quarantine: Mutex::new(Vec::new()),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// The stored document's bytes (`None` when empty): pretty JSON, as a file backend
    /// would hold it on disk. For tests and diagnostics.
    pub fn raw(&self) -> Option<Vec<u8>> {
        lock(&self.inner.document).clone()
    }

    /// Replaces the stored document with arbitrary bytes, bypassing every check — the
    /// in-memory equivalent of editing the state file by hand. The next read parses
    /// them as JSON and verifies them like any other document.
    pub fn replace_raw(&self, bytes: Vec<u8>) {
        *lock(&self.inner.document) = Some(bytes);
        self.changed();
    }

    /// Deletes the stored document, bypassing every check, leaving its backups, audit
    /// trail, archive and quarantine — the in-memory equivalent of deleting the state
    /// file by hand.
    pub fn remove_raw(&self) {
        *lock(&self.inner.document) = None;
        self.changed();
    }

    /// Appends arbitrary bytes to the audit trail, bypassing every check — the
    /// in-memory equivalent of a crash in the middle of an append to `audit.log`, which
    /// leaves part of a record. The next read reports what does not parse.
    pub fn append_raw_audit(&self, bytes: &[u8]) {
        lock(&self.inner.audit).extend_from_slice(bytes);
        self.changed();
    }

    /// The bytes the backup `id` keeps (`None` when it is not listed). For tests and
    /// diagnostics.
    pub fn backup_raw(&self, id: &str) -> Option<Vec<u8>> {
        lock(&self.inner.backups)
            .iter()
            .find(|(b, _)| b.id == id)
            .map(|(_, bytes)| bytes.clone())
    }

    /// Replaces the bytes the backup `id` keeps, leaving its listing as it is — the
    /// in-memory equivalent of a backup file damaged on disk. Returns whether `id` is
    /// listed.
    pub fn replace_backup_raw(&self, id: &str, bytes: Vec<u8>) -> bool {
        lock(&self.inner.backups)
            .iter_mut()
            .find(|(b, _)| b.id == id)
            .map(|(_, kept)| *kept = bytes)
            .is_some()
    }

    /// Appends `record` on a line of its own: after a torn append, on the next line,
    /// so the fragment cannot swallow it (as the file backends do).
    fn append_record(&self, record: &AuditRecord) {
        {
            let mut audit = lock(&self.inner.audit);
            if audit.last().is_some_and(|byte| *byte != b'\n') {
                audit.push(b'\n');
            }
            audit.extend_from_slice(&record.to_line());
        }
        self.changed();
    }

    /// Wakes every watch: the document or the audit trail changed.
    fn changed(&self) {
        self.inner.changes.send_modify(|count| *count += 1);
    }

    fn location(&self) -> &str {
        &self.inner.info.location
    }

    fn not_found(&self, what: &'static str, id: &str) -> Error {
        Error::NotFound {
            what,
            id: id.to_owned(),
            location: self.location().to_owned(),
        }
    }

    /// The revision and checksum of `bytes`, verified.
    fn contents(&self, bytes: &[u8]) -> Result<(u64, String)> {
        let state = store::verify(&JsonCodec, bytes, self.inner.info.location_path())?;
        Ok((state.revision, state.checksum.unwrap_or_default()))
    }

    fn backup_record(&self, revision: u64, checksum: String, size: u64, reason: &str) -> BackupRecord {
        let now = checklist_core::model::now();
        let id = format!("{revision}-{}", now.format("%Y%m%dT%H%M%S%3fZ"));
        BackupRecord {
            location: format!("{}/backup/{id}", self.location()),
            id,
            revision,
            checksum,
            size,
            created_at: now,
            reason: reason.to_owned(),
        }
    }

    fn keep(&self, record: BackupRecord, bytes: Vec<u8>) {
        let mut backups = lock(&self.inner.backups);
        backups.retain(|(b, _)| b.id != record.id);
        backups.push((record, bytes));
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    fn info(&self) -> &StoreInfo {
        &self.inner.info
    }

    fn codec(&self) -> &dyn Codec {
        &JsonCodec
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.raw())
    }

    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        let old = {
            let mut document = lock(&self.inner.document);
            let replaced = request.precondition.check(
                document.as_deref(),
                &JsonCodec,
                self.inner.info.location_path(),
            )?;
            replaced.zip(document.replace(request.document.bytes))
        };
        self.changed();
        let backup = match (&request.keep, old) {
            (Some(keep), Some(((revision, checksum), old))) => {
                let record = self.backup_record(revision, checksum, old.len() as u64, &keep.reason);
                self.keep(record.clone(), old);
                Some(record)
            }
            _ => None,
        };
        let mut pruned = Vec::new();
        if let Some(policy) = request.keep.as_ref().and_then(|k| k.policy.as_deref())
            && backup.is_some()
        {
            let listed = self.list_backups().await?;
            let ids = policy.to_prune(&listed, checklist_core::model::now());
            lock(&self.inner.backups).retain(|(b, _)| !ids.contains(&b.id));
            pruned = ids;
        }
        if let Some(record) = &request.audit {
            self.append_record(record);
        }
        Ok(WriteReceipt {
            committed: Committed {
                revision: request.document.revision,
                checksum: request.document.checksum,
            },
            backup,
            pruned,
            unaudited: None,
        })
    }
}

#[async_trait]
impl AuditTrail for MemoryStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.append_record(record);
        Ok(())
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        let mut log = AuditLog::default();
        let lines = lock(&self.inner.audit).clone();
        log.parse_into(&self.inner.info.location_path().join("audit"), &lines, true);
        Ok(log)
    }

    async fn rotate_audit(&self) -> Result<bool> {
        Ok(false)
    }
}

#[async_trait]
impl BackupStore for MemoryStore {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let Some(bytes) = self.raw() else {
            return Ok(None);
        };
        let (revision, checksum) = self.contents(&bytes)?;
        let record = self.backup_record(revision, checksum, bytes.len() as u64, reason);
        self.keep(record.clone(), bytes);
        Ok(Some(record))
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        let mut backups: Vec<BackupRecord> =
            lock(&self.inner.backups).iter().map(|(b, _)| b.clone()).collect();
        backups.sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
        Ok(backups)
    }

    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        lock(&self.inner.backups)
            .iter()
            .find(|(b, _)| b.id == id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| self.not_found("backup", id))
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        let mut backups = lock(&self.inner.backups);
        let before = backups.len();
        backups.retain(|(b, _)| b.id != id);
        if backups.len() == before {
            return Err(self.not_found("backup", id));
        }
        Ok(())
    }

    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        validate_backup_id(&record.id)?;
        let mut backups = lock(&self.inner.backups);
        if backups.iter().any(|(b, _)| b.id == record.id) {
            return Err(Error::already_listed("backup", &record.id, self.location()));
        }
        let kept = BackupRecord {
            location: format!("{}/backup/{}", self.location(), record.id),
            size: document.len() as u64,
            ..record.clone()
        };
        backups.push((kept.clone(), document.to_vec()));
        Ok(kept)
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        Err(Error::Unsupported {
            operation: "rebuilding the backup index (it keeps no index apart from its backups)".to_owned(),
            backend: "memory".to_owned(),
            location: self.location().to_owned(),
        })
    }
}

#[async_trait]
impl ArchiveStore for MemoryStore {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let id = &archived.instance.id;
        validate_file_stem("instance id", id)?;
        let location = self.inner.info.location_path().join("archive").join(id);
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
        let location = self.inner.info.location_path().join("archive").join(instance_id);
        match value {
            Some(value) => ArchivedInstance::unseal(value, &location),
            None => Err(self.not_found("archived instance", instance_id)),
        }
    }
}

#[async_trait]
impl QuarantineStore for MemoryStore {
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let stored = self.raw();
        if stored.as_deref() != Some(found) {
            return Err(Error::PreconditionFailed {
                path: self.inner.info.location_path().to_owned(),
                expected: format!("the {} bytes read before", found.len()),
                found: stored.map_or_else(|| "no state".to_owned(), |b| format!("{} other bytes", b.len())),
            });
        }
        let now = checklist_core::model::now();
        let id = new_quarantine_id(now);
        let record = QuarantineRecord {
            location: format!("{}/quarantine/{id}", self.location()),
            id,
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        };
        lock(&self.inner.quarantine).push((record.clone(), found.to_vec()));
        Ok(record)
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        Ok(lock(&self.inner.quarantine)
            .iter()
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        lock(&self.inner.quarantine)
            .iter()
            .find(|(r, _)| r.id == id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| self.not_found("quarantined document", id))
    }

    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        validate_backup_id(&record.id)?;
        let mut quarantine = lock(&self.inner.quarantine);
        if quarantine.iter().any(|(r, _)| r.id == record.id) {
            return Err(Error::already_listed(
                "quarantined document",
                &record.id,
                self.location(),
            ));
        }
        let kept = QuarantineRecord {
            location: format!("{}/quarantine/{}", self.location(), record.id),
            ..record.clone()
        };
        quarantine.push((kept.clone(), found.to_vec()));
        quarantine.sort_by(|(a, _), (b, _)| a.quarantined_at.cmp(&b.quarantined_at).then(a.id.cmp(&b.id)));
        Ok(kept)
    }
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        Ok(Box::new(MemoryWatch {
            changes: self.inner.changes.subscribe(),
            store: Arc::clone(&self.inner),
        }))
    }
}

/// A watch of a [`MemoryStore`]: a receiver of its change count.
#[derive(Debug)]
struct MemoryWatch {
    changes: tokio::sync::watch::Receiver<u64>,
    /// Keeps the sender alive, so `changed` waits rather than failing when every other
    /// handle of the store is dropped.
    store: Arc<MemoryInner>,
}

#[async_trait]
impl ChangeWatch for MemoryWatch {
    async fn changed(&mut self) -> Result<()> {
        self.changes.changed().await.map_err(|e| Error::Backend {
            backend: "memory".into(),
            operation: "watch".into(),
            location: self.store.info.location.clone(),
            source: Box::new(e),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
