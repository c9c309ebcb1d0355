//! The CLI's side of an error: which exit code ends the command, and which command to
//! run next. The library reports what happened; what a shell script sees and what a
//! person is told to type are the CLI's business.

use checklist_core::Error;

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
        _ => ExitCode::Other,
    }
}

/// The command that helps with `error`, as a clause the CLI appends to its message
/// ("`checklist backup list` shows the backups"), where the message does not say it.
pub fn hint(error: &Error) -> Option<&'static str> {
    match error {
        Error::NotFound { what: "backup", .. } => Some("`checklist backup list` shows the backups"),
        Error::NotFound {
            what: "archived instance",
            ..
        } => Some("`checklist archive --list` lists the archived instances"),
        Error::NotFound {
            what: "quarantined document",
            ..
        } => Some("`checklist quarantine list` shows the quarantined documents"),
        _ => None,
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

    use checklist_core::{CorruptionKind, Expectation};

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
                Error::UnsupportedVersion {
                    path: path.clone(),
                    found: "2.0.0".into(),
                    supported: "1.x".into(),
                    typescript: false,
                },
                8,
            ),
            (
                Error::UnsupportedVersion {
                    path: path.clone(),
                    found: "1.0.0".into(),
                    supported: "1.x".into(),
                    typescript: true,
                },
                8,
            ),
            (Error::invalid("nope"), 1),
        ];
        for (error, code) in cases {
            assert_eq!(exit_code(&error).code(), code, "{error}");
            assert!(
                error.to_string().contains("/p/.checklist/state.yaml") || code == 1,
                "message must name the file: {error}"
            );
        }
    }
}
