//! The `checklist` binary, run as a real process against stores in temp directories.

use std::path::Path;

use serde_json::Value;

use crate::support::{checklist, code, commits, json, ok, stderr};

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

#[cfg(feature = "sqlite")]
#[test]
fn the_tour_works_with_sqlite() {
    let dir = tour("sqlite");
    let root = dir.path();
    let db = root.join(".checklist/state.db");
    assert!(db.is_file());
    assert!(!root.join(".checklist/state.yaml").exists());
    let config = std::fs::read_to_string(root.join(".checklist/config.yaml")).unwrap();
    assert!(config.contains("type: sqlite"), "{config}");
    let status = json(root, &["status"]);
    assert_eq!(status["revision"], 3);
    assert_eq!(status["store"]["backend"], "sqlite");
    assert_eq!(status["completedSteps"][0]["stepId"], "s1");
    // SQLite's quick_check of the whole database runs when a connection opens it, so a
    // verify that passes checked every page, not only the document's.
    let verified = json(root, &["verify"]);
    assert_eq!(verified["path"], db.to_str().unwrap());
    // Commit backups are JSON state files beside the database, listed by it.
    let backups = json(root, &["backup", "list"]);
    let listed = backups["backups"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{backups}");
    for backup in listed {
        let file = root
            .join(".checklist/.backup")
            .join(backup["file"].as_str().unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with('{'), "{text}");
    }
    // The export is the same document, whatever the backend.
    let exported = ok(root, &["export"]);
    assert!(exported.contains("stepId: s1"), "{exported}");
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
    let commits = commits(&audit);
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
    // With automatic recovery off, a change is refused rather than built on a corrupt
    // state, and the message says what to run.
    set_auto_recovery(root, false);
    let refused = checklist(root, &["step", "complete", "s9"]);
    assert_eq!(code(&refused), 5);
    assert!(
        stderr(&refused).contains("checklist recover"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(quarantined(root).is_empty());
    // With it on (the default), the change recovers first and says so in one line.
    set_auto_recovery(root, true);
    let recovered = checklist(root, &["step", "complete", "s9"]);
    assert_eq!(code(&recovered), 0, "{}", stderr(&recovered));
    let said = stderr(&recovered);
    assert_eq!(
        said.lines().filter(|l| l.starts_with("recovered:")).count(),
        1,
        "{said}"
    );
    assert!(said.contains(kind) && said.contains("quarantine"), "{said}");
    assert_eq!(quarantined(root), [bytes.clone()]);
    // `checklist quarantine` lists it with why, and shows its exact bytes.
    let listed = json(root, &["quarantine", "list"]);
    let records = listed["quarantine"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{listed}");
    assert_eq!(records[0]["note"]["corruptionType"], kind, "{listed}");
    let id = records[0]["id"].as_str().unwrap();
    let shown = checklist(root, &["quarantine", "show", id]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert_eq!(shown.stdout, bytes);
    let unknown = checklist(root, &["quarantine", "show", "0-19700101T000000000Z"]);
    assert_eq!(code(&unknown), 1);
    assert!(
        stderr(&unknown).contains("checklist quarantine list"),
        "{}",
        stderr(&unknown)
    );
    // The newest backup is revision 2 (before s1): s1 is lost, and the line says so.
    assert!(said.contains("data loss"), "{said}");
    let status = json(root, &["status"]);
    let steps: Vec<_> = status["completedSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepId"].clone())
        .collect();
    assert_eq!(steps, [Value::from("s9")]);
    let again = checklist(root, &["status"]);
    assert!(!stderr(&again).contains("recovered"), "{}", stderr(&again));
}

fn set_auto_recovery(root: &Path, on: bool) {
    let config = root.join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let (from, to) = if on {
        ("auto: false", "auto: true")
    } else {
        ("auto: true", "auto: false")
    };
    assert!(text.contains(from), "{text}");
    std::fs::write(&config, text.replacen(from, to, 1)).unwrap();
}

/// The bytes of every quarantined state file, oldest first (notes left out).
fn quarantined(root: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(".checklist/quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".why.yaml"))
        .collect();
    names.sort();
    names.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
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

/// Damage to `state.db` itself: what is quarantined is the whole file.
#[cfg(feature = "sqlite")]
#[test]
fn a_damaged_sqlite_database_is_a_parse_error_and_is_recovered() {
    corrupt_and_verify("sqlite", "state.db", |b| b.truncate(b.len() / 2), "parse_error");
    corrupt_and_verify(
        "sqlite",
        "state.db",
        |b| *b = b"not a database at all\n".repeat(40),
        "parse_error",
    );
}

/// Damage inside the document's bytes in `state.db`: SQLite reads the row, the
/// checksum refuses it, and recovery quarantines just the document.
#[cfg(feature = "sqlite")]
#[test]
fn a_flipped_byte_in_the_sqlite_document_is_a_checksum_mismatch() {
    let dir = tour("sqlite");
    let root = dir.path();
    let db = root.join(".checklist/state.db");
    let mut bytes = std::fs::read(&db).unwrap();
    flip_in("\"stepId\": \"s1")(&mut bytes);
    std::fs::write(&db, &bytes).unwrap();
    let out = checklist(root, &["verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("checksum_mismatch") && stderr(&out).contains("state.db"));
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "verify changes nothing");
    let recovered = checklist(root, &["recover"]);
    assert_eq!(code(&recovered), 0, "{}", stderr(&recovered));
    let kept = quarantined(root);
    assert_eq!(kept.len(), 1);
    let text = String::from_utf8(kept[0].clone()).unwrap();
    assert!(
        text.contains("\"stepId\": \"s0"),
        "the damaged document is kept: {text}"
    );
    let status = json(root, &["status"]);
    assert_eq!(status["completedSteps"].as_array().unwrap().len(), 0);
    ok(root, &["verify"]);
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
    std::fs::write(&config, "backend:\n  type: etcd\n").unwrap();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 1);
    let registered = match (cfg!(feature = "postgres"), cfg!(feature = "sqlite")) {
        (true, true) => "json, memory, postgres, sqlite, yaml",
        (false, true) => "json, memory, sqlite, yaml",
        (true, false) => "json, memory, postgres, yaml",
        (false, false) => "json, memory, yaml",
    };
    assert!(stderr(&out).contains(registered), "{}", stderr(&out));
    std::fs::write(&config, "backend:\n  type: postgres\n").unwrap();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 1);
    if cfg!(feature = "postgres") {
        assert!(
            stderr(&out).contains("/backend/key") && stderr(&out).contains("--key KEY"),
            "a postgres store without its key says so: {}",
            stderr(&out)
        );
    }
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
    // The schema line points editors at .checklist/schemas/, relative to the state
    // file; an export lives anywhere, so it has none (docs/file-formats.md).
    let line = checklist_backends::STATE_SCHEMA_LINE.as_bytes();
    assert_eq!(&on_disk[..line.len()], line);
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        &on_disk[line.len()..],
        "a YAML export of a YAML store is the file itself, without the schema line"
    );
}

/// Every file under `.checklist/.backup` and `.checklist/quarantine` with its bytes.
fn backup_and_quarantine_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in [".backup", "quarantine"] {
        for entry in std::fs::read_dir(root.join(".checklist").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

fn backup_ids(root: &Path) -> Vec<String> {
    json(root, &["backup", "list"])["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn with_every_backup_corrupt_recovery_is_a_clear_error_and_nothing_is_deleted() {
    let dir = tour("yaml");
    let root = dir.path();
    let state = root.join(".checklist/state.yaml");
    let listed = json(root, &["backup", "list"]);
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{listed}");
    for b in backups {
        let path = root.join(".checklist/.backup").join(b["file"].as_str().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&path, bytes).unwrap();
    }
    std::fs::write(&state, b"schemaVersion: [broken").unwrap();
    let before = backup_and_quarantine_files(root);
    for args in [&["status"][..], &["step", "complete", "s2"], &["recover"]] {
        let out = checklist(root, args);
        assert_eq!(code(&out), 5, "{args:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains(state.to_str().unwrap()), "{message}");
        assert!(message.contains("none of its 2 backups verifies"), "{message}");
        assert!(message.contains("checklist recover --reset"), "{message}");
        assert_eq!(std::fs::read(&state).unwrap(), b"schemaVersion: [broken");
        assert_eq!(
            backup_and_quarantine_files(root),
            before,
            "nothing may change or go"
        );
    }
    // --reset starts again, records the loss, and still deletes nothing.
    let reset = json(root, &["recover", "--reset"]);
    assert_eq!(reset["recovery"]["method"], "reset");
    assert_eq!(reset["recovery"]["dataLoss"], true);
    let exported: Value = serde_json::from_str(&ok(root, &["export", "--format", "json"])).unwrap();
    assert_eq!(exported["recovery"]["recoveryMethod"], "reset");
    assert_eq!(exported["recovery"]["dataLoss"], true);
    assert_eq!(exported["recovery"]["corruptionType"], "parse_error");
    assert!(exported["activeInstance"].is_null());
    assert!(exported["revision"].as_u64().unwrap() > 3, "{exported}");
    assert_eq!(quarantined(root), [b"schemaVersion: [broken".to_vec()]);
    let after = backup_and_quarantine_files(root);
    for (path, bytes) in &before {
        assert!(
            after.contains(&(path.clone(), bytes.clone())),
            "{path} changed or went"
        );
    }
    ok(root, &["verify"]);
}

#[test]
fn backup_list_create_restore_and_prune() {
    let dir = tour("json");
    let root = dir.path();
    assert_eq!(backup_ids(root).len(), 2);
    let created = json(root, &["backup", "create"]);
    assert_eq!(created["backup"]["revision"], 3);
    assert_eq!(created["backup"]["reason"], "manual");
    let ids = backup_ids(root);
    assert_eq!(ids.len(), 3);
    assert!(ok(root, &["backup", "list"]).contains(&ids[0]));

    // Restore the first revision (the empty state init wrote).
    let restored = json(root, &["backup", "restore", &ids[0]]);
    assert_eq!(restored["revision"], 4);
    assert_eq!(restored["restore"]["backup"]["revision"], 1);
    assert_eq!(restored["restore"]["replaced"]["revision"], 3);
    let status = json(root, &["status"]);
    assert_eq!(status["revision"], 4);
    assert!(status["activeInstance"].is_null());
    let audit = json(root, &["audit"]);
    let events: Vec<_> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].clone())
        .collect();
    assert!(
        events.contains(&Value::from("restore")) && events.contains(&Value::from("backup")),
        "{audit}"
    );

    // Prune to the policy's 3.
    assert_eq!(backup_ids(root).len(), 4);
    let pruned = json(root, &["backup", "prune"]);
    assert_eq!(pruned["deleted"].as_array().unwrap().len(), 1, "{pruned}");
    assert_eq!(backup_ids(root).len(), 3);

    // Ids from the user never become paths.
    for bad in ["../state.json", "a/b", "..", &"7".repeat(300)] {
        let out = checklist(root, &["backup", "restore", bad]);
        assert_eq!(code(&out), 1, "{bad}");
        assert!(stderr(&out).contains("is not a backup id"), "{}", stderr(&out));
    }
    let out = checklist(root, &["backup", "restore", "1-20000101T000000000Z"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("backup list"), "{}", stderr(&out));

    // A lost index is rebuilt from the files.
    let before = backup_ids(root);
    std::fs::remove_file(root.join(".checklist/.backup/manifest.yaml")).unwrap();
    assert!(backup_ids(root).is_empty());
    let rebuilt = json(root, &["backup", "list", "--rebuild"]);
    let mut ids: Vec<_> = rebuilt["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = before.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(backup_ids(root), before);
}

#[test]
fn prune_never_deletes_the_only_backup_that_verifies() {
    let dir = tour("yaml");
    let root = dir.path();
    ok(root, &["step", "complete", "s2"]);
    // Backups of revisions 1, 2 and 3; keep only one from now on.
    let config = root.join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("keep: 3", "keep: 1", 1)).unwrap();
    let listed = json(root, &["backup", "list"]);
    let backups = listed["backups"].as_array().unwrap().clone();
    assert_eq!(backups.len(), 3);
    // The newest backup is damaged: the one the policy would keep.
    let newest = root
        .join(".checklist/.backup")
        .join(backups[2]["file"].as_str().unwrap());
    std::fs::write(&newest, b"damaged").unwrap();
    let pruned = json(root, &["backup", "prune"]);
    assert_eq!(
        pruned["spared"],
        serde_json::json!([backups[1]["id"]]),
        "{pruned}"
    );
    assert_eq!(
        pruned["deleted"],
        serde_json::json!([backups[0]["id"]]),
        "{pruned}"
    );
    assert!(newest.exists());
    let file = |b: &Value| root.join(".checklist/.backup").join(b["file"].as_str().unwrap());
    assert!(file(&backups[1]).exists() && !file(&backups[0]).exists());
}

#[test]
fn recover_from_a_named_backup() {
    let dir = tour("yaml");
    let root = dir.path();
    let ids = backup_ids(root);
    set_auto_recovery(root, false);
    let state = root.join(".checklist/state.yaml");
    std::fs::write(&state, b"").unwrap();
    assert_eq!(code(&checklist(root, &["status"])), 5);
    let out = checklist(root, &["recover", "--from", "../../etc/passwd"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is not a backup id"), "{}", stderr(&out));
    let report = json(root, &["recover", "--from", &ids[0]]);
    assert_eq!(report["recovery"]["backup"]["id"], ids[0].as_str());
    assert_eq!(report["recovery"]["method"], "backup");
    assert_eq!(report["recovery"]["dataLoss"], true);
    assert_eq!(report["recovery"]["corruptionType"], "parse_error");
    let status = json(root, &["status"]);
    assert!(status["activeInstance"].is_null(), "revision 1 had no instance");
    assert_eq!(status["revision"], report["revision"]);
    assert_eq!(json(root, &["recover"])["recovered"], false);
    let audit = json(root, &["audit"]);
    let recoveries: Vec<_> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "recovery")
        .collect();
    assert_eq!(recoveries.len(), 1, "{audit}");
    assert_eq!(recoveries[0]["dataLoss"], true);
    assert_eq!(quarantined(root), [Vec::<u8>::new()]);
}

#[test]
fn reseal_accepts_a_checksum_only_edit_and_refuses_a_schema_violation() {
    let dir = tour("yaml");
    let root = dir.path();
    let state = root.join(".checklist/state.yaml");
    let edited = std::fs::read_to_string(&state)
        .unwrap()
        .replacen("stepId: s1", "stepId: s1-by-hand", 1);
    std::fs::write(&state, &edited).unwrap();
    assert_eq!(code(&checklist(root, &["verify"])), 5);
    let resealed = json(root, &["reseal"]);
    assert_eq!(resealed["resealed"], true);
    assert_eq!(resealed["revision"], 4);
    ok(root, &["verify"]);
    let status = json(root, &["status"]);
    assert_eq!(status["completedSteps"][0]["stepId"], "s1-by-hand");
    assert_eq!(quarantined(root), [edited.into_bytes()]);
    let audit = json(root, &["audit"]);
    let last = audit["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "recovery");
    assert_eq!(last["recoveryMethod"], "manual");
    assert!(
        last["operations"][0].as_str().unwrap().contains("reseal"),
        "{last}"
    );
    assert_eq!(json(root, &["reseal"])["resealed"], false);

    let broken = std::fs::read_to_string(&state)
        .unwrap()
        .replacen("status: active", "status: exploded", 1);
    std::fs::write(&state, &broken).unwrap();
    let out = checklist(root, &["reseal"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("reseal only accepts"), "{}", stderr(&out));
    assert!(stderr(&out).contains(state.to_str().unwrap()), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), broken);
}

#[test]
fn counts_in_messages_are_singular_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "release", "--step", "build"]);
    let listed = ok(root, &["backup", "list"]);
    assert!(listed.contains("1 backup of"), "{listed}");
    ok(root, &["backup", "create"]);
    let listed = ok(root, &["backup", "list"]);
    assert!(listed.contains("2 backups of"), "{listed}");
}
