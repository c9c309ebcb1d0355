//! `checklist lock status` and `checklist lock release --force LOCK_ID`.

use std::io::Write;

use checklist_core::{Error, LockInfo, Result, UnreadableLock};
use chrono::SecondsFormat;
use serde_json::json;

use super::Context;
use crate::output::Outcome;

fn describe(holder: &LockInfo) -> String {
    format!(
        "pid {} on {} as {} since {} for a {} (lock id {}, expires {}{})",
        holder.pid,
        holder.hostname,
        holder.user,
        holder.acquired_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        match holder.operation {
            checklist_core::lock::Operation::Read => "read",
            checklist_core::lock::Operation::Write => "write",
            checklist_core::lock::Operation::Delete => "delete",
        },
        holder.lock_id,
        holder.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        note_clause(holder),
    )
}

/// `, note: …` for a holder that left a note, else nothing. A note is one line
/// ([`checklist_core::LockNote`]), so it cannot add lines of its own.
pub(crate) fn note_clause(holder: &LockInfo) -> String {
    holder
        .note
        .as_ref()
        .map(|note| format!(", note: {note}"))
        .unwrap_or_default()
}

/// What holds a lock whose holder cannot be read, and when a waiter takes it over.
pub(crate) fn describe_unreadable(unreadable: &UnreadableLock, expiry_ms: u64) -> String {
    let takeover = unreadable.modified_at + chrono::Duration::milliseconds(expiry_ms as i64);
    format!(
        "a lock file that cannot be read (damaged, or not written by checklist), last changed {}; \
         a waiting command takes it over at {} (once it has been unchanged for the {expiry_ms} ms \
         lock expiry)",
        unreadable
            .modified_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        takeover.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

pub(crate) async fn status(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let locks = &opened.backend.locks;
    let status = locks.inspect().await?;
    let mut lines = vec![match (&status.holder, &status.unreadable) {
        (Some(holder), _) => format!("{} is held by {}.", locks.resource(), describe(holder)),
        (None, Some(unreadable)) => format!(
            "{} is held by {}. If no checklist command is running, you may delete it.",
            locks.resource(),
            describe_unreadable(unreadable, opened.config.lock.expiry_ms)
        ),
        (None, None) => format!("{} is free.", locks.resource()),
    }];
    for waiter in &status.waiters {
        lines.push(format!(
            "  waiting: pid {} on {} since {}",
            waiter.pid,
            waiter.hostname,
            waiter.since.to_rfc3339_opts(SecondsFormat::Millis, true)
        ));
    }
    Ok(Outcome::report(
        lines.join("\n"),
        json!({"ok": true, "path": locks.resource(), "holder": status.holder, "waiters": status.waiters,
               "unreadable": status.unreadable}),
    ))
}

pub(crate) async fn release(ctx: &Context<'_>, lock_id: &str, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let locks = &opened.backend.locks;
    let status = locks.inspect().await?;
    if !locks.force_release(lock_id).await? {
        let held_by = match (&status.holder, &status.unreadable) {
            (Some(holder), _) => format!(" (it is held by {})", describe(holder)),
            (None, Some(unreadable)) => format!(
                " (it is held by {})",
                describe_unreadable(unreadable, opened.config.lock.expiry_ms)
            ),
            (None, None) => String::new(),
        };
        return Err(Error::invalid(format!(
            "no lock with id {lock_id} holds {}{held_by}; nothing was released",
            locks.resource(),
        )));
    }
    Ok(Outcome::report(
        format!("Released the lock {lock_id} on {}.", locks.resource()),
        json!({"ok": true, "path": locks.resource(), "released": lock_id}),
    ))
}
