//! The file engine's side of recovery: `quarantine/` and rebuilding the backup index.
//!
//! Quarantine keeps the corrupt file as a hard link (a copy where links are refused)
//! named `state.<ext>.<id>` in `.checklist/quarantine/`, with a note
//! `state.<ext>.<id>.why.yaml`. The state file itself stays until
//! a write on the corrupt file's exact bytes renames the recovered document over it: from then on the
//! corrupt inode lives only in quarantine — moved, without a moment with no state.

use std::io;
use std::path::Path;

use checklist_core::backup::{BackupIndexRebuild, validate_backup_id};
use checklist_core::codec::Codec;
use checklist_core::config::Durability;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, bytes_sha256, new_quarantine_id};
use checklist_core::{Error, Result};

use super::Inner;
use crate::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error, replace_file};
use crate::backups::Contents;
use crate::lock_file::FileIdentity;
use crate::vfs::refused_symlink;
use crate::yaml_file::YamlCodec;

const NOTE_SUFFIX: &str = ".why.yaml";

impl<C: Codec> Inner<C> {
    fn quarantine_dir(&self) -> std::path::PathBuf {
        self.dir.join("quarantine")
    }

    fn state_file_name(&self) -> String {
        format!("state.{}", self.codec.extension())
    }

    /// Decodes and checks `bytes` as the document at `path`, with or without the
    /// checksum check.
    fn check_unchanged(&self, found: &[u8]) -> Result<()> {
        let now = self.read_bytes()?;
        if now.as_deref() == Some(found) {
            return Ok(());
        }
        Err(self.changed(&format!("the {} bytes read before", found.len()), now.as_deref()))
    }

    pub(super) fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let _write_lock = self.lock_for_write()?;
        self.check_unchanged(found)?;
        let dir = self.quarantine_dir();
        match self.vfs.create_dir(&dir, DIR_MODE) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_error("create the directory", &dir, e));
            }
            _ => {}
        }
        let now = checklist_core::model::now();
        let id = new_quarantine_id(now);
        let file = format!("{}.{id}", self.state_file_name());
        let path = dir.join(&file);
        let record = QuarantineRecord {
            id,
            location: path.display().to_string(),
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        };
        let value = serde_json::to_value(&record).map_err(|e| Error::invalid(e.to_string()))?;
        let mut note_bytes =
            b"# Why the file beside this one was quarantined (never deleted by checklist).\n".to_vec();
        note_bytes.extend(
            YamlCodec
                .encode(&value)
                .map_err(|e| Error::invalid(e.to_string()))?,
        );
        let note_path = dir.join(format!("{file}{NOTE_SUFFIX}"));
        let kept = self.keep_in_quarantine(found, &path, &note_path, &note_bytes);
        if let Err(error) = kept {
            // A kept file without its note is listed nowhere and would stay forever; the
            // bytes are still the state file's (nothing has replaced it yet), so a
            // quarantine that fails part-way (no free inodes, say) takes it back out.
            match self.vfs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(cleanup) => tracing::warn!(
                    %cleanup,
                    path = %path.display(),
                    "could not remove a quarantined copy whose note failed"
                ),
            }
            return Err(error);
        }
        Ok(record)
    }

    /// Puts `found` at `path` (a link to the state file, or a copy) and its note beside
    /// it.
    fn keep_in_quarantine(&self, found: &[u8], path: &Path, note_path: &Path, note: &[u8]) -> Result<()> {
        let dir = self.quarantine_dir();
        let linked = self.vfs.hard_link(&self.state_path, path).is_ok();
        // A link shares the inode with the state file: if that changed between the
        // check and the link, keep the bytes the caller found instead.
        if !linked || self.vfs.read(path, u64::MAX).ok().as_deref() != Some(found) {
            replace_file(
                self.vfs.as_ref(),
                path,
                found,
                Durability::Full,
                PRIVATE_FILE_MODE,
            )?;
        } else if self.options.durability == Durability::Full
            && let Err(e) = self.vfs.sync_dir(&dir)
        {
            return Err(io_error("fsync the directory", &dir, e));
        }
        replace_file(
            self.vfs.as_ref(),
            note_path,
            note,
            self.options.durability,
            PRIVATE_FILE_MODE,
        )
    }

    pub(super) fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        let dir = self.quarantine_dir();
        let names = match self.vfs.list_dir(&dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &dir, e)),
        };
        let mut records = Vec::new();
        for name in names {
            let Some(name) = name.to_str().filter(|n| n.ends_with(NOTE_SUFFIX)) else {
                continue;
            };
            let path = dir.join(name);
            let bytes = match self.vfs.read(&path, 1024 * 1024) {
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

    pub(super) fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        validate_backup_id(id)?;
        if !self.list_quarantine()?.iter().any(|r| r.id == id) {
            return Err(Error::NotFound {
                what: "quarantined document",
                id: id.to_owned(),
                location: self.quarantine_dir().display().to_string(),
            });
        }
        let path = self
            .quarantine_dir()
            .join(format!("{}.{id}", self.state_file_name()));
        self.vfs
            .read(&path, u64::MAX)
            .map_err(|e| io_error("read the quarantined file", &path, e))
    }

    pub(super) fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        let identity = |path: &Path| {
            let meta = self.vfs.metadata(path).ok()?;
            // (0, 0) on a platform without file ids: nothing to compare.
            FileIdentity::of(path, &meta)
                .ok()
                .map(|id| (id.dev, id.ino))
                .filter(|&id| id != (0, 0))
        };
        let live = identity(&self.state_path);
        self.backups
            .rebuild(self.vfs.as_ref(), self.options.max_state_bytes, |path, bytes| {
                // A write links the backup just before its rename; a crash in between
                // leaves that link as another name of the live file. Listing it would
                // make a backup that any damage to the state file damages too.
                if live.is_some() && identity(path) == live {
                    return Err(Error::invalid(format!(
                        "{} is another name of the live state file {} (a link left by an interrupted \
                         write), not a backup of it",
                        path.display(),
                        self.state_path.display()
                    )));
                }
                let state = checklist_core::store::verify(&self.codec, bytes, path)?;
                Ok(Contents {
                    revision: state.revision,
                    checksum: state.checksum.unwrap_or_default(),
                    size: bytes.len() as u64,
                })
            })
    }
}
