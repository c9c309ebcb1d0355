//! A throwaway PostgreSQL server for the tests and benchmarks of any crate (feature
//! `postgres`).
//!
//! [`test_server`] is the server a test process shares: the one `CHECKLIST_PG_URL`
//! names (a superuser URL such as `postgres://postgres@127.0.0.1:5432/postgres`; the
//! harness starts nothing), or else a cluster of its own, made once per process from the
//! installed binaries (`initdb`, `postgres`, `openssl`) in a temp directory, listening on
//! 127.0.0.1 on a free port, with TLS ([`PgServer::ca_cert`], a client certificate, and a
//! CA that did not sign the server) and a `pg_hba.conf` that trusts `postgres`, checks
//! the client certificate of [`TLS_CLIENT_ROLE`] and asks every other role for its
//! password (`scram-sha-256`). When neither is possible it returns `None` and
//! [`why_no_server`] says why — unless `CHECKLIST_REQUIRE_PG=1`, which makes it panic
//! with that reason, so CI cannot skip silently.
//!
//! [`PgServer::start`] makes another cluster, owned by the caller and stopped and removed
//! when dropped: the one to break with [`PgServer::kill9`], [`PgServer::stop`] and
//! [`PgServer::restart`] without disturbing the tests that share [`test_server`].
//! [`PgServer::pgbouncer`] puts a PgBouncer in transaction pooling mode in front of a
//! server.
//!
//! Everything goes through the binaries and [`std::process::Command`] (`psql` for SQL):
//! no PostgreSQL client library.
//!
//! # Cleanup
//!
//! A cluster (and a PgBouncer) is stopped and its directory removed however the process
//! that started it ends, a panic or a SIGKILL included: next to the server runs a
//! watchdog, a `sh` loop in its own process group that checks every 0.5 s whether the
//! owning process is still there (`kill -0`, and on Linux its start time and that it is
//! not a zombie). When it is gone, the watchdog sends every process the harness started
//! for that directory its stop signal (SIGQUIT, PostgreSQL's immediate shutdown; SIGKILL
//! for PgBouncer), waits for them, and removes the directory. The processes run in their
//! own process groups, so a Ctrl-C meant for the test run reaches only the test process.
//!
//! # Platforms
//!
//! Starting a cluster needs a Unix system (and, as root, the `postgres` user to run the
//! server as, since PostgreSQL refuses to run as root). Elsewhere only a server named by
//! `CHECKLIST_PG_URL` is available.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable naming an existing server (a superuser URL) to use instead
/// of starting one.
pub const URL_ENV: &str = "CHECKLIST_PG_URL";

/// The environment variable that, set to `1`, turns "no server" into a panic.
pub const REQUIRE_ENV: &str = "CHECKLIST_REQUIRE_PG";

/// The environment variable naming the directory of `initdb` and `postgres`, when they
/// are neither on the `PATH` nor under `/usr/lib/postgresql/<version>/bin`.
pub const BIN_ENV: &str = "CHECKLIST_PG_BIN";

/// The role a harness cluster authenticates by client certificate only (`hostssl …
/// cert`): the client certificate's CN. A test creates the role
/// ([`PgServer::create_role`]) before it connects as it.
pub const TLS_CLIENT_ROLE: &str = "tls_client";

/// The superuser of a harness cluster, trusted over TCP from 127.0.0.1 and `::1`.
pub const SUPERUSER: &str = "postgres";

/// How long a server or a PgBouncer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stop signal may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Start attempts, each on a fresh port, when the port was taken in between.
const PORT_ATTEMPTS: usize = 8;

/// Watches the owning process (`$1`) and, once it is gone, stops the processes listed in
/// `$2/run/*.pid` (`pid signal start-time`) and removes `$2`. Exits early, doing
/// nothing, when `$2` disappears (the owner cleaned up itself).
const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT
owner=$1
dir=$2
born() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1; }
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    case $(state "$1") in Z|X|x) return 1 ;; esac
    [ -z "$2" ] || [ "$(born "$1")" = "$2" ] || [ -z "$(born "$1")" ]
}
owner_born=$(born "$owner")
while alive "$owner" "$owner_born" && [ -d "$dir" ]; do sleep 0.5; done
[ -d "$dir" ] || exit 0
signal_all() {
    for f in "$dir"/run/*.pid; do
        [ -f "$f" ] || continue
        read -r pid sig start < "$f" || continue
        if alive "$pid" "$start"; then kill -"${1:-$sig}" "$pid" 2>/dev/null; fi
    done
}
any_alive() {
    for f in "$dir"/run/*.pid; do
        [ -f "$f" ] || continue
        read -r pid sig start < "$f" || continue
        if alive "$pid" "$start"; then return 0; fi
    done
    return 1
}
signal_all
i=0
while any_alive && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
signal_all KILL
i=0
while any_alive && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
rm -rf "$dir"
"#;

// ---------------------------------------------------------------------------------------
// The shared server.

static TEST_SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

fn shared() -> &'static Result<PgServer, String> {
    TEST_SERVER.get_or_init(|| {
        let server = match env_nonempty(URL_ENV) {
            Some(url) => PgServer::from_url(&url),
            None => PgServer::start(),
        };
        if let Err(why) = &server {
            tracing::warn!("no PostgreSQL server for the tests: {why}");
        }
        server
    })
}

/// The server the tests of this process share, made on first use: the one
/// `CHECKLIST_PG_URL` names, or a throwaway cluster the harness starts (and stops when
/// the process exits, however it exits). `None` when neither is possible;
/// [`why_no_server`] says why.
///
/// Tests that break the server (kill it, stop it) use their own [`PgServer::start`].
///
/// # Panics
/// When there is no server and `CHECKLIST_REQUIRE_PG=1`: the panic message is the
/// reason.
pub fn test_server() -> Option<&'static PgServer> {
    match shared() {
        Ok(server) => Some(server),
        Err(why) => {
            assert!(
                !required(),
                "{REQUIRE_ENV}=1 but there is no PostgreSQL server: {why}"
            );
            None
        }
    }
}

/// Why [`test_server`] has no server (`None` when it has one). Makes the server if no
/// one asked for it yet; never panics.
pub fn why_no_server() -> Option<String> {
    shared().as_ref().err().cloned()
}

/// Whether `CHECKLIST_REQUIRE_PG=1`: a test that cannot get what it needs from the
/// harness fails instead of skipping.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Whether [`PgServer::start`] can start a cluster here, without starting one: a Unix
/// system, the server binaries, and (as root) the `postgres` user.
///
/// # Errors
/// What is missing, as [`PgServer::start`] would say it.
pub fn cluster_prerequisites() -> Result<(), String> {
    if !cfg!(unix) {
        return Err(format!(
            "a throwaway PostgreSQL cluster needs a Unix system; set {URL_ENV} to a server"
        ));
    }
    find_bin_dir()?;
    run_as()?;
    Ok(())
}

/// A fresh schema name, a valid unquoted identifier: `t_` and a UUID without dashes.
pub fn throwaway_schema_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// `name` as an SQL identifier, double-quoted (`"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal (`'it''s'`; standard_conforming_strings is on).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Runs `sql` with `psql -X -A -t -q -v ON_ERROR_STOP=1` against `conninfo` (a URL or a
/// `key=value` connection string) and returns its standard output without the final
/// newline: one line per row, columns separated by `|`.
///
/// `PG*` variables of the environment that would change the target or the security of
/// the connection are removed (all but `PGPASSWORD` and `PGPASSFILE`), so the
/// connection is what `conninfo` says; `PGCONNECT_TIMEOUT` is 10 s.
///
/// # Errors
/// A message with psql's exit status and standard error when it fails (cannot connect,
/// an SQL error), or when psql is not installed.
pub fn run_psql(conninfo: &str, sql: &str) -> Result<String, String> {
    let psql = psql_program()?;
    let mut cmd = Command::new(&psql);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ])
    .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("PG") && key != "PGPASSWORD" && key != "PGPASSFILE" {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .env("PGAPPNAME", "checklist-pg-harness");
    let out = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", psql.display()))?;
    if out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    } else {
        Err(format!(
            "psql ({}) failed: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// The server.

/// A PostgreSQL server for tests: an external one (`CHECKLIST_PG_URL`,
/// [`PgServer::from_url`]) or a throwaway cluster the harness started
/// ([`PgServer::start`]), which dropping stops and removes.
#[derive(Debug)]
pub struct PgServer {
    // Declared before `cluster`: dropped (stopped) before the cluster's directory goes.
    bouncer: OnceLock<Result<PgBouncer, String>>,
    url: String,
    target: Target,
    cluster: Option<Cluster>,
}

/// Where a server is and who logs in.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    dbname: String,
}

/// A cluster the harness started.
#[derive(Debug)]
struct Cluster {
    // Declared before `scratch`: dropped (stopped) before the directory is removed.
    postmaster: Mutex<Option<Proc>>,
    bin_dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    tls: Option<TlsFiles>,
    run_as: Option<RunAs>,
    scratch: Scratch,
}

/// The throwaway TLS files of a cluster.
#[derive(Debug)]
struct TlsFiles {
    ca_cert: PathBuf,
    wrong_ca_cert: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl PgServer {
    /// The server `url` names (a superuser URL, `postgres://user[:password]@host[:port]/db`),
    /// checked with `select 1` when psql is installed. Fault control
    /// ([`kill9`](Self::kill9)…) and the TLS files are not available for it.
    ///
    /// # Errors
    /// The URL cannot be parsed, or the server does not answer.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let target = parse_url(url)?;
        if psql_program().is_ok() {
            run_psql(url, "select 1")
                .map_err(|e| format!("{URL_ENV} server does not answer `select 1`: {e}"))?;
        }
        Ok(Self {
            bouncer: OnceLock::new(),
            url: url.to_owned(),
            target,
            cluster: None,
        })
    }

    /// Starts a new throwaway cluster, owned by the caller and stopped and removed when
    /// dropped (or, whatever happens, when the process exits): `initdb -A trust -U
    /// postgres --no-sync -E UTF8 --locale=C` in a temp directory, TLS files made with
    /// `openssl` (without `openssl`, a cluster without TLS), then `postgres` on
    /// 127.0.0.1 and a free port. Takes about a second.
    ///
    /// # Errors
    /// Why it could not: no Unix, no server binaries (they are looked for in
    /// `$CHECKLIST_PG_BIN`, on the `PATH`, with `pg_config --bindir` and under
    /// `/usr/lib/postgresql/*/bin`), no `postgres` user to run them as root, or a step
    /// that failed (with its output).
    pub fn start() -> Result<Self, String> {
        cluster_prerequisites()?;
        let began = Instant::now();
        let bin_dir = find_bin_dir()?;
        let run_as = run_as()?;
        let scratch = Scratch::new(run_as)?;
        let root = scratch.root.clone();
        let data = root.join("data");
        let log = root.join("postgres.log");

        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .current_dir(&root)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        detach_and_run_as(&mut initdb, run_as);
        checked(initdb.output(), "initdb")?;
        let initdb_took = began.elapsed();

        let tls = match make_tls(&root.join("tls"), run_as) {
            Ok(tls) => Some(tls),
            Err(why) => {
                tracing::warn!("the throwaway cluster runs without TLS: {why}");
                None
            }
        };
        fs::write(data.join("pg_hba.conf"), hba_conf(tls.is_some()))
            .map_err(|e| format!("writing pg_hba.conf: {e}"))?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| format!("opening postgresql.conf: {e}"))?;
        io::Write::write_all(&mut conf, postgresql_conf(&root, tls.as_ref()).as_bytes())
            .map_err(|e| format!("writing postgresql.conf: {e}"))?;

        let mut cluster = Cluster {
            postmaster: Mutex::new(None),
            bin_dir,
            data,
            log,
            tls,
            run_as,
            scratch,
        };
        let mut attempt = 0;
        let (proc, port) = loop {
            attempt += 1;
            let port = free_port()?;
            match cluster.spawn_postgres(port, Instant::now() + START_TIMEOUT) {
                Ok(proc) => break (proc, port),
                Err(Spawn::PortTaken(_)) if attempt < PORT_ATTEMPTS => continue,
                Err(Spawn::PortTaken(why) | Spawn::Failed(why)) => return Err(why),
            }
        };
        *cluster.postmaster.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(proc);
        tracing::info!(
            "throwaway PostgreSQL cluster in {} on 127.0.0.1:{port}: initdb {initdb_took:?}, ready after {:?}",
            root.display(),
            began.elapsed()
        );
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            user: SUPERUSER.into(),
            password: None,
            dbname: "postgres".into(),
        };
        Ok(Self {
            bouncer: OnceLock::new(),
            url: target.url_as(SUPERUSER, None),
            target,
            cluster: Some(cluster),
        })
    }

    /// Whether the harness started this server (so fault control and the TLS files are
    /// available), rather than `CHECKLIST_PG_URL` naming it.
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    /// A superuser URL, over TCP, without TLS options: `postgres://postgres@127.0.0.1:PORT/postgres`
    /// for a harness cluster, or `CHECKLIST_PG_URL` as given. A harness cluster has
    /// `ssl=on`, so libpq's default `sslmode=prefer` uses TLS without verifying it; add
    /// `sslmode=disable` for a plain connection.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL for `user` (with `password`, percent-encoded) on the same host, port and
    /// database as [`url`](Self::url). Over TCP from 127.0.0.1 a harness cluster asks
    /// every role but `postgres` for its password (`scram-sha-256`).
    pub fn url_as(&self, user: &str, password: Option<&str>) -> String {
        self.target.url_as(user, password)
    }

    /// A URL for `user` that verifies the server (`sslmode=verify-full`, host
    /// `localhost`, `sslrootcert=root_cert`) and, with `client_cert`, presents the
    /// harness's client certificate (`sslcert`, `sslkey`; its CN is
    /// [`TLS_CLIENT_ROLE`]). `None` for a server without the harness's TLS files.
    pub fn tls_url(&self, user: &str, root_cert: &Path, client_cert: bool) -> Option<String> {
        let tls = self.cluster.as_ref()?.tls.as_ref()?;
        let mut url = format!(
            "postgres://{}@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
            percent_encode(user),
            self.target.port,
            percent_encode(&self.target.dbname),
            percent_encode(&root_cert.to_string_lossy()),
        );
        if client_cert {
            let _ = write!(
                url,
                "&sslcert={}&sslkey={}",
                percent_encode(&tls.client_cert.to_string_lossy()),
                percent_encode(&tls.client_key.to_string_lossy())
            );
        }
        Some(url)
    }

    /// The host of [`url`](Self::url): `127.0.0.1` for a harness cluster.
    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// The port of [`url`](Self::url).
    pub fn port(&self) -> u16 {
        self.target.port
    }

    /// The superuser name of [`url`](Self::url).
    pub fn user(&self) -> &str {
        &self.target.user
    }

    /// The database of [`url`](Self::url).
    pub fn dbname(&self) -> &str {
        &self.target.dbname
    }

    /// The Unix-socket directory of a harness cluster (`host=<dir>` in a connection
    /// string; no password asked there).
    pub fn socket_dir(&self) -> Option<&Path> {
        Some(&self.cluster.as_ref()?.scratch.root)
    }

    /// The data directory of a harness cluster.
    pub fn data_dir(&self) -> Option<&Path> {
        Some(&self.cluster.as_ref()?.data)
    }

    /// The server log of a harness cluster (warnings and errors).
    pub fn log_file(&self) -> Option<&Path> {
        Some(&self.cluster.as_ref()?.log)
    }

    /// The CA certificate (PEM) that signed the server's certificate (CN `localhost`,
    /// SAN `localhost`, `127.0.0.1`, `::1`) and the client certificate.
    pub fn ca_cert(&self) -> Option<&Path> {
        Some(&self.tls()?.ca_cert)
    }

    /// A CA certificate (PEM) that signed neither: verification against it fails.
    pub fn wrong_ca_cert(&self) -> Option<&Path> {
        Some(&self.tls()?.wrong_ca_cert)
    }

    /// The client certificate (PEM, CN [`TLS_CLIENT_ROLE`]) signed by [`ca_cert`](Self::ca_cert).
    pub fn client_cert(&self) -> Option<&Path> {
        Some(&self.tls()?.client_cert)
    }

    /// The client certificate's private key (PEM, mode 0600, owned by this process's
    /// user, as libpq demands).
    pub fn client_key(&self) -> Option<&Path> {
        Some(&self.tls()?.client_key)
    }

    fn tls(&self) -> Option<&TlsFiles> {
        self.cluster.as_ref()?.tls.as_ref()
    }

    /// Runs `sql` as the superuser ([`run_psql`] on [`url`](Self::url)) and returns its
    /// output: one line per row, columns separated by `|`.
    ///
    /// # Errors
    /// psql's failure (its standard error).
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        run_psql(&self.url, sql)
    }

    /// Runs `sql` as `user` with `password`, over TCP.
    ///
    /// # Errors
    /// psql's failure (its standard error), a refused login included.
    pub fn psql_as(&self, user: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
        run_psql(&self.url_as(user, password), sql)
    }

    /// Makes `name` a login role without any privilege (not a superuser, cannot create
    /// databases or roles) with `password` (none: it cannot log in by password), or,
    /// when it exists, sets those. Grant what the test needs with [`psql`](Self::psql).
    ///
    /// # Errors
    /// psql's failure.
    pub fn create_role(&self, name: &str, password: Option<&str>) -> Result<(), String> {
        let role = quote_ident(name);
        let password = password.map_or_else(|| "NULL".to_owned(), quote_literal);
        let options = format!("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {password}");
        self.psql(&format!(
            "DO $harness$ BEGIN CREATE ROLE {role} {options}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN ALTER ROLE {role} {options}; \
             END $harness$"
        ))
        .map(drop)
    }

    /// Creates schema `name` (see [`throwaway_schema_name`]).
    ///
    /// # Errors
    /// psql's failure.
    pub fn create_schema(&self, name: &str) -> Result<(), String> {
        self.psql(&format!("CREATE SCHEMA {}", quote_ident(name)))
            .map(drop)
    }

    /// Drops schema `name` and everything in it, if it exists.
    ///
    /// # Errors
    /// psql's failure.
    pub fn drop_schema(&self, name: &str) -> Result<(), String> {
        self.psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(name)))
            .map(drop)
    }

    /// The process id of a harness cluster's postmaster, while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let cluster = self.cluster.as_ref()?;
        let mut postmaster = lock(&cluster.postmaster);
        let proc = postmaster.as_mut()?;
        proc.exited().is_none().then(|| proc.pid())
    }

    fn own_cluster(&self) -> Result<&Cluster, String> {
        self.cluster.as_ref().ok_or_else(|| {
            format!("fault control needs a cluster the harness started; this server is {URL_ENV}'s")
        })
    }

    /// Kills the postmaster with SIGKILL, as a crash would (its backends notice and
    /// exit; what was committed is in the WAL). Connections fail until
    /// [`restart`](Self::restart).
    ///
    /// # Errors
    /// An external server, or a cluster that is not running.
    pub fn kill9(&self) -> Result<(), String> {
        let cluster = self.own_cluster()?;
        let mut postmaster = lock(&cluster.postmaster);
        let mut proc = postmaster
            .take()
            .ok_or("the cluster is not running (kill9 after kill9 or stop)")?;
        proc.kill_and_reap();
        Ok(())
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions are ended, a checkpoint
    /// written) and waits for it.
    ///
    /// # Errors
    /// An external server, or a cluster that is not running.
    pub fn stop(&self) -> Result<(), String> {
        let cluster = self.own_cluster()?;
        let mut postmaster = lock(&cluster.postmaster);
        let mut proc = postmaster.take().ok_or("the cluster is not running")?;
        proc.shutdown("INT", STOP_TIMEOUT);
        Ok(())
    }

    /// Starts the server again on the same port and data directory, after a
    /// [`kill9`](Self::kill9) or a [`stop`](Self::stop) (a running server is stopped
    /// first), and waits until it accepts connections; after a kill it recovers from
    /// the WAL first. Retries while the killed server's backends are still exiting.
    ///
    /// # Errors
    /// An external server, or a server that did not come back within a minute (with
    /// its log).
    pub fn restart(&self) -> Result<(), String> {
        let cluster = self.own_cluster()?;
        let mut postmaster = lock(&cluster.postmaster);
        if let Some(mut proc) = postmaster.take() {
            proc.shutdown("INT", STOP_TIMEOUT);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match cluster.spawn_postgres(self.target.port, deadline) {
                Ok(proc) => {
                    *postmaster = Some(proc);
                    return Ok(());
                }
                Err(Spawn::PortTaken(why) | Spawn::Failed(why)) if Instant::now() >= deadline => {
                    return Err(why);
                }
                // A killed server's backends may still hold its shared memory or port
                // for a moment.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A PgBouncer in front of this server, started on first use (once per server):
    /// transaction pooling, `auth_type = trust` (a role it does not know is added with
    /// [`PgBouncer::add_user`]), `max_client_conn = 1000`, `default_pool_size = 10`,
    /// listening on 127.0.0.1 on its own free port, and stopped like the cluster.
    ///
    /// # Errors
    /// `pgbouncer is not installed (apt-get install pgbouncer)`, or why it did not
    /// start (with its log).
    pub fn pgbouncer(&self) -> Result<&PgBouncer, String> {
        self.bouncer
            .get_or_init(|| PgBouncer::start(self))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Target {
    fn url_as(&self, user: &str, password: Option<&str>) -> String {
        let password = password
            .map(|p| format!(":{}", percent_encode(p)))
            .unwrap_or_default();
        let host = if self.host.starts_with('/') {
            percent_encode(&self.host)
        } else if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgres://{}{password}@{host}:{}/{}",
            percent_encode(user),
            self.port,
            percent_encode(&self.dbname)
        )
    }
}

/// Why a postgres or pgbouncer did not come up.
enum Spawn {
    /// Its port was taken (by another process since we picked it): try another.
    PortTaken(String),
    /// Anything else.
    Failed(String),
}

impl Cluster {
    /// Starts `postgres` on `port` and waits until its `postmaster.pid` says it is ready.
    fn spawn_postgres(&self, port: u16, deadline: Instant) -> Result<Proc, Spawn> {
        let log = open_log(&self.log).map_err(Spawn::Failed)?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log
            .try_clone()
            .map_err(|e| Spawn::Failed(format!("log file: {e}")))?;
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(port.to_string())
            .current_dir(&self.scratch.root)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        detach_and_run_as(&mut cmd, self.run_as);
        let mut proc =
            Proc::spawn(&mut cmd, &self.scratch.root, "postgres", "QUIT").map_err(Spawn::Failed)?;
        loop {
            if let Some(status) = proc.exited() {
                let log = read_from(&self.log, log_start);
                let why = format!("postgres exited ({status}) before it was ready; its log:\n{log}");
                return Err(
                    if log.contains("Address already in use")
                        || log.contains("could not create any TCP/IP sockets")
                    {
                        Spawn::PortTaken(why)
                    } else {
                        Spawn::Failed(why)
                    },
                );
            }
            if postmaster_ready(&self.data, proc.pid()) {
                return Ok(proc);
            }
            if Instant::now() >= deadline {
                proc.kill_and_reap();
                return Err(Spawn::Failed(format!(
                    "postgres was not ready within {START_TIMEOUT:?}; its log:\n{}",
                    read_from(&self.log, log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `<data>/postmaster.pid` names `pid` and says `ready` (line 8, what `pg_ctl
/// -w` waits for): then this postmaster, not another one, listens on its port.
fn postmaster_ready(data: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    lines.first().is_some_and(|l| l.trim() == pid.to_string())
        && lines.get(7).is_some_and(|l| l.trim() == "ready")
}

fn hba_conf(tls: bool) -> String {
    let mut hba = String::from(
        "# checklist-conformance pg_server: first match wins.\n\
         local   all  all                      trust\n",
    );
    if tls {
        for net in ["127.0.0.1/32", "::1/128"] {
            let _ = writeln!(hba, "hostssl all  {TLS_CLIENT_ROLE:<10} {net:<13} cert");
        }
    }
    for net in ["127.0.0.1/32", "::1/128"] {
        let _ = writeln!(hba, "host    all  {SUPERUSER:<10} {net:<13} trust");
    }
    for net in ["127.0.0.1/32", "::1/128"] {
        let _ = writeln!(hba, "host    all  {:<10} {net:<13} scram-sha-256", "all");
    }
    hba
}

fn postgresql_conf(root: &Path, tls: Option<&TlsFiles>) -> String {
    let conf_str = |p: &Path| quote_literal(&p.to_string_lossy());
    let mut conf = format!(
        "\n# checklist-conformance pg_server\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = {}\n\
         max_connections = 500\n\
         shared_buffers = 32MB\n\
         fsync = on\n\
         log_min_messages = warning\n",
        conf_str(root)
    );
    if let Some(tls) = tls {
        let dir = tls.ca_cert.parent().unwrap_or(root);
        let _ = write!(
            conf,
            "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\nssl_ca_file = {}\n",
            conf_str(&dir.join("server.crt")),
            conf_str(&dir.join("server.key")),
            conf_str(&tls.ca_cert),
        );
    }
    conf
}

/// Makes the CA, the server and client certificates and the wrong CA in `dir` with
/// `openssl` (ECDSA P-256, valid ten years).
fn make_tls(dir: &Path, run_as: Option<RunAs>) -> Result<TlsFiles, String> {
    fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    give_to(dir, run_as).map_err(|e| format!("chown {}: {e}", dir.display()))?;
    fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).map_err(|e| format!("writing openssl.cnf: {e}"))?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let mut cmd = Command::new("openssl");
        cmd.args(args)
            .current_dir(dir)
            .env("OPENSSL_CONF", dir.join("openssl.cnf"))
            .stdin(Stdio::null());
        checked(cmd.output(), &format!("openssl {}", args.first().unwrap_or(&"")))
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let serial = |n: u8| format!("0x{}{n:02x}", uuid::Uuid::new_v4().simple());
    for (name, cn) in [
        ("ca", "checklist throwaway CA"),
        ("wrong-ca", "checklist wrong CA"),
    ] {
        let (key, crt, subj, serial) = (
            format!("{name}.key"),
            format!("{name}.crt"),
            format!("/CN={cn}"),
            serial(1),
        );
        let mut args = vec!["req", "-config", "openssl.cnf", "-x509"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &crt, "-days", "3650", "-subj", &subj]);
        args.extend(["-extensions", "ca", "-set_serial", &serial]);
        openssl(&args)?;
    }
    for (name, cn, n) in [("server", "localhost", 2), ("client", TLS_CLIENT_ROLE, 3)] {
        let (key, csr, crt, subj, serial) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("/CN={cn}"),
            serial(n),
        );
        let mut args = vec!["req", "-config", "openssl.cnf", "-new"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(&args)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "3650",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            name,
            "-out",
            &crt,
        ])?;
    }
    for file in ["server.key", "server.crt", "ca.crt"] {
        give_to(&dir.join(file), run_as).map_err(|e| format!("chown {file}: {e}"))?;
    }
    for key in ["server.key", "client.key", "ca.key", "wrong-ca.key"] {
        set_mode(&dir.join(key), 0o600).map_err(|e| format!("chmod {key}: {e}"))?;
    }
    Ok(TlsFiles {
        ca_cert: dir.join("ca.crt"),
        wrong_ca_cert: dir.join("wrong-ca.crt"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    })
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

// ---------------------------------------------------------------------------------------
// PgBouncer.

/// A PgBouncer in transaction pooling mode in front of a [`PgServer`]
/// ([`PgServer::pgbouncer`]).
#[derive(Debug)]
pub struct PgBouncer {
    // Declared before `scratch`: dropped (stopped) before its directory is removed.
    proc: Mutex<Option<Proc>>,
    url: String,
    target: Target,
    version: String,
    prepared_statements: bool,
    dir: PathBuf,
    log: PathBuf,
    userlist: Mutex<()>,
    #[allow(dead_code, reason = "held for its Drop, which removes the directory")]
    scratch: Option<Scratch>,
}

impl PgBouncer {
    fn start(server: &PgServer) -> Result<Self, String> {
        let program = find_program("pgbouncer", &["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"])
            .ok_or("pgbouncer is not installed (apt-get install pgbouncer)")?;
        if !cfg!(unix) {
            return Err("the PgBouncer harness needs a Unix system".into());
        }
        let out = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{} --version: {e}", program.display()))?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("unknown")
            .to_owned();
        let prepared_statements = version_at_least(&version, (1, 21));

        let run_as = run_as()?;
        let (scratch, root, run_as_files) = match &server.cluster {
            Some(cluster) => (None, cluster.scratch.root.clone(), cluster.run_as),
            None => {
                let scratch = Scratch::new(run_as)?;
                let root = scratch.root.clone();
                (Some(scratch), root, run_as)
            }
        };
        let dir = root.join("pgbouncer");
        fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        give_to(&dir, run_as_files).map_err(|e| format!("chown {}: {e}", dir.display()))?;
        let log = dir.join("pgbouncer.log");
        let userlist = dir.join("userlist.txt");
        let mut users = userlist_line(SUPERUSER, None);
        if server.target.user != SUPERUSER {
            users.push_str(&userlist_line(
                &server.target.user,
                server.target.password.as_deref(),
            ));
        }
        fs::write(&userlist, users).map_err(|e| format!("writing {}: {e}", userlist.display()))?;
        give_to(&userlist, run_as_files).map_err(|e| format!("chown userlist: {e}"))?;

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let ini = dir.join("pgbouncer.ini");
            let conf = pgbouncer_ini(server, &dir, port, prepared_statements);
            fs::write(&ini, conf).map_err(|e| format!("writing {}: {e}", ini.display()))?;
            let log_file = open_log(&log)?;
            let log_start = log_file.metadata().map(|m| m.len()).unwrap_or(0);
            let stderr = log_file.try_clone().map_err(|e| format!("log file: {e}"))?;
            let mut cmd = Command::new(&program);
            cmd.arg(&ini)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(stderr);
            detach_and_run_as(&mut cmd, run_as);
            let mut proc = Proc::spawn(&mut cmd, &root, "pgbouncer", "KILL")?;
            let deadline = Instant::now() + START_TIMEOUT;
            let listening = format!("listening on 127.0.0.1:{port}");
            let result = loop {
                let text = read_from(&log, log_start);
                if let Some(status) = proc.exited() {
                    let why = format!("pgbouncer exited ({status}) before it listened; its log:\n{text}");
                    break Err(if text.contains("Address already in use") {
                        Spawn::PortTaken(why)
                    } else {
                        Spawn::Failed(why)
                    });
                }
                if text.contains(&listening) {
                    break Ok(());
                }
                if Instant::now() >= deadline {
                    break Err(Spawn::Failed(format!(
                        "pgbouncer did not listen within {START_TIMEOUT:?}; its log:\n{text}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            match result {
                Ok(()) => {
                    let target = Target {
                        host: "127.0.0.1".into(),
                        port,
                        user: server.target.user.clone(),
                        password: None,
                        dbname: server.target.dbname.clone(),
                    };
                    tracing::info!(
                        "PgBouncer {version} on 127.0.0.1:{port} in front of {}",
                        server.url
                    );
                    return Ok(Self {
                        proc: Mutex::new(Some(proc)),
                        url: target.url_as(&server.target.user, None),
                        target,
                        version,
                        prepared_statements,
                        dir,
                        log,
                        userlist: Mutex::new(()),
                        scratch,
                    });
                }
                Err(Spawn::PortTaken(_)) if attempt < PORT_ATTEMPTS => {
                    proc.kill_and_reap();
                }
                Err(Spawn::PortTaken(why) | Spawn::Failed(why)) => {
                    proc.kill_and_reap();
                    return Err(why);
                }
            }
        }
    }

    /// A URL through PgBouncer as the server's superuser:
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (no TLS between the client and
    /// PgBouncer).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL through PgBouncer for `user` (who must be known to it: the superuser, or
    /// one added with [`add_user`](Self::add_user)). PgBouncer trusts the client; the
    /// password is what it gives the server.
    pub fn url_as(&self, user: &str) -> String {
        self.target.url_as(user, None)
    }

    /// Its host, `127.0.0.1`.
    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.target.port
    }

    /// The Unix-socket directory of PgBouncer (its admin console: database
    /// `pgbouncer`, user `postgres`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Its log.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        let mut proc = lock(&self.proc);
        let proc = proc.as_mut()?;
        proc.exited().is_none().then(|| proc.pid())
    }

    /// Its version, as `pgbouncer --version` says it (`1.18.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether it keeps protocol-level prepared statements across the server
    /// connections of transaction pooling (`max_prepared_statements`, PgBouncer 1.21 and
    /// newer; the harness sets it to 200). Without it, a statement prepared in one
    /// transaction is unknown on the next one's server connection.
    pub fn supports_prepared_statements(&self) -> bool {
        self.prepared_statements
    }

    /// Lets `user` through (with `password`, what PgBouncer gives the server when it
    /// asks) and reloads PgBouncer's configuration.
    ///
    /// # Errors
    /// Writing the user list, or the `RELOAD` on the admin console.
    pub fn add_user(&self, user: &str, password: Option<&str>) -> Result<(), String> {
        let _guard = lock(&self.userlist);
        let path = self.dir.join("userlist.txt");
        let mut users = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        io::Write::write_all(&mut users, userlist_line(user, password).as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        self.admin("RELOAD").map(drop)
    }

    /// Runs `command` (`SHOW POOLS`, `RELOAD`…) on the admin console.
    ///
    /// # Errors
    /// psql's failure.
    pub fn admin(&self, command: &str) -> Result<String, String> {
        run_psql(
            &format!(
                "host={} port={} dbname=pgbouncer user={SUPERUSER}",
                self.dir.display(),
                self.target.port
            ),
            command,
        )
    }
}

fn userlist_line(user: &str, password: Option<&str>) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{} {}\n", q(user), q(password.unwrap_or("")))
}

fn pgbouncer_ini(server: &PgServer, dir: &Path, port: u16, prepared_statements: bool) -> String {
    let host = &server.target.host;
    let mut ini = format!(
        "[databases]\n\
         * = host={host} port={server_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir = {dir}\n\
         auth_type = trust\n\
         auth_file = {dir}/userlist.txt\n\
         admin_users = {SUPERUSER}\n\
         pool_mode = transaction\n\
         max_client_conn = 1000\n\
         default_pool_size = 10\n\
         ignore_startup_parameters = extra_float_digits\n",
        server_port = server.target.port,
        dir = dir.display(),
    );
    if server.cluster.is_some() {
        ini.push_str("server_tls_sslmode = disable\n");
    }
    if prepared_statements {
        ini.push_str("max_prepared_statements = 200\n");
    }
    ini
}

/// Whether `version` (`1.18.0`) is at least `major.minor`.
fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v >= (major, minor)
}

// ---------------------------------------------------------------------------------------
// Processes, directories, users.

/// A process the harness started and listed in `<root>/run/<name>.pid` for the
/// watchdog. Dropping it stops it (its stop signal, then SIGKILL) and reaps it.
#[derive(Debug)]
struct Proc {
    child: Child,
    pid_file: PathBuf,
    stop_signal: &'static str,
    reaped: bool,
}

impl Proc {
    fn spawn(cmd: &mut Command, root: &Path, name: &str, stop_signal: &'static str) -> Result<Self, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
        let pid = child.id();
        let pid_file = root.join("run").join(format!("{name}.pid"));
        let proc = Self {
            child,
            pid_file,
            stop_signal,
            reaped: false,
        };
        let born = process_start_time(pid).unwrap_or_default();
        let tmp = proc.pid_file.with_extension("tmp");
        fs::write(&tmp, format!("{pid} {stop_signal} {born}\n"))
            .and_then(|()| fs::rename(&tmp, &proc.pid_file))
            .map_err(|e| format!("writing {}: {e}", proc.pid_file.display()))?;
        Ok(proc)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it exited (and is reaped).
    fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                Some(status)
            }
            Ok(None) => None,
            Err(_) => {
                self.reaped = true;
                Some(ExitStatus::default())
            }
        }
    }

    fn kill_and_reap(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
        let _ = fs::remove_file(&self.pid_file);
    }

    /// Sends `signal`, waits up to `timeout` for the exit, then kills.
    fn shutdown(&mut self, signal: &str, timeout: Duration) {
        if self.exited().is_none() {
            let _ = Command::new("sh")
                .args(["-c", "kill -\"$1\" \"$2\"", "sh", signal, &self.pid().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + timeout;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill_and_reap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.shutdown(self.stop_signal, STOP_TIMEOUT);
    }
}

/// A temp directory (owned by the server's user) watched by a watchdog that stops what
/// its `run/*.pid` list and removes it when this process is gone. Dropping it removes
/// the directory (which ends the watchdog).
#[derive(Debug)]
struct Scratch {
    root: PathBuf,
    watchdog: Option<Child>,
}

impl Scratch {
    fn new(run_as: Option<RunAs>) -> Result<Self, String> {
        let base = scratch_base(run_as.is_some());
        let root = tempfile::Builder::new()
            .prefix("checklist-pg-")
            .tempdir_in(&base)
            .map_err(|e| format!("creating a temp directory in {}: {e}", base.display()))?
            .keep();
        let mut scratch = Self { root, watchdog: None };
        let run = scratch.root.join("run");
        fs::create_dir(&run).map_err(|e| format!("creating {}: {e}", run.display()))?;
        give_to(&scratch.root, run_as).map_err(|e| format!("chown {}: {e}", scratch.root.display()))?;
        let mut watchdog = Command::new("sh");
        watchdog
            .args(["-c", WATCHDOG_SCRIPT, "checklist-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(&scratch.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        detach_and_run_as(&mut watchdog, None);
        scratch.watchdog = Some(
            watchdog
                .spawn()
                .map_err(|e| format!("starting the watchdog (sh): {e}"))?,
        );
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
        if let Some(mut watchdog) = self.watchdog.take() {
            // It notices the directory is gone within 0.5 s; reap it then.
            let _ = std::thread::Builder::new()
                .name("checklist-pg-watchdog-reaper".into())
                .spawn(move || watchdog.wait());
        }
    }
}

/// Where temp directories go: `/tmp` when the server runs as another user (who must
/// reach it) or when the temp directory's path is too long for a Unix socket
/// (`<dir>/.s.PGSQL.<port>` must fit in 107 bytes); else the usual temp directory.
fn scratch_base(other_user: bool) -> PathBuf {
    let tmp = std::env::temp_dir();
    if cfg!(unix) && (other_user || tmp.as_os_str().len() > 60) {
        PathBuf::from("/tmp")
    } else {
        tmp
    }
}

/// The user the server runs as when this process is root (PostgreSQL and PgBouncer
/// refuse to run as root).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(unix), allow(dead_code))]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, String> {
    static RUN_AS: OnceLock<Result<Option<RunAs>, String>> = OnceLock::new();
    RUN_AS
        .get_or_init(|| {
            let id = |args: &[&str]| -> Option<u32> {
                let out = Command::new("id").args(args).stdin(Stdio::null()).output().ok()?;
                String::from_utf8_lossy(&out.stdout).trim().parse().ok()
            };
            match id(&["-u"]) {
                Some(0) => match (id(&["-u", SUPERUSER]), id(&["-g", SUPERUSER])) {
                    (Some(uid), Some(gid)) => Ok(Some(RunAs { uid, gid })),
                    _ => Err(format!(
                        "running as root, and there is no `{SUPERUSER}` user to run the server as \
                         (PostgreSQL refuses to run as root)"
                    )),
                },
                Some(_) => Ok(None),
                None => Err("`id -u` failed: cannot tell whether this process is root".into()),
            }
        })
        .clone()
}

/// Puts the process in its own process group (a Ctrl-C for the test run does not reach
/// it) and, when this process is root, runs it as the server's user.
#[cfg(unix)]
fn detach_and_run_as(cmd: &mut Command, run_as: Option<RunAs>) {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0);
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
}

#[cfg(not(unix))]
fn detach_and_run_as(_cmd: &mut Command, _run_as: Option<RunAs>) {}

#[cfg(unix)]
fn give_to(path: &Path, run_as: Option<RunAs>) -> io::Result<()> {
    match run_as {
        Some(who) => std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn give_to(_path: &Path, _run_as: Option<RunAs>) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// A process's start time (`/proc/<pid>/stat` field 22), to tell it from a later
/// process with the same pid. `None` without `/proc`.
fn process_start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(19).map(str::to_owned)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

fn open_log(path: &Path) -> Result<fs::File, String> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The text of `path` from byte `from` on (the last 8 KiB of it).
fn read_from(path: &Path, from: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = from.max(len.saturating_sub(8192));
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn checked(output: io::Result<Output>, what: &str) -> Result<(), String> {
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        Err(e) => Err(format!("running {what}: {e}")),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `name` on the `PATH` or in one of `extra` directories.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The directory of `initdb` and `postgres`.
fn find_bin_dir() -> Result<PathBuf, String> {
    static BIN_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN_DIR
        .get_or_init(|| {
            let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
            if let Some(dir) = env_nonempty(BIN_ENV) {
                let dir = PathBuf::from(dir);
                return if has_server(&dir) {
                    Ok(dir)
                } else {
                    Err(format!("{BIN_ENV}={} has no initdb and postgres", dir.display()))
                };
            }
            if let Some(dir) = find_program("initdb", &[]).and_then(|p| p.parent().map(Path::to_path_buf))
                && has_server(&dir)
            {
                return Ok(dir);
            }
            if let Ok(out) = Command::new("pg_config").arg("--bindir").stdin(Stdio::null()).output() {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if out.status.success() && has_server(&dir) {
                    return Ok(dir);
                }
            }
            let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .filter(|(_, dir)| has_server(dir))
                .collect();
            versions.sort();
            if let Some((_, dir)) = versions.pop() {
                return Ok(dir);
            }
            for dir in ["/usr/local/pgsql/bin", "/usr/local/bin", "/opt/homebrew/bin"] {
                if has_server(Path::new(dir)) {
                    return Ok(PathBuf::from(dir));
                }
            }
            Err(format!(
                "no PostgreSQL server binaries (initdb, postgres) found: set {URL_ENV} to a server, \
                 {BIN_ENV} to the directory of initdb, or install PostgreSQL (Debian: apt-get install postgresql)"
            ))
        })
        .clone()
}

/// `psql`: next to the server binaries when there are some (same version), else on the
/// `PATH`.
fn psql_program() -> Result<PathBuf, String> {
    if let Ok(dir) = find_bin_dir()
        && dir.join("psql").is_file()
    {
        return Ok(dir.join("psql"));
    }
    find_program("psql", &[])
        .ok_or_else(|| "psql is not installed (Debian: apt-get install postgresql-client)".into())
}

// ---------------------------------------------------------------------------------------
// URLs.

/// The parts of `postgres://user[:password]@host[:port][/dbname][?…]` (one host).
fn parse_url(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("{URL_ENV} is not a postgres:// URL with one host ({why})");
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let (authority, dbname) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    if hostport.contains(',') {
        return Err(bad("several hosts"));
    }
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (percent_decode(user)?, Some(percent_decode(password)?)),
            None => (percent_decode(info)?, None),
        },
        None => (SUPERUSER.to_owned(), None),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed ["))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (percent_decode(host)?, Some(port)),
            None => (percent_decode(hostport)?, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse::<u16>().map_err(|_| bad("a bad port"))?,
        _ => 5432,
    };
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    };
    let dbname = if dbname.is_empty() {
        user.clone()
    } else {
        percent_decode(dbname)?
    };
    Ok(Target {
        host,
        port,
        user,
        password,
        dbname,
    })
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip() {
        let t = parse_url("postgres://app%40x:p%3Ass@db.example:6543/my%20db?sslmode=require").unwrap();
        assert_eq!(
            (
                t.user.as_str(),
                t.password.as_deref(),
                t.host.as_str(),
                t.port,
                t.dbname.as_str()
            ),
            ("app@x", Some("p:ss"), "db.example", 6543, "my db")
        );
        assert_eq!(
            t.url_as(&t.user, t.password.as_deref()),
            "postgres://app%40x:p%3Ass@db.example:6543/my%20db"
        );
        let t = parse_url("postgresql://[::1]/postgres").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("::1", 5432, "postgres")
        );
        assert_eq!(t.url_as("u", None), "postgres://u@[::1]:5432/postgres");
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("postgres://a,b/x").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        let name = throwaway_schema_name();
        assert!(name.starts_with("t_") && name.len() == 34, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
    }

    #[test]
    fn versions() {
        assert!(!version_at_least("1.18.0", (1, 21)));
        assert!(version_at_least("1.21.0", (1, 21)));
        assert!(version_at_least("1.24.1", (1, 21)));
        assert!(version_at_least("2.0", (1, 21)));
    }
}
