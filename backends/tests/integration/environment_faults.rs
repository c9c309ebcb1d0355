//! Environment faults through the [`FaultyFs`] seam: the kernel's own error numbers
//! for a full disk (`ENOSPC`), a read-only file system (`EROFS`) and a refused
//! permission (`EACCES`) at every I/O operation of a transaction, and the store
//! deleted under a running command.
//!
//! Each failure must come back as one sentence that names a file of the store and
//! says what to do, leave the last good state in place and loadable, and leave no
//! temp file. The real-kernel versions of these faults (a full tmpfs, a read-only
//! mount, a user without access) run the binary in `cli/tests/integration/environment_faults.rs`.
//!
//! Unix only: the injected numbers are Unix errno values (Windows reports a full disk
//! as `ERROR_DISK_FULL`, which std maps to the same `StorageFull` kind and so to the
//! same advice).
#![cfg(unix)]

use std::sync::Arc;

use checklist_backends::fault::{AfterFault, FaultyFs, Operation};
use checklist_backends::vfs::RealFs;
use checklist_backends::{FileLockProvider, FileStore, FileStoreOptions, YamlCodec};
use std::os::unix::fs::FileExt;

use crate::common::{add_step, coordinator, seeded_project, temp_files_under};
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Error, LockProvider};
use rustix::io::Errno;

fn same_content(a: &ChecklistState, b: &ChecklistState) -> bool {
    a.completed_steps == b.completed_steps && a.active_instance == b.active_instance
}

/// Whether the state file was renamed into place before operation `index`.
fn renamed_before(log: &[Operation], index: usize) -> bool {
    log.iter()
        .any(|op| op.index < index && op.name == "rename" && op.path.ends_with("state.yaml"))
}

/// The advice each error number's message must carry.
fn advice(errno: Errno) -> &'static str {
    if errno == Errno::NOSPC {
        "free space and run the command again"
    } else if errno == Errno::ROFS {
        "the file system is read-only"
    } else {
        "permission denied: run as the user who owns .checklist/"
    }
}

/// Fails every operation of a transaction in turn with `errno`, as the kernel would.
async fn every_operation_fails_cleanly_with(errno: Errno) {
    let mut failures = 0;
    for n in 0.. {
        let (_root, dir) = seeded_project().await;
        let state_path = dir.join("state.yaml");
        let old_bytes = std::fs::read(&state_path).unwrap();
        let old = coordinator(&dir, Arc::new(RealFs)).read().await.unwrap();

        let faulty = FaultyFs::new(Arc::new(RealFs));
        let tx = coordinator(&dir, Arc::new(faulty.clone()));
        faulty.fail_at_os_error(n, errno.raw_os_error(), AfterFault::Recover);
        let result = tx
            .transact("add a step", |state| {
                add_step(state, "the-new-step");
                Ok(())
            })
            .await;
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(
                failures > 10,
                "{errno}: only {failures} operations failed the transaction"
            );
            return;
        }
        let faulty_log = faulty.log();
        let failed = faulty_log.iter().find(|op| op.failed).unwrap().clone();
        faulty.heal();
        drop(tx);

        let now = coordinator(&dir, Arc::new(RealFs))
            .read()
            .await
            .unwrap_or_else(|e| panic!("{errno} in {failed:?}: the state no longer loads: {e}"));
        match result {
            // A fault after the rename (the directory fsync, the audit commit, pruning)
            // does not undo a commit that already stands.
            Ok(_) => assert_eq!(now.completed_steps.len(), old.completed_steps.len() + 1),
            Err(error) => {
                failures += 1;
                let message = error.to_string();
                // Before the rename the file is untouched; after it (the audit of the
                // commit failed) the coordinator writes the old content back at a
                // higher revision, so the content, not the bytes, is what stands.
                assert!(
                    std::fs::read(&state_path).unwrap() == old_bytes
                        || renamed_before(&faulty_log, failed.index),
                    "{errno} in {failed:?}: the state file changed although the transaction failed with {message}"
                );
                assert!(
                    same_content(&now, &old),
                    "{errno} in {failed:?}: the transaction failed with {message} but its change stands"
                );
                let Error::Io { source, path, .. } = &error else {
                    panic!(
                        "{errno} in {failed:?}: expected an I/O error, got {}: {message}",
                        error.kind()
                    );
                };
                assert_eq!(source.raw_os_error(), Some(errno.raw_os_error()), "{message}");
                assert!(path.starts_with(&dir), "{errno} in {failed:?}: {message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
                assert!(
                    !path.to_string_lossy().contains(".tmp-"),
                    "name the target, not the temp: {message}"
                );
                assert!(
                    message.contains(advice(errno)),
                    "{errno} in {failed:?}: no advice: {message}"
                );
                assert!(matches!(error, Error::Io { .. }), "{message}");
            }
        }
        assert_eq!(
            temp_files_under(&dir),
            Vec::<String>::new(),
            "{errno} in {failed:?}"
        );
        // A lock whose release failed is left behind, but its holder's liveness lock
        // is gone, so the next command breaks it at once instead of waiting.
        coordinator(&dir, Arc::new(RealFs))
            .transact("after the fault", |state| {
                add_step(state, "after-the-fault");
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("{errno} in {failed:?}: the next transaction failed: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_any_operation_says_so_and_keeps_the_state() {
    every_operation_fails_cleanly_with(Errno::NOSPC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_system_at_any_operation_says_so_and_keeps_the_state() {
    every_operation_fails_cleanly_with(Errno::ROFS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_permission_at_any_operation_says_so_and_keeps_the_state() {
    every_operation_fails_cleanly_with(Errno::ACCESS).await;
}

/// Index of the first operation named `name` on a path containing `fragment` in a
/// clean run of one transaction on a fresh project.
async fn index_of(name: &str, fragment: &str) -> usize {
    let (_root, dir) = seeded_project().await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    coordinator(&dir, Arc::new(faulty.clone()))
        .transact("count", |state| {
            add_step(state, "counted");
            Ok(())
        })
        .await
        .unwrap();
    faulty
        .log()
        .iter()
        .find(|op| op.name == name && op.path.to_string_lossy().contains(fragment))
        .unwrap_or_else(|| panic!("no {name} of *{fragment}* in {:?}", faulty.log()))
        .index
}

/// The whole `.checklist/` directory removed between the transaction's read and its
/// write: the write fails naming the vanished store, and nothing half-recreates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_deleted_between_read_and_write_is_reported_not_recreated() {
    // The write takes `.locks/write.lock` and then compares the revision: strike
    // between the transaction's read and that.
    let write_lock = index_of("open lock file", "write.lock").await;
    let (_root, dir) = seeded_project().await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let tx = coordinator(&dir, Arc::new(faulty.clone()));
    let doomed = dir.clone();
    faulty.before(write_lock, move || std::fs::remove_dir_all(&doomed).unwrap());
    let error = tx
        .transact("add a step", |state| {
            add_step(state, "lost");
            Ok(())
        })
        .await
        .expect_err("a write into a deleted store must fail");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Io { .. } | Error::NotInitialized { .. }),
        "{message}"
    );
    assert!(message.contains(".checklist"), "{message}");
    assert!(
        message.contains("does not exist") || message.contains("no checklist store"),
        "the message must say what happened: {message}"
    );
    assert!(
        !dir.join("state.yaml").exists(),
        "the state was recreated in a deleted store"
    );
    assert_eq!(temp_files_under(&dir), Vec::<String>::new());
}

/// The state file alone removed between the read and the write: the compare-and-swap
/// sees that the state it read is gone and refuses the write as a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_deleted_between_read_and_write_is_a_conflict() {
    // The write takes `.locks/write.lock` and then compares the revision: strike
    // between the transaction's read and that.
    let write_lock = index_of("open lock file", "write.lock").await;
    let (_root, dir) = seeded_project().await;
    let state_path = dir.join("state.yaml");
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let tx = coordinator(&dir, Arc::new(faulty.clone()));
    let doomed = state_path.clone();
    faulty.before(write_lock, move || std::fs::remove_file(&doomed).unwrap());
    let error = tx
        .transact("add a step", |state| {
            add_step(state, "lost");
            Ok(())
        })
        .await
        .expect_err("a write over a deleted state must fail");
    let message = error.to_string();
    assert!(
        matches!(&error, Error::Conflict { found: None, .. }),
        "expected a conflict, got {}: {message}",
        error.kind()
    );
    assert!(message.contains(&state_path.display().to_string()), "{message}");
    assert!(!state_path.exists(), "the write went ahead over a deleted state");
    assert_eq!(temp_files_under(&dir), Vec::<String>::new());
}

/// The state file removed between two commands: the next read says there is no state
/// rather than inventing one, and the backups are still there to recover from.
#[tokio::test]
async fn the_state_file_deleted_between_commands_leaves_the_backups_to_recover_from() {
    let (_root, dir) = seeded_project().await;
    coordinator(&dir, Arc::new(RealFs))
        .transact("another", |state| {
            add_step(state, "another");
            Ok(())
        })
        .await
        .unwrap();
    std::fs::remove_file(dir.join("state.yaml")).unwrap();
    let store = FileStore::open(&dir, YamlCodec, FileStoreOptions::default()).unwrap();
    assert_eq!(store.read().await.unwrap(), None::<ChecklistState>);
    assert!(!store.list_backups().await.unwrap().is_empty());
}

/// A holder whose renewals fail (its disk filled up) is not kept alive by its
/// heartbeat: once its expiry passes without a renewal, another process takes the lock,
/// and the holder's `ensure_held` — what the coordinator asks before it writes —
/// reports `LockLost` instead of letting it write under someone else's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_renew_loses_the_lock_and_is_told() {
    let (_root, dir) = seeded_project().await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let holder = FileLockProvider::with_vfs(&dir, Arc::new(faulty.clone()));
    let request = checklist_core::LockRequest {
        expiry: std::time::Duration::from_millis(300),
        timeout: std::time::Duration::from_secs(5),
        retry_interval: std::time::Duration::from_millis(10),
        ..checklist_core::LockRequest::default()
    };
    let guard = holder.acquire(&request).await.unwrap();
    faulty.fail_at_os_error(0, Errno::NOSPC.raw_os_error(), AfterFault::Crash);

    let other = FileLockProvider::new(&dir);
    let taken = other
        .acquire(&request)
        .await
        .expect("a lock that stopped being renewed is taken once it expires");
    assert!(
        faulty.log().iter().any(|op| op.failed),
        "the holder's heartbeat never tried to renew: {:?}",
        faulty.log()
    );
    faulty.heal();
    match guard.ensure_held().await {
        Err(Error::LockLost { lock_id, .. }) => assert_eq!(lock_id, guard.info().lock_id),
        other => panic!("the holder was not told it lost the lock: {other:?}"),
    }
    assert_ne!(taken.info().lock_id, guard.info().lock_id);
    taken.release().await.unwrap();
}

/// A coordinator like [`coordinator`], keeping three backups, as config.yaml does by
/// default, so that a commit both takes a backup and prunes one.
fn keeping_three(
    dir: &std::path::Path,
    vfs: Arc<dyn checklist_backends::vfs::Vfs>,
) -> crate::common::FaultCoordinator {
    try_keeping_three(dir, vfs).unwrap()
}

fn try_keeping_three(
    dir: &std::path::Path,
    vfs: Arc<dyn checklist_backends::vfs::Vfs>,
) -> checklist_core::Result<crate::common::FaultCoordinator> {
    let store = FileStore::open_with_vfs(dir, YamlCodec, FileStoreOptions::default(), Arc::clone(&vfs))?;
    let locks = FileLockProvider::with_vfs(dir, vfs);
    let mut options = checklist_core::coordinator::CoordinatorOptions::default();
    options.lock.timeout_ms = 2_000;
    Ok(checklist_core::coordinator::TransactionCoordinator::with_options(
        store,
        locks,
        checklist_core::RollingBackups::keep(3),
        options,
    ))
}

/// A project with three backups kept (revisions 2, 3 and 4) and revision 5 live.
async fn project_with_three_backups() -> (tempfile::TempDir, std::path::PathBuf) {
    let (root, dir) = seeded_project().await;
    for step in ["b", "c", "d"] {
        keeping_three(&dir, Arc::new(RealFs))
            .transact("seed", |state| {
                add_step(state, step);
                Ok(())
            })
            .await
            .unwrap();
    }
    (root, dir)
}

/// The inode of every file in `.backup/` other than the index, by name.
fn backup_inodes(dir: &std::path::Path) -> Vec<(String, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut found: Vec<_> = std::fs::read_dir(dir.join(".backup"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("state.yaml."))
        .map(|e| {
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                meta.ino(),
                meta.nlink(),
            )
        })
        .collect();
    found.sort();
    found
}

/// No backup is another name of the live state file, and every listed backup verifies.
async fn assert_backups_independent(dir: &std::path::Path, case: &str) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let live = std::fs::metadata(dir.join("state.yaml")).unwrap();
    assert_eq!(live.nlink(), 1, "{case}: the live state file has other names");
    for (name, ino, nlink) in backup_inodes(dir) {
        assert_ne!(ino, live.ino(), "{case}: backup {name} is the live state file");
        assert_eq!(nlink, 1, "{case}: backup {name} has {nlink} names");
    }
    let store = crate::common::yaml_store(dir, Arc::new(RealFs));
    let mut ids = Vec::new();
    for backup in store.list_backups().await.unwrap() {
        store
            .read_verified_backup(&backup.id)
            .await
            .unwrap_or_else(|e| panic!("{case}: listed backup {} does not verify: {e}", backup.id));
        ids.push(backup.id);
    }
    ids
}

/// A full disk at every operation of a commit that keeps a backup and prunes one: a
/// commit that fails has taken no backup and pruned none, and no backup is ever left
/// as another name of the live state file (a hard link made before the write that then
/// failed), checked by inode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_any_operation_of_a_commit_leaves_every_backup_independent() {
    for n in 0.. {
        let (_root, dir) = project_with_three_backups().await;
        let before = assert_backups_independent(&dir, "before").await;
        assert_eq!(before.len(), 3);
        let old_bytes = std::fs::read(dir.join("state.yaml")).unwrap();

        let faulty = FaultyFs::new(Arc::new(RealFs));
        faulty.fail_at_os_error(n, Errno::NOSPC.raw_os_error(), AfterFault::Recover);
        let result = match try_keeping_three(&dir, Arc::new(faulty.clone())) {
            Ok(tx) => {
                tx.transact("add a step", |state| {
                    add_step(state, "the-new-step");
                    Ok(())
                })
                .await
            }
            Err(error) => Err(error),
        };
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(n > 10, "only {n} operations in a commit");
            return;
        }
        let failed = faulty.log().into_iter().find(|op| op.failed).unwrap();
        let case = format!("ENOSPC in {failed:?}");
        let after = assert_backups_independent(&dir, &case).await;
        if result.is_err() && std::fs::read(dir.join("state.yaml")).unwrap() == old_bytes {
            assert_eq!(after, before, "{case}: a failed commit changed the backups");
        }
        assert_eq!(temp_files_under(&dir), Vec::<String>::new(), "{case}");
    }
}

/// What the issue saw on a full ext4 image: three commits in a row fail writing the new
/// state; each left its backup link behind, the policy pruned a real backup each time,
/// and after the third every "backup" was the live inode, so one byte flipped in place
/// could not be recovered. Now the three backups stay, and the flip is recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_commits_failing_on_a_full_disk_keep_the_backups_that_recover_a_flipped_byte() {
    let (_root, dir) = project_with_three_backups().await;
    let state_path = dir.join("state.yaml");
    let before = assert_backups_independent(&dir, "before").await;
    for attempt in 0..3 {
        // Aim at the write of the new version of state.yaml.
        let faulty = FaultyFs::new(Arc::new(RealFs));
        faulty.fail_first_os_error(
            "write",
            ".state.yaml.tmp-",
            Errno::NOSPC.raw_os_error(),
            AfterFault::Recover,
        );
        let error = keeping_three(&dir, Arc::new(faulty))
            .transact("add a step", |state| {
                add_step(state, &format!("lost-{attempt}"));
                Ok(())
            })
            .await
            .expect_err("the write of the new state fails");
        assert!(error.to_string().contains("the disk is full"), "{error}");
        let now = assert_backups_independent(&dir, &format!("after failure {attempt}")).await;
        assert_eq!(now, before, "failure {attempt} changed the backups");
    }
    // One byte flipped in place (the live inode), as disk damage or an editor would.
    let mut bytes = std::fs::read(&state_path).unwrap();
    let at = bytes.iter().position(|b| *b == b'd').unwrap();
    bytes[at] = b'e';
    std::fs::OpenOptions::new()
        .write(true)
        .open(&state_path)
        .unwrap()
        .write_all_at(&bytes, 0)
        .unwrap();
    let store = crate::common::yaml_store(&dir, Arc::new(RealFs));
    let recovery = checklist_core::Recovery::new(
        store,
        FileLockProvider::new(&dir),
        checklist_core::RollingBackups::keep(3),
    );
    let report = recovery
        .recover(&checklist_core::recovery::RecoverRequest::default())
        .await
        .unwrap()
        .expect("the flip is detected and recovered");
    assert_eq!(report.backup.unwrap().revision, 4, "the newest backup restored");
}

/// A crash between a write's backup link and its rename leaves the link, unlisted, as
/// another name of the live state file. An index rebuild leaves it out (and says why)
/// rather than list a "backup" that any damage to the state file would damage too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_rebuild_never_lists_a_link_to_the_live_state_file() {
    let (_root, dir) = project_with_three_backups().await;
    let store = crate::common::yaml_store(&dir, Arc::new(RealFs));
    let live_revision = store.read().await.unwrap().unwrap().revision;
    let leftover = dir.join(format!(".backup/state.yaml.{live_revision}-20261204T120000000Z"));
    std::fs::hard_link(dir.join("state.yaml"), &leftover).unwrap();
    std::fs::remove_file(dir.join(".backup/manifest.yaml")).unwrap();

    let rebuilt = store.rebuild_backup_index().await.unwrap();
    assert_eq!(rebuilt.kept.len(), 3, "{rebuilt:?}");
    assert!(
        rebuilt.kept.iter().all(|b| b.revision < live_revision),
        "{rebuilt:?}"
    );
    let skipped = rebuilt
        .skipped
        .iter()
        .find(|s| leftover.ends_with(&s.location))
        .unwrap_or_else(|| panic!("the link is not reported: {rebuilt:?}"));
    assert!(
        skipped.reason.contains("another name of the live state file"),
        "{skipped:?}"
    );
    assert!(leftover.exists(), "a rebuild never deletes a file");
}
