//! Recovery, restore and reseal ([`Recovery`]) on a file store at the faults a real
//! disk cannot produce on demand, through the [`FaultyFs`] seam: the state file
//! unreadable in the middle of a command, the state repaired by hand while a restore
//! runs, the audit trail unreadable or not appendable, and every operation of a
//! recovery failed in turn, once or with a crash there.
//!
//! Each fault is placed by a clean run of the same command first: its operation log
//! says which operation to fail (or to run something before), counting from the
//! moment the command starts. The lock provider works on the real file system, so only
//! the store's own operations are counted.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{add_step, coordinator, seeded_project, temp_files_under, yaml_store};
use checklist_backends::fault::{AfterFault, FaultyFs, Operation};
use checklist_backends::vfs::{RealFs, Vfs};
use checklist_backends::{FileLockProvider, FileStore, YamlCodec};
use checklist_core::prelude::*;
use checklist_core::recovery::RecoverRequest;
use checklist_core::{AuditEvent, Error, LockProvider, LockRequest, Recovery, RollingBackups, StateStoreExt};

type FileRecovery = Recovery<FileStore<YamlCodec>, FileLockProvider, RollingBackups>;

fn recovery(dir: &Path, vfs: Arc<dyn Vfs>) -> FileRecovery {
    Recovery::new(
        yaml_store(dir, vfs),
        FileLockProvider::new(dir),
        RollingBackups::keep(3),
    )
}

fn observer(dir: &Path) -> FileStore<YamlCodec> {
    yaml_store(dir, Arc::new(RealFs))
}

/// A seeded project with one more commit: revisions 1–3, backups of 1 and 2 (the
/// fault coordinator keeps one), revision 3 known committed from the audit trail only.
/// Returns the root, the store directory and the state file's valid bytes.
async fn project() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let (root, dir) = seeded_project().await;
    coordinator(&dir, Arc::new(RealFs))
        .transact("one more", |state| {
            add_step(state, "one-more");
            Ok(())
        })
        .await
        .unwrap();
    let valid = std::fs::read(dir.join("state.yaml")).unwrap();
    (root, dir, valid)
}

/// The same project with its state file cut in half: a corrupt state.
async fn corrupt_project() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let (root, dir, valid) = project().await;
    std::fs::write(dir.join("state.yaml"), &valid[..valid.len() / 2]).unwrap();
    (root, dir, valid)
}

/// The same project with its state edited by hand: valid, but its checksum is stale.
async fn hand_edited_project() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let (root, dir, valid) = project().await;
    let text = String::from_utf8(valid.clone()).unwrap();
    assert!(text.contains("one-more"), "{text}");
    std::fs::write(dir.join("state.yaml"), text.replace("one-more", "edited-by-hand")).unwrap();
    (root, dir, valid)
}

/// One command of [`Recovery`].
#[derive(Debug, Clone, Copy)]
enum Command {
    Recover,
    Reseal,
    Restore,
}

impl Command {
    /// A project the command has work to do on: a hand edit for reseal, a corrupt
    /// state for the others.
    async fn project(self) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        match self {
            Self::Reseal => hand_edited_project().await,
            Self::Recover | Self::Restore => corrupt_project().await,
        }
    }
}

async fn run(command: Command, recovery: &FileRecovery) -> checklist_core::Result<()> {
    match command {
        Command::Recover => recovery.recover(&RecoverRequest::default()).await.map(drop),
        Command::Reseal => recovery.reseal().await.map(drop),
        Command::Restore => {
            let oldest = recovery
                .store()
                .list_backups()
                .await?
                .into_iter()
                .min_by_key(|b| b.revision)
                .expect("the project has backups");
            recovery.restore(&oldest.id).await.map(drop)
        }
    }
}

/// The operations `command` performs on a fresh project of its own, in a clean run.
async fn clean_run_of(command: Command) -> Vec<Operation> {
    let (_root, dir, _) = command.project().await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let recovery = recovery(&dir, Arc::new(faulty.clone()));
    faulty.heal();
    run(command, &recovery)
        .await
        .unwrap_or_else(|e| panic!("a clean {command:?} failed: {e}"));
    faulty.log()
}

/// Index of the `nth` (from 0) operation named `name` on a file named `file`.
fn nth(log: &[Operation], name: &str, file: &str, nth: usize) -> usize {
    log.iter()
        .filter(|op| op.name == name && op.path.file_name().is_some_and(|f| f == file))
        .nth(nth)
        .unwrap_or_else(|| panic!("no {name} #{nth} of {file} in {log:?}"))
        .index
}

/// Index of the last operation named `name` on a file named `file`.
fn last(log: &[Operation], name: &str, file: &str) -> usize {
    log.iter()
        .rev()
        .find(|op| op.name == name && op.path.file_name().is_some_and(|f| f == file))
        .unwrap_or_else(|| panic!("no {name} of {file} in {log:?}"))
        .index
}

/// What a refused command must leave: the state file's bytes as `bytes`, nothing
/// quarantined, no audit record added since `audited`, and the lock free.
async fn assert_nothing_changed(dir: &Path, bytes: &[u8], audited: usize, doing: &str) {
    assert!(
        std::fs::read(dir.join("state.yaml")).unwrap() == bytes,
        "{doing}: the state file changed"
    );
    let store = observer(dir);
    assert_eq!(
        store.list_quarantine().await.unwrap(),
        vec![],
        "{doing}: something was quarantined"
    );
    let records = store.read_audit().await.unwrap().records;
    assert_eq!(&records[audited..], &[], "{doing}: a refused command was audited");
    let free = FileLockProvider::new(dir)
        .acquire(&LockRequest::default().with_timeout(std::time::Duration::from_millis(500)))
        .await;
    assert!(free.is_ok(), "{doing}: the lock was left held");
}

async fn audited(dir: &Path) -> usize {
    observer(dir).read_audit().await.unwrap().records.len()
}

/// Runs `command` on a fresh project of its own with its `read`-th read (from 0) of
/// `file` refused, and asserts it fails with that I/O error, naming the file, and
/// changes nothing.
async fn assert_refused_when_unreadable(command: Command, file: &str, read: usize) {
    let at = nth(&clean_run_of(command).await, "read", file, read);
    let (_root, dir, _) = command.project().await;
    let path = dir.join(file);
    let before = std::fs::read(dir.join("state.yaml")).unwrap();
    let audited = audited(&dir).await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let recovery = recovery(&dir, Arc::new(faulty.clone()));
    faulty.fail_at(at, ErrorKind::PermissionDenied, AfterFault::Recover);
    let error = run(command, &recovery)
        .await
        .expect_err("a command that cannot read what it needs must stop");
    let message = error.to_string();
    match &error {
        Error::Io {
            path: named, source, ..
        } => {
            assert_eq!(named, &path, "{command:?}: {message}");
            assert_eq!(
                source.kind(),
                ErrorKind::PermissionDenied,
                "{command:?}: {message}"
            );
        }
        other => panic!(
            "{command:?}: expected the I/O error, got {}: {message}",
            other.kind()
        ),
    }
    assert!(
        message.contains(&path.display().to_string()),
        "{command:?}: {message}"
    );
    faulty.heal();
    assert_nothing_changed(&dir, &before, audited, &format!("{command:?}")).await;
}

/// The state file unreadable (permission denied) where each command reads it to decide
/// what to do: the command fails with that I/O error, naming the state file, instead of
/// taking it for a corruption — and changes nothing.
#[tokio::test]
async fn an_unreadable_state_fails_recover_reseal_and_restore_naming_it() {
    // restore reads the state once to choose between a plain restore and a recovery;
    // recover and reseal read the raw bytes first, then verify them with a read.
    for (command, read) in [(Command::Restore, 0), (Command::Recover, 1), (Command::Reseal, 1)] {
        assert_refused_when_unreadable(command, "state.yaml", read).await;
    }
}

/// A restore over a corrupt state reads it under the lock, then again to recover it.
/// If it was repaired in between (by hand, or by a process that does not take the
/// lock), the restore stops and says to run it again: it neither quarantines the
/// repaired state nor writes the backup over it.
#[tokio::test]
async fn a_restore_over_a_state_repaired_meanwhile_stops_and_changes_nothing() {
    let log = clean_run_of(Command::Restore).await;
    let second_read = nth(&log, "read", "state.yaml", 1);
    let (_root, dir, valid) = corrupt_project().await;
    let state_path = dir.join("state.yaml");
    let audited = audited(&dir).await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let recovery = recovery(&dir, Arc::new(faulty.clone()));
    let (path, repaired) = (state_path.clone(), valid.clone());
    faulty.before(second_read, move || std::fs::write(&path, &repaired).unwrap());
    let error = run(Command::Restore, &recovery)
        .await
        .expect_err("a restore over a state that changed under it must stop");
    let message = error.to_string();
    assert!(
        matches!(error, Error::InvalidOperation { .. }),
        "{}: {message}",
        error.kind()
    );
    assert!(
        message.contains("changed while it was being restored; run the command again")
            && message.contains(&state_path.display().to_string()),
        "{message}"
    );
    faulty.heal();
    assert_nothing_changed(&dir, &valid, audited, "restore").await;
}

/// The audit trail cannot be read while a corrupt state is recovered or a hand edit
/// resealed: without it the last committed revision is unknown, so the recovered state
/// could be written at a revision already committed (a writer holding that revision
/// would not conflict) and the report could not tell whether changes were lost. The
/// command fails with the audit trail's I/O error, naming it, and changes nothing.
#[tokio::test]
async fn an_unreadable_audit_trail_stops_recover_and_reseal_and_changes_nothing() {
    for command in [Command::Recover, Command::Reseal] {
        assert_refused_when_unreadable(command, "audit.log", 0).await;
    }
}

/// The `recovery` record cannot be appended once the recovered state is written: the
/// recovery stands (undoing it would bring the corruption back) — the state loads clean
/// at the reported revision, the corrupt bytes are kept — and only the record is
/// missing.
#[tokio::test]
async fn a_recovery_whose_audit_record_cannot_be_appended_still_stands() {
    let log = clean_run_of(Command::Recover).await;
    let append = last(&log, "open for append", "audit.log");
    let (_root, dir, _) = corrupt_project().await;
    let corrupt = std::fs::read(dir.join("state.yaml")).unwrap();
    let audited = audited(&dir).await;
    let faulty = FaultyFs::new(Arc::new(RealFs));
    let recovery = recovery(&dir, Arc::new(faulty.clone()));
    faulty.fail_at(append, ErrorKind::PermissionDenied, AfterFault::Recover);
    let report = recovery
        .recover(&RecoverRequest::default())
        .await
        .expect("a recovery stands when only its audit record fails")
        .expect("a corrupt state is recovered");
    assert!(faulty.fault_injected(), "the audit append was not failed");
    faulty.heal();

    let store = observer(&dir);
    let state = store.read().await.unwrap().expect("a recovered state");
    assert_eq!(state.revision, report.revision);
    assert_eq!(state.checksum.as_deref(), Some(report.checksum.as_str()));
    assert!(
        state.recovery.is_some(),
        "the recovered state records no recovery"
    );
    assert_eq!(
        store
            .read_quarantined(&report.quarantined.as_ref().unwrap().id)
            .await
            .unwrap(),
        corrupt,
        "the corrupt bytes were not kept"
    );
    let records = store.read_audit().await.unwrap().records;
    assert!(
        records[audited..].iter().all(|r| r.event != AuditEvent::Recovery),
        "a recovery record was appended although the append failed: {:?}",
        &records[audited..]
    );
    let again = self::recovery(&dir, Arc::new(RealFs)).load().await.unwrap();
    assert!(
        again.recovered.is_none(),
        "the recovered state was recovered again"
    );
    assert_eq!(again.state.revision, report.revision);
}

/// A recovery where every operation in turn fails — once (`Recover`) or with every
/// operation after it (`Crash`: the process died there) — either completes (the state
/// verifies, restored from the newest backup, and the corrupt bytes are in quarantine)
/// or fails with an error naming a file of the store, and then the corrupt bytes are
/// still in the state file or in quarantine — never lost. After a transient failure no
/// temp file is left but one whose own removal failed; after either, the next recovery
/// succeeds. Returns the kinds of operation failed.
async fn recovery_loop(after: AfterFault) -> std::collections::BTreeSet<&'static str> {
    let operations = clean_run_of(Command::Recover).await.len();
    assert!(operations > 30, "a recovery made only {operations} operations");
    let mut failed_names = std::collections::BTreeSet::new();
    for n in 0..operations {
        let (_root, dir, _) = corrupt_project().await;
        let corrupt = std::fs::read(dir.join("state.yaml")).unwrap();
        let newest_backup = observer(&dir)
            .list_backups()
            .await
            .unwrap()
            .into_iter()
            .max_by_key(|b| b.revision);
        let faulty = FaultyFs::new(Arc::new(RealFs));
        let faulty_recovery = recovery(&dir, Arc::new(faulty.clone()));
        faulty.fail_at(n, ErrorKind::PermissionDenied, after);
        let outcome = faulty_recovery.recover(&RecoverRequest::default()).await;
        let op = faulty.log().into_iter().find(|op| op.failed).unwrap();
        failed_names.insert(op.name);
        faulty.heal();

        let store = observer(&dir);
        let quarantined: Vec<Vec<u8>> = store
            .list_quarantine()
            .await
            .unwrap()
            .iter()
            .map(|q| std::fs::read(&q.location).unwrap())
            .collect();
        match &outcome {
            Ok(Some(report)) => {
                let state = store.read_existing().await.unwrap();
                assert_eq!(state.revision, report.revision, "after failing {op:?}");
                // A backup that could not be read is no reason to fall back to an older one.
                assert_eq!(report.backup, newest_backup, "after failing {op:?}");
                assert!(quarantined.contains(&corrupt), "after failing {op:?}");
            }
            Ok(None) => panic!("failing {op:?} made the corrupt state look fine"),
            Err(error) => {
                let state_now = std::fs::read(dir.join("state.yaml")).unwrap();
                assert!(
                    state_now == corrupt || quarantined.contains(&corrupt),
                    "failing {op:?} lost the corrupt bytes ({error})"
                );
                match error {
                    Error::Io { path, .. } => assert!(path.starts_with(&dir), "{error}"),
                    other => panic!("failing {op:?} gave {other:?}"),
                }
            }
        }
        // A process that died leaves its temp files; the next writer sweeps those of
        // dead processes (this one still lives), so only a transient fault is checked.
        if after == AfterFault::Recover {
            // Every quarantined file is listed, with its note: none is left behind
            // that nothing would ever show or clean up.
            let files = match std::fs::read_dir(dir.join("quarantine")) {
                Ok(entries) => entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".why.yaml") && !n.contains(".tmp-"))
                    .count(),
                Err(_) => 0,
            };
            assert_eq!(
                files,
                quarantined.len(),
                "after failing {op:?} ({outcome:?}): a quarantined file without its note: {:?}",
                std::fs::read_dir(dir.join("quarantine"))
                    .map(|e| e.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
            );
            let left = temp_files_under(&dir);
            assert!(
                left.iter()
                    .all(|t| op.name == "remove" && op.path.display().to_string() == *t),
                "after failing {op:?}: {left:?}"
            );
        }
        recovery(&dir, Arc::new(RealFs))
            .recover(&RecoverRequest::default())
            .await
            .unwrap_or_else(|e| panic!("after failing {op:?}, recovery still fails: {e}"));
        let newest = newest_backup.as_ref().expect("the project has backups");
        assert_eq!(
            store.read_existing().await.unwrap().completed_steps,
            store
                .read_verified_backup(&newest.id)
                .await
                .unwrap()
                .completed_steps,
            "after failing {op:?}, the newest backup was not restored"
        );
    }
    failed_names
}

#[tokio::test]
async fn a_recovery_survives_a_failure_of_every_operation() {
    let failed = recovery_loop(AfterFault::Recover).await;
    // No hard link: the quarantine is a copy (decision 0010, amended).
    for expected in ["read", "create directory", "create", "write", "fsync", "rename"] {
        assert!(failed.contains(expected), "never failed a {expected}: {failed:?}");
    }
}

#[tokio::test]
async fn a_recovery_survives_a_crash_at_every_operation() {
    let failed = recovery_loop(AfterFault::Crash).await;
    assert!(
        failed.contains("rename") && failed.contains("create") && failed.contains("fsync directory"),
        "{failed:?}"
    );
}

/// What a log line about recovery needs: a [`Recovery`] names its state file and its
/// lock file, and hands back the store it was built with.
#[tokio::test]
async fn a_recovery_names_its_state_and_lock_files() {
    let (_root, dir, _) = project().await;
    let recovery = recovery(&dir, Arc::new(RealFs));
    let state_path = dir.join("state.yaml");
    assert_eq!(recovery.store().info().location_path(), state_path);
    let debug = format!("{recovery:?}");
    let lock_path = std::path::PathBuf::from(FileLockProvider::new(&dir).resource());
    for path in [&state_path, &lock_path] {
        assert!(debug.contains(&format!("{path:?}")), "{path:?} is not in {debug}");
    }
}

/// On a file system that shows a file being renamed over as briefly absent (some
/// network and FUSE file systems), a read can find no state file between two commits.
/// A load takes that for a lost state only after checking again under the lock, where
/// no writer is mid-commit: it finds the state there, returns it and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_briefly_absent_during_a_rename_is_not_taken_for_a_lost_one() {
    let (_root, dir, valid) = project().await;
    let dry = FaultyFs::new(Arc::new(RealFs));
    recovery(&dir, Arc::new(dry.clone())).load().await.unwrap();
    let read = crate::common::index_of(&dry.log(), "read", &dir.join("state.yaml"));
    let faulty = FaultyFs::new(Arc::new(RealFs));
    faulty.fail_at(read, ErrorKind::NotFound, AfterFault::Recover);
    let loaded = recovery(&dir, Arc::new(faulty.clone())).load().await.unwrap();
    assert!(faulty.fault_injected());
    assert!(
        loaded.recovered.is_none(),
        "a present state was recovered: {loaded:?}"
    );
    assert_eq!(loaded.state.revision, 3);
    assert_eq!(std::fs::read(dir.join("state.yaml")).unwrap(), valid);
    assert!(observer(&dir).list_quarantine().await.unwrap().is_empty());
    // Read outside the lock only, the same absence says what it is, not "run init".
    let faulty = FaultyFs::new(Arc::new(RealFs));
    faulty.fail_at(read, ErrorKind::NotFound, AfterFault::Recover);
    match yaml_store(&dir, Arc::new(faulty)).read_existing().await {
        Err(error @ Error::StateMissing { .. }) => {
            let message = error.to_string();
            assert!(message.contains("being replaced by another program"), "{message}");
            assert!(!message.contains("checklist init"), "{message}");
        }
        other => panic!("expected StateMissing, got {other:?}"),
    }
}
