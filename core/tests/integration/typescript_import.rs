//! The state files of the original TypeScript checklist (`schemas/fixtures/typescript-*`):
//! every read refuses them as an unsupported version, never as corrupt; `migrate`
//! imports each one keeping every instance, step and command result, and the result
//! verifies once sealed (docs/decisions/0018-importing-the-typescript-checklist.md).

use std::path::{Path, PathBuf};

use checklist_core::canonical::document_checksum;
use checklist_core::migrate::typescript::{self, KEPT_FIELD, Layer};
use checklist_core::model::{CURRENT_SCHEMA_VERSION, StepResult};
use checklist_core::{ChecklistState, CorruptionKind, Error, document, migrate};
use serde_json::{Value, json};

/// Every fixture with the version and the layer it must be detected as.
const FIXTURES: &[(&str, &str, Layer)] = &[
    ("typescript-1.0.0-first-use.yaml", "1.0.0", Layer::State),
    ("typescript-1.0.0-metadata.yaml", "1.0.0", Layer::State),
    ("typescript-0.0.0.yaml", "0.0.0", Layer::State),
    ("typescript-0.1.0.yaml", "0.1.0", Layer::State),
    ("typescript-0.2.0.yaml", "0.2.0", Layer::State),
    ("typescript-migrated-1.0.0.yaml", "1.0.0", Layer::State),
    ("typescript-instances-layer.yaml", "1.0.0", Layer::Instances),
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn state_path() -> &'static Path {
    Path::new("/p/.checklist/state.yaml")
}

/// Imports a fixture, seals the result as revision 1 and reads it back verified.
fn import_and_seal(name: &str) -> (migrate::Migrated, ChecklistState) {
    let migrated = migrate::migrate(&fixture(name), state_path()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let state = migrated
        .clone()
        .into_state(state_path())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let sealed = document::seal(&state, 1, state_path()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = document::unseal(sealed.value, state_path()).unwrap_or_else(|e| panic!("{name}: {e}"));
    (migrated, back)
}

#[test]
fn the_first_use_fixture_is_the_documented_file_and_its_checksum_verifies_with_ours() {
    let first_use = fixture("typescript-1.0.0-first-use.yaml");
    assert_eq!(
        first_use,
        json!({
            "checksum": "sha256:8e4d5ae25a9ab48552130bc3f3f4d7f7c9a8b6d5e26cc62412571570c7f366e3",
            "completedSteps": [],
            "conflicts": {},
            "recovery": {"dataLoss": false},
            "schemaVersion": "1.0.0",
        })
    );
    assert_eq!(
        document_checksum(&first_use),
        first_use["checksum"],
        "the TypeScript checklist's checksum is this format's"
    );
}

#[test]
fn every_fixture_is_detected_with_its_version_and_layer() {
    for (name, version, layer) in FIXTURES {
        let origin = typescript::detect(&fixture(name)).unwrap_or_else(|| panic!("{name} not detected"));
        assert_eq!(
            (origin.version.as_str(), origin.layer),
            (*version, *layer),
            "{name}"
        );
        assert!(typescript::can_import(version), "{name}");
    }
}

#[test]
fn every_read_refuses_a_typescript_file_as_an_unsupported_version_never_as_corrupt() {
    for (name, version, _) in FIXTURES {
        let path = fixture_path(name);
        for err in [
            document::unseal(fixture(name), &path).unwrap_err(),
            document::unseal_ignoring_checksum(fixture(name), &path).unwrap_err(),
        ] {
            assert!(
                matches!(&err, Error::UnsupportedVersion { typescript: true, found, .. } if found == version),
                "{name}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(name)
                    && text.contains("written by the TypeScript checklist")
                    && text.contains("imported into schema 1.0.0 by a migration"),
                "{name}: {text}"
            );
            assert!(
                !text.contains("corrupt") && !text.contains("recover"),
                "{name}: {text}"
            );
        }
    }
}

#[test]
fn documents_of_this_format_are_never_taken_for_typescript_files() {
    for name in [
        "state-0.8.0.yaml",
        "state-0.9.0.yaml",
        "state-1.0.0.yaml",
        "state-2.0.0.yaml",
        "state-0.8.0.migrated.yaml",
        "state-0.9.0.migrated.yaml",
    ] {
        assert_eq!(typescript::detect(&fixture(name)), None, "{name}");
    }

    // A sealed document of ours with a stale checksum is corrupt, even with every
    // field the TypeScript tool writes: it has a revision.
    let mut ours = fixture("state-1.0.0.yaml");
    ours["version"] = json!("1.0.0");
    ours["metadata"] = json!({"created": "2025-01-01T00:00:00.000Z"});
    ours["conflicts"] = json!({});
    ours["recovery"] = json!({"dataLoss": false});
    assert_eq!(typescript::detect(&ours), None);
    let err = document::unseal(ours, state_path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                kind: CorruptionKind::SchemaInvalid,
                ..
            }
        ),
        "{err}"
    );
    let mut edited = fixture("state-1.0.0.yaml");
    edited["completedSteps"][0]["executionTime"] = json!(1);
    let err = document::unseal(edited, state_path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                kind: CorruptionKind::ChecksumMismatch,
                ..
            }
        ),
        "{err}"
    );

    // Ours without its revision is corrupt too: nothing else in it is the TypeScript
    // tool's shape.
    let mut no_revision = fixture("state-1.0.0.yaml");
    no_revision.as_object_mut().unwrap().remove("revision");
    assert_eq!(typescript::detect(&no_revision), None);
    let err = document::unseal(no_revision, state_path()).unwrap_err();
    assert!(err.to_string().contains("revision"), "{err}");
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");

    // This format's own 0.9 series is migrated by its own chain, even with an empty
    // checksum field someone added.
    let mut old = fixture("state-0.9.0.yaml");
    old["checksum"] = json!("");
    assert_eq!(typescript::detect(&old), None);
    let migrated = migrate::migrate(&old, state_path()).unwrap();
    assert_eq!(migrated.typescript, None);
    assert_eq!(migrated.steps[0].from, "0.9.0");
}

/// Every command result of a document, anywhere in it, as (command, exit code,
/// stdout, stderr).
fn command_results(value: &Value, found: &mut Vec<(String, i64, String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(commands)) = map.get("commandResults") {
                for c in commands {
                    found.push((
                        c["command"].as_str().unwrap().to_owned(),
                        c["exitCode"].as_i64().unwrap(),
                        c["stdout"].as_str().unwrap_or_default().to_owned(),
                        c["stderr"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
            map.iter()
                .filter(|(k, _)| *k != "commandResults")
                .for_each(|(_, v)| command_results(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| command_results(v, found)),
        _ => {}
    }
}

/// Every text of a document (values, not keys), timestamps as the instant they name.
fn texts(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_or_else(|_| text.clone(), |t| t.timestamp_millis().to_string()),
        ),
        Value::Object(map) => map.values().for_each(|v| texts(v, found)),
        Value::Array(items) => items.iter().for_each(|v| texts(v, found)),
        _ => {}
    }
}

#[test]
fn every_fixture_imports_losing_no_command_result_and_no_text_and_verifies_once_sealed() {
    for (name, version, _) in FIXTURES {
        let original = fixture(name);
        let (migrated, state) = import_and_seal(name);
        assert_eq!(migrated.from, *version, "{name}");
        assert_eq!(migrated.to, CURRENT_SCHEMA_VERSION, "{name}");
        assert_eq!(migrated.steps.len(), 1, "{name}: one import step");
        assert_eq!(state.revision, 1, "{name}");

        let sealed = serde_json::to_value(&state).unwrap();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        command_results(&original, &mut before);
        command_results(&sealed, &mut after);
        before.sort();
        after.sort();
        assert_eq!(after, before, "{name}: the command results");

        let mut without_checksum = original.clone();
        without_checksum.as_object_mut().unwrap().remove("checksum");
        let (mut before, mut after) = (Vec::new(), Vec::new());
        texts(&without_checksum, &mut before);
        texts(&sealed, &mut after);
        // The instances layer's step statuses become this format's results.
        let result_of = |status: &str| match status {
            "completed" => "success".to_owned(),
            "failed" => "failure".to_owned(),
            other => other.to_owned(),
        };
        let lost: Vec<&String> = before
            .iter()
            .filter(|t| !after.contains(t) && !after.contains(&result_of(t)))
            .collect();
        assert!(lost.is_empty(), "{name}: lost {lost:?}");

        // What has no place in this format is kept as it was.
        let kept = &sealed[KEPT_FIELD];
        for (key, value) in original.as_object().unwrap() {
            if !["checksum", "activeInstance", "completedSteps", "instances"].contains(&key.as_str()) {
                assert_eq!(&kept[key], value, "{name}: {key}");
            }
        }
        assert!(
            migrated.changes().all(|c| c.starts_with('/')),
            "{name}: every change names the field"
        );
    }
}

fn step_ids(state: &ChecklistState) -> Vec<(&str, StepResult)> {
    state
        .completed_steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.result))
        .collect()
}

#[test]
fn the_first_use_file_becomes_an_empty_state_keeping_its_blocks() {
    let (migrated, state) = import_and_seal("typescript-1.0.0-first-use.yaml");
    assert!(state.active_instance.is_none() && state.completed_steps.is_empty());
    assert_eq!((state.recovery.as_ref(), state.conflicts.as_ref()), (None, None));
    assert_eq!(
        state.extra[KEPT_FIELD],
        json!({"recovery": {"dataLoss": false}, "conflicts": {}, "schemaVersion": "1.0.0"})
    );
    let changes: Vec<&str> = migrated.changes().collect();
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("/checksum: sha256:8e4d") && c.contains("(it verifies)")),
        "{changes:?}"
    );
}

#[test]
fn the_later_1_0_file_keeps_its_instance_and_rounds_its_durations() {
    let (migrated, state) = import_and_seal("typescript-1.0.0-metadata.yaml");
    let instance = state.active_instance.as_ref().unwrap();
    assert_eq!(instance.id, "3f6b2c1e-8d4a-4f7e-9b21-6c5d0e4a7b19");
    assert_eq!(instance.template_id, "deploy-api");
    assert_eq!(
        instance.project_path.as_deref(),
        Some("/home/joão/projetos/api-pagamentos")
    );
    assert_eq!(
        step_ids(&state),
        [
            ("install", StepResult::Success),
            ("test", StepResult::Failure),
            ("test", StepResult::Success),
            ("changelog", StepResult::Skipped),
        ]
    );
    assert_eq!(state.completed_steps[0].execution_time, 41238);
    assert_eq!(state.completed_steps[2].command_results[0].duration, 11850);
    assert_eq!(state.completed_steps[2].command_results[1].duration, 2211);
    assert!(
        state.completed_steps[1].command_results[0]
            .stderr
            .contains("«recusado» ≠ «aceito»")
    );
    assert_eq!(state.extra[KEPT_FIELD]["metadata"]["template"], "default");
    assert!(
        migrated
            .changes()
            .any(|c| c == "/completedSteps/0/executionTime: 41237.82 ms → 41238 ms"),
        "{:?}",
        migrated.steps
    );
}

#[test]
fn a_0_0_0_file_gets_a_derived_instance_id_and_its_bare_step_ids_become_steps() {
    let (migrated, state) = import_and_seal("typescript-0.0.0.yaml");
    let instance = state.active_instance.as_ref().unwrap();
    assert_eq!(instance.template_id, "cl-release");
    assert_eq!(instance.current_step_id.as_deref(), Some("publish"));
    assert_eq!(instance.status.as_str(), "active");
    // Derived from the content: the same for a dry run and the real run.
    let again = migrate::migrate(&fixture("typescript-0.0.0.yaml"), state_path()).unwrap();
    assert_eq!(again.value["activeInstance"]["id"], json!(instance.id));
    assert!(uuid::Uuid::parse_str(&instance.id).is_ok(), "{}", instance.id);
    assert_eq!(
        step_ids(&state),
        [
            ("build", StepResult::Success),
            ("test", StepResult::Success),
            ("lint", StepResult::Success),
        ]
    );
    let lint = &state.completed_steps[2];
    assert_eq!(
        (lint.execution_time, lint.completed_at),
        (0, instance.last_modified_at)
    );
    assert_eq!(
        instance.last_modified_at.to_rfc3339(),
        "2024-03-04T09:31:02.077+00:00"
    );
    assert!(
        !instance.extra.contains_key("completedSteps"),
        "the bare ids of recorded steps add nothing"
    );
    let changes: Vec<&str> = migrated.changes().collect();
    for line in [
        "/activeInstance/checklistId: renamed to /activeInstance/templateId",
        "/activeInstance/completedSteps/0: the step id \"build\" alone, dropped: /completedSteps records that step",
        "/customField: kept as /typescriptChecklist/customField (this format has no such field)",
    ] {
        assert!(changes.contains(&line), "{line:?} not in {changes:?}");
    }
}

#[test]
fn a_0_1_0_file_moves_the_steps_recorded_in_its_instance() {
    let (_, state) = import_and_seal("typescript-0.1.0.yaml");
    let instance = state.active_instance.as_ref().unwrap();
    assert_eq!(instance.id, "9a7c4e2b-15f3-4d68-a0c9-2e8b7f6d1c05");
    assert_eq!(instance.status.as_str(), "paused");
    assert_eq!(
        step_ids(&state),
        [("clone", StepResult::Success), ("database", StepResult::Failure)]
    );
    let clone = &state.completed_steps[0];
    assert_eq!(
        (clone.execution_time, clone.command_results[0].duration),
        (5230, 5121)
    );
    assert_eq!(clone.command_results[0].stderr, "Cloning into 'serviço'...\n");
    assert_eq!(state.extra[KEPT_FIELD]["migrations"][0]["to"], "0.1.0");
}

#[test]
fn a_0_2_0_file_sorts_its_steps_and_keeps_its_own_recovery_block() {
    let (migrated, state) = import_and_seal("typescript-0.2.0.yaml");
    assert_eq!(
        step_ids(&state),
        [
            ("patch", StepResult::Success),
            ("verify", StepResult::Success),
            ("reproduce", StepResult::Success),
        ]
    );
    assert_eq!(
        state.completed_steps[0].extra["notes"],
        "corrigido o cálculo de juros — ver PR 418"
    );
    assert_eq!(state.recovery, None);
    assert_eq!(
        state.extra[KEPT_FIELD]["recovery"],
        fixture("typescript-0.2.0.yaml")["recovery"]
    );
    assert_eq!(state.extra[KEPT_FIELD]["variables"]["ambiente"], "produção");
    assert!(
        migrated
            .changes()
            .any(|c| c == "/completedSteps: sorted oldest first, as this format keeps them")
    );
}

#[test]
fn a_file_its_own_migrations_brought_to_1_0_keeps_a_step_record_it_would_double() {
    let (_, state) = import_and_seal("typescript-migrated-1.0.0.yaml");
    assert_eq!(
        step_ids(&state),
        [
            ("build", StepResult::Success),
            ("e2e", StepResult::Success),
            ("changelog", StepResult::Success),
        ]
    );
    assert_eq!(state.completed_steps[1].command_results.len(), 2);
    let instance = state.active_instance.as_ref().unwrap();
    assert_eq!(
        instance.extra["completedSteps"],
        json!([{"completedAt": "2024-11-08T16:20:03.481Z", "id": "build", "notes": "", "result": "success"}]),
        "the second record of build is kept where it was, not added as a second completion"
    );
    let kept = &state.extra[KEPT_FIELD];
    assert_eq!(kept["conflicts"], json!({"resolutions": []}));
    assert_eq!(
        kept["recovery"],
        json!({"checkpoints": [], "dataLoss": false, "enabled": false})
    );
}

#[test]
fn the_instances_layer_maps_its_active_instance_and_keeps_the_others() {
    let original = fixture("typescript-instances-layer.yaml");
    let (migrated, state) = import_and_seal("typescript-instances-layer.yaml");
    let instance = state.active_instance.as_ref().unwrap();
    assert_eq!(instance.id, "7f3e9a21-4b6c-4d8e-a1f0-3c5b7d9e2a46");
    assert_eq!(instance.template_id, "release-2025.06");
    assert_eq!(
        instance.last_modified_at.to_rfc3339(),
        "2025-06-11T14:19:55.870+00:00"
    );
    assert_eq!(
        step_ids(&state),
        [
            ("build", StepResult::Success),
            ("migrate-db", StepResult::Failure),
            ("changelog", StepResult::Skipped),
        ]
    );
    assert_eq!(
        state.completed_steps[1].extra["notes"],
        "a migração 0042 travou a tabela de pedidos; revertida"
    );
    let pending: Vec<&String> = instance.extra["stepStates"].as_object().unwrap().keys().collect();
    assert_eq!(pending, ["smoke-test", "announce"]);
    assert_eq!(
        state.extra[KEPT_FIELD]["instances"],
        json!([original["instances"][0]]),
        "the finished instance is kept as it was, the active one once"
    );
    let changes: Vec<&str> = migrated.changes().collect();
    assert!(
        changes.contains(
            &"/instances: kept as /typescriptChecklist/instances (1 instance besides the active one: this \
              format holds one instance)"
        ),
        "{changes:?}"
    );
}

#[test]
fn an_instances_file_without_an_active_instance_keeps_them_all() {
    let mut layer = fixture("typescript-instances-layer.yaml");
    let all = layer["instances"].clone();
    layer.as_object_mut().unwrap().remove("activeInstance");
    let migrated = migrate::migrate(&layer, state_path()).unwrap();
    assert!(migrated.value.get("activeInstance").is_none());
    assert_eq!(migrated.value[KEPT_FIELD]["instances"], all);
    assert!(
        migrated.changes().any(|c| c.contains("2 instances, none active")),
        "{:?}",
        migrated.steps
    );
    migrated.into_state(state_path()).unwrap();
}

#[test]
fn a_typescript_file_of_a_version_it_never_had_is_refused_unchanged() {
    for doc in [
        json!({"version": "2.0.0", "instances": [], "config": {}}),
        json!({"version": "0.5.0", "checklists": []}),
    ] {
        let before = doc.clone();
        let err = migrate::migrate(&doc, state_path()).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { typescript: true, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("written by the TypeScript checklist") && text.contains("imports only"),
            "{text}"
        );
        assert_eq!(doc, before);
    }
}

#[test]
fn recovery_and_conflict_records_of_this_format_s_shape_are_mapped() {
    let doc = json!({
        "schemaVersion": "1.0.0",
        "checksum": "",
        "completedSteps": [],
        "recovery": {"lastCorruption": "2025-02-01T10:00:00.000+01:00", "corruptionType": "parse_error",
                     "recoveryMethod": "backup", "dataLoss": false, "lastWALRecovery": "2025-02-01T09:00:00.000Z"},
        "conflicts": {"detected": "2025-02-02T10:00:00.000Z", "resolution": "local"},
    });
    let migrated = migrate::migrate(&doc, state_path()).unwrap();
    assert!(
        migrated
            .changes()
            .any(|c| c
                == "/recovery/lastCorruption: 2025-02-01T10:00:00.000+01:00 → 2025-02-01T09:00:00Z (UTC)")
    );
    let state = migrated.into_state(state_path()).unwrap();
    let recovery = state.recovery.as_ref().unwrap();
    assert_eq!(recovery.corruption_type, CorruptionKind::ParseError);
    assert_eq!(recovery.extra["lastWALRecovery"], "2025-02-01T09:00:00.000Z");
    assert!(state.conflicts.is_some());
    assert_eq!(state.extra[KEPT_FIELD], json!({"schemaVersion": "1.0.0"}));
    document::seal(&state, 1, state_path()).unwrap();
}

#[test]
fn an_instance_without_a_template_is_kept_whole() {
    let doc = json!({
        "version": "0.0.0",
        "activeInstance": {"completedSteps": ["a", "b"], "startedAt": "2024-01-01T00:00:00Z"},
    });
    let migrated = migrate::migrate(&doc, state_path()).unwrap();
    assert!(migrated.value.get("activeInstance").is_none());
    assert_eq!(
        migrated.value[KEPT_FIELD]["activeInstance"],
        doc["activeInstance"]
    );
    assert!(
        migrated.changes().any(|c| c.starts_with(
            "/activeInstance: kept as /typescriptChecklist/activeInstance (it names no template"
        )),
        "{:?}",
        migrated.steps
    );
    migrated.into_state(state_path()).unwrap();
}

#[test]
fn values_that_cannot_be_converted_are_refused_naming_the_field() {
    for (step, field) in [
        (
            json!({"stepId": "a", "completedAt": "yesterday", "executionTime": 1, "result": "success"}),
            "/completedSteps/0/completedAt",
        ),
        (
            json!({"stepId": "a", "completedAt": "2024-01-01T00:00:00Z", "executionTime": -3, "result": "success"}),
            "/completedSteps/0/executionTime",
        ),
        (
            json!({"stepId": "a", "completedAt": "2024-01-01T00:00:00Z", "executionTime": 1, "result": "done"}),
            "/completedSteps/0/result",
        ),
    ] {
        let doc = json!({"version": "1.0.0", "schemaVersion": "1.0.0", "completedSteps": [step]});
        let err = migrate::migrate(&doc, state_path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(field) && text.contains("TypeScript checklist schema 1.0.0"),
            "{text}"
        );
        assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    }
}
