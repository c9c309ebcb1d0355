//! The `postgres` backend's commit beside raw tokio-postgres running the same
//! statements, and its lock's acquire + release, in one run on the harness's server
//! (`checklist_conformance::pg_server`: a throwaway cluster on loopback, or
//! `CHECKLIST_PG_URL`).
//!
//! Benchmarks (`N` in 10, 100, 1000 completed steps):
//!
//! - `postgres/commit_N`: one `PostgresStore` commit (compare-and-swap) of the next
//!   revision of a state of N steps: seal + encode, read the stored bytes (core's cache
//!   spares the parse), then one transaction — `SET LOCAL` limits, lock the row if it
//!   still holds the bytes read (`sha256(doc)`), update it, commit.
//! - `postgres/raw_N`: tokio-postgres alone running those statements on a table of the
//!   same layout, with the document encoded once beforehand: the floor the server sets.
//! - `postgres/raw_sealed_N`: the same, sealing and encoding in every iteration, as any
//!   store keeping this document must.
//! - `postgres/lock`: `PostgresLockProvider` acquire + release of a free lock.
//!
//! `main` runs its own loop ([`run_interleaved`](checklist_benches::run_interleaved)): [`WARM_UP`](checklist_benches::WARM_UP) iterations per subject, then [`MEASURED`](checklist_benches::MEASURED) timed
//! iterations spread over [`ROUNDS`](checklist_benches::ROUNDS) rounds in which every subject runs a block in turn,
//! and prints the nearest-rank p50 and p99 with the ratios of the store's p50 to raw
//! and raw_sealed. `--test` (as `cargo bench -- --test` passes it) runs a few
//! iterations. Without a server it says so and measures nothing. docs/benchmarks.md has
//! the figures.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this bench has its own main (harness = false): its report is its output"
)]

use std::path::Path;
use std::time::Duration;

use checklist_backends::{Codec, JsonCodec, PostgresLockProvider, PostgresOptions, PostgresStore};
use checklist_benches::{Samples, cli_runtime, loadavg, p50_table, run_interleaved, state_with_steps};
use checklist_conformance::pg_server::{test_server, throwaway_schema_name, why_no_server};
use checklist_core::prelude::*;
use checklist_core::{ChecklistState, Config, Expectation, LockRequest, document};
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

/// The state sizes measured, in completed steps.
const STEP_COUNTS: [usize; 3] = [10, 100, 1000];

/// What is measured.
enum Subject {
    Store(PostgresStore),
    /// tokio-postgres alone; `seal` says whether each iteration seals and encodes.
    Raw {
        client: Client,
        bytes: Vec<u8>,
        seal: bool,
    },
    Lock(PostgresLockProvider),
}

struct Measured {
    id: String,
    steps: usize,
    subject: Subject,
    state: ChecklistState,
    revision: u64,
    samples: Vec<Duration>,
}

fn sealed_bytes(state: &ChecklistState, revision: u64) -> Vec<u8> {
    let sealed = document::seal(state, revision, Path::new("postgres")).expect("seal");
    JsonCodec.encode(&sealed.value).expect("encode")
}

/// The statements of one store commit, by hand: the read, then the transaction.
async fn raw_commit(
    client: &mut Client,
    table: &str,
    bytes: &[u8],
    revision: u64,
) -> Result<(), tokio_postgres::Error> {
    let key = "raw".to_owned();
    let stored: Vec<u8> = client
        .query_typed_one(
            &format!("SELECT doc FROM {table} WHERE store = $1"),
            &[(&key, Type::TEXT)],
        )
        .await?
        .get(0);
    let digest = Sha256::digest(&stored).to_vec();
    let transaction = client.transaction().await?;
    transaction
        .batch_execute(
            "SET LOCAL statement_timeout = 30000; SET LOCAL lock_timeout = 30000; \
             SET LOCAL idle_in_transaction_session_timeout = 30000;",
        )
        .await?;
    transaction
        .query_typed_opt(
            &format!("SELECT 1 FROM {table} WHERE store = $1 AND sha256(doc) = $2 FOR UPDATE"),
            &[(&key, Type::TEXT), (&digest, Type::BYTEA)],
        )
        .await?
        .expect("the row still holds the bytes read");
    let revision = i64::try_from(revision).expect("a small revision");
    let checksum = "sha256:raw".to_owned();
    let bytes = bytes.to_vec();
    transaction
        .execute_typed(
            &format!("UPDATE {table} SET revision = $2, checksum = $3, doc = $4, updated_at = now() WHERE store = $1"),
            &[(&key, Type::TEXT), (&revision, Type::INT8), (&checksum, Type::TEXT), (&bytes, Type::BYTEA)],
        )
        .await?;
    transaction.commit().await
}

impl Measured {
    fn new(rt: &Runtime, url: &str, schema: &str, kind: &str, steps: usize) -> Self {
        let state = state_with_steps(steps);
        let options = PostgresOptions::new(format!("bench-{kind}-{steps}"))
            .with_url(url)
            .with_schema(schema);
        let (subject, revision) = match kind {
            "commit" => {
                let store = PostgresStore::open(&options, &Config::default()).expect("open the store");
                let revision = rt
                    .block_on(store.commit(&state, Expectation::Absent))
                    .expect("first write")
                    .revision;
                (Subject::Store(store), revision)
            }
            "raw" | "raw_sealed" => {
                let raw_table = format!("{schema}_raw_{steps}_{kind}");
                let table = format!("\"{schema}\".\"{raw_table}\"");
                let mut client = rt.block_on(options.connect()).expect("connect");
                let bytes = sealed_bytes(&state, 1);
                rt.block_on(async {
                    client
                        .batch_execute(&format!(
                            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                             CREATE TABLE {table} (store text PRIMARY KEY, revision bigint NOT NULL,
                               checksum text NOT NULL, doc bytea NOT NULL,
                               updated_at timestamptz NOT NULL DEFAULT now())"
                        ))
                        .await?;
                    let key = "raw".to_owned();
                    client
                        .execute_typed(
                            &format!(
                                "INSERT INTO {table} (store, revision, checksum, doc) VALUES ($1, 1, '', $2)"
                            ),
                            &[(&key, Type::TEXT), (&bytes, Type::BYTEA)],
                        )
                        .await?;
                    raw_commit(&mut client, &table, &bytes, 1).await
                })
                .expect("create the raw table");
                (
                    Subject::Raw {
                        client,
                        bytes,
                        seal: kind == "raw_sealed",
                    },
                    1,
                )
            }
            "lock" => (
                Subject::Lock(PostgresLockProvider::open(&options).expect("open the lock")),
                0,
            ),
            other => panic!("unknown subject kind {other}"),
        };
        let id = if kind == "lock" {
            "postgres/lock".to_owned()
        } else {
            format!("postgres/{kind}_{steps}")
        };
        Self {
            id,
            steps,
            subject,
            state,
            revision,
            samples: Vec::new(),
        }
    }

    fn run_once(&mut self, rt: &Runtime, schema: &str) {
        let expect = Expectation::Revision(self.revision);
        match &mut self.subject {
            Subject::Store(store) => {
                self.revision = rt
                    .block_on(store.commit(&self.state, expect))
                    .expect("commit")
                    .revision;
            }
            Subject::Raw { client, bytes, seal } => {
                let next = self.revision + 1;
                let table = format!(
                    "\"{schema}\".\"{schema}_raw_{}_{}\"",
                    self.steps,
                    if *seal { "raw_sealed" } else { "raw" }
                );
                let bytes = if *seal {
                    sealed_bytes(&self.state, next)
                } else {
                    bytes.clone()
                };
                rt.block_on(raw_commit(client, &table, &bytes, next))
                    .expect("raw commit");
                self.revision = next;
            }
            Subject::Lock(locks) => {
                rt.block_on(async {
                    let guard = locks.acquire(&LockRequest::default()).await?;
                    guard.release().await
                })
                .expect("acquire and release");
            }
        }
    }
}

const KINDS: [&str; 3] = ["commit", "raw", "raw_sealed"];

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let Some(server) = test_server() else {
        eprintln!(
            "postgres benchmarks skipped: {}",
            why_no_server().unwrap_or_default()
        );
        return;
    };
    let rt = cli_runtime();
    let schema = throwaway_schema_name();
    let mut subjects: Vec<Measured> = STEP_COUNTS
        .iter()
        .flat_map(|&steps| KINDS.map(|kind| (kind, steps)))
        .map(|(kind, steps)| Measured::new(&rt, server.url(), &schema, kind, steps))
        .collect();
    subjects.push(Measured::new(&rt, server.url(), &schema, "lock", 0));
    let timed = run_interleaved(
        &mut subjects,
        test_mode,
        |subject| subject.run_once(&rt, &schema),
        |subject, took| subject.samples.push(took),
    );
    println!(
        "\nOne commit on PostgreSQL (loopback; load average {}, {timed} timed iterations each, p50/p99 nearest rank):\n",
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
    if let Err(error) = server.drop_schema(&schema) {
        eprintln!("could not drop the bench schema {schema}: {error}");
    }
}
