//! Faults of the file engine's own mechanisms that the transaction loop does not reach:
//! a store directory that is not one, the write lock held by a process that hangs or
//! whose directory cannot be created, a codec that cannot encode, a backup file swapped
//! for another one, a backup an index rebuild cannot read.
//!
//! What must hold: an error that names the file and what went wrong, the last good
//! state still there, and no temp file left.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{add_step, copy_tree, index_of, seeded_project, temp_files_under, yaml_store};
use checklist_backends::fault::{AfterFault, FaultyFs};
use checklist_backends::vfs::RealFs;
use checklist_backends::{Codec, CodecError, FileLockProvider, FileStore, FileStoreOptions, YamlCodec};
use checklist_core::prelude::*;
use checklist_core::recovery::Recovery;
use checklist_core::{ChecklistState, CorruptionKind, Error, Expectation, RollingBackups, StateStoreExt};
use serde_json::Value;

#[test]
fn a_store_directory_that_is_a_file_is_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    let not_a_dir = root.path().join(".checklist");
    std::fs::write(&not_a_dir, b"a file where the store directory should be").unwrap();
    let error = FileStore::open(&not_a_dir, YamlCodec, FileStoreOptions::default()).unwrap_err();
    match &error {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &not_a_dir);
            assert_eq!(source.kind(), io::ErrorKind::NotADirectory);
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("not a directory"), "{error}");
    assert_eq!(
        std::fs::read(&not_a_dir).unwrap(),
        b"a file where the store directory should be"
    );
}

#[tokio::test]
async fn a_store_directory_that_cannot_be_inspected_is_an_io_error_naming_it() {
    let (_root, dir) = seeded_project().await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    faulty.fail_at(0, io::ErrorKind::PermissionDenied, AfterFault::Recover);
    let error = FileStore::open_with_vfs(
        &dir,
        YamlCodec,
        FileStoreOptions::default(),
        Arc::new(faulty.clone()),
    )
    .unwrap_err();
    assert_eq!(faulty.log()[0].path, dir, "{:?}", faulty.log());
    match &error {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &dir);
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("{other:?}"),
    }
}

/// The write lock makes check-and-rename atomic across processes; a process that keeps
/// it (hung on a slow disk) makes a writer give up after its patience, naming the write
/// lock, with the state untouched.
#[tokio::test]
async fn a_write_lock_held_too_long_fails_the_write_and_names_it() {
    let (_root, dir) = seeded_project().await;
    let before = std::fs::read(dir.join("state.yaml")).unwrap();
    let write_lock = dir.join(".locks/write.lock");
    let wedged = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&write_lock)
        .unwrap();
    wedged.lock().unwrap();

    let options = FileStoreOptions {
        write_lock_timeout: Duration::from_millis(200),
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(&dir, YamlCodec, options).unwrap();
    let mut state = store.read_existing().await.unwrap();
    add_step(&mut state, "blocked");
    let error = store
        .commit(&state, Expectation::Revision(state.revision))
        .await
        .unwrap_err();
    match &error {
        Error::LockTimeout { resource, .. } => assert_eq!(resource, &write_lock),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("write.lock"), "{error}");
    assert_eq!(std::fs::read(dir.join("state.yaml")).unwrap(), before);
    assert!(temp_files_under(&dir).is_empty());

    drop(wedged);
    store
        .commit(&state, Expectation::Revision(state.revision))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_write_lock_directory_that_cannot_be_created_fails_the_write_and_names_it() {
    let (_root, dir) = seeded_project().await;
    std::fs::remove_dir_all(dir.join(".locks")).unwrap();
    let before = std::fs::read(dir.join("state.yaml")).unwrap();
    let mut state = yaml_store(&dir, Arc::new(RealFs)).read_existing().await.unwrap();
    add_step(&mut state, "no-locks-dir");
    let write = |store: FileStore<YamlCodec>, state: ChecklistState| async move {
        store.commit(&state, Expectation::Revision(state.revision)).await
    };
    // Where in a write the engine creates the missing `.locks/`.
    let index = operation_index(&dir, "create directory", ".locks", |store| {
        let state = state.clone();
        async move {
            write(store, state).await.unwrap();
        }
    })
    .await;
    let (store, faulty) = faulty_store(&dir);
    faulty.fail_at(index, io::ErrorKind::PermissionDenied, AfterFault::Recover);
    let error = write(store.clone(), state.clone()).await.unwrap_err();
    match &error {
        Error::Io { path, op, .. } => {
            assert_eq!(path, &dir.join(".locks"));
            assert_eq!(*op, "create the directory");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.join("state.yaml")).unwrap(), before);
    assert!(temp_files_under(&dir).is_empty());
    write(store, state).await.unwrap();
}

/// A YAML store on `dir` whose I/O goes through a [`FaultyFs`], and the seam, with the
/// operations of opening it already forgotten.
fn faulty_store(dir: &Path) -> (FileStore<YamlCodec>, FaultyFs) {
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let store = yaml_store(dir, Arc::new(faulty.clone()));
    faulty.heal();
    (store, faulty)
}

/// The index of the operation `name` on `path` (relative to the store) among those that
/// `run` makes on a copy of the store `dir`: a dry run, so that a fault can be aimed at
/// exactly that operation.
async fn operation_index<Run, Done>(dir: &Path, name: &str, path: &str, run: Run) -> usize
where
    Run: FnOnce(FileStore<YamlCodec>) -> Done,
    Done: Future<Output = ()>,
{
    let copy_root = tempfile::tempdir().unwrap();
    let copy = copy_root.path().join(".checklist");
    copy_tree(dir, &copy);
    let (store, probe) = faulty_store(&copy);
    run(store).await;
    index_of(&probe.log(), name, &copy.join(path))
}

/// A codec that reads YAML but cannot write anything.
#[derive(Debug, Clone, Copy)]
struct ReadOnlyCodec;

impl Codec for ReadOnlyCodec {
    fn name(&self) -> &'static str {
        "read-only"
    }
    fn extension(&self) -> &'static str {
        YamlCodec.extension()
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        YamlCodec.decode(bytes)
    }
    fn encode(&self, _document: &Value) -> Result<Vec<u8>, CodecError> {
        Err(CodecError("this format cannot hold the document".into()))
    }
}

#[tokio::test]
async fn a_codec_that_cannot_encode_fails_the_write_by_name_and_writes_nothing() {
    let (_root, dir) = seeded_project().await;
    let before = std::fs::read(dir.join("state.yaml")).unwrap();
    let store = FileStore::open(&dir, ReadOnlyCodec, FileStoreOptions::default()).unwrap();
    let mut state = store.read_existing().await.unwrap();
    add_step(&mut state, "unwritable");
    let error = store
        .commit(&state, Expectation::Revision(state.revision))
        .await
        .unwrap_err();
    match &error {
        Error::SchemaInvalid { path, message, .. } => {
            assert_eq!(path, &dir.join("state.yaml"));
            assert!(
                message.contains("read-only codec could not encode it"),
                "{message}"
            );
            assert!(
                message.contains("this format cannot hold the document"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.join("state.yaml")).unwrap(), before);
    assert!(temp_files_under(&dir).is_empty());
}

/// Each backup file verifies on its own; one copied over another still must not be
/// restored as the revision the index lists for it.
#[tokio::test]
async fn a_backup_file_swapped_for_another_backup_is_refused() {
    let (_root, dir) = seeded_project().await;
    let store = yaml_store(&dir, Arc::new(RealFs));
    let recovery = Recovery::new(
        store.clone(),
        FileLockProvider::new(&dir),
        RollingBackups::keep(5),
    );
    for id in ["a", "b"] {
        let mut state = store.read_existing().await.unwrap();
        add_step(&mut state, id);
        store
            .commit(&state, Expectation::Revision(state.revision))
            .await
            .unwrap();
        recovery.backup_now("test").await.unwrap();
    }
    let backups = store.list_backups().await.unwrap();
    let newer = backups.iter().max_by_key(|b| b.revision).unwrap();
    let older = backups.iter().find(|b| b.revision < newer.revision).unwrap();
    let backup_dir = dir.join(".backup");
    std::fs::copy(backup_dir.join(&older.location), backup_dir.join(&newer.location)).unwrap();
    let state_before = std::fs::read(dir.join("state.yaml")).unwrap();

    let error = store.read_verified_backup(&newer.id).await.unwrap_err();
    match &error {
        Error::Corrupted { kind, path, detail } => {
            assert_eq!(*kind, CorruptionKind::ChecksumMismatch);
            assert!(path.to_string_lossy().contains(&newer.id), "{}", path.display());
            assert!(
                detail.contains(&format!("listed as revision {}", newer.revision)),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(recovery.restore(&newer.id).await.is_err());
    assert_eq!(std::fs::read(dir.join("state.yaml")).unwrap(), state_before);
}

/// A backup the rebuild cannot read this time (permission refused) is not dropped from
/// the index it writes: the rebuild fails naming the file, and works once it can read.
#[tokio::test]
async fn an_index_rebuild_that_cannot_read_a_backup_fails_and_drops_nothing() {
    let (_root, dir) = seeded_project().await;
    let store = yaml_store(&dir, Arc::new(RealFs));
    let backup = store
        .list_backups()
        .await
        .unwrap()
        .pop()
        .expect("the seeded project has a backup");
    let backup_path = dir.join(".backup").join(&backup.location);
    std::fs::remove_file(dir.join(".backup/manifest.yaml")).unwrap();

    let (store, faulty) = faulty_store(&dir);
    let backup_file = format!(".backup/{}", backup.location);
    let read = operation_index(&dir, "read", &backup_file, |store| async move {
        store.rebuild_backup_index().await.unwrap();
    })
    .await;
    faulty.fail_at(read, io::ErrorKind::PermissionDenied, AfterFault::Recover);
    let error = store.rebuild_backup_index().await.unwrap_err();
    match &error {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &backup_path);
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.join(".backup/manifest.yaml").exists(),
        "an index without the backup was written"
    );
    faulty.heal();
    let rebuilt = store.rebuild_backup_index().await.unwrap();
    assert_eq!(
        rebuilt.kept.iter().map(|b| &b.id).collect::<Vec<_>>(),
        [&backup.id]
    );
}

/// A file system that refuses every hard link as FAT and exFAT do (`EPERM`), and is
/// otherwise the real one: the seam version of the FUSE test in
/// `cli/tests/integration/environment_faults.rs`, so it runs on every machine.
#[derive(Debug)]
struct NoHardLinks;

impl checklist_backends::vfs::Vfs for NoHardLinks {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        RealFs.read(path, limit)
    }
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn checklist_backends::vfs::VfsFile>> {
        RealFs.create_new(path, mode)
    }
    fn open_append(&self, path: &Path, mode: u32) -> io::Result<Box<dyn checklist_backends::vfs::VfsFile>> {
        RealFs.open_append(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        RealFs.create_dir(path, mode)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_dir(path)
    }
    fn metadata(&self, path: &Path) -> io::Result<std::fs::Metadata> {
        RealFs.metadata(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        RealFs.list_dir(dir)
    }
    fn open_lock_file(&self, path: &Path) -> io::Result<std::fs::File> {
        RealFs.open_lock_file(path)
    }
    fn hard_link(&self, _original: &Path, _link: &Path) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(1))
    }
}

/// Init on a file system without hard links refuses, says what is missing and where to
/// check a file system, and leaves no `.checklist/` behind; a store already on one gets
/// the same sentence from its first write, never "permission denied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_without_hard_links_is_refused_at_init_and_named_on_write() {
    use checklist_backends::{InitOptions, builtin_registry_with_vfs, init_project_with_vfs};
    use checklist_core::LockProvider;
    let root = tempfile::tempdir().unwrap();
    let error = init_project_with_vfs(
        root.path(),
        &InitOptions::default(),
        &builtin_registry_with_vfs(Arc::new(NoHardLinks)),
        Arc::new(NoHardLinks),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, Error::FileSystemLacks { feature, .. } if feature == "hard links"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("keep the store on a file system that does"),
        "{message}"
    );
    assert!(
        !root.path().join(".checklist").exists(),
        "init left a store behind"
    );

    let (_root, dir) = seeded_project().await;
    let locks = FileLockProvider::with_vfs(&dir, Arc::new(NoHardLinks));
    let error = locks
        .acquire(&checklist_core::LockRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::FileSystemLacks { .. }), "{error:?}");
    assert!(!error.to_string().contains("permission denied"), "{error}");
    assert_eq!(temp_files_under(&dir), Vec::<String>::new());
    assert!(!dir.join(".lock").exists());
}
