//! The integration tests of checklist-backends, one binary: each module a concern, `common` their shared set-up.

mod common;
mod coordinator_faults;
mod environment_faults;
mod fault_injection;
mod file_store;
mod hostile_documents;
mod lock_faults;
mod migration;
#[cfg(feature = "postgres")]
mod postgres;
mod power_loss;
mod properties;
mod recovery_faults;
// Kills a child process with SIGABRT and fills the disk through rustix: unix only.
#[cfg(unix)]
mod relocation;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store_faults;
mod symlinks_and_permissions;
mod transaction_faults;
