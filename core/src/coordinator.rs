//! The transaction coordinator (docs/architecture.md, "Transactions"): one
//! read-modify-write of the state, all or nothing, generic over the store, the lock
//! provider and the backup policy.
//!
//! One transaction: acquire the lock → read and verify → snapshot → run the change on
//! a copy → scan for secrets → one conditional write ([`DocumentStore::write`](crate::DocumentStore::write)) that
//! compares the revision, keeps the replaced state as a backup, prunes backups per
//! policy and appends the audit `commit` record → rotate the audit log → release. The
//! document's schema is checked when core seals it, before anything is written.
//!
//! Any failure — the change's error or panic, a schema violation, a secret, an I/O
//! error, a lost lock, a revision conflict — leaves the stored state as the snapshot,
//! releases the lock, audits `rollback` with the error, and returns it. If the state was
//! written but the `commit` record could not be appended, the snapshot is written back
//! so the audit trail never misses a commit that stands.
//!
//! ```
//! use checklist_core::coordinator::TransactionCoordinator;
//! use checklist_core::model::{InstanceStart, now};
//! use checklist_core::{BackupPolicy, LockProvider, Result, StateStore};
//!
//! async fn start_release<S: StateStore, L: LockProvider, B: BackupPolicy>(
//!     coordinator: &TransactionCoordinator<S, L, B>,
//! ) -> Result<String> {
//!     let outcome = coordinator
//!         .transact("start release", |state| {
//!             let start = InstanceStart {
//!                 template_id: "release".into(),
//!                 template_version: None,
//!                 project_path: None,
//!                 first_step_id: None,
//!             };
//!             Ok(state.start_instance(start, now())?.id.clone())
//!         })
//!         .await?;
//!     println!("instance {} at revision {}", outcome.value, outcome.revision);
//!     Ok(outcome.value)
//! }
//! //! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{AuditEvent, AuditRecord};
use crate::backup::{BackupPolicy, CommitContext};
use crate::config::{Config, LockSettings, SecretMode};
use crate::error::{Error, Result};
use crate::lock::{LockGuard, LockNote, LockProvider, LockRequest, Operation};
use crate::model::{ChecklistState, ConflictRecord, ConflictResolution, now};
use crate::secrets;
use crate::store::{
    DocumentStoreExt, Expectation, KeepBackup, Precondition, StateStore, StateStoreExt, WriteReceipt,
};

/// How a coordinator runs its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorOptions {
    /// Lock timing.
    pub lock: LockSettings,
    /// What to do with a secret in a document about to be written.
    pub secrets: SecretMode,
    /// How many times a transaction that hits a revision conflict is re-run on top of
    /// the newer state before the conflict is returned (default 0).
    pub conflict_retries: u32,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl CoordinatorOptions {
    /// The options config.yaml describes.
    pub fn from_config(config: &Config) -> Self {
        Self {
            lock: config.lock.clone(),
            secrets: config.secrets.mode,
            conflict_retries: 0,
        }
    }
}

/// Where a transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxStatus {
    /// Running.
    Active,
    /// Its write committed.
    Committed,
    /// It failed and left the state as it was.
    RolledBack,
}

/// The record of one transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Its id (a UUID), also in its audit records.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// What it did: the caller's description, then conflicts retried and redactions.
    pub operations: Vec<String>,
    /// The state as it was read, before the change (a deep copy).
    pub snapshot: ChecklistState,
    /// Where it ended.
    pub status: TxStatus,
    /// The note of the lock it ran under, which its audit records carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_note: Option<LockNote>,
}

/// What a committed transaction produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TxOutcome<T> {
    /// What the change function returned.
    pub value: T,
    /// The revision committed.
    pub revision: u64,
    /// The checksum committed.
    pub checksum: String,
    /// The state as committed (an independent copy).
    pub state: ChecklistState,
    /// The transaction's record.
    pub transaction: Transaction,
}

tokio::task_local! {
    /// The stores the current task is inside a transaction on, to refuse a nested
    /// write instead of waiting for a lock the task itself holds.
    static ACTIVE: Vec<String>;
}

/// Runs transactions on one store; see the module docs.
///
/// Usable with concrete types or with `Arc<dyn StateStore>`, `Arc<dyn LockProvider>`
/// and `Arc<dyn BackupPolicy>` chosen at run time.
pub struct TransactionCoordinator<S, L, B> {
    store: S,
    locks: L,
    /// Shared with the store while it prunes backups during a write.
    policy: Arc<B>,
    options: CoordinatorOptions,
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> fmt::Debug for TransactionCoordinator<S, L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("store", &self.store)
            .field("locks", &self.locks)
            .field("policy", &self.policy)
            .field("options", &self.options)
            .finish()
    }
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> TransactionCoordinator<S, L, B> {
    /// A coordinator with the default options.
    pub fn new(store: S, locks: L, policy: B) -> Self {
        Self::with_options(store, locks, policy, CoordinatorOptions::default())
    }

    /// A coordinator with `options`.
    pub fn with_options(store: S, locks: L, policy: B, options: CoordinatorOptions) -> Self {
        Self {
            store,
            locks,
            policy: Arc::new(policy),
            options,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The lock provider.
    pub fn locks(&self) -> &L {
        &self.locks
    }

    /// The options.
    pub fn options(&self) -> &CoordinatorOptions {
        &self.options
    }

    /// Reads the committed state (verified) without taking the lock. Inside a
    /// transaction it returns the last committed state, not the transaction's working
    /// copy, and never waits for the lock the transaction holds.
    ///
    /// # Errors
    /// As [`StateStoreExt::read_existing`].
    pub async fn read(&self) -> Result<ChecklistState> {
        self.store.read_existing().await
    }

    /// Runs `change` on a copy of the state as one transaction; see the module docs.
    /// `operation` describes it in the audit trail. With conflict retries, `change` may
    /// run more than once, each time on a fresh copy.
    ///
    /// # Errors
    /// The change's own error, [`Error::Panicked`], [`Error::SchemaInvalid`],
    /// [`Error::SecretDetected`], [`Error::LockTimeout`], [`Error::LockLost`],
    /// [`Error::Conflict`], [`Error::Io`]…; in every case the stored state is as it was.
    pub async fn transact<T, F>(&self, operation: &str, mut change: F) -> Result<TxOutcome<T>>
    where
        T: Send,
        F: FnMut(&mut ChecklistState) -> Result<T> + Send,
    {
        self.run(operation, &mut |mut state: ChecklistState| {
            let result = catch_panic_sync(|| change(&mut state));
            std::future::ready(result.map(|value| (state, value)))
        })
        .await
    }

    /// Like [`transact`](Self::transact) with an async change, which gets the working
    /// copy by value and hands it back with its result.
    ///
    /// # Errors
    /// As [`transact`](Self::transact).
    pub async fn transact_async<T, F, Fut>(&self, operation: &str, mut change: F) -> Result<TxOutcome<T>>
    where
        T: Send,
        F: FnMut(ChecklistState) -> Fut + Send,
        Fut: Future<Output = Result<(ChecklistState, T)>> + Send,
    {
        self.run(operation, &mut |state: ChecklistState| {
            CatchPanic(Box::pin(change(state)))
        })
        .await
    }

    async fn run<T, C, Fut>(&self, operation: &str, change: &mut C) -> Result<TxOutcome<T>>
    where
        T: Send,
        C: FnMut(ChecklistState) -> Fut + Send,
        Fut: Future<Output = Result<(ChecklistState, T)>> + Send,
    {
        let location = self.store.info().location.clone();
        let active = ACTIVE.try_with(Clone::clone).unwrap_or_default();
        if active.contains(&location) {
            return Err(Error::invalid(format!(
                "a transaction on {} tried to start another one inside it; nested writes are not \
                 supported, make the change in the outer transaction",
                location
            )));
        }
        let request = LockRequest::from_settings(Operation::Write, &self.options.lock);
        let guard = self.locks.acquire(&request).await?;
        let mut inner = active;
        inner.push(location);
        let result = ACTIVE.scope(inner, self.locked(&guard, operation, change)).await;
        // A commit stands whether or not the lock comes off, so a failure to release is
        // logged rather than reported as the transaction's failure (a file lock left
        // behind is stale at once: its holder let its liveness go).
        guard.release_logging_failure().await;
        result
    }

    async fn locked<T, C, Fut>(
        &self,
        guard: &LockGuard,
        operation: &str,
        change: &mut C,
    ) -> Result<TxOutcome<T>>
    where
        T: Send,
        C: FnMut(ChecklistState) -> Fut + Send,
        Fut: Future<Output = Result<(ChecklistState, T)>> + Send,
    {
        let mut tx = Transaction {
            id: uuid::Uuid::new_v4().to_string(),
            started_at: now(),
            operations: vec![operation.to_owned()],
            snapshot: ChecklistState::new(),
            status: TxStatus::Active,
            lock_note: guard.info().note.clone(),
        };
        let snapshot = match self.store.read_existing().await {
            Ok(state) => state,
            Err(error) => return Err(self.rollback(&mut tx, None, error, None).await),
        };
        // A moved store takes no writes (its commit would be refused anyway): stop
        // before the change touches another plane, such as the archive, and before
        // anything is appended to its trail (docs/decisions/0030-moving-a-store.md).
        snapshot.ensure_not_moved(self.store.info().location_path())?;
        let before = snapshot.revision;
        tx.snapshot = snapshot;
        let begin = AuditRecord::new(AuditEvent::Begin)
            .in_transaction(&tx.id)
            .lock_note(tx.lock_note.as_ref())
            .revisions(Some(before), None)
            .operations(tx.operations.clone());
        if let Err(error) = self.store.append_audit(&begin).await {
            return Err(self.rollback(&mut tx, Some(before), error, None).await);
        }

        // The state a retry after a conflict re-runs the change on; the first run takes
        // a copy of the snapshot, so a large state is not copied twice per commit.
        let mut reread: Option<ChecklistState> = None;
        let mut conflict_seen: Option<DateTime<Utc>> = None;
        let mut retries_left = self.options.conflict_retries;
        let (state, value, receipt) = loop {
            let base = reread.take().unwrap_or_else(|| tx.snapshot.clone());
            let replacing = base.revision;
            let (mut working, value) = match change(base).await {
                Ok(done) => done,
                Err(error) => {
                    let backtrace = matches!(error, Error::Panicked { .. })
                        .then(|| std::backtrace::Backtrace::capture().to_string());
                    return Err(self.rollback(&mut tx, Some(before), error, backtrace).await);
                }
            };
            if let Some(detected) = conflict_seen {
                working.conflicts = Some(ConflictRecord {
                    detected,
                    resolution: ConflictResolution::Merge,
                    extra: Default::default(),
                });
            }
            if let Err(error) = self.scan_secrets(&mut working, &mut tx) {
                return Err(self.rollback(&mut tx, Some(before), error, None).await);
            }
            if let Err(error) = guard.ensure_held().await {
                return Err(self.rollback(&mut tx, Some(before), error, None).await);
            }
            let commit = AuditRecord::new(AuditEvent::Commit)
                .in_transaction(&tx.id)
                .lock_note(tx.lock_note.as_ref())
                .revisions(Some(before), Some(replacing.saturating_add(1)))
                .operations(tx.operations.clone());
            match self.write(&working, replacing, commit).await {
                Ok(receipt) => {
                    working.revision = receipt.committed.revision;
                    working.checksum = Some(receipt.committed.checksum.clone());
                    break (working, value, receipt);
                }
                Err(Error::Conflict { found, .. }) if retries_left > 0 => {
                    retries_left -= 1;
                    conflict_seen.get_or_insert_with(now);
                    tx.operations.push(format!(
                        "conflict: revision {} was replaced by {}; re-ran the change on top of it",
                        replacing,
                        found.map_or_else(|| "nothing".to_owned(), |r| r.to_string())
                    ));
                    reread = match self.store.read_existing().await {
                        Ok(state) => Some(state),
                        Err(error) => return Err(self.rollback(&mut tx, Some(before), error, None).await),
                    };
                }
                Err(error @ Error::Conflict { .. }) => {
                    self.record_unresolved_conflict(guard, &mut tx).await;
                    return Err(self.rollback(&mut tx, Some(before), error, None).await);
                }
                Err(error) => return Err(self.rollback(&mut tx, Some(before), error, None).await),
            }
        };

        let committed = receipt.committed;
        if let Some(error) = receipt.unaudited {
            return Err(self
                .undo_unaudited_commit(&mut tx, before, committed.revision, error)
                .await);
        }
        tx.status = TxStatus::Committed;
        self.rotate_audit().await;
        Ok(TxOutcome {
            value,
            revision: committed.revision,
            checksum: committed.checksum,
            state,
            transaction: tx,
        })
    }

    fn scan_secrets(&self, working: &mut ChecklistState, tx: &mut Transaction) -> Result<()> {
        match self.options.secrets {
            SecretMode::Off => Ok(()),
            SecretMode::Reject => match secrets::scan_state(working, false).into_iter().next() {
                Some(finding) => Err(Error::SecretDetected {
                    path: self.store.info().location_path().to_owned(),
                    field_path: finding.field_path,
                }),
                None => Ok(()),
            },
            SecretMode::Redact => {
                for finding in secrets::scan_state(working, true) {
                    tx.operations
                        .push(format!("redacted a {} at {}", finding.kind, finding.field_path));
                }
                Ok(())
            }
        }
    }

    /// Audits the failure and hands the error back.
    async fn rollback(
        &self,
        tx: &mut Transaction,
        before: Option<u64>,
        error: Error,
        backtrace: Option<String>,
    ) -> Error {
        tx.status = TxStatus::RolledBack;
        let mut record = AuditRecord::new(AuditEvent::Rollback)
            .in_transaction(&tx.id)
            .lock_note(tx.lock_note.as_ref())
            .revisions(before, before)
            .operations(tx.operations.clone())
            .error(error.to_string());
        record.backtrace = backtrace.filter(|b| !b.contains("disabled backtrace"));
        if let Err(audit_error) = self.store.append_audit(&record).await {
            tracing::warn!(%audit_error, tx_id = tx.id, "could not audit a rollback");
        }
        error
    }

    /// The state was written but its commit could not be audited: write the snapshot
    /// back so no unaudited commit stands, then roll back.
    async fn undo_unaudited_commit(
        &self,
        tx: &mut Transaction,
        before: u64,
        committed: u64,
        error: Error,
    ) -> Error {
        match self
            .store
            .commit(&tx.snapshot, Expectation::Revision(committed))
            .await
        {
            Ok(restored) => {
                tx.operations.push(format!(
                    "revision {committed} could not be audited; restored the snapshot as revision {}",
                    restored.revision
                ));
                self.rollback(tx, Some(before), error, None).await
            }
            Err(restore_error) => {
                tx.status = TxStatus::Committed;
                Error::invalid(format!(
                    "revision {committed} of {} was committed but could not be audited ({error}) nor \
                     undone ({restore_error}); the state stands at revision {committed}",
                    self.store.info().location
                ))
            }
        }
    }

    /// A conflict without retries: note it in the newer state's `conflicts` section
    /// (resolution: the stored state wins), if this transaction still holds the lock.
    async fn record_unresolved_conflict(&self, guard: &LockGuard, tx: &mut Transaction) {
        if guard.ensure_held().await.is_err() {
            return;
        }
        let Ok(mut latest) = self.store.read_existing().await else {
            return;
        };
        latest.conflicts = Some(ConflictRecord {
            detected: now(),
            resolution: ConflictResolution::Remote,
            extra: Default::default(),
        });
        let expect = Expectation::current(&latest);
        if let Ok(committed) = self.store.commit(&latest, expect).await {
            tx.operations.push(format!(
                "conflict recorded in revision {} (the stored state was kept)",
                committed.revision
            ));
        }
    }

    /// Writes `working` with its audit `commit` record, keeping the state it replaces
    /// as a backup when the policy asks for one; the store prunes the backups by the
    /// policy as it adds one.
    async fn write(
        &self,
        working: &ChecklistState,
        replacing: u64,
        commit: AuditRecord,
    ) -> Result<WriteReceipt> {
        let context = CommitContext {
            replacing_revision: Some(replacing),
        };
        let keep = self.policy.should_back_up(&context).then(|| KeepBackup {
            reason: "commit".to_owned(),
            policy: Some(Arc::clone(&self.policy) as Arc<dyn BackupPolicy>),
        });
        self.store
            .write_state(
                working,
                replacing.saturating_add(1),
                Precondition::Revision(replacing),
                keep,
                Some(commit),
            )
            .await
    }

    /// Audit rotation after a commit: a failure here never undoes the commit.
    async fn rotate_audit(&self) {
        if let Err(error) = self.store.rotate_audit().await {
            tracing::warn!(%error, "could not rotate the audit log");
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

fn catch_panic_sync<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::Panicked {
            message: panic_message(payload.as_ref()),
        })
    })
}

/// Turns a panic while polling the change's future into [`Error::Panicked`].
struct CatchPanic<F>(Pin<Box<F>>);

impl<T, F: Future<Output = Result<T>>> Future for CatchPanic<F> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(Error::Panicked {
                message: panic_message(payload.as_ref()),
            })),
        }
    }
}
