//! Power-loss simulation through the [`Vfs`] seam.
//!
//! A process killed with `kill -9` loses nothing the kernel already has; a power cut
//! or a kernel panic loses whatever was not yet on stable storage. [`CrashFs`] wraps
//! a real directory tree and, while the engine works on it as usual, keeps a model of
//! what the disk would hold durably after each operation. For any point of the
//! recorded operations it lists the disk states a power cut there may leave
//! ([`CrashFs::crash_states`]) and writes each one out as a real directory tree
//! ([`CrashState::materialise`]), which the real code then opens as it would after a
//! reboot.
//!
//! The model (written out, with the real file systems it is pessimistic or optimistic
//! about, in docs/decisions/0023-power-loss-model.md):
//! - a file's data written since its last `fsync` may be kept, dropped, or kept up to
//!   any 512-byte boundary (a torn write); `fsync` makes its data durable, not its name;
//! - each change to a directory's entries (a create, link, rename, removal) since that
//!   directory's last `fsync` may or may not have reached the disk: a directory keeps a
//!   prefix of its pending changes, in the order they were made, independently of every
//!   other directory. A rename within one directory is one change; a rename between two
//!   directories is two (a link in the target, an unlink in the source);
//! - OS advisory locks vanish with the machine.
//!
//! `fsync` calls are recorded, not passed on: the real tree under a [`CrashFs`] is the
//! page cache, and the model is the disk. [`Forget`] drops chosen `fsync` calls, as a
//! build that lacks them would, to prove the simulation finds what they protect.
//!
//! Files another engine writes without the seam, with its own durability — SQLite's
//! `state.db` and its write-ahead log — are named with [`CrashFs::with_external`]: the model
//! takes them as they are on the real disk before each operation and at each
//! [`CrashFs::settle`], all durable, and writes them out so in every crash state.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::identity::FileIdentity;
use crate::fs::vfs::{RealFs, Vfs, VfsFile};

/// The size of the unit a torn write keeps whole (a disk sector).
pub const SECTOR: usize = 512;

/// `fsync` calls a [`CrashFs`] drops instead of recording, standing in for a build
/// that lacks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// Every file `fsync`.
    FileSyncs,
    /// Every directory `fsync`.
    DirectorySyncs,
    /// The `fsync` of every file whose name starts with this prefix (`audit` for the
    /// audit trail).
    FileSyncsOf(String),
}

/// An inode of the model: its index in [`Model::nodes`].
type Ino = usize;

/// The model's root, the directory the [`CrashFs`] was made on.
const ROOT: Ino = 0;

#[derive(Debug, Clone)]
enum Node {
    File {
        data: Vec<u8>,
        /// How much of `data` is on stable storage.
        synced: usize,
        mode: u32,
    },
    Dir {
        durable: BTreeMap<OsString, Ino>,
        /// Entry changes made since the directory's last `fsync`, oldest first.
        pending: Vec<Change>,
        mode: u32,
    },
}

/// One change to a directory's entries.
#[derive(Debug, Clone)]
enum Change {
    /// A new name for `ino`: a create, a hard link, a directory made.
    Link { name: OsString, ino: Ino },
    /// A name removed.
    Unlink { name: OsString },
    /// A rename within the directory, atomic.
    Rename { from: OsString, to: OsString, ino: Ino },
}

impl Change {
    fn apply(&self, entries: &mut BTreeMap<OsString, Ino>) {
        match self {
            Self::Link { name, ino } => {
                entries.insert(name.clone(), *ino);
            }
            Self::Unlink { name } => {
                entries.remove(name);
            }
            Self::Rename { from, to, ino } => {
                entries.remove(from);
                entries.insert(to.clone(), *ino);
            }
        }
    }

    fn target(&self) -> Option<Ino> {
        match self {
            Self::Link { ino, .. } | Self::Rename { ino, .. } => Some(*ino),
            Self::Unlink { .. } => None,
        }
    }
}

/// One recorded operation, as it changes the model.
#[derive(Debug, Clone)]
enum Op {
    NewFile {
        dir: Ino,
        name: OsString,
        mode: u32,
    },
    NewDir {
        dir: Ino,
        name: OsString,
        mode: u32,
    },
    Write {
        ino: Ino,
        bytes: Vec<u8>,
    },
    Sync {
        ino: Ino,
    },
    Change {
        dir: Ino,
        change: Change,
    },
    SyncDir {
        dir: Ino,
    },
    /// An external file as it now is (`None`: absent).
    External {
        path: PathBuf,
        bytes: Option<Vec<u8>>,
    },
}

/// What the disk holds: durable data and names, and what is still in flight.
#[derive(Debug, Clone)]
struct Model {
    nodes: Vec<Node>,
    /// The external files by path relative to the root, as last taken.
    external: BTreeMap<PathBuf, Vec<u8>>,
}

impl Model {
    /// The tree under `root` as it is now, all of it taken as durable; the files
    /// whose relative path is in `external` are left to [`Op::External`].
    fn snapshot(root: &Path, external: &[PathBuf]) -> io::Result<Self> {
        let mut model = Self {
            nodes: vec![Node::Dir {
                durable: BTreeMap::new(),
                pending: Vec::new(),
                mode: mode_of(&std::fs::symlink_metadata(root)?),
            }],
            external: BTreeMap::new(),
        };
        let mut seen: BTreeMap<(u64, u64), Ino> = BTreeMap::new();
        let mut pending = vec![(root.to_owned(), ROOT)];
        while let Some((path, dir)) = pending.pop() {
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                let child = entry.path();
                if child
                    .strip_prefix(root)
                    .is_ok_and(|relative| external.iter().any(|e| e == relative))
                {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&child)?;
                let ino = if meta.is_dir() {
                    model.nodes.push(Node::Dir {
                        durable: BTreeMap::new(),
                        pending: Vec::new(),
                        mode: mode_of(&meta),
                    });
                    pending.push((child.clone(), model.nodes.len() - 1));
                    model.nodes.len() - 1
                } else if meta.is_file() {
                    let identity = FileIdentity::of(&child, &meta)?;
                    match seen.get(&(identity.dev, identity.ino)) {
                        Some(ino) => *ino,
                        None => {
                            let data = std::fs::read(&child)?;
                            model.nodes.push(Node::File {
                                synced: data.len(),
                                data,
                                mode: mode_of(&meta),
                            });
                            seen.insert((identity.dev, identity.ino), model.nodes.len() - 1);
                            model.nodes.len() - 1
                        }
                    }
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is neither a file nor a directory", child.display()),
                    ));
                };
                if let Node::Dir { durable, .. } = &mut model.nodes[dir] {
                    durable.insert(entry.file_name(), ino);
                }
            }
        }
        Ok(model)
    }

    /// The entries of `dir` once the first `applied` of its pending changes are on disk.
    fn entries(&self, dir: Ino, applied: usize) -> BTreeMap<OsString, Ino> {
        match &self.nodes[dir] {
            Node::Dir { durable, pending, .. } => {
                let mut entries = durable.clone();
                for change in &pending[..applied] {
                    change.apply(&mut entries);
                }
                entries
            }
            Node::File { .. } => BTreeMap::new(),
        }
    }

    fn live_entries(&self, dir: Ino) -> BTreeMap<OsString, Ino> {
        self.entries(dir, self.pending(dir).len())
    }

    fn pending(&self, dir: Ino) -> &[Change] {
        match &self.nodes[dir] {
            Node::Dir { pending, .. } => pending,
            Node::File { .. } => &[],
        }
    }

    /// The inode `relative` names now.
    fn lookup(&self, relative: &Path) -> Option<Ino> {
        let mut ino = ROOT;
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return None;
            };
            ino = *self.live_entries(ino).get(name)?;
        }
        Some(ino)
    }

    /// The inode `relative` names now, or the error for a path the model never saw
    /// made.
    fn existing(&self, relative: &Path) -> io::Result<Ino> {
        self.lookup(relative).ok_or_else(|| unseen(relative))
    }

    /// The directory holding `relative` and its name there.
    fn parent_of(&self, relative: &Path) -> Option<(Ino, OsString)> {
        let name = relative.file_name()?.to_owned();
        let dir = self.lookup(relative.parent()?)?;
        matches!(self.nodes[dir], Node::Dir { .. }).then_some((dir, name))
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::NewFile { dir, name, mode } => self.add(
                *dir,
                name,
                Node::File {
                    data: Vec::new(),
                    synced: 0,
                    mode: *mode,
                },
            ),
            Op::NewDir { dir, name, mode } => self.add(
                *dir,
                name,
                Node::Dir {
                    durable: BTreeMap::new(),
                    pending: Vec::new(),
                    mode: *mode,
                },
            ),
            Op::Write { ino, bytes } => {
                if let Node::File { data, .. } = &mut self.nodes[*ino] {
                    data.extend_from_slice(bytes);
                }
            }
            Op::Sync { ino } => {
                if let Node::File { data, synced, .. } = &mut self.nodes[*ino] {
                    *synced = data.len();
                }
            }
            Op::Change { dir, change } => self.push_change(*dir, change.clone()),
            Op::SyncDir { dir } => {
                let entries = self.live_entries(*dir);
                if let Node::Dir { durable, pending, .. } = &mut self.nodes[*dir] {
                    *durable = entries;
                    pending.clear();
                }
            }
            Op::External { path, bytes } => match bytes {
                Some(bytes) => {
                    self.external.insert(path.clone(), bytes.clone());
                }
                None => {
                    self.external.remove(path);
                }
            },
        }
    }

    /// A new inode `node`, named `name` in `dir` (a pending change there).
    fn add(&mut self, dir: Ino, name: &OsString, node: Node) {
        self.nodes.push(node);
        let ino = self.nodes.len() - 1;
        self.push_change(
            dir,
            Change::Link {
                name: name.clone(),
                ino,
            },
        );
    }

    fn push_change(&mut self, dir: Ino, change: Change) {
        if let Node::Dir { pending, .. } = &mut self.nodes[dir] {
            pending.push(change);
        }
    }

    /// What may differ between crash states here: each directory with pending changes
    /// (how many reached the disk) and each file that may be named on disk and has
    /// unsynced data (how much of it reached the disk).
    fn dimensions(&self) -> Vec<Dimension> {
        let mut dimensions = Vec::new();
        let mut nameable = BTreeSet::new();
        for (ino, node) in self.nodes.iter().enumerate() {
            if let Node::Dir { durable, pending, .. } = node {
                nameable.extend(durable.values().copied());
                nameable.extend(pending.iter().filter_map(Change::target));
                if !pending.is_empty() {
                    dimensions.push(Dimension::Directory {
                        ino,
                        changes: pending.len(),
                    });
                }
            }
        }
        for ino in nameable {
            if let Node::File { data, synced, .. } = &self.nodes[ino]
                && data.len() > *synced
            {
                let mut lengths = vec![*synced];
                let first_boundary = (*synced / SECTOR + 1) * SECTOR;
                lengths.extend((first_boundary..data.len()).step_by(SECTOR));
                lengths.push(data.len());
                dimensions.push(Dimension::File { ino, lengths });
            }
        }
        dimensions
    }
}

#[cfg(unix)]
fn mode_of(meta: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_meta: &Metadata) -> u32 {
    0o644
}

/// One thing a power cut decides.
#[derive(Debug, Clone)]
enum Dimension {
    /// How many of the directory's `changes` pending changes reached the disk (0 to all).
    Directory { ino: Ino, changes: usize },
    /// How long the file is on disk: one of `lengths`.
    File { ino: Ino, lengths: Vec<usize> },
}

impl Dimension {
    fn choices(&self) -> usize {
        match self {
            Self::Directory { changes, .. } => changes + 1,
            Self::File { lengths, .. } => lengths.len(),
        }
    }
}

#[derive(Debug)]
struct Journal {
    initial: Model,
    live: Model,
    ops: Vec<(Op, &'static str, PathBuf)>,
}

/// A [`Vfs`] that records what would be durable after each operation; see the module
/// docs.
#[derive(Debug, Clone)]
pub struct CrashFs {
    root: PathBuf,
    inner: Arc<dyn Vfs>,
    forget: Vec<Forget>,
    /// Files written outside the seam, relative to the root.
    external: Vec<PathBuf>,
    journal: Arc<Mutex<Journal>>,
}

impl CrashFs {
    /// Starts recording on the directory tree under `root`, all of whose present
    /// content is taken as durable. Operations on paths outside `root` are passed to
    /// the real file system unrecorded.
    ///
    /// # Errors
    /// Reading the tree; a symbolic link or special file in it.
    pub fn new(root: &Path) -> io::Result<Self> {
        Self::with_external(root, &[])
    }

    /// Like [`new`](Self::new), leaving the files at `external` (paths relative to
    /// `root`) to another engine with its own durability; see the module docs.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_external(root: &Path, external: &[&Path]) -> io::Result<Self> {
        let external: Vec<PathBuf> = external.iter().map(|p| p.to_path_buf()).collect();
        let model = Model::snapshot(root, &external)?;
        let fs = Self {
            root: root.to_owned(),
            inner: Arc::new(RealFs),
            forget: Vec::new(),
            external,
            journal: Arc::new(Mutex::new(Journal {
                initial: model.clone(),
                live: model,
                ops: Vec::new(),
            })),
        };
        {
            let mut journal = fs.journal();
            let taken = fs.take_external(&journal.live);
            for (op, _, _) in taken {
                journal.initial.apply(&op);
                journal.live.apply(&op);
            }
        }
        Ok(fs)
    }

    /// Records the external files as they are now on the real disk: call it once the
    /// other engine has acknowledged what it did (a commit returned).
    pub fn settle(&self) {
        let mut journal = self.journal();
        let taken = self.take_external(&journal.live);
        for (op, name, path) in taken {
            journal.live.apply(&op);
            journal.ops.push((op, name, path));
        }
    }

    /// The changes of the external files since `model` took them.
    fn take_external(&self, model: &Model) -> Vec<(Op, &'static str, PathBuf)> {
        self.external
            .iter()
            .filter_map(|relative| {
                let path = self.root.join(relative);
                let bytes = std::fs::read(&path).ok();
                (model.external.get(relative) != bytes.as_ref()).then(|| {
                    (
                        Op::External {
                            path: relative.clone(),
                            bytes,
                        },
                        "external write",
                        path,
                    )
                })
            })
            .collect()
    }

    /// The same recorder dropping the `fsync` calls `forget` names.
    #[must_use]
    pub fn forgetting(mut self, forget: Forget) -> Self {
        self.forget.push(forget);
        self
    }

    /// How many operations that change the disk have been recorded: the crash points
    /// are 0 (before the first) to this number (after the last).
    pub fn operations(&self) -> usize {
        self.journal().ops.len()
    }

    /// What operation `index` was (`create`, `write`, `fsync`, `rename`, …) and the
    /// path it touched, for messages.
    pub fn operation(&self, index: usize) -> Option<(&'static str, PathBuf)> {
        self.journal()
            .ops
            .get(index)
            .map(|(_, name, path)| (*name, path.clone()))
    }

    /// The disk states a power cut may leave after the first `point` recorded
    /// operations: all of them when there are at most `limit`, otherwise `limit` of
    /// them — the one that keeps nothing unsynced, the one that keeps everything, and
    /// the rest drawn with `seed`.
    pub fn crash_states(&self, point: usize, limit: usize, seed: u64) -> CrashStates {
        let model = {
            let journal = self.journal();
            let mut model = journal.initial.clone();
            for (op, _, _) in &journal.ops[..point.min(journal.ops.len())] {
                model.apply(op);
            }
            model
        };
        let dimensions = model.dimensions();
        let total = dimensions
            .iter()
            .try_fold(1usize, |total, d| total.checked_mul(d.choices()));
        let limit = limit.max(2);
        let choices: Vec<Vec<usize>> = match total {
            Some(total) if total <= limit => (0..total)
                .map(|mut n| {
                    dimensions
                        .iter()
                        .map(|d| {
                            let choice = n % d.choices();
                            n /= d.choices();
                            choice
                        })
                        .collect()
                })
                .collect(),
            _ => {
                let mut random = SplitMix64(seed ^ point as u64);
                let mut states = vec![
                    vec![0; dimensions.len()],
                    dimensions.iter().map(|d| d.choices() - 1).collect(),
                ];
                while states.len() < limit {
                    states.push(
                        dimensions
                            .iter()
                            .map(|d| (random.next() % d.choices() as u64) as usize)
                            .collect(),
                    );
                }
                states
            }
        };
        CrashStates {
            model: Arc::new(model),
            dimensions: Arc::new(dimensions),
            total,
            choices,
        }
    }

    /// The disk state in which everything recorded reached the disk: the tree as the
    /// engine left it, which a test compares with the real one to find writes that
    /// went around the seam.
    pub fn as_recorded(&self) -> CrashState {
        self.settle();
        let model = self.journal().live.clone();
        let dimensions = model.dimensions();
        let choice = dimensions.iter().map(|d| d.choices() - 1).collect();
        CrashState {
            model: Arc::new(model),
            dimensions: Arc::new(dimensions),
            choice,
        }
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `path` relative to the root, when it is inside it.
    fn relative<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// Records what `make` says the operation on `path` did to the live model; paths
    /// outside the root are not recorded.
    fn record(
        &self,
        name: &'static str,
        path: &Path,
        make: impl FnOnce(&Model, &Path) -> io::Result<Vec<Op>>,
    ) -> io::Result<()> {
        let Some(relative) = self.relative(path) else {
            return Ok(());
        };
        let mut journal = self.journal();
        let ops = make(&journal.live, relative)?;
        // What the other engine wrote since the last operation came first.
        let taken = self.take_external(&journal.live);
        for (op, name, path) in taken {
            journal.live.apply(&op);
            journal.ops.push((op, name, path));
        }
        for op in ops {
            journal.live.apply(&op);
            journal.ops.push((op, name, path.to_owned()));
        }
        Ok(())
    }

    /// The directory holding `path` in the live model and the name there.
    fn parent_in(model: &Model, relative: &Path) -> io::Result<(Ino, OsString)> {
        model.parent_of(relative).ok_or_else(|| unseen(relative))
    }

    fn forgets_file_sync(&self, path: &Path) -> bool {
        self.forget.iter().any(|forget| match forget {
            Forget::FileSyncs => true,
            Forget::DirectorySyncs => false,
            Forget::FileSyncsOf(prefix) => path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(prefix.as_str())),
        })
    }

    fn file(&self, path: &Path, ino: Option<Ino>, inner: Box<dyn VfsFile>) -> Box<dyn VfsFile> {
        Box::new(CrashFile {
            fs: self.clone(),
            path: path.to_owned(),
            ino,
            inner,
        })
    }

    /// The file the live model has at `path`, or a new one.
    fn open_or_create(&self, name: &'static str, path: &Path, mode: u32) -> io::Result<Option<Ino>> {
        let mut ino = None;
        self.record(name, path, |model, relative| match model.lookup(relative) {
            Some(existing) => {
                ino = Some(existing);
                Ok(Vec::new())
            }
            None => {
                let (dir, name) = Self::parent_in(model, relative)?;
                ino = Some(model.nodes.len());
                Ok(vec![Op::NewFile { dir, name, mode }])
            }
        })?;
        Ok(ino)
    }
}

/// The error for a path under the root the model never saw made: something wrote
/// there without going through the seam.
fn unseen(relative: &Path) -> io::Error {
    io::Error::other(format!(
        "{} was made outside the file-system seam, so a power cut cannot be simulated for it",
        relative.display()
    ))
}

impl Vfs for CrashFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.inner.read(path, limit)
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let file = self.inner.create_new(path, mode)?;
        let ino = self.open_or_create("create", path, mode)?;
        Ok(self.file(path, ino, file))
    }

    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let file = self.inner.open_append(path, mode)?;
        let ino = self.open_or_create("open for append", path, mode)?;
        Ok(self.file(path, ino, file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)?;
        let Some(from_relative) = self.relative(from).map(Path::to_owned) else {
            return Ok(());
        };
        self.record("rename", to, |model, to_relative| {
            let ino = model.existing(&from_relative)?;
            let (from_dir, from) = Self::parent_in(model, &from_relative)?;
            let (to_dir, to) = Self::parent_in(model, to_relative)?;
            Ok(if from_dir == to_dir {
                vec![Op::Change {
                    dir: to_dir,
                    change: Change::Rename { from, to, ino },
                }]
            } else {
                vec![
                    Op::Change {
                        dir: to_dir,
                        change: Change::Link { name: to, ino },
                    },
                    Op::Change {
                        dir: from_dir,
                        change: Change::Unlink { name: from },
                    },
                ]
            })
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.forget.contains(&Forget::DirectorySyncs) {
            return Ok(());
        }
        self.record("fsync directory", dir, |model, relative| {
            let dir = model.existing(relative)?;
            Ok(vec![Op::SyncDir { dir }])
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)?;
        self.record("remove", path, |model, relative| {
            let (dir, name) = Self::parent_in(model, relative)?;
            Ok(vec![Op::Change {
                dir,
                change: Change::Unlink { name },
            }])
        })
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.inner.create_dir(path, mode)?;
        self.record("create directory", path, |model, relative| {
            let (dir, name) = Self::parent_in(model, relative)?;
            Ok(vec![Op::NewDir { dir, name, mode }])
        })
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)?;
        self.record("remove directory", path, |model, relative| {
            let (dir, name) = Self::parent_in(model, relative)?;
            Ok(vec![Op::Change {
                dir,
                change: Change::Unlink { name },
            }])
        })
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.inner.list_dir(dir)
    }

    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        let file = self.inner.open_lock_file(path)?;
        self.open_or_create("open lock file", path, 0o644)?;
        Ok(file)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.inner.hard_link(original, link)?;
        let Some(original_relative) = self.relative(original).map(Path::to_owned) else {
            return Ok(());
        };
        self.record("hard link", link, |model, relative| {
            let ino = model.existing(&original_relative)?;
            let (dir, name) = Self::parent_in(model, relative)?;
            Ok(vec![Op::Change {
                dir,
                change: Change::Link { name, ino },
            }])
        })
    }
}

struct CrashFile {
    fs: CrashFs,
    path: PathBuf,
    /// The file in the model; `None` outside the root.
    ino: Option<Ino>,
    inner: Box<dyn VfsFile>,
}

impl VfsFile for CrashFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        if let Some(ino) = self.ino {
            self.fs.record("write", &self.path, |_, _| {
                Ok(vec![Op::Write {
                    ino,
                    bytes: bytes.to_vec(),
                }])
            })?;
        }
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        if let Some(ino) = self.ino
            && !self.fs.forgets_file_sync(&self.path)
        {
            self.fs
                .record("fsync", &self.path, |_, _| Ok(vec![Op::Sync { ino }]))?;
        }
        Ok(())
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        self.inner.last_byte()
    }
}

/// The disk states a power cut may leave at one crash point; see
/// [`CrashFs::crash_states`].
#[derive(Debug, Clone)]
pub struct CrashStates {
    model: Arc<Model>,
    dimensions: Arc<Vec<Dimension>>,
    /// How many states there are in all; `None` when over `usize::MAX`.
    total: Option<usize>,
    choices: Vec<Vec<usize>>,
}

impl CrashStates {
    /// How many distinct states a power cut may leave here (`None`: more than
    /// `usize::MAX`).
    pub fn total(&self) -> Option<usize> {
        self.total
    }

    /// Whether [`states`](Self::states) is a sample rather than all of them.
    pub fn sampled(&self) -> bool {
        self.total != Some(self.choices.len())
    }

    /// The states chosen: all of them, or the sample.
    pub fn states(&self) -> impl Iterator<Item = CrashState> + '_ {
        self.choices.iter().map(|choice| CrashState {
            model: Arc::clone(&self.model),
            dimensions: Arc::clone(&self.dimensions),
            choice: choice.clone(),
        })
    }
}

/// One disk state a power cut may leave.
#[derive(Debug, Clone)]
pub struct CrashState {
    model: Arc<Model>,
    dimensions: Arc<Vec<Dimension>>,
    choice: Vec<usize>,
}

impl CrashState {
    /// What this state kept and lost, for a failure message: for each directory with
    /// pending changes how many reached the disk, for each file with unsynced data how
    /// many bytes.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .dimensions
            .iter()
            .zip(&self.choice)
            .map(|(dimension, &choice)| match dimension {
                Dimension::Directory { ino, changes } => {
                    format!("directory #{ino}: {choice} of {changes} changes")
                }
                Dimension::File { ino, lengths } => {
                    format!(
                        "file #{ino}: {} of {} bytes",
                        lengths[choice],
                        lengths[lengths.len() - 1]
                    )
                }
            })
            .collect();
        if parts.is_empty() {
            "everything was durable".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Writes the state out as a real directory tree under `into` (an empty
    /// directory), hard links included, as a reboot would find it.
    ///
    /// # Errors
    /// Writing the tree.
    pub fn materialise(&self, into: &Path) -> io::Result<()> {
        let mut applied: BTreeMap<Ino, usize> = BTreeMap::new();
        let mut lengths: BTreeMap<Ino, usize> = BTreeMap::new();
        for (dimension, &choice) in self.dimensions.iter().zip(&self.choice) {
            match dimension {
                Dimension::Directory { ino, .. } => {
                    applied.insert(*ino, choice);
                }
                Dimension::File {
                    ino,
                    lengths: options,
                } => {
                    lengths.insert(*ino, options[choice]);
                }
            }
        }
        let mut written: BTreeMap<Ino, PathBuf> = BTreeMap::new();
        let mut pending = vec![(ROOT, into.to_owned())];
        let mut visited = BTreeSet::from([ROOT]);
        while let Some((dir, path)) = pending.pop() {
            let entries = self.model.entries(dir, applied.get(&dir).copied().unwrap_or(0));
            for (name, ino) in entries {
                let child = path.join(&name);
                match &self.model.nodes[ino] {
                    Node::Dir { mode, .. } => {
                        // A directory named twice (never made by the engine) is written once.
                        if visited.insert(ino) {
                            std::fs::create_dir(&child)?;
                            set_mode(&child, *mode | 0o700)?;
                            pending.push((ino, child));
                        }
                    }
                    Node::File { data, synced, mode } => match written.get(&ino) {
                        Some(first) => std::fs::hard_link(first, &child)?,
                        None => {
                            let length = lengths.get(&ino).copied().unwrap_or(*synced);
                            std::fs::write(&child, &data[..length])?;
                            set_mode(&child, *mode)?;
                            written.insert(ino, child);
                        }
                    },
                }
            }
        }
        for (relative, bytes) in &self.model.external {
            let path = into.join(relative);
            if path.parent().is_some_and(Path::is_dir) {
                std::fs::write(&path, bytes)?;
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// A small, seeded generator, so a sample of crash states can be drawn again from its
/// printed seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &CrashFs, path: &Path, bytes: &[u8], sync: bool) {
        let mut file = fs.create_new(path, 0o600).unwrap();
        file.write_all(bytes).unwrap();
        if sync {
            file.sync_all().unwrap();
        }
    }

    fn trees(fs: &CrashFs, point: usize) -> BTreeSet<Vec<(String, Vec<u8>)>> {
        let states = fs.crash_states(point, 1000, 1);
        assert!(!states.sampled());
        states
            .states()
            .map(|state| {
                let into = tempfile::tempdir().unwrap();
                state.materialise(into.path()).unwrap();
                let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(into.path())
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect();
                files.sort();
                files
            })
            .collect()
    }

    fn tree(files: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        files.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect()
    }

    #[test]
    fn a_rename_without_a_directory_fsync_may_be_lost_and_with_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("state"), b"old").unwrap();
        let fs = CrashFs::new(root.path()).unwrap();
        write(&fs, &root.path().join("temp"), b"new", true);
        fs.rename(&root.path().join("temp"), &root.path().join("state"))
            .unwrap();
        let after_rename = fs.operations();
        fs.sync_dir(root.path()).unwrap();

        let possible = trees(&fs, after_rename);
        assert!(possible.contains(&tree(&[("state", b"old")])), "{possible:?}");
        assert!(possible.contains(&tree(&[("state", b"old"), ("temp", b"new")])));
        assert!(possible.contains(&tree(&[("state", b"new")])));
        assert_eq!(possible.len(), 3, "{possible:?}");
        assert_eq!(
            trees(&fs, fs.operations()),
            BTreeSet::from([tree(&[("state", b"new")])])
        );
    }

    #[test]
    fn unsynced_data_is_kept_dropped_or_torn_at_a_sector() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("log"), b"first\n").unwrap();
        let fs = CrashFs::new(root.path()).unwrap();
        let mut log = fs.open_append(&root.path().join("log"), 0o600).unwrap();
        let long = vec![b'x'; 1100];
        log.write_all(&long).unwrap();
        let lengths: BTreeSet<usize> = trees(&fs, fs.operations())
            .into_iter()
            .map(|files| files[0].1.len())
            .collect();
        assert_eq!(lengths, BTreeSet::from([6, 512, 1024, 1106]));
        log.sync_all().unwrap();
        let lengths: BTreeSet<usize> = trees(&fs, fs.operations())
            .into_iter()
            .map(|files| files[0].1.len())
            .collect();
        assert_eq!(lengths, BTreeSet::from([1106]));
    }

    #[test]
    fn forgotten_fsyncs_are_not_recorded() {
        let root = tempfile::tempdir().unwrap();
        let fs = CrashFs::new(root.path())
            .unwrap()
            .forgetting(Forget::FileSyncsOf("audit".to_owned()))
            .forgetting(Forget::DirectorySyncs);
        write(&fs, &root.path().join("audit.log"), b"record", true);
        write(&fs, &root.path().join("state"), b"data", true);
        fs.sync_dir(root.path()).unwrap();
        let possible = trees(&fs, fs.operations());
        assert!(possible.contains(&tree(&[])), "the directory fsync was forgotten");
        assert!(possible.contains(&tree(&[("audit.log", b""), ("state", b"data")])));
        assert!(!possible.contains(&tree(&[("audit.log", b"record"), ("state", b"")])));
    }

    #[test]
    fn hard_links_stay_links_and_a_sample_is_drawn_from_its_seed() {
        let root = tempfile::tempdir().unwrap();
        let fs = CrashFs::new(root.path()).unwrap();
        write(&fs, &root.path().join("a"), b"one", true);
        fs.hard_link(&root.path().join("a"), &root.path().join("b"))
            .unwrap();
        fs.sync_dir(root.path()).unwrap();
        let states = fs.crash_states(fs.operations(), 10, 7);
        let into = tempfile::tempdir().unwrap();
        states.states().next().unwrap().materialise(into.path()).unwrap();
        let a = std::fs::symlink_metadata(into.path().join("a")).unwrap();
        let b = std::fs::symlink_metadata(into.path().join("b")).unwrap();
        assert_eq!(
            FileIdentity::of(&into.path().join("a"), &a).unwrap().ino,
            FileIdentity::of(&into.path().join("b"), &b).unwrap().ino
        );

        for n in 0..12 {
            write(&fs, &root.path().join(format!("f{n}")), b"z", false);
        }
        let first = fs.crash_states(fs.operations(), 20, 42);
        let again = fs.crash_states(fs.operations(), 20, 42);
        assert!(first.sampled());
        assert_eq!(first.choices, again.choices);
        assert_eq!(first.choices.len(), 20);
    }
}
