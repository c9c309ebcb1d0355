//! What the SQLite backend keeps outside `state.db`, so that damage to the database
//! cannot take it along: backup files in `.backup/` and quarantined bytes in
//! `quarantine/` (docs/decisions/0020-sqlite-backend.md, "What lives outside
//! state.db").
//!
//! A backup is a private (0600) file `state.json.<id>` holding the document exactly as
//! it was stored — a JSON state file, so it verifies like one — written atomically
//! and durably before the transaction that lists it commits. A quarantined document is
//! `state.db.<id>` with a note `state.db.<id>.why.yaml`, as the file engine keeps them.

use std::io;
use std::path::{Path, PathBuf};

use checklist_core::backup::{SkippedBackup, validate_backup_id};
use checklist_core::config::Durability;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, new_quarantine_id};
use checklist_core::{BackupRecord, ChecklistState, Error, Result};
use chrono::{DateTime, Utc};

use crate::codec::json::JsonCodec;
use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error, replace_file};
use crate::fs::vfs::Vfs;
use crate::sidecar::quarantine::QuarantineDir;
use checklist_core::store::verify as verify_state_file;

/// Backup files are named `<this><id>`.
pub(super) const BACKUP_PREFIX: &str = "state.json.";

/// Quarantined files are named `<this><id>`.
pub(super) const QUARANTINE_PREFIX: &str = "state.db.";

/// The time part of a backup id (`<revision>-<time>`), as the file engine writes it.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

/// How many backups may share one millisecond's name before taking one fails.
const MAX_SAME_STAMP: u32 = 100;

/// What a stored document holds, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Contents {
    pub(super) revision: u64,
    pub(super) checksum: String,
}

/// A backup file in place, not yet listed.
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) record: BackupRecord,
    pub(super) path: PathBuf,
}

/// Writes `bytes` (holding `contents`) as a new backup file in `dir`, durably.
///
/// # Errors
/// Creating the directory or writing the file; nothing is left behind then.
pub(super) fn place_backup(
    vfs: &dyn Vfs,
    dir: &Path,
    bytes: &[u8],
    contents: &Contents,
    reason: &str,
) -> Result<Placed> {
    ensure_dir(vfs, dir)?;
    let now = checklist_core::model::now();
    let stamp = format!("{}-{}", contents.revision, now.format(STAMP_FORMAT));
    for attempt in 1..=MAX_SAME_STAMP {
        let id = match attempt {
            1 => stamp.clone(),
            n => format!("{stamp}-{n}"),
        };
        let file = format!("{BACKUP_PREFIX}{id}");
        let path = dir.join(&file);
        match vfs.metadata(&path) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("inspect", &path, e)),
        }
        // Always durable: a backup must be on disk before the commit that lists it.
        replace_file(vfs, &path, bytes, Durability::Full, PRIVATE_FILE_MODE)?;
        return Ok(Placed {
            record: BackupRecord {
                id,
                location: file,
                revision: contents.revision,
                checksum: contents.checksum.clone(),
                size: bytes.len() as u64,
                created_at: now,
                reason: reason.to_owned(),
            },
            path,
        });
    }
    Err(Error::invalid(format!(
        "{MAX_SAME_STAMP} backups were taken in {} in the same millisecond; try again",
        dir.display()
    )))
}

/// Removes the backup file at `path`; a file already gone is fine.
pub(super) fn remove_backup_file(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    remove_if_present(vfs, path, "remove the backup")
}

/// Removes the file at `path` (`op` names the removal in an error); a file already
/// gone is fine.
pub(super) fn remove_if_present(vfs: &dyn Vfs, path: &Path, op: &'static str) -> Result<()> {
    crate::fs::vfs::remove_if_present(vfs, path).map_err(|e| io_error(op, path, e))
}

/// The path of a listed backup's file, refusing a listed name that is not a backup
/// file name (the table can be edited with `sqlite3`).
pub(super) fn backup_path(dir: &Path, db_path: &Path, record: &BackupRecord) -> Result<PathBuf> {
    if validate_backup_id(&record.location).is_err()
        || record.location != format!("{BACKUP_PREFIX}{}", record.id)
    {
        return Err(Error::BackupIndexDamaged {
            location: format!("in {}", db_path.display()),
            detail: format!(
                "it lists {:?} as the file of backup {}, which is not its file name",
                record.location, record.id
            ),
        });
    }
    Ok(dir.join(&record.location))
}

/// Reads and verifies the backup file at `path` as a JSON state file.
///
/// # Errors
/// [`Error::Corrupted`] when it does not verify; the I/O errors of reading it.
pub(super) fn read_backup_file(vfs: &dyn Vfs, path: &Path, limit: u64) -> Result<(Vec<u8>, ChecklistState)> {
    let bytes = vfs
        .read(path, limit)
        .map_err(|e| io_error("read the backup", path, e))?;
    let state = verify_state_file(&JsonCodec, &bytes, path)?;
    Ok((bytes, state))
}

/// Every backup file in `dir` that verifies, as a backup record (keeping the reason
/// and time of `previous` where it lists the id), and the files that do not, sorted;
/// nothing is changed.
///
/// # Errors
/// Listing the directory, and a backup that cannot be read for a reason other than its
/// content ([`Error::is_access_failure`]), which is not dropped from an index.
pub(super) fn scan_backups(
    vfs: &dyn Vfs,
    dir: &Path,
    limit: u64,
    previous: &[BackupRecord],
) -> Result<(Vec<BackupRecord>, Vec<SkippedBackup>)> {
    let names = match vfs.list_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        let Some(file) = name.to_str().map(str::to_owned) else {
            continue;
        };
        let Some(id) = file.strip_prefix(BACKUP_PREFIX) else {
            continue;
        };
        let path = dir.join(&file);
        let verified = validate_backup_id(id).and_then(|()| read_backup_file(vfs, &path, limit));
        match verified {
            Ok((bytes, state)) => {
                let known = previous.iter().find(|b| b.id == id);
                let created_at = known
                    .map(|b| b.created_at)
                    .or_else(|| id_time(id))
                    .or_else(|| {
                        vfs.metadata(&path)
                            .ok()?
                            .modified()
                            .ok()
                            .map(DateTime::<Utc>::from)
                    })
                    .unwrap_or_else(checklist_core::model::now);
                kept.push(BackupRecord {
                    id: id.to_owned(),
                    location: file,
                    revision: state.revision,
                    checksum: state.checksum.unwrap_or_default(),
                    size: bytes.len() as u64,
                    created_at,
                    reason: known.map_or_else(|| "rebuilt".to_owned(), |b| b.reason.clone()),
                });
            }
            Err(error) if error.is_access_failure() => return Err(error),
            Err(error) => skipped.push(SkippedBackup {
                location: file,
                reason: error.to_string(),
            }),
        }
    }
    sort_backups(&mut kept);
    skipped.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((kept, skipped))
}

/// Oldest first: by revision, then by time.
pub(super) fn sort_backups(backups: &mut [BackupRecord]) {
    backups.sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
}

/// When a backup was taken, from the timestamp part of its id (`<rev>-<time>`).
fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let (_, stamp) = id.split_once('-')?;
    let stamp = stamp.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

pub(super) fn ensure_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    match vfs.create_dir(dir, DIR_MODE) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("create the directory", dir, e)),
    }
}

/// Keeps `found` in `quarantine` with `note`: the bytes durably as a new file, then the
/// note. A note that cannot be written takes the kept file out again (listed nowhere,
/// it would stay forever; the bytes are still in state.db).
///
/// # Errors
/// Creating the directory or writing either file.
pub(super) fn quarantine(
    vfs: &dyn Vfs,
    quarantine: &QuarantineDir,
    found: &[u8],
    note: &QuarantineNote,
) -> Result<QuarantineRecord> {
    quarantine.ensure(vfs)?;
    let entry = quarantine.new_entry(found, note)?;
    quarantine.keep(vfs, &entry, found, Durability::Full)?;
    Ok(entry.record)
}

/// Moves the write-ahead log `wal` of a damaged database aside into `dir` (as
/// `state.db.<id>.wal`) before the database is replaced, so that it is neither lost
/// nor replayed into the new one. Nothing to do when there is none.
///
/// # Errors
/// Creating the directory or renaming the file.
pub(super) fn set_wal_aside(
    vfs: &dyn Vfs,
    quarantine: &QuarantineDir,
    wal: &Path,
) -> Result<Option<PathBuf>> {
    match vfs.metadata(wal) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("inspect", wal, e)),
        Ok(meta) if meta.len() == 0 => {
            remove_if_present(vfs, wal, "remove the empty write-ahead log")?;
            return Ok(None);
        }
        Ok(_) => {}
    }
    quarantine.ensure(vfs)?;
    let target = quarantine.dir().join(format!(
        "{QUARANTINE_PREFIX}{}.wal",
        new_quarantine_id(checklist_core::model::now())
    ));
    vfs.rename(wal, &target)
        .map_err(|e| io_error("move aside the write-ahead log", wal, e))?;
    Ok(Some(target))
}
