//! The command line (README "The CLI", with its exit codes).

use std::ffi::OsStr;
use std::path::PathBuf;

use checklist_core::LockNote;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

/// checklist: the workflow state store in a terminal.
///
/// Exit codes: 0 ok, 1 other error (and a failed conformance case), 2 usage, 3 not
/// initialized, 4 lock timeout, 5 state corrupted, 6 conflict, 7 secret detected,
/// 8 unsupported schema version.
#[derive(Debug, Parser)]
#[command(name = "checklist", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Project root holding .checklist/ (default: the current directory).
    #[arg(long, global = true, env = "CHECKLIST_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for the store's lock, in milliseconds (overrides config.yaml).
    #[arg(long, global = true, value_name = "MS")]
    pub lock_timeout: Option<u64>,

    /// Why this run takes the store's lock, shown with the holder by `lock status`,
    /// another command's lock timeout and the audit records (one line, at most 200
    /// characters, secrets redacted; empty means none). Carried by every command that
    /// changes the store.
    #[arg(long, global = true, env = "CHECKLIST_LOCK_NOTE", value_name = "TEXT", value_parser = LockNoteParser)]
    pub lock_note: Option<LockNoteArg>,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command runs until it is stopped, so Ctrl-C or SIGTERM is its normal
    /// end (exit 0) rather than an interruption (`status --follow`).
    pub fn runs_until_stopped(&self) -> bool {
        matches!(&self.command, Command::Status(StatusArgs { follow: true, .. }))
    }
}

/// A `--lock-note` (or `CHECKLIST_LOCK_NOTE`) as given: an empty one is no note, so a CI
/// job that sets the variable from one of its own that is unset still runs.
#[derive(Debug, Clone)]
pub struct LockNoteArg(Option<LockNote>);

impl LockNoteArg {
    /// The note, if one was given.
    pub fn into_note(self) -> Option<LockNote> {
        self.0
    }
}

/// Checks a lock note as [`LockNote::new`] does, without echoing it in the error as
/// clap would: a note refused for its length may carry a secret.
#[derive(Debug, Clone, Copy)]
struct LockNoteParser;

impl TypedValueParser for LockNoteParser {
    type Value = LockNoteArg;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<LockNoteArg, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("{message} (--lock-note, CHECKLIST_LOCK_NOTE)\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the lock note is not valid UTF-8".to_owned()))?;
        if text.is_empty() {
            return Ok(LockNoteArg(None));
        }
        LockNote::new(text)
            .map(|note| LockNoteArg(Some(note)))
            .map_err(|error| refuse(error.to_string()))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create .checklist/ in the project (an existing store is kept as it is).
    Init(InitArgs),
    /// Show the active instance, its steps, the revision, integrity and the lock holder
    /// (with --follow: one line per commit as it happens, until Ctrl-C).
    Status(StatusArgs),
    /// Check the state's integrity without changing anything (exit 5 if corrupted).
    Verify,
    /// Start an instance of a template.
    Start(StartArgs),
    /// Record step progress.
    #[command(subcommand)]
    Step(StepCommand),
    /// Move the finished instance to archive/ and index it in history.yaml.
    Archive(ArchiveArgs),
    /// Write the verified state as YAML or JSON.
    Export(ExportArgs),
    /// Show what changed between two revisions still held (the live state's and the
    /// backups'); with --json, a JSON Patch (RFC 6902) from REV_A to REV_B.
    Diff(DiffArgs),
    /// Show the audit trail (all rotated parts, oldest first).
    Audit(AuditArgs),
    /// Inspect or break the store's lock.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Upgrade a state file of an older schema version (the original is kept as a backup).
    Migrate(MigrateArgs),
    /// Move the store to another backend (yaml, json, sqlite, postgres, a custom one).
    #[command(subcommand)]
    Backend(BackendCommand),
    /// List, take, restore or prune backups of the state.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// List or show the corrupt documents recovery kept (never deleted by checklist).
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Recover a corrupt state: quarantine it and restore the newest backup that verifies.
    Recover(RecoverArgs),
    /// Accept a deliberate hand edit (schema valid, stale checksum) by writing a fresh checksum.
    Reseal,
    /// Check that this file system gives the store its guarantees: run the conformance
    /// suite against a built-in backend in a new work directory inside --dir (exit 1 if
    /// any case fails).
    Conformance(ConformanceArgs),
    /// Print the shell completion script for SHELL (e.g. `checklist completions bash >
    /// ~/.local/share/bash-completion/completions/checklist`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `checklist man | man -l -`; also docs/checklist.1).
    Man,
    /// Print the JSON Schema of state.yaml or config.yaml (the one their first line
    /// names for editors).
    Schema {
        /// Which file's schema.
        #[arg(value_enum)]
        file: SchemaArg,
    },
}

/// `checklist schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaArg {
    /// The state document (state.yaml, state.json, exports).
    State,
    /// The store configuration (config.yaml).
    Config,
}

/// `checklist status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one line per commit as it happens (with --json, one JSON document per
    /// line: revision, transaction id, operation, who) until Ctrl-C, which ends it with
    /// exit code 0.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: start after this revision, printing the commits since then that
    /// the audit trail still holds first (default: from the current revision).
    #[arg(long, value_name = "REV", requires = "follow")]
    pub after: Option<u64>,
}

/// `checklist conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The backend to check: yaml, json, sqlite or memory (default: backend.type of the
    /// project's config.yaml if there is one, else yaml).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Keep the directories of failed cases in the work directory for inspection
    /// (by default every case's directory is removed as soon as it finishes, so a
    /// run on a nearly full disk does not take its last free space).
    #[arg(long)]
    pub keep_failed: bool,
    /// For `--backend postgres`: the server (the suite runs in a throwaway schema it
    /// drops afterwards; `--key` is not used).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `checklist migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Show what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// `checklist backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the backups, oldest first.
    List {
        /// Rebuild the backup index (.backup/manifest.yaml) from the backup files first.
        #[arg(long)]
        rebuild: bool,
    },
    /// Back up the current state now.
    Create,
    /// Replace the state with the backup ID, or with the backup holding --revision REV
    /// (the replaced state is backed up first).
    Restore {
        /// The backup to restore, as `checklist backup list` shows it.
        #[arg(required_unless_present = "revision", conflicts_with = "revision")]
        id: Option<String>,
        /// Restore the backup holding this revision instead of naming its id.
        #[arg(long, value_name = "REV")]
        revision: Option<u64>,
    },
    /// Delete the backups the retention policy (config.yaml `backup:`) no longer keeps.
    Prune,
}

/// `checklist quarantine …`.
#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the quarantined documents, oldest first, with why each was kept.
    List,
    /// Write the quarantined document ID to stdout, byte for byte.
    Show {
        /// The document, as `checklist quarantine list` shows it.
        id: String,
    },
}

/// `checklist recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Restore this backup instead of the newest one that verifies.
    #[arg(long, value_name = "BACKUP_ID", conflicts_with = "reset")]
    pub from: Option<String>,
    /// Start again from an empty state (records dataLoss: true); the corrupt file is kept in quarantine/.
    #[arg(long)]
    pub reset: bool,
}

/// `checklist audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Show only the last N records.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// `checklist lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show who holds the lock and who waits for it.
    Status,
    /// Break the lock held under LOCK_ID (printed by every lock-timeout error).
    Release {
        /// Required: breaking someone's lock is never the default.
        #[arg(long, required = true)]
        force: bool,
        /// The id of the lock to break.
        lock_id: String,
    },
}

/// `checklist backend …`.
#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Move the store to the backend TYPE: its state at the same revision, the audit
    /// trail, backups, archive and quarantine; config.yaml names the new store last,
    /// and the old one is kept as it was, marked as moved. Run it again after an
    /// interruption to finish the move.
    Migrate(BackendMigrateArgs),
}

/// `checklist backend migrate`.
#[derive(Debug, Args)]
pub struct BackendMigrateArgs {
    /// The backend to move the store to.
    #[arg(long, value_name = "TYPE")]
    pub to: String,
    /// The backend whose state in this store directory to move, when config.yaml no
    /// longer names it (its backend.type was edited by hand); default the one it names.
    #[arg(long, value_name = "TYPE")]
    pub from: Option<String>,
    /// Say what would move, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where a `postgres` store lives (with --to postgres).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `checklist init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Backend of the new store: yaml, json, sqlite, memory or a registered custom name.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// On an existing store, create whatever part of the layout is missing (nothing
    /// existing is overwritten).
    #[arg(long)]
    pub force: bool,
    /// Start the new store from this file, written by `checklist export` (YAML, or JSON
    /// when it ends in .json); it must verify. Refused if a state already exists.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Where a `postgres` store lives.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Where a `postgres` store lives (`--backend postgres`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// postgres: the server, `postgres://user@host:port/db[?sslmode=…]` (default:
    /// CHECKLIST_DATABASE_URL); the PG* variables and ~/.pgpass fill in what it leaves
    /// out. A password in it is used and never written down.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// postgres: the store key; every checkout that shares the state uses the same one.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// postgres: the schema holding the tables (default checklist).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
    /// postgres: never create the schema or its tables (for a role that may only use
    /// them).
    #[arg(long)]
    pub no_create_schema: bool,
}

impl ServerArgs {
    /// Whether any of these was given.
    pub fn any(&self) -> bool {
        self.database_url.is_some() || self.key.is_some() || self.schema.is_some() || self.no_create_schema
    }
}

/// `checklist start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The template to run.
    #[arg(long, value_name = "ID")]
    pub template: String,
    /// The template's version.
    #[arg(long, value_name = "VER")]
    pub template_version: Option<String>,
    /// The step to begin with.
    #[arg(long, value_name = "STEP_ID")]
    pub step: Option<String>,
}

/// `checklist step …`.
#[derive(Debug, Subcommand)]
pub enum StepCommand {
    /// Record a step as completed.
    Complete(CompleteArgs),
    /// Set the step the instance is on.
    Current {
        /// The step.
        step_id: String,
    },
}

/// `checklist step complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The step.
    pub step_id: String,
    /// How the step ended.
    #[arg(long, value_enum, default_value_t = ResultArg::Success)]
    pub result: ResultArg,
    /// How long the step took, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub duration_ms: u64,
    /// A command the step ran.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// The command's exit code.
    #[arg(long, value_name = "N", requires = "command", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,
    /// What the command printed on stdout.
    #[arg(long, value_name = "S", requires = "command")]
    pub stdout: Option<String>,
    /// What the command printed on stderr.
    #[arg(long, value_name = "S", requires = "command")]
    pub stderr: Option<String>,
}

/// `--result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultArg {
    /// The step succeeded.
    Success,
    /// The step failed (it can be completed again).
    Failure,
    /// The step was skipped.
    Skipped,
}

/// `checklist archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Finish an active or paused instance this way while archiving it (a finished one
    /// is archived as it finished).
    #[arg(long = "as", value_enum, value_name = "STATUS")]
    pub finish_as: Option<FinishArg>,
    /// List the archived instances instead of archiving.
    #[arg(long, conflicts_with = "finish_as")]
    pub list: bool,
    /// Print the archived instance ID (verified) instead of archiving.
    #[arg(long, value_name = "ID", conflicts_with_all = ["finish_as", "list"])]
    pub show: Option<String>,
}

/// `--as`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FinishArg {
    /// The instance finished successfully.
    Completed,
    /// The instance finished unsuccessfully.
    Failed,
}

/// `checklist export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The format (default yaml, or json with --json).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `checklist diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The revision to compare from (default: the newest backup's).
    #[arg(value_name = "REV_A")]
    pub from: Option<u64>,
    /// The revision to compare to (default: the live state's).
    #[arg(value_name = "REV_B", requires = "from")]
    pub to: Option<u64>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}
