//! The subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};

use checklist_backends::state_home::default_state_home;
use checklist_backends::{OpenOptions, OpenedStore, open_project};
use checklist_core::store::Capabilities;
use checklist_core::{BackendRegistry, LockNote, Result};

use crate::args::{
    BackendCommand, BackupCommand, Cli, Command, LockCommand, LockNoteArg, QuarantineCommand, StepCommand,
};
use crate::output::Outcome;

mod archive;
mod audit;
mod backend;
mod backup;
mod change;
mod conformance;
mod diff;
mod export;
mod follow;
mod init;
mod inspect;
mod lock;
mod migrate;
mod quarantine;
mod recover;
mod reference;
mod server;

/// What every subcommand needs.
pub(crate) struct Context<'a> {
    pub(crate) root: PathBuf,
    pub(crate) lock_timeout_ms: Option<u64>,
    /// The note of every lock this command takes (`--lock-note`).
    pub(crate) lock_note: Option<LockNote>,
    pub(crate) quiet: bool,
    pub(crate) as_json: bool,
    /// Whether long work may draw progress on stderr ([`crate::progress::wanted`]).
    pub(crate) progress: bool,
    pub(crate) registry: &'a BackendRegistry,
}

impl Context<'_> {
    /// Opens the project's store, warning when its state will not outlive the process
    /// or lives outside the project.
    pub(crate) async fn open(&self, err: &mut dyn Write) -> Result<OpenedStore> {
        let opened = open_project(
            &self.root,
            self.registry,
            &OpenOptions {
                lock_timeout_ms: self.lock_timeout_ms,
                lock_note: self.lock_note.clone(),
                state_home: default_state_home(),
                ..OpenOptions::default()
            },
        )
        .await?;
        warn_if_ephemeral(
            &opened.config.backend.kind,
            opened.backend.store.info().capabilities,
            self.quiet,
            err,
        );
        if opened.fallback {
            self.warn_fallback(opened.layout.dir(), err);
        }
        Ok(opened)
    }

    /// Says that the state lives in the per-user fallback store, not in the project.
    pub(crate) fn warn_fallback(&self, store_dir: &Path, err: &mut dyn Write) {
        if !self.quiet {
            let _ = writeln!(
                err,
                "warning: {} has no .checklist/ (it was not writable), so its state lives in the per-user store {}",
                self.root.display(),
                store_dir.display()
            );
        }
    }
}

/// Warns that a store which does not outlive the process (its capabilities say so)
/// saves nothing.
pub(crate) fn warn_if_ephemeral(backend: &str, capabilities: Capabilities, quiet: bool, err: &mut dyn Write) {
    if !capabilities.persistent && !quiet {
        let _ = writeln!(
            err,
            "warning: the {backend} backend keeps the state only while this process runs; nothing is saved to disk"
        );
    }
}

pub(crate) async fn dispatch(
    cli: Cli,
    registry: &BackendRegistry,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let root = match cli.dir {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| checklist_core::Error::io("find the current directory", ".", e))?,
    };
    let ctx = Context {
        root,
        lock_timeout_ms: cli.lock_timeout,
        lock_note: cli.lock_note.and_then(LockNoteArg::into_note),
        quiet: cli.quiet,
        as_json: cli.json,
        progress: crate::progress::wanted(cli.json, cli.quiet),
        registry,
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args, err).await,
        Command::Status(args) if args.follow => follow::run(&ctx, args.after, out, err).await,
        Command::Status(_) => inspect::status(&ctx, err).await,
        Command::Verify => inspect::verify(&ctx, err).await,
        Command::Start(args) => change::start(&ctx, args, err).await,
        Command::Step(StepCommand::Complete(args)) => change::complete(&ctx, args, err).await,
        Command::Step(StepCommand::Current { step_id }) => change::current(&ctx, &step_id, err).await,
        Command::Archive(args) => archive::run(&ctx, args, err).await,
        Command::Export(args) => export::run(&ctx, args, err).await,
        Command::Diff(args) => diff::run(&ctx, args, err).await,
        Command::Audit(args) => audit::run(&ctx, args, err).await,
        Command::Lock(LockCommand::Status) => lock::status(&ctx, err).await,
        Command::Lock(LockCommand::Release { lock_id, .. }) => lock::release(&ctx, &lock_id, err).await,
        Command::Migrate(args) => migrate::run(&ctx, args, err).await,
        Command::Backend(BackendCommand::Migrate(args)) => backend::migrate(&ctx, args).await,
        Command::Backup(BackupCommand::List { rebuild }) => backup::list(&ctx, rebuild, err).await,
        Command::Backup(BackupCommand::Create) => backup::create(&ctx, err).await,
        Command::Backup(BackupCommand::Restore { id, revision }) => {
            backup::restore(&ctx, id, revision, err).await
        }
        Command::Backup(BackupCommand::Prune) => backup::prune(&ctx, err).await,
        Command::Quarantine(QuarantineCommand::List) => quarantine::list(&ctx, err).await,
        Command::Quarantine(QuarantineCommand::Show { id }) => quarantine::show(&ctx, &id, err).await,
        Command::Recover(args) => recover::recover(&ctx, args, err).await,
        Command::Reseal => recover::reseal(&ctx, err).await,
        // Streams: one line per case as it finishes.
        Command::Conformance(args) => conformance::run(&ctx, args, out).await,
        Command::Completions { shell } => Ok(reference::completions(shell, registry)),
        Command::Man => reference::man(),
        Command::Schema { file } => Ok(reference::schema(file)),
    }
}
