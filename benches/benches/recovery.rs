//! Backups and recovery: what keeping a backup adds to a commit, what a backup taken on
//! its own costs, and how long recovering a corrupt state takes.
//!
//! Benchmarks (criterion ids, `group/function`), YAML store, `durability: full`, on a
//! multi-threaded runtime as the CLI runs it:
//!
//! - `backup/write_N`: one compare-and-swap write of the next revision of an N-step
//!   state, keeping no backup (the baseline).
//! - `backup/write_keeping_backup_N`: the same write keeping the replaced file as a
//!   backup and pruning to the 3 newest (what every transaction does): a hard link and
//!   one rewrite of the backup index, inside the write. The difference to `write_N` is
//!   the backup's cost per commit.
//! - `backup/create_copy_N`: `create_backup` on its own (`checklist backup create`),
//!   which copies the file durably because no write follows it.
//! - `recovery/clean_load_1000`: `Recovery::load` of a 1000-step state that verifies —
//!   what every command pays before it starts.
//! - `recovery/flipped_byte_1000`: `Recovery::load` of the same state with one byte
//!   flipped: detect, take the lock, quarantine the corrupt file, read and verify the
//!   newest backup, write it back over with a fresh checksum, audit, release. The
//!   corrupt bytes are put back before each iteration, untimed.
//!
//! N is 100 and 1000. Each benchmark declares its document size as its throughput.
//! Set `CHECKLIST_BENCH_DIR` to measure another file system.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use checklist_backends::{FileLockProvider, FileStoreOptions, YamlCodec, YamlFileStore};
use checklist_benches::{bench_root, cli_runtime, state_with_steps};
use checklist_core::prelude::*;
use checklist_core::{BackupStore, Expectation, KeepBackup, Recovery, RollingBackups, StateStoreExt};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The state sizes measured, in completed steps.
const STEP_COUNTS: [usize; 2] = [100, 1000];

/// A YAML store in a new directory under `root`, holding an N-step state at revision 1.
fn store_with_steps(rt: &Runtime, root: &Path, name: &str, steps: usize) -> YamlFileStore {
    let dir = root.join(name);
    fs::create_dir(&dir).expect("create a store directory");
    let store = YamlFileStore::open(&dir, YamlCodec, FileStoreOptions::default()).expect("open a YAML store");
    rt.block_on(store.commit(&state_with_steps(steps), Expectation::Absent))
        .expect("write the first revision");
    store
}

fn keep_three() -> KeepBackup {
    KeepBackup {
        reason: "commit".into(),
        policy: Some(Arc::new(RollingBackups::keep(3))),
    }
}

fn backups(c: &mut Criterion) {
    let rt = cli_runtime();
    let root = bench_root("recovery");
    let mut group = c.benchmark_group("backup");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    for steps in STEP_COUNTS {
        let plain = store_with_steps(&rt, root.path(), &format!("plain-{steps}"), steps);
        let state = rt.block_on(plain.read_existing()).expect("read the state");
        let size = fs::metadata(plain.state_path()).expect("state size").len();
        group.throughput(Throughput::Bytes(size));
        group.bench_function(format!("write_{steps}"), |b| {
            b.iter(|| {
                let current = rt.block_on(plain.read_existing()).expect("read");
                rt.block_on(plain.commit(&state, Expectation::current(&current)))
                    .expect("write")
            });
        });
        let backed = store_with_steps(&rt, root.path(), &format!("backed-{steps}"), steps);
        group.bench_function(format!("write_keeping_backup_{steps}"), |b| {
            b.iter(|| {
                let current = rt.block_on(backed.read_existing()).expect("read");
                rt.block_on(backed.commit_keeping_backup(
                    &state,
                    Expectation::current(&current),
                    keep_three(),
                ))
                .expect("write keeping a backup")
            });
        });
        group.bench_function(format!("create_copy_{steps}"), |b| {
            b.iter_batched(
                // Backups taken on their own are not pruned by themselves: keep the
                // index as small as a transaction leaves it (untimed).
                || {
                    let listed = rt.block_on(backed.list_backups()).expect("list");
                    for record in listed.iter().take(listed.len().saturating_sub(3)) {
                        rt.block_on(backed.delete_backup(&record.id)).expect("delete");
                    }
                },
                |()| rt.block_on(backed.create_backup("manual")).expect("back up"),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let rt = cli_runtime();
    let root = bench_root("recovery");
    let steps = 1000;
    let store = store_with_steps(&rt, root.path(), "corrupt-1000", steps);
    let dir = store.state_path().parent().expect("store directory").to_owned();
    let current = rt.block_on(store.read_existing()).expect("read");
    rt.block_on(store.commit_keeping_backup(&current, Expectation::current(&current), keep_three()))
        .expect("a second revision, backing up the first");
    let good = fs::read(store.state_path()).expect("read the state file");
    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    let recovery = Recovery::new(
        store.clone(),
        FileLockProvider::new(&dir),
        RollingBackups::default(),
    );

    let mut group = c.benchmark_group("recovery");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(good.len() as u64));
    group.bench_function("clean_load_1000", |b| {
        b.iter(|| rt.block_on(recovery.load()).expect("load"));
    });
    group.bench_function(format!("flipped_byte_{steps}"), |b| {
        b.iter_batched(
            || fs::write(store.state_path(), &corrupt).expect("put the corrupt bytes back"),
            |()| {
                let loaded = rt.block_on(recovery.load()).expect("recover");
                assert!(loaded.recovered.is_some(), "the flipped byte was not detected");
                black_box(loaded)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, backups, recovery);
criterion_main!(benches);
