//! The file engine's side of recovery: keeping a corrupt state file in `quarantine/`
//! (the directory itself is [`QuarantineDir`](crate::sidecar::quarantine::QuarantineDir)'s)
//! and rebuilding the backup index.
//!
//! Quarantine keeps the corrupt file as a hard link (a copy where links are refused)
//! named `state.<ext>.<id>` in `.checklist/quarantine/`, with a note
//! `state.<ext>.<id>.why.yaml`. The state file itself stays until
//! a write on the corrupt file's exact bytes renames the recovered document over it: from then on the
//! corrupt inode lives only in quarantine — moved, without a moment with no state.

use std::path::Path;

use checklist_core::backup::BackupIndexRebuild;
use checklist_core::codec::Codec;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::{Error, Result};

use super::Inner;
use crate::fs::identity::FileIdentity;
use crate::sidecar::backups::Contents;

impl<C: Codec> Inner<C> {
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
        self.quarantine.ensure(self.vfs.as_ref())?;
        let entry = self.quarantine.new_entry(found, note)?;
        // A copy, not a hard link to the state file: a link would share the state
        // file's inode until recovery replaces it, and anything that rewrites the state
        // file in place meanwhile (an editor that keeps a file's other names, after a
        // recovery that failed half-way) would rewrite the quarantined bytes too. A
        // quarantine that fails part-way (no free inodes, say) takes its copy back out.
        self.quarantine
            .keep(self.vfs.as_ref(), &entry, found, self.options.durability)?;
        Ok(entry.record)
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
