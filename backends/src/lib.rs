//! # checklist-backends
//!
//! The built-in backends of the checklist state store and the pieces to build more:
//!
//! - `YamlFileStore` (cargo feature `yaml`, `.checklist/state.yaml`) and `JsonFileStore`
//!   (cargo feature `json`, `.checklist/state.json`): one shared file engine,
//!   [`FileStore`], whose writes are atomic and durable (exclusive temp file → fsync →
//!   rename → fsync directory) and never follow a symbolic link. A [`Codec`] is all that
//!   differs between them — and all a new file format needs. The two codecs,
//!   [`YamlCodec`] and [`JsonCodec`], are there without the features: config.yaml and
//!   the sidecar files are YAML, and the memory and sqlite backends keep JSON.
//! - [`MemoryStore`]: the same semantics without a disk, for tests and embedding;
//!   always built.
//! - `SqliteStore` (cargo feature `sqlite`, `.checklist/state.db`): the document in an
//!   embedded SQLite database, written in one transaction per commit; its backups,
//!   quarantine, archive and audit trail stay files beside it.
//! - `PostgresStore` (cargo feature `postgres`): one store shared by many machines
//!   through a PostgreSQL server. Without the feature no PostgreSQL client (nor TLS
//!   stack) is compiled.
//!
//! `yaml` and `json` are the default features; docs/decisions/0028-features-and-publishing.md
//! in the repository says what each feature gates.
//! - [`FileLockProvider`]: exclusive access across processes (`.checklist/.lock`),
//!   with a heartbeat, race-safe breaking of stale locks, and waiters visible.
//! - [`InProcessLockProvider`]: exclusive access among the tasks of one process.
//! - [`builtin_registry`]: a [`BackendRegistry`](checklist_core::BackendRegistry)
//!   (core's: `backend.type` in config.yaml names a factory) with the built-ins
//!   registered; custom backends register by name.
//! - [`init_project`] and [`open_project`]: create and open a project's `.checklist/`.
//! - [`state_home`]: the per-user store of a project whose directory is not writable.
//! - [`vfs`] and [`fault`]: the file-system seam and fault injection through it.
//!
//! ```no_run
//! # async fn demo() -> checklist_core::Result<()> {
//! use checklist_backends::{InitOptions, OpenOptions, builtin_registry, init_project, open_project};
//! use checklist_core::StateStoreExt;
//!
//! let registry = builtin_registry();
//! init_project(".".as_ref(), &InitOptions::default(), &registry).await?;
//! let opened = open_project(".".as_ref(), &registry, &OpenOptions::default()).await?;
//! let state = opened.backend.store.read_existing().await?;
//! println!("revision {}", state.revision);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod blocking;
mod codec;
mod file_store;
mod fs;
mod lock;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod process;
mod project;
mod sidecar;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod sys;

pub use checklist_core::codec::{Codec, CodecError};
pub use codec::json::{JsonCodec, MAX_JSON_VALUES};
pub use codec::yaml::YamlCodec;
#[cfg(feature = "json")]
pub use file_store::JsonFileStore;
#[cfg(feature = "yaml")]
pub use file_store::YamlFileStore;
pub use file_store::{FileStore, FileStoreOptions};
pub use fs::{atomic, crash, fault, vfs};
pub use lock::file::{FileLockProvider, LockEvent};
pub use lock::format::parse_lock_file;
pub use lock::in_process::InProcessLockProvider;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresLockProvider, PostgresOptions, PostgresStore, postgres_backend_factory};
pub use project::config::{MAX_CONFIG_BYTES, load_config, parse_config, write_config};
pub use project::init::{InitOptions, InitOutcome, InitReport, init_project, init_project_with_vfs};
pub use project::layout::{CONFIG_SCHEMA_LINE, EDITOR_SCHEMAS, Layout, STATE_SCHEMA_LINE, STORE_DIR_NAME};
pub use project::registry::{
    OpenOptions, OpenedStore, builtin_registry, builtin_registry_with_vfs, file_backend_factory,
    file_backend_factory_with_vfs, open_project, open_project_with_vfs, refuse_a_changed_backend,
};
pub use project::relocate::{MoveOptions, MoveReport, move_project_store, move_project_store_with_vfs};
pub use project::state_home;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, sqlite_backend_factory, sqlite_backend_factory_with_vfs};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
