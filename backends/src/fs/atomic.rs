//! Atomic, durable file replacement and the clean-up of temp files a crash left.
//!
//! [`replace_file`] writes a new version next to the target and renames it over the
//! target (docs/decisions/0003-directory-fsync-after-rename.md): exclusive temp file in the same directory → write → fsync →
//! rename → fsync the directory. A crash at any point leaves the old file or the new
//! one, complete; at worst a temp file named `.<target>.tmp-<pid>-<nonce>` is left,
//! which [`sweep_stale_temps`] removes once its writer is gone.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use checklist_core::Error;
use checklist_core::config::Durability;

use crate::fs::vfs::{Vfs, over_limit, refused_symlink, remove_if_present};
use crate::process::{Liveness, liveness};

/// Permission bits of files that may hold state content (state, backups, archive,
/// quarantine, audit, lock): readable by the owner only, since steps record command
/// output.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Permission bits of files that hold only metadata (config, history, metrics,
/// manifest).
pub const SHARED_FILE_MODE: u32 = 0o644;

/// Permission bits of the store's directories.
pub const DIR_MODE: u32 = 0o755;

/// Temp files this process is writing right now; the sweep never touches them.
static IN_FLIGHT: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

struct InFlight(PathBuf);

impl InFlight {
    fn register(path: PathBuf) -> Self {
        in_flight().insert(path.clone());
        Self(path)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight().remove(&self.0);
    }
}

fn in_flight() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    IN_FLIGHT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Replaces `target` with `bytes` atomically; see the module docs.
///
/// With [`Durability::Fast`] the two fsyncs are skipped: the replacement is still
/// atomic for other processes, but a power loss may undo it.
///
/// # Errors
/// When this returns an error the target is unchanged. A failure to fsync the
/// directory *after* the rename is not an error — the new file is already what every
/// reader sees — and is logged as a warning instead. A temp file may be left behind
/// if even its removal failed; [`sweep_stale_temps`] removes it later.
pub fn replace_file(
    vfs: &dyn Vfs,
    target: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: u32,
) -> Result<(), Error> {
    stage_file(vfs, target, bytes, durability, mode)?.commit()
}

/// The new version of a file, complete (and fsynced with full durability) under a temp
/// name beside it, but not yet in place: [`commit`](Self::commit) renames it over the
/// target; dropping it instead removes it. Between the two, a write can do what must
/// happen only once the new bytes are safely on disk — the file engine takes the
/// backup of the file about to be replaced there, so that a write that fails (a full
/// disk) has touched no backup.
pub(crate) struct StagedFile<'a> {
    vfs: &'a dyn Vfs,
    target: PathBuf,
    temp: PathBuf,
    durability: Durability,
    in_flight: Option<InFlight>,
}

/// Writes `bytes` to a new temp file beside `target`; see [`StagedFile`].
///
/// # Errors
/// Creating, writing or fsyncing the temp file; nothing is left behind then (unless
/// even the removal failed, see [`replace_file`]).
pub(crate) fn stage_file<'a>(
    vfs: &'a dyn Vfs,
    target: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: u32,
) -> Result<StagedFile<'a>, Error> {
    let temp = parent_dir(target).join(temp_name(target));
    let in_flight = InFlight::register(temp.clone());
    // Errors name the target, not the temp file: that is the file a person knows, and
    // the temp file is gone by the time they read the message. Nothing to clean up
    // when even the creation failed (a link in the way, a full disk): removing the
    // name could only remove someone else's file.
    let mut file = vfs
        .create_new(&temp, mode)
        .map_err(|e| io_error("create a temp file to replace", target, e))?;
    let staged = StagedFile {
        vfs,
        target: target.to_owned(),
        temp,
        durability,
        in_flight: Some(in_flight),
    };
    file.write_all(bytes)
        .map_err(|e| io_error("write the new version of", target, e))?;
    if durability == Durability::Full {
        file.sync_all()
            .map_err(|e| io_error("fsync the new version of", target, e))?;
    }
    Ok(staged)
}

impl StagedFile<'_> {
    /// Renames the new version over the target, then fsyncs the directory with full
    /// durability.
    ///
    /// # Errors
    /// The rename; the target is unchanged then and the temp file is removed.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        self.vfs
            .rename(&self.temp, &self.target)
            .map_err(|e| io_error("rename the temp file over", &self.target, e))?;
        self.in_flight = None;
        let dir = parent_dir(&self.target);
        if self.durability == Durability::Full
            && let Err(e) = self.vfs.sync_dir(dir)
        {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "the new file is in place, but fsync of its directory failed: a power loss may undo this write"
            );
        }
        Ok(())
    }
}

impl Drop for StagedFile<'_> {
    fn drop(&mut self) {
        // Still in flight: never renamed, so the temp file is ours to remove.
        if self.in_flight.take().is_none() {
            return;
        }
        if let Err(e) = remove_if_present(self.vfs, &self.temp) {
            tracing::warn!(temp = %self.temp.display(), error = %e, "could not remove a temp file after a failed write");
        }
    }
}

/// Removes the temp files in `dir` whose writer is gone: a process that no longer
/// exists, or this process when it is not writing them now. Returns how many were
/// removed.
///
/// # Errors
/// The first error listing the directory or removing a file.
pub fn sweep_stale_temps(vfs: &dyn Vfs, dir: &Path) -> Result<usize, Error> {
    let own_pid = std::process::id();
    let mut removed = 0;
    let names = vfs.list_dir(dir).map_err(|e| io_error("list", dir, e))?;
    for name in names {
        let Some(pid) = temp_writer_pid(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let stale = if pid == own_pid {
            !in_flight().contains(&path)
        } else {
            liveness(pid) == Liveness::Dead
        };
        if !stale {
            continue;
        }
        match vfs.remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove the stale temp file", &path, e)),
        }
    }
    Ok(removed)
}

/// The pid in a temp file name `.<name>.tmp-<pid>-<nonce>`, if `name` is one.
fn temp_writer_pid(name: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    if !name.starts_with('.') {
        return None;
    }
    let (_, tail) = name.rsplit_once(".tmp-")?;
    let (pid, nonce) = tail.split_once('-')?;
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

fn temp_name(target: &Path) -> String {
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!(".{base}.tmp-{}-{}", std::process::id(), &nonce[..16])
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Maps an I/O error on `path` to the store's error, recognising refused symbolic
/// links (which name the link: `path` itself or a directory above it) and reads over
/// their size limit; every other condition (a full disk, a read-only file system, a
/// refused permission) stays an [`Error::Io`], whose message says what to do about it.
pub(crate) fn io_error(op: &'static str, path: &Path, error: io::Error) -> Error {
    if let Some(link) = refused_symlink(&error) {
        return Error::SymlinkRefused {
            path: link.to_owned(),
        };
    }
    if let Some(over) = over_limit(&error) {
        return Error::TooLarge {
            path: path.to_owned(),
            size: over.size,
            limit: over.limit,
        };
    }
    Error::io(op, path, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::vfs::RealFs;
    use std::ffi::OsString;

    #[test]
    fn replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.yaml");
        replace_file(&RealFs, &target, b"one", Durability::Full, 0o600).unwrap();
        replace_file(&RealFs, &target, b"two", Durability::Fast, 0o600).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("f.yaml")]);
    }

    #[test]
    fn recognises_temp_names() {
        let name = temp_name(Path::new("/x/state.yaml"));
        assert_eq!(temp_writer_pid(OsStr::new(&name)), Some(std::process::id()));
        assert_eq!(temp_writer_pid(OsStr::new("state.yaml")), None);
        assert_eq!(temp_writer_pid(OsStr::new(".state.yaml.tmp-12-")), None);
        assert_eq!(temp_writer_pid(OsStr::new(".a.tmp-x-abc")), None);
        assert_eq!(temp_writer_pid(OsStr::new(".a.tmp-77-abc")), Some(77));
    }

    #[test]
    fn sweep_removes_only_temps_whose_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mine_stale = dir.path().join(format!(".s.tmp-{}-aa", std::process::id()));
        let mine_live = dir.path().join(format!(".s.tmp-{}-bb", std::process::id()));
        let mut alive = crate::process::tests::long_lived_child();
        let other_alive = dir.path().join(format!(".s.tmp-{}-cc", alive.id()));
        let unrelated = dir.path().join("state.yaml");
        for p in [&mine_stale, &mine_live, &other_alive, &unrelated] {
            std::fs::write(p, b"x").unwrap();
        }
        let _writing = InFlight::register(mine_live.clone());
        assert_eq!(sweep_stale_temps(&RealFs, dir.path()).unwrap(), 1);
        assert!(!mine_stale.exists());
        assert!(mine_live.exists() && other_alive.exists() && unrelated.exists());
        alive.kill().unwrap();
        alive.wait().unwrap();
    }
}
