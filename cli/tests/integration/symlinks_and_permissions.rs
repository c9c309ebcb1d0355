//! The real binary and a store it cannot be tricked into (issue 7, item 2): a
//! symbolic link anywhere in `.checklist/` makes the command fail with exit code 1 and
//! one sentence naming the link, without writing through it; every file and directory
//! the commands create has the mode of decision 0004 under the umask in force; names
//! that would become paths are refused.
#![cfg(unix)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{checklist, code, ok, snapshot, stderr};

/// A project whose store holds a state with steps, a backup, an audit log, an
/// archived instance and a quarantined document.
fn populated_project() -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "t"]);
    ok(root, &["step", "complete", "s1"]);
    ok(root, &["backup", "create"]);
    ok(root, &["archive", "--as", "completed"]);
    ok(root, &["start", "--template", "t"]);
    hand_edit(root);
    // Accepting the edit on purpose quarantines the file it replaces.
    ok(root, &["reseal"]);
    project
}

/// Edits the state by hand so that only its checksum is stale (the template id goes
/// from `t` to `u` or back).
fn hand_edit(root: &Path) {
    let state = root.join(".checklist/state.yaml");
    let text = std::fs::read_to_string(&state).unwrap();
    let edited = if text.contains("templateId: t\n") {
        text.replace("templateId: t\n", "templateId: u\n")
    } else {
        text.replace("templateId: u\n", "templateId: t\n")
    };
    assert_ne!(edited, text, "no template id to edit: {text}");
    std::fs::write(&state, edited).unwrap();
}

/// Moves `relative` out of the store of `project` (or, where nothing is, plants a
/// file elsewhere), links it back, runs `prepare` and then `args`, and checks the
/// refusal: exit 1, one sentence naming the link, the target and the state untouched.
fn refuses(relative: &str, args: &[&str], prepare: fn(&Path)) {
    let project = populated_project();
    let root = project.path();
    prepare(root);
    let store = root.join(".checklist");
    let state_before = std::fs::read(store.join("state.yaml")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = if relative.is_empty() {
        store.clone()
    } else {
        store.join(relative)
    };
    let target = elsewhere.path().join("moved");
    if std::fs::symlink_metadata(&link).is_ok() {
        std::fs::rename(&link, &target).unwrap();
    } else {
        std::fs::write(&target, "planted\n").unwrap();
    }
    symlink(&target, &link).unwrap();
    let outside_before = snapshot(elsewhere.path());

    let out = checklist(root, args);

    let err = stderr(&out);
    assert_eq!(code(&out), 1, "checklist {args:?} with {relative} linked: {err}");
    // One sentence; a transaction that could not even audit its rollback (the audit log
    // is the link) also logs that as a warning before it.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one sentence: {err}");
    assert!(
        err.lines().all(|l| l.starts_with("error:") || l.contains("WARN")),
        "{err}"
    );
    assert!(
        errors[0].starts_with(&format!(
            "error: refusing to follow the symbolic link {}:",
            link.display()
        )),
        "checklist {args:?}: {err}"
    );
    assert_eq!(
        snapshot(elsewhere.path()),
        outside_before,
        "{args:?} wrote through {relative}"
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read(store.join("state.yaml")).unwrap(), state_before);
}

macro_rules! refusal_cases {
    ($($name:ident: $path:expr, [$($arg:expr),*];)*) => {$(
        #[test]
        fn $name() {
            refuses($path, &[$($arg),*], |_| {});
        }
    )*};
}

refusal_cases! {
    store_dir_status: "", ["status"];
    state_status: "state.yaml", ["status"];
    state_step: "state.yaml", ["step", "complete", "s2"];
    config_status: "config.yaml", ["status"];
    config_init: "config.yaml", ["init"];
    metrics_init_force: "metrics.yaml", ["init", "--force"];
    history_archive_list: "history.yaml", ["archive", "--list"];
    lock_step: ".lock", ["step", "complete", "s2"];
    lock_status: ".lock", ["lock", "status"];
    locks_dir_step: ".locks", ["step", "complete", "s2"];
    locks_dir_lock_status: ".locks", ["lock", "status"];
    write_lock_step: ".locks/write.lock", ["step", "complete", "s2"];
    backup_dir_list: ".backup", ["backup", "list"];
    backup_dir_create: ".backup", ["backup", "create"];
    manifest_list: ".backup/manifest.yaml", ["backup", "list"];
    audit_step: "audit.log", ["step", "complete", "s2"];
    audit_read: "audit.log", ["audit"];
    archive_dir_archive: "archive", ["archive", "--as", "completed"];
    cache_dir_init_force: ".cache", ["init", "--force"];
}

#[test]
fn quarantine_dir_reseal() {
    refuses("quarantine", &["reseal"], hand_edit);
}

/// Runs `checklist ARGS` in `root` under `umask`.
fn with_umask(umask: &str, root: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_checklist"))
        .arg("--dir")
        .arg(root)
        .args(args)
        .env_remove("CHECKLIST_DIR")
        .output()
        .expect("run checklist through sh")
}

fn modes_under(umask: u32) {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let umask_text = format!("{umask:03o}");
    for args in [
        &["init"][..],
        &["start", "--template", "t"],
        &["step", "complete", "s1"],
        &["backup", "create"],
        &["archive", "--as", "completed"],
        &["start", "--template", "t"],
    ] {
        let out = with_umask(&umask_text, root, args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let store = root.join(".checklist");
    let mut seen = 0;
    for (path, content) in snapshot(&store) {
        let relative = path.strip_prefix(&store).unwrap().to_str().unwrap().to_owned();
        let name = relative.rsplit('/').next().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // schemas/state.schema.json is the schema, not a state: metadata.
        let private = (name.starts_with("state.") && !relative.starts_with("schemas/"))
            || name.starts_with("audit.log")
            || relative.starts_with("archive/")
            || relative.starts_with("quarantine/")
            || relative.starts_with(".cache/verified.");
        let want = match content {
            None => 0o755,
            Some(_) if private => 0o600,
            Some(_) => 0o644,
        } & !umask;
        assert_eq!(mode, want, "{relative} under umask {umask_text}: {mode:o}");
        seen += 1;
    }
    assert!(seen >= 12, "expected a populated store, saw {seen} entries");
}

#[test]
fn modes_follow_decision_0004_under_umask_022() {
    modes_under(0o022);
}

#[test]
fn a_restrictive_umask_only_narrows_the_modes() {
    modes_under(0o077);
}

/// Backup ids reach file names: a path, a parent reference, a NUL-free control
/// character or an over-long id is refused as bad input before any file is touched.
#[test]
fn hostile_backup_ids_are_refused() {
    let project = populated_project();
    let root = project.path();
    let before = snapshot(&root.join(".checklist"));
    let long = "a".repeat(300);
    for id in ["../state.yaml", "/etc/passwd", "a/b", "tab\there", long.as_str()] {
        for args in [vec!["backup", "restore", id], vec!["recover", "--from", id]] {
            let out = checklist(root, &args);
            let err = stderr(&out);
            assert_eq!(code(&out), 1, "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains("is not a backup id"), "{args:?}: {err}");
        }
    }
    assert_eq!(snapshot(&root.join(".checklist")), before);
}
