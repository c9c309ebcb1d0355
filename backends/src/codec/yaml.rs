//! The YAML codec: YAML 1.2 read and written by serde-saphyr.

use serde_json::Value;

use checklist_core::codec::{Codec, CodecError, utf8};

/// YAML 1.2 through serde-saphyr: safe Rust, alias and depth budgets, duplicate keys
/// refused, and ambiguous scalars (`yes`, `on`, dates) quoted when written.
///
/// Read with YAML 1.2 booleans only (`true`/`false`): serde-saphyr's default also takes
/// the YAML 1.1 words `yes`, `no`, `on` and `off` for booleans, which turned a hand-written
/// `secrets: {mode: off}` into `false` and a step's `stdout: no` into a schema error.
#[derive(Debug, Clone, Copy, Default)]
pub struct YamlCodec;

impl Codec for YamlCodec {
    fn name(&self) -> &'static str {
        "yaml"
    }

    fn extension(&self) -> &'static str {
        "yaml"
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        let text = utf8(bytes)?;
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_str_with_options::<Value>(text, options)
            .map_err(|e| CodecError(one_line(&e.to_string())))
    }

    fn encode(&self, document: &Value) -> Result<Vec<u8>, CodecError> {
        serde_saphyr::to_string(document)
            .map(String::into_bytes)
            .map_err(|e| CodecError(e.to_string()))
    }
}

/// serde-saphyr renders errors with a multi-line source snippet; the store's messages
/// are one sentence, so keep the first line (which carries the position). It also
/// starts with its own `error: ` (the CLI prints one already) and can end with advice
/// for the program's author (`use Option<String>`, `set DuplicateKeyPolicy in Options`)
/// that means nothing to whoever edits the file: both are left out.
fn one_line(message: &str) -> String {
    const AUTHOR_ADVICE: [&str; 2] = ["; use Option<", ", set DuplicateKeyPolicy"];
    let first = message.lines().next().unwrap_or(message).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    AUTHOR_ADVICE
        .iter()
        .fold(first, |text, advice| text.split(advice).next().unwrap_or(text))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_quotes_ambiguous_scalars() {
        let doc = json!({
            "a": "yes", "b": "2026-11-01", "c": "multi\nline\n", "d": 12, "e": null,
            "f": ["on", "~", "", " padded "], "g": {"h": true}, "i": "0755", "j": "1e3"
        });
        let bytes = YamlCodec.encode(&doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(YamlCodec.decode(&bytes).unwrap(), doc, "{text}");
    }

    #[test]
    fn hand_written_yaml_1_1_words_stay_text() {
        let text = b"mode: off\nstdout: no\nflag: yes\nreal: true\nalso: False\n";
        assert_eq!(
            YamlCodec.decode(text).unwrap(),
            json!({"mode": "off", "stdout": "no", "flag": "yes", "real": true, "also": false})
        );
    }

    #[test]
    fn errors_are_one_line_with_a_position() {
        let err = YamlCodec.decode(b"a: [1, 2\nb: 3\n").unwrap_err();
        assert!(!err.0.contains('\n'), "{err}");
        let err = YamlCodec.decode(b"a: 1\na: 2\n").unwrap_err();
        assert!(err.0.to_lowercase().contains("duplicate"), "{err}");
        let err = YamlCodec.decode(b"a: \xff\n").unwrap_err();
        assert!(err.0.contains("UTF-8"), "{err}");
    }

    #[test]
    fn errors_speak_to_whoever_edits_the_file() {
        for text in [&b"{{"[..], b"a: 1\na: 2\n", b": - bad", b"key: 'x"] {
            let err = YamlCodec.decode(text).unwrap_err().0;
            assert!(!err.starts_with("error"), "the CLI says error: once: {err}");
            assert!(
                !err.contains("Option<") && !err.contains("DuplicateKeyPolicy"),
                "{err}"
            );
            assert!(err.starts_with("line "), "{err}");
        }
    }
}
