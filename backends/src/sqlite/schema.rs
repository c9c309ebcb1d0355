//! The layout of `state.db`, its version, and the check that a database holds exactly
//! what this store created — nothing more, nothing less, nothing newer.
//!
//! The version is `PRAGMA user_version`; `PRAGMA application_id` marks the file as a
//! checklist state database, so another program's SQLite file in its place is told
//! apart from damage to ours. Both are set in the transaction that creates the tables.

use std::path::Path;
use std::sync::LazyLock;

use checklist_core::{Error, Result};
use rusqlite::Connection;

use super::connection::{damaged, db_error};

/// `PRAGMA application_id` of a checklist state database (`ckls`).
pub(super) const APPLICATION_ID: i32 = 0x636b_6c73;

/// The layout version this build reads and writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i32 = 1;

/// The tables of layout version 1. `state` holds one row: the document exactly as
/// sealed (the JSON codec's bytes) in `doc`, with copies of its revision and checksum
/// for people querying the file; the store trusts only `doc`. `backups` is the index of
/// the backup files in `.backup/`.
const SCHEMA: &str = "\
CREATE TABLE state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  doc BLOB NOT NULL
);
CREATE TABLE backups (
  id TEXT PRIMARY KEY NOT NULL,
  file TEXT NOT NULL,
  revision INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  reason TEXT NOT NULL
);
";

/// One row of `sqlite_schema`: type, name, table name, SQL.
type SchemaObject = (String, String, String, Option<String>);

/// What `sqlite_schema` holds once [`SCHEMA`] has run, as SQLite itself records it
/// (learned from an in-memory database, so the comparison does not depend on how
/// SQLite normalises the statements).
static EXPECTED: LazyLock<std::result::Result<Vec<SchemaObject>, String>> = LazyLock::new(|| {
    let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    objects(&conn).map_err(|e| e.to_string())
});

/// What a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Nothing at all: a new file (or one of zero bytes). Reads see no state; the first
    /// write creates the tables.
    Empty,
    /// This store's tables, at this build's version, and nothing else.
    Ours,
}

fn objects(conn: &Connection) -> rusqlite::Result<Vec<SchemaObject>> {
    let mut statement =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?;
    rows.collect()
}

/// Checks what the database at `path` holds, reading only its header and
/// `sqlite_schema` (nothing in it runs).
///
/// # Errors
/// [`Error::UnsupportedVersion`] for a layout newer than this build's;
/// [`Error::Corrupted`] for a file that is not a SQLite database, another program's
/// database, or one holding tables, views, triggers or indexes this store did not
/// create (or lacking one it did).
pub(super) fn check(conn: &Connection, path: &Path) -> Result<Found> {
    let read = |e| db_error("read the schema of", path, e);
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(read)?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(read)?;
    let found = objects(conn).map_err(read)?;
    if found.is_empty() && application_id == 0 && version == 0 {
        return Ok(Found::Empty);
    }
    if application_id != APPLICATION_ID {
        return Err(damaged(
            path,
            format!(
                "it is a SQLite database but not a checklist state database (application_id {application_id:#x}, \
                 {} schema objects), so nothing in it was read or run",
                found.len()
            ),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            found: format!("{version}.0 (of the database layout)"),
            supported: format!("{SCHEMA_VERSION}.0 (of the database layout)"),
            typescript: false,
            upgrade: checklist_core::Upgrade::Newer {
                major: u64::try_from(version).unwrap_or_default(),
            },
        });
    }
    if version != SCHEMA_VERSION {
        return Err(damaged(
            path,
            format!("its layout version is {version}, which no checklist writes"),
        ));
    }
    let expected = EXPECTED.as_ref().map_err(|e| {
        Error::invalid(format!(
            "SQLite could not create the state database layout in memory: {e}"
        ))
    })?;
    if let Some((kind, name, _, _)) = found.iter().find(|object| !expected.contains(object)) {
        let what = if expected.iter().any(|(k, n, _, _)| k == kind && n == name) {
            "a changed definition of"
        } else {
            "a"
        };
        return Err(damaged(
            path,
            format!(
                "it holds {what} {kind} `{name}` that checklist did not create; nothing in the database was run"
            ),
        ));
    }
    if let Some((kind, name, _, _)) = expected.iter().find(|object| !found.contains(object)) {
        return Err(damaged(path, format!("its {kind} `{name}` is missing")));
    }
    Ok(Found::Ours)
}

/// Switches an empty database to write-ahead logging (which cannot be done inside a
/// transaction, and persists in the file), then creates the tables.
///
/// # Errors
/// As [`create_tables`].
pub(super) fn create(conn: &mut Connection, path: &Path) -> Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| db_error("switch to write-ahead logging", path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite did not switch to write-ahead logging");
    }
    create_tables(conn, path)
}

/// Creates the tables in an empty database, in one transaction with the version and
/// the application id; a database that already has them is left as it is.
///
/// # Errors
/// The mapped SQLite errors; [`check`]'s errors when another process created something
/// else meanwhile.
pub(super) fn create_tables(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| db_error("create the tables of", path, e))?;
    // Another process may have created them while this one waited.
    if check(&tx, path)? == Found::Empty {
        let create = |e| db_error("create the tables of", path, e);
        tx.execute_batch(SCHEMA).map_err(create)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(create)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(create)?;
    }
    tx.commit().map_err(|e| db_error("create the tables of", path, e))
}

/// The schema cookie, which changes whenever anything changes the schema: a
/// connection re-checks the schema when it differs from the one it checked.
pub(super) fn cookie(conn: &Connection, path: &Path) -> Result<i64> {
    conn.pragma_query_value(None, "schema_version", |row| row.get(0))
        .map_err(|e| db_error("read the schema version of", path, e))
}
