//! Properties of the stores over generated documents: what is saved loads back
//! unchanged (YAML file, JSON file, memory), the checksum changes exactly when the
//! content does, and a document's YAML and JSON forms carry the same checksum.
//!
//! The documents are meant to hurt a text format: command output with unicode,
//! quotes, control characters and newlines, scalars YAML could read as something else
//! (`yes`, `~`, `0x10`, `1e3`, `2026-11-01`), integers at the ends of their ranges,
//! and fields this build does not know, at every level.

use std::path::Path;

use checklist_backends::{FileStore, FileStoreOptions, JsonCodec, MemoryStore, YamlCodec};
use checklist_core::config::Durability;
use checklist_core::model::{ActiveInstance, CommandResult, CompletedStep, InstanceStatus, StepResult};
use checklist_core::prelude::*;
use checklist_core::store::verify_afresh;
use checklist_core::{ChecklistState, Committed, Expectation, document};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Number, Value};

/// Strings a YAML reader could take for something other than a string, and other
/// text that needs quoting or escaping.
const AWKWARD: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "False",
    "~",
    "null",
    "NULL",
    "",
    " ",
    "0x10",
    "0o17",
    "0755",
    "1e3",
    "-1e-3",
    ".inf",
    "-.INF",
    ".nan",
    "2026-11-01",
    "2026-11-01T12:00:00Z",
    "12:30:45",
    "+1",
    "1_000",
    "'quoted'",
    "\"double\"",
    "a: b",
    "- item",
    "# not a comment",
    "&anchor",
    "*alias",
    "!tag",
    "|",
    ">",
    "%YAML 1.2",
    "---",
    "...",
    "{a: 1}",
    "[1, 2]",
    "tab\there",
    "crlf\r\nline",
    "trailing\n",
    "\n\nleading",
    "  padded  ",
    "ünïcødé ✓ 🦀",
    "\u{feff}bom",
    "\u{0}nul",
    "\u{7f}del",
    "back\\slash",
    "\u{2028}line separator",
];

/// Integers at the edges of what JSON, YAML and the checksum's canonical form handle.
const EDGE_INTEGERS: &[i64] = &[0, -1, 1, i32::MIN as i64, i32::MAX as i64, i64::MIN, i64::MAX];

/// Any text: awkward on purpose, or arbitrary unicode (control characters included).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(AWKWARD).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => proptest::collection::vec(proptest::sample::select(AWKWARD), 1..5).prop_map(|p| p.join("\n")),
    ]
}

/// An identifier the schema accepts: 1–200 bytes, no control characters.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(AWKWARD)
            .prop_filter("an id has no control characters", |s| {
                !s.is_empty() && !s.chars().any(|c| c.is_control())
            })
            .prop_map(str::to_owned),
        "[a-zA-Z0-9 ._:/✓ü-]{1,40}",
    ]
}

/// A millisecond-precision time between 1970 and 9999, as the store writes them.
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_799_999).prop_map(|ms| DateTime::from_timestamp_millis(ms).expect("in range"))
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(EDGE_INTEGERS).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::sample::select(&[0.5, -1.25, 1e-7, 1.5e300, 3.0, -0.0][..])
            .prop_map(|f| Value::Number(Number::from_f64(f).expect("finite"))),
    ]
}

/// An unknown field's value: any JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((text(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Fields no struct of the model knows (so none collides with a known field).
fn extra() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        proptest::sample::select(AWKWARD).prop_map(|k| format!("x-{k}")),
        proptest::sample::select(&["yes", "~", "null", "0x10", "1e3", "2026-11-01", "", "ключ"][..])
            .prop_map(str::to_owned),
    ];
    proptest::collection::vec((key, json_value()), 0..3).prop_map(|entries| entries.into_iter().collect())
}

fn command_result() -> impl Strategy<Value = CommandResult> {
    (
        text(),
        prop_oneof![
            proptest::sample::select(&[0, 1, -1, i32::MIN, i32::MAX][..]),
            any::<i32>()
        ],
        text(),
        text(),
        prop_oneof![
            Just(0u64),
            Just(i64::MAX as u64),
            any::<u64>().prop_map(|n| n >> 1)
        ],
        extra(),
    )
        .prop_map(
            |(command, exit_code, stdout, stderr, duration, extra)| CommandResult {
                command,
                exit_code,
                stdout,
                stderr,
                duration,
                extra,
            },
        )
}

fn completed_step() -> impl Strategy<Value = CompletedStep> {
    (
        id(),
        timestamp(),
        any::<u64>().prop_map(|n| n >> 1),
        proptest::sample::select(&[StepResult::Success, StepResult::Failure, StepResult::Skipped][..]),
        proptest::collection::vec(command_result(), 0..3),
        extra(),
    )
        .prop_map(
            |(step_id, completed_at, execution_time, result, command_results, extra)| CompletedStep {
                step_id,
                completed_at,
                execution_time,
                result,
                command_results,
                extra,
            },
        )
}

fn active_instance() -> impl Strategy<Value = ActiveInstance> {
    (
        (
            id(),
            id(),
            proptest::option::of(id()),
            proptest::option::of(text()),
        ),
        proptest::sample::select(
            &[
                InstanceStatus::Active,
                InstanceStatus::Paused,
                InstanceStatus::Completed,
                InstanceStatus::Failed,
            ][..],
        ),
        (
            proptest::option::of(id()),
            timestamp(),
            timestamp(),
            proptest::option::of(timestamp()),
        ),
        extra(),
    )
        .prop_map(
            |((id, template_id, template_version, project_path), status, times, extra)| {
                let (current_step_id, started_at, last_modified_at, completed_at) = times;
                ActiveInstance {
                    id,
                    template_id,
                    template_version,
                    project_path: project_path.filter(|p| !p.is_empty()),
                    status,
                    current_step_id,
                    started_at,
                    last_modified_at,
                    completed_at,
                    extra,
                }
            },
        )
}

/// A state as a caller hands it to a store: no revision, no checksum.
fn state() -> impl Strategy<Value = ChecklistState> {
    (
        proptest::option::of(active_instance()),
        proptest::collection::vec(completed_step(), 0..4),
        extra(),
    )
        .prop_map(|(active_instance, completed_steps, extra)| {
            let mut state = ChecklistState::new();
            state.active_instance = active_instance;
            state.completed_steps = completed_steps;
            state.extra = extra;
            state
        })
}

fn options() -> FileStoreOptions {
    FileStoreOptions {
        durability: Durability::Fast,
        ..FileStoreOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `state` as the first revision of a new store in `dir`, then reads it back
/// through a second store on the same directory: the first one remembers what it
/// wrote and would not parse the file.
async fn save_and_load_file<C: checklist_backends::Codec + Clone>(
    dir: &Path,
    codec: C,
    state: &ChecklistState,
) -> (Committed, Option<ChecklistState>) {
    let writer = FileStore::open(dir, codec.clone(), options()).unwrap();
    let committed = writer.commit(state, Expectation::Absent).await.unwrap();
    // Decoded afresh: the process remembers the bytes it wrote, and this must parse them.
    let reader = FileStore::open(dir, codec.clone(), options()).unwrap();
    let read = reader
        .read_raw()
        .await
        .unwrap()
        .map(|bytes| verify_afresh(&codec, &bytes, reader.state_path()).unwrap());
    (committed, read)
}

fn as_committed(state: &ChecklistState, committed: &Committed) -> ChecklistState {
    let mut expected = state.clone();
    expected.revision = committed.revision;
    expected.checksum = Some(committed.checksum.clone());
    expected
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn what_a_store_saves_loads_back_unchanged(state in state()) {
        let rt = runtime();
        let (yaml_dir, json_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

        let (committed, loaded) = rt.block_on(save_and_load_file(yaml_dir.path(), YamlCodec, &state));
        prop_assert_eq!(loaded, Some(as_committed(&state, &committed)), "YAML file store");

        let (committed, loaded) = rt.block_on(save_and_load_file(json_dir.path(), JsonCodec, &state));
        prop_assert_eq!(loaded, Some(as_committed(&state, &committed)), "JSON file store");

        let memory = MemoryStore::new();
        let committed = rt.block_on(memory.commit(&state, Expectation::Absent)).unwrap();
        let loaded = rt.block_on(memory.read()).unwrap();
        prop_assert_eq!(loaded, Some(as_committed(&state, &committed)), "memory store");
    }

    #[test]
    fn a_documents_yaml_and_json_forms_have_the_same_checksum(state in state()) {
        let rt = runtime();
        let (yaml_dir, json_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from_yaml, _) = rt.block_on(save_and_load_file(yaml_dir.path(), YamlCodec, &state));
        let (from_json, _) = rt.block_on(save_and_load_file(json_dir.path(), JsonCodec, &state));
        let from_memory = rt.block_on(MemoryStore::new().commit(&state, Expectation::Absent)).unwrap();
        prop_assert_eq!(&from_yaml, &from_json);
        prop_assert_eq!(&from_yaml, &from_memory);

        // The checksum each file carries is the one its bytes verify against.
        let yaml_path = yaml_dir.path().join("state.yaml");
        let json_path = json_dir.path().join("state.json");
        let yaml_bytes = std::fs::read(&yaml_path).unwrap();
        let json_bytes = std::fs::read(&json_path).unwrap();
        let from_yaml_bytes = verify_afresh(&YamlCodec, &yaml_bytes, &yaml_path).unwrap();
        let from_json_bytes = verify_afresh(&JsonCodec, &json_bytes, &json_path).unwrap();
        prop_assert_eq!(from_yaml_bytes.checksum, Some(from_yaml.checksum));
        prop_assert_eq!(from_json_bytes.checksum, Some(from_json.checksum));
    }
}

/// A change to a state, which may or may not change its content.
#[derive(Debug, Clone)]
enum Edit {
    Nothing,
    /// Same content, unknown fields in another order.
    ReorderUnknownFields,
    SetStdout(usize, String),
    SetExitCode(usize, i32),
    SetUnknownField(String, Value),
    DropLastStep,
    SetTemplateId(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::Nothing),
        Just(Edit::ReorderUnknownFields),
        (any::<usize>(), text()).prop_map(|(i, s)| Edit::SetStdout(i, s)),
        (
            any::<usize>(),
            proptest::sample::select(&[0, 1, -1, i32::MAX][..])
        )
            .prop_map(|(i, c)| Edit::SetExitCode(i, c)),
        (
            proptest::sample::select(&["yes", "x-~", "x-1e3"][..]),
            json_value()
        )
            .prop_map(|(k, v)| Edit::SetUnknownField(k.to_owned(), v)),
        Just(Edit::DropLastStep),
        id().prop_map(Edit::SetTemplateId),
    ]
}

fn apply(state: &ChecklistState, edit: &Edit) -> ChecklistState {
    let mut edited = state.clone();
    let commands: Vec<&mut CommandResult> = edited
        .completed_steps
        .iter_mut()
        .flat_map(|s| s.command_results.iter_mut())
        .collect();
    let command_count = commands.len();
    match edit {
        Edit::Nothing => {}
        Edit::ReorderUnknownFields => {
            edited.extra = edited.extra.into_iter().rev().collect();
            for step in &mut edited.completed_steps {
                step.extra = std::mem::take(&mut step.extra).into_iter().rev().collect();
            }
        }
        Edit::SetStdout(i, stdout) if command_count > 0 => {
            let mut commands = commands;
            commands[i % command_count].stdout = stdout.clone();
        }
        Edit::SetExitCode(i, code) if command_count > 0 => {
            let mut commands = commands;
            commands[i % command_count].exit_code = *code;
        }
        Edit::SetStdout(..) | Edit::SetExitCode(..) => {}
        Edit::SetUnknownField(key, value) => {
            edited.extra.insert(key.clone(), value.clone());
        }
        Edit::DropLastStep => {
            edited.completed_steps.pop();
        }
        Edit::SetTemplateId(template_id) => {
            if let Some(instance) = &mut edited.active_instance {
                instance.template_id = template_id.clone();
            }
        }
    }
    edited
}

fn checksum(state: &ChecklistState) -> Result<String, TestCaseError> {
    document::seal(state, 7, Path::new("state.yaml"))
        .map(|sealed| sealed.checksum)
        .map_err(|e| TestCaseError::fail(format!("a generated state does not seal: {e}")))
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn the_checksum_changes_exactly_when_the_content_does(state in state(), edit in edit()) {
        let edited = apply(&state, &edit);
        let same_content = edited == state;
        let same_checksum = checksum(&edited)? == checksum(&state)?;
        prop_assert_eq!(same_checksum, same_content, "edit {:?}", edit);
    }
}
