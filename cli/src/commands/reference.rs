//! `checklist completions SHELL`, `checklist man` and `checklist schema state|config`:
//! what shells, `man` and editors need to know about the command and its files
//! (docs/decisions/0029-cli-conventions-and-editor-schemas.md).

use checklist_core::schema::{CONFIG_SCHEMA, STATE_SCHEMA};
use checklist_core::{BackendRegistry, Error, Result};
use clap::CommandFactory;

use crate::args::{Cli, SchemaArg};
use crate::output::Outcome;

/// The completion script for `shell`, for the command as this build has it.
pub(crate) fn completions(shell: clap_complete::Shell, registry: &BackendRegistry) -> Outcome {
    let mut command = crate::command(registry);
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "checklist", &mut script);
    Outcome::Raw(script)
}

/// The manual page in roff. Its version is the crate's alone, not the backends of this
/// build, so docs/checklist.1 is the same whichever features built the binary.
pub(crate) fn man() -> Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::io("render the manual page to", "stdout", e))?;
    Ok(Outcome::Raw(page))
}

/// The JSON Schema of `file`, exactly as the store validates it.
pub(crate) fn schema(file: SchemaArg) -> Outcome {
    let text = match file {
        SchemaArg::State => STATE_SCHEMA,
        SchemaArg::Config => CONFIG_SCHEMA,
    };
    let mut bytes = text.as_bytes().to_vec();
    if !text.ends_with('\n') {
        bytes.push(b'\n');
    }
    Outcome::Raw(bytes)
}
