//! The integration tests of checklist-core, one binary (each module a file).

mod migrations;
mod secrets;
mod typescript_import;
