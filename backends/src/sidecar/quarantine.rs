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
use crate::fs::atomic::{DIR_MODE, io_error};
use crate::fs::vfs::{Vfs, refused_symlink};

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
        let id = new_quarantine_id(now);
        let file = format!("{}{id}", self.prefix);
        let path = self.dir.join(&file);
        let record = QuarantineRecord {
            id,
            location: path.display().to_string(),
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        };
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

    /// The quarantined documents, oldest first; a note that cannot be read is logged
    /// and left out.
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
            let Some(name) = name.to_str().filter(|n| n.ends_with(NOTE_SUFFIX)) else {
                continue;
            };
            let path = self.dir.join(name);
            let bytes = match vfs.read(&path, 1024 * 1024) {
                Err(e) if refused_symlink(&e).is_some() => return Err(io_error("read", &path, e)),
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
