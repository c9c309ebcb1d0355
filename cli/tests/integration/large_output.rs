//! Large arguments through the real binary: every field that reaches the lock file or
//! the audit trail, up to the largest single argument Linux accepts, on yaml and json.
//!
//! A build log captured into `--stdout` is what people pass. The lock file records the
//! command line, so before the lock file's text was bounded a step with more than
//! ~64 KB of output wrote a lock its own writer could not read back: the command
//! failed, could not release, and every later command was locked out for good.
//! Here each command must succeed (or be refused by the schema, cleanly), leave no
//! lock behind, and leave a store whose status, audit trail and lock status read.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::{checklist, code, json, ok, stderr};

/// The largest single argument Linux passes to a program (`MAX_ARG_STRLEN` is 32
/// pages, 131072 bytes with its terminating NUL).
const LARGEST_ARGUMENT: usize = 128 * 1024 - 1;

/// Text the size of `len` bytes that looks like a build log (and is the worst case for
/// JSON: ANSI colour escapes are control characters).
fn build_log(len: usize) -> String {
    let line = "\u{1b}[32m   Compiling\u{1b}[0m checklist-core v0.1.0 (/work) ✓\n";
    let mut log = line.repeat(len / line.len() + 1);
    let mut cut = len;
    while !log.is_char_boundary(cut) {
        cut -= 1;
    }
    log.truncate(cut);
    log
}

fn init(backend: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["init", "--backend", backend]);
    root
}

/// The store still works for everyone: no lock left, the lock is free, status and
/// the audit trail read, and the next write goes through.
fn assert_store_usable(root: &Path, case: &str) {
    assert!(
        !root.join(".checklist/.lock").exists(),
        "{case}: the command left its lock behind"
    );
    let status = json(root, &["lock", "status"]);
    assert!(status["holder"].is_null(), "{case}: {status}");
    assert!(status["unreadable"].is_null(), "{case}: {status}");
    ok(root, &["status"]);
    let audit = json(root, &["audit"]);
    assert_eq!(audit["problems"], serde_json::json!([]), "{case}: {audit}");
    let trail = std::fs::read_to_string(root.join(".checklist/audit.log")).unwrap();
    let longest = trail.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < checklist_core::audit::MAX_LINE_BYTES,
        "{case}: an audit line of {longest} bytes"
    );
    let next = format!("after-{}", case.replace(' ', "-"));
    ok(root, &["--lock-timeout", "2000", "step", "complete", &next]);
}

#[test]
fn the_largest_output_linux_accepts_in_every_field_commits_and_leaves_the_store_usable() {
    for backend in ["yaml", "json"] {
        let root = init(backend);
        let log = build_log(LARGEST_ARGUMENT);
        let version = build_log(LARGEST_ARGUMENT);
        ok(
            root.path(),
            &[
                "start",
                "--template",
                "release",
                "--template-version",
                &version,
                "--step",
                "build",
            ],
        );
        for (field, value) in [
            ("--stdout", log.as_str()),
            ("--stderr", log.as_str()),
            ("--command", log.as_str()),
        ] {
            let case = format!("{backend} {field}");
            let step = format!("build{field}");
            let mut args = vec!["step", "complete", &step, "--exit-code", "0", field, value];
            if field != "--command" {
                args.extend(["--command", "cargo build"]);
            }
            let out = checklist(root.path(), &args);
            assert_eq!(code(&out), 0, "{case}: {}", stderr(&out));
            assert_store_usable(root.path(), &case);
        }
        // All three at once: about 384 KiB of arguments.
        let out = checklist(
            root.path(),
            &[
                "step",
                "complete",
                "test",
                "--command",
                &log,
                "--exit-code",
                "1",
                "--stdout",
                &log,
                "--stderr",
                &log,
            ],
        );
        assert_eq!(code(&out), 0, "{backend} all fields: {}", stderr(&out));
        assert_store_usable(root.path(), &format!("{backend} all fields"));
        let state = json(root.path(), &["export", "--format", "json"]);
        let steps = state["completedSteps"].as_array().unwrap();
        let test = steps.iter().find(|s| s["stepId"] == "test").unwrap();
        assert_eq!(
            test["commandResults"][0]["stdout"],
            log.as_str(),
            "kept whole in the state"
        );
    }
}

#[test]
fn an_id_too_long_for_the_schema_is_refused_and_the_store_stays_usable() {
    for backend in ["yaml", "json"] {
        let root = init(backend);
        ok(root.path(), &["start", "--template", "release"]);
        let long_id = "s".repeat(LARGEST_ARGUMENT);
        let before = std::fs::read(root.path().join(format!(".checklist/state.{backend}"))).unwrap();
        for args in [
            vec!["step", "complete", &long_id, "--stdout", &long_id],
            vec!["step", "current", &long_id],
            vec!["start", "--template", &long_id, "--step", &long_id],
        ] {
            let out = checklist(root.path(), &args);
            assert_ne!(code(&out), 0, "{backend} {}: a 128 KiB id was accepted", args[0]);
            let err = stderr(&out);
            assert!(
                err.len() < 16 * 1024,
                "{backend}: the error repeats the argument: {} bytes",
                err.len()
            );
            assert!(!err.contains("panicked"), "{backend}: {err}");
        }
        assert_eq!(
            std::fs::read(root.path().join(format!(".checklist/state.{backend}"))).unwrap(),
            before,
            "{backend}: the refused change touched the state"
        );
        assert_store_usable(root.path(), backend);
    }
}

#[test]
fn an_oversized_lock_file_from_an_older_build_is_a_lock_judged_by_its_age() {
    let root = init("yaml");
    ok(root.path(), &["start", "--template", "release"]);
    let lock_path = root.path().join(".checklist/.lock");
    // What an older build wrote for `step complete --stdout <70 KB>`: a complete lock
    // of a process that is gone, over the 64 KiB read limit.
    let lock = serde_json::json!({
        "version": "1.0.0",
        "lockId": "0b4e7f3c-9f8e-4d2a-8c1b-5a6d7e8f9a0b",
        "metadata": {"pid": 999_999, "ppid": 1, "hostname": "elsewhere", "user": "ci",
                     "processStartedAt": null},
        "timing": {"acquiredAt": "2026-01-01T00:00:00Z", "expiresAt": "2026-01-01T00:00:30Z",
                   "renewedAt": "2026-01-01T00:00:00Z"},
        "operation": {"type": "write", "stackTrace": null,
                      "commandLine": format!("checklist step complete build --stdout {}", "x".repeat(70_000))},
    });
    std::fs::write(&lock_path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    let planted = std::fs::read(&lock_path).unwrap();
    assert!(planted.len() > 64 * 1024);

    // Fresh: it keeps writers out, and every reading command still answers.
    let status = ok(root.path(), &["lock", "status"]);
    assert!(
        status.contains("held by a lock file that cannot be read"),
        "{status}"
    );
    assert!(ok(root.path(), &["status"]).contains("Lock:      held by"));
    let out = checklist(
        root.path(),
        &["--lock-timeout", "300", "step", "complete", "build"],
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains(".checklist/.lock"), "{}", stderr(&out));
    let out = checklist(
        root.path(),
        &[
            "lock",
            "release",
            "--force",
            "0b4e7f3c-9f8e-4d2a-8c1b-5a6d7e8f9a0b",
        ],
    );
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&lock_path).unwrap(),
        planted,
        "nothing was released"
    );

    // Unchanged for longer than the expiry: the next writer takes it over.
    let old = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = checklist(
        root.path(),
        &["--lock-timeout", "2000", "step", "complete", "build"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_store_usable(root.path(), "taken over");
}

/// A reader that closes the pipe early (`checklist export | head -c 10`) took what it
/// wanted: the command ends quietly with exit code 0, not with an error of its own.
#[test]
fn a_reader_closing_the_pipe_early_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};

    let root = init("yaml");
    let log = build_log(LARGEST_ARGUMENT / 2);
    ok(root.path(), &["start", "--template", "release"]);
    let completed = crate::support::checklist(
        root.path(),
        &["step", "complete", "build", "--command", "make", "--stdout", &log],
    );
    assert_eq!(code(&completed), 0, "step complete: {}", stderr(&completed));
    let mut child = Command::new(env!("CARGO_BIN_EXE_checklist"))
        .arg("--dir")
        .arg(root.path())
        .arg("export")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0_u8; 10];
    stdout.read_exact(&mut head).unwrap();
    // The document is larger than a pipe holds, so the rest is still being written.
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(stderr(&out), "");
}
