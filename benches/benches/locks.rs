//! One uncontended acquire + release of the store lock, next to the file-system
//! operations it is built from (the figures the lock design started from: uncontended flock ≈ 1 µs, O_EXCL create +
//! remove ≈ 20 µs).
//!
//! Benchmarks (criterion ids, `group/function`):
//!
//! - `lock/file_acquire_release`: `FileLockProvider::acquire(&LockRequest::default())`
//!   then `LockGuard::release()` on the `.checklist/` directory of a project made by
//!   `init_project`, with nobody else about. That is the whole cross-process protocol
//!   of `backends/src/lock/file.rs`: the liveness file and its `flock`, the lock
//!   written to a temp file and hard-linked to `.lock`, the heartbeat thread started
//!   and stopped, and the release under `.locks/break.lock`.
//! - `lock/in_process_acquire_release`: the same with `InProcessLockProvider`.
//! - `floor/flock_uncontended`: `File::lock()` + `File::unlock()` on a file opened once.
//! - `floor/excl_create_remove`: `OpenOptions::new().write(true).create_new(true)`
//!   then `fs::remove_file`.
//! - `floor/link_create_remove`: `fs::hard_link` of an existing file then
//!   `fs::remove_file` of the link.
//!
//! The lock calls are driven as store.rs drives the stores: `block_on` of a
//! current-thread tokio runtime, whose blocking pool runs the provider's file I/O.
//! Everything runs in one temporary directory, by default under the system temp
//! directory; set `CHECKLIST_BENCH_DIR` to measure another file system.
//!
//! The throughput of many processes committing through this lock is measured by the
//! `contention` bench target, not here.

use checklist_benches::{bench_root, current_thread_runtime as runtime};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use checklist_backends::{
    FileLockProvider, InProcessLockProvider, InitOptions, Layout, builtin_registry, init_project,
};
use checklist_core::{LockProvider, LockRequest};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Every benchmark here takes microseconds per iteration.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sampling_mode(SamplingMode::Auto)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// A freshly initialised project under `root`; returns its store directory.
fn initialised_store(rt: &Runtime, root: &Path) -> PathBuf {
    let project = root.join("project");
    fs::create_dir(&project).expect("create the project directory");
    rt.block_on(init_project(
        &project,
        &InitOptions::default(),
        &builtin_registry(),
    ))
    .expect("initialise the store");
    Layout::for_project(&project).dir().to_owned()
}

/// Acquire + release of both lock providers.
fn bench_providers(c: &mut Criterion, rt: &Runtime, root: &Path) {
    let store = initialised_store(rt, root);
    let lock_path = Layout::at(&store).lock();
    let request = LockRequest::default();
    let file_locks = FileLockProvider::new(&store);
    let in_process = InProcessLockProvider::new("memory:bench");

    let mut group = c.benchmark_group("lock");
    configure(&mut group);
    group.bench_function("file_acquire_release", |b| {
        b.iter(|| {
            rt.block_on(async {
                let guard = file_locks.acquire(&request).await?;
                guard.release().await
            })
            .expect("acquire and release the file lock");
        });
    });
    group.bench_function("in_process_acquire_release", |b| {
        b.iter(|| {
            rt.block_on(async {
                let guard = in_process.acquire(&request).await?;
                guard.release().await
            })
            .expect("acquire and release the in-process lock");
        });
    });
    group.finish();

    assert!(
        !lock_path.exists(),
        "every file lock was released: {}",
        lock_path.display()
    );
    let status = rt.block_on(file_locks.inspect()).expect("inspect the file lock");
    assert!(status.holder.is_none() && status.waiters.is_empty(), "{status:?}");
}

/// The file-system operations the file lock is made of, with `std` alone.
fn bench_floor(c: &mut Criterion, root: &Path) {
    let dir = root.join("floor");
    fs::create_dir(&dir).expect("create the floor directory");

    let mut group = c.benchmark_group("floor");
    configure(&mut group);

    let flocked = File::create(dir.join("flock")).expect("create the flock file");
    group.bench_function("flock_uncontended", |b| {
        b.iter(|| {
            flocked.lock().expect("lock");
            flocked.unlock().expect("unlock");
        });
    });

    let excl = dir.join("excl");
    group.bench_function("excl_create_remove", |b| {
        b.iter(|| {
            drop(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&excl)
                    .expect("create exclusively"),
            );
            fs::remove_file(&excl).expect("remove");
        });
    });

    let existing = dir.join("existing");
    fs::write(&existing, b"").expect("create the file to link");
    let link = dir.join("link");
    group.bench_function("link_create_remove", |b| {
        b.iter(|| {
            fs::hard_link(&existing, &link).expect("link");
            fs::remove_file(&link).expect("remove");
        });
    });
    group.finish();
}

fn lock_benches(c: &mut Criterion) {
    let rt = runtime();
    let root = bench_root("locks");
    bench_floor(c, root.path());
    bench_providers(c, &rt, root.path());
}

criterion_group!(benches, lock_benches);
criterion_main!(benches);
