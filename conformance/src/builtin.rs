//! Subjects for the built-in backends (`memory`, and `yaml`, `json` and `sqlite` with the
//! cargo feature of that name; `yaml` and `json` are default features): the one factory
//! shared by this crate's own tests and by `checklist conformance`, which runs the suite
//! on a file system of the user's choosing.
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use checklist_conformance::builtin::{BuiltinBackend, subject_for};
//! use checklist_core::config::Durability;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let subject = subject_for(BuiltinBackend::Json, dir.path(), Durability::Full).unwrap();
//! assert_eq!(subject.store.info().backend.as_str(), "json");
//! # }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;

#[cfg(feature = "json")]
use checklist_backends::JsonCodec;
#[cfg(feature = "yaml")]
use checklist_backends::YamlCodec;
use checklist_backends::{
    Codec, FileLockProvider, FileStore, FileStoreOptions, InProcessLockProvider, MemoryStore,
};
use checklist_core::config::Durability;
use checklist_core::{LockInfo, Result};

use crate::holder::{LockSpec, holder_of};
use crate::{RawAccess, Subject};

/// A backend that ships with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinBackend {
    /// `state.yaml` in a directory (`checklist_backends::YamlFileStore`; cargo feature
    /// `yaml`).
    #[cfg(feature = "yaml")]
    Yaml,
    /// `state.json` in a directory (`checklist_backends::JsonFileStore`; cargo feature
    /// `json`).
    #[cfg(feature = "json")]
    Json,
    /// A document in memory ([`MemoryStore`]); nothing touches the disk.
    Memory,
    /// `state.db`, an embedded SQLite database, in a directory
    /// (`checklist_backends::SqliteStore`; cargo feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl BuiltinBackend {
    /// Every built-in backend this build has (each but `memory` with the cargo feature
    /// of its name).
    pub const ALL: &'static [Self] = &[
        #[cfg(feature = "yaml")]
        Self::Yaml,
        #[cfg(feature = "json")]
        Self::Json,
        Self::Memory,
        #[cfg(feature = "sqlite")]
        Self::Sqlite,
    ];

    /// Its registered name, as `config.yaml`'s `backend.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "yaml")]
            Self::Yaml => "yaml",
            #[cfg(feature = "json")]
            Self::Json => "json",
            Self::Memory => "memory",
            #[cfg(feature = "sqlite")]
            Self::Sqlite => "sqlite",
        }
    }

    /// Whether it keeps its state on disk (in the directory given to [`subject_for`]).
    pub fn is_on_disk(self) -> bool {
        !matches!(self, Self::Memory)
    }
}

impl fmt::Display for BuiltinBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a built-in backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotBuiltin(pub String);

impl fmt::Display for NotBuiltin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = BuiltinBackend::ALL.iter().map(|b| b.name()).collect();
        write!(
            f,
            "{:?} is not a built-in backend ({}); a custom backend is checked by expanding \
             checklist_conformance::conformance_tests! in its own tests",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for NotBuiltin {}

impl FromStr for BuiltinBackend {
    type Err = NotBuiltin;

    fn from_str(name: &str) -> std::result::Result<Self, NotBuiltin> {
        Self::ALL
            .iter()
            .copied()
            .find(|b| b.name() == name)
            .ok_or_else(|| NotBuiltin(name.to_owned()))
    }
}

/// A fresh [`Subject`] for `backend` whose files live in `dir`, an existing, empty
/// directory the caller owns (and removes afterwards); `dir` plays the part of
/// `.checklist/`. Each case needs its own: call this once per case, with a new
/// directory each time.
///
/// File backends get every hook the suite needs:
/// a second store and lock provider opened on `dir`, raw access to the state file and
/// to `.backup/manifest.yaml`, and planting a stale `.lock`. The memory backend ignores
/// `dir` and `durability`.
///
/// Planting a stale lock runs the current executable once with `--list` (stdio
/// closed) and waits for it, to learn a pid that provably belongs to no process; any
/// executable that exits on an unknown or listing flag — a test harness, the
/// `checklist` binary — serves.
///
/// # Errors
/// As `FileStore::open`: `Error::NotInitialized` when `dir` does not exist,
/// `Error::Io` when it is not a directory, `Error::SymlinkRefused` for a link.
#[cfg_attr(
    not(any(feature = "yaml", feature = "json", feature = "sqlite")),
    expect(
        unused_variables,
        reason = "memory, the one backend left, has no directory or durability"
    )
)]
pub fn subject_for(backend: BuiltinBackend, dir: &Path, durability: Durability) -> Result<Subject> {
    match backend {
        #[cfg(feature = "yaml")]
        BuiltinBackend::Yaml => file_subject(YamlCodec, dir, durability),
        #[cfg(feature = "json")]
        BuiltinBackend::Json => file_subject(JsonCodec, dir, durability),
        BuiltinBackend::Memory => Ok(memory_subject()),
        #[cfg(feature = "sqlite")]
        BuiltinBackend::Sqlite => sqlite::sqlite_subject(dir, durability),
    }
}

/// A fresh [`Subject`] for a [`FileStore`] with `codec` in `dir` — a built-in file
/// backend, or a custom one that is a codec over the shared file engine (the TOML
/// example backend uses it) — with every hook the suite needs, as [`subject_for`]
/// describes.
///
/// # Errors
/// As `FileStore::open`.
pub fn file_subject<C: Codec + Clone>(codec: C, dir: &Path, durability: Durability) -> Result<Subject> {
    let options = FileStoreOptions {
        durability,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir, codec.clone(), options.clone())?;
    let state_path = store.state_path().to_owned();
    let dir: PathBuf = dir.to_owned();
    let subject = Subject::new(Arc::new(store), Arc::new(FileLockProvider::new(&dir)))
        .reopen_with({
            let dir = dir.clone();
            // The first open succeeded on this directory; a second one failing means
            // the directory went away under the case, which the case reports.
            move || Arc::new(FileStore::open(&dir, codec.clone(), options.clone()).expect("reopen the store"))
        })
        .raw_access(RawAccess::file(state_path))
        .backup_index_access(RawAccess::file(dir.join(".backup").join("manifest.yaml")))
        .reopen_locks_with({
            let dir = dir.clone();
            move || Arc::new(FileLockProvider::new(&dir))
        })
        .plant_stale_lock_with({
            let dir = dir.clone();
            move |like| plant_stale_lock(&dir, like)
        })
        .hold_in_another_process_with(holder_of(LockSpec::File { dir: dir.clone() }));
    Ok(with_sidecar_files(subject, &dir))
}

/// Gives `subject` the hooks for what a store keeps in files beside its document in
/// `dir` (the file backends and SQLite): each backup's file under `.backup/`, and
/// `audit.log`, torn by appending the first half of a record without its line end.
pub fn with_sidecar_files(subject: Subject, dir: &Path) -> Subject {
    let backups = dir.join(".backup");
    let audit = dir.join("audit.log");
    subject
        .backup_access_with(move |record| RawAccess::file(backups.join(&record.location)))
        .tear_audit_with(move || {
            use std::io::Write as _;
            let line = checklist_core::AuditRecord::new(checklist_core::AuditEvent::Commit).to_line();
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&audit)?
                .write_all(&line[..line.len() / 2])
        })
}

fn memory_subject() -> Subject {
    let store = MemoryStore::new();
    let (for_reopen, for_read, for_write, for_remove) =
        (store.clone(), store.clone(), store.clone(), store.clone());
    let (backups, for_tear) = (store.clone(), store.clone());
    let locks = InProcessLockProvider::new("memory:conformance");
    let other_locks = locks.clone();
    Subject::new(Arc::new(store), Arc::new(locks))
        .reopen_locks_with(move || Arc::new(other_locks.clone()))
        .reopen_with(move || Arc::new(for_reopen.clone()))
        .raw_access(
            RawAccess::new(
                move || Ok(for_read.raw()),
                move |bytes| {
                    for_write.replace_raw(bytes.to_vec());
                    Ok(())
                },
            )
            .removable(move || {
                for_remove.remove_raw();
                Ok(())
            }),
        )
        .backup_access_with(move |record| {
            let (for_read, for_write, id) = (backups.clone(), backups.clone(), record.id.clone());
            let write_id = id.clone();
            RawAccess::new(
                move || Ok(for_read.backup_raw(&id)),
                move |bytes| {
                    if for_write.replace_backup_raw(&write_id, bytes.to_vec()) {
                        Ok(())
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("no backup {write_id}"),
                        ))
                    }
                },
            )
        })
        .tear_audit_with(move || {
            let line = checklist_core::AuditRecord::new(checklist_core::AuditEvent::Commit).to_line();
            for_tear.append_raw_audit(&line[..line.len() / 2]);
            Ok(())
        })
}

#[cfg(feature = "sqlite")]
pub use sqlite::sqlite_subject;

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use checklist_backends::{FileLockProvider, FileStoreOptions, SqliteStore};
    use checklist_core::Result;
    use checklist_core::config::Durability;
    use rusqlite::{Connection, OpenFlags, OptionalExtension};

    use super::{plant_stale_lock, with_sidecar_files};
    use crate::holder::{LockSpec, holder_of};
    use crate::{RawAccess, Subject};

    /// A fresh [`Subject`] for the `sqlite` backend in `dir`: a
    /// `checklist_backends::SqliteStore` guarded by the [`FileLockProvider`] of `dir`,
    /// with every hook the suite needs. The raw
    /// access reads and replaces the `doc` BLOB of the `state` row through a connection
    /// of its own (removing it deletes the row), and the backup index access is the
    /// `backups` table: "damaging" it writes a row that is no backup record, removing
    /// it empties the table. Damage to the database file itself (not SQLite, flipped
    /// pages) is checked by `backends/tests/integration/sqlite.rs`.
    ///
    /// # Errors
    /// As `SqliteStore::open`.
    pub fn sqlite_subject(dir: &Path, durability: Durability) -> Result<Subject> {
        let options = FileStoreOptions {
            durability,
            ..FileStoreOptions::default()
        };
        let store = SqliteStore::open(dir, options.clone())?;
        let db: PathBuf = store.db_path().to_owned();
        let dir: PathBuf = dir.to_owned();
        let (read_db, write_db, remove_db) = (db.clone(), db.clone(), db.clone());
        let (index_read, index_write, index_remove) = (db.clone(), db.clone(), db);
        let raw = RawAccess::new(
            move || {
                let Some(conn) = connect(&read_db)? else {
                    return Ok(None);
                };
                conn.query_row("SELECT doc FROM state WHERE id = 1", [], |row| {
                    row.get::<_, Vec<u8>>(0)
                })
                .optional()
                .map_err(sql)
            },
            move |bytes| {
                let conn = connect(&write_db)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                conn.execute(
                    "INSERT INTO state (id, revision, checksum, doc) VALUES (1, 0, '', ?1) \
                     ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                    [bytes],
                )
                .map(|_| ())
                .map_err(sql)
            },
        )
        .removable(move || {
            let conn = connect(&remove_db)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            conn.execute("DELETE FROM state", []).map(|_| ()).map_err(sql)
        });
        let index = RawAccess::new(
            move || {
                let Some(conn) = connect(&index_read)? else {
                    return Ok(None);
                };
                let mut statement = conn
                    .prepare("SELECT id, file, revision, checksum, size, created_at, reason FROM backups ORDER BY id")
                    .map_err(sql)?;
                let rows = statement
                    .query_map([], |row| {
                        Ok(format!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, i64>(4)?,
                            row.get::<_, String>(5)?,
                            row.get::<_, String>(6)?
                        ))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql)?;
                Ok(Some(rows.concat().into_bytes()))
            },
            move |bytes| {
                // The index is rows, not bytes: what a careless edit leaves is a row that
                // is no backup record, its fields holding the bytes.
                let conn = connect(&index_write)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                let text = String::from_utf8_lossy(bytes).into_owned();
                conn.execute_batch("DELETE FROM backups").map_err(sql)?;
                conn.execute(
                    "INSERT INTO backups (id, file, revision, checksum, size, created_at, reason) \
                     VALUES (?1, ?1, -1, ?1, -1, ?1, ?1)",
                    [text],
                )
                .map(|_| ())
                .map_err(sql)
            },
        )
        .removable(move || {
            let conn = connect(&index_remove)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            conn.execute("DELETE FROM backups", []).map(|_| ()).map_err(sql)
        });
        let subject = Subject::new(Arc::new(store), Arc::new(FileLockProvider::new(&dir)))
            .reopen_with({
                let dir = dir.clone();
                let options = options.clone();
                // The first open succeeded on this directory; a second one failing means
                // the directory went away under the case, which the case reports.
                move || Arc::new(SqliteStore::open(&dir, options.clone()).expect("reopen the store"))
            })
            .raw_access(raw)
            .backup_index_access(index)
            .reopen_locks_with({
                let dir = dir.clone();
                move || Arc::new(FileLockProvider::new(&dir))
            })
            .plant_stale_lock_with({
                let dir = dir.clone();
                move |like| plant_stale_lock(&dir, like)
            })
            .hold_in_another_process_with(holder_of(LockSpec::File { dir: dir.clone() }));
        Ok(with_sidecar_files(subject, &dir))
    }

    /// A plain connection to `db` (none when it does not exist), as a person with
    /// `sqlite3` would open it.
    fn connect(db: &Path) -> io::Result<Option<Connection>> {
        if !db.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        Ok(Some(conn))
    }

    fn sql(error: rusqlite::Error) -> io::Error {
        io::Error::other(error.to_string())
    }
}

/// Writes `dir/.lock` as schemas/lock.schema.json describes it, held by `like`'s host
/// and user but a pid that no longer exists: that of a run of the current executable
/// with `--list` (stdio closed), waited for. For [`Subject::plant_stale_lock_with`] of
/// any backend that uses [`FileLockProvider`].
///
/// # Errors
/// Spawning or waiting for the child, or writing the file.
pub fn plant_stale_lock(dir: &Path, like: &LockInfo) -> io::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--list")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let dead_pid = child.id();
    child.wait()?;
    let now = chrono::Utc::now();
    let lock = serde_json::json!({
        "version": "1.0.0",
        "lockId": "0badc0de-0000-4000-8000-000000000000",
        "metadata": {"pid": dead_pid, "ppid": null, "hostname": like.hostname, "user": like.user,
                     "processStartedAt": null},
        "timing": {"acquiredAt": now, "expiresAt": now + chrono::Duration::seconds(30), "renewedAt": now},
        "operation": {"type": "write", "stackTrace": null},
        "concurrency": {"waitingProcesses": []}
    });
    std::fs::write(dir.join(".lock"), serde_json::to_vec_pretty(&lock)?)
}
