//! Canonical JSON and the document checksum (docs/file-formats.md, "The checksum").
//!
//! The canonical form of a value is JSON with object keys sorted by their UTF-8 bytes
//! (which is Unicode code point order), no insignificant whitespace, strings escaped
//! as `serde_json` escapes them, integers in plain decimal and other numbers in the
//! shortest form that reads back as the same `f64`. The checksum is SHA-256 over the
//! canonical form of the document with its top-level `checksum` field left out, so it
//! is the same for the YAML and the JSON form of one document and survives comments,
//! key order and re-indentation.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The prefix of every checksum string.
pub const CHECKSUM_PREFIX: &str = "sha256:";

/// The top-level field that holds the checksum and is left out of it.
pub const CHECKSUM_FIELD: &str = "checksum";

/// Writes the canonical JSON of `value` into `out`, skipping the top-level key
/// `skip_top_level_key` when `value` is an object.
pub fn write_canonical(value: &Value, skip_top_level_key: Option<&str>, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| Some(k.as_str()) != skip_top_level_key)
                .collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(key, out);
                out.push(':');
                write_canonical(&map[key.as_str()], None, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, None, out);
            }
            out.push(']');
        }
        Value::String(s) => push_string(s, out),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
    }
}

/// The canonical JSON of `value` as a string.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, None, &mut out);
    out
}

/// The checksum of a document: `sha256:<hex>` over its canonical JSON without the
/// top-level `checksum` field.
pub fn document_checksum(document: &Value) -> String {
    let mut canonical = String::with_capacity(4096);
    write_canonical(document, Some(CHECKSUM_FIELD), &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = String::with_capacity(CHECKSUM_PREFIX.len() + 64);
    out.push_str(CHECKSUM_PREFIX);
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_string(s: &str, out: &mut String) {
    // serde_json's string escaping is deterministic and cannot fail for a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
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
        fn checksum_changes_iff_content_changes(a in arb_json(), b in arb_json()) {
            let wrap = |v: &Value| json!({"payload": v});
            prop_assert_eq!(
                document_checksum(&wrap(&a)) == document_checksum(&wrap(&b)),
                a == b
            );
        }
    }
}
