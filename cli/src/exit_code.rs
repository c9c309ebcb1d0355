//! The CLI's side of an error: which exit code ends the command, and which command to
//! run next. The library reports what happened; what a shell script sees and what a
//! person is told to type are the CLI's business.

use checklist_core::{CorruptionKind, Error, Remedy, Upgrade};

/// The process exit codes of the `checklist` CLI (README "Exit codes"), one per error
/// class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Any error without a more specific code.
    Other = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// There is no store where one was expected.
    NotInitialized = 3,
    /// The lock could not be acquired in time.
    LockTimeout = 4,
    /// The state is corrupted and was not recovered.
    Corrupted = 5,
    /// Someone else changed the state first (revision conflict or lost lock).
    Conflict = 6,
    /// A secret was found in the state; the write was refused.
    SecretDetected = 7,
    /// The document's schema version cannot be read by this build.
    UnsupportedVersion = 8,
    /// config.yaml names a backend that holds no state while another backend's state
    /// is in the store directory (`backend.type` changed by hand), or the store was
    /// moved to another backend and takes no more writes; nothing was changed.
    BackendChanged = 9,
}

impl ExitCode {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit code for `error`.
pub fn exit_code(error: &Error) -> ExitCode {
    match error {
        Error::NotInitialized { .. } => ExitCode::NotInitialized,
        Error::LockTimeout { .. } => ExitCode::LockTimeout,
        Error::Corrupted { .. } | Error::Unrecovered { .. } | Error::StateMissing { .. } => {
            ExitCode::Corrupted
        }
        Error::Conflict { .. } | Error::LockLost { .. } | Error::PreconditionFailed { .. } => {
            ExitCode::Conflict
        }
        Error::SecretDetected { .. } => ExitCode::SecretDetected,
        Error::UnsupportedVersion { .. } => ExitCode::UnsupportedVersion,
        Error::BackendChanged { .. } | Error::StoreMoved { .. } => ExitCode::BackendChanged,
        _ => ExitCode::Other,
    }
}

/// The command that helps with `error`, as a clause the CLI appends to the library's
/// message ("`checklist backup list` shows the backups"); `None` where the message
/// says all there is.
pub fn hint(error: &Error) -> Option<String> {
    let hint = match error {
        Error::NotInitialized { .. } => "run `checklist init` first".to_owned(),
        Error::BackendChanged {
            configured, found, ..
        } => format!(
            "`checklist backend migrate --from {0} --to {configured}` moves that state to the {configured} \
             backend, or set `type: {0}` under `backend:` in config.yaml again to use it where it is",
            found.backend
        ),
        Error::StoreMoved { moved_to, .. } => format!(
            "config.yaml should name the {} backend the state was moved to",
            moved_to.backend
        ),
        Error::LockTimeout {
            holder: Some(holder), ..
        } => format!(
            "if that process is gone, `checklist lock release --force {}` frees the lock",
            holder.lock_id
        ),
        Error::LockTimeout { holder: None, .. } => "`checklist lock status` shows the lock".to_owned(),
        Error::Corrupted { kind, .. } => remedies(Remedy::for_corruption(*kind), *kind)?,
        Error::StateMissing { .. } => remedies(&[Remedy::RestoreNewestBackup], CorruptionKind::Missing)?,
        Error::Unrecovered {
            remedies: listed,
            kind,
            ..
        } => remedies(listed, *kind)?,
        Error::UnsupportedVersion {
            upgrade: Upgrade::Import { .. },
            ..
        } => "run `checklist migrate` to import it (the original file is kept as a backup)".to_owned(),
        Error::UnsupportedVersion {
            upgrade: Upgrade::Migration { .. },
            ..
        } => "run `checklist migrate`".to_owned(),
        Error::FileSystemLacks { .. } => {
            "`checklist conformance --dir DIR` checks whether a file system gives the store what it needs"
                .to_owned()
        }
        Error::BackupIndexDamaged { .. } => "`checklist backup list --rebuild` lists them again".to_owned(),
        Error::NotFound { what: "backup", .. } => "`checklist backup list` shows the backups".to_owned(),
        Error::RevisionNotHeld { .. } => {
            "`checklist backup list` shows the backups and the revisions they hold".to_owned()
        }
        Error::NotFound {
            what: "archived instance",
            ..
        } => "`checklist archive --list` lists the archived instances".to_owned(),
        Error::NotFound {
            what: "quarantined document",
            ..
        } => "`checklist quarantine list` shows the quarantined documents".to_owned(),
        _ => return None,
    };
    Some(hint)
}

/// The commands for `remedies` of damage of `kind`, most likely first, as one clause.
fn remedies(remedies: &[Remedy], kind: CorruptionKind) -> Option<String> {
    let clauses: Vec<&str> = remedies.iter().map(|remedy| command_for(*remedy, kind)).collect();
    (!clauses.is_empty()).then(|| clauses.join(", or "))
}

/// The command that carries out `remedy` for damage of `kind`, as a clause.
fn command_for(remedy: Remedy, kind: CorruptionKind) -> &'static str {
    match remedy {
        Remedy::RestoreNewestBackup => "`checklist recover` restores the newest backup that verifies",
        Remedy::Reseal => "if you edited it on purpose, `checklist reseal` accepts the edit",
        Remedy::RepairByHandThenReseal => "repair it by hand and run `checklist reseal`",
        Remedy::PutBackACopy => "put the state file back if you have a copy of it",
        // A missing state leaves nothing to keep.
        Remedy::Reset if kind == CorruptionKind::Missing => {
            "`checklist recover --reset` starts again from an empty state above every committed revision"
        }
        Remedy::Reset => {
            "`checklist recover --reset` starts again from an empty state above every committed revision \
             (keeping the corrupt file in quarantine/)"
        }
        _ => "see `checklist recover --help`",
    }
}

/// `error`'s message with its [`hint`], as the CLI prints it.
pub fn message(error: &Error) -> String {
    match hint(error) {
        Some(hint) => format!("{error}; {hint}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use checklist_core::{CorruptionKind, Expectation, LockInfo};

    use super::*;

    #[test]
    fn exit_codes_follow_the_cli_contract() {
        let path = PathBuf::from("/p/.checklist/state.yaml");
        let cases: Vec<(Error, u8)> = vec![
            (Error::NotInitialized { path: path.clone() }, 3),
            (
                Error::LockTimeout {
                    resource: path.display().to_string(),
                    waited: Duration::from_millis(5),
                    holder: None,
                },
                4,
            ),
            (
                Error::Corrupted {
                    kind: CorruptionKind::ParseError,
                    path: path.clone(),
                    detail: "x".into(),
                },
                5,
            ),
            (
                Error::Conflict {
                    path: path.clone(),
                    expected: Expectation::Revision(3),
                    found: Some(4),
                },
                6,
            ),
            (
                Error::SecretDetected {
                    path: path.clone(),
                    field_path: "/a".into(),
                },
                7,
            ),
            (
                checklist_core::migrate::unsupported_version(&path, "2.0.0", false),
                8,
            ),
            (
                checklist_core::migrate::unsupported_version(&path, "1.0.0", true),
                8,
            ),
            (
                Error::BackendChanged {
                    config: PathBuf::from("/p/.checklist/config.yaml"),
                    configured: "json".into(),
                    found: Box::new(checklist_core::FoundState {
                        backend: "yaml".into(),
                        location: path.display().to_string(),
                        revision: Some(3),
                    }),
                },
                9,
            ),
            (Error::invalid("nope"), 1),
            // A revision not held is a not-found kind of error, like an unknown backup id.
            (
                Error::RevisionNotHeld {
                    revision: 2,
                    held: vec![3, 4],
                    location: path.display().to_string(),
                },
                1,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(exit_code(&error).code(), code, "{error}");
            assert!(
                error.to_string().contains("/p/.checklist/state.yaml") || code == 1,
                "message must name the file: {error}"
            );
        }
    }

    #[test]
    fn the_library_names_no_command_and_the_cli_adds_one_once() {
        let path = PathBuf::from("/p/.checklist/state.yaml");
        let holder = LockInfo {
            lock_id: "L-1".into(),
            pid: 7,
            ppid: None,
            hostname: "h".into(),
            user: "u".into(),
            process_started_at: None,
            acquired_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now(),
            renewed_at: chrono::Utc::now(),
            operation: checklist_core::lock::Operation::Write,
            stack_trace: None,
            note: None,
        };
        let cases: Vec<(Error, &str)> = vec![
            (Error::NotInitialized { path: path.clone() }, "checklist init"),
            (
                Error::LockTimeout {
                    resource: "/p/.checklist/.lock".into(),
                    waited: Duration::from_millis(5),
                    holder: Some(Box::new(holder)),
                },
                "checklist lock release --force L-1",
            ),
            (
                Error::LockTimeout {
                    resource: "/p/.checklist/.lock".into(),
                    waited: Duration::from_millis(5),
                    holder: None,
                },
                "checklist lock status",
            ),
            (
                Error::Corrupted {
                    kind: CorruptionKind::ChecksumMismatch,
                    path: path.clone(),
                    detail: "x".into(),
                },
                "checklist reseal",
            ),
            (
                Error::StateMissing {
                    path: path.clone(),
                    evidence: "the store holds 1 backup".into(),
                },
                "checklist recover",
            ),
            (
                Error::Unrecovered {
                    kind: CorruptionKind::ParseError,
                    path: path.clone(),
                    detail: "x".into(),
                    remedies: vec![Remedy::RepairByHandThenReseal, Remedy::Reset],
                },
                "checklist recover --reset",
            ),
            (
                checklist_core::migrate::unsupported_version(&path, "1.0.0", true),
                "checklist migrate",
            ),
            (
                Error::BackupIndexDamaged {
                    location: "/p/.checklist/.backup/manifest.yaml".into(),
                    detail: "x".into(),
                },
                "checklist backup list --rebuild",
            ),
            (
                Error::RevisionNotHeld {
                    revision: 2,
                    held: vec![3, 4],
                    location: path.display().to_string(),
                },
                "checklist backup list",
            ),
        ];
        for (error, command) in cases {
            let library = error.to_string();
            assert!(
                !library.contains("`checklist"),
                "the library names a command: {library}"
            );
            let cli = message(&error);
            assert_eq!(cli.matches(command).count(), 1, "{command} once in: {cli}");
            assert!(cli.starts_with(&library), "{cli}");
        }
    }
}
