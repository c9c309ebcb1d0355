//! `checklist migrate`, run as a real process against stores holding the golden
//! fixtures of `schemas/fixtures/`.

use std::path::{Path, PathBuf};

use crate::support::{backup_file, checklist, json, ok, snapshot, stderr};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh store of `backend` whose state file then holds `bytes`, as if an older
/// (or newer) checklist had written it.
fn store_holding(backend: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--backend", backend]);
    let file = dir.path().join(".checklist").join(format!("state.{backend}"));
    std::fs::write(&file, bytes).unwrap();
    (dir, file)
}

fn backup_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(".checklist/.backup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state."))
        .collect();
    names.sort();
    names
}

#[test]
fn a_0_9_0_store_is_refused_until_migrated_then_verifies_and_keeps_the_original_as_a_backup() {
    let original = fixture("state-0.9.0.yaml");
    let (dir, file) = store_holding("yaml", &original);
    let root = dir.path();

    let refused = checklist(root, &["verify"]);
    assert_eq!(refused.status.code(), Some(8), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("0.9.0")
            && message.contains("run `checklist migrate`")
            && message.contains("state.yaml"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        original,
        "a refused read changes nothing"
    );

    let report = json(root, &["migrate"]);
    assert_eq!(report["migrated"], true);
    assert_eq!(report["from"], "0.9.0");
    assert_eq!(report["to"], "1.0.0");
    assert_eq!(report["revision"], 1);
    assert_eq!(report["steps"].as_array().unwrap().len(), 1);
    let changes: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"/completedSteps/0/executionTime: 170.25 s → 170250 ms"),
        "{changes:?}"
    );
    let backup_id = report["backupId"].as_str().unwrap();
    assert!(backup_id.starts_with("0-"), "{backup_id}");

    let verified = json(root, &["verify"]);
    assert_eq!(verified["revision"], 1);
    assert_eq!(verified["checksum"], report["checksum"]);
    let backup = backup_file(root, &report);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        original,
        "the backup holds the original bytes"
    );
    let listed = json(root, &["audit"]);
    let migration = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "migration")
        .unwrap_or_else(|| panic!("no migration record in {listed}"));
    assert_eq!(migration["fromVersion"], "0.9.0");
    assert_eq!(migration["toVersion"], "1.0.0");
    assert_eq!(migration["backupId"], backup_id);
    assert_eq!(migration["revisionBefore"], 0);
    assert_eq!(migration["revisionAfter"], 1);

    let state: Value = serde_json::from_str(&ok(root, &["export", "--format", "json"])).unwrap();
    assert_eq!(
        state["activeInstance"]["ticket"], "OPS-1182",
        "unknown fields survive"
    );
    assert_eq!(state["completedSteps"][1]["approvedBy"], "dana");
    assert_eq!(state["activeInstance"]["startedAt"], "2025-06-11T14:02:09Z");

    // The store works as any other now, and a second migrate has nothing to do.
    let migrated_bytes = std::fs::read(&file).unwrap();
    let again = json(root, &["migrate"]);
    assert_eq!(again["migrated"], false);
    assert_eq!(again["changes"], json!([]));
    assert_eq!(std::fs::read(&file).unwrap(), migrated_bytes);
    assert_eq!(backup_files(root).len(), 1);
}

#[test]
fn a_0_8_0_store_migrates_through_every_step() {
    let (dir, _) = store_holding("yaml", &fixture("state-0.8.0.yaml"));
    let root = dir.path();
    let out = ok(root, &["migrate"]);
    for line in [
        "is schema 0.8.0; migrating to 1.0.0 in 2 steps:",
        "0.8.0 → 0.9.0: ",
        "0.9.0 → 1.0.0: ",
        "  - /instance: renamed to /activeInstance",
        "  - /activeInstance/status: in_progress → active",
        "  - /completedSteps/1/commandResults/0/code: renamed to /completedSteps/1/commandResults/0/exitCode",
        "Migrated to schema 1.0.0 at revision 1",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let status = json(root, &["status"]);
    assert_eq!(status["activeInstance"]["status"], "active");
    assert_eq!(status["completedSteps"][1]["result"], "failure");
    assert_eq!(status["completedSteps"][1]["commandResults"][0]["exitCode"], 101);
    ok(root, &["step", "complete", "publish"]);
    assert_eq!(json(root, &["verify"])["revision"], 2);
}

#[test]
fn the_json_backend_migrates_its_state_json() {
    let old = json!({
        "schemaVersion": "0.9.1",
        "activeInstance": {"id": "i-1", "templateId": "t", "status": "active",
                           "startedAt": "2025-01-01T00:00:00", "lastModifiedAt": "2025-01-01T00:00:01.5"},
        "completedSteps": [],
    });
    let original = serde_json::to_vec_pretty(&old).unwrap();
    let (dir, file) = store_holding("json", &original);
    let root = dir.path();
    let report = json(root, &["migrate"]);
    assert_eq!(report["from"], "0.9.1");
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["schemaVersion"], "1.0.0");
    assert_eq!(
        stored["activeInstance"]["lastModifiedAt"],
        "2025-01-01T00:00:01.500Z"
    );
    let backup = backup_file(root, &report);
    assert!(
        backup.to_string_lossy().contains("state.json."),
        "{}",
        backup.display()
    );
    assert_eq!(std::fs::read(&backup).unwrap(), original);
    ok(root, &["verify"]);
}

#[test]
fn a_dry_run_shows_the_changes_and_writes_nothing() {
    let (dir, _) = store_holding("yaml", &fixture("state-0.8.0.yaml"));
    let root = dir.path();
    let before = snapshot(&root.join(".checklist"));
    let out = ok(root, &["migrate", "--dry-run"]);
    assert!(
        out.contains("  - /completedSteps/0/result: passed → success"),
        "{out}"
    );
    assert!(out.contains("Dry run: nothing was written"), "{out}");
    let report = json(root, &["migrate", "--dry-run"]);
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["migrated"], false);
    assert!(report.get("backupId").is_none(), "{report}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 2);
    assert_eq!(
        snapshot(&root.join(".checklist")),
        before,
        "the dry run changed a file"
    );
}

#[test]
fn a_newer_major_version_exits_8_and_is_left_byte_for_byte() {
    let future = fixture("state-2.0.0.yaml");
    let (dir, file) = store_holding("yaml", &future);
    let root = dir.path();
    let backups_before = snapshot(&root.join(".checklist/.backup"));
    for args in [
        &["migrate"][..],
        &["migrate", "--dry-run"],
        &["verify"],
        &["status"],
    ] {
        let out = checklist(root, args);
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains("2.0.0") && message.contains("reads schema 2.x"),
            "{args:?}: {message}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), future, "{args:?} changed the file");
    }
    let out = checklist(root, &["--json", "migrate"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "unsupported_version");
    assert_eq!(report["error"]["found"], "2.0.0");
    assert_eq!(report["error"]["exitCode"], 8);
    assert_eq!(
        snapshot(&root.join(".checklist/.backup")),
        backups_before,
        "no backup was taken"
    );
    assert_eq!(std::fs::read(&file).unwrap(), future);
}

#[test]
fn a_version_without_a_migration_path_or_a_broken_old_document_is_refused_unchanged() {
    for (bytes, code, needle) in [
        (&b"schemaVersion: \"0.7.0\"\ncompletedSteps: []\n"[..], 8, "no migration leads"),
        (b"completedSteps: []\n", 5, "no schemaVersion"),
        (
            b"schemaVersion: \"0.8.0\"\ninstance: {id: i, template: t, status: exploded, startedAt: 0, lastModifiedAt: 0}\n",
            5,
            "/activeInstance/status",
        ),
    ] {
        let (dir, file) = store_holding("yaml", bytes);
        let out = checklist(dir.path(), &["migrate"]);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        assert!(backup_files(dir.path()).is_empty());
    }
}

#[test]
fn a_current_store_has_nothing_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    let file = root.join(".checklist/state.yaml");
    let before = std::fs::read(&file).unwrap();
    let out = ok(root, &["migrate"]);
    assert!(
        out.contains("Nothing to migrate") && out.contains("already schema 1.0.0"),
        "{out}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(backup_files(root).is_empty());
}

/// Migration is core's, for every backend: the memory store goes the same way as a
/// file's and, holding only what this build wrote, has nothing to migrate.
#[tokio::test]
async fn the_memory_backend_has_nothing_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let app = checklist_cli::App::new();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = app
        .run(
            ["checklist", "--dir", root, "init", "--backend", "memory"],
            &mut out,
            &mut err,
        )
        .await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = app
        .run(
            ["checklist", "--dir", root, "--json", "migrate"],
            &mut out,
            &mut err,
        )
        .await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["migrated"], false);
    assert_eq!(report["from"], "1.0.0", "{report}");
    assert_eq!(report["revision"], 1, "{report}");
}

/// Migration is core's, so it works for the sqlite backend as for yaml: a store
/// holding a 0.9.0 document (written there with `sqlite3`, say; this build only ever
/// writes 1.0.0) is refused by every read with the version error, and `migrate`
/// upgrades it, keeping the original as a `migration` backup.
#[cfg(feature = "sqlite")]
#[test]
fn migrate_upgrades_a_0_9_0_state_in_a_sqlite_store() {
    use checklist_backends::Codec;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", "sqlite"]);
    let old = checklist_backends::YamlCodec
        .decode(&fixture("state-0.9.0.yaml"))
        .unwrap();
    // The conformance subject's raw access writes the document row, as `sqlite3` would.
    let subject = checklist_conformance::builtin::sqlite_subject(
        &root.join(".checklist"),
        checklist_core::config::Durability::Full,
    )
    .unwrap();
    subject
        .raw()
        .unwrap()
        .write(&serde_json::to_vec_pretty(&old).unwrap())
        .unwrap();
    drop(subject);
    let refused = checklist(root, &["verify"]);
    assert_eq!(refused.status.code(), Some(8), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("0.9.0") && stderr(&refused).contains("state.db"));
    let migrate = checklist(root, &["migrate"]);
    assert_eq!(migrate.status.code(), Some(0), "{}", stderr(&migrate));
    let said = String::from_utf8_lossy(&migrate.stdout);
    assert!(
        said.contains("migrating to 1.0.0") && said.contains("state.db"),
        "{said}"
    );
    let verified = checklist(root, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    let backups = json(root, &["backup", "list"]);
    assert!(
        backups["backups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["reason"] == "migration" && b["revision"] == 0),
        "the original is kept as a migration backup: {backups}"
    );
}
