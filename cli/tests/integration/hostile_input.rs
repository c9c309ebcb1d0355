//! Hostile documents through the real binary: the state, config.yaml, the lock file,
//! the backup manifest and history.yaml, each replaced by an alias bomb, 10,000 levels
//! of nesting, an oversized or non-UTF-8 file, a tag, an absurd number, an empty file,
//! a directory or a FIFO. The command must exit with the documented code and one
//! stderr sentence naming the file, never panic, and leave the state and its backups
//! exactly as they were.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{checklist, code, ok, stderr};

const DEEP: usize = 10_000;

fn billion_laughs() -> String {
    let mut text =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    text
}

/// What is put in the document's place.
enum Input {
    Bytes(&'static str, Vec<u8>),
    Oversized(u64),
    Directory,
    /// A named pipe: opening it for reading would block forever if followed.
    #[cfg(unix)]
    Fifo,
}

impl Input {
    fn name(&self) -> &'static str {
        match self {
            Self::Bytes(name, _) => name,
            Self::Oversized(_) => "over the size limit",
            Self::Directory => "a directory",
            #[cfg(unix)]
            Self::Fifo => "a FIFO",
        }
    }

    fn plant(&self, path: &Path) {
        remove_any(path);
        match self {
            Self::Bytes(_, bytes) => std::fs::write(path, bytes).unwrap(),
            Self::Oversized(limit) => std::fs::File::create(path).unwrap().set_len(limit + 1).unwrap(),
            Self::Directory => std::fs::create_dir(path).unwrap(),
            #[cfg(unix)]
            Self::Fifo => {
                let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
                assert!(made.success(), "mkfifo {}", path.display());
            }
        }
    }
}

fn inputs(limit: u64) -> Vec<Input> {
    vec![
        Input::Bytes("alias bomb", billion_laughs().into_bytes()),
        Input::Bytes(
            "deep flow nesting",
            format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP)).into_bytes(),
        ),
        Input::Bytes(
            "deep block nesting",
            format!("{}x\n", "- ".repeat(DEEP)).into_bytes(),
        ),
        Input::Bytes("non-UTF-8 bytes", b"version: 1\nrevision: \xff\xfe\n".to_vec()),
        Input::Bytes("duplicate keys", b"version: 1\nversion: 1\n".to_vec()),
        Input::Bytes("!!binary tag", b"version: !!binary aGVsbG8=\n".to_vec()),
        Input::Bytes(
            "!!python/object tag",
            b"version: !!python/object:os.system {}\n".to_vec(),
        ),
        Input::Bytes("custom tag", b"version: !custom 1\n".to_vec()),
        Input::Bytes(
            "huge numbers",
            b"version: 1e400\nrevision: 1180591620717411303424\n".to_vec(),
        ),
        Input::Bytes("NaN", b"version: .nan\nrevision: .inf\n".to_vec()),
        Input::Bytes(
            "wrong types",
            b"version: [1]\nbackend: 7\nbackups: 3\ninstances: x\n".to_vec(),
        ),
        Input::Bytes("empty file", Vec::new()),
        Input::Oversized(limit),
        Input::Directory,
        #[cfg(unix)]
        Input::Fifo,
    ]
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// The state file and every backup file with their bytes.
fn last_good_state(store: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let state = store.join("state.yaml");
    if state.is_file() {
        files.insert(state.clone(), std::fs::read(&state).unwrap());
    }
    for entry in std::fs::read_dir(store.join(".backup")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.ends_with("manifest.yaml") {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// A project with a state, two backups and an archived instance.
fn project() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    ok(dir, &["init"]);
    ok(dir, &["start", "--template", "old", "--step", "a"]);
    ok(dir, &["step", "complete", "a"]);
    ok(dir, &["archive", "--as", "completed"]);
    ok(dir, &["start", "--template", "release", "--step", "build"]);
    ok(dir, &["step", "complete", "build"]);
    ok(dir, &["backup", "create"]);
    root
}

/// Plants each input at `document` and runs `args`; the exit code must be one of
/// `codes` and stderr one line naming the document, with the state and its backups
/// unchanged. The inputs named in `harmless` are valid documents by design (an empty
/// config.yaml means the defaults; an unknown tag is ignored and the plain value
/// checked): the command must succeed on them, still changing nothing.
fn each_input_is_refused(document: &str, limit: u64, args: &[&str], codes: &[i32], harmless: &[&str]) {
    let root = project();
    let store = root.path().join(".checklist");
    let path = store.join(document);
    let original = std::fs::read(&path).ok();
    for input in inputs(limit) {
        let case = format!("{document} / {}", input.name());
        input.plant(&path);
        let before = last_good_state(&store);
        let out = checklist(root.path(), args);
        let err = stderr(&out);
        if harmless.contains(&input.name()) {
            assert_eq!(code(&out), 0, "{case}: {err}");
            assert!(
                last_good_state(&store) == before,
                "{case}: the state or a backup changed"
            );
            remove_any(&path);
            std::fs::write(&path, original.as_ref().unwrap()).unwrap();
            continue;
        }
        assert!(
            codes.contains(&code(&out)),
            "{case}: exit {} not in {codes:?}: {err}",
            code(&out)
        );
        let file_name = Path::new(document)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            err.contains(&file_name),
            "{case}: stderr must name {file_name}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{case}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{case}: one sentence: {err}");
        assert!(
            last_good_state(&store) == before,
            "{case}: the state or a backup changed"
        );
        remove_any(&path);
        if let Some(bytes) = &original {
            std::fs::write(&path, bytes).unwrap();
        }
    }
    ok(root.path(), &["verify"]);
}

#[test]
fn a_hostile_state_file_is_refused_by_verify() {
    // 5: corrupted; 8: a schemaVersion this build cannot read; 1: too large or not a
    // regular file.
    each_input_is_refused("state.yaml", 64 * 1024 * 1024, &["verify"], &[1, 5, 8], &[]);
}

#[test]
fn a_hostile_config_file_is_refused() {
    each_input_is_refused(
        "config.yaml",
        1024 * 1024,
        &["status"],
        &[1],
        &["custom tag", "empty file"],
    );
}

#[test]
fn a_hostile_lock_file_times_out_a_writer() {
    // A lock file that cannot be parsed counts as held (it may be mid-write), so a
    // writer times out naming it (4); one that cannot even be read is an I/O error (1).
    each_input_is_refused(
        ".lock",
        64 * 1024,
        &["--lock-timeout", "200", "step", "complete", "test"],
        &[1, 4],
        &[],
    );
}

#[test]
fn a_hostile_backup_manifest_is_refused() {
    each_input_is_refused(
        ".backup/manifest.yaml",
        16 * 1024 * 1024,
        &["backup", "list"],
        &[1],
        &["custom tag"],
    );
}

#[test]
fn a_hostile_history_is_refused() {
    each_input_is_refused(
        "history.yaml",
        16 * 1024 * 1024,
        &["archive", "--list"],
        &[1],
        &["custom tag"],
    );
}

/// A state over the size limit configured in config.yaml is refused with a sentence
/// that names the setting.
#[test]
fn the_state_size_limit_comes_from_config_yaml() {
    let root = project();
    let store = root.path().join(".checklist");
    let config = store.join("config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text.replace("maxStateBytes: 67108864", "maxStateBytes: 65536");
    assert_ne!(
        limited, text,
        "init writes the default limit into config.yaml: {text}"
    );
    std::fs::write(&config, limited).unwrap();
    ok(root.path(), &["verify"]);
    let state = store.join("state.yaml");
    let mut bytes = std::fs::read(&state).unwrap();
    bytes.extend(std::iter::repeat_n(b'#', 70_000));
    bytes.push(b'\n');
    std::fs::write(&state, &bytes).unwrap();
    let out = checklist(root.path(), &["verify"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("state.yaml") && err.contains("65536") && err.contains("limits.maxStateBytes"),
        "{err}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), bytes);
}

/// A lock file that does not parse keeps writers out until it is stale, so `lock status`
/// and `status` must not call the lock free: they say it is held by an unreadable lock
/// file, when it last changed and when a waiter takes it over.
#[test]
fn an_unparseable_lock_file_is_shown_as_held() {
    let root = project();
    let lock = root.path().join(".checklist/.lock");
    std::fs::write(&lock, b"{\"lockId\": [not a lock").unwrap();

    let text = ok(root.path(), &["lock", "status"]);
    assert!(
        text.contains(&format!(
            "{} is held by a lock file that cannot be read",
            lock.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("takes it over at") && text.contains("30000 ms"),
        "{text}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(root.path(), &["--json", "lock", "status"])).unwrap();
    assert!(json["holder"].is_null(), "{json}");
    assert!(json["unreadable"]["modifiedAt"].is_string(), "{json}");

    let status = ok(root.path(), &["status"]);
    assert!(
        status.contains("Lock:      held by a lock file that cannot be read"),
        "{status}"
    );

    let out = checklist(
        root.path(),
        &["--lock-timeout", "200", "step", "complete", "test"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(std::fs::read(&lock).unwrap(), b"{\"lockId\": [not a lock");
}
