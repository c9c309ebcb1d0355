//! The throwaway PostgreSQL harness (`checklist_conformance::pg_server`), checked with
//! `psql` only: the server answers, TLS verifies the server and the client
//! certificate, a cluster survives `kill -9` with its committed data, PgBouncer answers,
//! and a cluster is stopped and removed when the process that started it dies.
//!
//! Without a server (no `CHECKLIST_PG_URL`, no PostgreSQL binaries) the tests skip and
//! say so; `CHECKLIST_REQUIRE_PG=1` makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checklist_conformance::pg_server::{
    PgServer, TLS_CLIENT_ROLE, cluster_prerequisites, required, run_psql, test_server, throwaway_schema_name,
    why_no_server,
};

#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so where cargo test shows it"
)]
fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: CHECKLIST_REQUIRE_PG=1 but {why}");
    eprintln!("SKIPPED: {test}: {why}");
}

/// A test that does not apply to this server (an external one, without the harness's
/// TLS files): not a failure even under `CHECKLIST_REQUIRE_PG=1`.
#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so where cargo test shows it"
)]
fn not_applicable(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
}

/// The shared server, or `None` (and a skip message).
fn server(test: &str) -> Option<&'static PgServer> {
    let server = test_server();
    if server.is_none() {
        skip(test, &why_no_server().unwrap_or_default());
    }
    server
}

/// A cluster of the test's own (to break), or `None` when the harness cannot start one.
fn own_cluster(test: &str) -> Option<PgServer> {
    match PgServer::start() {
        Ok(server) => Some(server),
        Err(why) => {
            skip(test, &format!("no throwaway cluster: {why}"));
            None
        }
    }
}

#[test]
fn the_server_answers_select_1() {
    let Some(pg) = server("the_server_answers_select_1") else {
        return;
    };
    assert_eq!(pg.psql("select 1").unwrap(), "1");
    assert_eq!(pg.psql("select 1, 'a'; select 2").unwrap(), "1|a\n2");
    let err = pg.psql("select * from no_such_table").unwrap_err();
    assert!(err.contains("no_such_table"), "{err}");

    let schema = throwaway_schema_name();
    pg.create_schema(&schema).unwrap();
    pg.psql(&format!(
        "create table {schema}.t (x int); insert into {schema}.t values (7)"
    ))
    .unwrap();
    assert_eq!(pg.psql(&format!("select x from {schema}.t")).unwrap(), "7");
    pg.drop_schema(&schema).unwrap();
    let left = pg
        .psql(&format!(
            "select count(*) from pg_namespace where nspname = '{schema}'"
        ))
        .unwrap();
    assert_eq!(left, "0");
    pg.drop_schema(&schema)
        .expect("dropping a schema that is gone is fine");
}

#[test]
fn a_role_with_a_password_logs_in_with_it_only() {
    let Some(pg) = server("a_role_with_a_password_logs_in_with_it_only") else {
        return;
    };
    let role = format!("r_{}", &throwaway_schema_name()[2..14]);
    pg.create_role(&role, Some("s3cret 'pw'")).unwrap();
    pg.create_role(&role, Some("s3cret 'pw'"))
        .expect("create_role is idempotent");
    assert_eq!(
        pg.psql_as(&role, Some("s3cret 'pw'"), "select current_user")
            .unwrap(),
        role
    );
    assert_eq!(
        pg.psql_as(
            &role,
            Some("s3cret 'pw'"),
            "select rolsuper from pg_roles where rolname = current_user"
        )
        .unwrap(),
        "f"
    );
    if pg.is_throwaway() {
        let err = pg.psql_as(&role, Some("wrong"), "select 1").unwrap_err();
        assert!(err.contains("password authentication failed"), "{err}");
        let err = pg.psql_as(&role, None, "select 1").unwrap_err();
        assert!(err.contains("password"), "{err}");
    }
    pg.psql(&format!("drop role \"{role}\"")).unwrap();
}

#[test]
fn tls_verifies_the_server_against_the_right_ca_only() {
    let test = "tls_verifies_the_server_against_the_right_ca_only";
    let Some(pg) = server(test) else { return };
    let (Some(ca), Some(wrong_ca)) = (pg.ca_cert(), pg.wrong_ca_cert()) else {
        return not_applicable(test, "the server is not a harness cluster with TLS files");
    };
    let conninfo = |root: &Path| {
        format!(
            "host=localhost port={} dbname=postgres user=postgres sslmode=verify-full sslrootcert={}",
            pg.port(),
            root.display()
        )
    };
    let ssl = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    assert_eq!(run_psql(&conninfo(ca), ssl).unwrap(), "t");
    let url = pg.tls_url("postgres", ca, false).unwrap();
    assert_eq!(run_psql(&url, ssl).unwrap(), "t");
    // By IP address too: the certificate names 127.0.0.1.
    let by_ip = conninfo(ca).replace("host=localhost", "host=127.0.0.1");
    assert_eq!(run_psql(&by_ip, ssl).unwrap(), "t");

    let err = run_psql(&conninfo(wrong_ca), "select 1").unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");
    let err = run_psql(&pg.tls_url("postgres", wrong_ca, false).unwrap(), "select 1").unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");

    // Without TLS the superuser still gets in (trust), and the connection is plain.
    let plain = format!("{}?sslmode=disable", pg.url());
    assert_eq!(run_psql(&plain, ssl).unwrap(), "f");
}

#[test]
fn tls_client_needs_its_client_certificate() {
    let test = "tls_client_needs_its_client_certificate";
    let Some(pg) = server(test) else { return };
    let (Some(ca), Some(cert), Some(key)) = (pg.ca_cert(), pg.client_cert(), pg.client_key()) else {
        return not_applicable(test, "the server is not a harness cluster with TLS files");
    };
    pg.create_role(TLS_CLIENT_ROLE, None).unwrap();

    let with_cert = pg.tls_url(TLS_CLIENT_ROLE, ca, true).unwrap();
    let who = "select current_user, ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()";
    assert_eq!(run_psql(&with_cert, who).unwrap(), "tls_client|t|/CN=tls_client");
    let conninfo = format!(
        "host=localhost port={} dbname=postgres user={TLS_CLIENT_ROLE} sslmode=verify-full \
         sslrootcert={} sslcert={} sslkey={}",
        pg.port(),
        ca.display(),
        cert.display(),
        key.display()
    );
    assert_eq!(
        run_psql(&conninfo, "select current_user").unwrap(),
        TLS_CLIENT_ROLE
    );

    // Without the certificate: TLS, but the `cert` line refuses.
    let err = run_psql(&pg.tls_url(TLS_CLIENT_ROLE, ca, false).unwrap(), "select 1").unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    // Without TLS: the password line, and the role has none.
    let err = pg
        .psql_as(TLS_CLIENT_ROLE, Some("guess"), "select 1")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    // The certificate is for tls_client, not for another role.
    let other = format!("r_{}", &throwaway_schema_name()[2..14]);
    pg.create_role(&other, Some("pw")).unwrap();
    let err = run_psql(&pg.tls_url(&other, ca, true).unwrap(), "select 1").unwrap_err();
    assert!(err.contains("password"), "{err}");
    pg.psql(&format!("drop role \"{other}\"")).unwrap();
}

#[test]
fn kill9_and_restart_keep_the_committed_data() {
    let test = "kill9_and_restart_keep_the_committed_data";
    let Some(pg) = own_cluster(test) else { return };
    pg.psql("create table kept (x int); insert into kept select generate_series(1, 1000)")
        .unwrap();
    let first = pg.postmaster_pid().expect("running");

    pg.kill9().unwrap();
    assert!(pg.postmaster_pid().is_none());
    assert!(pg.psql("select 1").is_err(), "a killed server does not answer");
    assert!(pg.kill9().is_err(), "nothing to kill");
    pg.restart().unwrap();
    assert_ne!(pg.postmaster_pid(), Some(first));
    assert_eq!(
        pg.psql("select count(*), sum(x) from kept").unwrap(),
        "1000|500500"
    );

    pg.psql("insert into kept values (0)").unwrap();
    pg.stop().unwrap();
    assert!(pg.psql("select 1").is_err(), "a stopped server does not answer");
    pg.restart().unwrap();
    assert_eq!(pg.psql("select count(*) from kept").unwrap(), "1001");
    pg.restart().expect("restarting a running server stops it first");
    assert_eq!(pg.psql("select count(*) from kept").unwrap(), "1001");

    let data = pg.data_dir().unwrap().to_path_buf();
    let socket_dir = pg.socket_dir().unwrap().to_path_buf();
    let pid = pg.postmaster_pid().unwrap();
    drop(pg);
    assert!(
        !socket_dir.exists() && !data.exists(),
        "dropping the server removes its directory"
    );
    assert!(!process_alive(pid), "dropping the server stops it");
}

#[test]
fn fault_control_is_refused_on_an_external_server() {
    let Some(pg) = server("fault_control_is_refused_on_an_external_server") else {
        return;
    };
    if pg.is_throwaway() {
        // The shared cluster is not to be broken; an external one is refused.
        let external = PgServer::from_url(pg.url()).unwrap();
        assert!(!external.is_throwaway());
        assert!(external.kill9().unwrap_err().contains("CHECKLIST_PG_URL"));
        assert!(external.restart().is_err() && external.stop().is_err());
        assert!(external.ca_cert().is_none() && external.data_dir().is_none());
        assert_eq!(external.psql("select 1").unwrap(), "1");
    }
}

#[test]
fn pgbouncer_answers_in_transaction_pooling_mode() {
    let test = "pgbouncer_answers_in_transaction_pooling_mode";
    let Some(pg) = server(test) else { return };
    let bouncer = match pg.pgbouncer() {
        Ok(bouncer) => bouncer,
        Err(why) => return skip(test, &why),
    };
    assert_ne!(bouncer.port(), pg.port());
    assert_eq!(run_psql(bouncer.url(), "select 1").unwrap(), "1");
    let config = bouncer.admin("show config").unwrap();
    assert!(
        config.lines().any(|l| l.starts_with("pool_mode|transaction|")),
        "{config}"
    );
    assert!(
        config.lines().any(|l| l.starts_with("max_client_conn|1000|")),
        "{config}"
    );
    assert!(
        std::ptr::eq(bouncer, pg.pgbouncer().unwrap()),
        "one PgBouncer per server"
    );

    // A role with a password, once PgBouncer knows it.
    let role = format!("r_{}", &throwaway_schema_name()[2..14]);
    pg.create_role(&role, Some("pw")).unwrap();
    bouncer.add_user(&role, Some("pw")).unwrap();
    assert_eq!(
        run_psql(&bouncer.url_as(&role), "select current_user").unwrap(),
        role
    );

    // Many clients at once share the pool of 10.
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = bouncer.url().to_owned();
            std::thread::spawn(move || run_psql(&url, &format!("select {i} from pg_sleep(0.05)")))
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().unwrap().unwrap(), i.to_string());
    }
    pg.psql(&format!("drop role \"{role}\"")).unwrap();
}

// ---------------------------------------------------------------------------------------
// The watchdog: a cluster whose owner dies is stopped and removed.

const OWNER_ENV: &str = "CHECKLIST_PG_WATCHDOG_OWNER";

/// Not a test on its own: run by [`watchdog_stops_the_cluster_of_a_dead_owner`] in a
/// child process (with `CHECKLIST_PG_WATCHDOG_OWNER=<mode>:<info file>`) to start a
/// cluster and a PgBouncer, write what to check in the info file, and die without
/// cleaning up: `panic` panics (the test harness exits 101), `wait` waits to be killed.
#[test]
fn watchdog_owner_process() {
    let Ok(spec) = std::env::var(OWNER_ENV) else {
        return;
    };
    let (mode, info) = spec.split_once(':').expect("mode:path");
    let pg = PgServer::start().expect("a throwaway cluster in the owner process");
    let mut pids = pg
        .psql("select pid from pg_stat_activity where pid <> pg_backend_pid()")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    pids.push(pg.postmaster_pid().unwrap().to_string());
    if let Ok(bouncer) = pg.pgbouncer() {
        pids.push(bouncer.pid().unwrap().to_string());
    }
    let text = format!("{}\n{}\n", pg.socket_dir().unwrap().display(), pids.join(" "));
    std::fs::write(format!("{info}.tmp"), text).unwrap();
    std::fs::rename(format!("{info}.tmp"), info).unwrap();
    // What a static (test_server) would do: never dropped.
    std::mem::forget(pg);
    match mode {
        "panic" => panic!("the owner process panics, leaving its cluster to the watchdog"),
        _ => std::thread::sleep(Duration::from_secs(120)),
    }
}

fn watchdog_case(mode: &str) {
    let test = format!("watchdog_stops_the_cluster_of_a_dead_owner ({mode})");
    if let Err(why) = cluster_prerequisites() {
        return skip(&test, &format!("no throwaway cluster: {why}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("info");
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_server::watchdog_owner_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OWNER_ENV, format!("{mode}:{}", info.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !info.exists() {
        if let Some(status) = owner.try_wait().unwrap() {
            assert!(
                info.exists(),
                "the owner process exited ({status}) before it started a cluster"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the owner process never started its cluster"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&info).unwrap();
    let mut lines = text.lines();
    let cluster_dir = PathBuf::from(lines.next().unwrap());
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.len() >= 4,
        "postmaster, background processes, pgbouncer: {pids:?}"
    );
    assert!(
        pids.iter().all(|&p| process_alive(p)),
        "{pids:?} run while the owner lives"
    );
    assert!(cluster_dir.exists());

    if mode == "kill" {
        owner.kill().unwrap();
    }
    let status = owner.wait().unwrap();
    assert!(!status.success(), "the owner process died ({status})");

    let died = Instant::now();
    while pids.iter().any(|&p| process_alive(p)) || cluster_dir.exists() {
        assert!(
            died.elapsed() < Duration::from_secs(30),
            "the watchdog did not clean up: alive {:?}, directory {} exists: {}",
            pids.iter().filter(|&&p| process_alive(p)).collect::<Vec<_>>(),
            cluster_dir.display(),
            cluster_dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watchdog_stops_the_cluster_of_an_owner_that_panics() {
    watchdog_case("panic");
}

#[test]
fn watchdog_stops_the_cluster_of_an_owner_killed_with_sigkill() {
    watchdog_case("kill");
}

/// Whether process `pid` runs: exists and, on Linux, is not a zombie (a process whose
/// parent died and that nobody reaps stays a zombie where PID 1 does not reap).
fn process_alive(pid: u32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        return !matches!(state, Some('Z' | 'X' | 'x') | None);
    }
    Command::new("sh")
        .args(["-c", "kill -0 \"$1\" 2>/dev/null", "sh", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
