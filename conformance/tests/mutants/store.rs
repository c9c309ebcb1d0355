//! Broken stores: a correct [`YamlFileStore`] wrapped so that exactly one behaviour is
//! wrong, everything else delegated.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use checklist_backends::{Codec, YamlCodec, YamlFileStore};
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::{
    AuditLog, AuditRecord, BackedUpWrite, BackupRecord, ChecklistState, Committed, Error, Expectation,
    KeepBackup, Result, RollingBackups, StateStore, document,
};

/// The one thing a [`BrokenStore`] gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreBug {
    /// Nothing: the wrapper alone, to show the harness is sound.
    None,
    /// `write` truncates the state file and writes the new document in place, in two
    /// halves, instead of temp file + rename.
    WritesInPlace,
    /// `read` parses the document without verifying its checksum.
    SkipsChecksum,
    /// `write` ignores the expectation and writes the next revision of whatever is
    /// stored.
    IgnoresExpectation,
    /// `write_keeping_backup` writes but keeps no backup.
    KeepsNoBackup,
    /// `write_keeping_backup` backs up the new revision instead of the replaced one.
    BacksUpTheNewRevision,
    /// `write_keeping_backup` prunes down to 1 backup whatever the policy says.
    PrunesDownToOne,
    /// `append_audit` reads the whole log, adds the record and rewrites the file.
    AuditRewrites,
    /// `rotate_audit` deletes the part it just rotated out instead of keeping it.
    AuditRotationDrops,
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

    async fn write_in_place(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
        let _serial = self.write_mutex.lock().await;
        let found = match self.inner.read().await? {
            None => None,
            Some(current) => Some(current.revision),
        };
        if !expect.is_met_by(found) {
            return Err(Error::Conflict {
                path: self.inner.state_path().to_owned(),
                expected: expect,
                found,
            });
        }
        let path = self.inner.state_path().to_owned();
        let sealed = document::seal(state, expect.next_revision(), &path)?;
        let bytes = YamlCodec
            .encode(&sealed.value)
            .map_err(|e| Error::invalid(format!("encoding: {e}")))?;
        let committed = Committed {
            revision: sealed.revision,
            checksum: sealed.checksum,
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
        Ok(committed)
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

#[async_trait]
impl StateStore for BrokenStore {
    fn backend_name(&self) -> &str {
        self.inner.backend_name()
    }

    fn location(&self) -> &Path {
        self.inner.location()
    }

    async fn read(&self) -> Result<Option<ChecklistState>> {
        if self.bug == StoreBug::SkipsChecksum {
            return match self.inner.read_raw().await? {
                None => Ok(None),
                Some(bytes) => self.inner.parse_ignoring_checksum(&bytes).map(Some),
            };
        }
        self.inner.read().await
    }

    async fn write(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
        match self.bug {
            StoreBug::WritesInPlace => self.write_in_place(state, expect).await,
            StoreBug::IgnoresExpectation => {
                let found = self.stored_revision().await?;
                let expect = found.map_or(Expectation::Absent, Expectation::Revision);
                self.inner.write(state, expect).await
            }
            _ => self.inner.write(state, expect).await,
        }
    }

    async fn write_keeping_backup(
        &self,
        state: &ChecklistState,
        expect: Expectation,
        keep: KeepBackup,
    ) -> Result<BackedUpWrite> {
        match self.bug {
            StoreBug::KeepsNoBackup => Ok(BackedUpWrite {
                committed: self.inner.write(state, expect).await?,
                backup: None,
                pruned: Vec::new(),
            }),
            StoreBug::BacksUpTheNewRevision => {
                let committed = self.inner.write(state, expect).await?;
                let backup = self.inner.create_backup(&keep.reason).await?;
                let listed = self.inner.list_backups().await?;
                let mut pruned = Vec::new();
                for id in keep.policy.to_prune(&listed, chrono::Utc::now()) {
                    self.inner.delete_backup(&id).await?;
                    pruned.push(id);
                }
                Ok(BackedUpWrite {
                    committed,
                    backup,
                    pruned,
                })
            }
            StoreBug::PrunesDownToOne => {
                let keep = KeepBackup {
                    reason: keep.reason,
                    policy: Arc::new(RollingBackups::keep(1)),
                };
                self.inner.write_keeping_backup(state, expect, keep).await
            }
            _ => self.inner.write_keeping_backup(state, expect, keep).await,
        }
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        if self.bug == StoreBug::AuditRewrites {
            return self.append_by_rewriting(record).await;
        }
        self.inner.append_audit(record).await
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        self.inner.read_audit().await
    }

    async fn rotate_audit(&self) -> Result<bool> {
        let rotated = self.inner.rotate_audit().await?;
        if rotated && self.bug == StoreBug::AuditRotationDrops {
            std::fs::remove_file(self.dir.join("audit.log.1"))
                .map_err(|e| Error::invalid(format!("dropping the rotated part: {e}")))?;
        }
        Ok(rotated)
    }

    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        self.inner.create_backup(reason).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.inner.list_backups().await
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        self.inner.delete_backup(id).await
    }

    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        self.inner.archive(archived).await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.inner.history().await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        self.inner.read_archived(instance_id).await
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.inner.read_raw().await
    }

    fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
        self.inner.parse_ignoring_checksum(bytes)
    }

    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        self.inner.quarantine(found, note).await
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.inner.list_quarantine().await
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.inner.read_quarantined(id).await
    }

    async fn write_over(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        self.inner.write_over(found, state, revision).await
    }

    async fn read_backup(&self, id: &str) -> Result<ChecklistState> {
        self.inner.read_backup(id).await
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.inner.rebuild_backup_index().await
    }
}
