//! Secrets never reach disk (issue 7, item 1), proved with the real binary: with
//! `secrets.mode: reject` (the default) a command that would write one exits 7 and
//! changes nothing; with `redact` the marker is written and the redaction audited;
//! whatever the mode, no file under `.checklist/` ever holds the secret's text unless
//! the user turned scanning off, and even then the audit trail does not.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{checklist, code, ok, stderr};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const DB_PASSWORD: &str = "S3cr3t-Pa55";
const STDOUT_FIELD: &str = "/completedSteps/0/commandResults/0/stdout";

fn project(backend: &str, mode: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    ok(&root, &["init", "--backend", backend]);
    let config = root.join(".checklist/config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("mode: reject"), "{text}");
    fs::write(&config, text.replace("mode: reject", &format!("mode: {mode}"))).unwrap();
    ok(&root, &["start", "--template", "release"]);
    (dir, root)
}

fn state_file(root: &Path) -> PathBuf {
    ["state.yaml", "state.json"]
        .iter()
        .map(|name| root.join(".checklist").join(name))
        .find(|path| path.exists())
        .expect("a state file")
}

/// Every file under `.checklist/` that contains `needle`, with the file's path.
fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join(".checklist")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

fn complete_with_output(root: &Path, step: &str, stdout: &str) -> std::process::Output {
    checklist(
        root,
        &[
            "step",
            "complete",
            step,
            "--command",
            "./deploy.sh",
            "--exit-code",
            "0",
            "--stdout",
            stdout,
            "--stderr",
            "",
        ],
    )
}

#[test]
fn reject_exits_7_names_the_field_and_writes_nothing() {
    for backend in ["yaml", "json"] {
        let (_dir, root) = project(backend, "reject");
        let before = fs::read(state_file(&root)).unwrap();
        let out = complete_with_output(
            &root,
            "deploy",
            &format!("pushed with {TOKEN}\nDATABASE_URL=postgres://app:{DB_PASSWORD}@db/prod\n"),
        );
        assert_eq!(code(&out), 7, "{backend}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains(STDOUT_FIELD), "{backend}: {message}");
        assert!(
            message.contains(&state_file(&root).display().to_string()),
            "{backend}: the message names the file: {message}"
        );
        assert!(
            message.contains("secrets.mode"),
            "{backend}: says what to do: {message}"
        );
        assert!(
            !message.contains(TOKEN) && !message.contains(DB_PASSWORD),
            "{message}"
        );
        assert_eq!(
            fs::read(state_file(&root)).unwrap(),
            before,
            "{backend}: the state changed"
        );
        assert_eq!(files_containing(&root, TOKEN), Vec::<PathBuf>::new(), "{backend}");
        assert_eq!(
            files_containing(&root, DB_PASSWORD),
            Vec::<PathBuf>::new(),
            "{backend}"
        );
        let audit = fs::read_to_string(root.join(".checklist/audit.log")).unwrap();
        assert!(audit.contains("\"event\":\"rollback\""), "{backend}: {audit}");
        ok(&root, &["verify"]);
    }
}

#[test]
fn a_secret_in_the_command_line_itself_stays_out_of_the_audit_trail() {
    let (_dir, root) = project("yaml", "reject");
    let before = fs::read(state_file(&root)).unwrap();
    let out = checklist(&root, &["step", "complete", TOKEN]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/completedSteps/0/stepId"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(state_file(&root)).unwrap(), before);
    assert_eq!(files_containing(&root, TOKEN), Vec::<PathBuf>::new());
    let audit = fs::read_to_string(root.join(".checklist/audit.log")).unwrap();
    assert!(
        audit.contains("step complete [REDACTED:github_token]"),
        "the begin and rollback records describe the command with a marker: {audit}"
    );
}

#[test]
fn redact_writes_the_marker_and_audits_the_redaction() {
    for backend in ["yaml", "json"] {
        let (_dir, root) = project(backend, "redact");
        let out = complete_with_output(&root, "deploy", &format!("remote: {TOKEN} accepted\n"));
        assert_eq!(code(&out), 0, "{backend}: {}", stderr(&out));
        let state = fs::read_to_string(state_file(&root)).unwrap();
        assert!(
            state.contains("remote: [REDACTED:github_token] accepted"),
            "{backend}: {state}"
        );
        assert_eq!(files_containing(&root, TOKEN), Vec::<PathBuf>::new(), "{backend}");
        let audit = fs::read_to_string(root.join(".checklist/audit.log")).unwrap();
        let commit = audit
            .lines()
            .rfind(|l| l.contains("\"event\":\"commit\""))
            .expect("a commit record");
        assert!(
            commit.contains(&format!("redacted a github_token at {STDOUT_FIELD}")),
            "{backend}: {commit}"
        );
        ok(&root, &["verify"]);
    }
}

#[test]
fn with_scanning_off_the_state_keeps_the_text_but_the_audit_trail_does_not() {
    let (_dir, root) = project("yaml", "off");
    let out = checklist(&root, &["step", "complete", TOKEN]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The verified parse of the state in .cache/ is the state itself, as private.
    let cache = root.join(".checklist/.cache/verified.state.yaml.json");
    assert_eq!(
        files_containing(&root, TOKEN),
        [state_file(&root), cache.clone()],
        "scanning is off, so the state holds what the user wrote; nothing else does"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o600);
        assert_eq!(mode(&state_file(&root)), 0o600);
    }
}
