//! The 1,024-writer storm (issue 17): 1,024 `checklist step complete` processes of the
//! real binary started at once against one store, one commit each, on yaml and sqlite.
//!
//! Not a criterion benchmark: one run takes seconds. It times from the first spawn to
//! the last exit, and each process from its spawn to its exit; it reports the total,
//! commits per second, the median, 99th percentile and longest process, and the ratio of
//! the longest to the median (a waiter starved by the others would show as a large
//! ratio). It then checks that the state holds every step and that the revision advanced
//! by one per process, and panics otherwise. Every process has a lock timeout of 300 s:
//! none may give up.
//!
//! The binary is [`cli_binary`]: `target/release/checklist`, or `$CHECKLIST_BENCH_BIN`
//! to measure another build beside it (an A/B run). With `--test` (`cargo bench --
//! --test`) it runs 8 processes on yaml. Output: a Markdown table on stdout and the rows
//! in `<criterion dir>/storm.json` for `benches/report.py`. Other arguments that are not
//! flags filter the runs by substring of `storm/<backend>/<N>`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this bench has its own main (harness = false): its report is its output"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checklist_benches::{bench_root, cli_binary, criterion_dir, format_duration, loadavg, percentile};
use serde_json::{Value, json};

/// The processes of a full run.
const PROCESSES: usize = 1024;

/// The processes of `--test`.
const TEST_PROCESSES: usize = 8;

/// The backends measured.
const BACKENDS: [&str; 2] = ["yaml", "sqlite"];

struct Row {
    backend: &'static str,
    processes: usize,
    total: Duration,
    median: Duration,
    p99: Duration,
    longest: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let processes = if test_mode { TEST_PROCESSES } else { PROCESSES };
    let backends: Vec<&'static str> = if test_mode {
        vec!["yaml"]
    } else {
        BACKENDS.to_vec()
    };
    let runs: Vec<&'static str> = backends
        .into_iter()
        .filter(|b| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| format!("storm/{b}/{processes}").contains(f))
        })
        .collect();
    if runs.is_empty() {
        return;
    }
    let binary = cli_binary();
    let root = bench_root("storm");
    let loadavg_before = loadavg();
    let rows: Vec<Row> = runs
        .iter()
        .map(|backend| storm(&binary, root.path(), backend, processes))
        .collect();
    let loadavg_after = loadavg();

    println!();
    println!(
        "storm: {processes} `checklist step complete` processes at once, one commit each ({})",
        binary.display()
    );
    println!("load average before: {loadavg_before}; after: {loadavg_after}");
    println!();
    println!(
        "| backend | processes | total | commits/s | median process | p99 | longest | longest / median |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {:.2} s | {:.0} | {} | {} | {} | {:.1} |",
            row.backend,
            row.processes,
            row.total.as_secs_f64(),
            row.processes as f64 / row.total.as_secs_f64(),
            format_duration(row.median),
            format_duration(row.p99),
            format_duration(row.longest),
            row.longest.as_secs_f64() / row.median.as_secs_f64(),
        );
    }
    println!();
    if test_mode {
        return;
    }
    let out = criterion_dir().join("storm.json");
    let report = json!({
        "binary": binary.display().to_string(),
        "loadavgBefore": loadavg_before,
        "loadavgAfter": loadavg_after,
        "rows": rows.iter().map(|r| json!({
            "backend": r.backend,
            "processes": r.processes,
            "totalSeconds": r.total.as_secs_f64(),
            "medianSeconds": r.median.as_secs_f64(),
            "p99Seconds": r.p99.as_secs_f64(),
            "longestSeconds": r.longest.as_secs_f64(),
        })).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(criterion_dir()).expect("create the criterion directory");
    let text = serde_json::to_string_pretty(&report).expect("serialise the report");
    std::fs::write(&out, text + "\n").expect("write storm.json");
    println!("wrote {}", out.display());
}

/// Runs the storm on a fresh `backend` store under `root`.
fn storm(binary: &Path, root: &Path, backend: &'static str, processes: usize) -> Row {
    let project = root.join(format!("{backend}-{processes}"));
    std::fs::create_dir_all(&project).expect("create the project");
    let run = |args: &[&str]| {
        let out = Command::new(binary)
            .arg("--dir")
            .arg(&project)
            .args(args)
            .output()
            .expect("run checklist");
        assert!(
            out.status.success(),
            "checklist {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&["init", "--backend", backend]);
    run(&["start", "--template", "storm"]);
    let revision = |stdout: Vec<u8>| -> Value { serde_json::from_slice(&stdout).expect("status --json") };
    let before = revision(run(&["--json", "status"]))["revision"]
        .as_u64()
        .expect("a revision");

    let started = Instant::now();
    let children: Vec<(Instant, std::process::Child)> = (0..processes)
        .map(|i| {
            let spawned = Instant::now();
            let child = Command::new(binary)
                .arg("--dir")
                .arg(&project)
                .args(["--lock-timeout", "300000", "step", "complete", &format!("s{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a writer");
            (spawned, child)
        })
        .collect();
    // Each exit is seen within a couple of milliseconds by polling them all, so a
    // process that finished early is not charged for those spawned before it.
    let mut pending: Vec<(Instant, std::process::Child)> = children;
    let mut durations: Vec<Duration> = Vec::with_capacity(processes);
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for (spawned, mut child) in pending {
            match child.try_wait().expect("poll a writer") {
                Some(exit) => {
                    durations.push(spawned.elapsed());
                    let out = child.wait_with_output().expect("collect a writer");
                    assert!(
                        exit.success(),
                        "a writer failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                None => still.push((spawned, child)),
            }
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(2));
    }
    let total = started.elapsed();
    let status = revision(run(&["--json", "status"]));
    let after = status["revision"].as_u64().expect("a revision");
    assert_eq!(after, before + processes as u64, "every process commits once");
    durations.sort_unstable();
    Row {
        backend,
        processes,
        total,
        median: percentile(&durations, 0.5),
        p99: percentile(&durations, 0.99),
        longest: *durations.last().expect("a process"),
    }
}
