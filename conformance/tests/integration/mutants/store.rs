//! Broken stores: a correct [`YamlFileStore`] wrapped so that exactly one behaviour is
//! wrong, everything else delegated.

use std::io::Write as _;

use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::{BackupIndexRebuild, BackupRecord};
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::store::StoredBytes;
use checklist_core::{ArchiveStore, BackupStore, ChangeFeed, ChangeWatch, ChecklistState, QuarantineStore};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use checklist_backends::{Codec, YamlFileStore};
use checklist_core::prelude::*;
use checklist_core::{
    AuditLog, AuditRecord, AuditTrail, Committed, DocumentStore, Error, Expectation, Precondition, Result,
    RollingBackups, StoreInfo, WriteReceipt, WriteRequest,
};

/// The one thing a [`BrokenStore`] gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreBug {
    /// Nothing: the wrapper alone, to show the harness is sound.
    None,
    /// `write` truncates the state file and writes the new document in place, in two
    /// halves, instead of temp file + rename.
    WritesInPlace,
    /// `read_raw` hands out a freshly sealed copy of the stored document, so one whose
    /// checksum no longer matches reads as if it did.
    ResealsOnRead,
    /// `write` ignores the precondition and writes over whatever is stored.
    IgnoresExpectation,
    /// `write` over a state marked as moved writes anyway (a precondition check of
    /// its own that only compares revisions).
    WritesOverAMovedState,
    /// `import_backup` lists the backup as taken now, not when the record says.
    ImportStampsItsOwnTime,
    /// `write` keeps no backup although asked to.
    KeepsNoBackup,
    /// `write` backs up the new revision instead of the replaced one.
    BacksUpTheNewRevision,
    /// `write` prunes down to 1 backup whatever the policy says.
    PrunesDownToOne,
    /// `append_audit` reads the whole log, adds the record and rewrites the file.
    AuditRewrites,
    /// `rotate_audit` deletes the part it just rotated out instead of keeping it.
    AuditRotationDrops,
    /// `write` stores every non-ASCII character of every string as `?` (an ASCII-only
    /// encoder), sealed afresh so the document still verifies.
    WritesAsciiOnly,
    /// `write` keeps integers through a float (as JavaScript or a REAL column would).
    IntegersThroughFloats,
    /// `write` skips a document equal to the stored one and reports the stored
    /// revision as committed, unaudited.
    SkipsUnchangedWrites,
    /// `write` expecting no document treats one that does not verify as none.
    TreatsCorruptAsAbsent,
    /// `delete_backup` deletes the oldest listed backup, whatever it is asked.
    DeletesTheOldestBackup,
    /// `delete_backup` unlists the backup but leaves its bytes.
    DeleteLeavesTheBytes,
    /// `read_backup` hands out the newest backup that verifies when the one asked for
    /// does not.
    ReadBackupFallsBack,
    /// `rebuild_backup_index` deletes the files it could not verify.
    RebuildDeletesWhatItSkips,
    /// `append_audit` silently drops a record with non-ASCII text.
    AuditDropsNonAscii,
    /// `read_audit` fails outright when a line is not a record.
    AuditFailsOnATornLine,
    /// `read_archived` returns the most recently archived instance, whatever it is
    /// asked.
    ReadArchivedReturnsTheLatest,
    /// `archive` of an instance archived before updates its history entry but keeps
    /// the old archived document.
    ArchiveAgainKeepsTheOldDocument,
    /// `archive` of an instance that breaks the schema reports success, with a history
    /// entry, and stores nothing.
    ArchivesInvalidInstancesAsNothing,
    /// `list_quarantine` lists newest first.
    QuarantineListedNewestFirst,
    /// `quarantine` keeps the bytes as a hard link to the state file (as the file
    /// engine once did), which shares its inode until recovery replaces it.
    QuarantinesByHardLink,
    /// A watch wakes for the first change after it was made, and never again (a
    /// one-shot notification, as inotify's `IN_ONESHOT` would give).
    WatchWakesOnce,
}

/// A correct YAML file store with one [`StoreBug`].
#[derive(Debug, Clone)]
pub(crate) struct BrokenStore {
    inner: YamlFileStore,
    bug: StoreBug,
    dir: PathBuf,
    /// Serialises this backend's in-place writes within the process, so that the only
    /// thing wrong with [`StoreBug::WritesInPlace`] is the torn file, not the
    /// compare-and-swap.
    write_mutex: Arc<tokio::sync::Mutex<()>>,
}

impl BrokenStore {
    pub(crate) fn new(
        inner: YamlFileStore,
        bug: StoreBug,
        dir: &Path,
        write_mutex: Arc<tokio::sync::Mutex<()>>,
    ) -> Self {
        Self {
            inner,
            bug,
            dir: dir.to_owned(),
            write_mutex,
        }
    }

    async fn stored_revision(&self) -> Result<Option<u64>> {
        match self.inner.read_raw().await? {
            None => Ok(None),
            Some(bytes) => Ok(Some(self.inner.parse_ignoring_checksum(&bytes)?.revision)),
        }
    }

    async fn write_in_place(&self, request: WriteRequest) -> Result<WriteReceipt> {
        let _serial = self.write_mutex.lock().await;
        let found = match self.inner.read().await? {
            None => None,
            Some(current) => Some(current.revision),
        };
        let expect = match request.precondition {
            Precondition::Revision(r) => Expectation::Revision(r),
            _ => Expectation::Absent,
        };
        if !expect.is_met_by(found) {
            return Err(Error::Conflict {
                path: self.inner.state_path().to_owned(),
                expected: expect,
                found,
            });
        }
        let path = self.inner.state_path().to_owned();
        let bytes = request.document.bytes;
        let committed = Committed {
            revision: request.document.revision,
            checksum: request.document.checksum,
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            let (head, tail) = bytes.split_at(bytes.len() / 2);
            file.write_all(head)?;
            file.flush()?;
            // The window a crash or a concurrent reader falls into (a slow disk).
            std::thread::sleep(Duration::from_millis(5));
            file.write_all(tail)?;
            file.sync_all()
        })
        .await
        .expect("the in-place write task")
        .map_err(|e| Error::invalid(format!("in-place write: {e}")))?;
        if let Some(record) = &request.audit {
            self.inner.append_audit(record).await?;
        }
        Ok(WriteReceipt {
            committed,
            backup: None,
            pruned: Vec::new(),
            unaudited: None,
        })
    }

    /// The request's document decoded, changed by `change`, and sealed afresh: what a
    /// backend that mangles values on the way in stores, consistently.
    fn rewrite_document(&self, request: &mut WriteRequest, change: fn(&mut Value)) -> Result<()> {
        let mut value = checklist_core::store::decode(
            self.inner.codec(),
            &request.document.bytes,
            self.inner.state_path(),
        )?;
        change(&mut value);
        let state: ChecklistState =
            serde_json::from_value(value).map_err(|e| Error::invalid(format!("mangled document: {e}")))?;
        request.document = self.inner.encode(&state, request.document.revision)?.0;
        Ok(())
    }

    /// Whether the stored document holds what `request` would store, apart from its
    /// revision and checksum.
    async fn stores_the_same(&self, request: &WriteRequest) -> Result<Option<Committed>> {
        let Some(stored) = self.inner.read().await? else {
            return Ok(None);
        };
        let new = self.inner.parse_ignoring_checksum(&request.document.bytes)?;
        let (mut a, mut b) = (stored.clone(), new);
        a.revision = 0;
        b.revision = 0;
        a.checksum = None;
        b.checksum = None;
        Ok((a == b).then(|| Committed {
            revision: stored.revision,
            checksum: stored.checksum.unwrap_or_default(),
        }))
    }

    async fn append_by_rewriting(&self, record: &AuditRecord) -> Result<()> {
        let path = self.dir.join("audit.log");
        let line = record.to_line();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut all = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            all.extend(line);
            std::fs::write(&path, all)
        })
        .await
        .expect("the audit rewrite task")
        .map_err(|e| Error::invalid(format!("rewriting the audit log: {e}")))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl DocumentStore for BrokenStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }

    fn codec(&self) -> &dyn Codec {
        self.inner.codec()
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        let raw = self.inner.read_raw().await?;
        if self.bug != StoreBug::ResealsOnRead {
            return Ok(raw);
        }
        // Hands out a freshly sealed copy of whatever is stored, so a document whose
        // checksum no longer matches reads as if it did.
        match raw {
            None => Ok(None),
            Some(bytes) => match self.inner.parse_ignoring_checksum(&bytes) {
                Ok(state) => Ok(Some(self.inner.encode(&state, state.revision)?.0.bytes)),
                Err(_) => Ok(Some(bytes)),
            },
        }
    }

    async fn write(&self, mut request: WriteRequest) -> Result<WriteReceipt> {
        match self.bug {
            StoreBug::WritesInPlace => return self.write_in_place(request).await,
            StoreBug::IgnoresExpectation => {
                request.precondition = match self.stored_revision().await? {
                    Some(found) => Precondition::Revision(found),
                    None => Precondition::Absent,
                };
            }
            StoreBug::WritesOverAMovedState => {
                if let Some(found) = self.inner.read_raw().await?
                    && self
                        .inner
                        .read()
                        .await?
                        .is_some_and(|state| state.moved_to.is_some())
                {
                    let document =
                        checklist_core::store::decode(self.inner.codec(), &found, Path::new("x")).ok();
                    request.precondition = Precondition::Bytes(StoredBytes::new(found, document.as_ref()));
                }
            }
            StoreBug::KeepsNoBackup => request.keep = None,
            StoreBug::BacksUpTheNewRevision => {
                let keep = request.keep.take();
                let mut receipt = self.inner.write(request).await?;
                if let Some(keep) = keep {
                    receipt.backup = self.inner.create_backup(&keep.reason).await?;
                    let listed = self.inner.list_backups().await?;
                    if let Some(policy) = keep.policy {
                        for id in policy.to_prune(&listed, chrono::Utc::now()) {
                            self.inner.delete_backup(&id).await?;
                            receipt.pruned.push(id);
                        }
                    }
                }
                return Ok(receipt);
            }
            StoreBug::PrunesDownToOne => {
                if let Some(keep) = &mut request.keep {
                    keep.policy = Some(Arc::new(RollingBackups::keep(1)));
                }
            }
            StoreBug::AuditRewrites => {
                let audit = request.audit.take();
                let mut receipt = self.inner.write(request).await?;
                if let Some(record) = audit {
                    receipt.unaudited = self.append_by_rewriting(&record).await.err();
                }
                return Ok(receipt);
            }
            StoreBug::WritesAsciiOnly => self.rewrite_document(&mut request, ascii_only)?,
            StoreBug::IntegersThroughFloats => {
                self.rewrite_document(&mut request, integers_through_floats)?
            }
            StoreBug::SkipsUnchangedWrites => {
                if let Some(committed) = self.stores_the_same(&request).await? {
                    return Ok(WriteReceipt {
                        committed,
                        backup: None,
                        pruned: Vec::new(),
                        unaudited: None,
                    });
                }
            }
            StoreBug::TreatsCorruptAsAbsent => {
                if matches!(request.precondition, Precondition::Absent)
                    && self.inner.read().await.is_err()
                    && let Some(found) = self.inner.read_raw().await?
                {
                    let document =
                        checklist_core::store::decode(self.inner.codec(), &found, self.inner.state_path())
                            .ok();
                    request.precondition = Precondition::Bytes(StoredBytes::new(found, document.as_ref()));
                }
            }
            StoreBug::AuditDropsNonAscii
                if request.audit.as_ref().is_some_and(|r| !r.to_line().is_ascii()) =>
            {
                request.audit = None;
            }
            _ => {}
        }
        self.inner.write(request).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AuditTrail for BrokenStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        match self.bug {
            StoreBug::AuditRewrites => self.append_by_rewriting(record).await,
            StoreBug::AuditDropsNonAscii if !record.to_line().is_ascii() => Ok(()),
            _ => self.inner.append_audit(record).await,
        }
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        let log = self.inner.read_audit().await?;
        if self.bug == StoreBug::AuditFailsOnATornLine && !log.problems.is_empty() {
            return Err(Error::invalid(format!(
                "the audit log has bad lines: {:?}",
                log.problems
            )));
        }
        Ok(log)
    }

    async fn rotate_audit(&self) -> Result<bool> {
        let rotated = self.inner.rotate_audit().await?;
        if rotated && self.bug == StoreBug::AuditRotationDrops {
            std::fs::remove_file(self.dir.join("audit.log.1"))
                .map_err(|e| Error::invalid(format!("dropping the rotated part: {e}")))?;
        }
        Ok(rotated)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BackupStore for BrokenStore {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        self.inner.create_backup(reason).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.inner.list_backups().await
    }

    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        if self.bug == StoreBug::ImportStampsItsOwnTime {
            let stamped = BackupRecord {
                created_at: chrono::Utc::now(),
                ..record.clone()
            };
            return self.inner.import_backup(&stamped, document).await;
        }
        self.inner.import_backup(record, document).await
    }

    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        let bytes = self.inner.read_backup(id).await?;
        if self.bug != StoreBug::ReadBackupFallsBack || self.inner.read_verified_backup(id).await.is_ok() {
            return Ok(bytes);
        }
        for other in self.inner.list_backups().await?.iter().rev() {
            if self.inner.read_verified_backup(&other.id).await.is_ok() {
                return self.inner.read_backup(&other.id).await;
            }
        }
        Ok(bytes)
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        match self.bug {
            StoreBug::DeletesTheOldestBackup => {
                let listed = self.inner.list_backups().await?;
                if !listed.iter().any(|b| b.id == id) {
                    return self.inner.delete_backup(id).await;
                }
                self.inner.delete_backup(&listed[0].id).await
            }
            StoreBug::DeleteLeavesTheBytes => {
                let listed = self.inner.list_backups().await?;
                let kept = listed.iter().find(|b| b.id == id).map(|b| self.backup_path(b));
                let bytes = kept.as_ref().and_then(|path| std::fs::read(path).ok());
                self.inner.delete_backup(id).await?;
                if let (Some(path), Some(bytes)) = (kept, bytes) {
                    std::fs::write(&path, bytes)
                        .map_err(|e| Error::invalid(format!("keeping the bytes: {e}")))?;
                }
                Ok(())
            }
            _ => self.inner.delete_backup(id).await,
        }
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        let rebuilt = self.inner.rebuild_backup_index().await?;
        if self.bug == StoreBug::RebuildDeletesWhatItSkips {
            for skipped in &rebuilt.skipped {
                let path = self.dir.join(".backup").join(&skipped.location);
                std::fs::remove_file(&path)
                    .map_err(|e| Error::invalid(format!("deleting {skipped:?}: {e}")))?;
            }
        }
        Ok(rebuilt)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ArchiveStore for BrokenStore {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        match self.bug {
            StoreBug::ArchiveAgainKeepsTheOldDocument => {
                let path = self
                    .dir
                    .join("archive")
                    .join(format!("{}.yaml", archived.instance.id));
                let old = std::fs::read(&path).ok();
                let entry = self.inner.archive(archived).await?;
                if let Some(old) = old {
                    std::fs::write(&path, old)
                        .map_err(|e| Error::invalid(format!("keeping the old archive: {e}")))?;
                }
                Ok(entry)
            }
            StoreBug::ArchivesInvalidInstancesAsNothing => match self.inner.archive(archived).await {
                Err(Error::SchemaInvalid { .. }) => Ok(HistoryEntry {
                    instance_id: archived.instance.id.clone(),
                    template_id: archived.instance.template_id.clone(),
                    template_version: archived.instance.template_version.clone(),
                    status: archived.instance.status,
                    started_at: archived.instance.started_at,
                    completed_at: archived.instance.completed_at,
                    archived_at: archived.archived_at,
                    steps: archived.completed_steps.len(),
                    checksum: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                        .into(),
                    location: self.dir.join("archive").display().to_string(),
                }),
                other => other,
            },
            _ => self.inner.archive(archived).await,
        }
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.inner.history().await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        if self.bug == StoreBug::ReadArchivedReturnsTheLatest
            && let Some(latest) = self.inner.history().await?.last()
        {
            return self.inner.read_archived(&latest.instance_id).await;
        }
        self.inner.read_archived(instance_id).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl QuarantineStore for BrokenStore {
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let record = self.inner.quarantine(found, note).await?;
        if self.bug == StoreBug::QuarantinesByHardLink {
            let kept = self
                .dir
                .join("quarantine")
                .join(format!("state.yaml.{}", record.id));
            std::fs::remove_file(&kept)
                .and_then(|()| std::fs::hard_link(self.inner.state_path(), &kept))
                .map_err(|e| Error::invalid(format!("linking {}: {e}", kept.display())))?;
        }
        Ok(record)
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        let mut listed = self.inner.list_quarantine().await?;
        if self.bug == StoreBug::QuarantineListedNewestFirst {
            listed.reverse();
        }
        Ok(listed)
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.inner.read_quarantined(id).await
    }

    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        self.inner.import_quarantined(record, found).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ChangeFeed for BrokenStore {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        let watch = self.inner.watch().await?;
        Ok(match self.bug {
            StoreBug::WatchWakesOnce => Box::new(OneShotWatch { watch, woke: false }),
            _ => watch,
        })
    }
}

/// [`StoreBug::WatchWakesOnce`].
#[derive(Debug)]
struct OneShotWatch {
    watch: Box<dyn ChangeWatch>,
    woke: bool,
}

#[async_trait]
impl ChangeWatch for OneShotWatch {
    async fn changed(&mut self) -> Result<()> {
        if self.woke {
            std::future::pending::<()>().await;
        }
        self.watch.changed().await?;
        self.woke = true;
        Ok(())
    }
}

impl BrokenStore {
    fn backup_path(&self, backup: &BackupRecord) -> PathBuf {
        self.dir.join(".backup").join(&backup.location)
    }
}

/// Every non-ASCII character of every string (keys too) as `?`.
fn ascii_only(value: &mut Value) {
    let mangle = |text: &str| {
        text.chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect::<String>()
    };
    match value {
        Value::String(text) => *text = mangle(text),
        Value::Array(items) => items.iter_mut().for_each(ascii_only),
        Value::Object(map) => {
            let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            for (key, mut item) in entries {
                ascii_only(&mut item);
                map.insert(mangle(&key), item);
            }
        }
        _ => {}
    }
}

/// Every integer through an `f64`, as JavaScript or a REAL column keeps it.
fn integers_through_floats(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            let float = number.as_f64().unwrap_or_default();
            // Written back as an integer where it still fits one, as such stores do.
            *value = if float.fract() == 0.0 && float.abs() < 9.2e18 {
                Value::from(float as i64)
            } else {
                Value::from(float)
            };
        }
        Value::Array(items) => items.iter_mut().for_each(integers_through_floats),
        Value::Object(map) => map.values_mut().for_each(integers_through_floats),
        _ => {}
    }
}
