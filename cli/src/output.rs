//! How results and errors reach the terminal: one sentence for people, one JSON
//! document for programs.

use std::io::Write;

use checklist_core::Error;
use serde_json::{Value, json};

/// Whether to colour what goes to a stream: only a terminal, and never when `NO_COLOR`
/// is set to anything but the empty string (<https://no-color.org>, README "The CLI").
/// clap's own messages follow the same rule through anstream.
pub fn colour(no_color: Option<&std::ffi::OsStr>, is_terminal: bool) -> bool {
    let no_color = no_color.is_some_and(|value| !value.is_empty());
    is_terminal && !no_color
}

/// What a successful command produced.
#[derive(Debug)]
pub enum Outcome {
    /// A message for people and the same facts as JSON.
    Report {
        /// Shown without `--json`.
        human: String,
        /// Shown with `--json`.
        json: Value,
    },
    /// Bytes written to stdout as they are (an export).
    Raw(Vec<u8>),
    /// A report of checks some of which failed (`checklist conformance`): printed like
    /// a [`Report`](Self::Report), then `error` goes to stderr and the command exits
    /// with `code` instead of 0.
    Failed {
        /// Shown without `--json`.
        human: String,
        /// Shown with `--json`.
        json: Value,
        /// One sentence for stderr saying what failed and where.
        error: String,
        /// The exit code.
        code: u8,
    },
}

impl Outcome {
    /// A report.
    pub fn report(human: impl Into<String>, json: Value) -> Self {
        Self::Report {
            human: human.into(),
            json,
        }
    }
}

/// Writes a successful outcome.
pub fn print_outcome(
    outcome: &Outcome,
    as_json: bool,
    quiet: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match outcome {
        Outcome::Raw(bytes) => out.write_all(bytes),
        Outcome::Report { json, .. } | Outcome::Failed { json, .. } if as_json => {
            writeln!(out, "{}", pretty(json))
        }
        Outcome::Report { human, .. } | Outcome::Failed { human, .. } if !quiet => writeln!(out, "{human}"),
        Outcome::Report { .. } | Outcome::Failed { .. } => Ok(()),
    }
}

/// Writes an error: the sentence on stderr, and with `--json` also a JSON document on
/// stdout.
pub fn print_error(
    error: &Error,
    as_json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(err, "error: {}", crate::exit_code::message(error))?;
    if as_json {
        writeln!(
            out,
            "{}",
            pretty(&json!({ "ok": false, "error": error_json(error) }))
        )?;
    }
    Ok(())
}

/// The JSON form of an error: its kind, message, exit code and the fields a program
/// acts on.
pub fn error_json(error: &Error) -> Value {
    let mut doc = json!({
        "kind": error.kind(),
        "message": crate::exit_code::message(error),
        "exitCode": crate::exit_code::exit_code(error).code(),
    });
    if let (Some(doc), Some(hint)) = (doc.as_object_mut(), crate::exit_code::hint(error)) {
        doc.insert("hint".to_owned(), Value::String(hint));
    }
    let details = match error {
        Error::Corrupted { kind, path, detail } => {
            json!({"corruptionKind": kind, "path": path, "detail": detail})
        }
        Error::LockTimeout {
            resource,
            holder,
            waited,
        } => {
            json!({"path": resource, "holder": holder, "waitedMs": waited.as_millis() as u64})
        }
        Error::LockLost { resource, lock_id } => json!({"path": resource, "lockId": lock_id}),
        Error::Conflict {
            path,
            expected,
            found,
        } => {
            json!({"path": path, "expected": expected, "found": found})
        }
        Error::NotInitialized { path }
        | Error::SymlinkRefused { path }
        | Error::Io { path, .. }
        | Error::TooLarge { path, .. } => json!({"path": path}),
        Error::SchemaInvalid { path, field_path, .. } | Error::SecretDetected { path, field_path } => {
            json!({"path": path, "fieldPath": field_path})
        }
        Error::InvalidConfig { path, field, .. } => json!({"path": path, "fieldPath": field}),
        Error::UnsupportedVersion {
            path,
            found,
            supported,
            typescript,
            upgrade,
        } => {
            json!({"path": path, "found": found, "supported": supported, "typescript": typescript, "upgrade": upgrade})
        }
        Error::RevisionNotHeld {
            revision,
            held,
            location,
        } => json!({"revision": revision, "held": held, "oldest": held.first(), "location": location}),
        Error::UnknownBackend {
            name,
            origin,
            registered,
        } => {
            json!({"backend": name, "from": origin.to_string(), "path": origin.path(), "registered": registered})
        }
        Error::Unrecovered {
            kind,
            path,
            detail,
            remedies,
        } => json!({"corruptionKind": kind, "path": path, "detail": detail, "remedies": remedies}),
        _ => json!({}),
    };
    if let (Some(doc), Value::Object(details)) = (doc.as_object_mut(), details) {
        doc.extend(details);
    }
    doc
}

/// `n` and `noun`, plural when `n` is not 1: "1 backup", "3 backups".
pub(crate) fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(None, true));
        assert!(colour(Some(OsStr::new("")), true), "an empty NO_COLOR is unset");
        assert!(!colour(Some(OsStr::new("1")), true));
        assert!(!colour(Some(OsStr::new("0")), true), "any value turns colour off");
        assert!(!colour(None, false));
        assert!(!colour(Some(OsStr::new("")), false));
    }
}
