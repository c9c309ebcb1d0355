//! The JSON codec: pretty-printed, key order kept, a value budget and duplicate keys refused.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use checklist_core::codec::{Codec, CodecError};

/// The most values (scalars, arrays, objects; not keys) a JSON document may hold: the
/// same budget serde-saphyr gives the YAML backend. Without it, a 64 MiB file of
/// `1,1,1,…` becomes 32 million `Value`s — gigabytes of memory — before the schema
/// could refuse it.
pub const MAX_JSON_VALUES: usize = 250_000;

/// Pretty-printed JSON through serde_json (recursion limited to 128 levels, at most
/// [`MAX_JSON_VALUES`] values, duplicate keys refused as the YAML backend refuses them).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn extension(&self) -> &'static str {
        "json"
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        let budget = Cell::new(MAX_JSON_VALUES);
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = Budgeted(&budget)
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value))
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(value)
    }

    fn encode(&self, document: &Value) -> Result<Vec<u8>, CodecError> {
        let mut bytes = serde_json::to_vec_pretty(document).map_err(|e| CodecError(e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// Builds a [`Value`] like serde_json does, counting values against a budget and
/// refusing a key that appears twice in one object.
#[derive(Clone, Copy)]
struct Budgeted<'a>(&'a Cell<usize>);

impl Budgeted<'_> {
    fn spend<E: serde::de::Error>(self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "the document holds more than {MAX_JSON_VALUES} values, more than a checklist file may"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
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
    fn duplicate_keys_and_documents_over_the_value_budget_are_refused() {
        let err = JsonCodec
            .decode(br#"{"a": 1, "b": {"c": 2, "c": 3}}"#)
            .unwrap_err();
        assert!(
            err.0.contains("duplicate key \"c\"") && err.0.contains("line 1"),
            "{err}"
        );
        let at_budget = format!("[{}]", vec!["1"; MAX_JSON_VALUES - 1].join(","));
        assert_eq!(
            JsonCodec
                .decode(at_budget.as_bytes())
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            MAX_JSON_VALUES - 1
        );
        let over = format!("[{}]", vec!["1"; MAX_JSON_VALUES].join(","));
        let err = JsonCodec.decode(over.as_bytes()).unwrap_err();
        assert!(err.0.contains("more than 250000 values"), "{err}");
        assert!(JsonCodec.decode(b"{} trailing").is_err());
        let doc = json!({"i": -3, "u": u64::MAX, "f": 1.5, "s": "x", "n": null, "b": false, "a": [[], {}]});
        assert_eq!(JsonCodec.decode(&JsonCodec.encode(&doc).unwrap()).unwrap(), doc);
    }

    #[test]
    fn errors_carry_a_position() {
        let err = JsonCodec.decode(b"{\"a\": }").unwrap_err();
        assert!(err.0.contains("line 1"), "{err}");
    }
}
