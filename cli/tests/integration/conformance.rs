//! `checklist conformance`, run as the real binary: the whole suite passes on every
//! built-in backend in a temp directory, and a directory where the store cannot work is
//! refused with a sentence naming it.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{checklist, code, stderr};

/// Every case's `suite::name`, in the order the command runs them.
fn case_names() -> Vec<String> {
    checklist_conformance::all_cases()
        .iter()
        .map(|c| format!("{}::{}", c.suite, c.name))
        .collect()
}

/// Asserts a passing human run: the header, one `ok` line per case in order, and a
/// summary with 0 failed.
fn assert_passed(out: &Output, backend: &str) {
    assert_eq!(code(out), 0, "{}", stderr(out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let names = case_names();
    assert_eq!(lines.len(), names.len() + 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "Running {} conformance cases against the {backend} backend in ",
            names.len()
        )),
        "{text}"
    );
    for (line, name) in lines[1..=names.len()].iter().zip(&names) {
        assert_eq!(*line, format!("ok     {name}"));
    }
    let summary = lines[names.len() + 1];
    let total = names.len();
    assert!(
        summary.starts_with(&format!("{total} passed, 0 failed, {total} total (")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("the {backend} backend gets the guarantees it needs")),
        "{summary}"
    );
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn the_suite_passes_on_yaml_in_a_temp_dir_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = checklist(dir.path(), &["conformance", "--backend", "yaml"]);
    assert_passed(&out, "yaml");
    // The cases' deliberate lock breaks and panics stay out of a passing run's stderr.
    assert_eq!(stderr(&out), "");
    assert_eq!(entries(dir.path()), 0, "the work directory must be removed");
}

/// The sqlite backend, chosen by the project's config.yaml: every case passes in a
/// temp directory, the project's own `state.db` is untouched, and nothing is left.
#[cfg(feature = "sqlite")]
#[test]
fn the_suite_passes_on_sqlite_chosen_by_config_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::support::ok(root, &["init", "--backend", "sqlite"]);
    let db = root.join(".checklist").join("state.db");
    let before = std::fs::read(&db).unwrap();
    let entries_before = entries(root);
    let out = checklist(root, &["conformance"]);
    assert_passed(&out, "sqlite");
    assert_eq!(stderr(&out), "");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the project's store is untouched"
    );
    assert_eq!(
        entries(root),
        entries_before,
        "the work directory must be removed"
    );
}

#[test]
fn the_suite_passes_on_json_chosen_by_config_yaml_as_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::support::ok(root, &["init", "--backend", "json"]);
    let state = root.join(".checklist").join("state.json");
    let before = std::fs::read(&state).unwrap();
    // No --backend: the project's config.yaml says json.
    let out = checklist(root, &["--json", "conformance"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = case_names().len() as u64;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["backend"], "json");
    assert_eq!(report["passed"], total);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["total"], total);
    assert!(report["elapsedMs"].is_u64(), "{report}");
    let cases = report["cases"].as_array().unwrap();
    let names: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "{}::{}",
                c["suite"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, case_names());
    assert!(
        cases.iter().all(|c| c["ok"] == true && c["error"].is_null()),
        "{report}"
    );
    // The project's store is untouched and the work directory is gone.
    assert_eq!(std::fs::read(&state).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [".checklist"]);
}

#[test]
fn the_suite_passes_on_memory_in_a_temp_dir_of_the_current_directory() {
    let cwd = tempfile::tempdir().unwrap();
    // No --dir: the work directory is a new temp dir inside the current directory.
    let out = Command::new(env!("CARGO_BIN_EXE_checklist"))
        .args(["conformance", "--backend", "memory"])
        .current_dir(cwd.path())
        .env_remove("CHECKLIST_DIR")
        .output()
        .unwrap();
    assert_passed(&out, "memory");
    let header = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(header.contains(".checklist-conformance-"), "{header}");
    assert!(header.contains("keeps nothing on disk"), "{header}");
    assert_eq!(entries(cwd.path()), 0, "the work directory must be removed");
}

/// Asserts that `checklist --dir DIR conformance` refused to start, exit 1, with one
/// sentence naming DIR and no case lines.
fn assert_refused(dir: &Path) {
    let out = checklist(dir, &["conformance", "--backend", "yaml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.starts_with("error: could not create the conformance work directory"),
        "{message}"
    );
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

// Unusable directories. A directory made read-only with chmod 0o555 would be the
// obvious one, but these tests run as root in CI, and root writes through any mode
// bits, so that test could not fail. These fail for every user, root included,
// because the kernel itself refuses: a path that is a regular file cannot hold a
// directory (EEXIST/ENOTDIR), nor can a path under one (ENOTDIR), and procfs
// creates no directories at all (ENOENT, for root too).

#[test]
fn a_dir_that_is_a_regular_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    assert_refused(&file);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_dir_under_a_regular_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_refused(&file.join("sub"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_directory_where_nothing_can_be_created_is_refused_naming_it() {
    assert_refused(Path::new("/proc"));
}

#[test]
fn a_backend_that_is_not_built_in_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = checklist(dir.path(), &["conformance", "--backend", "etcd"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let builtins = if cfg!(feature = "sqlite") {
        "yaml, json, memory, sqlite"
    } else {
        "yaml, json, memory"
    };
    assert!(
        stderr(&out).contains(&format!("\"etcd\" is not a built-in backend ({builtins})")),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(dir.path()), 0);
}

#[test]
fn an_unusable_dir_is_reported_before_its_config_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    // No --backend: the directory's problem is reported, not config.yaml's.
    let out = checklist(&file, &["conformance"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: could not create the conformance work directory (the directory to check must be a \
             writable directory) in {}: ",
            file.display()
        )),
        "{}",
        stderr(&out)
    );
}
