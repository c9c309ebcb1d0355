//! Hostile documents: every file the store reads, fed what an attacker or a broken
//! tool could leave there — alias bombs, 10,000 levels of nesting, oversized and
//! non-UTF-8 files, duplicate keys, tags, absurd numbers, wrong types, empty files,
//! a directory or a FIFO in the file's place.
//!
//! Each read must fail (or, for the tolerant readers — quarantine notes and the audit
//! log — skip the bad entry) with an error of a known kind whose message names the
//! file, promptly and without a panic, and must leave every byte of the store as it
//! was: the state, its backups and their index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::common::{project_of, state_with_steps};
use checklist_backends::vfs::RealFs;
use checklist_backends::{
    FileLockProvider, MAX_CONFIG_BYTES, OpenOptions, OpenedStore, builtin_registry, load_config,
    open_project, write_config,
};
use checklist_core::config::{DEFAULT_MAX_STATE_BYTES, Durability};
use checklist_core::lock::LockRequest;
use checklist_core::model::{InstanceStatus, now};
use checklist_core::prelude::*;
use checklist_core::quarantine::QuarantineNote;
use checklist_core::{CorruptionKind, Error, Expectation, LockProvider};

/// One hostile input.
struct Hostile {
    name: &'static str,
    bytes: Vec<u8>,
}

fn hostile(name: &'static str, bytes: impl Into<Vec<u8>>) -> Hostile {
    Hostile {
        name,
        bytes: bytes.into(),
    }
}

/// Nine levels of nine-fold aliases: 387,420,489 strings if expanded.
fn billion_laughs() -> String {
    let mut text =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{previous}"); 9].join(",");
        text.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    text
}

const DEEP: usize = 10_000;

/// What a YAML document can do to its reader.
fn yaml_inputs() -> Vec<Hostile> {
    vec![
        hostile("alias bomb", billion_laughs()),
        hostile(
            "deep flow nesting",
            format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP)),
        ),
        hostile(
            "deep flow mappings",
            format!("{}1{}", "{a: ".repeat(DEEP), "}".repeat(DEEP)),
        ),
        hostile("deep block nesting", format!("{}x\n", "- ".repeat(DEEP))),
        hostile(
            "non-UTF-8 bytes",
            b"schemaVersion: '1.0.0'\nrevision: \xff\xfe\x80\n".to_vec(),
        ),
        hostile(
            "duplicate keys",
            "schemaVersion: '1.0.0'\nrevision: 1\nrevision: 2\n",
        ),
        hostile("!!binary tag", "schemaVersion: !!binary aGVsbG8=\nrevision: 1\n"),
        hostile(
            "custom tag",
            "schemaVersion: !custom '1.0.0'\nrevision: !custom 1\n",
        ),
        hostile(
            "!!python/object tag",
            "schemaVersion: '1.0.0'\nrevision: !!python/object:os.system {args: [rm -rf /]}\n",
        ),
        hostile(
            "huge string",
            format!("schemaVersion: '{}'\n", "x".repeat(4 * 1024 * 1024)),
        ),
        hostile(
            "huge float",
            "schemaVersion: '1.0.0'\nrevision: 1e400\nversion: 1e400\n",
        ),
        hostile(
            "huge integer",
            "schemaVersion: '1.0.0'\nrevision: 1180591620717411303424\nversion: 1180591620717411303424\n",
        ),
        hostile(
            "NaN and infinity",
            "schemaVersion: '1.0.0'\nrevision: .nan\nversion: .inf\n",
        ),
        hostile(
            "wrong types",
            "schemaVersion: [1, 0, 0]\nrevision: seven\nversion: {a: 1}\n",
        ),
        hostile("a list at the top", "- 1\n- 2\n"),
        hostile("too many nodes", "- 1\n".repeat(300_000)),
        hostile("empty file", ""),
    ]
}

/// What a JSON document can do to its reader.
fn json_inputs() -> Vec<Hostile> {
    vec![
        hostile("deep arrays", format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP))),
        hostile(
            "deep objects",
            format!("{}1{}", "{\"a\":".repeat(DEEP), "}".repeat(DEEP)),
        ),
        hostile("non-UTF-8 bytes", b"{\"schemaVersion\": \"\xff\xfe\"}".to_vec()),
        hostile(
            "duplicate keys",
            "{\"schemaVersion\": \"1.0.0\", \"revision\": 1, \"revision\": 2}",
        ),
        hostile(
            "huge string",
            format!("{{\"schemaVersion\": \"{}\"}}", "x".repeat(4 * 1024 * 1024)),
        ),
        hostile(
            "huge float",
            "{\"schemaVersion\": \"1.0.0\", \"revision\": 1e400}",
        ),
        hostile(
            "huge integer",
            "{\"schemaVersion\": \"1.0.0\", \"revision\": 1180591620717411303424}",
        ),
        hostile("NaN", "{\"schemaVersion\": \"1.0.0\", \"revision\": NaN}"),
        hostile("wrong types", "{\"schemaVersion\": [1], \"revision\": \"seven\"}"),
        hostile("too many values", format!("[{}1]", "1,".repeat(300_000))),
        hostile("empty file", ""),
    ]
}

/// What only the file system can put in a document's place.
#[derive(Debug, Clone, Copy)]
enum Planted {
    /// A sparse file one byte over the limit.
    Oversized(u64),
    Directory,
    #[cfg(unix)]
    Fifo,
}

/// Puts one hostile input in a document's place.
type Plant = Box<dyn Fn(&Path)>;

fn plant(path: &Path, planted: Planted) {
    remove_any(path);
    match planted {
        Planted::Oversized(limit) => {
            let file = std::fs::File::create(path).unwrap();
            file.set_len(limit + 1).unwrap();
        }
        Planted::Directory => std::fs::create_dir(path).unwrap(),
        #[cfg(unix)]
        Planted::Fifo => {
            let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
            assert!(made.success(), "mkfifo {}", path.display());
        }
    }
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// Every regular file of the store with its bytes, and every other entry's type, so a
/// before/after comparison sees any change at all.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                files.insert(path.clone(), b"<dir>".to_vec());
                pending.push(path);
            } else if kind.is_file() {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            } else {
                files.insert(path, b"<special>".to_vec());
            }
        }
    }
    files
}

/// The revision of the good state every test project ends with: init's, then three
/// writes.
const GOOD_REVISION: u64 = 4;

/// A project whose state is at [`GOOD_REVISION`], with two backups, one archived
/// instance and one quarantine note: every document kind exists and holds good content.
async fn project(backend: &str) -> (tempfile::TempDir, OpenedStore) {
    let root = project_of(backend).await;
    let opened = open_project(root.path(), &builtin_registry(), &OpenOptions::default())
        .await
        .unwrap();
    let store = &opened.backend.store;
    // A copy of init's empty state serves as the quarantined document.
    let initial = store.read_raw().await.unwrap().unwrap();
    let note = QuarantineNote {
        corruption_type: CorruptionKind::ParseError,
        detail: "test".into(),
        reason: "test".into(),
    };
    store.quarantine(&initial, &note).await.unwrap();
    let mut expect = Expectation::Revision(1);
    for steps in 1..GOOD_REVISION as usize {
        let committed = store.commit(&state_with_steps(steps), expect).await.unwrap();
        store.create_backup("before the hostile test").await.unwrap();
        expect = Expectation::Revision(committed.revision);
    }
    let mut finished = state_with_steps(3);
    finished.revision = GOOD_REVISION;
    let archived = finished
        .archive_instance(Some(InstanceStatus::Completed), now())
        .unwrap();
    store.archive(&archived).await.unwrap();
    assert_eq!(store.read().await.unwrap().unwrap().revision, GOOD_REVISION);
    (root, opened)
}

/// The limits of the files whose limit is not public (backends/src/{file_lock,backups,
/// archive_dir}.rs); a test fails if the code's limit is higher, since the planted
/// file would then be read.
const MAX_LOCK_BYTES: u64 = 64 * 1024;
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// A document the store reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Document {
    State,
    Config,
    Lock,
    BackupManifest,
    History,
    Archive,
}

impl Document {
    const ALL: [Self; 6] = [
        Self::State,
        Self::Config,
        Self::Lock,
        Self::BackupManifest,
        Self::History,
        Self::Archive,
    ];

    async fn path(self, opened: &OpenedStore) -> PathBuf {
        let layout = &opened.layout;
        match self {
            Self::State => opened.backend.store.info().location_path().to_owned(),
            Self::Config => layout.config(),
            Self::Lock => layout.lock(),
            Self::BackupManifest => layout.backup_manifest(),
            Self::History => layout.history(),
            Self::Archive => {
                let entry = opened.backend.store.history().await.unwrap().remove(0);
                layout.dir().join(entry.location)
            }
        }
    }

    fn limit(self) -> u64 {
        match self {
            Self::State | Self::Archive => DEFAULT_MAX_STATE_BYTES,
            Self::Config => MAX_CONFIG_BYTES,
            Self::Lock => MAX_LOCK_BYTES,
            Self::BackupManifest | Self::History => MAX_INDEX_BYTES,
        }
    }

    fn inputs(self, backend: &str) -> Vec<Hostile> {
        let json_format =
            self == Self::Lock || (backend == "json" && matches!(self, Self::State | Self::Archive));
        if json_format {
            let mut inputs = json_inputs();
            // A YAML-only trick in a JSON file is just bad syntax; it must say so.
            inputs.push(hostile("alias bomb", billion_laughs()));
            inputs
        } else {
            yaml_inputs()
        }
    }

    /// Reads the document the way the commands do; the error, if any.
    async fn read(self, opened: &OpenedStore) -> Result<(), Error> {
        let store = &opened.backend.store;
        match self {
            Self::State => store.read().await.map(drop),
            Self::Config => load_config(&RealFs, &opened.layout).map(drop),
            Self::Lock => {
                let locks = FileLockProvider::new(opened.layout.dir());
                // A lock file that does not parse counts as held (it may be mid-write):
                // inspecting it says so, without a holder, and acquiring it times out.
                let status = locks.inspect().await?;
                assert!(
                    status.holder.is_none() && status.unreadable.is_some(),
                    "an unparseable lock file is not shown as held by an unreadable lock: {status:?}"
                );
                let request = LockRequest::default().with_timeout(Duration::from_millis(150));
                locks.acquire(&request).await.map(drop)
            }
            Self::BackupManifest => store.list_backups().await.map(drop),
            Self::History => store.history().await.map(drop),
            Self::Archive => {
                let id = store.history().await?.remove(0).instance_id;
                store.read_archived(&id).await.map(drop)
            }
        }
    }
}

/// Asserts that `error` is a refusal of a known kind, in one line naming `path`.
fn assert_refusal(case: &str, error: &Error, path: &Path) {
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::Corrupted { .. }
                | Error::TooLarge { .. }
                | Error::InvalidConfig { .. }
                | Error::UnsupportedVersion { .. }
                | Error::InvalidOperation { .. }
                | Error::BackupIndexDamaged { .. }
                | Error::LockTimeout { .. }
                | Error::Io { .. }
        ),
        "{case}: unexpected kind {}: {message}",
        error.kind()
    );
    assert!(
        message.contains(&file_name),
        "{case}: the message must name {file_name}: {message}"
    );
    assert!(
        !message.contains('\n'),
        "{case}: the message must be one line: {message}"
    );
}

/// Plants every hostile input in `document`'s place, one at a time, and checks that the
/// read refuses it and changes nothing.
async fn every_input_is_refused(backend: &str, document: Document) {
    let (_root, opened) = project(backend).await;
    let path = document.path(&opened).await;
    let original = std::fs::read(&path).ok();
    let mut planted: Vec<(String, Plant)> = document
        .inputs(backend)
        .into_iter()
        .map(|input| {
            let bytes = input.bytes;
            let plant_bytes: Plant = Box::new(move |path: &Path| {
                remove_any(path);
                std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            });
            (input.name.to_owned(), plant_bytes)
        })
        .collect();
    let limit = document.limit();
    for (name, how) in [
        ("over the size limit", Planted::Oversized(limit)),
        ("a directory", Planted::Directory),
        #[cfg(unix)]
        ("a FIFO", Planted::Fifo),
    ] {
        planted.push((name.to_owned(), Box::new(move |path: &Path| plant(path, how))));
    }

    for (name, plant_input) in planted {
        let case = format!("{backend} {document:?} / {name}");
        plant_input(&path);
        let before = snapshot(opened.layout.dir());
        let result = document.read(&opened).await;
        let after = snapshot(opened.layout.dir());
        if document == Document::Config && name == "empty file" {
            // An empty config.yaml means all defaults (docs/file-formats.md).
            assert!(result.is_ok(), "{case}: {result:?}");
            assert!(before == after, "{case}: the read changed the store");
            remove_any(&path);
            std::fs::write(&path, original.as_ref().unwrap()).unwrap();
            continue;
        }
        let error = result.expect_err(&format!("{case}: the read must fail"));
        assert_refusal(&case, &error, &path);
        if name == "over the size limit" && document == Document::Lock {
            // A lock file larger than any this build writes is still a lock: it keeps
            // writers out until it is stale by its age, never an error reading it.
            assert!(matches!(error, Error::LockTimeout { .. }), "{case}: {error}");
        } else if name == "over the size limit" {
            assert!(
                matches!(error, Error::TooLarge { .. } | Error::InvalidConfig { .. }),
                "{case}: {error}"
            );
        }
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{case}: the read changed the store's files"
        );
        assert!(before == after, "{case}: the read changed a file's bytes");

        remove_any(&path);
        if let Some(bytes) = &original {
            std::fs::write(&path, bytes).unwrap();
        }
        if document != Document::Lock {
            let state = opened.backend.store.read().await.unwrap().unwrap();
            assert_eq!(
                state.revision, GOOD_REVISION,
                "{case}: the last good state must still load"
            );
        }
    }
}

#[tokio::test]
async fn yaml_store_documents_refuse_hostile_input() {
    for document in Document::ALL {
        every_input_is_refused("yaml", document).await;
    }
}

#[tokio::test]
async fn json_store_documents_refuse_hostile_input() {
    for document in [Document::State, Document::Archive] {
        every_input_is_refused("json", document).await;
    }
}

/// Quarantine notes are read tolerantly: a note that cannot be read is skipped (and
/// logged), the others are still listed, and nothing changes.
#[tokio::test]
async fn hostile_quarantine_notes_are_skipped() {
    let (_root, opened) = project("yaml").await;
    let store = &opened.backend.store;
    let good = store.list_quarantine().await.unwrap();
    assert_eq!(good.len(), 1);
    let quarantine = opened.layout.quarantine_dir();
    let bad = quarantine.join("20990101T000000000Z-bad.why.yaml");
    let mut inputs: Vec<(String, Option<Vec<u8>>, Option<Planted>)> = yaml_inputs()
        .into_iter()
        .map(|input| (input.name.to_owned(), Some(input.bytes), None))
        .collect();
    for (name, planted) in [
        ("over the size limit", Planted::Oversized(1024 * 1024)),
        ("a directory", Planted::Directory),
        #[cfg(unix)]
        ("a FIFO", Planted::Fifo),
    ] {
        inputs.push((name.to_owned(), None, Some(planted)));
    }
    for (name, bytes, planted) in inputs {
        match (bytes, planted) {
            (Some(bytes), _) => std::fs::write(&bad, bytes).unwrap(),
            (None, Some(planted)) => plant(&bad, planted),
            (None, None) => unreachable!(),
        }
        let before = snapshot(opened.layout.dir());
        let listed = store.list_quarantine().await;
        assert_eq!(
            listed.as_ref().ok(),
            Some(&good),
            "quarantine note / {name}: the good note must be listed and the bad one skipped: {listed:?}"
        );
        assert!(
            before == snapshot(opened.layout.dir()),
            "quarantine note / {name}: changed the store"
        );
        remove_any(&bad);
    }
}

/// The audit log is read line by line: a hostile line is reported as a problem naming
/// the file and the line, and every good record is still read.
#[tokio::test]
async fn hostile_audit_lines_are_reported_as_problems() {
    let (_root, opened) = project("yaml").await;
    let store = &opened.backend.store;
    store
        .append_audit(&checklist_core::AuditRecord::new(
            checklist_core::AuditEvent::Begin,
        ))
        .await
        .unwrap();
    let good = store.read_audit().await.unwrap();
    assert!(!good.records.is_empty() && good.problems.is_empty(), "{good:?}");
    let log = opened.layout.audit_log();
    let original = std::fs::read(&log).unwrap();
    let part_limit = 3 * 1024 * 1024;
    for input in json_inputs()
        .into_iter()
        .chain(std::iter::once(hostile("alias bomb", billion_laughs())))
    {
        // An empty line is no record; a line longer than a whole part is the
        // oversized case below.
        if input.bytes.is_empty() || input.bytes.len() > part_limit {
            continue;
        }
        // One record per line: a multi-line input becomes one line.
        let line: Vec<u8> = input
            .bytes
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        let mut text = original.clone();
        text.extend_from_slice(&line);
        text.push(b'\n');
        std::fs::write(&log, &text).unwrap();
        let before = snapshot(opened.layout.dir());
        let read = store.read_audit().await.unwrap();
        assert!(
            before == snapshot(opened.layout.dir()),
            "audit / {}: changed the store",
            input.name
        );
        assert_eq!(
            read.records, good.records,
            "audit / {}: good records lost",
            input.name
        );
        assert_eq!(
            read.problems.len(),
            1,
            "audit / {}: {:?}",
            input.name,
            read.problems
        );
        let problem = &read.problems[0];
        assert_eq!(problem.file, log, "audit / {}", input.name);
        assert_eq!(
            problem.line,
            original.split(|b| *b == b'\n').count(),
            "audit / {}",
            input.name
        );
    }
    for (name, planted) in [
        ("a directory", Planted::Directory),
        #[cfg(unix)]
        ("a FIFO", Planted::Fifo),
        ("over the size limit", Planted::Oversized(part_limit as u64)),
    ] {
        plant(&log, planted);
        let before = snapshot(opened.layout.dir());
        let error = store.read_audit().await.expect_err(name);
        assert!(
            before == snapshot(opened.layout.dir()),
            "audit / {name}: changed the store"
        );
        assert_refusal(&format!("audit / {name}"), &error, &log);
        remove_any(&log);
    }
    std::fs::write(&log, &original).unwrap();
}

/// The state size limit comes from config.yaml and holds for writes as well as reads.
#[tokio::test]
async fn the_configured_state_size_limit_refuses_larger_states() {
    let (root, opened) = project("yaml").await;
    let mut config = load_config(&RealFs, &opened.layout).unwrap();
    config.limits.max_state_bytes = 65536;
    write_config(&RealFs, &opened.layout, &config, Durability::Fast).unwrap();
    let registry = builtin_registry();
    let small = open_project(root.path(), &registry, &OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(small.config.limits.max_state_bytes, 65536);
    let store = &small.backend.store;
    let state_path = store.info().location_path().to_owned();
    let before = std::fs::read(&state_path).unwrap();

    let error = store
        .commit(&state_with_steps(400), Expectation::Revision(GOOD_REVISION))
        .await
        .expect_err("a state over the limit must not be written");
    assert!(matches!(error, Error::TooLarge { limit: 65536, .. }), "{error}");
    assert_refusal("write over the limit", &error, &state_path);
    assert_eq!(std::fs::read(&state_path).unwrap(), before);

    let big = opened
        .backend
        .store
        .commit(&state_with_steps(400), Expectation::Revision(GOOD_REVISION))
        .await
        .unwrap();
    assert_eq!(big.revision, GOOD_REVISION + 1);
    let error = store
        .read()
        .await
        .expect_err("a state over the limit must not be read");
    assert!(matches!(error, Error::TooLarge { limit: 65536, .. }), "{error}");
    assert!(error.to_string().contains("limits.maxStateBytes"), "{error}");
}
