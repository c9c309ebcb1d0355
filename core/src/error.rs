//! The one public error type of the store and its mapping to exit codes.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lock::info::LockInfo;
use crate::store::expectation::Expectation;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a stored document failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptionKind {
    /// The bytes are not a readable document at all (bad syntax, empty, not UTF-8).
    ParseError,
    /// The document parses but breaks `schemas/state.schema.json`.
    SchemaInvalid,
    /// The document is valid but its `checksum` does not match its content.
    ChecksumMismatch,
    /// There is no document, although the store holds backups or an audit trail of
    /// committed revisions: it was deleted (or is being replaced by a program that
    /// does not replace it atomically).
    Missing,
}

impl CorruptionKind {
    /// The snake_case name used in files, JSON output and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "parse_error",
            Self::SchemaInvalid => "schema_invalid",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::Missing => "missing",
        }
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can still be done about a state that was not repaired, as data: the CLI names
/// the command for each, a library caller offers its own way to do it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    /// Restore the newest backup that verifies (recovery).
    RestoreNewestBackup,
    /// Accept a hand edit whose only fault is its checksum.
    Reseal,
    /// Repair the document by hand, then reseal it.
    RepairByHandThenReseal,
    /// Put the state file back from a copy of one's own.
    PutBackACopy,
    /// Start again from an empty state above every committed revision, keeping the
    /// damaged bytes in quarantine.
    Reset,
}

impl Remedy {
    /// What the remedy does, as a clause for messages that do not name a command.
    pub fn describe(self) -> &'static str {
        match self {
            Self::RestoreNewestBackup => "restoring the newest backup that verifies",
            Self::Reseal => "resealing the document, to accept an edit whose only fault is its checksum",
            Self::RepairByHandThenReseal => "repairing the document by hand, then resealing it",
            Self::PutBackACopy => "putting the state file back from a copy",
            Self::Reset => "starting again from an empty state above every committed revision",
        }
    }

    /// What can be done about a stored state that fails verification with `kind`.
    pub fn for_corruption(kind: CorruptionKind) -> &'static [Remedy] {
        match kind {
            CorruptionKind::ChecksumMismatch => &[Self::RestoreNewestBackup, Self::Reseal],
            CorruptionKind::Missing => &[Self::RestoreNewestBackup],
            CorruptionKind::ParseError | CorruptionKind::SchemaInvalid => {
                &[Self::RestoreNewestBackup, Self::RepairByHandThenReseal]
            }
        }
    }
}

/// What a document of a schema version this build cannot read can become, as its
/// error says it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "upgrade")]
pub enum Upgrade {
    /// A migration upgrades it to schema `to`, keeping the original as a backup.
    Migration {
        /// The schema version it becomes.
        to: String,
    },
    /// The TypeScript checklist wrote it; a migration imports it into schema `to`.
    Import {
        /// The schema version it becomes.
        to: String,
    },
    /// The TypeScript checklist wrote it, at a version this build does not import.
    NotImported,
    /// A newer checklist, which reads schema `major`.x, wrote it.
    Newer {
        /// The major schema version that reads it.
        major: u64,
    },
    /// Its version is not MAJOR.MINOR.PATCH.
    NotAVersion,
    /// No migration leads from it to this build's format.
    NoPath,
}

/// Every error the store reports to its callers.
///
/// Each message is one sentence that names the file, store or server involved and what
/// happened to it. Which command to run next is the CLI's to say
/// (`cli/src/exit_code.rs`); what a store can still do about damage is data
/// ([`Remedy`]). Backends keep their own detailed errors internally and map them into
/// this enum.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No store exists where one was expected.
    #[error("no checklist store at {}", path.display())]
    NotInitialized {
        /// The directory or file that was expected to hold the store.
        path: PathBuf,
    },

    /// The lock could not be acquired before the timeout.
    #[error("{}", lock_timeout_message(resource, *waited, holder.as_deref()))]
    LockTimeout {
        /// The lock that was contended, as its provider names it
        /// ([`LockProvider::resource`](crate::LockProvider::resource)).
        resource: String,
        /// How long the caller waited.
        waited: Duration,
        /// Who held the lock when the wait gave up, when that could be read.
        holder: Option<Box<LockInfo>>,
    },

    /// The caller's lock was broken or taken over while it held it.
    #[error(
        "the lock {lock_id} on {resource} was lost (broken as stale or force-released) before this write; \
         nothing was written, run the command again"
    )]
    LockLost {
        /// The lock, as its provider names it.
        resource: String,
        /// The id of the lock that was lost.
        lock_id: String,
    },

    /// A compare-and-swap write found a different revision than expected.
    #[error(
        "write to {} refused: expected {expected} but found {}; another writer changed the state first, \
         reload and try again",
        path.display(),
        found.map_or_else(|| "no state".to_owned(), |r| format!("revision {r}"))
    )]
    Conflict {
        /// The state file (or in-memory store name).
        path: PathBuf,
        /// What the writer expected.
        expected: Expectation,
        /// The revision actually stored (`None`: no state).
        found: Option<u64>,
    },

    /// A stored document failed verification; nothing was changed.
    /// [`Remedy::for_corruption`] says what can be done about it; see
    /// [`Error::Unrecovered`] for one that recovery could not repair.
    #[error("{}; it was left as it is", corrupted_message(path, *kind, detail))]
    Corrupted {
        /// How verification failed.
        kind: CorruptionKind,
        /// The corrupted file.
        path: PathBuf,
        /// What exactly is wrong, with a location where one is known.
        detail: String,
    },

    /// A corrupt or missing state that was not repaired: no backup verifies, automatic
    /// recovery is off, or the repair asked for does not apply (a reseal of a document
    /// that does not parse). Nothing was changed.
    #[error("{}", corrupted_message(path, *kind, detail))]
    Unrecovered {
        /// How verification failed.
        kind: CorruptionKind,
        /// The corrupted (or missing) file.
        path: PathBuf,
        /// What is wrong and what was tried.
        detail: String,
        /// What can still be done, most likely first; empty when only the caller knows.
        remedies: Vec<Remedy>,
    },

    /// The state document is missing from a store that holds backups or an audit trail
    /// of committed revisions: it was deleted, or a program that does not replace it
    /// atomically is replacing it right now.
    #[error(
        "the state file {} is missing (deleted, or being replaced by another program) although {evidence}; \
         nothing was changed",
        path.display()
    )]
    StateMissing {
        /// The missing state file (or store location).
        path: PathBuf,
        /// What the store holds of the state's history (backups, the audit trail).
        evidence: String,
    },

    /// A document about to be written breaks the schema; nothing was written.
    #[error(
        "refusing to write {}: the state is invalid at {field_path}: {message}; nothing was written",
        path.display()
    )]
    SchemaInvalid {
        /// The file that would have been written.
        path: PathBuf,
        /// JSON pointer of the offending field (`/` for the root).
        field_path: String,
        /// What the schema requires there.
        message: String,
    },

    /// A secret was found in a document about to be written; nothing was written.
    #[error(
        "refusing to write {}: the field {field_path} looks like a secret; remove it or set `secrets.mode` in config.yaml",
        path.display()
    )]
    SecretDetected {
        /// The file that would have been written.
        path: PathBuf,
        /// JSON pointer of the field; never the secret itself.
        field_path: String,
    },

    /// The document's `schemaVersion` cannot be read by this build, or the document
    /// was written by the TypeScript checklist (`typescript`), whose files are imported
    /// by `checklist migrate` and never read as they are.
    #[error("{}", unsupported_version_message(path, found, supported, upgrade))]
    UnsupportedVersion {
        /// The file whose version is unsupported.
        path: PathBuf,
        /// The version found in the file.
        found: String,
        /// The version(s) this build reads.
        supported: String,
        /// Whether its shape says the TypeScript checklist wrote it
        /// ([`migrate::typescript`](crate::migrate::typescript)).
        typescript: bool,
        /// What it can become.
        upgrade: Upgrade,
    },

    /// `config.yaml` is invalid.
    #[error("invalid configuration in {} at {field}: {message}; fix that field or delete the file to use the defaults", path.display())]
    InvalidConfig {
        /// The configuration file.
        path: PathBuf,
        /// JSON pointer of the offending field (`/` for the whole file).
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// A backend was asked for (in `backend.type`, or by the caller) that nobody
    /// registered.
    #[error(
        "unknown backend {name:?} (from {origin}); registered backends: {}",
        registered.join(", ")
    )]
    UnknownBackend {
        /// The requested backend name.
        name: String,
        /// Where the name came from: what to change.
        origin: BackendOrigin,
        /// The names that are registered.
        registered: Vec<String>,
    },

    /// The store's configuration names a backend that holds no state, while another
    /// backend's state is in the store directory: what a hand edit of `backend.type`
    /// looks like. Nothing was changed: neither state was read as the other's, and no
    /// new state was started.
    #[error(
        "{} names the {configured} backend, which holds no state, but {} holds the {} backend's state{}; \
         nothing was changed",
        config.display(),
        found.location,
        found.backend,
        found.revision.map(|r| format!(" (revision {r})")).unwrap_or_default()
    )]
    BackendChanged {
        /// The configuration file naming `configured`.
        config: PathBuf,
        /// The backend it names.
        configured: String,
        /// The other backend's state that was found.
        found: Box<FoundState>,
    },

    /// The state was moved to another store (`checklist backend migrate`); this one is
    /// kept as it was and takes no more writes.
    #[error(
        "{} was moved to the {} backend at {} (revision {}, {}); it is kept as it was and takes no more \
         writes",
        path.display(),
        moved_to.backend,
        moved_to.location,
        moved_to.revision,
        moved_to.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    StoreMoved {
        /// The store that was moved out of.
        path: PathBuf,
        /// Where its state went.
        moved_to: Box<crate::relocation::moved::MovedTo>,
    },

    /// A path inside the store is a symbolic link; the store never follows one.
    #[error(
        "refusing to follow the symbolic link {}: files inside .checklist/ must be regular files and directories; \
         replace the link with the file it points to",
        path.display()
    )]
    SymlinkRefused {
        /// The symbolic link.
        path: PathBuf,
    },

    /// The file system holding the store lacks something the store needs (hard links
    /// on FAT and exFAT, say); nothing was changed.
    #[error(
        "the file system at {} does not support {feature}, which {needed_for}; nothing was changed: keep \
         the store on a file system that does (ext4, XFS, btrfs, APFS, NTFS)",
        path.display()
    )]
    FileSystemLacks {
        /// Where the store found it missing.
        path: PathBuf,
        /// What is missing (`hard links`).
        feature: String,
        /// What the store needs it for, as a clause ("the lock needs to create its file
        /// atomically").
        needed_for: String,
    },

    /// The index that lists a store's backups is damaged; the backups themselves are
    /// intact, and rebuilding the index lists them again
    /// ([`BackupStore::rebuild_backup_index`](crate::BackupStore::rebuild_backup_index)).
    #[error("the backup index {location} is damaged ({detail}); the backups themselves are intact")]
    BackupIndexDamaged {
        /// The index, as its store names it.
        location: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A file is larger than the store is willing to read.
    #[error(
        "{} is {size} bytes, over the {limit}-byte limit for this file; nothing was read or written: move it \
         aside and restore a good copy (for the state file, `limits.maxStateBytes` in config.yaml raises the \
         limit)",
        path.display()
    )]
    TooLarge {
        /// The oversized file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// Something asked for by id is not there: a backup, an archived instance, a
    /// quarantined document.
    #[error("there is no {what} {id:?} in {location}")]
    NotFound {
        /// What was looked for (`backup`, `archived instance`, `quarantined document`).
        what: &'static str,
        /// The id asked for.
        id: String,
        /// The store, as its location names it.
        location: String,
    },

    /// A revision asked for is not held by the store: neither the live state nor any
    /// listed backup holds it (docs/decisions/0026-diff-and-revisions.md). The message
    /// names the oldest revision held.
    #[error("{}", revision_not_held_message(*revision, held, location))]
    RevisionNotHeld {
        /// The revision asked for.
        revision: u64,
        /// The revisions the store holds (its live state's and its backups'), oldest
        /// first, each once.
        held: Vec<u64>,
        /// The store, as its location names it.
        location: String,
    },

    /// The backend does not do what was asked; nothing was changed.
    #[error("the {backend} backend at {location} does not support {operation}; nothing was changed")]
    Unsupported {
        /// What was asked, as a noun phrase (`rebuilding the backup index`).
        operation: String,
        /// The backend's registered name.
        backend: String,
        /// The store, as its location names it.
        location: String,
    },

    /// A conditional write or quarantine found the store changed since the caller read
    /// it; nothing was changed.
    #[error(
        "{} changed while this command was working on it: it expected {expected} but found {found}; \
         nothing was changed, run the command again",
        path.display()
    )]
    PreconditionFailed {
        /// The store, as its location names it.
        path: PathBuf,
        /// What the caller expected to find.
        expected: String,
        /// What it found instead.
        found: String,
    },

    /// A backend's own failure (a database's error, a driver's), with its source.
    #[error("the {backend} backend could not {operation} {location}: {source}")]
    Backend {
        /// The backend's registered name.
        backend: String,
        /// The operation, as a verb phrase (`open`, `commit to`).
        operation: String,
        /// The store, as its location names it.
        location: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An operation on the state is not allowed in its current condition (a domain
    /// rule: nested transactions, an unsafe id).
    #[error("{message}")]
    InvalidOperation {
        /// What was refused and why, in one sentence.
        message: String,
    },

    /// The change function of a transaction panicked; the state was left as it was.
    #[error("the change panicked ({message}); the state was left as it was")]
    Panicked {
        /// The panic's message.
        message: String,
    },

    /// An operating-system I/O error.
    ///
    /// The message ends with what to do about the condition the operating system
    /// reported: a full disk, a read-only file system, a permission refused, a file
    /// removed while in use, something other than a regular file in its place.
    #[error("could not {op} {}: {source}; {}", path.display(), io_advice(source.kind()))]
    Io {
        /// The operation, as a verb phrase (`read`, `rename`, `fsync the directory`…).
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Where the name of a backend came from, carried with it so that an error about the
/// name points at what to change (docs/decisions/0029-cli-conventions-and-editor-schemas.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendOrigin {
    /// `backend.type` of this config.yaml.
    ConfigFile(PathBuf),
    /// The caller named it; the text says where, in the caller's words (the CLI:
    /// `the --backend option`).
    Requested(String),
}

impl BackendOrigin {
    /// The file the name was read from, if it came from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::ConfigFile(path) => Some(path),
            Self::Requested(_) => None,
        }
    }
}

impl fmt::Display for BackendOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConfigFile(path) => write!(f, "backend.type in {}", path.display()),
            Self::Requested(by) => f.write_str(by),
        }
    }
}

/// A state of another backend, found in a store directory whose config.yaml names a
/// backend without one ([`Error::BackendChanged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundState {
    /// The backend whose state it is.
    pub backend: String,
    /// Where it is, as its store names it.
    pub location: String,
    /// Its revision, where it verifies.
    pub revision: Option<u64>,
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The [`Error::PreconditionFailed`] of an import whose id a store already lists
    /// ([`BackupStore::import_backup`](crate::BackupStore::import_backup),
    /// [`QuarantineStore::import_quarantined`](crate::QuarantineStore::import_quarantined)):
    /// an import never replaces what is kept.
    pub fn already_listed(what: &str, id: &str, location: impl Into<PathBuf>) -> Self {
        Self::PreconditionFailed {
            path: location.into(),
            expected: format!("no {what} {id:?}"),
            found: "one listed already, kept as it is".to_owned(),
        }
    }

    /// Builds an [`Error::InvalidOperation`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidOperation {
            message: message.into(),
        }
    }

    /// Whether this is a failure to get at a file (a refused permission, an I/O error)
    /// rather than a verdict on the file. It says nothing about the file's content and a
    /// retry may read it fine, so whoever would pass over a file that fails to load (recovery
    /// choosing a backup, an index rebuild) must stop and report these instead. A missing
    /// file is not one: it is gone.
    ///
    /// ```
    /// use checklist_core::Error;
    /// use std::io;
    ///
    /// let refused = Error::io("read", "b.yaml", io::Error::from(io::ErrorKind::PermissionDenied));
    /// let gone = Error::io("read", "b.yaml", io::Error::from(io::ErrorKind::NotFound));
    /// assert!(refused.is_access_failure());
    /// assert!(!gone.is_access_failure());
    /// ```
    pub fn is_access_failure(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() != io::ErrorKind::NotFound)
    }

    /// A stable snake_case name of the variant, for JSON output and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotInitialized { .. } => "not_initialized",
            Self::LockTimeout { .. } => "lock_timeout",
            Self::LockLost { .. } => "lock_lost",
            Self::Conflict { .. } => "conflict",
            Self::Corrupted { .. } => "corrupted",
            Self::Unrecovered { .. } => "unrecovered",
            Self::StateMissing { .. } => "state_missing",
            Self::SchemaInvalid { .. } => "schema_invalid",
            Self::SecretDetected { .. } => "secret_detected",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::UnknownBackend { .. } => "unknown_backend",
            Self::BackendChanged { .. } => "backend_changed",
            Self::StoreMoved { .. } => "store_moved",
            Self::SymlinkRefused { .. } => "symlink_refused",
            Self::TooLarge { .. } => "too_large",
            Self::BackupIndexDamaged { .. } => "backup_index_damaged",
            Self::FileSystemLacks { .. } => "file_system_lacks",
            Self::NotFound { .. } => "not_found",
            Self::RevisionNotHeld { .. } => "revision_not_held",
            Self::Unsupported { .. } => "unsupported",
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::Backend { .. } => "backend",
            Self::InvalidOperation { .. } => "invalid_operation",
            Self::Panicked { .. } => "panicked",
            Self::Io { .. } => "io",
        }
    }
}

/// Which revision is not held where, and which are: the oldest always named.
fn revision_not_held_message(revision: u64, held: &[u64], location: &str) -> String {
    let listed = held.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match (held.first(), held.last()) {
        (Some(oldest), _) if revision < *oldest => format!(
            "revision {revision} is no longer held in {location}: the oldest revision held is {oldest} \
             (held: {listed})"
        ),
        (Some(oldest), Some(newest)) => format!(
            "revision {revision} is not held in {location}: the oldest revision held is {oldest} and the \
             newest {newest} (held: {listed})"
        ),
        _ => format!("revision {revision} is not held in {location}: it holds no revision at all"),
    }
}

/// What is wrong with a corrupt or missing document, naming it.
fn corrupted_message(path: &std::path::Path, kind: CorruptionKind, detail: &str) -> String {
    match kind {
        CorruptionKind::Missing => format!("{} is missing, although {detail}", path.display()),
        kind => format!("{} is corrupted ({kind}): {detail}", path.display()),
    }
}

fn lock_timeout_message(resource: &str, waited: Duration, holder: Option<&LockInfo>) -> String {
    let waited_ms = waited.as_millis();
    match holder {
        Some(h) => format!(
            "timed out after {waited_ms} ms waiting for the lock {}, held by pid {} on host {} as user {} since {} \
             (lock id {}{})",
            resource,
            h.pid,
            h.hostname,
            h.user,
            h.acquired_at.to_rfc3339(),
            h.lock_id,
            h.note
                .as_ref()
                .map(|note| format!(", note: {note}"))
                .unwrap_or_default()
        ),
        None => format!(
            "timed out after {waited_ms} ms waiting for the lock {}; its holder could not be read",
            resource
        ),
    }
}

/// What a person can do about an I/O error of `kind`.
fn io_advice(kind: io::ErrorKind) -> &'static str {
    use io::ErrorKind as K;
    match kind {
        K::StorageFull | K::QuotaExceeded => {
            "the disk is full (no space or no free inodes left, or the quota is used up): free space and run the \
             command again; the state was left as it was"
        }
        K::ReadOnlyFilesystem => {
            "the file system is read-only: remount it read-write or use a store on a writable disk; the state \
             was left as it was"
        }
        K::PermissionDenied => {
            "permission denied: run as the user who owns .checklist/ or give this user read and write access \
             to it; the state was left as it was"
        }
        K::NotFound => {
            "it does not exist (or was deleted or moved while checklist was using it): check the path, make \
             sure nothing else removes files in .checklist/, and run the command again"
        }
        K::NotADirectory => "a file is where a directory belongs: move it aside and run the command again",
        K::InvalidInput | K::IsADirectory => {
            "something other than a regular file (a directory, a pipe, a device) is in its place: move it \
             aside and run the command again"
        }
        _ => "check the disk and the file, then run the command again",
    }
}

fn unsupported_version_message(
    path: &std::path::Path,
    found: &str,
    supported: &str,
    upgrade: &Upgrade,
) -> String {
    let path = path.display();
    match upgrade {
        Upgrade::Import { to } => format!(
            "{path} was written by the TypeScript checklist (its schema {found}); it is imported into schema {to} \
             by a migration, never read as it is"
        ),
        Upgrade::NotImported => format!(
            "{path} was written by the TypeScript checklist at its schema {found}, and this build imports only \
             its schemas 0.0.x to 1.x; open it with the TypeScript checklist that wrote it"
        ),
        Upgrade::Migration { to } => format!(
            "{path} has schemaVersion {found}, but this build reads {supported}; a migration upgrades it to {to} \
             (keeping the original as a backup)"
        ),
        Upgrade::Newer { major } => format!(
            "{path} has schemaVersion {found}, but this build reads {supported}; it was written by a newer \
             checklist that reads schema {major}.x; use that version or newer"
        ),
        Upgrade::NotAVersion => format!(
            "{path} has schemaVersion {found}, but this build reads {supported}; that is not a \
             MAJOR.MINOR.PATCH version; restore a good copy"
        ),
        Upgrade::NoPath => format!(
            "{path} has schemaVersion {found}, but this build reads {supported}; no migration leads from that \
             version to this build's format"
        ),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn newer_major_version_names_the_version_that_reads_it() {
        let e = crate::migrate::unsupported_version(std::path::Path::new("s.yaml"), "3.1.0", false);
        assert!(e.to_string().contains("reads schema 3.x"), "{e}");
    }
}
