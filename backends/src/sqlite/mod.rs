//! The embedded SQLite backend: `.checklist/state.db` (cargo feature `sqlite`).
//!
//! The document is stored exactly as the JSON backend would write it — sealed, then
//! encoded by [`JsonCodec`] (core does both) — in a BLOB, and core verifies every read
//! the same way (parse, schema version, schema, checksum), so `verify`, `export`,
//! recovery and quarantine behave as with the file backends. What differs is
//! how a write is made atomic and durable: a SQLite transaction (`BEGIN IMMEDIATE`,
//! compare, write, `COMMIT`) in write-ahead-log mode, with `synchronous=FULL` for
//! `durability: full` and `NORMAL` for `fast`.
//!
//! Backups, quarantine, the archive and the audit trail are files beside the database
//! (the same as the file backends'), so damage to `state.db` cannot take them along;
//! only the backup *index* is a table, written in the transaction of the commit that
//! takes the backup. docs/decisions/0020-sqlite-backend.md records the layout and the
//! reasons; docs/backends.md has a section on this backend.
//!
//! ```no_run
//! # async fn demo() -> checklist_core::Result<()> {
//! use checklist_backends::{FileStoreOptions, SqliteStore};
//! use checklist_core::{ChecklistState, DocumentStoreExt, Expectation};
//!
//! let store = SqliteStore::open(".checklist", FileStoreOptions::default())?;
//! let committed = store.commit(&ChecklistState::new(), Expectation::Absent).await?;
//! assert_eq!(committed.revision, 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::codec::Codec;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::store::{Capabilities, PlaneLocations};
use checklist_core::{
    ArchiveStore, AuditLog, AuditRecord, AuditTrail, Backend, BackendFactory, BackupRecord, BackupStore,
    ChangeFeed, ChangeWatch, Committed, DocumentStore, OpenContext, Precondition, QuarantineStore, Result,
    StoreInfo, WriteReceipt, WriteRequest,
};

use crate::blocking::run_blocking;
use crate::codec::json::JsonCodec;
use crate::file_store::{FileStoreOptions, check_store_dir};
use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::fs::watch::DirectoryWatch;
use crate::lock::directory::DirectoryLocks;
use crate::project::layout::Layout;
use crate::sidecar::archive::ArchiveDir;

mod connection;
mod files;
mod schema;
mod store;
mod watch;

use store::Inner;

/// The name the backend is registered under (`backend: {type: sqlite}`).
pub const BACKEND_NAME: &str = "sqlite";

/// The database file inside the store directory.
pub const DB_FILE_NAME: &str = "state.db";

/// A [`StateStore`](checklist_core::StateStore) keeping its document in `.checklist/state.db`, an embedded SQLite
/// database; see the [module docs](self). Cheap to clone; clones share one connection.
///
/// [`FileStoreOptions`] configure it as they do a file store: `durability` chooses
/// `synchronous`, `max_state_bytes` caps the stored document, `write_lock_timeout` is
/// SQLite's busy timeout (how long a write waits for another process's transaction),
/// `audit` the rotation of `audit.log`.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    info: Arc<StoreInfo>,
    codec: DatabaseCodec,
}

/// The format of the stored documents: JSON, as the JSON backend writes it. Handed the
/// whole file of a database this store cannot read as its own (what
/// [`read_raw`](DocumentStore::read_raw) returns then, for recovery to keep), it says
/// why the database was refused — a planted trigger, a damaged page — instead of a
/// JSON parse error about binary bytes.
#[derive(Debug, Clone)]
struct DatabaseCodec {
    damage: Arc<Mutex<Option<String>>>,
}

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

impl Codec for DatabaseCodec {
    fn name(&self) -> &'static str {
        JsonCodec.name()
    }

    fn extension(&self) -> &'static str {
        JsonCodec.extension()
    }

    fn decode(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<serde_json::Value, checklist_core::codec::CodecError> {
        if bytes.starts_with(SQLITE_HEADER) {
            let why = self.damage.lock().unwrap_or_else(|p| p.into_inner()).clone();
            return Err(checklist_core::codec::CodecError(why.unwrap_or_else(|| {
                "it is a SQLite database this store cannot read as its own".to_owned()
            })));
        }
        JsonCodec.decode(bytes)
    }

    fn encode(
        &self,
        document: &serde_json::Value,
    ) -> std::result::Result<Vec<u8>, checklist_core::codec::CodecError> {
        JsonCodec.encode(document)
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.db_path)
            .field("durability", &self.inner.options.durability)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store in the existing directory `dir` (normally `.checklist/`). The
    /// database is opened (and checked) by the first operation, and created by the
    /// first write.
    ///
    /// # Errors
    /// [`Error::NotInitialized`](checklist_core::Error::NotInitialized) if `dir` does not exist, [`Error::SymlinkRefused`](checklist_core::Error::SymlinkRefused) if
    /// it is a symbolic link, [`Error::Io`](checklist_core::Error::Io) if it is not a directory.
    pub fn open(dir: impl Into<PathBuf>, options: FileStoreOptions) -> Result<Self> {
        Self::open_with_vfs(dir, options, Arc::new(RealFs))
    }

    /// Like [`open`](Self::open), doing the I/O of the files beside the database
    /// (backups, quarantine, archive, audit trail) through `vfs`. SQLite does the
    /// database's own I/O.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_vfs(
        dir: impl Into<PathBuf>,
        options: FileStoreOptions,
        vfs: Arc<dyn Vfs>,
    ) -> Result<Self> {
        let dir = dir.into();
        check_store_dir(vfs.as_ref(), &dir)?;
        let vfs = ConfinedFs::wrap(&dir, vfs);
        let inner = Inner::new(dir.clone(), options, vfs);
        // The backup index is a table that damage to state.db can take; the backups
        // are files it is rebuilt from. The audit trail is files too (it must outlive a
        // damaged database), so its record follows the commit's transaction.
        let info = StoreInfo::new(
            BACKEND_NAME,
            inner.db_path.display().to_string(),
            Capabilities::PERSISTENT
                .with_backup_index()
                .with_pushed_changes(cfg!(any(target_os = "linux", target_os = "android"))),
        )
        .with_planes(PlaneLocations::new(
            Layout::at(&dir).audit_log().display().to_string(),
            inner.db_path.display().to_string(),
            ArchiveDir::plane_location(&dir, JsonCodec.extension()),
            inner.quarantine.plane_location(),
        ));
        let codec = DatabaseCodec {
            damage: Arc::clone(&inner.damage),
        };
        Ok(Self {
            inner: Arc::new(inner),
            info: Arc::new(info),
            codec,
        })
    }

    /// The database file, `<dir>/state.db`.
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// Runs SQLite's `PRAGMA quick_check` over the whole database — pages the state's
    /// read does not touch included. `checklist verify` runs it before reading the
    /// state. Without a database there is nothing to check.
    ///
    /// # Errors
    /// [`Error::Corrupted`](checklist_core::Error::Corrupted) naming `state.db` when SQLite finds damage (or the file is
    /// not a database this store can read); the errors of opening it.
    pub async fn check_integrity(&self) -> Result<()> {
        self.blocking(|inner| inner.check_integrity()).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        run_blocking(&self.inner.db_path, move || work(&inner)).await
    }
}

/// A factory for the `sqlite` backend: a [`SqliteStore`] in the store directory,
/// guarded by the cross-process [`FileLockProvider`](crate::FileLockProvider) on
/// `.checklist/.lock` exactly as the file backends are (one provider per directory,
/// its broken locks audited). [`builtin_registry`](crate::builtin_registry) registers
/// it as `sqlite`.
pub fn sqlite_backend_factory() -> impl BackendFactory {
    sqlite_backend_factory_with_vfs(Arc::new(RealFs))
}

/// Like [`sqlite_backend_factory`], with the files beside the database (backups,
/// quarantine, archive, audit trail, lock) written through `vfs`.
pub fn sqlite_backend_factory_with_vfs(vfs: Arc<dyn Vfs>) -> impl BackendFactory {
    let locks = DirectoryLocks::new(Arc::clone(&vfs));
    move |ctx: &OpenContext<'_>| -> Result<Backend> {
        let store = SqliteStore::open_with_vfs(
            ctx.dir,
            FileStoreOptions::from_config(ctx.config),
            Arc::clone(&vfs),
        )?;
        Ok(Backend {
            store: Arc::new(store),
            locks: Arc::new(locks.of(ctx)),
        })
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn codec(&self) -> &dyn Codec {
        &self.codec
    }

    /// The document's bytes; when `state.db` is not a database this store can read
    /// (not SQLite, damaged pages, planted objects), the whole file's bytes, which is
    /// what recovery then quarantines and a write on those exact bytes replaces.
    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.blocking(|inner| Ok(inner.raw()?.map(|raw| raw.bytes().to_vec())))
            .await
    }

    /// The compare-and-swap, the backup of the replaced document, its listing and the
    /// policy's pruning in one SQL transaction: a backup is listed if and only if its
    /// commit happened (its file is written durably first, and removed again when the
    /// transaction does not commit). A write on the exact bytes of a damaged database
    /// replaces the database with a new one, its backup index rebuilt from the files.
    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        let WriteRequest {
            document,
            precondition,
            keep,
            audit,
        } = request;
        document.refuse_over(self.inner.options.max_state_bytes, &self.inner.db_path)?;
        let committed = Committed {
            revision: document.revision,
            checksum: document.checksum.clone(),
        };
        let kept = self
            .blocking(move |inner| match &precondition {
                Precondition::Bytes(_) if keep.is_none() => inner.write_over_bytes(&document, &precondition),
                _ => inner.write(&document, &precondition, keep.as_ref()),
            })
            .await?;
        let (backup, pruned) = match kept {
            Some(kept) => (Some(kept.record), kept.pruned),
            None => (None, Vec::new()),
        };
        // The trail is files beside the database (it must outlive damage to it): the
        // record follows the commit.
        let unaudited = self.inner.audit.append_committed(audit).await;
        Ok(WriteReceipt {
            committed,
            backup,
            pruned,
            unaudited,
        })
    }
}

#[async_trait]
impl AuditTrail for SqliteStore {
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
impl BackupStore for SqliteStore {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        let reason = reason.to_owned();
        self.blocking(move |inner| inner.create_backup(&reason)).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.blocking(Inner::list_backups).await
    }

    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.read_backup(&id)).await
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |inner| inner.delete_backup(&id)).await
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.blocking(Inner::rebuild_backup_index).await
    }

    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        let (record, document) = (record.clone(), document.to_vec());
        self.blocking(move |inner| inner.import_backup(&record, &document))
            .await
    }
}

#[async_trait]
impl ArchiveStore for SqliteStore {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let archived = archived.clone();
        self.blocking(move |inner| {
            // Refused ids and invalid documents fail before the database is touched.
            checklist_core::archive::validate_file_stem("instance id", &archived.instance.id)?;
            inner.under_write_lock(|| {
                inner.archive.store(
                    inner.vfs.as_ref(),
                    &JsonCodec,
                    &archived,
                    inner.options.durability,
                )
            })
        })
        .await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.blocking(|inner| inner.archive.history(inner.vfs.as_ref(), &JsonCodec))
            .await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        let instance_id = instance_id.to_owned();
        self.blocking(move |inner| inner.archive.read(inner.vfs.as_ref(), &JsonCodec, &instance_id))
            .await
    }
}

#[async_trait]
impl QuarantineStore for SqliteStore {
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

    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        let (record, found) = (record.clone(), found.to_vec());
        self.blocking(move |inner| inner.under_write_lock(|| inner.import_quarantined(&record, &found)))
            .await
    }
}

/// How often a watch asks SQLite whether another connection committed. A commit
/// becomes visible through memory, after the last file event it causes (`watch.rs`),
/// so this floor, not the notification, bounds how late a follower may learn of some
/// commits.
const WATCH_FLOOR: Duration = Duration::from_millis(100);
const WATCH_FLOOR_UNNOTIFIED: Duration = Duration::from_millis(200);

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        let inner = &self.inner;
        let audit_log = Layout::at(&inner.dir).audit_log();
        let probe = watch::probe(Arc::clone(&inner.vfs), inner.db_path.clone(), audit_log);
        let names = vec!["state.db".to_owned(), "audit.log".to_owned()];
        let watch =
            DirectoryWatch::start(&inner.dir, names, WATCH_FLOOR, WATCH_FLOOR_UNNOTIFIED, probe).await?;
        Ok(Box::new(watch))
    }
}
