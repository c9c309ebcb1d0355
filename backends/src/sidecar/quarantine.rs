//! `.checklist/quarantine/`: corrupt documents kept byte for byte, each as
//! `<prefix><id>` with its note `<prefix><id>.why.yaml` (a
//! [`QuarantineRecord`] in YAML). Shared by the file engine (`state.<ext>.`) and the
//! sqlite backend (`state.db.`); how the bytes get there is each store's own (a hard
//! link to the state file, a copy of the database).

use std::io;
use std::path::{Path, PathBuf};

use checklist_core::backup::validate_backup_id;
use checklist_core::codec::Codec;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, bytes_sha256, new_quarantine_id};
use checklist_core::{Error, Result};

use crate::codec::yaml::YamlCodec;
use checklist_core::config::Durability;

use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error, replace_file};
use crate::fs::vfs::{Vfs, refused_symlink, remove_if_present};

/// What a note's file name ends with.
const NOTE_SUFFIX: &str = ".why.yaml";

/// The first line of every note.
const NOTE_HEADER: &[u8] = b"# Why the file beside this one was quarantined (never deleted by checklist).\n";

/// The quarantine directory of one store, whose kept files are named `<prefix><id>`.
#[derive(Debug, Clone)]
pub(crate) struct QuarantineDir {
    dir: PathBuf,
    prefix: String,
}

/// A quarantine entry about to be written: its record, where its bytes and its note
/// go, and the note's bytes.
#[derive(Debug)]
pub(crate) struct NewEntry {
    pub(crate) record: QuarantineRecord,
    pub(crate) path: PathBuf,
    pub(crate) note_path: PathBuf,
    pub(crate) note: Vec<u8>,
}

impl QuarantineDir {
    /// `store_dir/quarantine/`, its files named `<prefix><id>`.
    pub(crate) fn new(store_dir: &Path, prefix: impl Into<String>) -> Self {
        Self {
            dir: store_dir.join("quarantine"),
            prefix: prefix.into(),
        }
    }

    /// The directory (where the sqlite backend puts its copy of a damaged database).
    #[cfg(feature = "sqlite")]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this store's quarantine is, as [`PlaneLocations`] names it: the files of
    /// its prefix in the shared directory.
    ///
    /// [`PlaneLocations`]: checklist_core::PlaneLocations
    pub(crate) fn plane_location(&self) -> String {
        format!("{}/{}*", self.dir.display(), self.prefix)
    }

    /// Creates the directory if it is missing.
    ///
    /// # Errors
    /// The I/O error of creating it.
    pub(crate) fn ensure(&self, vfs: &dyn Vfs) -> Result<()> {
        match vfs.create_dir(&self.dir, DIR_MODE) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                Err(io_error("create the directory", &self.dir, e))
            }
            _ => Ok(()),
        }
    }

    /// A new entry for `found` with `note`, under a fresh id: nothing is written yet.
    ///
    /// # Errors
    /// The record cannot be encoded as a note (it always can).
    pub(crate) fn new_entry(&self, found: &[u8], note: &QuarantineNote) -> Result<NewEntry> {
        let now = checklist_core::model::now();
        self.entry_of(QuarantineRecord {
            id: new_quarantine_id(now),
            location: String::new(),
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        })
    }

    /// The entry of `record`, kept here under its id.
    fn entry_of(&self, mut record: QuarantineRecord) -> Result<NewEntry> {
        let file = format!("{}{}", self.prefix, record.id);
        let path = self.dir.join(&file);
        record.location = path.display().to_string();
        let value = serde_json::to_value(&record).map_err(|e| Error::invalid(e.to_string()))?;
        let mut note = NOTE_HEADER.to_vec();
        note.extend(
            YamlCodec
                .encode(&value)
                .map_err(|e| Error::invalid(e.to_string()))?,
        );
        Ok(NewEntry {
            record,
            note_path: self.dir.join(format!("{file}{NOTE_SUFFIX}")),
            path,
            note,
        })
    }

    /// Keeps `found` as `record` says another store kept it
    /// ([`QuarantineStore::import_quarantined`](checklist_core::QuarantineStore::import_quarantined)):
    /// the bytes durably, then the note that lists them. The caller holds the store's
    /// write lock.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] for an unsafe id, [`Error::PreconditionFailed`] for
    /// one listed already; writing either file.
    pub(crate) fn import(
        &self,
        vfs: &dyn Vfs,
        record: &QuarantineRecord,
        found: &[u8],
    ) -> Result<QuarantineRecord> {
        validate_backup_id(&record.id)?;
        if self.list(vfs)?.iter().any(|r| r.id == record.id) {
            return Err(Error::already_listed(
                "quarantined document",
                &record.id,
                &self.dir,
            ));
        }
        self.ensure(vfs)?;
        let entry = self.entry_of(record.clone())?;
        self.keep(vfs, &entry, found, Durability::Full)?;
        Ok(entry.record)
    }

    /// Writes `entry`: `found` durably under its name, then its note (with
    /// `note_durability`), which lists it. When either fails the kept file is taken out
    /// again: listed nowhere, it would stay for ever.
    ///
    /// # Errors
    /// Writing either file.
    pub(crate) fn keep(
        &self,
        vfs: &dyn Vfs,
        entry: &NewEntry,
        found: &[u8],
        note_durability: Durability,
    ) -> Result<()> {
        let kept =
            replace_file(vfs, &entry.path, found, Durability::Full, PRIVATE_FILE_MODE).and_then(|()| {
                replace_file(
                    vfs,
                    &entry.note_path,
                    &entry.note,
                    note_durability,
                    PRIVATE_FILE_MODE,
                )
            });
        if kept.is_err()
            && let Err(cleanup) = remove_if_present(vfs, &entry.path)
        {
            tracing::warn!(
                %cleanup,
                path = %entry.path.display(),
                "could not remove a quarantined copy whose note failed"
            );
        }
        kept
    }

    /// The quarantined documents, oldest first; a note whose content cannot be read is
    /// logged and left out, one that cannot be read at all fails the listing.
    ///
    /// # Errors
    /// Listing the directory; a symbolic link in place of a note.
    pub(crate) fn list(&self, vfs: &dyn Vfs) -> Result<Vec<QuarantineRecord>> {
        let names = match vfs.list_dir(&self.dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.dir, e)),
        };
        let mut records = Vec::new();
        for name in names {
            // The stores of one directory share it, each listing its own format's.
            let Some(name) = name
                .to_str()
                .filter(|n| n.ends_with(NOTE_SUFFIX) && n.starts_with(&self.prefix))
            else {
                continue;
            };
            let path = self.dir.join(name);
            // A note that cannot be read this time (a full disk, a refused permission)
            // fails the listing rather than leaving its document out: a caller that
            // copies the quarantine (a move) must not take a short list for the whole.
            let bytes = match vfs.read(&path, 1024 * 1024) {
                Err(e) if refused_symlink(&e).is_some() || e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("read", &path, e));
                }
                other => other,
            };
            let parsed = bytes
                .map_err(|e| e.to_string())
                .and_then(|bytes| YamlCodec.decode(&bytes).map_err(|e| e.to_string()))
                .and_then(|value| {
                    serde_json::from_value::<QuarantineRecord>(value).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(%error, path = %path.display(), "unreadable quarantine note"),
            }
        }
        records.sort_by(|a, b| a.quarantined_at.cmp(&b.quarantined_at).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// The bytes of the quarantined document `id`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] for a malformed id, [`Error::NotFound`] for one that
    /// is not listed; the read's errors.
    pub(crate) fn read(&self, vfs: &dyn Vfs, id: &str) -> Result<Vec<u8>> {
        validate_backup_id(id)?;
        if !self.list(vfs)?.iter().any(|r| r.id == id) {
            return Err(Error::NotFound {
                what: "quarantined document",
                id: id.to_owned(),
                location: self.dir.display().to_string(),
            });
        }
        let path = self.dir.join(format!("{}{id}", self.prefix));
        vfs.read(&path, u64::MAX)
            .map_err(|e| io_error("read the quarantined file", &path, e))
    }
}
