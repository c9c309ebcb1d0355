//! The conformance suite against every built-in backend: YAML and JSON files (with
//! full and fast durability) and memory, each subject built by the shared factory
//! [`checklist_conformance::builtin::subject_for`] in a fresh temp directory.

use checklist_conformance::builtin::{BuiltinBackend, subject_for};
use checklist_conformance::{Subject, conformance_tests};
use checklist_core::config::Durability;

fn subject(backend: BuiltinBackend, durability: Durability) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    subject_for(backend, dir.path(), durability)
        .expect("a subject in a fresh temp dir")
        .keep_alive(dir)
}

mod yaml {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Yaml, Durability::Full)
    }
    conformance_tests!(subject);
}

mod yaml_fast {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Yaml, Durability::Fast)
    }
    conformance_tests!(subject);
}

mod json {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Json, Durability::Full)
    }
    conformance_tests!(subject);
}

mod json_fast {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Json, Durability::Fast)
    }
    conformance_tests!(subject);
}

mod memory {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Memory, Durability::Full)
    }
    conformance_tests!(subject);
}

#[test]
fn the_case_list_and_the_macro_agree() {
    let cases = checklist_conformance::all_cases();
    assert_eq!(cases.len(), 78);
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
}

#[test]
fn builtin_names_round_trip_and_others_are_refused() {
    for backend in BuiltinBackend::ALL {
        assert_eq!(backend.name().parse::<BuiltinBackend>(), Ok(backend));
    }
    let refused = "sqlite".parse::<BuiltinBackend>().unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("\"sqlite\" is not a built-in backend"),
        "{refused}"
    );
}

#[test]
fn a_file_subject_needs_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = subject_for(BuiltinBackend::Yaml, &missing, Durability::Full).unwrap_err();
    assert_eq!(error.kind(), "not_initialized", "{error}");
}
