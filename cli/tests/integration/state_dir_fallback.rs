//! A project directory the binary cannot write (issue 7, item 6): the store falls back
//! to `$XDG_STATE_HOME/checklist/<project id>/` with a one-line warning, `status` says
//! where the state lives, and later commands find it (decision 0016).
//!
//! The project is made unwritable for real. Run as root (as CI does), root would
//! write anyway, so the binary runs as `nobody` (`setpriv`) in directories that
//! `nobody` owns and a `chmod 0555` takes the write permission away; run as another
//! user, the same `chmod` is enough. A read-only bind mount in a private mount
//! namespace (`unshare`) gives the EROFS case.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{code, stderr};
use serde_json::Value;

const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temp directory with a project and a state home in it, both writable by the user
/// the binary runs as, and a copy of the binary that user can run.
struct Sandbox {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    state_home: PathBuf,
    home: PathBuf,
    binary: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let project = tmp.path().join("my project");
        let state_home = tmp.path().join("state");
        let home = tmp.path().join("home");
        let binary = tmp.path().join("checklist");
        // A hard link costs no space (a debug binary is hundreds of MB); a copy only
        // when the temp dir is on another file system.
        let built = env!("CARGO_BIN_EXE_checklist");
        if std::fs::hard_link(built, &binary).is_err() {
            std::fs::copy(built, &binary).unwrap();
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for dir in [&project, &state_home, &home] {
            std::fs::create_dir(dir).unwrap();
            if running_as_root() {
                std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        Self {
            _tmp: tmp,
            project,
            state_home,
            home,
            binary,
        }
    }

    /// The command that runs the binary as the test's unprivileged user.
    fn command(&self) -> Command {
        let mut command = if running_as_root() {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&self.binary);
            setpriv
        } else {
            Command::new(&self.binary)
        };
        command
            .env("XDG_STATE_HOME", &self.state_home)
            .env("HOME", &self.home)
            .env_remove("CHECKLIST_DIR");
        command
    }

    /// Runs `checklist --dir DIR ARGS…` as the unprivileged user.
    fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command()
            .arg("--dir")
            .arg(dir)
            .args(args)
            .output()
            .expect("run checklist (is setpriv installed?)")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.project, args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(code(&out), 0, "checklist {args:?}: {}", stderr(&out));
        out
    }

    fn status_json(&self) -> Value {
        let out = self.ok(&["--json", "status"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn make_unwritable(&self, dir: &Path) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = self.run_in(dir, &["--version"]);
        assert_eq!(code(&probe), 0, "{}", stderr(&probe));
    }

    /// The only entry of `$XDG_STATE_HOME/checklist/`.
    fn fallback_dir(&self) -> PathBuf {
        let app = self.state_home.join("checklist");
        let entries: Vec<PathBuf> = std::fs::read_dir(&app)
            .unwrap_or_else(|e| panic!("{}: {e}", app.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.into_iter().next().unwrap()
    }

    fn no_fallback(&self) {
        assert!(
            !self.state_home.join("checklist").exists(),
            "the state home must stay unused"
        );
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn warnings(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_owned)
        .collect()
}

fn assert_fallback_id(sandbox: &Sandbox, fallback: &Path) {
    let id = fallback.file_name().unwrap().to_str().unwrap();
    let (name, hash) = id.rsplit_once('-').unwrap();
    assert_eq!(name, "my_project", "{id}");
    assert_eq!(hash.len(), 16, "{id}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(fallback.parent().unwrap(), sandbox.state_home.join("checklist"));
}

#[test]
fn an_unwritable_project_keeps_its_state_in_the_state_home() {
    let sandbox = Sandbox::new();
    sandbox.make_unwritable(&sandbox.project);

    let init = sandbox.ok(&["init"]);
    let fallback = sandbox.fallback_dir();
    assert_fallback_id(&sandbox, &fallback);
    let warned = warnings(&init);
    assert_eq!(warned.len(), 1, "{}", stderr(&init));
    assert!(
        warned[0].contains(&fallback.display().to_string())
            && warned[0].contains(&sandbox.project.display().to_string()),
        "{warned:?}"
    );
    assert!(!sandbox.project.join(".checklist").exists());
    assert_eq!(mode(&sandbox.state_home.join("checklist")), 0o700);
    assert_eq!(mode(&fallback), 0o700);
    assert!(fallback.join("state.yaml").is_file());
    assert!(fallback.join(".backup/manifest.yaml").is_file());

    // Later commands find it, and say so once each.
    for args in [&["start", "--template", "t"][..], &["step", "complete", "s1"]] {
        let out = sandbox.ok(args);
        assert_eq!(warnings(&out).len(), 1, "{args:?}: {}", stderr(&out));
    }
    let status = sandbox.ok(&["status"]);
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains(&fallback.join("state.yaml").display().to_string()),
        "{text}"
    );
    assert!(text.contains("per-user state directory"), "{text}");
    assert!(text.contains("1 completed"), "{text}");

    let json = sandbox.status_json();
    assert_eq!(json["store"]["fallback"], true, "{json}");
    assert_eq!(json["store"]["dir"], fallback.display().to_string(), "{json}");
    assert_eq!(json["revision"], 3, "{json}");

    // The same project reached by another spelling of its path is the same store.
    let again = sandbox.run_in(&sandbox.project.join("."), &["--json", "status"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["store"]["dir"], fallback.display().to_string());

    // Quiet means no warning.
    let quiet = sandbox.ok(&["-q", "status"]);
    assert!(warnings(&quiet).is_empty(), "{}", stderr(&quiet));
}

#[test]
fn a_writable_project_never_uses_the_state_home() {
    let sandbox = Sandbox::new();
    let init = sandbox.ok(&["init"]);
    assert!(warnings(&init).is_empty(), "{}", stderr(&init));
    assert!(sandbox.project.join(".checklist/state.yaml").is_file());
    let json = sandbox.status_json();
    assert_eq!(json["store"]["fallback"], false);
    assert_eq!(
        json["store"]["dir"],
        sandbox.project.join(".checklist").display().to_string()
    );
    sandbox.no_fallback();
}

/// A store already in the project is used even when the project cannot be written
/// (a committed `.checklist/` in a read-only checkout): reads work, a write fails
/// naming the file, and no second copy of the state is made elsewhere.
#[test]
fn a_read_only_project_store_is_used_not_forked() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    sandbox.ok(&["start", "--template", "t"]);
    let store = sandbox.project.join(".checklist");
    let state = store.join("state.yaml");
    let before = std::fs::read(&state).unwrap();
    sandbox.make_unwritable(&store);
    sandbox.make_unwritable(&sandbox.project);

    let status = sandbox.ok(&["--json", "status"]);
    assert!(warnings(&status).is_empty(), "{}", stderr(&status));
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["store"]["fallback"], false);

    let refused = sandbox.run(&["step", "complete", "s1"]);
    let err = stderr(&refused);
    assert_eq!(code(&refused), 1, "{err}");
    assert!(err.contains(&store.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&state).unwrap(), before);
    sandbox.no_fallback();
}

/// Once a `.checklist/` exists in the project it wins over a fallback store made
/// while the project was read-only.
#[test]
fn the_project_store_wins_over_an_older_fallback() {
    let sandbox = Sandbox::new();
    sandbox.make_unwritable(&sandbox.project);
    sandbox.ok(&["init"]);
    let fallback = sandbox.fallback_dir();
    std::fs::set_permissions(&sandbox.project, std::fs::Permissions::from_mode(0o755)).unwrap();

    // While the fallback exists and the project has no store, the fallback is it.
    assert_eq!(sandbox.status_json()["store"]["fallback"], true);

    std::fs::create_dir(sandbox.project.join(".checklist")).unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(sandbox.project.join(".checklist"), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let init = sandbox.ok(&["init"]);
    assert!(warnings(&init).is_empty(), "{}", stderr(&init));
    let json = sandbox.status_json();
    assert_eq!(json["store"]["fallback"], false, "{json}");
    assert_eq!(
        json["store"]["dir"],
        sandbox.project.join(".checklist").display().to_string()
    );
    assert!(
        fallback.join("state.yaml").is_file(),
        "the fallback is left as it was"
    );
}

/// A symbolic link at `$XDG_STATE_HOME/checklist` is refused like one inside a store.
#[test]
fn a_linked_fallback_directory_is_refused() {
    let sandbox = Sandbox::new();
    let elsewhere = sandbox.home.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(&elsewhere, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let link = sandbox.state_home.join("checklist");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    sandbox.make_unwritable(&sandbox.project);

    let out = sandbox.run(&["init"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("symbolic link {}", link.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// EROFS: the project is a read-only bind mount in a private mount namespace.
#[test]
fn a_read_only_file_system_falls_back_too() {
    let sandbox = Sandbox::new();
    let script = "mount --bind -o ro \"$1\" \"$1\" && shift && exec \"$@\"";
    let mut unshare = Command::new("unshare");
    unshare.arg("--mount");
    if !running_as_root() {
        // A user namespace in which this user is root may mount in its own namespace.
        unshare.arg("--map-root-user");
    }
    unshare.args(["sh", "-c", script, "sh"]).arg(&sandbox.project);
    // Root runs the binary as nobody after mounting, like the other cases.
    let as_user = sandbox.command();
    unshare.arg(as_user.get_program()).args(as_user.get_args());
    let out = unshare
        .arg("--dir")
        .arg(&sandbox.project)
        .arg("init")
        .env("XDG_STATE_HOME", &sandbox.state_home)
        .env("HOME", &sandbox.home)
        .env_remove("CHECKLIST_DIR")
        .output()
        .expect("run unshare");
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(warnings(&out).len(), 1, "{err}");
    let fallback = sandbox.fallback_dir();
    assert_fallback_id(&sandbox, &fallback);
    assert!(fallback.join("state.yaml").is_file());
    assert!(!sandbox.project.join(".checklist").exists());
    // Outside the namespace the project is writable again, and the fallback is found.
    assert_eq!(sandbox.status_json()["store"]["fallback"], true);
}
