//! State files of the original TypeScript checklist (`schemas/fixtures/typescript-*`),
//! run through the real binary: every command that reads one says who wrote it and to
//! run `checklist migrate` (exit 8), never that it is corrupt; `migrate` and
//! `init --from` import it on the yaml and the json backend
//! (docs/decisions/0018-importing-the-typescript-checklist.md).

use std::path::{Path, PathBuf};

use crate::support::{backup_file, checklist, code, json, ok, stderr};
use checklist_backends::{Codec, YamlCodec};
use serde_json::{Value, json};

/// Every fixture, the version it is imported from, and its completed steps.
const FIXTURES: &[(&str, &str, &[&str])] = &[
    ("typescript-1.0.0-first-use.yaml", "1.0.0", &[]),
    (
        "typescript-1.0.0-metadata.yaml",
        "1.0.0",
        &["install", "test", "test", "changelog"],
    ),
    ("typescript-0.0.0.yaml", "0.0.0", &["build", "test", "lint"]),
    ("typescript-0.1.0.yaml", "0.1.0", &["clone", "database"]),
    (
        "typescript-0.2.0.yaml",
        "0.2.0",
        &["patch", "verify", "reproduce"],
    ),
    (
        "typescript-migrated-1.0.0.yaml",
        "1.0.0",
        &["build", "e2e", "changelog"],
    ),
    (
        "typescript-instances-layer.yaml",
        "1.0.0",
        &["build", "migrate-db", "changelog"],
    ),
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/fixtures")
        .join(name)
}

/// The fixture's bytes for `backend`: as written for yaml; the same document as JSON
/// for json (the original only wrote YAML, but a json store's file is JSON).
fn bytes_for(backend: &str, name: &str) -> Vec<u8> {
    let yaml = std::fs::read(fixture_path(name)).unwrap();
    match backend {
        "json" => {
            let value = YamlCodec.decode(&yaml).unwrap();
            serde_json::to_vec_pretty(&value).unwrap()
        }
        _ => yaml,
    }
}

/// A fresh store of `backend` whose state file then holds `bytes`.
fn store_holding(backend: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--backend", backend]);
    let file = dir.path().join(".checklist").join(format!("state.{backend}"));
    std::fs::write(&file, bytes).unwrap();
    (dir, file)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        },
    )
}

fn step_ids(state: &Value) -> Vec<&str> {
    state["completedSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepId"].as_str().unwrap())
        .collect()
}

#[test]
fn every_command_that_reads_such_a_file_says_to_migrate_it_and_changes_nothing() {
    for (name, version, _) in FIXTURES {
        let original = bytes_for("yaml", name);
        let (dir, file) = store_holding("yaml", &original);
        let root = dir.path();
        for args in [
            &["verify"][..],
            &["status"],
            &["step", "complete", "build"],
            &["start", "--template", "release"],
            &["export"],
            &["reseal"],
            &["recover"],
            &["recover", "--reset"],
            &["backup", "create"],
        ] {
            let out = checklist(root, args);
            let message = stderr(&out);
            assert_eq!(code(&out), 8, "{name} {args:?}: {message}");
            assert!(
                message.contains(".checklist/state.yaml was written by the TypeScript checklist")
                    && message.contains(&format!("(its schema {version})"))
                    && message.contains("run `checklist migrate`"),
                "{name} {args:?}: {message}"
            );
            assert!(
                !message.contains("corrupt") && !message.contains("recover --reset"),
                "{name} {args:?}: {message}"
            );
            assert_eq!(
                std::fs::read(&file).unwrap(),
                original,
                "{name} {args:?} changed the file"
            );
        }
        // Automatic recovery (on by default) runs on corruption only: nothing was
        // quarantined, nothing backed up.
        assert!(entries(&root.join(".checklist/quarantine")).is_empty(), "{name}");
        let backups = entries(&root.join(".checklist/.backup"));
        assert!(
            backups.iter().all(|f| !f.starts_with("state.")),
            "{name}: {backups:?}"
        );

        let out = checklist(root, &["--json", "verify"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["error"]["kind"], "unsupported_version", "{name}");
        assert_eq!(report["error"]["typescript"], true, "{name}");
        assert_eq!(report["error"]["found"], *version, "{name}");
        assert_eq!(report["error"]["exitCode"], 8, "{name}");
    }
}

#[test]
fn migrate_imports_every_fixture_on_the_yaml_and_the_json_backend() {
    for backend in ["yaml", "json"] {
        for (name, version, steps) in FIXTURES {
            let original = bytes_for(backend, name);
            let (dir, file) = store_holding(backend, &original);
            let root = dir.path();

            let dry = ok(root, &["migrate", "--dry-run"]);
            let first = dry.lines().next().unwrap();
            assert_eq!(
                first,
                format!(
                    "{} was written by the TypeScript checklist ({}); importing it as schema 1.0.0:",
                    file.display(),
                    if name.contains("instances") {
                        format!("its instances file, version {version}")
                    } else {
                        format!("its schema {version}")
                    }
                ),
                "{backend} {name}"
            );
            assert!(
                dry.contains("Dry run: nothing was written"),
                "{backend} {name}: {dry}"
            );
            assert_eq!(
                std::fs::read(&file).unwrap(),
                original,
                "{backend} {name}: the dry run wrote"
            );

            let report = json(root, &["migrate"]);
            assert_eq!(report["migrated"], true, "{backend} {name}");
            assert_eq!(report["from"], *version, "{backend} {name}");
            assert_eq!(report["typescript"]["version"], *version, "{backend} {name}");
            assert_eq!(report["revision"], 1, "{backend} {name}");
            let backup = backup_file(root, &report);
            assert_eq!(
                std::fs::read(&backup).unwrap(),
                original,
                "{backend} {name}: the backup holds the original bytes"
            );

            let verified = json(root, &["verify"]);
            assert_eq!(verified["revision"], 1, "{backend} {name}");
            assert_eq!(verified["checksum"], report["checksum"], "{backend} {name}");
            let status = json(root, &["status"]);
            assert_eq!(step_ids(&status), *steps, "{backend} {name}");
            let exported: Value = serde_json::from_str(&ok(root, &["export", "--format", "json"])).unwrap();
            assert!(exported["typescriptChecklist"].is_object(), "{backend} {name}");

            let audit = json(root, &["audit"]);
            let migration = audit["records"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["event"] == "migration")
                .unwrap_or_else(|| panic!("{backend} {name}: no migration record in {audit}"));
            assert_eq!(migration["typescript"]["version"], *version, "{backend} {name}");
            assert_eq!(migration["backupId"], report["backupId"], "{backend} {name}");

            let again = json(root, &["migrate"]);
            assert_eq!(again["migrated"], false, "{backend} {name}: imported twice");
        }
    }
}

#[test]
fn the_import_names_the_file_and_where_the_original_is_kept_and_the_store_works_on() {
    let (dir, file) = store_holding("yaml", &bytes_for("yaml", "typescript-1.0.0-metadata.yaml"));
    let root = dir.path();
    let out = ok(root, &["migrate"]);
    for line in [
        format!(
            "{} was written by the TypeScript checklist (its schema 1.0.0); importing it as schema 1.0.0:",
            file.display()
        ),
        "TypeScript checklist 1.0.0 → 1.0.0: imports a state written by the TypeScript checklist".to_owned(),
        "  - /checksum: empty, dropped".to_owned(),
        "  - /completedSteps/0/executionTime: 41237.82 ms → 41238 ms".to_owned(),
        "  - /metadata: kept as /typescriptChecklist/metadata".to_owned(),
        "Imported as schema 1.0.0 at revision 1 (sha256:".to_owned(),
    ] {
        assert!(out.contains(&line), "{line:?} not in\n{out}");
    }
    assert!(out.contains("the original is kept as backup 0-"), "{out}");
    ok(root, &["step", "complete", "smoke-test", "--duration-ms", "900"]);
    assert_eq!(json(root, &["verify"])["revision"], 2);
    let backups = json(root, &["backup", "list"]);
    let migration = &backups["backups"][0];
    assert_eq!(migration["reason"], "migration");
    assert!(
        migration["checksum"].as_str().unwrap().starts_with("sha256:"),
        "the backup records its content's checksum, not the empty field: {backups}"
    );
}

#[test]
fn init_from_imports_every_fixture_as_yaml_or_json() {
    for format in ["yaml", "json"] {
        for (name, version, steps) in FIXTURES {
            let source = tempfile::tempdir().unwrap();
            let from = source.path().join(format!("state.{format}"));
            std::fs::write(&from, bytes_for(format, name)).unwrap();
            let from = from.to_str().unwrap();

            let target = tempfile::tempdir().unwrap();
            let out = ok(target.path(), &["init", "--from", from]);
            assert!(
                out.contains(&format!(
                    "Imported {from}, a state written by the TypeScript checklist ("
                )) && out.contains("  - /revision: added as 0"),
                "{format} {name}: {out}"
            );
            let verified = json(target.path(), &["verify"]);
            assert_eq!(verified["revision"], 1, "{format} {name}");
            assert_eq!(
                step_ids(&json(target.path(), &["status"])),
                *steps,
                "{format} {name}"
            );

            let again = tempfile::tempdir().unwrap();
            let report = json(again.path(), &["init", "--from", from]);
            assert_eq!(report["init"]["revision"], 1, "{format} {name}");
            assert_eq!(report["typescript"]["version"], *version, "{format} {name}");
            assert!(
                !report["changes"].as_array().unwrap().is_empty(),
                "{format} {name}"
            );
        }
    }
}

#[test]
fn a_typescript_file_of_a_version_it_never_had_is_refused_and_left_as_it_is() {
    let bytes = b"version: 2.0.0\ninstances: []\nconfig: {}\n";
    let (dir, file) = store_holding("yaml", bytes);
    for args in [&["migrate"][..], &["verify"]] {
        let out = checklist(dir.path(), args);
        assert_eq!(code(&out), 8, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("was written by the TypeScript checklist at its schema 2.0.0"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert!(
        entries(&dir.path().join(".checklist/.backup"))
            .iter()
            .all(|f| !f.starts_with("state."))
    );

    let target = tempfile::tempdir().unwrap();
    let out = checklist(target.path(), &["init", "--from", file.to_str().unwrap()]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(!target.path().join(".checklist").exists(), "no store was created");
}

#[test]
fn a_corrupt_state_of_this_format_is_still_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", "json"]);
    ok(root, &["start", "--template", "release"]);
    let file = root.join(".checklist/state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Every field the TypeScript tool writes, but a revision: a hand edit of ours.
    state["version"] = json!("1.0.0");
    state["metadata"] = json!({"template": "default"});
    std::fs::write(&file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let out = checklist(root, &["verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is corrupted (checksum_mismatch)") && !stderr(&out).contains("TypeScript"),
        "{}",
        stderr(&out)
    );
}
