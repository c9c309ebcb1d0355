//! Cases for the recovery methods of [`StateStore`] and for
//! [`Recovery`] over them: quarantine, recovery from each kind
//! of corruption, `dataLoss`, a clean next load, reset, restore, reseal, rotation and
//! the backup index.

use std::sync::Arc;
use std::time::Duration;

use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
use checklist_core::model::RecoveryMethod;
use checklist_core::prelude::*;
use checklist_core::quarantine::bytes_sha256;
use checklist_core::recovery::{RecoverRequest, RecoveryReport};
use checklist_core::{
    AuditEvent, BackupPolicy, BackupRecord, ChecklistState, CorruptionKind, Error, Expectation, LockProvider,
    QuarantineNote, QuarantineRecord, Recovery, Remedy, RollingBackups, StateStore, StateStoreExt,
};

use crate::support::{MARKER, add_step, ensure, io, raw_bytes, sample_state, step};
use crate::{CaseResult, Failure, Subject};

type Recoverer = Recovery<Arc<dyn StateStore>, Arc<dyn LockProvider>, Arc<dyn BackupPolicy>>;

fn recovery(subject: &Subject) -> Recoverer {
    recovery_over(subject, Arc::clone(&subject.store), Arc::clone(&subject.locks))
}

/// Recovery of the subject's policy over `store` and `locks` (another handle, say).
fn recovery_over(subject: &Subject, store: Arc<dyn StateStore>, locks: Arc<dyn LockProvider>) -> Recoverer {
    let lock = checklist_core::config::LockSettings {
        timeout_ms: 10_000,
        ..Default::default()
    };
    Recovery::new(store, locks, Arc::clone(&subject.policy)).with_settings(&lock, &Default::default())
}

/// Revision 1 written directly, then three audited transactions (revisions 2–4), each
/// backing up the revision it replaced: backups of 1, 2 and 3; 4 is known committed
/// only from the audit trail.
async fn history(subject: &Subject) -> Result<ChecklistState, Failure> {
    step(
        "writing revision 1",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 10_000;
    let coordinator = TransactionCoordinator::with_options(
        Arc::clone(&subject.store),
        Arc::clone(&subject.locks),
        RollingBackups::keep(3),
        options,
    );
    for i in 0..3 {
        step(
            "committing a transaction",
            coordinator
                .transact("add a step", |state| {
                    add_step(state, &format!("later-{i}"));
                    Ok(())
                })
                .await,
        )?;
    }
    let state = step("reading the last revision", subject.store.read_existing().await)?;
    ensure!(
        state.revision == 4,
        "the history ends at revision {}",
        state.revision
    );
    Ok(state)
}

/// The oldest backup of the [`history`]: revision 1.
async fn oldest_backup(subject: &Subject) -> Result<BackupRecord, Failure> {
    step("listing", subject.store.list_backups().await)?
        .into_iter()
        .min_by_key(|b| b.revision)
        .ok_or_else(|| Failure("no backups after three commits".into()))
}

/// The audit trail holds an `event` record that ends at `revision`.
async fn ensure_audited(subject: &Subject, event: AuditEvent, revision: u64) -> CaseResult {
    let audit = step("reading the audit", subject.store.read_audit().await)?;
    ensure!(
        audit
            .records
            .iter()
            .any(|r| r.event == event && r.revision_after == Some(revision)),
        "no {} record to revision {revision} in the audit trail",
        event.as_str()
    );
    Ok(())
}

fn corrupted_kind(result: checklist_core::Result<Option<ChecklistState>>) -> Result<CorruptionKind, Failure> {
    match result {
        Err(Error::Corrupted { kind, .. }) => Ok(kind),
        Err(other) => Err(Failure(format!("expected a corruption, got: {other}"))),
        Ok(state) => Err(Failure(format!(
            "a damaged document was read as valid (revision {:?})",
            state.map(|s| s.revision)
        ))),
    }
}

/// Writes `corrupt` over the state and checks everything recovery promises: the read
/// fails as `kind` (when given), the load recovers from the newest backup with that
/// `corruptionType` and `dataLoss`, the quarantined bytes equal `corrupt`, and the next
/// loads — through this handle and a fresh one — are clean and recover nothing.
async fn corrupt_and_recover(
    subject: &Subject,
    corrupt: &[u8],
    kind: Option<CorruptionKind>,
    data_loss: bool,
) -> Result<RecoveryReport, Failure> {
    let raw = subject.raw()?;
    let recovery = recovery(subject);
    let quarantined_before = step("listing quarantine", subject.store.list_quarantine().await)?.len();
    let audits_before = step("reading the audit", subject.store.read_audit().await)?
        .records
        .len();
    raw.write(corrupt).map_err(io("writing the corrupt bytes"))?;
    let found = corrupted_kind(subject.store.read().await)?;
    if let Some(kind) = kind {
        ensure!(
            found == kind,
            "the damage was reported as {found}, expected {kind}"
        );
    }
    let loaded = step("loading the corrupt state", recovery.load().await)?;
    let report = loaded
        .recovered
        .ok_or_else(|| Failure("loading a corrupt state did not recover it".into()))?;
    ensure!(
        report.corruption_type == found,
        "the recovery recorded {} but the read reported {found}",
        report.corruption_type
    );
    let record = loaded
        .state
        .recovery
        .clone()
        .ok_or_else(|| Failure("the recovered state has no `recovery` section".into()))?;
    ensure!(
        record.corruption_type == found
            && record.recovery_method == RecoveryMethod::Backup
            && record.data_loss == data_loss,
        "the recovered state records {record:?}; expected {found}, backup, dataLoss {data_loss}"
    );
    let backups = step("listing backups", subject.store.list_backups().await)?;
    let newest = backups.iter().map(|b| b.revision).max();
    ensure!(
        report.backup.as_ref().map(|b| b.revision) == newest,
        "recovery restored {:?}, not the newest backup (revision {newest:?})",
        report.backup
    );
    ensure!(
        loaded.state.completed_steps.len() as u64 == newest.unwrap_or(0),
        "the recovered state does not hold the backup's steps"
    );
    let quarantined = step("listing quarantine", subject.store.list_quarantine().await)?;
    ensure!(
        quarantined.len() == quarantined_before + 1,
        "{} documents were quarantined, expected one",
        quarantined.len() - quarantined_before
    );
    let kept = step(
        "reading the quarantined bytes",
        subject.store.read_quarantined(&quarantined_by(&report)?.id).await,
    )?;
    ensure!(
        kept == corrupt,
        "the quarantined bytes differ from the corrupt document"
    );
    let note = quarantined_by(&report)?;
    ensure!(
        note.sha256 == bytes_sha256(corrupt) && note.note.corruption_type == found,
        "the quarantine note does not describe the corrupt bytes: {note:?}"
    );
    let again = step("loading again", recovery.load().await)?;
    ensure!(again.recovered.is_none(), "the next load recovered again");
    ensure!(
        again.state.revision == report.revision && again.state == loaded.state,
        "the next load returned another state"
    );
    let fresh = step(
        "reading through a second handle",
        subject.reopen()?.read_existing().await,
    )?;
    ensure!(
        fresh.revision == report.revision && fresh.checksum.as_deref() == Some(report.checksum.as_str()),
        "a fresh handle does not read the recovered revision with its checksum"
    );
    ensure!(
        step("listing quarantine", subject.store.list_quarantine().await)?.len() == quarantined_before + 1,
        "a clean load quarantined something"
    );
    let audit = step("reading the audit", subject.store.read_audit().await)?;
    let recoveries: Vec<_> = audit.records[audits_before..]
        .iter()
        .filter(|r| r.event == AuditEvent::Recovery)
        .collect();
    ensure!(
        recoveries.len() == 1 && recoveries[0].revision_after == Some(report.revision),
        "expected one audited recovery to revision {}, found {recoveries:?}",
        report.revision
    );
    Ok(report)
}

/// Where a recovery of corrupt bytes says it kept them.
fn quarantined_by(report: &RecoveryReport) -> Result<&QuarantineRecord, Failure> {
    report.quarantined.as_ref().ok_or_else(|| {
        Failure(format!(
            "the recovery of corrupt bytes quarantined nothing: {report:?}"
        ))
    })
}

/// [`DocumentStore::read_raw`](checklist_core::DocumentStore::read_raw) returns the stored bytes, valid or not.
pub async fn read_raw_returns_the_stored_bytes(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    ensure!(
        step("reading raw from an empty store", subject.store.read_raw().await)?.is_none(),
        "an empty store returned raw bytes"
    );
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let stored = raw_bytes(raw)?;
    ensure!(
        step("reading raw", subject.store.read_raw().await)?.as_deref() == Some(stored.as_slice()),
        "read_raw differs from the stored bytes"
    );
    raw.write(b"{{{ garbage").map_err(io("writing garbage"))?;
    ensure!(
        step("reading raw garbage", subject.store.read_raw().await)?.as_deref()
            == Some(b"{{{ garbage".as_slice()),
        "read_raw did not return corrupt bytes as they are"
    );
    Ok(())
}

/// Quarantine keeps exactly the bytes found, apart from the current document (which it
/// leaves in place: an edit of it afterwards changes nothing quarantined), and refuses
/// bytes that are no longer stored; an id never quarantined is refused.
pub async fn quarantine_keeps_the_exact_bytes(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    let corrupt = b"{{{ corrupt \xff\x00 bytes".to_vec();
    raw.write(&corrupt).map_err(io("writing corrupt bytes"))?;
    let note = QuarantineNote {
        corruption_type: CorruptionKind::ParseError,
        detail: "test".into(),
        reason: "conformance".into(),
    };
    let record = step("quarantining", subject.store.quarantine(&corrupt, &note).await)?;
    ensure!(record.note == note, "the note was not kept: {:?}", record.note);
    ensure!(
        record.size == corrupt.len() as u64,
        "the record's size is {}",
        record.size
    );
    ensure!(
        raw_bytes(raw)? == corrupt,
        "quarantine changed or removed the current document before it was replaced"
    );
    let listed = step("listing", subject.store.list_quarantine().await)?;
    ensure!(listed == [record.clone()], "listed quarantine: {listed:?}");
    ensure!(
        step("reading back", subject.store.read_quarantined(&record.id).await)? == corrupt,
        "the quarantined bytes differ"
    );
    // Whatever happens to the stored document afterwards — rewritten in place by an
    // editor, damaged further — leaves the quarantined bytes as they were.
    raw.write(b"{{{ edited in place")
        .map_err(io("editing the stored bytes in place"))?;
    ensure!(
        step("reading back", subject.store.read_quarantined(&record.id).await)? == corrupt,
        "an edit of the stored document in place changed the quarantined bytes (a quarantine that shares \
         the state file's storage, a hard link say, is not a copy)"
    );
    raw.write(&corrupt)
        .map_err(io("writing the corrupt bytes back"))?;
    match subject.store.quarantine(b"other bytes", &note).await {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            return Err(Failure(format!(
                "quarantining bytes that are not stored: {other:?}"
            )));
        }
    }
    match subject.store.read_quarantined("../state").await {
        Err(Error::InvalidOperation { .. } | Error::NotFound { .. }) => {}
        other => {
            return Err(Failure(format!(
                "a malformed quarantine id was accepted: {other:?}"
            )));
        }
    }
    let unknown = "0-19700101T000000000Z";
    match subject.store.read_quarantined(unknown).await {
        Err(Error::NotFound { id, .. }) if id == unknown => Ok(()),
        other => Err(Failure(format!(
            "reading a quarantine id that was never listed must be refused as not found, got {other:?}"
        ))),
    }
}

/// `write_over` replaces only the exact bytes found, and what it writes verifies.
pub async fn write_over_needs_the_exact_bytes(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    raw.write(b"{{{ corrupt").map_err(io("writing corrupt bytes"))?;
    match subject
        .store
        .replace(Some(b"not these"), &sample_state(2), 7)
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        other => return Err(Failure(format!("write_over over other bytes: {other:?}"))),
    }
    ensure!(
        raw_bytes(raw)? == b"{{{ corrupt",
        "a refused write_over changed the bytes"
    );
    let mut invalid = sample_state(1);
    invalid.completed_steps[0].step_id = String::new();
    match subject.store.replace(Some(b"{{{ corrupt"), &invalid, 7).await {
        Err(Error::SchemaInvalid { .. }) => {}
        other => return Err(Failure(format!("write_over of an invalid state: {other:?}"))),
    }
    ensure!(
        raw_bytes(raw)? == b"{{{ corrupt",
        "an invalid write_over changed the bytes"
    );
    let committed = step(
        "writing over",
        subject
            .store
            .replace(Some(b"{{{ corrupt"), &sample_state(2), 7)
            .await,
    )?;
    let read = step("reading", subject.reopen()?.read_existing().await)?;
    ensure!(
        committed.revision == 7 && read.revision == 7 && read.checksum == Some(committed.checksum),
        "after write_over the store reads revision {}",
        read.revision
    );
    // `None` is the precondition "no document at all": refused while there is one…
    let before = raw_bytes(raw)?;
    match subject.store.replace(None, &sample_state(3), 9).await {
        Err(Error::Conflict { .. } | Error::PreconditionFailed { .. }) => {}
        other => {
            return Err(Failure(format!(
                "write_over(None) over a stored document: {other:?}"
            )));
        }
    }
    ensure!(
        raw_bytes(raw)? == before,
        "a refused write_over(None) changed the bytes"
    );
    // …and met once it is gone, writing exactly the revision asked for.
    raw.remove().map_err(io("deleting the document"))?;
    let committed = step(
        "writing over nothing",
        subject.store.replace(None, &sample_state(3), 9).await,
    )?;
    let read = step("reading", subject.reopen()?.read_existing().await)?;
    ensure!(
        committed.revision == 9 && read.revision == 9 && read.completed_steps.len() == 3,
        "after write_over(None) the store reads revision {}",
        read.revision
    );
    Ok(())
}

/// A listed backup reads back verified with its listed revision and checksum; unknown
/// and malformed ids are refused.
pub async fn read_backup_verifies(subject: &Subject) -> CaseResult {
    history(subject).await?;
    for backup in step("listing", subject.store.list_backups().await)? {
        let state = step(
            "reading a backup",
            subject.store.read_verified_backup(&backup.id).await,
        )?;
        ensure!(
            state.revision == backup.revision && state.checksum.as_deref() == Some(backup.checksum.as_str()),
            "backup {} reads as revision {} ({:?})",
            backup.id,
            state.revision,
            state.checksum
        );
    }
    for bad in ["no-such-backup", "../state.yaml", "a/b", ""] {
        match subject.store.read_verified_backup(bad).await {
            Err(Error::NotFound { .. }) => {}
            other => return Err(Failure(format!("read_backup({bad:?}) gave {other:?}"))),
        }
    }
    Ok(())
}

/// Losing (or damaging) the backup index loses no backup: rebuilding it lists every
/// backup file again, and recovery still finds them. A backend without an index file
/// must say so instead of pretending to rebuild.
pub async fn backup_index_is_rebuilt_after_deletion(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let listed = step("listing", subject.store.list_backups().await)?;
    ensure!(listed.len() == 3, "{} backups after three commits", listed.len());
    if !subject.store.info().capabilities.backup_index {
        return match subject.store.rebuild_backup_index().await {
            Err(Error::Unsupported { .. }) => {
                ensure!(
                    step("listing", subject.store.list_backups().await)? == listed,
                    "a refused rebuild changed the backups"
                );
                Ok(())
            }
            other => Err(Failure(format!(
                "a backend without an index file must refuse to rebuild one clearly, got {other:?}"
            ))),
        };
    }
    let index = subject.backup_index()?;
    index.remove().map_err(io("deleting the backup index"))?;
    let rebuilt = step("rebuilding", subject.store.rebuild_backup_index().await)?;
    ensure!(
        identities(&rebuilt.kept) == identities(&listed) && rebuilt.skipped.is_empty(),
        "the rebuilt index {:?} differs from the lost one {listed:?} (skipped {:?})",
        rebuilt.kept,
        rebuilt.skipped
    );
    ensure!(
        step("listing", subject.store.list_backups().await)? == rebuilt.kept,
        "the rebuilt index is not what list_backups returns"
    );
    index
        .write(b"backups: [[[ damaged")
        .map_err(io("damaging the backup index"))?;
    ensure!(
        subject.store.list_backups().await.is_err(),
        "a damaged index was listed as valid"
    );
    // Recovery rebuilds a damaged index itself.
    let raw = subject.raw()?;
    let mut corrupt = raw_bytes(raw)?;
    corrupt.truncate(corrupt.len() / 3);
    corrupt_and_recover(subject, &corrupt, None, true).await?;
    ensure!(
        identities(&step("listing", subject.store.list_backups().await)?) == identities(&listed),
        "recovery did not rebuild the damaged index"
    );
    Ok(())
}

/// What identifies a backup's content: id, file, revision, checksum, size. (A rebuilt
/// index cannot know the reason of a backup whose index entry was lost.)
fn identities(backups: &[checklist_core::BackupRecord]) -> Vec<(String, String, u64, String, u64)> {
    backups
        .iter()
        .map(|b| {
            (
                b.id.clone(),
                b.location.clone(),
                b.revision,
                b.checksum.clone(),
                b.size,
            )
        })
        .collect()
}

/// Rotation keeps exactly the newest N backups.
pub async fn rotation_keeps_exactly_n(subject: &Subject) -> CaseResult {
    step(
        "writing",
        subject.store.commit(&sample_state(0), Expectation::Absent).await,
    )?;
    let mut options = CoordinatorOptions::default();
    options.lock.timeout_ms = 10_000;
    for keep in [1usize, 3] {
        let coordinator = TransactionCoordinator::with_options(
            Arc::clone(&subject.store),
            Arc::clone(&subject.locks),
            RollingBackups::keep(keep),
            options.clone(),
        );
        for i in 0..(keep + 3) {
            step(
                "committing",
                coordinator
                    .transact("add a step", |state| {
                        add_step(state, &format!("k{keep}-{i}"));
                        Ok(())
                    })
                    .await,
            )?;
        }
        let current = step("reading", subject.store.read_existing().await)?.revision;
        let mut revisions: Vec<u64> = step("listing", subject.store.list_backups().await)?
            .iter()
            .map(|b| b.revision)
            .collect();
        revisions.sort_unstable();
        let expected: Vec<u64> = (current - keep as u64..current).collect();
        ensure!(
            revisions == expected,
            "keeping {keep}, the backups hold revisions {revisions:?}, expected {expected:?}"
        );
    }
    Ok(())
}

/// A flipped byte inside a value: a checksum mismatch, recovered.
pub async fn flipped_byte_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let mut bytes = raw_bytes(subject.raw()?)?;
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER.as_bytes())
        .ok_or_else(|| Failure(format!("the stored bytes do not contain {MARKER}")))?;
    bytes[at + MARKER.len() - 1] ^= 0x01;
    corrupt_and_recover(subject, &bytes, Some(CorruptionKind::ChecksumMismatch), true).await?;
    Ok(())
}

/// The document cut at every tenth of its length: each cut is detected (as whatever
/// kind the read reports) and recovered.
pub async fn truncation_at_every_tenth_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let whole = raw_bytes(subject.raw()?)?;
    for tenth in 1..10 {
        let cut = whole.len() * tenth / 10;
        corrupt_and_recover(subject, &whole[..cut], None, true)
            .await
            .map_err(|f| Failure(format!("cut at {tenth}/10 ({cut} bytes): {f}")))?;
    }
    Ok(())
}

/// An emptied file: a parse error, recovered.
pub async fn emptied_state_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    corrupt_and_recover(subject, b"", Some(CorruptionKind::ParseError), true).await?;
    Ok(())
}

/// Bytes that are not YAML or JSON: a parse error, recovered.
pub async fn unparseable_state_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    corrupt_and_recover(
        subject,
        b"{{{ not: [a document",
        Some(CorruptionKind::ParseError),
        true,
    )
    .await?;
    Ok(())
}

/// A document that breaks the schema (an empty template id): recovered.
pub async fn schema_violation_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let text = String::from_utf8(raw_bytes(subject.raw()?)?).map_err(|e| Failure(e.to_string()))?;
    ensure!(text.contains(MARKER), "the stored bytes do not contain {MARKER}");
    let broken = text.replacen(MARKER, "", 1);
    corrupt_and_recover(
        subject,
        broken.as_bytes(),
        Some(CorruptionKind::SchemaInvalid),
        true,
    )
    .await?;
    Ok(())
}

/// A valid document whose stored checksum is wrong: recovered.
pub async fn wrong_checksum_is_recovered(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let mut bytes = raw_bytes(subject.raw()?)?;
    let at = bytes
        .windows(7)
        .position(|w| w == b"sha256:")
        .ok_or_else(|| Failure("the stored bytes carry no sha256: checksum".into()))?
        + 7;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    corrupt_and_recover(subject, &bytes, Some(CorruptionKind::ChecksumMismatch), true).await?;
    Ok(())
}

/// When the newest backup holds the last committed revision, nothing was lost.
pub async fn recovery_without_a_lost_revision_has_no_data_loss(subject: &Subject) -> CaseResult {
    let last = history(subject).await?;
    let backup = step(
        "backing up the last revision",
        subject.store.create_backup("manual").await,
    )?
    .ok_or_else(|| Failure("no backup of an existing state".into()))?;
    ensure!(
        backup.revision == last.revision,
        "the backup holds revision {}",
        backup.revision
    );
    let report = corrupt_and_recover(subject, b"", Some(CorruptionKind::ParseError), false).await?;
    ensure!(
        report.revision > last.revision,
        "the recovered state was written as revision {}, not above the last committed {}",
        report.revision,
        last.revision
    );
    // A writer that read the old revision must still conflict.
    match subject
        .store
        .commit(&last, Expectation::Revision(last.revision))
        .await
    {
        Err(Error::Conflict { .. }) => Ok(()),
        other => Err(Failure(format!(
            "a write expecting the pre-corruption revision was not a conflict: {other:?}"
        ))),
    }
}

/// Loads after a recovery are clean: nothing is recovered, quarantined or audited again.
pub async fn recovered_state_loads_clean_and_is_not_recovered_again(subject: &Subject) -> CaseResult {
    history(subject).await?;
    corrupt_and_recover(subject, b"{{{", Some(CorruptionKind::ParseError), true).await?;
    let recovery = recovery(subject);
    for _ in 0..3 {
        ensure!(
            step("loading", recovery.load().await)?.recovered.is_none(),
            "a clean state was recovered again"
        );
    }
    ensure!(
        step("recover", recovery.recover(&RecoverRequest::default()).await)?.is_none(),
        "`recover` on a clean state did something"
    );
    let recoveries = step("reading the audit", subject.store.read_audit().await)?
        .records
        .iter()
        .filter(|r| r.event == AuditEvent::Recovery)
        .count();
    ensure!(
        recoveries == 1,
        "{recoveries} recoveries were audited, expected 1"
    );
    Ok(())
}

/// Loads that find the state corrupt at the same time (two commands, two processes)
/// recover it once: the first to get the lock recovers; the other, once it has waited
/// for the lock, finds the state verifies and returns it as it is — without recovering,
/// quarantining or auditing a second time.
pub async fn concurrent_loads_recover_once(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let raw = subject.raw()?;
    raw.write(b"{{{").map_err(io("corrupting"))?;
    let audits_before = step("reading the audit", subject.store.read_audit().await)?
        .records
        .len();
    // Held while both loads read the corrupt state and queue for the lock.
    let guard = step(
        "holding the lock",
        subject
            .locks
            .acquire(&checklist_core::LockRequest::default().with_timeout(Duration::from_secs(10)))
            .await,
    )?;
    let loads: Vec<_> = [
        recovery(subject),
        recovery_over(subject, subject.reopen()?, subject.reopen_locks()?),
    ]
    .into_iter()
    .map(|recovery| tokio::spawn(async move { recovery.load().await }))
    .collect();
    let mut waiting = 0;
    for _ in 0..1000 {
        waiting = step("inspecting the lock", subject.locks.inspect().await)?
            .waiters
            .len();
        if waiting >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(
        waiting >= 2,
        "the two loads never waited for the lock ({waiting} waiting)"
    );
    step("releasing the lock", guard.release().await)?;
    let mut loaded = Vec::new();
    for load in loads {
        let result = load.await.map_err(|e| Failure(format!("a load panicked: {e}")))?;
        loaded.push(step("a concurrent load", result)?);
    }
    let recovered = loaded.iter().filter(|l| l.recovered.is_some()).count();
    ensure!(
        recovered == 1,
        "{recovered} of two concurrent loads recovered the state, expected exactly one"
    );
    ensure!(
        loaded[0].state == loaded[1].state,
        "the loads returned different states: revisions {} and {}",
        loaded[0].state.revision,
        loaded[1].state.revision
    );
    let quarantined = step("listing quarantine", subject.store.list_quarantine().await)?.len();
    ensure!(
        quarantined == 1,
        "{quarantined} documents were quarantined, expected one"
    );
    let audit = step("reading the audit", subject.store.read_audit().await)?;
    let recoveries = audit.records[audits_before..]
        .iter()
        .filter(|r| r.event == AuditEvent::Recovery)
        .count();
    ensure!(
        recoveries == 1,
        "{recoveries} recoveries were audited, expected one"
    );
    Ok(())
}

/// A state deleted from a store that holds backups and an audit trail reads as
/// [`Error::StateMissing`], never as a new store; a load recovers it like a corrupt one:
/// the newest backup that verifies, written above every committed revision, with
/// `corruptionType: missing`, `dataLoss` for the revision that was lost, nothing
/// quarantined (there are no bytes to keep) and a `recovery` audit record.
pub async fn missing_state_is_recovered(subject: &Subject) -> CaseResult {
    let last = history(subject).await?;
    let location = subject.store.info().location_path().to_owned();
    subject.raw()?.remove().map_err(io("deleting the state"))?;
    match subject.store.read_existing().await {
        Err(Error::StateMissing { path, .. }) if path == location => {}
        other => {
            return Err(Failure(format!(
                "a store with backups but no state must read as StateMissing naming {}, got {other:?}",
                location.display()
            )));
        }
    }
    let loaded = step("loading the missing state", recovery(subject).load().await)?;
    let report = loaded
        .recovered
        .ok_or_else(|| Failure("loading a missing state did not recover it".into()))?;
    ensure!(
        report.corruption_type == CorruptionKind::Missing && report.quarantined.is_none(),
        "the recovery of a missing state reports {} and quarantine {:?}",
        report.corruption_type,
        report.quarantined
    );
    ensure!(
        report.backup.as_ref().map(|b| b.revision) == Some(last.revision - 1),
        "restored {:?}, not the newest backup (revision {})",
        report.backup,
        last.revision - 1
    );
    ensure!(
        report.revision > last.revision && report.data_loss,
        "restored as revision {} (dataLoss {}) after revision {} was committed",
        report.revision,
        report.data_loss,
        last.revision
    );
    let record = loaded
        .state
        .recovery
        .clone()
        .ok_or_else(|| Failure("the recovered state has no `recovery` section".into()))?;
    ensure!(
        record.corruption_type == CorruptionKind::Missing && record.data_loss,
        "the recovered state records {record:?}"
    );
    ensure_audited(subject, AuditEvent::Recovery, report.revision).await?;
    let again = step("loading again", recovery(subject).load().await)?;
    ensure!(
        again.recovered.is_none() && again.state.revision == report.revision,
        "the next load recovered again or read another revision"
    );
    Ok(())
}

/// A missing state is restored from the backup asked for, and a reset of a missing
/// state starts again above every committed revision — never at revision 1 below the
/// backups, where the policy would prune the new state's own backups first.
pub async fn missing_state_restores_and_resets_above_every_committed_revision(
    subject: &Subject,
) -> CaseResult {
    let last = history(subject).await?;
    let raw = subject.raw()?;
    let recovery = recovery(subject);
    raw.remove().map_err(io("deleting the state"))?;
    let oldest = oldest_backup(subject).await?;
    let restored = step(
        "restoring into a missing state",
        recovery.restore(&oldest.id).await,
    )?;
    let recovered = restored
        .recovery
        .as_ref()
        .ok_or_else(|| Failure("the restore did not report recovering the missing state".into()))?;
    ensure!(
        recovered.corruption_type == CorruptionKind::Missing
            && restored.revision > last.revision
            && restored.backup.id == oldest.id,
        "restore into a missing state: {restored:?}"
    );
    raw.remove().map_err(io("deleting the state again"))?;
    let reset = step(
        "resetting a missing state",
        recovery
            .recover(&RecoverRequest {
                from: None,
                reset: true,
            })
            .await,
    )?
    .ok_or_else(|| Failure("a reset of a missing state recovered nothing".into()))?;
    ensure!(
        reset.method == RecoveryMethod::Reset && reset.data_loss && reset.revision > restored.revision,
        "a reset of a missing state wrote revision {} ({:?}, dataLoss {}) after revision {}",
        reset.revision,
        reset.method,
        reset.data_loss,
        restored.revision
    );
    let state = step("reading the reset state", subject.store.read_existing().await)?;
    ensure!(
        state.completed_steps.is_empty() && state.revision == reset.revision,
        "the reset state is not empty at revision {}",
        reset.revision
    );
    Ok(())
}

/// On a store that holds no state yet, `recover`, `reseal`, `backup restore` and a
/// load all fail with `NotInitialized` naming the store, and create nothing.
pub async fn recovery_of_an_uninitialized_store_says_so(subject: &Subject) -> CaseResult {
    let recovery = recovery(subject);
    let location = subject.store.info().location_path().to_owned();
    let results = [
        (
            "recover",
            recovery.recover(&RecoverRequest::default()).await.map(drop),
        ),
        ("reseal", recovery.reseal().await.map(drop)),
        (
            "restore",
            recovery.restore("0-19700101T000000000Z").await.map(drop),
        ),
        ("load", recovery.load().await.map(drop)),
    ];
    for (command, result) in results {
        match result {
            Err(Error::NotInitialized { path }) if path == location => {}
            other => {
                return Err(Failure(format!(
                    "{command} on an empty store must fail with NotInitialized naming {}, got {other:?}",
                    location.display()
                )));
            }
        }
    }
    ensure!(
        step("reading", subject.store.read().await)?.is_none(),
        "a refused recovery created a state"
    );
    ensure!(
        step("listing quarantine", subject.store.list_quarantine().await)?.is_empty(),
        "a refused recovery quarantined something"
    );
    ensure!(
        step("reading the audit", subject.store.read_audit().await)?
            .records
            .is_empty(),
        "a refused recovery was audited"
    );
    Ok(())
}

/// Without a backup that verifies: a corruption error (exit 5) that says what to run,
/// and nothing changed, quarantined or deleted.
pub async fn no_valid_backup_is_a_clear_error_and_nothing_changes(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    raw.write(b"{{{").map_err(io("corrupting"))?;
    match recovery(subject).load().await {
        Err(error @ Error::Unrecovered { .. }) => {
            let message = error.to_string();
            ensure!(
                message.contains("no backups"),
                "the error does not say why it was not recovered: {message}"
            );
            ensure!(
                matches!(&error, Error::Unrecovered { remedies, .. } if remedies.contains(&Remedy::Reset)),
                "the error does not offer starting again: {error:?}"
            );
        }
        other => {
            return Err(Failure(format!(
                "expected Error::Unrecovered (nothing could be recovered), got {other:?}"
            )));
        }
    }
    ensure!(raw_bytes(raw)? == b"{{{", "the corrupt bytes were changed");
    ensure!(
        step("listing quarantine", subject.store.list_quarantine().await)?.is_empty(),
        "a failed recovery quarantined the document"
    );
    Ok(())
}

/// `recover --reset` starts again from an empty state and records the loss.
pub async fn reset_records_data_loss(subject: &Subject) -> CaseResult {
    let raw = subject.raw()?;
    step(
        "writing",
        subject.store.commit(&sample_state(1), Expectation::Absent).await,
    )?;
    raw.write(b"").map_err(io("emptying"))?;
    let report = step(
        "resetting",
        recovery(subject)
            .recover(&RecoverRequest {
                from: None,
                reset: true,
            })
            .await,
    )?
    .ok_or_else(|| Failure("a reset of a corrupt state did nothing".into()))?;
    ensure!(
        report.method == RecoveryMethod::Reset && report.data_loss && report.backup.is_none(),
        "the reset reported {report:?}"
    );
    let state = step("reading", subject.store.read_existing().await)?;
    let record = state
        .recovery
        .ok_or_else(|| Failure("the reset state has no `recovery` section".into()))?;
    ensure!(
        record.recovery_method == RecoveryMethod::Reset
            && record.data_loss
            && state.active_instance.is_none()
            && state.completed_steps.is_empty(),
        "the reset state is not empty with reset/dataLoss recorded: {record:?}"
    );
    ensure!(
        step(
            "reading quarantine",
            subject.store.read_quarantined(&quarantined_by(&report)?.id).await
        )?
        .is_empty(),
        "the emptied file was not kept as it was"
    );
    Ok(())
}

/// With `recovery.auto: false`, a load reports the corruption, says to run
/// `checklist recover`, and changes nothing.
pub async fn auto_recovery_off_changes_nothing(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let raw = subject.raw()?;
    raw.write(b"{{{").map_err(io("corrupting"))?;
    let lock = checklist_core::config::LockSettings {
        timeout_ms: 10_000,
        ..Default::default()
    };
    let manual = Recovery::new(
        Arc::clone(&subject.store),
        Arc::clone(&subject.locks),
        Arc::clone(&subject.policy),
    )
    .with_settings(&lock, &checklist_core::config::RecoverySettings { auto: false });
    match manual.load().await {
        Err(error @ Error::Unrecovered { .. }) => ensure!(
            matches!(&error, Error::Unrecovered { remedies, .. } if remedies.contains(&Remedy::RestoreNewestBackup)),
            "the error does not offer restoring a backup: {error:?}"
        ),
        other => {
            return Err(Failure(format!(
                "expected Error::Unrecovered (automatic recovery is off), got {other:?}"
            )));
        }
    }
    ensure!(raw_bytes(raw)? == b"{{{", "the corrupt bytes were changed");
    ensure!(
        step("listing quarantine", subject.store.list_quarantine().await)?.is_empty(),
        "recovery ran although it is off"
    );
    let report = step(
        "recovering explicitly",
        manual.recover(&RecoverRequest::default()).await,
    )?
    .ok_or_else(|| Failure("`recover` did nothing".into()))?;
    ensure!(report.method == RecoveryMethod::Backup, "{report:?}");
    Ok(())
}

/// An explicit restore backs up the state it replaces, writes the backup's content as
/// a new revision and audits `restore`.
pub async fn explicit_restore_is_audited(subject: &Subject) -> CaseResult {
    let last = history(subject).await?;
    let oldest = oldest_backup(subject).await?;
    let report = step("restoring", recovery(subject).restore(&oldest.id).await)?;
    ensure!(
        report.revision == last.revision + 1,
        "restored as revision {}",
        report.revision
    );
    let replaced = report
        .replaced
        .ok_or_else(|| Failure("the replaced state was not backed up".into()))?;
    ensure!(replaced.revision == last.revision, "{replaced:?}");
    let state = step("reading", subject.store.read_existing().await)?;
    ensure!(
        state.completed_steps.len() as u64 == oldest.revision,
        "the restored state holds {} steps",
        state.completed_steps.len()
    );
    ensure_audited(subject, AuditEvent::Restore, report.revision).await?;
    match recovery(subject).restore("../../etc/passwd").await {
        Err(Error::InvalidOperation { .. } | Error::NotFound { .. }) => Ok(()),
        other => Err(Failure(format!("a malformed backup id was accepted: {other:?}"))),
    }
}

/// Restoring a chosen backup over a corrupt state quarantines the corrupt bytes first
/// (they cannot be backed up: a backup must verify), then writes that backup — not the
/// newest — above every committed revision; an unknown id changes nothing.
pub async fn restore_over_a_corrupt_state_quarantines_it(subject: &Subject) -> CaseResult {
    let last = history(subject).await?;
    let oldest = oldest_backup(subject).await?;
    let raw = subject.raw()?;
    let mut corrupt = raw_bytes(raw)?;
    corrupt.truncate(corrupt.len() / 2);
    raw.write(&corrupt).map_err(io("writing the corrupt bytes"))?;

    match recovery(subject).restore("0-19700101T000000000Z").await {
        Err(Error::NotFound { what: "backup", .. }) => {}
        other => {
            return Err(Failure(format!(
                "an unknown backup id was not refused: {other:?}"
            )));
        }
    }
    ensure!(
        raw_bytes(raw)? == corrupt,
        "a refused restore changed the corrupt state"
    );

    let report = step(
        "restoring the oldest backup",
        recovery(subject).restore(&oldest.id).await,
    )?;
    ensure!(
        report.backup.id == oldest.id,
        "restored {} instead",
        report.backup.id
    );
    ensure!(
        report.replaced.is_none(),
        "the corrupt state was reported as backed up: {:?}",
        report.replaced
    );
    let recovered = report
        .recovery
        .ok_or_else(|| Failure("the restore did not report recovering the corrupt state".into()))?;
    ensure!(
        report.revision > last.revision,
        "restored as revision {}, not above the last committed {}",
        report.revision,
        last.revision
    );
    let kept = step(
        "reading the quarantined bytes",
        subject
            .store
            .read_quarantined(&quarantined_by(&recovered)?.id)
            .await,
    )?;
    ensure!(
        kept == corrupt,
        "the quarantined bytes differ from the corrupt state"
    );
    let state = step("reading", subject.store.read_existing().await)?;
    ensure!(
        state.completed_steps.len() as u64 == oldest.revision && state.revision == report.revision,
        "the state after the restore holds {} steps at revision {}",
        state.completed_steps.len(),
        state.revision
    );
    ensure_audited(subject, AuditEvent::Restore, report.revision).await?;
    Ok(())
}

/// A hand edit whose only fault is its checksum is accepted by reseal: the edit is
/// kept as it was, the document is written with a fresh checksum, audited.
pub async fn reseal_accepts_a_checksum_only_edit(subject: &Subject) -> CaseResult {
    let last = history(subject).await?;
    let raw = subject.raw()?;
    let text = String::from_utf8(raw_bytes(raw)?).map_err(|e| Failure(e.to_string()))?;
    let edited = text.replacen(MARKER, "edited-by-hand", 1);
    raw.write(edited.as_bytes()).map_err(io("editing"))?;
    let report = step("resealing", recovery(subject).reseal().await)?
        .ok_or_else(|| Failure("reseal of an edited document did nothing".into()))?;
    let state = step("reading", subject.reopen()?.read_existing().await)?;
    ensure!(
        state.revision == report.revision && report.revision > last.revision,
        "resealed as revision {}, read as {}",
        report.revision,
        state.revision
    );
    ensure!(
        state.active_instance.as_ref().map(|i| i.template_id.as_str()) == Some("edited-by-hand"),
        "the edit was not kept"
    );
    ensure!(
        state.recovery.as_ref().map(|r| r.recovery_method) == Some(RecoveryMethod::Manual),
        "the reseal is not recorded as a manual recovery"
    );
    ensure!(
        step(
            "reading the kept edit",
            subject.store.read_quarantined(&report.kept.id).await
        )? == edited.as_bytes(),
        "the edited bytes were not kept as they were"
    );
    ensure!(
        step("resealing again", recovery(subject).reseal().await)?.is_none(),
        "a second reseal did something"
    );
    ensure_audited(subject, AuditEvent::Recovery, report.revision).await?;
    Ok(())
}

/// Reseal refuses an edit that breaks the schema (exit 5) and changes nothing.
pub async fn reseal_refuses_a_schema_violation(subject: &Subject) -> CaseResult {
    history(subject).await?;
    let raw = subject.raw()?;
    let text = String::from_utf8(raw_bytes(raw)?).map_err(|e| Failure(e.to_string()))?;
    let broken = text.replacen(MARKER, "", 1);
    raw.write(broken.as_bytes()).map_err(io("editing"))?;
    match recovery(subject).reseal().await {
        Err(
            error @ Error::Unrecovered {
                kind: CorruptionKind::SchemaInvalid,
                ..
            },
        ) => ensure!(
            matches!(&error, Error::Unrecovered { remedies, .. }
                if remedies.contains(&Remedy::RepairByHandThenReseal)),
            "the refusal does not offer repairing by hand: {error:?}"
        ),
        other => return Err(Failure(format!("reseal of a schema violation gave {other:?}"))),
    }
    ensure!(
        raw_bytes(raw)? == broken.as_bytes(),
        "a refused reseal changed the bytes"
    );
    ensure!(
        step("listing quarantine", subject.store.list_quarantine().await)?.is_empty(),
        "a refused reseal quarantined the document"
    );
    // The refusal waits for nothing: the lock is free again.
    let lock = subject
        .locks
        .acquire(&checklist_core::LockRequest::default().with_timeout(Duration::from_millis(500)))
        .await;
    ensure!(lock.is_ok(), "the lock is still held after a refused reseal");
    Ok(())
}
