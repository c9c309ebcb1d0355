//! `.checklist/archive/` and `history.yaml`: finished instances and their index.
//!
//! Each archived instance is its own sealed document, `archive/<instance-id>.<ext>` in
//! the store's codec, replaced atomically (and durably, as the store's writes are). The
//! history is a small YAML index written after the document, so it never lists an
//! archive that is not there. Instance ids are checked before they become file names.

use std::io;
use std::path::{Path, PathBuf};

use checklist_core::archive::{ArchivedInstance, HistoryEntry, validate_file_stem};
use checklist_core::config::Durability;
use checklist_core::{CorruptionKind, Error, Result};
use serde::{Deserialize, Serialize};

use crate::codec::yaml::YamlCodec;
use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, SHARED_FILE_MODE, io_error, replace_file};
use crate::fs::vfs::Vfs;
use checklist_core::codec::Codec;

/// Largest history index read.
const MAX_HISTORY_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct History {
    version: u32,
    #[serde(default)]
    instances: Vec<HistoryEntry>,
}

/// The archive of one store directory.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveDir {
    dir: PathBuf,
    history: PathBuf,
    max_bytes: u64,
}

impl ArchiveDir {
    pub(crate) fn new(store_dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: store_dir.join("archive"),
            history: store_dir.join("history.yaml"),
            max_bytes,
        }
    }

    /// Where the archive of the stores of `store_dir` whose documents end in
    /// `.extension` is, as [`PlaneLocations`](checklist_core::PlaneLocations) names it:
    /// the stores of one directory share history.yaml, each its own format's entries.
    pub(crate) fn plane_location(store_dir: &Path, extension: &str) -> String {
        format!("{}/archive/*.{extension}", store_dir.display())
    }

    fn path_of(&self, instance_id: &str, codec: &dyn Codec) -> Result<PathBuf> {
        validate_file_stem("instance id", instance_id)?;
        Ok(self.dir.join(format!("{instance_id}.{}", codec.extension())))
    }

    /// Stores `archived` and indexes it. The caller holds the store's write lock, so
    /// the history's read-modify-write is not raced.
    pub(crate) fn store(
        &self,
        vfs: &dyn Vfs,
        codec: &dyn Codec,
        archived: &ArchivedInstance,
        durability: Durability,
    ) -> Result<HistoryEntry> {
        let path = self.path_of(&archived.instance.id, codec)?;
        let sealed = archived.seal(&path)?;
        let bytes = codec.encode(&sealed.value).map_err(|e| Error::SchemaInvalid {
            path: path.clone(),
            field_path: "/".to_owned(),
            message: format!("the {} codec could not encode it: {e}", codec.name()),
        })?;
        match vfs.create_dir(&self.dir, DIR_MODE) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("create the directory", &self.dir, e)),
        }
        replace_file(vfs, &path, &bytes, durability, PRIVATE_FILE_MODE)?;
        let file = format!("archive/{}.{}", archived.instance.id, codec.extension());
        let entry = archived.history_entry(file, sealed.checksum);
        let mut history = self.read_history(vfs)?;
        history
            .instances
            .retain(|e| e.instance_id != entry.instance_id || e.location != entry.location);
        history.instances.push(entry.clone());
        self.write_history(vfs, &history, durability)?;
        Ok(entry)
    }

    /// The history entries of the instances archived in `codec`'s format, in archiving
    /// order. A missing index means none. The stores of one directory share
    /// history.yaml, each listing only the documents it can read: a yaml store's
    /// `archive/<id>.yaml`, never a json store's `archive/<id>.json`
    /// (docs/file-formats.md, "Archive").
    pub(crate) fn history(&self, vfs: &dyn Vfs, codec: &dyn Codec) -> Result<Vec<HistoryEntry>> {
        let suffix = format!(".{}", codec.extension());
        let mut instances = self.read_history(vfs)?.instances;
        instances.retain(|e| e.location.ends_with(&suffix));
        Ok(instances)
    }

    /// Reads and verifies the archived instance `instance_id`.
    pub(crate) fn read(
        &self,
        vfs: &dyn Vfs,
        codec: &dyn Codec,
        instance_id: &str,
    ) -> Result<ArchivedInstance> {
        let path = self.path_of(instance_id, codec)?;
        let bytes = match vfs.read(&path, self.max_bytes) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: "archived instance",
                    id: instance_id.to_owned(),
                    location: path.display().to_string(),
                });
            }
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let value = codec.decode(&bytes).map_err(|e| Error::Corrupted {
            kind: CorruptionKind::ParseError,
            path: path.clone(),
            detail: e.to_string(),
        })?;
        ArchivedInstance::unseal(value, &path)
    }

    fn read_history(&self, vfs: &dyn Vfs) -> Result<History> {
        let bytes = match vfs.read(&self.history, MAX_HISTORY_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(io_error("read", &self.history, e)),
        };
        let value = YamlCodec
            .decode(&bytes)
            .map_err(|e| history_damaged(&self.history, e.to_string()))?;
        serde_json::from_value(value).map_err(|e| history_damaged(&self.history, e.to_string()))
    }

    fn write_history(&self, vfs: &dyn Vfs, history: &History, durability: Durability) -> Result<()> {
        let document = serde_json::json!({ "version": 1, "instances": history.instances });
        let mut bytes = b"# Archived instances (checklist archive --list).\n".to_vec();
        bytes.extend(
            YamlCodec
                .encode(&document)
                .map_err(|e| history_damaged(&self.history, e.to_string()))?,
        );
        replace_file(vfs, &self.history, &bytes, durability, SHARED_FILE_MODE)
    }
}

fn history_damaged(path: &Path, detail: String) -> Error {
    Error::invalid(format!(
        "the archive index {} is damaged ({detail}); the archived instances themselves are intact \
         in archive/: restore the index from a copy, or move it aside to start a new one",
        path.display()
    ))
}
