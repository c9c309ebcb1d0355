//! The lock file format (schemas/lock.schema.json) and the staleness rule of docs/decisions/0007-file-lock.md,
//! kept apart from the I/O so the rule can be tested case by case.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use crate::fs::identity::FileIdentity;

use checklist_core::bounded_text::bound_json_text;
use checklist_core::lock::{LockRequest, Operation, Waiter};
use checklist_core::{LockInfo, LockNote};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::process::{Liveness, ProcessIdentity, ProcessStart};

/// The version of the lock file format this build writes: 1.1.0 added
/// `operation.note`, which 1.0.0 readers ignore.
pub(crate) const LOCK_FORMAT_VERSION: &str = "1.1.0";

/// Largest lock or waiter file read. What this build writes stays far below it (see
/// [`MAX_TEXT_BYTES`]), so a holder can always read its own lock back; a larger file
/// (a foreign tool's, an older build's) is an unreadable lock, judged by its age.
pub(crate) const MAX_LOCK_BYTES: u64 = 64 * 1024;

/// Longest command line, host or user name recorded in a lock file, in bytes: the
/// lock records where it came from, not the data a command passes
/// ([`checklist_core::bounded_text`]).
pub(crate) const MAX_TEXT_BYTES: usize = 2048;

/// Longest stack trace recorded in a lock file (`CHECKLIST_LOCK_BACKTRACE=1`), in bytes.
pub(crate) const MAX_STACK_TRACE_BYTES: usize = 16 * 1024;

/// The contents of `.checklist/.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockFile {
    pub(crate) version: String,
    pub(crate) lock_id: String,
    pub(crate) metadata: LockMetadata,
    pub(crate) timing: LockTiming,
    pub(crate) operation: LockOperation,
    #[serde(default)]
    pub(crate) concurrency: Concurrency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockMetadata {
    pub(crate) pid: u32,
    pub(crate) ppid: Option<u32>,
    pub(crate) hostname: String,
    pub(crate) user: String,
    pub(crate) process_started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) process_start_ticks: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockTiming {
    pub(crate) acquired_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) renewed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockOperation {
    #[serde(rename = "type")]
    pub(crate) kind: Operation,
    pub(crate) stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) command_line: Option<String>,
    /// The request's note (docs/decisions/0025-lock-notes.md); older builds ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<LockNote>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Concurrency {
    #[serde(default)]
    pub(crate) waiting_processes: Vec<Waiter>,
}

impl LockFile {
    /// A new lock for this process.
    pub(crate) fn new(lock_id: String, request: &LockRequest, now: DateTime<Utc>) -> Self {
        let me = ProcessIdentity::current();
        // Symbolizing a backtrace costs ~150 ms, more than the whole command, so it is
        // opt-in (CHECKLIST_LOCK_BACKTRACE=1) and not tied to RUST_BACKTRACE; the
        // command line says where the lock came from in the common case.
        let stack_trace = std::env::var_os("CHECKLIST_LOCK_BACKTRACE")
            .filter(|v| v == "1")
            .map(|_| {
                bound_json_text(
                    std::backtrace::Backtrace::force_capture().to_string(),
                    MAX_STACK_TRACE_BYTES,
                )
            });
        Self {
            version: LOCK_FORMAT_VERSION.to_owned(),
            lock_id,
            metadata: LockMetadata {
                pid: me.pid,
                ppid: me.ppid,
                hostname: bound_json_text(me.hostname.clone(), MAX_TEXT_BYTES),
                user: bound_json_text(me.user.clone(), MAX_TEXT_BYTES),
                process_started_at: me.start.as_ref().map(|s| s.at),
                boot_id: me.start.as_ref().map(|s| s.boot_id.clone()),
                process_start_ticks: me.start.as_ref().map(|s| s.ticks),
            },
            timing: LockTiming {
                acquired_at: now,
                expires_at: now + chrono_duration(request.expiry),
                renewed_at: now,
            },
            operation: LockOperation {
                kind: request.operation,
                stack_trace,
                command_line: Some(COMMAND_LINE.clone()),
                note: request.note.clone(),
            },
            concurrency: Concurrency::default(),
        }
    }

    /// The same lock renewed at `now`.
    pub(crate) fn renewed(&self, now: DateTime<Utc>) -> Self {
        let mut renewed = self.clone();
        renewed.timing.renewed_at = now;
        renewed.timing.expires_at = now + chrono_duration(self.expiry());
        renewed
    }

    /// How long the holder declared its lock lives without renewal.
    pub(crate) fn expiry(&self) -> Duration {
        (self.timing.expires_at - self.timing.renewed_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Parses a lock file; `None` for anything that is not a complete, valid lock.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        checklist_core::schema::validate_lock(&value).ok()?;
        serde_json::from_value(value).ok()
    }

    /// The bytes written to disk.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The holder as the core API describes it.
    pub(crate) fn info(&self) -> LockInfo {
        LockInfo {
            lock_id: self.lock_id.clone(),
            pid: self.metadata.pid,
            ppid: self.metadata.ppid,
            hostname: self.metadata.hostname.clone(),
            user: self.metadata.user.clone(),
            process_started_at: self.metadata.process_started_at,
            acquired_at: self.timing.acquired_at,
            expires_at: self.timing.expires_at,
            renewed_at: self.timing.renewed_at,
            operation: self.operation.kind,
            stack_trace: self
                .operation
                .stack_trace
                .clone()
                .or_else(|| self.operation.command_line.clone()),
            note: self.operation.note.clone(),
        }
    }
}

/// Reads the bytes of a lock file (`.checklist/.lock`) into the holder they describe,
/// as [`FileLockProvider`](crate::FileLockProvider) reads them when it inspects or
/// judges a lock. `None` for anything that is not a complete lock valid against
/// `schemas/lock.schema.json` (being written, damaged, a foreign tool's): the provider
/// judges such a lock by its age alone.
///
/// ```
/// assert_eq!(checklist_backends::parse_lock_file(b"{\"version\": \"1.0.0\""), None);
/// ```
pub fn parse_lock_file(bytes: &[u8]) -> Option<LockInfo> {
    LockFile::parse(bytes).map(|lock| lock.info())
}

/// This process's command line as the lock file records it, built once: it cannot
/// change, and every acquire would otherwise scan it for secrets again. Secrets are
/// redacted because the command line can carry one (`--stdout "token=…"`) and the lock
/// file is on disk for as long as the command runs, or longer after a crash.
static COMMAND_LINE: LazyLock<String> = LazyLock::new(|| {
    let mut command_line = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    checklist_core::secrets::redact_text(&mut command_line);
    bound_json_text(command_line, MAX_TEXT_BYTES)
});

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a waiter saw of the lock file.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    /// The parsed lock; `None` when the file is not a complete, valid lock (being
    /// written by a foreign tool, or damaged).
    pub(crate) lock: Option<LockFile>,
    /// The lock file's modification time, by the file system's clock.
    pub(crate) modified: SystemTime,
    /// Identifies the file itself (device and inode on Unix), so a breaker can tell
    /// it is still looking at the same lock.
    pub(crate) identity: FileIdentity,
    /// Whether the holder still holds its liveness lock (`.locks/live-<lockId>`).
    pub(crate) holder_lock: HolderLock,
}

/// The state of the holder's liveness lock, an OS advisory lock the holder keeps for
/// as long as it lives; the kernel drops it when the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HolderLock {
    /// Someone holds it: the holder is alive.
    Held,
    /// Nobody holds it (or its file is gone): the holder is gone.
    Free,
    /// It could not be probed (another host, an unparseable lock, a file system
    /// without advisory locks).
    Unknown,
}

/// Whether a lock may be broken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its holder may still be working.
    Live,
    /// Its holder is gone or let it expire; the reason says which, for the audit trail.
    Stale(String),
}

/// What the judge needs to know about the world, passed in so tests can fake it.
pub(crate) struct World<'a> {
    pub(crate) now: SystemTime,
    pub(crate) hostname: &'a str,
    /// The expiry of the waiter's own request, used for a lock whose own expiry
    /// cannot be read.
    pub(crate) default_expiry: Duration,
    pub(crate) liveness: &'a dyn Fn(u32) -> Liveness,
    pub(crate) start_of: &'a dyn Fn(u32) -> Option<ProcessStart>,
}

/// The staleness rule (docs/decisions/0007-file-lock.md): a lock is stale when its holder is provably gone —
/// same host, and the holder no longer holds its liveness lock, or its pid is dead or
/// belongs to a different process — or when it has not been renewed for longer than
/// its expiry, measured by the lock file's own modification time. A lock that cannot
/// be parsed (mid-write, damaged) is never judged by its content, only by expiry.
pub(crate) fn judge(observation: &Observation, world: &World<'_>) -> Verdict {
    let expiry = observation
        .lock
        .as_ref()
        .map_or(world.default_expiry, LockFile::expiry);
    let idle = world
        .now
        .duration_since(observation.modified)
        .unwrap_or(Duration::ZERO);
    let expired = idle > expiry;
    let Some(lock) = &observation.lock else {
        return if expired {
            Verdict::Stale(format!(
                "the lock file is not a valid lock and has not changed for {} ms (expiry {} ms)",
                idle.as_millis(),
                expiry.as_millis()
            ))
        } else {
            Verdict::Live
        };
    };
    let holder = &lock.metadata;
    if holder.hostname == world.hostname
        && let Some(reason) = holder_gone(lock, observation.holder_lock, world)
    {
        return Verdict::Stale(reason);
    }
    if expired {
        return Verdict::Stale(format!(
            "it was not renewed for {} ms, longer than its {} ms expiry (holder pid {} on {} stopped or hung)",
            idle.as_millis(),
            expiry.as_millis(),
            holder.pid,
            holder.hostname
        ));
    }
    Verdict::Live
}

/// Why a holder on this host is provably gone, if it is.
fn holder_gone(lock: &LockFile, holder_lock: HolderLock, world: &World<'_>) -> Option<String> {
    let holder = &lock.metadata;
    let pid = holder.pid;
    let pid_state = (world.liveness)(pid);
    let reused = || {
        let recorded = holder.boot_id.as_ref().zip(holder.process_start_ticks)?;
        let current = (world.start_of)(pid)?;
        (recorded != (&current.boot_id, current.ticks)).then_some(())
    };
    match holder_lock {
        HolderLock::Held => None,
        HolderLock::Free => Some(match pid_state {
            Liveness::Dead => format!("its holder, pid {pid}, is gone"),
            _ if reused().is_some() => format!("pid {pid} now belongs to another process"),
            _ => format!("its holder, pid {pid}, no longer holds its liveness lock"),
        }),
        HolderLock::Unknown => match pid_state {
            Liveness::Dead => Some(format!("its holder, pid {pid}, is gone")),
            Liveness::Alive if reused().is_some() => {
                Some(format!("pid {pid} now belongs to another process"))
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(pid: u32, host: &str, ticks: Option<u64>) -> LockFile {
        let now = Utc::now();
        let mut file = LockFile::new("id-1".into(), &LockRequest::default(), now);
        file.metadata.pid = pid;
        file.metadata.hostname = host.into();
        file.metadata.boot_id = ticks.map(|_| "boot-a".into());
        file.metadata.process_start_ticks = ticks;
        file
    }

    fn observe(lock: Option<LockFile>, age: Duration, holder_lock: HolderLock) -> Observation {
        let now = SystemTime::now();
        Observation {
            lock,
            modified: now - age,
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                len: 3,
                modified: None,
            },
            holder_lock,
        }
    }

    fn verdict(obs: &Observation, alive: Liveness, current_ticks: Option<u64>) -> Verdict {
        let liveness = move |_| alive;
        let start_of = move |_| {
            current_ticks.map(|ticks| ProcessStart {
                boot_id: "boot-a".into(),
                ticks,
                at: Utc::now(),
            })
        };
        judge(
            obs,
            &World {
                now: SystemTime::now(),
                hostname: "here",
                default_expiry: Duration::from_secs(30),
                liveness: &liveness,
                start_of: &start_of,
            },
        )
    }

    const FRESH: Duration = Duration::from_secs(1);
    const OLD: Duration = Duration::from_secs(60);

    #[test]
    fn a_live_holder_keeps_its_lock_until_it_expires() {
        let obs = observe(Some(lock(10, "here", Some(5))), FRESH, HolderLock::Held);
        assert_eq!(verdict(&obs, Liveness::Alive, Some(5)), Verdict::Live);
        // Stopped or hung past its expiry: the lease is over (hazard 4).
        let obs = observe(Some(lock(10, "here", Some(5))), OLD, HolderLock::Held);
        assert!(
            matches!(verdict(&obs, Liveness::Alive, Some(5)), Verdict::Stale(r) if r.contains("not renewed"))
        );
    }

    #[test]
    fn a_dead_holder_on_this_host_is_stale_at_once() {
        let obs = observe(Some(lock(10, "here", Some(5))), FRESH, HolderLock::Free);
        assert!(matches!(verdict(&obs, Liveness::Dead, None), Verdict::Stale(r) if r.contains("is gone")));
        let obs = observe(Some(lock(10, "here", Some(5))), FRESH, HolderLock::Unknown);
        assert!(matches!(verdict(&obs, Liveness::Dead, None), Verdict::Stale(_)));
    }

    #[test]
    fn a_reused_pid_does_not_keep_a_dead_lock_alive() {
        // Hazard 3: the pid is alive again, but as another process.
        let obs = observe(Some(lock(10, "here", Some(5))), FRESH, HolderLock::Free);
        assert!(
            matches!(verdict(&obs, Liveness::Alive, Some(999)), Verdict::Stale(r) if r.contains("another process"))
        );
        // Even where the liveness lock cannot be probed.
        let obs = observe(Some(lock(10, "here", Some(5))), FRESH, HolderLock::Unknown);
        assert!(matches!(
            verdict(&obs, Liveness::Alive, Some(999)),
            Verdict::Stale(_)
        ));
        // Same pid, same start: the holder itself, alive.
        assert_eq!(verdict(&obs, Liveness::Alive, Some(5)), Verdict::Live);
    }

    #[test]
    fn a_holder_on_another_host_is_judged_only_by_expiry() {
        let obs = observe(Some(lock(10, "elsewhere", Some(5))), FRESH, HolderLock::Free);
        assert_eq!(verdict(&obs, Liveness::Dead, None), Verdict::Live);
        let obs = observe(Some(lock(10, "elsewhere", Some(5))), OLD, HolderLock::Unknown);
        assert!(matches!(verdict(&obs, Liveness::Dead, None), Verdict::Stale(_)));
    }

    #[test]
    fn an_unreadable_lock_is_held_until_it_expires() {
        // Hazard 2: a lock file mid-write, or damaged, is not stale by its content.
        let obs = observe(None, FRESH, HolderLock::Unknown);
        assert_eq!(verdict(&obs, Liveness::Dead, None), Verdict::Live);
        let obs = observe(None, OLD, HolderLock::Unknown);
        assert!(matches!(verdict(&obs, Liveness::Dead, None), Verdict::Stale(_)));
    }

    #[test]
    fn a_lock_file_stays_readable_whatever_its_text_fields_hold() {
        // More than Linux accepts on a whole command line, and the worst characters
        // for JSON (a control character is written as six bytes).
        let huge = "\u{1b}[31m✓ x\"".repeat(300_000);
        let mut file = lock(10, "here", Some(5));
        file.operation.command_line = Some(bound_json_text(huge.clone(), MAX_TEXT_BYTES));
        file.operation.stack_trace = Some(bound_json_text(huge.clone(), MAX_STACK_TRACE_BYTES));
        file.metadata.hostname = bound_json_text(huge.clone(), MAX_TEXT_BYTES);
        file.metadata.user = bound_json_text(huge.clone(), MAX_TEXT_BYTES);
        let bytes = file.to_bytes();
        assert!(
            bytes.len() as u64 <= MAX_LOCK_BYTES,
            "{} bytes, over the {MAX_LOCK_BYTES}-byte read limit",
            bytes.len()
        );
        assert_eq!(LockFile::parse(&bytes), Some(file.clone()));
        let command_line = file.operation.command_line.unwrap();
        assert!(command_line.starts_with("\u{1b}[31m✓ x\""), "{command_line}");
        assert!(command_line.ends_with(" more bytes]"), "{command_line}");
    }

    #[test]
    fn a_note_round_trips_and_a_lock_without_one_still_reads() {
        let request = LockRequest {
            note: Some(LockNote::new("ci job 4711: nightly import").unwrap()),
            ..LockRequest::default()
        };
        let file = LockFile::new("id-1".into(), &request, Utc::now());
        let bytes = file.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("\"note\": \"ci job 4711: nightly import\""),
            "{text}"
        );
        let read = LockFile::parse(&bytes).unwrap();
        assert_eq!(read, file);
        assert_eq!(
            read.info().note.as_ref().map(LockNote::as_str),
            Some("ci job 4711: nightly import")
        );
        // A 1.0.0 lock file, as older builds write it: no note, still a lock.
        let mut old: serde_json::Value =
            serde_json::from_slice(&lock(10, "here", Some(5)).to_bytes()).unwrap();
        old["version"] = "1.0.0".into();
        let old = LockFile::parse(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(old.info().note, None);
    }

    #[test]
    fn a_foreign_note_is_made_to_fit_not_refused() {
        // Another tool's lock: a note with a line break (a forged `lock status` line),
        // a secret and far too many characters. The lock still reads; its note fits.
        let mut value: serde_json::Value =
            serde_json::from_slice(&lock(10, "here", Some(5)).to_bytes()).unwrap();
        let token = format!("ghp_{}", "a".repeat(36));
        value["operation"]["note"] = format!("job 1\n  waiting: pid 1 {token} {}", "x".repeat(500)).into();
        let read = LockFile::parse(&serde_json::to_vec(&value).unwrap()).expect("the lock still reads");
        let note = read.info().note.unwrap();
        let note = note.as_str();
        assert!(!note.contains('\n') && !note.contains(&token), "{note}");
        assert!(note.contains("[REDACTED:github_token]"), "{note}");
        assert_eq!(note.chars().count(), LockNote::MAX_CHARS);
    }

    #[test]
    fn the_file_round_trips_and_rejects_partial_writes() {
        let file = lock(10, "here", Some(5));
        let bytes = file.to_bytes();
        assert_eq!(LockFile::parse(&bytes), Some(file.clone()));
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 3] {
            assert_eq!(LockFile::parse(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(file.expiry(), Duration::from_secs(30));
        let renewed = file.renewed(file.timing.acquired_at + chrono::Duration::seconds(10));
        assert_eq!(renewed.expiry(), Duration::from_secs(30));
        assert_eq!(renewed.timing.acquired_at, file.timing.acquired_at);
    }
}
