//! Watching a store's directory for the change feed of the file and SQLite backends
//! (docs/backends.md, "Following changes").
//!
//! Two sources, either enough on its own:
//! - **Notification** (Linux): inotify on the directory wakes the watch as soon as a
//!   file whose name starts with one of the watched names is created, written, renamed
//!   in or removed. It cannot see everything (another machine's write over NFS, a
//!   queue overflow, a change that becomes visible only through memory, as a SQLite
//!   commit does through its `-shm` index), so it only makes the watch quicker.
//! - **The floor**: every `floor` the watch takes a [`Probe`]'s mark (the files' size,
//!   modification time and inode; SQLite's `data_version`) and wakes when it differs
//!   from the mark of its last wake-up. This is what makes it never miss a change.
//!
//! Cancellation-safe: a `changed` future dropped half-way consumes nothing — the
//! blocking half only waits for readiness and takes a mark, and the events are read
//! and the mark kept only once it has returned — so the next call still sees what the
//! dropped one was about to report.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use checklist_core::{ChangeWatch, Result};

use crate::fs::atomic::io_error;
use crate::fs::vfs::Vfs;

/// What a probe measured: equal marks mean nothing it watches changed.
pub(crate) type Mark = Vec<u64>;

/// Measures what a watch looks at; run on a blocking thread.
pub(crate) type Probe = Arc<dyn Fn() -> io::Result<Mark> + Send + Sync>;

/// A watch of one directory.
pub(crate) struct DirectoryWatch {
    dir: PathBuf,
    names: Vec<String>,
    notifier: Option<Arc<Notifier>>,
    floor: Duration,
    probe: Probe,
    last: Mark,
}

impl fmt::Debug for DirectoryWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryWatch")
            .field("dir", &self.dir)
            .field("names", &self.names)
            .field("notified", &self.notifier.is_some())
            .field("floor", &self.floor)
            .finish_non_exhaustive()
    }
}

impl DirectoryWatch {
    /// Watches `dir` for the files whose names start with one of `names`, probing with
    /// `probe` every `floor` (`floor_unnotified` where the platform or the file system
    /// gives no notification). Takes the first mark now: every change after this
    /// returns wakes the watch.
    pub(crate) async fn start(
        dir: &Path,
        names: Vec<String>,
        floor: Duration,
        floor_unnotified: Duration,
        probe: Probe,
    ) -> Result<Self> {
        let dir = dir.to_owned();
        let (notifier, last) = {
            let (watched, probe) = (dir.clone(), Arc::clone(&probe));
            blocking(move || {
                // Notification first, then the mark: a change between the two is
                // seen by both, never by neither.
                let notifier = notification(&watched);
                Ok((notifier, probe()?))
            })
            .await
            .map_err(|e| io_error("watch the store directory", &dir, e))?
        };
        Ok(Self {
            dir,
            names,
            floor: if notifier.is_some() {
                floor
            } else {
                floor_unnotified
            },
            notifier: notifier.map(Arc::new),
            probe,
            last,
        })
    }

    /// Waits until a watched file may have changed since the last wake-up.
    async fn wait(&mut self) -> io::Result<()> {
        loop {
            let probe = Arc::clone(&self.probe);
            let floor = self.floor;
            let notifier = self.notifier.clone();
            let (ready, mark) = blocking(move || {
                let ready = match &notifier {
                    Some(notifier) => readable_within(notifier, floor)?,
                    None => {
                        std::thread::sleep(floor);
                        false
                    }
                };
                Ok((ready, probe()?))
            })
            .await?;
            let notified = ready && self.read_events()?;
            if notified || mark != self.last {
                self.last = mark;
                return Ok(());
            }
        }
    }

    /// Reads the pending events without blocking; whether one concerns a watched file
    /// (or the directory itself, or events were lost).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read_events(&self) -> io::Result<bool> {
        use rustix::fs::inotify::{ReadFlags, Reader};
        let Some(fd) = &self.notifier else {
            return Ok(false);
        };
        let mut buffer = [std::mem::MaybeUninit::uninit(); 4096];
        let mut reader = Reader::new(fd.as_ref(), &mut buffer);
        let mut relevant = false;
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(relevant),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let flags = event.events();
            let lost_or_gone = flags.intersects(
                ReadFlags::QUEUE_OVERFLOW
                    | ReadFlags::IGNORED
                    | ReadFlags::DELETE_SELF
                    | ReadFlags::MOVE_SELF,
            );
            let named = event.file_name().is_some_and(|name| {
                let name = name.to_string_lossy();
                self.names
                    .iter()
                    .any(|watched| name.starts_with(watched.as_str()))
            });
            relevant |= lost_or_gone || named;
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn read_events(&self) -> io::Result<bool> {
        Ok(false)
    }
}

/// What wakes a watch: an inotify instance on Linux; nothing elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
type Notifier = rustix::fd::OwnedFd;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
type Notifier = std::convert::Infallible;

#[async_trait]
impl ChangeWatch for DirectoryWatch {
    async fn changed(&mut self) -> Result<()> {
        self.wait()
            .await
            .map_err(|e| io_error("watch the store directory", &self.dir, e))
    }
}

/// The inotify instance watching `dir`, or `None` where it cannot be had (too many
/// watches, a file system without it): the floor alone then finds every change.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn notification(dir: &Path) -> Option<rustix::fd::OwnedFd> {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let started = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).and_then(|fd| {
        let events = WatchFlags::CREATE
            | WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::DELETE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW;
        inotify::add_watch(&fd, dir, events).map(|_| fd)
    });
    match started {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "no inotify; the change feed polls");
            None
        }
    }
}

/// No notification here: the floor alone finds every change.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn notification(_dir: &Path) -> Option<Notifier> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn readable_within(notifier: &Notifier, _timeout: Duration) -> io::Result<bool> {
    match *notifier {}
}

/// Whether `fd` became readable within `timeout`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn readable_within(fd: &rustix::fd::OwnedFd, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(ready) => Ok(ready > 0),
        Err(rustix::io::Errno::INTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// A probe of files: for each, its size, modification time and (on Unix) inode, or
/// zeros where it does not exist. A replace by rename changes the inode; an append
/// changes the size; an edit in place the modification time.
pub(crate) fn file_probe(vfs: Arc<dyn Vfs>, paths: Vec<PathBuf>) -> Probe {
    Arc::new(move || file_marks(vfs.as_ref(), &paths))
}

fn file_marks(vfs: &dyn Vfs, paths: &[PathBuf]) -> io::Result<Mark> {
    let mut mark = Vec::with_capacity(paths.len() * 3);
    for path in paths {
        match vfs.metadata(path) {
            Ok(meta) => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64);
                #[cfg(unix)]
                let identity = std::os::unix::fs::MetadataExt::ino(&meta);
                #[cfg(not(unix))]
                let identity = 0;
                mark.extend([meta.len(), modified, identity]);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => mark.extend([0, 0, 0]),
            Err(e) => return Err(e),
        }
    }
    Ok(mark)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io::Error::other(format!("the watch's thread failed: {e}")))?
}
