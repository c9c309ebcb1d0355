//! The CLI's integration tests, one binary running the real `checklist` binary; `processes` (hundreds of processes at once) is its own binary so nothing else runs beside its storms.

mod archive_and_import;
mod backend_changed;
mod backend_migrate;
mod conformance;
mod conventions;
mod diff;
mod end_to_end;
mod environment_faults;
mod follow;
mod hostile_input;
mod large_output;
mod lock_notes;
mod memory_backend;
mod migrate;
mod missing_state;
mod parse_cache;
#[cfg(feature = "postgres")]
mod postgres;
mod secrets;
mod state_dir_fallback;
mod support;
mod symlinks_and_permissions;
mod typescript_import;
