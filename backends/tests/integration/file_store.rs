//! What only a file backend can show: the bytes on disk, hand edits, corruption of
//! the file, symbolic links, permissions and temp files.

use std::path::Path;

use crate::common::{add_step, state_with_steps, temp_files};
use checklist_backends::vfs::RealFs;
use checklist_backends::{
    Codec, FileStore, FileStoreOptions, JsonCodec, JsonFileStore, YamlCodec, YamlFileStore, atomic,
};
use checklist_core::config::Durability;
use checklist_core::prelude::*;
use checklist_core::{CorruptionKind, Error, Expectation};

fn yaml(dir: &Path) -> YamlFileStore {
    FileStore::open(dir, YamlCodec, FileStoreOptions::default()).unwrap()
}

fn json(dir: &Path) -> JsonFileStore {
    FileStore::open(dir, JsonCodec, FileStoreOptions::default()).unwrap()
}

fn corruption_kind(error: &Error) -> Option<CorruptionKind> {
    match error {
        Error::Corrupted { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn the_same_document_has_the_same_checksum_as_yaml_and_as_json() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let state = state_with_steps(5);
    let from_yaml = yaml(a.path()).commit(&state, Expectation::Absent).await.unwrap();
    let from_json = json(b.path()).commit(&state, Expectation::Absent).await.unwrap();
    assert_eq!(from_yaml, from_json);
    // And each reads back and verifies.
    assert_eq!(
        yaml(a.path()).read().await.unwrap().unwrap().checksum,
        Some(from_yaml.checksum.clone())
    );
    assert_eq!(
        json(b.path()).read().await.unwrap().unwrap().checksum,
        Some(from_json.checksum)
    );
}

#[tokio::test]
async fn comments_and_reindentation_do_not_break_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let store = yaml(dir.path());
    store
        .commit(&state_with_steps(2), Expectation::Absent)
        .await
        .unwrap();
    let text = std::fs::read_to_string(store.state_path()).unwrap();
    let edited = format!(
        "# edited by hand\n{}\n# the end\n",
        text.replace(
            "schemaVersion: \"1.0.0\"",
            "schemaVersion: '1.0.0'   # single quotes now"
        )
        .replace("\ncompletedSteps:", "\n\n# the steps\ncompletedSteps:")
    );
    assert_ne!(edited, text);
    std::fs::write(store.state_path(), edited).unwrap();
    let state = yaml(dir.path()).read().await.unwrap().unwrap();
    assert_eq!(state.completed_steps.len(), 2);
}

#[tokio::test]
async fn unknown_fields_in_the_file_survive_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let store = json(dir.path());
    store
        .commit(&state_with_steps(1), Expectation::Absent)
        .await
        .unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.state_path()).unwrap()).unwrap();
    doc["x-plugin"] = serde_json::json!({"enabled": true, "weights": [1, 2, 3]});
    doc["completedSteps"][0]["x-reviewer"] = serde_json::json!("ana");
    doc["checksum"] = serde_json::json!(checklist_core::canonical::document_checksum(&doc));
    std::fs::write(store.state_path(), serde_json::to_vec(&doc).unwrap()).unwrap();

    let mut state = json(dir.path()).read().await.unwrap().unwrap();
    add_step(&mut state, "next");
    store.commit(&state, Expectation::current(&state)).await.unwrap();
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.state_path()).unwrap()).unwrap();
    assert_eq!(after["x-plugin"], doc["x-plugin"]);
    assert_eq!(after["completedSteps"][0]["x-reviewer"], "ana");
}

async fn assert_corruption<C: Codec + Clone>(
    codec: C,
    edit: impl Fn(&mut Vec<u8>),
    expected: &[CorruptionKind],
) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), codec.clone(), FileStoreOptions::default()).unwrap();
    store
        .commit(&state_with_steps(4), Expectation::Absent)
        .await
        .unwrap();
    let mut bytes = std::fs::read(store.state_path()).unwrap();
    edit(&mut bytes);
    std::fs::write(store.state_path(), &bytes).unwrap();
    let fresh = FileStore::open(dir.path(), codec, FileStoreOptions::default()).unwrap();
    let error = fresh.read().await.unwrap_err();
    let kind = corruption_kind(&error).unwrap_or_else(|| panic!("not a corruption: {error}"));
    assert!(
        expected.contains(&kind),
        "got {kind}, expected one of {expected:?}: {error}"
    );
    assert!(
        error.to_string().contains(fresh.state_path().to_str().unwrap()),
        "{error}"
    );
    assert!(matches!(error, Error::Corrupted { .. }), "{error:?}");
    // A write over a corrupt state is refused, and the corrupt bytes stay for recovery.
    let refused = fresh
        .commit(&state_with_steps(1), Expectation::Revision(1))
        .await
        .unwrap_err();
    assert!(corruption_kind(&refused).is_some(), "{refused}");
    assert_eq!(std::fs::read(fresh.state_path()).unwrap(), bytes);
}

fn flip_inside(needle: &str) -> impl Fn(&mut Vec<u8>) {
    let needle = needle.to_owned();
    move |bytes: &mut Vec<u8>| {
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        bytes[at] ^= 0x01;
    }
}

#[tokio::test]
async fn a_flipped_byte_in_a_value_is_a_checksum_mismatch() {
    assert_corruption(
        YamlCodec,
        flip_inside("release"),
        &[CorruptionKind::ChecksumMismatch],
    )
    .await;
    assert_corruption(
        JsonCodec,
        flip_inside("release"),
        &[CorruptionKind::ChecksumMismatch],
    )
    .await;
}

#[tokio::test]
async fn a_schema_breaking_edit_is_schema_invalid() {
    fn replace(from: &'static str, to: &'static str) -> impl Fn(&mut Vec<u8>) {
        move |bytes: &mut Vec<u8>| {
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains(from), "{text}");
            *bytes = text.replacen(from, to, 1).into_bytes();
        }
    }
    assert_corruption(
        YamlCodec,
        replace("result: success", "result: exploded"),
        &[CorruptionKind::SchemaInvalid],
    )
    .await;
    assert_corruption(
        JsonCodec,
        replace("\"result\": \"success\"", "\"result\": 7"),
        &[CorruptionKind::SchemaInvalid],
    )
    .await;
}

#[tokio::test]
async fn an_empty_file_and_garbage_are_parse_errors() {
    assert_corruption(YamlCodec, |b| b.clear(), &[CorruptionKind::ParseError]).await;
    assert_corruption(
        JsonCodec,
        |b| *b = b"  \n".to_vec(),
        &[CorruptionKind::ParseError],
    )
    .await;
    assert_corruption(
        YamlCodec,
        |b| *b = b"key: [unclosed\n".to_vec(),
        &[CorruptionKind::ParseError],
    )
    .await;
    assert_corruption(YamlCodec, |b| b.insert(10, 0xff), &[CorruptionKind::ParseError]).await;
}

#[tokio::test]
async fn every_truncation_is_detected() {
    for codec_is_yaml in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = yaml(dir.path());
        let full = if codec_is_yaml {
            store
                .commit(&state_with_steps(4), Expectation::Absent)
                .await
                .unwrap();
            std::fs::read(store.state_path()).unwrap()
        } else {
            let j = json(dir.path());
            j.commit(&state_with_steps(4), Expectation::Absent).await.unwrap();
            std::fs::read(j.state_path()).unwrap()
        };
        for tenth in 0..10 {
            let cut = full.len() * tenth / 10;
            let truncated = full[..cut].to_vec();
            if codec_is_yaml {
                assert_corruption(YamlCodec, |b| *b = truncated.clone(), &ALL_KINDS).await;
            } else {
                assert_corruption(JsonCodec, |b| *b = truncated.clone(), &ALL_KINDS).await;
            }
        }
    }
}

const ALL_KINDS: [CorruptionKind; 3] = [
    CorruptionKind::ParseError,
    CorruptionKind::SchemaInvalid,
    CorruptionKind::ChecksumMismatch,
];

#[tokio::test]
async fn a_flipped_byte_anywhere_is_detected_or_harmless() {
    // Flipping the low bit of any byte either breaks the document (detected) or, where
    // it only touches insignificant text such as indentation or a quote style, leaves
    // the same document (which then still verifies). It never yields a different
    // document that passes.
    let dir = tempfile::tempdir().unwrap();
    let store = yaml(dir.path());
    store
        .commit(&state_with_steps(2), Expectation::Absent)
        .await
        .unwrap();
    let original = store.read().await.unwrap().unwrap();
    let good = std::fs::read(store.state_path()).unwrap();
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0x01;
        std::fs::write(store.state_path(), &bytes).unwrap();
        match yaml(dir.path()).read().await {
            Ok(Some(state)) => assert_eq!(state, original, "flip at {i} produced a different valid document"),
            Ok(None) => panic!("flip at {i} made the state vanish"),
            // A flip inside `schemaVersion` is read as a version this build does not
            // know, which is checked before the checksum; it is refused all the same.
            Err(error) => assert!(
                corruption_kind(&error).is_some() || matches!(error, Error::UnsupportedVersion { .. }),
                "flip at {i}: {error}"
            ),
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("state.yaml");
    let store = yaml(elsewhere.path());
    store
        .commit(&state_with_steps(1), Expectation::Absent)
        .await
        .unwrap();

    let linked = dir.path().join("state.yaml");
    std::os::unix::fs::symlink(&target, &linked).unwrap();
    let err = yaml(dir.path()).read().await.unwrap_err();
    assert!(matches!(err, Error::SymlinkRefused { .. }), "{err}");
    assert!(err.to_string().contains("state.yaml"), "{err}");

    let link_dir = dir.path().join("linked-store");
    std::os::unix::fs::symlink(elsewhere.path(), &link_dir).unwrap();
    let err = FileStore::open(&link_dir, YamlCodec, FileStoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::SymlinkRefused { .. }), "{err}");
    // The target was never touched.
    assert_eq!(store.read().await.unwrap().unwrap().revision, 1);
}

#[tokio::test]
async fn a_directory_where_the_state_should_be_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state.yaml")).unwrap();
    let err = yaml(dir.path()).read().await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("state.yaml"), "{err}");
}

#[tokio::test]
async fn an_oversized_state_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileStoreOptions {
        max_state_bytes: 100,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir.path(), YamlCodec, options).unwrap();
    // A document the store could not read back is never written.
    let err = store
        .commit(&state_with_steps(3), Expectation::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
    assert!(!store.state_path().exists());
    std::fs::write(store.state_path(), vec![b'#'; 101]).unwrap();
    let err = store.read().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                size: 101,
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_state_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = yaml(dir.path());
    store
        .commit(&state_with_steps(1), Expectation::Absent)
        .await
        .unwrap();
    let mode = std::fs::metadata(store.state_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn fast_durability_still_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileStoreOptions {
        durability: Durability::Fast,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir.path(), JsonCodec, options).unwrap();
    let mut state = state_with_steps(1);
    let mut expect = Expectation::Absent;
    for i in 0..20 {
        add_step(&mut state, &format!("fast-{i}"));
        expect = Expectation::Revision(store.commit(&state, expect).await.unwrap().revision);
    }
    assert_eq!(json(dir.path()).read().await.unwrap().unwrap().revision, 20);
    assert!(temp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn temp_files_of_a_dead_writer_are_swept_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".state.yaml.tmp-{dead_pid}-0123abcd"));
    std::fs::write(&stale, b"half a docu").unwrap();
    let store = yaml(dir.path());
    store
        .commit(&state_with_steps(1), Expectation::Absent)
        .await
        .unwrap();
    assert!(!stale.exists());
    assert_eq!(atomic::sweep_stale_temps(&RealFs, dir.path()).unwrap(), 0);
}

#[tokio::test]
async fn writers_in_many_tasks_through_separate_handles_never_lose_a_commit() {
    // No lock provider here: the file engine's compare-and-swap alone must make every
    // accepted write build on the one before it.
    let dir = tempfile::tempdir().unwrap();
    yaml(dir.path())
        .commit(&state_with_steps(0), Expectation::Absent)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let path = dir.path().to_owned();
        tasks.push(tokio::spawn(async move {
            let store = FileStore::open(&path, YamlCodec, FileStoreOptions::default()).unwrap();
            let mut committed = 0;
            while committed < 5 {
                let mut state = store.read().await.unwrap().unwrap();
                add_step(&mut state, &format!("t{t}-{committed}"));
                match store.commit(&state, Expectation::current(&state)).await {
                    Ok(_) => committed += 1,
                    Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("{other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let state = yaml(dir.path()).read().await.unwrap().unwrap();
    assert_eq!(state.completed_steps.len(), 40);
    assert_eq!(state.revision, 41);
}

/// A yaml and a json store in one directory share `.backup/manifest.yaml` and
/// history.yaml, and each sees only its own format's backups and archived instances:
/// before, a json store listed (and pruned, and offered to restore) yaml backups it
/// could not read, which is also how a changed `backend.type` looked like a lost state.
#[tokio::test]
async fn two_formats_in_one_directory_keep_their_backups_and_archives_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (yaml, json) = (yaml(dir.path()), json(dir.path()));
    let keep = || checklist_core::KeepBackup {
        reason: "commit".into(),
        policy: Some(std::sync::Arc::new(checklist_core::RollingBackups::keep(2))),
    };
    let mut state = state_with_steps(1);
    yaml.commit(&state, Expectation::Absent).await.unwrap();
    json.commit(&state, Expectation::Absent).await.unwrap();
    for revision in 1..=4 {
        add_step(&mut state, &format!("more-{revision}"));
        for store in [&yaml as &dyn checklist_core::StateStore, &json] {
            store
                .commit_keeping_backup(&state, Expectation::Revision(revision), keep())
                .await
                .unwrap();
        }
    }
    for (store, own) in [
        (&yaml as &dyn checklist_core::StateStore, "state.yaml."),
        (&json, "state.json."),
    ] {
        let listed = store.list_backups().await.unwrap();
        let revisions: Vec<u64> = listed.iter().map(|b| b.revision).collect();
        assert_eq!(revisions, [3, 4], "each format pruned only its own: {listed:?}");
        assert!(listed.iter().all(|b| b.location.starts_with(own)), "{listed:?}");
        for backup in &listed {
            store.read_verified_backup(&backup.id).await.unwrap();
        }
    }
    let rebuilt = json.rebuild_backup_index().await.unwrap();
    assert_eq!(rebuilt.kept.len(), 2);
    assert_eq!(
        yaml.list_backups().await.unwrap().len(),
        2,
        "a json rebuild keeps yaml's listing"
    );
    let newest = json.list_backups().await.unwrap().pop().unwrap();
    json.delete_backup(&newest.id).await.unwrap();
    assert_eq!(yaml.list_backups().await.unwrap().len(), 2);

    let mut finished = state.clone();
    finished.revision = 5;
    let archived = finished
        .archive_instance(
            Some(checklist_core::model::InstanceStatus::Completed),
            checklist_core::model::now(),
        )
        .unwrap();
    yaml.archive(&archived).await.unwrap();
    assert!(
        json.history().await.unwrap().is_empty(),
        "json lists no yaml archive"
    );
    json.archive(&archived).await.unwrap();
    for (store, file) in [
        (
            &yaml as &dyn checklist_core::StateStore,
            format!("archive/{}.yaml", archived.instance.id),
        ),
        (&json, format!("archive/{}.json", archived.instance.id)),
    ] {
        let history = store.history().await.unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].location, file);
        assert_eq!(
            store
                .read_archived(&archived.instance.id)
                .await
                .unwrap()
                .instance
                .id,
            archived.instance.id
        );
    }
}
