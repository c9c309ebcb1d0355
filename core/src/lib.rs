//! # checklist-core
//!
//! The heart of the checklist state store: the state document model, the storage
//! traits every backend implements, schema validation, the checksum, configuration
//! and the one error type callers handle.
//!
//! - [`ChecklistState`] is the document kept in `.checklist/state.yaml` (or `.json`);
//!   unknown fields survive a load/save round trip.
//! - [`StateStore`] reads (verified) and writes (atomic, compare-and-swap on the
//!   revision) that document. [`LockProvider`] gives exclusive access across tasks and
//!   processes. [`BackupPolicy`] decides which backups to keep.
//! - [`document::seal`] and [`document::unseal`] are the shared save/load pipeline every
//!   backend runs: schema validation, checksum computation and verification.
//! - [`migrate`] upgrades documents of older schema versions through a chain of
//!   one-step migrations, and imports the state files of the original TypeScript
//!   checklist ([`migrate::typescript`]).
//! - [`revision`] finds the revisions a store still holds (its live state's and its
//!   backups') and reads one back verified; [`diff`] gives the JSON Patch (RFC 6902)
//!   and the summary of what changed between two of them.
//! - [`Error`] is the one public error enum, with semantic variants (not found,
//!   unsupported, a precondition failed, a backend's own error with its source); the
//!   CLI maps them to its documented exit codes.
//!
//! ```
//! use checklist_core::{ChecklistState, document};
//!
//! let state = ChecklistState::new();
//! let sealed = document::seal(&state, 1, std::path::Path::new("state.yaml")).unwrap();
//! assert_eq!(sealed.revision, 1);
//! assert!(sealed.checksum.starts_with("sha256:"));
//! let back = document::unseal(sealed.value, std::path::Path::new("state.yaml")).unwrap();
//! assert_eq!(back.revision, 1);
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod audit;
mod backend;
pub mod backup;
pub mod bounded_text;
pub mod canonical;
pub mod codec;
pub mod config;
pub mod coordinator;
pub mod diff;
pub mod document;
mod error;
pub mod follow;
pub mod identity;
pub mod lock;
pub mod migrate;
pub mod model;
pub mod quarantine;
pub mod recovery;
pub mod relocation;
pub mod revision;
pub mod schema;
pub mod secrets;
pub mod store;

pub use audit::{AuditEvent, AuditLog, AuditRecord};
pub use backend::{Backend, BackendFactory, BackendRegistry, OpenContext};
pub use backup::{BackupPolicy, BackupRecord, RollingBackups};
pub use config::Config;
pub use error::{BackendOrigin, CorruptionKind, Error, FoundState, Remedy, Result, Upgrade};
pub use lock::{
    LockCapabilities, LockGuard, LockInfo, LockNote, LockProvider, LockRequest, LockStatus, UnreadableLock,
};
pub use model::ChecklistState;
pub use quarantine::{QuarantineNote, QuarantineRecord};
pub use recovery::Recovery;
pub use relocation::MovedTo;
pub use store::{
    ArchiveStore, AuditTrail, BackedUpWrite, BackupStore, Capabilities, ChangeFeed, ChangeWatch, Committed,
    DocumentStore, DocumentStoreExt, Expectation, KeepBackup, PlaneLocations, Precondition, QuarantineStore,
    StateStore, StateStoreExt, StoreInfo, WriteReceipt, WriteRequest,
};

/// The storage traits and their extensions, for method calls on any store:
/// `use checklist_core::prelude::*;`.
pub mod prelude {
    pub use crate::lock::LockProvider as _;
    pub use crate::store::{
        ArchiveStore as _, AuditTrail as _, BackupStore as _, ChangeFeed as _, DocumentStore as _,
        DocumentStoreExt as _, QuarantineStore as _, StateStoreExt as _,
    };
}
