//! A lock holder in another process, for the cases a single process cannot express: a
//! live holder the suite must not judge gone, a stopped one whose lock must expire, a
//! killed one whose lock must be taken at once, and a holder that must learn its lock
//! was released by someone else.
//!
//! The holder is the running executable itself, started again with
//! [`HOLD_ENV`] set to what to hold. In a test binary the re-run runs the one test that
//! started it (by the name of the thread the case runs on, which is the test's), and
//! that test serves the order at its first call into the suite —
//! [`run_case`](crate::run_case), which every test [`conformance_tests!`](crate::conformance_tests)
//! expands to calls first thing, or [`all_cases`](crate::all_cases) — instead of
//! running anything. A runner that does work of its own before either (starting a
//! server, say) calls [`serve_if_asked`] first; a program of its own, like the
//! `checklist` CLI, calls it at the start of `main`. The holder reports on its standard output, one line each after a mark
//! of its own: `held <lock id>` once it holds the lock, `lost <why>` when [`LockGuard::ensure_held`] fails, and
//! `released` once it let the lock go after its standard input was closed.
//!
//! [`LockGuard::ensure_held`]: checklist_core::LockGuard::ensure_held

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use checklist_backends::FileLockProvider;
use checklist_core::{LockProvider, LockRequest};
use serde::{Deserialize, Serialize};

/// The environment variable that makes a re-run of the executable a holder: the JSON
/// of what to hold.
pub const HOLD_ENV: &str = "CHECKLIST_CONFORMANCE_HOLD";

/// A lock another process can open: what the holder opens to take it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LockSpec {
    /// The file lock ([`FileLockProvider`]) of the store in this directory.
    File {
        /// The store's directory.
        dir: PathBuf,
    },
    /// The postgres lock provider of one store on a server.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connection URL (`None`: the libpq environment variables).
        url: Option<String>,
        /// The schema.
        schema: String,
        /// The store's key.
        key: String,
    },
}

impl LockSpec {
    fn open(&self) -> checklist_core::Result<Arc<dyn LockProvider>> {
        match self {
            Self::File { dir } => Ok(Arc::new(FileLockProvider::new(dir))),
            #[cfg(feature = "postgres")]
            Self::Postgres { url, schema, key } => {
                let mut options =
                    checklist_backends::PostgresOptions::new(key.clone()).with_schema(schema.clone());
                options.url.clone_from(url);
                Ok(Arc::new(checklist_backends::PostgresLockProvider::open(
                    &options,
                )?))
            }
        }
    }
}

/// What a holder is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    lock: LockSpec,
    expiry_ms: u64,
}

/// The hook for [`Subject::hold_in_another_process_with`](crate::Subject::hold_in_another_process_with)
/// of a lock `spec` describes.
pub fn holder_of(spec: LockSpec) -> impl Fn(Duration) -> io::Result<HolderProcess> + Send + Sync + 'static {
    move |expiry| HolderProcess::spawn(&spec, expiry)
}

/// If this process was started as a holder ([`HOLD_ENV`] is set), holds the lock as
/// ordered and exits; otherwise returns at once. Call it first thing in `main` of a
/// program that runs the suite through [`all_cases`](crate::all_cases).
pub fn serve_if_asked() {
    let Ok(order) = std::env::var(HOLD_ENV) else {
        return;
    };
    let code = match serde_json::from_str::<Order>(&order) {
        Ok(order) => serve(&order),
        Err(e) => report(&format!("refused the order: {e}")).map_or(2, |()| 2),
    };
    std::process::exit(code);
}

/// What starts each report line: a test harness may have written part of a line of
/// its own before it (`test name ... `).
const REPORT_MARK: &str = "checklist-conformance-holder: ";

/// Writes one report line to the real standard output (a test harness captures only
/// what `print!` writes).
fn report(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "\n{REPORT_MARK}{line}")?;
    out.flush()
}

fn serve(order: &Order) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&format!("failed: no runtime: {e}")).map_or(2, |()| 2),
    };
    // Standard input closed (the parent let go of it, or died): time to release.
    let closed = Arc::new(AtomicBool::new(false));
    std::thread::spawn({
        let closed = Arc::clone(&closed);
        move || {
            let _ = io::stdin().read_to_end(&mut Vec::new());
            closed.store(true, Ordering::SeqCst);
        }
    });
    runtime.block_on(async {
        let request = LockRequest {
            timeout: Duration::from_secs(30),
            retry_interval: Duration::from_millis(10),
            expiry: Duration::from_millis(order.expiry_ms),
            ..LockRequest::default()
        };
        let guard = match order.lock.open() {
            Ok(provider) => provider.acquire(&request).await,
            Err(e) => Err(e),
        };
        let guard = match guard {
            Ok(guard) => guard,
            Err(e) => return report(&format!("failed: {e}")).map_or(2, |()| 2),
        };
        if report(&format!("held {}", guard.info().lock_id)).is_err() {
            return 2;
        }
        loop {
            if closed.load(Ordering::SeqCst) {
                let outcome = match guard.release().await {
                    Ok(()) => "released".to_owned(),
                    Err(e) => format!("failed to release: {e}"),
                };
                return report(&outcome).map_or(2, |()| 0);
            }
            if let Err(e) = guard.ensure_held().await {
                return report(&format!("lost {e}")).map_or(2, |()| 3);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// The arguments that make a test binary run again only the test running now: libtest
/// names the thread of each test after it, and a case runs on that thread (inside
/// `block_on`). Elsewhere — a program's `main` thread, a runtime's worker — a program
/// serves the order before it looks at its arguments; should it be a test binary after
/// all, the arguments select no test, so the holder exits at once, saying nothing,
/// instead of running the whole binary.
fn test_to_run_again() -> Vec<String> {
    let name = match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name.to_owned(),
        _ => "no test: run the cases on the thread of the test that runs them".to_owned(),
    };
    vec![
        name,
        "--exact".to_owned(),
        "--nocapture".to_owned(),
        "--test-threads=1".to_owned(),
    ]
}

/// A holder running in another process: started by [`HolderProcess::spawn`], killed
/// when dropped.
#[derive(Debug)]
pub struct HolderProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    lock_id: String,
}

impl HolderProcess {
    /// Starts this executable again as a holder of `lock` with `expiry`, and waits (up
    /// to 30 s) until it holds it.
    ///
    /// # Errors
    /// Starting the process, or a holder that did not take the lock (its words are in
    /// the error).
    pub fn spawn(lock: &LockSpec, expiry: Duration) -> io::Result<Self> {
        let order = serde_json::to_string(&Order {
            lock: lock.clone(),
            expiry_ms: u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX),
        })
        .map_err(io::Error::other)?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(test_to_run_again())
            .env(HOLD_ENV, order)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some((_, report)) = line.split_once(REPORT_MARK) else {
                    continue;
                };
                if send.send(report.to_owned()).is_err() {
                    break;
                }
            }
        });
        let mut holder = Self {
            child,
            stdin,
            lines,
            lock_id: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        while let Some(line) = holder.next_line(deadline.saturating_duration_since(Instant::now())) {
            if let Some(lock_id) = line.strip_prefix("held ") {
                holder.lock_id = lock_id.to_owned();
                return Ok(holder);
            }
            said.push(line);
        }
        // Its output ends as it exits; give the exit a moment to be seen.
        let mut exited = holder.child.try_wait();
        for _ in 0..50 {
            if !matches!(exited, Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            exited = holder.child.try_wait();
        }
        let ended = match exited {
            Ok(Some(status)) => format!(
                "exited ({status}) without taking the lock — in a test binary, the test that runs \
                 the case must run it on its own thread and reach run_case, all_cases or \
                 serve_if_asked before anything else"
            ),
            _ => "did not take the lock within 30 s".to_owned(),
        };
        Err(io::Error::other(format!(
            "the holder process {ended}; it said: {:?}",
            said.join(" / ")
        )))
    }

    /// The holder's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The id of the lock it holds.
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }

    /// The next line the holder reports, waiting at most `within`; `None` when it said
    /// nothing more in that time (or exited).
    pub fn next_line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// Waits up to `within` for a line starting with `prefix`, and returns it.
    pub fn wait_for(&self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(line) = self.next_line(deadline.saturating_duration_since(Instant::now())) {
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
        None
    }

    /// Stops the holder (SIGSTOP): alive, but neither renewing nor releasing, as a hung
    /// process is.
    ///
    /// # Errors
    /// Where processes cannot be stopped (not Unix), or `kill` failed.
    pub fn stop(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a stopped holder run again (SIGCONT).
    ///
    /// # Errors
    /// As [`stop`](Self::stop).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    /// Kills the holder (SIGKILL) and waits for it: gone without releasing.
    ///
    /// # Errors
    /// The kill's or the wait's.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Asks the holder to release its lock (closes its standard input) and waits up to
    /// `within` for it to say so.
    ///
    /// # Errors
    /// A holder that did not say `released` in time (its words are in the error).
    pub fn release(&mut self, within: Duration) -> io::Result<()> {
        drop(self.stdin.take());
        match self.wait_for("released", within) {
            Some(_) => Ok(()),
            None => Err(io::Error::other(format!(
                "the holder (pid {}) did not release its lock within {within:?}",
                self.pid()
            ))),
        }
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        if !cfg!(unix) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "stopping a process needs Unix signals",
            ));
        }
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} {} failed: {status}",
                self.pid()
            )))
        }
    }
}

impl Drop for HolderProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
