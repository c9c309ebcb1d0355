//! The [`BackupPolicy`] trait: which backups to take, keep and try first. Pure
//! decisions; the store does the I/O.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::BackupSettings;

/// One backup of the state, as its store lists it (the file backends in
/// `.checklist/.backup/manifest.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Unique id of the backup.
    pub id: String,
    /// Where its store keeps it, as the store names it for people: for the file
    /// backends the name of its file inside `.backup/`. Serialized as `file`, the
    /// name the backup index has always given it.
    #[serde(rename = "file")]
    pub location: String,
    /// The revision it holds.
    pub revision: u64,
    /// The checksum of the document it holds.
    pub checksum: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Why it was taken (`commit`, `manual`, `pre-migration`, …).
    pub reason: String,
}

/// Longest backup id accepted from a user, in bytes.
pub const MAX_BACKUP_ID_LEN: usize = 128;

/// Checks a backup id that came from outside (a command line, a manifest) before it
/// becomes part of a file name: not empty, at most [`MAX_BACKUP_ID_LEN`] bytes, no
/// path separator, no `..`, no NUL or other control character.
///
/// # Errors
/// [`Error::InvalidOperation`](crate::Error::InvalidOperation) saying what is wrong
/// with it.
pub fn validate_backup_id(id: &str) -> crate::Result<()> {
    let problem = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_BACKUP_ID_LEN {
        Some("it is longer than 128 bytes")
    } else if id.contains('/') || id.contains('\\') {
        Some("it contains a path separator")
    } else if id.contains("..") {
        Some("it contains `..`")
    } else if id.chars().any(char::is_control) {
        Some("it contains a NUL or control character")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(crate::Error::invalid(format!(
            "{:?} is not a backup id ({problem}); `checklist backup list` shows the ids",
            id.chars().take(MAX_BACKUP_ID_LEN).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// What rebuilding the backup index from the backup files found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupIndexRebuild {
    /// The backups that verified and are now listed, oldest first.
    pub kept: Vec<BackupRecord>,
    /// The backup files that did not verify: left where they are, not listed.
    pub skipped: Vec<SkippedBackup>,
}

/// A backup left out of a rebuilt index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedBackup {
    /// Where it is kept, as [`BackupRecord::location`] names it. Serialized as `file`.
    #[serde(rename = "file")]
    pub location: String,
    /// Why it was left out.
    pub reason: String,
}

/// The commit a backup decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitContext {
    /// The revision being replaced; `None` for the first write, which has nothing to
    /// back up.
    pub replacing_revision: Option<u64>,
}

/// Decides which backups to take, which to prune and which to try first on recovery.
///
/// # Contract
/// Each bullet has a case of the same name in `checklist-conformance`.
/// - `nothing_to_back_up_before_the_first_write`: `should_back_up` is false when
///   there is no revision being replaced.
/// - `a_keep_n_policy_backs_up_every_commit`: a policy that keeps the newest N (N > 0)
///   answers `should_back_up` true for every commit that replaces a revision.
/// - `prune_never_removes_the_newest_backup`: whatever the inputs, `to_prune` leaves
///   at least the newest backup, so rotation cannot delete the only one.
/// - `prune_only_names_listed_backups`: `to_prune` returns ids from its input, each
///   once.
/// - `prune_keeps_the_declared_newest_n`: a policy that keeps the newest N (like
///   [`RollingBackups::keep`]) leaves exactly the N newest of backups that are not too
///   old — all of them when there are fewer.
/// - `prune_counts_a_revision_once`: such a policy counts backups holding the same
///   revision and checksum as one, keeping the newest copy: N backups kept are N
///   different states.
/// - `recovery_order_is_a_permutation`: `recovery_order` returns every listed backup
///   exactly once.
pub trait BackupPolicy: Send + Sync + fmt::Debug + 'static {
    /// Whether the commit described by `commit` keeps a backup of the replaced state.
    fn should_back_up(&self, commit: &CommitContext) -> bool;

    /// The ids of the backups to delete now.
    fn to_prune(&self, backups: &[BackupRecord], now: DateTime<Utc>) -> Vec<String>;

    /// The ids of all backups in the order recovery should try them.
    fn recovery_order(&self, backups: &[BackupRecord]) -> Vec<String>;
}

/// Forwarding impls, so `Arc<dyn BackupPolicy>` and `Box<dyn BackupPolicy>` are
/// policies.
macro_rules! forward_backup_policy {
    ($($wrapper:ident),*) => {$(
        impl<T: BackupPolicy + ?Sized> BackupPolicy for $wrapper<T> {
            fn should_back_up(&self, commit: &CommitContext) -> bool {
                (**self).should_back_up(commit)
            }
            fn to_prune(&self, backups: &[BackupRecord], now: DateTime<Utc>) -> Vec<String> {
                (**self).to_prune(backups, now)
            }
            fn recovery_order(&self, backups: &[BackupRecord]) -> Vec<String> {
                (**self).recovery_order(backups)
            }
        }
    )*};
}

forward_backup_policy!(Arc, Box);

/// Keep the newest `keep` backups (default 3) of different states — a second backup of
/// the same revision and checksum is pruned, not counted — optionally also dropping
/// those older than `max_age`, but never the newest one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingBackups {
    keep: usize,
    max_age: Option<chrono::Duration>,
}

impl Default for RollingBackups {
    fn default() -> Self {
        Self::from_settings(&BackupSettings::default())
    }
}

impl RollingBackups {
    /// Keeps the newest `keep` backups (at least 1) with no age limit.
    pub fn keep(keep: usize) -> Self {
        Self {
            keep: keep.max(1),
            max_age: None,
        }
    }

    /// The same policy, also pruning backups older than `max_age`.
    pub fn with_max_age(mut self, max_age: chrono::Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The policy config.yaml's `backup:` section describes.
    pub fn from_settings(settings: &BackupSettings) -> Self {
        let policy = Self::keep(settings.keep);
        match settings.max_age_days {
            Some(days) => policy.with_max_age(chrono::Duration::days(i64::from(days))),
            None => policy,
        }
    }

    fn newest_first(backups: &[BackupRecord]) -> Vec<&BackupRecord> {
        let mut sorted: Vec<&BackupRecord> = backups.iter().collect();
        sorted.sort_by(|a, b| {
            b.revision
                .cmp(&a.revision)
                .then(b.created_at.cmp(&a.created_at))
                .then(a.id.cmp(&b.id))
        });
        sorted.dedup_by(|a, b| a.id == b.id);
        sorted
    }
}

impl BackupPolicy for RollingBackups {
    fn should_back_up(&self, commit: &CommitContext) -> bool {
        commit.replacing_revision.is_some()
    }

    fn to_prune(&self, backups: &[BackupRecord], now: DateTime<Utc>) -> Vec<String> {
        // The newest N are N different states: a second backup of the same revision and
        // checksum (`checklist backup create`, then a commit that backs the same
        // revision up again) holds nothing the first does not, so it does not count
        // towards N and the older copy goes.
        let mut seen = HashSet::new();
        let mut distinct = 0;
        let mut pruned = Vec::new();
        for (position, backup) in Self::newest_first(backups).into_iter().enumerate() {
            let first_of_its_content = seen.insert((backup.revision, backup.checksum.as_str()));
            let rank = distinct;
            if first_of_its_content {
                distinct += 1;
            }
            let too_old = self
                .max_age
                .is_some_and(|age| now.signed_duration_since(backup.created_at) > age);
            if position > 0 && (!first_of_its_content || rank >= self.keep || too_old) {
                pruned.push(backup.id.clone());
            }
        }
        pruned
    }

    fn recovery_order(&self, backups: &[BackupRecord]) -> Vec<String> {
        Self::newest_first(backups)
            .into_iter()
            .map(|b| b.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(id: &str, revision: u64, days_old: i64, now: DateTime<Utc>) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            location: format!("state.yaml.{revision}"),
            revision,
            checksum: "sha256:x".into(),
            size: 1,
            created_at: now - chrono::Duration::days(days_old),
            reason: "commit".into(),
        }
    }

    #[test]
    fn backup_ids_from_users_cannot_name_other_files() {
        for bad in ["", "../state.yaml", "a/b", "a\\b", "x\0y", "..", &"9".repeat(129)] {
            assert!(validate_backup_id(bad).is_err(), "{bad:?} was accepted");
        }
        validate_backup_id("3-20261125T183518100Z").unwrap();
    }

    #[test]
    fn keeps_the_newest_n() {
        let now = Utc::now();
        let all: Vec<_> = (1..=5).map(|r| record(&format!("b{r}"), r, 0, now)).collect();
        let mut pruned = RollingBackups::keep(3).to_prune(&all, now);
        pruned.sort();
        assert_eq!(pruned, ["b1", "b2"]);
        assert_eq!(
            RollingBackups::keep(3).recovery_order(&all),
            ["b5", "b4", "b3", "b2", "b1"]
        );
    }

    #[test]
    fn a_second_backup_of_the_same_revision_is_not_counted() {
        let now = Utc::now();
        // `backup create` at 23, then the commit 23 -> 24 backs up 23 again.
        let all = vec![
            record("r21", 21, 3, now),
            record("r22", 22, 2, now),
            record("manual-23", 23, 1, now),
            record("commit-23", 23, 0, now),
        ];
        let mut pruned = RollingBackups::keep(3).to_prune(&all, now);
        pruned.sort();
        assert_eq!(pruned, ["manual-23"]);
        // A different document at the same revision is a different state.
        let mut other = record("other-23", 23, 1, now);
        other.checksum = "sha256:y".into();
        let mut pruned = RollingBackups::keep(3).to_prune(&[all[1].clone(), other, all[3].clone()], now);
        pruned.sort();
        assert!(pruned.is_empty(), "{pruned:?}");
    }

    #[test]
    fn max_age_never_removes_the_newest() {
        let now = Utc::now();
        let all = vec![record("old", 1, 90, now), record("older", 0, 100, now)];
        let policy = RollingBackups::keep(3).with_max_age(chrono::Duration::days(30));
        assert_eq!(policy.to_prune(&all, now), ["older"]);
    }

    #[test]
    fn first_write_has_nothing_to_back_up() {
        let p = RollingBackups::default();
        assert!(!p.should_back_up(&CommitContext {
            replacing_revision: None
        }));
        assert!(p.should_back_up(&CommitContext {
            replacing_revision: Some(1)
        }));
    }

    proptest! {
        #[test]
        fn prune_keeps_at_least_the_newest_and_names_only_listed_ids(
            revisions in prop::collection::vec((0u64..20, 0i64..400), 0..12),
            keep in 1usize..5,
            max_age in prop::option::of(1i64..200),
        ) {
            let now = Utc::now();
            let all: Vec<_> = revisions.iter().enumerate()
                .map(|(i, (r, age))| record(&format!("b{i}"), *r, *age, now)).collect();
            let mut policy = RollingBackups::keep(keep);
            if let Some(days) = max_age { policy = policy.with_max_age(chrono::Duration::days(days)); }
            let pruned = policy.to_prune(&all, now);
            let order = policy.recovery_order(&all);
            prop_assert_eq!(order.len(), all.len());
            if let Some(newest) = order.first() {
                prop_assert!(!pruned.contains(newest));
            }
            prop_assert!(all.len().saturating_sub(pruned.len()) >= all.len().min(1));
            let mut unique = pruned.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), pruned.len());
            prop_assert!(pruned.iter().all(|id| all.iter().any(|b| &b.id == id)));
        }
    }
}
