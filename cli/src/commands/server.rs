//! The command line's `--database-url`, `--key`, `--schema` and `--no-create-schema`
//! turned into a `postgres` backend's options: what config.yaml keeps (never a
//! password) and what this one run connects with.

use checklist_core::{Error, Result};
use serde_json::{Map, Value};

use crate::args::ServerArgs;

/// The backend options one command was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerOptions {
    /// Written into config.yaml beside `backend.type`.
    pub(crate) backend_options: Map<String, Value>,
    /// Used by this run only (the URL with its password).
    pub(crate) connection_options: Map<String, Value>,
    /// How messages name the store, when one was named.
    location: Option<String>,
    /// Whether the URL given carried a password.
    password_given: bool,
}

/// The backend the `postgres` options belong to.
const POSTGRES: &str = "postgres";

impl ServerOptions {
    /// The options of `checklist init --backend BACKEND …`: empty for any backend but
    /// `postgres`, which needs `--key`; refused when they are given for another.
    pub(crate) fn for_init(backend: Option<&str>, args: &ServerArgs) -> Result<Self> {
        if backend != Some(POSTGRES) {
            if args.any() {
                return Err(Error::invalid(format!(
                    "--database-url, --key, --schema and --no-create-schema are options of the postgres backend, \
                     not of {}; add --backend postgres",
                    backend.unwrap_or("the default (yaml) backend")
                )));
            }
            return Ok(Self::default());
        }
        Self::postgres(args)
    }

    #[cfg(feature = "postgres")]
    fn postgres(args: &ServerArgs) -> Result<Self> {
        use checklist_backends::postgres::{DATABASE_URL_ENV, PostgresOptions};
        let Some(key) = &args.key else {
            return Err(Error::invalid(
                "the postgres backend needs --key KEY, the name of this store on the server; every checkout that \
                 shares the state uses the same key",
            ));
        };
        let mut options = PostgresOptions::new(key.clone());
        if let Some(url) = args
            .database_url
            .clone()
            .or_else(|| std::env::var(DATABASE_URL_ENV).ok().filter(|u| !u.is_empty()))
        {
            options = options.with_url(url);
        }
        if let Some(schema) = &args.schema {
            options = options.with_schema(schema.clone());
        }
        options.create_schema = !args.no_create_schema;
        let invalid = |message: String| Error::invalid(format!("{message}; nothing was created"));
        let backend_options = options.to_config().map_err(invalid)?;
        // Check them as a later command will read them back from config.yaml.
        PostgresOptions::from_config(&backend_options, std::path::Path::new("--database-url"))?;
        let mut connection_options = Map::new();
        if let Some(url) = &options.url {
            connection_options.insert("url".into(), Value::String(url.clone()));
        }
        Ok(Self {
            location: Some(options.location().map_err(invalid)?),
            password_given: options.has_password_in_url(),
            backend_options,
            connection_options,
        })
    }

    #[cfg(not(feature = "postgres"))]
    fn postgres(_args: &ServerArgs) -> Result<Self> {
        Err(Error::Unsupported {
            operation: "the postgres backend (this checklist was built without its `postgres` feature)"
                .to_owned(),
            backend: POSTGRES.to_owned(),
            location: "this build".to_owned(),
        })
    }

    /// ` on <server> (schema …, key …)` for a store on a server, else nothing.
    pub(crate) fn describe_location(&self) -> String {
        self.location
            .as_deref()
            .map_or_else(String::new, |location| format!(" on {location}"))
    }

    /// The sentence that says a password was used and not kept, when one was given.
    pub(crate) fn password_note(&self) -> Option<&'static str> {
        self.password_given.then_some(
            "The password in the database URL was used for this command only and is not in config.yaml; later \
             commands take it from PGPASSWORD, ~/.pgpass or CHECKLIST_DATABASE_URL.",
        )
    }
}

/// The postgres run `checklist conformance` asks for — `--backend postgres`, or no
/// `--backend` in a project whose config.yaml names postgres — in a throwaway schema
/// on the server `--database-url` (else `CHECKLIST_DATABASE_URL`, else config.yaml,
/// else the `PG*` environment) names; `None` for any other backend.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_run(
    root: &std::path::Path,
    backend: Option<&str>,
    args: &ServerArgs,
) -> Result<Option<checklist_conformance::postgres::PostgresRun>> {
    use checklist_backends::postgres::DATABASE_URL_ENV;
    use checklist_backends::vfs::RealFs;
    use checklist_backends::{Layout, load_config};
    let configured = || -> Result<Option<checklist_core::Config>> {
        let layout = Layout::for_project(root);
        if !layout.config().exists() {
            return Ok(None);
        }
        load_config(&RealFs, &layout).map(Some)
    };
    let config = match backend {
        Some(POSTGRES) => configured().ok().flatten(),
        Some(_) => return Ok(None),
        None => match configured()? {
            Some(config) if config.backend.kind == POSTGRES => Some(config),
            _ => return Ok(None),
        },
    };
    let url = args
        .database_url
        .clone()
        .or_else(|| std::env::var(DATABASE_URL_ENV).ok().filter(|u| !u.is_empty()))
        .or_else(|| {
            config
                .as_ref()
                .filter(|c| c.backend.kind == POSTGRES)
                .and_then(|c| c.backend.options.get("url"))
                .and_then(|url| url.as_str().map(str::to_owned))
        });
    if args.schema.is_some() || args.key.is_some() || args.no_create_schema {
        return Err(Error::invalid(
            "checklist conformance runs the suite in a throwaway schema of its own, which it drops afterwards; \
             it takes --database-url, not --schema, --key or --no-create-schema",
        ));
    }
    let schema = checklist_conformance::postgres::PostgresRun::throwaway_schema();
    checklist_conformance::postgres::PostgresRun::new(url.as_deref(), &schema).map(Some)
}
