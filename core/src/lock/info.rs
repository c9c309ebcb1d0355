//! What a lock records and reports: plain data, with no dependency on the providers,
//! so errors can carry it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the lock holder intends to do; recorded in the lock for diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Reading only.
    Read,
    /// Changing the state.
    Write,
    /// Removing data (archive, prune).
    Delete,
}

/// Who holds a lock: the metadata written into the lock (schemas/lock.schema.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    /// Unique id of this acquisition; needed to force-release it.
    pub lock_id: String,
    /// Process id of the holder.
    pub pid: u32,
    /// Parent process id of the holder, where known.
    pub ppid: Option<u32>,
    /// Host name of the holder.
    pub hostname: String,
    /// User name of the holder.
    pub user: String,
    /// When the holder process started, where known (tells a reused pid apart).
    pub process_started_at: Option<DateTime<Utc>>,
    /// When the lock was acquired.
    pub acquired_at: DateTime<Utc>,
    /// When the lock expires unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When the lock was last renewed.
    pub renewed_at: DateTime<Utc>,
    /// What the holder does.
    pub operation: Operation,
    /// Where in the holder the lock was taken: a stack trace when the holder captured
    /// one (`CHECKLIST_LOCK_BACKTRACE=1`), otherwise its command line.
    pub stack_trace: Option<String>,
    /// Why the holder holds the lock, in its own words (`--lock-note`,
    /// `CHECKLIST_LOCK_NOTE`, [`LockRequest::note`](crate::LockRequest::note)): a CI
    /// job id, a ticket. Absent from what older builds wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<LockNote>,
}

/// A holder's note on why it holds a lock (docs/decisions/0025-lock-notes.md): one line
/// of at most [`MAX_CHARS`](Self::MAX_CHARS) characters, no control characters (so it
/// cannot forge lines of `lock status` or an error message), and secrets replaced by
/// `[REDACTED:<kind>]` before it is stored anywhere.
///
/// Made by [`LockNote::new`], which refuses what does not fit; a note read back from a
/// lock (written by another tool or build) is made to fit instead, so it never makes
/// the lock unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LockNote(String);

impl LockNote {
    /// The longest note, in characters (after secrets are redacted).
    pub const MAX_CHARS: usize = 200;

    /// A note already checked and redacted by its constructors in `lock/mod.rs`.
    pub(super) fn from_checked(text: String) -> Self {
        Self(text)
    }

    /// The note's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LockNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A process waiting for a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiter {
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub hostname: String,
    /// When it started waiting.
    pub since: DateTime<Utc>,
}

/// The holder and the waiters of a lock, as [`LockProvider::inspect`](crate::LockProvider::inspect) sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStatus {
    /// The current holder, if the lock is held by one whose metadata can be read.
    pub holder: Option<LockInfo>,
    /// Who is waiting, oldest first.
    pub waiters: Vec<Waiter>,
    /// Set when the lock is held but its holder cannot be read (then `holder` is
    /// `None`): the lock still keeps everyone out until it is judged stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<UnreadableLock>,
}

/// A lock held by something its provider cannot read, such as a damaged or hand-written
/// lock file. Nobody can say who holds it, so it cannot be force-released by id; a
/// waiter takes it over once it has not changed for the waiter's lock expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadableLock {
    /// When it last changed.
    pub modified_at: DateTime<Utc>,
}

/// What a lock provider can do, as data it declares: callers and the conformance suite
/// choose their behaviour from it, never from the provider's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LockCapabilities {
    /// It excludes holders in other processes (and, for a server's lock, on other
    /// machines), not only the tasks of this one.
    pub cross_process: bool,
    /// It breaks a lock whose holder is provably gone, on the next `acquire`.
    pub stale_lock_detection: bool,
    /// It stores the [`LockRequest::note`](crate::LockRequest::note) of a request with
    /// its holder, so every provider on the lock shows it in [`LockInfo::note`]
    /// (`inspect`, a lock timeout).
    pub holder_notes: bool,
}

impl LockCapabilities {
    /// The tasks of one process, whose holders cannot vanish without releasing.
    pub const IN_PROCESS: Self = Self {
        cross_process: false,
        stale_lock_detection: false,
        holder_notes: true,
    };

    /// Across processes, breaking the locks of holders that are gone.
    pub const CROSS_PROCESS: Self = Self {
        cross_process: true,
        stale_lock_detection: true,
        holder_notes: true,
    };
}
