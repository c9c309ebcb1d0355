//! The audit trail: one record per event, appended and never rewritten (docs/decisions/0008-transactions-and-audit.md).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bounded_text::bound_json_text;
use crate::identity;
use crate::lock::info::LockNote;
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
    /// The state was moved to another backend (`checklist backend migrate`): in the
    /// new store's trail with its first revision, in the old one's with the revision it
    /// was moved at.
    BackendMigrated,
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
            Self::BackendMigrated => "backend_migrated",
        }
    }
}

/// One line of `audit.log` (JSON Lines).
///
/// Its free-text parts (operations, error, backtrace and extra fields) are serialized
/// with every secret replaced by `[REDACTED:<kind>]`, whatever `secrets.mode` says: the
/// trail is append-only and rotated, never rewritten, so a secret that reached it
/// could not be taken out again. A transaction's description can carry one (a step id,
/// a command line) even when the document itself is refused.
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
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "redacted::texts"
    )]
    pub operations: Vec<String>,
    /// The error, for a rollback or a failed recovery.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted::text"
    )]
    pub error: Option<String>,
    /// Where the error came from, when a backtrace was captured.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted::text"
    )]
    pub backtrace: Option<String>,
    /// The note of the lock the event happened under
    /// ([`LockNote`], docs/decisions/0025-lock-notes.md): why its
    /// holder held it, a CI job id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted::text"
    )]
    pub lock_note: Option<String>,
    /// Fields this build does not know; kept as they are.
    #[serde(flatten, serialize_with = "redacted::fields")]
    pub extra: Map<String, Value>,
}

/// The serializers that keep secrets out of the trail.
mod redacted {
    use serde::{Serialize, Serializer};
    use serde_json::{Map, Value};

    use crate::secrets::redact_text;

    fn clean(text: &str) -> String {
        let mut text = text.to_owned();
        redact_text(&mut text);
        text
    }

    fn clean_value(value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(clean(text)),
            Value::Array(items) => Value::Array(items.iter().map(clean_value).collect()),
            Value::Object(map) => Value::Object(clean_map(map)),
            other => other.clone(),
        }
    }

    fn clean_map(map: &Map<String, Value>) -> Map<String, Value> {
        map.iter().map(|(k, v)| (clean(k), clean_value(v))).collect()
    }

    pub(super) fn text<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        text.as_deref().map(clean).serialize(serializer)
    }

    pub(super) fn texts<S: Serializer>(texts: &[String], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(texts.iter().map(|t| clean(t)))
    }

    pub(super) fn fields<S: Serializer>(
        fields: &Map<String, Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        clean_map(fields).serialize(serializer)
    }
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
            lock_note: None,
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

    /// The same record with the note of the lock it happened under, if it had one.
    pub fn lock_note(mut self, note: Option<&LockNote>) -> Self {
        self.lock_note = note.map(|note| note.as_str().to_owned());
        self
    }

    /// The same record with one more field (kept in [`extra`](Self::extra)), for
    /// what only one kind of event has — a migration's versions and backup.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The record as one line of JSON, with the trailing newline: at most
    /// [`MAX_LINE_BYTES`], so that no record can make the trail unreadable. A record
    /// that would be longer (its text carries a captured build log, say) is written
    /// shortened: each text cut to [`SHORTENED_TEXT_BYTES`] and each list to
    /// [`SHORTENED_LIST_ITEMS`] items, saying how much was left out
    /// ([`crate::bounded_text`]), and without its extra fields if even that is too long.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        if line.len() >= MAX_LINE_BYTES {
            let mut short = self.shortened();
            line = serde_json::to_vec(&short).unwrap_or_default();
            if line.len() >= MAX_LINE_BYTES {
                short.extra = Map::from_iter([(
                    "extraLeftOut".to_owned(),
                    Value::from("the extra fields of this record were too long for one audit line"),
                )]);
                line = serde_json::to_vec(&short).unwrap_or_default();
            }
        }
        line.push(b'\n');
        line
    }

    /// The same record with every text and list cut to the shortened sizes.
    fn shortened(&self) -> Self {
        let text = |t: &str| bound_json_text(t.to_owned(), SHORTENED_TEXT_BYTES);
        let mut short = self.clone();
        short.operations = shortened_list(&self.operations, |t| text(t), |n| format!("… [{n} more]"));
        short.error = self.error.as_deref().map(text);
        short.backtrace = self.backtrace.as_deref().map(text);
        short.extra = self
            .extra
            .iter()
            .map(|(k, v)| (text(k), shortened_value(v)))
            .collect();
        short
    }
}

/// Longest line a record is written as, newline included. Each audit part is read
/// whole with a limit of twice `audit.maxBytes` plus 1 MiB (a part holds at most
/// `maxBytes` and the record that crossed it), so a record of this size always reads.
pub const MAX_LINE_BYTES: usize = 512 * 1024;

/// How long each text of a shortened record is, in bytes as written.
pub const SHORTENED_TEXT_BYTES: usize = 4096;

/// How many items each list of a shortened record keeps.
pub const SHORTENED_LIST_ITEMS: usize = 32;

fn shortened_list<T>(items: &[T], each: impl Fn(&T) -> T, more: impl Fn(usize) -> T) -> Vec<T> {
    let mut kept: Vec<T> = items.iter().take(SHORTENED_LIST_ITEMS).map(each).collect();
    if items.len() > SHORTENED_LIST_ITEMS {
        kept.push(more(items.len() - SHORTENED_LIST_ITEMS));
    }
    kept
}

fn shortened_value(value: &Value) -> Value {
    match value {
        Value::String(t) => Value::String(bound_json_text(t.clone(), SHORTENED_TEXT_BYTES)),
        Value::Array(items) => Value::Array(shortened_list(items, shortened_value, |n| {
            Value::from(format!("… [{n} more]"))
        })),
        Value::Object(map) => Value::Object(
            map.iter()
                .take(SHORTENED_LIST_ITEMS)
                .map(|(k, v)| {
                    (
                        bound_json_text(k.clone(), SHORTENED_TEXT_BYTES),
                        shortened_value(v),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
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
    /// The highest `revisionAfter` of its records: the last revision the trail knows
    /// was committed.
    pub fn last_revision(&self) -> Option<u64> {
        self.records.iter().filter_map(|r| r.revision_after).max()
    }

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
    use serde_json::json;
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

    #[test]
    fn a_record_too_long_for_one_line_is_shortened_to_fit() {
        let log = "\u{1b}[32mCompiling\u{1b}[0m ✓\n".repeat(6_000);
        let record = AuditRecord::new(AuditEvent::Rollback)
            .operations(vec![format!("step complete {log}"), log.clone()])
            .error(format!("refused: {log}"))
            .field("command", json!({ "stdout": log.clone(), "argv": [log.clone()] }));
        let line = record.to_line();
        assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
        let mut read = AuditLog::default();
        read.parse_into(Path::new("audit.log"), &line, true);
        assert_eq!(read.problems, []);
        assert!(read.records[0].operations[0].starts_with("step complete \u{1b}[32mCompiling"));
        assert!(
            read.records[0]
                .error
                .as_deref()
                .unwrap()
                .ends_with(" more bytes]")
        );

        // Even with extra fields too long for a line once shortened, the line is bounded.
        let row = vec!["k".repeat(600); 33];
        let crowded = AuditRecord::new(AuditEvent::Commit).field("nested", json!(vec![row; 33]));
        let line = crowded.to_line();
        assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
        assert!(String::from_utf8(line).unwrap().contains("extraLeftOut"));

        // A record that fits is written as it is, however long its texts.
        let long = AuditRecord::new(AuditEvent::Commit).operations(vec!["x".repeat(200 * 1024)]);
        let mut read = AuditLog::default();
        read.parse_into(Path::new("audit.log"), &long.to_line(), true);
        assert_eq!(read.records, [long]);
    }

    #[test]
    fn secrets_never_reach_a_line_of_the_trail() {
        const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let mut record = AuditRecord::new(AuditEvent::Rollback)
            .operations(vec![format!("step complete {TOKEN}")])
            .error(format!(
                "curl -u admin:hunter2x@ failed: https://deploy:s3cr3tpw@example.com/ {TOKEN}"
            ))
            .field(
                "command",
                json!({ "argv": ["--token", format!("token={TOKEN}")] }),
            )
            .field(&format!("key-{TOKEN}"), 1);
        record.backtrace = Some(format!("panicked at 'bad {TOKEN}'"));
        let line = String::from_utf8(record.to_line()).unwrap();
        assert!(!line.contains(TOKEN), "{line}");
        assert!(!line.contains("s3cr3tpw"), "{line}");
        assert_eq!(line.matches("[REDACTED:github_token]").count(), 5, "{line}");
        assert!(line.contains("[REDACTED:url_password]"), "{line}");

        let mut log = AuditLog::default();
        log.parse_into(Path::new("audit.log"), line.as_bytes(), true);
        assert_eq!(log.problems, []);
        assert_eq!(
            log.records[0].operations,
            ["step complete [REDACTED:github_token]"]
        );
    }
}
