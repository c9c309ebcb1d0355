//! The tables of the `postgres` backend, in one schema that holds many stores (a row
//! per store, keyed by the store key), and their creation: only when they are missing,
//! serialized across concurrent `init`s, never with interpolated user input
//! (docs/decisions/0022-postgres-backend.md).

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

/// The layout version this build writes and reads (`meta.layout_version`).
pub(crate) const LAYOUT_VERSION: i64 = 1;

/// The default schema.
pub(crate) const DEFAULT_SCHEMA: &str = "checklist";

/// Longest store key accepted, in bytes.
pub(crate) const MAX_KEY_LEN: usize = 200;

/// Checks a schema name before it becomes part of SQL: lower-case ASCII letters,
/// digits and `_`, starting with a letter or `_`, at most 63 bytes (PostgreSQL's
/// identifier limit), and not one of PostgreSQL's own (`pg_*`, `information_schema`).
/// It is then always written quoted.
pub(crate) fn check_schema_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "the schema name {:?} is not allowed: use 1 to 63 lower-case ASCII letters, digits and '_', \
             starting with a letter or '_'",
            name.chars().take(80).collect::<String>()
        ));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err(format!(
            "the schema name {name:?} belongs to PostgreSQL itself; choose another"
        ));
    }
    Ok(())
}

/// Checks a store key: 1 to [`MAX_KEY_LEN`] bytes of ASCII letters, digits and
/// `-_.:/@`. It only ever travels as a bound parameter; the check keeps keys that
/// people can type, read and grep for.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the store key {:?} is not allowed: use 1 to {MAX_KEY_LEN} ASCII letters, digits and '-_.:/@'",
            key.chars().take(80).collect::<String>()
        ))
    }
}

/// The schema-qualified, quoted names of the tables.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    /// The schema, unquoted (checked by [`check_schema_name`]).
    pub(crate) schema: String,
    pub(crate) meta: String,
    pub(crate) states: String,
    pub(crate) backups: String,
    pub(crate) audit: String,
    pub(crate) archive: String,
    pub(crate) archive_order: String,
    pub(crate) quarantine: String,
    pub(crate) locks: String,
    pub(crate) lock_waiters: String,
}

impl Tables {
    /// The tables of `schema`, which must have passed [`check_schema_name`].
    pub(crate) fn new(schema: &str) -> Self {
        let name = |table: &str| format!("\"{schema}\".\"{table}\"");
        Self {
            schema: schema.to_owned(),
            meta: name("meta"),
            states: name("states"),
            backups: name("backups"),
            audit: name("audit"),
            archive: name("archive"),
            archive_order: name("archive_order"),
            quarantine: name("quarantine"),
            locks: name("locks"),
            lock_waiters: name("lock_waiters"),
        }
    }

    /// The `LISTEN`/`NOTIFY` channel on which releases of locks of this schema are
    /// announced (the payload is the store key).
    pub(crate) fn lock_channel(&self) -> String {
        channel("checklist_lock_", &self.schema)
    }

    /// The `LISTEN`/`NOTIFY` channel on which changes to the stores of this schema are
    /// announced (the payload is the store key): a commit and an audit record notify
    /// it in their own transaction, so a follower hears of them when they commit.
    pub(crate) fn change_channel(&self) -> String {
        channel("checklist_change_", &self.schema)
    }

    /// The names of the relations of the layout, unqualified.
    const RELATIONS: [&'static str; 9] = [
        "meta",
        "states",
        "backups",
        "audit",
        "archive",
        "archive_order",
        "quarantine",
        "locks",
        "lock_waiters",
    ];

    /// The DDL of the layout; `CREATE SCHEMA` only with `create_schema` (it needs the
    /// `CREATE` privilege on the database even when the schema is there).
    fn ddl(&self, create_schema: bool) -> String {
        let Self {
            schema,
            meta,
            states,
            backups,
            audit,
            archive,
            archive_order,
            quarantine,
            locks,
            lock_waiters,
        } = self;
        let create_schema = if create_schema {
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";")
        } else {
            String::new()
        };
        format!(
            "{create_schema}
             CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text NOT NULL);
             CREATE TABLE IF NOT EXISTS {states} (
               store text PRIMARY KEY, revision bigint NOT NULL, checksum text NOT NULL,
               doc bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {backups} (
               store text NOT NULL, id text NOT NULL, revision bigint NOT NULL, checksum text NOT NULL,
               size bigint NOT NULL, created_at timestamptz NOT NULL, reason text NOT NULL, doc bytea NOT NULL,
               PRIMARY KEY (store, id));
             CREATE TABLE IF NOT EXISTS {audit} (
               store text NOT NULL, seq bigserial NOT NULL, part integer NOT NULL DEFAULT 0,
               record text NOT NULL, PRIMARY KEY (store, seq));
             CREATE SEQUENCE IF NOT EXISTS {archive_order};
             CREATE TABLE IF NOT EXISTS {archive} (
               store text NOT NULL, instance_id text NOT NULL, seq bigint NOT NULL, entry text NOT NULL,
               doc bytea NOT NULL, PRIMARY KEY (store, instance_id));
             CREATE TABLE IF NOT EXISTS {quarantine} (
               store text NOT NULL, id text NOT NULL, seq bigserial NOT NULL, record text NOT NULL,
               doc bytea NOT NULL, PRIMARY KEY (store, id));
             CREATE TABLE IF NOT EXISTS {locks} (
               store text PRIMARY KEY, lock_id text, holder text, backend_pid integer,
               backend_start timestamptz, acquired_at timestamptz, renewed_at timestamptz,
               expires_at timestamptz NOT NULL, fence bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS {lock_waiters} (
               store text NOT NULL, waiter_id text NOT NULL, pid integer NOT NULL, hostname text NOT NULL,
               since timestamptz NOT NULL DEFAULT now(), backend_pid integer NOT NULL,
               backend_start timestamptz NOT NULL, PRIMARY KEY (store, waiter_id));
             INSERT INTO {meta} (key, value) VALUES ('layout_version', '{LAYOUT_VERSION}')
               ON CONFLICT (key) DO NOTHING;"
        )
    }
}

/// The channel `prefix` + `schema`, or, where that is longer than the server's 63-byte
/// limit on names (`pg_notify` refuses it, `LISTEN` would cut it), `prefix` + the first
/// 16 hex digits of the schema's SHA-256: a name of the same schema on every checkout.
fn channel(prefix: &str, schema: &str) -> String {
    const NAME_LIMIT: usize = 63;
    let name = format!("{prefix}{schema}");
    if name.len() <= NAME_LIMIT {
        return name;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(schema.as_bytes());
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    format!("{prefix}{hex}")
}

/// What [`bootstrap`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The tables are there at this build's version.
    Ready,
    /// They are missing and may not be created (`createSchema: false`).
    Missing,
    /// They are at a newer layout version, written by a newer checklist.
    Newer(i64),
    /// `meta` is there but says nothing this build understands.
    Unknown,
}

/// Makes sure the tables of `tables` exist at [`LAYOUT_VERSION`]. Nothing is created
/// when they are there (a least-privilege role needs no `CREATE`); when some are
/// missing and `create` allows it, they are created under a transaction-scoped
/// advisory lock of the schema, so concurrent first uses do not race each other's DDL.
pub(crate) async fn bootstrap(
    client: &mut Client,
    tables: &Tables,
    create: bool,
) -> Result<Layout, tokio_postgres::Error> {
    if let Some(layout) = existing_layout(client, tables).await? {
        return Ok(layout);
    }
    if !create {
        return Ok(Layout::Missing);
    }
    let transaction = client.transaction().await?;
    transaction
        .query_typed(
            "SELECT pg_advisory_xact_lock(hashtextextended('checklist:ddl:' || $1, 0))",
            &[(&tables.schema, Type::TEXT)],
        )
        .await?;
    // What an earlier holder of the lock made, read with a snapshot taken after the
    // lock was granted: the catalog caches of this session (or of the server
    // connection a pooler lends it) may predate that commit, and `CREATE SCHEMA IF NOT
    // EXISTS` trusting them fails with a duplicate key in pg_namespace.
    let relations: Vec<&str> = Tables::RELATIONS.to_vec();
    let found = transaction
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = ANY($2))",
            &[(&tables.schema, Type::TEXT), (&relations, Type::TEXT_ARRAY)],
        )
        .await?;
    let (schema_exists, present): (bool, i64) = (found.get(0), found.get(1));
    if usize::try_from(present).unwrap_or(0) < relations.len() {
        transaction.batch_execute(&tables.ddl(!schema_exists)).await?;
    }
    transaction.commit().await?;
    Ok(existing_layout(client, tables).await?.unwrap_or(Layout::Unknown))
}

/// The layout of the tables that are there, `None` when any is missing.
async fn existing_layout(client: &Client, tables: &Tables) -> Result<Option<Layout>, tokio_postgres::Error> {
    let names = [
        &tables.meta,
        &tables.states,
        &tables.backups,
        &tables.audit,
        &tables.archive,
        &tables.archive_order,
        &tables.quarantine,
        &tables.locks,
        &tables.lock_waiters,
    ];
    let params: Vec<(&(dyn ToSql + Sync), Type)> = names
        .iter()
        .map(|name| (*name as &(dyn ToSql + Sync), Type::TEXT))
        .collect();
    let row = client
        .query_typed_one(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL
                AND to_regclass($4) IS NOT NULL AND to_regclass($5) IS NOT NULL AND to_regclass($6) IS NOT NULL
                AND to_regclass($7) IS NOT NULL AND to_regclass($8) IS NOT NULL AND to_regclass($9) IS NOT NULL",
            &params,
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let version = client
        .query_typed_opt(
            &format!("SELECT value FROM {} WHERE key = 'layout_version'", tables.meta),
            &[],
        )
        .await?
        .and_then(|row| row.get::<_, String>(0).parse::<i64>().ok());
    Ok(Some(match version {
        Some(LAYOUT_VERSION) => Layout::Ready,
        Some(newer) if newer > LAYOUT_VERSION => Layout::Newer(newer),
        _ => Layout::Unknown,
    }))
}

/// Makes sure the tables are there at [`LAYOUT_VERSION`] ([`bootstrap`]), or says in
/// one error naming `location` why they cannot be used.
pub(crate) async fn ensure_layout(
    client: &mut Client,
    tables: &Tables,
    create: bool,
    location: &str,
) -> checklist_core::Result<()> {
    use checklist_core::Error;
    let backend_error = |operation: &str, source: Box<dyn std::error::Error + Send + Sync>| Error::Backend {
        backend: super::BACKEND_NAME.to_owned(),
        operation: operation.to_owned(),
        location: location.to_owned(),
        source,
    };
    let operation = if create {
        "find or create the tables in"
    } else {
        "find the tables in"
    };
    let layout = bootstrap(client, tables, create)
        .await
        .map_err(|e| backend_error(operation, super::session::explained(e)))?;
    match layout {
        Layout::Ready => Ok(()),
        Layout::Missing => Err(backend_error(
            "find the tables in",
            format!(
                "the schema {} has no checklist tables and createSchema is false; have a role that may create \
                 them run `checklist init` once, or set createSchema: true",
                tables.schema
            )
            .into(),
        )),
        Layout::Newer(version) => Err(Error::UnsupportedVersion {
            path: location.into(),
            found: format!("{version} (of the tables in schema {})", tables.schema),
            supported: format!("{LAYOUT_VERSION} (of the tables)"),
            typescript: false,
            upgrade: checklist_core::Upgrade::Newer {
                major: u64::try_from(version).unwrap_or_default(),
            },
        }),
        Layout::Unknown => Err(backend_error(
            "read the layout of",
            format!(
                "{} does not say which layout the tables of schema {} have; they were not made by checklist or \
                 were changed by hand",
                tables.meta, tables.schema
            )
            .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_fit_the_servers_name_limit_and_differ_by_schema() {
        let longest = "s".repeat(63);
        let other = format!("{}t", "s".repeat(62));
        for schema in ["checklist", longest.as_str(), other.as_str()] {
            for channel in [
                channel("checklist_lock_", schema),
                channel("checklist_change_", schema),
            ] {
                assert!(channel.len() <= 63, "{channel}");
            }
        }
        assert_eq!(
            channel("checklist_change_", "checklist"),
            "checklist_change_checklist"
        );
        assert_ne!(
            channel("checklist_change_", &longest),
            channel("checklist_change_", &other)
        );
    }

    #[test]
    fn hostile_schema_names_and_keys_are_refused() {
        for bad in [
            "",
            "Upper",
            "a-b",
            "a\"; DROP TABLE x; --",
            "with space",
            "9lives",
            "pg_catalog",
            "information_schema",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
        for good in ["checklist", "_x", "team_42"] {
            check_schema_name(good).unwrap();
        }
        for bad in ["", "a b", "x'y", "tab\t", "naïve", &"k".repeat(201)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["app", "org/app:main", "ci.runner-1@eu"] {
            check_key(good).unwrap();
        }
        assert_eq!(Tables::new("s").states, "\"s\".\"states\"");
    }
}
