//! Commit throughput of N processes, each committing M steps, against one store: a
//! YAML store in one directory, and a `postgres` store shared by two checkouts (two
//! project directories whose config.yaml name the same key on the harness's server,
//! `checklist_conformance::pg_server`; the writers alternate between them).
//!
//! Not a criterion benchmark: one run per N takes seconds, too long to repeat. For each
//! N in [`PROCESS_COUNTS`] the bench makes a fresh project (`init_project`, then
//! config.yaml's `lock.timeoutMs` raised to [`LOCK_TIMEOUT_MS`] so that no writer gives
//! up, then an instance started), spawns N writer processes that each perform
//! M = max(1, [`TOTAL_COMMITS`] / N) commits, and times from the first spawn to the last
//! exit. It then checks that the state holds exactly N·M new steps and that the
//! revision advanced by N·M, and panics otherwise. Each writer also reports the longest
//! it waited in one `acquire`; the table shows the worst of them (how long one
//! `checklist step complete` may stall under that contention).
//!
//! A writer does per commit what `checklist step complete <id>` does (cli/src/commands/
//! change.rs): acquire the store lock with the config's settings, `read_existing`,
//! `complete_step` with an id of its own, `ensure_held`, `write` with a compare-and-swap
//! on the revision it read, release. It opens the project once and commits M times.
//!
//! The writers are this binary run again (`std::env::current_exe()`) with
//! `CHECKLIST_BENCH_ROLE=writer` and the arguments `PROJECT ID_PREFIX M`; `main` checks
//! for the role first. A writer prints `max_acquire_wait_us=<µs>` on stdout.
//!
//! Output: a Markdown table on stdout, and the same rows as JSON in
//! `<criterion dir>/contention.json` (criterion's output directory:
//! `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the workspace's
//! `target/criterion`), which `benches/report.py` prints too.
//!
//! Arguments: `--test` (as `cargo bench -- --test` passes it) runs only N = 2, M = 2 and
//! writes no JSON. Other arguments that are not flags filter the runs like criterion's
//! filters, by substring of the id `contention/N` (yaml) or `contention/postgres/N`:
//! `cargo bench --bench contention -- contention/8` runs N = 8 on yaml alone, and
//! `-- postgres` the postgres runs alone. Without a PostgreSQL server (none installed,
//! no `CHECKLIST_PG_URL`) the postgres runs are skipped, saying so.
//! Set `CHECKLIST_BENCH_DIR` to measure another file system.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this bench has its own main (harness = false): its report is its output"
)]

use checklist_benches::{bench_root, criterion_dir, current_thread_runtime as runtime, loadavg};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use checklist_backends::vfs::RealFs;
use checklist_backends::{
    InitOptions, Layout, OpenOptions, OpenedStore, builtin_registry, init_project, load_config, open_project,
    write_config,
};
use checklist_core::lock::Operation;
use checklist_core::model::{InstanceStart, StepCompletion, StepResult, now};
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Committed, Expectation, LockRequest, Result, StateStoreExt};
use serde_json::json;
use tokio::runtime::Runtime;

/// The environment variable that makes this binary a writer.
const ROLE_VAR: &str = "CHECKLIST_BENCH_ROLE";

/// The process counts measured on yaml.
const PROCESS_COUNTS: [usize; 5] = [1, 2, 8, 32, 128];

/// The process counts measured on postgres (two checkouts).
const POSTGRES_PROCESS_COUNTS: [usize; 2] = [8, 32];

/// About this many commits per process count.
const TOTAL_COMMITS: usize = 256;

/// The lock timeout written into every bench store: no writer may time out.
const LOCK_TIMEOUT_MS: u64 = 120_000;

/// What a writer prints before `<µs>`.
const MAX_WAIT_KEY: &str = "max_acquire_wait_us=";

/// The run of `--test`: (N, M).
const TEST_RUN: (usize, usize) = (2, 2);

fn main() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        std::process::exit(run_role(&role));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();

    let postgres = checklist_conformance::pg_server::test_server().map(|server| Kind::Postgres {
        url: server.url().to_owned(),
        schema: checklist_conformance::pg_server::throwaway_schema_name(),
    });
    if postgres.is_none() {
        eprintln!(
            "postgres runs skipped: {}",
            checklist_conformance::pg_server::why_no_server().unwrap_or_default()
        );
    }
    let with_m = |n: usize| (n, (TOTAL_COMMITS / n).max(1));
    let mut runs: Vec<(Kind, usize, usize)> = Vec::new();
    let yaml_counts: Vec<(usize, usize)> = if test_mode {
        vec![TEST_RUN]
    } else {
        PROCESS_COUNTS.iter().map(|&n| with_m(n)).collect()
    };
    runs.extend(yaml_counts.into_iter().map(|(n, m)| (Kind::Yaml, n, m)));
    if let Some(postgres) = &postgres {
        let counts: Vec<(usize, usize)> = if test_mode {
            vec![TEST_RUN]
        } else {
            POSTGRES_PROCESS_COUNTS.iter().map(|&n| with_m(n)).collect()
        };
        runs.extend(counts.into_iter().map(|(n, m)| (postgres.clone(), n, m)));
    }
    let runs: Vec<(Kind, usize, usize)> = runs
        .into_iter()
        .filter(|(kind, n, _)| filters.is_empty() || filters.iter().any(|f| kind.id(*n).contains(f)))
        .collect();
    if runs.is_empty() {
        return;
    }

    let loadavg_before = loadavg();
    let rt = runtime();
    let root = bench_root("contention");
    let rows: Vec<Row> = runs
        .iter()
        .map(|(kind, processes, commits_each)| measure(&rt, root.path(), kind, *processes, *commits_each))
        .collect();
    let loadavg_after = loadavg();

    println!();
    println!("contention: N writer processes × M commits each (`checklist step complete`), one store");
    println!("load average before: {loadavg_before}; after: {loadavg_after}");
    println!();
    println!("| backend | N | M | commits | seconds | commits/s | max acquire wait (s) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.1} | {:.3} |",
            row.backend,
            row.processes,
            row.commits_each,
            row.commits,
            row.seconds,
            row.commits_per_second,
            row.max_acquire_wait.as_secs_f64()
        );
    }
    println!();

    if test_mode {
        return;
    }
    let out = criterion_dir().join("contention.json");
    let report = json!({
        "processes": PROCESS_COUNTS,
        "totalCommitsTarget": TOTAL_COMMITS,
        "loadavgBefore": loadavg_before,
        "loadavgAfter": loadavg_after,
        "rows": rows.iter().map(|r| json!({
            "backend": r.backend,
            "processes": r.processes,
            "commitsEach": r.commits_each,
            "commits": r.commits,
            "seconds": r.seconds,
            "commitsPerSecond": r.commits_per_second,
            "maxAcquireWaitSeconds": r.max_acquire_wait.as_secs_f64(),
        })).collect::<Vec<_>>(),
    });
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("create the criterion directory");
    }
    let text = serde_json::to_string_pretty(&report).expect("serialise the report");
    fs::write(&out, text + "\n").expect("write contention.json");
    println!("wrote {}", out.display());
}

/// The store a run measures.
#[derive(Debug, Clone)]
enum Kind {
    /// A YAML store in one project directory.
    Yaml,
    /// A `postgres` store on `url` in `schema`, shared by two checkouts.
    Postgres { url: String, schema: String },
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Self::Yaml => "yaml",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// The run's id, which filters match.
    fn id(&self, processes: usize) -> String {
        match self {
            Self::Yaml => format!("contention/{processes}"),
            Self::Postgres { .. } => format!("contention/postgres/{processes}"),
        }
    }

    /// The project directories of a run of `processes` writers under `root`,
    /// initialised: one for yaml, two sharing one key for postgres.
    fn checkouts(&self, rt: &Runtime, root: &Path, processes: usize) -> Vec<std::path::PathBuf> {
        let registry = builtin_registry();
        let (names, options) = match self {
            Self::Yaml => (vec![format!("n{processes}")], InitOptions::default()),
            Self::Postgres { url, schema } => {
                let mut backend_options = serde_json::Map::new();
                backend_options.insert("url".into(), json!(url));
                backend_options.insert("schema".into(), json!(schema));
                backend_options.insert("key".into(), json!(format!("contention-{processes}")));
                let options = InitOptions {
                    backend: Some("postgres".into()),
                    backend_options,
                    ..InitOptions::default()
                };
                (
                    vec![format!("pg{processes}-a"), format!("pg{processes}-b")],
                    options,
                )
            }
        };
        names
            .into_iter()
            .map(|name| {
                let project = root.join(name);
                fs::create_dir(&project).expect("create the project directory");
                rt.block_on(init_project(&project, &options, &registry))
                    .expect("initialise the store");
                let layout = Layout::for_project(&project);
                let mut config = load_config(&RealFs, &layout).expect("load config.yaml");
                config.lock.timeout_ms = LOCK_TIMEOUT_MS;
                write_config(&RealFs, &layout, &config, config.durability).expect("write config.yaml");
                project
            })
            .collect()
    }
}

/// One measured run.
#[derive(Debug)]
struct Row {
    backend: &'static str,
    processes: usize,
    commits_each: usize,
    commits: usize,
    seconds: f64,
    commits_per_second: f64,
    /// The longest single `acquire` of any writer.
    max_acquire_wait: Duration,
}

/// Runs `processes` writers of `commits_each` commits against a fresh store of `kind`
/// under `root`, checks the result and returns the timing.
fn measure(rt: &Runtime, root: &Path, kind: &Kind, processes: usize, commits_each: usize) -> Row {
    let checkouts = kind.checkouts(rt, root, processes);
    let project = checkouts[0].clone();
    let registry = builtin_registry();
    let opened = rt
        .block_on(open_project(&project, &registry, &OpenOptions::default()))
        .expect("open the store");
    assert_eq!(opened.config.lock.timeout_ms, LOCK_TIMEOUT_MS);
    let start = InstanceStart {
        template_id: "bench".into(),
        template_version: None,
        project_path: Some(project.display().to_string()),
        first_step_id: None,
    };
    let before = rt
        .block_on(change(&opened, |state| {
            state.start_instance(start, now()).map(|_| ())
        }))
        .expect("start an instance")
        .1;

    let exe = std::env::current_exe().expect("find this bench binary");
    let started = Instant::now();
    let children: Vec<(String, Child)> = (0..processes)
        .map(|i| {
            let prefix = format!("w{i}-");
            let child = Command::new(&exe)
                .env(ROLE_VAR, "writer")
                .arg(&checkouts[i % checkouts.len()])
                .arg(&prefix)
                .arg(commits_each.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a writer");
            (prefix, child)
        })
        .collect();
    let outcomes: Vec<(String, std::process::Output)> = children
        .into_iter()
        .map(|(prefix, child)| (prefix, child.wait_with_output().expect("wait for a writer")))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|(_, output)| !output.status.success())
        .map(|(prefix, output)| format!("{prefix}: {}", output.status))
        .collect();
    assert!(failed.is_empty(), "writers failed: {failed:?}");
    let max_acquire_wait = outcomes
        .iter()
        .map(|(prefix, output)| {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let micros = stdout
                .lines()
                .find_map(|line| line.strip_prefix(MAX_WAIT_KEY))
                .and_then(|us| us.trim().parse().ok())
                .unwrap_or_else(|| panic!("writer {prefix} reported no wait: {stdout:?}"));
            Duration::from_micros(micros)
        })
        .max()
        .unwrap_or_default();

    let commits = processes * commits_each;
    let state = rt
        .block_on(opened.backend.store.read_existing())
        .expect("read the final state");
    let expected: BTreeSet<String> = (0..processes)
        .flat_map(|i| (0..commits_each).map(move |j| step_id(&format!("w{i}-"), j)))
        .collect();
    let found: BTreeSet<String> = state.completed_steps.iter().map(|s| s.step_id.clone()).collect();
    assert_eq!(
        state.completed_steps.len(),
        commits,
        "N = {processes}: the state must hold exactly N·M steps"
    );
    assert_eq!(
        found, expected,
        "N = {processes}: every writer's steps, no others"
    );
    assert_eq!(
        state.revision,
        before.revision + commits as u64,
        "N = {processes}: the revision must advance by N·M"
    );
    for checkout in &checkouts {
        fs::remove_dir_all(checkout).expect("remove the bench project");
    }

    Row {
        backend: kind.name(),
        processes,
        commits_each,
        commits,
        seconds,
        commits_per_second: commits as f64 / seconds,
        max_acquire_wait,
    }
}

/// The step id of a writer's `index`th commit.
fn step_id(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}")
}

/// Applies `apply` to the current state under the lock and writes the result: the
/// read-modify-write of cli/src/commands/change.rs. Also returns how long `acquire` took.
async fn change<T>(
    opened: &OpenedStore,
    apply: impl FnOnce(&mut ChecklistState) -> Result<T>,
) -> Result<(T, Committed, Duration)> {
    let request = LockRequest::from_settings(Operation::Write, &opened.config.lock);
    let asked = Instant::now();
    let guard = opened.backend.locks.acquire(&request).await?;
    let waited = asked.elapsed();
    let mut state = opened.backend.store.read_existing().await?;
    let expect = Expectation::current(&state);
    let value = apply(&mut state)?;
    guard.ensure_held().await?;
    let committed = opened.backend.store.commit(&state, expect).await?;
    guard.release().await?;
    Ok((value, committed, waited))
}

/// Runs the role named in [`ROLE_VAR`]; returns the exit code.
fn run_role(role: &str) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (role, args.as_slice()) {
        ("writer", [project, prefix, count]) => {
            let count: usize = count.parse().expect("M is a number");
            match runtime().block_on(write_steps(Path::new(project), prefix, count)) {
                Ok(max_wait) => {
                    println!("{MAX_WAIT_KEY}{}", max_wait.as_micros());
                    0
                }
                Err(error) => {
                    eprintln!("writer {prefix}: {error}");
                    1
                }
            }
        }
        _ => {
            eprintln!("unknown role {role:?} with arguments {args:?}");
            2
        }
    }
}

/// A writer: `count` commits of `checklist step complete <prefix><i>`; returns the
/// longest `acquire`.
async fn write_steps(project: &Path, prefix: &str, count: usize) -> Result<Duration> {
    let opened = open_project(project, &builtin_registry(), &OpenOptions::default()).await?;
    let mut max_wait = Duration::ZERO;
    for index in 0..count {
        let completion = StepCompletion {
            step_id: step_id(prefix, index),
            result: StepResult::Success,
            execution_time_ms: 1,
            command_results: Vec::new(),
        };
        let (_, _, waited) = change(&opened, |state| {
            state.complete_step(completion, now()).map(|_| ())
        })
        .await?;
        max_wait = max_wait.max(waited);
    }
    Ok(max_wait)
}
