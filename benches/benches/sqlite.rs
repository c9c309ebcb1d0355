//! The SQLite backend's durable commit, beside raw rusqlite running the same
//! statements and beside the YAML backend, in one run.
//!
//! Benchmarks (criterion ids, `group/function`; `N` in 10, 100, 1000 completed steps):
//!
//! - `sqlite_store/commit_N`: one `SqliteStore::write` (compare-and-swap) committing the
//!   next revision of a state of N steps, `durability: full` (WAL, `synchronous=FULL`).
//! - `sqlite_store/raw_N`: rusqlite alone running the statements the store runs for that
//!   commit, on a database of the same layout and settings — `BEGIN IMMEDIATE`, the
//!   schema cookie, `length(doc)`, `doc`, the upsert of the row, `COMMIT` — with the
//!   document's bytes encoded once beforehand: the floor SQLite sets.
//! - `sqlite_store/raw_sealed_N`: the same, but sealing (revision, checksum, schema) and
//!   JSON-encoding the document in every iteration, as any store keeping this document
//!   must: the floor of the document pipeline plus SQLite.
//! - `sqlite_store/yaml_N`: one `YamlFileStore::write` of the same state.
//!
//! After criterion, `main` runs its own loop ([`run_interleaved`](checklist_benches::run_interleaved)): [`WARM_UP`](checklist_benches::WARM_UP) iterations per subject, then
//! [`MEASURED`](checklist_benches::MEASURED) timed iterations spread over [`ROUNDS`](checklist_benches::ROUNDS) rounds in which every subject
//! runs a block in turn (a slow spell of the shared disk falls on all of them), and
//! prints the nearest-rank p50 and p99 with the ratios of the store's p50 to raw and to
//! raw_sealed. `--test` (as `cargo bench -- --test` passes it) runs each benchmark
//! once and the loop a few iterations. Set `CHECKLIST_BENCH_DIR` to measure another
//! file system. docs/benchmarks.md has the figures.
#![allow(
    clippy::print_stdout,
    reason = "this bench has its own main (harness = false): its report is its output"
)]

use std::path::Path;
use std::time::Duration;

use checklist_backends::{Codec, FileStoreOptions, JsonCodec, SqliteStore, YamlCodec, YamlFileStore};
use checklist_benches::{
    Samples, bench_root, cli_runtime, loadavg, p50_table, run_interleaved, state_with_steps,
};
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Expectation, document};
use criterion::Criterion;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::runtime::Runtime;

/// The state sizes measured, in completed steps.
const STEP_COUNTS: [usize; 3] = [10, 100, 1000];

/// What is measured: one durable commit of the next revision.
enum Subject {
    Store(SqliteStore),
    Yaml(YamlFileStore),
    /// rusqlite alone; `seal` says whether each iteration seals and encodes.
    Raw {
        conn: Connection,
        bytes: Vec<u8>,
        seal: bool,
    },
}

struct Measured {
    id: String,
    steps: usize,
    subject: Subject,
    state: ChecklistState,
    revision: u64,
    samples: Vec<Duration>,
}

/// The layout the store creates (backends/src/sqlite/schema.rs), created here by hand.
const RAW_SCHEMA: &str = "\
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, checksum TEXT NOT NULL, doc BLOB NOT NULL);
CREATE TABLE backups (id TEXT PRIMARY KEY NOT NULL, file TEXT NOT NULL, revision INTEGER NOT NULL, checksum TEXT NOT NULL, size INTEGER NOT NULL, created_at TEXT NOT NULL, reason TEXT NOT NULL);
";

fn sealed_bytes(state: &ChecklistState, revision: u64) -> (Vec<u8>, String) {
    let sealed = document::seal(state, revision, Path::new("state.db")).expect("seal");
    (JsonCodec.encode(&sealed.value).expect("encode"), sealed.checksum)
}

fn raw_commit(conn: &mut Connection, bytes: &[u8], revision: u64, checksum: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let _cookie: i64 = tx.pragma_query_value(None, "schema_version", |row| row.get(0))?;
    let size: Option<i64> = tx
        .query_row("SELECT length(doc) FROM state WHERE id = 1", [], |row| row.get(0))
        .optional()?;
    let stored: Option<Vec<u8>> = tx
        .query_row("SELECT doc FROM state WHERE id = 1", [], |row| row.get(0))
        .optional()?;
    std::hint::black_box((size, stored));
    tx.execute(
        "INSERT INTO state (id, revision, checksum, doc) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, checksum = excluded.checksum, \
         doc = excluded.doc",
        params![
            i64::try_from(revision).expect("a small revision"),
            checksum,
            bytes
        ],
    )?;
    tx.commit()
}

impl Measured {
    /// A subject of `kind` (one of [`KINDS`]) in a new directory `<label>-<steps>`.
    fn new(rt: &Runtime, root: &Path, kind: &str, label: &str, steps: usize) -> Self {
        let dir = root.join(format!("{label}-{steps}"));
        std::fs::create_dir(&dir).expect("create a store directory");
        let state = state_with_steps(steps);
        let options = FileStoreOptions::default();
        let (subject, revision) = match kind {
            "commit" => {
                let store = SqliteStore::open(&dir, options).expect("open the sqlite store");
                let revision = rt
                    .block_on(store.commit(&state, Expectation::Absent))
                    .expect("first write")
                    .revision;
                (Subject::Store(store), revision)
            }
            "yaml" => {
                let store = YamlFileStore::open(&dir, YamlCodec, options).expect("open the yaml store");
                let revision = rt
                    .block_on(store.commit(&state, Expectation::Absent))
                    .expect("first write")
                    .revision;
                (Subject::Yaml(store), revision)
            }
            "raw" | "raw_sealed" => {
                let mut conn = Connection::open(dir.join("state.db")).expect("open the raw database");
                conn.execute_batch(RAW_SCHEMA).expect("create the raw tables");
                let (bytes, checksum) = sealed_bytes(&state, 1);
                raw_commit(&mut conn, &bytes, 1, &checksum).expect("first raw write");
                (
                    Subject::Raw {
                        conn,
                        bytes,
                        seal: kind == "raw_sealed",
                    },
                    1,
                )
            }
            other => panic!("unknown subject kind {other}"),
        };
        Self {
            id: format!("sqlite_store/{kind}_{steps}"),
            steps,
            subject,
            state,
            revision,
            samples: Vec::new(),
        }
    }

    fn commit(&mut self, rt: &Runtime) {
        let expect = Expectation::Revision(self.revision);
        self.revision = match &mut self.subject {
            Subject::Store(store) => {
                rt.block_on(store.commit(&self.state, expect))
                    .expect("commit")
                    .revision
            }
            Subject::Yaml(store) => {
                rt.block_on(store.commit(&self.state, expect))
                    .expect("commit")
                    .revision
            }
            Subject::Raw { conn, bytes, seal } => {
                let next = self.revision + 1;
                if *seal {
                    let (sealed, checksum) = sealed_bytes(&self.state, next);
                    raw_commit(conn, &sealed, next, &checksum).expect("raw commit");
                } else {
                    raw_commit(conn, bytes, next, "sha256:unchanged").expect("raw commit");
                }
                next
            }
        };
    }
}

const KINDS: [&str; 4] = ["commit", "raw", "raw_sealed", "yaml"];

fn criterion_benches(c: &mut Criterion, rt: &Runtime, root: &Path) {
    let mut group = c.benchmark_group("sqlite_store");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for steps in STEP_COUNTS {
        for kind in KINDS {
            let mut subject = Measured::new(rt, root, kind, &format!("criterion-{kind}"), steps);
            group.bench_function(format!("{kind}_{steps}"), |b| b.iter(|| subject.commit(rt)));
        }
    }
    group.finish();
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let rt = cli_runtime();
    let root = bench_root("sqlite");
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &rt, root.path());
    criterion.final_summary();

    let mut subjects: Vec<Measured> = STEP_COUNTS
        .iter()
        .flat_map(|&steps| KINDS.map(|kind| (kind, steps)))
        .map(|(kind, steps)| Measured::new(&rt, root.path(), kind, kind, steps))
        .collect();
    let timed = run_interleaved(
        &mut subjects,
        test_mode,
        |subject| subject.commit(&rt),
        |subject, took| subject.samples.push(took),
    );
    println!(
        "\nOne durable commit (load average {}, {timed} timed iterations each, p50/p99 nearest rank):\n",
        loadavg(),
    );
    let samples: Vec<Samples<'_>> = subjects
        .iter()
        .map(|s| Samples {
            id: &s.id,
            steps: s.steps,
            samples: &s.samples,
        })
        .collect();
    print!("{}", p50_table(&samples, &["raw", "raw_sealed"]));
}
