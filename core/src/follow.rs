//! Following a store: every revision committed after a starting point, in order, each
//! once, with the audit record that says who made it and why (`checklist status
//! --follow`).
//!
//! The store's [`ChangeFeed`](crate::ChangeFeed) only says when to look again; the [`Follower`] reads the
//! state and the audit trail after each wake-up and works out what happened, so a
//! backend's notification may be coarse (a directory event, a database's data version)
//! without a follower ever reporting a commit twice or skipping one
//! (docs/architecture.md, "Following a store").
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> checklist_core::Result<()> {
//! # use std::sync::Arc;
//! use checklist_core::follow::{FollowEvent, Follower};
//! # use checklist_core::{ChecklistState, DocumentStoreExt, Expectation, StateStore};
//! # async fn demo(store: Arc<dyn StateStore>) -> checklist_core::Result<()> {
//! let mut follower = Follower::from_now(Arc::clone(&store)).await?;
//! // … another handle or process commits …
//! if let FollowEvent::Committed(commit) = follower.next().await? {
//!     println!("revision {} by {:?}", commit.revision, commit.record.map(|r| r.user));
//! }
//! # Ok(()) }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditEvent, AuditRecord};
use crate::error::{Error, Result};
use crate::store::{ChangeWatch, DocumentStoreExt, StateStore};

/// How long a follower waits for the audit record of a revision it already sees. A
/// store without [`transactional_audit`](crate::Capabilities::transactional_audit)
/// appends a commit's record after the commit, and recovery and restores append theirs
/// after their write on every store; the writer does so right after its write returns,
/// so the record is normally there within milliseconds. A writer killed in between
/// never appends it.
pub const AUDIT_GRACE: Duration = Duration::from_secs(2);

/// One revision committed after the follower's starting point.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Commit {
    /// The revision it produced.
    pub revision: u64,
    /// The checksum of that revision, from its audit record or, for the newest, from the
    /// state itself.
    pub checksum: Option<String>,
    /// The audit record that produced it (a commit, recovery, restore or migration):
    /// the transaction id, the operations, the user, host and process. `None` when the
    /// trail holds none for it (its committer was killed before appending it, or the
    /// part holding it was rotated away).
    pub record: Option<Box<AuditRecord>>,
}

/// What a [`Follower`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FollowEvent {
    /// A revision after the last one reported.
    Committed(Commit),
    /// The state was replaced by one that does not follow from the last revision
    /// reported: an older revision, another document at the same revision, or no state
    /// at all (`to` is `None`: deleted, or a store set up again). Following goes on from
    /// `to`.
    Replaced {
        /// The last revision reported before.
        from: Option<u64>,
        /// The revision found now.
        to: Option<u64>,
    },
    /// The state cannot be read as it is now (corrupt, or a newer schema version);
    /// following goes on, and reports the revision recovery or a restore makes next.
    Unreadable {
        /// Why, as the store's read says it.
        error: String,
    },
}

/// Follows one store: reports what every change after its starting point did.
#[derive(Debug)]
pub struct Follower {
    store: Arc<dyn StateStore>,
    watch: Box<dyn ChangeWatch>,
    /// The revision and checksum last reported (or the starting point).
    seen: Option<(u64, Option<String>)>,
    /// The text of the read error last reported, so a state that stays unreadable is
    /// reported once.
    unreadable: Option<String>,
    pending: VecDeque<FollowEvent>,
}

impl Follower {
    /// Follows `store` from its current revision: the next event is the next change.
    ///
    /// # Errors
    /// The errors of [`ChangeFeed::watch`](crate::ChangeFeed::watch), and of reading a
    /// state that is not corrupt but cannot be read (I/O, a server gone).
    pub async fn from_now(store: Arc<dyn StateStore>) -> Result<Self> {
        let watch = store.watch().await?;
        let mut follower = Self {
            store,
            watch,
            seen: None,
            unreadable: None,
            pending: VecDeque::new(),
        };
        match follower.store.read().await {
            Ok(state) => follower.seen = state.map(|s| (s.revision, s.checksum)),
            Err(e) if is_unreadable(&e) => follower.unreadable = Some(e.to_string()),
            Err(e) => return Err(e),
        }
        Ok(follower)
    }

    /// Follows `store` after `revision`: the events report every revision after it,
    /// those already committed first (those whose audit records are still held).
    ///
    /// # Errors
    /// As [`from_now`](Self::from_now).
    pub async fn after(store: Arc<dyn StateStore>, revision: u64) -> Result<Self> {
        let watch = store.watch().await?;
        Ok(Self {
            store,
            watch,
            seen: Some((revision, None)),
            unreadable: None,
            pending: VecDeque::new(),
        })
    }

    /// The revision last reported, or the starting point; `None` before any state.
    pub fn revision(&self) -> Option<u64> {
        self.seen.as_ref().map(|(revision, _)| *revision)
    }

    /// The next event, waiting for it as long as it takes.
    ///
    /// # Errors
    /// The errors of the store's watch, and of reading a state that is not corrupt but
    /// cannot be read (I/O, a server gone). The follower can be asked again after one.
    pub async fn next(&mut self) -> Result<FollowEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            self.look().await?;
            if self.pending.is_empty() {
                self.watch.changed().await?;
            }
        }
    }

    /// Reads the state once and queues what changed since the last look.
    async fn look(&mut self) -> Result<()> {
        let state = match self.store.read().await {
            Ok(state) => state,
            Err(e) if is_unreadable(&e) => {
                let error = e.to_string();
                if self.unreadable.as_ref() != Some(&error) {
                    self.unreadable = Some(error.clone());
                    self.pending.push_back(FollowEvent::Unreadable { error });
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.unreadable = None;
        let now = state.map(|s| (s.revision, s.checksum));
        match (&self.seen, &now) {
            (Some((last, _)), Some((revision, checksum))) if revision > last => {
                let (last, revision, checksum) = (*last, *revision, checksum.clone());
                self.queue_commits(last, revision, checksum).await?;
            }
            (None, Some((revision, checksum))) => {
                let (revision, checksum) = (*revision, checksum.clone());
                self.queue_commits(0, revision, checksum).await?;
            }
            (Some((last, last_checksum)), Some((revision, checksum)))
                if revision < last
                    || (revision == last && last_checksum.is_some() && last_checksum != checksum) =>
            {
                self.pending.push_back(FollowEvent::Replaced {
                    from: Some(*last),
                    to: Some(*revision),
                });
                self.seen = now;
            }
            (Some((last, _)), None) => {
                self.pending.push_back(FollowEvent::Replaced {
                    from: Some(*last),
                    to: None,
                });
                self.seen = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// Queues a [`Commit`] for every revision in `(last, revision]` the audit trail
    /// knows of, and for `revision` itself, in order; waits up to [`AUDIT_GRACE`] for
    /// the records of a store that appends them after the commit.
    async fn queue_commits(&mut self, last: u64, revision: u64, checksum: Option<String>) -> Result<()> {
        let deadline = tokio::time::Instant::now() + AUDIT_GRACE;
        let records = loop {
            let records = self.records_between(last, revision).await?;
            if records.last().is_some_and(|r| r.revision_after == Some(revision)) {
                break records;
            }
            // The newest record is not there yet: wait for the trail to change, up to
            // the grace period (a missed wake-up only costs the rest of it).
            match tokio::time::timeout_at(deadline, self.watch.changed()).await {
                Ok(changed) => changed?,
                Err(_elapsed) => break self.records_between(last, revision).await?,
            }
        };
        // One entry per revision: those the records produced, and those a record
        // started from (its `revisionBefore`) whose own record is missing — a writer
        // killed between its commit and its audit append — so that no revision is
        // skipped, and none is made up where a recovery jumped over numbers.
        let mut revisions: BTreeMap<u64, Option<AuditRecord>> = BTreeMap::new();
        for record in records {
            if let Some(before) = record.revision_before.filter(|b| *b > last && *b < revision) {
                revisions.entry(before).or_insert(None);
            }
            if let Some(after) = record.revision_after {
                revisions.insert(after, Some(record));
            }
        }
        revisions.entry(revision).or_insert(None);
        for (at, record) in revisions {
            let checksum = match &record {
                Some(record) => record.checksum.clone(),
                None if at == revision => checksum.clone(),
                None => None,
            };
            self.pending.push_back(FollowEvent::Committed(Commit {
                revision: at,
                checksum,
                record: record.map(Box::new),
            }));
        }
        self.seen = Some((revision, checksum));
        Ok(())
    }

    /// The audit records that produced a revision in `(after, upto]`, one per
    /// revision (the last appended for it), in revision order.
    async fn records_between(&self, after: u64, upto: u64) -> Result<Vec<AuditRecord>> {
        let log = self.store.read_audit().await?;
        let mut by_revision = BTreeMap::new();
        for record in log.records {
            let produced = matches!(
                record.event,
                AuditEvent::Commit
                    | AuditEvent::Recovery
                    | AuditEvent::Restore
                    | AuditEvent::Migration
                    | AuditEvent::BackendMigrated
            );
            match record.revision_after {
                Some(at) if produced && at > after && at <= upto => {
                    by_revision.insert(at, record);
                }
                _ => {}
            }
        }
        Ok(by_revision.into_values().collect())
    }
}

/// Whether a read failed because of what the state holds (a follower reports it and
/// goes on), not because it could not be read at all.
fn is_unreadable(error: &Error) -> bool {
    matches!(error, Error::Corrupted { .. } | Error::UnsupportedVersion { .. })
}
