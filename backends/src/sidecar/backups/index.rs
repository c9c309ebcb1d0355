//! Reading one backup for recovery, and rebuilding `manifest.yaml` from the backup
//! files when it is lost or damaged. Nothing here deletes or changes a backup file.

use std::io;
use std::path::{Path, PathBuf};

use checklist_core::backup::{BackupIndexRebuild, SkippedBackup, validate_backup_id};
use checklist_core::{BackupRecord, Error, Result};
use chrono::{DateTime, Utc};

use super::{BackupDir, Contents, Manifest, STAMP_FORMAT};
use crate::fs::atomic::io_error;
use crate::fs::vfs::Vfs;

impl BackupDir {
    /// The listed backup `id`, its bytes and its path. The id and the listed file name
    /// are both checked before they name a file, because the manifest can be edited.
    pub(crate) fn read_listed(
        &self,
        vfs: &dyn Vfs,
        id: &str,
        limit: u64,
    ) -> Result<(BackupRecord, Vec<u8>, PathBuf)> {
        validate_backup_id(id)?;
        let record = self
            .read_manifest(vfs)?
            .split(&self.file_prefix())
            .0
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "backup",
                id: id.to_owned(),
                location: self.manifest.display().to_string(),
            })?;
        if validate_backup_id(&record.location).is_err() || !record.location.starts_with(&self.file_prefix())
        {
            return Err(Error::BackupIndexDamaged {
                location: self.manifest.display().to_string(),
                detail: format!(
                    "it lists {:?} as the file of backup {id}, which is not a backup file name",
                    record.location
                ),
            });
        }
        let path = self.dir.join(&record.location);
        let bytes = vfs
            .read(&path, limit)
            .map_err(|e| io_error("read the backup", &path, e))?;
        Ok((record, bytes, path))
    }

    pub(super) fn file_prefix(&self) -> String {
        format!("{}.", self.state_file_name)
    }

    /// Lists again every backup file that `verify` accepts, keeping the reason and
    /// time the old index recorded where it can still be read, and reports the others.
    pub(crate) fn rebuild(
        &self,
        vfs: &dyn Vfs,
        limit: u64,
        verify: impl Fn(&Path, &[u8]) -> Result<Contents>,
    ) -> Result<BackupIndexRebuild> {
        let (previous, others) = self
            .read_manifest(vfs)
            .unwrap_or_default()
            .split(&self.file_prefix());
        let names = match vfs.list_dir(&self.dir) {
            Ok(names) => names,
            // No backup directory: no backups, and nowhere to write an index.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BackupIndexRebuild::default()),
            Err(e) => return Err(io_error("list", &self.dir, e)),
        };
        let prefix = self.file_prefix();
        let mut rebuilt = BackupIndexRebuild::default();
        for name in names {
            let Some(file) = name.to_str().map(str::to_owned) else {
                continue;
            };
            let Some(id) = file.strip_prefix(&prefix) else {
                continue;
            };
            let path = self.dir.join(&file);
            let verified = validate_backup_id(id).and_then(|()| {
                let bytes = vfs
                    .read(&path, limit)
                    .map_err(|e| io_error("read the backup", &path, e))?;
                verify(&path, &bytes)
            });
            match verified {
                Ok(contents) => {
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
                    rebuilt.kept.push(BackupRecord {
                        id: id.to_owned(),
                        location: file,
                        revision: contents.revision,
                        checksum: contents.checksum,
                        size: contents.size,
                        created_at,
                        reason: known.map_or_else(|| "rebuilt".to_owned(), |b| b.reason.clone()),
                    });
                }
                // A backup that could not be read this time is not dropped from the index.
                Err(error) if error.is_access_failure() => return Err(error),
                Err(error) => rebuilt.skipped.push(SkippedBackup {
                    location: file,
                    reason: error.to_string(),
                }),
            }
        }
        rebuilt
            .kept
            .sort_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)));
        rebuilt.skipped.sort_by(|a, b| a.location.cmp(&b.location));
        // Another format's backups stay listed as they were: this rebuild only read ours.
        self.write_manifest(
            vfs,
            &Manifest {
                version: 1,
                backups: others.into_iter().chain(rebuilt.kept.iter().cloned()).collect(),
            },
        )?;
        Ok(rebuilt)
    }
}

/// When a backup was taken, from the timestamp part of its id (`<rev>-<time>`).
pub(super) fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let (_, stamp) = id.split_once('-')?;
    chrono::NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::vfs::RealFs;
    use crate::sidecar::backups::{Current, Placement};

    fn contents(bytes: &[u8]) -> Result<Contents> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::invalid(e.to_string()))?;
        let revision = text
            .strip_prefix("revision ")
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| Error::invalid(format!("not a backup: {text:?}")))?;
        Ok(Contents {
            revision,
            checksum: format!("sha256:{revision}"),
            size: bytes.len() as u64,
        })
    }

    #[test]
    fn a_lost_index_is_rebuilt_and_bad_files_are_reported_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.yaml");
        let backups = BackupDir::new(dir.path(), "state.yaml", checklist_core::config::Durability::Full);
        let mut made = Vec::new();
        for revision in 1..=3 {
            std::fs::write(&state, format!("revision {revision}")).unwrap();
            let bytes = std::fs::read(&state).unwrap();
            let current = Current {
                contents: contents(&bytes).unwrap(),
                bytes,
            };
            let record = backups
                .keep(&RealFs, &state, &current, Placement::Copy, "commit", None)
                .unwrap()
                .record;
            made.push(record);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let damaged = dir.path().join(".backup").join(&made[1].location);
        std::fs::remove_file(&damaged).unwrap();
        std::fs::write(&damaged, b"garbage").unwrap();
        std::fs::remove_file(dir.path().join(".backup/manifest.yaml")).unwrap();
        assert!(backups.list(&RealFs).unwrap().is_empty());

        let rebuilt = backups
            .rebuild(&RealFs, u64::MAX, |_, bytes| contents(bytes))
            .unwrap();
        let ids: Vec<_> = rebuilt.kept.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, [made[0].id.as_str(), made[2].id.as_str()]);
        assert_eq!(rebuilt.kept[0].created_at, made[0].created_at);
        assert_eq!(rebuilt.skipped.len(), 1);
        assert_eq!(rebuilt.skipped[0].location, made[1].location);
        assert_eq!(std::fs::read(&damaged).unwrap(), b"garbage", "never deleted");
        assert_eq!(backups.list(&RealFs).unwrap(), rebuilt.kept);
        let (record, bytes, _) = backups.read_listed(&RealFs, &made[2].id, u64::MAX).unwrap();
        assert_eq!((record.revision, bytes.as_slice()), (3, b"revision 3".as_slice()));
        assert!(backups.read_listed(&RealFs, "../state.yaml", u64::MAX).is_err());
    }
}
