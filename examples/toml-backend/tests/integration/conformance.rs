//! The whole conformance suite against the TOML backend, through the same subject
//! factory as the built-in file backends (`checklist_conformance::builtin::file_subject`).

use checklist_conformance::builtin::file_subject;
use checklist_conformance::{Subject, conformance_tests};
use checklist_core::config::Durability;
use checklist_toml_backend::TomlCodec;

fn toml_subject(durability: Durability) -> Subject {
    let dir = tempfile::tempdir().expect("a temp dir");
    file_subject(TomlCodec, dir.path(), durability)
        .expect("open the store")
        .keep_alive(dir)
}

mod toml_full {
    use super::*;
    async fn subject() -> Subject {
        toml_subject(Durability::Full)
    }
    conformance_tests!(subject);
}

mod toml_fast {
    use super::*;
    async fn subject() -> Subject {
        toml_subject(Durability::Fast)
    }
    conformance_tests!(subject);
}
