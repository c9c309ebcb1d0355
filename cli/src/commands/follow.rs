//! `checklist status --follow [--after REV]`: one line per commit as it happens, until
//! Ctrl-C or SIGTERM (exit 0).
//!
//! The store's change feed says when to look; core's [`Follower`] says what happened
//! (docs/architecture.md, "Following a store"). Nothing here takes the lock: following
//! never slows a writer down.

use std::io::Write;
use std::time::Duration;

use checklist_core::Result;
use checklist_core::follow::{Commit, FollowEvent, Follower};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::Context;
use crate::output::Outcome;

/// How long a follower waits before trying again after the store could not be read or
/// watched (a server restarting, a network gone).
const RETRY: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    ctx: &Context<'_>,
    after: Option<u64>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = opened.backend.store;
    let stop = crate::stop_signal();
    tokio::pin!(stop);
    let mut follower = match after {
        Some(revision) => Follower::after(store.clone(), revision).await?,
        None => Follower::from_now(store.clone()).await?,
    };
    let info = store.info();
    let start = json!({
        "event": "following",
        "store": info.location,
        "backend": info.backend,
        "revision": follower.revision(),
    });
    let human = format!(
        "Following {} (backend {}) after revision {}; Ctrl-C to stop.",
        info.location,
        info.backend,
        follower.revision().map_or("none".to_owned(), |r| r.to_string())
    );
    if !emit(out, ctx, &human, &start) {
        return Ok(Outcome::Raw(Vec::new()));
    }
    let mut last_failure: Option<String> = None;
    loop {
        let next = tokio::select! {
            next = follower.next() => next,
            _ = &mut stop => return Ok(Outcome::Raw(Vec::new())),
        };
        let (human, json) = match next {
            Ok(event) => {
                last_failure = None;
                describe(&event)
            }
            Err(error) => {
                // Said once per distinct failure; the follower keeps its place and
                // tries again until the store answers or it is stopped.
                let text = crate::exit_code::message(&error);
                if last_failure.as_ref() != Some(&text) && !ctx.quiet {
                    let _ = writeln!(err, "warning: following: {text}; trying again every second");
                }
                last_failure = Some(text);
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    _ = &mut stop => return Ok(Outcome::Raw(Vec::new())),
                }
            }
        };
        if !emit(out, ctx, &human, &json) {
            // stdout is gone (the reader of a pipe quit): nothing more to follow for.
            return Ok(Outcome::Raw(Vec::new()));
        }
    }
}

/// Writes one event as a line (JSON with `--json`) and flushes it; `false` when stdout
/// is gone.
fn emit(out: &mut dyn Write, ctx: &Context<'_>, human: &str, json: &Value) -> bool {
    let written = if ctx.as_json {
        writeln!(out, "{json}")
    } else if ctx.quiet {
        Ok(())
    } else {
        writeln!(out, "{human}")
    };
    written.and_then(|()| out.flush()).is_ok()
}

/// One event as a line for people and as a JSON document.
fn describe(event: &FollowEvent) -> (String, Value) {
    match event {
        FollowEvent::Committed(commit) => describe_commit(commit),
        FollowEvent::Replaced { from, to } => {
            let name = |r: &Option<u64>| r.map_or("no state".to_owned(), |r| format!("revision {r}"));
            (
                format!(
                    "replaced: the state went from {} to {} (restored by hand, deleted, or set up again)",
                    name(from),
                    name(to)
                ),
                json!({"event": "replaced", "from": from, "to": to}),
            )
        }
        FollowEvent::Unreadable { error } => (
            format!("unreadable: {error} (`checklist recover` repairs it; following goes on)"),
            json!({"event": "unreadable", "error": error}),
        ),
        _ => (
            "an event this version of checklist cannot describe".to_owned(),
            json!({"event": "unknown"}),
        ),
    }
}

fn describe_commit(commit: &Commit) -> (String, Value) {
    let Some(record) = &commit.record else {
        return (
            format!(
                "revision {}  (no audit record: its writer stopped before appending one)",
                commit.revision
            ),
            json!({"event": "commit", "revision": commit.revision, "checksum": commit.checksum}),
        );
    };
    let event = record.event.as_str();
    let operation = record.operations.join("; ");
    let at = record.ts.to_rfc3339_opts(SecondsFormat::Millis, true);
    let who = format!("{}@{} pid {}", record.user, record.host, record.pid);
    let tx = record.tx_id.as_deref().unwrap_or("-");
    let human = format!(
        "revision {}  {event}  {at}  {who}  tx {tx}{}",
        commit.revision,
        if operation.is_empty() {
            String::new()
        } else {
            format!("  {operation}")
        }
    );
    let json = json!({
        "event": event,
        "revision": commit.revision,
        "checksum": commit.checksum,
        "txId": record.tx_id,
        "operation": operation,
        "at": at,
        "user": record.user,
        "host": record.host,
        "pid": record.pid,
    });
    (human, json)
}
