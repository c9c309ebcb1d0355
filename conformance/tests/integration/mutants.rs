//! The suite tested against deliberately broken backends (issue 6, item 2).
//!
//! Each mutant wraps a correct backend — a YAML file store in a temp dir with its file
//! lock provider, and the default keep-3 rolling policy — and breaks exactly one
//! behaviour. The cases named for that behaviour run against a fresh subject of the
//! mutant, and each must fail: a mutant that passes them is a hole in the suite.
//!
//! The unbroken wrapper (`control_passes_every_case`) shows that the failures come
//! from the mutations, not from the wrapping.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use checklist_backends::{FileStoreOptions, YamlCodec, YamlFileStore};
use checklist_conformance::holder::{LockSpec, holder_of};
use checklist_conformance::{Case, RawAccess, Subject, all_cases};
use checklist_core::config::Durability;

mod locks;
mod store;

use locks::{BrokenLocks, BrokenPolicy, LockBug, PolicyBug};
use store::{BrokenStore, StoreBug};

/// What one mutant breaks: at most one of the three.
#[derive(Debug, Clone, Copy)]
struct Mutant {
    store: StoreBug,
    locks: LockBug,
    policy: Option<PolicyBug>,
}

const CONTROL: Mutant = Mutant {
    store: StoreBug::None,
    locks: LockBug::None,
    policy: None,
};

impl Mutant {
    fn store(bug: StoreBug) -> Self {
        Self {
            store: bug,
            ..CONTROL
        }
    }

    fn locks(bug: LockBug) -> Self {
        Self {
            locks: bug,
            ..CONTROL
        }
    }

    fn policy(bug: PolicyBug) -> Self {
        Self {
            policy: Some(bug),
            ..CONTROL
        }
    }
}

/// A fresh subject for `mutant`, built like the built-in YAML backend's (fast
/// durability: the mutants are about logic, not fsync).
fn subject(mutant: Mutant) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_owned();
    let options = FileStoreOptions {
        durability: Durability::Fast,
        ..FileStoreOptions::default()
    };
    let open = {
        let path = path.clone();
        let serial = Arc::new(tokio::sync::Mutex::new(()));
        move || {
            let inner = YamlFileStore::open(&path, YamlCodec, options.clone()).expect("open the store");
            BrokenStore::new(inner, mutant.store, &path, Arc::clone(&serial))
        }
    };
    let store = open();
    let state_path = path.join("state.yaml");
    let mut subject = Subject::new(Arc::new(store), Arc::new(BrokenLocks::new(&path, mutant.locks)))
        .reopen_with(move || Arc::new(open()))
        .raw_access(RawAccess::file(state_path))
        .backup_index_access(RawAccess::file(path.join(".backup").join("manifest.yaml")))
        .reopen_locks_with({
            let path = path.clone();
            move || Arc::new(BrokenLocks::new(&path, mutant.locks))
        })
        .plant_stale_lock_with({
            let path = path.clone();
            move |like| checklist_conformance::builtin::plant_stale_lock(&path, like)
        })
        .hold_in_another_process_with(holder_of(LockSpec::File { dir: path.clone() }))
        .keep_alive(dir);
    subject = checklist_conformance::builtin::with_sidecar_files(subject, &path);
    if let Some(bug) = mutant.policy {
        // Built as a keep-3 policy, so declared as one.
        subject = subject.with_policy_keeping(Arc::new(BrokenPolicy::new(bug)), 3);
    }
    subject
}

/// Runs one case against a fresh subject of `mutant`: `Err` with why it failed (a
/// failure, a panic, or a hang past a minute).
fn run(case: &Case, mutant: Mutant) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let subject = subject(mutant);
            tokio::time::timeout(Duration::from_secs(60), (case.run)(&subject)).await
        })
    }));
    match outcome {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(failure))) => Err(failure.to_string()),
        Ok(Err(_)) => Err("hung for a minute".into()),
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    }
}

/// The cases of `names` (every case when `None`) that fail against `mutant`, with
/// why, in suite order. The cases run on three threads at a time (each on its own
/// runtime and subject): most of their time is spent waiting out lock timeouts.
fn failing_cases(mutant: Mutant, names: Option<&[&str]>) -> Vec<(&'static str, String)> {
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|case| names.is_none_or(|names| names.contains(&case.name)))
        .collect();
    if let Some(names) = names {
        for name in names {
            assert!(
                cases.iter().any(|case| case.name == *name),
                "{name} is not a conformance case"
            );
        }
    }
    let next = AtomicUsize::new(0);
    // Named after this test, as libtest names its thread: a case that starts a lock
    // holder in another process runs this test again, by that name, as the holder.
    let test = std::thread::current().name().unwrap_or("mutants").to_owned();
    let mut failing: Vec<(usize, &'static str, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                std::thread::Builder::new()
                    .name(test.clone())
                    .spawn_scoped(scope, || {
                        let mut failed = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::SeqCst);
                            let Some(case) = cases.get(index) else {
                                return failed;
                            };
                            if let Err(why) = run(case, mutant) {
                                failed.push((index, case.name, why));
                            }
                        }
                    })
            })
            .collect::<std::io::Result<_>>()
            .expect("a case runner thread");
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a case runner thread"))
            .collect()
    });
    failing.sort_by_key(|(index, _, _)| *index);
    failing.into_iter().map(|(_, name, why)| (name, why)).collect()
}

/// Asserts that each case of `expected` — the cases named for the behaviour `mutant`
/// breaks — fails against it. Only those run: the control shows every case passes on
/// the unbroken wrapper, so a failure here is the mutation's.
#[allow(
    clippy::print_stderr,
    reason = "why each case catches the mutant is the test's report (`-- --nocapture`)"
)]
fn assert_caught(mutant: Mutant, expected: &[&str]) {
    assert!(!expected.is_empty(), "name the cases meant to catch {mutant:?}");
    let failing = failing_cases(mutant, Some(expected));
    for (name, why) in &failing {
        eprintln!("{mutant:?} is caught by {name}: {why}");
    }
    let names: Vec<&str> = failing.iter().map(|(name, _)| *name).collect();
    for want in expected {
        assert!(
            names.contains(want),
            "{mutant:?} should be caught by {want}, but it passes it (caught by {names:?})"
        );
    }
}

#[test]
fn control_passes_every_case() {
    let failing = failing_cases(CONTROL, None);
    assert!(failing.is_empty(), "the unbroken wrapper fails: {failing:#?}");
}

#[test]
fn a_write_in_place_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::WritesInPlace),
        &["readers_never_see_a_torn_write"],
    );
}

#[test]
fn a_read_that_reseals_the_stored_document_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ResealsOnRead),
        &["checksum_is_verified_on_read", "wrong_checksum_is_recovered"],
    );
}

#[test]
fn a_write_that_ignores_the_expectation_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::IgnoresExpectation),
        &[
            "stale_revision_conflicts",
            "concurrent_writers_with_the_same_expectation_exactly_one_wins",
        ],
    );
}

#[test]
fn a_write_over_a_moved_state_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::WritesOverAMovedState),
        &["a_moved_state_refuses_every_write_but_one_naming_its_bytes"],
    );
}

#[test]
fn an_import_that_stamps_its_own_time_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ImportStampsItsOwnTime),
        &["an_imported_backup_is_listed_as_it_was"],
    );
}

#[test]
fn a_write_keeping_no_backup_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::KeepsNoBackup),
        &["write_keeping_backup_keeps_the_replaced_revision"],
    );
}

#[test]
fn a_write_backing_up_the_new_revision_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::BacksUpTheNewRevision),
        &["write_keeping_backup_keeps_the_replaced_revision"],
    );
}

#[test]
fn a_store_pruning_down_to_one_backup_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::PrunesDownToOne),
        &[
            "write_keeping_backup_prunes_by_the_policy",
            "rotation_keeps_exactly_n",
        ],
    );
}

#[test]
fn an_audit_log_rewritten_on_append_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::AuditRewrites),
        &["concurrent_audit_appends_are_all_kept"],
    );
}

#[test]
fn an_audit_rotation_that_drops_records_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::AuditRotationDrops),
        &["audit_rotation_keeps_records_in_order"],
    );
}

#[test]
fn a_lock_that_never_excludes_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::NeverExcludes),
        &["lock_is_exclusive", "independent_providers_exclude_each_other"],
    );
}

#[test]
fn a_stale_lock_breaker_that_breaks_fresh_locks_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::BreaksFreshLocks),
        &["lock_is_exclusive", "independent_providers_exclude_each_other"],
    );
}

#[test]
fn a_policy_keeping_too_few_is_caught() {
    assert_caught(
        Mutant::policy(PolicyBug::KeepsTooFew),
        &["prune_keeps_the_declared_newest_n"],
    );
}

#[test]
fn a_policy_counting_duplicate_backups_is_caught() {
    assert_caught(
        Mutant::policy(PolicyBug::CountsDuplicates),
        &["prune_counts_a_revision_once"],
    );
}

#[test]
fn a_policy_pruning_the_newest_is_caught() {
    assert_caught(
        Mutant::policy(PolicyBug::PrunesTheNewest),
        &["prune_never_removes_the_newest_backup"],
    );
}

#[test]
fn a_stale_lock_breaker_that_does_not_reverify_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::BreaksWithoutReverifying),
        &["stale_lock_is_broken_by_exactly_one_waiter"],
    );
}

#[test]
fn an_ascii_only_encoder_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::WritesAsciiOnly),
        &["every_json_value_round_trips"],
    );
}

#[test]
fn integers_kept_through_floats_are_caught() {
    assert_caught(
        Mutant::store(StoreBug::IntegersThroughFloats),
        &["every_json_value_round_trips"],
    );
}

#[test]
fn a_skipped_unchanged_write_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::SkipsUnchangedWrites),
        &["an_unchanged_document_commits_a_new_revision"],
    );
}

#[test]
fn a_corrupt_state_taken_for_none_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::TreatsCorruptAsAbsent),
        &["absent_expectation_over_a_corrupt_state_changes_nothing"],
    );
}

#[test]
fn deleting_the_wrong_backup_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::DeletesTheOldestBackup),
        &["delete_backup_removes_only_that_backup"],
    );
}

#[test]
fn a_delete_that_leaves_the_bytes_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::DeleteLeavesTheBytes),
        &["a_deleted_backup_is_gone_for_good"],
    );
}

#[test]
fn a_backup_read_that_falls_back_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ReadBackupFallsBack),
        &["a_damaged_backup_is_refused"],
    );
}

#[test]
fn a_rebuild_that_deletes_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::RebuildDeletesWhatItSkips),
        &["rebuilding_the_backup_index_deletes_nothing"],
    );
}

#[test]
fn an_audit_trail_dropping_non_ascii_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::AuditDropsNonAscii),
        &["audit_records_keep_every_character"],
    );
}

#[test]
fn an_audit_read_failing_on_a_torn_line_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::AuditFailsOnATornLine),
        &["a_torn_audit_record_is_reported_not_fatal"],
    );
}

#[test]
fn reading_the_latest_archive_whatever_asked_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ReadArchivedReturnsTheLatest),
        &["read_archived_returns_the_instance_asked_for"],
    );
}

#[test]
fn archiving_again_without_replacing_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ArchiveAgainKeepsTheOldDocument),
        &["archiving_again_replaces_the_archived_document"],
    );
}

#[test]
fn archiving_an_invalid_instance_as_nothing_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::ArchivesInvalidInstancesAsNothing),
        &["an_invalid_instance_is_not_archived"],
    );
}

#[test]
fn a_quarantine_listed_newest_first_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::QuarantineListedNewestFirst),
        &["quarantine_is_listed_oldest_first"],
    );
}

#[test]
fn a_watch_that_wakes_once_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::WatchWakesOnce),
        &[
            "a_watch_wakes_for_every_commit_after_it_was_made",
            "a_follower_sees_every_commit_in_order_once",
        ],
    );
}

#[test]
fn a_policy_that_never_backs_up_is_caught() {
    assert_caught(
        Mutant::policy(PolicyBug::NeverBacksUp),
        &["a_keep_n_policy_backs_up_every_commit"],
    );
}

#[test]
fn an_acquire_that_gives_up_late_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::GivesUpLate),
        &["acquire_times_out_with_holder"],
    );
}

#[test]
fn a_holder_deaf_to_outside_releases_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::MissesOutsideReleases),
        &["a_holder_learns_of_a_release_by_another_provider"],
    );
}

#[test]
fn a_liveness_check_blind_to_other_processes_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::JudgesOtherProcessesGone),
        &["a_live_holder_in_another_process_keeps_the_lock"],
    );
}

#[test]
fn a_provider_that_drops_holder_notes_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::DropsNotes),
        &["holder_notes_are_shown_to_every_provider"],
    );
}

#[test]
fn waiting_out_a_hung_holder_is_caught() {
    assert_caught(
        Mutant::locks(LockBug::WaitsOutLiveHolders),
        &["a_stopped_holder_loses_the_lock_after_its_expiry"],
    );
}

#[test]
fn a_quarantine_by_hard_link_is_caught() {
    assert_caught(
        Mutant::store(StoreBug::QuarantinesByHardLink),
        &["quarantine_keeps_the_exact_bytes"],
    );
}
