//! Load and save of the state store, next to the file-system floors they are bound by.
//!
//! Benchmarks (criterion ids, `group/function`):
//!
//! - `yaml/load_cached_N` (and json, memory): the same read through a handle that
//!   already holds those exact bytes, which returns its verified copy without parsing.
//! - `yaml/load_N`, `json/load_N`, `memory/load_N`: a verified read (parse, schema,
//!   checksum) of a state holding `N` completed steps, `N` in 10, 100, 1000.
//! - `yaml/save_N`, `json/save_N`, `memory/save_N`: one compare-and-swap write that
//!   commits the next revision of that state. The file stores run with the default
//!   options, `durability: full` (fsync of the file and of its directory).
//! - `floor/durable_replace_4k`, `floor/durable_replace_yaml100`,
//!   `floor/durable_replace_yaml1000`: what a durable atomic replace costs with `std`
//!   alone — exclusive new temp file in the same directory, write, `sync_all`, rename
//!   over the target, fsync the directory — for 4 KiB and for the byte size of the
//!   100- and 1000-step YAML documents.
//! - `floor/read_4k`, `floor/read_yaml100`, `floor/read_yaml1000`: `std::fs::read` of a
//!   cached file of those sizes.
//!
//! - `pipeline/*_1000`: the CPU stages of load and save of the 1000-step state, to
//!   attribute the store's cost beyond the floors: `seal` and `unseal` (the shared
//!   `checklist_core::document` pipeline) and their parts — `to_value`, `schema`,
//!   `checksum`, `to_model`, `value_clone` — and the YAML and JSON codecs.
//!
//! Every store and floor benchmark declares its document size as its throughput in bytes, so the
//! report (`benches/report.py`) can pair each store benchmark with the floor of the
//! same size. Everything runs in one temporary directory, by default under the system
//! temp directory; set `CHECKLIST_BENCH_DIR` to measure another file system.

use checklist_benches::{
    bench_root, current_thread_runtime as runtime, durable_replace, state_with_steps, yaml_document,
};
use std::fs::{self};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use checklist_backends::{
    Codec, FileStore, FileStoreOptions, JsonCodec, JsonFileStore, MemoryStore, YamlCodec, YamlFileStore,
};
use checklist_core::config::Durability;
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Expectation, StateStore};
use checklist_core::{canonical, document, schema};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tokio::runtime::Runtime;

/// The state sizes measured, in completed steps.
const STEP_COUNTS: [usize; 3] = [10, 100, 1000];

/// The size of the smallest floor.
const FOUR_KIB: usize = 4096;

/// A fresh, empty store directory under `root`.
fn store_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir(&dir).expect("create a store directory");
    dir
}

/// A store under benchmark: how to build it and how big its document is on disk.
trait Subject: StateStore + Sized {
    /// The criterion group name.
    fn name() -> &'static str;
    /// Whether writes hit the disk (and so are fsync-bound).
    const ON_DISK: bool;
    /// An empty store in a new directory under `root`.
    fn create(root: &Path, steps: usize) -> Self;
    /// The byte size of the stored document.
    fn document_bytes(&self) -> u64;
    /// A new handle on the same store, with nothing cached: what a new process has.
    fn fresh_handle(&self) -> Self;
}

impl<C: Codec + Clone + Default> Subject for FileStore<C> {
    fn name() -> &'static str {
        C::default().name()
    }
    const ON_DISK: bool = true;

    fn create(root: &Path, steps: usize) -> Self {
        let options = FileStoreOptions::default();
        assert_eq!(
            options.durability,
            Durability::Full,
            "the default durability is full"
        );
        Self::open(
            store_dir(root, &format!("{}-{steps}", Self::name())),
            C::default(),
            options,
        )
        .expect("open a file store")
    }

    fn fresh_handle(&self) -> Self {
        Self::open(
            self.state_path().parent().expect("a store directory"),
            self.codec().clone(),
            self.options().clone(),
        )
        .expect("reopen the file store")
    }

    fn document_bytes(&self) -> u64 {
        fs::metadata(self.state_path())
            .expect("stat the state file")
            .len()
    }
}

impl Subject for MemoryStore {
    fn name() -> &'static str {
        "memory"
    }
    const ON_DISK: bool = false;

    fn create(_root: &Path, _steps: usize) -> Self {
        Self::new()
    }

    /// The pretty JSON a file backend would hold.
    /// A memory store has no cold path: every handle shares the sealed document.
    fn fresh_handle(&self) -> Self {
        self.clone()
    }

    fn document_bytes(&self) -> u64 {
        self.raw().map_or(0, |bytes| bytes.len() as u64)
    }
}

/// Sampling settings: fsync-bound benchmarks take about a millisecond per iteration,
/// in-memory ones microseconds.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, on_disk: bool) {
    group
        .sampling_mode(SamplingMode::Auto)
        .warm_up_time(Duration::from_millis(500));
    if on_disk {
        group.sample_size(30).measurement_time(Duration::from_secs(3));
    } else {
        group.sample_size(30).measurement_time(Duration::from_secs(2));
    }
}

/// `load_N` and `save_N` of one backend, for every size in [`STEP_COUNTS`].
fn bench_backend<S: Subject>(c: &mut Criterion, rt: &Runtime, root: &Path) {
    let mut group = c.benchmark_group(S::name());
    configure(&mut group, S::ON_DISK);
    for steps in STEP_COUNTS {
        let store = S::create(root, steps);
        let state = state_with_steps(steps);
        let mut revision = rt
            .block_on(store.commit(&state, Expectation::Absent))
            .expect("write the first revision")
            .revision;
        group.throughput(Throughput::Bytes(store.document_bytes()));

        group.bench_function(format!("load_{steps}"), |b| {
            b.iter_batched(
                || store.fresh_handle(),
                |fresh| {
                    rt.block_on(fresh.read())
                        .expect("read the state")
                        .expect("a state is stored")
                },
                BatchSize::SmallInput,
            );
        });

        group.bench_function(format!("load_cached_{steps}"), |b| {
            b.iter(|| {
                rt.block_on(store.read())
                    .expect("read the state")
                    .expect("a state is stored")
            });
        });

        group.bench_function(format!("save_{steps}"), |b| {
            b.iter(|| {
                let committed = rt
                    .block_on(store.commit(&state, Expectation::Revision(revision)))
                    .expect("commit the next revision");
                revision = committed.revision;
            });
        });

        let stored = rt
            .block_on(store.read())
            .expect("read the state")
            .expect("a state is stored");
        assert_eq!(
            stored.revision, revision,
            "every iteration committed one revision"
        );
        assert_eq!(stored.completed_steps.len(), steps);
    }
    group.finish();
}

/// The floors: durable replace and cached read, with `std` alone.
fn bench_floor(c: &mut Criterion, root: &Path, payloads: &[(&str, Vec<u8>)]) {
    let dir = store_dir(root, "floor");
    let mut group = c.benchmark_group("floor");
    configure(&mut group, true);

    for (label, bytes) in payloads {
        let target = dir.join(format!("replace-{label}"));
        fs::write(&target, bytes).expect("write the floor's target");
        let mut n = 0_u64;
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("durable_replace_{label}"), |b| {
            b.iter(|| {
                n += 1;
                let temp = dir.join(format!(".replace-{label}.tmp-{}-{n}", std::process::id()));
                durable_replace(&dir, &target, &temp, bytes).expect("durable replace");
            });
        });
    }

    group.sample_size(50).measurement_time(Duration::from_secs(1));
    for (label, bytes) in payloads {
        let path = dir.join(format!("read-{label}"));
        fs::write(&path, bytes).expect("write the floor's file");
        fs::read(&path).expect("warm the page cache");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("read_{label}"), |b| {
            b.iter(|| fs::read(black_box(&path)).expect("read"));
        });
    }
    group.finish();
}

/// The CPU stages of load and save, for the largest state.
fn bench_pipeline(c: &mut Criterion) {
    let steps = STEP_COUNTS[STEP_COUNTS.len() - 1];
    let path = Path::new("state.yaml");
    let state = state_with_steps(steps);
    let sealed = document::seal(&state, 2, path).expect("seal the state");
    let value = sealed.value;
    let yaml = YamlCodec.encode(&value).expect("encode YAML");
    let json = JsonCodec.encode(&value).expect("encode JSON");

    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));

    group.bench_function(format!("seal_{steps}"), |b| {
        b.iter(|| document::seal(black_box(&state), 2, path).expect("seal"));
    });
    group.bench_function(format!("unseal_{steps}"), |b| {
        b.iter_batched(
            || value.clone(),
            |v| document::unseal(v, path).expect("unseal"),
            BatchSize::LargeInput,
        );
    });
    group.bench_function(format!("to_value_{steps}"), |b| {
        b.iter(|| serde_json::to_value(black_box(&state)).expect("to value"));
    });
    group.bench_function(format!("schema_{steps}"), |b| {
        b.iter(|| schema::validate_state(black_box(&value)).expect("valid"));
    });
    group.bench_function(format!("checksum_{steps}"), |b| {
        b.iter(|| canonical::document_checksum(black_box(&value)));
    });
    group.bench_function(format!("to_model_{steps}"), |b| {
        b.iter_batched(
            || value.clone(),
            |v| serde_json::from_value::<ChecklistState>(v).expect("to model"),
            BatchSize::LargeInput,
        );
    });
    group.bench_function(format!("value_clone_{steps}"), |b| {
        b.iter(|| black_box(&value).clone());
    });
    group.bench_function(format!("yaml_encode_{steps}"), |b| {
        b.iter(|| YamlCodec.encode(black_box(&value)).expect("encode"));
    });
    group.bench_function(format!("yaml_decode_{steps}"), |b| {
        b.iter(|| YamlCodec.decode(black_box(&yaml)).expect("decode"));
    });
    group.bench_function(format!("json_encode_{steps}"), |b| {
        b.iter(|| JsonCodec.encode(black_box(&value)).expect("encode"));
    });
    group.bench_function(format!("json_decode_{steps}"), |b| {
        b.iter(|| JsonCodec.decode(black_box(&json)).expect("decode"));
    });
    group.finish();
}

fn store_benches(c: &mut Criterion) {
    let rt = runtime();
    let root = bench_root("store");

    let yaml_100 = yaml_document(&rt, root.path(), 100);
    let yaml_1000 = yaml_document(&rt, root.path(), 1000);
    let four_kib: Vec<u8> = yaml_1000.iter().copied().cycle().take(FOUR_KIB).collect();
    bench_floor(
        c,
        root.path(),
        &[("4k", four_kib), ("yaml100", yaml_100), ("yaml1000", yaml_1000)],
    );

    bench_backend::<YamlFileStore>(c, &rt, root.path());
    bench_backend::<JsonFileStore>(c, &rt, root.path());
    bench_backend::<MemoryStore>(c, &rt, root.path());
}

criterion_group!(benches, store_benches, bench_pipeline);
criterion_main!(benches);
