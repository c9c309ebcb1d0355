//! `checklist diff` and `checklist backup restore --revision`, run as the real binary
//! against stores with several revisions held (docs/decisions/0026-diff-and-revisions.md).

use std::path::Path;

use serde_json::Value;

use crate::support::{checklist, code, json, ok, stderr};

/// The four commits after `init` that make revisions 2 to 5: a start, a failed step,
/// the step again with a command, the instance archived.
pub(crate) const FOUR_COMMITS: [&[&str]; 4] = [
    &["start", "--template", "deploy", "--step", "build"],
    &[
        "step",
        "complete",
        "build",
        "--result",
        "failure",
        "--duration-ms",
        "5",
    ],
    &[
        "step",
        "complete",
        "build",
        "--command",
        "make a/b~c",
        "--exit-code",
        "0",
        "--stdout",
        "built",
    ],
    &["archive", "--as", "completed"],
];

/// A store of `backend` whose revisions 1 to 5 are all held (revision 5 live, 1 to 4 as
/// commit backups), each made by a real commit, with the document `export --format
/// json` printed at each revision, in order.
fn five_revisions(backend: &str) -> (tempfile::TempDir, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["init", "--backend", backend]);
    set_backups_kept(root, 10);
    let mut documents = vec![exported(root)];
    for args in FOUR_COMMITS {
        ok(root, args);
        documents.push(exported(root));
    }
    for (revision, document) in (1..).zip(&documents) {
        assert_eq!(document["revision"], revision, "{document}");
    }
    (dir, documents)
}

fn exported(root: &Path) -> Value {
    serde_json::from_str(&ok(root, &["export", "--format", "json"])).unwrap()
}

pub(crate) fn set_backups_kept(root: &Path, keep: usize) {
    let config = root.join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let at = text
        .find("keep: ")
        .unwrap_or_else(|| panic!("no backup keep in {text}"));
    let end = at + text[at..].find([',', '\n', '}']).unwrap();
    let text = format!("{}keep: {keep}{}", &text[..at], &text[end..]);
    std::fs::write(&config, text).unwrap();
}

/// Applies the RFC 6902 operations `add`, `remove`, `replace`, `move`, `copy` and
/// `test` to `document`, written from the RFC (not from checklist's code): the patch
/// `checklist diff --json` prints is checked against it.
pub(crate) fn apply(document: &Value, patch: &Value) -> Value {
    let mut document = document.clone();
    for operation in patch.as_array().expect("a JSON Patch is an array") {
        let op = operation["op"].as_str().unwrap();
        let path = operation["path"].as_str().unwrap();
        match op {
            "add" => add(&mut document, path, operation["value"].clone()),
            "remove" => {
                remove(&mut document, path);
            }
            "replace" => {
                remove(&mut document, path);
                add(&mut document, path, operation["value"].clone());
            }
            "move" => {
                let value = remove(&mut document, operation["from"].as_str().unwrap());
                add(&mut document, path, value);
            }
            "copy" => {
                let value = document
                    .pointer(operation["from"].as_str().unwrap())
                    .unwrap()
                    .clone();
                add(&mut document, path, value);
            }
            "test" => assert_eq!(document.pointer(path), Some(&operation["value"])),
            other => panic!("{other:?} is not an RFC 6902 operation"),
        }
    }
    document
}

fn split(path: &str) -> (String, String) {
    let at = path
        .rfind('/')
        .unwrap_or_else(|| panic!("{path:?} has no parent"));
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    (path[..at].to_owned(), last)
}

fn add(document: &mut Value, path: &str, value: Value) {
    if path.is_empty() {
        *document = value;
        return;
    }
    let (parent, last) = split(path);
    match document
        .pointer_mut(&parent)
        .unwrap_or_else(|| panic!("no {parent:?}"))
    {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => items.insert(last.parse().unwrap(), value),
        other => panic!("add under a scalar {other}"),
    }
}

fn remove(document: &mut Value, path: &str) -> Value {
    if path.is_empty() {
        return std::mem::take(document);
    }
    let (parent, last) = split(path);
    match document
        .pointer_mut(&parent)
        .unwrap_or_else(|| panic!("no {parent:?}"))
    {
        Value::Object(map) => map
            .shift_remove(&last)
            .unwrap_or_else(|| panic!("nothing at {path}")),
        Value::Array(items) => items.remove(last.parse().unwrap()),
        other => panic!("remove under a scalar {other}"),
    }
}

/// For every ordered pair of the five revisions, the patch `diff A B --json` prints
/// turns A's exported document into exactly B's.
fn every_pair_patches_exactly(backend: &str) {
    let (dir, documents) = five_revisions(backend);
    let root = dir.path();
    for (a, from) in (1..).zip(&documents) {
        for (b, to) in (1..).zip(&documents) {
            let args = ["diff", &a.to_string(), &b.to_string()];
            let patch = json(root, &args);
            assert_eq!(&apply(from, &patch), to, "{backend}: diff {a} {b} gave {patch:#}");
            if a == b {
                assert_eq!(patch, Value::Array(vec![]), "{backend}: diff {a} {a}");
            }
        }
    }
}

#[test]
fn the_patch_of_every_pair_of_five_revisions_gives_exactly_the_second() {
    every_pair_patches_exactly("yaml");
    every_pair_patches_exactly("json");
}

#[cfg(feature = "sqlite")]
#[test]
fn the_patch_of_every_pair_of_five_revisions_gives_exactly_the_second_on_sqlite() {
    every_pair_patches_exactly("sqlite");
}

#[test]
fn the_summary_lists_steps_and_instance_fields_and_the_defaults_end_at_the_live_state() {
    let (dir, documents) = five_revisions("yaml");
    let root = dir.path();

    let summary = ok(root, &["diff", "2", "4"]);
    assert!(summary.starts_with("Revision 2 -> 4 of "), "{summary}");
    assert!(
        summary.contains("Steps added:\n  + build (failure)\n  + build #2 (success)\n"),
        "{summary}"
    );
    let id = documents[1]["activeInstance"]["id"].as_str().unwrap();
    assert!(
        summary.contains(&format!("Instance {id}:\n  lastModifiedAt: ")),
        "{summary}"
    );
    assert!(
        !summary.contains("\u{1b}["),
        "no colour codes off a terminal: {summary}"
    );

    let summary = ok(root, &["diff", "3", "5"]);
    assert!(
        summary.contains(&format!("Instance {id} removed.\n")),
        "{summary}"
    );
    assert!(
        summary.contains("Steps removed:\n  - build (failure)\n"),
        "{summary}"
    );
    let summary = ok(root, &["diff", "1", "2"]);
    assert!(
        summary.contains(&format!("Instance {id} added:\n  id: (absent) -> \"{id}\"")),
        "{summary}"
    );

    let summary = ok(root, &["diff", "3", "3"]);
    assert!(summary.ends_with("the same document.\n"), "{summary}");

    // No revision: the newest backup's (4) to the live state's (5); one: REV to live.
    assert_eq!(json(root, &["diff"]), json(root, &["diff", "4", "5"]));
    assert_eq!(json(root, &["diff", "2"]), json(root, &["diff", "2", "5"]));
    assert_eq!(apply(&documents[1], &json(root, &["diff", "2"])), documents[4]);
}

#[test]
fn a_revision_not_held_names_the_oldest_held_and_a_damaged_backup_is_named() {
    let (dir, _) = five_revisions("json");
    let root = dir.path();
    let out = checklist(root, &["diff", "9"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("oldest revision held is 1"),
        "{}",
        stderr(&out)
    );

    // Keep 2 backups: revisions 1 and 2 are no longer held.
    set_backups_kept(root, 2);
    ok(root, &["backup", "prune"]);
    let out = checklist(root, &["--json", "diff", "1", "4"]);
    assert_eq!(code(&out), 1);
    let message = stderr(&out);
    assert!(
        message.contains("revision 1 is no longer held") && message.contains("the oldest revision held is 3"),
        "{message}"
    );
    assert!(message.contains("`checklist backup list`"), "{message}");
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "revision_not_held");
    assert_eq!(error["error"]["oldest"], 3);
    assert_eq!(error["error"]["held"], serde_json::json!([3, 4, 5]));

    // A backup that no longer verifies is never diffed: the corruption error names it.
    let listed = json(root, &["backup", "list"]);
    let backup = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["revision"] == 3)
        .unwrap()
        .clone();
    let file = root
        .join(".checklist/.backup")
        .join(backup["file"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("deploy", "deplox", 1)).unwrap();
    let out = checklist(root, &["diff", "3", "4"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(backup["id"].as_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restore_by_revision_restores_the_backup_holding_it() {
    let (dir, documents) = five_revisions("json");
    let root = dir.path();
    let restored = json(root, &["backup", "restore", "--revision", "3"]);
    assert_eq!(restored["revision"], 6);
    assert_eq!(restored["restore"]["backup"]["revision"], 3);
    assert_eq!(restored["restore"]["replaced"]["revision"], 5);
    // The live state is revision 3's document at a new revision.
    let patch = json(root, &["diff", "3", "6"]);
    let mut expected = documents[2].clone();
    let live = exported(root);
    expected["revision"] = live["revision"].clone();
    expected["checksum"] = live["checksum"].clone();
    assert_eq!(apply(&documents[2], &patch), expected);
    assert!(ok(root, &["diff", "3"]).contains("nothing else differs"));

    // The live revision is not a backup to restore; an unknown one names the oldest.
    let out = checklist(root, &["backup", "restore", "--revision", "6"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("revision 6 is the live state"),
        "{}",
        stderr(&out)
    );
    let out = checklist(root, &["backup", "restore", "--revision", "0"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("oldest revision held is 1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json(root, &["status"])["revision"], 6, "nothing changed");

    // Exactly one of ID and --revision.
    let id = json(root, &["backup", "list"])["backups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        code(&checklist(root, &["backup", "restore", &id, "--revision", "3"])),
        2
    );
    assert_eq!(code(&checklist(root, &["backup", "restore"])), 2);
}

#[cfg(feature = "sqlite")]
#[test]
fn restore_by_revision_works_on_sqlite() {
    let (dir, documents) = five_revisions("sqlite");
    let root = dir.path();
    let restored = json(root, &["backup", "restore", "--revision", "2"]);
    assert_eq!(restored["restore"]["backup"]["revision"], 2);
    let live = exported(root);
    assert_eq!(live["activeInstance"], documents[1]["activeInstance"]);
    assert_eq!(live["completedSteps"], documents[1]["completedSteps"]);
}
