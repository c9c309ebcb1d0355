//! Verifying a document's bytes, remembering the last few verified in this process.
//!
//! Verification is a pure function of the codec and the bytes, so bytes seen before
//! need not be parsed again: a read that finds the bytes this process last wrote or
//! read returns a copy of what they verified to (a YAML parse of 1,000 steps takes
//! ~25 ms, comparing the bytes well under one). Bytes that differ in any way — a hand
//! edit, another process's commit — are verified in full.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::codec::Codec;
use crate::document;
use crate::error::Result;
use crate::model::ChecklistState;
use crate::relocation::moved::MovedTo;

/// How many verified documents the process remembers (a CLI run needs one; a test
/// process with many stores open at once needs a few).
const REMEMBERED: usize = 8;

struct Verified {
    codec: &'static str,
    bytes: Arc<[u8]>,
    state: Arc<ChecklistState>,
}

static CACHE: Mutex<Vec<Verified>> = Mutex::new(Vec::new());

/// Decodes `bytes` with `codec` and verifies them as a read does — schema version,
/// schema, checksum — naming `location` in errors; bytes this process verified or
/// wrote before are not parsed again.
///
/// # Errors
/// [`Error::Corrupted`](crate::Error::Corrupted) and
/// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion), as
/// [`document::unseal`] reports them.
pub fn verify(codec: &dyn Codec, bytes: &[u8], location: &Path) -> Result<ChecklistState> {
    // What is remembered stays remembered, so this is a copy.
    verify_shared(codec, bytes, location).map(|state| ChecklistState::clone(&state))
}

/// Like [`verify`], sharing the verified state with what this process remembers
/// instead of copying it: for a reader that only looks at it (a copy of a state of
/// thousands of steps costs milliseconds and as much memory again).
///
/// # Errors
/// As [`verify`].
pub fn verify_shared(codec: &dyn Codec, bytes: &[u8], location: &Path) -> Result<Arc<ChecklistState>> {
    if let Some(state) = recall_shared(codec.name(), bytes) {
        return Ok(state);
    }
    let state = Arc::new(verify_afresh(codec, bytes, location)?);
    remember_shared(codec.name(), bytes, Arc::clone(&state));
    Ok(state)
}

/// The revision and checksum `bytes` verify at, checked as [`verify`] checks them —
/// for a store that only compares a revision before a write, without copying the
/// state when the bytes were verified before.
///
/// # Errors
/// As [`verify`].
pub fn verify_revision(codec: &dyn Codec, bytes: &[u8], location: &Path) -> Result<(u64, Option<String>)> {
    verify_head(codec, bytes, location).map(|(revision, checksum, _)| (revision, checksum))
}

/// What a write's precondition needs of a stored document: [`verify_revision`]'s
/// revision and checksum, and where the state was moved to if it was.
pub(crate) fn verify_head(
    codec: &dyn Codec,
    bytes: &[u8],
    location: &Path,
) -> Result<(u64, Option<String>, Option<MovedTo>)> {
    if let Some(head) = recall_with(codec.name(), bytes, |state| {
        (state.revision, state.checksum.clone(), state.moved_to.clone())
    }) {
        return Ok(head);
    }
    let state = verify(codec, bytes, location)?;
    Ok((state.revision, state.checksum, state.moved_to))
}

/// Like [`verify`], always decoding and checking the bytes, never answering from
/// what this process verified before: for tests of a codec's round trip and for fuzzing
/// the parsers, which must exercise them.
///
/// # Errors
/// As [`verify`].
pub fn verify_afresh(codec: &dyn Codec, bytes: &[u8], location: &Path) -> Result<ChecklistState> {
    document::unseal(super::decode(codec, bytes, location)?, location)
}

/// Remembers that `bytes` in the format of codec `codec` verify to `state`: a document
/// this process is writing, or one a store's own persistent cache of verified parses
/// says they verify to (the file store's `.cache/`, keyed by a hash of the exact bytes;
/// docs/decisions/0024-verified-parse-cache.md). What is remembered is what the next
/// [`verify`] of the same bytes returns, so only a verified state may be given.
pub fn remember(codec: &'static str, bytes: &[u8], state: ChecklistState) {
    remember_shared(codec, bytes, Arc::new(state));
}

/// [`remember`] for a state that is shared already.
fn remember_shared(codec: &'static str, bytes: &[u8], state: Arc<ChecklistState>) {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|v| *v.bytes != *bytes || v.codec != codec);
    if cache.len() == REMEMBERED {
        cache.remove(0);
    }
    cache.push(Verified {
        codec,
        bytes: Arc::from(bytes),
        state,
    });
}

/// The state `bytes` in the format of codec `codec` verified to, if this process
/// verified or wrote them lately: what a store keeps in its persistent cache. A copy,
/// so that nothing slow (writing that cache) runs under the process-wide lock.
pub fn recall(codec: &'static str, bytes: &[u8]) -> Option<ChecklistState> {
    recall_shared(codec, bytes).map(|state| ChecklistState::clone(&state))
}

/// Like [`recall`], sharing the remembered state instead of copying it: for a store
/// that only reads it, as the file store does to write its persistent cache after a
/// commit (a copy of a state of thousands of steps costs milliseconds and megabytes).
pub fn recall_shared(codec: &'static str, bytes: &[u8]) -> Option<Arc<ChecklistState>> {
    recall_with(codec, bytes, Arc::clone)
}

/// Whether this process remembers what `bytes` in the format of codec `codec` verify
/// to, so that verifying them is a lookup.
pub fn remembers(codec: &'static str, bytes: &[u8]) -> bool {
    recall_with(codec, bytes, |_| ()).is_some()
}

/// What `take` makes of the remembered state of `bytes`, if they are remembered.
fn recall_with<T>(
    codec: &'static str,
    bytes: &[u8],
    take: impl FnOnce(&Arc<ChecklistState>) -> T,
) -> Option<T> {
    let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .iter()
        .rev()
        .find(|v| v.codec == codec && *v.bytes == *bytes)
        .map(|v| take(&v.state))
}
