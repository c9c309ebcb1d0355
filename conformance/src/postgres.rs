//! Subjects for the `postgres` backend (cargo feature `postgres`): a store and its lock
//! provider on a server, each case under a key of its own in one throwaway schema, with
//! raw access to the document's row and a way to plant the lease of a holder whose
//! session is gone. Used by this crate's tests, the backends' and `checklist
//! conformance --backend postgres`.
//!
//! The hooks the suite calls synchronously (raw access, planting a stale lock, opening
//! a second handle) run their SQL on a thread of their own with its own runtime and
//! connection, so they work from inside any case whatever its runtime.

use std::io;
use std::sync::Arc;

use checklist_backends::{PostgresLockProvider, PostgresOptions, PostgresStore};
use checklist_core::config::Durability;
use checklist_core::{Config, LockInfo, Result};
use tokio_postgres::types::{ToSql, Type};

use crate::{RawAccess, Subject};

/// Where the cases of one run live: a server and a schema of their own.
#[derive(Debug, Clone)]
pub struct PostgresRun {
    base: PostgresOptions,
}

impl PostgresRun {
    /// Cases in `schema` on the server `url` names (`None`: the `PG*` environment).
    /// The schema and its tables are created by the first case that needs them.
    ///
    /// # Errors
    /// [`checklist_core::Error::InvalidConfig`] for an unusable URL or schema name.
    pub fn new(url: Option<&str>, schema: &str) -> Result<Self> {
        let mut base = PostgresOptions::new("conformance").with_schema(schema);
        base.url = url.map(str::to_owned);
        base.location()
            .map_err(|message| checklist_core::Error::InvalidConfig {
                path: "--database-url".into(),
                field: "/backend/url".to_owned(),
                message,
            })?;
        Ok(Self { base })
    }

    /// A throwaway schema name: `checklist_conformance_<8 hex digits>`.
    pub fn throwaway_schema() -> String {
        format!(
            "checklist_conformance_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// The schema the cases use.
    pub fn schema(&self) -> &str {
        &self.base.schema
    }

    /// The server and schema, as messages name them (never a password).
    pub fn location(&self) -> String {
        self.base
            .location()
            .unwrap_or_else(|_| format!("schema {}", self.base.schema))
    }

    /// A fresh, empty subject: a store and lock provider under a new key, with every
    /// hook the suite needs.
    ///
    /// # Errors
    /// As [`PostgresStore::open`].
    pub fn subject(&self, durability: Durability) -> Result<Subject> {
        let mut options = self.base.clone();
        options.key = format!("case-{}", uuid::Uuid::new_v4().simple());
        let config = Config {
            durability,
            ..Config::default()
        };
        let store = PostgresStore::open(&options, &config)?;
        let locks = PostgresLockProvider::open(&options)?;
        let reopen = {
            let (options, config) = (options.clone(), config.clone());
            move || -> Arc<dyn checklist_core::StateStore> {
                Arc::new(PostgresStore::open(&options, &config).expect("options that opened once open again"))
            }
        };
        let reopen_locks = {
            let options = options.clone();
            move || -> Arc<dyn checklist_core::LockProvider> {
                Arc::new(PostgresLockProvider::open(&options).expect("options that opened once open again"))
            }
        };
        let plant = {
            let options = options.clone();
            move |like: &LockInfo| plant_stale_lease(&options, like)
        };
        Ok(Subject::new(Arc::new(store), Arc::new(locks))
            .reopen_with(reopen)
            .reopen_locks_with(reopen_locks)
            .plant_stale_lock_with(plant)
            .raw_access(raw_document(&options))
            .backup_access_with({
                let options = options.clone();
                move |record| raw_backup(&options, &record.id)
            })
            .hold_in_another_process_with(crate::holder::holder_of(crate::holder::LockSpec::Postgres {
                url: options.url.clone(),
                schema: options.schema.clone(),
                key: options.key.clone(),
            }))
            .tear_audit_with(move || tear_audit(&options)))
    }

    /// Drops the schema with everything the cases left in it.
    ///
    /// # Errors
    /// [`checklist_core::Error::Backend`] naming the server.
    pub async fn drop_schema(&self) -> Result<()> {
        let client = self.base.connect().await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.base.schema))
            .await
            .map_err(|e| checklist_core::Error::Backend {
                backend: "postgres".to_owned(),
                operation: "drop the throwaway schema on".to_owned(),
                location: self.location(),
                source: Box::new(e),
            })
    }
}

/// Runs `work` with a connection of its own on a thread of its own, and waits for it.
fn on_own_thread<T, F, W>(options: &PostgresOptions, work: W) -> io::Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    W: FnOnce(tokio_postgres::Client) -> F + Send + 'static,
{
    let options = options.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let client = options.connect().await.map_err(io::Error::other)?;
            work(client).await.map_err(io::Error::other)
        })
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("the SQL thread panicked")))
}

/// The document's row, read and written behind the store's back (as `psql` would).
fn raw_document(options: &PostgresOptions) -> RawAccess {
    let states = options.qualified("states");
    let key = options.key.clone();
    let read = {
        let (options, sql, key) = (
            options.clone(),
            format!("SELECT doc FROM {states} WHERE store = $1"),
            key.clone(),
        );
        move || {
            let (sql, key) = (sql.clone(), key.clone());
            on_own_thread(&options, move |client| async move {
                let row = client.query_typed_opt(&sql, &[(&key, Type::TEXT)]).await?;
                Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
            })
        }
    };
    let write = {
        let (options, sql, key) = (
            options.clone(),
            format!(
                "INSERT INTO {states} (store, revision, checksum, doc) VALUES ($1, 0, '', $2)
                 ON CONFLICT (store) DO UPDATE SET doc = EXCLUDED.doc"
            ),
            key.clone(),
        );
        move |bytes: &[u8]| {
            let (sql, key, bytes) = (sql.clone(), key.clone(), bytes.to_vec());
            on_own_thread(&options, move |client| async move {
                let params: [(&(dyn ToSql + Sync), Type); 2] = [(&key, Type::TEXT), (&bytes, Type::BYTEA)];
                client.execute_typed(&sql, &params).await.map(drop)
            })
        }
    };
    let remove = {
        let (options, sql) = (options.clone(), format!("DELETE FROM {states} WHERE store = $1"));
        move || {
            let (sql, key) = (sql.clone(), key.clone());
            on_own_thread(&options, move |client| async move {
                client.execute_typed(&sql, &[(&key, Type::TEXT)]).await.map(drop)
            })
        }
    };
    RawAccess::new(read, write).removable(remove)
}

/// Writes a lease held by `like`'s holder through a database session that no longer
/// exists (a backend pid the server does not run), last renewed a minute ago and not
/// expired: only the liveness of the session says the holder is gone.
/// The bytes of backup `id`, in its row of the backups table.
fn raw_backup(options: &PostgresOptions, id: &str) -> RawAccess {
    let backups = options.qualified("backups");
    let (key, id) = (options.key.clone(), id.to_owned());
    let read = {
        let (options, sql, key, id) = (
            options.clone(),
            format!("SELECT doc FROM {backups} WHERE store = $1 AND id = $2"),
            key.clone(),
            id.clone(),
        );
        move || {
            let (sql, key, id) = (sql.clone(), key.clone(), id.clone());
            on_own_thread(&options, move |client| async move {
                let row = client
                    .query_typed_opt(&sql, &[(&key, Type::TEXT), (&id, Type::TEXT)])
                    .await?;
                Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
            })
        }
    };
    let write = {
        let (options, sql) = (
            options.clone(),
            format!("UPDATE {backups} SET doc = $3 WHERE store = $1 AND id = $2"),
        );
        move |bytes: &[u8]| {
            let (sql, key, id, bytes) = (sql.clone(), key.clone(), id.clone(), bytes.to_vec());
            on_own_thread(&options, move |client| async move {
                let params: [(&(dyn ToSql + Sync), Type); 3] =
                    [(&key, Type::TEXT), (&id, Type::TEXT), (&bytes, Type::BYTEA)];
                client.execute_typed(&sql, &params).await.map(drop)
            })
        }
    };
    RawAccess::new(read, write)
}

/// Leaves in the audit table what a crash mid-append would if a record were written in
/// pieces: a row holding the first half of a record.
fn tear_audit(options: &PostgresOptions) -> io::Result<()> {
    let sql = format!(
        "INSERT INTO {audit} (store, record) VALUES ($1, $2)",
        audit = options.qualified("audit")
    );
    let key = options.key.clone();
    let line = checklist_core::AuditRecord::new(checklist_core::AuditEvent::Commit).to_line();
    let torn = String::from_utf8_lossy(&line[..line.len() / 2]).into_owned();
    on_own_thread(options, move |client| async move {
        client
            .execute_typed(&sql, &[(&key, Type::TEXT), (&torn, Type::TEXT)])
            .await
            .map(drop)
    })
}

fn plant_stale_lease(options: &PostgresOptions, like: &LockInfo) -> io::Result<()> {
    let holder = serde_json::to_string(like).map_err(io::Error::other)?;
    let lock_id = like.lock_id.clone();
    let key = options.key.clone();
    let sql = format!(
        "INSERT INTO {locks} (store, lock_id, holder, backend_pid, backend_start, acquired_at, renewed_at,
                              expires_at, fence)
         VALUES ($1, $2, $3, 2147483646, now(), now() - interval '1 minute', now() - interval '1 minute',
                 now() + interval '10 minutes', 1)
         ON CONFLICT (store) DO UPDATE SET lock_id = EXCLUDED.lock_id, holder = EXCLUDED.holder,
           backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start,
           acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at,
           expires_at = EXCLUDED.expires_at",
        locks = options.qualified("locks")
    );
    on_own_thread(options, move |client| async move {
        client
            .execute_typed(
                &sql,
                &[(&key, Type::TEXT), (&lock_id, Type::TEXT), (&holder, Type::TEXT)],
            )
            .await
            .map(drop)
    })
}
