//! `checklist quarantine list|show ID`: the corrupt documents recovery replaced, kept
//! byte for byte with why (docs/decisions/0010-recovery-through-the-store-trait.md).
//! Nothing here changes the store; the store never deletes from its quarantine.

use std::io::Write;

use checklist_core::Result;
use checklist_core::prelude::*;
use serde_json::json;

use super::Context;
use crate::output::{Outcome, count};

pub(crate) async fn list(ctx: &Context<'_>, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let records = opened.backend.store.list_quarantine().await?;
    let human = if records.is_empty() {
        "Nothing is quarantined.".to_owned()
    } else {
        let mut lines = vec![format!("{} quarantined:", count(records.len(), "document"))];
        lines.extend(records.iter().map(|r| {
            format!(
                "{}  {}  {}  {} bytes  {}: {}",
                r.id,
                r.quarantined_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.note.corruption_type,
                r.size,
                r.note.reason,
                r.note.detail
            )
        }));
        lines.join("\n")
    };
    Ok(Outcome::report(human, json!({"ok": true, "quarantine": records})))
}

/// The kept bytes exactly as they were, whatever they hold (they did not verify).
pub(crate) async fn show(ctx: &Context<'_>, id: &str, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    Ok(Outcome::Raw(opened.backend.store.read_quarantined(id).await?))
}
