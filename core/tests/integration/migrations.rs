//! The golden fixtures of `schemas/fixtures/`: every historical version migrates to
//! the current one, exactly as its `.migrated.yaml` says, and the result verifies.

use std::path::{Path, PathBuf};

use checklist_core::model::CURRENT_SCHEMA_VERSION;
use checklist_core::{ChecklistState, Error, document, migrate};
use proptest::prelude::*;
use serde_json::Value;

/// The historical versions with a golden fixture, and the steps each goes through.
const HISTORICAL: &[(&str, &[&str])] = &[("0.8.0", &["0.9.0", "1.0.0"]), ("0.9.0", &["1.0.0"])];

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

#[test]
fn every_historical_fixture_migrates_to_its_golden_result() {
    for (version, chain) in HISTORICAL {
        let old = fixture(&format!("state-{version}.yaml"));
        let expected = fixture(&format!("state-{version}.migrated.yaml"));
        let migrated = migrate::migrate(&old, state_path()).unwrap();
        assert_eq!(migrated.from, *version);
        assert_eq!(migrated.to, CURRENT_SCHEMA_VERSION);
        let reached: Vec<&str> = migrated.steps.iter().map(|s| s.to.as_str()).collect();
        assert_eq!(reached, *chain, "{version}");
        assert_eq!(
            migrated.value,
            expected,
            "{version} migrated to\n{}",
            serde_json::to_string_pretty(&migrated.value).unwrap()
        );
        assert!(migrated.steps.iter().all(|s| !s.changes.is_empty()), "{version}");
    }
}

#[test]
fn every_migrated_fixture_seals_and_verifies() {
    for (version, _) in HISTORICAL {
        let old = fixture(&format!("state-{version}.yaml"));
        let migrated = migrate::migrate(&old, state_path()).unwrap();
        let expected_value = migrated.value.clone();
        let state = migrated.into_state(state_path()).unwrap();
        let sealed = document::seal(&state, 1, state_path()).unwrap();
        let back = document::unseal(sealed.value.clone(), state_path()).unwrap();
        assert_eq!(back.revision, 1);
        assert_eq!(back.checksum.as_deref(), Some(sealed.checksum.as_str()));
        assert_eq!(back.schema_version, CURRENT_SCHEMA_VERSION);
        // What was stored reads back as exactly the migrated document, plus what the
        // seal sets (the model's own defaults and timestamp form aside, hence the
        // comparison as typed states).
        let mut expected: ChecklistState = serde_json::from_value(expected_value).unwrap();
        expected.revision = 1;
        expected.checksum = Some(sealed.checksum);
        assert_eq!(back, expected, "{version}");
    }
}

#[test]
fn migrating_a_current_document_changes_nothing() {
    for (version, _) in HISTORICAL {
        let once = migrate::migrate(&fixture(&format!("state-{version}.yaml")), state_path()).unwrap();
        let twice = migrate::migrate(&once.value, state_path()).unwrap();
        assert!(twice.steps.is_empty(), "{version}: {:?}", twice.steps);
        assert_eq!(twice.value, once.value);
        assert_eq!(twice.from, CURRENT_SCHEMA_VERSION);
    }
}

#[test]
fn the_current_fixture_verifies_and_has_nothing_to_migrate() {
    let current = fixture("state-1.0.0.yaml");
    let state = document::unseal(current.clone(), state_path()).unwrap();
    assert_eq!(state.revision, 1);
    let migrated = migrate::migrate(&current, state_path()).unwrap();
    assert!(migrated.steps.is_empty());
    assert_eq!(migrated.value, current);
    // It is the stored form of the 0.9.0 fixture's migration.
    let from_old = migrate::migrate(&fixture("state-0.9.0.yaml"), state_path())
        .unwrap()
        .into_state(state_path())
        .unwrap();
    assert_eq!(document::seal(&from_old, 1, state_path()).unwrap().value, current);
}

#[test]
fn a_newer_major_version_is_refused_and_left_unchanged() {
    let future = fixture("state-2.0.0.yaml");
    let before = future.clone();
    for result in [
        migrate::migrate(&future, state_path()).map(|_| ()),
        migrate::plan(&future, state_path()).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedVersion { found, .. } if found == "2.0.0"),
            "{err}"
        );
        assert!(err.to_string().contains("reads schema 2.x"), "{err}");
    }
    assert_eq!(future, before);
}

#[test]
fn loading_an_old_document_asks_for_checklist_migrate() {
    for (version, _) in HISTORICAL {
        let err = document::unseal(fixture(&format!("state-{version}.yaml")), state_path()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(version) && text.contains("a migration upgrades it"),
            "{text}"
        );
    }
}

fn extra_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 :.-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Fields no version knows (prefixed `x-` so they cannot collide with a known
    /// name) survive every migration at every level, unchanged.
    #[test]
    fn unknown_fields_survive_every_migration(
        fixture_index in 0..HISTORICAL.len(),
        top in extra_value(),
        instance in extra_value(),
        step in extra_value(),
        command in extra_value(),
        key in "x-[a-z]{1,8}",
    ) {
        let (version, _) = HISTORICAL[fixture_index];
        let mut old = fixture(&format!("state-{version}.yaml"));
        let instance_key = if version == "0.8.0" { "instance" } else { "activeInstance" };
        old[&key] = top.clone();
        old[instance_key][&key] = instance.clone();
        old["completedSteps"][0][&key] = step.clone();
        old["completedSteps"][0]["commandResults"][0][&key] = command.clone();

        let migrated = migrate::migrate(&old, state_path()).unwrap();
        prop_assert_eq!(&migrated.value[&key], &top);
        prop_assert_eq!(&migrated.value["activeInstance"][&key], &instance);
        prop_assert_eq!(&migrated.value["completedSteps"][0][&key], &step);
        prop_assert_eq!(&migrated.value["completedSteps"][0]["commandResults"][0][&key], &command);

        // And through the model and the seal, which keep them in `extra`.
        let state = migrated.into_state(state_path()).unwrap();
        let sealed = document::seal(&state, 1, state_path()).unwrap().value;
        prop_assert_eq!(&sealed[&key], &top);
        prop_assert_eq!(&sealed["activeInstance"][&key], &instance);
        prop_assert_eq!(&sealed["completedSteps"][0]["commandResults"][0][&key], &command);
    }
}
