//! Broken stores: a correct [`YamlFileStore`] wrapped so that exactly one behaviour is
//! wrong, everything else delegated.

use std::io::Write as _;
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
            StoreBug::None | StoreBug::ResealsOnRead | StoreBug::AuditRotationDrops => {}
        }
        self.inner.write(request).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AuditTrail for BrokenStore {
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
}

checklist_conformance::forward_planes!(BrokenStore => inner; BackupStore, ArchiveStore, QuarantineStore);
