//! Cross-process locking proven with real processes (the hazards of docs/decisions/0007-file-lock.md).
//!
//! This test binary has its own `main` (`harness = false`): run without a role it runs
//! the scenarios; run with `CHECKLIST_PROCESS_ROLE` set it *is* one of the helper
//! processes the scenarios spawn (a lock holder that can be killed, stopped or
//! signalled). The scenarios also spawn the real `checklist` binary. Arguments that
//! are not flags filter scenarios by name.
#![allow(
    clippy::print_stdout,
    reason = "this file is its own test harness; its report is its output"
)]

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Read};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use checklist_backends::{OpenOptions, OpenedStore, builtin_registry, open_project};
    use checklist_core::lock::Operation;
    use checklist_core::model::{StepCompletion, StepResult, now};
    use checklist_core::prelude::*;
    use checklist_core::{Expectation, LockGuard, LockRequest, StateStore, StateStoreExt};
    use rustix::process::{Pid, Signal, kill_process};
    use serde_json::Value;

    const ROLE: &str = "CHECKLIST_PROCESS_ROLE";

    // ----- helper processes -------------------------------------------------------

    /// Runs the helper role named in the environment, if any, and exits.
    pub(crate) fn run_role_if_asked() {
        let Ok(role) = std::env::var(ROLE) else { return };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let code = runtime.block_on(async {
            match role.as_str() {
                "hold" => hold(&args).await,
                "hold-then-write" => hold_then_write(&args).await,
                "slow-cli" => slow_cli(&args).await,
                "leak-guard" => leak_guard(&args).await,
                "transactions" => transactions(&args).await,
                other => panic!("unknown role {other}"),
            }
        });
        drop(runtime);
        std::process::exit(code);
    }

    fn announce(line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }

    async fn open(dir: &str) -> OpenedStore {
        open_project(Path::new(dir), &builtin_registry(), &OpenOptions::default())
            .await
            .unwrap()
    }

    /// Opens the store in `dir` and takes its lock with the timing of its config.
    async fn open_and_lock(dir: &str) -> (OpenedStore, LockGuard) {
        let opened = open(dir).await;
        let request = LockRequest::from_settings(Operation::Write, &opened.config.lock);
        let guard = opened.backend.locks.acquire(&request).await.unwrap();
        (opened, guard)
    }

    /// `hold DIR`: take the lock, announce it, and sleep until killed.
    async fn hold(args: &[String]) -> i32 {
        let (_opened, guard) = open_and_lock(&args[0]).await;
        announce(&format!("HOLDING {}", guard.info().lock_id));
        tokio::time::sleep(Duration::from_secs(600)).await;
        0
    }

    /// `hold-then-write DIR STEP PAUSE_MS`: take the lock, read the state, announce,
    /// pause (the scenario stops us or breaks the lock meanwhile), then try to write.
    async fn hold_then_write(args: &[String]) -> i32 {
        let (opened, guard) = open_and_lock(&args[0]).await;
        let mut state = opened.backend.store.read_existing().await.unwrap();
        let expect = Expectation::current(&state);
        announce(&format!("HOLDING {}", guard.info().lock_id));
        tokio::time::sleep(Duration::from_millis(args[2].parse().unwrap())).await;
        state
            .complete_step(
                StepCompletion {
                    step_id: args[1].clone(),
                    result: StepResult::Success,
                    execution_time_ms: 1,
                    command_results: vec![],
                },
                now(),
            )
            .unwrap();
        let outcome = match guard.ensure_held().await {
            Err(e) => Err(e),
            Ok(()) => opened.backend.store.commit(&state, expect).await.map(|_| ()),
        };
        match outcome {
            Ok(()) => {
                announce("COMMITTED");
                0
            }
            Err(e) => {
                announce(&format!("REFUSED {}", e.kind()));
                i32::from(checklist_cli::exit_code::exit_code(&e).code())
            }
        }
    }

    /// A state store whose writes take ten seconds, to catch the real CLI inside a
    /// transaction.
    #[derive(Debug)]
    struct SlowStore(Arc<dyn StateStore>);

    #[deny(clippy::missing_trait_methods)]
    #[async_trait::async_trait]
    impl checklist_core::DocumentStore for SlowStore {
        fn info(&self) -> &checklist_core::StoreInfo {
            self.0.info()
        }
        fn codec(&self) -> &dyn checklist_core::codec::Codec {
            self.0.codec()
        }
        async fn read_raw(&self) -> checklist_core::Result<Option<Vec<u8>>> {
            self.0.read_raw().await
        }
        async fn write(
            &self,
            request: checklist_core::WriteRequest,
        ) -> checklist_core::Result<checklist_core::WriteReceipt> {
            announce("IN TRANSACTION");
            tokio::time::sleep(Duration::from_secs(10)).await;
            self.0.write(request).await
        }
    }

    checklist_conformance::forward_planes!(SlowStore => 0; AuditTrail, BackupStore, ArchiveStore, QuarantineStore, ChangeFeed);

    /// A factory whose stores are its inner factory's, made slow.
    struct SlowFactory<F>(F);

    #[async_trait::async_trait]
    impl<F: checklist_core::BackendFactory> checklist_core::BackendFactory for SlowFactory<F> {
        async fn open(
            &self,
            ctx: &checklist_core::OpenContext<'_>,
        ) -> checklist_core::Result<checklist_core::Backend> {
            let backend = self.0.open(ctx).await?;
            Ok(checklist_core::Backend {
                store: Arc::new(SlowStore(backend.store)),
                locks: backend.locks,
            })
        }
    }

    /// `slow-cli DIR ARGS…`: the real CLI (`App::run_until_signal`) over a YAML backend
    /// whose writes are slow.
    async fn slow_cli(args: &[String]) -> i32 {
        let mut registry = builtin_registry();
        registry.register(
            "yaml",
            SlowFactory(checklist_backends::file_backend_factory(
                checklist_backends::YamlCodec,
            )),
        );
        let app = checklist_cli::App::with_registry(registry);
        let mut argv = vec!["checklist".to_owned(), "--dir".to_owned(), args[0].clone()];
        argv.extend(args[1..].iter().cloned());
        let cli = <checklist_cli::args::Cli as clap::Parser>::parse_from(argv);
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        i32::from(app.run_until_signal(cli, &mut out, &mut err).await)
    }

    /// `leak-guard DIR`: take the lock (its heartbeat thread starts), leak the guard so
    /// nothing stops the heartbeat, and return from main.
    async fn leak_guard(args: &[String]) -> i32 {
        let (_opened, guard) = open_and_lock(&args[0]).await;
        announce(&format!("HOLDING {}", guard.info().lock_id));
        std::mem::forget(guard);
        0
    }

    /// `transactions DIR PREFIX COUNT`: run COUNT transactions, each adding the step
    /// `PREFIX-k`, printing `COMMITTED PREFIX-k REVISION` after each commit.
    async fn transactions(args: &[String]) -> i32 {
        use checklist_core::RollingBackups;
        use checklist_core::coordinator::{CoordinatorOptions, TransactionCoordinator};
        let opened = open(&args[0]).await;
        let coordinator = TransactionCoordinator::with_options(
            Arc::clone(&opened.backend.store),
            Arc::clone(&opened.backend.locks),
            RollingBackups::from_settings(&opened.config.backup),
            CoordinatorOptions::from_config(&opened.config),
        );
        for k in 0..args[2].parse::<u32>().unwrap() {
            let id = format!("{}-{k}", args[1]);
            let outcome = coordinator
                .transact("crash test", |state| {
                    state.complete_step(
                        StepCompletion {
                            step_id: id.clone(),
                            result: StepResult::Success,
                            execution_time_ms: 1,
                            command_results: vec![],
                        },
                        now(),
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
            announce(&format!("COMMITTED {id} {}", outcome.revision));
        }
        0
    }

    fn spawn_role(role: &str, args: &[&str]) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .env_remove("CHECKLIST_DATABASE_URL")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Reads lines from `stdout` until one starts with `prefix`; returns the line.
    /// A `hold` role holding the store at `root`'s lock: the process, its stdout (kept
    /// open: the role prints more), and the lock id it printed.
    fn holding(args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
        let mut holder = spawn_role("hold", args);
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        let lock_id = wait_for(&mut stdout, "HOLDING ")["HOLDING ".len()..].to_owned();
        (holder, stdout, lock_id)
    }

    fn wait_for(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "helper ended before printing {prefix}"
            );
            if line.starts_with(prefix) {
                return line.trim().to_owned();
            }
        }
    }

    // ----- the real binary ---------------------------------------------------------

    fn checklist_cmd(root: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_checklist"));
        cmd.arg("--dir")
            .arg(root)
            .args(args)
            .env_remove("CHECKLIST_DIR")
            .env_remove("CHECKLIST_LOG")
            // A postgres store's server is its config.yaml's, not the environment's.
            .env_remove("CHECKLIST_DATABASE_URL");
        cmd
    }

    fn checklist(root: &Path, args: &[&str]) -> Output {
        checklist_cmd(root, args).output().unwrap()
    }

    fn ok(root: &Path, args: &[&str]) -> Output {
        let out = checklist(root, args);
        assert!(
            out.status.success(),
            "checklist {args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn state(root: &Path) -> Value {
        serde_json::from_slice(&ok(root, &["--json", "status"]).stdout).unwrap()
    }

    fn step_ids(root: &Path) -> Vec<String> {
        state(root)["completedSteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stepId"].as_str().unwrap().to_owned())
            .collect()
    }

    fn new_store(config: Option<&str>) -> tempfile::TempDir {
        new_store_on("yaml", config)
    }

    /// A new store of `backend` with an instance started; `config` replaces
    /// config.yaml, keeping the backend.
    fn new_store_on(backend: &str, config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        ok(dir.path(), &["init", "--backend", backend]);
        if let Some(config) = config {
            let config = format!("{config}backend: {{type: {backend}}}\n");
            std::fs::write(dir.path().join(".checklist/config.yaml"), config).unwrap();
        }
        ok(dir.path(), &["start", "--template", "t"]);
        let status = state(dir.path());
        assert_eq!(status["store"]["backend"], backend, "{status}");
        dir
    }

    fn lock_path(root: &Path) -> PathBuf {
        root.join(".checklist/.lock")
    }

    fn signal(child: &Child, sig: Signal) {
        kill_process(Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
    }

    fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn stderr_of(child: &mut Child) -> String {
        let mut text = String::new();
        child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
        text
    }

    // ----- scenarios -----------------------------------------------------------------

    /// 128 processes each complete a distinct step at once: every one succeeds, and
    /// the state has exactly those steps and revision +128.
    pub(crate) fn concurrent_step_completes(backend: &str) {
        let dir = new_store_on(backend, None);
        let root = dir.path();
        let before = state(root)["revision"].as_u64().unwrap();
        let started = Instant::now();
        // 128 transactions run one after another under the lock, ~20 ms each in this
        // debug build: the last process waits ~3 s, inside the 5 s default but with
        // too little margin for a noisy machine. The scenario is about correctness
        // under contention; the contention benchmark measures the waiting.
        let children: Vec<_> = (0..128)
            .map(|i| {
                checklist_cmd(
                    root,
                    &["--lock-timeout", "60000", "step", "complete", &format!("s-{i}")],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "process {i}: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let elapsed = started.elapsed();
        let after = state(root);
        assert_eq!(after["revision"].as_u64().unwrap(), before + 128);
        let mut ids = step_ids(root);
        ids.sort();
        let mut want: Vec<_> = (0..128).map(|i| format!("s-{i}")).collect();
        want.sort();
        assert_eq!(ids, want);
        ok(root, &["verify"]);
        assert!(!lock_path(root).exists(), "a lock was left behind");
        println!(
            "    128 processes committed in {:.2} s ({:.0} commits/s)",
            elapsed.as_secs_f64(),
            128.0 / elapsed.as_secs_f64()
        );
    }

    /// The lock file records the holder's command line so `lock status` can say who
    /// holds the lock; a secret on that command line is written as a marker.
    pub(crate) fn lock_file_never_holds_a_secret_from_the_command_line() {
        const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let dir = new_store(None);
        let root = dir.path();
        let mut holder = spawn_role(
            "hold",
            &[root.to_str().unwrap(), &format!("--stdout=token {TOKEN}")],
        );
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        wait_for(&mut stdout, "HOLDING ");
        let lock = std::fs::read_to_string(lock_path(root)).unwrap();
        let status = checklist(root, &["--json", "lock", "status"]);
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        assert!(!lock.contains(TOKEN), "{lock}");
        assert!(lock.contains("--stdout=token [REDACTED:github_token]"), "{lock}");
        let status = String::from_utf8_lossy(&status.stdout);
        assert!(!status.contains(TOKEN), "{status}");
    }

    /// A holder killed with SIGKILL: the next command breaks its lock at once (the
    /// kernel dropped its liveness lock) and says whose it was.
    pub(crate) fn killed_holder_is_broken_at_once() {
        let dir = new_store(None);
        let root = dir.path();
        let (mut holder, _stdout, lock_id) = holding(&[root.to_str().unwrap()]);
        // While it lives, others time out with the holder's details.
        let out = checklist(root, &["--lock-timeout", "300", "step", "complete", "blocked"]);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(&lock_id), "{message}");
        assert!(message.contains(&format!("pid {}", holder.id())), "{message}");
        assert!(message.contains("lock release --force"), "{message}");

        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let started = Instant::now();
        let out = ok(root, &["step", "complete", "after-kill"]);
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(5),
            "took {waited:?}, the lock timeout"
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("broke the stale lock"), "{log}");
        assert!(
            log.contains(&lock_id) && log.contains(&format!("pid {}", holder.id())),
            "{log}"
        );
        assert!(log.contains("is gone"), "{log}");
        assert_eq!(step_ids(root), ["after-kill"]);
        println!(
            "    the next command got the lock {:.0} ms after the kill",
            waited.as_secs_f64() * 1000.0
        );
    }

    /// A store whose waiters look at the lock on their own only every 5–15 s (the retry
    /// interval of 10 s, jittered; the floor behind the head is at least as long): in a
    /// scenario that ends well before, every grant is the queue's doing.
    const SLOW_FLOORS: &str = "lock: {retryIntervalMs: 10000, timeoutMs: 60000}\n";

    /// The files in `dir` whose names start with `prefix`.
    fn lock_files(dir: &Path, prefix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(prefix))
            .collect()
    }

    /// The tickets of the waiters queued for the lock of the store at `root`.
    fn queued_tickets(root: &Path) -> Vec<String> {
        lock_files(&root.join(".checklist/.locks/queue"), "ticket-")
    }

    /// Starts `checklist step complete <step>` and returns once it has queued for the
    /// lock: `ahead` tickets were there before it, and now there is one more.
    fn queue_step_complete(root: &Path, step: &str, ahead: usize) -> Child {
        let child = checklist_cmd(root, &["step", "complete", step])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while queued_tickets(root).len() <= ahead {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "`step complete {step}` did not queue within 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    fn assert_succeeded(child: Child, what: &str) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waiters that queue one after another while the lock is held get it in that
    /// order (decision 0007, "Waking waiters"), each woken by the queue, not by a poll.
    pub(crate) fn waiters_are_granted_in_arrival_order() {
        const WAITERS: usize = 8;
        let dir = new_store(Some(SLOW_FLOORS));
        let root = dir.path();
        let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
        let steps: Vec<String> = (0..WAITERS).map(|i| format!("q-{i}")).collect();
        let waiters: Vec<Child> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| queue_step_complete(root, step, i))
            .collect();
        // Killed, the holder lets its liveness lock go: the head of the queue takes over.
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let let_go = Instant::now();
        for (waiter, step) in waiters.into_iter().zip(&steps) {
            assert_succeeded(waiter, step);
        }
        let elapsed = let_go.elapsed();
        assert_eq!(step_ids(root), steps, "the lock was not granted in arrival order");
        assert!(
            elapsed < Duration::from_secs(5),
            "{WAITERS} queued waiters took {elapsed:?}: some waited for a floor, not the queue"
        );
        assert_eq!(
            queued_tickets(root),
            Vec::<String>::new(),
            "tickets were left behind"
        );
        println!(
            "    {WAITERS} queued waiters, in order, {:.0} ms after the holder went",
            elapsed.as_secs_f64() * 1000.0
        );
    }

    /// A waiter killed in the middle of the queue blocks nobody: the one behind it
    /// notices at once (the kernel let its ticket's lock go), removes its ticket and
    /// registration, and waits for the one ahead of it instead.
    pub(crate) fn a_killed_waiter_does_not_block_the_queue() {
        let dir = new_store(Some(SLOW_FLOORS));
        let root = dir.path();
        let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
        let first = queue_step_complete(root, "first", 0);
        let mut killed = queue_step_complete(root, "killed", 1);
        let last = queue_step_complete(root, "last", 2);
        signal(&killed, Signal::KILL);
        killed.wait().unwrap();
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let let_go = Instant::now();
        assert_succeeded(first, "first");
        assert_succeeded(last, "last");
        let elapsed = let_go.elapsed();
        assert_eq!(step_ids(root), ["first", "last"]);
        assert!(
            elapsed < Duration::from_secs(5),
            "the waiters around a killed one took {elapsed:?}: the one behind it waited for a floor"
        );
        assert_eq!(
            queued_tickets(root),
            Vec::<String>::new(),
            "the killed waiter's ticket was left behind"
        );
        assert_eq!(
            lock_files(&root.join(".checklist/.locks"), "waiter-"),
            Vec::<String>::new(),
            "the killed waiter's registration was left behind"
        );
    }

    /// A waiter stopped (SIGSTOP) at the head of the queue does not keep the others
    /// waiting for ever: the one behind it sees the queue stand still for two floors
    /// (2 s each, jittered) and takes the free lock itself. Continued, the stopped one
    /// gets its turn too.
    pub(crate) fn a_stopped_waiter_does_not_block_the_queue_for_ever() {
        let dir = new_store(Some("lock: {timeoutMs: 60000}\n"));
        let root = dir.path();
        let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
        let stopped = queue_step_complete(root, "stopped", 0);
        let behind = queue_step_complete(root, "behind", 1);
        signal(&stopped, Signal::STOP);
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let let_go = Instant::now();
        assert_succeeded(behind, "behind");
        let waited = let_go.elapsed();
        signal(&stopped, Signal::CONT);
        assert_succeeded(stopped, "stopped");
        assert_eq!(step_ids(root), ["behind", "stopped"]);
        // Two or three floors of at most 3 s each, with room for a loaded machine.
        assert!(
            waited < Duration::from_secs(20),
            "the waiter behind a stopped one waited {waited:?}"
        );
        assert_eq!(
            queued_tickets(root),
            Vec::<String>::new(),
            "tickets were left behind"
        );
        println!(
            "    the waiter behind a stopped one took the lock after {:.1} s",
            waited.as_secs_f64()
        );
    }

    /// Hazard 4: a holder stopped (SIGSTOP) past its expiry loses the lock to others;
    /// continued, its write is refused and nothing is overwritten.
    pub(crate) fn stopped_holder_past_expiry_cannot_overwrite() {
        let dir = new_store(Some("lock: {expiryMs: 600}\n"));
        let root = dir.path();
        let mut holder = spawn_role(
            "hold-then-write",
            &[root.to_str().unwrap(), "stale-writer", "300"],
        );
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        wait_for(&mut stdout, "HOLDING ");
        signal(&holder, Signal::STOP);
        std::thread::sleep(Duration::from_millis(1000));
        let out = ok(root, &["step", "complete", "taker"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("broke the stale lock") && log.contains("not renewed"),
            "{log}"
        );
        let taken = std::fs::read(root.join(".checklist/state.yaml")).unwrap();
        signal(&holder, Signal::CONT);
        let outcome = wait_for(&mut stdout, "");
        assert!(
            outcome.starts_with("REFUSED"),
            "the stale writer's write went through: {outcome}"
        );
        let status = holder.wait().unwrap();
        assert_eq!(status.code(), Some(6), "LockLost and Conflict exit with 6");
        assert_eq!(
            std::fs::read(root.join(".checklist/state.yaml")).unwrap(),
            taken,
            "the state was overwritten"
        );
        assert_eq!(step_ids(root), ["taker"]);
        ok(root, &["verify"]);
    }

    /// `lock release --force` needs the exact lock id; afterwards the old holder's
    /// write is refused.
    pub(crate) fn force_release_needs_the_id() {
        let dir = new_store(None);
        let root = dir.path();
        let mut holder = spawn_role("hold-then-write", &[root.to_str().unwrap(), "old-holder", "1500"]);
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        let lock_id = wait_for(&mut stdout, "HOLDING ")["HOLDING ".len()..].to_owned();
        let status: Value = serde_json::from_slice(&ok(root, &["--json", "lock", "status"]).stdout).unwrap();
        assert_eq!(status["holder"]["lockId"], lock_id.as_str());
        assert_eq!(status["holder"]["pid"], holder.id());
        let out = checklist(root, &["lock", "release", "--force", "not-the-id"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&lock_id),
            "the refusal names the holder"
        );
        assert_eq!(
            checklist(root, &["lock", "release", &lock_id]).status.code(),
            Some(2),
            "--force is required"
        );
        assert!(lock_path(root).exists());
        let out = ok(root, &["lock", "release", "--force", &lock_id]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("force-released"));
        ok(root, &["step", "complete", "new-holder"]);
        assert_eq!(wait_for(&mut stdout, ""), "REFUSED lock_lost");
        assert_eq!(holder.wait().unwrap().code(), Some(6));
        assert_eq!(step_ids(root), ["new-holder"]);
    }

    /// Hazard 2: a lock file that is not (yet) a complete lock is treated as held — a
    /// waiter times out instead of breaking it — until it has not changed for longer
    /// than the expiry.
    pub(crate) fn half_written_lock_is_held() {
        let dir = new_store(None);
        let root = dir.path();
        let full = {
            let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
            let bytes = std::fs::read(lock_path(root)).unwrap();
            signal(&holder, Signal::KILL);
            holder.wait().unwrap();
            bytes
        };
        std::fs::write(lock_path(root), &full[..full.len() / 2]).unwrap();
        let out = checklist(root, &["--lock-timeout", "500", "step", "complete", "x"]);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(lock_path(root).exists(), "a half-written lock was broken");
        let old = std::time::SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(lock_path(root))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let out = ok(root, &["step", "complete", "x"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid lock"));

        // Readers racing real acquisitions never see a broken lock file.
        let writers: Vec<_> = (0..4)
            .map(|i| {
                checklist_cmd(root, &["step", "complete", &format!("w{i}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for _ in 0..40 {
            let out = ok(root, &["--json", "lock", "status"]);
            let status: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                status["holder"].is_null() || status["holder"]["lockId"].is_string(),
                "{status}"
            );
        }
        for mut w in writers {
            assert!(w.wait().unwrap().success());
        }
    }

    /// Hazard 3: a lock whose pid now belongs to another (live) process is stale.
    pub(crate) fn reused_pid_does_not_keep_a_dead_lock() {
        let dir = new_store(None);
        let root = dir.path();
        let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
        let mut lock: Value = serde_json::from_slice(&std::fs::read(lock_path(root)).unwrap()).unwrap();
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        // Re-create the dead holder's lock as if its pid had been reused by `sleeper`.
        // Start times are kept in clock ticks (10 ms); a real reuse of a pid comes long
        // after the original process started, so make sure the two starts differ.
        std::thread::sleep(Duration::from_millis(50));
        let sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        lock["metadata"]["pid"] = sleeper.id().into();
        std::fs::write(lock_path(root), serde_json::to_vec(&lock).unwrap()).unwrap();
        let out = ok(root, &["step", "complete", "after-reuse"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("now belongs to another process"), "{log}");
        let mut sleeper = sleeper;
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    /// Hazard 1: many waiters find one stale lock at once; it is broken exactly once
    /// and everyone gets their turn.
    pub(crate) fn one_stale_lock_is_broken_once() {
        let dir = new_store(None);
        let root = dir.path();
        let (mut holder, _stdout, _) = holding(&[root.to_str().unwrap()]);
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let children: Vec<_> = (0..16)
            .map(|i| {
                checklist_cmd(root, &["step", "complete", &format!("b{i}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut breaks = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            breaks += String::from_utf8_lossy(&out.stderr)
                .matches("broke the stale lock")
                .count();
        }
        assert_eq!(breaks, 1, "the stale lock must be broken exactly once");
        assert_eq!(step_ids(root).len(), 16);
    }

    /// Hazard 5: rounds of writers killed at random moments. The store always
    /// verifies, every writer that exited 0 has its step, no lock blocks the next
    /// command, and no temp file survives.
    pub(crate) fn random_kills_never_tear_or_lose(backend: &str) {
        let dir = new_store_on(backend, None);
        let root = dir.path();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let (mut committed, mut killed) = (Vec::new(), 0);
        for round in 0..20 {
            let mut children: Vec<_> = (0..16)
                .map(|i| {
                    let id = format!("r{round}-w{i}");
                    let child = checklist_cmd(root, &["step", "complete", &id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    (id, child, random(60))
                })
                .collect();
            let started = Instant::now();
            for (_, child, kill_after_ms) in &mut children {
                if random(2) == 0 {
                    let at = Duration::from_millis(*kill_after_ms);
                    if let Some(rest) = at.checked_sub(started.elapsed()) {
                        std::thread::sleep(rest);
                    }
                    let _ = child.kill();
                }
            }
            for (id, mut child, _) in children {
                let status = child.wait().unwrap();
                match status.code() {
                    Some(0) => committed.push(id),
                    None => killed += 1,
                    Some(code) => panic!("writer {id} failed with exit code {code}"),
                }
            }
            ok(root, &["verify"]);
            let present = step_ids(root);
            for id in &committed {
                assert!(
                    present.contains(id),
                    "{id} exited 0 but its step is missing after round {round}"
                );
            }
        }
        // Nothing blocks the next command.
        ok(
            root,
            &["--lock-timeout", "1000", "step", "complete", "after-the-storm"],
        );
        let leftovers: Vec<_> = std::fs::read_dir(root.join(".checklist"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        println!("    {} writers committed, {killed} were killed", committed.len());
    }

    /// 1000 transactions from several processes while a killer sends SIGKILL at random
    /// moments: the state verifies, every transaction whose process printed its commit
    /// is present, the audit trail reads line by line (a torn line is tolerated and
    /// reported, never fatal), and no lock blocks the next command.
    pub(crate) fn transactions_survive_random_kills(backend: &str) {
        use std::sync::Mutex;
        let dir = new_store_on(backend, Some("lock: {timeoutMs: 30000}\n"));
        let root = dir.path().to_owned();
        let committed: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let spawn = |generation: usize, readers: &mut Vec<std::thread::JoinHandle<()>>| {
            let mut child = spawn_role(
                "transactions",
                &[root.to_str().unwrap(), &format!("g{generation}"), "400"],
            );
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let committed = Arc::clone(&committed);
            readers.push(std::thread::spawn(move || {
                for line in stdout.lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("COMMITTED ") {
                        let (id, revision) = rest.split_once(' ').unwrap();
                        committed
                            .lock()
                            .unwrap()
                            .push((id.to_owned(), revision.parse().unwrap()));
                    }
                }
            }));
            child
        };
        let mut readers = Vec::new();
        let mut generation = 0;
        let mut workers: Vec<Child> = (0..4)
            .map(|_| {
                generation += 1;
                spawn(generation, &mut readers)
            })
            .collect();
        let mut kills = 0;
        let started = Instant::now();
        while committed.lock().unwrap().len() < 1000 {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "the crash test is not making progress"
            );
            std::thread::sleep(Duration::from_millis(20 + random(80)));
            let victim = random(workers.len() as u64) as usize;
            if workers[victim].try_wait().unwrap().is_none() {
                signal(&workers[victim], Signal::KILL);
                kills += 1;
            }
            workers[victim].wait().unwrap();
            generation += 1;
            workers[victim] = spawn(generation, &mut readers);
        }
        for worker in &mut workers {
            let _ = worker.kill();
            worker.wait().unwrap();
        }
        for reader in readers {
            reader.join().unwrap();
        }
        ok(&root, &["verify"]);
        let present = step_ids(&root);
        let committed = committed.lock().unwrap().clone();
        for (id, _) in &committed {
            assert!(present.contains(id), "{id} printed COMMITTED but is missing");
        }
        let revisions: std::collections::HashSet<_> = committed.iter().map(|(_, r)| r).collect();
        assert_eq!(
            revisions.len(),
            committed.len(),
            "two commits printed the same revision"
        );
        let audit: Value = serde_json::from_slice(&ok(&root, &["--json", "audit"]).stdout).unwrap();
        let problems = audit["problems"].as_array().unwrap();
        assert!(
            problems.iter().all(|p| p["torn"] == true),
            "the audit trail is damaged: {problems:?}"
        );
        let commits = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == "commit")
            .count();
        assert!(
            commits >= committed.len(),
            "{commits} commit records for {} commits",
            committed.len()
        );
        ok(
            &root,
            &["--lock-timeout", "2000", "step", "complete", "after-the-crashes"],
        );
        println!(
            "    {} transactions committed by {generation} processes, {kills} killed, {} torn audit lines",
            committed.len(),
            problems.len()
        );
    }

    /// Hazard 6: SIGTERM or Ctrl-C inside a transaction releases the lock and the
    /// process exits with 128 + the signal; a waiting process exits promptly too.
    pub(crate) fn signals_release_the_lock_and_exit() {
        for (sig, code) in [(Signal::TERM, 143), (Signal::INT, 130)] {
            let dir = new_store(None);
            let root = dir.path();
            let before = std::fs::read(root.join(".checklist/state.yaml")).unwrap();
            let mut cli = spawn_role(
                "slow-cli",
                &[root.to_str().unwrap(), "step", "complete", "interrupted"],
            );
            let mut stdout = BufReader::new(cli.stdout.take().unwrap());
            wait_for(&mut stdout, "IN TRANSACTION");
            assert!(lock_path(root).exists());
            // And a second process waiting for that lock.
            let mut waiter = checklist_cmd(root, &["--lock-timeout", "60000", "step", "complete", "waiting"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let status: Value =
                serde_json::from_slice(&ok(root, &["--json", "lock", "status"]).stdout).unwrap();
            assert!(
                status["waiters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["pid"] == waiter.id()),
                "the waiting process is not listed: {status}"
            );
            signal(&waiter, sig);
            let waited = wait_with_deadline(&mut waiter, Duration::from_secs(3))
                .expect("the waiter ignored the signal");
            assert_eq!(waited.code(), Some(code), "{}", stderr_of(&mut waiter));
            signal(&cli, sig);
            let exited =
                wait_with_deadline(&mut cli, Duration::from_secs(3)).expect("the CLI ignored the signal");
            assert_eq!(exited.code(), Some(code));
            assert!(stderr_of(&mut cli).contains("the lock was released"));
            assert!(
                !lock_path(root).exists(),
                "the lock outlived the interrupted process"
            );
            let status: Value =
                serde_json::from_slice(&ok(root, &["--json", "lock", "status"]).stdout).unwrap();
            assert!(status["waiters"].as_array().unwrap().is_empty(), "{status}");
            assert_eq!(std::fs::read(root.join(".checklist/state.yaml")).unwrap(), before);
            ok(root, &["--lock-timeout", "500", "step", "complete", "next"]);
        }
    }

    /// Hazard 7: a process whose lock heartbeat is still running exits when its main
    /// function returns.
    pub(crate) fn heartbeat_never_keeps_a_process_alive() {
        let dir = new_store(Some("lock: {expiryMs: 300}\n"));
        let root = dir.path();
        let mut child = spawn_role("leak-guard", &[root.to_str().unwrap()]);
        let started = Instant::now();
        let status = wait_with_deadline(&mut child, Duration::from_secs(5))
            .expect("the heartbeat kept the process alive");
        assert!(status.success());
        // Its lock is now provably stale: the process is gone.
        let out = ok(root, &["--lock-timeout", "1000", "step", "complete", "next"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("is gone"));
        println!(
            "    exited {:.0} ms after start",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    // ----- postgres: two checkouts sharing one store on a server ---------------------

    /// Two checkouts (project directories) of one store, under a fresh key in a fresh
    /// schema of the harness's server; dropping it drops the schema.
    #[cfg(feature = "postgres")]
    pub(crate) struct PgPair {
        server: &'static checklist_conformance::pg_server::PgServer,
        schema: String,
        key: String,
        a: tempfile::TempDir,
        b: tempfile::TempDir,
    }

    #[cfg(feature = "postgres")]
    impl PgPair {
        /// `None` (having said why) without a server; under `CHECKLIST_REQUIRE_PG=1`
        /// the harness panics instead.
        fn new() -> Option<Self> {
            use checklist_conformance::pg_server;
            let Some(server) = pg_server::test_server() else {
                println!(
                    "    skipped: no PostgreSQL server ({})",
                    pg_server::why_no_server().unwrap_or_default()
                );
                return None;
            };
            let schema = pg_server::throwaway_schema_name();
            let key = format!("procs/{}", &schema[2..14]);
            let pair = Self {
                server,
                schema,
                key,
                a: tempfile::tempdir().unwrap(),
                b: tempfile::tempdir().unwrap(),
            };
            for dir in [&pair.a, &pair.b] {
                ok(
                    dir.path(),
                    &[
                        "init",
                        "--backend",
                        "postgres",
                        "--database-url",
                        server.url(),
                        "--key",
                        &pair.key,
                        "--schema",
                        &pair.schema,
                    ],
                );
            }
            ok(pair.a(), &["start", "--template", "t"]);
            let status = state(pair.b());
            assert_eq!(status["store"]["backend"], "postgres", "{status}");
            assert_eq!(status["activeInstance"]["templateId"], "t", "{status}");
            Some(pair)
        }

        fn a(&self) -> &Path {
            self.a.path()
        }

        fn b(&self) -> &Path {
            self.b.path()
        }

        /// How errors name the server.
        fn server_name(&self) -> String {
            self.server.url_as(self.server.user(), None)
        }

        /// The `lock_broken` records of the store's audit trail.
        fn lock_breaks(&self) -> Vec<Value> {
            let audit: Value = serde_json::from_slice(&ok(self.a(), &["--json", "audit"]).stdout).unwrap();
            audit["records"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["event"] == "lock_broken")
                .cloned()
                .collect()
        }
    }

    #[cfg(feature = "postgres")]
    impl Drop for PgPair {
        fn drop(&mut self) {
            let _ = self.server.drop_schema(&self.schema);
        }
    }

    /// How often each step id is in the state.
    #[cfg(feature = "postgres")]
    fn step_counts(root: &Path) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for id in step_ids(root) {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }

    /// What a crowd of writers did: who committed, who failed cleanly, and every
    /// "broke the stale lock" line they printed.
    #[cfg(feature = "postgres")]
    struct Crowd {
        succeeded: Vec<String>,
        failed: Vec<String>,
        breaks: Vec<String>,
        elapsed: Duration,
    }

    /// `per_checkout` processes in each checkout of `pair` complete a distinct step at
    /// once. Each must succeed or fail cleanly: a lock timeout (4) or a conflict (6)
    /// with one error sentence naming the server.
    #[cfg(feature = "postgres")]
    fn crowd_of_writers(pair: &PgPair, per_checkout: usize) -> Crowd {
        let started = Instant::now();
        let children: Vec<_> = (0..2 * per_checkout)
            .map(|i| {
                let (root, id) = if i % 2 == 0 {
                    (pair.a(), format!("a-{i}"))
                } else {
                    (pair.b(), format!("b-{i}"))
                };
                let child = checklist_cmd(root, &["--lock-timeout", "180000", "step", "complete", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (id, child)
            })
            .collect();
        let mut crowd = Crowd {
            succeeded: Vec::new(),
            failed: Vec::new(),
            breaks: Vec::new(),
            elapsed: Duration::ZERO,
        };
        for (id, child) in children {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            crowd.breaks.extend(
                err.lines()
                    .filter(|l| l.contains("broke the stale lock"))
                    .map(str::to_owned),
            );
            match out.status.code() {
                Some(0) => crowd.succeeded.push(id),
                Some(code @ (4 | 6)) => {
                    let lines: Vec<_> = err.lines().filter(|l| l.starts_with("error:")).collect();
                    assert!(
                        lines.len() == 1 && lines[0].contains(&pair.server_name()),
                        "{id} failed with {code} without one sentence naming the server: {err}"
                    );
                    crowd.failed.push(id);
                }
                other => panic!("{id} did not fail cleanly ({other:?}): {err}"),
            }
        }
        crowd.elapsed = started.elapsed();
        crowd
    }

    /// 32 processes in each of two checkouts of one postgres store (64 processes, 128
    /// sessions) complete a distinct step at once: each succeeds or fails cleanly;
    /// every success is in the state exactly once, no failure is, the revision grew by
    /// the number of successes, the state verifies and the lock is free.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_concurrent_step_completes_from_two_checkouts() {
        let Some(pair) = PgPair::new() else { return };
        let before = state(pair.a())["revision"].as_u64().unwrap();
        let crowd = crowd_of_writers(&pair, 32);
        assert!(!crowd.succeeded.is_empty(), "no process committed");
        let after = state(pair.b());
        assert_eq!(
            after["revision"].as_u64().unwrap(),
            before + crowd.succeeded.len() as u64,
            "the revision counts every successful commit once"
        );
        let counts = step_counts(pair.a());
        for id in &crowd.succeeded {
            assert_eq!(counts.get(id), Some(&1), "{id} succeeded: it must be there once");
        }
        for id in &crowd.failed {
            assert_eq!(counts.get(id), None, "{id} failed but its step is there");
        }
        assert_eq!(counts.len(), crowd.succeeded.len());
        ok(pair.a(), &["verify"]);
        ok(pair.b(), &["verify"]);
        let lock: Value =
            serde_json::from_slice(&ok(pair.b(), &["--json", "lock", "status"]).stdout).unwrap();
        assert!(lock["holder"].is_null(), "a lock was left behind: {lock}");
        assert!(lock["waiters"].as_array().unwrap().is_empty(), "{lock}");
        println!(
            "    64 processes in two checkouts: {} committed, {} failed cleanly, in {:.2} s ({:.0} commits/s)",
            crowd.succeeded.len(),
            crowd.failed.len(),
            crowd.elapsed.as_secs_f64(),
            crowd.succeeded.len() as f64 / crowd.elapsed.as_secs_f64()
        );
    }

    /// Contention alone breaks no lock: when nobody died, no process says it broke a
    /// stale lock and the audit trail has no `lock_broken` record (each lock was
    /// released and then taken, not taken over).
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_contention_breaks_no_lock() {
        let Some(pair) = PgPair::new() else { return };
        let crowd = crowd_of_writers(&pair, 32);
        assert_eq!(crowd.failed, Vec::<String>::new());
        let audited = pair.lock_breaks();
        assert!(
            crowd.breaks.is_empty() && audited.is_empty(),
            "{} processes said they broke a stale lock though no holder died, e.g. {:?}; {} lock_broken records: {:?}",
            crowd.breaks.len(),
            crowd.breaks.first(),
            audited.len(),
            audited.first()
        );
    }

    /// A holder in checkout A killed with SIGKILL: its database session ends with it,
    /// so checkout B takes the lock at once (not after the 30 s expiry), says whose it
    /// was, and audits the takeover. Before the kill, B times out naming the holder.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_killed_holder_is_taken_over_within_seconds() {
        let Some(pair) = PgPair::new() else { return };
        let (mut holder, _stdout, lock_id) = holding(&[pair.a().to_str().unwrap()]);
        let out = checklist(
            pair.b(),
            &["--lock-timeout", "300", "step", "complete", "blocked"],
        );
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(&lock_id), "{message}");
        assert!(message.contains(&format!("pid {}", holder.id())), "{message}");
        assert!(message.contains(&pair.server_name()), "{message}");

        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        let started = Instant::now();
        let out = ok(
            pair.b(),
            &["--lock-timeout", "60000", "step", "complete", "after-kill"],
        );
        let waited = started.elapsed();
        // The expiry is 30 s: a takeover that waited for it would take that long.
        assert!(
            waited < Duration::from_secs(10),
            "took {waited:?}: the killed holder's lock waited for its expiry"
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("broke the stale lock"), "{log}");
        assert!(
            log.contains(&lock_id) && log.contains(&format!("pid {}", holder.id())),
            "{log}"
        );
        assert!(log.contains("database session is gone"), "{log}");
        assert_eq!(step_ids(pair.a()), ["after-kill"]);
        let breaks = pair.lock_breaks();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert!(breaks[0].to_string().contains(&lock_id), "{}", breaks[0]);
        println!(
            "    the other checkout got the lock {:.0} ms after the kill",
            waited.as_secs_f64() * 1000.0
        );
    }

    /// `lock release --force` from checkout B frees the lock of a process of checkout
    /// A; that process's write is then refused (exit 6) and overwrites nothing.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_force_release_from_another_checkout() {
        let Some(pair) = PgPair::new() else { return };
        let mut holder = spawn_role(
            "hold-then-write",
            &[pair.a().to_str().unwrap(), "old-holder", "3000"],
        );
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        let lock_id = wait_for(&mut stdout, "HOLDING ")["HOLDING ".len()..].to_owned();
        let status: Value =
            serde_json::from_slice(&ok(pair.b(), &["--json", "lock", "status"]).stdout).unwrap();
        assert_eq!(status["holder"]["lockId"], lock_id.as_str(), "{status}");
        assert_eq!(status["holder"]["pid"], holder.id(), "{status}");
        let out = checklist(pair.b(), &["lock", "release", "--force", "not-the-id"]);
        assert_eq!(out.status.code(), Some(1));
        let out = ok(pair.b(), &["lock", "release", "--force", &lock_id]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("force-released"));
        ok(
            pair.b(),
            &["--lock-timeout", "2000", "step", "complete", "new-holder"],
        );
        assert_eq!(wait_for(&mut stdout, ""), "REFUSED lock_lost");
        assert_eq!(holder.wait().unwrap().code(), Some(6));
        assert_eq!(step_ids(pair.a()), ["new-holder"]);
        ok(pair.a(), &["verify"]);
        let breaks = pair.lock_breaks();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
    }

    /// The holder's command line is recorded for `lock status`; a database password on
    /// it is redacted, in the lock row and in what `lock status` shows.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_lock_never_holds_a_password_from_the_command_line() {
        const PASSWORD: &str = "Hunter2-in-the-lock-row";
        let Some(pair) = PgPair::new() else { return };
        let url = format!("--database-url=postgres://app:{PASSWORD}@db.internal/prod");
        let (mut holder, _stdout, lock_id) = holding(&[pair.a().to_str().unwrap(), &url]);
        let row = pair
            .server
            .psql(&format!(
                "SELECT holder FROM {}.locks WHERE lock_id = '{lock_id}'",
                checklist_conformance::pg_server::quote_ident(&pair.schema)
            ))
            .unwrap();
        let json = checklist(pair.b(), &["--json", "lock", "status"]);
        let human = checklist(pair.b(), &["lock", "status"]);
        signal(&holder, Signal::KILL);
        holder.wait().unwrap();
        assert!(row.contains(&lock_id), "the lock row names its holder: {row}");
        assert!(
            row.contains("--database-url=") && row.contains("db.internal/prod"),
            "the command line is recorded: {row}"
        );
        assert!(!row.contains(PASSWORD), "{row}");
        for out in [json, human] {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            assert!(text.contains(&lock_id), "{text}");
            assert!(!text.contains(PASSWORD), "{text}");
        }
    }

    /// Rounds of writers in two checkouts killed at random moments: after each round
    /// the state verifies, every acknowledged commit (exit 0, or "Completed step"
    /// printed before the kill) is there, no step is there twice, and the revision
    /// counts the steps; afterwards the lock is free at once (every killed holder's
    /// session ended with it), far inside its 30 s expiry.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_random_kills_never_tear_or_lose() {
        let Some(pair) = PgPair::new() else { return };
        let base = state(pair.a())["revision"].as_u64().unwrap();
        let mut seed = 0x51_7cc1_b727_220a_u64;
        let mut random = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let (mut acknowledged, mut killed) = (Vec::new(), 0);
        for round in 0..12 {
            let mut children: Vec<_> = (0..16)
                .map(|i| {
                    let id = format!("r{round}-w{i}");
                    let root = if i % 2 == 0 { pair.a() } else { pair.b() };
                    let child = checklist_cmd(root, &["--lock-timeout", "60000", "step", "complete", &id])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    (id, child, random(400))
                })
                .collect();
            let started = Instant::now();
            let mut order: Vec<usize> = (0..children.len()).collect();
            order.sort_by_key(|&i| children[i].2);
            for i in order {
                let (_, child, kill_after_ms) = &mut children[i];
                if random(2) == 0 {
                    let at = Duration::from_millis(*kill_after_ms);
                    if let Some(rest) = at.checked_sub(started.elapsed()) {
                        std::thread::sleep(rest);
                    }
                    let _ = child.kill();
                }
            }
            for (id, child, _) in children {
                let out = child.wait_with_output().unwrap();
                let said = String::from_utf8_lossy(&out.stdout);
                match out.status.code() {
                    Some(0) => acknowledged.push(id),
                    None => {
                        killed += 1;
                        if said.contains("Completed step") {
                            acknowledged.push(id);
                        }
                    }
                    Some(code) => panic!(
                        "writer {id} failed with exit code {code}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ),
                }
            }
            ok(pair.a(), &["verify"]);
            let counts = step_counts(pair.b());
            for id in &acknowledged {
                assert_eq!(
                    counts.get(id),
                    Some(&1),
                    "{id} was acknowledged: it must be there once after round {round}"
                );
            }
            assert!(
                counts.values().all(|&n| n == 1),
                "a step is there twice: {counts:?}"
            );
            let revision = state(pair.a())["revision"].as_u64().unwrap();
            assert_eq!(
                revision,
                base + counts.len() as u64,
                "every commit added one step and one revision"
            );
        }
        // Nothing blocks the next command: a killed holder's lock goes with its session.
        let started = Instant::now();
        ok(
            pair.b(),
            &["--lock-timeout", "60000", "step", "complete", "after-the-storm"],
        );
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "the next command waited {waited:?} for the lock (expiry 30 s)"
        );
        let lock: Value =
            serde_json::from_slice(&ok(pair.a(), &["--json", "lock", "status"]).stdout).unwrap();
        assert!(lock["holder"].is_null(), "{lock}");
        assert!(lock["waiters"].as_array().unwrap().is_empty(), "{lock}");
        let taken_over = pair
            .lock_breaks()
            .iter()
            .filter(|r| r.to_string().contains("session is gone"))
            .count();
        println!(
            "    {} writers acknowledged, {killed} were killed ({taken_over} of them holding the lock); the next \
             command got the lock in {:.0} ms",
            acknowledged.len(),
            waited.as_secs_f64() * 1000.0
        );
    }
}

#[cfg(unix)]
fn main() {
    use unix::*;
    run_role_if_asked();
    type Scenario = (&'static str, fn());
    let scenarios: &[Scenario] = &[
        // The yaml runs and the sqlite runs of the same scenario: the cross-process
        // guarantees are the backend's as much as the lock's.
        ("concurrent_step_completes", || concurrent_step_completes("yaml")),
        #[cfg(feature = "sqlite")]
        ("concurrent_step_completes_sqlite", || {
            concurrent_step_completes("sqlite")
        }),
        ("killed_holder_is_broken_at_once", killed_holder_is_broken_at_once),
        (
            "waiters_are_granted_in_arrival_order",
            waiters_are_granted_in_arrival_order,
        ),
        (
            "a_killed_waiter_does_not_block_the_queue",
            a_killed_waiter_does_not_block_the_queue,
        ),
        (
            "a_stopped_waiter_does_not_block_the_queue_for_ever",
            a_stopped_waiter_does_not_block_the_queue_for_ever,
        ),
        (
            "lock_file_never_holds_a_secret_from_the_command_line",
            lock_file_never_holds_a_secret_from_the_command_line,
        ),
        (
            "stopped_holder_past_expiry_cannot_overwrite",
            stopped_holder_past_expiry_cannot_overwrite,
        ),
        ("force_release_needs_the_id", force_release_needs_the_id),
        ("half_written_lock_is_held", half_written_lock_is_held),
        (
            "reused_pid_does_not_keep_a_dead_lock",
            reused_pid_does_not_keep_a_dead_lock,
        ),
        ("one_stale_lock_is_broken_once", one_stale_lock_is_broken_once),
        ("random_kills_never_tear_or_lose", || {
            random_kills_never_tear_or_lose("yaml")
        }),
        #[cfg(feature = "sqlite")]
        ("random_kills_never_tear_or_lose_sqlite", || {
            random_kills_never_tear_or_lose("sqlite")
        }),
        (
            "signals_release_the_lock_and_exit",
            signals_release_the_lock_and_exit,
        ),
        ("transactions_survive_random_kills", || {
            transactions_survive_random_kills("yaml")
        }),
        #[cfg(feature = "sqlite")]
        ("transactions_survive_random_kills_sqlite", || {
            transactions_survive_random_kills("sqlite")
        }),
        (
            "heartbeat_never_keeps_a_process_alive",
            heartbeat_never_keeps_a_process_alive,
        ),
        // One store on a PostgreSQL server, two checkouts of it (skipped without a
        // server unless CHECKLIST_REQUIRE_PG=1).
        #[cfg(feature = "postgres")]
        (
            "concurrent_step_completes_postgres",
            postgres_concurrent_step_completes_from_two_checkouts,
        ),
        #[cfg(feature = "postgres")]
        (
            "contention_breaks_no_lock_postgres",
            postgres_contention_breaks_no_lock,
        ),
        #[cfg(feature = "postgres")]
        (
            "killed_holder_is_taken_over_within_seconds_postgres",
            postgres_killed_holder_is_taken_over_within_seconds,
        ),
        #[cfg(feature = "postgres")]
        (
            "force_release_from_another_checkout_postgres",
            postgres_force_release_from_another_checkout,
        ),
        #[cfg(feature = "postgres")]
        (
            "lock_never_holds_a_password_from_the_command_line_postgres",
            postgres_lock_never_holds_a_password_from_the_command_line,
        ),
        #[cfg(feature = "postgres")]
        (
            "random_kills_never_tear_or_lose_postgres",
            postgres_random_kills_never_tear_or_lose,
        ),
    ];
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} process scenarios", selected.len());
    let mut failed = Vec::new();
    for (name, scenario) in selected {
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(scenario);
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok.");
    } else {
        println!("\ntest result: FAILED. {failed:?}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    println!("process scenarios need Unix signals; see docs/decisions/0007-file-lock.md");
}
