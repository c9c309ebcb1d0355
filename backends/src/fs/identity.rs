//! Which file a path names, to tell a file replaced under the same name from the one
//! that was there (a lock broken and taken again, a state file swapped).

use std::time::SystemTime;

/// Which file a path names (device and inode on Unix, volume serial number and file
/// index on Windows), with its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) len: u64,
    pub(crate) modified: Option<SystemTime>,
}

impl FileIdentity {
    /// The identity of the file at `path`, whose metadata (not following a symbolic
    /// link) is `meta`.
    pub(crate) fn of(path: &std::path::Path, meta: &std::fs::Metadata) -> std::io::Result<Self> {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            let _ = path;
            (meta.dev(), meta.ino())
        };
        // std's accessors for these are unstable (`windows_by_handle`), so ask Windows.
        #[cfg(windows)]
        let (dev, ino) = crate::sys::windows::file_id(path)?;
        #[cfg(not(any(unix, windows)))]
        let (dev, ino) = {
            let _ = path;
            (0, 0)
        };
        Ok(Self {
            dev,
            ino,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}
