//! I/O faults in the file lock's own operations, through the [`FaultyFs`] seam: breaking
//! a stale lock, inspecting, force-releasing and renewing, each with every one of its
//! operations failed in turn (the SQLite I/O-error loop, as `transaction_faults.rs` does
//! for a whole transaction; breaking also with a crash at each operation), and the
//! races a test can stage: a break lock that stays
//! held, a stale lock removed by someone else while it is being broken.
//!
//! What must hold whatever fails: the caller gets either the right answer or an error
//! naming the file whose operation failed; a lock is never broken unless it is stale,
//! and a stale lock is broken (and reported) once; nothing is left behind but what the
//! failed operation itself could not remove; and the next process gets the lock.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::index_of;
use checklist_backends::fault::{AfterFault, FaultyFs, Operation};
use checklist_backends::vfs::RealFs;
use checklist_backends::{FileLockProvider, LockEvent};
use checklist_core::lock::Waiter;
use checklist_core::{Error, LockInfo, LockProvider, LockRequest, LockStatus};

/// A store directory (empty: the lock needs nothing else), with its root.
fn store_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(".checklist");
    std::fs::create_dir(&dir).unwrap();
    (root, dir)
}

/// A 2 s timeout and a 60 s expiry: no renewal or expiry happens during a test.
fn patient() -> LockRequest {
    request(Duration::from_secs(2), Duration::from_secs(60))
}

fn request(timeout: Duration, expiry: Duration) -> LockRequest {
    LockRequest {
        timeout,
        expiry,
        retry_interval: Duration::from_millis(10),
        ..LockRequest::default()
    }
}

/// Leaves in `dir` the lock of a holder that lost track of it: a complete, unexpired
/// `.lock` of this very process (so its pid is alive), and its liveness file, which
/// nobody holds. Only the liveness lock says the holder is gone, so breaking it needs
/// the full judgement: read, stat, probe the liveness file, re-check under the break
/// lock. Returns the lock's metadata and bytes, to plant it again with [`replant`].
async fn plant_abandoned_lock(dir: &Path) -> (LockInfo, Vec<u8>) {
    let provider = FileLockProvider::new(dir);
    let guard = provider.acquire(&patient()).await.unwrap();
    let info = guard.info().clone();
    let bytes = std::fs::read(dir.join(".lock")).unwrap();
    guard.release().await.unwrap();
    replant(dir, &info, &bytes);
    (info, bytes)
}

fn replant(dir: &Path, info: &LockInfo, bytes: &[u8]) {
    std::fs::write(dir.join(".lock"), bytes).unwrap();
    std::fs::write(live_path(dir, &info.lock_id), b"").unwrap();
}

fn live_path(dir: &Path, lock_id: &str) -> PathBuf {
    dir.join(".locks").join(format!("live-{lock_id}"))
}

/// Collects the lock events of every provider given to [`Events::watch`].
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<LockEvent>>>);

impl Events {
    fn watch(&self, provider: &FileLockProvider) {
        let sink = Arc::clone(&self.0);
        provider.set_observer(move |event| sink.lock().unwrap().push(event.clone()));
    }

    fn broken(&self, lock_id: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, LockEvent::Broken { holder: Some(h), .. } if h.lock_id == lock_id))
            .count()
    }

    fn all(&self) -> Vec<LockEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// A faulty provider on `dir` and the seam that drives it.
fn faulty_provider(dir: &Path) -> (FileLockProvider, FaultyFs) {
    let faulty = FaultyFs::new(Arc::new(RealFs));
    (FileLockProvider::with_vfs(dir, Arc::new(faulty.clone())), faulty)
}

/// The operation the plan failed, once it has run.
fn failed_op(faulty: &FaultyFs) -> Option<Operation> {
    faulty.log().into_iter().find(|op| op.failed)
}

/// What the operation at `index` of `log` was done for: itself or, for the check of a
/// directory on the way to a file (the store refuses symlinked directories), the
/// operation on that file.
fn purpose(log: &[Operation], index: usize) -> &Operation {
    let mut i = index;
    while log[i].name == "stat"
        && i + 1 < log.len()
        && log[i + 1].path != log[i].path
        && log[i + 1].path.starts_with(&log[i].path)
    {
        i += 1;
    }
    &log[i]
}

/// Asserts that `error` is an I/O error naming the path `op` touched or, when `op`
/// checked a directory on the way, the file the operation was for (under that
/// directory, or beside it for a link or rename out of it). After a crash at `op`, any
/// file of the store `dir`.
fn assert_names_failed_path(error: &Error, op: &Operation, after: AfterFault, dir: &Path) {
    if after == AfterFault::Crash {
        // Everything after the crash fails too, so the error may be any later one.
        match error {
            Error::Io { path, .. } => assert!(path.starts_with(dir), "after a crash at {op:?}: {error}"),
            Error::LockTimeout { resource, .. } => {
                assert!(
                    Path::new(resource).starts_with(dir),
                    "after a crash at {op:?}: {error}"
                );
            }
            other => panic!("a crash at {op:?} gave {other:?}"),
        }
        return;
    }
    let checked_dir =
        |path: &Path| op.name == "stat" && op.path.parent().is_some_and(|p| path.starts_with(p));
    match error {
        Error::Io { path, .. } => assert!(
            path.starts_with(&op.path) || checked_dir(path),
            "the error names another file than {op:?}: {error}"
        ),
        other => panic!("failing {op:?} gave {other:?}, not an I/O error naming the file"),
    }
}

/// The temp files the lock writes (`.lock-*.tmp`, `.renew-*.tmp`) still in `.locks/`.
fn lock_temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join(".locks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}

/// A temp file may only be left behind when the failed operation was its removal (or
/// the check of a directory on the way to it: `purpose`, from a dry run, says which).
fn assert_no_temp_left(dir: &Path, failed: &Operation, purpose: &Operation) {
    let removing_a_temp =
        |op: &Operation| op.name == "remove" && op.path.extension().is_some_and(|x| x == "tmp");
    for temp in lock_temp_files(dir) {
        assert!(
            (removing_a_temp(failed) && failed.path == temp) || removing_a_temp(purpose),
            "{} was left behind after failing {failed:?}",
            temp.display()
        );
    }
}

/// Whether `op` probes the liveness lock of `lock_id`'s holder: a failure there leaves
/// the holder's liveness unknown, and an unknown holder whose pid is alive is neither
/// broken before its expiry nor reported wrongly.
fn probes_liveness(op: &Operation, dir: &Path, lock_id: &str) -> bool {
    op.path == live_path(dir, lock_id) && matches!(op.name, "stat" | "open lock file")
}

/// Acquires over a stale lock and releases, with every operation failed in turn, once
/// (`Recover`) or with all that follow (`Crash`: the process died there). Returns the
/// kinds of operation failed.
async fn break_loop(after: AfterFault) -> std::collections::BTreeSet<&'static str> {
    let (_root, dir) = store_dir();
    let (abandoned, stale) = plant_abandoned_lock(&dir).await;
    let (dry_run, faulty) = faulty_provider(&dir);
    faulty.heal();
    let acquire_and_release = |provider: FileLockProvider| async move {
        let guard = provider
            .acquire(&request(Duration::from_millis(300), Duration::from_secs(60)))
            .await?;
        let id = guard.info().lock_id.clone();
        let released = guard.release().await;
        Ok::<_, Error>((id, released))
    };
    acquire_and_release(dry_run).await.unwrap().1.unwrap();
    let dry = faulty.log();

    let mut failed_names = std::collections::BTreeSet::new();
    for n in 0..dry.len() {
        replant(&dir, &abandoned, &stale);
        let events = Events::default();
        let (provider, faulty) = faulty_provider(&dir);
        events.watch(&provider);
        faulty.fail_at(n, io::ErrorKind::PermissionDenied, after);
        let outcome = acquire_and_release(provider).await;
        let failed = failed_op(&faulty).unwrap_or_else(|| panic!("operation {n} of {dry:?} never ran"));
        failed_names.insert(failed.name);
        let own_lock = match outcome {
            Ok((id, released)) => {
                if let Err(error) = released {
                    assert_names_failed_path(&error, &failed, after, &dir);
                }
                Some(id)
            }
            Err(error)
                if after == AfterFault::Recover
                    && probes_liveness(purpose(&dry, n), &dir, &abandoned.lock_id) =>
            {
                assert!(
                    matches!(error, Error::LockTimeout { .. }),
                    "failing {failed:?} gave {error:?}"
                );
                None
            }
            Err(error) => {
                assert_names_failed_path(&error, &failed, after, &dir);
                None
            }
        };
        faulty.heal();

        let next = FileLockProvider::new(&dir);
        events.watch(&next);
        acquire_and_release(next)
            .await
            .and_then(|(_, released)| released)
            .unwrap_or_else(|e| panic!("after failing {failed:?}, the next process cannot lock: {e}"));
        assert_eq!(
            events.broken(&abandoned.lock_id),
            1,
            "after failing {failed:?}, the stale lock was not broken exactly once: {:?}",
            events.all()
        );
        for event in events.all() {
            if let LockEvent::Broken { holder: Some(h), .. } = &event
                && h.lock_id != abandoned.lock_id
            {
                // Only a lock whose release failed can be left behind to be broken.
                assert_eq!(
                    Some(&h.lock_id),
                    own_lock.as_ref(),
                    "{event:?} after failing {failed:?}"
                );
            }
        }
        // A process that died leaves its temp files behind (as a real crash would).
        if after == AfterFault::Recover {
            assert_no_temp_left(&dir, &failed, purpose(&dry, n));
        }
        assert!(
            !dir.join(".lock").exists(),
            "a lock was left after failing {failed:?}"
        );
        for leftover in lock_temp_files(&dir) {
            std::fs::remove_file(leftover).unwrap();
        }
    }
    failed_names
}

#[tokio::test]
async fn breaking_a_stale_lock_survives_a_failure_of_every_operation() {
    let failed_names = break_loop(AfterFault::Recover).await;
    for expected in [
        "read",
        "stat",
        "open lock file",
        "create",
        "write",
        "hard link",
        "remove",
    ] {
        assert!(
            failed_names.contains(expected),
            "never failed a {expected}: {failed_names:?}"
        );
    }
}

#[tokio::test]
async fn breaking_a_stale_lock_survives_a_crash_at_every_operation() {
    let failed = break_loop(AfterFault::Crash).await;
    assert!(
        failed.contains("remove") && failed.contains("hard link"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn inspect_tells_the_truth_or_names_the_file_it_could_not_read() {
    let (_root, dir) = store_dir();
    let holder = FileLockProvider::new(&dir);
    let guard = holder.acquire(&patient()).await.unwrap();
    let waiter = Waiter {
        pid: 4242,
        hostname: "another-host.example".into(),
        since: chrono::Utc::now(),
    };
    std::fs::write(
        dir.join(".locks/waiter-4242-0123456789abcdef.json"),
        serde_json::to_vec(&waiter).unwrap(),
    )
    .unwrap();
    let truth: LockStatus = holder.inspect().await.unwrap();
    assert_eq!(
        truth.holder.as_ref().map(|h| &h.lock_id),
        Some(&guard.info().lock_id)
    );
    assert_eq!(truth.waiters, vec![waiter]);

    let (provider, faulty) = faulty_provider(&dir);
    faulty.heal();
    assert_eq!(provider.inspect().await.unwrap(), truth);
    let dry = faulty.log();
    for n in 0..dry.len() {
        faulty.fail_at(n, io::ErrorKind::PermissionDenied, AfterFault::Recover);
        let outcome = provider.inspect().await;
        let op = failed_op(&faulty).unwrap();
        match outcome {
            Ok(status) => {
                assert!(
                    probes_liveness(purpose(&dry, n), &dir, &guard.info().lock_id),
                    "failing {op:?} went unnoticed"
                );
                assert_eq!(status, truth, "failing {op:?} changed what inspect reports");
            }
            Err(error) => assert_names_failed_path(&error, &op, AfterFault::Recover, &dir),
        }
    }
    guard.ensure_held().await.unwrap();
    guard.release().await.unwrap();
}

/// A store directory whose lock is held by a live holder, with the holder's guard.
async fn held_lock() -> (tempfile::TempDir, PathBuf, checklist_core::LockGuard) {
    let (root, dir) = store_dir();
    let guard = FileLockProvider::new(&dir).acquire(&patient()).await.unwrap();
    (root, dir, guard)
}

fn is_liveness_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("live-"))
}

#[tokio::test]
async fn force_release_either_releases_or_leaves_the_lock_as_it_was() {
    let dry = {
        let (_root, dir, guard) = held_lock().await;
        let (provider, faulty) = faulty_provider(&dir);
        faulty.heal();
        assert!(provider.force_release(&guard.info().lock_id).await.unwrap());
        faulty.log()
    };
    for n in 0..dry.len() {
        let (_root, dir, guard) = held_lock().await;
        let before = std::fs::read(dir.join(".lock")).unwrap();
        let events = Events::default();
        let (provider, faulty) = faulty_provider(&dir);
        events.watch(&provider);

        faulty.fail_at(n, io::ErrorKind::PermissionDenied, AfterFault::Recover);
        let outcome = provider.force_release(&guard.info().lock_id).await;
        let op = failed_op(&faulty).unwrap();
        match outcome {
            Ok(released) => {
                // Only the liveness probe and the liveness file's removal may fail
                // without stopping the release.
                assert!(released, "failing {op:?} made force-release find no lock");
                assert!(
                    is_liveness_file(&purpose(&dry, n).path),
                    "failing {op:?} went unnoticed"
                );
                assert!(!dir.join(".lock").exists());
                assert!(matches!(
                    events.all().as_slice(),
                    [LockEvent::ForceReleased { .. }]
                ));
            }
            Err(error) => {
                assert_names_failed_path(&error, &op, AfterFault::Recover, &dir);
                assert_eq!(
                    std::fs::read(dir.join(".lock")).unwrap(),
                    before,
                    "after failing {op:?}"
                );
                assert!(
                    events.all().is_empty(),
                    "reported {:?} after failing {op:?}",
                    events.all()
                );
                guard.ensure_held().await.unwrap();
            }
        }
    }
}

/// Every operation of a renewal fails once in turn; the heartbeat retries, so the
/// holder keeps its lock past several expiries and leaves no renewal temp file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_fails_once_is_retried_and_the_lock_is_kept() {
    const EXPIRY: Duration = Duration::from_millis(900);
    // How many operations the first renewal makes: up to its rename over `.lock`.
    let renewal_operations = {
        let (_root, dir) = store_dir();
        let (provider, faulty) = faulty_provider(&dir);
        let guard = provider
            .acquire(&request(Duration::from_secs(2), EXPIRY))
            .await
            .unwrap();
        faulty.heal();
        tokio::time::sleep(EXPIRY / 2).await;
        let log = faulty.log();
        guard.release().await.unwrap();
        index_of(&log, "rename", &dir.join(".lock")) + 1
    };
    let mut holders = Vec::new();
    for n in 0..renewal_operations {
        let (root, dir) = store_dir();
        let (provider, faulty) = faulty_provider(&dir);
        let guard = provider
            .acquire(&request(Duration::from_secs(2), EXPIRY))
            .await
            .unwrap();
        faulty.fail_at(n, io::ErrorKind::PermissionDenied, AfterFault::Recover);
        holders.push((root, dir, faulty, guard));
    }
    tokio::time::sleep(EXPIRY * 3).await;
    let mut failed_names = std::collections::BTreeSet::new();
    for (_root, dir, faulty, guard) in holders {
        let op = failed_op(&faulty).expect("the heartbeat never renewed");
        failed_names.insert(op.name);
        guard
            .ensure_held()
            .await
            .unwrap_or_else(|e| panic!("after failing {op:?} once, the holder lost its lock: {e}"));
        let taken = FileLockProvider::new(&dir)
            .acquire(&request(Duration::ZERO, EXPIRY))
            .await;
        assert!(
            matches!(taken, Err(Error::LockTimeout { .. })),
            "after failing {op:?} once, another process took the lock: {taken:?}"
        );
        // The heartbeat goes on renewing, and a renewal in progress has its temp file
        // for the moment of its write and fsync: a temp file left behind by the failure
        // is one that stays.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !lock_temp_files(&dir).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            lock_temp_files(&dir).is_empty(),
            "after failing {op:?}: {:?}",
            lock_temp_files(&dir)
        );
        guard.release().await.unwrap();
    }
    for expected in ["open lock file", "read", "create", "write", "rename"] {
        assert!(
            failed_names.contains(expected),
            "never failed a {expected}: {failed_names:?}"
        );
    }
}

/// The break lock serialises every removal of `.lock`. A process that keeps it (hung
/// on a slow disk) must not let a waiter break the stale lock without it: the waiter
/// gives up after its patience, naming the break lock, and the stale lock is untouched
/// until the break lock is free again.
#[tokio::test]
async fn a_break_lock_held_too_long_stops_the_break_and_names_it() {
    let (_root, dir) = store_dir();
    let (abandoned, stale) = plant_abandoned_lock(&dir).await;
    let break_path = dir.join(".locks/break.lock");
    let wedged = std::fs::File::create(&break_path).unwrap();
    wedged.lock().unwrap();

    let provider = FileLockProvider::new(&dir);
    let events = Events::default();
    events.watch(&provider);
    let error = provider
        .acquire(&request(Duration::from_secs(10), Duration::from_secs(60)))
        .await
        .unwrap_err();
    match &error {
        Error::LockTimeout { resource, .. } => assert_eq!(resource, &break_path),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("break.lock"), "{error}");
    assert_eq!(std::fs::read(dir.join(".lock")).unwrap(), stale);
    assert!(events.all().is_empty());

    drop(wedged);
    let guard = provider.acquire(&patient()).await.unwrap();
    assert_eq!(events.broken(&abandoned.lock_id), 1);
    guard.release().await.unwrap();
}

/// Another process removes the stale lock between this one's judgement and its
/// removal: this one takes the lock, and does not report a break it did not do.
#[tokio::test]
async fn a_stale_lock_removed_by_someone_else_mid_break_is_not_reported_as_broken() {
    let (_root, dir) = store_dir();
    let lock_path = dir.join(".lock");
    plant_abandoned_lock(&dir).await;
    let (dry_run, faulty) = faulty_provider(&dir);
    dry_run
        .acquire(&patient())
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let removal = index_of(&faulty.log(), "remove", &lock_path);

    plant_abandoned_lock(&dir).await;
    let (provider, faulty) = faulty_provider(&dir);
    let events = Events::default();
    events.watch(&provider);
    let vanishing = lock_path.clone();
    faulty.before(removal, move || std::fs::remove_file(vanishing).unwrap());
    let guard = provider.acquire(&patient()).await.unwrap();
    assert!(
        faulty
            .log()
            .iter()
            .any(|op| op.index == removal && op.path == lock_path),
        "the removal of .lock moved: {:?}",
        faulty.log()
    );
    assert!(events.all().is_empty(), "reported {:?}", events.all());
    assert_eq!(
        std::fs::read(&lock_path)
            .map(|b| checklist_backends::parse_lock_file(&b).map(|l| l.lock_id))
            .unwrap(),
        Some(guard.info().lock_id.clone())
    );
    guard.release().await.unwrap();
}

/// `LockGuard::release` reports a lock file it could not remove (its contract), and the
/// lock left behind does not block anyone: its holder let go of its liveness lock, so
/// the next process on this host breaks it at once.
#[tokio::test]
async fn a_release_that_cannot_remove_the_lock_says_so_and_blocks_nobody() {
    let (_root, dir) = store_dir();
    let lock_path = dir.join(".lock");
    let removal = {
        let (provider, faulty) = faulty_provider(&dir);
        let guard = provider.acquire(&patient()).await.unwrap();
        faulty.heal();
        guard.release().await.unwrap();
        index_of(&faulty.log(), "remove", &lock_path)
    };

    let (provider, faulty) = faulty_provider(&dir);
    let guard = provider.acquire(&patient()).await.unwrap();
    let lock_id = guard.info().lock_id.clone();
    faulty.fail_at(removal, io::ErrorKind::PermissionDenied, AfterFault::Recover);
    let error = guard.release().await.unwrap_err();
    match &error {
        Error::Io { path, op, .. } => {
            assert_eq!(path, &lock_path);
            assert_eq!(*op, "remove the lock");
        }
        other => panic!("{other:?}"),
    }
    assert!(lock_path.exists());

    let next = FileLockProvider::new(&dir);
    let events = Events::default();
    events.watch(&next);
    let started = std::time::Instant::now();
    let taken = next
        .acquire(&request(Duration::from_secs(10), Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(events.broken(&lock_id), 1, "{:?}", events.all());
    taken.release().await.unwrap();
}
