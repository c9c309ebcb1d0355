//! The whole conformance suite against the TOML backend, set up exactly as
//! conformance/tests/builtin_backends.rs sets up the YAML one.

use std::sync::Arc;

use checklist_backends::{FileLockProvider, FileStore, FileStoreOptions};
use checklist_conformance::{Capabilities, RawAccess, Subject, conformance_tests};
use checklist_core::config::Durability;
use checklist_toml_backend::TomlCodec;

fn toml_subject(durability: Durability) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    let options = FileStoreOptions {
        durability,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir.path(), TomlCodec, options.clone()).expect("open the store");
    let path = dir.path().to_owned();
    let path_for_locks = dir.path().to_owned();
    let state_path = store.state_path().to_owned();
    Subject::new(Arc::new(store), Arc::new(FileLockProvider::new(dir.path())))
        .with_capabilities(Capabilities::file_backend())
        .reopen_with(move || {
            Arc::new(FileStore::open(&path, TomlCodec, options.clone()).expect("reopen the store"))
        })
        .raw_access(RawAccess::file(state_path))
        .backup_index_access(RawAccess::file(
            path_for_locks.join(".backup").join("manifest.yaml"),
        ))
        .reopen_locks_with({
            let dir = path_for_locks.clone();
            move || Arc::new(FileLockProvider::new(&dir))
        })
        .plant_stale_lock_with(move |like| plant_stale_lock(&path_for_locks, like))
        .keep_alive(dir)
}

/// Writes `.lock` as schemas/lock.schema.json describes it, held by `like`'s host and
/// user but a pid that no longer exists (that of a child that has exited).
fn plant_stale_lock(dir: &std::path::Path, like: &checklist_core::LockInfo) -> std::io::Result<()> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let dead_pid = child.id();
    child.wait()?;
    let now = chrono::Utc::now();
    let lock = serde_json::json!({
        "version": "1.0.0",
        "lockId": "0badc0de-0000-4000-8000-000000000000",
        "metadata": {"pid": dead_pid, "ppid": null, "hostname": like.hostname, "user": like.user,
                     "processStartedAt": null},
        "timing": {"acquiredAt": now, "expiresAt": now + chrono::Duration::seconds(30), "renewedAt": now},
        "operation": {"type": "write", "stackTrace": null},
        "concurrency": {"waitingProcesses": []}
    });
    std::fs::write(dir.join(".lock"), serde_json::to_vec_pretty(&lock)?)
}

mod toml_full {
    use super::*;
    async fn subject() -> Subject {
        toml_subject(Durability::Full)
    }
    conformance_tests!(subject);
}

mod toml_fast {
    use super::*;
    async fn subject() -> Subject {
        toml_subject(Durability::Fast)
    }
    conformance_tests!(subject);
}
