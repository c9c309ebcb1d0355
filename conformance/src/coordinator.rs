//! Cases for the [`TransactionCoordinator`] over a backend: commit, rollback on each
//! failure kind, conflicts, retries, concurrency, re-entrancy, snapshots, backups.

use std::sync::Arc;
use std::time::Duration;

use checklist_core::backup::CommitContext;
use checklist_core::config::SecretMode;
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator, TxStatus};
use checklist_core::model::{ConflictResolution, StepCompletion, StepResult, now};
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, BackupPolicy, BackupRecord, ChecklistState, Error, Expectation, LockProvider, LockRequest,
    RollingBackups, StateStore, StateStoreExt,
};
use chrono::{DateTime, Utc};

use crate::support::{add_step, ensure, sample_state, step};
use crate::{CaseResult, Failure, Subject};

type Coordinator = TransactionCoordinator<Arc<dyn StateStore>, Arc<dyn LockProvider>, Arc<dyn BackupPolicy>>;

fn coordinator(subject: &Subject, adjust: impl FnOnce(&mut CoordinatorOptions)) -> Coordinator {
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 10_000;
    adjust(&mut options);
    TransactionCoordinator::with_options(
        Arc::clone(&subject.store),
        Arc::clone(&subject.locks),
        Arc::clone(&subject.policy),
        options,
    )
}

/// A store holding `sample_state(2)` at revision 1.
async fn seeded(subject: &Subject) -> Result<ChecklistState, Failure> {
    step(
        "seeding the store",
        subject.store.commit(&sample_state(2), Expectation::Absent).await,
    )?;
    step("reading the seed", subject.store.read_existing().await)
}

/// What must hold after any failed transaction: the stored bytes (or, without raw
/// access, the stored state) are exactly as before, the lock is free, and the audit
/// trail ends with a rollback of that error.
async fn assert_rolled_back(
    subject: &Subject,
    before: &ChecklistState,
    raw_before: Option<Vec<u8>>,
) -> CaseResult {
    let after = step("reading after the rollback", subject.store.read_existing().await)?;
    ensure!(
        &after == before,
        "a failed transaction changed the state:\n now: {after:?}\n was: {before:?}"
    );
    if let Ok(raw) = subject.raw() {
        let now = raw.read().map_err(|e| Failure(e.to_string()))?;
        ensure!(now == raw_before, "a failed transaction changed the stored bytes");
    }
    let lock = step(
        "acquiring after the rollback",
        subject
            .locks
            .acquire(&LockRequest::default().with_timeout(Duration::from_millis(500)))
            .await,
    );
    ensure!(lock.is_ok(), "the lock is still held after a failed transaction");
    let audit = step("reading the audit trail", subject.store.read_audit().await)?;
    let last = audit
        .records
        .last()
        .ok_or_else(|| Failure("the audit trail is empty".into()))?;
    ensure!(
        last.event == AuditEvent::Rollback,
        "the last audit record is {:?}, not a rollback",
        last.event
    );
    ensure!(
        last.error.is_some(),
        "the rollback record does not say what went wrong"
    );
    Ok(())
}

fn raw_bytes(subject: &Subject) -> Result<Option<Vec<u8>>, Failure> {
    match subject.raw() {
        Ok(raw) => raw.read().map_err(|e| Failure(e.to_string())),
        Err(_) => Ok(None),
    }
}

/// A transaction commits its change as the next revision and audits begin and commit.
pub async fn commit_applies_the_change_and_audits_it(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let outcome = step(
        "a transaction",
        coordinator(subject, |_| {})
            .transact("add a step", |state| {
                add_step(state, "committed");
                Ok(42)
            })
            .await,
    )?;
    ensure!(outcome.value == 42, "the change's result was lost");
    ensure!(
        outcome.revision == before.revision + 1,
        "committed revision {}",
        outcome.revision
    );
    ensure!(
        outcome.transaction.status == TxStatus::Committed,
        "status {:?}",
        outcome.transaction.status
    );
    let stored = step("reading", subject.store.read_existing().await)?;
    ensure!(
        stored == outcome.state,
        "the stored state is not the committed one"
    );
    ensure!(
        stored.completed_steps.iter().any(|s| s.step_id == "committed"),
        "the change is missing"
    );
    let audit = step("reading the audit trail", subject.store.read_audit().await)?;
    let mine: Vec<_> = audit
        .records
        .iter()
        .filter(|r| r.tx_id.as_deref() == Some(outcome.transaction.id.as_str()))
        .collect();
    ensure!(
        mine.iter().map(|r| r.event).collect::<Vec<_>>() == [AuditEvent::Begin, AuditEvent::Commit],
        "the transaction's audit records are {:?}",
        mine.iter().map(|r| r.event).collect::<Vec<_>>()
    );
    let commit = mine[1];
    ensure!(
        commit.revision_before == Some(before.revision) && commit.revision_after == Some(outcome.revision),
        "the commit record has revisions {:?} -> {:?}",
        commit.revision_before,
        commit.revision_after
    );
    ensure!(
        commit.checksum.as_deref() == Some(outcome.checksum.as_str()),
        "the commit record's checksum differs"
    );
    Ok(())
}

/// The change's own error rolls everything back.
pub async fn change_error_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let result = coordinator(subject, |_| {})
        .transact("fails", |state| -> checklist_core::Result<()> {
            add_step(state, "half-done");
            Err(Error::invalid("the change gave up"))
        })
        .await;
    ensure!(
        matches!(&result, Err(Error::InvalidOperation { message }) if message == "the change gave up"),
        "expected the change's own error, got {result:?}"
    );
    assert_rolled_back(subject, &before, raw).await
}

/// A panic in the change rolls everything back and becomes `Error::Panicked`.
pub async fn change_panic_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let result = coordinator(subject, |_| {})
        .transact("panics", |state| -> checklist_core::Result<()> {
            add_step(state, "half-done");
            panic!("deliberate panic in a change");
        })
        .await;
    ensure!(
        matches!(&result, Err(Error::Panicked { message }) if message.contains("deliberate")),
        "expected Error::Panicked, got {result:?}"
    );
    assert_rolled_back(subject, &before, raw).await
}

/// An async change that panics after it has yielded (in a later poll, not when it is
/// called) rolls back with `Panicked` the same way.
pub async fn async_change_panic_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let result = coordinator(subject, |_| {})
        .transact_async("panics later", panics_after_an_await)
        .await;
    ensure!(
        matches!(&result, Err(Error::Panicked { message }) if message.contains("after an await")),
        "expected Error::Panicked, got {result:?}"
    );
    assert_rolled_back(subject, &before, raw).await
}

async fn panics_after_an_await(mut state: ChecklistState) -> checklist_core::Result<(ChecklistState, ())> {
    add_step(&mut state, "half-done");
    tokio::task::yield_now().await;
    panic!("deliberate panic after an await")
}

/// A change that breaks the schema rolls back with `SchemaInvalid`.
pub async fn schema_violation_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let result = coordinator(subject, |_| {})
        .transact("breaks the schema", |state| {
            state.completed_steps[0].step_id = String::new();
            Ok(())
        })
        .await;
    ensure!(
        matches!(result, Err(Error::SchemaInvalid { .. })),
        "expected SchemaInvalid, got {result:?}"
    );
    assert_rolled_back(subject, &before, raw).await
}

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

fn leak_token(state: &mut ChecklistState) {
    add_step(state, "leaky");
    if let Some(last) = state.completed_steps.last_mut() {
        last.command_results[0].stdout = format!("logged in with {TOKEN}\n");
    }
}

/// With `secrets: reject`, a secret rolls back with `SecretDetected` naming the field,
/// and the secret appears nowhere — not in the error, not in the audit trail.
pub async fn secret_is_refused_and_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let result = coordinator(subject, |o| o.secrets = SecretMode::Reject)
        .transact("leaks a token", |state| {
            leak_token(state);
            Ok(())
        })
        .await;
    let error = match result {
        Err(error @ Error::SecretDetected { .. }) => error,
        other => return Err(Failure(format!("expected SecretDetected, got {other:?}"))),
    };
    ensure!(
        error
            .to_string()
            .contains("/completedSteps/2/commandResults/0/stdout"),
        "{error}"
    );
    ensure!(!error.to_string().contains(TOKEN), "the error repeats the secret");
    assert_rolled_back(subject, &before, raw).await?;
    let audit = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        !format!("{:?}", audit.records).contains(TOKEN),
        "the audit trail repeats the secret"
    );
    Ok(())
}

/// With `secrets: redact`, the secret is replaced by a marker, the commit goes through
/// and the redaction is in the transaction's operations.
pub async fn secret_is_redacted(subject: &Subject) -> CaseResult {
    seeded(subject).await?;
    let outcome = step(
        "a redacting transaction",
        coordinator(subject, |o| o.secrets = SecretMode::Redact)
            .transact("leaks a token", |state| {
                leak_token(state);
                Ok(())
            })
            .await,
    )?;
    let stored = step("reading", subject.store.read_existing().await)?;
    let stdout = &stored.completed_steps[2].command_results[0].stdout;
    ensure!(!stdout.contains(TOKEN), "the secret was written: {stdout}");
    ensure!(
        stdout.contains("[REDACTED:github_token]"),
        "no redaction marker: {stdout}"
    );
    ensure!(
        outcome
            .transaction
            .operations
            .iter()
            .any(|o| o.contains("redacted a github_token")),
        "the redaction is not recorded: {:?}",
        outcome.transaction.operations
    );
    Ok(())
}

/// A transaction whose lock is broken before it writes rolls back with `LockLost`.
pub async fn lost_lock_rolls_back(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let raw = raw_bytes(subject)?;
    let locks = Arc::clone(&subject.locks);
    let result = coordinator(subject, |_| {})
        .transact_async("loses its lock", move |mut state| {
            let locks = Arc::clone(&locks);
            async move {
                add_step(&mut state, "too-late");
                let holder = locks
                    .inspect()
                    .await?
                    .holder
                    .ok_or_else(|| Error::invalid("no holder"))?;
                locks.force_release(&holder.lock_id).await?;
                Ok((state, ()))
            }
        })
        .await;
    ensure!(
        matches!(result, Err(Error::LockLost { .. })),
        "expected LockLost, got {result:?}"
    );
    assert_rolled_back(subject, &before, raw).await
}

/// A writer that bypasses the lock changes the state during a transaction: the
/// transaction's write is a `Conflict`, the other writer's state stands, and the
/// conflict is recorded in its `conflicts` section.
pub async fn conflict_rolls_back_and_is_recorded(subject: &Subject) -> CaseResult {
    seeded(subject).await?;
    let store = Arc::clone(&subject.store);
    let result = coordinator(subject, |_| {})
        .transact_async("races a lockless writer", move |mut state| {
            let store = Arc::clone(&store);
            async move {
                let mut theirs = state.clone();
                add_step(&mut theirs, "theirs");
                store.commit(&theirs, Expectation::current(&theirs)).await?;
                add_step(&mut state, "ours");
                Ok((state, ()))
            }
        })
        .await;
    ensure!(
        matches!(result, Err(Error::Conflict { .. })),
        "expected Conflict, got {result:?}"
    );
    let stored = step("reading", subject.store.read_existing().await)?;
    let ids: Vec<_> = stored
        .completed_steps
        .iter()
        .map(|s| s.step_id.as_str())
        .collect();
    ensure!(
        ids.contains(&"theirs") && !ids.contains(&"ours"),
        "steps after the conflict: {ids:?}"
    );
    ensure!(
        stored.conflicts.as_ref().map(|c| c.resolution) == Some(ConflictResolution::Remote),
        "the conflict is not recorded: {:?}",
        stored.conflicts
    );
    Ok(())
}

/// With retries, a conflicting transaction re-runs on top of the newer state (both
/// changes kept, resolution `merge`); the number of re-runs is bounded.
pub async fn conflict_retry_is_bounded(subject: &Subject) -> CaseResult {
    seeded(subject).await?;
    let store = Arc::clone(&subject.store);
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let outcome = step(
        "a transaction that conflicts once",
        coordinator(subject, |o| o.conflict_retries = 2)
            .transact_async("conflicts once", move |mut state| {
                let store = Arc::clone(&store);
                let run = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if run == 0 {
                        let mut theirs = state.clone();
                        add_step(&mut theirs, "theirs");
                        store.commit(&theirs, Expectation::current(&theirs)).await?;
                    }
                    add_step(&mut state, "ours");
                    Ok((state, ()))
                }
            })
            .await,
    )?;
    ensure!(
        runs.load(std::sync::atomic::Ordering::SeqCst) == 2,
        "the change ran {} times",
        runs.load(std::sync::atomic::Ordering::SeqCst)
    );
    let ids: Vec<_> = outcome
        .state
        .completed_steps
        .iter()
        .map(|s| s.step_id.clone())
        .collect();
    ensure!(
        ids.contains(&"theirs".to_owned()) && ids.contains(&"ours".to_owned()),
        "steps: {ids:?}"
    );
    ensure!(
        outcome.state.conflicts.as_ref().map(|c| c.resolution) == Some(ConflictResolution::Merge),
        "resolution {:?}",
        outcome.state.conflicts
    );

    let store = Arc::clone(&subject.store);
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let result = coordinator(subject, |o| o.conflict_retries = 2)
        .transact_async("always conflicts", move |state| {
            let store = Arc::clone(&store);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut theirs = state.clone();
                let id = format!("theirs-{}", theirs.revision);
                add_step(&mut theirs, &id);
                store.commit(&theirs, Expectation::current(&theirs)).await?;
                Ok((state, ()))
            }
        })
        .await;
    ensure!(
        matches!(result, Err(Error::Conflict { .. })),
        "expected Conflict after the retries, got {result:?}"
    );
    ensure!(
        runs.load(std::sync::atomic::Ordering::SeqCst) == 3,
        "1 run + 2 retries expected, got {}",
        runs.load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(())
}

/// 100 concurrent transactions in one process, each adding one step, leave exactly 100
/// new steps and 100 new revisions.
pub async fn concurrent_transactions_each_add_one_step(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let coordinator = Arc::new(coordinator(subject, |o| o.lock.timeout_ms = 60_000));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let coordinator = Arc::clone(&coordinator);
            tokio::spawn(async move {
                coordinator
                    .transact("concurrent", |state| {
                        state.complete_step(
                            StepCompletion {
                                step_id: format!("c-{i}"),
                                result: StepResult::Success,
                                execution_time_ms: 1,
                                command_results: vec![],
                            },
                            now(),
                        )?;
                        Ok(())
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        let result = task.await.map_err(|e| Failure(format!("a task panicked: {e}")))?;
        step("a concurrent transaction", result)?;
    }
    let stored = step("reading", subject.store.read_existing().await)?;
    ensure!(
        stored.completed_steps.len() == before.completed_steps.len() + 100,
        "{} steps instead of {}",
        stored.completed_steps.len(),
        before.completed_steps.len() + 100
    );
    ensure!(
        stored.revision == before.revision + 100,
        "revision {}",
        stored.revision
    );
    Ok(())
}

/// Inside a transaction, a read returns without waiting for the lock the transaction
/// holds, and a nested write is refused at once instead of hanging.
pub async fn nested_read_returns_and_nested_write_is_refused(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let coordinator = Arc::new(coordinator(subject, |o| o.lock.timeout_ms = 5_000));
    let inner = Arc::clone(&coordinator);
    let started = std::time::Instant::now();
    let outcome = step(
        "an outer transaction",
        coordinator
            .transact_async("outer", move |mut state| {
                let inner = Arc::clone(&inner);
                async move {
                    let read = inner.read().await?;
                    let nested = inner.transact("inner", |_| Ok(())).await;
                    add_step(&mut state, "outer");
                    Ok((state, (read, nested.map(|_| ()))))
                }
            })
            .await,
    )?;
    let (read, nested) = outcome.value;
    ensure!(
        read == before,
        "the nested read did not return the committed state"
    );
    ensure!(
        matches!(&nested, Err(Error::InvalidOperation { message }) if message.contains("nested")),
        "the nested write was not refused: {nested:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(4),
        "the nested calls waited {:?}, as if for the lock",
        started.elapsed()
    );
    Ok(())
}

/// The snapshot is a deep copy of the state as read; changing the outcome's copies
/// afterwards changes nothing stored.
pub async fn snapshot_is_independent(subject: &Subject) -> CaseResult {
    let before = seeded(subject).await?;
    let mut outcome = step(
        "a transaction",
        coordinator(subject, |_| {})
            .transact("adds a step", |state| {
                add_step(state, "new");
                Ok(())
            })
            .await,
    )?;
    ensure!(
        outcome.transaction.snapshot == before,
        "the snapshot is not the state as read"
    );
    let committed = step("reading", subject.store.read_existing().await)?;
    outcome.transaction.snapshot.completed_steps.clear();
    add_step(&mut outcome.state, "after-the-fact");
    let still = step("reading again", subject.store.read_existing().await)?;
    ensure!(
        still == committed,
        "changing the outcome's copies changed the stored state"
    );
    Ok(())
}

/// A policy that keeps no backup of a commit (and so never prunes), trying backups in
/// the default order.
#[derive(Debug)]
struct NoCommitBackups;

impl BackupPolicy for NoCommitBackups {
    fn should_back_up(&self, _commit: &CommitContext) -> bool {
        false
    }

    fn to_prune(&self, _backups: &[BackupRecord], _now: DateTime<Utc>) -> Vec<String> {
        Vec::new()
    }

    fn recovery_order(&self, backups: &[BackupRecord]) -> Vec<String> {
        RollingBackups::default().recovery_order(backups)
    }
}

/// Every commit backs up the state it replaces, and the policy's pruning keeps exactly
/// the newest ones; under a policy that asks for no backup, a commit goes through and
/// leaves the backups as they were.
pub async fn backups_follow_the_policy(subject: &Subject) -> CaseResult {
    seeded(subject).await?;
    let coordinator = TransactionCoordinator::with_options(
        Arc::clone(&subject.store),
        Arc::clone(&subject.locks),
        RollingBackups::keep(2),
        CoordinatorOptions::default(),
    );
    let mut revisions = Vec::new();
    for i in 0..5 {
        let outcome = step(
            "a transaction",
            coordinator
                .transact("adds a step", |state| {
                    add_step(state, &format!("b{i}"));
                    Ok(())
                })
                .await,
        )?;
        revisions.push(outcome.revision);
    }
    let backups = step("listing backups", subject.store.list_backups().await)?;
    let kept: Vec<u64> = backups.iter().map(|b| b.revision).collect();
    let last = revisions[revisions.len() - 1];
    ensure!(
        kept == [last - 2, last - 1],
        "kept backups of revisions {kept:?}, want the 2 replaced last"
    );

    let unbacked = TransactionCoordinator::with_options(
        Arc::clone(&subject.store),
        Arc::clone(&subject.locks),
        NoCommitBackups,
        CoordinatorOptions::default(),
    );
    let outcome = step(
        "a transaction under a policy that keeps no backup",
        unbacked
            .transact("adds a step", |state| {
                add_step(state, "unbacked");
                Ok(())
            })
            .await,
    )?;
    ensure!(
        outcome.revision == last + 1,
        "committed revision {} after {last}",
        outcome.revision
    );
    let stored = step("reading", subject.store.read_existing().await)?;
    ensure!(
        stored.revision == outcome.revision
            && stored.completed_steps.last().map(|s| s.step_id.as_str()) == Some("unbacked"),
        "the commit under a policy that keeps no backup is not stored"
    );
    let after = step("listing backups", subject.store.list_backups().await)?;
    ensure!(
        after == backups,
        "a commit under a policy that keeps no backup changed the backups: {:?}, were {kept:?}",
        after.iter().map(|b| b.revision).collect::<Vec<_>>()
    );
    Ok(())
}
