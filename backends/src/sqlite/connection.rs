//! Opening `state.db`: flags, pragmas and the defences against a hostile database,
//! and turning SQLite's errors into the store's.
//!
//! Every connection is opened without following a symbolic link, with defensive mode
//! on, `trusted_schema` off and triggers and views disabled, so that nothing a
//! stranger planted in the file can run (docs/decisions/0020-sqlite-backend.md,
//! "Hostile databases"). The schema check itself is in `schema.rs`.

use std::io;
use std::path::Path;
use std::time::Duration;

use checklist_core::config::Durability;
use checklist_core::{CorruptionKind, Error};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Opens `path` for reading and writing, creating it when `create` is set, and
/// configures the connection: the defences, `synchronous` by `durability`, and a busy
/// timeout of `busy_timeout`.
///
/// # Errors
/// The mapped SQLite error ([`db_error`]), naming `path`.
pub(super) fn open(
    path: &Path,
    create: bool,
    durability: Durability,
    busy_timeout: Duration,
) -> Result<Connection, Error> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_EXRESCODE;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error("open", path, e))?;
    configure(&conn, durability, busy_timeout)
        .map_err(|e| db_error("configure the connection to", path, e))?;
    Ok(conn)
}

fn configure(conn: &Connection, durability: Durability, busy_timeout: Duration) -> rusqlite::Result<()> {
    // Defensive mode refuses writes to the schema tables and other ways to corrupt the
    // file through SQL; without a trusted schema, functions with side effects cannot run
    // from a view or trigger; and with triggers and views off, nothing planted runs at
    // all (the schema check refuses such a database anyway, before any statement).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false)?;
    conn.busy_timeout(busy_timeout)?;
    // FULL fsyncs the write-ahead log on every commit: a commit that returned survives a
    // power loss. NORMAL (durability: fast) leaves that to the checkpoint, so the last
    // commits may be undone by a power loss, never torn.
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Fast => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Catches more damage to a b-tree page when it is read, for a small cost.
    conn.pragma_update(None, "cell_size_check", true)?;
    Ok(())
}

/// Maps a SQLite error on `path` to the store's error: damage to the file is
/// [`Error::Corrupted`] (exit 5), a lock not given within the busy timeout is
/// [`Error::LockTimeout`], a symbolic link is [`Error::SymlinkRefused`], and the
/// conditions of the operating system (a full disk, a read-only file, a refused
/// permission) are [`Error::Io`] with the matching kind, so their advice applies.
pub(super) fn db_error(op: &'static str, path: &Path, error: rusqlite::Error) -> Error {
    let rusqlite::Error::SqliteFailure(failure, message) = &error else {
        return Error::io(op, path, io::Error::other(error.to_string()));
    };
    let detail = message.clone().unwrap_or_else(|| failure.to_string());
    let io_kind = |kind: io::ErrorKind| Error::io(op, path, io::Error::new(kind, detail.clone()));
    match failure.code {
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
            damaged(path, format!("SQLite reports: {detail}"))
        }
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::LockTimeout {
            resource: path.display().to_string(),
            waited: Duration::ZERO,
            holder: None,
        },
        ErrorCode::CannotOpen if failure.extended_code == rusqlite::ffi::SQLITE_CANTOPEN_SYMLINK => {
            Error::SymlinkRefused {
                path: path.to_owned(),
            }
        }
        ErrorCode::DiskFull => io_kind(io::ErrorKind::StorageFull),
        ErrorCode::ReadOnly => io_kind(io::ErrorKind::ReadOnlyFilesystem),
        ErrorCode::PermissionDenied | ErrorCode::AuthorizationForStatementDenied => {
            io_kind(io::ErrorKind::PermissionDenied)
        }
        _ => io_kind(io::ErrorKind::Other),
    }
}

/// The error for a `state.db` that is not a database this store can trust: damage
/// (exit 5), which `checklist recover` repairs by keeping the whole file in quarantine.
pub(super) fn damaged(path: &Path, detail: String) -> Error {
    Error::Corrupted {
        kind: CorruptionKind::ParseError,
        path: path.to_owned(),
        detail,
    }
}

/// A lock wait that gave up after `waited`, naming `path`.
pub(super) fn busy(path: &Path, waited: Duration) -> Error {
    Error::LockTimeout {
        resource: path.display().to_string(),
        waited,
        holder: None,
    }
}
