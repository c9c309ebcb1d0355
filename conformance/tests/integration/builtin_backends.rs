//! The conformance suite against every built-in backend this build has: YAML and JSON
//! files (with full and fast durability; cargo features `yaml` and `json`) and memory,
//! each subject built by the shared factory
//! [`checklist_conformance::builtin::subject_for`] in a fresh temp directory.

use checklist_backends::YamlCodec;
use checklist_conformance::builtin::{BuiltinBackend, file_subject, subject_for};
use checklist_conformance::{Subject, conformance_tests};
use checklist_core::config::Durability;

fn subject(backend: BuiltinBackend, durability: Durability) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    subject_for(backend, dir.path(), durability)
        .expect("a subject in a fresh temp dir")
        .keep_alive(dir)
}

#[cfg(feature = "yaml")]
mod yaml {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Yaml, Durability::Full)
    }
    conformance_tests!(subject);
}

#[cfg(feature = "yaml")]
mod yaml_fast {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Yaml, Durability::Fast)
    }
    conformance_tests!(subject);
}

#[cfg(feature = "json")]
mod json {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Json, Durability::Full)
    }
    conformance_tests!(subject);
}

#[cfg(feature = "json")]
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

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Sqlite, Durability::Full)
    }
    conformance_tests!(subject);
}

#[cfg(feature = "sqlite")]
mod sqlite_fast {
    use super::*;
    async fn subject() -> Subject {
        super::subject(BuiltinBackend::Sqlite, Durability::Fast)
    }
    conformance_tests!(subject);
}

#[test]
fn the_case_list_and_the_macro_agree() {
    let cases = checklist_conformance::all_cases();
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
}

#[test]
fn builtin_names_round_trip_and_others_are_refused() {
    for &backend in BuiltinBackend::ALL {
        assert_eq!(backend.name().parse::<BuiltinBackend>(), Ok(backend));
    }
    let refused = "postgres".parse::<BuiltinBackend>().unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("\"postgres\" is not a built-in backend"),
        "{refused}"
    );
}

#[test]
fn a_file_subject_needs_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = file_subject(YamlCodec, &missing, Durability::Full).unwrap_err();
    assert_eq!(error.kind(), "not_initialized", "{error}");
}

/// The number of cases the README and the backends guide state is the number there is:
/// each new case changes it, and a stale count tells a user the wrong thing about what
/// `checklist conformance` checked.
#[test]
fn the_documented_case_counts_are_true() {
    let n = checklist_conformance::all_cases().len();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
    let readme = read("README.md");
    for said in [
        format!("({n} cases)"),
        format!("Running {n} conformance cases"),
        format!("{} passed, 1 failed, {n} total", n - 1),
    ] {
        assert!(
            readme.contains(&said),
            "README.md should say {said:?}: there are {n} cases"
        );
    }
    let guide = read("docs/backends.md");
    let said = format!("({n} of them)");
    assert!(
        guide.contains(&said),
        "docs/backends.md should say {said:?}: there are {n} cases"
    );
}

/// The suite against a real PostgreSQL server: the harness's throwaway cluster (or
/// `CHECKLIST_PG_URL`), every case under a key of its own in one schema. Without a
/// server the cases pass without running and say so once; `CHECKLIST_REQUIRE_PG=1`
/// (set by .ci/run) makes that a failure.
#[cfg(feature = "postgres")]
mod postgres_subjects {
    use std::sync::OnceLock;

    use checklist_conformance::Subject;
    use checklist_conformance::pg_server::{test_server, why_no_server};
    use checklist_conformance::postgres::PostgresRun;
    use checklist_core::config::Durability;

    /// The run every case of this process shares, `None` without a server.
    fn run() -> Option<&'static PostgresRun> {
        static RUN: OnceLock<Option<PostgresRun>> = OnceLock::new();
        RUN.get_or_init(|| match test_server() {
            Some(server) => Some(
                PostgresRun::new(Some(server.url()), &PostgresRun::throwaway_schema())
                    .expect("the harness's server URL is usable"),
            ),
            None => {
                #[allow(clippy::print_stderr, reason = "a skipped test says why, once")]
                {
                    eprintln!(
                        "skipped: the postgres conformance cases need a server: {}",
                        why_no_server().unwrap_or_default()
                    );
                }
                None
            }
        })
        .as_ref()
    }

    pub(super) fn subject(durability: Durability) -> Option<Subject> {
        run().map(|run| run.subject(durability).expect("a postgres subject"))
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    async fn subject() -> Option<Subject> {
        super::postgres_subjects::subject(Durability::Full)
    }
    conformance_tests!(subject, optional);
}

#[cfg(feature = "postgres")]
mod postgres_fast {
    use super::*;
    async fn subject() -> Option<Subject> {
        super::postgres_subjects::subject(Durability::Fast)
    }
    conformance_tests!(subject, optional);
}
