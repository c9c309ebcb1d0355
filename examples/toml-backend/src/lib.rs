//! # checklist-toml-backend
//!
//! An example custom backend of the checklist state store, written only against the
//! public API of `checklist-backends`: the state document as TOML
//! (`.checklist/state.toml`), stored by the shared file engine [`FileStore`], so it
//! inherits atomic durable writes, the revision compare-and-swap, backups, quarantine,
//! the archive and the audit trail. The [`TomlCodec`] is all it adds.
//!
//! ```
//! use checklist_backends::builtin_registry;
//!
//! let mut registry = builtin_registry();
//! checklist_toml_backend::register(&mut registry);
//! assert!(registry.contains("toml")); // config.yaml: `backend: {type: toml}`
//! ```
//!
//! ## What TOML cannot say, and how it is said anyway
//!
//! The state document is JSON-shaped; TOML lacks two of JSON's values. Each is written
//! as a one-key table whose key starts with `$`, so a document round-trips exactly
//! (the checksum is computed over the document, not over the bytes):
//!
//! | JSON value | TOML form |
//! |---|---|
//! | `null` | `{ "$null" = true }` |
//! | an integer above `i64::MAX` | `{ "$u64" = "18446744073709551615" }` |
//! | an object whose only key is `$null`, `$u64` or `$table` | `{ "$table" = { … } }` |
//!
//! The last row is the escape that keeps the first two unambiguous: a real one-key
//! object that happens to look like a marker is wrapped, and the wrapper's contents are
//! taken literally. Any other object, including one with several keys starting with `$`,
//! is written as it is.
//!
//! Timestamps stay strings (`startedAt = "2026-01-01T00:00:00Z"`): the document stores
//! them as strings and its checksum covers those exact strings. A TOML date-time that
//! a person types without quotes is read as the string TOML prints for it.
//!
//! TOML puts a table's plain values before its sub-tables, so a document's keys come
//! back in that order; object equality and the checksum do not depend on key order.
//! Decoding stops at TOML's nesting limit, so encoding refuses a document nested deeper
//! than [`MAX_DEPTH`] levels instead of writing a file it could not read back.
//!
//! See docs/backends.md for the guide this crate illustrates, and
//! docs/decisions/0013-toml-null-markers.md for why markers and not an error.
#![deny(missing_docs)]

use checklist_backends::{Codec, CodecError, FileStore, file_backend_factory};
use checklist_core::BackendRegistry;
use serde_json::{Map, Number, Value};

/// The backend name, as `backend.type` in config.yaml.
pub const BACKEND_NAME: &str = "toml";

/// How deep a document may nest (objects and arrays, markers included) and still be
/// written; the `toml` parser refuses input nested deeper than 80 levels, and the file
/// engine must never write what it cannot read back.
pub const MAX_DEPTH: usize = 64;

const NULL_MARKER: &str = "$null";
const U64_MARKER: &str = "$u64";
const TABLE_MARKER: &str = "$table";
const MARKERS: [&str; 3] = [NULL_MARKER, U64_MARKER, TABLE_MARKER];

/// TOML 1.1 through the `toml` crate, with the markers of the crate docs for the
/// values TOML lacks.
#[derive(Debug, Clone, Copy, Default)]
pub struct TomlCodec;

/// The TOML-file backend: the shared file engine with [`TomlCodec`].
pub type TomlFileStore = FileStore<TomlCodec>;

/// Registers the TOML backend under [`BACKEND_NAME`] (`toml`), guarded by the same
/// cross-process file lock as the built-in file backends.
pub fn register(registry: &mut BackendRegistry) -> &mut BackendRegistry {
    registry.register(BACKEND_NAME, file_backend_factory(TomlCodec))
}

impl Codec for TomlCodec {
    fn name(&self) -> &'static str {
        BACKEND_NAME
    }

    fn extension(&self) -> &'static str {
        "toml"
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            CodecError(format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        let table: toml::Table = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        table_to_json(table, &mut Path::root())
    }

    fn encode(&self, document: &Value) -> Result<Vec<u8>, CodecError> {
        let Value::Object(object) = document else {
            return Err(CodecError(format!(
                "a TOML document is a table, not {}",
                kind_of(document)
            )));
        };
        let table = match object_to_toml(object, &mut Path::root(), 1)? {
            toml::Value::Table(table) => table,
            // A root object that looks like a marker is wrapped, and the wrapper is
            // a table too; anything else is unreachable by construction.
            other => {
                return Err(CodecError(format!(
                    "a TOML document is a table, not {}",
                    other.type_str()
                )));
            }
        };
        toml::to_string(&table)
            .map(String::into_bytes)
            .map_err(|e| CodecError(format!("cannot write the document as TOML: {e}")))
    }
}

/// Where in the document a value is, for error messages (`activeInstance.note`,
/// `completedSteps[2]`).
struct Path(String);

impl Path {
    fn root() -> Self {
        Self(String::new())
    }

    fn with<T>(&mut self, segment: Segment<'_>, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.0.len();
        match segment {
            Segment::Key(key) if self.0.is_empty() => self.0.push_str(key),
            Segment::Key(key) => {
                self.0.push('.');
                self.0.push_str(key);
            }
            Segment::Index(i) => {
                self.0.push('[');
                self.0.push_str(&i.to_string());
                self.0.push(']');
            }
        }
        let out = f(self);
        self.0.truncate(len);
        out
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            "the document root".to_owned()
        } else {
            format!("field `{}`", self.0)
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn value_to_toml(value: &Value, path: &mut Path, depth: usize) -> Result<toml::Value, CodecError> {
    Ok(match value {
        Value::Null => marker(NULL_MARKER, toml::Value::Boolean(true), path, depth)?,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => number_to_toml(n, path, depth)?,
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => {
            check_depth(path, depth)?;
            let mut array = toml::value::Array::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                array.push(path.with(Segment::Index(i), |p| value_to_toml(item, p, depth + 1))?);
            }
            toml::Value::Array(array)
        }
        Value::Object(object) => object_to_toml(object, path, depth)?,
    })
}

fn number_to_toml(n: &Number, path: &Path, depth: usize) -> Result<toml::Value, CodecError> {
    if let Some(i) = n.as_i64() {
        Ok(toml::Value::Integer(i))
    } else if let Some(u) = n.as_u64() {
        // TOML integers are signed 64-bit; a string keeps every digit.
        marker(U64_MARKER, toml::Value::String(u.to_string()), path, depth)
    } else if let Some(f) = n.as_f64() {
        Ok(toml::Value::Float(f))
    } else {
        Err(CodecError(format!(
            "{} holds a number TOML cannot represent: {n}",
            path.describe()
        )))
    }
}

fn object_to_toml(
    object: &Map<String, Value>,
    path: &mut Path,
    depth: usize,
) -> Result<toml::Value, CodecError> {
    check_depth(path, depth)?;
    let mut table = toml::Table::with_capacity(object.len());
    for (key, value) in object {
        let converted = path.with(Segment::Key(key), |p| value_to_toml(value, p, depth + 1))?;
        table.insert(key.clone(), converted);
    }
    if looks_like_a_marker(&table) {
        check_depth(path, depth + 1)?;
        return Ok(single(TABLE_MARKER, toml::Value::Table(table)));
    }
    Ok(toml::Value::Table(table))
}

fn looks_like_a_marker(table: &toml::Table) -> bool {
    table.len() == 1 && table.keys().all(|k| MARKERS.contains(&k.as_str()))
}

fn marker(tag: &str, payload: toml::Value, path: &Path, depth: usize) -> Result<toml::Value, CodecError> {
    check_depth(path, depth)?;
    Ok(single(tag, payload))
}

fn single(key: &str, value: toml::Value) -> toml::Value {
    let mut table = toml::Table::with_capacity(1);
    table.insert(key.to_owned(), value);
    toml::Value::Table(table)
}

fn check_depth(path: &Path, depth: usize) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError(format!(
            "{} is nested deeper than {MAX_DEPTH} levels, more than a TOML file of this backend may hold",
            path.describe()
        )));
    }
    Ok(())
}

fn table_to_json(table: toml::Table, path: &mut Path) -> Result<Value, CodecError> {
    if looks_like_a_marker(&table) {
        let Some((tag, payload)) = table.into_iter().next() else {
            unreachable!("a marker table has exactly one entry");
        };
        return path.with(Segment::Key(&tag), |p| marker_to_json(&tag, payload, p));
    }
    entries_to_json(table, path)
}

fn entries_to_json(table: toml::Table, path: &mut Path) -> Result<Value, CodecError> {
    let mut object = Map::with_capacity(table.len());
    for (key, value) in table {
        let converted = path.with(Segment::Key(&key), |p| value_to_json(value, p))?;
        object.insert(key, converted);
    }
    Ok(Value::Object(object))
}

fn marker_to_json(tag: &str, payload: toml::Value, path: &mut Path) -> Result<Value, CodecError> {
    match (tag, payload) {
        (NULL_MARKER, toml::Value::Boolean(true)) => Ok(Value::Null),
        (U64_MARKER, toml::Value::String(digits)) => digits.parse::<u64>().map(Value::from).map_err(|_| {
            CodecError(format!(
                "{} is not an unsigned 64-bit integer: {digits:?}",
                path.describe()
            ))
        }),
        (TABLE_MARKER, toml::Value::Table(table)) => entries_to_json(table, path),
        (tag, payload) => Err(CodecError(format!(
            "{} is a `{tag}` marker with a {} where the backend writes {}",
            path.describe(),
            payload.type_str(),
            match tag {
                NULL_MARKER => "`true`",
                U64_MARKER => "a string of digits",
                _ => "a table",
            }
        ))),
    }
}

fn value_to_json(value: toml::Value, path: &mut Path) -> Result<Value, CodecError> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            CodecError(format!(
                "{} is {f}, which the state document cannot hold",
                path.describe()
            ))
        })?,
        toml::Value::Boolean(b) => Value::Bool(b),
        // Timestamps are strings in the document; an unquoted one typed by hand
        // reads as the same text.
        toml::Value::Datetime(dt) => Value::String(dt.to_string()),
        toml::Value::Array(items) => {
            let mut array = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                array.push(path.with(Segment::Index(i), |p| value_to_json(item, p))?);
            }
            Value::Array(array)
        }
        toml::Value::Table(table) => table_to_json(table, path)?,
    })
}

/// The `toml` crate renders errors as a multi-line snippet; the store's messages are
/// one sentence, so keep the message and say where.
fn parse_error(text: &str, error: &toml::de::Error) -> CodecError {
    let message = error.message().trim().trim_end_matches('.');
    match error.span() {
        Some(span) => {
            // A span into hostile input is not trusted to fall on a character boundary.
            let end = (0..=span.start.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            CodecError(format!("{message} at line {line} column {column}"))
        }
        None => CodecError(message.to_owned()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(doc: &Value) -> String {
        let bytes = TomlCodec.encode(doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(&TomlCodec.decode(&bytes).unwrap(), doc, "{text}");
        text
    }

    #[test]
    fn nulls_round_trip_as_markers() {
        let text = round_trip(&json!({
            "a": null, "b": [1, null, "two", {"c": null}], "d": {"e": null, "f": 1}
        }));
        assert!(text.contains("\"$null\" = true"), "{text}");
    }

    #[test]
    fn marker_lookalikes_are_escaped() {
        round_trip(&json!({
            "a": {"$null": true}, "b": {"$u64": "12"}, "c": {"$table": {"$null": null}},
            "d": {"$null": true, "other": 1}, "e": [{"$table": 1}]
        }));
        round_trip(&json!({"$null": true}));
    }

    #[test]
    fn integers_beyond_i64_keep_every_digit() {
        let text = round_trip(&json!({"big": u64::MAX, "min": i64::MIN, "max": i64::MAX, "f": 1.5}));
        assert!(text.contains("18446744073709551615"), "{text}");
    }

    #[test]
    fn timestamps_stay_strings() {
        let text = round_trip(&json!({"startedAt": "2026-01-01T00:00:00Z", "d": "2026-11-01"}));
        assert!(text.contains("\"2026-01-01T00:00:00Z\""), "{text}");
        let hand_typed = TomlCodec.decode(b"startedAt = 2026-01-01T00:00:00Z\n").unwrap();
        assert_eq!(hand_typed, json!({"startedAt": "2026-01-01T00:00:00Z"}));
    }

    #[test]
    fn awkward_strings_and_keys_round_trip() {
        round_trip(&json!({
            "": "", "a.b": "dotted key", "with space": "tab\there", "quote\"key": "'single' \"double\"",
            "multi": "line one\nline two\r\nline three\n", "lone cr": "a\rb", "bell": "\u{7}\u{0}\u{1f}\u{7f}",
            "unicode": "ünïcødé ✓ 🦀", "backslash": "C:\\path\\", "triple": "\"\"\" and '''",
            "empty": {}, "empty list": [], "nested": [[1, 2], [], [{"x": [{}]}]],
            "mixed": [1, "a", true, 2.5, {"k": "v"}, [null]]
        }));
    }

    #[test]
    fn nesting_up_to_the_limit_round_trips_and_deeper_is_refused() {
        // `levels` objects, the root included.
        let nest = |levels: usize| (1..levels).fold(json!({"n": 1}), |inner, _| json!({"n": inner}));
        round_trip(&nest(MAX_DEPTH));
        let err = TomlCodec.encode(&nest(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.0.contains("deeper than 64"), "{err}");
        assert!(err.0.contains("field `n.n"), "{err}");
        // A marker is a level too: the null at the limit would need one more.
        let mut deepest_null = json!(null);
        for _ in 1..MAX_DEPTH {
            deepest_null = json!([deepest_null]);
        }
        assert!(TomlCodec.encode(&json!({"a": deepest_null})).is_err());
    }

    #[test]
    fn only_objects_are_documents() {
        let err = TomlCodec.encode(&json!([1])).unwrap_err();
        assert!(err.0.contains("an array"), "{err}");
    }

    #[test]
    fn errors_are_one_sentence_with_a_position() {
        let err = TomlCodec.decode(b"a = 1\nb = [1, 2\n").unwrap_err();
        assert!(!err.0.contains('\n') && err.0.contains("line 2"), "{err}");
        let err = TomlCodec.decode(b"a = 1\na = 2\n").unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
        let err = TomlCodec
            .decode("\"ä\" = 1\n\"ö\" = [\"ü\"".as_bytes())
            .unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
        let err = TomlCodec.decode(b"a = \xff\n").unwrap_err();
        assert!(err.0.contains("UTF-8"), "{err}");
        let err = TomlCodec.decode(b"x = nan\n").unwrap_err();
        assert!(err.0.contains("field `x`"), "{err}");
        let err = TomlCodec.decode(b"x = {\"$null\" = 1}\n").unwrap_err();
        assert!(err.0.contains("`x.$null`") && err.0.contains("marker"), "{err}");
    }

    #[test]
    fn hostile_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(TomlCodec.decode(deep.as_bytes()).is_err());
        let dotted = format!("{} = 1\n", vec!["k"; 100_000].join("."));
        assert!(TomlCodec.decode(dotted.as_bytes()).is_err());
    }
}
