//! `.checklist/config.yaml`: which backend, how durable, lock, backup, audit, recovery
//! and secret-scanning settings (docs/file-formats.md, "config.yaml").
//!
//! Every field is optional and takes its default when missing; a missing file means
//! all defaults. Unknown fields are refused so that a typo is reported, naming the
//! field, instead of silently ignored.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::lock::info::LockNote;
use crate::schema;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Format version of the configuration file; always 1.
    pub version: u32,
    /// Which backend stores the state.
    pub backend: BackendSelection,
    /// Whether writes are fsynced.
    pub durability: Durability,
    /// Lock timing.
    pub lock: LockSettings,
    /// Backup retention.
    pub backup: BackupSettings,
    /// Audit log rotation.
    pub audit: AuditSettings,
    /// Corruption recovery.
    pub recovery: RecoverySettings,
    /// Secret scanning of written documents.
    pub secrets: SecretSettings,
    /// Size limits on what the store reads.
    pub limits: LimitSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: 1,
            backend: BackendSelection::default(),
            durability: Durability::Full,
            lock: LockSettings::default(),
            backup: BackupSettings::default(),
            audit: AuditSettings::default(),
            recovery: RecoverySettings::default(),
            secrets: SecretSettings::default(),
            limits: LimitSettings::default(),
        }
    }
}

/// `backend:` — the registered backend name and its own options, beside it
/// (`backend: {type: postgres, url: …, key: …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawBackendSelection")]
pub struct BackendSelection {
    /// The registered backend name: `yaml`, `json`, `memory` or a custom one.
    #[serde(rename = "type")]
    pub kind: String,
    /// Options passed to the backend's factory as they are: every key of `backend:`
    /// but `type`.
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

/// `backend:` as written: the options beside `type`, or (as earlier builds wrote
/// them) under `options:`.
#[derive(Deserialize)]
struct RawBackendSelection {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl From<RawBackendSelection> for BackendSelection {
    fn from(raw: RawBackendSelection) -> Self {
        let mut options = raw.rest;
        if let Some(Value::Object(nested)) = options.remove("options") {
            for (key, value) in nested {
                options.entry(key).or_insert(value);
            }
        }
        Self {
            kind: raw.kind,
            options,
        }
    }
}

impl Default for BackendSelection {
    fn default() -> Self {
        Self::named("yaml")
    }
}

impl BackendSelection {
    /// A selection of the backend `name` without options.
    pub fn named(name: &str) -> Self {
        Self {
            kind: name.to_owned(),
            options: Map::new(),
        }
    }
}

/// Whether writes are made durable with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync the file before the rename and the directory after it (the default).
    Full,
    /// Skip the fsyncs: still atomic, but a power loss may lose the last writes.
    /// For tests and throwaway runs.
    Fast,
}

/// `lock:` — lock timing, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockSettings {
    /// How long to wait for the lock before giving up (default 5000).
    pub timeout_ms: u64,
    /// How often to retry while waiting (default 100).
    pub retry_interval_ms: u64,
    /// How long a lock lives without renewal (default 30000); renewed every third.
    pub expiry_ms: u64,
    /// The note this run's locks carry ([`LockNote`]). Never read from config.yaml: a
    /// note says why one run holds the lock, so it comes from that run (`--lock-note`,
    /// `CHECKLIST_LOCK_NOTE`, or a library caller that sets it).
    #[serde(skip)]
    pub note: Option<LockNote>,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            retry_interval_ms: 100,
            expiry_ms: 30_000,
            note: None,
        }
    }
}

impl LockSettings {
    /// The timeout as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// The retry interval as a [`Duration`].
    pub fn retry_interval(&self) -> Duration {
        Duration::from_millis(self.retry_interval_ms)
    }
    /// The expiry as a [`Duration`].
    pub fn expiry(&self) -> Duration {
        Duration::from_millis(self.expiry_ms)
    }
}

/// `backup:` — retention of state backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackupSettings {
    /// How many rolling backups to keep (default 3).
    pub keep: usize,
    /// Prune backups older than this many days (default: no age limit).
    pub max_age_days: Option<u32>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            keep: 3,
            max_age_days: None,
        }
    }
}

/// `audit:` — audit log rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditSettings {
    /// Rotate `audit.log` when it exceeds this many bytes (default 1 MiB).
    pub max_bytes: u64,
    /// Keep this many rotated files (default 5).
    pub keep_files: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            keep_files: 5,
        }
    }
}

/// `recovery:` — automatic corruption recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecoverySettings {
    /// Recover automatically on load (default true).
    pub auto: bool,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self { auto: true }
    }
}

/// The default of `limits.maxStateBytes`: 64 MiB, far above any real checklist (a
/// state with 10,000 steps is about 3 MiB) and well under what the YAML parser's own
/// budgets accept.
pub const DEFAULT_MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// `limits:` — the largest files the store reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitSettings {
    /// Largest state file (and backup, archived instance) read or written, in bytes
    /// (default [`DEFAULT_MAX_STATE_BYTES`]). A larger file is refused with
    /// [`Error::TooLarge`] before it is parsed, which bounds the memory a hostile file
    /// can make a command use.
    pub max_state_bytes: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
        }
    }
}

/// `secrets:` — what to do when a written document contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretSettings {
    /// The scanning mode.
    pub mode: SecretMode,
}

/// How secrets in written documents are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretMode {
    /// Refuse the write (the default).
    #[default]
    Reject,
    /// Replace the secret with a marker and audit the redaction.
    Redact,
    /// Do not scan.
    Off,
}

impl Config {
    /// Builds a configuration from a parsed file, validating it against
    /// `schemas/config.schema.json`. A `null` document (an empty file) means all
    /// defaults. `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the offending field.
    pub fn from_value(value: Value, path: &Path) -> Result<Self> {
        let value = match value {
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        schema::validate_config(&value).map_err(|v| Error::InvalidConfig {
            path: path.to_owned(),
            field: v.field_path,
            message: v.message,
        })?;
        serde_json::from_value(value).map_err(|e| Error::InvalidConfig {
            path: path.to_owned(),
            field: "/".to_owned(),
            message: e.to_string(),
        })
    }

    /// The configuration as a document, every field written out.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p() -> &'static Path {
        Path::new("/p/.checklist/config.yaml")
    }

    #[test]
    fn empty_means_defaults() {
        assert_eq!(Config::from_value(Value::Null, p()).unwrap(), Config::default());
        assert_eq!(Config::from_value(json!({}), p()).unwrap(), Config::default());
    }

    #[test]
    fn partial_config_fills_in_defaults() {
        let c = Config::from_value(
            json!({"backend": {"type": "json"}, "lock": {"timeoutMs": 50}}),
            p(),
        )
        .unwrap();
        assert_eq!(c.backend.kind, "json");
        assert_eq!(c.lock.timeout_ms, 50);
        assert_eq!(c.lock.retry_interval_ms, 100);
        assert_eq!(c.durability, Durability::Full);
    }

    #[test]
    fn backend_options_sit_beside_the_type_and_nested_ones_still_read() {
        let beside = json!({"backend": {"type": "postgres", "key": "app", "schema": "team"}});
        let c = Config::from_value(beside.clone(), p()).unwrap();
        assert_eq!(c.backend.kind, "postgres");
        assert_eq!(c.backend.options["key"], "app");
        assert_eq!(
            c.to_value()["backend"],
            beside["backend"],
            "written back beside the type"
        );
        let nested = json!({"backend": {"type": "postgres", "options": {"key": "app", "schema": "team"}}});
        assert_eq!(Config::from_value(nested, p()).unwrap().backend, c.backend);
    }

    #[test]
    fn invalid_values_name_the_field() {
        let err = Config::from_value(json!({"durability": "sometimes"}), p()).unwrap_err();
        match &err {
            Error::InvalidConfig { field, .. } => assert_eq!(field, "/durability"),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("config.yaml"), "{err}");
        let err = Config::from_value(json!({"backup": {"keep": 0}}), p()).unwrap_err();
        assert!(err.to_string().contains("/backup/keep"), "{err}");
    }

    #[test]
    fn the_state_size_limit_is_configurable_within_bounds() {
        let c = Config::from_value(json!({"limits": {"maxStateBytes": 65536}}), p()).unwrap();
        assert_eq!(c.limits.max_state_bytes, 65536);
        assert_eq!(Config::default().limits.max_state_bytes, DEFAULT_MAX_STATE_BYTES);
        for out_of_range in [json!(1024), json!(DEFAULT_MAX_STATE_BYTES + 1), json!("64MiB")] {
            let err =
                Config::from_value(json!({"limits": {"maxStateBytes": out_of_range}}), p()).unwrap_err();
            assert!(err.to_string().contains("/limits/maxStateBytes"), "{err}");
        }
    }

    #[test]
    fn round_trips_through_its_document_form() {
        let mut c = Config {
            backend: BackendSelection::named("json"),
            ..Config::default()
        };
        c.backup.max_age_days = Some(30);
        assert_eq!(Config::from_value(c.to_value(), p()).unwrap(), c);
    }
}
