//! The transaction coordinator's rollback paths at the one seam real stores cannot
//! reach on demand: a store call that fails at an exact point of the transaction.
//!
//! Why mocks here and nowhere else: the real backends fail for real reasons only (the
//! file engine's fault injection fails the Nth file-system operation, which cannot say
//! "the audit append of the *commit* record, after the write succeeded"), and the
//! conformance cases check what the store leaves behind, not which calls the
//! coordinator made. A mocked [`StateStore`] fails one chosen call and lets the test
//! assert the coordinator's exact calls, in order, with `times`. The lock provider
//! and backup policy are the real ones.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use checklist_backends::InProcessLockProvider;
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::coordinator::TransactionCoordinator;
use checklist_core::model::{InstanceStart, now};
use checklist_core::{
    AuditEvent, AuditLog, AuditRecord, BackedUpWrite, BackupRecord, ChecklistState, Committed, Error,
    KeepBackup, LockProvider, LockRequest, Result, RollingBackups, StateStore,
};
use mockall::{Sequence, mock};

// Renamed: inside `mock!`, `Expectation` is mockall's own type.
use checklist_core::Expectation as Expect;

mock! {
    #[derive(Debug)]
    pub Store {}

    // Only the required methods: the recovery methods keep their default (refusing)
    // implementations, which the coordinator never calls.
    #[async_trait]
    impl StateStore for Store {
        fn backend_name(&self) -> &str;
        fn location(&self) -> &Path;
        async fn read(&self) -> Result<Option<ChecklistState>>;
        async fn write(&self, state: &ChecklistState, expect: Expect) -> Result<Committed>;
        async fn write_keeping_backup(
            &self,
            state: &ChecklistState,
            expect: Expect,
            keep: KeepBackup,
        ) -> Result<BackedUpWrite>;
        async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
        async fn read_audit(&self) -> Result<AuditLog>;
        async fn rotate_audit(&self) -> Result<bool>;
        async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>>;
        async fn list_backups(&self) -> Result<Vec<BackupRecord>>;
        async fn delete_backup(&self, id: &str) -> Result<()>;
        async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry>;
        async fn history(&self) -> Result<Vec<HistoryEntry>>;
        async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance>;
    }
}

const STATE: &str = "/mock/.checklist/state.yaml";

/// The stored state: revision 1, no instance.
fn stored() -> ChecklistState {
    let mut state = ChecklistState::new();
    state.revision = 1;
    state.checksum = Some("sha256:1111".to_owned());
    state
}

fn disk_error(op: &'static str) -> Error {
    Error::io(op, STATE, io::Error::other("no space left on device"))
}

/// A mock with the calls every transaction makes on it whatever happens.
fn store() -> MockStore {
    let mut store = MockStore::new();
    store.expect_location().return_const(PathBuf::from(STATE));
    store.expect_backend_name().return_const("mock".to_owned());
    store
}

fn locks() -> InProcessLockProvider {
    InProcessLockProvider::new("memory:mock")
}

fn start(state: &mut ChecklistState) -> Result<String> {
    let start = InstanceStart {
        template_id: "release".into(),
        template_version: None,
        project_path: None,
        first_step_id: None,
    };
    Ok(state.start_instance(start, now())?.id.clone())
}

fn is(event: AuditEvent) -> impl Fn(&AuditRecord) -> bool + Send + Sync {
    move |record| record.event == event
}

/// The lock is free again: a fresh acquire succeeds at once.
async fn assert_lock_released(locks: &InProcessLockProvider) {
    let mut request = LockRequest::from_settings(
        checklist_core::lock::Operation::Write,
        &checklist_core::config::LockSettings::default(),
    );
    request.timeout = Duration::from_millis(50);
    let guard = locks
        .acquire(&request)
        .await
        .expect("the transaction released its lock");
    guard.release().unwrap();
}

/// Expects the read of revision 1 and the `begin` record, in `seq`.
fn expect_read_and_begin(store: &mut MockStore, seq: &mut Sequence) {
    store
        .expect_read()
        .times(1)
        .in_sequence(seq)
        .returning(|| Ok(Some(stored())));
    store
        .expect_append_audit()
        .withf(is(AuditEvent::Begin))
        .times(1)
        .in_sequence(seq)
        .returning(|_| Ok(()));
}

/// Expects the commit write with a backup (the real RollingBackups asks for one when a
/// revision is replaced) of the started instance over revision 1, answering revision 2.
fn expect_backed_up_write(store: &mut MockStore, seq: &mut Sequence) {
    store
        .expect_write_keeping_backup()
        .withf(|state, expect, keep| {
            state.active_instance.is_some() && *expect == Expect::Revision(1) && keep.reason == "commit"
        })
        .times(1)
        .in_sequence(seq)
        .returning(|_, _, _| {
            Ok(BackedUpWrite {
                committed: Committed {
                    revision: 2,
                    checksum: "sha256:2222".to_owned(),
                },
                backup: None,
                pruned: Vec::new(),
            })
        });
}

// The state was written (revision 2) but the `commit` record could not be appended.
// A real audit log cannot be made to fail exactly there and nowhere else. The
// coordinator must write the snapshot back over revision 2, audit a rollback that says
// so, never rotate the audit log, and return the audit error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaudited_commit_is_undone_by_writing_the_snapshot_back() {
    let mut store = store();
    let mut seq = Sequence::new();
    expect_read_and_begin(&mut store, &mut seq);
    expect_backed_up_write(&mut store, &mut seq);
    store
        .expect_append_audit()
        .withf(is(AuditEvent::Commit))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(disk_error("append to")));
    store
        .expect_write()
        .withf(|state, expect| *state == stored() && *expect == Expect::Revision(2))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| {
            Ok(Committed {
                revision: 3,
                checksum: "sha256:3333".to_owned(),
            })
        });
    store
        .expect_append_audit()
        .withf(|record| {
            record.event == AuditEvent::Rollback
                && record.revision_before == Some(1)
                && record
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("no space left on device"))
                && record
                    .operations
                    .iter()
                    .any(|op| op == "revision 2 could not be audited; restored the snapshot as revision 3")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store.expect_rotate_audit().times(0);
    let locks = locks();
    let coordinator = TransactionCoordinator::new(store, locks.clone(), RollingBackups::default());

    let error = coordinator.transact("start release", start).await.unwrap_err();
    assert!(
        matches!(&error, Error::Io { op: "append to", path, .. } if path == Path::new(STATE)),
        "{error:?}"
    );
    assert_lock_released(&locks).await;
}

// Same failure, and writing the snapshot back fails too: the commit stands, so the
// coordinator must not audit a rollback that did not happen; it says the revision
// stands, naming both errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaudited_commit_that_cannot_be_undone_is_reported_as_standing() {
    let mut store = store();
    let mut seq = Sequence::new();
    expect_read_and_begin(&mut store, &mut seq);
    expect_backed_up_write(&mut store, &mut seq);
    store
        .expect_append_audit()
        .withf(is(AuditEvent::Commit))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(disk_error("append to")));
    store
        .expect_write()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(disk_error("rename")));
    store
        .expect_append_audit()
        .withf(is(AuditEvent::Rollback))
        .times(0);
    store.expect_rotate_audit().times(0);
    let locks = locks();
    let coordinator = TransactionCoordinator::new(store, locks.clone(), RollingBackups::default());

    let error = coordinator.transact("start release", start).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(error.kind(), "invalid_operation", "{message}");
    assert!(
        message.starts_with(&format!(
            "revision 2 of {STATE} was committed but could not be audited"
        )),
        "{message}"
    );
    assert!(
        message.contains("could not rename") && message.ends_with("the state stands at revision 2"),
        "{message}"
    );
    assert_lock_released(&locks).await;
}

// The write (with its backup) fails with an I/O error. A real file engine failing its
// write is covered by fault injection; what it cannot show is that the coordinator
// then makes no further write, appends no commit, and audits exactly one rollback
// carrying the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backed_up_write_rolls_back_with_its_error() {
    let mut store = store();
    let mut seq = Sequence::new();
    expect_read_and_begin(&mut store, &mut seq);
    store
        .expect_write_keeping_backup()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(disk_error("write")));
    store
        .expect_append_audit()
        .withf(|record| {
            record.event == AuditEvent::Rollback
                && (record.revision_before, record.revision_after) == (Some(1), Some(1))
                && record.error.as_deref().is_some_and(|e| {
                    e.starts_with("could not write /mock/.checklist/state.yaml: no space left on device;")
                })
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store.expect_write().times(0);
    store.expect_append_audit().withf(is(AuditEvent::Commit)).times(0);
    store.expect_rotate_audit().times(0);
    let locks = locks();
    let coordinator = TransactionCoordinator::new(store, locks.clone(), RollingBackups::default());

    let error = coordinator.transact("start release", start).await.unwrap_err();
    assert!(
        matches!(&error, Error::Io { op: "write", path, .. } if path == Path::new(STATE)),
        "{error:?}"
    );
    assert_lock_released(&locks).await;
}

// The read fails before anything happened: no snapshot, so no `begin`, no change, no
// write; one rollback record without revisions, and the read's error returned. A real
// store's read fails only through corruption (which recovery handles first) or
// fault injection in the file engine, neither of which isolates the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_rolls_back_before_the_change_runs() {
    let mut store = store();
    let mut seq = Sequence::new();
    store
        .expect_read()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Err(disk_error("read")));
    store
        .expect_append_audit()
        .withf(|record| {
            record.event == AuditEvent::Rollback
                && (record.revision_before, record.revision_after) == (None, None)
                && record
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("could not read"))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store.expect_write().times(0);
    store.expect_write_keeping_backup().times(0);
    store.expect_rotate_audit().times(0);
    let locks = locks();
    let coordinator = TransactionCoordinator::new(store, locks.clone(), RollingBackups::default());

    let mut change_ran = false;
    let error = coordinator
        .transact("start release", |state| {
            change_ran = true;
            start(state)
        })
        .await
        .unwrap_err();
    assert!(!change_ran, "the change must not run without a snapshot");
    assert!(
        matches!(&error, Error::Io { op: "read", path, .. } if path == Path::new(STATE)),
        "{error:?}"
    );
    assert_lock_released(&locks).await;
}
