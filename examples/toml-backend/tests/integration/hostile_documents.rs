//! Hostile state files for the TOML backend: what a broken tool or an attacker could
//! leave in `state.toml` must be refused with an error naming the file, without a
//! panic, in bounded time, and without changing a byte on disk. The YAML and JSON
//! backends and the store's other documents get the same treatment in
//! `backends/tests/integration/hostile_documents.rs`.

use std::path::Path;

use checklist_backends::FileStoreOptions;
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Error, Expectation};
use checklist_toml_backend::{TomlCodec, TomlFileStore};

const DEEP: usize = 10_000;

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "deep arrays",
            format!("x = {}{}", "[".repeat(DEEP), "]".repeat(DEEP)).into_bytes(),
        ),
        (
            "deep inline tables",
            format!("x = {}1{}", "{a = ".repeat(DEEP), "}".repeat(DEEP)).into_bytes(),
        ),
        (
            "deep dotted keys",
            format!("{} = 1\n", vec!["a"; DEEP].join(".")).into_bytes(),
        ),
        (
            "deep table headers",
            format!("[{}]\n", vec!["a"; DEEP].join(".")).into_bytes(),
        ),
        ("non-UTF-8 bytes", b"schemaVersion = \"\xff\xfe\"\n".to_vec()),
        ("duplicate keys", b"revision = 1\nrevision = 2\n".to_vec()),
        (
            "huge string",
            format!("schemaVersion = \"{}\"\n", "x".repeat(4 * 1024 * 1024)).into_bytes(),
        ),
        (
            "huge float",
            b"schemaVersion = \"1.0.0\"\nrevision = 1e400\n".to_vec(),
        ),
        (
            "huge integer",
            b"schemaVersion = \"1.0.0\"\nrevision = 1180591620717411303424\n".to_vec(),
        ),
        ("NaN", b"schemaVersion = \"1.0.0\"\nrevision = nan\n".to_vec()),
        (
            "infinity",
            b"schemaVersion = \"1.0.0\"\nrevision = inf\n".to_vec(),
        ),
        (
            "wrong types",
            b"schemaVersion = [1, 0, 0]\nrevision = \"seven\"\n".to_vec(),
        ),
        ("YAML in a TOML file", b"a: &a [1, 2]\nb: [*a, *a]\n".to_vec()),
        ("empty file", Vec::new()),
    ]
}

/// Puts one hostile input in the state file's place.
type Plant = Box<dyn Fn(&Path)>;

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

#[tokio::test]
async fn hostile_toml_state_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = TomlFileStore::open(dir.path(), TomlCodec, FileStoreOptions::default()).unwrap();
    store
        .commit(&ChecklistState::new(), Expectation::Absent)
        .await
        .unwrap();
    let path = store.state_path().to_owned();
    let good = std::fs::read(&path).unwrap();
    let limit = FileStoreOptions::default().max_state_bytes;

    let mut cases: Vec<(&str, Plant)> = inputs()
        .into_iter()
        .map(|(name, bytes)| {
            let plant: Plant = Box::new(move |p: &Path| std::fs::write(p, &bytes).unwrap());
            (name, plant)
        })
        .collect();
    cases.push((
        "over the size limit",
        Box::new(move |p: &Path| std::fs::File::create(p).unwrap().set_len(limit + 1).unwrap()),
    ));
    cases.push((
        "a directory",
        Box::new(|p: &Path| std::fs::create_dir(p).unwrap()),
    ));

    for (name, plant) in cases {
        remove_any(&path);
        plant(&path);
        let planted = std::fs::symlink_metadata(&path).unwrap();
        let planted_bytes = std::fs::read(&path).ok();
        let error = store.read().await.expect_err(name);
        let message = error.to_string();
        assert!(
            matches!(
                error,
                Error::Corrupted { .. }
                    | Error::TooLarge { .. }
                    | Error::UnsupportedVersion { .. }
                    | Error::Io { .. }
            ),
            "{name}: unexpected {}: {message}",
            error.kind()
        );
        assert!(
            message.contains("state.toml"),
            "{name}: the message must name the file: {message}"
        );
        assert!(!message.contains('\n'), "{name}: one line: {message}");
        assert_eq!(
            std::fs::symlink_metadata(&path).unwrap().len(),
            planted.len(),
            "{name}"
        );
        assert_eq!(
            std::fs::read(&path).ok(),
            planted_bytes,
            "{name}: the read changed the file"
        );
        remove_any(&path);
        std::fs::write(&path, &good).unwrap();
        assert_eq!(store.read().await.unwrap().unwrap().revision, 1, "{name}");
    }
}
