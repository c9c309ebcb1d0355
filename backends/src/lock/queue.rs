//! Waking the file lock's waiters when the lock frees, instead of each polling it
//! (docs/decisions/0007-file-lock.md, "Waking waiters").
//!
//! Waiters line up on an OS advisory lock, `.locks/queue.lock`: a newcomer takes it
//! at once if nobody is queued ([`Queue::enter`]); otherwise it asks for it exclusively
//! and blocks in the kernel until it has it, without racing the queue for the lock. The one that has it is the
//! head of the queue, the only waiter that watches the holder: it blocks on a shared
//! lock of the holder's liveness file (`.locks/live-<lockId>`), which the holder keeps
//! exclusively until it has removed `.lock`, and which the kernel lets go when the
//! holder dies. So a release or a death wakes one waiter at once, and a thousand
//! waiters cost the kernel a queue rather than a thousand polls of `.lock` every
//! retry interval. The head lets the queue go when it has the lock (or gives up), and
//! the next waiter becomes the head.
//!
//! None of this decides who holds the lock — creating `.lock` by link does — so it can
//! only make waiting quicker: a waiter still looks at `.lock` at its floor (the retry
//! interval at the head, to judge a stopped or remote holder's expiry; a longer one
//! behind it, in case the head is itself stopped), and a file system without advisory
//! locks falls back to polling. The blocking calls run on threads of their own, never
//! the runtime's: a waiter that gives up leaves its thread to let the queue go the
//! moment the kernel hands it over, and an exiting process does not wait for it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::fs::vfs::Vfs;

/// The queue's file in `.locks/`.
pub(crate) const QUEUE_FILE_NAME: &str = "queue.lock";

/// How often a waiter behind the head looks at `.lock` itself: only a head that is
/// stopped (SIGSTOP, a debugger) or a queue the file system cannot keep leaves it
/// waiting that long.
pub(crate) const BEHIND_THE_HEAD_FLOOR: Duration = Duration::from_secs(2);

/// A waiter's place in the queue of one lock.
#[derive(Debug)]
pub(crate) struct Queue {
    queue_path: PathBuf,
    locks_dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    place: Place,
    /// The holder the head watches, and the news of its release.
    watched: Option<(String, oneshot::Receiver<()>)>,
}

#[derive(Debug)]
enum Place {
    /// Not asked for yet.
    Outside,
    /// Asked for; the thread blocked on `queue.lock` hands it over when it has it.
    Waiting(oneshot::Receiver<io::Result<File>>),
    /// At the head: holding `queue.lock` until dropped.
    Head(#[allow(dead_code, reason = "held for its OS lock, released on drop")] File),
    /// The queue cannot be kept here (no advisory locks, no thread): poll.
    Unavailable,
}

impl Queue {
    /// The queue's file, opened (created when missing) for [`enter`](Self::enter); call
    /// it off the async runtime.
    pub(crate) fn open(vfs: &dyn Vfs, locks_dir: &Path) -> io::Result<File> {
        vfs.open_lock_file(&locks_dir.join(QUEUE_FILE_NAME))
    }

    /// A place outside the queue of the lock whose files are in `locks_dir`.
    pub(crate) fn new(locks_dir: &Path, vfs: Arc<dyn Vfs>) -> Self {
        Self {
            queue_path: locks_dir.join(QUEUE_FILE_NAME),
            locks_dir: locks_dir.to_owned(),
            vfs,
            place: Place::Outside,
            watched: None,
        }
    }

    /// Takes the head of the queue if nobody is queued, without blocking: whether this
    /// waiter may try for the lock now. `false`: others are queued, and this one lines
    /// up behind them ([`woken`](Self::woken)) instead of racing them each time the
    /// lock frees. A queue that cannot be kept here says `true` (polling, as before).
    pub(crate) fn enter(&mut self, opened: io::Result<File>) -> bool {
        let file = match opened {
            Ok(file) => file,
            Err(error) => {
                tracing::debug!(%error, path = %self.queue_path.display(), "no lock queue; polling");
                self.place = Place::Unavailable;
                return true;
            }
        };
        match file.try_lock() {
            Ok(()) => {
                self.place = Place::Head(file);
                true
            }
            Err(std::fs::TryLockError::WouldBlock) => false,
            Err(std::fs::TryLockError::Error(error)) => {
                tracing::debug!(%error, path = %self.queue_path.display(), "no lock queue; polling");
                self.place = Place::Unavailable;
                true
            }
        }
    }

    /// How long this waiter may go without looking at `.lock` itself.
    pub(crate) fn floor(&self, retry_interval: Duration) -> Duration {
        match self.place {
            Place::Outside | Place::Waiting(_) => BEHIND_THE_HEAD_FLOOR.max(retry_interval),
            Place::Head(_) | Place::Unavailable => retry_interval,
        }
    }

    /// Resolves when the lock held by `holder` (its lock id; `None`: a lock that cannot
    /// be read, which only its expiry frees) may have been let go, or when this waiter
    /// has just become the head of the queue and should look again. Cancellation-safe:
    /// dropped half-way, it keeps its place.
    pub(crate) async fn woken(&mut self, holder: Option<&str>) {
        loop {
            match &mut self.place {
                Place::Outside => self.place = self.join(),
                Place::Waiting(handover) => {
                    self.place = match handover.await {
                        Ok(Ok(file)) => Place::Head(file),
                        Ok(Err(error)) => {
                            tracing::debug!(%error, path = %self.queue_path.display(), "no lock queue; polling");
                            Place::Unavailable
                        }
                        Err(_) => Place::Unavailable,
                    };
                    if let Place::Head(_) = self.place {
                        // The holder may have changed while this waiter queued.
                        return;
                    }
                }
                Place::Head(_) => {
                    let Some(holder) = holder else {
                        return std::future::pending().await;
                    };
                    if self.watched.as_ref().is_none_or(|(watched, _)| watched != holder) {
                        self.watched = Some((holder.to_owned(), self.watch(holder)));
                    }
                    let (_, released) = self.watched.as_mut().expect("set just above");
                    // A watch that could not be kept (no thread) resolves at once; the
                    // caller then looks, and its floor bounds how often.
                    let _ = released.await;
                    self.watched = None;
                    return;
                }
                Place::Unavailable => return std::future::pending().await,
            }
        }
    }

    /// Starts a thread that blocks on `queue.lock` and hands it over.
    fn join(&self) -> Place {
        let (handover, place) = oneshot::channel();
        let (vfs, path) = (Arc::clone(&self.vfs), self.queue_path.clone());
        let spawned = std::thread::Builder::new()
            .name("checklist-lock-queue".into())
            .spawn(move || {
                let taken = vfs.open_lock_file(&path).and_then(|file| {
                    file.lock()?;
                    Ok(file)
                });
                // A waiter that gave up dropped its receiver: the file, and with it
                // the queue, is let go right here.
                let _ = handover.send(taken);
            });
        match spawned {
            Ok(_) => Place::Waiting(place),
            Err(_) => Place::Unavailable,
        }
    }

    /// Starts a thread that blocks on a shared lock of `holder`'s liveness file and
    /// says when it has it: the holder has let the lock go, or died. A liveness file
    /// already gone means the holder has released.
    fn watch(&self, holder: &str) -> oneshot::Receiver<()> {
        let (released, news) = oneshot::channel();
        let path = self.locks_dir.join(format!("live-{holder}"));
        let _ = std::thread::Builder::new()
            .name("checklist-lock-watch".into())
            .spawn(move || {
                // Opened for reading only, never created: a liveness file that is not
                // there is not made again for nobody to remove.
                if let Ok(file) = File::open(&path) {
                    let _ = file.lock_shared();
                }
                let _ = released.send(());
            });
        news
    }
}
