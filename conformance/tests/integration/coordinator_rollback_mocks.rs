//! The transaction coordinator's rollback paths at the one seam real stores cannot
//! reach on demand: a store call that fails at an exact point of the transaction.
//!
//! Why mocks here and nowhere else: the real backends fail for real reasons only (the
//! file engine's fault injection fails the Nth file-system operation, which cannot say
//! "the audit append of the *commit* record, after the write succeeded"), and the
//! conformance cases check what the store leaves behind, not which calls the
//! coordinator made. A mocked store fails one chosen call and lets the test
//! assert the coordinator's exact calls, in order, with `times`. The lock provider
//! and backup policy are the real ones.

use std::io;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use checklist_backends::{InProcessLockProvider, YamlCodec};
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::codec::Codec;
use checklist_core::coordinator::TransactionCoordinator;
use checklist_core::model::{InstanceStart, now};
use checklist_core::store::Capabilities;
use checklist_core::{
    ArchiveStore, AuditEvent, AuditLog, AuditRecord, AuditTrail, BackupRecord, BackupStore, ChangeFeed,
    ChangeWatch, ChecklistState, Committed, DocumentStore, Error, LockProvider, LockRequest, Precondition,
    QuarantineNote, QuarantineRecord, QuarantineStore, Result, RollingBackups, StoreInfo, WriteReceipt,
    WriteRequest, document,
};
use mockall::{Sequence, automock};

/// Every store call, mocked; [`Store`] answers the planes with it.
#[automock]
trait Calls {
    fn read_raw(&self) -> Result<Option<Vec<u8>>>;
    fn write(&self, request: &WriteRequest) -> Result<WriteReceipt>;
    fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    fn read_audit(&self) -> Result<AuditLog>;
    fn rotate_audit(&self) -> Result<bool>;
    fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>>;
    fn list_backups(&self) -> Result<Vec<BackupRecord>>;
    fn read_backup(&self, id: &str) -> Result<Vec<u8>>;
    fn delete_backup(&self, id: &str) -> Result<()>;
    fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild>;
    fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord>;
    fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry>;
    fn history(&self) -> Result<Vec<HistoryEntry>>;
    fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance>;
    fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord>;
    fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>>;
    fn read_quarantined(&self, id: &str) -> Result<Vec<u8>>;
    fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord>;
}

/// A store whose every call goes to its mock; the info and codec are real.
#[derive(Debug)]
struct Store {
    calls: MockCalls,
    info: StoreInfo,
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl DocumentStore for Store {
    fn info(&self) -> &StoreInfo {
        &self.info
    }
    fn codec(&self) -> &dyn Codec {
        &YamlCodec
    }
    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.calls.read_raw()
    }
    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        self.calls.write(&request)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AuditTrail for Store {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.calls.append_audit(record)
    }
    async fn read_audit(&self) -> Result<AuditLog> {
        self.calls.read_audit()
    }
    async fn rotate_audit(&self) -> Result<bool> {
        self.calls.rotate_audit()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BackupStore for Store {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        self.calls.create_backup(reason)
    }
    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.calls.list_backups()
    }
    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        self.calls.read_backup(id)
    }
    async fn delete_backup(&self, id: &str) -> Result<()> {
        self.calls.delete_backup(id)
    }
    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.calls.rebuild_backup_index()
    }
    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        self.calls.import_backup(record, document)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ArchiveStore for Store {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        self.calls.archive(archived)
    }
    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.calls.history()
    }
    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        self.calls.read_archived(instance_id)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl QuarantineStore for Store {
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        self.calls.quarantine(found, note)
    }
    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.calls.list_quarantine()
    }
    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.calls.read_quarantined(id)
    }
    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        self.calls.import_quarantined(record, found)
    }
}

/// The coordinator never follows a store; a mock that cannot be watched says so.
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ChangeFeed for Store {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        Err(Error::Unsupported {
            operation: "watching for changes".into(),
            backend: self.info.backend.clone(),
            location: self.info.location.clone(),
        })
    }
}

const STATE: &str = "/mock/.checklist/state.yaml";

/// The stored document's bytes: revision 1, no instance, sealed as a YAML store holds it.
fn stored() -> Vec<u8> {
    let sealed = document::seal(&ChecklistState::new(), 1, Path::new(STATE)).expect("seal");
    YamlCodec.encode(&sealed.value).expect("encode")
}

/// Whether `bytes` hold a document without an active instance (the snapshot).
fn is_the_snapshot(bytes: &[u8]) -> bool {
    let value = YamlCodec.decode(bytes).expect("decode");
    value.get("activeInstance").is_none_or(serde_json::Value::is_null)
}

fn disk_error(op: &'static str) -> Error {
    Error::io(op, STATE, io::Error::other("no space left on device"))
}

fn receipt(revision: u64, unaudited: Option<Error>) -> WriteReceipt {
    WriteReceipt {
        committed: Committed {
            revision,
            checksum: format!("sha256:{revision}{revision}{revision}{revision}"),
        },
        backup: None,
        pruned: Vec::new(),
        unaudited,
    }
}

/// A store whose mock expects nothing yet.
fn store() -> Store {
    Store {
        calls: MockCalls::new(),
        info: StoreInfo::new("mock", STATE, Capabilities::PERSISTENT),
    }
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
    guard.release().await.unwrap();
}

/// Expects the read of revision 1 and the `begin` record, in `seq`.
fn expect_read_and_begin(store: &mut Store, seq: &mut Sequence) {
    store
        .calls
        .expect_read_raw()
        .times(1)
        .in_sequence(seq)
        .returning(|| Ok(Some(stored())));
    store
        .calls
        .expect_append_audit()
        .withf(is(AuditEvent::Begin))
        .times(1)
        .in_sequence(seq)
        .returning(|_| Ok(()));
}

/// Expects the commit write with a backup (the real RollingBackups asks for one when a
/// revision is replaced) and its `commit` record, of the started instance over revision
/// 1, answering revision 2 — audited or not, as `unaudited` says.
fn expect_backed_up_write(store: &mut Store, seq: &mut Sequence, unaudited: fn() -> Option<Error>) {
    store
        .calls
        .expect_write()
        .withf(|request| {
            !is_the_snapshot(&request.document.bytes)
                && request.precondition == Precondition::Revision(1)
                && request.keep.as_ref().is_some_and(|k| k.reason == "commit")
                && request
                    .audit
                    .as_ref()
                    .is_some_and(|r| r.event == AuditEvent::Commit)
        })
        .times(1)
        .in_sequence(seq)
        .returning(move |_| Ok(receipt(2, unaudited())));
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
    expect_backed_up_write(&mut store, &mut seq, || Some(disk_error("append to")));
    store
        .calls
        .expect_write()
        .withf(|request| {
            is_the_snapshot(&request.document.bytes)
                && request.precondition == Precondition::Revision(2)
                && request.document.revision == 3
                && request.keep.is_none()
                && request.audit.is_none()
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(receipt(3, None)));
    store
        .calls
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
    store.calls.expect_rotate_audit().times(0);
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
    expect_backed_up_write(&mut store, &mut seq, || Some(disk_error("append to")));
    store
        .calls
        .expect_write()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(disk_error("rename")));
    store
        .calls
        .expect_append_audit()
        .withf(is(AuditEvent::Rollback))
        .times(0);
    store.calls.expect_rotate_audit().times(0);
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
        .calls
        .expect_write()
        .withf(|request| request.keep.is_some())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(disk_error("write")));
    store
        .calls
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
    store
        .calls
        .expect_append_audit()
        .withf(is(AuditEvent::Commit))
        .times(0);
    store.calls.expect_rotate_audit().times(0);
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
        .calls
        .expect_read_raw()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Err(disk_error("read")));
    store
        .calls
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
    store.calls.expect_write().times(0);
    store.calls.expect_rotate_audit().times(0);
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
