//! The transaction coordinator's conflict retry at a fault a real disk cannot produce on
//! demand: a lockless writer commits on top of the revision the transaction read, and
//! the re-read of that newer state then fails. The fault is placed by a clean run of
//! the same race, whose [`FaultyFs`] log says which read is the re-read.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{FaultCoordinator, add_step, seeded_project, yaml_store};
use checklist_backends::fault::{AfterFault, FaultyFs, Operation};
use checklist_backends::vfs::RealFs;
use checklist_backends::{FileLockProvider, FileStore, FileStoreOptions, YamlCodec};
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator, TxOutcome};
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, Error, Expectation, LockProvider, LockRequest, RollingBackups, StateStoreExt,
};

/// The options of [`retrying`]: one conflict retry, a 2 s lock timeout.
fn retry_once() -> CoordinatorOptions {
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 2_000;
    options.conflict_retries = 1;
    options
}

/// A coordinator on `dir` whose store works through `faulty` (its lock on the real file
/// system, so that only the store's operations are counted), re-running a conflicting
/// change once.
fn retrying(dir: &Path, faulty: &FaultyFs) -> FaultCoordinator {
    TransactionCoordinator::with_options(
        yaml_store(dir, Arc::new(faulty.clone())),
        FileLockProvider::new(dir),
        RollingBackups::keep(1),
        retry_once(),
    )
}

/// Runs a transaction adding the step `ours` whose first run races a lockless writer:
/// another handle commits the step `theirs` on top of the revision the transaction
/// read. Right after that commit, the store's next operations are failed from index
/// `fail_at` on (or, with `None`, only counted). Returns the transaction's result,
/// how many times the change ran, and the operations logged between the race and the
/// start of a second run.
async fn race_a_writer(
    dir: &Path,
    fail_at: Option<usize>,
) -> (Result<TxOutcome<()>, Error>, u32, Vec<Operation>) {
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let tx = retrying(dir, &faulty);
    let runs = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let result = tx
        .transact_async("races a writer", |mut state| {
            let (faulty, runs, seen) = (faulty.clone(), Arc::clone(&runs), Arc::clone(&seen));
            let dir = dir.to_owned();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    let theirs_store = FileStore::open(&dir, YamlCodec, FileStoreOptions::default())?;
                    let mut theirs = state.clone();
                    add_step(&mut theirs, "theirs");
                    theirs_store
                        .commit(&theirs, Expectation::current(&theirs))
                        .await?;
                    match fail_at {
                        Some(at) => faulty.fail_at(at, ErrorKind::PermissionDenied, AfterFault::Recover),
                        None => faulty.heal(),
                    }
                } else {
                    *seen.lock().unwrap() = faulty.log();
                }
                add_step(&mut state, "ours");
                Ok((state, ()))
            }
        })
        .await;
    let seen = seen.lock().unwrap().clone();
    (result, runs.load(Ordering::SeqCst), seen)
}

/// With a retry left, a conflict makes the coordinator re-read the newer state to run
/// the change on top of it. When that re-read fails, the transaction rolls back with
/// the read's error, naming the state file: the other writer's commit stands, nothing
/// of this transaction is written, the rollback is audited with the conflict it was
/// retrying, and the lock is free.
#[tokio::test]
async fn a_conflict_retry_that_cannot_reread_the_state_rolls_back_and_keeps_the_other_commit() {
    let reread = {
        let (_root, dir) = seeded_project().await;
        let (result, runs, seen) = race_a_writer(&dir, None).await;
        let outcome = result.expect("a clean race is retried and commits");
        assert_eq!(runs, 2, "the change did not run again after the conflict");
        assert!(
            outcome
                .state
                .completed_steps
                .iter()
                .any(|s| s.step_id == "theirs")
        );
        seen.iter()
            .rev()
            .find(|op| op.name == "read" && op.path.ends_with("state.yaml"))
            .unwrap_or_else(|| panic!("no re-read of the state in {seen:?}"))
            .index
    };

    let (_root, dir) = seeded_project().await;
    let state_path = dir.join("state.yaml");
    let (result, runs, _) = race_a_writer(&dir, Some(reread)).await;
    let error = result.expect_err("a retry that cannot read the newer state must fail");
    let message = error.to_string();
    match &error {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &state_path, "{message}");
            assert_eq!(source.kind(), ErrorKind::PermissionDenied, "{message}");
        }
        other => panic!(
            "expected the re-read's I/O error, got {}: {message}",
            other.kind()
        ),
    }
    assert!(message.contains(&state_path.display().to_string()), "{message}");
    assert_eq!(runs, 1, "the change ran again on a state that could not be read");

    let store = FileStore::open(&dir, YamlCodec, FileStoreOptions::default()).unwrap();
    let stored = store.read_existing().await.unwrap();
    let steps: Vec<_> = stored
        .completed_steps
        .iter()
        .map(|s| s.step_id.as_str())
        .collect();
    assert!(
        steps.contains(&"theirs") && !steps.contains(&"ours"),
        "the other writer's commit must stand alone: {steps:?}"
    );
    let audit = store.read_audit().await.unwrap();
    let last = audit.records.last().expect("an audit trail");
    assert_eq!(last.event, AuditEvent::Rollback, "{last:?}");
    assert_eq!(last.error.as_deref(), Some(message.as_str()));
    assert!(
        last.operations
            .iter()
            .any(|op| op.starts_with("conflict: revision")),
        "the rollback does not say it was retrying a conflict: {:?}",
        last.operations
    );
    let free = FileLockProvider::new(&dir)
        .acquire(&LockRequest::default().with_timeout(Duration::from_millis(500)))
        .await;
    assert!(free.is_ok(), "the lock was left held");
}

/// What a log line about a transaction needs: a coordinator names its state file and
/// its lock file, and hands back the lock provider and options it was built with.
#[tokio::test]
async fn a_coordinator_names_its_files_and_keeps_its_options() {
    let (_root, dir) = seeded_project().await;
    let tx = retrying(&dir, &FaultyFs::new(Arc::new(RealFs)));
    let state_path = dir.join("state.yaml");
    let lock_path = std::path::PathBuf::from(FileLockProvider::new(&dir).resource());
    assert_eq!(tx.store().info().location_path(), state_path);
    assert_eq!(tx.locks().resource(), lock_path.display().to_string());
    assert_eq!(tx.options(), &retry_once());
    let debug = format!("{tx:?}");
    for path in [&state_path, &lock_path] {
        assert!(debug.contains(&format!("{path:?}")), "{path:?} is not in {debug}");
    }
}
