//! Cases for the [`BackupPolicy`](checklist_core::BackupPolicy) contract, one per
//! bullet. The policy makes pure decisions, so each case feeds it many backup lists.

use std::collections::HashSet;

use checklist_core::BackupRecord;
use checklist_core::backup::CommitContext;
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::ensure;
use crate::{CaseResult, Subject};

/// Deterministic backup lists of 0–12 entries with repeated revisions and ages from
/// minutes to years.
fn backup_lists() -> Vec<(Vec<BackupRecord>, DateTime<Utc>)> {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..200)
        .map(|round| {
            let count = round % 13;
            let backups = (0..count)
                .map(|i| {
                    let revision = next() % 20;
                    BackupRecord {
                        id: format!("b{round}-{i}"),
                        location: format!("state.yaml.{revision}"),
                        revision,
                        checksum: format!("sha256:{:064x}", next()),
                        size: next() % 10_000,
                        created_at: now - Duration::minutes((next() % 1_000_000) as i64),
                        reason: "commit".into(),
                    }
                })
                .collect();
            (backups, now)
        })
        .collect()
}

fn newest(backups: &[BackupRecord]) -> Option<&BackupRecord> {
    backups
        .iter()
        .max_by(|a, b| a.revision.cmp(&b.revision).then(a.created_at.cmp(&b.created_at)))
}

/// There is nothing to back up before the first write.
pub async fn nothing_to_back_up_before_the_first_write(subject: &Subject) -> CaseResult {
    ensure!(
        !subject.policy.should_back_up(&CommitContext {
            replacing_revision: None
        }),
        "the policy wants a backup of a state that does not exist yet"
    );
    Ok(())
}

/// Pruning always leaves the newest backup.
pub async fn prune_never_removes_the_newest_backup(subject: &Subject) -> CaseResult {
    for (backups, now) in backup_lists() {
        let pruned = subject.policy.to_prune(&backups, now);
        if let Some(newest) = newest(&backups) {
            let newest_revision = newest.revision;
            let survivors: Vec<_> = backups.iter().filter(|b| !pruned.contains(&b.id)).collect();
            ensure!(
                survivors.iter().any(|b| b.revision == newest_revision),
                "pruning {pruned:?} removes every backup of the newest revision {newest_revision}"
            );
        }
    }
    Ok(())
}

/// Pruning names only listed backups, each once.
pub async fn prune_only_names_listed_backups(subject: &Subject) -> CaseResult {
    for (backups, now) in backup_lists() {
        let pruned = subject.policy.to_prune(&backups, now);
        let listed: HashSet<_> = backups.iter().map(|b| b.id.as_str()).collect();
        let mut seen = HashSet::new();
        for id in &pruned {
            ensure!(
                listed.contains(id.as_str()),
                "to_prune named {id}, which is not in the list"
            );
            ensure!(seen.insert(id), "to_prune named {id} twice");
        }
    }
    Ok(())
}

/// A policy declared as keeping the newest N ([`Subject::with_policy_keeping`]; the
/// default subject's keep-3 policy) leaves exactly the N newest of recent backups, all
/// of them when there are fewer. Without a declaration there is nothing to hold it to.
pub async fn prune_keeps_the_declared_newest_n(subject: &Subject) -> CaseResult {
    let Some(keep) = subject.policy_keeps() else {
        return Ok(());
    };
    let now = Utc::now();
    for count in 0..=(keep as u64 + 4) {
        let backups: Vec<BackupRecord> = (1..=count)
            .map(|revision| BackupRecord {
                id: format!("b{revision}"),
                location: format!("state.yaml.{revision}"),
                revision,
                checksum: format!("sha256:{revision:064x}"),
                size: 100,
                created_at: now - Duration::seconds((count - revision) as i64),
                reason: "commit".into(),
            })
            .collect();
        let pruned = subject.policy.to_prune(&backups, now);
        let mut kept: Vec<u64> = backups
            .iter()
            .filter(|b| !pruned.contains(&b.id))
            .map(|b| b.revision)
            .collect();
        kept.sort_unstable();
        let want: Vec<u64> = (count.saturating_sub(keep as u64) + 1..=count).collect();
        ensure!(
            kept == want,
            "declared as keeping {keep}, the policy leaves revisions {kept:?} of 1..={count}; want {want:?}"
        );
    }
    Ok(())
}

/// A policy declared as keeping the newest N counts backups of the same revision and
/// checksum once and keeps the newest copy: after `checklist backup create` at
/// revision r and a commit that backs r up again, the N backups kept are still N
/// different states.
pub async fn prune_counts_a_revision_once(subject: &Subject) -> CaseResult {
    let Some(keep) = subject.policy_keeps() else {
        return Ok(());
    };
    let now = Utc::now();
    let count = keep as u64 + 2;
    // Two copies of every revision, the `commit` one taken after the `manual` one.
    let backups: Vec<BackupRecord> = (1..=count)
        .flat_map(|revision| {
            ["manual", "commit"]
                .into_iter()
                .enumerate()
                .map(move |(copy, reason)| BackupRecord {
                    id: format!("{reason}-{revision}"),
                    location: format!("state.yaml.{reason}-{revision}"),
                    revision,
                    checksum: format!("sha256:{revision:064x}"),
                    size: 100,
                    created_at: now - Duration::seconds((2 * (count - revision) + 1 - copy as u64) as i64),
                    reason: reason.into(),
                })
        })
        .collect();
    let pruned = subject.policy.to_prune(&backups, now);
    let mut kept: Vec<&str> = backups
        .iter()
        .filter(|b| !pruned.contains(&b.id))
        .map(|b| b.id.as_str())
        .collect();
    kept.sort_unstable();
    let mut want: Vec<String> = (count - keep as u64 + 1..=count)
        .map(|revision| format!("commit-{revision}"))
        .collect();
    want.sort_unstable();
    ensure!(
        kept == want,
        "declared as keeping {keep}, of two copies each of revisions 1..={count} the policy leaves {kept:?}; \
         want the newest copy of the {keep} newest revisions, {want:?}"
    );
    Ok(())
}

/// The recovery order lists every backup exactly once.
pub async fn recovery_order_is_a_permutation(subject: &Subject) -> CaseResult {
    for (backups, _) in backup_lists() {
        let order = subject.policy.recovery_order(&backups);
        let mut got: Vec<_> = order.iter().map(String::as_str).collect();
        let mut want: Vec<_> = backups.iter().map(|b| b.id.as_str()).collect();
        got.sort_unstable();
        want.sort_unstable();
        ensure!(
            got == want,
            "recovery_order {order:?} is not a permutation of the listed backups"
        );
    }
    Ok(())
}

/// A policy declared as keeping the newest N (N > 0) backs up every commit that
/// replaces a revision: one that never asks for a backup keeps none, whatever it
/// prunes. Without a declaration there is nothing to hold it to.
pub async fn a_keep_n_policy_backs_up_every_commit(subject: &Subject) -> CaseResult {
    let Some(keep) = subject.policy_keeps().filter(|keep| *keep > 0) else {
        return Ok(());
    };
    for replacing in [1, 2, 3, 10, 1_000, u64::MAX - 1] {
        ensure!(
            subject.policy.should_back_up(&CommitContext {
                replacing_revision: Some(replacing)
            }),
            "the policy is declared as keeping the newest {keep} backups but does not back up a commit \
             replacing revision {replacing}"
        );
    }
    Ok(())
}
