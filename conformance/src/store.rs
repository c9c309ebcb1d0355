//! Cases for the [`StateStore`] contract, one per bullet.

use std::sync::Arc;

use checklist_core::ChecklistState;
use checklist_core::archive::ArchivedInstance;
use checklist_core::model::InstanceStatus;
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, AuditRecord, CorruptionKind, Error, Expectation, KeepBackup, Precondition, RollingBackups,
    StateStore, StateStoreExt,
};

use crate::support::{
    MARKER, TRICKY_TEXT, add_step, ensure, ensure_err, first_difference, raw_bytes, read_afresh,
    sample_state, state_with_every_value, step,
};
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
    let fresh = step("reading through a second handle", subject.reopen()?.read().await)?
        .ok_or_else(|| Failure("a second handle does not see the state".into()))?;
    ensure!(
        fresh == expected,
        "a second handle reads another state:\n read: {fresh:?}\n want: {expected:?}"
    );
    let afresh = read_afresh(subject).await?;
    ensure!(
        afresh == expected,
        "the stored bytes decode to another state:\n read: {afresh:?}\n want: {expected:?}"
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
    let bytes = raw_bytes(raw)?;
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
    ensure_err!(
        subject.store.read_archived("never-archived").await,
        Error::NotFound { .. },
        "reading an instance never archived should be refused as not found"
    );
    for id in ["../state", "a/b", ".hidden", ""] {
        ensure_err!(
            subject.store.read_archived(id).await,
            Error::InvalidOperation { .. },
            "reading archived instance {id:?} should be refused"
        );
    }
    let mut state = sample_state(1);
    state.revision = 1;
    let mut hostile = finished_instance(&mut state)?;
    hostile.instance.id = "../../escape".into();
    ensure_err!(
        subject.store.archive(&hostile).await,
        Error::InvalidOperation { .. },
        "archiving an instance with id ../../escape should be refused"
    );
    ensure!(
        step("reading the history", subject.store.history().await)?.is_empty(),
        "a refused archive reached the history"
    );
    Ok(())
}

/// Every kind of value a document can hold reads back exactly: non-ASCII text in every
/// string field (a French or Japanese step name, a `✓` in a build log, an emoji,
/// right-to-left script, control characters), integers beyond 2^53 and up to the ends
/// of the 64-bit range, floats, nulls, empty containers and deep nesting, as values
/// and as keys of unknown fields, nested as deep as the schema allows
/// ([`MAX_DOCUMENT_DEPTH`](checklist_core::schema::MAX_DOCUMENT_DEPTH)). Read through
/// two handles and decoded afresh from the stored bytes, as another process would. An
/// ASCII-only encoder, integers kept through a float or a codec that cannot read what
/// it wrote fail here.
pub async fn every_json_value_round_trips(subject: &Subject) -> CaseResult {
    let state = state_with_every_value();
    let committed = step(
        "writing every kind of value",
        subject.store.commit(&state, Expectation::Absent).await,
    )?;
    let mut want = state;
    want.revision = committed.revision;
    want.checksum = Some(committed.checksum);
    let want = to_json(&want)?;
    for (which, store) in [
        ("this handle", Arc::clone(&subject.store)),
        ("a second handle", subject.reopen()?),
    ] {
        let read = step("reading every kind of value back", store.read().await)?
            .ok_or_else(|| Failure("the state written is gone".into()))?;
        if let Some(difference) = first_difference(&to_json(&read)?, &want) {
            return Err(Failure(format!("read through {which}, {difference}")));
        }
    }
    // As another process reads it: decoded from the stored bytes, not recalled from
    // what this process wrote.
    let afresh = read_afresh(subject).await?;
    if let Some(difference) = first_difference(&to_json(&afresh)?, &want) {
        return Err(Failure(format!(
            "decoded afresh from the stored bytes, {difference}"
        )));
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure(format!("the model does not serialise: {e}")))
}

/// A write whose document equals the stored one still commits a new revision, audited
/// like any other: the caller saw it succeed, so a reader must see it happen.
pub async fn an_unchanged_document_commits_a_new_revision(subject: &Subject) -> CaseResult {
    let state = sample_state(2);
    let first = step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    let record = AuditRecord::new(AuditEvent::Commit)
        .in_transaction("unchanged-document")
        .revisions(Some(1), Some(2));
    let receipt = step(
        "writing the same document again",
        subject
            .store
            .write_state(&state, 2, Precondition::Revision(1), None, Some(record))
            .await,
    )?;
    ensure!(
        receipt.committed.revision == 2,
        "writing the stored document again reported revision {}, not 2",
        receipt.committed.revision
    );
    ensure!(
        receipt.unaudited.is_none(),
        "the write was not audited: {:?}",
        receipt.unaudited
    );
    let read = step("reading", subject.store.read_existing().await)?;
    ensure!(
        read.revision == 2 && read.checksum.as_deref() == Some(receipt.committed.checksum.as_str()),
        "the store holds revision {} after committing revision 2 (revision 1's checksum was {})",
        read.revision,
        first.checksum
    );
    let log = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        log.records
            .iter()
            .any(|r| r.tx_id.as_deref() == Some("unchanged-document") && r.revision_after == Some(2)),
        "the audit trail has no record of the commit of revision 2"
    );
    ensure_err!(
        subject.store.commit(&state, Expectation::Revision(1)).await,
        Error::Conflict { found: Some(2), .. },
        "after revision 2, a write expecting revision 1 should conflict"
    );
    Ok(())
}

/// A corrupt document is not an absent one: a write expecting no document over bytes
/// that do not verify fails and leaves those bytes, so an init over a damaged store
/// cannot destroy what recovery could still save.
pub async fn absent_expectation_over_a_corrupt_state_changes_nothing(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "write 1",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let good = raw_bytes(raw)?;
    let corrupt_versions = [
        String::from_utf8_lossy(&good)
            .replacen(MARKER, "conformance-marker-BBBB", 1)
            .into_bytes(),
        good[..good.len() / 2].to_vec(),
        b"{{{ not a document".to_vec(),
    ];
    for corrupt in corrupt_versions {
        raw.write(&corrupt)
            .map_err(|e| Failure(format!("damaging the stored bytes: {e}")))?;
        match subject.store.commit(&sample_state(0), Expectation::Absent).await {
            Err(Error::Conflict { .. } | Error::Corrupted { .. } | Error::PreconditionFailed { .. }) => {}
            Err(other) => {
                return Err(Failure(format!(
                    "expected a refusal as a conflict or corruption, got: {other}"
                )));
            }
            Ok(c) => {
                return Err(Failure(format!(
                    "a write expecting no document replaced a corrupt one with revision {}",
                    c.revision
                )));
            }
        }
        let after = raw
            .read()
            .map_err(|e| Failure(format!("reading the raw bytes: {e}")))?;
        ensure!(
            after.as_deref() == Some(corrupt.as_slice()),
            "a refused write expecting no document changed the corrupt bytes"
        );
    }
    Ok(())
}

/// Audit records keep every character: non-ASCII text, control characters and the
/// separators JavaScript treats as line ends, in every text field.
pub async fn audit_records_keep_every_character(subject: &Subject) -> CaseResult {
    let before = step("reading the audit trail", subject.store.read_audit().await)?
        .records
        .len();
    let records: Vec<AuditRecord> = TRICKY_TEXT
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut record = AuditRecord::new(AuditEvent::Commit)
                .in_transaction(&format!("tx-{i}-{text}"))
                .revisions(Some(i as u64), Some(i as u64 + 1))
                .operations(vec![(*text).to_owned(), format!("step {text} ✓")]);
            record.user = format!("zoë {text}");
            record.host = format!("hôte-{i}");
            record.error = Some(format!("erreur: {text}"));
            record
        })
        .collect();
    for record in &records {
        step("appending", subject.store.append_audit(record).await)?;
    }
    let log = step("reading the audit trail", subject.store.read_audit().await)?;
    ensure!(
        log.problems.is_empty(),
        "records with non-ASCII text left problems: {:?}",
        log.problems
    );
    let kept = log.records.get(before..).unwrap_or_default();
    ensure!(
        kept.len() == records.len(),
        "{} records appended, {} read back",
        records.len(),
        kept.len()
    );
    for (kept, appended) in kept.iter().zip(&records) {
        if let Some(difference) = first_difference(&to_json(kept)?, &to_json(appended)?) {
            return Err(Failure(format!("an audit record changed: {difference}")));
        }
    }
    Ok(())
}

/// A record torn by a crash in the middle of an append is reported as a problem, not
/// an error: every record around it still reads back, and so does the next append.
pub async fn a_torn_audit_record_is_reported_not_fatal(subject: &Subject) -> CaseResult {
    let record = |i: u64| {
        AuditRecord::new(AuditEvent::Commit)
            .in_transaction(&format!("around-the-tear-{i}"))
            .revisions(Some(i), Some(i + 1))
    };
    for i in 0..2 {
        step("appending", subject.store.append_audit(&record(i)).await)?;
    }
    subject.tear_audit()?;
    step(
        "appending after the tear",
        subject.store.append_audit(&record(2)).await,
    )?;
    let log = step(
        "reading an audit trail with a torn record (it must not fail)",
        subject.store.read_audit().await,
    )?;
    let around: Vec<&str> = log
        .records
        .iter()
        .filter_map(|r| r.tx_id.as_deref())
        .filter(|tx| tx.starts_with("around-the-tear-"))
        .collect();
    ensure!(
        around == ["around-the-tear-0", "around-the-tear-1", "around-the-tear-2"],
        "the records around the torn one read back as {around:?}"
    );
    ensure!(
        log.problems.len() == 1,
        "the torn record should be reported once, got problems {:?}",
        log.problems
    );
    Ok(())
}

/// Backups `backups` after revision 1 and `backups` more commits, each backed up: the
/// listing, oldest first.
async fn backed_up_history(
    subject: &Subject,
    backups: u64,
) -> Result<Vec<checklist_core::BackupRecord>, Failure> {
    let mut state = sample_state(1);
    step("write 1", subject.store.commit(&state, Expectation::Absent).await)?;
    for revision in 1..=backups {
        add_step(&mut state, &format!("after-{revision}"));
        step(
            "writing keeping a backup",
            subject
                .store
                .commit_keeping_backup(
                    &state,
                    Expectation::Revision(revision),
                    KeepBackup {
                        reason: "commit".into(),
                        policy: Some(Arc::new(RollingBackups::keep(10))),
                    },
                )
                .await,
        )?;
    }
    let listed = step("listing", subject.store.list_backups().await)?;
    ensure!(
        listed.len() == backups as usize,
        "{backups} backed-up writes left {} backups",
        listed.len()
    );
    Ok(listed)
}

/// Deleting a backup removes that backup, and no other: the rest stay listed and read
/// back verified.
pub async fn delete_backup_removes_only_that_backup(subject: &Subject) -> CaseResult {
    let listed = backed_up_history(subject, 4).await?;
    for doomed in [&listed[1], &listed[3]] {
        step("deleting a backup", subject.store.delete_backup(&doomed.id).await)?;
    }
    let left = step("listing", subject.store.list_backups().await)?;
    let want = [listed[0].clone(), listed[2].clone()];
    ensure!(
        left == want,
        "after deleting the backups of revisions {} and {}, the listed revisions are {:?}",
        listed[1].revision,
        listed[3].revision,
        left.iter().map(|b| b.revision).collect::<Vec<_>>()
    );
    for kept in &left {
        let state = step(
            "reading a kept backup",
            subject.store.read_verified_backup(&kept.id).await,
        )?;
        ensure!(
            state.revision == kept.revision,
            "backup {} now reads as revision {}",
            kept.id,
            state.revision
        );
    }
    Ok(())
}

/// A deleted backup is gone for good: its bytes are removed with its listing, and no
/// rebuild of the index brings it back.
pub async fn a_deleted_backup_is_gone_for_good(subject: &Subject) -> CaseResult {
    let listed = backed_up_history(subject, 3).await?;
    let doomed = &listed[1];
    let bytes = subject.backup_access(doomed)?;
    ensure!(
        bytes
            .read()
            .map_err(|e| Failure(format!("reading a backup's bytes: {e}")))?
            .is_some(),
        "the backup hook finds no bytes for listed backup {}",
        doomed.id
    );
    step("deleting a backup", subject.store.delete_backup(&doomed.id).await)?;
    ensure!(
        bytes
            .read()
            .map_err(|e| Failure(format!("reading a backup's bytes: {e}")))?
            .is_none(),
        "deleting backup {} unlisted it but left its bytes",
        doomed.id
    );
    ensure_err!(
        subject
            .store
            .read_backup(&doomed.id)
            .await
            .map(|bytes| bytes.len()),
        Error::NotFound { .. },
        "reading a deleted backup should be refused as not found"
    );
    if subject.store.info().capabilities.backup_index {
        let rebuilt = step(
            "rebuilding the backup index",
            subject.store.rebuild_backup_index().await,
        )?;
        ensure!(
            rebuilt
                .kept
                .iter()
                .all(|b| b.id != doomed.id && b.revision != doomed.revision),
            "rebuilding the index brought deleted backup {} back",
            doomed.id
        );
    }
    Ok(())
}

/// Damages the bytes of `backup` as a disk would: a changed character in its content.
fn damage_backup(subject: &Subject, backup: &checklist_core::BackupRecord) -> Result<Vec<u8>, Failure> {
    let access = subject.backup_access(backup)?;
    let bytes = access
        .read()
        .map_err(|e| Failure(format!("reading backup {}: {e}", backup.id)))?
        .ok_or_else(|| {
            Failure(format!(
                "the backup hook finds no bytes for listed backup {}",
                backup.id
            ))
        })?;
    let damaged = String::from_utf8_lossy(&bytes)
        .replacen(MARKER, "conformance-marker-DDDD", 1)
        .into_bytes();
    ensure!(damaged != bytes, "backup {} does not hold the marker", backup.id);
    access
        .write(&damaged)
        .map_err(|e| Failure(format!("damaging backup {}: {e}", backup.id)))?;
    Ok(damaged)
}

/// A backup whose bytes were damaged is refused: the store hands back the damaged
/// bytes as they are (not another backup's, not repaired) and core's check against
/// the listing fails with [`Error::Corrupted`].
pub async fn a_damaged_backup_is_refused(subject: &Subject) -> CaseResult {
    let listed = backed_up_history(subject, 3).await?;
    let damaged = damage_backup(subject, &listed[1])?;
    let read = step(
        "reading the damaged backup",
        subject.store.read_backup(&listed[1].id).await,
    )?;
    ensure!(
        read == damaged,
        "read_backup of a damaged backup returned other bytes ({} bytes, {} stored)",
        read.len(),
        damaged.len()
    );
    ensure_err!(
        subject
            .store
            .read_verified_backup(&listed[1].id)
            .await
            .map(|state| state.revision),
        Error::Corrupted { .. },
        "a damaged backup should be refused as corrupted"
    );
    for intact in [&listed[0], &listed[2]] {
        step(
            "reading an intact backup",
            subject.store.read_verified_backup(&intact.id).await,
        )?;
    }
    Ok(())
}

/// Rebuilding the backup index deletes and changes nothing: a backup that does not
/// verify is reported, and its bytes are still there afterwards.
pub async fn rebuilding_the_backup_index_deletes_nothing(subject: &Subject) -> CaseResult {
    let listed = backed_up_history(subject, 3).await?;
    let damaged = damage_backup(subject, &listed[0])?;
    let intact: Vec<Option<Vec<u8>>> = listed[1..]
        .iter()
        .map(|b| {
            subject
                .backup_access(b)?
                .read()
                .map_err(|e| Failure(format!("reading backup {}: {e}", b.id)))
        })
        .collect::<Result<_, _>>()?;
    if !subject.store.info().capabilities.backup_index {
        return match subject.store.rebuild_backup_index().await {
            Err(Error::Unsupported { .. }) => Ok(()),
            other => Err(Failure(format!(
                "a backend without an index must refuse to rebuild one, got {other:?}"
            ))),
        };
    }
    let rebuilt = step(
        "rebuilding the backup index",
        subject.store.rebuild_backup_index().await,
    )?;
    ensure!(
        !rebuilt.skipped.is_empty() && rebuilt.kept.iter().all(|b| b.id != listed[0].id),
        "the rebuild should report the damaged backup {} and not list it: kept {:?}, skipped {:?}",
        listed[0].id,
        rebuilt.kept.iter().map(|b| &b.id).collect::<Vec<_>>(),
        rebuilt.skipped
    );
    let still = subject
        .backup_access(&listed[0])?
        .read()
        .map_err(|e| Failure(format!("reading the damaged backup: {e}")))?;
    ensure!(
        still.as_deref() == Some(damaged.as_slice()),
        "rebuilding the index deleted or changed the backup it could not verify"
    );
    for (backup, before) in listed[1..].iter().zip(intact) {
        let after = subject
            .backup_access(backup)?
            .read()
            .map_err(|e| Failure(format!("reading backup {}: {e}", backup.id)))?;
        ensure!(
            after == before,
            "rebuilding the index changed backup {}",
            backup.id
        );
    }
    Ok(())
}

/// Reading archived instance X returns X, whichever was archived last, with every kind
/// of value it held.
pub async fn read_archived_returns_the_instance_asked_for(subject: &Subject) -> CaseResult {
    let mut rich_state = state_with_every_value();
    rich_state.revision = 3;
    let rich = finished_instance(&mut rich_state)?;
    let mut plain_state = sample_state(2);
    plain_state.revision = 4;
    let plain = finished_instance(&mut plain_state)?;
    for archived in [&rich, &plain] {
        step("archiving", subject.store.archive(archived).await)?;
    }
    for archived in [&rich, &plain, &rich] {
        let back = step(
            "reading an archived instance",
            subject.store.read_archived(&archived.instance.id).await,
        )?;
        ensure!(
            back.instance.id == archived.instance.id,
            "reading archived instance {} returned instance {}",
            archived.instance.id,
            back.instance.id
        );
        let mut want = archived.clone();
        want.checksum.clone_from(&back.checksum);
        if let Some(difference) = first_difference(&to_json(&back)?, &to_json(&want)?) {
            return Err(Failure(format!(
                "archived instance {} read back changed: {difference}",
                archived.instance.id
            )));
        }
    }
    Ok(())
}

/// Archiving an instance id again replaces the archived document, not only its
/// history entry: a read returns the second version, with the checksum the history
/// now carries.
pub async fn archiving_again_replaces_the_archived_document(subject: &Subject) -> CaseResult {
    let mut state = sample_state(2);
    state.revision = 5;
    let first = finished_instance(&mut state)?;
    step("archiving", subject.store.archive(&first).await)?;
    let mut second = first.clone();
    second.archived_from_revision = 6;
    second.archived_at += chrono::Duration::seconds(1);
    second.instance.status = InstanceStatus::Failed;
    if let Some(last) = second.completed_steps.last_mut() {
        last.extra
            .insert("x-archived-again".into(), serde_json::json!("second ✓"));
    }
    let entry = step(
        "archiving the same instance again",
        subject.store.archive(&second).await,
    )?;
    let back = step(
        "reading the instance archived twice",
        subject.store.read_archived(&first.instance.id).await,
    )?;
    ensure!(
        back.archived_from_revision == 6 && back.instance.status == InstanceStatus::Failed,
        "the instance archived twice reads back as the first version (from revision {}, {:?})",
        back.archived_from_revision,
        back.instance.status
    );
    ensure!(
        back.checksum.as_deref() == Some(entry.checksum.as_str()),
        "the archived document's checksum {:?} is not its history entry's {}",
        back.checksum,
        entry.checksum
    );
    let history = step("reading the history", subject.store.history().await)?;
    ensure!(
        history == [entry],
        "the history after archiving twice: {history:?}"
    );
    Ok(())
}

/// Archiving an instance that breaks the schema fails with [`Error::SchemaInvalid`]
/// and stores nothing: no history entry, no document.
pub async fn an_invalid_instance_is_not_archived(subject: &Subject) -> CaseResult {
    let mut state = sample_state(2);
    state.revision = 2;
    let mut invalid = finished_instance(&mut state)?;
    if let Some(first) = invalid.completed_steps.first_mut() {
        first.step_id = String::new();
    }
    ensure_err!(
        subject.store.archive(&invalid).await,
        Error::SchemaInvalid { .. },
        "archiving an instance with an empty step id should fail as a schema violation"
    );
    ensure!(
        step("reading the history", subject.store.history().await)?.is_empty(),
        "a refused archive is listed in the history"
    );
    ensure_err!(
        subject
            .store
            .read_archived(&invalid.instance.id)
            .await
            .map(|a| a.instance.id),
        Error::NotFound { .. },
        "a refused archive should not be stored, so reading it should be refused as not found"
    );
    Ok(())
}

/// The quarantine lists what it keeps oldest first, each once, and reads each back by
/// its id. Each corrupt document is replaced after it is quarantined, as recovery does.
pub async fn quarantine_is_listed_oldest_first(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "write 1",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let mut kept = Vec::new();
    for i in 0..4 {
        let corrupt = format!("{{{{{{ corrupt document {i} ✗").into_bytes();
        raw.write(&corrupt)
            .map_err(|e| Failure(format!("writing corrupt bytes: {e}")))?;
        let note = checklist_core::QuarantineNote {
            corruption_type: CorruptionKind::ParseError,
            detail: format!("corrupt document {i}"),
            reason: "conformance".into(),
        };
        let record = step("quarantining", subject.store.quarantine(&corrupt, &note).await)?;
        // What recovery does next: replace what it quarantined.
        step(
            "replacing the quarantined document",
            subject
                .store
                .replace(Some(&corrupt), &sample_state(1), i + 2)
                .await,
        )?;
        kept.push((record.id, corrupt));
        // Apart in time, so that an order by the clock is an order too.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let listed = step("listing the quarantine", subject.store.list_quarantine().await)?;
    let listed_ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    let kept_ids: Vec<&str> = kept.iter().map(|(id, _)| id.as_str()).collect();
    ensure!(
        listed_ids == kept_ids,
        "the quarantine lists {listed_ids:?}, but quarantined {kept_ids:?} in that order"
    );
    for (id, bytes) in &kept {
        let back = step(
            "reading a quarantined document",
            subject.store.read_quarantined(id).await,
        )?;
        ensure!(
            back == *bytes,
            "quarantined document {id} reads back as other bytes"
        );
    }
    Ok(())
}

/// A time with millisecond precision, as every store keeps one.
fn imported_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T10:20:30.123Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

/// A backup imported from another store is listed with its id, revision, checksum,
/// creation time and reason, reads back exactly and verifies; an id already listed or
/// an unsafe one is refused, changing nothing.
pub async fn an_imported_backup_is_listed_as_it_was(subject: &Subject) -> CaseResult {
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let (encoded, _) = step("encoding", subject.store.encode(&sample_state(3), 7))?;
    let record = checklist_core::BackupRecord {
        id: "7-20261201T102030123Z".into(),
        location: "elsewhere/state.yaml.7-20261201T102030123Z".into(),
        revision: 7,
        checksum: encoded.checksum.clone(),
        size: encoded.bytes.len() as u64,
        created_at: imported_time(),
        reason: "commit".into(),
    };
    let kept = step(
        "importing a backup",
        subject.store.import_backup(&record, &encoded.bytes).await,
    )?;
    let listed = step("listing the backups", subject.store.list_backups().await)?;
    let found: Vec<_> = listed.iter().filter(|b| b.id == record.id).collect();
    ensure!(
        found.len() == 1,
        "the imported backup is listed {} times: {listed:?}",
        found.len()
    );
    let found = found[0];
    ensure!(
        (found.revision, &found.checksum, found.created_at, &found.reason)
            == (
                record.revision,
                &record.checksum,
                record.created_at,
                &record.reason
            ),
        "listed as {found:?}, imported as {record:?}"
    );
    ensure!(
        *found == kept,
        "listed as {found:?}, but the import returned {kept:?}"
    );
    ensure!(
        step("reading it back", subject.store.read_backup(&record.id).await)? == encoded.bytes,
        "the imported backup's bytes differ"
    );
    step(
        "verifying it",
        subject.store.read_verified_backup(&record.id).await,
    )?;
    ensure_err!(
        subject.store.import_backup(&record, b"other bytes").await,
        Error::PreconditionFailed { .. },
        "importing a backup id that is listed already should be refused"
    );
    let unsafe_id = checklist_core::BackupRecord {
        id: "../escape".into(),
        ..record.clone()
    };
    ensure_err!(
        subject.store.import_backup(&unsafe_id, &encoded.bytes).await,
        Error::InvalidOperation { .. },
        "importing a backup under an unsafe id should be refused"
    );
    let after = step("listing the backups", subject.store.list_backups().await)?;
    ensure!(after == listed, "a refused import changed the listing: {after:?}");
    ensure!(
        step("reading it back", subject.store.read_backup(&record.id).await)? == encoded.bytes,
        "a refused import changed the backup's bytes"
    );
    Ok(())
}

/// A quarantined document imported from another store is listed with its id, time,
/// size, sha256 and note and reads back exactly; an id already listed or an unsafe one
/// is refused, changing nothing.
pub async fn an_imported_quarantined_document_is_kept_as_it_was(subject: &Subject) -> CaseResult {
    let found = b"{{{ damaged elsewhere \xff\x00".to_vec();
    let record = checklist_core::QuarantineRecord {
        id: "20261201T102030123Z-0a1b2c3d".into(),
        location: "elsewhere/quarantine/state.yaml.20261201T102030123Z-0a1b2c3d".into(),
        quarantined_at: imported_time(),
        size: found.len() as u64,
        sha256: checklist_core::quarantine::bytes_sha256(&found),
        note: checklist_core::QuarantineNote {
            corruption_type: CorruptionKind::ParseError,
            detail: format!("found damaged: {}", TRICKY_TEXT.join(" ")),
            reason: "recovery".into(),
        },
    };
    let kept = step(
        "importing a quarantined document",
        subject.store.import_quarantined(&record, &found).await,
    )?;
    let listed = step("listing the quarantine", subject.store.list_quarantine().await)?;
    ensure!(
        listed == [kept.clone()],
        "listed {listed:?}, the import returned {kept:?}"
    );
    ensure!(
        (&kept.id, kept.quarantined_at, kept.size, &kept.sha256, &kept.note)
            == (
                &record.id,
                record.quarantined_at,
                record.size,
                &record.sha256,
                &record.note
            ),
        "kept as {kept:?}, imported as {record:?}"
    );
    ensure!(
        step(
            "reading it back",
            subject.store.read_quarantined(&record.id).await
        )? == found,
        "the imported document's bytes differ"
    );
    ensure_err!(
        subject.store.import_quarantined(&record, b"other").await,
        Error::PreconditionFailed { .. },
        "importing a quarantine id that is listed already should be refused"
    );
    let unsafe_id = checklist_core::QuarantineRecord {
        id: "../escape".into(),
        ..record.clone()
    };
    ensure_err!(
        subject.store.import_quarantined(&unsafe_id, &found).await,
        Error::InvalidOperation { .. },
        "importing a quarantined document under an unsafe id should be refused"
    );
    ensure!(
        step("listing the quarantine", subject.store.list_quarantine().await)? == listed,
        "a refused import changed the quarantine"
    );
    Ok(())
}

/// A state marked as moved to another store still reads, but every write that does not
/// name its exact bytes fails with [`Error::StoreMoved`] and changes nothing — the
/// check every store's write makes, so no writer anywhere commits to a moved store.
pub async fn a_moved_state_refuses_every_write_but_one_naming_its_bytes(subject: &Subject) -> CaseResult {
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let found = step("reading the stored bytes", subject.store.read_raw().await)?
        .ok_or_else(|| Failure("the store holds nothing after a write".into()))?;
    let mut marked = sample_state(1);
    marked.moved_to = Some(checklist_core::MovedTo {
        backend: "elsewhere".into(),
        location: "elsewhere:/moved/state".into(),
        revision: 1,
        at: imported_time(),
    });
    step(
        "marking the state as moved (a write naming its bytes)",
        subject.store.replace(Some(&found), &marked, 1).await,
    )?;
    let read = step("reading the moved state", subject.store.read().await)?;
    ensure!(
        read.as_ref().and_then(|s| s.moved_to.as_ref()) == marked.moved_to.as_ref(),
        "the moved state reads back as {read:?}"
    );
    let moved_bytes = step("reading the stored bytes", subject.store.read_raw().await)?;
    for (what, result) in [
        (
            "a compare-and-swap on its revision",
            subject
                .store
                .commit(&sample_state(2), Expectation::Revision(1))
                .await,
        ),
        (
            "a write expecting no state",
            subject.store.commit(&sample_state(2), Expectation::Absent).await,
        ),
    ] {
        match result {
            Err(Error::StoreMoved { moved_to, .. })
                if Some(moved_to.as_ref()) == marked.moved_to.as_ref() => {}
            other => {
                return Err(Failure(format!(
                    "{what} over a moved state should fail with StoreMoved naming where it went: {other:?}"
                )));
            }
        }
        ensure!(
            step("reading the stored bytes", subject.store.read_raw().await)? == moved_bytes,
            "{what} over a moved state changed it"
        );
    }
    let moved_bytes = moved_bytes.unwrap_or_default();
    step(
        "replacing the moved state by naming its bytes",
        subject
            .store
            .replace(Some(&moved_bytes), &sample_state(2), 2)
            .await,
    )?;
    ensure!(
        read_revision(subject.store.as_ref()).await? == Some(2),
        "a write naming the moved state's bytes did not replace it"
    );
    Ok(())
}
