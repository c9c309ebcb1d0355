//! Files the store cannot be tricked into (issue 7, item 2).
//!
//! Every path inside `.checklist/`, replaced by a symbolic link to a copy of what was
//! there, for every kind of operation that touches it: the operation fails with
//! [`Error::SymlinkRefused`] naming the link, the link's target is untouched (so
//! nothing was written outside the store), and the state is unchanged. Then the
//! modes of every created file and directory (decision 0004), exclusive creation at
//! names planted in advance, and names that must never become file names.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{add_step, snapshot, state_with_steps};
use checklist_backends::vfs::{RealFs, Vfs};
use checklist_backends::{
    FileLockProvider, FileStore, FileStoreOptions, InitOptions, OpenOptions, YamlCodec, builtin_registry,
    init_project, open_project,
};
use checklist_core::config::AuditSettings;
use checklist_core::model::{InstanceStart, InstanceStatus, StepCompletion, StepResult};
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, AuditRecord, ChecklistState, CorruptionKind, Error, Expectation, LockProvider, LockRequest,
    QuarantineNote,
};

const INSTANCE: &str = "finished-run";

/// A project whose store holds one of everything: state, backup and manifest,
/// rotated audit log, an archived instance with its history, a quarantined document
/// with its note, lock files.
struct Fixture {
    project: tempfile::TempDir,
    elsewhere: tempfile::TempDir,
    backup_id: String,
    quarantine_id: String,
    /// `.lock` as this process wrote it while holding the lock.
    held_lock: String,
}

impl Fixture {
    async fn new() -> Self {
        let project = tempfile::tempdir().unwrap();
        let registry = builtin_registry();
        init_project(project.path(), &InitOptions::default(), &registry)
            .await
            .unwrap();
        let fixture = Self {
            project,
            elsewhere: tempfile::tempdir().unwrap(),
            backup_id: String::new(),
            quarantine_id: String::new(),
            held_lock: String::new(),
        };
        let store = fixture.store();
        let first = store.read().await.unwrap().unwrap();
        let committed = store
            .commit(&state_with_steps(2), Expectation::current(&first))
            .await
            .unwrap();
        let backup_id = store.create_backup("fixture").await.unwrap().unwrap().id;
        store
            .append_audit(&AuditRecord::new(AuditEvent::Commit))
            .await
            .unwrap();
        assert!(store.rotate_audit().await.unwrap());
        store
            .append_audit(&AuditRecord::new(AuditEvent::Commit))
            .await
            .unwrap();
        store.archive(&archived(committed.revision)).await.unwrap();
        let raw = store.read_raw().await.unwrap().unwrap();
        let quarantine_id = store.quarantine(&raw, &note()).await.unwrap().id;
        let locks = fixture.locks();
        let guard = locks.acquire(&LockRequest::default()).await.unwrap();
        let held_lock = std::fs::read_to_string(fixture.dir().join(".lock")).unwrap();
        guard.release().await.unwrap();
        Self {
            backup_id,
            quarantine_id,
            held_lock,
            ..fixture
        }
    }

    fn dir(&self) -> PathBuf {
        self.project.path().join(".checklist")
    }

    fn store(&self) -> FileStore<YamlCodec> {
        let options = FileStoreOptions {
            audit: AuditSettings {
                max_bytes: 1,
                keep_files: 5,
            },
            ..FileStoreOptions::default()
        };
        FileStore::open(self.dir(), YamlCodec, options).unwrap()
    }

    fn locks(&self) -> FileLockProvider {
        FileLockProvider::new(&self.dir())
    }

    /// Leaves `.lock` as a holder that died would: its content, with a pid that is gone.
    fn plant_stale_lock(&self) {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let own = format!("\"pid\": {},", std::process::id());
        assert!(self.held_lock.contains(&own), "{}", self.held_lock);
        let stale = self.held_lock.replace(&own, &format!("\"pid\": {dead},"));
        std::fs::write(self.dir().join(".lock"), stale).unwrap();
    }

    /// Moves what is at `relative` (or, when nothing is, a file holding `content`) out
    /// of the store and puts a symbolic link to it in its place; returns the link.
    fn plant_link(&self, relative: &str, content: &[u8]) -> PathBuf {
        let link = match relative {
            "" => self.dir(),
            relative => self.dir().join(relative),
        };
        let target = self.elsewhere.path().join("moved");
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::rename(&link, &target).unwrap();
        } else {
            std::fs::write(&target, content).unwrap();
        }
        symlink(&target, &link).unwrap();
        link
    }

    /// Everything outside the store that a link points into, byte for byte.
    fn outside(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        snapshot(self.elsewhere.path())
    }

    /// The state file's bytes (through a link only when the state file is the link).
    fn state_bytes(&self) -> Vec<u8> {
        std::fs::read(self.dir().join("state.yaml")).unwrap()
    }
}

fn archived(revision: u64) -> checklist_core::archive::ArchivedInstance {
    let mut state = ChecklistState::new();
    let now = chrono::Utc::now();
    state
        .start_instance(
            InstanceStart {
                template_id: "release".into(),
                template_version: None,
                project_path: None,
                first_step_id: None,
            },
            now,
        )
        .unwrap();
    state.active_instance.as_mut().unwrap().id = INSTANCE.into();
    state
        .complete_step(
            StepCompletion {
                step_id: "build".into(),
                result: StepResult::Success,
                execution_time_ms: 1,
                command_results: vec![],
            },
            now,
        )
        .unwrap();
    state.revision = revision;
    state
        .archive_instance(Some(InstanceStatus::Completed), now)
        .unwrap()
}

fn note() -> QuarantineNote {
    QuarantineNote {
        corruption_type: CorruptionKind::ChecksumMismatch,
        detail: "planted by the test".into(),
        reason: "test".into(),
    }
}

/// What a case does to the store.
#[derive(Debug, Clone, Copy)]
enum Op {
    OpenProject,
    InitExisting,
    InitRepair,
    ReadState,
    WriteState,
    CreateBackup,
    WriteKeepingBackup,
    ListBackups,
    ReadBackup,
    DeleteBackup,
    AppendAudit,
    ReadAudit,
    RotateAudit,
    Archive,
    History,
    ReadArchived,
    Quarantine,
    ListQuarantine,
    ReadQuarantined,
    AcquireLock,
    BreakStaleLock,
    InspectLock,
}

async fn run(fx: &Fixture, op: Op) -> Result<(), Error> {
    let registry = builtin_registry();
    let store = || FileStore::open(fx.dir(), YamlCodec, FileStoreOptions::default());
    match op {
        Op::OpenProject => open_project(fx.project.path(), &registry, &OpenOptions::default())
            .await
            .map(drop),
        Op::InitExisting | Op::InitRepair => {
            let options = InitOptions {
                repair: matches!(op, Op::InitRepair),
                ..InitOptions::default()
            };
            init_project(fx.project.path(), &options, &registry)
                .await
                .map(drop)
        }
        Op::ReadState => store()?.read().await.map(drop),
        Op::WriteState | Op::WriteKeepingBackup => {
            let store = store()?;
            let mut next = state_with_steps(2);
            add_step(&mut next, "one-more");
            // The revision the fixture committed, without reading through a link.
            let expect = Expectation::Revision(2);
            if matches!(op, Op::WriteState) {
                store.commit(&next, expect).await.map(drop)
            } else {
                let keep = checklist_core::KeepBackup {
                    reason: "test".into(),
                    policy: Some(std::sync::Arc::new(checklist_core::RollingBackups::default())),
                };
                store.commit_keeping_backup(&next, expect, keep).await.map(drop)
            }
        }
        Op::CreateBackup => store()?.create_backup("test").await.map(drop),
        Op::ListBackups => store()?.list_backups().await.map(drop),
        Op::ReadBackup => store()?.read_verified_backup(&fx.backup_id).await.map(drop),
        Op::DeleteBackup => store()?.delete_backup(&fx.backup_id).await,
        Op::AppendAudit => store()?.append_audit(&AuditRecord::new(AuditEvent::Commit)).await,
        Op::ReadAudit => store()?.read_audit().await.map(drop),
        Op::RotateAudit => fx.store().rotate_audit().await.map(drop),
        Op::Archive => {
            let mut other = archived(2);
            other.instance.id = "another-run".into();
            store()?.archive(&other).await.map(drop)
        }
        Op::History => store()?.history().await.map(drop),
        Op::ReadArchived => store()?.read_archived(INSTANCE).await.map(drop),
        Op::Quarantine => {
            let store = store()?;
            let raw = std::fs::read(fx.dir().join("state.yaml")).unwrap();
            store.quarantine(&raw, &note()).await.map(drop)
        }
        Op::ListQuarantine => store()?.list_quarantine().await.map(drop),
        Op::ReadQuarantined => store()?.read_quarantined(&fx.quarantine_id).await.map(drop),
        Op::AcquireLock => {
            let request = LockRequest::default().with_timeout(Duration::from_millis(300));
            fx.locks().acquire(&request).await.map(drop)
        }
        Op::BreakStaleLock => {
            fx.plant_stale_lock();
            let request = LockRequest::default().with_timeout(Duration::from_millis(300));
            fx.locks().acquire(&request).await.map(drop)
        }
        Op::InspectLock => fx.locks().inspect().await.map(drop),
    }
}

/// Plants a link at `relative` (to a file holding `content` when nothing is there),
/// runs `op`, and checks the refusal and that nothing changed.
/// `{backup}` and `{quarantined}` in `relative` stand for the fixture's ids.
async fn refuses(relative: &str, content: &[u8], op: Op) {
    let fx = Fixture::new().await;
    let state_before = fx.state_bytes();
    let relative = &relative
        .replace("{backup}", &fx.backup_id)
        .replace("{quarantined}", &fx.quarantine_id);
    let link = fx.plant_link(relative, content);
    let outside_before = fx.outside();

    let error = run(&fx, op)
        .await
        .expect_err(&format!("{op:?} must refuse the link at {relative}"));

    assert_eq!(error.kind(), "symlink_refused", "{op:?} on {relative}: {error}");
    match &error {
        Error::SymlinkRefused { path } => assert_eq!(path, &link, "{op:?} on {relative}"),
        other => panic!("{op:?} on {relative}: {other:?}"),
    }
    assert!(
        error.to_string().contains(&link.display().to_string()),
        "the message names the link: {error}"
    );
    assert_eq!(
        fx.outside(),
        outside_before,
        "{op:?} changed the target of {relative}"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        fx.elsewhere.path().join("moved"),
        "{op:?} replaced the link at {relative}"
    );
    assert_eq!(
        fx.state_bytes(),
        state_before,
        "{op:?} on {relative} changed the state"
    );
}

macro_rules! refusal_cases {
    ($($name:ident: $path:expr, $op:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            refuses($path, b"", Op::$op).await;
        }
    )*};
}

refusal_cases! {
    store_dir_open: "", OpenProject;
    store_dir_init: "", InitExisting;
    state_read: "state.yaml", ReadState;
    state_write: "state.yaml", WriteState;
    state_backup: "state.yaml", CreateBackup;
    state_quarantine: "state.yaml", Quarantine;
    config_open: "config.yaml", OpenProject;
    config_init: "config.yaml", InitExisting;
    history_read: "history.yaml", History;
    history_archive: "history.yaml", Archive;
    metrics_init_repair: "metrics.yaml", InitRepair;
    cache_dir_init_repair: ".cache", InitRepair;
    lock_acquire: ".lock", AcquireLock;
    lock_inspect: ".lock", InspectLock;
    locks_dir_write: ".locks", WriteState;
    locks_dir_acquire: ".locks", AcquireLock;
    locks_dir_inspect: ".locks", InspectLock;
    locks_dir_init_repair: ".locks", InitRepair;
    write_lock_write: ".locks/write.lock", WriteState;
    write_lock_backup: ".locks/write.lock", CreateBackup;
    write_lock_archive: ".locks/write.lock", Archive;
    break_lock_stale: ".locks/break.lock", BreakStaleLock;
    backup_dir_create: ".backup", CreateBackup;
    backup_dir_write_keeping: ".backup", WriteKeepingBackup;
    backup_dir_list: ".backup", ListBackups;
    backup_dir_read: ".backup", ReadBackup;
    backup_dir_delete: ".backup", DeleteBackup;
    manifest_list: ".backup/manifest.yaml", ListBackups;
    manifest_create: ".backup/manifest.yaml", CreateBackup;
    audit_append: "audit.log", AppendAudit;
    audit_read: "audit.log", ReadAudit;
    audit_part_read: "audit.log.1", ReadAudit;
    audit_part_rotate: "audit.log.1", RotateAudit;
    archive_dir_store: "archive", Archive;
    archive_dir_read: "archive", ReadArchived;
    archive_file_read: "archive/finished-run.yaml", ReadArchived;
    quarantine_dir_store: "quarantine", Quarantine;
    quarantine_dir_list: "quarantine", ListQuarantine;
    quarantine_dir_read: "quarantine", ReadQuarantined;
    backup_file_read: ".backup/state.yaml.{backup}", ReadBackup;
    backup_file_delete: ".backup/state.yaml.{backup}", DeleteBackup;
    quarantined_file_read: "quarantine/state.yaml.{quarantined}", ReadQuarantined;
    quarantine_note_list: "quarantine/state.yaml.{quarantined}.why.yaml", ListQuarantine;
}

#[tokio::test]
async fn a_linked_waiter_registration_is_not_read() {
    let waiter = br#"{"pid":1,"hostname":"elsewhere","since":"2026-01-01T00:00:00Z"}"#;
    refuses(".locks/waiter-1-0123abcd.json", waiter, Op::InspectLock).await;
}

/// A link planted at a temp file's name is never written through: the sweep refuses
/// to remove it and the write goes on through its own, exclusively created temp file.
#[tokio::test]
async fn a_link_at_a_temp_name_is_not_followed() {
    let fx = Fixture::new().await;
    // pid 0 is never a live writer, so the sweep considers the name stale.
    let link = fx.plant_link(".state.yaml.tmp-0-00aa11bb22cc33dd", b"outside");
    let outside_before = fx.outside();
    run(&fx, Op::WriteState).await.unwrap();
    assert_eq!(fx.outside(), outside_before);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fx.store().read().await.unwrap().unwrap().revision, 3);
}

/// Exclusive creation: anything at the name, even a link to nowhere, makes it fail,
/// and the link's target is not created.
#[test]
fn exclusive_creation_never_follows_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let nowhere = elsewhere.path().join("would-be-created");
    let dangling = dir.path().join(".lock");
    symlink(&nowhere, &dangling).unwrap();
    let error = RealFs.create_new(&dangling, 0o600).err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(!nowhere.exists());
    let error = RealFs.open_lock_file(&dangling).unwrap_err();
    assert!(error.to_string().contains(".lock"), "{error}");
    assert!(!nowhere.exists());
    let error = RealFs.open_append(&dangling, 0o600).err().unwrap();
    assert!(error.to_string().contains(".lock"), "{error}");
    assert!(!nowhere.exists());
}

/// The umask of this process, from the kernel (reading it with umask(2) would change
/// it for a moment under the other tests' feet).
fn current_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask line");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

#[tokio::test]
async fn every_created_file_and_directory_has_the_mode_of_decision_0004() {
    let fx = Fixture::new().await;
    let umask = current_umask();
    let dir = fx.dir();
    let expected = |relative: &str| -> u32 {
        let name = relative.rsplit('/').next().unwrap();
        // schemas/state.schema.json is the schema, not a state: metadata.
        let private = (name.starts_with("state.") && !relative.starts_with("schemas/"))
            || name.starts_with("audit.log")
            || name.starts_with("live-")
            || name == ".lock"
            || relative.starts_with("archive/")
            || relative.starts_with("quarantine/")
            || relative.starts_with(".cache/verified.");
        if private { 0o600 } else { 0o644 }
    };
    let mut seen = 0;
    for (path, content) in snapshot(&dir) {
        let relative = path.strip_prefix(&dir).unwrap().to_str().unwrap().to_owned();
        let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o777;
        let want = match content {
            None => 0o755,
            Some(_) if relative.starts_with(".locks/") && !relative.contains("live-") => {
                // The OS lock files (write.lock, break.lock, a waiter's ticket) hold nothing.
                0o644
            }
            Some(_) => expected(&relative),
        } & !umask;
        assert_eq!(
            mode, want,
            "{relative}: {mode:o}, want {want:o} (umask {umask:03o})"
        );
        seen += 1;
    }
    assert!(seen >= 15, "the fixture should create many files, saw {seen}");
}

/// Names that become file names: path separators, `..`, absolute paths, NUL bytes and
/// over-long names are refused before any file is touched.
#[tokio::test]
async fn hostile_names_never_become_paths() {
    let fx = Fixture::new().await;
    let store = fx.store();
    let before = snapshot(&fx.dir());
    let long = "a".repeat(300);
    let hostile = [
        "../state.yaml",
        "../../etc/passwd",
        "/etc/passwd",
        "a/b",
        "nul\0byte",
        ".hidden",
        "",
        long.as_str(),
    ];
    for name in hostile {
        for (what, error) in [
            ("read_backup", store.read_verified_backup(name).await.unwrap_err()),
            ("delete_backup", store.delete_backup(name).await.unwrap_err()),
            ("read_archived", store.read_archived(name).await.unwrap_err()),
            (
                "read_quarantined",
                store.read_quarantined(name).await.unwrap_err(),
            ),
        ] {
            assert!(
                matches!(error.kind(), "invalid_operation" | "not_found"),
                "{what}({name:?}): {error}"
            );
        }
        let mut instance = archived(2);
        instance.instance.id = name.to_owned();
        let error = store.archive(&instance).await.unwrap_err();
        assert!(
            matches!(error.kind(), "invalid_operation" | "schema_invalid"),
            "archive({name:?}): {error}"
        );
    }
    assert_eq!(snapshot(&fx.dir()), before, "a refused name changed the store");
}
