//! `backend.type` changed by hand in config.yaml while the old backend's state is still
//! in `.checklist/` (issue 16, item 2), through the real binary.
//!
//! Before, every command said "no checklist store … run `checklist init` first" or,
//! since the stores of one directory share the audit trail and the backup manifest,
//! that the state was lost, advising `checklist recover --reset` — which would have
//! started an empty state beside the real one. Now every command refuses with exit 9,
//! one sentence naming config.yaml, both backends and where the state is, and writes
//! nothing; putting the old name back brings the store back as it was.

use std::path::Path;

use crate::backend_migrate::set_backend;
use crate::support::{checklist, code, json, ok, snapshot, stderr, store_with_an_archived_instance};

/// The commands a stuck user tries, the dangerous ones included.
const COMMANDS: [&[&str]; 10] = [
    &["status"],
    &["verify"],
    &["backup", "list"],
    &["audit"],
    &["step", "complete", "s2"],
    &["init"],
    &["init", "--force"],
    &["recover"],
    &["recover", "--reset"],
    &["backup", "create"],
];

/// A store of `backend` at revision 4 with backups, an audit trail and an archive.
fn store_of(backend: &str) -> tempfile::TempDir {
    let root = store_with_an_archived_instance(backend);
    assert_eq!(json(root.path(), &["verify"])["revision"], 5);
    root
}

fn assert_every_command_refuses(root: &Path, configured: &str, found: &str, state_file: &str) {
    let before = snapshot(&root.join(".checklist"));
    for args in COMMANDS {
        let out = checklist(root, args);
        let err = stderr(&out);
        assert_eq!(code(&out), 9, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one sentence: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
        for needle in [
            "config.yaml".to_owned(),
            format!("the {configured} backend"),
            format!("the {found} backend's state"),
            state_file.to_owned(),
            "(revision 5)".to_owned(),
            format!("`type: {found}`"),
            "nothing was changed".to_owned(),
        ] {
            assert!(err.contains(&needle), "{args:?}: say {needle:?}: {err}");
        }
        assert!(
            !err.contains("checklist init") && !err.contains("--reset"),
            "{args:?}: {err}"
        );
        assert_eq!(
            snapshot(&root.join(".checklist")),
            before,
            "{args:?} changed the store"
        );
    }
    // --json gets the same error as a document, with its kind.
    let out = checklist(root, &["--json", "status"]);
    assert_eq!(code(&out), 9);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(text.contains("backend_changed"), "{text}");
}

#[test]
fn a_yaml_store_whose_config_says_json_is_refused_until_it_says_yaml_again() {
    let root = store_of("yaml");
    let root = root.path();
    let audit_before = json(root, &["audit"]);
    set_backend(root, "yaml", "json");
    assert_every_command_refuses(root, "json", "yaml", "state.yaml");
    set_backend(root, "json", "yaml");
    assert_eq!(json(root, &["verify"])["revision"], 5);
    assert_eq!(json(root, &["audit"]), audit_before, "the trail is as it was");
    ok(root, &["step", "complete", "s1"]);
    assert_eq!(
        json(root, &["backup", "list"])["backups"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_sqlite_store_whose_config_says_yaml_and_the_other_way_round_are_refused() {
    let root = store_of("sqlite");
    let root = root.path();
    set_backend(root, "sqlite", "yaml");
    assert_every_command_refuses(root, "yaml", "sqlite", "state.db");
    set_backend(root, "yaml", "sqlite");
    assert_eq!(json(root, &["verify"])["revision"], 5);

    let root = store_of("yaml");
    let root = root.path();
    set_backend(root, "yaml", "sqlite");
    assert_every_command_refuses(root, "sqlite", "yaml", "state.yaml");
    assert!(
        !root.join(".checklist/state.db").exists(),
        "no database was created"
    );
}

/// Where the configured backend holds a state of its own, another backend's state file
/// beside it is not refused: each backend reads its own.
#[test]
fn a_state_of_the_configured_backend_beside_another_is_used() {
    let root = store_of("yaml");
    let root = root.path();
    let other = tempfile::tempdir().unwrap();
    ok(other.path(), &["init", "--backend", "json"]);
    ok(other.path(), &["start", "--template", "json-only"]);
    std::fs::copy(
        other.path().join(".checklist/state.json"),
        root.join(".checklist/state.json"),
    )
    .unwrap();
    assert_eq!(json(root, &["verify"])["revision"], 5);
    set_backend(root, "yaml", "json");
    let status = json(root, &["status"]);
    assert_eq!(status["revision"], 2, "{status}");
}
