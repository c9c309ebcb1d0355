//! How a state document becomes bytes and back: the one thing a store's format decides.
//!
//! Core seals a document and encodes it with the store's [`Codec`] before a write, and
//! decodes and verifies what a read returns ([`crate::store`]), so every backend
//! verifies the same way and only stores and returns bytes.

use std::fmt;

use serde_json::Value;

/// Why a codec could not decode or encode a document: one sentence, with a line and
/// column where the format reports one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// A document format: YAML and JSON in `checklist-backends`, TOML in its example
/// crate; a database backend picks one for the bytes it keeps.
///
/// # Contract
/// - `decode(encode(v)) == v` for every document `v` the state schema accepts, so the
///   checksum computed over `v` verifies after a round trip.
/// - `decode` never panics and bounds its time and memory on hostile input (alias
///   bombs, deep nesting); it reports bad input as a [`CodecError`].
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// The backend name this codec is registered under (`yaml`, `json`, …).
    fn name(&self) -> &'static str;

    /// The usual file extension, without the dot (a file store keeps `state.<extension>`).
    fn extension(&self) -> &'static str;

    /// Parses a document.
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError>;

    /// Writes a document, keeping the key order of `document`.
    fn encode(&self, document: &Value) -> Result<Vec<u8>, CodecError>;
}

/// Interprets `bytes` as UTF-8 text, naming the first invalid byte's offset: for
/// codecs of text formats.
///
/// # Errors
/// A [`CodecError`] naming the offset of the first byte that is not UTF-8.
pub fn utf8(bytes: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(bytes).map_err(|e| {
        CodecError(format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}
