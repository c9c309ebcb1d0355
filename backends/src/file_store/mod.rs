//! The file engine shared by every file backend; the [`Codec`] is the only difference
//! between them.
//!
//! A [`FileStore`] keeps one document, `<dir>/state.<extension>`:
//! - **read**: the whole file without following symbolic links (size-capped); core
//!   decodes and verifies it ([`DocumentStoreExt`](checklist_core::DocumentStoreExt)).
//! - **write**: core seals and encodes the document before the store sees it; then,
//!   holding an OS advisory lock on `<dir>/.locks/write.lock`, the store checks the
//!   precondition against the file and replaces it atomically. The advisory lock makes
//!   the compare-and-swap atomic across processes even for callers that hold no
//!   [`LockProvider`](checklist_core::LockProvider) lock.
//!
//! Checking a revision verifies the file; core remembers the bytes it verified or
//! wrote last, so a file that still holds them is not parsed again, and the store keeps
//! what they verify to in `.cache/` for the next process ([`parse_cache`]).

use std::fmt;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::config::{AuditSettings, Durability};
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::store::{self, Capabilities, PlaneLocations};
use checklist_core::{
    ArchiveStore, AuditLog, AuditRecord, AuditTrail, BackupRecord, BackupStore, ChangeFeed, ChangeWatch,
    Committed, DocumentStore, Error, KeepBackup, Precondition, QuarantineStore, Result, StoreInfo,
    WriteReceipt, WriteRequest,
};

use crate::blocking::run_blocking;
use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error, stage_file, sweep_stale_temps};
use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::fs::watch::{DirectoryWatch, file_probe};
use crate::project::layout::Layout;
use crate::sidecar::archive::ArchiveDir;
use crate::sidecar::audit_log::{AuditFiles, FileAuditTrail};
use crate::sidecar::backups::{BackupDir, Contents, Current, Kept, Placement};
use crate::sidecar::quarantine::QuarantineDir;
use checklist_core::codec::Codec;
use parse_cache::ParseCache;

mod parse_cache;
mod recovery;

/// Tuning of a [`FileStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Whether writes are fsynced (config.yaml `durability`).
    pub durability: Durability,
    /// Largest state file the store will read or write (config.yaml
    /// `limits.maxStateBytes`, default 64 MiB).
    pub max_state_bytes: u64,
    /// How long a write waits for another process's write to finish (default 10 s).
    pub write_lock_timeout: Duration,
    /// Audit log rotation (config.yaml `audit`).
    pub audit: AuditSettings,
    /// Text written before the document in the state file, and so kept in its backups
    /// (copies of it): for a project's yaml store, the line naming the state's JSON
    /// Schema for editors ([`STATE_SCHEMA_LINE`](crate::STATE_SCHEMA_LINE),
    /// docs/file-formats.md). It must be a comment in the codec's format, ending in a
    /// newline; outside the document, it never changes the checksum. Archived instances
    /// are other documents and never get it. Default none.
    pub state_preamble: Option<&'static str>,
}

impl FileStoreOptions {
    /// The options config.yaml sets: `durability`, `limits.maxStateBytes`, `audit`.
    pub fn from_config(config: &checklist_core::Config) -> Self {
        Self {
            durability: config.durability,
            audit: config.audit.clone(),
            max_state_bytes: config.limits.max_state_bytes,
            ..Self::default()
        }
    }
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            max_state_bytes: checklist_core::config::DEFAULT_MAX_STATE_BYTES,
            write_lock_timeout: Duration::from_secs(10),
            audit: AuditSettings::default(),
            state_preamble: None,
        }
    }
}

/// A codec writing `preamble` (a comment) before each document it encodes; it reads
/// with or without it, since the codec's format skips comments.
#[derive(Debug)]
struct WithPreamble<C> {
    codec: C,
    preamble: Option<&'static str>,
}

impl<C: Codec> Codec for WithPreamble<C> {
    fn name(&self) -> &'static str {
        self.codec.name()
    }

    fn extension(&self) -> &'static str {
        self.codec.extension()
    }

    fn decode(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<serde_json::Value, checklist_core::codec::CodecError> {
        self.codec.decode(bytes)
    }

    fn encode(
        &self,
        document: &serde_json::Value,
    ) -> std::result::Result<Vec<u8>, checklist_core::codec::CodecError> {
        let body = self.codec.encode(document)?;
        Ok(match self.preamble {
            Some(preamble) => [preamble.as_bytes(), &body].concat(),
            None => body,
        })
    }
}

/// The YAML-file backend: `.checklist/state.yaml` (cargo feature `yaml`).
#[cfg(feature = "yaml")]
pub type YamlFileStore = FileStore<crate::YamlCodec>;

/// The JSON-file backend: `.checklist/state.json`, pretty-printed (cargo feature `json`).
#[cfg(feature = "json")]
pub type JsonFileStore = FileStore<crate::JsonCodec>;

/// A [`StateStore`](checklist_core::StateStore) keeping its document in one file,
/// written atomically and durably. Cheap to clone; clones share one store.
///
/// ```no_run
/// # async fn demo() -> checklist_core::Result<()> {
/// use checklist_backends::{FileStore, FileStoreOptions, YamlCodec};
/// use checklist_core::{ChecklistState, DocumentStoreExt, Expectation};
///
/// let store = FileStore::open(".checklist", YamlCodec, FileStoreOptions::default())?;
/// let committed = store.commit(&ChecklistState::new(), Expectation::Absent).await?;
/// assert_eq!(committed.revision, 1);
/// # Ok(()) }
/// ```
pub struct FileStore<C: Codec> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for FileStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Codec> fmt::Debug for FileStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("codec", &self.inner.codec)
            .field("path", &self.inner.state_path)
            .field("durability", &self.inner.options.durability)
            .finish_non_exhaustive()
    }
}

/// What the state file holds now, as the write lock's holder found it.
type Found = Option<Current>;

struct Inner<C> {
    info: StoreInfo,
    /// The state file's codec: the store's, writing the preamble first.
    codec: WithPreamble<C>,
    dir: PathBuf,
    state_path: PathBuf,
    locks_dir: PathBuf,
    write_lock_path: PathBuf,
    options: FileStoreOptions,
    vfs: Arc<dyn Vfs>,
    audit: FileAuditTrail,
    backups: BackupDir,
    archive: ArchiveDir,
    quarantine: QuarantineDir,
    parse_cache: ParseCache,
    /// A write failed and may have left a temp file; the next write sweeps.
    sweep_needed: AtomicBool,
}

impl<C: Codec> FileStore<C> {
    /// Opens the store in the existing directory `dir` (normally `.checklist/`).
    ///
    /// # Errors
    /// [`Error::NotInitialized`] if `dir` does not exist, [`Error::SymlinkRefused`] if
    /// it is a symbolic link, [`Error::Io`] if it is not a directory.
    pub fn open(dir: impl Into<PathBuf>, codec: C, options: FileStoreOptions) -> Result<Self> {
        Self::open_with_vfs(dir, codec, options, Arc::new(RealFs))
    }

    /// Like [`open`](Self::open), doing all I/O through `vfs` (for fault injection).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_vfs(
        dir: impl Into<PathBuf>,
        codec: C,
        options: FileStoreOptions,
        vfs: Arc<dyn Vfs>,
    ) -> Result<Self> {
        let dir = dir.into();
        check_store_dir(vfs.as_ref(), &dir)?;
        let vfs = ConfinedFs::wrap(&dir, vfs);
        let state_file_name = format!("state.{}", codec.extension());
        let state_path = dir.join(&state_file_name);
        let locks_dir = dir.join(".locks");
        let write_lock_path = locks_dir.join("write.lock");
        Ok(Self {
            inner: Arc::new(Inner {
                info: StoreInfo::new(
                    codec.name(),
                    state_path.display().to_string(),
                    Capabilities::PERSISTENT
                        .with_backup_index()
                        .with_pushed_changes(cfg!(any(target_os = "linux", target_os = "android"))),
                )
                .with_planes(PlaneLocations::new(
                    Layout::at(&dir).audit_log().display().to_string(),
                    format!("{}/.backup/{state_file_name}.*", dir.display()),
                    ArchiveDir::plane_location(&dir, codec.extension()),
                    QuarantineDir::new(&dir, format!("{state_file_name}.")).plane_location(),
                )),
                audit: FileAuditTrail::new(
                    AuditFiles::new(&dir, options.audit.clone(), options.durability),
                    Arc::clone(&vfs),
                ),
                backups: BackupDir::new(&dir, &state_file_name, options.durability),
                archive: ArchiveDir::new(&dir, options.max_state_bytes),
                quarantine: QuarantineDir::new(&dir, format!("{state_file_name}.")),
                parse_cache: ParseCache::new(&dir, &state_file_name, codec.name()),
                codec: WithPreamble {
                    codec,
                    preamble: options.state_preamble,
                },
                dir,
                state_path,
                locks_dir,
                write_lock_path,
                options,
                vfs,
                // Temp files of a crashed earlier process are removed by the first write.
                sweep_needed: AtomicBool::new(true),
            }),
        })
    }

    /// The state file.
    pub fn state_path(&self) -> &Path {
        &self.inner.state_path
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.inner.codec.codec
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &FileStoreOptions {
        &self.inner.options
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner<C>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        run_blocking(&self.inner.state_path, move || work(&inner)).await
    }
}

/// Checks that `dir` is a real directory, not a symbolic link.
pub(crate) fn check_store_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    match vfs.metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::SymlinkRefused { path: dir.to_owned() }),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            "open the store directory",
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "it is not a directory"),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotInitialized { path: dir.to_owned() }),
        Err(e) => Err(io_error("open the store directory", dir, e)),
    }
}

impl<C: Codec> Inner<C> {
    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        match self.vfs.read(&self.state_path, self.options.max_state_bytes) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                check_store_dir(self.vfs.as_ref(), &self.dir)?;
                Ok(None)
            }
            Err(e) => Err(io_error("read", &self.state_path, e)),
        }
    }

    /// Makes core's verification of the state file's `bytes` a lookup, for the read
    /// that follows: they are remembered in this process, or the parse cache holds what
    /// they verify to, or they are verified now and the result cached. Bytes that do
    /// not verify are left for that read to report.
    fn prime(&self, bytes: &[u8]) {
        let codec = self.codec.name();
        if store::remembers(codec, bytes) {
            return;
        }
        let limit = self.options.max_state_bytes.saturating_mul(4);
        if let Some(state) = self.parse_cache.load(self.vfs.as_ref(), bytes, limit) {
            store::remember(codec, bytes, state);
        } else if let Ok(state) = store::verify(&self.codec, bytes, &self.state_path) {
            self.parse_cache.save(self.vfs.as_ref(), bytes, &state);
        }
    }

    /// What `bytes` hold, verified as the state file's (core remembers what it
    /// verified before, and a compare needs no copy of the state).
    fn contents(&self, bytes: &[u8]) -> Result<Contents> {
        let (revision, checksum) = store::verify_revision(&self.codec, bytes, &self.state_path)?;
        Ok(Contents {
            revision,
            checksum: checksum.unwrap_or_default(),
            size: bytes.len() as u64,
        })
    }

    /// The state file now and what it holds, verified.
    fn current(&self) -> Result<Found> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        let contents = self.contents(&bytes)?;
        Ok(Some(Current { bytes, contents }))
    }

    /// The state file now, if it meets `precondition` (checked under the write lock):
    /// core's check, the one every store makes ([`Precondition::check`]), so a moved
    /// state refuses this store's writes as it does every other store's.
    fn check(&self, precondition: &Precondition) -> Result<Found> {
        let bytes = self.read_bytes()?;
        let replaced = precondition.check(bytes.as_deref(), &self.codec, &self.state_path)?;
        Ok(bytes.zip(replaced).map(|(bytes, (revision, checksum))| Current {
            contents: Contents {
                revision,
                checksum,
                size: bytes.len() as u64,
            },
            bytes,
        }))
    }

    /// The error of a state file that no longer holds what `expected` says.
    pub(super) fn changed(&self, expected: &dyn fmt::Display, found: Option<&[u8]>) -> Error {
        Error::PreconditionFailed {
            path: self.state_path.clone(),
            expected: expected.to_string(),
            found: match found {
                None => "no state file".to_owned(),
                Some(bytes) => format!("{} other bytes", bytes.len()),
            },
        }
    }

    /// Replaces the state file with `bytes` if it meets `precondition`, keeping the
    /// file it replaces as a backup when `keep` asks for one.
    ///
    /// The order is what keeps a failed write from touching the backups
    /// (docs/decisions/0011-backups-inside-the-write.md): the new version is staged
    /// (written and fsynced under a temp name) first, so a full disk fails the write
    /// before any backup is taken; then the backup is linked; then the rename; and only
    /// once the rename has committed the new state is the backup listed and the policy
    /// allowed to prune. A rename that fails removes the link again, so no backup is
    /// ever left as another name of the live file.
    fn write(
        &self,
        bytes: &[u8],
        precondition: &Precondition,
        keep: Option<&KeepBackup>,
    ) -> Result<Option<Kept>> {
        let _write_lock = self.lock_for_write()?;
        let current = self.check(precondition)?;
        if self.sweep_needed.load(Ordering::Acquire) {
            match sweep_stale_temps(self.vfs.as_ref(), &self.dir) {
                Ok(_) => self.sweep_needed.store(false, Ordering::Release),
                Err(error) => tracing::warn!(%error, "could not remove stale temp files"),
            }
            // The parse cache's, which a killed reader can leave too; a store without
            // `.cache/` has none.
            let _ = sweep_stale_temps(self.vfs.as_ref(), self.parse_cache.dir());
        }
        // A write that fails leaves a temp file only if even its removal failed.
        let failed = |error: Error| {
            self.sweep_needed.store(true, Ordering::Release);
            error
        };
        let staged = stage_file(
            self.vfs.as_ref(),
            &self.state_path,
            bytes,
            self.options.durability,
            PRIVATE_FILE_MODE,
        )
        .map_err(failed)?;
        let placed = match (keep, &current) {
            (Some(keep), Some(current)) => Some(
                self.backups
                    .place(
                        self.vfs.as_ref(),
                        &self.state_path,
                        current,
                        Placement::LinkBeforeReplace,
                        &keep.reason,
                    )
                    .map_err(failed)?,
            ),
            _ => None,
        };
        if let Err(error) = staged.commit() {
            if let Some(placed) = placed {
                self.backups.abandon(self.vfs.as_ref(), placed);
            }
            return Err(failed(error));
        }
        let Some(placed) = placed else {
            return Ok(None);
        };
        let record = placed.record.clone();
        let policy = keep.and_then(|k| k.policy.as_deref());
        match self.backups.index(self.vfs.as_ref(), placed, policy) {
            Ok(kept) => Ok(Some(kept)),
            // The new state is committed and the backup file is in place, independent of
            // it now; only its line in the index is missing, and nothing was pruned.
            Err(error) => {
                tracing::warn!(
                    %error,
                    id = record.id,
                    "the commit stands, but its backup could not be added to the backup index; \
                     rebuilding the index lists it again"
                );
                Ok(Some(Kept {
                    record,
                    pruned: Vec::new(),
                }))
            }
        }
    }

    /// Keeps a copy of the state file as it is now as a backup, under the write lock so
    /// that it is the file just verified.
    fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let _write_lock = self.lock_for_write()?;
        let Some(current) = self.current()? else {
            return Ok(None);
        };
        let kept = self.backups.keep(
            self.vfs.as_ref(),
            &self.state_path,
            &current,
            Placement::Copy,
            reason,
            None,
        )?;
        Ok(Some(kept.record))
    }

    /// Takes the OS advisory lock that makes check-and-rename atomic across processes.
    fn lock_for_write(&self) -> Result<File> {
        let file = match self.vfs.open_lock_file(&self.write_lock_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.vfs.create_dir(&self.locks_dir, DIR_MODE) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io_error("create the directory", &self.locks_dir, e));
                    }
                    _ => self.vfs.open_lock_file(&self.write_lock_path),
                }
            }
            other => other,
        }
        .map_err(|e| io_error("open the write lock", &self.write_lock_path, e))?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if started.elapsed() < self.options.write_lock_timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::LockTimeout {
                        resource: self.write_lock_path.display().to_string(),
                        waited: started.elapsed(),
                        holder: None,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(io_error("lock", &self.write_lock_path, e));
                }
            }
        }
    }
}

#[async_trait]
impl<C: Codec> DocumentStore for FileStore<C> {
    fn info(&self) -> &StoreInfo {
        &self.inner.info
    }

    fn codec(&self) -> &dyn Codec {
        &self.inner.codec
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.blocking(|inner| {
            let bytes = inner.read_bytes()?;
            if let Some(bytes) = &bytes {
                inner.prime(bytes);
            }
            Ok(bytes)
        })
        .await
    }

    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        let WriteRequest {
            document,
            precondition,
            keep,
            audit,
        } = request;
        document.refuse_over(self.inner.options.max_state_bytes, &self.inner.state_path)?;
        let bytes = document.bytes;
        let kept = self
            .blocking(move |inner| {
                let kept = inner.write(&bytes, &precondition, keep.as_ref())?;
                if let Some(state) = store::recall_shared(inner.codec.name(), &bytes) {
                    inner.parse_cache.save(inner.vfs.as_ref(), &bytes, &state);
                }
                Ok(kept)
            })
            .await?;
        let (backup, pruned) = match kept {
            Some(kept) => (Some(kept.record), kept.pruned),
            None => (None, Vec::new()),
        };
        // Files have no transaction spanning the state and the trail: the record follows
        // the rename.
        let unaudited = self.inner.audit.append_committed(audit).await;
        Ok(WriteReceipt {
            committed: Committed {
                revision: document.revision,
                checksum: document.checksum,
            },
            backup,
            pruned,
            unaudited,
        })
    }
}

#[async_trait]
impl<C: Codec> AuditTrail for FileStore<C> {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.inner.audit.append_audit(record).await
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        self.inner.audit.read_audit().await
    }

    async fn rotate_audit(&self) -> Result<bool> {
        self.inner.audit.rotate_audit().await
    }
}

#[async_trait]
impl<C: Codec> BackupStore for FileStore<C> {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let reason = reason.to_owned();
        self.blocking(move |inner| inner.create_backup(&reason)).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.blocking(|inner| inner.backups.list(inner.vfs.as_ref()))
            .await
    }

    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            let (_, bytes, _) =
                inner
                    .backups
                    .read_listed(inner.vfs.as_ref(), &id, inner.options.max_state_bytes)?;
            Ok(bytes)
        })
        .await
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.backups.delete(inner.vfs.as_ref(), &id))
            .await
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.blocking(Inner::rebuild_backup_index).await
    }

    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        let (record, document) = (record.clone(), document.to_vec());
        self.blocking(move |inner| {
            let _write_lock = inner.lock_for_write()?;
            inner.backups.import(inner.vfs.as_ref(), &record, &document)
        })
        .await
    }
}

#[async_trait]
impl<C: Codec> ArchiveStore for FileStore<C> {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let archived = archived.clone();
        self.blocking(move |inner| {
            let _write_lock = inner.lock_for_write()?;
            inner.archive.store(
                inner.vfs.as_ref(),
                &inner.codec.codec,
                &archived,
                inner.options.durability,
            )
        })
        .await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.blocking(|inner| inner.archive.history(inner.vfs.as_ref(), &inner.codec.codec))
            .await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        let instance_id = instance_id.to_owned();
        self.blocking(move |inner| {
            inner
                .archive
                .read(inner.vfs.as_ref(), &inner.codec.codec, &instance_id)
        })
        .await
    }
}

#[async_trait]
impl<C: Codec> QuarantineStore for FileStore<C> {
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let (found, note) = (found.to_vec(), note.clone());
        self.blocking(move |inner| inner.quarantine(&found, &note)).await
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.blocking(|inner| inner.quarantine.list(inner.vfs.as_ref()))
            .await
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.quarantine.read(inner.vfs.as_ref(), &id))
            .await
    }

    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        let (record, found) = (record.clone(), found.to_vec());
        self.blocking(move |inner| {
            let _write_lock = inner.lock_for_write()?;
            inner.quarantine.import(inner.vfs.as_ref(), &record, &found)
        })
        .await
    }
}

/// How often a watch of a file store looks at the state file and `audit.log` itself:
/// rarely where inotify wakes it (a floor for what notification cannot see, such as
/// another machine's write over NFS), often where nothing else does.
const WATCH_FLOOR: Duration = Duration::from_secs(1);
const WATCH_FLOOR_UNNOTIFIED: Duration = Duration::from_millis(200);

#[async_trait]
impl<C: Codec> ChangeFeed for FileStore<C> {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        let inner = &self.inner;
        let layout = Layout::at(&inner.dir);
        let state_name = format!("state.{}", inner.codec.extension());
        let probe = file_probe(
            Arc::clone(&inner.vfs),
            vec![inner.state_path.clone(), layout.audit_log()],
        );
        let names = vec![state_name, "audit.log".to_owned()];
        let watch =
            DirectoryWatch::start(&inner.dir, names, WATCH_FLOOR, WATCH_FLOOR_UNNOTIFIED, probe).await?;
        Ok(Box::new(watch))
    }
}
