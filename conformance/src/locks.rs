//! Cases for the [`LockProvider`](checklist_core::LockProvider) contract, one per
//! bullet.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use checklist_core::{Error, LockNote, LockRequest};

use crate::support::{ensure, step};
use crate::{CaseResult, Failure, Subject};

fn request(timeout_ms: u64) -> LockRequest {
    LockRequest {
        timeout: Duration::from_millis(timeout_ms),
        retry_interval: Duration::from_millis(10),
        ..LockRequest::default()
    }
}

/// While a guard is alive, no other acquire succeeds.
pub async fn lock_is_exclusive(subject: &Subject) -> CaseResult {
    let guard = step(
        "acquiring a free lock",
        subject.locks.acquire(&request(1000)).await,
    )?;
    let second = subject.locks.acquire(&request(150)).await;
    ensure!(
        second.is_err(),
        "a second acquire succeeded while the lock was held"
    );
    let other_task = {
        let locks = Arc::clone(&subject.locks);
        tokio::spawn(async move { locks.acquire(&request(150)).await.map(|_| ()) })
    };
    let from_task = other_task
        .await
        .map_err(|e| Failure(format!("task panicked: {e}")))?;
    ensure!(
        from_task.is_err(),
        "an acquire from another task succeeded while the lock was held"
    );
    drop(guard);
    Ok(())
}

/// An acquire that cannot get the lock in time fails with `LockTimeout` naming the
/// holder.
pub async fn acquire_times_out_with_holder(subject: &Subject) -> CaseResult {
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let started = std::time::Instant::now();
    match subject.locks.acquire(&request(TIMEOUT_MS)).await {
        Err(Error::LockTimeout {
            holder: Some(holder), ..
        }) => {
            ensure!(
                holder.lock_id == guard.info().lock_id,
                "the timeout names lock {} but {} holds it",
                holder.lock_id,
                guard.info().lock_id
            );
            ensure!(
                holder.pid == std::process::id(),
                "the holder's pid is {}, not ours",
                holder.pid
            );
        }
        Err(Error::LockTimeout { holder: None, .. }) => {
            return Err(Failure("the timeout does not name the holder".into()));
        }
        Err(other) => return Err(Failure(format!("expected LockTimeout, got: {other}"))),
        Ok(_) => return Err(Failure("the lock was acquired twice".into())),
    }
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(TIMEOUT_MS),
        "the acquire gave up after {waited:?}, before its {TIMEOUT_MS} ms timeout"
    );
    // The contract allows one retry interval past the timeout; the rest of the margin
    // is for a loaded machine, and still well short of an acquire that waits twice as
    // long as asked.
    ensure!(
        waited < Duration::from_millis(TIMEOUT_MS + TIMEOUT_MARGIN_MS),
        "the acquire gave up after {waited:?}, long after its {TIMEOUT_MS} ms timeout"
    );
    Ok(())
}

/// The timeout of [`acquire_times_out_with_holder`]'s waiting acquire, and how long
/// past it the acquire may still return.
const TIMEOUT_MS: u64 = 1_000;
const TIMEOUT_MARGIN_MS: u64 = 1_500;

/// `inspect` shows the holder and a waiting acquire, the waiter is gone once it stops
/// waiting, and a free lock has neither a holder nor an unreadable one.
pub async fn waiters_are_visible(subject: &Subject) -> CaseResult {
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let waiter = {
        let locks = Arc::clone(&subject.locks);
        tokio::spawn(async move { locks.acquire(&request(10_000)).await })
    };
    let mut status = step("inspect", subject.locks.inspect().await)?;
    for _ in 0..1000 {
        if !status.waiters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = step("inspect", subject.locks.inspect().await)?;
    }
    ensure!(
        status.holder.as_ref().map(|h| &h.lock_id) == Some(&guard.info().lock_id),
        "inspect does not show the holder"
    );
    ensure!(
        status.unreadable.is_none(),
        "a holder whose metadata was read is also reported as unreadable: {:?}",
        status.unreadable
    );
    ensure!(
        status.waiters.iter().any(|w| w.pid == std::process::id()),
        "the waiter is not listed with our pid: {:?}",
        status.waiters
    );
    step("releasing", guard.release().await)?;
    let acquired = waiter
        .await
        .map_err(|e| Failure(format!("waiter panicked: {e}")))?;
    let next = step("the waiter acquiring after the release", acquired)?;
    let after = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        after.waiters.is_empty(),
        "a waiter that got the lock is still listed: {:?}",
        after.waiters
    );
    step("releasing", next.release().await)?;
    let free = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        free.holder.is_none() && free.unreadable.is_none(),
        "a free lock is reported as held: {free:?}"
    );
    Ok(())
}

/// After a release the lock is free at once; after a drop the next acquire gets it
/// without waiting out a timeout, and it is free soon after.
pub async fn release_lets_the_next_acquire_in(subject: &Subject) -> CaseResult {
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    step("releasing", guard.release().await)?;
    let status = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        status.holder.is_none(),
        "the lock is still held after its guard was released: {status:?}"
    );
    let guard = step(
        "acquiring after release",
        subject.locks.acquire(&request(1000)).await,
    )?;
    drop(guard);
    let guard = step(
        "acquiring after drop",
        subject.locks.acquire(&request(1000)).await,
    )?;
    drop(guard);
    // A provider may let a dropped guard's lock go in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = step("inspect", subject.locks.inspect().await)?;
        if status.holder.is_none() {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the lock is still held 2 s after its guard was dropped: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every acquisition gets a fresh lock id.
pub async fn lock_ids_are_unique(subject: &Subject) -> CaseResult {
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
        ensure!(
            ids.insert(guard.info().lock_id.clone()),
            "lock id {} was handed out twice",
            guard.info().lock_id
        );
    }
    Ok(())
}

/// `force_release` with a wrong id changes nothing; with the holder's id it frees the
/// lock and the old holder learns it lost it.
pub async fn force_release_needs_the_lock_id(subject: &Subject) -> CaseResult {
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let wrong = step(
        "force_release with a wrong id",
        subject.locks.force_release("not-a-lock-id").await,
    )?;
    ensure!(!wrong, "force_release with a wrong id reported success");
    step(
        "ensure_held after a wrong force_release",
        guard.ensure_held().await,
    )?;
    ensure!(
        subject.locks.acquire(&request(50)).await.is_err(),
        "a wrong id freed the lock"
    );
    let id = guard.info().lock_id.clone();
    ensure!(
        step("force_release", subject.locks.force_release(&id).await)?,
        "force_release with the right id failed"
    );
    match guard.ensure_held().await {
        Err(Error::LockLost { lock_id, .. }) if lock_id == id => {}
        other => {
            return Err(Failure(format!(
                "the old holder should see LockLost, got {other:?}"
            )));
        }
    }
    let next = step(
        "acquiring after force_release",
        subject.locks.acquire(&request(1000)).await,
    )?;
    drop(guard);
    let status = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        status.holder.map(|h| h.lock_id) == Some(next.info().lock_id.clone()),
        "dropping the broken guard released the new holder's lock"
    );
    Ok(())
}

/// A waiting acquire whose future is dropped leaves no trace.
pub async fn dropping_the_acquire_future_cancels_it(subject: &Subject) -> CaseResult {
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let long_wait = request(10_000);
    let waiting = subject.locks.acquire(&long_wait);
    let gave_up = tokio::time::timeout(Duration::from_millis(100), waiting).await;
    ensure!(
        gave_up.is_err(),
        "the acquire finished although the lock was held"
    );
    let status = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        status.waiters.is_empty(),
        "a cancelled acquire is still listed as waiting: {:?}",
        status.waiters
    );
    step("releasing", guard.release().await)?;
    let status = step("inspect", subject.locks.inspect().await)?;
    ensure!(
        status.holder.is_none(),
        "a cancelled acquire took the lock after all"
    );
    Ok(())
}

/// Many tasks contending through one provider hold the lock one at a time, and all
/// get their turn.
pub async fn many_tasks_take_turns(subject: &Subject) -> CaseResult {
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let locks = Arc::clone(&subject.locks);
        let inside = Arc::clone(&inside);
        let overlaps = Arc::clone(&overlaps);
        tasks.push(tokio::spawn(async move {
            let guard = locks.acquire(&request(30_000)).await?;
            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            guard.release().await
        }));
    }
    for task in tasks {
        let result = task.await.map_err(|e| Failure(format!("task panicked: {e}")))?;
        step("a contending task", result)?;
    }
    ensure!(
        overlaps.load(Ordering::SeqCst) == 0,
        "{} tasks held the lock at the same time",
        overlaps.load(Ordering::SeqCst)
    );
    Ok(())
}

/// Two independent providers on the same lock (what two processes would open) report
/// the same resource and capabilities, exclude each other (the timeout names that resource) and see each
/// other's holder.
pub async fn independent_providers_exclude_each_other(subject: &Subject) -> CaseResult {
    let other = subject.reopen_locks()?;
    let guard = step(
        "acquiring through the first provider",
        subject.locks.acquire(&request(1000)).await,
    )?;
    ensure!(
        other.resource() == subject.locks.resource(),
        "two providers on the same lock report different resources: {} and {}",
        other.resource(),
        subject.locks.resource()
    );
    ensure!(
        other.capabilities() == subject.locks.capabilities(),
        "two providers on the same lock declare different capabilities: {:?} and {:?}",
        other.capabilities(),
        subject.locks.capabilities()
    );
    match other.acquire(&request(150)).await {
        Err(Error::LockTimeout {
            holder: Some(h),
            resource,
            ..
        }) if h.lock_id == guard.info().lock_id => ensure!(
            resource == subject.locks.resource(),
            "the timeout names {}, not the contended lock {}",
            resource,
            subject.locks.resource()
        ),
        Err(other_error) => {
            return Err(Failure(format!(
                "expected a LockTimeout naming the holder, got: {other_error}"
            )));
        }
        Ok(_) => {
            return Err(Failure(
                "the second provider acquired a lock the first one holds".into(),
            ));
        }
    }
    let seen = step("inspect through the second provider", other.inspect().await)?;
    ensure!(
        seen.holder.map(|h| h.lock_id) == Some(guard.info().lock_id.clone()),
        "the second provider does not see the first one's holder"
    );
    step("releasing", guard.release().await)?;
    let second = step(
        "acquiring through the second provider",
        other.acquire(&request(1000)).await,
    )?;
    ensure!(
        subject.locks.acquire(&request(100)).await.is_err(),
        "the first provider acquired a lock the second one holds"
    );
    drop(second);
    Ok(())
}

/// Where the provider declares holder notes, a request's note is stored with its
/// holder: the guard, `inspect` through another provider and that provider's lock
/// timeout show it, and the next holder, without a note, shows none (no note is left
/// behind). A provider that does not declare them shows no note at all.
pub async fn holder_notes_are_shown_to_every_provider(subject: &Subject) -> CaseResult {
    let other = subject.reopen_locks()?;
    let note = step(
        "making a note",
        LockNote::new("conformance: CI job 42, nightly import ✓ \"quoted\""),
    )?;
    let expected = subject.locks.capabilities().holder_notes.then(|| note.clone());
    let noted = LockRequest {
        note: Some(note),
        ..request(1000)
    };
    let guard = step("acquiring with a note", subject.locks.acquire(&noted).await)?;
    ensure!(
        guard.info().note == expected,
        "the guard's holder has the note {:?}, expected {expected:?}",
        guard.info().note
    );
    let seen = step("inspect through a second provider", other.inspect().await)?;
    let seen_note = seen.holder.map(|holder| holder.note);
    ensure!(
        seen_note.as_ref() == Some(&expected),
        "inspect through a second provider shows the holder's note as {seen_note:?}, expected {expected:?}"
    );
    match other.acquire(&request(150)).await {
        Err(Error::LockTimeout {
            holder: Some(holder), ..
        }) => ensure!(
            holder.note == expected,
            "the lock timeout names the holder's note as {:?}, expected {expected:?}",
            holder.note
        ),
        Err(other_error) => {
            return Err(Failure(format!(
                "expected a LockTimeout naming the holder, got: {other_error}"
            )));
        }
        Ok(_) => {
            return Err(Failure(
                "the second provider acquired a lock the first one holds".into(),
            ));
        }
    }
    step("releasing", guard.release().await)?;
    let plain = step(
        "acquiring without a note through the second provider",
        other.acquire(&request(1000)).await,
    )?;
    let seen = step("inspect", subject.locks.inspect().await)?;
    let left_over = seen.holder.and_then(|holder| holder.note);
    ensure!(
        left_over.is_none(),
        "a holder that gave no note shows the note {left_over:?} of an earlier one"
    );
    step("releasing", plain.release().await)?;
    Ok(())
}

/// A guard that stays alive keeps the lock however long it is held: after three
/// expiries the holder's `ensure_held` still succeeds, and another provider waiting two
/// more expiries times out naming the same holder instead of taking the lock.
pub async fn a_live_holder_keeps_the_lock_past_its_expiry(subject: &Subject) -> CaseResult {
    let expiry = Duration::from_millis(300);
    let short = |timeout_ms| LockRequest {
        expiry,
        ..request(timeout_ms)
    };
    let guard = step(
        "acquiring with a 300 ms expiry",
        subject.locks.acquire(&short(1000)).await,
    )?;
    tokio::time::sleep(expiry * 3).await;
    step("ensure_held after three expiries", guard.ensure_held().await)?;
    let other = subject.reopen_locks()?;
    match other.acquire(&short(600)).await {
        Err(Error::LockTimeout { holder: Some(h), .. }) if h.lock_id == guard.info().lock_id => {}
        Err(other_error) => {
            return Err(Failure(format!(
                "expected a LockTimeout naming the live holder, got: {other_error}"
            )));
        }
        Ok(_) => {
            return Err(Failure(
                "another provider took the lock of a live holder once its expiry had passed".into(),
            ));
        }
    }
    step(
        "ensure_held after the other provider gave up",
        guard.ensure_held().await,
    )?;
    step("releasing", guard.release().await)?;
    Ok(())
}

/// A lock whose holder is gone is reclaimed by the next acquire — where the provider
/// declares `stale_lock_detection`. Where it does not (an in-process provider, whose
/// holders cannot die without dropping their guard), a leaked guard keeps the lock
/// until `force_release` with its id, and the timeout names it.
pub async fn stale_lock_is_reclaimed(subject: &Subject) -> CaseResult {
    if subject.locks.capabilities().stale_lock_detection {
        let template = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
        let info = template.info().clone();
        step("releasing", template.release().await)?;
        subject.plant_stale_lock(&info)?;
        let planted = step("inspect", subject.locks.inspect().await)?;
        ensure!(
            planted.holder.is_some(),
            "the planted stale lock is not visible to inspect()"
        );
        let started = std::time::Instant::now();
        let guard = step(
            "acquiring over a stale lock (it should be broken, not waited out)",
            subject.locks.acquire(&request(3000)).await,
        )?;
        ensure!(
            started.elapsed() < Duration::from_millis(2500),
            "reclaiming the stale lock took {:?}, nearly the whole timeout",
            started.elapsed()
        );
        ensure!(
            planted.holder.map(|h| h.lock_id) != Some(guard.info().lock_id.clone()),
            "the new holder reused the stale lock's id"
        );
        return Ok(());
    }
    let leaked = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let id = leaked.info().lock_id.clone();
    std::mem::forget(leaked);
    match subject.locks.acquire(&request(100)).await {
        Err(Error::LockTimeout { holder: Some(h), .. }) if h.lock_id == id => {}
        other => {
            return Err(Failure(format!(
                "without stale detection a leaked guard must keep the lock (a timeout naming it), got {:?}",
                other.map(|g| g.info().lock_id.clone())
            )));
        }
    }
    ensure!(
        step("force_release", subject.locks.force_release(&id).await)?,
        "force_release of a leaked lock failed"
    );
    step(
        "acquiring after force_release",
        subject.locks.acquire(&request(1000)).await,
    )?;
    Ok(())
}

/// Many waiters, through independent providers, find the same stale lock at once —
/// where the provider declares `stale_lock_detection`. One of them breaks it; the
/// others wait their turn: none deletes the fresh lock another waiter took in the
/// meantime, so they hold it one at a time and every holder keeps it until it
/// releases. Without stale detection there is nothing to break, and what is checked
/// instead is that a lock whose holder keeps it is broken by none of them: every
/// waiter times out naming the holder.
pub async fn stale_lock_is_broken_by_exactly_one_waiter(subject: &Subject) -> CaseResult {
    if !subject.locks.capabilities().stale_lock_detection {
        return no_waiter_breaks_a_held_lock(subject).await;
    }
    let template = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let info = template.info().clone();
    step("releasing", template.release().await)?;
    subject.plant_stale_lock(&info)?;
    let waiters = 8;
    let start = Arc::new(tokio::sync::Barrier::new(waiters));
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..waiters {
        let locks = subject.reopen_locks()?;
        let (start, inside, overlaps) = (Arc::clone(&start), Arc::clone(&inside), Arc::clone(&overlaps));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let guard = locks.acquire(&request(20_000)).await?;
            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            guard.ensure_held().await?;
            guard.release().await
        }));
    }
    for task in tasks {
        let result = task.await.map_err(|e| Failure(format!("task panicked: {e}")))?;
        step("a waiter over the stale lock", result)?;
    }
    ensure!(
        overlaps.load(Ordering::SeqCst) == 0,
        "{} waiters held the lock at the same time after the stale lock was broken",
        overlaps.load(Ordering::SeqCst)
    );
    Ok(())
}

/// Eight independent providers wait at once for a lock that is held and never
/// released while they wait: all of them time out, naming the holder.
async fn no_waiter_breaks_a_held_lock(subject: &Subject) -> CaseResult {
    let held = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let holder = held.info().lock_id.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let locks = subject.reopen_locks()?;
        tasks.push(tokio::spawn(async move {
            locks.acquire(&request(200)).await.map(drop)
        }));
    }
    for task in tasks {
        match task.await.map_err(|e| Failure(format!("task panicked: {e}")))? {
            Err(Error::LockTimeout {
                holder: Some(info), ..
            }) if info.lock_id == holder => {}
            other => {
                return Err(Failure(format!(
                    "a waiter on a held lock should time out naming holder {holder}, got {other:?}"
                )));
            }
        }
    }
    step("ensure_held after the waiters", held.ensure_held().await)?;
    step("releasing", held.release().await)
}

/// A holder learns that another provider — what another process opens — released its
/// lock by id: its `ensure_held` fails with `LockLost`, not only after a release through
/// its own provider. Where the provider is cross-process, a holder in another process
/// learns it too.
pub async fn a_holder_learns_of_a_release_by_another_provider(subject: &Subject) -> CaseResult {
    let other = subject.reopen_locks()?;
    let guard = step("acquiring", subject.locks.acquire(&request(1000)).await)?;
    let id = guard.info().lock_id.clone();
    ensure!(
        step(
            "force_release through another provider",
            other.force_release(&id).await
        )?,
        "another provider could not force-release lock {id}"
    );
    match guard.ensure_held().await {
        Err(Error::LockLost { lock_id, .. }) if lock_id == id => {}
        other => {
            return Err(Failure(format!(
                "after another provider released lock {id}, its holder should see LockLost, got {other:?}"
            )));
        }
    }
    drop(guard);
    if !subject.locks.capabilities().cross_process {
        return Ok(());
    }
    let holder = subject.hold_in_another_process(Duration::from_secs(30))?;
    ensure!(
        step(
            "force_release of the other process's lock",
            subject.locks.force_release(holder.lock_id()).await
        )?,
        "could not force-release lock {} held by pid {}",
        holder.lock_id(),
        holder.pid()
    );
    ensure!(
        holder.wait_for("lost", Duration::from_secs(10)).is_some(),
        "the holder in pid {} did not notice, within 10 s, that its lock was released",
        holder.pid()
    );
    Ok(())
}

/// A holder alive in another process keeps the lock however long it holds it, past
/// its expiry many times over (it renews): no waiter judges it gone. Then it releases,
/// and the lock is free.
pub async fn a_live_holder_in_another_process_keeps_the_lock(subject: &Subject) -> CaseResult {
    if !subject.locks.capabilities().cross_process {
        return Ok(());
    }
    // Long enough that a loaded machine does not stall a renewal past it; the wait is
    // three times as long.
    let mut holder = subject.hold_in_another_process(Duration::from_millis(1_500))?;
    match subject.locks.acquire(&request(4_500)).await {
        Err(Error::LockTimeout {
            holder: Some(seen), ..
        }) => ensure!(
            seen.pid == holder.pid() && seen.lock_id == holder.lock_id(),
            "the timeout names pid {} (lock {}), not the holder, pid {} (lock {})",
            seen.pid,
            seen.lock_id,
            holder.pid(),
            holder.lock_id()
        ),
        Err(other) => {
            return Err(Failure(format!(
                "expected a LockTimeout naming the holder, got: {other}"
            )));
        }
        Ok(_) => {
            return Err(Failure(format!(
                "took the lock held by live pid {} in another process (its 1.5 s expiry renewed all along)",
                holder.pid()
            )));
        }
    }
    holder
        .release(Duration::from_secs(10))
        .map_err(|e| Failure(e.to_string()))?;
    let after = step(
        "acquiring after the other process released",
        subject.locks.acquire(&request(5_000)).await,
    )?;
    step("releasing", after.release().await)?;
    Ok(())
}

/// A holder that is alive but stopped (SIGSTOP: hung, paused by a debugger) stops
/// renewing, and loses the lock once its expiry passes: a waiter takes it, and not
/// before the expiry. When the holder runs again, it learns it lost the lock.
pub async fn a_stopped_holder_loses_the_lock_after_its_expiry(subject: &Subject) -> CaseResult {
    let capabilities = subject.locks.capabilities();
    if !(capabilities.cross_process && capabilities.stale_lock_detection) {
        return Ok(());
    }
    let expiry = Duration::from_millis(1_500);
    let holder = subject.hold_in_another_process(expiry)?;
    holder
        .stop()
        .map_err(|e| Failure(format!("stopping the holder: {e}")))?;
    let stopped = std::time::Instant::now();
    let taken = subject.locks.acquire(&request(8_000)).await;
    let waited = stopped.elapsed();
    holder
        .resume()
        .map_err(|e| Failure(format!("resuming the holder: {e}")))?;
    let guard = match taken {
        Ok(guard) => guard,
        Err(e) => {
            return Err(Failure(format!(
                "a holder stopped for {waited:?} kept its lock past its {expiry:?} expiry: {e}"
            )));
        }
    };
    // The holder may have renewed just before it stopped: a third of the expiry is
    // the most it can be ahead.
    ensure!(
        waited >= expiry / 2,
        "the lock of a stopped holder was taken after {waited:?}, before its {expiry:?} expiry"
    );
    // Soon after the expiry, not after waiting out most of the timeout.
    ensure!(
        waited < expiry * 4,
        "the lock of a holder stopped with a {expiry:?} expiry was taken only after {waited:?}"
    );
    ensure!(
        holder.wait_for("lost", Duration::from_secs(10)).is_some(),
        "the holder, running again, did not learn within 10 s that its lock was taken"
    );
    step("releasing", guard.release().await)?;
    Ok(())
}

/// A holder killed in another process (gone without releasing) loses the lock at
/// once: the next acquire takes it long before the lock's expiry.
pub async fn a_killed_holder_in_another_process_is_replaced_at_once(subject: &Subject) -> CaseResult {
    let capabilities = subject.locks.capabilities();
    if !(capabilities.cross_process && capabilities.stale_lock_detection) {
        return Ok(());
    }
    let mut holder = subject.hold_in_another_process(Duration::from_secs(120))?;
    let pid = holder.pid();
    holder
        .kill()
        .map_err(|e| Failure(format!("killing the holder: {e}")))?;
    let guard = match subject.locks.acquire(&request(20_000)).await {
        Ok(guard) => guard,
        Err(e) => {
            return Err(Failure(format!(
                "the lock of killed pid {pid} was not taken within 20 s (its expiry is 120 s): {e}"
            )));
        }
    };
    step("releasing", guard.release().await)?;
    Ok(())
}
