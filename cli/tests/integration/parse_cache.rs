//! The verified parse cache in `.checklist/.cache/` (docs/decisions/0024-verified-parse-cache.md),
//! seen from real processes: a command reads what an earlier one verified, and nothing
//! it keeps can make a command see anything but what reading the state file gives.

use std::path::Path;

use crate::support::{checklist, code, json, ok, stderr};

fn cache_file(root: &Path) -> std::path::PathBuf {
    root.join(".checklist/.cache/verified.state.yaml.json")
}

/// The key line of the cache file: the hash it says it holds the parse of.
fn cached_hash(root: &Path) -> String {
    let text = std::fs::read_to_string(cache_file(root)).unwrap();
    let key: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    key["sha256"].as_str().unwrap().to_owned()
}

fn state_hash(root: &Path) -> String {
    checklist_core::quarantine::bytes_sha256(&std::fs::read(root.join(".checklist/state.yaml")).unwrap())
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init"]);
    ok(root, &["start", "--template", "t"]);
    ok(root, &["step", "complete", "build"]);
    ok(root, &["step", "complete", "test"]);
    dir
}

#[test]
fn every_commit_leaves_the_parse_of_what_it_wrote_for_the_next_command() {
    let dir = project();
    let root = dir.path();
    assert_eq!(cached_hash(root), state_hash(root));
    let before = std::fs::read(cache_file(root)).unwrap();
    let status = json(root, &["status"]);
    assert_eq!(status["completedSteps"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read(cache_file(root)).unwrap(),
        before,
        "a hit rewrites nothing"
    );
    // Deleting .cache/ is always safe: the next read verifies and caches again.
    std::fs::remove_file(cache_file(root)).unwrap();
    assert_eq!(json(root, &["status"]), status);
    assert_eq!(cached_hash(root), state_hash(root));
}

#[test]
fn a_hand_edit_of_the_same_size_and_mtime_is_verified_not_read_from_the_cache() {
    let dir = project();
    let root = dir.path();
    let state = root.join(".checklist/state.yaml");
    let modified = std::fs::metadata(&state).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&state).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let at = text.find("build").unwrap();
    bytes[at..at + 5].copy_from_slice(b"bUild");
    std::fs::write(&state, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&state)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_ne!(cached_hash(root), state_hash(root));
    let out = checklist(root, &["verify"]);
    assert_eq!(
        code(&out),
        5,
        "the stale checksum must be caught: {}",
        stderr(&out)
    );
}

#[test]
fn a_cache_of_another_store_a_newer_format_or_a_damaged_one_gives_what_the_file_gives() {
    let dir = project();
    let root = dir.path();
    let truth = json(root, &["status"]);
    let other = tempfile::tempdir().unwrap();
    ok(other.path(), &["init"]);
    ok(other.path(), &["start", "--template", "other"]);
    let foreign = std::fs::read(cache_file(other.path())).unwrap();
    let own = std::fs::read_to_string(cache_file(root)).unwrap();
    // A newer build's cache of these very bytes, holding something else.
    let (key, _) = own.split_once('\n').unwrap();
    let foreign_state = String::from_utf8(foreign.clone()).unwrap();
    let (_, other_state) = foreign_state.split_once('\n').unwrap();
    let newer = format!("{}\n{other_state}", key.replace("\"format\":1", "\"format\":2"));
    for (what, cache) in [
        ("another store's cache", foreign),
        ("a newer format's cache", newer.into_bytes()),
        ("an empty cache", Vec::new()),
        ("a torn cache", own.as_bytes()[..own.len() / 2].to_vec()),
    ] {
        std::fs::write(cache_file(root), &cache).unwrap();
        assert_eq!(json(root, &["status"]), truth, "{what}");
        assert_eq!(cached_hash(root), state_hash(root), "{what} is replaced");
    }
}
