//! What the benchmark targets in `benches/` share: the state they measure, the
//! directory and runtime they run in, the `std`-only durable-replace floor, and where
//! criterion keeps its results.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use checklist_backends::{FileStoreOptions, YamlCodec, YamlFileStore};
use checklist_core::Expectation;
use checklist_core::prelude::*;
use tokio::runtime::Runtime;

pub use checklist_conformance::testkit::{completion, state_with_steps};

/// A current-thread runtime; the file stores' blocking I/O still runs on tokio's
/// blocking pool, as it does in the CLI.
pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// The runtime of the CLI (cli/src/main.rs): multi-threaded with two workers, so the
/// stores' blocking I/O runs in place (`block_in_place`) as it does for a user.
pub fn cli_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// The `checklist` binary the benchmarks of the real CLI run: `$CHECKLIST_BENCH_BIN`
/// when set (another build, for an A/B run), else `target/release/checklist`, built (or
/// found up to date) by `cargo build --profile bench -p checklist-cli` first — the
/// bench profile, so this build and the benchmark's do not rebuild each other's
/// dependencies.
pub fn cli_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("CHECKLIST_BENCH_BIN") {
        return PathBuf::from(binary);
    }
    let bench = std::env::current_exe().expect("find the bench binary");
    // target/release/deps/<bench>-<hash> → target/release/checklist
    let release = bench
        .parent()
        .and_then(Path::parent)
        .expect("the bench binary is in target/<profile>/deps")
        .to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile",
            "bench",
            "-p",
            "checklist-cli",
            "--bin",
            "checklist",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "could not build the checklist binary");
    release.join(format!("checklist{}", std::env::consts::EXE_SUFFIX))
}

/// A new directory for one benchmark target's files, under `$CHECKLIST_BENCH_DIR` (to
/// measure another file system) or the system temp directory; removed when dropped.
pub fn bench_root(name: &str) -> tempfile::TempDir {
    let parent = std::env::var_os("CHECKLIST_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::Builder::new()
        .prefix(&format!("checklist-bench-{name}-"))
        .tempdir_in(&parent)
        .expect("create the benchmark directory")
}

/// `/proc/loadavg`'s first three fields, or `unknown`.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Criterion's output directory, found as criterion finds it.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(PathBuf::from(metadata.get("target_directory")?.as_str()?))
    });
    from_metadata.map_or_else(|| PathBuf::from("target/criterion"), |t| t.join("criterion"))
}

/// The engine's durable replace with `std` only — the floor: exclusive new temp file in
/// the target's directory → write → fsync → rename over the target → fsync the
/// directory.
///
/// # Errors
/// The first failing operation's error.
pub fn durable_replace(dir: &Path, target: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, target)?;
    File::open(dir)?.sync_all()
}

/// The bytes of the state file of a YAML store holding `steps` steps.
pub fn yaml_document(rt: &Runtime, root: &Path, steps: usize) -> Vec<u8> {
    let dir = root.join(format!("yaml-sample-{steps}"));
    fs::create_dir(&dir).expect("create a sample store directory");
    let store = YamlFileStore::open(&dir, YamlCodec, FileStoreOptions::default()).expect("open a YAML store");
    rt.block_on(store.commit(&state_with_steps(steps), Expectation::Absent))
        .expect("write the sample state");
    let bytes = fs::read(store.state_path()).expect("read the sample state");
    fs::remove_dir_all(&dir).expect("remove the sample store");
    bytes
}

/// The nearest-rank percentile `p` (0–100) of sorted samples (zero for none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in the unit that reads best: `1.23 ms`, `456 µs`.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.0} µs")
    }
}

/// Iterations of the interleaved loop before timing, per subject.
pub const WARM_UP: usize = 20;
/// Iterations of the interleaved loop timed, per subject.
pub const MEASURED: usize = 300;
/// The rounds the timed iterations are spread over.
pub const ROUNDS: usize = 10;
/// Timed iterations per subject with `--test` (as `cargo bench -- --test` passes it),
/// in one round, after no warm-up.
pub const TEST_ITERATIONS: usize = 2;

/// Runs the interleaved loop the p50/p99 benchmarks share: [`WARM_UP`] untimed
/// iterations of each subject, then [`MEASURED`] timed ones spread over [`ROUNDS`]
/// rounds in which every subject runs a block in turn, so that a slow spell of the
/// shared disk or server falls on all of them (with `test_mode`, [`TEST_ITERATIONS`] in
/// one round). `run` runs one iteration; `record` keeps its time. Returns the timed
/// iterations each subject ran.
pub fn run_interleaved<S>(
    subjects: &mut [S],
    test_mode: bool,
    mut run: impl FnMut(&mut S),
    mut record: impl FnMut(&mut S, Duration),
) -> usize {
    let (warm_up, measured, rounds) = if test_mode {
        (0, TEST_ITERATIONS, 1)
    } else {
        (WARM_UP, MEASURED, ROUNDS)
    };
    for subject in subjects.iter_mut() {
        for _ in 0..warm_up {
            run(subject);
        }
    }
    let block = measured.div_ceil(rounds);
    for _ in 0..rounds {
        for subject in subjects.iter_mut() {
            for _ in 0..block {
                let started = Instant::now();
                run(subject);
                record(subject, started.elapsed());
            }
        }
    }
    block * rounds
}

/// One subject's timed samples, for [`p50_table`].
#[derive(Debug)]
pub struct Samples<'a> {
    /// The benchmark id, `group/kind_steps` (`group/kind` for one without steps).
    pub id: &'a str,
    /// The state size it measured, in steps.
    pub steps: usize,
    /// Its timings, in any order.
    pub samples: &'a [Duration],
}

/// The Markdown table of p50 and p99 per subject, with each p50 over the p50 of the
/// subject of the same size whose id ends in `/<base>_<steps>`, for every base in
/// `bases` (`—` where there is none).
pub fn p50_table(subjects: &[Samples<'_>], bases: &[&str]) -> String {
    let p50 = |samples: &[Duration]| {
        let mut sorted = samples.to_vec();
        sorted.sort();
        percentile(&sorted, 50.0)
    };
    let mut table = format!(
        "| benchmark | p50 | p99 |{}\n|---|---:|---:|{}\n",
        bases.iter().map(|b| format!(" p50 × {b} |")).collect::<String>(),
        "---:|".repeat(bases.len())
    );
    for subject in subjects {
        let mut sorted = subject.samples.to_vec();
        sorted.sort();
        let own = percentile(&sorted, 50.0);
        let ratios: String = bases
            .iter()
            .map(|base| {
                let suffix = format!("/{base}_{}", subject.steps);
                subjects
                    .iter()
                    .find(|s| s.steps == subject.steps && s.id.ends_with(&suffix))
                    .map_or_else(
                        || " — |".to_owned(),
                        |b| format!(" {:.2} |", own.as_secs_f64() / p50(b.samples).as_secs_f64()),
                    )
            })
            .collect();
        table.push_str(&format!(
            "| {} | {} | {} |{ratios}\n",
            subject.id,
            format_duration(own),
            format_duration(percentile(&sorted, 99.0))
        ));
    }
    table
}
