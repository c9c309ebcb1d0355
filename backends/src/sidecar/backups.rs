//! `.checklist/.backup/`: backups of the state file and their index, `manifest.yaml`.
//!
//! A backup is a hard link to the state file as it is — no bytes are copied; the
//! rename of the next write replaces the name `state.yaml`, and the old inode lives on
//! under `.backup/`. Where hard links are refused, the bytes are copied. Backups are
//! taken while the store holds its write lock, so the file linked is the one whose
//! bytes the store just verified. The manifest is an index that can always be rebuilt
//! from the backup files themselves, so it is replaced atomically but without fsync,
//! once per backup taken (pruning included).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use checklist_core::backup::validate_backup_id;
use checklist_core::config::Durability;
use checklist_core::{BackupPolicy, BackupRecord, Error, Result};
use serde::{Deserialize, Serialize};

use crate::codec::yaml::YamlCodec;
use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, SHARED_FILE_MODE, io_error, replace_file};
use crate::fs::vfs::{Vfs, remove_if_present};
use checklist_core::codec::Codec;

mod index;

/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The time part of a backup id (`<revision>-<time>`).
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

/// How many backups may share one millisecond's name before taking one fails.
const MAX_SAME_STAMP: u32 = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    #[serde(default)]
    backups: Vec<BackupRecord>,
}

impl Manifest {
    /// The backups of the format whose files start with `prefix` (`state.yaml.`), and
    /// the others'. The file backends of one directory share `.backup/` and its
    /// manifest, each keeping its own format's backups: a json store must never list,
    /// restore, prune or rebuild away a yaml backup (docs/file-formats.md, "Backups").
    fn split(self, prefix: &str) -> (Vec<BackupRecord>, Vec<BackupRecord>) {
        self.backups
            .into_iter()
            .partition(|b| !belongs_elsewhere(b, prefix))
    }
}

/// Whether `backup` is another format's: a well-formed backup file name of a state
/// file other than the one whose backups start with `prefix`. A malformed name is
/// this format's to report as damage, never silently another's.
fn belongs_elsewhere(backup: &BackupRecord, prefix: &str) -> bool {
    validate_backup_id(&backup.location).is_ok()
        && backup.location.starts_with("state.")
        && !backup.location.starts_with(prefix)
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
    /// Whether the manifest is fsynced: replaced by rename without it, a power cut
    /// can leave it empty or cut short, listing fewer backups than there are
    /// (docs/decisions/0023-power-loss-model.md).
    durability: Durability,
    /// The manifest bytes last read or written and what they parse to: a transaction
    /// reads the manifest three times (backup, list, prune), and parsing is a pure
    /// function of the bytes.
    parsed: Arc<Mutex<Option<ParsedManifest>>>,
}

/// What a state file holds, as verified by the caller.
pub(crate) struct Contents {
    pub(crate) revision: u64,
    pub(crate) checksum: String,
    pub(crate) size: u64,
}

/// A state file's bytes and what they hold.
pub(crate) struct Current {
    pub(crate) bytes: Vec<u8>,
    pub(crate) contents: Contents,
}

/// How a backup keeps the state file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A hard link, for a backup taken by a write once its new version is staged and
    /// just before it renames it over the state: the old inode then lives on only as
    /// the backup, so no bytes are copied. (A copy where links are refused.)
    LinkBeforeReplace,
    /// A copy of the bytes, for a backup no write follows: a link would share its inode
    /// with the live state file, and anything that damages that file in place would
    /// damage the backup too.
    Copy,
}

/// A backup file in place under its final name, not yet listed.
pub(crate) struct Placed {
    pub(crate) record: BackupRecord,
    path: PathBuf,
}

/// A backup just taken and the ids pruned with it.
pub(crate) struct Kept {
    pub(crate) record: BackupRecord,
    pub(crate) pruned: Vec<String>,
}

impl BackupDir {
    pub(crate) fn new(store_dir: &Path, state_file_name: &str, durability: Durability) -> Self {
        let dir = store_dir.join(".backup");
        Self {
            manifest: dir.join("manifest.yaml"),
            dir,
            state_file_name: state_file_name.to_owned(),
            durability,
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

    /// Keeps the state file `state_path`, whose bytes and contents the caller read
    /// while holding the store's write lock (so the file cannot change meanwhile), as a
    /// backup, then prunes the backups `policy` names: [`place`](Self::place) then
    /// [`index`](Self::index), for a backup no write follows. If the index cannot be
    /// written, the new backup file is removed again.
    pub(crate) fn keep(
        &self,
        vfs: &dyn Vfs,
        state_path: &Path,
        current: &Current,
        placement: Placement,
        reason: &str,
        policy: Option<&dyn BackupPolicy>,
    ) -> Result<Kept> {
        let placed = self.place(vfs, state_path, current, placement, reason)?;
        let path = placed.path.clone();
        self.index(vfs, placed, policy).inspect_err(|_| {
            let _ = vfs.remove_file(&path);
        })
    }

    /// Puts a backup of the state file `state_path` (holding `current`) in place under
    /// a new name, not yet listed. A write places it after its new version is staged
    /// and before the rename ([`Placement::LinkBeforeReplace`]): until that rename the
    /// link is another name of the live file, so a failed rename must
    /// [`abandon`](Self::abandon) it.
    pub(crate) fn place(
        &self,
        vfs: &dyn Vfs,
        state_path: &Path,
        current: &Current,
        placement: Placement,
        reason: &str,
    ) -> Result<Placed> {
        self.ensure_dir(vfs)?;
        let now = checklist_core::model::now();
        let stamp = format!("{}-{}", current.contents.revision, now.format(STAMP_FORMAT));
        let (id, path) = self.place_file(vfs, state_path, &current.bytes, &stamp, placement)?;
        Ok(Placed {
            record: BackupRecord {
                location: format!("{}.{id}", self.state_file_name),
                id,
                revision: current.contents.revision,
                checksum: current.contents.checksum.clone(),
                size: current.contents.size,
                created_at: now,
                reason: reason.to_owned(),
            },
            path,
        })
    }

    /// Removes a placed backup that will not be listed (its write failed), so that no
    /// name in `.backup/` is left sharing the live state file's inode.
    pub(crate) fn abandon(&self, vfs: &dyn Vfs, placed: Placed) {
        if let Err(error) = remove_if_present(vfs, &placed.path) {
            tracing::warn!(
                %error,
                path = %placed.path.display(),
                "could not remove the backup link of a failed write; it is not listed, and an index rebuild \
                 leaves it out while it is the live state file"
            );
        }
    }

    /// Lists a placed backup and prunes what `policy` names once it is added. The index
    /// is rewritten once, before the pruned files are removed.
    pub(crate) fn index(
        &self,
        vfs: &dyn Vfs,
        placed: Placed,
        policy: Option<&dyn BackupPolicy>,
    ) -> Result<Kept> {
        let record = placed.record;
        // The policy counts only this format's backups; the others' are kept as they are.
        let (mut own, others) = self.read_manifest(vfs)?.split(&self.file_prefix());
        own.push(record.clone());
        let pruned: Vec<BackupRecord> = match policy {
            Some(policy) => {
                let ids = policy.to_prune(&own, record.created_at);
                let (pruned, kept) = own.into_iter().partition(|b| ids.contains(&b.id));
                own = kept;
                pruned
            }
            None => Vec::new(),
        };
        let manifest = Manifest {
            version: 1,
            backups: others.into_iter().chain(own).collect(),
        };
        // The index first: a crash after it leaves at worst an unlisted file, never
        // a listed backup whose file is gone.
        self.write_manifest(vfs, &manifest)?;
        for backup in &pruned {
            if let Err(error) = self.remove_file_of(vfs, backup) {
                tracing::warn!(%error, id = backup.id, "could not remove a pruned backup");
            }
        }
        Ok(Kept {
            record,
            pruned: pruned.into_iter().map(|b| b.id).collect(),
        })
    }

    /// Puts a backup of `state_path` (holding `bytes`) under a new name starting with
    /// `stamp`. The caller holds the write lock, so no other backup takes the name
    /// between the check and the creation.
    fn place_file(
        &self,
        vfs: &dyn Vfs,
        state_path: &Path,
        bytes: &[u8],
        stamp: &str,
        placement: Placement,
    ) -> Result<(String, PathBuf)> {
        for attempt in 1..=MAX_SAME_STAMP {
            let id = match attempt {
                1 => stamp.to_owned(),
                n => format!("{stamp}-{n}"),
            };
            let path = self.dir.join(format!("{}.{id}", self.state_file_name));
            match vfs.metadata(&path) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("inspect", &path, e)),
            }
            let linked = placement == Placement::LinkBeforeReplace
                && is_private(vfs, state_path)
                && match vfs.hard_link(state_path, &path) {
                    Ok(()) => true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    // No hard links here (or none allowed): copy the bytes instead.
                    Err(_) => false,
                };
            if !linked {
                replace_file(vfs, &path, bytes, Durability::Full, PRIVATE_FILE_MODE)?;
            }
            return Ok((id, path));
        }
        Err(Error::invalid(format!(
            "{MAX_SAME_STAMP} backups of {} were taken in the same millisecond; try again",
            state_path.display()
        )))
    }

    fn remove_file_of(&self, vfs: &dyn Vfs, backup: &BackupRecord) -> Result<()> {
        let path = self.dir.join(&backup.location);
        match vfs.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove the backup", &path, e)),
        }
    }

    /// The backups, oldest first. A missing manifest means none; a damaged one is
    /// reported.
    pub(crate) fn list(&self, vfs: &dyn Vfs) -> Result<Vec<BackupRecord>> {
        let (mut backups, _) = self.read_manifest(vfs)?.split(&self.file_prefix());
        backups.sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
        Ok(backups)
    }

    /// Deletes the backup `id`: its manifest entry, then its file. A crash in between
    /// leaves a file the index does not list, which a rebuild of the index lists again,
    /// never an entry whose file is gone (docs/decisions/0023-power-loss-model.md).
    pub(crate) fn delete(&self, vfs: &dyn Vfs, id: &str) -> Result<()> {
        let mut manifest = self.read_manifest(vfs)?;
        let prefix = self.file_prefix();
        let Some(position) = manifest
            .backups
            .iter()
            .position(|b| b.id == id && !belongs_elsewhere(b, &prefix))
        else {
            return Err(Error::NotFound {
                what: "backup",
                id: id.to_owned(),
                location: self.manifest.display().to_string(),
            });
        };
        let record = manifest.backups.remove(position);
        self.write_manifest(vfs, &manifest)?;
        self.remove_file_of(vfs, &record)
    }

    /// Keeps `document` as the backup `record` describes, as another store listed it
    /// ([`BackupStore::import_backup`](checklist_core::BackupStore::import_backup)):
    /// its file durably, then its entry. The caller holds the store's write lock.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] for an unsafe id, [`Error::PreconditionFailed`] for
    /// one listed already; writing the file or the manifest.
    pub(crate) fn import(
        &self,
        vfs: &dyn Vfs,
        record: &BackupRecord,
        document: &[u8],
    ) -> Result<BackupRecord> {
        validate_backup_id(&record.id)?;
        let (own, others) = self.read_manifest(vfs)?.split(&self.file_prefix());
        if own.iter().any(|b| b.id == record.id) {
            return Err(Error::already_listed("backup", &record.id, &self.manifest));
        }
        self.ensure_dir(vfs)?;
        let kept = BackupRecord {
            location: format!("{}{}", self.file_prefix(), record.id),
            size: document.len() as u64,
            ..record.clone()
        };
        let path = self.dir.join(&kept.location);
        replace_file(vfs, &path, document, Durability::Full, PRIVATE_FILE_MODE)?;
        let manifest = Manifest {
            version: 1,
            backups: others.into_iter().chain(own).chain([kept.clone()]).collect(),
        };
        self.write_manifest(vfs, &manifest)?;
        Ok(kept)
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
        replace_file(vfs, &self.manifest, &bytes, self.durability, SHARED_FILE_MODE)?;
        *self.cache() = Some((bytes, manifest.clone()));
        Ok(())
    }
}

/// Whether the file at `path` is readable by its owner only, so that a link to it is a
/// backup with the mode backups must have (0600, decision 0004). A state file another
/// program wrote (the TypeScript checklist writes 0644) is copied instead.
fn is_private(vfs: &dyn Vfs, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        vfs.metadata(path)
            .is_ok_and(|meta| meta.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = (vfs, path);
        true
    }
}

fn manifest_damaged(path: &Path, detail: String) -> Error {
    Error::BackupIndexDamaged {
        location: path.display().to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::index::id_time;
    use super::*;
    use crate::fs::vfs::RealFs;

    #[test]
    fn a_backup_is_a_link_that_outlives_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.yaml");
        std::fs::write(&state, b"revision one").unwrap();
        let backups = BackupDir::new(dir.path(), "state.yaml", Durability::Full);
        let current = |revision: u64| Current {
            bytes: std::fs::read(&state).unwrap(),
            contents: Contents {
                revision,
                checksum: format!("sha256:{revision}"),
                size: std::fs::metadata(&state).unwrap().len(),
            },
        };
        let record = backups
            .keep(
                &RealFs,
                &state,
                &current(1),
                Placement::LinkBeforeReplace,
                "commit",
                None,
            )
            .unwrap()
            .record;
        assert!(id_time(&record.id).is_some(), "{}", record.id);
        replace_file(&RealFs, &state, b"revision two", Durability::Fast, 0o600).unwrap();
        let kept = dir.path().join(".backup").join(&record.location);
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

    #[test]
    fn backups_in_the_same_millisecond_get_distinct_names_and_pruning_removes_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.yaml");
        std::fs::write(&state, b"revision one").unwrap();
        let backups = BackupDir::new(dir.path(), "state.yaml", Durability::Full);
        let current = |revision: u64| Current {
            bytes: b"revision one".to_vec(),
            contents: Contents {
                revision,
                checksum: format!("sha256:{revision}"),
                size: 12,
            },
        };
        let policy = checklist_core::RollingBackups::keep(2);
        let mut ids = Vec::new();
        let mut pruned = Vec::new();
        for revision in 1..=5 {
            let kept = backups
                .keep(
                    &RealFs,
                    &state,
                    &current(revision),
                    Placement::Copy,
                    "commit",
                    Some(&policy),
                )
                .unwrap();
            ids.push(kept.record.id);
            pruned.extend(kept.pruned);
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 5, "{ids:?}");
        let listed = backups.list(&RealFs).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(pruned.len(), 3, "{pruned:?}");
        let files = std::fs::read_dir(dir.path().join(".backup"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("state.yaml."))
            .count();
        assert_eq!(files, 2, "pruned backups leave no files behind");
    }
}
