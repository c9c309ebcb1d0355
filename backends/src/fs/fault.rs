//! Fault injection through the [`Vfs`] seam.
//!
//! [`FaultyFs`] counts every operation it forwards and fails the one whose index was
//! chosen — like SQLite's I/O-error loop. A failing write first writes half of its
//! bytes, the way a full disk does. After the fault, operations either go on working
//! ([`AfterFault::Recover`], a transient error) or all fail ([`AfterFault::Crash`],
//! the process died: nothing it tries afterwards reaches the disk).
//!
//! The fault is an [`io::ErrorKind`] ([`FaultyFs::fail_at`]) or a real operating-system
//! error number such as `ENOSPC`, `EROFS` or `EACCES` ([`FaultyFs::fail_at_os_error`]),
//! which the engine sees exactly as it would see the kernel's. [`FaultyFs::before`]
//! instead changes the world just before an operation runs — deletes a file or the
//! whole store under the engine, between its read and its write.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::vfs::{Vfs, VfsFile};

/// What happens to the operations after the injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    /// They succeed again (a transient error such as `EINTR` or a brief `ENOSPC`).
    Recover,
    /// They all fail (the process crashed at the fault).
    Crash,
}

/// One operation seen by a [`FaultyFs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its index, counting from 0.
    pub index: usize,
    /// What it was (`read`, `create`, `write`, `fsync`, `rename`, …).
    pub name: &'static str,
    /// The path it touched.
    pub path: PathBuf,
    /// Whether it was failed on purpose.
    pub failed: bool,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy)]
enum Injected {
    Kind(io::ErrorKind),
    Os(i32),
}

impl Injected {
    fn error(self, name: &str, index: usize) -> io::Error {
        match self {
            Self::Kind(kind) => io::Error::new(kind, format!("injected fault in {name} (operation {index})")),
            Self::Os(code) => io::Error::from_raw_os_error(code),
        }
    }
}

/// Something done to the real file system just before an operation runs.
type Action = Box<dyn FnOnce() + Send>;

struct Plan {
    fail_at: Option<usize>,
    /// Fail the first operation of this name on a path containing this text instead.
    fail_matching: Option<(&'static str, String)>,
    after: AfterFault,
    injected: Injected,
    crashed: bool,
    before: Option<(usize, Action)>,
    log: Vec<Operation>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("fail_at", &self.fail_at)
            .field("fail_matching", &self.fail_matching)
            .field("after", &self.after)
            .field("injected", &self.injected)
            .field("crashed", &self.crashed)
            .field("before", &self.before.as_ref().map(|(index, _)| index))
            .field("log", &self.log)
            .finish()
    }
}

/// A [`Vfs`] that fails a chosen operation; see the module docs.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    inner: Arc<dyn Vfs>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyFs {
    /// Wraps `inner` without any fault planned (it only counts).
    pub fn new(inner: Arc<dyn Vfs>) -> Self {
        Self {
            inner,
            plan: Arc::new(Mutex::new(Plan {
                fail_at: None,
                fail_matching: None,
                after: AfterFault::Recover,
                injected: Injected::Kind(io::ErrorKind::Other),
                crashed: false,
                before: None,
                log: Vec::new(),
            })),
        }
    }

    /// Fails the operation with index `index` (counting from the next one as 0) with
    /// an error of `kind`, then behaves as `after` says. Clears the log.
    pub fn fail_at(&self, index: usize, kind: io::ErrorKind, after: AfterFault) {
        self.plan_fault(index, Injected::Kind(kind), after);
    }

    /// Like [`fail_at`](Self::fail_at), failing with the operating-system error
    /// number `code` (`ENOSPC`, `EROFS`, `EACCES`…): the error is built by
    /// [`io::Error::from_raw_os_error`], so it carries the same kind and message as the
    /// kernel's own.
    pub fn fail_at_os_error(&self, index: usize, code: i32, after: AfterFault) {
        self.plan_fault(index, Injected::Os(code), after);
    }

    /// Like [`fail_at_os_error`](Self::fail_at_os_error), failing the first operation
    /// named `name` (`write`, `rename`, …) on a path containing `path_part`, wherever it
    /// comes: aimed by what it is rather than by an index that other work (a cache
    /// read, a sweep) may shift.
    pub fn fail_first_os_error(&self, name: &'static str, path_part: &str, code: i32, after: AfterFault) {
        self.plan_fault(usize::MAX, Injected::Os(code), after);
        self.plan().fail_matching = Some((name, path_part.to_owned()));
    }

    /// Runs `action` just before the operation with index `index` (counting from the
    /// next one as 0) is forwarded, so that operation and every later one see what
    /// `action` did (a file or the whole store deleted under the engine). The
    /// operation itself is not failed. Clears the log.
    pub fn before(&self, index: usize, action: impl FnOnce() + Send + 'static) {
        let mut plan = self.plan();
        plan.before = Some((index, Box::new(action)));
        plan.log.clear();
    }

    fn plan_fault(&self, index: usize, injected: Injected, after: AfterFault) {
        let mut plan = self.plan();
        plan.fail_at = Some(index);
        plan.fail_matching = None;
        plan.after = after;
        plan.injected = injected;
        plan.crashed = false;
        plan.log.clear();
    }

    /// Stops injecting faults, drops a pending [`before`](Self::before) action and
    /// clears the log.
    pub fn heal(&self) {
        let mut plan = self.plan();
        plan.fail_at = None;
        plan.fail_matching = None;
        plan.crashed = false;
        plan.before = None;
        plan.log.clear();
    }

    /// The operations seen since the last [`fail_at`](Self::fail_at) or
    /// [`heal`](Self::heal).
    pub fn log(&self) -> Vec<Operation> {
        self.plan().log.clone()
    }

    /// Whether the planned fault has been injected.
    pub fn fault_injected(&self) -> bool {
        self.plan().log.iter().any(|op| op.failed)
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // A panic elsewhere while holding the lock leaves the plan usable.
        self.plan.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an operation and fails it if it is the planned fault or comes after a
    /// crash.
    fn step(&self, name: &'static str, path: &Path) -> io::Result<()> {
        self.step_detailed(name, path).map_err(|(error, _)| error)
    }

    /// Like [`step`](Self::step); the flag says whether this is the planned fault
    /// itself (rather than an operation after a crash).
    fn step_detailed(&self, name: &'static str, path: &Path) -> Result<(), (io::Error, bool)> {
        let mut plan = self.plan();
        let index = plan.log.len();
        if plan.before.as_ref().is_some_and(|(at, _)| *at == index)
            && let Some((_, action)) = plan.before.take()
        {
            // Run without holding the plan: the action may use the file system freely.
            drop(plan);
            action();
            plan = self.plan();
        }
        let matched = plan
            .fail_matching
            .as_ref()
            .is_some_and(|(wanted, part)| *wanted == name && path.to_string_lossy().contains(part.as_str()));
        if matched {
            plan.fail_matching = None;
        }
        let planned = plan.fail_at == Some(index) || matched;
        let fail = planned || plan.crashed;
        if planned && plan.after == AfterFault::Crash {
            plan.crashed = true;
        }
        plan.log.push(Operation {
            index,
            name,
            path: path.to_owned(),
            failed: fail,
        });
        if fail {
            Err((plan.injected.error(name, index), planned))
        } else {
            Ok(())
        }
    }
}

impl Vfs for FaultyFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.step("read", path)?;
        self.inner.read(path, limit)
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        self.step("create", path)?;
        let file = self.inner.create_new(path, mode)?;
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            path: path.to_owned(),
            inner: file,
        }))
    }

    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        self.step("open for append", path)?;
        let file = self.inner.open_append(path, mode)?;
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            path: path.to_owned(),
            inner: file,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step("rename", to)?;
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step("fsync directory", dir)?;
        self.inner.sync_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step("remove", path)?;
        self.inner.remove_file(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.step("create directory", path)?;
        self.inner.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.step("remove directory", path)?;
        self.inner.remove_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.step("stat", path)?;
        self.inner.metadata(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.step("list directory", dir)?;
        self.inner.list_dir(dir)
    }

    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        self.step("open lock file", path)?;
        self.inner.open_lock_file(path)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.step("hard link", link)?;
        self.inner.hard_link(original, link)
    }
}

struct FaultyFile {
    fs: FaultyFs,
    path: PathBuf,
    inner: Box<dyn VfsFile>,
}

impl VfsFile for FaultyFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err((fault, planned)) = self.fs.step_detailed("write", &self.path) {
            if planned {
                // A failing write (a full disk, a dying process) leaves part of the data.
                let _ = self.inner.write_all(&bytes[..bytes.len() / 2]);
            }
            return Err(fault);
        }
        self.inner.write_all(bytes)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.fs.step("fsync", &self.path)?;
        self.inner.sync_all()
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        self.fs.step("read", &self.path)?;
        self.inner.last_byte()
    }
}
