//! The blocking half of the SQLite backend: one connection per store handle, the
//! transactions, and the byte-level recovery operations.
//!
//! Every write is `BEGIN IMMEDIATE` → read the stored document → compare → write →
//! `COMMIT` (docs/decisions/0002-cas-under-an-os-lock.md: the compare-and-swap runs
//! under a bounded OS-level lock, here SQLite's write lock, waited for at most the busy
//! timeout). A deferred `BEGIN` would read first and then fail to upgrade to a writer
//! at once, without waiting, whenever another writer got in between.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use checklist_core::backup::BackupIndexRebuild;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::store::EncodedDocument;
use checklist_core::{BackupRecord, Error, KeepBackup, Precondition, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::connection::{self, busy, damaged, db_error};
use super::files::{self, Contents, Placed};
use super::schema::{self, Found};
use crate::FileStoreOptions;
use crate::codec::json::JsonCodec;
use crate::file_store::check_store_dir;
use checklist_core::config::Durability;

use crate::fs::atomic::{PRIVATE_FILE_MODE, io_error, replace_file};
use crate::fs::identity::FileIdentity;
use crate::fs::vfs::Vfs;
use crate::sidecar::archive::ArchiveDir;
use crate::sidecar::audit_log::{AuditFiles, FileAuditTrail};
use crate::sidecar::quarantine::QuarantineDir;

/// An open connection and what it knows about the file.
struct Open {
    conn: Connection,
    /// The file it was opened on (device, inode); `None` where the platform gives no
    /// file ids. A file replaced under it (recovery of a damaged database) is reopened.
    identity: Option<(u64, u64)>,
    /// The schema cookie when the schema was last checked.
    cookie: i64,
    found: Found,
}

/// What "the stored bytes" are ([`DocumentStore::read_raw`](checklist_core::DocumentStore::read_raw)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Raw {
    /// The document in the `state` row.
    Document(Vec<u8>),
    /// The whole `state.db` file, when it is not a database this store can read (not
    /// SQLite, damaged pages, planted objects): what recovery quarantines and replaces.
    WholeFile(Vec<u8>),
}

impl Raw {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Self::Document(bytes) | Self::WholeFile(bytes) => bytes,
        }
    }
}

/// A backup just listed and the ids pruned with it.
pub(super) struct Kept {
    pub(super) record: BackupRecord,
    pub(super) pruned: Vec<String>,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) db_path: PathBuf,
    backup_dir: PathBuf,
    pub(super) quarantine: QuarantineDir,
    pub(super) options: FileStoreOptions,
    pub(super) vfs: std::sync::Arc<dyn Vfs>,
    pub(super) audit: FileAuditTrail,
    pub(super) archive: ArchiveDir,
    open: Mutex<Option<Open>>,
    /// Why the database last could not be read as this store's, for the codec to say
    /// when it is handed the whole file's bytes ([`DatabaseCodec`](super::DatabaseCodec)).
    pub(super) damage: std::sync::Arc<Mutex<Option<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_i64(value: u64, what: &str, path: &Path) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::invalid(format!("{what} {value} is too large for {}", path.display())))
}

impl Inner {
    pub(super) fn new(dir: PathBuf, options: FileStoreOptions, vfs: std::sync::Arc<dyn Vfs>) -> Self {
        Self {
            db_path: dir.join(super::DB_FILE_NAME),
            backup_dir: dir.join(".backup"),
            quarantine: QuarantineDir::new(&dir, files::QUARANTINE_PREFIX),
            audit: FileAuditTrail::new(
                AuditFiles::new(&dir, options.audit.clone(), options.durability),
                std::sync::Arc::clone(&vfs),
            ),
            archive: ArchiveDir::new(&dir, options.max_state_bytes),
            dir,
            options,
            vfs,
            open: Mutex::new(None),
            damage: std::sync::Arc::default(),
        }
    }

    /// The database file's identity, `Ok(None)` when there is none.
    fn identity(&self) -> Result<Option<Option<(u64, u64)>>> {
        match self.vfs.metadata(&self.db_path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(Error::SymlinkRefused {
                path: self.db_path.clone(),
            }),
            Ok(meta) if !meta.is_file() => Err(Error::io(
                "open",
                &self.db_path,
                io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"),
            )),
            Ok(meta) => Ok(Some(
                FileIdentity::of(&self.db_path, &meta)
                    .ok()
                    .map(|id| (id.dev, id.ino))
                    .filter(|&id| id != (0, 0)),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                check_store_dir(self.vfs.as_ref(), &self.dir)?;
                Ok(None)
            }
            Err(e) => Err(io_error("inspect", &self.db_path, e)),
        }
    }

    /// Runs `work` on this handle's connection to `state.db`, opening (and checking) it
    /// first when there is none or the file was replaced. Without a database file,
    /// `create` creates one with the tables; otherwise the result is `Ok(None)`.
    fn with_db<T>(
        &self,
        create: bool,
        work: impl FnOnce(&mut Open, &Path) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut slot = lock(&self.open);
        let identity = match self.identity()? {
            Some(identity) => Some(identity),
            None if create => {
                self.create_private(&self.db_path)?;
                None
            }
            None => {
                *slot = None;
                return Ok(None);
            }
        };
        let reusable = matches!((&*slot, identity), (Some(open), Some(id)) if open.identity.is_some() && open.identity == id);
        if !reusable {
            *slot = None;
            *slot = Some(self.connect(create)?);
        }
        let open = slot.as_mut().expect("a connection was just put there");
        if create && open.found == Found::Empty {
            schema::create(&mut open.conn, &self.db_path)?;
            open.found = schema::check(&open.conn, &self.db_path)?;
            open.cookie = schema::cookie(&open.conn, &self.db_path)?;
        }
        let outcome = work(open, &self.db_path);
        if matches!(outcome, Err(Error::Corrupted { .. })) {
            // Whatever the connection cached of a damaged file is not to be trusted.
            *slot = None;
        }
        outcome.map(Some)
    }

    /// Creates `path` empty and private (0600, decision 0004: the document holds
    /// command output) before SQLite opens it: SQLite would create it 0644, and gives
    /// its `-wal` and `-shm` files the database file's mode.
    fn create_private(&self, path: &Path) -> Result<()> {
        match self.vfs.create_new(path, crate::fs::atomic::PRIVATE_FILE_MODE) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("create", path, e)),
        }
    }

    fn connect(&self, create: bool) -> Result<Open> {
        let conn = connection::open(
            &self.db_path,
            create,
            self.options.durability,
            self.options.write_lock_timeout,
        )?;
        let found = schema::check(&conn, &self.db_path)?;
        if found == Found::Ours {
            // Once per connection (per process, for the CLI): damage anywhere in the
            // file — a truncation that cut off the backup index, a flipped page the
            // document does not use — is damage to the store, found before the first
            // read rather than by a write that fails half-way through its statements.
            quick_check(&conn, &self.db_path)?;
        }
        let cookie = schema::cookie(&conn, &self.db_path)?;
        let identity = self.identity()?.flatten();
        Ok(Open {
            conn,
            identity,
            cookie,
            found,
        })
    }

    fn begin<'c>(
        open: &'c mut Open,
        path: &Path,
        behavior: TransactionBehavior,
    ) -> Result<(Transaction<'c>, Found)> {
        let started = Instant::now();
        let tx = open.conn.transaction_with_behavior(behavior).map_err(|e| {
            match db_error("begin a transaction on", path, e) {
                Error::LockTimeout { .. } => busy(path, started.elapsed()),
                other => other,
            }
        })?;
        // Inside the transaction: the schema cannot change under it any more.
        let cookie = schema::cookie(&tx, path)?;
        if cookie != open.cookie {
            open.found = schema::check(&tx, path)?;
            open.cookie = cookie;
        }
        Ok((tx, open.found))
    }

    /// The document row's bytes, refusing one over the size limit before reading it.
    fn read_document(&self, tx: &Transaction<'_>, path: &Path) -> Result<Option<Vec<u8>>> {
        let read = |e| db_error("read the state from", path, e);
        let Some(size) = tx
            .query_row("SELECT length(doc) FROM state WHERE id = 1", [], |row| {
                row.get::<_, i64>(0)
            })
            .optional()
            .map_err(read)?
        else {
            return Ok(None);
        };
        let size = u64::try_from(size).unwrap_or(0);
        if size > self.options.max_state_bytes {
            return Err(Error::TooLarge {
                path: path.to_owned(),
                size,
                limit: self.options.max_state_bytes,
            });
        }
        tx.query_row("SELECT doc FROM state WHERE id = 1", [], |row| {
            row.get::<_, Vec<u8>>(0)
        })
        .optional()
        .map_err(read)
    }

    /// The stored document's bytes in a read transaction; `Ok(None)` without a database
    /// or a document.
    fn stored_document(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .with_db(false, |open, path| {
                let (tx, found) = Self::begin(open, path, TransactionBehavior::Deferred)?;
                if found == Found::Empty {
                    return Ok(None);
                }
                self.read_document(&tx, path)
            })?
            .flatten())
    }

    /// What `bytes` hold, verified as the stored document (core remembers what it
    /// verified before, and a compare needs no copy of the state).
    fn contents(&self, bytes: &[u8]) -> Result<Contents> {
        let (revision, checksum) = checklist_core::store::verify_revision(&JsonCodec, bytes, &self.db_path)?;
        Ok(Contents {
            revision,
            checksum: checksum.unwrap_or_default(),
        })
    }

    /// Replaces the document with `document` if the stored one meets `precondition`,
    /// keeping the replaced one as a backup when asked: the backup file is written
    /// durably inside the transaction, listed by the same transaction, and removed again
    /// when that transaction does not commit.
    pub(super) fn write(
        &self,
        document: &EncodedDocument,
        precondition: &Precondition,
        backup: Option<&KeepBackup>,
    ) -> Result<Option<Kept>> {
        let outcome = self.with_db(true, |open, path| {
            let (tx, found) = Self::begin(open, path, TransactionBehavior::Immediate)?;
            if found != Found::Ours {
                return Err(damaged(path, "its tables disappeared while it was open".to_owned()));
            }
            let current = self.read_document(&tx, path)?;
            // Core's check, the one every store makes, so a moved state refuses this
            // store's writes as it does every other store's.
            let replaced = precondition
                .check(current.as_deref(), &JsonCodec, path)?
                .map(|(revision, checksum)| Contents { revision, checksum });
            let placed = match (&backup, &current, replaced) {
                (Some(request), Some(stored), Some(contents)) => {
                    Some(files::place_backup(
                        self.vfs.as_ref(),
                        &self.backup_dir,
                        stored,
                        &contents,
                        &request.reason,
                    )?)
                }
                _ => None,
            };
            let policy = backup.and_then(|b| b.policy.clone());
            let committed = Self::commit_write(tx, path, document, placed.as_ref(), policy.as_deref());
            match committed {
                Ok(pruned) => Ok(placed.map(|placed| (placed.record, pruned))),
                Err(error) => {
                    if let Some(placed) = &placed
                        && let Err(cleanup) = files::remove_backup_file(self.vfs.as_ref(), &placed.path)
                    {
                        tracing::warn!(%cleanup, "could not remove the backup of a failed write; it is not listed");
                    }
                    Err(error)
                }
            }
        })?;
        let outcome = outcome.ok_or_else(|| Error::NotInitialized {
            path: self.dir.clone(),
        })?;
        let Some((record, pruned)) = outcome else {
            return Ok(None);
        };
        for backup in &pruned {
            let removed = files::backup_path(&self.backup_dir, &self.db_path, backup)
                .and_then(|path| files::remove_backup_file(self.vfs.as_ref(), &path));
            if let Err(error) = removed {
                tracing::warn!(%error, id = backup.id, "could not remove a pruned backup; it is no longer listed");
            }
        }
        Ok(Some(Kept {
            record,
            pruned: pruned.into_iter().map(|b| b.id).collect(),
        }))
    }

    /// The statements of a write after its check: the document, the backup's listing
    /// and the pruned listings, then the commit. Returns the pruned records.
    fn commit_write(
        tx: Transaction<'_>,
        path: &Path,
        document: &EncodedDocument,
        placed: Option<&Placed>,
        policy: Option<&dyn checklist_core::BackupPolicy>,
    ) -> Result<Vec<BackupRecord>> {
        let write = |e| db_error("write the state to", path, e);
        tx.execute(
            "INSERT INTO state (id, revision, checksum, doc) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, checksum = excluded.checksum, \
             doc = excluded.doc",
            params![
                to_i64(document.revision, "revision", path)?,
                document.checksum.as_str(),
                document.bytes.as_slice()
            ],
        )
        .map_err(write)?;
        let mut pruned = Vec::new();
        if let Some(placed) = placed {
            insert_backup(&tx, path, &placed.record)?;
            if let Some(policy) = policy {
                let listed = list_backups_in(&tx, path)?;
                let ids = policy.to_prune(&listed, placed.record.created_at);
                for record in listed.into_iter().filter(|b| ids.contains(&b.id)) {
                    tx.execute("DELETE FROM backups WHERE id = ?1", [&record.id])
                        .map_err(write)?;
                    pruned.push(record);
                }
            }
        }
        tx.commit()
            .map_err(|e| db_error("commit the state to", path, e))?;
        Ok(pruned)
    }

    pub(super) fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        Ok(self
            .with_db(false, |open, path| {
                let (tx, found) = Self::begin(open, path, TransactionBehavior::Immediate)?;
                if found == Found::Empty {
                    return Ok(None);
                }
                let Some(stored) = self.read_document(&tx, path)? else {
                    return Ok(None);
                };
                let contents = self.contents(&stored)?;
                let placed =
                    files::place_backup(self.vfs.as_ref(), &self.backup_dir, &stored, &contents, reason)?;
                let listed = insert_backup(&tx, path, &placed.record).and_then(|()| {
                    tx.commit()
                        .map_err(|e| db_error("commit the backup index of", path, e))
                });
                if let Err(error) = listed {
                    let _ = files::remove_backup_file(self.vfs.as_ref(), &placed.path);
                    return Err(error);
                }
                Ok(Some(placed.record))
            })?
            .flatten())
    }

    /// The backups, as the index in `state.db` lists them; when the database itself is
    /// damaged (recovery's case), every backup file that verifies: the files outlive the
    /// database, and recovery must be able to choose among them.
    pub(super) fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        let listed = self.with_db(false, |open, path| {
            let (tx, found) = Self::begin(open, path, TransactionBehavior::Deferred)?;
            if found == Found::Empty {
                return Ok(Vec::new());
            }
            list_backups_in(&tx, path)
        });
        match listed {
            Ok(listed) => Ok(listed.unwrap_or_default()),
            Err(Error::Corrupted { .. }) => {
                let (kept, _) = files::scan_backups(
                    self.vfs.as_ref(),
                    &self.backup_dir,
                    self.options.max_state_bytes,
                    &[],
                )?;
                Ok(kept)
            }
            Err(error) => Err(error),
        }
    }

    pub(super) fn delete_backup(&self, id: &str) -> Result<()> {
        let record = self.with_db(false, |open, path| {
            let (tx, found) = Self::begin(open, path, TransactionBehavior::Immediate)?;
            let record = match found {
                Found::Empty => None,
                Found::Ours => list_backups_in(&tx, path)?.into_iter().find(|b| b.id == id),
            };
            let Some(record) = record else {
                return Err(not_found(id, path));
            };
            tx.execute("DELETE FROM backups WHERE id = ?1", [id])
                .map_err(|e| db_error("write the backup index of", path, e))?;
            tx.commit()
                .map_err(|e| db_error("commit the backup index of", path, e))?;
            Ok(record)
        })?;
        let Some(record) = record else {
            return Err(not_found(id, &self.db_path));
        };
        // Unlisted first, then the file: a crash in between leaves a file that an index
        // rebuild lists again, never a listed backup whose file is gone.
        let path = files::backup_path(&self.backup_dir, &self.db_path, &record)?;
        files::remove_backup_file(self.vfs.as_ref(), &path)
    }

    /// The bytes of the backup `id` as the index lists it (core verifies them against
    /// the listing). When the database itself is damaged (recovery's case), the listing
    /// is the one [`list_backups`](Self::list_backups) derives from the files.
    pub(super) fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        checklist_core::backup::validate_backup_id(id)?;
        let record = self
            .list_backups()?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| not_found(id, &self.db_path))?;
        let path = files::backup_path(&self.backup_dir, &self.db_path, &record)?;
        self.vfs
            .read(&path, self.options.max_state_bytes)
            .map_err(|e| io_error("read the backup", &path, e))
    }

    /// Lists every backup file that verifies again. With a database that cannot be
    /// written (damaged: recovery's case), the rebuilt list is returned without being
    /// written; replacing the damaged database writes it into the new one.
    pub(super) fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        let previous = self.list_backups().unwrap_or_default();
        let (kept, skipped) = files::scan_backups(
            self.vfs.as_ref(),
            &self.backup_dir,
            self.options.max_state_bytes,
            &previous,
        )?;
        let written = self.with_db(true, |open, path| {
            let (tx, _) = Self::begin(open, path, TransactionBehavior::Immediate)?;
            replace_backup_index(&tx, path, &kept)?;
            tx.commit()
                .map_err(|e| db_error("commit the backup index of", path, e))
        });
        match written {
            Ok(_) => {}
            Err(error @ Error::Corrupted { .. }) => tracing::warn!(
                %error,
                "the backup index was rebuilt from the backup files but cannot be written into the damaged \
                 database; recovering it writes the index into the new database"
            ),
            Err(error) => return Err(error),
        }
        Ok(BackupIndexRebuild { kept, skipped })
    }

    /// The stored bytes: the document, or the whole file when the database cannot be
    /// read as this store's.
    pub(super) fn raw(&self) -> Result<Option<Raw>> {
        match self.stored_document() {
            Ok(document) => Ok(document.map(Raw::Document)),
            Err(Error::Corrupted { detail, .. }) => {
                *lock(&self.damage) = Some(detail);
                Ok(Some(Raw::WholeFile(self.read_whole_file()?)))
            }
            Err(error) => Err(error),
        }
    }

    fn read_whole_file(&self) -> Result<Vec<u8>> {
        // The database holds the document, the backup index and free pages.
        let limit = self
            .options
            .max_state_bytes
            .saturating_mul(4)
            .saturating_add(64 * 1024 * 1024);
        self.vfs
            .read(&self.db_path, limit)
            .map_err(|e| io_error("read", &self.db_path, e))
    }

    pub(super) fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let raw = self.raw()?;
        if raw.as_ref().map(Raw::bytes) != Some(found) {
            let expected = format!("the {} bytes read before", found.len());
            return Err(changed_meanwhile(
                &self.db_path,
                &expected,
                raw.as_ref().map(Raw::bytes),
            ));
        }
        files::quarantine(self.vfs.as_ref(), &self.quarantine, found, note)
    }

    /// Keeps `document` as the backup `record` describes: its file under the record's
    /// id, durably, then its row. A file of that name already there is another
    /// store's (the json backend's of this directory names its backups alike) and is
    /// never overwritten.
    pub(super) fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        checklist_core::backup::validate_backup_id(&record.id)?;
        let kept = BackupRecord {
            location: format!("{}{}", files::BACKUP_PREFIX, record.id),
            size: document.len() as u64,
            ..record.clone()
        };
        let file = self.backup_dir.join(&kept.location);
        let imported = self.with_db(true, |open, path| {
            let (tx, _) = Self::begin(open, path, TransactionBehavior::Immediate)?;
            if list_backups_in(&tx, path)?.iter().any(|b| b.id == record.id) {
                return Err(Error::already_listed("backup", &record.id, path));
            }
            // A file of that name not listed here is this import's own, left by a run
            // killed before its row was committed, when it holds these very bytes; else
            // another store's (the json backend of this directory names its backups
            // alike), never overwritten.
            match self.vfs.read(&file, document.len() as u64 + 1) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("read", &file, e)),
                Ok(bytes) if bytes == document => {}
                Ok(_) => {
                    return Err(Error::invalid(format!(
                        "cannot keep backup {} in {}: {} is already there with other bytes, another \
                         store's backup of the same name (a json store of this directory names its \
                         backups alike); the store being moved is still the live one",
                        record.id,
                        path.display(),
                        file.display()
                    )));
                }
            }
            files::ensure_dir(self.vfs.as_ref(), &self.backup_dir)?;
            replace_file(
                self.vfs.as_ref(),
                &file,
                document,
                Durability::Full,
                PRIVATE_FILE_MODE,
            )?;
            let listed = insert_backup(&tx, path, &kept).and_then(|()| {
                tx.commit()
                    .map_err(|e| db_error("commit the backup index of", path, e))
            });
            if let Err(error) = listed {
                let _ = files::remove_backup_file(self.vfs.as_ref(), &file);
                return Err(error);
            }
            Ok(kept.clone())
        })?;
        imported.ok_or_else(|| Error::NotInitialized {
            path: self.db_path.clone(),
        })
    }

    pub(super) fn import_quarantined(
        &self,
        record: &QuarantineRecord,
        found: &[u8],
    ) -> Result<QuarantineRecord> {
        self.quarantine.import(self.vfs.as_ref(), record, found)
    }

    pub(super) fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.quarantine.list(self.vfs.as_ref())
    }

    pub(super) fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.quarantine.read(self.vfs.as_ref(), id)
    }

    /// A write on exact bytes: the document's, or, when they are the whole file of a
    /// damaged database, a new database replacing it.
    pub(super) fn write_over_bytes(
        &self,
        document: &EncodedDocument,
        precondition: &Precondition,
    ) -> Result<Option<Kept>> {
        let Precondition::Bytes(expected) = precondition else {
            return self.write(document, precondition, None);
        };
        match self.raw()? {
            Some(Raw::WholeFile(found)) if found == expected.bytes => {
                self.replace_database(&found, document).map(|()| None)
            }
            Some(Raw::WholeFile(found)) => Err(changed_meanwhile(&self.db_path, precondition, Some(&found))),
            _ => self.write(document, precondition, None),
        }
    }

    /// Replaces a damaged `state.db` (still holding exactly `found`) with a new
    /// database holding `bytes` and the backup index rebuilt from the backup files. The
    /// new database is built beside it and renamed over it, so there is never no
    /// database; its damaged write-ahead log, if any, is moved into quarantine first.
    fn replace_database(&self, found: &[u8], document: &EncodedDocument) -> Result<()> {
        let mut slot = lock(&self.open);
        *slot = None;
        let now = self.read_whole_file()?;
        if now != found {
            let expected = format!("the {} bytes read before", found.len());
            return Err(changed_meanwhile(&self.db_path, &expected, Some(&now)));
        }
        let (backups, _) = files::scan_backups(
            self.vfs.as_ref(),
            &self.backup_dir,
            self.options.max_state_bytes,
            &[],
        )?;
        let temp = self.dir.join(format!(
            ".{}.tmp-{}-{}",
            super::DB_FILE_NAME,
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        ));
        let built = self
            .create_private(&temp)
            .and_then(|()| self.build_database(&temp, document, &backups));
        if let Err(error) = built {
            for leftover in [temp.clone(), journal_of(&temp)] {
                let _ = self.vfs.remove_file(&leftover);
            }
            return Err(error);
        }
        let wal = sibling(&self.db_path, "-wal");
        if let Some(kept) = files::set_wal_aside(self.vfs.as_ref(), &self.quarantine, &wal)? {
            tracing::warn!(wal = %kept.display(), "the damaged database's write-ahead log was kept in quarantine");
        }
        let shm = sibling(&self.db_path, "-shm");
        files::remove_if_present(self.vfs.as_ref(), &shm, "remove the shared-memory index")?;
        self.vfs
            .rename(&temp, &self.db_path)
            .map_err(|e| io_error("rename the rebuilt database over", &self.db_path, e))?;
        if self.options.durability == checklist_core::config::Durability::Full
            && let Err(e) = self.vfs.sync_dir(&self.dir)
        {
            tracing::warn!(error = %e, "the rebuilt database is in place, but fsync of its directory failed");
        }
        let mut open = self.connect(true)?;
        schema::create(&mut open.conn, &self.db_path)?;
        *slot = Some(open);
        drop(slot);
        Ok(())
    }

    /// Writes a complete new database at `temp` (rollback journal, so the one file is
    /// all of it) and fsyncs it.
    fn build_database(
        &self,
        temp: &Path,
        document: &EncodedDocument,
        backups: &[BackupRecord],
    ) -> Result<()> {
        let mut conn = connection::open(
            temp,
            true,
            checklist_core::config::Durability::Full,
            self.options.write_lock_timeout,
        )?;
        schema::create_tables(&mut conn, temp)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error("write", temp, e))?;
        replace_backup_index(&tx, temp, backups)?;
        Self::commit_write(tx, temp, document, None, None)?;
        drop(conn);
        let file = std::fs::File::open(temp).map_err(|e| io_error("open", temp, e))?;
        file.sync_all().map_err(|e| io_error("fsync", temp, e))
    }

    /// Runs `work` while holding SQLite's write lock on `state.db` (creating it when
    /// missing): what serializes the archive's index updates across processes.
    pub(super) fn under_write_lock<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.with_db(true, |open, path| {
            let (tx, _) = Self::begin(open, path, TransactionBehavior::Immediate)?;
            let outcome = work();
            drop(tx);
            outcome
        })?
        .ok_or_else(|| Error::NotInitialized {
            path: self.dir.clone(),
        })
    }

    /// `PRAGMA quick_check`: SQLite's own check of every page of the database, on a
    /// connection of its own (so it checks the file as it is now).
    pub(super) fn check_integrity(&self) -> Result<()> {
        if self.identity()?.is_none() {
            return Ok(());
        }
        let conn = self.connect(false)?;
        quick_check(&conn.conn, &self.db_path)
    }
}

/// SQLite's `PRAGMA quick_check` over the whole file; a failure is damage.
fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let mut statement = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| db_error("check", path, e))?;
    let problems = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| db_error("check", path, e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(damaged(
        path,
        format!("SQLite's integrity check reports: {}", problems.join("; ")),
    ))
}

/// The error of a database that no longer holds what `expected` says.
fn changed_meanwhile(path: &Path, expected: &dyn std::fmt::Display, found: Option<&[u8]>) -> Error {
    Error::PreconditionFailed {
        path: path.to_owned(),
        expected: expected.to_string(),
        found: found.map_or_else(|| "no state".to_owned(), |b| format!("{} other bytes", b.len())),
    }
}

fn not_found(id: &str, path: &Path) -> Error {
    Error::NotFound {
        what: "backup",
        id: id.to_owned(),
        location: path.display().to_string(),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn journal_of(path: &Path) -> PathBuf {
    sibling(path, "-journal")
}

fn time_text(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn insert_backup(tx: &Transaction<'_>, path: &Path, record: &BackupRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO backups (id, file, revision, checksum, size, created_at, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            record.id,
            record.location,
            to_i64(record.revision, "revision", path)?,
            record.checksum,
            to_i64(record.size, "size", path)?,
            time_text(&record.created_at),
            record.reason
        ],
    )
    .map_err(|e| db_error("write the backup index of", path, e))?;
    Ok(())
}

fn replace_backup_index(tx: &Transaction<'_>, path: &Path, backups: &[BackupRecord]) -> Result<()> {
    tx.execute("DELETE FROM backups", [])
        .map_err(|e| db_error("write the backup index of", path, e))?;
    for record in backups {
        insert_backup(tx, path, record)?;
    }
    Ok(())
}

/// The backup index, oldest first. A row that is not a backup record (edited by hand)
/// makes the index damaged: reported, and rebuilt by recovery.
fn list_backups_in(tx: &Transaction<'_>, path: &Path) -> Result<Vec<BackupRecord>> {
    let read = |e| db_error("read the backup index of", path, e);
    let mut statement = tx
        .prepare_cached("SELECT id, file, revision, checksum, size, created_at, reason FROM backups")
        .map_err(read)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(..) => read(e),
            other => index_damaged(path, other.to_string()),
        })?;
    let mut backups = Vec::with_capacity(rows.len());
    for (id, file, revision, checksum, size, created_at, reason) in rows {
        let created_at = DateTime::parse_from_rfc3339(&created_at)
            .map_err(|e| index_damaged(path, format!("backup {id:?} has the time {created_at:?} ({e})")))?
            .with_timezone(&Utc);
        let (Ok(revision), Ok(size)) = (u64::try_from(revision), u64::try_from(size)) else {
            return Err(index_damaged(
                path,
                format!("backup {id:?} has a negative revision or size"),
            ));
        };
        backups.push(BackupRecord {
            id,
            location: file,
            revision,
            checksum,
            size,
            created_at,
            reason,
        });
    }
    files::sort_backups(&mut backups);
    Ok(backups)
}

fn index_damaged(path: &Path, detail: String) -> Error {
    Error::BackupIndexDamaged {
        location: format!("in {}", path.display()),
        detail,
    }
}
