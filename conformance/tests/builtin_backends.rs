//! The conformance suite against every built-in backend: YAML and JSON files (with
//! full and fast durability) and memory.

use std::sync::Arc;

use checklist_backends::{
    Codec, FileLockProvider, FileStore, FileStoreOptions, InProcessLockProvider, JsonCodec, MemoryStore,
    YamlCodec,
};
use checklist_conformance::{Capabilities, RawAccess, Subject, conformance_tests};
use checklist_core::config::Durability;

fn file_subject<C: Codec + Clone>(codec: C, durability: Durability) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    let options = FileStoreOptions {
        durability,
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir.path(), codec.clone(), options.clone()).expect("open the store");
    let path = dir.path().to_owned();
    let path_for_locks = dir.path().to_owned();
    let state_path = store.state_path().to_owned();
    Subject::new(Arc::new(store), Arc::new(FileLockProvider::new(dir.path())))
        .with_capabilities(Capabilities::file_backend())
        .reopen_with(move || {
            Arc::new(FileStore::open(&path, codec.clone(), options.clone()).expect("reopen the store"))
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
/// user but a pid that no longer exists.
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

mod yaml {
    use super::*;
    async fn subject() -> Subject {
        file_subject(YamlCodec, Durability::Full)
    }
    conformance_tests!(subject);
}

mod yaml_fast {
    use super::*;
    async fn subject() -> Subject {
        file_subject(YamlCodec, Durability::Fast)
    }
    conformance_tests!(subject);
}

mod json {
    use super::*;
    async fn subject() -> Subject {
        file_subject(JsonCodec, Durability::Full)
    }
    conformance_tests!(subject);
}

mod json_fast {
    use super::*;
    async fn subject() -> Subject {
        file_subject(JsonCodec, Durability::Fast)
    }
    conformance_tests!(subject);
}

mod memory {
    use super::*;
    async fn subject() -> Subject {
        let store = MemoryStore::new();
        let (for_reopen, for_read, for_write) = (store.clone(), store.clone(), store.clone());
        let locks = InProcessLockProvider::new("memory:conformance");
        let other_locks = locks.clone();
        Subject::new(Arc::new(store), Arc::new(locks))
            .reopen_locks_with(move || Arc::new(other_locks.clone()))
            .with_capabilities(Capabilities::in_memory())
            .reopen_with(move || Arc::new(for_reopen.clone()))
            .raw_access(RawAccess::new(
                move || Ok(for_read.raw()),
                move |bytes| {
                    for_write.replace_raw(bytes.to_vec());
                    Ok(())
                },
            ))
    }
    conformance_tests!(subject);
}

#[test]
fn the_case_list_and_the_macro_agree() {
    let cases = checklist_conformance::all_cases();
    assert_eq!(cases.len(), 73);
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
}
