//! Schema migrations: older state documents upgraded to the current schema version.
//!
//! A document names its format in `schemaVersion`. Each [`Migration`] upgrades one
//! `MAJOR.MINOR` series to the next version by rewriting the raw document (a
//! [`serde_json::Value`], not the typed model, which only knows the current shape);
//! [`MIGRATIONS`] chains them up to [`CURRENT_SCHEMA_VERSION`]. A migration only
//! touches the fields it knows, so unknown fields survive every step.
//!
//! [`plan`] says which steps a document needs without changing it; [`migrate`] runs
//! them on a copy and reports every change as a line of text. Neither ever modifies
//! its input, also not when it fails.
//!
//! The historical versions (golden fixtures in `schemas/fixtures/`):
//!
//! - **0.8.x**: the instance is `instance` with `template`, `project` and
//!   `currentStep`; statuses `in_progress | paused | done | failed`; step results
//!   `passed | failed | skipped`; a command's exit code is `code`; timestamps are
//!   integers (milliseconds since the Unix epoch); durations are seconds.
//! - **0.9.x**: the 1.0 names, but timestamps are text without a time zone (UTC wall
//!   time) and durations (`executionTime`, a command's `duration`) are seconds,
//!   possibly fractional.
//! - **1.0.0** (current): RFC 3339 UTC timestamps, durations in whole milliseconds,
//!   and the `revision` and `checksum` that a sealed write sets. Neither older version
//!   had them: a migrated document gets `revision: 0` and no checksum, and the store's
//!   normal sealed write gives it both.
//!
//! The files of the original TypeScript `checklist` are recognised by their shape, not
//! their version (its 0.0.0 to 1.0.0 overlap these in name): [`plan`] gives them the one
//! step [`typescript::IMPORT`] instead of the chain, and [`Plan::typescript`] and
//! [`Migrated::typescript`] say so (docs/decisions/0018-importing-the-typescript-checklist.md).
//!
//! ```
//! use checklist_core::migrate;
//! use serde_json::json;
//!
//! let old = json!({
//!     "schemaVersion": "0.9.0",
//!     "completedSteps": [{"stepId": "build", "completedAt": "2025-03-02T09:20:31",
//!                         "executionTime": 1.5, "result": "success"}],
//! });
//! let path = std::path::Path::new("state.yaml");
//! let migrated = migrate::migrate(&old, path).unwrap();
//! assert_eq!(migrated.from, "0.9.0");
//! assert_eq!(migrated.to, "1.0.0");
//! assert_eq!(migrated.value["completedSteps"][0]["executionTime"], 1500);
//! assert_eq!(migrated.value["completedSteps"][0]["completedAt"], "2025-03-02T09:20:31Z");
//! assert_eq!(old["schemaVersion"], "0.9.0", "the input is never changed");
//! ```

use std::fmt;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Upgrade;
use crate::error::{CorruptionKind, Error, Result};
use crate::model::{CURRENT_SCHEMA_VERSION, ChecklistState, SUPPORTED_MAJOR};

mod apply;
pub mod typescript;

pub use apply::{MigrationCommit, PendingMigration, apply, prepare};

/// A `MAJOR.MINOR.PATCH` schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    /// Incompatible format changes.
    pub major: u64,
    /// Format changes a migration handles.
    pub minor: u64,
    /// Changes that do not touch the format.
    pub patch: u64,
}

impl SchemaVersion {
    /// Parses `MAJOR.MINOR.PATCH` (decimal numbers, nothing else); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.').map(|p| {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse::<u64>().ok()
            } else {
                None
            }
        });
        let version = Self {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a document does not have the shape its schema version promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// JSON pointer of the offending field (`/` for the root).
    pub field_path: String,
    /// What is wrong there.
    pub message: String,
}

impl ShapeError {
    fn new(field_path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field_path: field_path.into(),
            message: message.into(),
        }
    }
}

/// The function of a [`Migration`]: rewrites a document in place and returns one
/// human-readable line per change. It does not set `schemaVersion`; [`migrate`] does.
pub type MigrationFn = fn(&mut Value) -> std::result::Result<Vec<String>, ShapeError>;

/// One step of the chain: upgrades documents of one `MAJOR.MINOR` series.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The series it reads, `MAJOR.MINOR`: every patch version of a series has the
    /// same shape.
    pub from: &'static str,
    /// The exact version it produces.
    pub to: &'static str,
    /// What it changes, in one line.
    pub description: &'static str,
    /// The rewrite.
    pub apply: MigrationFn,
}

impl Migration {
    /// Whether this step reads documents of `version`.
    pub fn reads(&self, version: SchemaVersion) -> bool {
        format!("{}.{}", version.major, version.minor) == self.from
    }
}

/// Every migration, oldest first; the last one produces [`CURRENT_SCHEMA_VERSION`].
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        from: "0.8",
        to: "0.9.0",
        description: "renames the instance and its fields, the status and result names and a \
                      command's exit code; epoch-millisecond timestamps become text",
        apply: from_0_8,
    },
    Migration {
        from: "0.9",
        to: "1.0.0",
        description: "timestamps get the UTC zone, durations become whole milliseconds, the \
                      document gets a revision",
        apply: from_0_9,
    },
];

/// The steps a document needs to reach the current schema version.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The document's `schemaVersion`.
    pub from: String,
    /// The version it ends at: [`CURRENT_SCHEMA_VERSION`], or `from` when it is
    /// already of the current major version.
    pub to: String,
    /// The steps, in order; empty when there is nothing to migrate.
    pub steps: Vec<&'static Migration>,
    /// Set when the TypeScript checklist wrote the document: then `from` is its version
    /// and the one step is [`typescript::IMPORT`].
    pub typescript: Option<typescript::Origin>,
}

impl Plan {
    /// Whether the document already has the current major version.
    pub fn is_current(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What one step changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedStep {
    /// The version the document had.
    pub from: String,
    /// The version it has now.
    pub to: String,
    /// The step's one-line description.
    pub description: String,
    /// One line per change.
    pub changes: Vec<String>,
}

/// A migrated document.
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    /// The document in the current format: `revision` is the old one (0 when the old
    /// format had none) and there is no checksum until it is sealed.
    pub value: Value,
    /// The version it had.
    pub from: String,
    /// The version it has now.
    pub to: String,
    /// What each step changed; empty when the document was already current.
    pub steps: Vec<AppliedStep>,
    /// Set when the document was written by the TypeScript checklist and imported.
    pub typescript: Option<typescript::Origin>,
}

impl Migrated {
    /// Every change line, step after step.
    pub fn changes(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flat_map(|s| s.changes.iter().map(String::as_str))
    }

    /// The migrated document as the typed state, ready for a sealed write.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (`schema_invalid`) when the result does not fit the model,
    /// which means the old document did not have the shape its version promises.
    pub fn into_state(self, path: &Path) -> Result<ChecklistState> {
        let from = self.from;
        serde_json::from_value(self.value).map_err(|e| Error::Corrupted {
            kind: CorruptionKind::SchemaInvalid,
            path: path.to_owned(),
            detail: format!("migrated from schema {from}, the document does not fit the state model: {e}"),
        })
    }
}

/// Which steps `document` needs. `path` names the file in errors.
///
/// A document of the TypeScript checklist ([`typescript::detect`]) needs the one step
/// [`typescript::IMPORT`], whatever its version says.
///
/// # Errors
/// - [`Error::UnsupportedVersion`] naming the version when `schemaVersion` is not a
///   `MAJOR.MINOR.PATCH` version, is of a newer major version, or no migration leads
///   from it, and for a TypeScript checklist file of a version this build does not
///   import;
/// - [`Error::Corrupted`] (`schema_invalid`) when the document is not a mapping or
///   has no `schemaVersion`.
pub fn plan(document: &Value, path: &Path) -> Result<Plan> {
    if let Some(origin) = typescript::detect(document) {
        if !typescript::can_import(&origin.version) {
            return Err(typescript::unsupported(&origin, path));
        }
        return Ok(Plan {
            from: origin.version.clone(),
            to: CURRENT_SCHEMA_VERSION.to_owned(),
            steps: vec![&typescript::IMPORT],
            typescript: Some(origin),
        });
    }
    let shape = |detail: String| Error::Corrupted {
        kind: CorruptionKind::SchemaInvalid,
        path: path.to_owned(),
        detail,
    };
    let Some(map) = document.as_object() else {
        return Err(shape("the document is not a mapping".to_owned()));
    };
    let found = match map.get("schemaVersion") {
        None => return Err(shape("the document has no schemaVersion".to_owned())),
        Some(Value::String(text)) => text.clone(),
        // `schemaVersion: 0.9` in a hand-written YAML file is a number.
        Some(other) => other.to_string(),
    };
    let unsupported = || unsupported_version(path, &found, false);
    // The same rule as `document::check_version`: whatever that reads is current.
    if leading_major(&found) == Some(SUPPORTED_MAJOR) {
        return Ok(Plan {
            to: found.clone(),
            from: found,
            steps: Vec::new(),
            typescript: None,
        });
    }
    let version = SchemaVersion::parse(&found).ok_or_else(unsupported)?;
    let (steps, to) = steps_from(version).ok_or_else(unsupported)?;
    Ok(Plan {
        from: found,
        to: to.to_string(),
        steps,
        typescript: None,
    })
}

/// The chain of migrations from `version` to the current major version and the version
/// it ends at; `None` when no chain leads there.
fn steps_from(mut version: SchemaVersion) -> Option<(Vec<&'static Migration>, SchemaVersion)> {
    let mut steps = Vec::new();
    while version.major != SUPPORTED_MAJOR {
        let step = MIGRATIONS
            .iter()
            .find(|m| m.reads(version))
            .filter(|_| version.major < SUPPORTED_MAJOR && steps.len() < MIGRATIONS.len())?;
        steps.push(step);
        version = SchemaVersion::parse(step.to)?;
    }
    Some((steps, version))
}

/// Upgrades a copy of `document` to the current schema version. `path` names the
/// file in errors. `document` itself is never changed.
///
/// A document of the current major version comes back unchanged, with no steps.
///
/// # Errors
/// Those of [`plan`], and [`Error::Corrupted`] (`schema_invalid`, naming the field)
/// when the document does not have the shape its version promises.
pub fn migrate(document: &Value, path: &Path) -> Result<Migrated> {
    let plan = plan(document, path)?;
    let mut value = document.clone();
    let mut from = plan.from.clone();
    let mut steps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let changes = (step.apply)(&mut value).map_err(|e| Error::Corrupted {
            kind: CorruptionKind::SchemaInvalid,
            path: path.to_owned(),
            detail: format!(
                "as a {} document, {} is invalid: {}",
                match plan.typescript {
                    Some(_) => format!("TypeScript checklist schema {from}"),
                    None => format!("schema {from}"),
                },
                e.field_path,
                e.message
            ),
        })?;
        value["schemaVersion"] = Value::from(step.to);
        steps.push(AppliedStep {
            from: std::mem::replace(&mut from, step.to.to_owned()),
            to: step.to.to_owned(),
            description: step.description.to_owned(),
            changes,
        });
    }
    Ok(Migrated {
        value,
        from: plan.from,
        to: plan.to,
        steps,
        typescript: plan.typescript,
    })
}

/// Whether a document of schema version `found` can be migrated to the current one.
pub fn can_migrate(found: &str) -> bool {
    let document = serde_json::json!({ "schemaVersion": found });
    plan(&document, Path::new("")).is_ok_and(|p| !p.is_current())
}

/// The error for a document at `found`, a version this build does not read as it is,
/// saying what it can become; `typescript` when its shape says the TypeScript
/// checklist wrote it.
pub fn unsupported_version(path: &Path, found: &str, typescript: bool) -> Error {
    let found: String = found.chars().take(64).collect();
    let upgrade = if typescript {
        if typescript::can_import(&found) {
            Upgrade::Import {
                to: CURRENT_SCHEMA_VERSION.to_owned(),
            }
        } else {
            Upgrade::NotImported
        }
    } else {
        match SchemaVersion::parse(&found) {
            None => Upgrade::NotAVersion,
            Some(version) if version.major > SUPPORTED_MAJOR => Upgrade::Newer { major: version.major },
            Some(version) if version.major != SUPPORTED_MAJOR && steps_from(version).is_some() => {
                Upgrade::Migration {
                    to: CURRENT_SCHEMA_VERSION.to_owned(),
                }
            }
            Some(_) => Upgrade::NoPath,
        }
    };
    Error::UnsupportedVersion {
        path: path.to_owned(),
        found,
        supported: supported_versions(),
        typescript,
        upgrade,
    }
}

/// The versions this build reads and migrates, for messages.
pub fn supported_versions() -> String {
    let series: Vec<String> = MIGRATIONS.iter().map(|m| format!("{}.x", m.from)).collect();
    format!(
        "{SUPPORTED_MAJOR}.x (writes {CURRENT_SCHEMA_VERSION}; a migration upgrades {})",
        series.join(" and ")
    )
}

fn leading_major(version: &str) -> Option<u64> {
    version.split('.').next().and_then(|m| m.parse::<u64>().ok())
}

// ---------------------------------------------------------------------------------
// The steps. Each touches only the fields it knows, so anything else stays as it is.

/// 0.8.x → 0.9.0.
fn from_0_8(doc: &mut Value) -> std::result::Result<Vec<String>, ShapeError> {
    let mut changes = Vec::new();
    let root = as_object_mut(doc, "")?;
    rename(root, "", "instance", "activeInstance", &mut changes)?;
    if let Some(instance) = root.get_mut("activeInstance").filter(|i| !i.is_null()) {
        let instance = as_object_mut(instance, "/activeInstance")?;
        for (old, new) in [
            ("template", "templateId"),
            ("project", "projectPath"),
            ("currentStep", "currentStepId"),
        ] {
            rename(instance, "/activeInstance", old, new, &mut changes)?;
        }
        rename_value(
            instance,
            "/activeInstance/status",
            &[("in_progress", "active"), ("done", "completed")],
            &["paused", "failed"],
            &mut changes,
        )?;
        for field in ["startedAt", "lastModifiedAt", "completedAt"] {
            epoch_millis_to_text(instance, "/activeInstance", field, &mut changes)?;
        }
    }
    for_each_step(root, |step, at| {
        rename_value(
            step,
            &format!("{at}/result"),
            &[("passed", "success"), ("failed", "failure")],
            &["skipped"],
            &mut changes,
        )?;
        epoch_millis_to_text(step, at, "completedAt", &mut changes)?;
        for_each_command(step, at, |command, at| {
            rename(command, at, "code", "exitCode", &mut changes)
        })
    })?;
    Ok(changes)
}

/// 0.9.x → 1.0.0.
fn from_0_9(doc: &mut Value) -> std::result::Result<Vec<String>, ShapeError> {
    let mut changes = Vec::new();
    let root = as_object_mut(doc, "")?;
    if !root.contains_key("revision") {
        // The position after schemaVersion is where a 1.0 document keeps it.
        let slot = root
            .keys()
            .position(|k| k == "schemaVersion")
            .map_or(0, |i| i + 1);
        root.shift_insert(slot, "revision".to_owned(), Value::from(0));
        changes.push("/revision: added as 0; the sealed write that stores the document sets it".to_owned());
    }
    if let Some(instance) = root.get_mut("activeInstance").filter(|i| !i.is_null()) {
        let instance = as_object_mut(instance, "/activeInstance")?;
        for field in ["startedAt", "lastModifiedAt", "completedAt"] {
            zone_as_utc(instance, "/activeInstance", field, &mut changes)?;
        }
    }
    for_each_step(root, |step, at| {
        zone_as_utc(step, at, "completedAt", &mut changes)?;
        seconds_to_millis(step, at, "executionTime", &mut changes)?;
        for_each_command(step, at, |command, at| {
            seconds_to_millis(command, at, "duration", &mut changes)
        })
    })?;
    Ok(changes)
}

type Shaped<T = ()> = std::result::Result<T, ShapeError>;

fn as_object_mut<'a>(value: &'a mut Value, at: &str) -> Shaped<&'a mut Map<String, Value>> {
    let kind = kind_of(value);
    value
        .as_object_mut()
        .ok_or_else(|| ShapeError::new(pointer(at), format!("expected a mapping, found {kind}")))
}

fn pointer(at: &str) -> String {
    if at.is_empty() {
        "/".to_owned()
    } else {
        at.to_owned()
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Renames the key `old` to `new` in place (same position), if `old` is there.
fn rename(map: &mut Map<String, Value>, at: &str, old: &str, new: &str, changes: &mut Vec<String>) -> Shaped {
    let Some(position) = map.keys().position(|k| k == old) else {
        return Ok(());
    };
    if map.contains_key(new) {
        return Err(ShapeError::new(
            format!("{at}/{new}"),
            format!("both {old} and {new} are present, so {old} cannot be renamed to {new}"),
        ));
    }
    let value = map.shift_remove(old).unwrap_or(Value::Null);
    map.shift_insert(position, new.to_owned(), value);
    changes.push(format!("{at}/{old}: renamed to {at}/{new}"));
    Ok(())
}

/// Maps the string at `field_path` (a key of `map`) through `renamed`; values in
/// `kept` stay; anything else is a shape error.
fn rename_value(
    map: &mut Map<String, Value>,
    field_path: &str,
    renamed: &[(&str, &str)],
    kept: &[&str],
    changes: &mut Vec<String>,
) -> Shaped {
    let key = field_path.rsplit('/').next().unwrap_or(field_path);
    let Some(value) = map.get_mut(key) else {
        return Ok(());
    };
    let text = value.as_str().unwrap_or_default();
    if let Some((old, new)) = renamed.iter().find(|(old, _)| *old == text) {
        changes.push(format!("{field_path}: {old} → {new}"));
        *value = Value::from(*new);
        return Ok(());
    }
    if kept.contains(&text) {
        return Ok(());
    }
    let known: Vec<&str> = renamed
        .iter()
        .map(|(old, _)| *old)
        .chain(kept.iter().copied())
        .collect();
    Err(ShapeError::new(
        field_path,
        format!("{value} is not one of {}", known.join(", ")),
    ))
}

/// Runs `each` on every object of `completedSteps`, with its JSON pointer.
fn for_each_step(
    root: &mut Map<String, Value>,
    mut each: impl FnMut(&mut Map<String, Value>, &str) -> Shaped,
) -> Shaped {
    let Some(steps) = root.get_mut("completedSteps") else {
        return Ok(());
    };
    let kind = kind_of(steps);
    let steps = steps
        .as_array_mut()
        .ok_or_else(|| ShapeError::new("/completedSteps", format!("expected a list, found {kind}")))?;
    for (index, step) in steps.iter_mut().enumerate() {
        let at = format!("/completedSteps/{index}");
        each(as_object_mut(step, &at)?, &at)?;
    }
    Ok(())
}

/// Runs `each` on every object of a step's `commandResults`.
fn for_each_command(
    step: &mut Map<String, Value>,
    at: &str,
    mut each: impl FnMut(&mut Map<String, Value>, &str) -> Shaped,
) -> Shaped {
    let Some(commands) = step.get_mut("commandResults") else {
        return Ok(());
    };
    let kind = kind_of(commands);
    let commands = commands.as_array_mut().ok_or_else(|| {
        ShapeError::new(
            format!("{at}/commandResults"),
            format!("expected a list, found {kind}"),
        )
    })?;
    for (index, command) in commands.iter_mut().enumerate() {
        let at = format!("{at}/commandResults/{index}");
        each(as_object_mut(command, &at)?, &at)?;
    }
    Ok(())
}

/// 0.8 wrote timestamps as milliseconds since the Unix epoch; 0.9 as UTC wall time
/// without a zone, with milliseconds.
fn epoch_millis_to_text(
    map: &mut Map<String, Value>,
    at: &str,
    field: &str,
    changes: &mut Vec<String>,
) -> Shaped {
    let Some(value) = map.get_mut(field).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let time = value
        .as_i64()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            ShapeError::new(
                format!("{at}/{field}"),
                format!("{value} is not a timestamp in milliseconds since the Unix epoch"),
            )
        })?;
    let text = time.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    changes.push(format!("{at}/{field}: {value} → {text}"));
    *value = Value::from(text);
    Ok(())
}

/// A timestamp as UTC: UTC wall time without a zone (`2025-03-02T09:15:00`), or
/// RFC 3339 with any offset.
fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)))
        .ok()
}

/// 0.9 wrote UTC wall time without a zone; 1.0 writes RFC 3339 with `Z`. A timestamp
/// that already carries an offset (a hand edit) is converted to UTC.
fn zone_as_utc(map: &mut Map<String, Value>, at: &str, field: &str, changes: &mut Vec<String>) -> Shaped {
    let Some(value) = map.get_mut(field).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let text = value.as_str().unwrap_or_default();
    let time = parse_utc(text).ok_or_else(|| {
        ShapeError::new(
            format!("{at}/{field}"),
            format!("{value} is not a timestamp of the form 2025-03-02T09:15:00"),
        )
    })?;
    let utc = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    if utc != text {
        changes.push(format!("{at}/{field}: {text} → {utc} (UTC)"));
        *value = Value::from(utc);
    }
    Ok(())
}

/// 0.9 measured durations in seconds (fractional); 1.0 in whole milliseconds.
fn seconds_to_millis(
    map: &mut Map<String, Value>,
    at: &str,
    field: &str,
    changes: &mut Vec<String>,
) -> Shaped {
    let Some(value) = map.get_mut(field) else {
        return Ok(());
    };
    let millis = value
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s * 1000.0 <= u64::MAX as f64)
        .map(|s| (s * 1000.0).round() as u64)
        .ok_or_else(|| {
            ShapeError::new(
                format!("{at}/{field}"),
                format!("{value} is not a non-negative number of seconds"),
            )
        })?;
    changes.push(format!("{at}/{field}: {value} s → {millis} ms"));
    *value = Value::from(millis);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path() -> &'static Path {
        Path::new("/p/.checklist/state.yaml")
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            SchemaVersion::parse("0.9.12"),
            Some(SchemaVersion {
                major: 0,
                minor: 9,
                patch: 12
            })
        );
        for bad in [
            "", "0.9", "0.9.0.1", "v0.9.0", "0.9.x", "0..0", "0.9.-1", "0.9.0 ",
        ] {
            assert_eq!(SchemaVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_chain_ends_at_the_current_version_and_every_step_is_reachable() {
        assert_eq!(MIGRATIONS.last().unwrap().to, CURRENT_SCHEMA_VERSION);
        for pair in MIGRATIONS.windows(2) {
            let produced = SchemaVersion::parse(pair[0].to).unwrap();
            assert!(
                pair[1].reads(produced),
                "{} does not lead to {}",
                pair[0].to,
                pair[1].from
            );
        }
    }

    #[test]
    fn plans_name_every_step_and_patch_versions_share_a_series() {
        let plan = plan(&json!({"schemaVersion": "0.8.3"}), path()).unwrap();
        let steps: Vec<_> = plan.steps.iter().map(|s| (s.from, s.to)).collect();
        assert_eq!(steps, [("0.8", "0.9.0"), ("0.9", "1.0.0")]);
        assert_eq!((plan.from.as_str(), plan.to.as_str()), ("0.8.3", "1.0.0"));
        let current = super::plan(&json!({"schemaVersion": "1.4.0"}), path()).unwrap();
        assert!(current.is_current());
        assert_eq!(current.to, "1.4.0");
    }

    #[test]
    fn unreadable_versions_are_refused_naming_the_version() {
        for (version, advice) in [
            (json!("2.0.0"), "reads schema 2.x"),
            (json!("0.7.1"), "no migration"),
            (json!("nine"), "not a MAJOR.MINOR.PATCH"),
            (json!(0.9), "not a MAJOR.MINOR.PATCH"),
        ] {
            let doc = json!({ "schemaVersion": version, "completedSteps": [] });
            let err = migrate(&doc, path()).unwrap_err();
            assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
            let text = err.to_string();
            let shown = version
                .as_str()
                .map_or_else(|| version.to_string(), str::to_owned);
            assert!(text.contains(&shown) && text.contains(advice), "{text}");
        }
        let err = migrate(&json!({"completedSteps": []}), path()).unwrap_err();
        assert!(err.to_string().contains("no schemaVersion"), "{err}");
        assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    }

    #[test]
    fn a_document_of_the_wrong_shape_is_refused_naming_the_field() {
        let doc = json!({
            "schemaVersion": "0.8.0",
            "instance": {"id": "i", "template": "t", "status": "exploded",
                         "startedAt": 0, "lastModifiedAt": 0},
            "completedSteps": [],
        });
        let before = doc.clone();
        let err = migrate(&doc, path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/activeInstance/status") && text.contains("exploded"),
            "{text}"
        );
        assert_eq!(doc, before);

        let both = json!({"schemaVersion": "0.8.0", "instance": {}, "activeInstance": {}});
        let err = migrate(&both, path()).unwrap_err();
        assert!(
            err.to_string().contains("both instance and activeInstance"),
            "{err}"
        );

        let negative = json!({"schemaVersion": "0.9.0",
            "completedSteps": [{"stepId": "s", "executionTime": -1}]});
        let err = migrate(&negative, path()).unwrap_err();
        assert!(
            err.to_string().contains("/completedSteps/0/executionTime"),
            "{err}"
        );
    }

    #[test]
    fn migration_of_a_current_document_changes_nothing() {
        let doc = json!({"schemaVersion": "1.0.0", "revision": 3, "completedSteps": [],
                         "x-extra": {"a": 1}});
        let migrated = migrate(&doc, path()).unwrap();
        assert_eq!(migrated.value, doc);
        assert!(migrated.steps.is_empty());
        assert_eq!(migrated.changes().count(), 0);
        assert!(!can_migrate("1.0.0"));
        assert!(can_migrate("0.8.0") && can_migrate("0.9.7"));
        assert!(!can_migrate("0.7.0") && !can_migrate("2.0.0"));
    }
}
