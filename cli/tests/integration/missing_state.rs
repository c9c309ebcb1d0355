//! A store whose state file is gone — deleted, truncated to nothing, replaced by a
//! directory — while its backups and audit trail are there, through the real binary.
//!
//! Before, this was a loop: every recovery command said "no checklist store … run
//! `checklist init` first", `init` said the store already existed, and `init --force`
//! started again at revision 1, below the backups, so the policy pruned the new
//! state's own backups first and a later `recover` brought the old instance back.
//! Now the lost state is a damage like a corrupt one (exit 5, `checklist recover`),
//! every way of bringing it back writes above every committed revision, and a store
//! that never committed anything is simply initialized.

use std::path::Path;

use crate::support::{checklist, code, json, ok, stderr};
use serde_json::Value;

/// A yaml store at revision 6 with three backups (revisions 3, 4 and 5).
fn store_with_history() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["init"]);
    ok(root.path(), &["start", "--template", "release", "--step", "s1"]);
    for step in ["s1", "s2", "s3", "s4"] {
        ok(root.path(), &["step", "complete", step]);
    }
    assert_eq!(revision(root.path()), 6);
    root
}

fn state_file(root: &Path) -> std::path::PathBuf {
    root.join(".checklist/state.yaml")
}

fn revision(root: &Path) -> u64 {
    json(root, &["verify"])["revision"].as_u64().unwrap()
}

fn backup_revisions(root: &Path) -> Vec<u64> {
    let listed = json(root, &["backup", "list"]);
    listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["revision"].as_u64().unwrap())
        .collect()
}

/// Asserts a refusal: `exit`, one line naming the state file and saying `advice`, and
/// never the advice to run `checklist init`.
fn assert_refused(root: &Path, args: &[&str], exit: i32, advice: &str) {
    let out = checklist(root, args);
    let err = stderr(&out);
    assert_eq!(code(&out), exit, "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one sentence: {err}");
    assert!(err.contains("state.yaml"), "{args:?}: name the file: {err}");
    assert!(err.contains(advice), "{args:?}: say {advice:?}: {err}");
    assert!(!err.contains("checklist init"), "{args:?}: {err}");
    assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
}

fn without_auto_recovery(root: &Path) {
    let config = root.join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("recovery:\n  auto: true\n"), "{text}");
    std::fs::write(
        &config,
        text.replace("recovery:\n  auto: true\n", "recovery:\n  auto: false\n"),
    )
    .unwrap();
}

#[test]
fn a_deleted_state_is_reported_as_missing_and_recover_restores_it_above_every_revision() {
    let root = store_with_history();
    let root = root.path();
    std::fs::remove_file(state_file(root)).unwrap();

    assert_refused(
        root,
        &["verify"],
        5,
        "`checklist recover` restores the newest backup",
    );
    assert_refused(
        root,
        &["init"],
        5,
        "`checklist recover` restores the newest backup",
    );
    assert_refused(root, &["reseal"], 5, "`checklist recover`");
    assert!(!state_file(root).exists(), "a refusal created a state");

    let report = json(root, &["recover"]);
    assert_eq!(report["recovery"]["corruptionType"], "missing", "{report}");
    assert_eq!(report["recovery"]["backup"]["revision"], 5, "{report}");
    assert_eq!(report["recovery"]["dataLoss"], true, "{report}");
    assert!(report["recovery"]["quarantined"].is_null(), "{report}");
    assert_eq!(
        report["revision"], 7,
        "above revision 6, the last committed: {report}"
    );
    assert_eq!(revision(root), 7);
    let audit = json(root, &["audit"]);
    let last = audit["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "recovery", "{last}");
    assert_eq!(last["corruptionType"], "missing", "{last}");
}

#[test]
fn with_automatic_recovery_the_next_command_restores_a_deleted_state_and_says_so() {
    let root = store_with_history();
    let root = root.path();
    std::fs::remove_file(state_file(root)).unwrap();
    let out = checklist(root, &["step", "complete", "s5"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("was missing; restored backup"), "{err}");
    assert!(err.contains("data loss"), "{err}");
    assert_eq!(revision(root), 8, "recovered as 7, then the step at 8");
}

#[test]
fn with_automatic_recovery_off_a_deleted_state_is_refused_once_with_what_to_run() {
    let root = store_with_history();
    let root = root.path();
    without_auto_recovery(root);
    std::fs::remove_file(state_file(root)).unwrap();
    assert_refused(root, &["status"], 5, "automatic recovery is off");
    assert_refused(root, &["step", "complete", "s5"], 5, "`checklist recover`");
    ok(root, &["recover"]);
    assert_eq!(revision(root), 7);
}

#[test]
fn a_missing_state_is_restored_from_the_backup_asked_for() {
    for how in ["backup restore", "recover --from"] {
        let root = store_with_history();
        let root = root.path();
        let listed = json(root, &["backup", "list"]);
        let oldest = listed["backups"][0]["id"].as_str().unwrap().to_owned();
        std::fs::remove_file(state_file(root)).unwrap();
        let args: Vec<&str> = match how {
            "backup restore" => vec!["backup", "restore", &oldest],
            _ => vec!["recover", "--from", &oldest],
        };
        let out = checklist(root, &args);
        assert_eq!(code(&out), 0, "{how}: {}", stderr(&out));
        let state = json(root, &["export", "--format", "json"]);
        assert_eq!(state["revision"], 7, "{how}: {state}");
        assert_eq!(
            state["completedSteps"].as_array().unwrap().len(),
            1,
            "{how}: revision 3 held one step"
        );
    }
}

#[test]
fn a_reset_of_a_missing_state_and_init_force_never_restart_below_the_backups() {
    let root = store_with_history();
    let root = root.path();
    std::fs::remove_file(state_file(root)).unwrap();
    let reset = json(root, &["recover", "--reset"]);
    assert_eq!(reset["revision"], 7, "{reset}");
    assert_eq!(reset["recovery"]["method"], "reset", "{reset}");

    // init --force on a missing state restores the newest backup, above every revision.
    std::fs::remove_file(state_file(root)).unwrap();
    let init = json(root, &["init", "--force"]);
    assert_eq!(init["init"]["outcome"], "repaired", "{init}");
    assert_eq!(init["init"]["recovery"]["corruptionType"], "missing", "{init}");
    assert_eq!(init["init"]["revision"], 8, "{init}");
    let human = {
        std::fs::remove_file(state_file(root)).unwrap();
        ok(root, &["init", "--force"])
    };
    assert!(human.contains("was missing; restored backup"), "{human}");
    assert_eq!(revision(root), 9);

    // The next commits' backups are the newest, so the policy keeps them.
    ok(root, &["step", "complete", "t1"]);
    ok(root, &["step", "complete", "t2"]);
    let kept = backup_revisions(root);
    assert!(
        kept.contains(&9) && kept.contains(&10),
        "the new state's backups were pruned: {kept:?}"
    );
}

#[test]
fn a_missing_state_without_a_backup_that_verifies_says_what_can_still_be_done() {
    let root = store_with_history();
    let root = root.path();
    for entry in std::fs::read_dir(root.join(".checklist/.backup")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.yaml.")
        {
            std::fs::write(&path, b"damaged").unwrap();
        }
    }
    std::fs::remove_file(state_file(root)).unwrap();
    let out = checklist(root, &["recover"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 5, "{err}");
    assert!(err.contains("none of its 3 backups verifies"), "{err}");
    assert!(err.contains("checklist recover --reset"), "{err}");
    assert!(
        !err.contains("restores the newest backup"),
        "no contradiction: {err}"
    );
    assert!(
        !err.contains("quarantine"),
        "there is nothing to quarantine: {err}"
    );
    // init --force still brings the store back, empty, above every revision.
    let init = json(root, &["init", "--force"]);
    assert_eq!(init["init"]["recovery"]["method"], "reset", "{init}");
    assert_eq!(init["init"]["revision"], 7, "{init}");
}

#[test]
fn a_state_truncated_to_nothing_is_recovered_and_one_replaced_by_a_directory_is_named() {
    let root = store_with_history();
    let root = root.path();
    std::fs::write(state_file(root), b"").unwrap();
    let report = json(root, &["recover"]);
    assert_eq!(report["recovery"]["corruptionType"], "parse_error", "{report}");
    assert_eq!(report["revision"], 7, "{report}");

    std::fs::remove_file(state_file(root)).unwrap();
    std::fs::create_dir(state_file(root)).unwrap();
    let out = checklist(root, &["status"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("state.yaml") && err.contains("move it aside"),
        "{err}"
    );
    std::fs::remove_dir(state_file(root)).unwrap();
    ok(root, &["recover"]);
    assert_eq!(revision(root), 8);
}

#[test]
fn a_store_whose_only_state_was_deleted_is_initialized_again_by_init() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    ok(root, &["init"]);
    std::fs::remove_file(state_file(root)).unwrap();
    let out = checklist(root, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("checklist init"), "{}", stderr(&out));
    let init: Value = json(root, &["init"]);
    assert_eq!(init["init"]["outcome"], "repaired", "{init}");
    assert_eq!(revision(root), 1);
}
