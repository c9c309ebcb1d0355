//! The file engine shared by every file backend; the [`Codec`] is the only difference
//! between them.
//!
//! A [`FileStore`] keeps one document, `<dir>/state.<extension>`:
//! - **read**: read the whole file without following symbolic links (size-capped),
//!   decode, then [`document::unseal`] (schema version → schema → checksum).
//! - **write**: [`document::seal`] and encode *before* touching the disk; then, holding
//!   an OS advisory lock on `<dir>/.locks/write.lock`, check the expected revision
//!   against the file and [`replace_file`] it atomically. The advisory lock makes the
//!   compare-and-swap atomic across processes even for callers that hold no
//!   [`LockProvider`](checklist_core::LockProvider) lock.
//!
//! To check the revision cheaply, the store remembers the bytes it last read or wrote:
//! if the file still holds exactly those bytes, its revision is known without parsing.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::canonical::document_checksum;
use checklist_core::config::{AuditSettings, Durability};
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::{
    AuditLog, AuditRecord, BackedUpWrite, BackupPolicy, BackupRecord, ChecklistState, Committed,
    CorruptionKind, Error, Expectation, KeepBackup, Result, StateStore, document,
};
use serde_json::Value;

use crate::archive_dir::ArchiveDir;
use crate::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error, stage_file, sweep_stale_temps};
use crate::audit_log::AuditFiles;
use crate::backups::{BackupDir, Contents, Current, Kept, Placement};
use crate::blocking::run_blocking;
use crate::codec::Codec;
use crate::vfs::{ConfinedFs, RealFs, Vfs};

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
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            max_state_bytes: checklist_core::config::DEFAULT_MAX_STATE_BYTES,
            write_lock_timeout: Duration::from_secs(10),
            audit: AuditSettings::default(),
        }
    }
}

/// A [`StateStore`] keeping its document in one file, written atomically and
/// durably. Cheap to clone; clones share one store.
///
/// ```no_run
/// # async fn demo() -> checklist_core::Result<()> {
/// use checklist_backends::{YamlCodec, YamlFileStore, FileStoreOptions};
/// use checklist_core::{ChecklistState, Expectation, StateStore};
///
/// let store = YamlFileStore::open(".checklist", YamlCodec, FileStoreOptions::default())?;
/// let committed = store.write(&ChecklistState::new(), Expectation::Absent).await?;
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

/// A state file as stored, parsed but not verified; see
/// [`FileStore::read_unverified`].
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedState {
    /// The file's bytes, exactly.
    pub bytes: Vec<u8>,
    /// The document they parse to.
    pub document: Value,
    /// Its `revision`, or 0 for a document without one (schema versions before 1.0
    /// had none).
    pub revision: u64,
    /// The checksum of its content, whatever its `checksum` field says: what a backup
    /// of it records. Schema versions before 1.0 had no such field, and the TypeScript
    /// checklist's files may hold an empty one or a placeholder.
    pub checksum: String,
}

impl UnverifiedState {
    fn new(bytes: Vec<u8>, document: Value) -> Self {
        let revision = document.get("revision").and_then(Value::as_u64).unwrap_or(0);
        let checksum = document_checksum(&document);
        Self {
            bytes,
            document,
            revision,
            checksum,
        }
    }
}

/// What [`FileStore::replace_migrated`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationCommit {
    /// The backup holding the original file's bytes.
    pub backup: BackupRecord,
    /// The revision and checksum of the migrated state as written.
    pub committed: Committed,
}

/// What a write requires of the file it replaces.
enum Precondition {
    /// A compare-and-swap on the revision.
    Revision(Expectation),
    /// Exactly these bytes (a migration, whose input does not verify as current).
    ExactBytes(UnverifiedState),
}

/// A backup to keep of the file a write replaces.
struct BackupRequest {
    reason: String,
    /// Prunes the backups once this one is added; `None` prunes nothing.
    policy: Option<Arc<dyn BackupPolicy>>,
}

/// A state file's bytes that this store verified or wrote itself.
struct Known {
    bytes: Vec<u8>,
    revision: u64,
    checksum: String,
    /// The document those bytes verify to. Verification is a pure function of the
    /// bytes, so a read that finds exactly these bytes again returns a copy of this
    /// instead of parsing (a YAML parse of 1000 steps takes ~25 ms).
    state: ChecklistState,
}

struct Inner<C> {
    codec: C,
    dir: PathBuf,
    state_path: PathBuf,
    locks_dir: PathBuf,
    write_lock_path: PathBuf,
    options: FileStoreOptions,
    vfs: Arc<dyn Vfs>,
    audit: AuditFiles,
    backups: BackupDir,
    archive: ArchiveDir,
    /// The bytes this store last read or wrote, and what they hold.
    known: Mutex<Option<Known>>,
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
                audit: AuditFiles::new(&dir, options.audit.clone(), options.durability),
                backups: BackupDir::new(&dir, &state_file_name),
                archive: ArchiveDir::new(&dir, options.max_state_bytes),
                codec,
                dir,
                state_path,
                locks_dir,
                write_lock_path,
                options,
                vfs,
                known: Mutex::new(None),
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
        &self.inner.codec
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &FileStoreOptions {
        &self.inner.options
    }

    /// The state file as it is stored, parsed but not verified: what a migration
    /// reads, since [`read`](StateStore::read) refuses documents of older schema
    /// versions. `Ok(None)` when there is no state file.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (`parse_error`) when the bytes are not a document, and the
    /// I/O errors of a read.
    pub async fn read_unverified(&self) -> Result<Option<UnverifiedState>> {
        self.blocking(|inner| {
            let Some(bytes) = inner.read_bytes()? else {
                return Ok(None);
            };
            let document = inner.decode(&bytes)?;
            Ok(Some(UnverifiedState::new(bytes, document)))
        })
        .await
    }

    /// Replaces a state file of an older schema version with `state`, its migration:
    /// while holding the write lock, checks that the file still holds exactly
    /// `original`'s bytes, keeps them as a backup (reason `migration`, the bytes
    /// untouched), then writes `state` through the sealed write path as revision
    /// `original.revision + 1`. Call it while holding the store's
    /// [`LockProvider`](checklist_core::LockProvider) lock.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the file changed since `original` was read (nothing is
    /// written), the errors of [`document::seal`] (nothing is written), and I/O errors
    /// (the old file stays; a backup taken before the failure stays too).
    pub async fn replace_migrated(
        &self,
        original: &UnverifiedState,
        state: &ChecklistState,
    ) -> Result<MigrationCommit> {
        let revision = original.revision.saturating_add(1);
        let (bytes, written, committed) = self.encode_sealed(state, revision)?;
        let precondition = Precondition::ExactBytes(original.clone());
        let backup = BackupRequest {
            reason: "migration".to_owned(),
            policy: None,
        };
        let kept = self
            .blocking(move |inner| inner.write(bytes, &precondition, written, Some(backup)))
            .await?
            .ok_or_else(|| Error::invalid("the state file to migrate disappeared"))?;
        Ok(MigrationCommit {
            backup: kept.record,
            committed,
        })
    }

    /// Seals `state` as `revision` and encodes it, refusing what could not be read
    /// back: the bytes to write, the state they hold, and what a write of them commits.
    fn encode_sealed(
        &self,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<(Vec<u8>, ChecklistState, Committed)> {
        let sealed = document::seal(state, revision, &self.inner.state_path)?;
        let bytes = self
            .inner
            .codec
            .encode(&sealed.value)
            .map_err(|e| Error::SchemaInvalid {
                path: self.inner.state_path.clone(),
                field_path: "/".to_owned(),
                message: format!("the {} codec could not encode it: {e}", self.inner.codec.name()),
            })?;
        if bytes.len() as u64 > self.inner.options.max_state_bytes {
            return Err(Error::TooLarge {
                path: self.inner.state_path.clone(),
                size: bytes.len() as u64,
                limit: self.inner.options.max_state_bytes,
            });
        }
        let mut written = state.clone();
        written.revision = revision;
        written.checksum = Some(sealed.checksum.clone());
        let committed = Committed {
            revision,
            checksum: sealed.checksum,
        };
        Ok((bytes, written, committed))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner<C>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        run_blocking(&self.inner.state_path, move || work(&inner)).await
    }

    /// Seals and encodes `state` before touching the disk, then writes it (keeping a
    /// backup of the replaced file when `keep` says so).
    async fn commit(
        &self,
        state: &ChecklistState,
        expect: Expectation,
        keep: Option<KeepBackup>,
    ) -> Result<(Committed, Option<Kept>)> {
        let (bytes, written, committed) = self.encode_sealed(state, expect.next_revision())?;
        let backup = keep.map(|keep| BackupRequest {
            reason: keep.reason,
            policy: Some(keep.policy),
        });
        let kept = self
            .blocking(move |inner| inner.write(bytes, &Precondition::Revision(expect), written, backup))
            .await?;
        Ok((committed, kept))
    }
}

/// Verifies the bytes of a state file exactly as a [`FileStore`] verifies its own on
/// every read: an empty file is refused, `codec` decodes the rest, then
/// [`document::unseal`] checks the schema version, the schema and the checksum. `path`
/// names the file in errors. It checks a state file outside its store — a copy, an
/// attachment to a bug report — without opening one.
///
/// ```
/// use checklist_backends::{YamlCodec, verify_state_file};
/// use checklist_core::{CorruptionKind, Error};
///
/// let err = verify_state_file(&YamlCodec, b"  \n", "state.yaml".as_ref()).unwrap_err();
/// assert!(matches!(err, Error::Corrupted { kind: CorruptionKind::ParseError, .. }));
/// ```
///
/// # Errors
/// [`Error::Corrupted`] (`parse_error` when the bytes are not a document, otherwise
/// the failing check) and [`Error::UnsupportedVersion`].
pub fn verify_state_file<C: Codec + ?Sized>(codec: &C, bytes: &[u8], path: &Path) -> Result<ChecklistState> {
    document::unseal(decode_state_file(codec, bytes, path)?, path)
}

/// Parses a state file's bytes without verifying them; an empty (or all-blank) file is
/// a parse error rather than whatever the codec makes of nothing.
pub(crate) fn decode_state_file<C: Codec + ?Sized>(codec: &C, bytes: &[u8], path: &Path) -> Result<Value> {
    let parse_error = |detail: String| Error::Corrupted {
        kind: CorruptionKind::ParseError,
        path: path.to_owned(),
        detail,
    };
    if bytes.trim_ascii().is_empty() {
        return Err(parse_error(format!("the file is empty ({} bytes)", bytes.len())));
    }
    codec.decode(bytes).map_err(|e| parse_error(e.to_string()))
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

    /// Parses `bytes` without verifying them.
    fn decode(&self, bytes: &[u8]) -> Result<Value> {
        decode_state_file(&self.codec, bytes, &self.state_path)
    }

    fn verify(&self, bytes: &[u8]) -> Result<ChecklistState> {
        verify_state_file(&self.codec, bytes, &self.state_path)
    }

    fn remember(&self, bytes: Vec<u8>, state: ChecklistState) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(Known {
            bytes,
            revision: state.revision,
            checksum: state.checksum.clone().unwrap_or_default(),
            state,
        });
    }

    fn read(&self) -> Result<Option<ChecklistState>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        if let Some(known) = &*self.known.lock().unwrap_or_else(|p| p.into_inner())
            && known.bytes == bytes
        {
            return Ok(Some(known.state.clone()));
        }
        let state = self.verify(&bytes)?;
        self.remember(bytes, state.clone());
        Ok(Some(state))
    }

    /// What `bytes` hold: known without parsing when they are the bytes this store
    /// last saw, otherwise by verifying them.
    fn contents(&self, bytes: &[u8]) -> Result<Contents> {
        if let Some(known) = &*self.known.lock().unwrap_or_else(|p| p.into_inner())
            && known.bytes == bytes
        {
            return Ok(Contents {
                revision: known.revision,
                checksum: known.checksum.clone(),
                size: bytes.len() as u64,
            });
        }
        let state = self.verify(bytes)?;
        Ok(Contents {
            revision: state.revision,
            checksum: state.checksum.unwrap_or_default(),
            size: bytes.len() as u64,
        })
    }

    /// The state file now and what it holds: from memory when the bytes are unchanged,
    /// otherwise by verifying them.
    fn current(&self) -> Result<Option<Current>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        let contents = self.contents(&bytes)?;
        Ok(Some(Current { bytes, contents }))
    }

    /// The state file now, if it meets `precondition` (checked under the write lock).
    fn check(&self, precondition: &Precondition) -> Result<Option<Current>> {
        match precondition {
            Precondition::Revision(expect) => {
                let current = self.current()?;
                let found = current.as_ref().map(|c| c.contents.revision);
                if !expect.is_met_by(found) {
                    return Err(Error::Conflict {
                        path: self.state_path.clone(),
                        expected: *expect,
                        found,
                    });
                }
                Ok(current)
            }
            Precondition::ExactBytes(original) => {
                let bytes = self.read_bytes()?;
                if bytes.as_deref() != Some(original.bytes.as_slice()) {
                    return Err(Error::Conflict {
                        path: self.state_path.clone(),
                        expected: Expectation::Revision(original.revision),
                        found: bytes.and_then(|b| self.contents(&b).ok()).map(|c| c.revision),
                    });
                }
                Ok(Some(Current {
                    contents: Contents {
                        revision: original.revision,
                        checksum: original.checksum.clone(),
                        size: original.bytes.len() as u64,
                    },
                    bytes: original.bytes.clone(),
                }))
            }
        }
    }

    /// Replaces the state file with `bytes` if it meets `precondition`, keeping the
    /// file it replaces as a backup when `backup` asks for one.
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
        bytes: Vec<u8>,
        precondition: &Precondition,
        written: ChecklistState,
        backup: Option<BackupRequest>,
    ) -> Result<Option<Kept>> {
        let _write_lock = self.lock_for_write()?;
        let current = self.check(precondition)?;
        if self.sweep_needed.load(Ordering::Acquire) {
            match sweep_stale_temps(self.vfs.as_ref(), &self.dir) {
                Ok(_) => self.sweep_needed.store(false, Ordering::Release),
                Err(error) => tracing::warn!(%error, "could not remove stale temp files"),
            }
        }
        // A write that fails leaves a temp file only if even its removal failed.
        let failed = |error: Error| {
            self.sweep_needed.store(true, Ordering::Release);
            error
        };
        let staged = stage_file(
            self.vfs.as_ref(),
            &self.state_path,
            &bytes,
            self.options.durability,
            PRIVATE_FILE_MODE,
        )
        .map_err(failed)?;
        let placed = match (&backup, &current) {
            (Some(backup), Some(current)) => Some(
                self.backups
                    .place(
                        self.vfs.as_ref(),
                        &self.state_path,
                        current,
                        Placement::LinkBeforeReplace,
                        &backup.reason,
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
        self.remember(bytes, written);
        let Some(placed) = placed else {
            return Ok(None);
        };
        let record = placed.record.clone();
        let policy = backup.and_then(|b| b.policy);
        match self.backups.index(self.vfs.as_ref(), placed, policy.as_deref()) {
            Ok(kept) => Ok(Some(kept)),
            // The new state is committed and the backup file is in place, independent of
            // it now; only its line in the index is missing, and nothing was pruned.
            Err(error) => {
                tracing::warn!(
                    %error,
                    id = record.id,
                    "the commit stands, but its backup could not be added to the backup index; \
                     `checklist backup list --rebuild` lists it again"
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
                        resource: self.write_lock_path.clone(),
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
impl<C: Codec> StateStore for FileStore<C> {
    fn backend_name(&self) -> &str {
        self.inner.codec.name()
    }

    fn location(&self) -> &Path {
        &self.inner.state_path
    }

    async fn read(&self) -> Result<Option<ChecklistState>> {
        self.blocking(Inner::read).await
    }

    async fn write(&self, state: &ChecklistState, expect: Expectation) -> Result<Committed> {
        Ok(self.commit(state, expect, None).await?.0)
    }

    async fn write_keeping_backup(
        &self,
        state: &ChecklistState,
        expect: Expectation,
        keep: KeepBackup,
    ) -> Result<BackedUpWrite> {
        let (committed, kept) = self.commit(state, expect, Some(keep)).await?;
        let (backup, pruned) = match kept {
            Some(kept) => (Some(kept.record), kept.pruned),
            None => (None, Vec::new()),
        };
        Ok(BackedUpWrite {
            committed,
            backup,
            pruned,
        })
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let record = record.clone();
        self.blocking(move |inner| inner.audit.append(inner.vfs.as_ref(), &record))
            .await
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        self.blocking(|inner| inner.audit.read(inner.vfs.as_ref())).await
    }

    async fn rotate_audit(&self) -> Result<bool> {
        self.blocking(|inner| inner.audit.rotate(inner.vfs.as_ref()))
            .await
    }

    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let reason = reason.to_owned();
        self.blocking(move |inner| inner.create_backup(&reason)).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.blocking(|inner| inner.backups.list(inner.vfs.as_ref()))
            .await
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.backups.delete(inner.vfs.as_ref(), &id))
            .await
    }

    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let archived = archived.clone();
        self.blocking(move |inner| {
            let _write_lock = inner.lock_for_write()?;
            inner.archive.store(
                inner.vfs.as_ref(),
                &inner.codec,
                &archived,
                inner.options.durability,
            )
        })
        .await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.blocking(|inner| inner.archive.history(inner.vfs.as_ref()))
            .await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        let instance_id = instance_id.to_owned();
        self.blocking(move |inner| inner.archive.read(inner.vfs.as_ref(), &inner.codec, &instance_id))
            .await
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.blocking(Inner::read_bytes).await
    }

    fn parse_ignoring_checksum(&self, bytes: &[u8]) -> Result<ChecklistState> {
        self.inner.parse_ignoring_checksum(bytes)
    }

    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let (found, note) = (found.to_vec(), note.clone());
        self.blocking(move |inner| inner.quarantine(&found, &note)).await
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.blocking(Inner::list_quarantine).await
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.read_quarantined(&id)).await
    }

    async fn write_over(
        &self,
        found: Option<&[u8]>,
        state: &ChecklistState,
        revision: u64,
    ) -> Result<Committed> {
        let (bytes, written, committed) = self.encode_sealed(state, revision)?;
        let found = found.map(<[u8]>::to_vec);
        self.blocking(move |inner| inner.write_over(found.as_deref(), bytes, written))
            .await?;
        Ok(committed)
    }

    async fn read_backup(&self, id: &str) -> Result<ChecklistState> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.read_backup(&id)).await
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.blocking(Inner::rebuild_backup_index).await
    }
}
