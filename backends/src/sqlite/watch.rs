//! The change feed of the `sqlite` backend: a watch of `.checklist/` whose probe asks
//! SQLite itself (docs/backends.md, "Following changes").
//!
//! A commit in WAL mode becomes visible when SQLite updates its `-shm` index through
//! memory, which no file notification sees; and the file's size and time say nothing
//! reliable either (a checkpoint, a reset log). So the probe's mark is
//! `PRAGMA data_version` on a connection of its own, which changes whenever another
//! connection commits, beside the marks of `state.db` (a database swapped in by a
//! restore or recovery is another file, which the old connection would never see) and
//! of `audit.log`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::fs::vfs::Vfs;
use crate::fs::watch::{Mark, Probe, file_probe};

/// The probe of the database at `db_path` and the audit trail at `audit_log`.
pub(super) fn probe(vfs: Arc<dyn Vfs>, db_path: PathBuf, audit_log: PathBuf) -> Probe {
    let files = file_probe(vfs, vec![db_path.clone(), audit_log]);
    let connection: Mutex<Option<Connection>> = Mutex::new(None);
    Arc::new(move || {
        let mut mark: Mark = files()?;
        let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
        mark.push(data_version(&mut connection, &db_path));
        Ok(mark)
    })
}

/// `PRAGMA data_version` of the probe's own connection, opened when the database
/// exists; 0 without one. A connection that fails is dropped and opened again next
/// time (a damaged or replaced database), so a failure reads as a change, never as an
/// error of the watch.
fn data_version(connection: &mut Option<Connection>, db_path: &Path) -> u64 {
    if connection.is_none() {
        // Never created here: the store's first write creates the database.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        *connection = Connection::open_with_flags(db_path, flags).ok().inspect(|conn| {
            // A writer's checkpoint may hold the database for a moment.
            let _ = conn.busy_timeout(Duration::from_millis(100));
        });
    }
    let version = connection
        .as_ref()
        .map(|conn| conn.pragma_query_value(None, "data_version", |row| row.get::<_, i64>(0)));
    match version {
        Some(Ok(version)) => version as u64,
        Some(Err(_)) => {
            *connection = None;
            u64::MAX
        }
        None => 0,
    }
}
