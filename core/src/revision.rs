//! The revisions a store still holds — its live state's and its backups' — and reading
//! one of them back verified (docs/decisions/0026-diff-and-revisions.md).
//!
//! An archived instance is not a revision held: it is one finished instance, not a
//! whole state document, so no document of the revision it names
//! (`archivedFromRevision`) can be rebuilt from it byte for byte.

use crate::backup::BackupRecord;
use crate::error::{Error, Result};
use crate::model::ChecklistState;
use crate::store::{DocumentStoreExt, StateStore, StateStoreExt};

/// Where a revision is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldCopy {
    /// The live state holds it.
    Live,
    /// This backup holds it (the newest of those holding it, when several do).
    Backup(BackupRecord),
}

/// The revisions a store holds: its live state's (when it has one that verifies) and
/// its listed backups'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRevisions {
    /// The store, as its location names it, for errors.
    location: String,
    /// The live state's revision and checksum.
    live: Option<(u64, String)>,
    /// The listed backups.
    backups: Vec<BackupRecord>,
}

impl HeldRevisions {
    /// What a store holds, from its live state (`None` when it has none, or none that
    /// verifies) and its backups as listed.
    pub fn new(
        location: impl Into<String>,
        live: Option<&ChecklistState>,
        backups: Vec<BackupRecord>,
    ) -> Self {
        Self {
            location: location.into(),
            live: live.map(|state| (state.revision, state.checksum.clone().unwrap_or_default())),
            backups,
        }
    }

    /// Reads what `store` holds: its live state (verified; an error when it does not
    /// verify) and its backup list.
    ///
    /// # Errors
    /// Those of reading the state and listing the backups.
    pub async fn of<S: StateStore + ?Sized>(store: &S) -> Result<(Self, Option<ChecklistState>)> {
        let live = store.read().await?;
        let backups = store.list_backups().await?;
        Ok((
            Self::new(store.info().location.clone(), live.as_ref(), backups),
            live,
        ))
    }

    /// The live state's revision.
    pub fn live(&self) -> Option<u64> {
        self.live.as_ref().map(|(revision, _)| *revision)
    }

    /// Every revision held, oldest first, each once.
    pub fn revisions(&self) -> Vec<u64> {
        let mut revisions: Vec<u64> = self
            .backups
            .iter()
            .map(|b| b.revision)
            .chain(self.live())
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        revisions
    }

    /// The newest revision a backup holds.
    pub fn newest_backup(&self) -> Option<u64> {
        self.backups.iter().map(|b| b.revision).max()
    }

    /// Where `revision` is held: the live state when it holds it, otherwise the newest
    /// backup holding it.
    ///
    /// # Errors
    /// [`Error::RevisionNotHeld`] (naming the oldest revision held) when nothing holds
    /// it; [`Error::InvalidOperation`] when the copies holding it differ (different
    /// checksums: which one is meant cannot be told from the number, so none is
    /// guessed).
    pub fn locate(&self, revision: u64) -> Result<HeldCopy> {
        let mut copies: Vec<(String, &str, HeldCopy)> = Vec::new();
        if let Some((live, checksum)) = &self.live
            && *live == revision
        {
            copies.push(("the live state".to_owned(), checksum, HeldCopy::Live));
        }
        let mut backups: Vec<&BackupRecord> =
            self.backups.iter().filter(|b| b.revision == revision).collect();
        backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        copies.extend(backups.into_iter().map(|b| {
            (
                format!("backup {}", b.id),
                b.checksum.as_str(),
                HeldCopy::Backup(b.clone()),
            )
        }));
        let Some((_, first_checksum, _)) = copies.first() else {
            return Err(Error::RevisionNotHeld {
                revision,
                held: self.revisions(),
                location: self.location.clone(),
            });
        };
        if copies.iter().any(|(_, checksum, _)| checksum != first_checksum) {
            let listed: Vec<String> = copies
                .iter()
                .map(|(name, checksum, _)| format!("{name} ({checksum})"))
                .collect();
            return Err(Error::invalid(format!(
                "revision {revision} is held in {} in different versions: {}; name a backup by its id instead",
                self.location,
                listed.join(", ")
            )));
        }
        Ok(copies.swap_remove(0).2)
    }
}

/// Reads revision `revision` of `store` back verified: the live state `live` when it
/// holds it, otherwise a backup through
/// [`StateStoreExt::read_verified_backup`].
///
/// # Errors
/// Those of [`HeldRevisions::locate`]; [`Error::Corrupted`] naming the backup when it
/// does not verify.
pub async fn read_revision<S: StateStore + ?Sized>(
    store: &S,
    held: &HeldRevisions,
    live: Option<&ChecklistState>,
    revision: u64,
) -> Result<ChecklistState> {
    match (held.locate(revision)?, live) {
        (HeldCopy::Live, Some(state)) => Ok(state.clone()),
        (HeldCopy::Live, None) => store.read_existing().await,
        (HeldCopy::Backup(record), _) => store.read_verified_backup(&record.id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn backup(id: &str, revision: u64, checksum: &str, second: u32) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            location: format!("state.yaml.{id}"),
            revision,
            checksum: checksum.into(),
            size: 1,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(),
            reason: "commit".into(),
        }
    }

    fn live(revision: u64, checksum: &str) -> ChecklistState {
        let mut state = ChecklistState::new();
        state.revision = revision;
        state.checksum = Some(checksum.into());
        state
    }

    #[test]
    fn the_live_state_comes_first_then_the_newest_backup() {
        let state = live(5, "c5");
        let held = HeldRevisions::new(
            "s",
            Some(&state),
            vec![
                backup("old3", 3, "c3", 1),
                backup("new3", 3, "c3", 2),
                backup("b5", 5, "c5", 3),
            ],
        );
        assert_eq!(held.revisions(), [3, 5]);
        assert_eq!(held.newest_backup(), Some(5));
        assert_eq!(held.locate(5).unwrap(), HeldCopy::Live);
        assert!(matches!(held.locate(3).unwrap(), HeldCopy::Backup(b) if b.id == "new3"));
    }

    #[test]
    fn a_revision_not_held_names_the_oldest_held() {
        let state = live(5, "c5");
        let held = HeldRevisions::new("s", Some(&state), vec![backup("b3", 3, "c3", 1)]);
        let error = held.locate(2).unwrap_err();
        assert!(matches!(&error, Error::RevisionNotHeld { revision: 2, held, .. } if held == &[3, 5]));
        let message = error.to_string();
        assert!(
            message.contains("no longer held") && message.contains("oldest revision held is 3"),
            "{message}"
        );
        let message = held.locate(9).unwrap_err().to_string();
        assert!(
            message.contains("oldest revision held is 3 and the newest 5"),
            "{message}"
        );
        let message = HeldRevisions::new("s", None, vec![])
            .locate(1)
            .unwrap_err()
            .to_string();
        assert!(message.contains("holds no revision"), "{message}");
    }

    #[test]
    fn copies_of_a_revision_that_differ_are_refused_not_guessed() {
        let state = live(5, "c5");
        let held = HeldRevisions::new("s", Some(&state), vec![backup("b5", 5, "other", 1)]);
        let message = held.locate(5).unwrap_err().to_string();
        assert!(
            message.contains("different versions") && message.contains("backup b5 (other)"),
            "{message}"
        );
    }
}
