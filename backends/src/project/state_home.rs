//! Where a project's store lives when the project directory cannot hold one: the
//! per-user state directory (decision 0016).
//!
//! The store of the project at `root` is `<root>/.checklist/`. Only when that does not
//! exist and cannot be created because the project directory is not writable
//! (permission denied, read-only file system) does `init` create the store in
//! `<state home>/checklist/<project id>/` instead; from then on every command for that
//! project finds it there, until a `<root>/.checklist/` appears, which always wins.

use std::io;
use std::path::{Path, PathBuf};

use checklist_core::quarantine::bytes_sha256;
use checklist_core::{Error, Result};

use crate::fs::atomic::io_error;
use crate::fs::vfs::Vfs;
use crate::project::layout::Layout;

/// The name of the directory inside the state home that holds the fallback stores.
const APP_DIR_NAME: &str = "checklist";

/// How much of the project path's SHA-256 the id keeps, in hex digits (64 bits: two
/// project paths of one user never collide in practice).
const HASH_HEX_DIGITS: usize = 16;

/// How many characters of the project directory's name the id keeps.
const MAX_NAME_CHARS: usize = 48;

/// Permission bits of the fallback directories: they sit in a per-user directory that
/// nobody else should read (the XDG base directory specification asks 0700).
pub const FALLBACK_DIR_MODE: u32 = 0o700;

/// The platform's per-user state directory, from the environment:
/// `$XDG_STATE_HOME` (when set to an absolute path) on Unix, else
/// `~/Library/Application Support` on macOS and `~/.local/state` on other Unix
/// systems; `%LOCALAPPDATA%` on Windows. `None` when the environment names none.
pub fn default_state_home() -> Option<PathBuf> {
    let absolute = |value: std::ffi::OsString| Some(PathBuf::from(value)).filter(|p| p.is_absolute());
    if cfg!(windows) {
        return std::env::var_os("LOCALAPPDATA").and_then(absolute);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").and_then(absolute) {
        return Some(xdg);
    }
    let home = std::env::var_os("HOME").and_then(absolute)?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".local").join("state")
    })
}

/// The stable id of the project at `root`: the name of its directory (characters
/// other than ASCII letters, digits, `.`, `_` and `-` replaced by `_`, at most 48 of
/// them) and the first 16 hex digits of the SHA-256 of its canonical path, e.g.
/// `my-project-3f2a9c0d1e4b5a69`. The same directory reached through a link or a
/// relative path gets the same id.
///
/// # Errors
/// The error of canonicalising `root` (it does not exist, or cannot be reached).
pub fn project_id(root: &Path) -> io::Result<String> {
    let canonical = std::fs::canonicalize(root)?;
    let name: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_CHARS)
        .collect();
    // A name of dots only would be `.` or `..` as a path component.
    let name = if name.is_empty() || name.chars().all(|c| c == '.') {
        "root".to_owned()
    } else {
        name
    };
    let digest = bytes_sha256(canonical.as_os_str().as_encoded_bytes());
    let hex = digest.trim_start_matches("sha256:");
    Ok(format!("{name}-{}", &hex[..HASH_HEX_DIGITS]))
}

/// The fallback store directory of the project at `root` inside `state_home`:
/// `<state_home>/checklist/<project id>`.
///
/// # Errors
/// As [`project_id`].
pub fn fallback_store_dir(state_home: &Path, root: &Path) -> io::Result<PathBuf> {
    Ok(state_home.join(APP_DIR_NAME).join(project_id(root)?))
}

/// Whether `error`, from creating the store directory, means the project directory
/// cannot be written (so the fallback applies) rather than some other failure.
pub fn is_unwritable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Where the store of a project is, as far as the file system says before any of it
/// is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The store's paths.
    pub layout: Layout,
    /// Whether it is the per-user fallback store rather than `<root>/.checklist/`.
    pub fallback: bool,
}

/// Finds the store of the project at `root`: `<root>/.checklist/` when anything is
/// there (a symbolic link included: opening it refuses it), otherwise the fallback
/// store in `state_home` when that exists, otherwise `<root>/.checklist/` (which a
/// command then reports as not initialized, and `init` creates). Without a
/// `state_home` there is no fallback.
///
/// # Errors
/// [`Error::SymlinkRefused`] when `<state_home>/checklist` is a symbolic link, and the
/// error of inspecting it.
pub fn locate(vfs: &dyn Vfs, root: &Path, state_home: Option<&Path>) -> Result<Located> {
    let project = Located {
        layout: Layout::for_project(root),
        fallback: false,
    };
    let Some(state_home) = state_home else {
        return Ok(project);
    };
    match vfs.metadata(project.layout.dir()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        _ => return Ok(project),
    }
    // A project directory that does not exist has no fallback either; opening
    // `<root>/.checklist/` reports it.
    let Ok(dir) = fallback_store_dir(state_home, root) else {
        return Ok(project);
    };
    if !exists_as_dir(vfs, &state_home.join(APP_DIR_NAME))? || vfs.metadata(&dir).is_err() {
        return Ok(project);
    }
    Ok(Located {
        layout: Layout::at(dir),
        fallback: true,
    })
}

/// Creates the fallback store directory of the project at `root` (mode 0700, and its
/// parents up to the state home), returning it; an existing one is refused, since
/// [`locate`] would have found it.
///
/// # Errors
/// [`Error::SymlinkRefused`] when `<state_home>/checklist` is a symbolic link, and the
/// error of creating a directory, naming it.
pub fn create_fallback_store_dir(vfs: &dyn Vfs, state_home: &Path, root: &Path) -> Result<PathBuf> {
    let dir =
        fallback_store_dir(state_home, root).map_err(|e| io_error("find the project directory", root, e))?;
    std::fs::create_dir_all(state_home).map_err(|e| io_error("create the directory", state_home, e))?;
    let app_dir = state_home.join(APP_DIR_NAME);
    if !exists_as_dir(vfs, &app_dir)? {
        match vfs.create_dir(&app_dir, FALLBACK_DIR_MODE) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_error("create the directory", &app_dir, e));
            }
            _ => {
                exists_as_dir(vfs, &app_dir)?;
            }
        }
    }
    vfs.create_dir(&dir, FALLBACK_DIR_MODE)
        .map_err(|e| io_error("create the directory", &dir, e))?;
    Ok(dir)
}

/// Whether `dir` exists as a real directory; a symbolic link or a file is refused.
fn exists_as_dir(vfs: &dyn Vfs, dir: &Path) -> Result<bool> {
    match vfs.metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::SymlinkRefused { path: dir.to_owned() }),
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(io_error(
            "open the directory",
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "it is not a directory"),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("inspect", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_readable_and_the_same_for_every_spelling_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("My Project (copy)");
        std::fs::create_dir(&project).unwrap();
        let id = project_id(&project).unwrap();
        let (name, hash) = id.rsplit_once('-').unwrap();
        assert_eq!(name, "My_Project__copy_");
        assert_eq!(hash.len(), HASH_HEX_DIGITS);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let dotted = project.join("..").join("My Project (copy)");
        assert_eq!(project_id(&dotted).unwrap(), id);
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&project, &link).unwrap();
            assert_eq!(project_id(&link).unwrap(), id);
        }
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        assert_ne!(project_id(&other).unwrap(), id);
    }

    #[test]
    fn the_file_system_root_gets_a_usable_name() {
        let id = project_id(Path::new("/")).unwrap();
        assert!(id.starts_with("root-"), "{id}");
    }

    #[test]
    fn a_missing_project_has_no_id() {
        let dir = tempfile::tempdir().unwrap();
        let err = project_id(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn only_permission_and_read_only_errors_mean_unwritable() {
        assert!(is_unwritable(&io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(is_unwritable(&io::Error::from(io::ErrorKind::ReadOnlyFilesystem)));
        assert!(!is_unwritable(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_unwritable(&io::Error::from(io::ErrorKind::NotFound)));
    }
}
