//! The PostgreSQL backend (cargo feature `postgres`): one state shared by every
//! checkout and CI runner that reaches the server, with a lock that names its holder
//! from any machine.
//!
//! `backend: {type: postgres, url, schema, key}` in config.yaml selects it. One schema
//! (default `checklist`) holds many stores, each a row keyed by its store key in each
//! table. The document is kept as its exact bytes (JSON, as the JSON backend writes
//! it), so the checksum, `verify`, raw access, quarantine and recovery behave as for
//! files; every write is one SQL transaction — the compare-and-swap on the bytes
//! read, the backup of what it replaces, the pruning the policy asks for and the audit
//! record. The lock is a lease row ([`PostgresLockProvider`]). The tables are created
//! only where they are missing (`createSchema: false` never creates them).
//! docs/decisions/0022-postgres-backend.md has the design, docs/scale-out.md how to
//! run it for a team.
//!
//! ```no_run
//! # async fn demo() -> checklist_core::Result<()> {
//! use checklist_backends::postgres::{PostgresOptions, PostgresStore};
//! use checklist_core::{ChecklistState, DocumentStoreExt, Expectation};
//!
//! let options = PostgresOptions::new("team-app").with_url("postgres://ci@db.internal/checklist");
//! let store = PostgresStore::open(&options, &checklist_core::Config::default())?;
//! store.commit(&ChecklistState::new(), Expectation::Absent).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use checklist_core::archive::{ArchivedInstance, HistoryEntry};
use checklist_core::backup::BackupIndexRebuild;
use checklist_core::codec::Codec;
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord};
use checklist_core::store::Capabilities;
use checklist_core::{
    ArchiveStore, AuditLog, AuditRecord, AuditTrail, Backend, BackendFactory, BackupRecord, BackupStore,
    ChangeFeed, ChangeWatch, Config, DocumentStore, Error, OpenContext, QuarantineStore, Result, StoreInfo,
    WriteReceipt, WriteRequest,
};
use serde_json::{Map, Value};

use crate::codec::json::JsonCodec;

/// Runs the async block `$work`, which uses `$session: &mut Session`, on the
/// session of `$this` (a store's or a lock provider's: each has `session`, `timed` and
/// `settle`), bounded by the operation timeout; what goes wrong becomes an error naming
/// `$operation`, and a session that broke or did not answer is dropped.
macro_rules! on_session {
    ($this:expr, $operation:expr, |$session:ident| $work:expr) => {{
        let mut guard = $this.session().await?;
        let $session = guard.as_mut().expect("connected by session()");
        let outcome = $this.timed($work).await;
        $this.settle(&mut guard, $operation, outcome)
    }};
}

mod lock;
mod schema;
mod server;
mod session;
mod store;
mod watch;

pub use lock::PostgresLockProvider;

/// The name the backend is registered under (`backend: {type: postgres}`).
pub const BACKEND_NAME: &str = "postgres";

/// The environment variable whose URL (password included) overrides config.yaml's
/// `backend.url`, so a password never has to be written to a file.
pub const DATABASE_URL_ENV: &str = "CHECKLIST_DATABASE_URL";

/// How long one operation may wait for the server by default.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a `postgres` store is: config.yaml's `backend` options. Its `Debug` shows the
/// URL without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// `url`: a `postgres://` URL; what it leaves out comes from the `PG*` environment
    /// variables and the password file, as with libpq. `None`: the environment alone.
    pub url: Option<String>,
    /// `schema`: where the tables are (default `checklist`).
    pub schema: String,
    /// `key`: which store of the schema this is; every checkout that shares the state
    /// uses the same key.
    pub key: String,
    /// `createSchema`: create the schema and tables when they are missing (default
    /// `true`); `false` for a role that may only use them.
    pub create_schema: bool,
    /// `operationTimeoutMs`: how long one operation may wait for the server.
    pub operation_timeout: Duration,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.url.as_deref().map(server::strip_password))
            .field("schema", &self.schema)
            .field("key", &self.key)
            .field("create_schema", &self.create_schema)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

impl PostgresOptions {
    /// The store `key` in the default schema, reached through the environment.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            url: None,
            schema: schema::DEFAULT_SCHEMA.to_owned(),
            key: key.into(),
            create_schema: true,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// These options with `url`.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// These options with the tables in `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Reads config.yaml's `backend` options (`url`, `schema`, `key`, `createSchema`,
    /// `operationTimeoutMs`); `CHECKLIST_DATABASE_URL`, when set, replaces `url`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field, with `config_path` as the file.
    pub fn from_config(options: &Map<String, Value>, config_path: &std::path::Path) -> Result<Self> {
        let invalid = |field: &str, message: String| Error::InvalidConfig {
            path: config_path.to_owned(),
            field: format!("/backend/{field}"),
            message,
        };
        let text = |field: &str| -> Result<Option<String>> {
            match options.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(invalid(field, format!("must be a string, not {other}"))),
            }
        };
        let key = text("key")?.ok_or_else(|| {
            invalid(
                "key",
                "the postgres backend needs a store key (`checklist init --backend postgres --key KEY`): every \
                 checkout that shares the state uses the same one"
                    .to_owned(),
            )
        })?;
        schema::check_key(&key).map_err(|message| invalid("key", message))?;
        let schema = text("schema")?.unwrap_or_else(|| schema::DEFAULT_SCHEMA.to_owned());
        schema::check_schema_name(&schema).map_err(|message| invalid("schema", message))?;
        let create_schema = match options.get("createSchema") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(create)) => *create,
            Some(other) => {
                return Err(invalid(
                    "createSchema",
                    format!("must be true or false, not {other}"),
                ));
            }
        };
        let operation_timeout = match options.get("operationTimeoutMs") {
            None | Some(Value::Null) => DEFAULT_OPERATION_TIMEOUT,
            Some(value) => match value.as_u64().filter(|ms| (100..=3_600_000).contains(ms)) {
                Some(ms) => Duration::from_millis(ms),
                None => {
                    return Err(invalid(
                        "operationTimeoutMs",
                        format!("must be a number of milliseconds from 100 to 3600000, not {value}"),
                    ));
                }
            },
        };
        for field in options.keys() {
            if !["url", "schema", "key", "createSchema", "operationTimeoutMs"].contains(&field.as_str()) {
                return Err(invalid(
                    field,
                    "is not an option of the postgres backend (url, schema, key, createSchema, operationTimeoutMs)"
                        .to_owned(),
                ));
            }
        }
        let url = server::process_env(DATABASE_URL_ENV).or(text("url")?);
        Ok(Self {
            url,
            schema,
            key,
            create_schema,
            operation_timeout,
        })
    }

    /// The options as config.yaml keeps them: the URL without its password.
    ///
    /// # Errors
    /// A sentence saying what in the URL or the environment is wrong.
    pub fn to_config(&self) -> std::result::Result<Map<String, Value>, String> {
        let server = self.resolve()?;
        let mut options = Map::new();
        if self.url.is_some() {
            options.insert(
                "url".into(),
                Value::String(server.url_without_password().to_owned()),
            );
        }
        options.insert("schema".into(), Value::String(self.schema.clone()));
        options.insert("key".into(), Value::String(self.key.clone()));
        if !self.create_schema {
            options.insert("createSchema".into(), Value::Bool(false));
        }
        Ok(options)
    }

    fn resolve(&self) -> std::result::Result<server::Server, String> {
        let me = crate::process::ProcessIdentity::current();
        let application_name = format!("checklist/{}@{}", me.pid, me.hostname);
        server::Server::resolve(self.url.as_deref(), &server::process_env, &application_name)
    }

    /// Whether the URL (or the environment) carries a password: `init` says it was
    /// used and not written down.
    pub fn has_password_in_url(&self) -> bool {
        self.url.as_deref().is_some_and(|url| {
            let server = server::Server::resolve(Some(url), &|_| None, "checklist");
            server.is_ok_and(|server| server.url_without_password() != url)
        })
    }

    /// A new connection to the server these options name — their URL, environment,
    /// password file and TLS — for SQL of one's own (administration, inspection, the
    /// conformance suite's raw access). Its connection is driven by a task on the
    /// current tokio runtime and ends when the client is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unusable URL, [`Error::Backend`] naming the
    /// server when it cannot be reached.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (server, _) = checked(self)?;
        let location = location_of(&server, &self.schema, &self.key);
        let session = session::Session::connect(&server, &location, Duration::from_secs(1), None).await?;
        Ok(session.client)
    }

    /// `table` of this store's schema, quoted and qualified for SQL
    /// (`"checklist"."states"`): the tables are `meta`, `states`, `backups`, `audit`,
    /// `archive`, `quarantine`, `locks` and `lock_waiters`, each with a `store` column
    /// holding the key (docs/decisions/0022-postgres-backend.md).
    pub fn qualified(&self, table: &str) -> String {
        format!(
            "\"{}\".\"{}\"",
            self.schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        )
    }

    /// How messages name the store: the server (never a password), the schema and the
    /// key.
    ///
    /// # Errors
    /// A sentence saying what in the URL or the environment is wrong.
    pub fn location(&self) -> std::result::Result<String, String> {
        Ok(location_of(&self.resolve()?, &self.schema, &self.key))
    }
}

fn location_of(server: &server::Server, schema: &str, key: &str) -> String {
    format!("{} (schema {schema}, key {key})", server.display())
}

/// A [`StateStore`](checklist_core::StateStore) keeping its document in a PostgreSQL
/// server; see the [module docs](self). Cheap to clone; clones share one connection,
/// made on first use.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<store::Inner>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.inner.info.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store for `options`, configured by `config` (`durability`: `fast` turns
    /// `synchronous_commit` off for its commits; `limits.maxStateBytes`; `audit`). It
    /// connects on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the URL, the environment, the schema or the key
    /// is not usable.
    pub fn open(options: &PostgresOptions, config: &Config) -> Result<Self> {
        let (server, tables) = checked(options)?;
        let location = location_of(&server, &options.schema, &options.key);
        let settings = store::Settings {
            create_schema: options.create_schema,
            durability: config.durability,
            max_state_bytes: config.limits.max_state_bytes,
            audit: config.audit.clone(),
            operation_timeout: options.operation_timeout,
        };
        let info = StoreInfo::new(
            BACKEND_NAME,
            location,
            Capabilities::PERSISTENT
                .with_transactional_audit()
                .with_pushed_changes(true),
        );
        Ok(Self {
            inner: Arc::new(store::Inner::new(
                info,
                server,
                tables,
                options.key.clone(),
                settings,
            )),
        })
    }
}

impl PostgresLockProvider {
    /// The lock of the store `options` names. It connects on first use.
    ///
    /// # Errors
    /// As [`PostgresStore::open`].
    pub fn open(options: &PostgresOptions) -> Result<Self> {
        let (server, tables) = checked(options)?;
        let location = location_of(&server, &options.schema, &options.key);
        Ok(Self {
            shared: Arc::new(lock::LockShared::new(
                server,
                tables,
                options.key.clone(),
                &location,
                options.operation_timeout,
                options.create_schema,
            )),
        })
    }
}

fn checked(options: &PostgresOptions) -> Result<(server::Server, schema::Tables)> {
    let invalid = |field: &str, message: String| Error::InvalidConfig {
        path: "config.yaml".into(),
        field: format!("/backend/{field}"),
        message,
    };
    schema::check_schema_name(&options.schema).map_err(|m| invalid("schema", m))?;
    schema::check_key(&options.key).map_err(|m| invalid("key", m))?;
    let server = options.resolve().map_err(|m| invalid("url", m))?;
    Ok((server, schema::Tables::new(&options.schema)))
}

/// A factory for the `postgres` backend: a [`PostgresStore`] and its
/// [`PostgresLockProvider`] for config.yaml's `backend` options (one provider per store
/// in a registry, so the tasks of one process waiting for the lock are woken as soon as
/// one of them releases it). [`builtin_registry`](crate::builtin_registry) registers it
/// as `postgres` with the crate's `postgres` feature.
pub fn postgres_backend_factory() -> impl BackendFactory {
    PostgresFactory::default()
}

/// Which store a lock provider guards: the URL, the schema and the key.
type StoreId = (Option<String>, String, String);

#[derive(Default)]
struct PostgresFactory {
    locks: Mutex<HashMap<StoreId, PostgresLockProvider>>,
}

#[async_trait]
impl BackendFactory for PostgresFactory {
    async fn open(&self, ctx: &OpenContext<'_>) -> Result<Backend> {
        let options =
            PostgresOptions::from_config(&ctx.config.backend.options, &ctx.dir.join("config.yaml"))?;
        let store = PostgresStore::open(&options, ctx.config)?;
        let locks = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            let id = (options.url.clone(), options.schema.clone(), options.key.clone());
            match locks.get(&id) {
                Some(locks) => locks.clone(),
                None => {
                    let provider = PostgresLockProvider::open(&options)?;
                    locks.insert(id, provider.clone());
                    provider
                }
            }
        };
        Ok(Backend {
            store: Arc::new(store),
            locks: Arc::new(locks),
        })
    }
}

#[async_trait]
impl DocumentStore for PostgresStore {
    fn info(&self) -> &StoreInfo {
        &self.inner.info
    }

    fn codec(&self) -> &dyn Codec {
        &JsonCodec
    }

    async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.inner.read_raw().await
    }

    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        self.inner.write(request).await
    }
}

#[async_trait]
impl AuditTrail for PostgresStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.inner.append_audit(record).await
    }

    async fn read_audit(&self) -> Result<AuditLog> {
        self.inner.read_audit().await
    }

    async fn rotate_audit(&self) -> Result<bool> {
        self.inner.rotate_audit().await
    }
}

#[async_trait]
impl BackupStore for PostgresStore {
    async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        self.inner.create_backup(reason).await
    }

    async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        self.inner.list_backups().await
    }

    async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        self.inner.read_backup(id).await
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        self.inner.delete_backup(id).await
    }

    async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        self.inner.rebuild_backup_index()
    }

    async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        self.inner.import_backup(record, document).await
    }
}

#[async_trait]
impl ArchiveStore for PostgresStore {
    async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        self.inner.archive(archived).await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.inner.history().await
    }

    async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        self.inner.read_archived(instance_id).await
    }
}

#[async_trait]
impl QuarantineStore for PostgresStore {
    async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        self.inner.quarantine(found, note).await
    }

    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.inner.list_quarantine().await
    }

    async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.inner.read_quarantined(id).await
    }

    async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
        self.inner.import_quarantined(record, found).await
    }
}

#[async_trait]
impl ChangeFeed for PostgresStore {
    async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
        Ok(Box::new(
            watch::PostgresWatch::start(Arc::clone(&self.inner)).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_show_a_password() {
        let options = PostgresOptions::new("app").with_url("postgres://u:hunter2@h/db?sslmode=disable");
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u@h/db"), "{shown}");
    }
}
