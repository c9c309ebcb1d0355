//! Moving a project's store to another backend (`move_project_store`, issue 16): what
//! it carries, and a move killed after every one of its steps, in a child process,
//! leaving either the old store live or the new one complete — and finished by running
//! it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use checklist_backends::{MoveOptions, OpenOptions, builtin_registry, move_project_store, open_project};
use checklist_core::coordinator::TransactionCoordinator;
use checklist_core::model::InstanceStatus;
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, AuditRecord, BackupRecord, CorruptionKind, QuarantineNote, RollingBackups, StateStore,
};

use crate::common::{add_step, copy_tree, project_of, state_with_steps};

/// Set in the child: the project whose store it moves.
const CHILD_ROOT: &str = "CHECKLIST_TEST_MOVE_ROOT";
/// Set in the child: the backend it moves to.
const CHILD_TO: &str = "CHECKLIST_TEST_MOVE_TO";
/// Set in the child: after how many steps it aborts.
const CHILD_ABORT_AFTER: &str = "CHECKLIST_TEST_MOVE_ABORT_AFTER";
/// Set in the child: the new backend's options, as JSON.
const CHILD_TO_OPTIONS: &str = "CHECKLIST_TEST_MOVE_TO_OPTIONS";

/// Everything a store holds that a move must carry, as comparable values.
#[derive(Debug, PartialEq)]
struct Holdings {
    revision: u64,
    checksum: Option<String>,
    content: serde_json::Value,
    backups: Vec<(String, u64, String, String, String)>,
    archive: Vec<(String, String)>,
    quarantine: Vec<(String, String, u64)>,
    audit: Vec<AuditRecord>,
}

async fn holdings(store: &dyn StateStore) -> Holdings {
    let state = store.read().await.unwrap().expect("a state");
    let mut content = serde_json::to_value(&state).unwrap();
    content.as_object_mut().unwrap().remove("movedTo");
    let backup = |b: BackupRecord| (b.id, b.revision, b.checksum, b.created_at.to_rfc3339(), b.reason);
    Holdings {
        revision: state.revision,
        checksum: state.checksum,
        content,
        backups: store
            .list_backups()
            .await
            .unwrap()
            .into_iter()
            .map(backup)
            .collect(),
        archive: store
            .history()
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.instance_id, h.checksum))
            .collect(),
        quarantine: store
            .list_quarantine()
            .await
            .unwrap()
            .into_iter()
            .map(|q| (q.id, q.sha256, q.size))
            .collect(),
        audit: store
            .read_audit()
            .await
            .unwrap()
            .records
            .into_iter()
            // What a move adds: its own record, and the record of the lock a killed
            // move left, broken by the next.
            .filter(|r| !matches!(r.event, AuditEvent::BackendMigrated | AuditEvent::LockBroken))
            .collect(),
    }
}

/// Asserts `held` is `expected`, naming the first part that differs.
fn assert_same(held: &Holdings, expected: &Holdings, context: &str) {
    assert_eq!(held.revision, expected.revision, "{context}: revision");
    assert_eq!(held.checksum, expected.checksum, "{context}: checksum");
    assert_eq!(held.content, expected.content, "{context}: content");
    assert_eq!(held.backups, expected.backups, "{context}: backups");
    assert_eq!(held.archive, expected.archive, "{context}: archive");
    assert_eq!(held.quarantine, expected.quarantine, "{context}: quarantine");
    assert_eq!(held.audit, expected.audit, "{context}: audit trail");
}

async fn opened(root: &Path) -> checklist_backends::OpenedStore {
    open_project(root, &builtin_registry(), &OpenOptions::default())
        .await
        .unwrap()
}

/// A project whose `backend` store holds a state with history: commits through the
/// coordinator (audit records, backups), an archived instance and a quarantined copy.
async fn populated(backend: &str) -> tempfile::TempDir {
    let root = project_of(backend).await;
    let opened = opened(root.path()).await;
    let (store, locks) = (
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
    );
    let coordinator = TransactionCoordinator::new(Arc::clone(&store), locks, RollingBackups::keep(3));
    coordinator
        .transact("finish one", |state| {
            *state = state_with_steps(2);
            Ok(())
        })
        .await
        .unwrap();
    let mut finished = store.read().await.unwrap().unwrap();
    let archived = finished
        .archive_instance(Some(InstanceStatus::Completed), checklist_core::model::now())
        .unwrap();
    store.archive(&archived).await.unwrap();
    for i in 0..4 {
        coordinator
            .transact("another step", |state| {
                if state.active_instance.is_none() {
                    *state = state_with_steps(0);
                }
                add_step(state, &format!("later-{i}"));
                Ok(())
            })
            .await
            .unwrap();
    }
    let found = store.read_raw().await.unwrap().unwrap();
    let note = QuarantineNote {
        corruption_type: CorruptionKind::ChecksumMismatch,
        detail: "kept by the test".into(),
        reason: "test".into(),
    };
    store.quarantine(&found, &note).await.unwrap();
    root
}

fn configured_backend(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join(".checklist/config.yaml")).unwrap();
    let config = checklist_backends::parse_config(text.as_bytes(), Path::new("config.yaml")).unwrap();
    config.backend.kind
}

/// The store of `backend` in `root`'s directory, whatever config.yaml names.
async fn store_of(root: &Path, backend: &str) -> Arc<dyn StateStore> {
    let opened = opened_as(root, backend).await;
    opened.store
}

async fn opened_as(root: &Path, backend: &str) -> checklist_core::Backend {
    opened_with(root, backend, &serde_json::Map::new()).await
}

/// The `backend` store with `options`, whatever config.yaml names.
async fn opened_with(
    root: &Path,
    backend: &str,
    options: &serde_json::Map<String, serde_json::Value>,
) -> checklist_core::Backend {
    let dir = root.join(".checklist");
    let text = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    let mut config = checklist_backends::parse_config(text.as_bytes(), Path::new("config.yaml")).unwrap();
    config.backend = checklist_core::config::BackendSelection {
        kind: backend.to_owned(),
        options: options.clone(),
    };
    builtin_registry().open(&dir, &config).await.unwrap()
}

fn move_options(to: &str) -> MoveOptions {
    MoveOptions {
        to: to.to_owned(),
        ..MoveOptions::default()
    }
}

/// The child: moves the store of `CHILD_ROOT` to `CHILD_TO` (with the options
/// `CHILD_TO_OPTIONS`) and aborts the process (no unwinding, no destructors: what a
/// kill leaves) after `CHILD_ABORT_AFTER` steps. Run by [`killed_at_every_step`];
/// without its environment it is not a child and returns.
#[tokio::test]
async fn relocation_child() {
    let (Ok(root), Ok(to), Ok(to_options), Ok(after)) = (
        std::env::var(CHILD_ROOT),
        std::env::var(CHILD_TO),
        std::env::var(CHILD_TO_OPTIONS),
        std::env::var(CHILD_ABORT_AFTER),
    ) else {
        return;
    };
    let after: usize = after.parse().unwrap();
    let options = MoveOptions {
        to_options: serde_json::from_str(&to_options).unwrap(),
        ..move_options(&to)
    };
    let done = AtomicUsize::new(0);
    move_project_store(Path::new(&root), &builtin_registry(), &options, &|_| {
        if done.fetch_add(1, Ordering::SeqCst) + 1 == after {
            std::process::abort();
        }
    })
    .await
    .unwrap();
}

/// A move of a populated `from` store killed after each of its steps in a child
/// process, each time into the store `to(step)` names (a fresh one where it is not in
/// the project directory), then checked and finished.
async fn killed_at_every_step(from: &str, to: &dyn Fn(usize) -> MoveOptions) {
    let template = populated(from).await;
    let original = holdings(store_of(template.path(), from).await.as_ref()).await;
    let plan = move_project_store(
        template.path(),
        &builtin_registry(),
        &MoveOptions {
            dry_run: true,
            ..to(0)
        },
        &|_| {},
    )
    .await
    .unwrap()
    .plan;
    let steps = plan.steps();
    assert!(
        steps >= 6,
        "{from} -> {:?}: a move of {steps} steps: {plan:?}",
        plan.to
    );
    // The progress it aborts after: `Planned`, then each of the steps.
    for after in 1..=steps + 1 {
        let options = to(after);
        let context = format!("{from} -> {}, killed after step {after}", options.to);
        let work = tempfile::tempdir().unwrap();
        let root: PathBuf = work.path().join("project");
        copy_tree(template.path(), &root);
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "relocation::relocation_child", "--nocapture"])
            .env(CHILD_ROOT, &root)
            .env(CHILD_TO, &options.to)
            .env(
                CHILD_TO_OPTIONS,
                serde_json::to_string(&options.to_options).unwrap(),
            )
            .env(CHILD_ABORT_AFTER, after.to_string())
            .status()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(6),
            "{context}: the child was to abort (SIGABRT): {status}"
        );
        assert_one_live_store_then_finish(&root, from, &options, &original, &context).await;
    }
}

/// After a move was cut short (`context` says how): either the old store is the live
/// one, holding what it held, or the new one is complete; and a second run finishes
/// the move, carrying everything, marking the old store and switching config.yaml.
async fn assert_one_live_store_then_finish(
    root: &Path,
    from: &str,
    to_options: &MoveOptions,
    original: &Holdings,
    context: &str,
) {
    let to = to_options.to.as_str();
    let new_store = || async { opened_with(root, to, &to_options.to_options).await.store };
    let configured = configured_backend(root);
    let old = store_of(root, from).await;
    let old_state = old.read().await.unwrap().unwrap();
    if configured == from && old_state.moved_to.is_none() {
        assert_same(
            &holdings(old.as_ref()).await,
            original,
            &format!("{context}: the old store"),
        );
    } else {
        let new = new_store().await;
        let held = holdings(new.as_ref()).await;
        assert_eq!(
            (held.revision, &held.checksum, &held.content),
            (original.revision, &original.checksum, &original.content),
            "{context}: the old store is marked moved, but the new one is not complete"
        );
    }

    // Running it again finishes the move (unless the fault spared it).
    if configured == from {
        move_project_store(root, &builtin_registry(), to_options, &|_| {})
            .await
            .unwrap();
    }
    assert_eq!(configured_backend(root), to);
    let new = holdings(new_store().await.as_ref()).await;
    assert_same(&new, original, &format!("{context}, and a second run"));
    let old = store_of(root, from).await.read().await.unwrap().unwrap();
    let moved_to = old.moved_to.expect("the old store is marked as moved");
    assert_eq!(
        (moved_to.backend.as_str(), moved_to.revision),
        (to, original.revision)
    );
    let migrated = new_store()
        .await
        .read_audit()
        .await
        .unwrap()
        .records
        .into_iter()
        .filter(|r| r.event == AuditEvent::BackendMigrated)
        .count();
    assert!(migrated >= 1, "{context}: no backend_migrated record");
    // And a write to the old store is refused wherever it comes from.
    let refused = opened_as(root, from)
        .await
        .store
        .commit(
            &state_with_steps(1),
            checklist_core::Expectation::Revision(original.revision),
        )
        .await;
    assert!(
        matches!(refused, Err(checklist_core::Error::StoreMoved { .. })),
        "{context}: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_after_any_step_leaves_one_live_store_and_finishes() {
    killed_at_every_step("yaml", &|_| move_options("json")).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_sqlite_killed_after_any_step_leaves_one_live_store_and_finishes() {
    killed_at_every_step("yaml", &|_| move_options("sqlite")).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_from_sqlite_killed_after_any_step_leaves_one_live_store_and_finishes() {
    killed_at_every_step("sqlite", &|_| move_options("yaml")).await;
}

/// Moving back to where a store came from replaces the old copy the first move left,
/// carrying what was committed since; the backups both held are not copied twice.
#[tokio::test]
async fn a_store_moved_there_and_back_holds_everything_committed_in_between() {
    let root = populated("yaml").await;
    let root = root.path();
    move_project_store(root, &builtin_registry(), &move_options("json"), &|_| {})
        .await
        .unwrap();
    let json = opened(root).await.backend;
    let coordinator = TransactionCoordinator::new(
        Arc::clone(&json.store),
        Arc::clone(&json.locks),
        RollingBackups::keep(3),
    );
    coordinator
        .transact("after the move", |state| {
            add_step(state, "after-the-move");
            Ok(())
        })
        .await
        .unwrap();
    let moved = holdings(json.store.as_ref()).await;
    let report = move_project_store(root, &builtin_registry(), &move_options("yaml"), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        report.plan.document,
        checklist_core::relocation::DocumentMove::ReplaceOldCopy
    );
    assert!(
        report.plan.backups.already_there >= 2,
        "{:?}",
        report.plan.backups
    );
    let back = holdings(opened(root).await.backend.store.as_ref()).await;
    assert_eq!((back.revision, &back.content), (moved.revision, &moved.content));
    let mut expected_backups = moved.backups.clone();
    expected_backups.sort();
    let mut backups: Vec<_> = back
        .backups
        .iter()
        .filter(|b| moved.backups.contains(b))
        .cloned()
        .collect();
    backups.sort();
    assert_eq!(
        backups, expected_backups,
        "every backup of the json store is in the yaml one"
    );
}

/// A store that holds a state of its own is never overwritten by a move.
#[tokio::test]
async fn a_move_into_a_store_with_a_state_of_its_own_is_refused() {
    let root = populated("yaml").await;
    let root = root.path();
    let json = store_of(root, "json").await;
    json.commit(&state_with_steps(1), checklist_core::Expectation::Absent)
        .await
        .unwrap();
    let before = holdings(json.as_ref()).await;
    let refused = move_project_store(root, &builtin_registry(), &move_options("json"), &|_| {}).await;
    assert!(
        matches!(refused, Err(checklist_core::Error::PreconditionFailed { .. })),
        "{refused:?}"
    );
    assert_eq!(holdings(json.as_ref()).await, before);
    assert_eq!(configured_backend(root), "yaml");
    assert!(
        store_of(root, "yaml")
            .await
            .read()
            .await
            .unwrap()
            .unwrap()
            .moved_to
            .is_none()
    );
}

/// A full disk (ENOSPC) at every I/O operation of a move between two file stores: the
/// move fails, or it is done; one store is live either way, and a second run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_any_operation_of_a_move_leaves_one_live_store_and_finishes() {
    use checklist_backends::fault::{AfterFault, FaultyFs};
    use checklist_backends::vfs::RealFs;

    let template = populated("yaml").await;
    let original = holdings(store_of(template.path(), "yaml").await.as_ref()).await;
    for n in 0.. {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("project");
        copy_tree(template.path(), &root);
        let faulty = FaultyFs::new(Arc::new(RealFs));
        faulty.fail_at_os_error(n, rustix::io::Errno::NOSPC.raw_os_error(), AfterFault::Recover);
        let registry = checklist_backends::builtin_registry_with_vfs(Arc::new(faulty.clone()));
        let result = checklist_backends::move_project_store_with_vfs(
            &root,
            &registry,
            &move_options("json"),
            &|_| {},
            Arc::new(faulty.clone()),
        )
        .await;
        if !faulty.fault_injected() {
            result.unwrap();
            assert!(n > 20, "only {n} operations in a move");
            return;
        }
        let failed = faulty.log().into_iter().find(|op| op.failed).unwrap();
        let context = format!("yaml -> json, ENOSPC in {failed:?}: {result:?}");
        if let Err(error) = &result {
            assert!(error.to_string().contains("disk is full"), "{context}");
        }
        assert_one_live_store_then_finish(&root, "yaml", &move_options("json"), &original, &context).await;
    }
}

/// The same loop into a PostgreSQL server, each round into a store key of its own: the
/// audit trail is copied (the server keeps its own), and the killed child's session,
/// lease and open transaction die with it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_postgres_killed_after_any_step_leaves_one_live_store_and_finishes() {
    let Some(server) = checklist_conformance::pg_server::test_server() else {
        return;
    };
    let schema = checklist_conformance::pg_server::throwaway_schema_name();
    let into = |step: usize| MoveOptions {
        to_options:
            serde_json::json!({"url": server.url(), "schema": schema, "key": format!("moved-{step}")})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ..move_options("postgres")
    };
    killed_at_every_step("yaml", &into).await;
    let _ = server.drop_schema(&schema);
}
