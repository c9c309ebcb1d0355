//! The file-system seam: every I/O operation of the file engine goes through [`Vfs`].
//!
//! [`RealFs`] is the operating system. [`FaultyFs`](crate::fs::fault::FaultyFs) wraps any
//! [`Vfs`] and fails a chosen operation, which is how the tests prove that a failure at
//! any point of a save leaves the old state or the new one, never a torn one. The seam
//! is public so custom backends built on the file engine can be tested the same way.
//!
//! Every method refuses to follow a symbolic link at the final path component.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The file operations the file engine uses.
pub trait Vfs: Send + Sync + fmt::Debug + 'static {
    /// Reads a whole regular file, without following a symbolic link at `path`.
    ///
    /// Fails with [`io::ErrorKind::FileTooLarge`] when the file holds more than
    /// `limit` bytes, and with [`io::ErrorKind::InvalidInput`] when `path` is a
    /// symbolic link, a directory or anything else that is not a regular file.
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;

    /// Creates a new file exclusively (fails if anything, even a dangling symbolic
    /// link, exists at `path`) with permission bits `mode` on Unix.
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>>;

    /// Opens a file for appending (creating it with permission bits `mode` on Unix),
    /// without following a symbolic link at `path`. Every write goes to the end of the
    /// file, even when other processes append at the same time (`O_APPEND`).
    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>>;

    /// Renames `from` over `to` atomically (on Windows, retrying a bounded number of
    /// times while another process briefly holds `to` open). Refuses when `from` is a
    /// symbolic link, so a link planted in the store is never carried to another name.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes the directory entry changes inside `dir` durable (fsync of the directory
    /// on Unix; a no-op on Windows, where directory handles cannot be flushed).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Removes a file; refuses a symbolic link (the store removes only files it
    /// made, so a link at one of their names is reported, not silently dropped).
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates one directory with permission bits `mode` on Unix.
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()>;

    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// The metadata of `path` itself, not of what a symbolic link points to.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// The names of the entries of a directory, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;

    /// Opens (creating it if needed) a file used only for OS advisory locking.
    fn open_lock_file(&self, path: &Path) -> io::Result<File>;

    /// Creates `link` as a new name of the file `original`; fails if `link` exists.
    /// Atomic: `link` appears with the original's complete content or not at all.
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;
}

/// A file being written by the engine.
pub trait VfsFile: Send {
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Flushes the file's data and metadata to stable storage (fsync).
    fn sync_all(&mut self) -> io::Result<()>;
    /// The file's last byte, `None` when it is empty.
    fn last_byte(&mut self) -> io::Result<Option<u8>>;
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    fn open_no_follow(path: &Path) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true);
        platform::no_follow(&mut options);
        let file = options
            .open(path)
            .map_err(|e| platform::explain_open_error(path, e))?;
        let meta = file.metadata()?;
        if meta.file_type().is_symlink() {
            return Err(symlink_error(path));
        }
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(file)
    }
}

impl Vfs for RealFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let file = Self::open_no_follow(path)?;
        let size = file.metadata()?.len();
        if size > limit {
            return Err(too_large(size, limit));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // Read one byte past the limit so a file that grew after the size check is
        // still caught.
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64, limit));
        }
        Ok(bytes)
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        platform::no_follow(&mut options);
        platform::mode(&mut options, mode);
        Ok(Box::new(RealFile(options.open(path)?)))
    }

    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        platform::no_follow(&mut options);
        platform::mode(&mut options, mode);
        let file = options
            .open(path)
            .map_err(|e| platform::explain_open_error(path, e))?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(Box::new(RealFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        refuse_symlink(from)?;
        platform::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        platform::sync_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        refuse_symlink(path)?;
        fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        platform::create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        fs::symlink_metadata(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        platform::no_follow(&mut options);
        platform::mode(&mut options, 0o644);
        options
            .open(path)
            .map_err(|e| platform::explain_open_error(path, e))
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
    }
}

struct RealFile(File);

impl VfsFile for RealFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        let len = self.0.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut byte = [0u8];
        platform::read_exact_at(&self.0, &mut byte, len - 1)?;
        Ok(Some(byte[0]))
    }
}

/// Fails when `path` is a symbolic link; a missing `path` is left for the operation
/// to report.
/// Removes the file at `path`; a file already gone is fine (whoever removed it did
/// what was asked).
///
/// # Errors
/// Any other failure to remove it.
pub(crate) fn remove_if_present(vfs: &dyn Vfs, path: &Path) -> io::Result<()> {
    match vfs.remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn refuse_symlink(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_error(path)),
        _ => Ok(()),
    }
}

fn too_large(size: u64, limit: u64) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, OverLimit { size, limit })
}

/// Marks an [`io::Error`] as a file over its read limit, keeping both sizes so the
/// engine can report [`checklist_core::Error::TooLarge`] wherever the read happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverLimit {
    /// The file's size in bytes (at least `limit + 1` when it grew while being read).
    pub(crate) size: u64,
    /// The limit in bytes.
    pub(crate) limit: u64,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, over the limit of {}", self.size, self.limit)
    }
}

impl std::error::Error for OverLimit {}

/// The sizes of a read refused for being over its limit.
pub(crate) fn over_limit(error: &io::Error) -> Option<OverLimit> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OverLimit>())
        .copied()
}

/// The error every method returns for a symbolic link it refuses to follow.
pub(crate) fn symlink_error(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, SymlinkRefused(path.to_owned()))
}

/// Marks an [`io::Error`] as a refusal to follow a symbolic link, so the engine can
/// report it as [`checklist_core::Error::SymlinkRefused`] naming the link itself (which
/// may be a directory above the file the operation was about).
#[derive(Debug)]
pub(crate) struct SymlinkRefused(PathBuf);

impl fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is a symbolic link", self.0.display())
    }
}

impl std::error::Error for SymlinkRefused {}

/// The symbolic link that `error` refused to follow, if it is such a refusal.
pub(crate) fn refused_symlink(error: &io::Error) -> Option<&Path> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<SymlinkRefused>())
        .map(|refused| refused.0.as_path())
}

/// A [`Vfs`] confined to one store directory: before forwarding an operation on a path
/// inside `root`, it checks that `root` and every directory between it and the path
/// is a real directory, not a symbolic link. [`RealFs`] only guards the last
/// component (`O_NOFOLLOW`); without this, a `.backup` that links elsewhere would
/// take the backups out of the store. Paths outside `root` are forwarded unchecked.
///
/// The checks are `lstat`s before the operation, so they stop links that are planted
/// in the store (a committed or copied `.checklist/`), not a process that swaps a
/// directory for a link between the check and the operation: such a process can
/// already write the store itself.
#[derive(Debug)]
pub(crate) struct ConfinedFs {
    root: PathBuf,
    inner: Arc<dyn Vfs>,
}

impl ConfinedFs {
    /// `inner`, confined to the store directory `root`.
    pub(crate) fn wrap(root: &Path, inner: Arc<dyn Vfs>) -> Arc<dyn Vfs> {
        Arc::new(Self {
            root: root.to_owned(),
            inner,
        })
    }

    /// Checks the directories from `root` down to `path`'s parent, and `path` itself
    /// when the operation would follow a link there (opening a directory).
    fn check(&self, path: &Path, including_last: bool) -> io::Result<()> {
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return Ok(());
        };
        let mut components: Vec<Component<'_>> = relative.components().collect();
        if !including_last {
            components.pop();
        }
        let mut dir = self.root.clone();
        self.check_dir(&dir)?;
        for component in components {
            match component {
                Component::Normal(name) => dir.push(name),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} leaves the store directory", path.display()),
                    ));
                }
            }
            self.check_dir(&dir)?;
        }
        Ok(())
    }

    /// [`check`](Self::check) for the two paths of a rename or a link, once when they
    /// share a directory (a temp file and its target always do).
    fn check_both(&self, a: &Path, b: &Path) -> io::Result<()> {
        self.check(a, false)?;
        if a.parent() == b.parent() {
            return Ok(());
        }
        self.check(b, false)
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        match self.inner.metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => Err(symlink_error(dir)),
            // A missing directory is for the operation itself to report.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Vfs for ConfinedFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.check(path, false)?;
        self.inner.read(path, limit)
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        self.check(path, false)?;
        self.inner.create_new(path, mode)
    }

    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        self.check(path, false)?;
        self.inner.open_append(path, mode)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_both(from, to)?;
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(dir, true)?;
        self.inner.sync_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(path, false)?;
        self.inner.remove_file(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.check(path, false)?;
        self.inner.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.check(path, false)?;
        self.inner.remove_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.check(path, false)?;
        self.inner.metadata(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.check(dir, true)?;
        self.inner.list_dir(dir)
    }

    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        self.check(path, false)?;
        self.inner.open_lock_file(path)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.check_both(original, link)?;
        self.inner.hard_link(original, link)
    }
}

#[cfg(unix)]
mod platform {
    use std::fs::{DirBuilder, File, OpenOptions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use std::path::Path;

    use rustix::fs::OFlags;

    pub(super) fn no_follow(options: &mut OpenOptions) {
        // O_NONBLOCK keeps an open of a FIFO planted in the store from hanging; it has
        // no effect on regular files.
        options.custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32);
    }

    pub(super) fn mode(options: &mut OpenOptions, mode: u32) {
        options.mode(mode);
    }

    pub(super) fn explain_open_error(path: &Path, error: io::Error) -> io::Error {
        if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return super::symlink_error(path);
        }
        error
    }

    pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    pub(super) fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
        DirBuilder::new().mode(mode).create(path)
    }

    pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::OpenOptions;
    use std::io;
    use std::os::windows::fs::OpenOptionsExt;
    use std::path::Path;
    use std::time::Duration;

    /// FILE_FLAG_OPEN_REPARSE_POINT: open a symbolic link itself, not its target; the
    /// caller then sees a symlink in the metadata and refuses it.
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    const RENAME_ATTEMPTS: u32 = 20;

    pub(super) fn no_follow(options: &mut OpenOptions) {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }

    pub(super) fn mode(_options: &mut OpenOptions, _mode: u32) {}

    pub(super) fn explain_open_error(_path: &Path, error: io::Error) -> io::Error {
        error
    }

    pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
        // A virus scanner or indexer may hold the target open for a moment; Windows
        // then refuses MoveFileEx with a sharing violation or access denied.
        let mut attempt = 0;
        loop {
            match std::fs::rename(from, to) {
                Err(e)
                    if attempt + 1 < RENAME_ATTEMPTS
                        && matches!(
                            e.raw_os_error(),
                            Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION)
                        ) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn create_dir(path: &Path, _mode: u32) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    pub(super) fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.seek_read(&mut buf[done..], offset + done as u64)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_refuses_symlinks_directories_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"hello").unwrap();
        assert_eq!(RealFs.read(&real, 5).unwrap(), b"hello");
        let err = RealFs.read(&real, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);

        assert!(RealFs.read(dir.path(), 100).is_err());

        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            let err = RealFs.read(&link, 100).unwrap_err();
            assert_eq!(refused_symlink(&err), Some(link.as_path()), "{err:?}");
            assert!(RealFs.create_new(&link, 0o600).is_err());
            assert!(RealFs.open_lock_file(&link).is_err());
        }
    }

    #[cfg(unix)]
    #[test]
    fn create_new_sets_the_mode_and_is_exclusive() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = RealFs.create_new(&path, 0o600).unwrap();
        file.write_all(b"x").unwrap();
        file.sync_all().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            RealFs.create_new(&path, 0o600).err().map(|e| e.kind()),
            Some(io::ErrorKind::AlreadyExists)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        // mkfifo(1), not rustix: rustix has no mknodat on macOS.
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo {}: {made}", fifo.display());
        let err = RealFs.read(&fifo, 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
