//! `.checklist/audit.log`: JSON Lines, appended with `O_APPEND` and never rewritten,
//! rotated by size into `audit.log.1` … `audit.log.N` (oldest last).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use checklist_core::config::{AuditSettings, Durability};
use checklist_core::{AuditEvent, AuditLog, AuditRecord, AuditTrail, Error, Result};

use crate::blocking::run_blocking;
use crate::fs::atomic::{PRIVATE_FILE_MODE, io_error};
use crate::fs::vfs::{Vfs, remove_if_present};

/// The audit log files of one store directory.
#[derive(Debug, Clone)]
pub(crate) struct AuditFiles {
    current: PathBuf,
    dir: PathBuf,
    settings: AuditSettings,
    durability: Durability,
}

/// The audit plane of a store whose trail is the `audit.log` files of its directory
/// (the file backends and sqlite, whose trail must outlive a damaged database): the
/// files' operations run off the async runtime's tasks, through the store's confined
/// file system.
#[derive(Debug, Clone)]
pub(crate) struct FileAuditTrail {
    files: Arc<AuditFiles>,
    vfs: Arc<dyn Vfs>,
}

impl FileAuditTrail {
    pub(crate) fn new(files: AuditFiles, vfs: Arc<dyn Vfs>) -> Self {
        Self {
            files: Arc::new(files),
            vfs,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&AuditFiles, &dyn Vfs) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (files, vfs) = (Arc::clone(&self.files), Arc::clone(&self.vfs));
        run_blocking(&self.files.current, move || work(&files, vfs.as_ref())).await
    }

    /// Appends the audit record of a commit that has just stood, for a store with no
    /// transaction spanning the state and the trail: why it could not be appended, if
    /// it could not ([`WriteReceipt::unaudited`](checklist_core::WriteReceipt::unaudited));
    /// the caller decides what a commit without its record means.
    pub(crate) async fn append_committed(&self, record: Option<AuditRecord>) -> Option<Error> {
        match record {
            Some(record) => self.append_audit(&record).await.err(),
            None => None,
        }
    }
}

#[async_trait]
impl AuditTrail for FileAuditTrail {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let record = record.clone();
        self.blocking(move |files, vfs| files.append(vfs, &record)).await
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        self.blocking(|files, vfs| files.read(vfs)).await
    }

    async fn rotate_audit(&self) -> Result<bool> {
        self.blocking(|files, vfs| files.rotate(vfs)).await
    }
}

impl AuditFiles {
    pub(crate) fn new(dir: &Path, settings: AuditSettings, durability: Durability) -> Self {
        Self {
            current: dir.join("audit.log"),
            dir: dir.to_owned(),
            settings,
            durability,
        }
    }

    fn part(&self, n: u32) -> PathBuf {
        self.dir.join(format!("audit.log.{n}"))
    }

    /// Appends one record as one write of one line; fsynced with full durability. If
    /// an earlier append was torn (a full disk, a crash mid-write), the fragment is
    /// ended first so it cannot swallow this record.
    pub(crate) fn append(&self, vfs: &dyn Vfs, record: &AuditRecord) -> Result<()> {
        let mut file = vfs
            .open_append(&self.current, PRIVATE_FILE_MODE)
            .map_err(|e| io_error("open the audit log", &self.current, e))?;
        let torn_before = file
            .last_byte()
            .map_err(|e| io_error("read the end of the audit log", &self.current, e))?
            .is_some_and(|b| b != b'\n');
        let mut line = if torn_before { vec![b'\n'] } else { Vec::new() };
        line.extend(record.to_line());
        file.write_all(&line)
            .map_err(|e| io_error("append to the audit log", &self.current, e))?;
        // A `begin` only says a transaction started; its outcome record (or the state
        // itself) is what must survive a power loss, and its fsync covers the begin's
        // bytes too. Skipping this fsync saves one of the three per transaction.
        if self.durability == Durability::Full && record.event != AuditEvent::Begin {
            file.sync_all()
                .map_err(|e| io_error("fsync the audit log", &self.current, e))?;
        }
        Ok(())
    }

    /// Reads every part, oldest first.
    pub(crate) fn read(&self, vfs: &dyn Vfs) -> Result<AuditLog> {
        // A part holds at most max_bytes plus the record that crossed the limit.
        let limit = self
            .settings
            .max_bytes
            .saturating_mul(2)
            .saturating_add(1024 * 1024);
        let mut log = AuditLog::default();
        let parts = (1..=self.settings.keep_files)
            .rev()
            .map(|n| (self.part(n), false));
        for (path, newest) in parts.chain(std::iter::once((self.current.clone(), true))) {
            match vfs.read(&path, limit) {
                Ok(bytes) => log.parse_into(&path, &bytes, newest),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("read the audit log", &path, e)),
            }
        }
        Ok(log)
    }

    /// Rotates when the current part is over the size limit.
    pub(crate) fn rotate(&self, vfs: &dyn Vfs) -> Result<bool> {
        let size = match vfs.metadata(&self.current) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("inspect the audit log", &self.current, e)),
        };
        if size <= self.settings.max_bytes {
            return Ok(false);
        }
        let keep = self.settings.keep_files.max(1);
        let oldest = self.part(keep);
        remove_if_present(vfs, &oldest).map_err(|e| io_error("remove the oldest audit log", &oldest, e))?;
        for n in (1..keep).rev() {
            let (from, to) = (self.part(n), self.part(n + 1));
            match vfs.rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("rotate the audit log", &from, e)),
            }
        }
        vfs.rename(&self.current, &self.part(1))
            .map_err(|e| io_error("rotate the audit log", &self.current, e))?;
        if self.durability == Durability::Full {
            vfs.sync_dir(&self.dir)
                .map_err(|e| io_error("fsync the directory", &self.dir, e))?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::vfs::RealFs;

    #[test]
    fn rotation_keeps_order_and_drops_only_beyond_retention() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            max_bytes: 1024,
            keep_files: 2,
        };
        let audit = AuditFiles::new(dir.path(), settings, Durability::Fast);
        let mut written = Vec::new();
        for i in 0..60u64 {
            let record = AuditRecord::new(AuditEvent::Commit).revisions(Some(i), Some(i + 1));
            audit.append(&RealFs, &record).unwrap();
            audit.rotate(&RealFs).unwrap();
            written.push(record);
        }
        assert!(dir.path().join("audit.log.2").exists());
        assert!(!dir.path().join("audit.log.3").exists());
        let log = audit.read(&RealFs).unwrap();
        assert!(log.problems.is_empty(), "{:?}", log.problems);
        assert!(log.records.len() < written.len(), "the oldest parts were dropped");
        let tail = &written[written.len() - log.records.len()..];
        assert_eq!(log.records, tail, "what remains is the newest records, in order");
    }

    #[test]
    fn a_torn_append_cannot_swallow_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditFiles::new(dir.path(), AuditSettings::default(), Durability::Fast);
        let first = AuditRecord::new(AuditEvent::Begin);
        audit.append(&RealFs, &first).unwrap();
        // A full disk cut the next append short.
        let torn = AuditRecord::new(AuditEvent::Commit).to_line();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("audit.log"))
            .unwrap();
        std::io::Write::write_all(&mut file, &torn[..torn.len() / 2]).unwrap();
        let next = AuditRecord::new(AuditEvent::Rollback).error("disk full");
        audit.append(&RealFs, &next).unwrap();
        let log = audit.read(&RealFs).unwrap();
        assert_eq!(log.records, [first, next]);
        assert_eq!(log.problems.len(), 1);
        assert!(log.problems[0].torn, "{:?}", log.problems);
    }
}
