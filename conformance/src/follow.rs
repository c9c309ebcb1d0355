//! Cases for the [`ChangeFeed`](checklist_core::ChangeFeed) contract and the
//! [`Follower`] core builds on it, one per bullet.
//!
//! Every commit is made through a second handle of the store (another connection,
//! another `FileStore` on the same directory), as another process would make it. The
//! waits are bounded by [`WAKE_LIMIT`] only so that a broken feed fails instead of
//! hanging; they assert nothing about speed.

use std::sync::Arc;
use std::time::Duration;

use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
use checklist_core::follow::{FollowEvent, Follower};
use checklist_core::prelude::*;
use checklist_core::{AuditEvent, BackupPolicy, ChangeWatch, Expectation, LockProvider, StateStore};

use crate::support::{add_step, ensure, sample_state, step};
use crate::{CaseResult, Failure, Subject};

/// How long a case waits for a wake-up or an event before it fails: far above every
/// backend's polling floor (docs/backends.md, "Following changes").
pub const WAKE_LIMIT: Duration = Duration::from_secs(20);

type Coordinator = TransactionCoordinator<Arc<dyn StateStore>, Arc<dyn LockProvider>, Arc<dyn BackupPolicy>>;

/// A coordinator committing through a second handle of the store.
fn other_committer(subject: &Subject) -> Result<Coordinator, Failure> {
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 30_000;
    Ok(TransactionCoordinator::with_options(
        subject.reopen()?,
        Arc::clone(&subject.locks),
        Arc::clone(&subject.policy),
        options,
    ))
}

/// One audited transaction adding the step `id`; the revision it committed.
async fn commit_step(committer: &Coordinator, id: &str) -> Result<u64, Failure> {
    let id = id.to_owned();
    let outcome = committer
        .transact("add a step for a follower", move |state| {
            add_step(state, &id);
            Ok(())
        })
        .await;
    Ok(step("committing through another handle", outcome)?.revision)
}

/// Waits on `watch` until it wakes and the store then reads at `revision`: every
/// commit is made before this is called, so a watch that stops waking fails here.
async fn wait_for_revision(subject: &Subject, watch: &mut Box<dyn ChangeWatch>, revision: u64) -> CaseResult {
    let deadline = tokio::time::Instant::now() + WAKE_LIMIT;
    let mut now = None;
    loop {
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(woke) => step("waiting on the watch", woke)?,
            Err(_) => {
                return Err(Failure(format!(
                    "the watch did not wake for revision {revision} within {} s (the store reads at {now:?})",
                    WAKE_LIMIT.as_secs()
                )));
            }
        }
        now = step("reading the state", subject.store.read().await)?.map(|s| s.revision);
        if now == Some(revision) {
            return Ok(());
        }
    }
}

/// The revisions of the next `count` commits `follower` reports, failing on any other
/// event, on a commit without its audit record, or after [`WAKE_LIMIT`].
async fn next_commits(follower: &mut Follower, count: usize) -> Result<Vec<u64>, Failure> {
    let mut revisions = Vec::with_capacity(count);
    while revisions.len() < count {
        let event = tokio::time::timeout(WAKE_LIMIT, follower.next())
            .await
            .map_err(|_| {
                Failure(format!(
                    "the follower reported {revisions:?} and then nothing for {} s",
                    WAKE_LIMIT.as_secs()
                ))
            })?;
        match step("following", event)? {
            FollowEvent::Committed(commit) => {
                let record = commit.record.as_ref().ok_or_else(|| {
                    Failure(format!(
                        "revision {} was reported without its audit record",
                        commit.revision
                    ))
                })?;
                ensure!(
                    record.event == AuditEvent::Commit
                        && record.tx_id.is_some()
                        && record.revision_after == Some(commit.revision),
                    "revision {} was reported with the record {record:?}",
                    commit.revision
                );
                revisions.push(commit.revision);
            }
            other => {
                return Err(Failure(format!(
                    "the follower reported {other:?} between commits"
                )));
            }
        }
    }
    Ok(revisions)
}

/// Seeds the store with revision 1, then commits revisions 2 to `last` through a
/// second handle, each after the watch made before the first returned for the one
/// before: a watch that stops waking fails at the commit it misses.
async fn watch_through_commits(subject: &Subject, last: u64) -> CaseResult {
    seed(subject).await?;
    let mut watch = step("starting a watch", subject.store.watch().await)?;
    let other = subject.reopen()?;
    for revision in 2..=last {
        step(
            "committing through another handle",
            other
                .commit(
                    &sample_state(revision as usize),
                    Expectation::Revision(revision - 1),
                )
                .await,
        )?;
        wait_for_revision(subject, &mut watch, revision).await?;
    }
    Ok(())
}

/// The store at revision 1, committed through the subject's own handle.
async fn seed(subject: &Subject) -> CaseResult {
    step(
        "seeding the store",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )
    .map(drop)
}

/// A watch made before a commit through another handle wakes after it.
pub async fn a_watch_wakes_for_a_commit_through_another_handle(subject: &Subject) -> CaseResult {
    watch_through_commits(subject, 2).await
}

/// The same watch wakes for each later commit, including one made while nobody was
/// waiting on it (between two calls to `changed`).
pub async fn a_watch_wakes_for_every_commit_after_it_was_made(subject: &Subject) -> CaseResult {
    watch_through_commits(subject, 5).await
}

/// A follower reports every commit another handle makes, in revision order, each once,
/// each with its audit record.
pub async fn a_follower_sees_every_commit_in_order_once(subject: &Subject) -> CaseResult {
    seed(subject).await?;
    let mut follower = step(
        "starting a follower",
        Follower::from_now(Arc::clone(&subject.store)).await,
    )?;
    let committer = Arc::new(other_committer(subject)?);
    let mut seen = Vec::new();
    let mut committed = Vec::new();
    // Two rounds, the second after the follower has reported the first: however the
    // first round's commits fall between its wake-ups, the second needs it to wake
    // again, so a follower woken only once is caught on any machine, loaded or not.
    for round in 0..2 {
        let committing = Arc::clone(&committer);
        let commits = tokio::spawn(async move {
            let mut committed = Vec::new();
            for i in 0..6 {
                committed.push(commit_step(&committing, &format!("followed-{round}-{i}")).await?);
            }
            Ok::<_, Failure>(committed)
        });
        seen.extend(next_commits(&mut follower, 6).await?);
        committed.extend(
            commits
                .await
                .map_err(|e| Failure(format!("the committing task panicked: {e}")))??,
        );
    }
    ensure!(
        seen == committed && committed == (2..=13).collect::<Vec<u64>>(),
        "the follower reported revisions {seen:?} for the commits {committed:?}"
    );
    Ok(())
}

/// A follower started at revision `r` reports every revision after `r`, those already
/// committed included, and none before; one started from now reports only the next.
pub async fn a_follower_starting_between_commits_misses_none_after_its_start(
    subject: &Subject,
) -> CaseResult {
    seed(subject).await?;
    let committer = other_committer(subject)?;
    for i in 0..2 {
        commit_step(&committer, &format!("before-{i}")).await?;
    }
    let mut from_now = step(
        "starting a follower",
        Follower::from_now(Arc::clone(&subject.store)).await,
    )?;
    let mut after_two = step(
        "starting a follower after revision 2",
        Follower::after(Arc::clone(&subject.store), 2).await,
    )?;
    for i in 0..3 {
        commit_step(&committer, &format!("after-{i}")).await?;
    }
    let seen_from_now = next_commits(&mut from_now, 3).await?;
    ensure!(
        seen_from_now == [4, 5, 6],
        "a follower started at revision 3 reported {seen_from_now:?}, not [4, 5, 6]"
    );
    let seen_after_two = next_commits(&mut after_two, 4).await?;
    ensure!(
        seen_after_two == [3, 4, 5, 6],
        "a follower started after revision 2 reported {seen_after_two:?}, not [3, 4, 5, 6]"
    );
    Ok(())
}
