//! The audit trail: one record per event, appended and never rewritten (DESIGN §5).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::identity;
use crate::model::now;

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// A transaction started (it holds the lock and has read the state).
    Begin,
    /// A transaction committed a new revision.
    Commit,
    /// A transaction failed and left the state as it was.
    Rollback,
    /// A corrupt state was recovered.
    Recovery,
    /// A stale lock was broken or force-released.
    LockBroken,
    /// A document was migrated to a newer schema version.
    Migration,
    /// A backup was taken.
    Backup,
    /// A backup was restored.
    Restore,
}

impl AuditEvent {
    /// The snake_case name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::Commit => "commit",
            Self::Rollback => "rollback",
            Self::Recovery => "recovery",
            Self::LockBroken => "lock_broken",
            Self::Migration => "migration",
            Self::Backup => "backup",
            Self::Restore => "restore",
        }
    }
}

/// One line of `audit.log` (JSON Lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// The transaction it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
    /// What happened.
    pub event: AuditEvent,
    /// The process that recorded it.
    pub pid: u32,
    /// Its user.
    pub user: String,
    /// Its host.
    pub host: String,
    /// The revision before the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_before: Option<u64>,
    /// The revision after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_after: Option<u64>,
    /// The checksum of the state after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// A summary of the operations involved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// The error, for a rollback or a failed recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the error came from, when a backtrace was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuditRecord {
    /// A record of `event` by this process, now.
    pub fn new(event: AuditEvent) -> Self {
        let me = identity::current();
        Self {
            ts: now(),
            tx_id: None,
            event,
            pid: me.pid,
            user: me.user.clone(),
            host: me.hostname.clone(),
            revision_before: None,
            revision_after: None,
            checksum: None,
            operations: Vec::new(),
            error: None,
            backtrace: None,
            extra: Map::new(),
        }
    }

    /// The same record for transaction `tx_id`.
    pub fn in_transaction(mut self, tx_id: &str) -> Self {
        self.tx_id = Some(tx_id.to_owned());
        self
    }

    /// The same record with revisions before and after.
    pub fn revisions(mut self, before: Option<u64>, after: Option<u64>) -> Self {
        self.revision_before = before;
        self.revision_after = after;
        self
    }

    /// The same record with a checksum.
    pub fn checksum(mut self, checksum: impl Into<String>) -> Self {
        self.checksum = Some(checksum.into());
        self
    }

    /// The same record with an operations summary.
    pub fn operations(mut self, operations: Vec<String>) -> Self {
        self.operations = operations;
        self
    }

    /// The same record with an error.
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// The same record with one more field (kept in [`extra`](Self::extra)), for
    /// what only one kind of event has — a migration's versions and backup.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The record as one line of JSON, with the trailing newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// A line of the audit trail that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditProblem {
    /// The file holding it.
    pub file: PathBuf,
    /// Its line number, from 1.
    pub line: usize,
    /// Whether it is a record cut short by a crash or a full disk mid-append — JSON
    /// that ends early — which is expected and harmless.
    pub torn: bool,
    /// Why it could not be read.
    pub detail: String,
}

/// The audit trail as read: records oldest first, and the lines that could not be
/// read (never fatal).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditLog {
    /// The records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Lines that were not records.
    pub problems: Vec<AuditProblem>,
}

impl AuditLog {
    /// Parses JSON Lines text from `file`, appending to this log. A line is torn when
    /// its JSON ends early, or when it is the unterminated last line of the newest
    /// (`newest`: the current, not rotated) file; anything else is damage.
    pub fn parse_into(&mut self, file: &std::path::Path, text: &[u8], newest: bool) {
        let ends_with_newline = text.last() == Some(&b'\n');
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let count = lines.len();
        for (index, line) in lines.into_iter().enumerate() {
            let is_last = index + 1 == count;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<AuditRecord>(line) {
                Ok(record) => self.records.push(record),
                Err(e) => self.problems.push(AuditProblem {
                    file: file.to_owned(),
                    line: index + 1,
                    torn: e.is_eof() || (newest && is_last && !ends_with_newline),
                    detail: e.to_string(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lines_round_trip_and_a_torn_tail_is_reported_not_fatal() {
        let a = AuditRecord::new(AuditEvent::Commit)
            .in_transaction("t1")
            .revisions(Some(1), Some(2))
            .checksum("sha256:x");
        let b = AuditRecord::new(AuditEvent::Rollback).error("boom");
        let mut text = a.to_line();
        text.extend(b.to_line());
        let torn = AuditRecord::new(AuditEvent::Begin).to_line();
        text.extend_from_slice(&torn[..torn.len() / 2]);
        let mut log = AuditLog::default();
        log.parse_into(Path::new("audit.log"), &text, true);
        assert_eq!(log.records, [a, b]);
        assert_eq!(log.problems.len(), 1);
        assert!(log.problems[0].torn);
        assert_eq!(log.problems[0].line, 3);

        let mut rotated = AuditLog::default();
        rotated.parse_into(Path::new("audit.log.1"), b"{not json}\n", false);
        assert!(
            !rotated.problems[0].torn,
            "damage in a rotated file is not a torn append"
        );
    }
}
