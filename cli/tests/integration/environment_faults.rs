//! Environment faults made by the real kernel, through the real binary: a full disk
//! (a tiny tmpfs filled up), a read-only file system (a read-only bind mount), a
//! permission refused (the binary run as `nobody`, or, for a non-root user, a store
//! made read-only), and the store deleted between two commands.
//!
//! Each mutating command must exit 1 with one stderr sentence that names a file of the
//! store and says what to do; the state must be byte-for-byte what it was and still
//! verify once the condition is gone, and no temp file may be left.
//!
//! The mounts use a private mount namespace (`unshare --mount --map-root-user`), which
//! works for root and for ordinary users where user namespaces are enabled; where they
//! are not, these tests fail with a message saying so rather than pass silently. The
//! same faults are injected at every single operation through the fault seam in
//! `backends/tests/integration/environment_faults.rs` (on every Unix); this file is Linux-only,
//! like mount namespaces.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{checklist, code, ok, stderr};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_checklist")
}

/// Runs `script` with `sh` in a private mount namespace, with `$BIN` the binary, `$D`
/// the project directory and `$OUT` a directory outside the mount for results.
fn in_mount_namespace(script: &str, project: &Path, out: &Path) -> Output {
    let output = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-euc", script])
        .env("BIN", bin())
        .env("D", project)
        .env("OUT", out)
        .env_remove("CHECKLIST_DIR")
        .output()
        .expect("run unshare (util-linux)");
    assert!(
        output.status.success(),
        "the mount namespace script failed — are user namespaces enabled? status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts the shape of the refusal: exit 1, one sentence naming a file of the store
/// and carrying `advice`.
fn assert_refusal(case: &str, exit: i32, err: &str, advice: &str) {
    assert_eq!(exit, 1, "{case}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{case}: one sentence: {err}");
    assert!(
        err.contains(".checklist/"),
        "{case}: the message must name the file: {err}"
    );
    assert!(
        !err.contains(".tmp-"),
        "{case}: name the target, not the temp file: {err}"
    );
    assert!(
        err.contains(advice),
        "{case}: the message must say what to do ({advice}): {err}"
    );
    assert!(!err.contains("panicked"), "{case}: {err}");
}

fn no_temp_files(listing: &str) -> bool {
    !listing.contains(".tmp-")
}

#[test]
fn a_full_disk_fails_the_write_with_advice_and_keeps_the_state() {
    let project = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Everything happens inside the namespace: the tmpfs vanishes with it.
    let script = r#"
        mount -t tmpfs -o size=256k tmpfs "$D"
        "$BIN" --dir "$D" init >/dev/null
        "$BIN" --dir "$D" start --template release --step build >/dev/null
        "$BIN" --dir "$D" step complete build >/dev/null
        cp "$D/.checklist/state.yaml" "$OUT/before"
        dd if=/dev/zero of="$D/filler" bs=1k 2>/dev/null || true
        set +e
        "$BIN" --dir "$D" step complete test 2>"$OUT/stderr" >/dev/null
        echo $? >"$OUT/code"
        set -e
        cp "$D/.checklist/state.yaml" "$OUT/after"
        ls -aR "$D/.checklist" >"$OUT/listing"
        rm "$D/filler"
        "$BIN" --dir "$D" verify >"$OUT/verify" 2>&1
        "$BIN" --dir "$D" step complete test >/dev/null
        echo recovered >"$OUT/next"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    let exit: i32 = read(out.path().join("code")).trim().parse().unwrap();
    assert_refusal(
        "full disk",
        exit,
        &read(out.path().join("stderr")),
        "the disk is full (no space or no free inodes left, or the quota is used up): free space and run the command again",
    );
    assert_eq!(read(out.path().join("before")), read(out.path().join("after")));
    assert!(
        no_temp_files(&read(out.path().join("listing"))),
        "{}",
        read(out.path().join("listing"))
    );
    assert_eq!(read(out.path().join("next")).trim(), "recovered");
}

/// A real full disk at every step of a commit: a tiny tmpfs is filled, then 0, 1, 2 …
/// 32 pages are freed before each `step complete`, so the disk runs out at a different
/// point of the commit each time (the new state, the backup index, the audit record,
/// the lock files). Afterwards, by inode: no backup is another name of the live state
/// file, every backup has one name, the backups of a failed commit are unchanged, and
/// the backups still restore.
#[test]
fn a_real_full_disk_at_every_step_of_a_commit_leaves_every_backup_independent() {
    let project = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = r#"
        mount -t tmpfs -o size=512k "$D" "$D"
        "$BIN" --dir "$D" init >/dev/null
        "$BIN" --dir "$D" start --template release --step s0 >/dev/null
        # About 10 pages of state, so that the disk runs out inside the write of the
        # new version for several of the sizes below, and after it for others.
        log=$(head -c 10000 /dev/zero | tr '\0' x)
        for s in s1 s2 s3 s4; do "$BIN" --dir "$D" step complete $s --command make --exit-code 0 --stdout "$log" >/dev/null; done
        cd "$D/.checklist"
        listing() { stat -c '%n %i %h' state.yaml .backup/state.yaml.* | sort; }
        dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null || true
        for pages in $(seq 0 32); do
            rm -f "$D/filler"
            dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null || true
            [ "$pages" -gt 0 ] && truncate -s -$((pages * 4))K "$D/filler"
            listing >"$OUT/before-$pages"
            set +e
            "$BIN" --dir "$D" step complete "free-$pages" >/dev/null 2>"$OUT/stderr-$pages"
            echo $? >"$OUT/code-$pages"
            set -e
            listing >"$OUT/after-$pages"
            ls -a . .backup .locks >"$OUT/files-$pages"
        done
        rm -f "$D/filler"
        "$BIN" --dir "$D" --json backup list >"$OUT/backups.json"
        for id in $("$BIN" --dir "$D" --json backup list | grep -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'); do
            "$BIN" --dir "$D" backup restore "$id" >/dev/null
        done
        "$BIN" --dir "$D" verify >/dev/null
        echo restored >"$OUT/restored"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    let mut failures = 0;
    let mut successes = 0;
    for pages in 0..=32 {
        let exit: i32 = read(out.path().join(format!("code-{pages}")))
            .trim()
            .parse()
            .unwrap();
        let before = read(out.path().join(format!("before-{pages}")));
        let after = read(out.path().join(format!("after-{pages}")));
        let case = format!("{pages} pages free, exit {exit}");
        let mut live = None;
        for line in after.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (name, inode, links) = (fields[0], fields[1], fields[2]);
            assert_eq!(links, "1", "{case}: {name} has {links} names:\n{after}");
            if name == "state.yaml" {
                live = Some(inode.to_owned());
            } else {
                assert_ne!(
                    Some(inode),
                    live.as_deref(),
                    "{case}: {name} is the live state file:\n{after}"
                );
            }
        }
        if exit == 0 {
            successes += 1;
        } else {
            failures += 1;
            let err = read(out.path().join(format!("stderr-{pages}")));
            assert_eq!(exit, 1, "{case}: {err}");
            assert!(err.contains("the disk is full"), "{case}: {err}");
            if before.lines().find(|l| l.starts_with("state.yaml "))
                == after.lines().find(|l| l.starts_with("state.yaml "))
            {
                assert_eq!(before, after, "{case}: a failed commit changed the backups");
            }
        }
        assert!(
            no_temp_files(&read(out.path().join(format!("files-{pages}")))),
            "{case}: a temp file was left"
        );
    }
    assert!(
        failures >= 8 && successes >= 1,
        "{failures} failed, {successes} committed: the disk did not run out at several steps"
    );
    assert_eq!(read(out.path().join("restored")).trim(), "restored");
}

#[test]
fn a_read_only_file_system_fails_the_write_with_advice_and_keeps_the_state() {
    let (project, out, state) = project_with_a_step();
    let before = std::fs::read(&state).unwrap();
    let script = r#"
        mount --bind "$D" "$D"
        mount -o remount,bind,ro "$D"
        set +e
        "$BIN" --dir "$D" step complete test 2>"$OUT/stderr" >/dev/null
        echo $? >"$OUT/code"
        "$BIN" --dir "$D" verify >"$OUT/verify" 2>&1
        echo $? >"$OUT/verify-code"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    let exit: i32 = read(out.path().join("code")).trim().parse().unwrap();
    assert_refusal(
        "read-only file system",
        exit,
        &read(out.path().join("stderr")),
        "the file system is read-only: remount it read-write",
    );
    // Reading still works on a read-only mount.
    assert_eq!(
        read(out.path().join("verify-code")).trim(),
        "0",
        "{}",
        read(out.path().join("verify"))
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);
    ok(project.path(), &["verify"]);
    assert!(support_temp_files(project.path()).is_empty());
}

/// A recovery that runs out of inodes part-way: before, the quarantined copy stayed
/// without its note, listed nowhere, one more on every attempt. Now a failed
/// quarantine takes its copy back out; the corrupt bytes are still the state file's,
/// and the next recovery, with inodes free again, succeeds.
#[test]
fn a_recovery_out_of_inodes_leaves_no_quarantined_file_without_its_note() {
    let project = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = r#"
        mount -t tmpfs -o size=2m,nr_inodes=128 tmpfs "$D"
        "$BIN" --dir "$D" init >/dev/null
        "$BIN" --dir "$D" start --template release --step a >/dev/null
        "$BIN" --dir "$D" step complete a >/dev/null
        "$BIN" --dir "$D" step complete b >/dev/null
        # A first recovery creates quarantine/, so the second needs no new directory.
        echo '{{' >"$D/.checklist/state.yaml"
        "$BIN" --dir "$D" recover >/dev/null
        echo '{{' >"$D/.checklist/state.yaml"
        i=0; while touch "$D/fill-$i" 2>/dev/null; do i=$((i+1)); done
        # Inodes for the lock (its temp file, its liveness file and the link that is
        # .lock: tmpfs counts a link as an inode) and the quarantine's link, none for
        # the note.
        rm "$D/fill-0" "$D/fill-1" "$D/fill-2"
        set +e
        "$BIN" --dir "$D" recover >/dev/null 2>"$OUT/stderr"
        echo $? >"$OUT/code"
        set -e
        ls -A "$D/.checklist/quarantine" >"$OUT/quarantine"
        cp "$D/.checklist/state.yaml" "$OUT/state"
        rm -f "$D"/fill-*
        "$BIN" --dir "$D" recover >/dev/null
        "$BIN" --dir "$D" verify >/dev/null
        ls -A "$D/.checklist/quarantine" >"$OUT/quarantine-after"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    let err = read(out.path().join("stderr"));
    assert_eq!(read(out.path().join("code")).trim(), "1", "{err}");
    assert!(err.contains("no free inodes"), "{err}");
    assert!(err.contains(".why.yaml"), "the note is what failed: {err}");
    assert_eq!(
        read(out.path().join("state")),
        "{{\n",
        "the corrupt bytes stay in place"
    );
    for listing in ["quarantine", "quarantine-after"] {
        let names = read(out.path().join(listing));
        let kept: Vec<&str> = names.lines().filter(|n| !n.ends_with(".why.yaml")).collect();
        for name in &kept {
            assert!(
                names.lines().any(|n| n == format!("{name}.why.yaml")),
                "{listing}: {name} has no note:\n{names}"
            );
        }
        let expected = if listing == "quarantine" { 1 } else { 2 };
        assert_eq!(kept.len(), expected, "{listing}:\n{names}");
    }
}

/// `checklist conformance` on a nearly full disk, the one the user's store lives on:
/// cases fail for want of space, and their directories must not stay and take the
/// last of it. Afterwards the free space is what it was, and the project's store
/// still takes a commit.
#[test]
fn conformance_on_a_nearly_full_disk_gives_back_all_the_space_it_used() {
    let project = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = r#"
        mount -t tmpfs -o size=4m "$D" "$D"
        "$BIN" --dir "$D" init >/dev/null
        "$BIN" --dir "$D" start --template release --step build >/dev/null
        dd if=/dev/zero of="$D/filler" bs=1k count=3600 2>/dev/null
        df --output=avail "$D" | tail -1 >"$OUT/before"
        set +e
        "$BIN" --dir "$D" conformance >"$OUT/stdout" 2>"$OUT/stderr"
        echo $? >"$OUT/code"
        set -e
        df --output=avail "$D" | tail -1 >"$OUT/after"
        ls -A "$D" >"$OUT/left"
        "$BIN" --dir "$D" step complete build >/dev/null
        echo committed >"$OUT/next"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    let stdout = read(out.path().join("stdout"));
    assert_eq!(
        read(out.path().join("code")).trim(),
        "1",
        "some cases must fail for want of space: {stdout}"
    );
    assert!(stdout.contains("--keep-failed"), "{stdout}");
    assert_eq!(
        read(out.path().join("before")).trim(),
        read(out.path().join("after")).trim(),
        "the run kept some of the space it used"
    );
    let left = read(out.path().join("left"));
    assert!(!left.contains(".checklist-conformance-"), "{left}");
    assert_eq!(read(out.path().join("next")).trim(), "committed");
}

/// A corrupt state on a read-only mount: automatic recovery cannot write, and the
/// command says the state is corrupted (exit 5, as `verify` does) and why it was not
/// recovered — not only that the disk is read-only.
#[test]
fn a_corrupt_state_on_a_read_only_file_system_is_reported_as_corrupt() {
    let (project, out, state) = project_with_a_step();
    let corrupt = std::fs::read_to_string(&state).unwrap().replace("build", "bui1d");
    std::fs::write(&state, &corrupt).unwrap();
    let script = r#"
        mount --bind "$D" "$D"
        mount -o remount,bind,ro "$D"
        set +e
        "$BIN" --dir "$D" status >/dev/null 2>"$OUT/status"
        echo $? >"$OUT/status-code"
        "$BIN" --dir "$D" verify >/dev/null 2>"$OUT/verify"
        echo $? >"$OUT/verify-code"
    "#;
    in_mount_namespace(script, project.path(), out.path());
    for command in ["status", "verify"] {
        let err = read(out.path().join(command));
        let exit = read(out.path().join(format!("{command}-code")));
        assert_eq!(exit.trim(), "5", "{command}: {err}");
        assert!(
            err.contains("is corrupted (checksum_mismatch)"),
            "{command}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{command}: {err}");
    }
    let status = read(out.path().join("status"));
    assert!(
        status.contains("read-only"),
        "say why it was not recovered: {status}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), corrupt);
    // Once the store can be written again, the next command recovers it.
    ok(project.path(), &["status"]);
}

/// A project whose state holds one completed step, a directory for a script's results,
/// and the state file's path.
fn project_with_a_step() -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let project = tempfile::tempdir().unwrap();
    ok(project.path(), &["init"]);
    ok(
        project.path(),
        &["start", "--template", "release", "--step", "build"],
    );
    ok(project.path(), &["step", "complete", "build"]);
    let state = project.path().join(".checklist/state.yaml");
    (project, tempfile::tempdir().unwrap(), state)
}

fn support_temp_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.join(".checklist")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if entry.file_name().to_string_lossy().contains(".tmp-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Makes the existing store readable by everyone and writable by nobody but its owner
/// (as root, the test then runs the binary as `nobody`); as an ordinary user, takes
/// the write permission away from the owner too.
fn make_store_unwritable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            0o555
        } else {
            0o444
        };
        let mode = if is_root() { mode | 0o200 } else { mode };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn make_store_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Runs the binary as a user who may read the store but not write it.
fn as_reader(root: &Path, args: &[&str]) -> Output {
    if is_root() {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .arg("--dir")
            .arg(root)
            .args(args)
            .env_remove("CHECKLIST_DIR")
            .output()
            .expect("run setpriv (util-linux)")
    } else {
        checklist(root, args)
    }
}

#[test]
fn a_refused_permission_fails_the_write_with_advice_and_keeps_the_state() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "release", "--step", "build"]);
    ok(root, &["step", "complete", "build"]);
    let state = root.join(".checklist/state.yaml");
    let before = std::fs::read(&state).unwrap();
    make_store_unwritable(root);

    let out = as_reader(root, &["step", "complete", "test"]);
    assert_refusal(
        "permission denied",
        code(&out),
        &stderr(&out),
        "permission denied: run as the user who owns .checklist/",
    );
    let verify = as_reader(root, &["verify"]);
    assert_eq!(code(&verify), 0, "a reader may still verify: {}", stderr(&verify));

    make_store_writable(root);
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert!(support_temp_files(root).is_empty());
    ok(root, &["verify"]);
    ok(root, &["step", "complete", "test"]);
}

#[test]
fn a_store_deleted_between_commands_is_reported_as_not_initialized() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "release", "--step", "build"]);
    std::fs::remove_dir_all(root.join(".checklist")).unwrap();
    for args in [&["status"][..], &["step", "complete", "build"], &["verify"]] {
        let out = checklist(root, args);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{args:?}: {err}");
        assert!(
            err.contains(".checklist") && err.contains("checklist init"),
            "{args:?}: {err}"
        );
        assert!(!root.join(".checklist").exists(), "{args:?} recreated the store");
    }
}

#[test]
fn a_state_file_deleted_between_commands_is_restored_from_the_backups_it_left() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "release", "--step", "build"]);
    ok(root, &["step", "complete", "build"]);
    ok(root, &["backup", "create"]);
    std::fs::remove_file(root.join(".checklist/state.yaml")).unwrap();
    // The next command finds the state gone while its backups and audit trail are
    // there: it restores the newest backup, says so in one line, and goes on.
    let out = checklist(root, &["step", "complete", "test"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("state.yaml was missing; restored backup"), "{err}");
    assert!(err.contains("no committed change was lost"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let verify = ok(root, &["verify"]);
    assert!(
        verify.contains("revision 5"),
        "restored as 4, then the step: {verify}"
    );
}

/// Whether `program` is on the PATH (or at an absolute path).
fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The FUSE tools the FAT and exFAT tests need, or why they cannot run. `.ci/run`
/// installs them and sets `CHECKLIST_REQUIRE_FUSE_FAT=1`, which turns their absence
/// into a failure instead of a skip.
#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so where cargo test shows it"
)]
fn fuse_fat_tools() -> Option<()> {
    let missing: Vec<&str> = [
        "mkfs.vfat",
        "fusefat",
        "mkfs.exfat",
        "mount.exfat-fuse",
        "fusermount",
        "losetup",
    ]
    .into_iter()
    .filter(|p| !installed(p))
    .collect();
    if missing.is_empty() && Path::new("/dev/fuse").exists() && is_root() {
        return Some(());
    }
    let why = format!(
        "needs root, /dev/fuse and {} (Debian: dosfstools fusefat exfatprogs exfat-fuse)",
        missing.join(", ")
    );
    assert!(
        std::env::var_os("CHECKLIST_REQUIRE_FUSE_FAT").is_none(),
        "the FAT and exFAT tests cannot run: {why}"
    );
    eprintln!(
        "SKIPPED: the FAT and exFAT init refusal on a real FUSE mount {why}; the fault-seam version runs in backends/tests/integration/store_faults.rs"
    );
    None
}

/// Runs `init` on a FUSE-mounted FAT (`fusefat`) or exFAT (`exfat-fuse`, on a loop
/// device) image, and returns its exit code, stderr and what is left on the image.
fn init_on(file_system: &str) -> (i32, String, String) {
    let work = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = match file_system {
        "fat" => {
            r#"
            truncate -s 8M "$OUT/img"; mkfs.vfat "$OUT/img" >/dev/null
            fusefat -o rw+ "$OUT/img" "$D" >/dev/null
            trap 'fusermount -u "$D"' EXIT
        "#
        }
        _ => {
            r#"
            truncate -s 8M "$OUT/img"; mkfs.exfat "$OUT/img" >/dev/null
            loop=$(losetup -f --show "$OUT/img")
            mount.exfat-fuse "$loop" "$D" >/dev/null 2>&1
            trap 'fusermount -u "$D"; losetup -d "$loop"' EXIT
        "#
        }
    };
    let script = format!(
        r#"{script}
            set +e
            "$BIN" --dir "$D" init >/dev/null 2>"$OUT/stderr"
            echo $? >"$OUT/code"
            ls -A "$D" >"$OUT/left"
        "#
    );
    let output = Command::new("sh")
        .args(["-euc", &script])
        .env("BIN", bin())
        .env("D", work.path())
        .env("OUT", out.path())
        .env_remove("CHECKLIST_DIR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{file_system}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        read(out.path().join("code")).trim().parse().unwrap(),
        read(out.path().join("stderr")),
        read(out.path().join("left")),
    )
}

/// FAT and exFAT have no hard links, which the lock needs: `init` used to succeed
/// there, and every write after it said "permission denied: run as the user who owns
/// .checklist/" — as root. Now init says what the file system lacks, points at
/// `checklist conformance`, and leaves nothing behind.
#[test]
fn init_on_fat_and_exfat_says_what_the_file_system_lacks_and_creates_nothing() {
    if fuse_fat_tools().is_none() {
        return;
    }
    for file_system in ["fat", "exfat"] {
        let (exit, err, left) = init_on(file_system);
        assert_eq!(exit, 1, "{file_system}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file_system}: {err}");
        assert!(
            err.contains("does not support hard links"),
            "{file_system}: {err}"
        );
        assert!(err.contains("checklist conformance"), "{file_system}: {err}");
        assert!(!err.contains("permission denied"), "{file_system}: {err}");
        assert_eq!(left.trim(), "", "{file_system}: init left {left}");
    }
}
