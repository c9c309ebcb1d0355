//! The `checklist` binary, run as a real process against stores in temp directories.

mod support;

use serde_json::Value;

use support::{checklist, code, json, ok, stderr};

/// init → start → step complete → verify on a fresh store of `backend`.
fn tour(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", backend]);
    ok(root, &["start", "--template", "t"]);
    ok(root, &["step", "complete", "s1"]);
    ok(root, &["verify"]);
    dir
}

#[test]
fn the_tour_works_with_yaml_and_json() {
    for (backend, file) in [("yaml", "state.yaml"), ("json", "state.json")] {
        let dir = tour(backend);
        let root = dir.path();
        assert!(root.join(".checklist").join(file).is_file());
        let status = json(root, &["status"]);
        assert_eq!(status["revision"], 3);
        assert_eq!(status["store"]["backend"], backend);
        assert_eq!(status["activeInstance"]["templateId"], "t");
        assert_eq!(status["completedSteps"][0]["stepId"], "s1");
        assert_eq!(status["integrity"], "ok");
        assert!(status["lock"]["holder"].is_null());
    }
}

#[test]
fn every_change_reports_its_revision_and_step_details_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let init = json(root, &["init"]);
    assert_eq!(init["init"]["outcome"], "created");
    assert_eq!(init["init"]["revision"], 1);
    let started = json(
        root,
        &[
            "start",
            "--template",
            "deploy",
            "--template-version",
            "2.0.0",
            "--step",
            "build",
        ],
    );
    assert_eq!(started["revision"], 2);
    assert_eq!(started["instance"]["currentStepId"], "build");
    let done = json(
        root,
        &[
            "step",
            "complete",
            "build",
            "--result",
            "failure",
            "--duration-ms",
            "1500",
            "--command",
            "make",
            "--exit-code",
            "-2",
            "--stdout",
            "line 1\nline 2",
            "--stderr",
            "boom",
        ],
    );
    assert_eq!(done["revision"], 3);
    assert_eq!(done["step"]["result"], "failure");
    let current = json(root, &["step", "current", "test"]);
    assert_eq!(current["revision"], 4);
    // Each change is one audited transaction under the id it reported.
    let audit = json(root, &["audit"]);
    let commits: Vec<_> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "commit")
        .map(|r| (r["txId"].clone(), r["revisionAfter"].clone()))
        .collect();
    assert!(
        commits.contains(&(current["txId"].clone(), current["revision"].clone())),
        "{audit}"
    );
    assert!(
        commits.contains(&(started["txId"].clone(), started["revision"].clone())),
        "{audit}"
    );
    let status = json(root, &["status"]);
    let step = &status["completedSteps"][0];
    assert_eq!(step["executionTime"], 1500);
    assert_eq!(step["commandResults"][0]["exitCode"], -2);
    assert_eq!(step["commandResults"][0]["stdout"], "line 1\nline 2");
    assert_eq!(status["activeInstance"]["currentStepId"], "test");
    // A failed step can be completed again; a successful one cannot.
    ok(root, &["step", "complete", "build"]);
    let again = checklist(root, &["step", "complete", "build"]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("already completed"), "{}", stderr(&again));
    assert_eq!(json(root, &["status"])["revision"], 5);
}

#[test]
fn init_keeps_an_existing_store_and_says_so() {
    let dir = tour("yaml");
    let root = dir.path();
    let before = std::fs::read(root.join(".checklist/state.yaml")).unwrap();
    let out = ok(root, &["init", "--backend", "json"]);
    assert!(out.contains("already exists") && out.contains("kept it"), "{out}");
    assert!(out.contains("not json"), "{out}");
    assert_eq!(std::fs::read(root.join(".checklist/state.yaml")).unwrap(), before);
    assert_eq!(json(root, &["init"])["init"]["outcome"], "already_initialized");
}

#[test]
fn init_creates_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    let store = root.join(".checklist");
    for d in [".locks", ".cache", ".backup", "archive", "quarantine"] {
        assert!(store.join(d).is_dir(), "{d} missing");
    }
    for f in [
        "config.yaml",
        "history.yaml",
        "metrics.yaml",
        ".backup/manifest.yaml",
        "state.yaml",
    ] {
        assert!(store.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(store.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("state.yaml"), 0o600);
        // Metadata files are 0644 and directories 0755 before the umask: never
        // writable by others.
        assert_eq!(mode("config.yaml") & 0o600, 0o600);
        assert_eq!(mode("config.yaml") & 0o022, 0);
        assert_eq!(mode("archive") & 0o700, 0o700);
        assert_eq!(mode("archive") & 0o022, 0);
    }
    // --force repairs a missing piece without touching the state.
    std::fs::remove_dir(store.join("quarantine")).unwrap();
    std::fs::remove_file(store.join("metrics.yaml")).unwrap();
    let state = std::fs::read(store.join("state.yaml")).unwrap();
    let repaired = json(root, &["init", "--force"]);
    assert_eq!(repaired["init"]["outcome"], "repaired");
    assert_eq!(repaired["init"]["created"].as_array().unwrap().len(), 2);
    assert!(store.join("quarantine").is_dir() && store.join("metrics.yaml").is_file());
    assert_eq!(std::fs::read(store.join("state.yaml")).unwrap(), state);
}

#[test]
fn init_in_a_path_that_is_not_a_directory_names_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = checklist(&file, &["init"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains(file.to_str().unwrap()), "{}", stderr(&out));
    let missing = dir.path().join("missing");
    let out = checklist(&missing, &["init"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
}

fn corrupt_and_verify(backend: &str, file: &str, edit: impl Fn(&mut Vec<u8>), kind: &str) {
    let dir = tour(backend);
    let root = dir.path();
    let path = root.join(".checklist").join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let out = checklist(root, &["verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains(kind), "{message}");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    let out = checklist(root, &["--json", "verify"]);
    assert_eq!(code(&out), 5);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["corruptionKind"], kind);
    assert_eq!(doc["error"]["path"], path.to_str().unwrap());
    // verify changes nothing.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // And a change is refused rather than built on a corrupt state.
    assert_eq!(code(&checklist(root, &["step", "complete", "s9"])), 5);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

fn flip_in(needle: &'static str) -> impl Fn(&mut Vec<u8>) {
    move |bytes| {
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        bytes[at + needle.len() - 1] ^= 0x01;
    }
}

#[test]
fn a_flipped_byte_is_a_checksum_mismatch() {
    corrupt_and_verify("yaml", "state.yaml", flip_in("stepId: s1"), "checksum_mismatch");
    corrupt_and_verify(
        "json",
        "state.json",
        flip_in("\"stepId\": \"s1"),
        "checksum_mismatch",
    );
}

#[test]
fn a_truncation_is_a_parse_error_or_schema_error() {
    corrupt_and_verify("json", "state.json", |b| b.truncate(b.len() / 2), "parse_error");
    corrupt_and_verify("yaml", "state.yaml", |b| b.truncate(0), "parse_error");
    // YAML cut at a line end still parses, as a document missing its tail.
    corrupt_and_verify(
        "yaml",
        "state.yaml",
        |b| {
            let cut = b.iter().position(|&c| c == b'\n').unwrap() + 1;
            b.truncate(cut);
        },
        "schema_invalid",
    );
}

#[test]
fn a_schema_breaking_edit_is_schema_invalid() {
    let edit = |from: &'static str, to: &'static str| {
        move |b: &mut Vec<u8>| {
            *b = String::from_utf8(b.clone())
                .unwrap()
                .replacen(from, to, 1)
                .into_bytes()
        }
    };
    corrupt_and_verify(
        "yaml",
        "state.yaml",
        edit("status: active", "status: exploded"),
        "schema_invalid",
    );
    corrupt_and_verify(
        "json",
        "state.json",
        edit("\"revision\": 3", "\"revision\": \"three\""),
        "schema_invalid",
    );
}

#[test]
fn documented_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("checklist init"), "{}", stderr(&out));
    assert_eq!(code(&checklist(root, &["no-such-command"])), 2);
    assert_eq!(code(&checklist(root, &["step", "complete"])), 2);
    assert_eq!(code(&checklist(root, &["--help"])), 0);
    ok(root, &["init"]);
    // A step without an instance: a clear sentence, exit 1.
    let out = checklist(root, &["step", "complete", "s1"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no active instance"), "{}", stderr(&out));
    // A document from a newer major version: exit 8, file untouched.
    let path = root.join(".checklist/state.yaml");
    let newer = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"1.0.0\"", "\"2.0.0\"");
    std::fs::write(&path, &newer).unwrap();
    let out = checklist(root, &["verify"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(stderr(&out).contains("2.0.0"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
}

#[test]
fn config_errors_name_the_field_and_unknown_backends_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    let config = root.join(".checklist/config.yaml");
    std::fs::write(&config, "lock:\n  timeoutMs: -5\n").unwrap();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("/lock/timeoutMs") && stderr(&out).contains("config.yaml"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&config, "backend:\n  type: sqlite\n").unwrap();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("json, memory, yaml"), "{}", stderr(&out));
    std::fs::remove_file(&config).unwrap();
    assert_eq!(
        json(root, &["status"])["store"]["backend"],
        "yaml",
        "a missing config means the defaults"
    );
}

#[test]
fn export_writes_the_verified_state_in_either_format() {
    let dir = tour("yaml");
    let root = dir.path();
    let status = json(root, &["status"]);
    let exported: Value = serde_json::from_str(&ok(root, &["export", "--format", "json"])).unwrap();
    assert_eq!(exported["checksum"], status["checksum"]);
    assert_eq!(exported["revision"], 3);
    let out_file = root.join("export.yaml");
    let report = json(root, &["export", "--output", out_file.to_str().unwrap()]);
    assert_eq!(report["format"], "yaml");
    let on_disk = std::fs::read(root.join(".checklist/state.yaml")).unwrap();
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        on_disk,
        "a YAML export of a YAML store is the file itself"
    );
}
