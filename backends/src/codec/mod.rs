//! The two document formats that ship: [`yaml`] (serde-saphyr) and [`json`]
//! (serde_json). The file engine stores the state in either; the sidecar files and the
//! sqlite backend use them for their own formats.

pub(crate) mod json;
pub(crate) mod yaml;

#[cfg(test)]
mod tests {
    use checklist_core::codec::Codec;
    use checklist_core::schema::MAX_DOCUMENT_DEPTH;
    use serde_json::{Value, json};

    use super::json::JsonCodec;
    use super::yaml::YamlCodec;

    /// A document `depth` levels deep (the document itself is level 1).
    fn nested(depth: usize) -> Value {
        let mut value = json!("bottom ✓");
        for level in 0..depth {
            value = if level % 2 == 0 {
                json!({ "in": value })
            } else {
                json!([value])
            };
        }
        value
    }

    #[test]
    fn every_codec_reads_back_a_document_as_deep_as_the_schema_allows() {
        let codecs: [&dyn Codec; 2] = [&YamlCodec, &JsonCodec];
        for codec in codecs {
            let deepest = nested(MAX_DOCUMENT_DEPTH);
            let bytes = codec.encode(&deepest).unwrap();
            assert_eq!(codec.decode(&bytes).unwrap(), deepest, "{}", codec.name());
        }
        // Why the limit is what it is: one level more is past the YAML parser's budget.
        let deeper = YamlCodec.encode(&nested(MAX_DOCUMENT_DEPTH + 1)).unwrap();
        assert!(YamlCodec.decode(&deeper).is_err());
    }
}
