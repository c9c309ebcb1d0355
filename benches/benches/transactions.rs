//! One durable transaction end to end, as `checklist step complete` runs it, in-process,
//! next to the file-system floor it is bound by and to SQLite doing the same job.
//!
//! Benchmarks (criterion ids, `group/function`):
//!
//! - `tx/yaml_N`, `tx/json_N`, `tx/memory_N` (`N` in 10, 100, 1000 completed steps): one
//!   `TransactionCoordinator::transact` that completes a step — lock, verified read, the
//!   change on a copy, secret scan, backup, compare-and-swap write, audit `begin` and
//!   `commit`, backup pruning and audit rotation, release. The file backends are
//!   projects made by `init_project` and opened by `open_project`, with the coordinator
//!   built from the opened store as cli/src/commands/change.rs builds it: the real
//!   `FileLockProvider`, `durability: full`, backups keep 3 and the audit log. The
//!   memory backend is `MemoryStore` + `InProcessLockProvider` + `RollingBackups::default()`.
//!   The coordinator and the store are opened once and reused, so the store's
//!   in-process cache of the bytes it last wrote spares the read a parse; a fresh CLI
//!   process parses the document once more (the stage profile below reports that cost).
//! - `sqlite/tx_N`: the same job in SQLite (rusqlite, bundled), `journal_mode=WAL`,
//!   `synchronous=FULL`, in a file in the same directory: `BEGIN IMMEDIATE`, delete the
//!   previous bench step, insert the new one, `UPDATE instance SET revision = revision + 1`,
//!   `COMMIT`, with cached prepared statements.
//! - `txfloor/durable_replace_4k`, `txfloor/durable_replace_yaml100`,
//!   `txfloor/durable_replace_yaml1000`: a durable atomic replace with `std` alone (as
//!   `floor/durable_replace_*` in store.rs, measured again in this run).
//!
//! **The size stays at N.** Each transaction removes the step the previous one added
//! and completes a fresh one with a unique id (`bench-<k>`), so every write holds
//! exactly N steps of the same shape; the state starts with N steps whose last one is
//! the first to be replaced. SQLite does the same (delete + insert in one transaction).
//!
//! Every benchmark declares the byte size of its stored document (for SQLite: the
//! database file) as its throughput, so `benches/report.py` can pair it with the floor
//! of the nearest size.
//!
//! **p50 and p99.** Criterion reports medians (of per-sample means). After criterion,
//! `main` runs its own loop over the same subjects and the floors: [`WARM_UP`] iterations
//! each, then [`MEASURED`] iterations each timed with `Instant`, spread over [`ROUNDS`]
//! rounds in which every subject runs a block in turn (so that a slow spell of a shared
//! disk falls on floors, stores and SQLite alike); p50 and p99 are nearest-rank
//! percentiles. It prints a Markdown table (benchmark, p50, p99, ratio of
//! p50 to the floor and to SQLite at the same N) and writes the rows as JSON to
//! `<criterion dir>/transactions.json` (found as contention.rs finds it), which
//! `benches/report.py` prints too.
//!
//! **Stage profile of `tx/yaml_100`.** The same loop runs on a second 100-step YAML
//! project whose store and lock provider are wrapped in timing decorators, so the real
//! coordinator's calls into them are timed one by one (each includes the hop to
//! tokio's blocking pool); what is left is the coordinator's own work. A durable replace
//! of the same document runs after each profiled transaction, as its floor. The CPU
//! parts of the write and a few other floors are timed separately on the same document.
//!
//! Arguments: `--test` (as `cargo bench -- --test` passes it) makes criterion run each
//! benchmark once and the loops run [`TEST_ITERATIONS`] iterations, and writes no JSON.
//! Other arguments that are not options filter like criterion's filters; the loops
//! select by substring of the id (`tx/yaml_100`, `sqlite/tx_10`, `txfloor/…`,
//! `stages/yaml_100`), the floors always run when anything does. Set
//! `CHECKLIST_BENCH_DIR` to measure another file system.
#![allow(
    clippy::print_stdout,
    reason = "this bench has its own main (harness = false): its report is its output"
)]

use checklist_benches::{
    bench_root, cli_runtime, completion, criterion_dir, durable_replace, loadavg, state_with_steps,
    yaml_document,
};
use std::fmt;
use std::fs::{self, OpenOptions as FsOpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use checklist_backends::{
    Codec, InProcessLockProvider, InitOptions, MemoryStore, OpenOptions, YamlCodec, builtin_registry,
    init_project, open_project,
};
use checklist_core::config::Durability;
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
use checklist_core::lock::HeldLock;
use checklist_core::model::now;
use checklist_core::prelude::*;
use checklist_core::{
    AuditEvent, AuditLog, AuditRecord, AuditTrail, BackupPolicy, ChecklistState, DocumentStore, Expectation,
    LockGuard, LockInfo, LockProvider, LockRequest, LockStatus, Result, RollingBackups, StateStore,
    StateStoreExt, StoreInfo, WriteReceipt, WriteRequest, canonical, document, schema, secrets,
};
use criterion::{Criterion, SamplingMode, Throughput};
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::json;
use tokio::runtime::Runtime;

/// The state sizes measured, in completed steps.
const STEP_COUNTS: [usize; 3] = [10, 100, 1000];

/// The size of the smallest floor.
const FOUR_KIB: usize = 4096;

/// Iterations of the p50/p99 loop before timing.
const WARM_UP: usize = 30;

/// Iterations of the p50/p99 loop timed.
const MEASURED: usize = 300;

/// The rounds the timed iterations of the p50/p99 loop are spread over.
const ROUNDS: usize = 10;

/// Iterations of every loop in `--test` mode.
const TEST_ITERATIONS: usize = 3;

/// The step count of the stage profile.
const PROFILED_STEPS: usize = 100;

/// Criterion options that take a value (so the value is not taken for a filter).
const OPTIONS_WITH_VALUES: [&str; 16] = [
    "--color",
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let list_mode = args.iter().any(|a| a == "--list");
    let filters = filters(&args);
    let selection = Selection { filters };
    let all_ids: Vec<String> = STEP_COUNTS
        .iter()
        .flat_map(|n| {
            [
                format!("tx/yaml_{n}"),
                format!("tx/json_{n}"),
                format!("tx/memory_{n}"),
                format!("sqlite/tx_{n}"),
            ]
        })
        .chain(["txfloor/durable_replace_".to_owned(), stages_id()])
        .collect();
    if !all_ids.iter().any(|id| selection.may_select(id)) {
        return;
    }

    let loadavg_before = loadavg();
    let rt = cli_runtime();
    let root = bench_root("tx");

    let mut floors = floor_subjects(&rt, root.path());
    let mut subjects = subjects(&rt, root.path());

    let mut c = Criterion::default().configure_from_args();
    run_criterion(&mut c, &rt, &mut floors, &mut subjects);
    c.final_summary();
    if list_mode {
        return;
    }

    let iterations = if test_mode { TEST_ITERATIONS } else { MEASURED };
    let warm_up = if test_mode { 1 } else { WARM_UP };
    let selected: Vec<usize> = (0..subjects.len())
        .filter(|&i| selection.selects(subjects[i].id()))
        .collect();
    let run_stages = selection.selects(&stages_id());
    let any_floor = floors.iter().any(|f| selection.selects(f.id()));
    if selected.is_empty() && !run_stages && !any_floor {
        return;
    }

    let mut measured: Vec<&mut dyn Subject> = floors
        .iter_mut()
        .map(|f| f.as_mut() as &mut dyn Subject)
        .collect();
    measured.extend(
        subjects
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| selected.contains(i))
            .map(|(_, s)| s.as_mut() as &mut dyn Subject),
    );
    let mut rows = measure_interleaved(&rt, &mut measured, warm_up, iterations);
    let mut floor_rows = rows.split_off(floors.len());
    std::mem::swap(&mut rows, &mut floor_rows);
    for subject in &subjects {
        subject.check(&rt);
    }
    attach_comparisons(&mut rows, &floor_rows);
    let stages = run_stages.then(|| profile_stages(&rt, root.path(), warm_up, iterations));
    let loadavg_after = loadavg();

    print_report(
        &floor_rows,
        &rows,
        stages.as_ref(),
        &loadavg_before,
        &loadavg_after,
        iterations,
    );

    if test_mode {
        return;
    }
    write_json(
        &floor_rows,
        &rows,
        stages.as_ref(),
        &loadavg_before,
        &loadavg_after,
    );
}

// ---------------------------------------------------------------------------------------
// Selection

/// The arguments that are filters: not options, not the values of options.
fn filters(args: &[String]) -> Vec<String> {
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
        } else if arg.starts_with('-') {
            skip_value = OPTIONS_WITH_VALUES.contains(&arg.as_str());
        } else {
            filters.push(arg.clone());
        }
    }
    filters
}

/// Which ids the arguments select.
#[derive(Debug)]
struct Selection {
    filters: Vec<String>,
}

impl Selection {
    /// Whether the loops run `id`: no filters, or a filter that is a substring of it.
    fn selects(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    /// Whether criterion might run `id`: [`selects`](Self::selects), or a filter that
    /// looks like a regular expression (criterion's filters are regexes).
    fn may_select(&self, id: &str) -> bool {
        self.selects(id)
            || self
                .filters
                .iter()
                .any(|f| f.contains(['.', '*', '+', '?', '[', '(', '|', '^', '$', '\\']))
    }
}

/// The id the stage profile is selected by.
fn stages_id() -> String {
    format!("stages/yaml_{PROFILED_STEPS}")
}

// ---------------------------------------------------------------------------------------
// The state

/// The change of one bench transaction: drop the step the previous one added (the
/// last), complete `step_id`. The step count stays the same.
fn replace_last_step(state: &mut ChecklistState, step_id: &str) -> Result<()> {
    state.completed_steps.pop();
    state.complete_step(completion(step_id.to_owned()), now())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Environment

// ---------------------------------------------------------------------------------------
// Subjects

/// Something measured: one iteration is one transaction (or one floor operation).
trait Subject {
    /// The criterion id, `group/function`.
    fn id(&self) -> &str;
    /// The byte size of the stored document, declared as throughput.
    fn bytes(&self) -> u64;
    /// The state size in completed steps, if it has one.
    fn steps(&self) -> Option<usize>;
    /// Whether an iteration waits for the disk (milliseconds) or not (microseconds).
    fn on_disk(&self) -> bool;
    /// One iteration.
    fn run_once(&mut self, rt: &Runtime);
    /// Checks that every iteration did what it should have.
    fn check(&self, _rt: &Runtime) {}
}

/// A coordinator over one store holding `steps` steps.
struct TxSubject<S, L, B> {
    id: String,
    steps: usize,
    bytes: u64,
    on_disk: bool,
    coordinator: TransactionCoordinator<S, L, B>,
    /// The revision before the first bench transaction.
    first_revision: u64,
    /// Transactions committed so far (also the next step's number).
    committed: u64,
}

impl<S, L, B> fmt::Debug for TxSubject<S, L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxSubject")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> TxSubject<S, L, B> {
    fn new(
        rt: &Runtime,
        id: String,
        steps: usize,
        on_disk: bool,
        coordinator: TransactionCoordinator<S, L, B>,
        bytes: impl FnOnce() -> u64,
    ) -> Self {
        let state = rt.block_on(coordinator.read()).expect("read the seeded state");
        assert_eq!(state.completed_steps.len(), steps);
        Self {
            id,
            steps,
            bytes: bytes(),
            on_disk,
            coordinator,
            first_revision: state.revision,
            committed: 0,
        }
    }
}

impl<S: StateStore, L: LockProvider, B: BackupPolicy> Subject for TxSubject<S, L, B> {
    fn id(&self) -> &str {
        &self.id
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn steps(&self) -> Option<usize> {
        Some(self.steps)
    }
    fn on_disk(&self) -> bool {
        self.on_disk
    }

    fn run_once(&mut self, rt: &Runtime) {
        let step_id = format!("bench-{}", self.committed);
        let operation = format!("step complete {step_id}");
        let outcome = rt
            .block_on(
                self.coordinator
                    .transact(&operation, |state| replace_last_step(state, &step_id)),
            )
            .expect("commit a bench transaction");
        self.committed += 1;
        debug_assert_eq!(outcome.revision, self.first_revision + self.committed);
    }

    fn check(&self, rt: &Runtime) {
        let state = rt
            .block_on(self.coordinator.read())
            .expect("read the final state");
        assert_eq!(
            state.completed_steps.len(),
            self.steps,
            "{}: the size stays",
            self.id
        );
        assert_eq!(
            state.revision,
            self.first_revision + self.committed,
            "{}: every iteration committed one revision",
            self.id
        );
    }
}

/// A project made by `init_project` with `backend`, seeded with `steps` steps through
/// one transaction, and its coordinator built as the CLI builds it.
fn file_subject(rt: &Runtime, root: &Path, backend: &str, steps: usize) -> Box<dyn Subject> {
    let project = root.join(format!("{backend}-{steps}"));
    let (opened, coordinator) = open_file_project(rt, &project, backend, steps);
    let state_path = opened.backend.store.info().location_path().to_owned();
    Box::new(TxSubject::new(
        rt,
        format!("tx/{backend}_{steps}"),
        steps,
        true,
        coordinator,
        || fs::metadata(&state_path).expect("stat the state file").len(),
    ))
}

/// The coordinator type of the file backends: what the CLI builds.
type FileCoordinator = TransactionCoordinator<Arc<dyn StateStore>, Arc<dyn LockProvider>, RollingBackups>;

/// Initialises, seeds and opens a project under `project`.
fn open_file_project(
    rt: &Runtime,
    project: &Path,
    backend: &str,
    steps: usize,
) -> (checklist_backends::OpenedStore, FileCoordinator) {
    fs::create_dir(project).expect("create the project directory");
    let registry = builtin_registry();
    let init = InitOptions {
        backend: Some(backend.to_owned()),
        ..InitOptions::default()
    };
    rt.block_on(init_project(project, &init, &registry))
        .expect("initialise the store");
    let opened = rt
        .block_on(open_project(project, &registry, &OpenOptions::default()))
        .expect("open the store");
    assert_eq!(opened.config.durability, Durability::Full);
    assert_eq!(opened.backend.store.info().backend.as_str(), backend);
    let coordinator = cli_coordinator(&opened);
    let seeded = state_with_steps(steps);
    rt.block_on(coordinator.transact("seed", |state| {
        *state = seeded.clone();
        Ok(())
    }))
    .expect("seed the state");
    (opened, coordinator)
}

/// The coordinator cli/src/commands/change.rs builds for one command.
fn cli_coordinator(opened: &checklist_backends::OpenedStore) -> FileCoordinator {
    TransactionCoordinator::with_options(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
        CoordinatorOptions::from_config(&opened.config),
    )
}

/// `MemoryStore` + `InProcessLockProvider` + `RollingBackups::default()`.
fn memory_subject(rt: &Runtime, steps: usize) -> Box<dyn Subject> {
    let name = format!("memory:bench-{steps}");
    let store = MemoryStore::named(name.clone());
    rt.block_on(store.commit(&state_with_steps(steps), Expectation::Absent))
        .expect("seed the memory store");
    let bytes = store.raw().map_or(0, |raw| raw.len() as u64);
    let coordinator =
        TransactionCoordinator::new(store, InProcessLockProvider::new(name), RollingBackups::default());
    Box::new(TxSubject::new(
        rt,
        format!("tx/memory_{steps}"),
        steps,
        false,
        coordinator,
        || bytes,
    ))
}

/// SQLite in WAL mode with full synchronous commits, holding `steps` rows.
struct SqliteSubject {
    id: String,
    steps: usize,
    bytes: u64,
    conn: Connection,
    /// The step the previous transaction added: the next one deletes it.
    last_step: String,
    committed: u64,
}

impl fmt::Debug for SqliteSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSubject")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SqliteSubject {
    fn create(root: &Path, steps: usize) -> rusqlite::Result<Self> {
        let path = root.join(format!("sqlite-{steps}.db"));
        let mut conn = Connection::open(&path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        assert_eq!(mode, "wal");
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE instance (
                 id TEXT PRIMARY KEY, template_id TEXT NOT NULL, revision INTEGER NOT NULL,
                 started_at TEXT NOT NULL, last_modified_at TEXT NOT NULL);
             CREATE TABLE steps (
                 step_id TEXT PRIMARY KEY, completed_at TEXT NOT NULL,
                 execution_time INTEGER NOT NULL, result TEXT NOT NULL, stdout TEXT NOT NULL);",
        )?;
        let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
        assert_eq!(synchronous, 2, "synchronous=FULL");
        let seeded = state_with_steps(steps);
        let tx = conn.transaction()?;
        let stamp = now().to_rfc3339();
        tx.execute(
            "INSERT INTO instance VALUES ('bench', 'release', 1, ?1, ?1)",
            [&stamp],
        )?;
        for step in &seeded.completed_steps {
            tx.execute(
                "INSERT INTO steps VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    step.step_id,
                    step.completed_at.to_rfc3339(),
                    i64::try_from(step.execution_time).expect("a small duration"),
                    step.result.as_str(),
                    step.command_results[0].stdout,
                ],
            )?;
        }
        tx.commit()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let bytes = fs::metadata(&path).expect("stat the database").len();
        Ok(Self {
            id: format!("sqlite/tx_{steps}"),
            steps,
            bytes,
            conn,
            last_step: format!("step-{}", steps - 1),
            committed: 0,
        })
    }

    fn transaction(&mut self) -> rusqlite::Result<()> {
        let step_id = format!("bench-{}", self.committed);
        let step = completion(step_id.clone());
        let stamp = now().to_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM steps WHERE step_id = ?1")?
            .execute([&self.last_step])?;
        tx.prepare_cached(
            "INSERT INTO steps (step_id, completed_at, execution_time, result, stdout) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            step.step_id,
            stamp,
            i64::try_from(step.execution_time_ms).expect("a small duration"),
            step.result.as_str(),
            step.command_results[0].stdout,
        ])?;
        tx.prepare_cached("UPDATE instance SET revision = revision + 1, last_modified_at = ?1")?
            .execute([&stamp])?;
        tx.commit()?;
        self.last_step = step_id;
        self.committed += 1;
        Ok(())
    }
}

impl Subject for SqliteSubject {
    fn id(&self) -> &str {
        &self.id
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn steps(&self) -> Option<usize> {
        Some(self.steps)
    }
    fn on_disk(&self) -> bool {
        true
    }
    fn run_once(&mut self, _rt: &Runtime) {
        self.transaction().expect("commit an SQLite transaction");
    }
    fn check(&self, _rt: &Runtime) {
        let (rows, revision): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM steps), (SELECT revision FROM instance)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("query the final state");
        assert_eq!(rows as usize, self.steps, "{}: the size stays", self.id);
        assert_eq!(
            revision as u64,
            1 + self.committed,
            "{}: one revision per iteration",
            self.id
        );
    }
}

/// Every transaction subject, in report order.
fn subjects(rt: &Runtime, root: &Path) -> Vec<Box<dyn Subject>> {
    let mut subjects: Vec<Box<dyn Subject>> = Vec::new();
    for steps in STEP_COUNTS {
        subjects.push(file_subject(rt, root, "yaml", steps));
        subjects.push(file_subject(rt, root, "json", steps));
        subjects.push(memory_subject(rt, steps));
        subjects.push(Box::new(
            SqliteSubject::create(root, steps).expect("create the SQLite database"),
        ));
    }
    subjects
}

// ---------------------------------------------------------------------------------------
// Floors

/// A durable atomic replace of a file with `std` alone: exclusive new temp file in the
/// target's directory → write → fsync → rename over the target → fsync the directory
/// (the same as store.rs's `floor/durable_replace_*`).
struct FloorSubject {
    id: String,
    dir: PathBuf,
    target: PathBuf,
    bytes: Vec<u8>,
    n: u64,
}

impl FloorSubject {
    fn new(dir: &Path, label: &str, bytes: Vec<u8>) -> Self {
        let target = dir.join(format!("replace-{label}"));
        fs::write(&target, &bytes).expect("write the floor's target");
        Self {
            id: format!("txfloor/durable_replace_{label}"),
            dir: dir.to_owned(),
            target,
            bytes,
            n: 0,
        }
    }
}

impl Subject for FloorSubject {
    fn id(&self) -> &str {
        &self.id
    }
    fn bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn steps(&self) -> Option<usize> {
        None
    }
    fn on_disk(&self) -> bool {
        true
    }
    fn run_once(&mut self, _rt: &Runtime) {
        self.n += 1;
        let temp = self
            .dir
            .join(format!(".replace.tmp-{}-{}", std::process::id(), self.n));
        durable_replace(&self.dir, &self.target, &temp, &self.bytes).expect("durable replace");
    }
}

/// The floors: durable replace of 4 KiB and of the 100- and 1000-step YAML documents.
fn floor_subjects(rt: &Runtime, root: &Path) -> Vec<Box<dyn Subject>> {
    let dir = root.join("txfloor");
    fs::create_dir(&dir).expect("create the floor directory");
    let yaml_100 = yaml_document(rt, root, 100);
    let yaml_1000 = yaml_document(rt, root, 1000);
    let four_kib: Vec<u8> = yaml_1000.iter().copied().cycle().take(FOUR_KIB).collect();
    [("4k", four_kib), ("yaml100", yaml_100), ("yaml1000", yaml_1000)]
        .into_iter()
        .map(|(label, bytes)| Box::new(FloorSubject::new(&dir, label, bytes)) as Box<dyn Subject>)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Criterion

fn run_criterion(
    c: &mut Criterion,
    rt: &Runtime,
    floors: &mut [Box<dyn Subject>],
    subjects: &mut [Box<dyn Subject>],
) {
    let group_of = |subject: &dyn Subject| subject.id().split_once('/').map_or("", |(g, _)| g).to_owned();
    let mut groups: Vec<(String, Vec<&mut Box<dyn Subject>>)> = Vec::new();
    for subject in floors.iter_mut().chain(subjects.iter_mut()) {
        let group = group_of(subject.as_ref());
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(subject),
            None => groups.push((group, vec![subject])),
        }
    }
    for (name, members) in groups {
        let mut group = c.benchmark_group(name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300));
        for subject in members {
            let millis = if subject.on_disk() { 2000 } else { 1000 };
            group
                .measurement_time(Duration::from_millis(millis))
                .throughput(Throughput::Bytes(subject.bytes()));
            let id = subject.id().to_owned();
            let function = id.split_once('/').map_or(id.as_str(), |(_, f)| f);
            group.bench_function(function, |b| b.iter(|| subject.run_once(rt)));
        }
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------
// The p50/p99 loop

/// Percentiles of one subject's loop.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    steps: Option<usize>,
    bytes: u64,
    iterations: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// The floor of the nearest size and its p50.
    floor: Option<(String, Duration)>,
    /// SQLite's p50 at the same step count.
    sqlite: Option<Duration>,
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Times `iterations` runs of `f` one by one after `warm_up` untimed ones; sorted.
fn sample(warm_up: usize, iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warm_up {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples
}

/// Warms every subject up, then times `iterations` iterations of each in [`ROUNDS`]
/// rounds; in a round every subject runs one untimed iteration, then a block of
/// `iterations / ROUNDS` timed ones, in turn. A slow spell of the machine (another
/// tenant's I/O on a shared disk) then falls on all subjects alike instead of on
/// whichever ran at that moment, while each block still measures its subject in its
/// steady state (its caches warm, not amid the previous subject's I/O), as criterion
/// does.
fn measure_interleaved(
    rt: &Runtime,
    subjects: &mut [&mut dyn Subject],
    warm_up: usize,
    iterations: usize,
) -> Vec<Row> {
    for subject in subjects.iter_mut() {
        for _ in 0..warm_up {
            subject.run_once(rt);
        }
    }
    let rounds = if iterations.is_multiple_of(ROUNDS) {
        ROUNDS
    } else {
        1
    };
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); subjects.len()];
    for _ in 0..rounds {
        for (subject, samples) in subjects.iter_mut().zip(&mut samples) {
            subject.run_once(rt);
            for _ in 0..iterations / rounds {
                let started = Instant::now();
                subject.run_once(rt);
                samples.push(started.elapsed());
            }
        }
    }
    subjects
        .iter()
        .zip(samples)
        .map(|(subject, mut samples)| {
            samples.sort_unstable();
            Row {
                id: subject.id().to_owned(),
                steps: subject.steps(),
                bytes: subject.bytes(),
                iterations,
                p50: percentile(&samples, 50.0),
                p99: percentile(&samples, 99.0),
                max: samples.last().copied().unwrap_or_default(),
                floor: None,
                sqlite: None,
            }
        })
        .collect()
}

/// Pairs every row with the floor of the nearest byte size (by ratio, as report.py
/// does) and with SQLite at the same step count.
fn attach_comparisons(rows: &mut [Row], floors: &[Row]) {
    let sqlite: Vec<(usize, Duration)> = rows
        .iter()
        .filter(|r| r.id.starts_with("sqlite/"))
        .filter_map(|r| Some((r.steps?, r.p50)))
        .collect();
    for row in rows.iter_mut() {
        row.floor = nearest_floor(row.bytes, floors).map(|f| (f.id.clone(), f.p50));
        if !row.id.starts_with("sqlite/") {
            row.sqlite = sqlite
                .iter()
                .find(|(steps, _)| Some(*steps) == row.steps)
                .map(|(_, p50)| *p50);
        }
    }
}

fn nearest_floor(bytes: u64, floors: &[Row]) -> Option<&Row> {
    let distance = |f: &&Row| ((f.bytes.max(1) as f64) / (bytes.max(1) as f64)).ln().abs();
    floors.iter().min_by(|a, b| distance(a).total_cmp(&distance(b)))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn format_bytes(bytes: u64) -> String {
    if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

// ---------------------------------------------------------------------------------------
// Stage profile

/// What the timing decorators record: (stage, duration), in call order.
type StageLog = Arc<Mutex<Vec<(&'static str, Duration)>>>;

fn record(log: &StageLog, stage: &'static str, elapsed: Duration) {
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((stage, elapsed));
}

/// A store whose every call is timed into a [`StageLog`]. Sealing, encoding and
/// verifying are core's, above the store: they are the part of a stage no store call
/// covers ("the rest" of the report).
#[derive(Debug)]
struct TimedStore {
    inner: Arc<dyn StateStore>,
    log: StageLog,
}

impl TimedStore {
    async fn timed<T>(&self, stage: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        record(&self.log, stage, started.elapsed());
        result
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl DocumentStore for TimedStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }
    fn codec(&self) -> &dyn Codec {
        self.inner.codec()
    }
    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.timed("store.read_raw", self.inner.read_raw()).await
    }
    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        let stage = match (&request.keep, &request.audit) {
            (Some(_), _) => {
                "store.write keeping a backup (CAS, link + index + prune, durable replace, audit)"
            }
            (None, Some(_)) => "store.write (CAS, durable replace, audit)",
            (None, None) => "store.write (CAS, durable replace)",
        };
        self.timed(stage, self.inner.write(request)).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl AuditTrail for TimedStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let stage = match record.event {
            AuditEvent::Begin => "audit append: begin (fsync)",
            AuditEvent::Commit => "audit append: commit (fsync)",
            _ => "audit append: other",
        };
        self.timed(stage, self.inner.append_audit(record)).await
    }
    async fn read_audit(&self) -> Result<AuditLog> {
        self.timed("audit read", self.inner.read_audit()).await
    }
    async fn rotate_audit(&self) -> Result<bool> {
        self.timed("audit rotate (size check)", self.inner.rotate_audit())
            .await
    }
}

checklist_conformance::forward_planes!(TimedStore => inner; BackupStore, ArchiveStore, QuarantineStore, ChangeFeed);

/// A lock provider whose acquire and release are timed into a [`StageLog`].
#[derive(Debug)]
struct TimedLocks<L> {
    inner: L,
    log: StageLog,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<L: LockProvider> LockProvider for TimedLocks<L> {
    fn resource(&self) -> &str {
        self.inner.resource()
    }
    fn capabilities(&self) -> checklist_core::LockCapabilities {
        self.inner.capabilities()
    }
    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
        let started = Instant::now();
        let guard = self.inner.acquire(request).await?;
        record(&self.log, "lock acquire", started.elapsed());
        Ok(LockGuard::new(Box::new(TimedHeld {
            guard,
            log: Arc::clone(&self.log),
        })))
    }
    async fn inspect(&self) -> Result<LockStatus> {
        self.inner.inspect().await
    }
    async fn force_release(&self, lock_id: &str) -> Result<bool> {
        self.inner.force_release(lock_id).await
    }
}

/// The inner provider's guard, whose release is timed.
#[derive(Debug)]
struct TimedHeld {
    guard: LockGuard,
    log: StageLog,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl HeldLock for TimedHeld {
    fn info(&self) -> &LockInfo {
        self.guard.info()
    }
    async fn ensure_held(&self) -> Result<()> {
        let started = Instant::now();
        let held = self.guard.ensure_held().await;
        record(&self.log, "lock ensure_held", started.elapsed());
        held
    }
    async fn release(self: Box<Self>) -> Result<()> {
        let started = Instant::now();
        let released = self.guard.release().await;
        record(&self.log, "lock release", started.elapsed());
        released
    }
    fn release_in_background(self: Box<Self>) {
        drop(self.guard);
    }
}

/// One stage of the profile.
#[derive(Debug, Clone)]
struct Stage {
    name: String,
    p50: Duration,
    p99: Duration,
    /// Whether it is part of the transaction (otherwise measured on its own, for scale).
    in_tx: bool,
}

/// The stage profile of `tx/yaml_100`.
#[derive(Debug)]
struct StageReport {
    total_p50: Duration,
    total_p99: Duration,
    iterations: usize,
    stages: Vec<Stage>,
}

fn stage_of(name: impl Into<String>, sorted: &[Duration], in_tx: bool) -> Stage {
    Stage {
        name: name.into(),
        p50: percentile(sorted, 50.0),
        p99: percentile(sorted, 99.0),
        in_tx,
    }
}

/// Times the coordinator's calls into the store and the lock of a fresh 100-step YAML
/// project, then the CPU parts and floors on their own.
fn profile_stages(rt: &Runtime, root: &Path, warm_up: usize, iterations: usize) -> StageReport {
    let project = root.join(format!("stages-yaml-{PROFILED_STEPS}"));
    let (opened, _) = open_file_project(rt, &project, "yaml", PROFILED_STEPS);
    let log: StageLog = Arc::default();
    let coordinator = TransactionCoordinator::with_options(
        TimedStore {
            inner: Arc::clone(&opened.backend.store),
            log: Arc::clone(&log),
        },
        TimedLocks {
            inner: Arc::clone(&opened.backend.locks),
            log: Arc::clone(&log),
        },
        RollingBackups::from_settings(&opened.config.backup),
        CoordinatorOptions::from_config(&opened.config),
    );

    let floor_dir = root.join(format!("stages-floor-{PROFILED_STEPS}"));
    fs::create_dir(&floor_dir).expect("create the stage floor directory");
    let document =
        fs::read(opened.backend.store.info().location_path()).expect("read the profiled state file");
    let mut floor = FloorSubject::new(&floor_dir, "profiled", document);
    let mut floor_samples: Vec<Duration> = Vec::new();

    let mut names: Vec<&'static str> = Vec::new();
    let mut per_stage: Vec<Vec<Duration>> = Vec::new();
    let mut totals: Vec<Duration> = Vec::new();
    let mut rests: Vec<Duration> = Vec::new();
    for i in 0..warm_up + iterations {
        let step_id = format!("bench-{i}");
        log.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let started = Instant::now();
        rt.block_on(
            coordinator.transact(&format!("step complete {step_id}"), |state| {
                replace_last_step(state, &step_id)
            }),
        )
        .expect("commit a profiled transaction");
        let total = started.elapsed();
        let floor_started = Instant::now();
        floor.run_once(rt);
        let floor_elapsed = floor_started.elapsed();
        if i < warm_up {
            continue;
        }
        floor_samples.push(floor_elapsed);
        let calls = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
        let mut accounted = Duration::ZERO;
        let mut this: Vec<(&'static str, Duration)> = Vec::new();
        for (stage, elapsed) in calls {
            accounted += elapsed;
            match this.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, sum)) => *sum += elapsed,
                None => this.push((stage, elapsed)),
            }
        }
        for (stage, elapsed) in this {
            let index = names.iter().position(|s| *s == stage).unwrap_or_else(|| {
                names.push(stage);
                per_stage.push(Vec::new());
                names.len() - 1
            });
            per_stage[index].push(elapsed);
        }
        totals.push(total);
        rests.push(total.saturating_sub(accounted));
    }
    let sorted = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v
    };
    let totals = sorted(totals);
    let mut stages: Vec<Stage> = names
        .iter()
        .zip(per_stage)
        .map(|(name, samples)| {
            // A stage skipped in some iterations (a prune with nothing to prune) counts 0.
            let mut samples = samples;
            samples.resize(totals.len(), Duration::ZERO);
            stage_of(*name, &sorted(samples), true)
        })
        .collect();
    stages.push(stage_of(
        "coordinator's own work (rest: copies, change, secret scan, records, block_on)",
        &sorted(rests),
        true,
    ));

    // The parts, on their own, on the same document.
    let state = rt
        .block_on(opened.backend.store.read_existing())
        .expect("read the profiled state");
    let path = opened.backend.store.info().location_path().to_owned();
    let bytes = fs::read(&path).expect("read the profiled state file");
    let sealed = document::seal(&state, state.revision + 1, &path).expect("seal the profiled state");
    let parts: Vec<(&str, Vec<Duration>)> = vec![
        (
            "part of the write: seal (to_value, schema, checksum) + YAML encode",
            sample(warm_up, iterations, || {
                let sealed = document::seal(black_box(&state), state.revision + 1, &path).expect("seal");
                black_box(YamlCodec.encode(&sealed.value).expect("encode"));
            }),
        ),
        (
            "  of which seal: serde_json::to_value of the model",
            sample(warm_up, iterations, || {
                black_box(serde_json::to_value(black_box(&state)).expect("to value"));
            }),
        ),
        (
            "  of which seal: schema validation",
            sample(warm_up, iterations, || {
                schema::validate_state(black_box(&sealed.value)).expect("valid");
            }),
        ),
        (
            "  of which seal: checksum (canonical JSON + SHA-256)",
            sample(warm_up, iterations, || {
                black_box(canonical::document_checksum(black_box(&sealed.value)));
            }),
        ),
        (
            "  of which: YAML encode of the sealed document",
            sample(warm_up, iterations, || {
                black_box(YamlCodec.encode(black_box(&sealed.value)).expect("encode"));
            }),
        ),
        (
            "part of the tx: one deep copy of the state",
            sample(warm_up, iterations, || {
                black_box(black_box(&state).clone());
            }),
        ),
        (
            "part of the tx: secret scan of the state",
            sample(warm_up, iterations, || {
                let mut copy = state.clone();
                black_box(secrets::scan_state(&mut copy, false));
            }),
        ),
        (
            "not in this tx, in a fresh CLI process: YAML decode + unseal (cold read)",
            sample(warm_up, iterations, || {
                let value = YamlCodec.decode(black_box(&bytes)).expect("decode");
                black_box(document::unseal(value, &path).expect("unseal"));
            }),
        ),
        (
            "floor: spawn_blocking round trip (each store/lock call makes one or more)",
            sample(warm_up, iterations, || {
                rt.block_on(async { tokio::task::spawn_blocking(|| ()).await })
                    .expect("join a no-op");
            }),
        ),
        ("floor: O_APPEND write of 512 B + fsync (an audit record)", {
            let audit = root.join("append-floor.log");
            let line = [b'x'; 511].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
            sample(warm_up, iterations, || {
                let mut file = FsOpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&audit)
                    .expect("open the append floor");
                file.write_all(&line).expect("append");
                file.sync_all().expect("fsync");
            })
        }),
    ];
    for (name, samples) in parts {
        stages.push(stage_of(name, &samples, false));
    }
    stages.push(stage_of(
        "floor: durable replace of this document (run after each profiled transaction)",
        &sorted(floor_samples),
        false,
    ));
    StageReport {
        total_p50: percentile(&totals, 50.0),
        total_p99: percentile(&totals, 99.0),
        iterations: totals.len(),
        stages,
    }
}

// ---------------------------------------------------------------------------------------
// Output

fn print_report(
    floors: &[Row],
    rows: &[Row],
    stages: Option<&StageReport>,
    loadavg_before: &str,
    loadavg_after: &str,
    iterations: usize,
) {
    println!();
    println!(
        "transactions: one durable `step complete` transaction, {iterations} timed iterations each \
         (p50/p99 nearest rank)"
    );
    println!("load average before: {loadavg_before}; after: {loadavg_after}");
    println!();
    println!("| benchmark | document | p50 | p99 | max | floor (p50) | p50 × floor | p50 × sqlite |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|");
    for row in floors.iter().chain(rows) {
        let (floor, times_floor) = match &row.floor {
            Some((id, p50)) => (
                format!("{id} ({})", format_duration(*p50)),
                format!("{:.2}", ratio(row.p50, *p50)),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let times_sqlite = row
            .sqlite
            .map_or_else(|| "—".to_owned(), |s| format!("{:.2}", ratio(row.p50, s)));
        println!(
            "| {} | {} | {} | {} | {} | {floor} | {times_floor} | {times_sqlite} |",
            row.id,
            format_bytes(row.bytes),
            format_duration(row.p50),
            format_duration(row.p99),
            format_duration(row.max),
        );
    }
    if let Some(report) = stages {
        println!();
        println!(
            "stages of {} (a second 100-step YAML project, {} iterations): transaction p50 {}, p99 {}",
            stages_id(),
            report.iterations,
            format_duration(report.total_p50),
            format_duration(report.total_p99)
        );
        println!();
        println!("| stage | p50 | p99 | p50 share of the tx p50 |");
        println!("|---|---:|---:|---:|");
        for stage in &report.stages {
            let share = if stage.in_tx {
                format!("{:.0} %", 100.0 * ratio(stage.p50, report.total_p50))
            } else {
                "(on its own)".to_owned()
            };
            println!(
                "| {} | {} | {} | {share} |",
                stage.name,
                format_duration(stage.p50),
                format_duration(stage.p99)
            );
        }
    }
    println!();
}

fn row_json(row: &Row) -> serde_json::Value {
    json!({
        "id": row.id,
        "steps": row.steps,
        "bytes": row.bytes,
        "iterations": row.iterations,
        "p50Ns": row.p50.as_nanos() as u64,
        "p99Ns": row.p99.as_nanos() as u64,
        "maxNs": row.max.as_nanos() as u64,
        "floor": row.floor.as_ref().map(|(id, _)| id),
        "floorP50Ns": row.floor.as_ref().map(|(_, p50)| p50.as_nanos() as u64),
        "p50OverFloor": row.floor.as_ref().map(|(_, p50)| ratio(row.p50, *p50)),
        "sqliteP50Ns": row.sqlite.map(|s| s.as_nanos() as u64),
        "p50OverSqlite": row.sqlite.map(|s| ratio(row.p50, s)),
    })
}

fn write_json(
    floors: &[Row],
    rows: &[Row],
    stages: Option<&StageReport>,
    loadavg_before: &str,
    loadavg_after: &str,
) {
    let stages = stages.map(|report| {
        json!({
            "id": stages_id(),
            "iterations": report.iterations,
            "totalP50Ns": report.total_p50.as_nanos() as u64,
            "totalP99Ns": report.total_p99.as_nanos() as u64,
            "stages": report.stages.iter().map(|s| json!({
                "name": s.name,
                "p50Ns": s.p50.as_nanos() as u64,
                "p99Ns": s.p99.as_nanos() as u64,
                "inTransaction": s.in_tx,
            })).collect::<Vec<_>>(),
        })
    });
    let report = json!({
        "loadavgBefore": loadavg_before,
        "loadavgAfter": loadavg_after,
        "floors": floors.iter().map(row_json).collect::<Vec<_>>(),
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
        "stages": stages,
    });
    let out = criterion_dir().join("transactions.json");
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("create the criterion directory");
    }
    let text = serde_json::to_string_pretty(&report).expect("serialise the report");
    fs::write(&out, text + "\n").expect("write transactions.json");
    println!("wrote {}", out.display());
}
