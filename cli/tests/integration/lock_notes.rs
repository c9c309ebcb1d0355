//! Lock notes through the real binary (docs/decisions/0025-lock-notes.md): a command
//! run with `CHECKLIST_LOCK_NOTE` holds the lock in its own process, and another
//! process's `lock status` and lock timeout show its note; the holder's transaction
//! carries it into the audit trail; a secret in a note is redacted everywhere; a note
//! that could forge output is refused as a usage error.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{checklist, code, json, ok, stderr};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

fn project() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["init"]);
    ok(root.path(), &["start", "--template", "t"]);
    root
}

/// `checklist --dir ROOT ARGS…` started in the background with `CHECKLIST_LOCK_NOTE`.
fn spawn_with_note(root: &Path, note: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_checklist"))
        .arg("--dir")
        .arg(root)
        .args(args)
        .env_remove("CHECKLIST_DIR")
        .env("CHECKLIST_LOCK_NOTE", note)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checklist")
}

/// The store's write lock, the OS lock a commit takes around its rename: while the test
/// holds it, a command that holds the store's lock waits at its commit (up to the file
/// store's 10 s write-lock timeout), so its lock is held for the test to look at.
fn hold_the_write_lock(root: &Path) -> File {
    let path = root.join(".checklist").join(".locks").join("write.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    file
}

/// `lock status --json` once its holder is there (within 5 s).
fn held_status(root: &Path) -> Value {
    let started = Instant::now();
    loop {
        let status = json(root, &["lock", "status"]);
        if !status["holder"].is_null() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the holder never took the lock: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records of `audit --json` of one transaction.
fn records_of(audit: &Value, tx_id: &Value) -> Vec<Value> {
    audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["txId"] == *tx_id)
        .cloned()
        .collect()
}

#[test]
fn a_note_from_the_environment_is_shown_to_another_process_and_kept_in_the_audit_trail() {
    let root = project();
    let note = "CI job 4711 (nightly import) ✓";
    let write_lock = hold_the_write_lock(root.path());
    let holder = spawn_with_note(root.path(), note, &["--json", "step", "complete", "a1"]);

    let status = held_status(root.path());
    assert_eq!(status["holder"]["note"], note, "{status}");
    assert_eq!(status["holder"]["pid"], holder.id(), "{status}");
    let human = ok(root.path(), &["lock", "status"]);
    assert!(human.contains(&format!(", note: {note})")), "{human}");
    assert_eq!(human.lines().count(), 1, "{human}");
    let overview = json(root.path(), &["status"]);
    assert_eq!(overview["lock"]["holder"]["note"], note, "{overview}");

    // Another process times out naming the holder and its note (exit 4).
    let blocked = checklist(root.path(), &["--lock-timeout", "300", "step", "complete", "b1"]);
    assert_eq!(code(&blocked), 4, "{}", stderr(&blocked));
    let message = stderr(&blocked);
    assert!(message.contains(&format!("note: {note}")), "{message}");
    assert!(message.contains(&format!("pid {}", holder.id())), "{message}");

    drop(write_lock);
    let done = holder.wait_with_output().unwrap();
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    let tx_id = &report["txId"];
    let audit = json(root.path(), &["audit"]);
    let records = records_of(&audit, tx_id);
    let events: Vec<&Value> = records.iter().map(|r| &r["event"]).collect();
    assert_eq!(events, ["begin", "commit"], "{audit}");
    for record in &records {
        assert_eq!(record["lockNote"], note, "{record}");
    }
    let human = ok(root.path(), &["audit"]);
    let tx = tx_id.as_str().unwrap();
    let noted: Vec<&str> = human.lines().filter(|line| line.contains(tx)).collect();
    assert_eq!(noted.len(), 2, "{human}");
    assert!(
        noted
            .iter()
            .all(|line| line.ends_with(&format!(" (lock note: {note})"))),
        "{human}"
    );
    // A command without a note leaves none.
    let plain = json(root.path(), &["step", "complete", "c1"]);
    let audit = json(root.path(), &["audit"]);
    for record in records_of(&audit, &plain["txId"]) {
        assert!(record.get("lockNote").is_none(), "{record}");
    }
    assert!(json(root.path(), &["lock", "status"])["holder"].is_null());
}

#[test]
fn a_secret_in_a_note_is_redacted_in_the_lock_the_error_and_the_audit_trail() {
    let root = project();
    let note = format!("deploy with {TOKEN}");
    let write_lock = hold_the_write_lock(root.path());
    let holder = spawn_with_note(root.path(), &note, &["--json", "step", "complete", "a1"]);

    let status = held_status(root.path());
    assert_eq!(
        status["holder"]["note"], "deploy with [REDACTED:github_token]",
        "{status}"
    );
    let lock_file = std::fs::read_to_string(root.path().join(".checklist").join(".lock")).unwrap();
    assert!(!lock_file.contains(TOKEN), "{lock_file}");
    assert!(lock_file.contains("[REDACTED:github_token]"), "{lock_file}");
    let blocked = checklist(root.path(), &["--lock-timeout", "300", "step", "complete", "b1"]);
    assert_eq!(code(&blocked), 4, "{}", stderr(&blocked));
    assert!(!stderr(&blocked).contains(TOKEN), "{}", stderr(&blocked));
    assert!(
        stderr(&blocked).contains("[REDACTED:github_token]"),
        "{}",
        stderr(&blocked)
    );

    drop(write_lock);
    let done = holder.wait_with_output().unwrap();
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    let audit_log = std::fs::read_to_string(root.path().join(".checklist").join("audit.log")).unwrap();
    assert!(!audit_log.contains(TOKEN), "{audit_log}");
    assert!(
        audit_log.contains("\"lockNote\":\"deploy with [REDACTED:github_token]\""),
        "{audit_log}"
    );
}

#[test]
fn a_note_that_could_forge_output_or_is_too_long_is_a_usage_error() {
    let root = project();
    let before = std::fs::read(root.path().join(".checklist").join("state.yaml")).unwrap();
    let long = "x".repeat(201);
    let forged = "job 1\n  waiting: pid 1 on elsewhere";
    for (note, says) in [
        (forged, "control character"),
        ("tab\there", "control character"),
        (long.as_str(), "201 characters"),
    ] {
        for by_env in [false, true] {
            let mut command = Command::new(env!("CARGO_BIN_EXE_checklist"));
            command
                .arg("--dir")
                .arg(root.path())
                .env_remove("CHECKLIST_DIR")
                .env_remove("CHECKLIST_LOCK_NOTE");
            if by_env {
                command.env("CHECKLIST_LOCK_NOTE", note);
            } else {
                command.args(["--lock-note", note]);
            }
            let out = command.args(["step", "complete", "a1"]).output().unwrap();
            assert_eq!(code(&out), 2, "{note:?}: {}", stderr(&out));
            let message = stderr(&out);
            assert!(
                message.contains(says) && message.contains("--lock-note, CHECKLIST_LOCK_NOTE"),
                "{note:?}: {message}"
            );
            // The refused text is not echoed: it may be a secret, or forged lines.
            assert!(
                !message.contains("waiting: pid 1") && !message.contains(&long),
                "{message}"
            );
        }
    }
    // A long note with a secret is refused without printing the secret.
    let out = checklist(
        root.path(),
        &[
            "--lock-note",
            &format!("{TOKEN} {}", "x".repeat(300)),
            "step",
            "complete",
            "a1",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains(TOKEN), "{}", stderr(&out));
    let after = std::fs::read(root.path().join(".checklist").join("state.yaml")).unwrap();
    assert_eq!(before, after, "a refused note changed the state");

    // An empty note (a CI variable that is unset) is no note.
    let out = Command::new(env!("CARGO_BIN_EXE_checklist"))
        .arg("--dir")
        .arg(root.path())
        .env_remove("CHECKLIST_DIR")
        .env("CHECKLIST_LOCK_NOTE", "")
        .args(["--json", "step", "complete", "a1"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let audit = json(root.path(), &["audit"]);
    for record in records_of(&audit, &report["txId"]) {
        assert!(record.get("lockNote").is_none(), "{record}");
    }
}

#[test]
fn a_flag_note_reaches_the_records_of_backup_and_restore() {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["--lock-note", "setup by ops", "init"]);
    ok(root.path(), &["start", "--template", "t"]);
    ok(root.path(), &["step", "complete", "a1"]);
    let backup = json(
        root.path(),
        &["--lock-note", "before the release", "backup", "create"],
    );
    let id = backup["backup"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no backup id in {backup}"))
        .to_owned();
    ok(
        root.path(),
        &["--lock-note", "rolling back job 12", "backup", "restore", &id],
    );
    let audit = json(root.path(), &["audit"]);
    let records = audit["records"].as_array().unwrap();
    let noted = |event: &str, note: &str| {
        records
            .iter()
            .any(|r| r["event"] == event && r["lockNote"] == note)
    };
    assert!(noted("backup", "before the release"), "{audit}");
    assert!(noted("restore", "rolling back job 12"), "{audit}");
}
