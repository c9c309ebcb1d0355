//! Quarantine: where a corrupt state document is kept, byte for byte, once recovery
//! has replaced it. Nothing in quarantine is ever deleted by the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CorruptionKind;

/// Why a document is being quarantined: the note kept beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineNote {
    /// How the document failed verification.
    pub corruption_type: CorruptionKind,
    /// The verification error, as the read reported it.
    pub detail: String,
    /// What is being done about it (`recovery`, `reseal`, …).
    pub reason: String,
}

/// One quarantined document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRecord {
    /// Unique id (`<time>-<nonce>`); safe as part of a file name.
    pub id: String,
    /// Where the bytes are kept: a path under `.checklist/quarantine/`, or a
    /// `memory:` pseudo-path.
    pub location: String,
    /// When it was quarantined.
    pub quarantined_at: DateTime<Utc>,
    /// Its size in bytes.
    pub size: u64,
    /// `sha256:<hex>` of the kept bytes (not of a canonical document: they may not be one).
    pub sha256: String,
    /// Why.
    pub note: QuarantineNote,
}

/// `sha256:<hex>` of raw bytes, as [`QuarantineRecord::sha256`] records it.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// A new quarantine id for `now`: sortable by time, unique by its nonce.
pub fn new_quarantine_id(now: DateTime<Utc>) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%S%3fZ"), &nonce[..8])
}
