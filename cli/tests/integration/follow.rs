//! `checklist status --follow` with real processes: a follower, writers in other
//! processes (one of them killed with SIGKILL), a restore while following, and Ctrl-C
//! (SIGINT) ending it cleanly. The same scenario runs on every backend
//! (`postgres.rs` runs it with two checkouts of one store).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use crate::support::{checklist, code, json, ok, stderr};

/// How long the scenario waits for the follower to report what the writers did: far
/// above any backend's polling floor; only a broken follower reaches it.
const LIMIT: Duration = Duration::from_secs(60);

/// A running follower and the lines it printed so far.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<Value>,
}

impl Follower {
    /// Starts `follow` (a `status --follow --json` command) and waits for its first
    /// line, which names the revision it follows from.
    fn start(mut follow: Command) -> Self {
        let mut child = follow
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the follower");
        let stdout = child.stdout.take().expect("the follower's stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut follower = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        let first = follower.next_line().expect("the follower's first line");
        assert_eq!(first["event"], "following", "{first}");
        follower
    }

    fn next_line(&mut self) -> Option<Value> {
        let line = self.lines.recv_timeout(LIMIT).ok()?;
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
        self.seen.push(value.clone());
        Some(value)
    }

    /// Reads lines until one reports `revision`.
    fn until_revision(&mut self, revision: u64) {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            match self.next_line() {
                Some(line) if line["revision"].as_u64() == Some(revision) => return,
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "the follower never reported revision {revision}; it printed {:#?}",
            self.seen
        );
    }

    /// Ctrl-C: the follower must end at once, with exit code 0.
    fn interrupt(mut self) -> Vec<Value> {
        kill_process(Pid::from_child(&self.child), Signal::INT).expect("SIGINT the follower");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the follower") {
                break status;
            }
            assert!(Instant::now() < deadline, "the follower did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "a follower stopped by Ctrl-C must exit 0");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(serde_json::from_str(&line).unwrap());
        }
        self.seen
    }
}

/// The scenario, on a store already set up with an instance started and backups kept
/// on every commit; `command` builds a `checklist` command on it (of one checkout for
/// the follower and one for the writers, which may be the same).
pub(crate) fn follow_scenario(
    follower_command: &dyn Fn(&[&str]) -> Command,
    writer_command: &dyn Fn(&[&str]) -> Command,
) {
    let run_ok = |args: &[&str]| {
        let out = writer_command(args).output().expect("run checklist");
        assert!(out.status.success(), "checklist {args:?}: {}", stderr(&out));
        out
    };
    let revision = |command: &dyn Fn(&[&str]) -> Command| -> u64 {
        let out = command(&["--json", "status"]).output().expect("status");
        let status: Value = serde_json::from_slice(&out.stdout).expect("status --json");
        status["revision"].as_u64().expect("a revision")
    };
    let start = revision(follower_command);
    let mut follower = Follower::start(follower_command(&["--json", "status", "--follow"]));

    // Writers in processes of their own, at once.
    let writers: Vec<Child> = (0..6)
        .map(|i| {
            writer_command(&["--lock-timeout", "60000", "step", "complete", &format!("w-{i}")])
                .stdout(Stdio::null())
                .spawn()
                .expect("start a writer")
        })
        .collect();
    // One more, killed with SIGKILL wherever it is: before, inside or after its commit.
    let mut killed = writer_command(&["--lock-timeout", "60000", "step", "complete", "killed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer to kill");
    std::thread::sleep(Duration::from_millis(30));
    killed.kill().expect("SIGKILL the writer");
    killed.wait().expect("reap the killed writer");
    for mut writer in writers {
        assert!(
            writer.wait().expect("wait for a writer").success(),
            "a writer failed"
        );
    }

    // A restore underneath the follower, then more commits.
    let backups: Value = serde_json::from_slice(&run_ok(&["--json", "backup", "list"]).stdout).unwrap();
    let oldest = backups["backups"][0]["id"].as_str().expect("a backup").to_owned();
    run_ok(&["backup", "restore", &oldest]);
    for i in 0..2 {
        run_ok(&["step", "complete", &format!("after-restore-{i}")]);
    }
    let end = revision(writer_command);
    follower.until_revision(end);
    let lines = follower.interrupt();

    // Every revision after the start, each once, in order.
    let reported: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["revision"].as_u64())
        .skip(1)
        .collect();
    let expected: Vec<u64> = (start + 1..=end).collect();
    assert_eq!(reported, expected, "the follower's lines: {lines:#?}");

    // Each with what the audit trail says of it; only the killed writer's commit may
    // lack its record.
    let out = writer_command(&["--json", "audit"]).output().expect("audit");
    let audit: Value = serde_json::from_slice(&out.stdout).expect("audit --json");
    let mut without_record = 0;
    for line in lines.iter().skip(1) {
        let at = line["revision"].as_u64().unwrap();
        let record = audit["records"].as_array().unwrap().iter().rev().find(|r| {
            r["revisionAfter"].as_u64() == Some(at)
                && ["commit", "restore", "recovery", "migration"].contains(&r["event"].as_str().unwrap_or(""))
        });
        match record {
            Some(record) => {
                assert_eq!(line["event"], record["event"], "{line} for {record}");
                assert_eq!(line["txId"], record["txId"], "{line} for {record}");
                assert_eq!(line["checksum"], record["checksum"], "{line} for {record}");
            }
            None => {
                without_record += 1;
                assert!(
                    line.get("txId").is_none(),
                    "{line} names a transaction the trail does not hold"
                );
            }
        }
    }
    assert!(
        without_record <= 1,
        "{without_record} commits without a record: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "restore"),
        "the restore was not reported: {lines:#?}"
    );
}

fn local_command(root: &Path) -> impl Fn(&[&str]) -> Command + '_ {
    move |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_checklist"));
        command
            .arg("--dir")
            .arg(root)
            .args(args)
            .env_remove("CHECKLIST_DIR");
        command
    }
}

fn follow_on(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", backend]);
    json(root, &["start", "--template", "release"]);
    let command = local_command(root);
    follow_scenario(&command, &command);
}

#[test]
fn follow_reports_every_commit_of_other_processes_on_yaml() {
    follow_on("yaml");
}

#[test]
fn follow_reports_every_commit_of_other_processes_on_json() {
    follow_on("json");
}

#[cfg(feature = "sqlite")]
#[test]
fn follow_reports_every_commit_of_other_processes_on_sqlite() {
    follow_on("sqlite");
}

#[test]
fn follow_reports_a_corrupt_state_and_goes_on_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    json(root, &["start", "--template", "release"]);
    ok(root, &["step", "complete", "one"]);
    let command = local_command(root);
    let mut follower = Follower::start(command(&["--json", "status", "--follow"]));
    let state = root.join(".checklist").join("state.yaml");
    let text = std::fs::read_to_string(&state).unwrap();
    // Replaced at once, as an editor saves, so the follower sees one damaged state.
    let edited = root.join("state.yaml.edited");
    std::fs::write(&edited, text.replace("one", "0ne")).unwrap();
    std::fs::rename(&edited, &state).unwrap();
    let unreadable = follower.next_line().expect("a line about the damage");
    assert_eq!(unreadable["event"], "unreadable", "{unreadable}");
    let recovered = checklist(root, &["recover"]);
    assert_eq!(code(&recovered), 0, "{}", stderr(&recovered));
    let next = follower.next_line().expect("a line after recovery");
    assert_eq!(next["event"], "recovery", "{next}");
    let lines = follower.interrupt();
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "unreadable").count(),
        1,
        "a state that stays damaged is reported once: {lines:#?}"
    );
}
