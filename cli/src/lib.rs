//! # checklist-cli
//!
//! The `checklist` command (DESIGN §7) as a library, so it can be run in-process —
//! by the binary, and by tests that share one [`BackendRegistry`] (and with it one
//! in-memory store) across several commands.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let app = checklist_cli::App::new();
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let root = dir.path().to_str().unwrap();
//! let code = app.run(["checklist", "--dir", root, "init"], &mut out, &mut err).await;
//! assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
//! # }
//! ```
#![deny(missing_docs)]

use std::ffi::OsString;
use std::io::Write;

use checklist_backends::BackendRegistry;
use clap::Parser;

pub mod args;
mod commands;
pub mod output;

use args::Cli;

/// The `checklist` command with its backend registry.
#[derive(Debug)]
pub struct App {
    registry: BackendRegistry,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// The command with the built-in backends.
    pub fn new() -> Self {
        Self::with_registry(BackendRegistry::with_builtins())
    }

    /// The command with a registry of your own (custom backends).
    pub fn with_registry(registry: BackendRegistry) -> Self {
        Self { registry }
    }

    /// Parses `args` (the first is the program name) and runs the command, writing to
    /// `out` and `err`. Returns the exit code.
    pub async fn run<I, T>(&self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                return if e.use_stderr() {
                    let _ = write!(err, "{}", e.render());
                    2
                } else {
                    let _ = write!(out, "{}", e.render());
                    0
                };
            }
        };
        self.run_parsed(cli, out, err).await
    }

    /// Runs an already parsed command line.
    pub async fn run_parsed(&self, cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
        let (as_json, quiet) = (cli.json, cli.quiet);
        let result = commands::dispatch(cli, &self.registry, err).await;
        let written = match &result {
            Ok(outcome) => output::print_outcome(outcome, as_json, quiet, out),
            Err(error) => output::print_error(error, as_json, out, err),
        };
        match (result, written) {
            (Ok(_), Ok(())) => 0,
            (Err(error), _) => error.exit_code().code(),
            // stdout went away (a closed pipe): the command itself worked, but its
            // output did not arrive.
            (Ok(_), Err(_)) => 1,
        }
    }
}
