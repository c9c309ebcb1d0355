//! The `postgres` backend through the real `checklist` binary, against the throwaway
//! server of `checklist_conformance::pg_server` (or the one `CHECKLIST_PG_URL` names):
//! the tour of the file backends, a password that is used and never kept, `init`
//! failures that leave nothing behind, checkouts sharing one state and one lock, the
//! conformance suite in a schema it drops, and config.yaml edits that are refused.
//!
//! Each test uses its own schema (and key, and role): they run in parallel on one
//! server. Without a server (`test_server()` is `None`) each returns at once; with
//! `CHECKLIST_REQUIRE_PG=1` the harness fails instead.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use checklist_backends::postgres::DATABASE_URL_ENV;
use checklist_conformance::pg_server::{self, PgServer, quote_ident, quote_literal};
use serde_json::Value;

use crate::support::{code, commits, stderr};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

// ----- the server ------------------------------------------------------------------

fn server() -> Option<&'static PgServer> {
    pg_server::test_server()
}

/// Fresh names for one test: a schema, a store key and a role name.
struct Names {
    schema: String,
    key: String,
    role: String,
}

/// A random string of 16 hex digits: a password nothing else in a test contains.
fn secret() -> String {
    pg_server::throwaway_schema_name()["t_".len()..][..16].to_owned()
}

fn fresh() -> Names {
    let schema = pg_server::throwaway_schema_name();
    let id = schema["t_".len()..].to_owned();
    Names {
        key: format!("team/app:{}", &id[..12]),
        role: format!("r_{id}"),
        schema,
    }
}

/// Drops what a test made on the server (its schemas, then its roles), however the
/// test ends.
struct Cleanup {
    server: &'static PgServer,
    schemas: Vec<String>,
    roles: Vec<String>,
}

impl Cleanup {
    fn new(server: &'static PgServer) -> Self {
        Self {
            server,
            schemas: Vec::new(),
            roles: Vec::new(),
        }
    }

    fn schema(&mut self, name: &str) -> String {
        self.schemas.push(name.to_owned());
        name.to_owned()
    }

    /// Makes `name` a login role with `password` (no privileges) and drops it later.
    fn role(&mut self, name: &str, password: Option<&str>) {
        self.server.create_role(name, password).unwrap();
        self.roles.push(name.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for schema in &self.schemas {
            let _ = self.server.drop_schema(schema);
        }
        for role in &self.roles {
            let role = quote_ident(role);
            let _ = self
                .server
                .psql(&format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// How messages name the server: `postgres://user@host:port/db`, never a password.
fn server_name(server: &PgServer, user: &str) -> String {
    server.url_as(user, None)
}

/// Whether schema `name` exists.
fn schema_exists(server: &PgServer, name: &str) -> bool {
    server
        .psql(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = {}",
            quote_literal(name)
        ))
        .unwrap()
        == "1"
}

/// Every schema of the database but those the tests running beside this one make
/// (`t_<uuid>`, and the conformance suite's `checklist_conformance_<id>`).
fn schemas(server: &PgServer) -> Vec<String> {
    let theirs = |name: &str| {
        name.strip_prefix("t_")
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            || name.starts_with("checklist_conformance_")
    };
    server
        .psql("SELECT nspname FROM pg_namespace ORDER BY nspname")
        .unwrap()
        .lines()
        .filter(|name| !theirs(name))
        .map(str::to_owned)
        .collect()
}

/// The stored document of `key` in `schema`, byte for byte.
fn stored_doc(server: &PgServer, schema: &str, key: &str) -> Vec<u8> {
    let hex = server
        .psql(&format!(
            "SELECT encode(doc, 'hex') FROM {}.states WHERE store = {}",
            quote_ident(schema),
            quote_literal(key)
        ))
        .unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

// ----- a checkout -------------------------------------------------------------------

/// A project directory and a home of its own (no `~/.pgpass` but the test's), whose
/// commands run the real binary with no `PG*` variable and no
/// `CHECKLIST_DATABASE_URL` unless a test passes one. Everything the commands print
/// is kept, to search for a password afterwards.
struct Checkout {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    printed: RefCell<Vec<u8>>,
}

impl Checkout {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            printed: RefCell::default(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn store_dir(&self) -> PathBuf {
        self.root().join(".checklist")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_checklist"));
        cmd.arg("--dir")
            .arg(self.root())
            .args(args)
            .env_remove("CHECKLIST_DIR")
            .env_remove("CHECKLIST_LOG")
            .env_remove(DATABASE_URL_ENV)
            .env("HOME", self.home.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.command(args, env).output().unwrap();
        let mut printed = self.printed.borrow_mut();
        printed.extend_from_slice(&out.stdout);
        printed.extend_from_slice(&out.stderr);
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run_with(args, env);
        assert!(
            out.status.success(),
            "checklist {args:?} failed with {:?}: {}",
            out.status.code(),
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    fn json_with(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok_with(&all, env);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    fn json(&self, args: &[&str]) -> Value {
        self.json_with(args, &[])
    }

    /// `init --backend postgres --database-url URL --key KEY --schema SCHEMA`.
    fn init(&self, url: &str, names: &Names) -> String {
        self.ok(&init_args(url, names, &[]))
    }

    /// Every file under `.checklist/`, with its bytes.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        let mut dirs = vec![self.store_dir()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    found.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        found
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn step_ids(status: &Value) -> Vec<String> {
    status["completedSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepId"].as_str().unwrap().to_owned())
        .collect()
}

/// The one sentence a failed command prints: one non-empty line on stderr.
fn one_sentence(out: &Output) -> String {
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one sentence on stderr: {text}");
    lines[0].to_owned()
}

// ----- 1. the tour ------------------------------------------------------------------

/// init → start → step complete → status/verify/export/audit/backup/archive/recover,
/// as with yaml, every `--json` output parsed; then the exit codes a postgres store
/// can produce from the command line (1, 2, 3, 5, 7, 8).
#[test]
fn the_tour_works_on_postgres() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let location = format!(
        "{} (schema {}, key {})",
        server_name(server, server.user()),
        names.schema,
        names.key
    );
    let a = Checkout::new();
    let init = a.json(&init_args(server.url(), &names, &[]));
    assert_eq!(init["init"]["outcome"], "created", "{init}");
    assert_eq!(init["init"]["backend"], "postgres", "{init}");
    assert_eq!(init["init"]["revision"], 1, "{init}");
    assert_eq!(init["init"]["joined"], false, "{init}");
    assert_eq!(init["init"]["capabilities"]["persistent"], true, "{init}");
    assert!(schema_exists(server, &names.schema));
    let config = std::fs::read_to_string(a.store_dir().join("config.yaml")).unwrap();
    for line in [
        "type: postgres".to_owned(),
        format!("schema: {}", names.schema),
        format!("key: {}", names.key),
    ] {
        assert!(config.contains(&line), "{line} missing from {config}");
    }
    // No state file: the state is on the server.
    for file in ["state.yaml", "state.json", "state.db"] {
        assert!(!a.store_dir().join(file).exists(), "{file}");
    }

    let started = a.json(&["start", "--template", "t", "--step", "build"]);
    assert_eq!(started["revision"], 2, "{started}");
    let done = a.json(&[
        "step",
        "complete",
        "s1",
        "--command",
        "make",
        "--exit-code",
        "0",
        "--stdout",
        "line 1\nline 2",
    ]);
    assert_eq!(done["revision"], 3, "{done}");

    let status = a.json(&["status"]);
    assert_eq!(status["revision"], 3);
    assert_eq!(status["store"]["backend"], "postgres");
    assert_eq!(status["store"]["location"], location.as_str());
    assert_eq!(status["activeInstance"]["templateId"], "t");
    assert_eq!(step_ids(&status), ["s1"]);
    assert_eq!(
        status["completedSteps"][0]["commandResults"][0]["stdout"],
        "line 1\nline 2"
    );
    assert_eq!(status["integrity"], "ok");
    assert!(status["lock"]["holder"].is_null(), "{status}");
    let human = a.ok(&["status"]);
    assert!(human.contains(&location), "{human}");

    let verified = a.json(&["verify"]);
    assert_eq!(verified["path"], location.as_str());
    assert_eq!(verified["revision"], 3);
    assert_eq!(verified["checksum"], status["checksum"]);
    assert!(a.ok(&["verify"]).contains(&location));

    // The export is the same document as with any backend.
    let exported: Value = serde_json::from_str(&a.ok(&["export", "--format", "json"])).unwrap();
    assert_eq!(exported["checksum"], status["checksum"]);
    assert_eq!(exported["revision"], 3);
    assert!(a.ok(&["export"]).contains("stepId: s1"));
    let out_file = a.root().join("export.yaml");
    let report = a.json(&["export", "--output", out_file.to_str().unwrap()]);
    assert_eq!(report["format"], "yaml", "{report}");
    assert!(std::fs::read_to_string(&out_file).unwrap().contains("stepId: s1"));

    // Each change is one audited transaction under the id it reported.
    let audit = a.json(&["audit"]);
    let commits = commits(&audit);
    assert_eq!(
        commits,
        [
            (started["txId"].clone(), started["revision"].clone()),
            (done["txId"].clone(), done["revision"].clone())
        ],
        "{audit}"
    );
    assert!(audit["problems"].as_array().unwrap().is_empty(), "{audit}");

    // Backups are rows on the server: the two commits' and a manual one.
    let listed = a.json(&["backup", "list"]);
    let revisions: Vec<_> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [1, 2], "{listed}");
    let created = a.json(&["backup", "create"]);
    assert_eq!(created["backup"]["revision"], 3, "{created}");
    assert_eq!(created["backup"]["reason"], "manual", "{created}");
    assert_eq!(
        a.json(&["backup", "list"])["backups"].as_array().unwrap().len(),
        3
    );
    let backups_on_server = server
        .psql(&format!(
            "SELECT count(*) FROM {}.backups WHERE store = {}",
            quote_ident(&names.schema),
            quote_literal(&names.key)
        ))
        .unwrap();
    assert_eq!(backups_on_server, "3");
    assert!(
        a.files()
            .iter()
            .all(|(path, _)| !path.to_string_lossy().contains(".backup/3-")),
        "a postgres backup is not a file"
    );

    // Nothing to recover from a state that verifies.
    let recover = a.json(&["recover"]);
    assert_eq!(recover["recovered"], false, "{recover}");
    assert_eq!(recover["revision"], 3, "{recover}");

    // Archive: the instance goes to the server's archive and is listed and shown.
    let instance = status["activeInstance"]["id"].as_str().unwrap().to_owned();
    let archived = a.json(&["archive", "--as", "completed"]);
    assert_eq!(archived["revision"], 4, "{archived}");
    assert_eq!(archived["archived"]["instanceId"], instance.as_str());
    assert_eq!(archived["archived"]["status"], "completed");
    let list = a.json(&["archive", "--list"]);
    assert_eq!(list["instances"][0]["instanceId"], instance.as_str(), "{list}");
    let shown = a.run(&["archive", "--show", &instance]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("s1"),
        "the archived instance has its step"
    );
    let status = a.json(&["status"]);
    assert!(status["activeInstance"].is_null(), "{status}");
    assert_eq!(status["revision"], 4);

    // Restore a backup of revision 3 (the retention policy kept one): the instance and
    // its step are back.
    let listed = a.json(&["backup", "list"]);
    let of_3 = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|b| b["revision"] == 3)
        .unwrap_or_else(|| panic!("no backup of revision 3: {listed}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restored = a.json(&["backup", "restore", &of_3]);
    assert_eq!(restored["revision"], 5, "{restored}");
    assert_eq!(restored["restore"]["backup"]["revision"], 3, "{restored}");
    let status = a.json(&["status"]);
    assert_eq!(status["activeInstance"]["id"], instance.as_str(), "{status}");
    assert_eq!(step_ids(&status), ["s1"]);

    // Exit codes (README "Exit codes").
    // 1: a successful step cannot be completed again.
    let again = a.run(&["step", "complete", "s1"]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    assert!(stderr(&again).contains("already completed"), "{}", stderr(&again));
    // 2: usage.
    assert_eq!(code(&a.run(&["lock", "release", "some-id"])), 2);
    // 3: not initialized (a directory without config.yaml).
    let empty = Checkout::new();
    assert_eq!(code(&empty.run(&["status"])), 3);
    // 7: a secret is refused and nothing is written.
    let before = stored_doc(server, &names.schema, &names.key);
    let secret = a.run(&[
        "step",
        "complete",
        "s2",
        "--command",
        "deploy",
        "--stdout",
        &format!("token {TOKEN}"),
    ]);
    assert_eq!(code(&secret), 7, "{}", stderr(&secret));
    assert_eq!(stored_doc(server, &names.schema, &names.key), before);
    // 5: a document changed on the server behind the store's back is a checksum
    // mismatch, named by its location; verify changes nothing; recover quarantines
    // the exact bytes and restores the newest backup that verifies.
    server
        .psql(&format!(
            "UPDATE {}.states SET doc = convert_to(replace(convert_from(doc, 'UTF8'), \
             '\"stepId\": \"s1\"', '\"stepId\": \"s0\"'), 'UTF8') WHERE store = {}",
            quote_ident(&names.schema),
            quote_literal(&names.key)
        ))
        .unwrap();
    let corrupt = stored_doc(server, &names.schema, &names.key);
    assert_ne!(corrupt, before, "the edit changed the document");
    let out = a.run(&["verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("checksum_mismatch"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&location), "{}", stderr(&out));
    let out = a.run(&["--json", "verify"]);
    assert_eq!(code(&out), 5);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["corruptionKind"], "checksum_mismatch", "{doc}");
    assert_eq!(stored_doc(server, &names.schema, &names.key), corrupt);
    let recovered = a.json(&["recover"]);
    assert_eq!(recovered["recovered"], true, "{recovered}");
    assert_eq!(recovered["recovery"]["method"], "backup", "{recovered}");
    assert_eq!(
        recovered["recovery"]["corruptionType"], "checksum_mismatch",
        "{recovered}"
    );
    a.ok(&["verify"]);
    let quarantine = a.json(&["quarantine", "list"]);
    let records = quarantine["quarantine"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{quarantine}");
    let shown = a.run(&["quarantine", "show", records[0]["id"].as_str().unwrap()]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert_eq!(
        shown.stdout, corrupt,
        "the quarantined bytes are the damaged ones"
    );
    let audit = a.json(&["audit"]);
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["event"] == "recovery"),
        "{audit}"
    );
    // 8: tables of a newer layout, written by a newer checklist.
    server
        .psql(&format!(
            "UPDATE {}.meta SET value = '2' WHERE key = 'layout_version'",
            quote_ident(&names.schema)
        ))
        .unwrap();
    let newer = a.run(&["status"]);
    assert_eq!(code(&newer), 8, "{}", stderr(&newer));
}

/// `archive` names where the instance went: not a file under `.checklist/archive/`
/// that the postgres backend never writes.
#[test]
fn archive_names_no_file_that_is_not_there() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    a.ok(&["start", "--template", "t"]);
    a.ok(&["step", "complete", "s1"]);
    let said = a.ok(&["archive", "--as", "completed"]);
    let named = a.store_dir().join("archive");
    let named = named.to_string_lossy();
    if let Some(at) = said.find(named.as_ref()) {
        let path: String = said[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ';')
            .collect();
        assert!(
            Path::new(&path).exists(),
            "archive says the instance went to {path}, which does not exist: {said}"
        );
    }
}

#[test]
fn diff_and_restore_by_revision_work_on_postgres() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    crate::diff::set_backups_kept(a.root(), 10);
    let exported = || serde_json::from_str::<Value>(&a.ok(&["export", "--format", "json"])).unwrap();
    let mut documents = vec![exported()];
    for args in crate::diff::FOUR_COMMITS {
        a.ok(args);
        documents.push(exported());
    }
    // Every ordered pair: the patch turns A's exported document into exactly B's.
    for (from, before) in (1..).zip(&documents) {
        for (to, after) in (1..).zip(&documents) {
            let patch = a.json(&["diff", &from.to_string(), &to.to_string()]);
            assert_eq!(
                &crate::diff::apply(before, &patch),
                after,
                "diff {from} {to}: {patch:#}"
            );
        }
    }
    let out = a.run(&["diff", "0"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the oldest revision held is 1"),
        "{}",
        stderr(&out)
    );

    let restored = a.json(&["backup", "restore", "--revision", "2"]);
    assert_eq!(restored["revision"], 6, "{restored}");
    assert_eq!(restored["restore"]["backup"]["revision"], 2, "{restored}");
    assert!(a.ok(&["diff", "2"]).contains("nothing else differs"));
}

// ----- 2. a password is used once and kept nowhere -------------------------------------

/// A role that may create its schema.
fn role_that_may_create(cleanup: &mut Cleanup, server: &PgServer, role: &str, password: &str) {
    cleanup.role(role, Some(password));
    server
        .psql(&format!(
            "GRANT CREATE ON DATABASE {} TO {}",
            quote_ident(server.dbname()),
            quote_ident(role)
        ))
        .unwrap();
}

#[test]
fn a_password_in_the_url_is_used_once_and_kept_nowhere() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    // Characters that must be percent-encoded in a URL around a distinctive middle,
    // which is in the URL as it is in the password: neither may be kept anywhere.
    let secret = secret();
    let password = format!("Pw:{secret}/x@Y!");
    role_that_may_create(&mut cleanup, server, &names.role, &password);
    let url = server.url_as(&names.role, Some(&password));
    let name = server_name(server, &names.role);

    let a = Checkout::new();
    let said = a.init(&url, &names);
    assert!(
        said.contains("used for this command only") && said.contains("PGPASSWORD"),
        "init says the password was not kept: {said}"
    );
    assert!(said.contains(&name), "{said}");
    let config = std::fs::read_to_string(a.store_dir().join("config.yaml")).unwrap();
    assert!(config.contains(&format!("url: {name}\n")), "{config}");
    let json_init = a.json(&init_args(&url, &names, &[]));
    assert_eq!(json_init["init"]["outcome"], "already_initialized");

    // Without the password a command fails naming the server (what it says to check
    // is a_missing_password_says_to_check_the_user_and_the_password's business).
    let out = a.run(&["status"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = one_sentence(&out);
    assert!(message.contains(&name), "{message}");
    assert!(message.contains("password"), "{message}");

    // With PGPASSWORD every command works.
    let env = [("PGPASSWORD", password.as_str())];
    a.ok_with(&["start", "--template", "t"], &env);
    a.ok_with(&["step", "complete", "s1"], &env);
    a.ok_with(&["backup", "create"], &env);
    for args in [
        &["status"][..],
        &["verify"],
        &["export"],
        &["audit"],
        &["lock", "status"],
        &["backup", "list"],
    ] {
        a.ok_with(args, &env);
        a.json_with(args, &env);
    }
    let status = a.json_with(&["status"], &env);
    assert_eq!(step_ids(&status), ["s1"]);
    assert_eq!(
        status["store"]["location"].as_str().unwrap().split(' ').next(),
        Some(name.as_str())
    );

    // CHECKLIST_DATABASE_URL (with the password) works too, and wins over config.yaml.
    let env_url = [(DATABASE_URL_ENV, url.as_str())];
    assert_eq!(a.json_with(&["status"], &env_url)["revision"], 3);

    // A password file: used at mode 0600, ignored (with a warning) at 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let passfile = a.home.path().join("pgpass");
        std::fs::write(
            &passfile,
            format!(
                "{}:{}:{}:{}:{}\n",
                server.host(),
                server.port(),
                server.dbname(),
                names.role,
                password.replace('\\', "\\\\").replace(':', "\\:")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = [("PGPASSFILE", passfile.to_str().unwrap())];
        assert_eq!(a.json_with(&["status"], &env)["revision"], 3);
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = a.run_with(&["status"], &env);
        assert_eq!(code(&out), 1, "a password file others can read is ignored");
        assert!(stderr(&out).contains("chmod 0600"), "{}", stderr(&out));
        // ~/.pgpass, where libpq looks without PGPASSFILE.
        let dot = a.home.path().join(".pgpass");
        std::fs::rename(&passfile, &dot).unwrap();
        std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(a.json(&["status"])["revision"], 3);
        std::fs::remove_file(&dot).unwrap();
    }

    // The password is in no file, no output, and nowhere on the server.
    for (path, bytes) in a.files() {
        assert!(
            !contains(&bytes, &secret),
            "{} holds the password",
            path.display()
        );
    }
    let printed = a.printed.borrow();
    assert!(!contains(&printed, &secret), "a command printed the password");
    for table in [
        "states",
        "backups",
        "audit",
        "archive",
        "quarantine",
        "locks",
        "lock_waiters",
        "meta",
    ] {
        let hits = server
            .psql(&format!(
                "SELECT count(*) FROM {}.{} t WHERE strpos(t::text, {}) > 0 OR strpos(t::text, {}) > 0",
                quote_ident(&names.schema),
                quote_ident(table),
                quote_literal(&password),
                quote_literal(&secret)
            ))
            .unwrap();
        assert_eq!(hits, "0", "the password is in the server's {table} table");
    }
}

/// A later command without the password fails with exit 1, naming the server and
/// saying to check the user and the password (not the network).
#[test]
fn a_missing_password_says_to_check_the_user_and_the_password() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let password = secret();
    role_that_may_create(&mut cleanup, server, &names.role, &password);
    let a = Checkout::new();
    a.init(&server.url_as(&names.role, Some(&password)), &names);
    let out = a.run(&["status"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = one_sentence(&out);
    assert!(message.contains(&server_name(server, &names.role)), "{message}");
    assert!(
        message.contains("check the user and the password"),
        "a missing password says to check the user and the password: {message}"
    );
    assert!(
        !message.contains("reachable"),
        "a missing password is not a network problem: {message}"
    );
}

/// The password of a `password=` URL parameter is taken out of config.yaml too.
#[test]
fn a_password_parameter_is_not_kept_either() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let password = format!("param{}", secret());
    role_that_may_create(&mut cleanup, server, &names.role, &password);
    let url = format!("{}?password={password}", server.url_as(&names.role, None));
    let a = Checkout::new();
    let said = a.init(&url, &names);
    assert!(said.contains("used for this command only"), "{said}");
    for (path, bytes) in a.files() {
        assert!(
            !contains(&bytes, &password),
            "{} holds the password",
            path.display()
        );
    }
    assert!(!contains(&a.printed.borrow(), &password));
    let env = [("PGPASSWORD", password.as_str())];
    assert_eq!(a.json_with(&["status"], &env)["revision"], 1);
}

// ----- 3. a failed init leaves nothing behind ------------------------------------------

/// Asserts a failed `init`: exit code 1, one sentence naming `name`, no `.checklist/`,
/// and no password in what it printed.
fn assert_init_failed(checkout: &Checkout, out: &Output, name: &str, secret: &str) -> String {
    assert_eq!(code(out), 1, "a failed init exits 1: {}", stderr(out));
    let sentence = one_sentence(out);
    assert!(sentence.contains(name), "the error names {name}: {sentence}");
    assert!(!contains(&checkout.printed.borrow(), secret), "{sentence}");
    assert!(
        !checkout.store_dir().exists(),
        "a failed init left {}",
        checkout.store_dir().display()
    );
    assert_eq!(
        std::fs::read_dir(checkout.root()).unwrap().count(),
        0,
        "a failed init left something in the project"
    );
    sentence
}

fn init_args<'a>(url: &'a str, names: &'a Names, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["init", "--backend", "postgres"];
    args.extend(server_args(url, names));
    args.extend_from_slice(extra);
    args
}

/// The options that name the server and the store on it.
fn server_args<'a>(url: &'a str, names: &'a Names) -> [&'a str; 6] {
    [
        "--database-url",
        url,
        "--key",
        &names.key,
        "--schema",
        &names.schema,
    ]
}

#[test]
fn init_against_a_closed_port_leaves_nothing_and_names_the_server() {
    let port = {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let names = fresh();
    let url = format!("postgres://nobody:closed-port-pw@127.0.0.1:{port}/postgres");
    let a = Checkout::new();
    let out = a.run(&init_args(&url, &names, &[]));
    assert_init_failed(
        &a,
        &out,
        &format!("postgres://nobody@127.0.0.1:{port}/postgres"),
        "closed-port-pw",
    );
}

#[test]
fn init_with_a_wrong_password_leaves_nothing_and_says_to_check_it() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    role_that_may_create(&mut cleanup, server, &names.role, "the-right-one");
    let url = server.url_as(&names.role, Some("not-the-right-one"));
    let a = Checkout::new();
    let out = a.run(&init_args(&url, &names, &[]));
    let sentence = assert_init_failed(&a, &out, &server_name(server, &names.role), "not-the-right-one");
    assert!(sentence.contains("check the user and the password"), "{sentence}");
    assert!(
        !schema_exists(server, &names.schema),
        "nothing is created on the server"
    );
}

/// `--no-create-schema` for a role without privileges, where the tables do not exist:
/// a schema that is not there, and an empty one it may use.
#[test]
fn init_without_the_tables_and_no_create_schema_leaves_nothing() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    cleanup.role(&names.role, Some("pw-no-create"));
    let url = server.url_as(&names.role, Some("pw-no-create"));
    let name = server_name(server, &names.role);

    let a = Checkout::new();
    let out = a.run(&init_args(&url, &names, &["--no-create-schema"]));
    let sentence = assert_init_failed(&a, &out, &name, "pw-no-create");
    assert!(sentence.contains(&names.schema), "{sentence}");
    assert!(sentence.contains("createSchema"), "{sentence}");
    assert!(!schema_exists(server, &names.schema));

    // The schema exists, empty, and the role may use it but not create in it.
    server.create_schema(&names.schema).unwrap();
    server
        .psql(&format!(
            "GRANT USAGE ON SCHEMA {} TO {}",
            quote_ident(&names.schema),
            quote_ident(&names.role)
        ))
        .unwrap();
    let b = Checkout::new();
    let out = b.run(&init_args(&url, &names, &["--no-create-schema"]));
    let sentence = assert_init_failed(&b, &out, &name, "pw-no-create");
    assert!(sentence.contains("createSchema"), "{sentence}");
    let tables = server
        .psql(&format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = {}",
            quote_literal(&names.schema)
        ))
        .unwrap();
    assert_eq!(tables, "0", "--no-create-schema created tables");
}

/// `--no-create-schema` where the tables exist but the role may not use their schema:
/// refused, nothing left, and the sentence does not claim it tried to create anything.
#[test]
fn no_create_schema_on_a_schema_the_role_may_not_use_says_what_failed() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    cleanup.role(&names.role, Some("pw-no-usage"));
    Checkout::new().init(server.url(), &names);
    let url = server.url_as(&names.role, Some("pw-no-usage"));
    let c = Checkout::new();
    let out = c.run(&init_args(&url, &names, &["--no-create-schema"]));
    let sentence = assert_init_failed(&c, &out, &server_name(server, &names.role), "pw-no-usage");
    assert!(sentence.contains("permission denied"), "{sentence}");
    assert!(
        !sentence.contains("could not create"),
        "with --no-create-schema nothing is created, so nothing could not be: {sentence}"
    );
}

/// The same role without `--no-create-schema`, on a schema it may not use: refused
/// (it has no privilege), nothing left; the sentence is one readable sentence.
#[test]
fn init_without_privileges_leaves_nothing() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    cleanup.role(&names.role, Some("pw-no-priv"));
    let url = server.url_as(&names.role, Some("pw-no-priv"));
    let a = Checkout::new();
    let out = a.run(&init_args(&url, &names, &[]));
    let sentence = assert_init_failed(&a, &out, &server_name(server, &names.role), "pw-no-priv");
    assert!(sentence.contains("permission denied"), "{sentence}");
    assert!(!schema_exists(server, &names.schema));
}

/// The advice for a missing privilege is one sentence as written: no run of spaces
/// left from a line break in its source.
#[test]
fn the_privilege_advice_is_one_clean_sentence() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    cleanup.role(&names.role, Some("pw-clean"));
    let a = Checkout::new();
    let out = a.run(&init_args(
        &server.url_as(&names.role, Some("pw-clean")),
        &names,
        &[],
    ));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let sentence = one_sentence(&out);
    assert!(sentence.contains("lacks a privilege"), "{sentence}");
    assert!(!sentence.contains("  "), "a run of spaces in: {sentence}");
}

/// A role that owns an existing, empty schema (the usual grant of a DBA) but may not
/// create schemas in the database: `init` creates the tables in its schema.
#[test]
fn init_by_the_owner_of_an_empty_schema_needs_no_database_privilege() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    cleanup.role(&names.role, Some("pw-owner"));
    server
        .psql(&format!(
            "CREATE SCHEMA {} AUTHORIZATION {}",
            quote_ident(&names.schema),
            quote_ident(&names.role)
        ))
        .unwrap();
    let a = Checkout::new();
    let out = a.run(&init_args(
        &server.url_as(&names.role, Some("pw-owner")),
        &names,
        &[],
    ));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let env = [("PGPASSWORD", "pw-owner")];
    assert_eq!(a.json_with(&["status"], &env)["revision"], 1);
}

/// A role that may only read and write the tables someone else created joins with
/// `--no-create-schema` and works (no CREATE needed when the tables exist).
#[test]
fn a_least_privilege_role_uses_existing_tables() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let owner = Checkout::new();
    owner.init(server.url(), &names);
    owner.ok(&["start", "--template", "t"]);
    cleanup.role(&names.role, Some("pw-dml"));
    let (schema, role) = (quote_ident(&names.schema), quote_ident(&names.role));
    server
        .psql(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
        ))
        .unwrap();
    let a = Checkout::new();
    let out = a.run(&init_args(
        &server.url_as(&names.role, Some("pw-dml")),
        &names,
        &["--no-create-schema"],
    ));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Joined the existing state"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let config = std::fs::read_to_string(a.store_dir().join("config.yaml")).unwrap();
    assert!(config.contains("createSchema: false"), "{config}");
    let env = [("PGPASSWORD", "pw-dml")];
    a.ok_with(&["step", "complete", "s1"], &env);
    a.ok_with(&["backup", "create"], &env);
    a.ok_with(&["archive", "--as", "completed"], &env);
    assert_eq!(step_ids(&owner.json(&["status"])).len(), 0);
    assert_eq!(
        owner.json(&["archive", "--list"])["instances"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ----- 4. checkouts sharing one state ---------------------------------------------------

/// Holds the lock of the store of checkout `root` from this process, opened from its
/// config.yaml exactly as a `checklist` process opens it.
struct HeldLock {
    runtime: tokio::runtime::Runtime,
    guard: Option<checklist_core::LockGuard>,
}

impl HeldLock {
    fn take(root: &Path) -> Self {
        use checklist_backends::{OpenOptions, builtin_registry, open_project};
        use checklist_core::LockRequest;
        use checklist_core::lock::Operation;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let guard = runtime.block_on(async {
            let opened = open_project(root, &builtin_registry(), &OpenOptions::default())
                .await
                .unwrap();
            let request = LockRequest::from_settings(Operation::Write, &opened.config.lock);
            opened.backend.locks.acquire(&request).await.unwrap()
        });
        Self {
            runtime,
            guard: Some(guard),
        }
    }

    fn info(&self) -> &checklist_core::LockInfo {
        self.guard.as_ref().unwrap().info()
    }

    fn ensure_held(&self) -> checklist_core::Result<()> {
        self.runtime.block_on(self.guard.as_ref().unwrap().ensure_held())
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            let _ = self.runtime.block_on(guard.release());
        }
    }
}

#[test]
fn a_second_checkout_joins_the_state_and_sees_every_commit() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    a.ok(&["start", "--template", "t"]);
    a.ok(&["step", "complete", "a1"]);

    let b = Checkout::new();
    let said = b.init(server.url(), &names);
    assert!(
        said.contains("Joined the existing state") && said.contains("at revision 3"),
        "{said}"
    );
    let c = Checkout::new();
    let joined = c.json(&init_args(server.url(), &names, &[])[..]);
    assert_eq!(joined["init"]["joined"], true, "{joined}");
    assert_eq!(joined["init"]["revision"], 3, "{joined}");
    // Joining reset nothing.
    let status = a.json(&["status"]);
    assert_eq!(status["revision"], 3);
    assert_eq!(step_ids(&status), ["a1"]);

    // A commit in one is seen by the others.
    let done = b.json(&["step", "complete", "b1"]);
    assert_eq!(done["revision"], 4);
    let status = a.json(&["status"]);
    assert_eq!(status["revision"], 4);
    assert_eq!(step_ids(&status), ["a1", "b1"]);
    a.ok(&["step", "complete", "a2"]);
    assert_eq!(step_ids(&c.json(&["status"])), ["a1", "b1", "a2"]);
    // The audit trail is one trail.
    let audit_a = a.json(&["audit"]);
    assert_eq!(audit_a, b.json(&["audit"]));
    assert_eq!(commits(&audit_a).len(), 4);
}

#[test]
fn the_lock_is_shared_named_from_the_other_checkout_and_released_by_id() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    a.ok(&["start", "--template", "t"]);
    let b = Checkout::new();
    b.init(server.url(), &names);

    let held = HeldLock::take(a.root());
    let lock_id = held.info().lock_id.clone();
    let host = held.info().hostname.clone();
    let pid = std::process::id();

    // `lock status` in B names A's holder.
    let status = b.json(&["lock", "status"]);
    assert_eq!(status["holder"]["lockId"], lock_id.as_str(), "{status}");
    assert_eq!(status["holder"]["pid"], pid, "{status}");
    assert_eq!(status["holder"]["hostname"], host.as_str(), "{status}");
    let human = b.ok(&["lock", "status"]);
    assert!(
        human.contains(&lock_id) && human.contains(&pid.to_string()),
        "{human}"
    );
    assert_eq!(b.json(&["status"])["lock"]["holder"]["lockId"], lock_id.as_str());

    // A lock timeout in B names the holder: pid, host and lock id.
    let out = b.run(&["--lock-timeout", "500", "step", "complete", "blocked"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains(&lock_id), "{message}");
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    assert!(message.contains(&host), "{message}");
    assert!(message.contains("lock release --force"), "{message}");

    // Another key in the same schema is another store, with its own lock.
    let other = Names {
        schema: names.schema.clone(),
        key: format!("{}-other", names.key),
        role: String::new(),
    };
    let c = Checkout::new();
    let init = c.json(&init_args(server.url(), &other, &[])[..]);
    assert_eq!(init["init"]["joined"], false, "{init}");
    assert_eq!(init["init"]["revision"], 1, "{init}");
    c.ok(&["start", "--template", "other"]);
    c.ok(&["--lock-timeout", "2000", "step", "complete", "c1"]);
    assert_eq!(step_ids(&c.json(&["status"])), ["c1"]);
    assert!(step_ids(&a.json(&["status"])).is_empty());
    assert!(c.json(&["lock", "status"])["holder"].is_null());

    // `lock release --force` needs the exact id, and from B frees A's lock.
    let wrong = b.run(&["lock", "release", "--force", "not-the-id"]);
    assert_eq!(code(&wrong), 1, "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains(&lock_id), "{}", stderr(&wrong));
    held.ensure_held().unwrap();
    let out = b.run(&["lock", "release", "--force", &lock_id]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("force-released"), "{}", stderr(&out));
    assert!(b.json(&["lock", "status"])["holder"].is_null());
    let lost = held.ensure_held().unwrap_err();
    assert_eq!(lost.kind(), "lock_lost", "{lost}");
    b.ok(&["--lock-timeout", "5000", "step", "complete", "b1"]);
    assert_eq!(step_ids(&a.json(&["status"])), ["b1"]);
    // The force release is in the shared audit trail, naming the old holder.
    let audit = a.json(&["audit"]);
    let broken: Vec<_> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "lock_broken")
        .collect();
    assert_eq!(broken.len(), 1, "{audit}");
    assert!(broken[0].to_string().contains(&lock_id), "{}", broken[0]);
    drop(held);
}

/// A session that holds `LOCK TABLE … IN SHARE MODE` on a store's audit table: inserts
/// (a transaction's `begin` record) wait until it ends, reads go on. It sleeps holding
/// the lock in a background psql, and dropping it cancels the sleep, which ends the
/// transaction and lets the inserts in.
struct AuditTableLock {
    server: &'static PgServer,
    marker: String,
    session: Option<std::thread::JoinHandle<Result<String, String>>>,
}

impl AuditTableLock {
    fn take(server: &'static PgServer, schema: &str) -> Self {
        let marker = format!("audit_lock_{}", &pg_server::throwaway_schema_name()[2..]);
        let sql = format!(
            "BEGIN; LOCK TABLE {}.\"audit\" IN SHARE MODE; SELECT pg_sleep(120) /* {marker} */; COMMIT;",
            quote_ident(schema)
        );
        let session = std::thread::spawn(move || server.psql(&sql));
        let lock = Self {
            server,
            marker,
            session: Some(session),
        };
        let started = std::time::Instant::now();
        while lock
            .backend_pids("AND l.relation IS NOT NULL AND l.mode = 'ShareLock' AND l.granted")
            .is_empty()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the audit table lock was never granted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lock
    }

    /// The backend pids of the session, among those with a lock matching `condition`.
    fn backend_pids(&self, condition: &str) -> String {
        self.server
            .psql(&format!(
                "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
                 WHERE a.query LIKE '%/* {} */%' AND a.pid <> pg_backend_pid() {condition}",
                self.marker
            ))
            .unwrap()
    }
}

impl Drop for AuditTableLock {
    fn drop(&mut self) {
        let _ = self.server.psql(&format!(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%/* {} */%' AND pid <> pg_backend_pid()",
            self.marker
        ));
        if let Some(session) = self.session.take() {
            let _ = session.join();
        }
    }
}

#[test]
fn lock_notes_are_shared_across_two_checkouts() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    a.ok(&["start", "--template", "t"]);
    let b = Checkout::new();
    b.init(server.url(), &names);
    let note = format!("CI job 4711 (pipeline {TOKEN})");
    let stored = "CI job 4711 (pipeline [REDACTED:github_token])";

    // A's command takes the store's lock with its note, then waits to write its
    // `begin` record behind the table lock: it holds the lock for as long as we need.
    let table_lock = AuditTableLock::take(server, &names.schema);
    let holder = a
        .command(
            &["--json", "step", "complete", "a1"],
            &[("CHECKLIST_LOCK_NOTE", &note)],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        let status = b.json(&["lock", "status"]);
        if !status["holder"].is_null() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "A's command never took the lock: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // B, another checkout, sees the note with the holder, redacted.
    assert_eq!(status["holder"]["note"], stored, "{status}");
    assert_eq!(status["holder"]["pid"], holder.id(), "{status}");
    let human = b.ok(&["lock", "status"]);
    assert!(human.contains(&format!(", note: {stored})")), "{human}");
    assert!(!human.contains(TOKEN), "{human}");
    // B's lock timeout names it too; the row on the server holds only the redacted note.
    let out = b.run(&["--lock-timeout", "500", "step", "complete", "b1"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains(&format!("note: {stored}")), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    let row = server
        .psql(&format!(
            "SELECT holder FROM {}.\"locks\" WHERE store = {}",
            quote_ident(&names.schema),
            quote_literal(&names.key)
        ))
        .unwrap();
    assert!(row.contains(stored) && !row.contains(TOKEN), "{row}");

    drop(table_lock);
    let done = holder.wait_with_output().unwrap();
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    // The holder's transaction is in the shared trail with its note, read from B.
    let audit = b.json(&["audit"]);
    let records: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["txId"] == report["txId"])
        .collect();
    let events: Vec<&Value> = records.iter().map(|r| &r["event"]).collect();
    assert_eq!(events, ["begin", "commit"], "{audit}");
    assert!(records.iter().all(|r| r["lockNote"] == stored), "{audit}");
    assert!(!audit.to_string().contains(TOKEN), "{audit}");
    // The next holder, from B without a note, shows none.
    b.ok(&["step", "complete", "b1"]);
    assert!(b.json(&["lock", "status"])["holder"].is_null());
}

// ----- 5. the conformance suite -----------------------------------------------------------

#[test]
fn conformance_passes_on_postgres_and_drops_its_schema() {
    let Some(server) = server() else { return };
    let total = checklist_conformance::all_cases().len();
    let a = Checkout::new();
    let child = a
        .command(
            &[
                "conformance",
                "--backend",
                "postgres",
                "--database-url",
                server.url(),
            ],
            &[],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the suite's schemas come (and go) while it runs.
    let suite_schemas = || -> Vec<String> {
        server
            .psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'checklist\\_conformance\\_%'")
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let (out, seen) = std::thread::scope(|scope| {
        let watching = scope.spawn(|| {
            let mut seen = std::collections::BTreeSet::new();
            loop {
                let last = done.load(std::sync::atomic::Ordering::Acquire);
                seen.extend(suite_schemas());
                if last {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let out = child.wait_with_output().unwrap();
        done.store(true, std::sync::atomic::Ordering::Release);
        (out, watching.join().unwrap())
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("{total} passed, 0 failed, {total} total")),
        "{text}"
    );
    let header = text.lines().next().unwrap_or_default();
    let schema: String = header
        .split_once("in the throwaway schema ")
        .map(|(_, rest)| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .unwrap_or_else(|| panic!("the header names no throwaway schema: {header}"));
    assert!(
        seen.contains(&schema),
        "the suite ran in {schema}, which was never seen on the server (saw {seen:?})"
    );
    assert!(
        !schema_exists(server, &schema),
        "the suite left its schema {schema}"
    );
    assert_eq!(
        std::fs::read_dir(a.root()).unwrap().count(),
        0,
        "nothing is left in the project either"
    );

    // --schema (and --key) are refused: the suite picks its own schema.
    for extra in [["--schema", "mine"], ["--key", "mine"]] {
        let mut args = vec![
            "conformance",
            "--backend",
            "postgres",
            "--database-url",
            server.url(),
        ];
        args.extend(extra);
        let out = a.run(&args);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(extra[0]), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert!(!schema_exists(server, "mine"));
}

// ----- 6. config.yaml edited ------------------------------------------------------------------

fn edit_config(checkout: &Checkout, from: &str, to: &str) {
    let path = checkout.store_dir().join("config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_bad_backend_in_config_yaml_is_refused_by_field_and_creates_nothing() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    a.ok(&["start", "--template", "t"]);
    let config = a.store_dir().join("config.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let before = schemas(server);

    // No key.
    edit_config(&a, &format!("  key: {}\n", names.key), "");
    let out = a.run(&["status"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("/backend/key"), "{}", stderr(&out));
    std::fs::write(&config, &original).unwrap();

    // Hostile schema names and keys never reach SQL.
    let hostile_schemas = [
        "x\"; DROP SCHEMA checklist CASCADE; --",
        "Upper",
        "pg_catalog",
        "a b",
    ];
    for schema in hostile_schemas {
        edit_config(
            &a,
            &format!("schema: {}", names.schema),
            &format!("schema: '{}'", schema.replace('\'', "''")),
        );
        for args in [&["status"][..], &["step", "complete", "x"]] {
            let out = a.run(args);
            assert_eq!(code(&out), 1, "{schema}: {}", stderr(&out));
            assert!(stderr(&out).contains("/backend/schema"), "{}", stderr(&out));
        }
        std::fs::write(&config, &original).unwrap();
    }
    let out = {
        edit_config(
            &a,
            &format!("key: {}", names.key),
            "key: \"k'; DELETE FROM states; --\"",
        );
        a.run(&["status"])
    };
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("/backend/key"), "{}", stderr(&out));
    std::fs::write(&config, &original).unwrap();
    // An option the backend does not have is named.
    edit_config(&a, "  type: postgres\n", "  type: postgres\n  sslmod: require\n");
    let out = a.run(&["status"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("/backend/sslmod"), "{}", stderr(&out));
    std::fs::write(&config, &original).unwrap();

    assert_eq!(schemas(server), before, "a refused config created a schema");
    let status = a.json(&["status"]);
    assert_eq!(status["revision"], 2, "the state is untouched");
}

#[test]
fn checklist_database_url_wins_over_config_yaml() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.init(server.url(), &names);
    let closed = {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = format!("postgres://postgres@127.0.0.1:{closed}/postgres");
    edit_config(
        &a,
        &format!("url: {}", server_name(server, server.user())),
        &format!("url: {nowhere}"),
    );
    let out = a.run(&["status"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains(&nowhere), "{}", stderr(&out));
    let env = [(DATABASE_URL_ENV, server.url())];
    assert_eq!(a.json_with(&["status"], &env)["revision"], 1);
    // And the other way round: the environment's server is the one used and named.
    edit_config(
        &a,
        &format!("url: {nowhere}"),
        &format!("url: {}", server_name(server, server.user())),
    );
    let env = [(DATABASE_URL_ENV, nowhere.as_str())];
    let out = a.run_with(&["status"], &env);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains(&nowhere), "{}", stderr(&out));
    // An unknown URL parameter is refused by name, by init too, creating nothing.
    let b = Checkout::new();
    let bad = format!("{}?sslmdoe=require", server.url());
    let out = b.run(&init_args(&bad, &names, &[]));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("sslmdoe"), "{}", stderr(&out));
    assert!(!b.store_dir().exists());
}

/// (The scenario signals the follower with SIGINT, so it runs on Unix.)
#[cfg(unix)]
#[test]
fn a_follower_in_one_checkout_sees_every_commit_of_another() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let follower = Checkout::new();
    follower.init(server.url(), &names);
    follower.ok(&["start", "--template", "t"]);
    let writer = Checkout::new();
    writer.init(server.url(), &names);
    crate::follow::follow_scenario(&|args| follower.command(args, &[]), &|args| {
        writer.command(args, &[])
    });
}

// ----- moving a store to and from a server ----------------------------------------------

/// `checklist backend migrate` from yaml to a server and on to json: everything carried
/// both ways (the audit trail copied, since the server keeps its own), the old stores
/// marked, and a second checkout still pointing at the server refused with exit 9.
#[test]
fn a_store_moves_from_yaml_to_postgres_and_on_to_json() {
    let Some(server) = server() else { return };
    let names = fresh();
    let mut cleanup = Cleanup::new(server);
    cleanup.schema(&names.schema);
    let a = Checkout::new();
    a.ok(&["init"]);
    a.ok(&["start", "--template", "release", "--step", "s0"]);
    a.ok(&["step", "complete", "s0"]);
    a.ok(&["archive", "--as", "completed"]);
    a.ok(&["start", "--template", "release", "--step", "s1"]);
    a.ok(&["step", "complete", "s1"]);
    a.ok(&["backup", "create"]);
    let shown = || crate::backend_migrate::shown_by(&|args| a.json(args), &|args| a.ok(args));
    let before = shown();
    let mut migrate = vec!["backend", "migrate", "--to", "postgres"];
    migrate.extend(server_args(server.url(), &names));
    let moved = a.json(&migrate);
    assert_eq!(moved["plan"]["audit"]["shared"], false, "{moved}");
    assert!(
        moved["plan"]["audit"]["toCopy"].as_array().unwrap().len() > 5,
        "{moved}"
    );
    let config = std::fs::read_to_string(a.store_dir().join("config.yaml")).unwrap();
    assert!(
        config.contains("type: postgres") && config.contains(&names.key),
        "{config}"
    );
    crate::backend_migrate::assert_carried(&before, &shown(), "yaml -> postgres");
    let old = std::fs::read_to_string(a.store_dir().join("state.yaml")).unwrap();
    assert!(
        old.contains("movedTo:") && old.contains("backend: postgres"),
        "{old}"
    );

    // A second checkout of the same store on the server, as a CI machine has.
    let b = Checkout::new();
    b.init(server.url(), &names);
    b.ok(&["step", "complete", "from-ci"]);
    let after_ci = shown();

    a.ok(&["backend", "migrate", "--to", "json"]);
    crate::backend_migrate::assert_carried(&after_ci, &shown(), "postgres -> json");
    let out = b.run(&["step", "complete", "too-late"]);
    assert_eq!(code(&out), 9, "{}", stderr(&out));
    let said = one_sentence(&out);
    assert!(
        said.contains("was moved to the json backend") && said.contains("state.json"),
        "{said}"
    );
    assert_eq!(b.json(&["status"])["revision"], after_ci.export["revision"]);
}
