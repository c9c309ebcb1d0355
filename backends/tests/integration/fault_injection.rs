//! The I/O-error loop (docs/decisions/0015-hostile-input-and-environment-faults.md): for every operation index N of a save (and of an
//! init), fail operation N and check that the store holds the old state or the new
//! one — never a torn file, never no file — and that no temp file survives the next
//! successful save.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::Arc;

use crate::common::{add_step, state_with_steps, temp_files};
use checklist_backends::fault::{AfterFault, FaultyFs};
use checklist_backends::vfs::{RealFs, Vfs};
use checklist_backends::{
    Codec, FileStore, FileStoreOptions, InitOptions, JsonCodec, Layout, OpenOptions, YamlCodec,
    builtin_registry_with_vfs, init_project_with_vfs, open_project,
};
use checklist_core::Expectation;
use checklist_core::prelude::*;

async fn save_loop<C: Codec + Clone>(codec: C, after: AfterFault) -> BTreeSet<&'static str> {
    let mut failed_ops = BTreeSet::new();
    for n in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let setup = FileStore::open(dir.path(), codec.clone(), FileStoreOptions::default()).unwrap();
        setup
            .commit(&state_with_steps(3), Expectation::Absent)
            .await
            .unwrap();
        let old = setup.read().await.unwrap().unwrap();

        let faulty = FaultyFs::new(Arc::new(RealFs));
        let store = FileStore::open_with_vfs(
            dir.path(),
            codec.clone(),
            FileStoreOptions::default(),
            Arc::new(faulty.clone()),
        )
        .unwrap();
        let mut new = old.clone();
        add_step(&mut new, "the-new-step");

        faulty.fail_at(n, ErrorKind::StorageFull, after);
        let result = store.commit(&new, Expectation::current(&old)).await;
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(n >= 7, "a save should take several I/O operations, saw {n}");
            return failed_ops;
        }
        let failed = faulty.log().into_iter().find(|op| op.failed).unwrap();
        failed_ops.insert(failed.name);

        let observer = FileStore::open(dir.path(), codec.clone(), FileStoreOptions::default()).unwrap();
        let seen = observer
            .read()
            .await
            .unwrap_or_else(|e| panic!("torn state after failing {failed:?}: {e}"))
            .unwrap_or_else(|| panic!("no state after failing {failed:?}"));
        match &result {
            Ok(committed) => {
                assert_eq!(seen.revision, 2, "failing {failed:?}");
                assert_eq!(committed.revision, 2);
                assert_eq!(seen.completed_steps, new.completed_steps);
            }
            Err(error) => {
                assert_eq!(
                    seen, old,
                    "failing {failed:?} must leave the old state; error: {error}"
                );
                let message = error.to_string();
                assert!(
                    message.contains(dir.path().to_str().unwrap()),
                    "error must name the file: {message}"
                );
            }
        }

        faulty.heal();
        let next = match after {
            AfterFault::Recover => store,
            AfterFault::Crash => {
                FileStore::open(dir.path(), codec.clone(), FileStoreOptions::default()).unwrap()
            }
        };
        let current = next.read().await.unwrap().unwrap();
        let mut newer = current.clone();
        add_step(&mut newer, "after-the-fault");
        next.commit(&newer, Expectation::current(&current)).await.unwrap();
        assert_eq!(
            temp_files(dir.path()),
            Vec::<String>::new(),
            "temp files left after failing {failed:?} and saving again"
        );
    }
    unreachable!()
}

fn assert_covers_every_kind_of_operation(ops: &BTreeSet<&'static str>) {
    for expected in [
        "open lock file",
        "read",
        "create",
        "write",
        "fsync",
        "rename",
        "fsync directory",
    ] {
        assert!(
            ops.contains(expected),
            "the loop never failed a {expected}: {ops:?}"
        );
    }
}

#[tokio::test]
async fn yaml_save_survives_a_transient_failure_of_every_operation() {
    assert_covers_every_kind_of_operation(&save_loop(YamlCodec, AfterFault::Recover).await);
}

#[tokio::test]
async fn yaml_save_survives_a_crash_at_every_operation() {
    assert_covers_every_kind_of_operation(&save_loop(YamlCodec, AfterFault::Crash).await);
}

#[tokio::test]
async fn json_save_survives_a_transient_failure_of_every_operation() {
    assert_covers_every_kind_of_operation(&save_loop(JsonCodec, AfterFault::Recover).await);
}

#[tokio::test]
async fn json_save_survives_a_crash_at_every_operation() {
    assert_covers_every_kind_of_operation(&save_loop(JsonCodec, AfterFault::Crash).await);
}

#[tokio::test]
async fn init_either_completes_or_leaves_nothing_behind() {
    let options = InitOptions::default();
    let mut failed_ops = BTreeSet::new();
    for n in 0.. {
        let root = tempfile::tempdir().unwrap();
        let faulty = FaultyFs::new(Arc::new(RealFs));
        faulty.fail_at(n, ErrorKind::PermissionDenied, AfterFault::Recover);
        let vfs: Arc<dyn Vfs> = Arc::new(faulty.clone());
        let registry = builtin_registry_with_vfs(Arc::clone(&vfs));
        let result = init_project_with_vfs(root.path(), &options, &registry, vfs).await;
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(n > 20, "init should take many operations, saw {n}");
            break;
        }
        let failed = faulty.log().into_iter().find(|op| op.failed).unwrap();
        failed_ops.insert(failed.name);
        let layout = Layout::for_project(root.path());
        match result {
            Err(error) => {
                assert!(
                    !layout.dir().exists(),
                    "failing {failed:?} left {} behind",
                    layout.dir().display()
                );
                assert!(
                    error.to_string().contains(root.path().to_str().unwrap()),
                    "the error must name the path: {error}"
                );
            }
            Ok(_) => {
                // Only a durability step or a best-effort clean-up may fail without
                // failing init: the directory fsync or listing, the check before it that
                // the directory is no symbolic link, the release of the lock the
                // first write holds (its files in .locks/; a lock left behind is stale
                // at once, which the acquire below checks), or the parse cache in
                // .cache/ (derived data: only ever saves time).
                let checked_dir = failed.name == "stat" && failed.path.is_dir();
                let lock_clean_up = failed.path.starts_with(layout.dir().join(".locks"))
                    || failed.path == layout.dir().join(".lock");
                let parse_cache = failed.path.starts_with(layout.dir().join(".cache"));
                assert!(
                    checked_dir
                        || lock_clean_up
                        || parse_cache
                        || ["fsync directory", "list directory"].contains(&failed.name),
                    "init succeeded despite failing {failed:?}"
                );
                let opened = open_project(root.path(), &registry, &OpenOptions::default())
                    .await
                    .unwrap();
                assert_eq!(opened.backend.store.read().await.unwrap().unwrap().revision, 1);
                let patient = checklist_core::LockRequest {
                    timeout: std::time::Duration::from_secs(2),
                    ..checklist_core::LockRequest::default()
                };
                opened
                    .backend
                    .locks
                    .acquire(&patient)
                    .await
                    .unwrap_or_else(|e| panic!("after failing {failed:?}, the lock is stuck: {e}"));
                for path in [
                    layout.config(),
                    layout.history(),
                    layout.metrics(),
                    layout.backup_manifest(),
                ] {
                    assert!(path.is_file(), "{} missing", path.display());
                }
            }
        }
    }
    for expected in ["create directory", "create", "write", "rename"] {
        assert!(
            failed_ops.contains(expected),
            "init loop never failed a {expected}: {failed_ops:?}"
        );
    }
}
