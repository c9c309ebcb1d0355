//! # checklist-cli
//!
//! The `checklist` command (README "The CLI") as a library, so it can be run in-process —
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

use checklist_backends::builtin_registry;
use checklist_core::BackendRegistry;
use clap::{CommandFactory, FromArgMatches};

pub mod args;
mod commands;
pub mod exit_code;
pub mod output;
mod progress;

use args::Cli;
use output::Outcome;

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
        Self::with_registry(builtin_registry())
    }

    /// The command with a registry of your own (custom backends).
    pub fn with_registry(registry: BackendRegistry) -> Self {
        Self { registry }
    }

    /// The command line as clap knows it, its `--version` naming the backends this
    /// registry holds: `checklist 0.1.0 (backends: json, memory, yaml)`.
    pub fn command(&self) -> clap::Command {
        command(&self.registry)
    }

    /// Parses `args` (the first is the program name) as [`command`](Self::command) has
    /// them.
    ///
    /// # Errors
    /// clap's error (usage, or the help or version text to print).
    pub fn try_parse_from<I, T>(&self, args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = self.command();
        let matches = command.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }

    /// Parses `args` (the first is the program name) and runs the command, writing to
    /// `out` and `err`. Returns the exit code.
    pub async fn run<I, T>(&self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = match self.try_parse_from(args) {
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

    /// Runs an already parsed command line until it finishes or the process is asked
    /// to stop (Ctrl-C, SIGTERM). On a signal the command is abandoned — dropping it
    /// releases any lock it holds and removes its temp files — and the exit code is
    /// 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), so the signal is
    /// never swallowed. A command that runs until stopped
    /// ([`Cli::runs_until_stopped`]) waits for the signal itself and ends cleanly.
    pub async fn run_until_signal(&self, cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
        if cli.runs_until_stopped() {
            return self.run_parsed(cli, out, err).await;
        }
        let stop = stop_signal();
        tokio::pin!(stop);
        tokio::select! {
            code = self.run_parsed(cli, out, err) => code,
            signal = &mut stop => {
                let _ = writeln!(err, "checklist: stopped by {}; the lock was released", signal.name());
                signal.exit_code()
            }
        }
    }

    /// Runs an already parsed command line.
    pub async fn run_parsed(&self, cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
        let (as_json, quiet) = (cli.json, cli.quiet);
        let result = commands::dispatch(cli, &self.registry, out, err).await;
        let written = match &result {
            Ok(outcome) => output::print_outcome(outcome, as_json, quiet, out),
            Err(error) => output::print_error(error, as_json, out, err),
        };
        match (result, written) {
            (Ok(Outcome::Failed { error, code, .. }), _) => {
                let _ = writeln!(err, "error: {error}");
                code
            }
            (Ok(_), Ok(())) => 0,
            (Err(error), _) => exit_code::exit_code(&error).code(),
            // The reader closed the pipe (`checklist status | head -2`): it took what it
            // wanted and the command worked, so it ends quietly, as `grep` and `ripgrep`
            // do.
            (Ok(_), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            // stdout failed otherwise (a full disk): the command itself worked, but its
            // output did not arrive.
            (Ok(_), Err(_)) => 1,
        }
    }
}

/// The command line with `--version` naming the registered backends, taken from the
/// registry so it never disagrees with what `init --backend` accepts.
pub(crate) fn command(registry: &BackendRegistry) -> clap::Command {
    Cli::command().version(format!(
        "{} (backends: {})",
        env!("CARGO_PKG_VERSION"),
        registry.names().join(", ")
    ))
}

/// A request to stop the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit code of a process stopped by it: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on
/// Windows). If the handlers cannot be installed it never resolves, and the default
/// signal behaviour (termination) applies.
pub async fn stop_signal() -> StopSignal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => StopSignal::Interrupt,
            _ = terminate.recv() => StopSignal::Terminate,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => StopSignal::Interrupt,
            Err(_) => std::future::pending().await,
        }
    }
}
