//! Running the real `checklist` binary in the CLI's integration tests.
#![allow(dead_code, reason = "each test file uses the part of this it needs")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `checklist --dir ROOT ARGS…` and returns what it did.
pub(crate) fn checklist(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_checklist"))
        .arg("--dir")
        .arg(root)
        .args(args)
        .env_remove("CHECKLIST_DIR")
        .env_remove("CHECKLIST_LOCK_NOTE")
        .output()
        .expect("run checklist")
}

/// A new store of `backend` with history: an instance of the `release` template
/// completed through step `s0` and archived, and a second one started at step `s1`
/// (revision 5).
pub(crate) fn store_with_an_archived_instance(backend: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    ok(r, &["init", "--backend", backend]);
    ok(r, &["start", "--template", "release", "--step", "s0"]);
    ok(r, &["step", "complete", "s0"]);
    ok(r, &["archive", "--as", "completed"]);
    ok(r, &["start", "--template", "release", "--step", "s1"]);
    root
}

/// Runs it, asserts success and returns stdout.
pub(crate) fn ok(root: &Path, args: &[&str]) -> String {
    let out = checklist(root, args);
    assert!(
        out.status.success(),
        "checklist {args:?} failed with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it with `--json`, asserts success and parses stdout.
pub(crate) fn json(root: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(root, &all)).unwrap()
}

/// The exit code.
pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The file of the backup a `migrate --json` report names, for the backends that keep
/// backups as files in `.checklist/.backup/` (its location is the file's name there).
pub(crate) fn backup_file(root: &Path, report: &Value) -> std::path::PathBuf {
    let location = report["backupLocation"]
        .as_str()
        .unwrap_or_else(|| panic!("no backupLocation in {report}"));
    root.join(".checklist").join(".backup").join(location)
}

/// The `commit` records of `checklist audit --json`'s output, each as (transaction id,
/// revision after): what a change reported, to find it in the trail.
pub(crate) fn commits(audit: &Value) -> Vec<(Value, Value)> {
    audit["records"]
        .as_array()
        .expect("the audit's records")
        .iter()
        .filter(|r| r["event"] == "commit")
        .map(|r| (r["txId"].clone(), r["revisionAfter"].clone()))
        .collect()
}

/// Every path under `root`, `root` included, with its bytes (`None` for a directory),
/// without following symbolic links: what "nothing was changed" is checked against.
pub(crate) fn snapshot(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Option<Vec<u8>>> {
    let mut all = std::collections::BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            all.insert(path.clone(), None);
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            all.insert(path.clone(), Some(std::fs::read(&path).unwrap()));
        }
    }
    all
}
