//! `checklist archive` and `checklist init --from`, with the real binary.

use std::fs;

use crate::support::{checklist, code, json, ok, stderr};

#[test]
fn archive_moves_a_finished_instance_out_of_the_state_and_indexes_it() {
    for (backend, extension) in [("yaml", "yaml"), ("json", "json")] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        ok(root, &["init", "--backend", backend]);
        let started = json(root, &["start", "--template", "release"]);
        let id = started["instance"]["id"].as_str().unwrap().to_owned();
        ok(root, &["step", "complete", "build"]);
        ok(root, &["step", "complete", "test"]);

        let refused = checklist(root, &["archive"]);
        assert_eq!(code(&refused), 1, "{}", stderr(&refused));
        assert!(
            stderr(&refused).contains("--as completed"),
            "{}",
            stderr(&refused)
        );

        let archived = json(root, &["archive", "--as", "completed"]);
        assert_eq!(archived["archived"]["instanceId"], id.as_str());
        assert_eq!(archived["archived"]["steps"], 2);
        assert_eq!(archived["archived"]["status"], "completed");
        assert_eq!(archived["revision"], 5);
        assert!(archived["txId"].is_string());

        let file = root.join(".checklist/archive").join(format!("{id}.{extension}"));
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("sha256:"), "the archive is sealed: {text}");
        let status = json(root, &["status"]);
        assert!(status["activeInstance"].is_null(), "{status}");
        assert_eq!(status["completedSteps"].as_array().unwrap().len(), 0);
        ok(root, &["verify"]);

        let history = fs::read_to_string(root.join(".checklist/history.yaml")).unwrap();
        assert!(history.contains(&id), "{history}");
        let listed = json(root, &["archive", "--list"]);
        assert_eq!(listed["instances"].as_array().unwrap().len(), 1);
        assert_eq!(
            listed["instances"][0]["checksum"],
            archived["archived"]["checksum"]
        );
        // The archived instance reads back verified, and an unknown id says where to look.
        let shown = json(root, &["archive", "--show", &id]);
        assert_eq!(
            shown["archived"]["instance"]["id"],
            serde_json::Value::from(id.as_str()),
            "{shown}"
        );
        assert_eq!(shown["archived"]["instance"]["status"], "completed", "{shown}");
        let unknown = checklist(root, &["archive", "--show", "never-archived"]);
        assert_eq!(code(&unknown), 1, "{}", stderr(&unknown));
        assert!(
            stderr(&unknown).contains("never-archived")
                && stderr(&unknown).contains("checklist archive --list"),
            "{}",
            stderr(&unknown)
        );

        // Nothing left to archive; the next instance can start.
        let again = checklist(root, &["archive", "--as", "failed"]);
        assert_eq!(code(&again), 1, "{}", stderr(&again));
        assert!(
            stderr(&again).contains("no instance to archive"),
            "{}",
            stderr(&again)
        );
        ok(root, &["start", "--template", "release"]);
        let audit = json(root, &["audit"]);
        let operations = audit["records"].to_string();
        assert!(
            operations.contains("\"archive\""),
            "the archive is audited: {operations}"
        );
    }
}

#[test]
fn an_instance_id_that_cannot_be_a_file_name_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", "json"]);
    ok(root, &["start", "--template", "release"]);
    // A hostile hand edit, sealed so that it verifies: the instance id is a path.
    let state_path = root.join(".checklist/state.json");
    let mut value: serde_json::Value = serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    value["activeInstance"]["id"] = "../../escaped".into();
    value["activeInstance"]["status"] = "completed".into();
    let edited: checklist_core::ChecklistState = serde_json::from_value(value).unwrap();
    let sealed = checklist_core::document::seal(&edited, edited.revision, &state_path).unwrap();
    fs::write(&state_path, serde_json::to_vec_pretty(&sealed.value).unwrap()).unwrap();
    ok(root, &["verify"]);
    let before = fs::read(&state_path).unwrap();

    let out = checklist(root, &["archive"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot name a file"), "{}", stderr(&out));
    assert_eq!(fs::read(&state_path).unwrap(), before, "the state is unchanged");
    assert!(!root.join("escaped.json").exists() && !root.join(".checklist/escaped.json").exists());
    let archive_dir = root.join(".checklist/archive");
    let archived = fs::read_dir(&archive_dir).map_or(0, |d| d.count());
    assert_eq!(archived, 0, "nothing was archived");
}

#[test]
fn an_export_reimports_into_a_new_store_in_either_format() {
    let source = tempfile::tempdir().unwrap();
    ok(source.path(), &["init"]);
    ok(
        source.path(),
        &["start", "--template", "release", "--step", "build"],
    );
    ok(
        source.path(),
        &[
            "step",
            "complete",
            "build",
            "--command",
            "cargo build",
            "--exit-code",
            "0",
            "--stdout",
            "ok",
        ],
    );
    let original = json(source.path(), &["status"]);
    for format in ["yaml", "json"] {
        let export = source.path().join(format!("export.{format}"));
        ok(
            source.path(),
            &["export", "--format", format, "--output", export.to_str().unwrap()],
        );
        let target = tempfile::tempdir().unwrap();
        let init = json(target.path(), &["init", "--from", export.to_str().unwrap()]);
        assert_eq!(
            init["init"]["revision"], 1,
            "an import starts the new store's history"
        );
        let imported = json(target.path(), &["status"]);
        assert_eq!(imported["activeInstance"], original["activeInstance"]);
        assert_eq!(imported["completedSteps"], original["completedSteps"]);
        ok(target.path(), &["verify"]);
        ok(target.path(), &["step", "complete", "test"]);

        // Into a store that has a state: refused, nothing changes.
        let state = target.path().join(".checklist/state.yaml");
        let before = fs::read(&state).unwrap();
        let out = checklist(target.path(), &["init", "--from", export.to_str().unwrap()]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("only creates a new store"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(&state).unwrap(), before);
    }
}

#[test]
fn a_damaged_export_is_refused_and_no_store_is_created() {
    let source = tempfile::tempdir().unwrap();
    ok(source.path(), &["init"]);
    ok(source.path(), &["start", "--template", "release"]);
    let export = source.path().join("export.yaml");
    ok(source.path(), &["export", "--output", export.to_str().unwrap()]);
    let text = fs::read_to_string(&export).unwrap();
    fs::write(&export, text.replace("release", "relaese")).unwrap();

    let target = tempfile::tempdir().unwrap();
    let out = checklist(target.path(), &["init", "--from", export.to_str().unwrap()]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("export.yaml"), "{}", stderr(&out));
    // No store is involved: advice to recover or reseal one would be wrong.
    assert!(stderr(&out).contains("checklist export"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("checklist recover"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("checklist reseal"), "{}", stderr(&out));
    assert!(!target.path().join(".checklist").exists(), "no store was created");

    let missing = checklist(target.path(), &["init", "--from", "no-such-export.yaml"]);
    assert_eq!(code(&missing), 1, "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("no-such-export.yaml"),
        "{}",
        stderr(&missing)
    );
}
