//! `checklist lock status` and `checklist lock release --force LOCK_ID`.

use std::io::Write;

use checklist_core::{Error, LockInfo, Result};
use chrono::SecondsFormat;
use serde_json::json;

use super::Context;
use crate::output::Outcome;

fn describe(holder: &LockInfo) -> String {
    format!(
        "pid {} on {} as {} since {} for a {} (lock id {}, expires {})",
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
    )
}

pub(crate) async fn status(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err)?;
    let locks = &opened.backend.locks;
    let status = locks.inspect().await?;
    let mut lines = vec![match &status.holder {
        Some(holder) => format!("{} is held by {}.", locks.resource().display(), describe(holder)),
        None => format!("{} is free.", locks.resource().display()),
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
        json!({"ok": true, "path": locks.resource(), "holder": status.holder, "waiters": status.waiters}),
    ))
}

pub(crate) async fn release(ctx: &Context<'_>, lock_id: &str, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err)?;
    let locks = &opened.backend.locks;
    let holder = locks.inspect().await?.holder;
    if !locks.force_release(lock_id).await? {
        return Err(Error::invalid(format!(
            "no lock with id {lock_id} holds {}{}; nothing was released",
            locks.resource().display(),
            holder
                .map(|h| format!(" (it is held by {})", describe(&h)))
                .unwrap_or_default()
        )));
    }
    Ok(Outcome::report(
        format!("Released the lock {lock_id} on {}.", locks.resource().display()),
        json!({"ok": true, "path": locks.resource(), "released": lock_id}),
    ))
}
