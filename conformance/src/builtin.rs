//! Subjects for the built-in backends (`yaml`, `json`, `memory`): the one factory
//! shared by this crate's own tests and by `checklist conformance`, which runs the suite
//! on a file system of the user's choosing.
//!
//! ```
//! use checklist_conformance::builtin::{BuiltinBackend, subject_for};
//! use checklist_core::config::Durability;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let subject = subject_for(BuiltinBackend::Json, dir.path(), Durability::Full).unwrap();
//! assert_eq!(subject.store.info().backend.as_str(), "json");
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;

use checklist_backends::{
    Codec, FileLockProvider, FileStore, FileStoreOptions, InProcessLockProvider, JsonCodec, MemoryStore,
    YamlCodec,
};
use checklist_core::config::Durability;
use checklist_core::{LockInfo, Result};

use crate::{Capabilities, RawAccess, Subject};

/// A backend that ships with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinBackend {
    /// `state.yaml` in a directory (`checklist_backends::YamlFileStore`).
    Yaml,
    /// `state.json` in a directory (`checklist_backends::JsonFileStore`).
    Json,
    /// A document in memory ([`MemoryStore`]); nothing touches the disk.
    Memory,
}

impl BuiltinBackend {
    /// Every built-in backend.
    pub const ALL: [Self; 3] = [Self::Yaml, Self::Json, Self::Memory];

    /// Its registered name, as `config.yaml`'s `backend.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Memory => "memory",
        }
    }

    /// Whether it keeps its state on disk (in the directory given to [`subject_for`]).
    pub fn is_on_disk(self) -> bool {
        !matches!(self, Self::Memory)
    }
}

impl fmt::Display for BuiltinBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a built-in backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotBuiltin(pub String);

impl fmt::Display for NotBuiltin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a built-in backend (yaml, json, memory); a custom backend is checked by expanding \
             checklist_conformance::conformance_tests! in its own tests",
            self.0
        )
    }
}

impl std::error::Error for NotBuiltin {}

impl FromStr for BuiltinBackend {
    type Err = NotBuiltin;

    fn from_str(name: &str) -> std::result::Result<Self, NotBuiltin> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| NotBuiltin(name.to_owned()))
    }
}

/// A fresh [`Subject`] for `backend` whose files live in `dir`, an existing, empty
/// directory the caller owns (and removes afterwards); `dir` plays the part of
/// `.checklist/`. Each case needs its own: call this once per case, with a new
/// directory each time.
///
/// File backends get [`Capabilities::file_backend`] with every hook the suite needs:
/// a second store and lock provider opened on `dir`, raw access to the state file and
/// to `.backup/manifest.yaml`, and planting a stale `.lock`. The memory backend ignores
/// `dir` and `durability`, and gets [`Capabilities::in_memory`].
///
/// Planting a stale lock runs the current executable once with `--list` (stdio
/// closed) and waits for it, to learn a pid that provably belongs to no process; any
/// executable that exits on an unknown or listing flag — a test harness, the
/// `checklist` binary — serves.
///
/// # Errors
/// As `FileStore::open`: `Error::NotInitialized` when `dir` does not exist,
/// `Error::Io` when it is not a directory, `Error::SymlinkRefused` for a link.
pub fn subject_for(backend: BuiltinBackend, dir: &Path, durability: Durability) -> Result<Subject> {
    match backend {
        BuiltinBackend::Yaml => file_subject(YamlCodec, dir, durability),
        BuiltinBackend::Json => file_subject(JsonCodec, dir, durability),
        BuiltinBackend::Memory => Ok(memory_subject()),
    }
}

/// A fresh [`Subject`] for a [`FileStore`] with `codec` in `dir` — a built-in file
/// backend, or a custom one that is a codec over the shared file engine (the TOML
/// example backend uses it) — with every hook the suite needs, as [`subject_for`]
/// describes.
///
/// # Errors
/// As `FileStore::open`.
pub fn file_subject<C: Codec + Clone>(codec: C, dir: &Path, durability: Durability) -> Result<Subject> {
    let options = FileStoreOptions {
        durability,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir, codec.clone(), options.clone())?;
    let state_path = store.state_path().to_owned();
    let dir: PathBuf = dir.to_owned();
    let subject = Subject::new(Arc::new(store), Arc::new(FileLockProvider::new(&dir)))
        .with_capabilities(Capabilities::file_backend())
        .reopen_with({
            let dir = dir.clone();
            // The first open succeeded on this directory; a second one failing means
            // the directory went away under the case, which the case reports.
            move || Arc::new(FileStore::open(&dir, codec.clone(), options.clone()).expect("reopen the store"))
        })
        .raw_access(RawAccess::file(state_path))
        .backup_index_access(RawAccess::file(dir.join(".backup").join("manifest.yaml")))
        .reopen_locks_with({
            let dir = dir.clone();
            move || Arc::new(FileLockProvider::new(&dir))
        })
        .plant_stale_lock_with(move |like| plant_stale_lock(&dir, like));
    Ok(subject)
}

fn memory_subject() -> Subject {
    let store = MemoryStore::new();
    let (for_reopen, for_read, for_write, for_remove) =
        (store.clone(), store.clone(), store.clone(), store.clone());
    let locks = InProcessLockProvider::new("memory:conformance");
    let other_locks = locks.clone();
    Subject::new(Arc::new(store), Arc::new(locks))
        .reopen_locks_with(move || Arc::new(other_locks.clone()))
        .with_capabilities(Capabilities::in_memory())
        .reopen_with(move || Arc::new(for_reopen.clone()))
        .raw_access(
            RawAccess::new(
                move || Ok(for_read.raw()),
                move |bytes| {
                    for_write.replace_raw(bytes.to_vec());
                    Ok(())
                },
            )
            .removable(move || {
                for_remove.remove_raw();
                Ok(())
            }),
        )
}

/// Writes `dir/.lock` as schemas/lock.schema.json describes it, held by `like`'s host
/// and user but a pid that no longer exists: that of a run of the current executable
/// with `--list` (stdio closed), waited for. For [`Subject::plant_stale_lock_with`] of
/// any backend that uses [`FileLockProvider`].
///
/// # Errors
/// Spawning or waiting for the child, or writing the file.
pub fn plant_stale_lock(dir: &Path, like: &LockInfo) -> io::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--list")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let dead_pid = child.id();
    child.wait()?;
    let now = chrono::Utc::now();
    let lock = serde_json::json!({
        "version": "1.0.0",
        "lockId": "0badc0de-0000-4000-8000-000000000000",
        "metadata": {"pid": dead_pid, "ppid": null, "hostname": like.hostname, "user": like.user,
                     "processStartedAt": null},
        "timing": {"acquiredAt": now, "expiresAt": now + chrono::Duration::seconds(30), "renewedAt": now},
        "operation": {"type": "write", "stackTrace": null},
        "concurrency": {"waitingProcesses": []}
    });
    std::fs::write(dir.join(".lock"), serde_json::to_vec_pretty(&lock)?)
}
