//! `.checklist/.backup/`: backups of the state file and their index, `manifest.yaml`.
//!
//! A backup is a hard link to the state file as it is — no bytes are copied; the
//! rename of the next write replaces the name `state.yaml`, and the old inode lives on
//! under `.backup/`. Where hard links are refused, the bytes are copied. The manifest is
//! an index that can always be rebuilt from the backup files themselves, so it is
//! replaced atomically but without fsync.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use checklist_core::config::Durability;
use checklist_core::{BackupRecord, Error, Result};
use serde::{Deserialize, Serialize};

use crate::atomic::{DIR_MODE, PRIVATE_FILE_MODE, SHARED_FILE_MODE, io_error, replace_file};
use crate::codec::Codec;
use crate::vfs::Vfs;
use crate::yaml_file::YamlCodec;

mod index;

/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    #[serde(default)]
    backups: Vec<BackupRecord>,
}

/// Manifest bytes and what they parse to.
type ParsedManifest = (Vec<u8>, Manifest);

/// The backups of one store directory.
#[derive(Debug, Clone)]
pub(crate) struct BackupDir {
    dir: PathBuf,
    manifest: PathBuf,
    /// `state.<extension>`: backup files are named `<this>.<id>`.
    state_file_name: String,
    /// The manifest bytes last read or written and what they parse to: a transaction
    /// reads the manifest three times (backup, list, prune), and parsing is a pure
    /// function of the bytes.
    parsed: Arc<Mutex<Option<ParsedManifest>>>,
}

/// What a backup holds, as verified by the caller.
pub(crate) struct Contents {
    pub(crate) revision: u64,
    pub(crate) checksum: String,
    pub(crate) size: u64,
}

impl BackupDir {
    pub(crate) fn new(store_dir: &Path, state_file_name: &str) -> Self {
        let dir = store_dir.join(".backup");
        Self {
            manifest: dir.join("manifest.yaml"),
            dir,
            state_file_name: state_file_name.to_owned(),
            parsed: Arc::default(),
        }
    }

    fn ensure_dir(&self, vfs: &dyn Vfs) -> Result<()> {
        match vfs.create_dir(&self.dir, DIR_MODE) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("create the directory", &self.dir, e)),
        }
    }

    /// Keeps `state_path` as a backup. `inspect` reads the kept bytes and says what
    /// they hold; the backup is named after that, so it always describes exactly the
    /// file it holds even if the state changed meanwhile.
    pub(crate) fn create(
        &self,
        vfs: &dyn Vfs,
        state_path: &Path,
        reason: &str,
        inspect: impl FnOnce(&[u8]) -> Result<Contents>,
    ) -> Result<Option<BackupRecord>> {
        self.ensure_dir(vfs)?;
        let now = checklist_core::model::now();
        let staging = self
            .dir
            .join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
        match vfs.hard_link(state_path, &staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => {
                // No hard links here: copy the bytes instead.
                let bytes = match vfs.read(state_path, u64::MAX) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io_error("read", state_path, e)),
                };
                replace_file(vfs, &staging, &bytes, Durability::Full, PRIVATE_FILE_MODE)?;
            }
        }
        let result = (|| {
            let bytes = vfs
                .read(&staging, u64::MAX)
                .map_err(|e| io_error("read the backup", &staging, e))?;
            let contents = inspect(&bytes)?;
            let id = format!("{}-{}", contents.revision, now.format("%Y%m%dT%H%M%S%3fZ"));
            let file = format!("{}.{id}", self.state_file_name);
            let path = self.dir.join(&file);
            vfs.rename(&staging, &path)
                .map_err(|e| io_error("name the backup", &path, e))?;
            let record = BackupRecord {
                id,
                file,
                revision: contents.revision,
                checksum: contents.checksum,
                size: contents.size,
                created_at: now,
                reason: reason.to_owned(),
            };
            let mut manifest = self.read_manifest(vfs)?;
            manifest.backups.retain(|b| b.id != record.id);
            manifest.backups.push(record.clone());
            self.write_manifest(vfs, &manifest)?;
            Ok(record)
        })();
        if result.is_err() {
            let _ = vfs.remove_file(&staging);
        }
        result.map(Some)
    }

    /// The backups, oldest first. A missing manifest means none; a damaged one is
    /// reported.
    pub(crate) fn list(&self, vfs: &dyn Vfs) -> Result<Vec<BackupRecord>> {
        let mut backups = self.read_manifest(vfs)?.backups;
        backups.sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
        Ok(backups)
    }

    /// Deletes the backup `id`: its file, then its manifest entry.
    pub(crate) fn delete(&self, vfs: &dyn Vfs, id: &str) -> Result<()> {
        let mut manifest = self.read_manifest(vfs)?;
        let Some(position) = manifest.backups.iter().position(|b| b.id == id) else {
            return Err(Error::invalid(format!(
                "there is no backup {id} in {}",
                self.manifest.display()
            )));
        };
        let record = manifest.backups.remove(position);
        let path = self.dir.join(&record.file);
        match vfs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove the backup", &path, e)),
        }
        self.write_manifest(vfs, &manifest)
    }

    fn read_manifest(&self, vfs: &dyn Vfs) -> Result<Manifest> {
        let bytes = match vfs.read(&self.manifest, MAX_MANIFEST_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(io_error("read", &self.manifest, e)),
        };
        if let Some((known, manifest)) = &*self.cache()
            && *known == bytes
        {
            return Ok(manifest.clone());
        }
        let value = YamlCodec
            .decode(&bytes)
            .map_err(|e| manifest_damaged(&self.manifest, e.to_string()))?;
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| manifest_damaged(&self.manifest, e.to_string()))?;
        *self.cache() = Some((bytes, manifest.clone()));
        Ok(manifest)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<ParsedManifest>> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_manifest(&self, vfs: &dyn Vfs, manifest: &Manifest) -> Result<()> {
        let document = serde_json::json!({ "version": 1, "backups": manifest.backups });
        let mut bytes =
            b"# Backups of the state (checklist backup list); rebuildable from the files.\n".to_vec();
        bytes.extend(
            YamlCodec
                .encode(&document)
                .map_err(|e| manifest_damaged(&self.manifest, e.to_string()))?,
        );
        replace_file(vfs, &self.manifest, &bytes, Durability::Fast, SHARED_FILE_MODE)?;
        *self.cache() = Some((bytes, manifest.clone()));
        Ok(())
    }
}

fn manifest_damaged(path: &Path, detail: String) -> Error {
    Error::invalid(format!(
        "the backup index {} is damaged ({detail}); the backups themselves are intact in its directory",
        path.display()
    ))
}

/// When a backup id was taken, from its timestamp part.
#[cfg(test)]
fn id_time(id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (_, stamp) = id.split_once('-')?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%3fZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::RealFs;

    #[test]
    fn a_backup_is_a_link_that_outlives_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.yaml");
        std::fs::write(&state, b"revision one").unwrap();
        let backups = BackupDir::new(dir.path(), "state.yaml");
        let record = backups
            .create(&RealFs, &state, "commit", |bytes| {
                Ok(Contents {
                    revision: 1,
                    checksum: "sha256:one".into(),
                    size: bytes.len() as u64,
                })
            })
            .unwrap()
            .unwrap();
        assert!(id_time(&record.id).is_some(), "{}", record.id);
        replace_file(&RealFs, &state, b"revision two", Durability::Fast, 0o600).unwrap();
        let kept = dir.path().join(".backup").join(&record.file);
        assert_eq!(std::fs::read(&kept).unwrap(), b"revision one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                std::fs::metadata(&kept).unwrap().nlink(),
                1,
                "the old inode now only lives here"
            );
        }
        assert_eq!(backups.list(&RealFs).unwrap(), std::slice::from_ref(&record));
        backups.delete(&RealFs, &record.id).unwrap();
        assert!(!kept.exists());
        assert!(backups.list(&RealFs).unwrap().is_empty());
        assert!(backups.delete(&RealFs, &record.id).is_err());
    }
}
