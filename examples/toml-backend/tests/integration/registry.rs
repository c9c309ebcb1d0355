//! Selecting the TOML backend through config.yaml: `open_project` opens it when it is
//! registered and names the registered backends when it is not.

use std::path::Path;

use checklist_backends::{InitOptions, OpenOptions, builtin_registry, init_project, open_project};
use checklist_core::BackendRegistry;
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Error, Expectation, StateStoreExt};
use serde_json::json;

/// A project whose `.checklist/config.yaml` was written by hand, as a person would.
fn project_selecting_toml() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir(root.path().join(".checklist")).expect("create .checklist");
    std::fs::write(
        root.path().join(".checklist").join("config.yaml"),
        "version: 1\nbackend: {type: toml}\n",
    )
    .expect("write config.yaml");
    root
}

fn toml_registry() -> BackendRegistry {
    let mut registry = builtin_registry();
    checklist_toml_backend::register(&mut registry);
    registry
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn config_yaml_selects_the_registered_toml_backend() {
    let root = project_selecting_toml();
    let opened = runtime()
        .block_on(open_project(
            root.path(),
            &toml_registry(),
            &OpenOptions::default(),
        ))
        .expect("open");
    assert_eq!(opened.config.backend.kind, "toml");
    runtime().block_on(async {
        let mut state = ChecklistState::new();
        state
            .extra
            .insert("x-note".into(), json!({"why": null, "big": u64::MAX}));
        let committed = opened
            .backend
            .store
            .commit(&state, Expectation::Absent)
            .await
            .expect("write");
        assert_eq!(committed.revision, 1);
        let read = opened.backend.store.read_existing().await.expect("read back");
        assert_eq!(read.extra["x-note"], json!({"why": null, "big": u64::MAX}));
    });
    let text =
        std::fs::read_to_string(root.path().join(".checklist").join("state.toml")).expect("state.toml");
    assert!(text.contains("schemaVersion = \"1.0.0\""), "{text}");
    assert!(text.contains("\"$null\" = true"), "{text}");
    assert!(!root.path().join(".checklist").join("state.yaml").exists());
}

#[test]
fn config_yaml_naming_an_unregistered_toml_backend_lists_the_registered_ones() {
    let root = project_selecting_toml();
    let err = runtime()
        .block_on(open_project(
            root.path(),
            &builtin_registry(),
            &OpenOptions::default(),
        ))
        .expect_err("toml is not registered");
    match &err {
        Error::UnknownBackend {
            name,
            origin,
            registered,
        } => {
            assert_eq!(name, "toml");
            assert_eq!(
                origin.path(),
                Some(root.path().join(".checklist").join("config.yaml").as_path())
            );
            // The built-ins (`sqlite` among them when a crate of the build turns on
            // checklist-backends' `sqlite` feature, as the CLI does), not `toml`.
            assert_eq!(registered, &builtin_registry().names());
            for builtin in ["json", "memory", "yaml"] {
                assert!(registered.iter().any(|r| r == builtin), "{registered:?}");
            }
            assert!(!registered.iter().any(|r| r == "toml"), "{registered:?}");
        }
        other => panic!("expected UnknownBackend, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("\"toml\"") && message.contains("json, memory, "),
        "{message}"
    );
}

#[test]
fn init_with_the_toml_backend_creates_a_toml_store() {
    let root = tempfile::tempdir().expect("a temp dir");
    let registry = toml_registry();
    let options = InitOptions {
        backend: Some("toml".into()),
        ..InitOptions::default()
    };
    let report = runtime()
        .block_on(init_project(root.path(), &options, &registry))
        .expect("init");
    assert_eq!(report.backend, "toml");
    let config = std::fs::read_to_string(root.path().join(".checklist/config.yaml")).expect("config.yaml");
    assert!(config.contains("toml"), "{config}");
    // The editors' schema line is the yaml backend's: a custom codec's file has none.
    let state = std::fs::read_to_string(root.path().join(".checklist/state.toml")).expect("state.toml");
    assert!(!state.contains("yaml-language-server"), "{state}");
    let opened = runtime()
        .block_on(open_project(root.path(), &registry, &OpenOptions::default()))
        .expect("open");
    let state = runtime()
        .block_on(opened.backend.store.read_existing())
        .expect("the initial state reads back");
    assert_eq!(state.revision, report.revision.expect("a revision"));
    assert!(Path::new(&root.path().join(".checklist/state.toml")).is_file());
}

/// Migration is core's, not a file backend's: `checklist migrate` upgrades a 0.9.0
/// state kept as TOML, keeps the original bytes as a backup, and reads back current.
#[test]
fn checklist_migrate_upgrades_a_0_9_0_toml_state() {
    use checklist_backends::{Codec, YamlCodec};
    let root = tempfile::tempdir().expect("a temp dir");
    let dir = root.path().to_str().expect("a UTF-8 temp dir");
    let app = checklist_cli::App::with_registry(toml_registry());
    let run = |args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut argv = vec!["checklist", "--dir", dir];
        argv.extend_from_slice(args);
        let code = runtime().block_on(app.run(argv, &mut out, &mut err));
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    };
    let (code, _, err) = run(&["init", "--backend", "toml"]);
    assert_eq!(code, 0, "{err}");
    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/fixtures/state-0.9.0.yaml"))
            .expect("the 0.9.0 fixture");
    let old = checklist_toml_backend::TomlCodec
        .encode(&YamlCodec.decode(&fixture).expect("the fixture parses"))
        .expect("the fixture as TOML");
    let state_file = root.path().join(".checklist/state.toml");
    std::fs::write(&state_file, &old).expect("write the old state");

    let (code, _, err) = run(&["status"]);
    assert_eq!(code, 8, "an old version is refused until migrated: {err}");
    let (code, out, err) = run(&["migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("migrating to 1.0.0"), "{out}");
    let (code, out, err) = run(&["--json", "backup", "list"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let migration = listed["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .find(|b| b["reason"] == "migration")
        .expect("a migration backup");
    let file = root
        .path()
        .join(".checklist/.backup")
        .join(migration["file"].as_str().expect("file"));
    assert_eq!(std::fs::read(file).expect("the backup"), old);
    let (code, _, err) = run(&["verify"]);
    assert_eq!(code, 0, "{err}");
}

/// A yaml store moved to the TOML backend (`move_project_store`, what `checklist
/// backend migrate --to toml` runs in a binary that registers it) and back: the state
/// at its revision and every backup carried, config.yaml switched, the old store's
/// state marked and refusing writes.
#[test]
fn a_yaml_store_moves_to_toml_and_back() {
    let root = tempfile::tempdir().expect("a temp dir");
    let registry = toml_registry();
    runtime().block_on(async {
        init_project(root.path(), &InitOptions::default(), &registry)
            .await
            .expect("init a yaml store");
        let yaml = open_project(root.path(), &registry, &OpenOptions::default())
            .await
            .expect("open it")
            .backend
            .store;
        let mut state = yaml.read_existing().await.expect("its state");
        for _ in 0..3 {
            state
                .extra
                .insert("note".into(), json!(format!("revision {}", state.revision + 1)));
            let keep = checklist_core::KeepBackup {
                reason: "commit".into(),
                policy: None,
            };
            let committed = yaml
                .commit_keeping_backup(&state, Expectation::Revision(state.revision), keep)
                .await
                .expect("a commit");
            state.revision = committed.committed.revision;
        }
        let backups = yaml.list_backups().await.expect("the backups");
        let moved = move_to(root.path(), &registry, "toml").await;
        assert_eq!(moved.plan.revision, state.revision);
        let toml = open_project(root.path(), &registry, &OpenOptions::default())
            .await
            .expect("open the moved store")
            .backend
            .store;
        assert!(
            toml.info().location.ends_with("state.toml"),
            "{}",
            toml.info().location
        );
        let read = toml.read_existing().await.expect("the moved state");
        assert_eq!(
            (read.revision, &read.extra["note"]),
            (state.revision, &json!("revision 4"))
        );
        let carried: Vec<_> = toml
            .list_backups()
            .await
            .expect("the moved backups")
            .into_iter()
            .map(|b| (b.id, b.revision, b.checksum))
            .collect();
        let expected: Vec<_> = backups
            .into_iter()
            .map(|b| (b.id, b.revision, b.checksum))
            .collect();
        assert_eq!(carried, expected);
        let refused = yaml
            .commit(&ChecklistState::new(), Expectation::Revision(state.revision))
            .await;
        assert!(matches!(refused, Err(Error::StoreMoved { .. })), "{refused:?}");

        move_to(root.path(), &registry, "yaml").await;
        let back = yaml.read_existing().await.expect("the state back in yaml");
        assert_eq!((back.revision, back.moved_to), (state.revision, None));
    });
}

/// Moves the project at `root` to the backend `to`, as `checklist backend migrate --to`
/// does.
async fn move_to(root: &Path, registry: &BackendRegistry, to: &str) -> checklist_backends::MoveReport {
    checklist_backends::move_project_store(
        root,
        registry,
        &checklist_backends::MoveOptions {
            to: to.into(),
            ..checklist_backends::MoveOptions::default()
        },
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("the move to {to}: {e}"))
}
