//! Cases for the [`StateStore`] contract, one per bullet.

use std::sync::Arc;

use checklist_core::ChecklistState;
use checklist_core::archive::ArchivedInstance;
use checklist_core::model::InstanceStatus;
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, AuditRecord, CorruptionKind, Error, Expectation, KeepBackup, RollingBackups, StateStore,
    StateStoreExt,
};

use crate::support::{MARKER, add_step, ensure, sample_state, step};
use crate::{CaseResult, Failure, Subject};

fn expect_conflict(
    result: checklist_core::Result<checklist_core::Committed>,
    found: Option<u64>,
) -> CaseResult {
    match result {
        Err(Error::Conflict { found: f, .. }) if f == found => Ok(()),
        Err(Error::Conflict { found: f, .. }) => Err(Failure(format!(
            "the conflict reported revision {f:?} as found, but the store holds {found:?}"
        ))),
        Err(other) => Err(Failure(format!("expected a Conflict, got: {other}"))),
        Ok(c) => Err(Failure(format!(
            "the write should have been refused as a conflict, but it committed revision {}",
            c.revision
        ))),
    }
}

async fn read_revision(store: &dyn StateStore) -> Result<Option<u64>, Failure> {
    Ok(step("reading the state", store.read().await)?.map(|s| s.revision))
}

/// Before the first write, a read returns `Ok(None)`.
pub async fn read_of_empty_store_is_absent(subject: &Subject) -> CaseResult {
    let state = step("reading an empty store", subject.store.read().await)?;
    ensure!(
        state.is_none(),
        "an empty store returned revision {:?}",
        state.map(|s| s.revision)
    );
    Ok(())
}

/// A write expecting `Absent` on an empty store commits revision 1.
pub async fn first_write_creates_revision_1(subject: &Subject) -> CaseResult {
    let committed = step(
        "the first write",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    ensure!(
        committed.revision == 1,
        "the first write committed revision {}",
        committed.revision
    );
    ensure!(
        committed.checksum.starts_with("sha256:") && committed.checksum.len() == 71,
        "the checksum {:?} is not sha256:<64 hex digits>",
        committed.checksum
    );
    ensure!(
        read_revision(&*subject.store).await? == Some(1),
        "a read after the first write is not at revision 1"
    );
    Ok(())
}

/// A read returns exactly what the last write stored, with the revision and checksum
/// the write returned; unknown fields survive.
pub async fn write_then_read_round_trips(subject: &Subject) -> CaseResult {
    let state = sample_state(3);
    let committed = step("writing", subject.store.commit(&state, Expectation::Absent).await)?;
    let read = step("reading back", subject.store.read().await)?
        .ok_or_else(|| Failure("the state written is gone".into()))?;
    let mut expected = state;
    expected.revision = committed.revision;
    expected.checksum = Some(committed.checksum.clone());
    ensure!(
        read == expected,
        "the state read back differs from the one written:\n read: {read:?}\n want: {expected:?}"
    );
    // A fresh handle has nothing cached: it must decode and verify the stored form.
    let fresh = step("reading through a second handle", subject.reopen()?.read().await)?
        .ok_or_else(|| Failure("a second handle does not see the state".into()))?;
    ensure!(
        fresh == expected,
        "the stored form decodes to another state:\n read: {fresh:?}\n want: {expected:?}"
    );
    Ok(())
}

/// Every committed write adds exactly 1 to the revision.
pub async fn revision_increases_by_one_per_write(subject: &Subject) -> CaseResult {
    let mut state = sample_state(0);
    let mut expect = Expectation::Absent;
    for i in 1..=5u64 {
        add_step(&mut state, &format!("s{i}"));
        let committed = step("a write", subject.store.commit(&state, expect).await)?;
        ensure!(
            committed.revision == i,
            "write {i} committed revision {}",
            committed.revision
        );
        expect = Expectation::Revision(committed.revision);
    }
    ensure!(
        read_revision(&*subject.store).await? == Some(5),
        "after 5 writes the store is not at revision 5"
    );
    Ok(())
}

/// Expecting `Absent` when a state exists is a conflict that changes nothing.
pub async fn absent_expectation_conflicts_when_state_exists(subject: &Subject) -> CaseResult {
    step(
        "the first write",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let before = step("reading", subject.store.read().await)?;
    expect_conflict(
        subject.store.commit(&sample_state(2), Expectation::Absent).await,
        Some(1),
    )?;
    let after = step("reading", subject.store.read().await)?;
    ensure!(before == after, "a refused write changed the state");
    Ok(())
}

/// Expecting an older revision is a conflict that changes nothing.
pub async fn stale_revision_conflicts(subject: &Subject) -> CaseResult {
    let mut state = sample_state(1);
    step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    add_step(&mut state, "second");
    step(
        "write 2",
        subject.store.commit(&state, Expectation::Revision(1)).await,
    )?;
    let before = step("reading", subject.store.read().await)?;
    add_step(&mut state, "lost-update");
    expect_conflict(
        subject.store.commit(&state, Expectation::Revision(1)).await,
        Some(2),
    )?;
    let after = step("reading", subject.store.read().await)?;
    ensure!(before == after, "a stale write changed the state");
    Ok(())
}

/// Expecting a revision the store has not reached is a conflict.
pub async fn future_revision_conflicts(subject: &Subject) -> CaseResult {
    step(
        "write 1",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    expect_conflict(
        subject
            .store
            .commit(&sample_state(2), Expectation::Revision(5))
            .await,
        Some(1),
    )?;
    ensure!(
        read_revision(&*subject.store).await? == Some(1),
        "a refused write moved the revision"
    );
    Ok(())
}

/// Expecting a revision of an empty store is a conflict reporting no state.
pub async fn revision_expectation_on_an_empty_store_conflicts(subject: &Subject) -> CaseResult {
    expect_conflict(
        subject
            .store
            .commit(&sample_state(1), Expectation::Revision(1))
            .await,
        None,
    )?;
    ensure!(
        read_revision(&*subject.store).await?.is_none(),
        "a refused write created a state"
    );
    Ok(())
}

/// Of many writers racing with the same expectation, exactly one commits.
pub async fn concurrent_writers_with_the_same_expectation_exactly_one_wins(subject: &Subject) -> CaseResult {
    let base = sample_state(1);
    step("write 1", subject.store.commit(&base, Expectation::Absent).await)?;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&subject.store);
        let mut state = base.clone();
        add_step(&mut state, &format!("racer-{i}"));
        tasks.push(tokio::spawn(async move {
            store.commit(&state, Expectation::Revision(1)).await
        }));
    }
    let (mut won, mut conflicts) = (0, 0);
    for task in tasks {
        match task
            .await
            .map_err(|e| Failure(format!("a writer task panicked: {e}")))?
        {
            Ok(c) => {
                ensure!(
                    c.revision == 2,
                    "the winning write committed revision {}",
                    c.revision
                );
                won += 1;
            }
            Err(Error::Conflict { .. }) => conflicts += 1,
            Err(other) => {
                return Err(Failure(format!(
                    "a racing writer failed with something else: {other}"
                )));
            }
        }
    }
    ensure!(
        won == 1 && conflicts == 15,
        "{won} writers won and {conflicts} got conflicts; want 1 and 15"
    );
    let state =
        step("reading", subject.store.read().await)?.ok_or_else(|| Failure("state vanished".into()))?;
    ensure!(
        state.completed_steps.len() == 2,
        "the stored state has {} steps; the winner's write should have exactly 2",
        state.completed_steps.len()
    );
    Ok(())
}

/// The store sets `revision` and `checksum` itself.
pub async fn caller_revision_and_checksum_are_ignored(subject: &Subject) -> CaseResult {
    let mut state = sample_state(1);
    state.revision = 999;
    state.checksum = Some("sha256:not-a-checksum".into());
    let committed = step("writing", subject.store.commit(&state, Expectation::Absent).await)?;
    ensure!(
        committed.revision == 1,
        "the store kept the caller's revision: {}",
        committed.revision
    );
    let read =
        step("reading", subject.store.read().await)?.ok_or_else(|| Failure("state vanished".into()))?;
    ensure!(read.revision == 1, "the stored revision is {}", read.revision);
    ensure!(
        read.checksum.as_deref() == Some(committed.checksum.as_str()),
        "the stored checksum is not the one the store computed"
    );
    Ok(())
}

/// A document that breaks the schema is refused before anything is written.
pub async fn invalid_document_is_refused_and_nothing_changes(subject: &Subject) -> CaseResult {
    let good = sample_state(1);
    step("write 1", subject.store.commit(&good, Expectation::Absent).await)?;
    let before = step("reading", subject.store.read().await)?;
    let mut bad = good.clone();
    if let Some(first) = bad.completed_steps.first_mut() {
        first.step_id = String::new();
    }
    match subject.store.commit(&bad, Expectation::Revision(1)).await {
        Err(Error::SchemaInvalid { field_path, .. }) => ensure!(
            field_path == "/completedSteps/0/stepId",
            "the schema error names {field_path}, not /completedSteps/0/stepId"
        ),
        Err(other) => return Err(Failure(format!("expected SchemaInvalid, got: {other}"))),
        Ok(c) => {
            return Err(Failure(format!(
                "an invalid document was committed as revision {}",
                c.revision
            )));
        }
    }
    let after = step("reading", subject.store.read().await)?;
    ensure!(before == after, "a refused invalid write changed the state");
    Ok(())
}

/// A read never returns a document whose checksum does not match its content.
pub async fn checksum_is_verified_on_read(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(2), Expectation::Absent).await,
    )?;
    let bytes = raw
        .read()
        .map_err(|e| Failure(format!("reading the raw bytes: {e}")))?
        .ok_or_else(|| Failure("no raw bytes after a write".into()))?;
    let text = String::from_utf8_lossy(&bytes);
    ensure!(
        text.contains(MARKER),
        "the stored bytes do not contain the template id {MARKER} verbatim"
    );
    let tampered = text.replacen(MARKER, &MARKER.replace("AAAA", "AAAB"), 1);
    raw.write(tampered.as_bytes())
        .map_err(|e| Failure(format!("writing the raw bytes: {e}")))?;
    match subject.store.read().await {
        Err(Error::Corrupted {
            kind: CorruptionKind::ChecksumMismatch,
            ..
        }) => Ok(()),
        Err(other) => Err(Failure(format!(
            "expected a checksum_mismatch corruption, got: {other}"
        ))),
        Ok(state) => Err(Failure(format!(
            "a tampered document was returned as valid (revision {:?})",
            state.map(|s| s.revision)
        ))),
    }
}

/// Bytes that are not a document are reported as a parse error (by a read and by
/// `parse_ignoring_checksum` alike), and a write over them is refused rather than
/// silently replacing them.
pub async fn unparseable_bytes_are_a_parse_error(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    raw.write(b"{{{ not a document")
        .map_err(|e| Failure(format!("writing the raw bytes: {e}")))?;
    let read_path = match subject.store.read().await {
        Err(Error::Corrupted {
            kind: CorruptionKind::ParseError,
            path,
            ..
        }) => path,
        Err(other) => {
            return Err(Failure(format!(
                "expected a parse_error corruption, got: {other}"
            )));
        }
        Ok(_) => return Err(Failure("garbage was returned as a valid state".into())),
    };
    // What reseal parses a hand edit with fails exactly where a read does.
    match subject.store.parse_ignoring_checksum(b"{{{ not a document") {
        Err(Error::Corrupted {
            kind: CorruptionKind::ParseError,
            path,
            ..
        }) if path == read_path => {}
        other => {
            return Err(Failure(format!(
                "parse_ignoring_checksum of garbage must be a parse_error naming {}, got {other:?}",
                read_path.display()
            )));
        }
    }
    match subject
        .store
        .commit(&sample_state(2), Expectation::Revision(1))
        .await
    {
        Err(Error::Corrupted { .. }) => {}
        other => {
            return Err(Failure(format!(
                "a write over a corrupt state must be refused, got {other:?}"
            )));
        }
    }
    let left = raw.read().map_err(|e| Failure(e.to_string()))?;
    ensure!(
        left.as_deref() == Some(b"{{{ not a document".as_slice()),
        "the corrupt bytes were changed; recovery needs them as they were"
    );
    Ok(())
}

/// Refused writes of every kind leave the previous state readable and byte-for-byte
/// unchanged.
pub async fn failed_write_leaves_the_previous_state(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    let state = sample_state(2);
    step("writing", subject.store.commit(&state, Expectation::Absent).await)?;
    let bytes_before = raw.read().map_err(|e| Failure(e.to_string()))?;
    let read_before = step("reading", subject.store.read().await)?;
    let mut invalid = state.clone();
    invalid.schema_version = "not a version".into();
    let refused = [
        subject.store.commit(&state, Expectation::Absent).await,
        subject.store.commit(&state, Expectation::Revision(7)).await,
        subject.store.commit(&invalid, Expectation::Revision(1)).await,
    ];
    for (i, result) in refused.iter().enumerate() {
        ensure!(result.is_err(), "refused write {i} was committed");
    }
    ensure!(
        raw.read().map_err(|e| Failure(e.to_string()))? == bytes_before,
        "refused writes changed the stored bytes"
    );
    ensure!(
        step("reading", subject.store.read().await)? == read_before,
        "refused writes changed the state"
    );
    Ok(())
}

/// While one task commits revision after revision, reads through a second handle
/// always return a complete, verified state — the previous revision or the new one,
/// never a torn, corrupt or missing document, and never an older revision than one
/// already seen.
pub async fn readers_never_see_a_torn_write(subject: &Subject) -> CaseResult {
    let reader_store = subject.reopen()?;
    let mut state = sample_state(40);
    step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let writing = Arc::clone(&writing);
        tokio::spawn(async move {
            let (mut reads, mut last) = (0u64, 0u64);
            loop {
                let still_writing = writing.load(std::sync::atomic::Ordering::SeqCst);
                match reader_store.read().await {
                    Ok(Some(read)) if read.revision >= last => last = read.revision,
                    Ok(Some(read)) => {
                        return Err(format!(
                            "a read went back from revision {last} to {}",
                            read.revision
                        ));
                    }
                    Ok(None) => return Err(format!("read {reads} found no state at all")),
                    Err(e) => return Err(format!("read {reads}, during the writes, failed: {e}")),
                }
                reads += 1;
                if !still_writing {
                    return Ok((reads, last));
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut expect = Expectation::Revision(1);
    for i in 0..40 {
        add_step(&mut state, &format!("while-reading-{i}"));
        let committed = step(
            "a write while reading",
            subject.store.commit(&state, expect).await,
        );
        if committed.is_err() {
            writing.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        expect = Expectation::Revision(committed?.revision);
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let (reads, last) = reader
        .await
        .map_err(|e| Failure(format!("the reader task panicked: {e}")))?
        .map_err(Failure)?;
    ensure!(
        last == 41,
        "after {reads} reads the reader's last revision is {last}, not 41"
    );
    Ok(())
}

/// A second, independent handle sees every commit and takes part in the same
/// compare-and-swap.
pub async fn a_second_handle_sees_every_commit(subject: &Subject) -> CaseResult {
    let other = subject.reopen()?;
    let mut state = sample_state(1);
    step(
        "write through the first handle",
        subject.store.commit(&state, Expectation::Absent).await,
    )?;
    ensure!(
        read_revision(&*other).await? == Some(1),
        "the second handle does not see revision 1"
    );
    add_step(&mut state, "via-second");
    step(
        "write through the second handle",
        other.commit(&state, Expectation::Revision(1)).await,
    )?;
    ensure!(
        read_revision(&*subject.store).await? == Some(2),
        "the first handle does not see revision 2"
    );
    expect_conflict(
        subject.store.commit(&state, Expectation::Revision(1)).await,
        Some(2),
    )
}

/// Appended audit records read back in order, unchanged.
pub async fn audit_records_read_back_in_order(subject: &Subject) -> CaseResult {
    let before = step("reading the audit trail", subject.store.read_audit().await)?
        .records
        .len();
    let records: Vec<_> = (0..25u64)
        .map(|i| {
            AuditRecord::new(if i % 2 == 0 {
                AuditEvent::Begin
            } else {
                AuditEvent::Commit
            })
            .in_transaction(&format!("tx-{i}"))
            .revisions(Some(i), Some(i + 1))
            .operations(vec![format!("operation {i}")])
        })
        .collect();
    for record in &records {
        step("appending", subject.store.append_audit(record).await)?;
    }
    let log = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        log.problems.is_empty(),
        "problems reading the audit trail: {:?}",
        log.problems
    );
    ensure!(
        log.records[before..] == records[..],
        "the audit trail does not read back as appended"
    );
    Ok(())
}

/// Rotation keeps every record readable, oldest first. Each record carries a summary
/// of about 110 KiB, so every round of ten crosses the default 1 MiB part size and
/// really rotates: a rotation that loses the part it rotated out is caught.
pub async fn audit_rotation_keeps_records_in_order(subject: &Subject) -> CaseResult {
    let bulk = "x".repeat(110 * 1024);
    let mut appended = Vec::new();
    for round in 0..3u64 {
        for i in 0..10u64 {
            let record = AuditRecord::new(AuditEvent::Commit)
                .revisions(Some(round * 10 + i), None)
                .operations(vec![bulk.clone()]);
            step("appending", subject.store.append_audit(&record).await)?;
            appended.push(record);
        }
        step("rotating", subject.store.rotate_audit().await)?;
    }
    let log = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        log.problems.is_empty(),
        "problems reading the rotated audit trail: {:?}",
        log.problems
    );
    let revisions =
        |records: &[AuditRecord]| -> Vec<Option<u64>> { records.iter().map(|r| r.revision_before).collect() };
    ensure!(
        log.records == appended,
        "after rotation the records no longer read back in order: read revisions {:?}",
        revisions(&log.records)
    );
    Ok(())
}

/// Records appended concurrently — from many tasks, through two handles — are all kept,
/// each once and intact, and each appender's records in the order it appended them.
pub async fn concurrent_audit_appends_are_all_kept(subject: &Subject) -> CaseResult {
    let other = subject.reopen()?;
    let mut tasks = Vec::new();
    for appender in 0..8u64 {
        let store = if appender % 2 == 0 {
            Arc::clone(&subject.store)
        } else {
            Arc::clone(&other)
        };
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::new();
            for i in 0..10u64 {
                let record = AuditRecord::new(AuditEvent::Commit)
                    .in_transaction(&format!("appender-{appender}"))
                    .revisions(Some(i), Some(i + 1));
                store.append_audit(&record).await?;
                records.push(record);
            }
            Ok::<_, Error>(records)
        }));
    }
    let mut appended = Vec::new();
    for task in tasks {
        let records = task
            .await
            .map_err(|e| Failure(format!("an appender task panicked: {e}")))?;
        appended.push(step("appending concurrently", records)?);
    }
    let log = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        log.problems.is_empty(),
        "concurrent appends left damaged lines: {:?}",
        log.problems
    );
    for (appender, records) in appended.iter().enumerate() {
        let tx = format!("appender-{appender}");
        let kept: Vec<&AuditRecord> = log
            .records
            .iter()
            .filter(|r| r.tx_id.as_deref() == Some(tx.as_str()))
            .collect();
        ensure!(
            kept.len() == records.len() && kept.iter().zip(records).all(|(k, r)| *k == r),
            "of the {} records {tx} appended, the trail holds {} (revisions {:?})",
            records.len(),
            kept.len(),
            kept.iter().map(|r| r.revision_before).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// A backup keeps the revision and checksum stored when it was taken; later writes do
/// not change it; it is listed until deleted.
pub async fn backup_keeps_the_current_state(subject: &Subject) -> CaseResult {
    let none = step(
        "backing up an empty store",
        subject.store.create_backup("manual").await,
    )?;
    ensure!(none.is_none(), "an empty store produced a backup");
    let mut state = sample_state(1);
    let first = step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    let backup = step("backing up", subject.store.create_backup("manual").await)?
        .ok_or_else(|| Failure("no backup of an existing state".into()))?;
    ensure!(
        backup.revision == 1,
        "the backup records revision {}",
        backup.revision
    );
    ensure!(
        backup.checksum == first.checksum,
        "the backup records another checksum"
    );
    ensure!(
        backup.reason == "manual",
        "the backup's reason is {:?}",
        backup.reason
    );
    add_step(&mut state, "later");
    step(
        "write 2",
        subject.store.commit(&state, Expectation::Revision(1)).await,
    )?;
    let listed = step("listing", subject.store.list_backups().await)?;
    ensure!(listed == [backup.clone()], "listed backups: {listed:?}");
    step("deleting", subject.store.delete_backup(&backup.id).await)?;
    ensure!(
        step("listing", subject.store.list_backups().await)?.is_empty(),
        "a deleted backup is still listed"
    );
    match subject.store.delete_backup(&backup.id).await {
        Err(Error::NotFound { .. }) => Ok(()),
        other => Err(Failure(format!(
            "deleting an unknown backup should be refused, got {other:?}"
        ))),
    }
}

/// A write that keeps a backup commits like a write and lists a backup of exactly the
/// revision it replaced; a conflicting one changes nothing and backs up no revision it
/// did not replace.
pub async fn write_keeping_backup_keeps_the_replaced_revision(subject: &Subject) -> CaseResult {
    let keep = || KeepBackup {
        reason: "commit".into(),
        policy: Some(Arc::new(RollingBackups::keep(10))),
    };
    let mut state = sample_state(1);
    let first = step(
        "write 1 keeping a backup",
        subject
            .store
            .commit_keeping_backup(&state, Expectation::Absent, keep())
            .await,
    )?;
    ensure!(
        first.committed.revision == 1 && first.backup.is_none(),
        "the first write reported revision {} and backup {:?}",
        first.committed.revision,
        first.backup
    );
    add_step(&mut state, "second");
    let second = step(
        "write 2 keeping a backup",
        subject
            .store
            .commit_keeping_backup(&state, Expectation::Revision(1), keep())
            .await,
    )?;
    let backup = second
        .backup
        .ok_or_else(|| Failure("replacing revision 1 kept no backup".into()))?;
    ensure!(
        second.committed.revision == 2,
        "the second write committed revision {}",
        second.committed.revision
    );
    ensure!(
        backup.revision == 1 && backup.checksum == first.committed.checksum,
        "the backup records revision {} and checksum {}, not revision 1's {}",
        backup.revision,
        backup.checksum,
        first.committed.checksum
    );
    ensure!(
        backup.reason == "commit",
        "the backup's reason is {:?}",
        backup.reason
    );
    let stored = step("reading", subject.store.read_existing().await)?;
    ensure!(
        stored.revision == 2 && stored.checksum.as_deref() == Some(second.committed.checksum.as_str()),
        "the store holds revision {} after the write",
        stored.revision
    );
    add_step(&mut state, "conflicting");
    match subject
        .store
        .commit_keeping_backup(&state, Expectation::Revision(1), keep())
        .await
    {
        Err(Error::Conflict { found: Some(2), .. }) => {}
        other => {
            return Err(Failure(format!(
                "a write expecting revision 1 over revision 2 should conflict, got {other:?}"
            )));
        }
    }
    let after = step("reading after the conflict", subject.store.read_existing().await)?;
    ensure!(after == stored, "a conflicting write changed the state");
    let listed = step("listing", subject.store.list_backups().await)?;
    ensure!(
        listed.iter().all(|b| b.revision == 1 || b.revision == 2),
        "backups of revisions that were never stored: {listed:?}"
    );
    ensure!(
        listed.contains(&backup),
        "the backup taken by the write is not listed: {listed:?}"
    );
    Ok(())
}

/// After a write that keeps a backup, the backups are what the policy leaves: keep 3
/// leaves the 3 newest.
pub async fn write_keeping_backup_prunes_by_the_policy(subject: &Subject) -> CaseResult {
    let keep = || KeepBackup {
        reason: "commit".into(),
        policy: Some(Arc::new(RollingBackups::keep(3))),
    };
    let mut state = sample_state(1);
    step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    let mut pruned_in_all = Vec::new();
    for revision in 1..=6u64 {
        add_step(&mut state, &format!("step after {revision}"));
        let done = step(
            "writing keeping a backup",
            subject
                .store
                .commit_keeping_backup(&state, Expectation::Revision(revision), keep())
                .await,
        )?;
        pruned_in_all.extend(done.pruned);
    }
    let listed = step("listing", subject.store.list_backups().await)?;
    let mut revisions: Vec<u64> = listed.iter().map(|b| b.revision).collect();
    revisions.sort_unstable();
    ensure!(
        revisions == [4, 5, 6],
        "keep 3 after backing up revisions 1-6 left revisions {revisions:?}"
    );
    ensure!(
        pruned_in_all.len() == 3,
        "the writes reported pruning {pruned_in_all:?}, not the 3 oldest"
    );
    Ok(())
}

/// A finished instance taken out of `state`, marked completed.
fn finished_instance(state: &mut ChecklistState) -> Result<ArchivedInstance, Failure> {
    step(
        "taking the instance out to archive it",
        state.archive_instance(Some(InstanceStatus::Completed), checklist_core::model::now()),
    )
}

/// An archived instance reads back verified with the checksum its history entry
/// carries; the history lists each instance once, and archiving it again replaces it.
pub async fn archive_round_trips_and_indexes_once_per_instance(subject: &Subject) -> CaseResult {
    ensure!(
        step("reading the empty history", subject.store.history().await)?.is_empty(),
        "a new store has a history"
    );
    let mut state = sample_state(3);
    state.revision = 7;
    let archived = finished_instance(&mut state)?;
    let id = archived.instance.id.clone();
    let entry = step("archiving", subject.store.archive(&archived).await)?;
    ensure!(
        entry.instance_id == id && entry.steps == 3 && entry.status == InstanceStatus::Completed,
        "the history entry does not describe the instance: {entry:?}"
    );
    let back = step("reading the archive", subject.store.read_archived(&id).await)?;
    ensure!(
        back.checksum.as_deref() == Some(entry.checksum.as_str()),
        "the archived document's checksum {:?} is not the history's {}",
        back.checksum,
        entry.checksum
    );
    ensure!(
        back.instance == archived.instance
            && back.completed_steps == archived.completed_steps
            && back.archived_from_revision == 7,
        "the archived instance did not read back as archived"
    );
    let mut again = archived.clone();
    again.archived_at += chrono::Duration::seconds(1);
    let second = step(
        "archiving the same instance again",
        subject.store.archive(&again).await,
    )?;
    let history = step("reading the history", subject.store.history().await)?;
    ensure!(
        history == [second.clone()],
        "archiving an instance twice should leave one entry, the second: {history:?}"
    );
    let mut other_state = sample_state(1);
    other_state.revision = 8;
    let other = finished_instance(&mut other_state)?;
    step("archiving another instance", subject.store.archive(&other).await)?;
    let history = step("reading the history", subject.store.history().await)?;
    let ids: Vec<_> = history.iter().map(|e| e.instance_id.as_str()).collect();
    ensure!(
        ids == [id.as_str(), other.instance.id.as_str()],
        "the history is not in archiving order: {ids:?}"
    );
    Ok(())
}

/// Reading an instance that was never archived, or an id that cannot be a file name,
/// is refused; so is archiving an instance whose id cannot be a file name.
pub async fn unknown_or_unsafe_archive_ids_are_refused(subject: &Subject) -> CaseResult {
    match subject.store.read_archived("never-archived").await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(Failure(format!(
                "reading an instance never archived should be refused as not found, got {other:?}"
            )));
        }
    }
    for id in ["../state", "a/b", ".hidden", ""] {
        match subject.store.read_archived(id).await {
            Err(Error::InvalidOperation { .. }) => {}
            other => {
                return Err(Failure(format!(
                    "reading archived instance {id:?} should be refused, got {other:?}"
                )));
            }
        }
    }
    let mut state = sample_state(1);
    state.revision = 1;
    let mut hostile = finished_instance(&mut state)?;
    hostile.instance.id = "../../escape".into();
    match subject.store.archive(&hostile).await {
        Err(Error::InvalidOperation { .. }) => {}
        other => {
            return Err(Failure(format!(
                "archiving an instance with id ../../escape should be refused, got {other:?}"
            )));
        }
    }
    ensure!(
        step("reading the history", subject.store.history().await)?.is_empty(),
        "a refused archive reached the history"
    );
    Ok(())
}
