//! The I/O-error loop over a whole transaction (issue 4): lock file, verified read,
//! audit begin, backup (hard link + manifest), the state's atomic replace, audit
//! commit, pruning and audit rotation. For every operation index N, fail operation N
//! and check: the state is the old one or the new one (never torn, never missing), the
//! audit trail never claims a commit that does not stand, and the next transaction
//! goes through without waiting for a lock.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::Arc;

use crate::common::{add_step, coordinator, seeded_project};
use checklist_backends::fault::{AfterFault, FaultyFs};
use checklist_backends::vfs::RealFs;
use checklist_backends::{FileStore, FileStoreOptions, YamlCodec};
use checklist_core::prelude::*;
use checklist_core::{AuditEvent, ChecklistState, StateStoreExt};

fn same_content(a: &ChecklistState, b: &ChecklistState) -> bool {
    a.completed_steps == b.completed_steps && a.active_instance == b.active_instance
}

async fn transaction_loop(after: AfterFault) -> BTreeSet<&'static str> {
    let mut failed_ops = BTreeSet::new();
    for n in 0.. {
        let (_root, dir) = seeded_project().await;
        let old = coordinator(&dir, Arc::new(RealFs)).read().await.unwrap();
        let seeded_records = coordinator(&dir, Arc::new(RealFs))
            .store()
            .read_audit()
            .await
            .unwrap()
            .records
            .len();

        let faulty = FaultyFs::new(Arc::new(RealFs));
        let tx = coordinator(&dir, Arc::new(faulty.clone()));
        faulty.fail_at(n, ErrorKind::StorageFull, after);
        let result = tx
            .transact("add a step", |state| {
                add_step(state, "the-new-step");
                Ok(())
            })
            .await;
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(n > 20, "a transaction should take many I/O operations, saw {n}");
            return failed_ops;
        }
        let failed = faulty.log().into_iter().find(|op| op.failed).unwrap();
        failed_ops.insert(failed.name);
        faulty.heal();
        drop(tx);

        let observer = FileStore::open(&dir, YamlCodec, FileStoreOptions::default()).unwrap();
        let now = observer
            .read_existing()
            .await
            .unwrap_or_else(|e| panic!("state unreadable after failing {failed:?}: {e}"));
        let mut expected_new = old.clone();
        add_step(&mut expected_new, "the-new-step");
        let is_new = now.completed_steps.len() == expected_new.completed_steps.len()
            && now.completed_steps.last().map(|s| &s.step_id) == Some(&"the-new-step".to_owned());
        assert!(
            is_new || same_content(&now, &old),
            "failing {failed:?} left a third state"
        );

        let audit = observer.read_audit().await.unwrap();
        assert!(
            audit.problems.iter().all(|p| p.torn),
            "failing {failed:?} damaged the audit trail: {:?}",
            audit.problems
        );
        let commit = audit
            .records
            .iter()
            .rev()
            .find(|r| r.event == AuditEvent::Commit && r.revision_after > Some(old.revision));
        let ours = &audit.records[seeded_records.min(audit.records.len())..];
        let began = ours.iter().any(|r| r.event == AuditEvent::Begin);
        let rolled_back = ours.iter().any(|r| r.event == AuditEvent::Rollback);
        match (&result, after) {
            (Ok(outcome), _) => {
                assert!(is_new, "failing {failed:?}: Ok but the new state is not stored");
                let commit =
                    commit.unwrap_or_else(|| panic!("failing {failed:?}: committed without a commit record"));
                assert_eq!(commit.revision_after, Some(outcome.revision));
                assert_eq!(commit.checksum.as_deref(), now.checksum.as_deref());
            }
            (Err(error), AfterFault::Recover) => {
                assert!(
                    !is_new,
                    "failing {failed:?} returned {error} but the new state stands"
                );
                // A transaction that began (it held the lock and read the state) is
                // audited as rolled back; one that failed to take the lock never began.
                assert!(
                    !began || rolled_back,
                    "failing {failed:?}: the rollback was not audited"
                );
                // A commit record may exist only if the commit was undone afterwards.
                if let Some(commit) = commit {
                    assert!(
                        now.revision > commit.revision_after.unwrap(),
                        "failing {failed:?}: an audited commit was lost"
                    );
                }
            }
            (Err(_), AfterFault::Crash) => {
                // The process "died" at the fault: nothing after it reached the disk.
                if let Some(commit) = commit {
                    assert!(
                        is_new,
                        "failing {failed:?}: the audit claims a commit ({commit:?}) that did not happen"
                    );
                }
            }
        }

        // The next transaction, as the next process would run it, is not blocked.
        let next = coordinator(&dir, Arc::new(RealFs));
        next.transact("after the fault", |state| {
            add_step(state, "after-the-fault");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("after failing {failed:?} the next transaction failed: {e}"));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains(".tmp-")),
            "temp files after failing {failed:?}: {names:?}"
        );
        assert!(
            !dir.join(".lock").exists(),
            "a lock was left after failing {failed:?}"
        );
    }
    unreachable!()
}

fn assert_covers(ops: &BTreeSet<&'static str>) {
    for expected in [
        "create",
        "write",
        "fsync",
        "rename",
        "hard link",
        "open for append",
        "read",
        "open lock file",
    ] {
        assert!(
            ops.contains(expected),
            "the loop never failed a {expected}: {ops:?}"
        );
    }
}

#[tokio::test]
async fn a_transaction_survives_a_transient_failure_of_every_operation() {
    assert_covers(&transaction_loop(AfterFault::Recover).await);
}

#[tokio::test]
async fn a_transaction_survives_a_crash_at_every_operation() {
    assert_covers(&transaction_loop(AfterFault::Crash).await);
}
