//! The TOML example backend's integration tests, one binary.

mod conformance;
mod hostile_documents;
mod registry;
