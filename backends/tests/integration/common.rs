//! Helpers shared by the backends' integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use checklist_backends::fault::Operation;
use checklist_backends::vfs::{RealFs, Vfs};
use checklist_backends::{
    FileLockProvider, FileStore, FileStoreOptions, InitOptions, YamlCodec, builtin_registry, init_project,
};
use checklist_core::RollingBackups;
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};

pub use checklist_conformance::testkit::{add_step, state_with_steps};

/// Every path under `root`, `root` included, with its bytes (`None` for a directory),
/// without following symbolic links.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut all = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            all.insert(path.clone(), None);
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else {
            all.insert(path.clone(), Some(std::fs::read(&path).unwrap()));
        }
    }
    all
}

/// Names of the files in `dir` that look like temp files.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Every file under `dir`, at any depth, whose name marks it as the temp file of an
/// atomic write (`.<name>.tmp-<pid>-<nonce>`); none when `dir` is gone.
pub fn temp_files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if entry.file_name().to_string_lossy().contains(".tmp-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

/// The coordinator the fault tests drive: a YAML store and a file lock on `vfs`, a
/// 2 s lock timeout, and a backup every commit pruned to one, so pruning runs inside
/// every faulted transaction too.
pub type FaultCoordinator = TransactionCoordinator<FileStore<YamlCodec>, FileLockProvider, RollingBackups>;

/// A YAML store with the default options on the store directory `dir`, doing its I/O
/// through `vfs`.
pub fn yaml_store(dir: &Path, vfs: Arc<dyn Vfs>) -> FileStore<YamlCodec> {
    FileStore::open_with_vfs(dir, YamlCodec, FileStoreOptions::default(), vfs).unwrap()
}

/// A [`FaultCoordinator`] on the store directory `dir`.
pub fn coordinator(dir: &Path, vfs: Arc<dyn Vfs>) -> FaultCoordinator {
    let store = yaml_store(dir, Arc::clone(&vfs));
    let locks = FileLockProvider::with_vfs(dir, vfs);
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 2_000;
    TransactionCoordinator::with_options(store, locks, RollingBackups::keep(1), options)
}

/// A new project whose state holds three steps; returns its root (delete it by
/// dropping) and its store directory.
pub async fn seeded_project() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    init_project(root.path(), &InitOptions::default(), &builtin_registry())
        .await
        .unwrap();
    let dir = root.path().join(".checklist");
    coordinator(&dir, Arc::new(RealFs))
        .transact("seed", |state| {
            *state = state_with_steps(3);
            Ok(())
        })
        .await
        .unwrap();
    (root, dir)
}

/// The index of the first operation `name` on `path` in `log` (the log of a dry run, so
/// that a fault can be aimed at exactly that operation).
pub fn index_of(log: &[Operation], name: &str, path: &Path) -> usize {
    log.iter()
        .position(|op| op.name == name && op.path == path)
        .unwrap_or_else(|| panic!("no {name} of {} in {log:?}", path.display()))
}

/// A new project whose store is of `backend`, initialised with the defaults; delete it
/// by dropping.
pub async fn project_of(backend: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let options = InitOptions {
        backend: Some(backend.to_owned()),
        ..InitOptions::default()
    };
    init_project(root.path(), &options, &builtin_registry())
        .await
        .unwrap();
    root
}

/// Copies the tree at `from` to `to`, files and directories (no links).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
