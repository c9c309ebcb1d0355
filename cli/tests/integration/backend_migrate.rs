//! `checklist backend migrate` through the real binary (issue 16, item 1): the state at
//! its revision, the backups, archive, quarantine and audit trail carried; the old
//! store kept as it was and refusing writes; a dry run that changes nothing; a
//! hand-edited config moved with `--from`. PostgreSQL moves are in `postgres.rs`, the
//! interruption loop in checklist-backends' `relocation.rs`.

use std::path::Path;

use serde_json::Value;

use crate::support::{checklist, code, json, ok, snapshot, stderr, store_with_an_archived_instance};

/// A store of `backend` with history: commits, backups, an archived instance and a
/// quarantined document.
pub(crate) fn populated(backend: &str) -> tempfile::TempDir {
    let root = store_with_an_archived_instance(backend);
    let r = root.path();
    for step in ["s1", "s2", "s3"] {
        ok(r, &["step", "complete", step]);
    }
    ok(r, &["backup", "create"]);
    root
}

/// Damages a file store's state and recovers it, so that the quarantine holds it.
fn quarantine_a_damaged_state(root: &Path, state_file: &str) {
    let path = root.join(".checklist").join(state_file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, bytes).unwrap();
    ok(root, &["recover"]);
    assert_eq!(shown(root).quarantine.len(), 1);
}

/// What a move must carry, as the CLI shows it.
#[derive(Debug, PartialEq)]
pub(crate) struct Shown {
    pub(crate) export: Value,
    backups: Vec<Value>,
    archive: Vec<Value>,
    quarantine: Vec<Value>,
    audit: Vec<Value>,
}

pub(crate) fn shown(root: &Path) -> Shown {
    shown_by(&|args| json(root, args), &|args| ok(root, args))
}

/// [`shown`], running the commands with `json` (`--json`) and `text`.
pub(crate) fn shown_by(json: &dyn Fn(&[&str]) -> Value, text: &dyn Fn(&[&str]) -> String) -> Shown {
    let quarantined = json(&["quarantine", "list"])["quarantine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| serde_json::json!([q["id"], q["sha256"], q["size"], q["note"]]))
        .collect();
    let backups = json(&["backup", "list"])["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| serde_json::json!([b["id"], b["revision"], b["checksum"], b["createdAt"], b["reason"]]))
        .collect();
    let audit = json(&["audit"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] != "backend_migrated")
        .cloned()
        .collect();
    Shown {
        export: serde_json::from_str(&text(&["export", "--format", "json"])).unwrap(),
        backups,
        // Every entry but where its store keeps it.
        archive: json(&["archive", "--list"])["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let mut entry = entry.clone();
                entry.as_object_mut().unwrap().remove("file");
                entry
            })
            .collect(),
        quarantine: quarantined,
        audit,
    }
}

pub(crate) fn set_backend(root: &Path, from: &str, to: &str) {
    let config = root.join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replace(&format!("type: {from}\n"), &format!("type: {to}\n"));
    assert_ne!(edited, text, "{text}");
    std::fs::write(&config, edited).unwrap();
}

/// With config.yaml naming the old store again, reads work and every write is refused
/// with exit 9 naming where the state went.
fn assert_old_store_refuses_writes(root: &Path, old: &str, new: &str) {
    set_backend(root, new, old);
    let file = match old {
        "sqlite" => "state.db".to_owned(),
        other => format!("state.{other}"),
    };
    let kept = || {
        (
            std::fs::read(root.join(".checklist").join(&file)).unwrap(),
            snapshot(&root.join(".checklist/archive")),
        )
    };
    let before = kept();
    let status = ok(root, &["status"]);
    assert!(
        status.contains(&format!("Moved:     to the {new} backend at")),
        "{status}"
    );
    assert_eq!(json(root, &["status"])["movedTo"]["backend"], new);
    let oldest = json(root, &["backup", "list"])["backups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for args in [
        &["step", "complete", "late"][..],
        &["backup", "restore", &oldest],
        &["archive", "--as", "completed"],
    ] {
        let out = checklist(root, args);
        let err = stderr(&out);
        assert_eq!(code(&out), 9, "{args:?}: {err}");
        assert!(
            err.contains(&format!("was moved to the {new} backend")) && err.contains("takes no more writes"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            kept() == before,
            "{args:?} changed the old store's {file} or archive"
        );
    }
    set_backend(root, old, new);
}

/// Work goes on in the `from` store a move made, then it moves back `to` the store it
/// came from (which still holds the old, marked copy) with the state, every backup,
/// the archive and the quarantine.
fn moves_back_with_what_was_done_since(root: &Path, from: &str, to: &str) {
    ok(root, &["step", "complete", "s4"]);
    let moved = shown(root);
    migrate(root, to);
    let back = shown(root);
    assert_eq!(back.export, moved.export, "{from} -> {to}: the state");
    for backup in &moved.backups {
        assert!(back.backups.contains(backup), "{from} -> {to} lost {backup}");
    }
    assert_eq!(
        (back.archive, back.quarantine),
        (moved.archive, moved.quarantine),
        "{from} -> {to}: the archive and the quarantine"
    );
}

fn migrate(root: &Path, to: &str) -> Value {
    json(root, &["backend", "migrate", "--to", to])
}

/// Moves the store at `root` from `from` to `to`, asserting that the move carried
/// everything the CLI shows; returns the move's report.
fn migrate_carrying_everything(root: &Path, from: &str, to: &str) -> Value {
    let before = shown(root);
    let report = migrate(root, to);
    assert_carried(&before, &shown(root), &format!("{from} -> {to}"));
    report
}

pub(crate) fn assert_carried(before: &Shown, after: &Shown, context: &str) {
    assert_eq!(after.export, before.export, "{context}: the state");
    assert_eq!(after.backups, before.backups, "{context}: the backups");
    assert_eq!(after.archive, before.archive, "{context}: the archive");
    assert_eq!(after.quarantine, before.quarantine, "{context}: the quarantine");
    assert_eq!(after.audit, before.audit, "{context}: the audit trail");
}

#[test]
fn yaml_to_json_and_back_carries_everything_and_the_old_store_takes_no_writes() {
    let root = populated("yaml");
    let root = root.path();
    quarantine_a_damaged_state(root, "state.yaml");
    let before = shown(root);
    let report = migrate_carrying_everything(root, "yaml", "json");
    assert_eq!(report["plan"]["to"][0], "json");
    assert_eq!(report["plan"]["audit"]["shared"], true, "{report}");
    assert!(root.join(".checklist/state.json").is_file());
    let status = json(root, &["status"]);
    assert!(status.to_string().contains("state.json"), "{status}");
    let migrated: Vec<Value> = json(root, &["audit"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "backend_migrated")
        .cloned()
        .collect();
    assert_eq!(migrated.len(), 1, "{migrated:?}");
    assert_eq!(migrated[0]["revisionAfter"], before.export["revision"]);
    assert_old_store_refuses_writes(root, "yaml", "json");

    moves_back_with_what_was_done_since(root, "json", "yaml");
    assert_old_store_refuses_writes(root, "json", "yaml");
}

/// The lock settings of the run (`--lock-timeout`, `--lock-note`) are the run's: the
/// note is in the move's audit record, and neither is written into config.yaml.
#[test]
fn a_move_keeps_its_lock_settings_out_of_config_yaml() {
    let root = populated("yaml");
    let root = root.path();
    let before = std::fs::read_to_string(root.join(".checklist/config.yaml")).unwrap();
    ok(
        root,
        &[
            "--lock-timeout",
            "4321",
            "--lock-note",
            "moving to json",
            "backend",
            "migrate",
            "--to",
            "json",
        ],
    );
    let after = std::fs::read_to_string(root.join(".checklist/config.yaml")).unwrap();
    assert_eq!(after, before.replace("type: yaml\n", "type: json\n"), "{after}");
    let records = json(root, &["audit"])["records"].as_array().unwrap().clone();
    let moved = records.iter().find(|r| r["event"] == "backend_migrated").unwrap();
    assert_eq!(moved["lockNote"], "moving to json", "{moved}");
}

#[test]
fn yaml_to_sqlite_and_sqlite_to_yaml_carry_everything() {
    let root = populated("yaml");
    let root = root.path();
    quarantine_a_damaged_state(root, "state.yaml");
    migrate_carrying_everything(root, "yaml", "sqlite");
    assert_old_store_refuses_writes(root, "yaml", "sqlite");

    let root = populated("sqlite");
    let root = root.path();
    migrate_carrying_everything(root, "sqlite", "yaml");
    assert_old_store_refuses_writes(root, "sqlite", "yaml");
}

/// The json and sqlite backends of one directory name their backup files alike and
/// share `archive/*.json`: a move between them keeps the same files (byte for byte the
/// same backups), and carries everything both ways.
#[test]
fn json_to_sqlite_and_back_in_one_directory_carry_everything() {
    let root = populated("json");
    let root = root.path();
    let report = migrate_carrying_everything(root, "json", "sqlite");
    assert_eq!(report["plan"]["archive"]["shared"], true, "{report}");
    assert_old_store_refuses_writes(root, "json", "sqlite");
    moves_back_with_what_was_done_since(root, "sqlite", "json");
}

#[test]
fn a_dry_run_says_what_would_move_and_changes_nothing() {
    let root = populated("yaml");
    let root = root.path();
    let before = snapshot(&root.join(".checklist"));
    let out = ok(root, &["backend", "migrate", "--to", "json", "--dry-run"]);
    assert!(out.starts_with("Would move the yaml store at"), "{out}");
    assert!(
        out.contains("backups: 4 to copy") && out.contains("archived instances: 1 to copy"),
        "{out}"
    );
    assert_eq!(snapshot(&root.join(".checklist")), before);
    let report = json(root, &["backend", "migrate", "--to", "json", "--dry-run"]);
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["plan"]["document"], "write");
    assert_eq!(snapshot(&root.join(".checklist")), before);
}

/// After a hand edit of backend.type, every command names the move; `--from` moves the
/// state the edit left behind into the store config.yaml names.
#[test]
fn a_hand_edited_backend_is_moved_with_from() {
    let root = populated("yaml");
    let root = root.path();
    let before = shown(root);
    set_backend(root, "yaml", "json");
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 9);
    assert!(
        stderr(&out).contains("`checklist backend migrate --from yaml --to json`"),
        "{}",
        stderr(&out)
    );
    ok(root, &["backend", "migrate", "--from", "yaml", "--to", "json"]);
    assert_carried(&before, &shown(root), "a hand-edited yaml -> json");
}

#[test]
fn moves_that_cannot_be_made_are_refused_and_change_nothing() {
    let root = populated("yaml");
    let root = root.path();
    let before = snapshot(&root.join(".checklist"));
    for (args, exit, says) in [
        (
            &["backend", "migrate", "--to", "nosuch"][..],
            1,
            "unknown backend \"nosuch\" (from the --to option)",
        ),
        (
            &["backend", "migrate", "--to", "yaml"],
            1,
            "names the yaml backend already; there is nothing to move",
        ),
        (
            &["backend", "migrate", "--to", "memory"],
            1,
            "would be gone when the process exits",
        ),
        (
            &["backend", "migrate", "--to", "json", "--key", "k"],
            1,
            "options of the postgres backend",
        ),
    ] {
        let out = checklist(root, args);
        assert_eq!(code(&out), exit, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(
            snapshot(&root.join(".checklist")),
            before,
            "{args:?} changed the store"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    ok(empty.path(), &["init"]);
    std::fs::remove_file(empty.path().join(".checklist/state.yaml")).unwrap();
    let out = checklist(empty.path(), &["backend", "migrate", "--to", "json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no state; there is nothing to move"),
        "{}",
        stderr(&out)
    );
}
