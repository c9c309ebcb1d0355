//! The conformance suite on the built-in backends, the mutants it must catch, and the coordinator's rollback under mocks: one binary.

mod builtin_backends;
mod contracts;
mod coordinator_rollback_mocks;
mod holder;
// The mutants break a correct YAML-file store, one behaviour each.
#[cfg(feature = "yaml")]
mod mutants;
#[cfg(feature = "postgres")]
mod pg_server;
