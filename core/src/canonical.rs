//! Canonical JSON and the document checksum (docs/file-formats.md, "The checksum").
//!
//! The canonical form of a value is JSON with object keys sorted by their UTF-8 bytes
//! (which is Unicode code point order), no insignificant whitespace, strings escaped
//! as `serde_json` escapes them, integers in plain decimal and other numbers in the
//! shortest form that reads back as the same `f64`. The checksum is SHA-256 over the
//! canonical form of the document with its top-level `checksum` field left out, so it
//! is the same for the YAML and the JSON form of one document and survives comments,
//! key order and re-indentation.

use std::io::{self, Write};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The prefix of every checksum string.
pub const CHECKSUM_PREFIX: &str = "sha256:";

/// The top-level field that holds the checksum and is left out of it.
pub const CHECKSUM_FIELD: &str = "checksum";

/// Writes the canonical JSON of `value` into `out`, skipping the top-level key
/// `skip_top_level_key` when `value` is an object.
pub fn write_canonical(value: &Value, skip_top_level_key: Option<&str>, out: &mut String) {
    let mut bytes = Vec::new();
    emit(value, skip_top_level_key, &mut bytes);
    // Canonical JSON is written from `&str`s and ASCII punctuation only.
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// The canonical JSON of `value` as a string.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, None, &mut out);
    out
}

/// The checksum of a document: `sha256:<hex>` over its canonical JSON without the
/// top-level `checksum` field.
///
/// The canonical form is hashed as it is written, through a small buffer, never held
/// whole: a document of megabytes is checksummed on every commit and every verified
/// read, and building its canonical text first doubled the memory that costs.
pub fn document_checksum(document: &Value) -> String {
    let mut hasher = HashingSink {
        hasher: Sha256::new(),
        buffer: Vec::with_capacity(HASH_BUFFER),
    };
    emit(document, Some(CHECKSUM_FIELD), &mut hasher);
    let digest = hasher.finish();
    let mut out = String::with_capacity(CHECKSUM_PREFIX.len() + 64);
    out.push_str(CHECKSUM_PREFIX);
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How many bytes of canonical JSON are gathered before they are hashed.
const HASH_BUFFER: usize = 64 * 1024;

/// Where canonical JSON is written: a `Vec<u8>` or the hasher of a checksum, neither of
/// which can fail.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A SHA-256 fed in [`HASH_BUFFER`]-sized pieces.
struct HashingSink {
    hasher: Sha256,
    buffer: Vec<u8>,
}

impl HashingSink {
    fn finish(mut self) -> sha2::digest::Output<Sha256> {
        self.hasher.update(&self.buffer);
        self.hasher.finalize()
    }
}

impl Sink for HashingSink {
    fn put(&mut self, bytes: &[u8]) {
        if self.buffer.len() + bytes.len() > HASH_BUFFER {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
        if bytes.len() > HASH_BUFFER {
            self.hasher.update(bytes);
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }
}

/// Lets serde_json escape a string or format a number straight into a [`Sink`].
struct SinkWriter<'a, S: Sink>(&'a mut S);

impl<S: Sink> Write for SinkWriter<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.put(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the canonical JSON of `value` into `out`.
fn emit<S: Sink>(value: &Value, skip_top_level_key: Option<&str>, out: &mut S) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != skip_top_level_key)
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.put(b"{");
            for (i, (key, child)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                put_json(key.as_str(), out);
                out.put(b":");
                emit(child, None, out);
            }
            out.put(b"}");
        }
        Value::Array(items) => {
            out.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                emit(item, None, out);
            }
            out.put(b"]");
        }
        Value::String(s) => put_json(s.as_str(), out),
        Value::Null => out.put(b"null"),
        Value::Bool(b) => out.put(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            // Formatting into a sink that cannot fail cannot fail.
            let _ = write!(SinkWriter(out), "{n}");
        }
    }
}

/// Writes `s` escaped as serde_json escapes it.
fn put_json<S: Sink>(s: &str, out: &mut S) {
    // serde_json cannot fail to write a string into a writer that cannot fail.
    let _ = serde_json::to_writer(SinkWriter(out), s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_is_dropped() {
        let v = json!({"b": 1, "a": [true, null, "x\"y"], "c": {"z": -2, "y": 1.5}});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"a":[true,null,"x\"y"],"b":1,"c":{"y":1.5,"z":-2}}"#
        );
    }

    #[test]
    fn checksum_ignores_only_the_top_level_checksum_field() {
        let a = json!({"revision": 1, "checksum": "sha256:old", "x": {"checksum": "kept"}});
        let b = json!({"x": {"checksum": "kept"}, "revision": 1});
        assert_eq!(document_checksum(&a), document_checksum(&b));
        let c = json!({"x": {"checksum": "changed"}, "revision": 1});
        assert_ne!(document_checksum(&a), document_checksum(&c));
        assert!(document_checksum(&a).starts_with("sha256:"));
        assert_eq!(document_checksum(&a).len(), 7 + 64);
    }

    #[test]
    fn known_vector() {
        // sha256 of the two bytes `{}`
        assert_eq!(
            document_checksum(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\u{e9}\u{1F600}\"\\\\ \n]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_form_parses_back_to_the_same_value(v in arb_json()) {
            let text = to_canonical_string(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn the_streamed_checksum_is_the_sha256_of_the_canonical_text(v in arb_json(), pad in 0usize..200_000) {
            // A long string makes the hashing buffer fill and flush mid-value.
            let document = json!({"payload": v, "checksum": "sha256:old", "long": "\u{e9}".repeat(pad)});
            let mut text = String::new();
            write_canonical(&document, Some(CHECKSUM_FIELD), &mut text);
            let digest = Sha256::digest(text.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(document_checksum(&document), format!("sha256:{hex}"));
        }

        #[test]
        fn checksum_changes_iff_content_changes(a in arb_json(), b in arb_json()) {
            let wrap = |v: &Value| json!({"payload": v});
            prop_assert_eq!(
                document_checksum(&wrap(&a)) == document_checksum(&wrap(&b)),
                a == b
            );
        }
    }
}
