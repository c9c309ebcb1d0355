//! The cross-process [`LockProvider`] of the file backends: `.checklist/.lock`.
//!
//! - **Acquire** writes the complete lock to a temp file and hard-links it to `.lock`,
//!   which fails if a lock exists: a reader sees a whole lock or none (hazard 2).
//!   Before that, the holder creates `.locks/live-<lockId>` and keeps an OS advisory
//!   lock on it for as long as it holds the lock; the kernel drops it when the process
//!   dies, however it dies, so waiters on this host know at once (hazards 3, 5).
//! - **Heartbeat**: a background thread renews the lock every expiry/3 by replacing
//!   `.lock` with a copy carrying new timestamps, after checking it still owns it; a
//!   lock it no longer owns is reported through [`LockGuard::ensure_held`]. The thread
//!   never keeps a finished process alive (hazard 7).
//! - **Stale locks** are judged by [`lock_file::judge`](crate::lock::format) and broken
//!   under a second advisory lock, `.locks/break.lock`, after re-reading and
//!   re-judging the lock: every removal or replacement of `.lock` (break, release,
//!   renewal, force-release) happens under it, and creation by link cannot replace an
//!   existing file, so two breakers never remove a fresh lock (hazard 1).
//! - **Waiters** register as `.locks/waiter-<pid>-<nonce>.json`, never touching the
//!   holder's file, and line up in arrival order by tickets in `.locks/`; the head of
//!   the queue is woken by the holder's release (`queue.rs`).

use std::fmt;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use checklist_core::lock::{HeldLock, LockCapabilities, Waiter};
use checklist_core::{
    AuditEvent, AuditRecord, Error, LockGuard, LockInfo, LockProvider, LockRequest, LockStatus, Result,
    UnreadableLock,
};
use chrono::Utc;
use tokio::sync::Notify;

use crate::blocking::{run_blocking, run_blocking_detached};
use crate::fs::atomic::{DIR_MODE, PRIVATE_FILE_MODE, io_error};
use crate::fs::identity::FileIdentity;
use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::lock::format::{HolderLock, LockFile, MAX_LOCK_BYTES, Observation, Verdict, World, judge};
use crate::lock::queue::{self, Queue, Ticket};
use crate::process::{Liveness, ProcessIdentity, liveness, process_start};

/// How long a release or a renewal waits for the break lock before giving up.
const BREAK_LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Something notable that happened to a lock, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockEvent {
    /// A stale lock was broken so that a waiter could take it.
    Broken {
        /// The lock file.
        path: PathBuf,
        /// The holder it belonged to, if its file could be read.
        holder: Option<LockInfo>,
        /// Why it was judged stale.
        reason: String,
    },
    /// A lock was force-released by its id (`checklist lock release --force`).
    ForceReleased {
        /// The lock file.
        path: PathBuf,
        /// The holder it belonged to.
        holder: LockInfo,
    },
}

type Observer = dyn Fn(&LockEvent) + Send + Sync;

/// The cross-process lock of a file store; see the module docs. Cheap to clone;
/// clones share in-process wake-ups.
#[derive(Clone)]
pub struct FileLockProvider {
    shared: Arc<Shared>,
}

struct Shared {
    lock_path: PathBuf,
    /// `lock_path` as messages name it ([`LockProvider::resource`]).
    resource: String,
    locks_dir: PathBuf,
    break_path: PathBuf,
    vfs: Arc<dyn Vfs>,
    /// Wakes waiters of this process as soon as a holder of this process releases.
    released: Notify,
    observer: Mutex<Option<Arc<Observer>>>,
}

impl fmt::Debug for FileLockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLockProvider")
            .field("lock_path", &self.shared.lock_path)
            .finish_non_exhaustive()
    }
}

impl FileLockProvider {
    /// The lock of the store directory `dir` (`<dir>/.lock`, `<dir>/.locks/`).
    pub fn new(dir: &Path) -> Self {
        Self::with_vfs(dir, Arc::new(RealFs))
    }

    /// Like [`new`](Self::new), doing all I/O through `vfs`.
    pub fn with_vfs(dir: &Path, vfs: Arc<dyn Vfs>) -> Self {
        let locks_dir = dir.join(".locks");
        Self {
            shared: Arc::new(Shared {
                resource: dir.join(".lock").display().to_string(),
                lock_path: dir.join(".lock"),
                break_path: locks_dir.join("break.lock"),
                locks_dir,
                vfs: ConfinedFs::wrap(dir, vfs),
                released: Notify::new(),
                observer: Mutex::new(None),
            }),
        }
    }

    /// Calls `observer` for every broken or force-released lock (the audit trail). Without
    /// one, the events are logged with `tracing` at warning level.
    pub fn set_observer(&self, observer: impl Fn(&LockEvent) + Send + Sync + 'static) {
        *self.shared.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(observer));
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Arc<Shared>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(&self.shared);
        run_blocking(&self.shared.lock_path, move || work(&shared)).await
    }
}

/// The outcome of one attempt to take the lock.
enum Attempt {
    Acquired(Holding),
    Busy(Observation),
}

/// What a holder owns until it releases: the lock's content and its liveness lock.
/// Dropping it releases the lock, so an acquisition whose future was dropped mid-way
/// leaves nothing behind.
struct Holding {
    shared: Arc<Shared>,
    lock: LockFile,
    live_path: PathBuf,
    live: Option<File>,
}

impl Holding {
    /// Removes `.lock` if it is still this holder's, then lets the liveness lock go and
    /// wakes this process's waiters; only the first call does anything. A `.lock` that
    /// could not be removed is reported, and is stale at once for everyone on this host,
    /// since its liveness lock is gone.
    fn release(&mut self) -> Result<()> {
        let Some(live) = self.live.take() else {
            return Ok(());
        };
        let removed = self.shared.release(&self.lock.lock_id);
        drop(live);
        let _ = self.shared.vfs.remove_file(&self.live_path);
        self.shared.released.notify_waiters();
        removed
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Err(error) = self.release() {
            tracing::warn!(%error, "could not remove the lock file on release");
        }
    }
}

impl Shared {
    fn ensure_locks_dir(&self) -> Result<()> {
        match self.vfs.create_dir(&self.locks_dir, DIR_MODE) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("create the directory", &self.locks_dir, e)),
        }
    }

    fn live_path(&self, lock_id: &str) -> PathBuf {
        self.locks_dir.join(format!("live-{lock_id}"))
    }

    fn attempt(self: &Arc<Self>, request: &LockRequest) -> Result<Attempt> {
        self.ensure_locks_dir()?;
        if let Some(observation) = self.observe()? {
            return Ok(Attempt::Busy(observation));
        }
        let lock = LockFile::new(uuid::Uuid::new_v4().to_string(), request, Utc::now());
        // The would-be holder makes the queue's directory, so a waiter never has to.
        queue::ensure_queue_dir(self.vfs.as_ref(), &self.locks_dir).map_err(|e| {
            io_error(
                "create the directory",
                &self.locks_dir.join(queue::QUEUE_DIR_NAME),
                e,
            )
        })?;
        let live_path = self.live_path(&lock.lock_id);
        let live = self.hold_liveness_lock(&live_path)?;
        let holding = Holding {
            shared: Arc::clone(self),
            lock,
            live_path,
            live: Some(live),
        };
        let temp = self.locks_dir.join(format!(".lock-{}.tmp", holding.lock.lock_id));
        self.write_new(&temp, &holding.lock.to_bytes(), Synced::Yes)?;
        let linked = self.vfs.hard_link(&temp, &self.lock_path);
        let _ = self.vfs.remove_file(&temp);
        match linked {
            Ok(()) => Ok(Attempt::Acquired(holding)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Lost the race: `holding` is dropped without ever having been
                // visible; its release finds someone else's lock and leaves it.
                drop(holding);
                match self.observe()? {
                    Some(observation) => Ok(Attempt::Busy(observation)),
                    None => self.attempt(request),
                }
            }
            // FAT and exFAT refuse every hard link with EPERM (a permission refused is
            // EACCES, and the temp file beside it was just created); an SMB share or a
            // FUSE file system may say "unsupported".
            Err(e) if refuses_hard_links(&e) => Err(Error::FileSystemLacks {
                path: self.locks_dir.clone(),
                feature: "hard links".to_owned(),
                needed_for: format!(
                    "the lock needs to create {} atomically ({e})",
                    self.lock_path.display()
                ),
            }),
            Err(e) => Err(io_error("create the lock", &self.lock_path, e)),
        }
    }

    fn hold_liveness_lock(&self, path: &Path) -> Result<File> {
        drop(
            self.vfs
                .create_new(path, PRIVATE_FILE_MODE)
                .map_err(|e| io_error("create the liveness lock", path, e))?,
        );
        let file = self
            .vfs
            .open_lock_file(path)
            .map_err(|e| io_error("open the liveness lock", path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(TryLockError::WouldBlock) => Err(Error::io(
                "lock",
                path,
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "a brand-new lock file is locked by someone else",
                ),
            )),
            Err(TryLockError::Error(e)) => Err(io_error("lock", path, e)),
        }
    }

    /// Creates `path` holding `bytes`, fsynced when `synced` says so; a file whose
    /// write failed is removed again, so a full disk does not leave partial lock or
    /// waiter files behind.
    fn write_new(&self, path: &Path, bytes: &[u8], synced: Synced) -> Result<()> {
        let mut file = self
            .vfs
            .create_new(path, PRIVATE_FILE_MODE)
            .map_err(|e| io_error("create", path, e))?;
        let written = file.write_all(bytes).map_err(|e| io_error("write", path, e));
        let written = match (written, synced) {
            (Ok(()), Synced::Yes) => file.sync_all().map_err(|e| io_error("fsync", path, e)),
            (other, _) => other,
        };
        written.inspect_err(|_| {
            drop(file);
            let _ = self.vfs.remove_file(path);
        })
    }

    /// Reads the lock as it is now; `None` when there is none.
    fn observe(&self) -> Result<Option<Observation>> {
        let bytes = match self.vfs.read(&self.lock_path, MAX_LOCK_BYTES) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Larger than any lock this build writes (an older build's, a foreign
            // tool's): still a lock, whose holder cannot be read, so it keeps everyone
            // out until it is stale by its age, like any unparseable lock.
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => None,
            Err(e) => return Err(io_error("read the lock", &self.lock_path, e)),
        };
        let meta = match self.vfs.metadata(&self.lock_path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("inspect the lock", &self.lock_path, e)),
        };
        let identity = match FileIdentity::of(&self.lock_path, &meta) {
            Ok(identity) => identity,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("inspect the lock", &self.lock_path, e)),
        };
        let lock = bytes.as_deref().and_then(LockFile::parse);
        let holder_lock = match &lock {
            Some(lock) if lock.metadata.hostname == ProcessIdentity::current().hostname => {
                self.probe_liveness_lock(&self.live_path(&lock.lock_id))
            }
            _ => HolderLock::Unknown,
        };
        Ok(Some(Observation {
            lock,
            modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
            identity,
            holder_lock,
        }))
    }

    fn probe_liveness_lock(&self, path: &Path) -> HolderLock {
        match self.vfs.metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return HolderLock::Free,
            Err(_) => return HolderLock::Unknown,
            Ok(_) => {}
        }
        let Ok(file) = self.vfs.open_lock_file(path) else {
            return HolderLock::Unknown;
        };
        // Shared: the holder's lock is exclusive, and the head of the queue watches it
        // with a shared one (queue.rs). A head stopped (SIGSTOP) just after the kernel
        // granted it that shared lock keeps it; probed exclusively, it would make a dead
        // holder look alive until its expiry.
        match file.try_lock_shared() {
            // Got it: no holder has it. Dropping `file` lets it go again.
            Ok(()) => HolderLock::Free,
            Err(TryLockError::WouldBlock) => HolderLock::Held,
            Err(TryLockError::Error(_)) => HolderLock::Unknown,
        }
    }

    fn judge(&self, observation: &Observation, request_expiry: Duration) -> Verdict {
        judge(
            observation,
            &World {
                now: SystemTime::now(),
                hostname: &ProcessIdentity::current().hostname,
                default_expiry: request_expiry,
                liveness: &liveness,
                start_of: &process_start,
            },
        )
    }

    /// Takes `.locks/break.lock`, under which every removal or replacement of `.lock`
    /// happens.
    fn take_break_lock(&self, patience: Duration) -> Result<File> {
        self.ensure_locks_dir()?;
        let file = self
            .vfs
            .open_lock_file(&self.break_path)
            .map_err(|e| io_error("open", &self.break_path, e))?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if started.elapsed() < patience => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::LockTimeout {
                        resource: self.break_path.display().to_string(),
                        waited: started.elapsed(),
                        holder: None,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_error("lock", &self.break_path, e)),
            }
        }
    }

    /// Breaks the lock seen in `seen` if, re-read under the break lock, it is still the
    /// same lock and still stale. Returns whether it was broken.
    fn break_if_still_stale(&self, seen: &Observation, request_expiry: Duration) -> Result<bool> {
        let _break_lock = self.take_break_lock(BREAK_LOCK_PATIENCE)?;
        let Some(now) = self.observe()? else {
            return Ok(false);
        };
        let same = match (&seen.lock, &now.lock) {
            (Some(a), Some(b)) => a.lock_id == b.lock_id,
            (None, None) => seen.identity == now.identity,
            _ => false,
        };
        if !same {
            return Ok(false);
        }
        let Verdict::Stale(reason) = self.judge(&now, request_expiry) else {
            return Ok(false);
        };
        match self.vfs.remove_file(&self.lock_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("remove the stale lock", &self.lock_path, e)),
        }
        if let Some(lock) = &now.lock {
            let _ = self.vfs.remove_file(&self.live_path(&lock.lock_id));
        }
        self.report(LockEvent::Broken {
            path: self.lock_path.clone(),
            holder: now.lock.as_ref().map(LockFile::info),
            reason,
        });
        Ok(true)
    }

    /// Removes `.lock` if it is still `lock_id`'s.
    fn release(&self, lock_id: &str) -> Result<()> {
        let _break_lock = self.take_break_lock(BREAK_LOCK_PATIENCE)?;
        if self.current_lock_id()?.as_deref() == Some(lock_id) {
            self.vfs
                .remove_file(&self.lock_path)
                .map_err(|e| io_error("remove the lock", &self.lock_path, e))?;
        }
        Ok(())
    }

    /// The id of the lock in `.lock` now, reading only its content (no liveness
    /// probe): what release, renewal and `ensure_held` need.
    fn current_lock_id(&self) -> Result<Option<String>> {
        match self.vfs.read(&self.lock_path, MAX_LOCK_BYTES) {
            Ok(bytes) => Ok(LockFile::parse(&bytes).map(|l| l.lock_id)),
            // No lock is this large, so it is nobody's whose id we could know.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::FileTooLarge) => Ok(None),
            Err(e) => Err(io_error("read the lock", &self.lock_path, e)),
        }
    }

    /// Replaces `.lock` with `lock` renewed now, if it is still ours. Returns whether it
    /// was.
    fn renew(&self, lock: &LockFile) -> Result<bool> {
        let _break_lock = self.take_break_lock(BREAK_LOCK_PATIENCE)?;
        if self.current_lock_id()?.as_deref() != Some(lock.lock_id.as_str()) {
            return Ok(false);
        }
        let renewed = lock.renewed(Utc::now());
        let temp = self.locks_dir.join(format!(
            ".renew-{}-{}.tmp",
            lock.lock_id,
            uuid::Uuid::new_v4().simple()
        ));
        self.write_new(&temp, &renewed.to_bytes(), Synced::Yes)?;
        self.vfs.rename(&temp, &self.lock_path).map_err(|e| {
            let _ = self.vfs.remove_file(&temp);
            io_error("renew the lock", &self.lock_path, e)
        })?;
        Ok(true)
    }

    fn report(&self, event: LockEvent) {
        let observer = self.observer.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match observer {
            Some(observer) => observer(&event),
            None => log_event(&event),
        }
    }

    /// Registers this waiter as `.locks/waiter-<waiter>.json`, `waiter` being its
    /// `<pid>-<nonce>`, which its ticket carries too (queue.rs).
    fn register_waiter(&self, waiter: &str) -> Result<WaiterFile> {
        self.ensure_locks_dir()?;
        let me = ProcessIdentity::current();
        let path = self.locks_dir.join(queue::registration_name(waiter));
        let waiter = Waiter {
            pid: me.pid,
            hostname: me.hostname.clone(),
            since: Utc::now(),
        };
        let bytes = serde_json::to_vec(&waiter).unwrap_or_default();
        self.write_new(&path, &bytes, Synced::No)?;
        Ok(WaiterFile {
            vfs: Arc::clone(&self.vfs),
            path,
        })
    }

    fn waiters(&self) -> Result<Vec<Waiter>> {
        let names = match self.vfs.list_dir(&self.locks_dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.locks_dir, e)),
        };
        let host = &ProcessIdentity::current().hostname;
        let mut registrations = Vec::new();
        for name in names.iter().filter_map(|n| n.to_str()) {
            if !(name.starts_with("waiter-") && name.ends_with(".json")) {
                continue;
            }
            let path = self.locks_dir.join(name);
            match self.vfs.read(&path, MAX_LOCK_BYTES) {
                Ok(bytes) => registrations.push(bytes),
                // A waiter that left between the listing and the read is not waiting,
                // and no registration is this large.
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::FileTooLarge) => {}
                Err(e) => return Err(io_error("read the waiter registration", &path, e)),
            }
        }
        let mut waiters: Vec<Waiter> = registrations
            .iter()
            .filter_map(|bytes| serde_json::from_slice::<Waiter>(bytes).ok())
            // A waiter that died without cleaning up is not waiting.
            .filter(|w| w.hostname != *host || liveness(w.pid) != Liveness::Dead)
            .collect();
        waiters.sort_by_key(|w| w.since);
        Ok(waiters)
    }
}

impl LockEvent {
    /// The `lock_broken` audit record of this event.
    pub fn audit_record(&self) -> AuditRecord {
        let (holder, what) = match self {
            Self::Broken { holder, reason, .. } => (holder.as_ref(), format!("broke a stale lock: {reason}")),
            Self::ForceReleased { holder, .. } => (Some(holder), "force-released the lock".to_owned()),
        };
        let mut record = AuditRecord::new(AuditEvent::LockBroken).operations(vec![what]);
        if let Some(h) = holder {
            record.extra.insert(
                "holder".into(),
                serde_json::json!({"lockId": h.lock_id, "pid": h.pid, "host": h.hostname, "user": h.user,
                                   "acquiredAt": h.acquired_at, "note": h.note}),
            );
        }
        record
    }
}

/// Logs a lock event at warning level (the CLI prints warnings on stderr).
pub(crate) fn log_event(event: &LockEvent) {
    match event {
        LockEvent::Broken { path, holder, reason } => match holder {
            Some(h) => tracing::warn!(
                "broke the stale lock {} (lock id {}) held by pid {} on {} as {} since {}: {reason}",
                path.display(),
                h.lock_id,
                h.pid,
                h.hostname,
                h.user,
                h.acquired_at.to_rfc3339()
            ),
            None => tracing::warn!("broke the stale lock {}: {reason}", path.display()),
        },
        LockEvent::ForceReleased { path, holder } => tracing::warn!(
            "force-released the lock {} (lock id {}) held by pid {} on {} as {}",
            path.display(),
            holder.lock_id,
            holder.pid,
            holder.hostname,
            holder.user
        ),
    }
}

/// A waiter's registration; removed when dropped, however the wait ends.
struct WaiterFile {
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
}

impl Drop for WaiterFile {
    fn drop(&mut self) {
        let _ = self.vfs.remove_file(&self.path);
    }
}

/// A held file lock with its heartbeat.
struct HeldFileLock {
    info: LockInfo,
    holding: Arc<Mutex<Option<Holding>>>,
    lost: Arc<AtomicBool>,
    /// Dropping it stops the heartbeat thread.
    stop_heartbeat: Option<mpsc::Sender<()>>,
}

impl fmt::Debug for HeldFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldFileLock")
            .field("lock_id", &self.info.lock_id)
            .finish_non_exhaustive()
    }
}

impl HeldFileLock {
    fn start(holding: Holding) -> Self {
        let info = holding.lock.info();
        let interval = (holding.lock.expiry() / 3).max(Duration::from_millis(10));
        let holding = Arc::new(Mutex::new(Some(holding)));
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let stop_heartbeat = {
            let holding = Arc::clone(&holding);
            let lost = Arc::clone(&lost);
            std::thread::Builder::new()
                .name("checklist-lock-heartbeat".into())
                .spawn(move || heartbeat(&holding, &lost, &stopped, interval))
                .ok()
                .map(|_detached| stop)
        };
        Self {
            info,
            holding,
            lost,
            stop_heartbeat,
        }
    }

    fn lost_error(&self) -> Error {
        Error::LockLost {
            resource: self.resource(),
            lock_id: self.info.lock_id.clone(),
        }
    }

    fn resource(&self) -> String {
        self.holding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|h| h.shared.resource.clone())
            .unwrap_or_default()
    }
}

/// Renews the lock every `interval` until told to stop (or the guard is gone). The
/// thread is an ordinary detached thread: when the process ends, it ends.
fn heartbeat(
    holding: &Mutex<Option<Holding>>,
    lost: &AtomicBool,
    stop: &mpsc::Receiver<()>,
    interval: Duration,
) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let guard = holding.lock().unwrap_or_else(|p| p.into_inner());
        let Some(held) = guard.as_ref() else { return };
        match held.shared.renew(&held.lock) {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Release);
                tracing::warn!(
                    lock_id = held.lock.lock_id,
                    "the lock was taken away; stopping its heartbeat"
                );
                return;
            }
            Err(error) => tracing::warn!(%error, "could not renew the lock; will retry"),
        }
    }
}

impl HeldFileLock {
    /// Whether `.lock` still holds this acquisition; blocking file I/O.
    fn check_held(holding: &Mutex<Option<Holding>>, lost: &AtomicBool, lock_id: &str) -> Result<bool> {
        if lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        let guard = holding.lock().unwrap_or_else(|p| p.into_inner());
        let Some(held) = guard.as_ref() else {
            return Ok(false);
        };
        if held.shared.current_lock_id()?.as_deref() == Some(lock_id) {
            Ok(true)
        } else {
            lost.store(true, Ordering::Release);
            Ok(false)
        }
    }

    /// Stops the heartbeat and releases; blocking file I/O.
    fn release_now(mut self) -> Result<()> {
        // Not joined: once `holding` is taken (which waits for a renewal in progress),
        // the heartbeat has nothing to renew and ends by itself; waiting for the
        // thread to wake up and exit would only add to every release.
        self.stop_heartbeat.take();
        let holding = self.holding.lock().unwrap_or_else(|p| p.into_inner()).take();
        holding.map_or(Ok(()), |mut holding| holding.release())
    }
}

#[async_trait]
impl HeldLock for HeldFileLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn ensure_held(&self) -> Result<()> {
        let (holding, lost) = (Arc::clone(&self.holding), Arc::clone(&self.lost));
        let lock_id = self.info.lock_id.clone();
        let path = PathBuf::from(self.resource());
        let held = run_blocking(&path, move || Self::check_held(&holding, &lost, &lock_id)).await?;
        if held { Ok(()) } else { Err(self.lost_error()) }
    }

    async fn release(self: Box<Self>) -> Result<()> {
        let path = PathBuf::from(self.resource());
        run_blocking(&path, move || self.release_now()).await
    }

    fn release_in_background(self: Box<Self>) {
        let release = move || {
            if let Err(error) = self.release_now() {
                tracing::warn!(%error, "could not remove the lock file on release");
            }
        };
        // Should a current-thread runtime shut down before the task runs, dropping it
        // drops the `Holding`, whose own drop releases the lock.
        run_blocking_detached(release);
    }
}

#[async_trait]
impl LockProvider for FileLockProvider {
    fn resource(&self) -> &str {
        &self.shared.resource
    }

    fn capabilities(&self) -> LockCapabilities {
        LockCapabilities::CROSS_PROCESS
    }

    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
        let started = Instant::now();
        let deadline = started + request.timeout;
        let mut registration: Option<WaiterFile> = None;
        let mut queue = Queue::new(&self.shared.locks_dir);
        // A newcomer that finds others queued lines up behind them rather than racing
        // them for the lock each time it frees (queue.rs): it looks at `.lock` when it
        // reaches the head, when the queue stands still for its floor, or at its
        // deadline.
        // Without `.locks/` nobody is queued; `attempt` makes it.
        let mut look = self
            .blocking(|shared| Ok(!queue::anyone_queued(shared.vfs.as_ref(), &shared.locks_dir)))
            .await?;
        let mut holder: Option<String> = None;
        loop {
            let released = self.shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if look || Instant::now() >= deadline {
                let attempt_request = request.clone();
                let observation = match self
                    .blocking(move |shared| shared.attempt(&attempt_request))
                    .await?
                {
                    Attempt::Acquired(holding) => {
                        drop(registration);
                        return Ok(LockGuard::new(Box::new(HeldFileLock::start(holding))));
                    }
                    Attempt::Busy(observation) => observation,
                };
                if let Verdict::Stale(_) = self.shared.judge(&observation, request.expiry) {
                    let expiry = request.expiry;
                    let seen = observation.clone();
                    if self
                        .blocking(move |shared| shared.break_if_still_stale(&seen, expiry))
                        .await?
                    {
                        continue;
                    }
                }
                if Instant::now() >= deadline {
                    return Err(Error::LockTimeout {
                        resource: self.shared.resource.clone(),
                        waited: started.elapsed(),
                        holder: observation.lock.as_ref().map(|l| Box::new(l.info())),
                    });
                }
                holder = observation.lock.as_ref().map(|lock| lock.lock_id.clone());
            }
            if registration.is_none() {
                let (registered, ticket) = self
                    .blocking(|shared| {
                        let waiter = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
                        let registered = shared.register_waiter(&waiter)?;
                        Ok((registered, Ticket::take(&shared.vfs, &shared.locks_dir, &waiter)))
                    })
                    .await?;
                registration = Some(registered);
                queue.join(ticket, &self.shared.vfs);
            }
            // Woken by the queue when the holder lets go (queue.rs); the floor is for
            // what no OS lock tells: a stopped or remote holder's expiry, a stopped
            // waiter ahead. A waiter behind others leaves the lock to the head, even
            // when a holder of this process releases.
            let pause = jittered(queue.floor(request.retry_interval))
                .min(deadline.saturating_duration_since(Instant::now()));
            let behind = queue.behind();
            look = tokio::select! {
                () = &mut released, if !behind => true,
                () = tokio::time::sleep(pause) => {
                    !behind || {
                        let holder_now = self.blocking(|shared| Ok(shared.current_lock_id())).await?;
                        queue.stuck(holder_now)
                    }
                }
                () = queue.woken(holder.as_deref()) => true,
            };
        }
    }

    async fn inspect(&self) -> Result<LockStatus> {
        self.blocking(|shared| {
            let (holder, unreadable) = match shared.observe()? {
                Some(Observation { lock: Some(lock), .. }) => (Some(lock.info()), None),
                // A `.lock` that does not parse still keeps everyone out until it is stale.
                Some(observation) => (
                    None,
                    Some(UnreadableLock {
                        modified_at: observation.modified.into(),
                    }),
                ),
                None => (None, None),
            };
            Ok(LockStatus {
                holder,
                waiters: shared.waiters()?,
                unreadable,
            })
        })
        .await
    }

    async fn force_release(&self, lock_id: &str) -> Result<bool> {
        let lock_id = lock_id.to_owned();
        self.blocking(move |shared| {
            let _break_lock = shared.take_break_lock(BREAK_LOCK_PATIENCE)?;
            let Some(lock) = shared.observe()?.and_then(|o| o.lock) else {
                return Ok(false);
            };
            if lock.lock_id != lock_id {
                return Ok(false);
            }
            shared
                .vfs
                .remove_file(&shared.lock_path)
                .map_err(|e| io_error("remove the lock", &shared.lock_path, e))?;
            let _ = shared.vfs.remove_file(&shared.live_path(&lock.lock_id));
            shared.report(LockEvent::ForceReleased {
                path: shared.lock_path.clone(),
                holder: lock.info(),
            });
            Ok(true)
        })
        .await
    }
}

/// Whether a file the lock writes is fsynced before it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synced {
    /// A lock file, linked or renamed to `.lock`: without the fsync, a power cut can
    /// leave `.lock` named on disk but empty, a lock whose holder cannot be read, which
    /// keeps every writer out until it expires (docs/decisions/0007-file-lock.md,
    /// "Power loss").
    Yes,
    /// A waiter file, which is only ever informative.
    No,
}

/// Whether a failed hard link says the file system has none, rather than that this
/// one link was refused.
fn refuses_hard_links(error: &io::Error) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) {
        return true;
    }
    error.kind() == io::ErrorKind::Unsupported
}

/// `retry` ±50 %, so waiters of many processes do not poll in step.
fn jittered(retry: Duration) -> Duration {
    let spread = u64::from(uuid::Uuid::new_v4().as_u128() as u16) as f64 / f64::from(u16::MAX);
    retry.mul_f64(0.5 + spread)
}
