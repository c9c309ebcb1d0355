//! Helpers shared by the cases.

use checklist_core::ChecklistState;
use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};
use serde_json::{Value, json};

use crate::Failure;

/// A marker the corruption cases look for in the stored bytes; it appears verbatim
/// in every text format.
pub(crate) const MARKER: &str = "conformance-marker-AAAA";

/// Fails the case with a formatted message unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// Fails the case unless `$result` is an error matching `$pattern`; the message says
/// what was expected, and the failure adds what came instead.
macro_rules! ensure_err {
    ($result:expr, $pattern:pat, $($msg:tt)+) => {
        match $result {
            Err($pattern) => {}
            other => {
                return Err($crate::Failure(format!("{}, got {other:?}", format!($($msg)+))));
            }
        }
    };
}
pub(crate) use ensure_err;

/// Turns a store error into a failure that says what the case was doing.
pub(crate) fn step<T>(doing: &str, result: checklist_core::Result<T>) -> Result<T, Failure> {
    result.map_err(|e| Failure(format!("{doing} failed: {e}")))
}

/// A document with an active instance, `steps` completed steps, and unknown fields at
/// the top level and inside a step.
pub(crate) fn sample_state(steps: usize) -> ChecklistState {
    let mut state = ChecklistState::new();
    state
        .start_instance(
            InstanceStart {
                template_id: MARKER.to_owned(),
                template_version: Some("1.0.0".into()),
                project_path: Some("/conformance/project".into()),
                first_step_id: Some("step-0".into()),
            },
            now(),
        )
        .expect("a fresh state accepts an instance");
    for i in 0..steps {
        add_step(&mut state, &format!("step-{i}"));
    }
    state
        .extra
        .insert("x-conformance".into(), json!({"nested": [1, "two", null, true]}));
    if let Some(first) = state.completed_steps.first_mut() {
        first.extra.insert("x-note".into(), json!("kept"));
    }
    state
}

/// Turns an I/O error of a hook into a failure that says what the case was doing.
pub(crate) fn io(doing: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure(format!("{doing}: {e}"))
}

/// The stored bytes, which a write put there.
pub(crate) fn raw_bytes(raw: &crate::RawAccess) -> Result<Vec<u8>, Failure> {
    raw.read()
        .map_err(io("reading the raw bytes"))?
        .ok_or_else(|| Failure("no raw bytes after a write".into()))
}

/// The stored document decoded and verified from its bytes, as another process reads
/// it: a read through any handle of this process may be answered from what the process
/// verified or wrote before (`checklist_core::store::verify`), which would hide a codec
/// that cannot read back what it wrote.
pub(crate) async fn read_afresh(subject: &crate::Subject) -> Result<ChecklistState, Failure> {
    let bytes = step("reading the stored bytes", subject.store.read_raw().await)?
        .ok_or_else(|| Failure("the state written is gone".into()))?;
    step(
        "decoding the stored bytes afresh",
        checklist_core::store::verify_afresh(
            subject.store.codec(),
            &bytes,
            subject.store.info().location_path(),
        ),
    )
}

/// Adds one successful step.
pub(crate) fn add_step(state: &mut ChecklistState, id: &str) {
    state
        .complete_step(
            StepCompletion {
                step_id: id.to_owned(),
                result: StepResult::Success,
                execution_time_ms: 7,
                command_results: vec![CommandResult {
                    command: format!("run {id}"),
                    exit_code: 0,
                    stdout: "first line\nsecond line: yes\n".into(),
                    stderr: String::new(),
                    duration: 6,
                    extra: Default::default(),
                }],
            },
            now(),
        )
        .expect("an active instance accepts a new step");
}

/// Text a careless encoder mangles: accents, CJK, a check mark, an emoji outside the
/// Basic Multilingual Plane, right-to-left script, the separators JavaScript treats as
/// line ends, a byte-order mark, control characters, quotes and backslashes, and
/// strings YAML would read as something else if left unquoted.
pub(crate) const TRICKY_TEXT: &[&str] = &[
    "Étape terminée: café, naïve, Straße",
    "日本語のステップ — 中文 — 한국어",
    "✓ passed ✗ failed → next",
    "🦀 crab, 👩‍💻 coder",
    "עברית and العربية",
    "line\u{2028}separator\u{2029}paragraph",
    "\u{feff}byte-order mark inside",
    "tab\there, crlf\r\nline, nul\u{0}byte, bell\u{7}, escape\u{1b}[32m",
    "quote \" backslash \\ apostrophe '",
    "  leading and trailing spaces  ",
    "",
    "yes",
    "no",
    "null",
    "~",
    "0x1F",
    "1e3",
    "- dash",
    "key: value",
    "# hash",
    "multi\nline\n",
];

/// Integers across the whole range a document can hold, above all those beyond 2^53
/// that a float rounds: an integer stored through a float (JavaScript, a REAL column)
/// comes back different.
pub(crate) fn tricky_integers() -> Vec<Value> {
    let beyond_floats = 1i64 << 53;
    vec![
        json!(0),
        json!(-1),
        json!(beyond_floats - 1),
        json!(beyond_floats + 1),
        json!(-(beyond_floats + 1)),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(u64::MAX - 1),
    ]
}

/// Every kind of JSON value: the tricky text (as values and as keys), the integer
/// range, floats, booleans, null, empty containers, and nesting `depth` levels deep.
pub(crate) fn every_kind_of_value(depth: usize) -> Value {
    let keys: serde_json::Map<String, Value> = TRICKY_TEXT
        .iter()
        .enumerate()
        .map(|(i, text)| ((*text).to_owned(), json!(i)))
        .collect();
    let mut deep = json!("the bottom ✓");
    for level in 0..depth {
        deep = if level % 2 == 0 {
            json!([deep])
        } else {
            json!({ "level": deep })
        };
    }
    json!({
        "text": TRICKY_TEXT,
        "keys": keys,
        "integers": tricky_integers(),
        "floats": [0.5, -2.25, 0.1, 1e-300, 1.797_693_134_862_315_7e308, 123_456.789],
        "booleans": [true, false],
        "null": null,
        "nulls": [null, {"inside": null}],
        "empty": {"object": {}, "array": [], "string": ""},
        "deep": deep,
    })
}

/// Where two JSON values first differ, as a JSON pointer with both sides: what a
/// failure says instead of two dumps of a whole document.
pub(crate) fn first_difference(got: &Value, want: &Value) -> Option<String> {
    fn walk(got: &Value, want: &Value, at: &str) -> Option<String> {
        match (got, want) {
            (Value::Object(g), Value::Object(w)) => {
                for (key, w_value) in w {
                    let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                    match g.get(key) {
                        Some(g_value) => {
                            if let Some(found) = walk(g_value, w_value, &here) {
                                return Some(found);
                            }
                        }
                        None => return Some(format!("{here:?} is missing (it should be {w_value})")),
                    }
                }
                g.keys()
                    .find(|key| !w.contains_key(*key))
                    .map(|key| format!("{at}/{key} is there but was never written"))
            }
            (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
                .iter()
                .zip(w)
                .enumerate()
                .find_map(|(i, (g, w))| walk(g, w, &format!("{at}/{i}"))),
            _ if got == want => None,
            _ => Some(format!(
                "{} reads back as {got}, but {want} was written",
                if at.is_empty() {
                    "the document".to_owned()
                } else {
                    format!("{at:?}")
                }
            )),
        }
    }
    walk(got, want, "")
}

/// How many containers [`state_with_every_value`] nests under `x-every-value/deep`:
/// with the document and `x-every-value` itself, the deepest a document may be
/// ([`MAX_DOCUMENT_DEPTH`](checklist_core::schema::MAX_DOCUMENT_DEPTH)).
pub(crate) const NESTING: usize = checklist_core::schema::MAX_DOCUMENT_DEPTH - 2;

/// A document holding every kind of value where a document can: the tricky text in
/// every string field the model has (template, project path, step ids, commands,
/// output), and [`every_kind_of_value`] in unknown fields at the top level and inside
/// a step.
pub(crate) fn state_with_every_value() -> ChecklistState {
    let mut state = ChecklistState::new();
    state
        .start_instance(
            InstanceStart {
                template_id: format!("{MARKER} modèle ✓ 日本"),
                template_version: Some("1.0.0-β".into()),
                project_path: Some("/home/zoë/项目 🦀/checklist".into()),
                first_step_id: Some("étape-0-✓".into()),
            },
            now(),
        )
        .expect("a fresh state accepts an instance");
    for (i, text) in TRICKY_TEXT.iter().enumerate() {
        state
            .complete_step(
                StepCompletion {
                    step_id: format!("étape-{i}-✓"),
                    result: StepResult::Success,
                    execution_time_ms: 7,
                    command_results: vec![CommandResult {
                        command: format!("echo {text:?}"),
                        exit_code: 0,
                        stdout: (*text).to_owned(),
                        stderr: format!("stderr: {text}"),
                        duration: 6,
                        extra: Default::default(),
                    }],
                },
                now(),
            )
            .expect("an active instance accepts a new step");
    }
    state
        .extra
        .insert("x-every-value".into(), every_kind_of_value(NESTING));
    if let Some(first) = state.completed_steps.first_mut() {
        first.extra.insert("x-ключ-✓".into(), every_kind_of_value(8));
    }
    state
}
