//! Cold CLI commands against document size: the real `checklist` binary, one fresh
//! process per run, on stores of 10, 100, 1,000 and 10,000 steps, beside floors measured
//! in the same run (docs/benchmarks.md, "Cold commands"):
//!
//! - `--version`: starting the process at all;
//! - `read + sha256`: reading the state file and hashing it, in this process — what any
//!   command that trusts nothing must do;
//! - `sqlite3 update`: the `sqlite3` shell (a fresh process) updating one row of a table
//!   with as many rows as the store has steps, when `sqlite3` is installed.
//!
//! Each command runs on a YAML store (the default backend) and a SQLite store as a user
//! runs it: `status`
//! and `verify` read, `step complete` commits one step. `status (no cache)` deletes
//! `.cache/` before each run, so the state is verified in full as after another
//! program's write (docs/decisions/0024-verified-parse-cache.md; the file backends only).
//!
//! Output: a Markdown table, and the same rows as JSON in `<criterion dir>/cold.json`,
//! which `benches/report.py` prints and plots (not with `--test`).
//!
//! The peak resident memory of one `status` run (`/usr/bin/time -f %M`, where it is
//! installed) is reported beside the file size: its growth over the 10-step store is
//! what reading the document costs in memory.
//!
//! The binary is `target/release/checklist`, built with `cargo build --profile bench -p
//! checklist-cli` first (a no-op when it is up to date). With `--test`
//! (`cargo bench -- --test`) each command runs twice at 10 and 100 steps.
#![allow(clippy::print_stdout, reason = "the table is this benchmark's report")]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checklist_backends::{InitOptions, OpenOptions, builtin_registry, init_project, open_project};
use checklist_benches::{
    bench_root, cli_binary, cli_runtime, criterion_dir, format_duration, loadavg, percentile,
    state_with_steps,
};
use checklist_core::RollingBackups;
use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Timed runs per command and size (after one untimed run).
const RUNS: usize = 15;

fn main() {
    let testing = std::env::args().any(|a| a == "--test");
    let sizes: &[usize] = if testing {
        &[10, 100]
    } else {
        &[10, 100, 1000, 10_000]
    };
    let runs = if testing { 2 } else { RUNS };
    let binary = cli_binary();
    let root = bench_root("cold");
    let rt = cli_runtime();
    let sqlite3 = Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());

    println!(
        "cold: one fresh `checklist` process per run ({runs} runs, p50), load average {}",
        loadavg()
    );
    println!();
    println!(
        "| backend | steps | state file | --version | read + sha256 | sqlite3 update | status | status (no cache) | verify | step complete | status peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for backend in BACKENDS {
        for &steps in sizes {
            let project = root.path().join(format!("{backend}-{steps}"));
            let row = measure(&binary, &project, backend, steps, runs, sqlite3, &rt);
            let cell = |key: &str| {
                row[key]
                    .as_u64()
                    .map_or_else(|| "—".to_owned(), |ns| format_duration(Duration::from_nanos(ns)))
            };
            println!(
                "| {backend} | {steps} | {} KiB | {} | {} | {} | {} | {} | {} | {} | {} |",
                row["bytes"].as_u64().unwrap_or(0) / 1024,
                cell("versionNs"),
                cell("readNs"),
                cell("sqlite3Ns"),
                cell("statusNs"),
                cell("statusNoCacheNs"),
                cell("verifyNs"),
                cell("stepCompleteNs"),
                row["statusPeakRssKib"]
                    .as_u64()
                    .map_or_else(|| "—".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
            );
            rows.push(row);
        }
    }
    println!();
    for backend in BACKENDS {
        let of: Vec<&Value> = rows.iter().filter(|r| r["backend"] == backend).collect();
        let (Some(first), Some(last)) = (of.first(), of.last()) else {
            continue;
        };
        let ratio = |key: &str| match (first[key].as_f64(), last[key].as_f64()) {
            (Some(a), Some(b)) => format!("{:.1}×", b / a),
            _ => "—".to_owned(),
        };
        println!(
            "{backend}, {} steps × {} steps: status {}, status (no cache) {}, verify {}, step complete {}",
            last["steps"],
            first["steps"],
            ratio("statusNs"),
            ratio("statusNoCacheNs"),
            ratio("verifyNs"),
            ratio("stepCompleteNs")
        );
    }
    if !testing {
        let out = criterion_dir().join("cold.json");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let report = json!({"runs": runs, "loadavg": loadavg(), "rows": rows});
        std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
        println!("\n(written to {})", out.display());
    }
}

/// The backends measured: the default file backend and SQLite.
const BACKENDS: [&str; 2] = ["yaml", "sqlite"];

/// One row: every command and floor on a new `backend` project of `steps` steps at
/// `project`, in nanoseconds (p50), with the state's size and the peak memory of
/// `status`; null where a column does not apply.
fn measure(
    binary: &Path,
    project: &Path,
    backend: &str,
    steps: usize,
    runs: usize,
    sqlite3: bool,
    rt: &tokio::runtime::Runtime,
) -> Value {
    std::fs::create_dir(project).unwrap();
    rt.block_on(seed(project, backend, steps));
    let opened = rt
        .block_on(open_project(
            project,
            &builtin_registry(),
            &OpenOptions::default(),
        ))
        .unwrap();
    let state = opened.backend.store.info().location_path().to_owned();
    drop(opened);
    let bytes = std::fs::metadata(&state).unwrap().len();
    let cache = project.join(".checklist/.cache");
    let run = |args: &[&str], before: &dyn Fn()| {
        time(runs, before, || {
            let out = Command::new(binary)
                .arg("--dir")
                .arg(project)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "checklist {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    let nothing = || {};
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let version = run(&["--version"], &nothing);
    let read = time(runs, &nothing, || {
        let bytes = std::fs::read(&state).unwrap();
        std::hint::black_box(Sha256::digest(&bytes));
    });
    let sqlite = sqlite3.then(|| sqlite_update(project, steps, runs));
    let status = run(&["status"], &nothing);
    // Only a file backend keeps a parse cache to do without.
    let uncached = (backend != "sqlite").then(|| {
        run(&["status"], &|| {
            let _ = std::fs::remove_dir_all(&cache);
            std::fs::create_dir(&cache).unwrap();
        })
    });
    let verify = run(&["verify"], &nothing);
    let counter = std::cell::Cell::new(0);
    let complete = time(runs, &|| counter.set(counter.get() + 1), || {
        let id = format!("cold-{}", counter.get());
        let out = Command::new(binary)
            .arg("--dir")
            .arg(project)
            .args(["step", "complete", &id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    json!({
        "backend": backend,
        "steps": steps,
        "bytes": bytes,
        "versionNs": ns(version),
        "readNs": ns(read),
        "sqlite3Ns": sqlite.map(ns),
        "statusNs": ns(status),
        "statusNoCacheNs": uncached.map(ns),
        "verifyNs": ns(verify),
        "stepCompleteNs": ns(complete),
        "statusPeakRssKib": peak_rss_kib(binary, project, &["status"]),
    })
}

/// A `backend` project at `project` whose state holds `steps` steps, committed as the
/// CLI commits (so a file backend's parse cache is written too).
async fn seed(project: &Path, backend: &str, steps: usize) {
    let options = InitOptions {
        backend: Some(backend.to_owned()),
        ..InitOptions::default()
    };
    init_project(project, &options, &builtin_registry())
        .await
        .unwrap();
    let opened = open_project(project, &builtin_registry(), &OpenOptions::default())
        .await
        .unwrap();
    TransactionCoordinator::with_options(
        Arc::clone(&opened.backend.store),
        Arc::clone(&opened.backend.locks),
        RollingBackups::from_settings(&opened.config.backup),
        CoordinatorOptions::from_config(&opened.config),
    )
    .transact("seed", |state| {
        *state = state_with_steps(steps);
        Ok(())
    })
    .await
    .unwrap();
}

/// The p50 of `runs` timed runs of `work`, each after `before` (not timed), after one
/// untimed run.
fn time(runs: usize, before: &dyn Fn(), work: impl Fn()) -> Duration {
    before();
    work();
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            before();
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    samples.sort();
    percentile(&samples, 50.0)
}

/// The peak resident set of one run of `binary --dir project args`, in KiB, as
/// `/usr/bin/time -f %M` reports it; `None` without it.
fn peak_rss_kib(binary: &Path, project: &Path, args: &[&str]) -> Option<u64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(binary)
        .arg("--dir")
        .arg(project)
        .args(args)
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last()?.trim().parse().ok()
}

/// The `sqlite3` shell, a fresh process, updating one row of a table of `rows` rows in
/// a WAL database with `synchronous=FULL` (as the sqlite backend runs).
fn sqlite_update(dir: &Path, rows: usize, runs: usize) -> Duration {
    let db = dir.join("floor.db");
    let setup = format!(
        "PRAGMA journal_mode=WAL; CREATE TABLE steps(id INTEGER PRIMARY KEY, doc TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO steps SELECT i, printf('%0200d', i) FROM n;"
    );
    let out = Command::new("sqlite3").arg(&db).arg(setup).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    time(runs, &|| {}, || {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("PRAGMA synchronous=FULL; UPDATE steps SET doc = doc WHERE id = 1;")
            .output()
            .unwrap();
        assert!(out.status.success());
    })
}
