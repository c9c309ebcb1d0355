//! Power loss, not just `kill -9` (docs/decisions/0023-power-loss-model.md): every
//! writing operation of the file backends runs on a [`CrashFs`], and at every crash
//! point each disk state a power cut may leave there (all of them when they are few,
//! a sample drawn from a printed seed when they are many) is written out and opened by
//! the real code, as after a reboot. It must open — recovering if needed — with every
//! commit acknowledged before the crash point in the state and in the audit trail,
//! nothing torn, every backup listed verifying, every archived instance and
//! quarantined file acknowledged still readable, and the next writer must get the lock
//! at once and commit.
//!
//! `CHECKLIST_POWER_LOSS_STATES` sets how many states a crash point checks at most (a
//! few in the test run; `scripts/power-loss.sh` checks thousands) and
//! `CHECKLIST_POWER_LOSS_SEED` the seed of the samples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{project_of, seeded_project, snapshot, temp_files};
use checklist_backends::crash::{CrashFs, Forget};
use checklist_backends::vfs::{RealFs, Vfs};
use checklist_backends::{
    FileLockProvider, InitOptions, Layout, OpenOptions, OpenedStore, builtin_registry,
    builtin_registry_with_vfs, init_project, init_project_with_vfs, load_config, open_project,
    open_project_with_vfs, write_config,
};
use checklist_conformance::testkit::{add_step, state_with_steps};
use checklist_core::config::{Config, Durability};
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
use checklist_core::model::now;
use checklist_core::recovery::RecoverRequest;
use checklist_core::{
    AuditEvent, AuditRecord, ChecklistState, Error, LockProvider, LockRequest, Recovery, RollingBackups,
    StateStore, StateStoreExt, migrate,
};

/// The most crash states one crash point checks.
fn states_per_point() -> usize {
    std::env::var("CHECKLIST_POWER_LOSS_STATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The seed the samples are drawn with.
fn seed() -> u64 {
    std::env::var("CHECKLIST_POWER_LOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_207)
}

/// Something a workload was told is done: after a power cut it must still be so.
#[derive(Debug, Clone)]
enum Ack {
    /// The project exists.
    Initialised,
    /// A commit returned: the state is at least at `revision`, holds `step` (when
    /// given), and the audit trail has the commit.
    Committed { revision: u64, step: Option<String> },
    /// A backup was made (and no later pruning was due to remove it).
    Backup(String),
    /// An instance was archived.
    Archived(String),
    /// Corrupt bytes were quarantined.
    Quarantined(String),
}

/// A workload recording on a [`CrashFs`], with what it acknowledged and when.
struct Recording {
    root: tempfile::TempDir,
    fs: CrashFs,
    acks: Mutex<Vec<(usize, Ack)>>,
}

impl Recording {
    /// Starts recording on `root`, whose present content is durable.
    fn start(root: tempfile::TempDir, forget: Option<Forget>) -> Self {
        Self::start_with_external(root, forget, &[])
    }

    /// Like [`start`](Self::start), with files SQLite writes itself (relative to
    /// `root`).
    fn start_with_external(root: tempfile::TempDir, forget: Option<Forget>, external: &[&Path]) -> Self {
        let mut fs = CrashFs::with_external(root.path(), external).unwrap();
        if let Some(forget) = forget {
            fs = fs.forgetting(forget);
        }
        Self {
            root,
            fs,
            acks: Mutex::new(Vec::new()),
        }
    }

    fn vfs(&self) -> Arc<dyn Vfs> {
        Arc::new(self.fs.clone())
    }

    fn ack(&self, ack: Ack) {
        // What SQLite committed is durable once the call returned.
        self.fs.settle();
        let at = self.fs.operations();
        self.acks.lock().unwrap().push((at, ack));
    }

    async fn open(&self) -> OpenedStore {
        let vfs = self.vfs();
        open_project_with_vfs(
            self.root.path(),
            &builtin_registry_with_vfs(Arc::clone(&vfs)),
            &OpenOptions::default(),
            vfs,
        )
        .await
        .unwrap()
    }
}

/// What one workload's check covered.
#[derive(Debug, Default)]
struct Counts {
    points: usize,
    checked: usize,
    /// The states a power cut may leave, summed over the crash points.
    possible: u128,
    sampled_points: usize,
}

/// A violation found in one crash state.
#[derive(Debug)]
struct Finding {
    point: usize,
    operation: String,
    state: String,
    problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash point {} ({}), state [{}]: {}",
            self.point, self.operation, self.state, self.problem
        )
    }
}

/// Opens every crash state of every crash point of `recording` with the real code;
/// returns the counts and the first violation per crash point.
async fn check_every_crash_state(name: &str, recording: &Recording) -> (Counts, Vec<Finding>) {
    let started = Instant::now();
    let acks = recording.acks.lock().unwrap().clone();
    let mut counts = Counts::default();
    let mut findings = Vec::new();
    for point in 0..=recording.fs.operations() {
        let states = recording.fs.crash_states(point, states_per_point(), seed());
        counts.points += 1;
        counts.possible += states.total().map_or(u128::MAX, |t| t as u128);
        counts.sampled_points += usize::from(states.sampled());
        let acknowledged: Vec<Ack> = acks
            .iter()
            .filter(|(at, _)| *at <= point)
            .map(|(_, ack)| ack.clone())
            .collect();
        for state in states.states() {
            counts.checked += 1;
            let into = tempfile::tempdir().unwrap();
            state.materialise(into.path()).unwrap();
            if let Err(problem) = check_after_reboot(into.path(), &acknowledged).await {
                let operation = match point {
                    0 => "before the first operation".to_owned(),
                    n => {
                        let (op, path) = recording.fs.operation(n - 1).unwrap();
                        format!("after operation {} ({op} {})", n - 1, path.display())
                    }
                };
                findings.push(Finding {
                    point,
                    operation,
                    state: state.describe(),
                    problem,
                });
                break;
            }
        }
    }
    #[allow(
        clippy::print_stderr,
        reason = "the counts, for the report and scripts/power-loss.sh"
    )]
    {
        eprintln!(
            "power_loss {name}: {} crash points, {} of {} possible crash states checked ({} points sampled, seed {}), {:.1} s",
            counts.points,
            counts.checked,
            counts.possible,
            counts.sampled_points,
            seed(),
            started.elapsed().as_secs_f64()
        );
    }
    (counts, findings)
}

/// Every directory and file under `root` by its path relative to `root`, with its
/// bytes (`None` for a directory), leaving out SQLite's shared-memory index, which
/// SQLite rebuilds.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    snapshot(root)
        .into_iter()
        .filter(|(path, _)| path != root && !path.to_string_lossy().ends_with("-shm"))
        .map(|(path, bytes)| (path.strip_prefix(root).unwrap().to_owned(), bytes))
        .collect()
}

/// The model with everything on disk must be the real tree: a file the engine wrote
/// around the seam would be missing from it, and no power cut could be simulated for it.
fn assert_model_matches_the_disk(name: &str, recording: &Recording) {
    let into = tempfile::tempdir().unwrap();
    recording.fs.as_recorded().materialise(into.path()).unwrap();
    let (modelled, real) = (tree(into.path()), tree(recording.root.path()));
    let names = |tree: &BTreeMap<PathBuf, Option<Vec<u8>>>| tree.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&modelled),
        names(&real),
        "{name}: the model and the disk name different files"
    );
    for (path, bytes) in &real {
        assert!(
            modelled[path] == *bytes,
            "{name}: the model holds other bytes for {}",
            path.display()
        );
    }
}

/// Checks `recording` and fails naming every violation.
async fn assert_survives_power_loss(name: &str, recording: &Recording) -> Counts {
    assert_model_matches_the_disk(name, recording);
    let (counts, findings) = check_every_crash_state(name, recording).await;
    let listed: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert!(
        findings.is_empty(),
        "{name}: {} crash points lose something (seed {}):\n{}",
        findings.len(),
        seed(),
        listed.join("\n")
    );
    counts
}

fn recovery_of(opened: &OpenedStore) -> Recovery<Arc<dyn StateStore>, Arc<dyn LockProvider>, RollingBackups> {
    Recovery::new(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
    )
    .with_settings(&opened.config.lock, &opened.config.recovery)
}

type Coordinator = TransactionCoordinator<Arc<dyn StateStore>, Arc<dyn LockProvider>, RollingBackups>;

fn coordinator_of(opened: &OpenedStore) -> Coordinator {
    TransactionCoordinator::with_options(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
        CoordinatorOptions::from_config(&opened.config),
    )
}

/// The lock timeout after a reboot: a lock left by the power cut must be broken at
/// once, so a wait this long means it blocks the next writer.
const NEXT_WRITER_PATIENCE_MS: u64 = 3_000;

/// What the real code must find in the project at `root` after a reboot.
async fn check_after_reboot(root: &Path, acks: &[Ack]) -> Result<(), String> {
    let options = OpenOptions {
        lock_timeout_ms: Some(NEXT_WRITER_PATIENCE_MS),
        ..OpenOptions::default()
    };
    let initialised = acks.iter().any(|a| matches!(a, Ack::Initialised));
    let opened = match open_project(root, &builtin_registry(), &options).await {
        Ok(opened) => opened,
        Err(error) if !initialised => {
            // An init cut short: what it left must not stand in the way of the next.
            return init_project(root, &InitOptions::default(), &builtin_registry())
                .await
                .map(drop)
                .map_err(|e| format!("an init cut short by the power cut blocks the next ({error}): {e}"));
        }
        Err(error) => return Err(format!("the project does not open: {error}")),
    };
    let store = &opened.backend.store;
    let loaded = match recovery_of(&opened).load().await {
        Ok(loaded) => loaded,
        Err(Error::UnsupportedVersion { .. }) => {
            // A migration not acknowledged: the old document is still there and the
            // migration must run again.
            let pending = migrate::prepare(store.as_ref())
                .await
                .map_err(|e| format!("the migration cannot be prepared again: {e}"))?
                .ok_or("the state to migrate is gone")?;
            migrate::apply(store.as_ref(), pending)
                .await
                .map_err(|e| format!("the migration cannot run again: {e}"))?;
            recovery_of(&opened)
                .load()
                .await
                .map_err(|e| format!("the state does not load after migrating again: {e}"))?
        }
        Err(error) if !initialised && matches!(error, Error::NotInitialized { .. }) => return Ok(()),
        Err(error) => return Err(format!("the state does not load: {error}")),
    };
    let state = loaded.state.as_ref();
    let committed = acks.iter().filter_map(|ack| match ack {
        Ack::Committed { revision, step } => Some((*revision, step.as_deref())),
        _ => None,
    });
    let text = serde_json::to_string(state).unwrap();
    let audit = store
        .read_audit()
        .await
        .map_err(|e| format!("the audit trail cannot be read: {e}"))?;
    if let Some(problem) = audit.problems.iter().find(|p| !p.torn) {
        return Err(format!("the audit trail is damaged: {problem:?}"));
    }
    for (revision, step) in committed {
        if state.revision < revision {
            return Err(format!(
                "acknowledged revision {revision} is lost: the state is at revision {}{}",
                state.revision,
                loaded
                    .recovered
                    .as_ref()
                    .map(|r| format!(" (recovered: {})", r.summary()))
                    .unwrap_or_default()
            ));
        }
        if let Some(step) = step
            && !text.contains(step)
        {
            return Err(format!(
                "the acknowledged step {step} is lost (revision {})",
                state.revision
            ));
        }
        if !audit.records.iter().any(|r| r.revision_after == Some(revision)) {
            return Err(format!(
                "the audit trail lost the record of acknowledged revision {revision}"
            ));
        }
    }
    let backups = store
        .list_backups()
        .await
        .map_err(|e| format!("the backups cannot be listed: {e}"))?;
    for backup in &backups {
        store
            .read_backup(&backup.id)
            .await
            .map_err(|e| format!("listed backup {} does not verify: {e}", backup.id))?;
    }
    for ack in acks {
        match ack {
            Ack::Backup(id) if !backups.iter().any(|b| &b.id == id) => {
                return Err(format!("acknowledged backup {id} is lost"));
            }
            Ack::Archived(id) => {
                store
                    .read_archived(id)
                    .await
                    .map_err(|e| format!("acknowledged archived instance {id} is lost: {e}"))?;
            }
            Ack::Quarantined(id) => {
                store
                    .read_quarantined(id)
                    .await
                    .map_err(|e| format!("acknowledged quarantined file {id} is lost: {e}"))?;
            }
            _ => {}
        }
    }
    let before = state.revision;
    let next = coordinator_of(&opened)
        .transact("after the power cut", |_| Ok(()))
        .await
        .map_err(|e| format!("the next writer cannot commit: {e}"))?;
    if next.revision <= before {
        return Err(format!(
            "the next commit went to revision {} after {before}",
            next.revision
        ));
    }
    store
        .read_existing()
        .await
        .map_err(|e| format!("the state written after the power cut does not verify: {e}"))?;
    let left = temp_files(&root.join(".checklist"));
    if !left.is_empty() {
        return Err(format!("temp files left after the next commit: {left:?}"));
    }
    Ok(())
}

/// Commits one step named `step` through the recording; acknowledges it.
async fn commit_step(recording: &Recording, opened: &OpenedStore, step: &str) {
    let outcome = coordinator_of(opened)
        .transact("step complete", |state| {
            add_step(state, step);
            Ok(())
        })
        .await
        .unwrap();
    recording.ack(Ack::Committed {
        revision: outcome.revision,
        step: Some(step.to_owned()),
    });
}

// ----- the workloads -----

async fn init_workload(backend: &str, forget: Option<Forget>) -> Recording {
    let recording = Recording::start(tempfile::tempdir().unwrap(), forget);
    let vfs = recording.vfs();
    let options = InitOptions {
        backend: Some(backend.to_owned()),
        ..InitOptions::default()
    };
    init_project_with_vfs(
        recording.root.path(),
        &options,
        &builtin_registry_with_vfs(Arc::clone(&vfs)),
        vfs,
    )
    .await
    .unwrap();
    recording.ack(Ack::Initialised);
    recording
}

/// Three commits, each with a backup, retention pruning and an audit log that rotates.
async fn commits_workload(backend: &str, forget: Option<Forget>) -> Recording {
    let root = project_of(backend).await;
    configure(root.path(), |config| {
        config.backup.keep = 1;
        config.audit.max_bytes = 1024;
        config.audit.keep_files = 9;
    });
    seed_state(root.path()).await;
    let recording = Recording::start(root, forget);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    for n in 0..3 {
        commit_step(&recording, &opened, &format!("power-loss-commit-{n}")).await;
    }
    recording
}

/// Changes the config.yaml of the project at `root`.
fn configure(root: &Path, change: impl FnOnce(&mut Config)) {
    let layout = Layout::for_project(root);
    let mut config = load_config(&RealFs, &layout).unwrap();
    change(&mut config);
    write_config(&RealFs, &layout, &config, Durability::Full).unwrap();
}

async fn seed_state(root: &Path) {
    let opened = open_project(root, &builtin_registry(), &OpenOptions::default())
        .await
        .unwrap();
    coordinator_of(&opened)
        .transact("seed", |state| {
            *state = state_with_steps(3);
            Ok(())
        })
        .await
        .unwrap();
    coordinator_of(&opened)
        .transact("seed", |state| {
            add_step(state, "seeded");
            Ok(())
        })
        .await
        .unwrap();
}

fn state_file(root: &Path) -> PathBuf {
    root.join(".checklist/state.yaml")
}

/// A corrupt state recovered from its newest backup, the corrupt bytes quarantined.
async fn recovery_workload() -> Recording {
    let (root, _) = seeded_project().await;
    seed_state(root.path()).await;
    let valid = std::fs::read(state_file(root.path())).unwrap();
    std::fs::write(state_file(root.path()), &valid[..valid.len() / 2]).unwrap();
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    let report = recovery_of(&opened)
        .recover(&RecoverRequest::default())
        .await
        .unwrap()
        .expect("the state was corrupt");
    recording.ack(Ack::Committed {
        revision: report.revision,
        step: None,
    });
    if let Some(quarantined) = report.quarantined {
        recording.ack(Ack::Quarantined(quarantined.id));
    }
    recording
}

/// A hand-edited state resealed.
async fn reseal_workload() -> Recording {
    let (root, _) = seeded_project().await;
    seed_state(root.path()).await;
    let text = std::fs::read_to_string(state_file(root.path())).unwrap();
    std::fs::write(state_file(root.path()), text.replace("seeded", "edited-by-hand")).unwrap();
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    let report = recovery_of(&opened)
        .reseal()
        .await
        .unwrap()
        .expect("the state was edited");
    recording.ack(Ack::Committed {
        revision: report.revision,
        step: Some("edited-by-hand".to_owned()),
    });
    recording.ack(Ack::Quarantined(report.kept.id));
    recording
}

/// The oldest backup restored over a good state (which is backed up first), then a
/// backup made by hand and the backups pruned.
async fn restore_and_backups_workload() -> Recording {
    let (root, _) = seeded_project().await;
    seed_state(root.path()).await;
    configure(root.path(), |config| config.backup.keep = 2);
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    let recovery = recovery_of(&opened);
    let oldest = opened
        .backend
        .store
        .list_backups()
        .await
        .unwrap()
        .into_iter()
        .min_by_key(|b| b.revision)
        .expect("the project has backups");
    let restored = recovery.restore(&oldest.id).await.unwrap();
    recording.ack(Ack::Committed {
        revision: restored.revision,
        step: None,
    });
    let made = recovery
        .backup_now("by hand")
        .await
        .unwrap()
        .expect("a state to back up");
    recording.ack(Ack::Backup(made.id));
    recovery.prune().await.unwrap();
    recording
}

/// The active instance archived, as `checklist archive` does it.
async fn archive_workload() -> Recording {
    let (root, _) = seeded_project().await;
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    let store = Arc::clone(&opened.backend.store);
    let outcome = coordinator_of(&opened)
        .transact_async("archive", |mut state: ChecklistState| {
            let store = Arc::clone(&store);
            async move {
                let archived =
                    state.archive_instance(Some(checklist_core::model::InstanceStatus::Completed), now())?;
                let entry = store.archive(&archived).await?;
                Ok((state, entry))
            }
        })
        .await
        .unwrap();
    recording.ack(Ack::Committed {
        revision: outcome.revision,
        step: None,
    });
    recording.ack(Ack::Archived(outcome.value.instance_id.clone()));
    recording
}

/// An older document migrated (`fixture` from schemas/fixtures: this project's own
/// 0.9.0 format, or a TypeScript checklist's file being imported).
async fn migrate_workload(fixture: &str) -> Recording {
    let (root, _) = seeded_project().await;
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/fixtures")
        .join(fixture);
    std::fs::write(state_file(root.path()), std::fs::read(source).unwrap()).unwrap();
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    let store = &opened.backend.store;
    let pending = migrate::prepare(store.as_ref()).await.unwrap().unwrap();
    let from = pending.found.revision;
    let commit = migrate::apply(store.as_ref(), pending).await.unwrap();
    // As `checklist migrate` does: the migration is done once it is in the audit trail.
    store
        .append_audit(
            &AuditRecord::new(AuditEvent::Migration).revisions(Some(from), Some(commit.committed.revision)),
        )
        .await
        .unwrap();
    recording.ack(Ack::Committed {
        revision: commit.committed.revision,
        step: None,
    });
    recording.ack(Ack::Backup(commit.backup.id));
    recording
}

/// The file lock taken, renewed, released; then a lock left by a dead holder broken
/// and taken over.
async fn lock_workload() -> Recording {
    let (root, _) = seeded_project().await;
    let dir = root.path().join(".checklist");
    // A lock whose holder is gone: taken, its bytes kept, released, put back.
    let provider = FileLockProvider::new(&dir);
    let guard = provider
        .acquire(&LockRequest::default().with_timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    let dead = std::fs::read(dir.join(".lock")).unwrap();
    guard.release().await.unwrap();
    std::fs::write(dir.join(".lock"), dead).unwrap();
    let recording = Recording::start(root, None);
    recording.ack(Ack::Initialised);
    let locks = FileLockProvider::with_vfs(&dir, recording.vfs());
    let request = LockRequest {
        expiry: Duration::from_millis(300),
        ..LockRequest::default().with_timeout(Duration::from_secs(2))
    };
    for _ in 0..2 {
        let guard = locks.acquire(&request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        guard.ensure_held().await.unwrap();
        guard.release().await.unwrap();
    }
    recording
}

/// The SQLite backend's files outside `state.db` — backup files written before the
/// transaction that lists them, removed by pruning, read back by a restore — with
/// `state.db` and its write-ahead log as SQLite leaves them (its durability is its
/// own): three commits with a backup each, retention pruning, a backup by hand and a
/// restore.
#[cfg(feature = "sqlite")]
async fn sqlite_workload() -> Recording {
    let root = tempfile::tempdir().unwrap();
    init_project(
        root.path(),
        &InitOptions {
            backend: Some("sqlite".to_owned()),
            ..InitOptions::default()
        },
        &builtin_registry(),
    )
    .await
    .unwrap();
    configure(root.path(), |config| config.backup.keep = 2);
    seed_state(root.path()).await;
    let external = [
        Path::new(".checklist/state.db"),
        Path::new(".checklist/state.db-wal"),
    ];
    let recording = Recording::start_with_external(root, None, &external);
    recording.ack(Ack::Initialised);
    let opened = recording.open().await;
    for n in 0..3 {
        commit_step(&recording, &opened, &format!("power-loss-commit-{n}")).await;
    }
    let recovery = recovery_of(&opened);
    let made = recovery
        .backup_now("by hand")
        .await
        .unwrap()
        .expect("a state to back up");
    recording.ack(Ack::Backup(made.id.clone()));
    let restored = recovery.restore(&made.id).await.unwrap();
    recording.ack(Ack::Committed {
        revision: restored.revision,
        step: Some("power-loss-commit-2".to_owned()),
    });
    recording
}

/// Fails unless the recording holds an operation `name` on a path containing each
/// `part`: the workload really did what it is meant to put through power cuts.
fn assert_recorded(recording: &Recording, expected: &[(&str, &str)]) {
    let operations: Vec<(&'static str, PathBuf)> = (0..recording.fs.operations())
        .filter_map(|i| recording.fs.operation(i))
        .collect();
    for (name, part) in expected {
        assert!(
            operations
                .iter()
                .any(|(op, path)| op == name && path.to_string_lossy().contains(part)),
            "no {name} of a path with {part} among {operations:#?}"
        );
    }
}

// ----- the tests -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_init_leaves_a_project_or_room_for_one() {
    for backend in ["yaml", "json"] {
        let recording = init_workload(backend, None).await;
        assert_survives_power_loss(&format!("init ({backend})"), &recording).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_commits_with_backups_pruning_and_audit_rotation_loses_no_acknowledged_commit() {
    for backend in ["yaml", "json"] {
        let recording = commits_workload(backend, None).await;
        assert_recorded(
            &recording,
            &[
                ("rename", "audit.log.1"),
                ("hard link", ".lock"),
                ("remove", ".backup/state."),
            ],
        );
        let counts = assert_survives_power_loss(&format!("commits ({backend})"), &recording).await;
        assert!(counts.points > 30, "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_recovery_keeps_the_quarantined_bytes() {
    assert_survives_power_loss("recovery", &recovery_workload().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_reseal_keeps_the_hand_edit() {
    assert_survives_power_loss("reseal", &reseal_workload().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_restore_backup_and_prune_loses_no_backup() {
    assert_survives_power_loss("restore, backup, prune", &restore_and_backups_workload().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_archive_keeps_the_instance_somewhere() {
    assert_survives_power_loss("archive", &archive_workload().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_migration_and_import_keeps_the_old_or_the_new_document() {
    for fixture in ["state-0.9.0.yaml", "typescript-1.0.0-first-use.yaml"] {
        let recording = migrate_workload(fixture).await;
        assert_survives_power_loss(&format!("migrate {fixture}"), &recording).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_lock_acquire_renew_break_and_release_never_blocks_the_next_writer() {
    let recording = lock_workload().await;
    // Taken (linked), renewed (renamed over), released and broken (removed).
    assert_recorded(
        &recording,
        &[
            ("hard link", ".checklist/.lock"),
            ("rename", ".checklist/.lock"),
            ("remove", ".checklist/.lock"),
        ],
    );
    assert_survives_power_loss("locks", &recording).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_of_the_sqlite_backends_backup_files_loses_no_acknowledged_backup() {
    assert_survives_power_loss("sqlite backups", &sqlite_workload().await).await;
}

// ----- it bites -----

/// The commits workload with `forget` dropped must lose an acknowledged commit or
/// record somewhere.
async fn assert_forgetting_is_found(forget: Forget, expected: &str) {
    let recording = commits_workload("yaml", Some(forget.clone())).await;
    let (_, findings) = check_every_crash_state(&format!("commits without {forget:?}"), &recording).await;
    let problems: BTreeMap<usize, &str> = findings.iter().map(|f| (f.point, f.problem.as_str())).collect();
    assert!(
        findings.iter().any(|f| f.problem.contains(expected)),
        "without {forget:?} the simulation must find '{expected}' (seed {}); it found {problems:#?}",
        seed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_finds_the_commit_lost_without_the_file_fsync() {
    assert_forgetting_is_found(Forget::FileSyncsOf(".state.yaml.tmp-".to_owned()), "is lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_finds_the_commit_lost_without_the_directory_fsync() {
    assert_forgetting_is_found(Forget::DirectorySyncs, "acknowledged revision").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_finds_the_record_lost_without_the_audit_fsync() {
    assert_forgetting_is_found(
        Forget::FileSyncsOf("audit".to_owned()),
        "the audit trail lost the record",
    )
    .await;
}
