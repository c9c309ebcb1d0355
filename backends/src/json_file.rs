//! The JSON-file backend: `.checklist/state.json`, pretty-printed.

use serde_json::Value;

use crate::codec::{Codec, CodecError};
use crate::file_engine::FileStore;

/// Pretty-printed JSON through serde_json (recursion limited to 128 levels).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

/// The JSON-file backend.
pub type JsonFileStore = FileStore<JsonCodec>;

impl Codec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn extension(&self) -> &'static str {
        "json"
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
    }

    fn encode(&self, document: &Value) -> Result<Vec<u8>, CodecError> {
        let mut bytes = serde_json::to_vec_pretty(document).map_err(|e| CodecError(e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_keeping_key_order() {
        let doc = json!({"z": 1, "a": [1, "two", null], "m": {"y": true}});
        let bytes = JsonCodec.encode(&doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.find("\"z\"").unwrap() < text.find("\"a\"").unwrap(),
            "{text}"
        );
        assert_eq!(JsonCodec.decode(&bytes).unwrap(), doc);
    }

    #[test]
    fn errors_carry_a_position() {
        let err = JsonCodec.decode(b"{\"a\": }").unwrap_err();
        assert!(err.0.contains("line 1"), "{err}");
    }
}
