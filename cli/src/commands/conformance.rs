//! `checklist conformance [--backend NAME]`: the conformance suite, run by a user on the
//! file system the store lives on (a network mount, a container volume), to learn
//! whether it gives the guarantees the store needs.
//!
//! The cases run one after another in a work directory created inside the project root
//! (`--dir`, default the current directory), each in its own fresh subdirectory,
//! removed as soon as the case finishes, and the work directory at the end: a run on a
//! nearly full disk (the user's own store's) must not take its last free space with
//! the stores of failed cases. `--keep-failed` keeps those for inspection.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checklist_backends::vfs::RealFs;
use checklist_backends::{Layout, load_config};
use checklist_conformance::builtin::{BuiltinBackend, subject_for};
use checklist_conformance::{Case, Subject, all_cases};
use checklist_core::config::Durability;
use checklist_core::{Error, Result};

use crate::exit_code::ExitCode;
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::args::ConformanceArgs;
use crate::output::Outcome;

/// How long one case may take before it is reported as failed (a hung mount).
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Prefix of the work directory's name.
const WORK_DIR_PREFIX: &str = ".checklist-conformance-";

/// The result of one case, as `--json` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaseReport {
    suite: &'static str,
    name: &'static str,
    ok: bool,
    error: Option<String>,
    elapsed_ms: u64,
}

pub(crate) async fn run(ctx: &Context<'_>, args: ConformanceArgs, out: &mut dyn Write) -> Result<Outcome> {
    #[cfg(feature = "postgres")]
    if let Some(run) = super::server::postgres_run(&ctx.root, args.backend.as_deref(), &args.server)? {
        return run_target(ctx, Target::Server(run), all_cases(), out).await;
    }
    if args.server.any() {
        return Err(Error::invalid(
            "--database-url, --key, --schema and --no-create-schema are for --backend postgres",
        ));
    }
    // The directory first: when it is unusable, that is the news, not its config.yaml.
    let work = create_work_dir(&ctx.root)?;
    let backend = choose_backend(&ctx.root, args.backend.as_deref())?;
    run_cases(ctx, args.keep_failed, backend, all_cases(), work, out).await
}

/// What the suite runs against: a built-in backend in a work directory on the file
/// system to check, or a server in a throwaway schema.
enum Target {
    Directory {
        backend: BuiltinBackend,
        work: tempfile::TempDir,
        keep_failed: bool,
    },
    #[cfg(feature = "postgres")]
    Server(checklist_conformance::postgres::PostgresRun),
}

impl Target {
    fn backend(&self) -> &str {
        match self {
            Self::Directory { backend, .. } => backend.name(),
            #[cfg(feature = "postgres")]
            Self::Server(_) => "postgres",
        }
    }

    /// Where the cases run, for the first line.
    fn place(&self) -> String {
        match self {
            Self::Directory { backend, work, .. } => format!(
                "in {}{}",
                work.path().display(),
                if backend.is_on_disk() {
                    ""
                } else {
                    " (the memory backend keeps nothing on disk: this checks the backend, not the file system)"
                }
            ),
            #[cfg(feature = "postgres")]
            Self::Server(run) => format!(
                "on {} in the throwaway schema {} (dropped afterwards)",
                run.location(),
                run.schema()
            ),
        }
    }

    /// A fresh subject for `case`, and the directory to remove after it (if any).
    fn subject(&self, case: &Case) -> std::result::Result<(Subject, Option<PathBuf>), String> {
        match self {
            Self::Directory { backend, work, .. } => {
                let case_dir = work.path().join(format!("{}-{}", case.suite, case.name));
                std::fs::create_dir(&case_dir).map_err(|e| {
                    format!("could not create the case directory {}: {e}", case_dir.display())
                })?;
                let subject = subject_for(*backend, &case_dir, Durability::Full)
                    .map_err(|e| format!("could not open the {backend} store: {e}"))?;
                Ok((subject, Some(case_dir)))
            }
            #[cfg(feature = "postgres")]
            Self::Server(run) => run
                .subject(Durability::Full)
                .map(|subject| (subject, None))
                .map_err(|e| format!("could not open the postgres store: {e}")),
        }
    }

    fn keeps_failed(&self) -> bool {
        matches!(
            self,
            Self::Directory {
                keep_failed: true,
                ..
            }
        )
    }

    /// Removes what the run made (unless a failed run's directory is to be kept), and
    /// says where it was and whether it is kept.
    async fn finish(self, failed: bool) -> Result<(String, bool)> {
        match self {
            Self::Directory {
                work, keep_failed, ..
            } => {
                let work_path = work.path().to_owned();
                // Asked for, a failed case's directory is evidence: keep it (the others
                // were removed as they finished).
                if failed && keep_failed {
                    let _ = work.keep();
                    return Ok((work_path.display().to_string(), true));
                }
                work.close()
                    .map_err(|e| Error::io("remove the conformance work directory", &work_path, e))?;
                Ok((work_path.display().to_string(), false))
            }
            #[cfg(feature = "postgres")]
            Self::Server(run) => {
                run.drop_schema().await?;
                Ok((format!("schema {}", run.schema()), false))
            }
        }
    }
}

/// Runs `cases` against `backend` in `work`, a new directory inside the project root,
/// streaming a line per case unless the output is JSON.
async fn run_cases(
    ctx: &Context<'_>,
    keep_failed: bool,
    backend: BuiltinBackend,
    cases: Vec<Case>,
    work: tempfile::TempDir,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let target = Target::Directory {
        backend,
        work,
        keep_failed,
    };
    run_target(ctx, target, cases, out).await
}

/// Runs `cases` against `target`, streaming a line per case unless the output is JSON.
async fn run_target(
    ctx: &Context<'_>,
    target: Target,
    cases: Vec<Case>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let stream = !ctx.as_json;
    let backend = target.backend().to_owned();
    if stream && !ctx.quiet {
        let _ = writeln!(
            out,
            "Running {} conformance cases against the {backend} backend {}",
            cases.len(),
            target.place()
        );
    }
    let started = Instant::now();
    let mut reports = Vec::with_capacity(cases.len());
    for case in cases {
        let report = run_one(&target, case).await;
        if stream {
            match &report.error {
                None if !ctx.quiet => {
                    let _ = writeln!(out, "ok     {}::{}", report.suite, report.name);
                }
                None => {}
                Some(reason) => {
                    let _ = writeln!(out, "FAILED {}::{}: {reason}", report.suite, report.name);
                }
            }
            let _ = out.flush();
        }
        reports.push(report);
    }
    let elapsed = started.elapsed();
    let total = reports.len();
    let failed = reports.iter().filter(|r| !r.ok).count();
    let passed = total - failed;
    let on_disk = matches!(target, Target::Directory { .. });
    let (work_path, kept) = target.finish(failed > 0).await?;
    let counts = format!(
        "{passed} passed, {failed} failed, {total} total ({:.1} s)",
        elapsed.as_secs_f64()
    );
    let root = ctx.root.display();
    let place = if on_disk {
        format!("at {root}")
    } else {
        "on this server".to_owned()
    };
    let document = json!({
        "ok": failed == 0,
        "backend": backend,
        "dir": ctx.root,
        "workDir": work_path,
        "workDirKept": kept,
        "passed": passed,
        "failed": failed,
        "total": total,
        "elapsedMs": millis(elapsed),
        "cases": reports,
    });
    if failed == 0 {
        return Ok(Outcome::report(
            format!("{counts}: the {backend} backend gets the guarantees it needs {place}."),
            document,
        ));
    }
    let mut human = format!("{counts}: the {backend} backend does NOT get the guarantees it needs {place}.");
    if kept {
        human.push_str(&format!(
            " The failed cases' directories are kept in {work_path} for inspection."
        ));
    } else if on_disk {
        human.push_str(" Run it with --keep-failed to keep the failed cases' directories for inspection.");
    }
    let what = if on_disk {
        "this file system"
    } else {
        "this server"
    };
    Ok(Outcome::Failed {
        human,
        json: document,
        error: format!(
            "{failed} of {total} conformance cases failed for the {backend} backend {place}; \
             the store cannot rely on {what} (see the FAILED lines)"
        ),
        code: ExitCode::Other.code(),
    })
}

/// `--backend`, else `backend.type` of the project's config.yaml, else yaml.
fn choose_backend(root: &Path, asked: Option<&str>) -> Result<BuiltinBackend> {
    let (name, from) = match asked {
        Some(name) => (name.to_owned(), "--backend".to_owned()),
        None => {
            let layout = Layout::for_project(root);
            let config = load_config(&RealFs, &layout)?;
            (config.backend.kind, layout.config().display().to_string())
        }
    };
    name.parse().map_err(|not_builtin| {
        let server = if cfg!(feature = "postgres") {
            " (and postgres, on a server: --backend postgres --database-url URL)"
        } else {
            ""
        };
        Error::invalid(format!(
            "cannot check the backend named in {from}: {not_builtin}{server}"
        ))
    })
}

/// A fresh directory for this run inside `root` (created if missing), so two runs never
/// share one and nothing of the project is touched.
fn create_work_dir(root: &Path) -> Result<tempfile::TempDir> {
    let fail = |e| {
        Error::io(
            "create the conformance work directory (the directory to check must be a writable directory) in",
            root,
            e,
        )
    };
    std::fs::create_dir_all(root).map_err(fail)?;
    tempfile::Builder::new()
        .prefix(WORK_DIR_PREFIX)
        .tempdir_in(root)
        .map_err(fail)
}

/// Runs `case` on a fresh subject of `target`, catching a panic or a hang as a failure;
/// removes the case's directory when it finishes, unless it failed and the target keeps
/// failed ones.
async fn run_one(target: &Target, case: Case) -> CaseReport {
    let started = Instant::now();
    let (error, case_dir) = match target.subject(&case) {
        Ok((subject, case_dir)) => (run_subject(subject, case).await.err(), case_dir),
        Err(error) => (Some(error), None),
    };
    if let Some(case_dir) = case_dir
        && (error.is_none() || !target.keeps_failed())
    {
        // A leftover is not worth failing the run over; the work directory goes at the
        // end anyway.
        let _ = std::fs::remove_dir_all(&case_dir);
    }
    CaseReport {
        suite: case.suite,
        name: case.name,
        ok: error.is_none(),
        error,
        elapsed_ms: millis(started.elapsed()),
    }
}

async fn run_subject(subject: Subject, case: Case) -> std::result::Result<(), String> {
    let subject = Arc::new(subject);
    let task = tokio::spawn(async move { (case.run)(&subject).await });
    let abort = task.abort_handle();
    match tokio::time::timeout(CASE_TIMEOUT, task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(failure))) => Err(failure.to_string()),
        Ok(Err(join)) if join.is_panic() => Err(format!("the case panicked: {}", panic_text(join))),
        Ok(Err(join)) => Err(format!("the case did not finish: {join}")),
        Err(_) => {
            abort.abort();
            Err(format!(
                "the case did not finish within {} s",
                CASE_TIMEOUT.as_secs()
            ))
        }
    }
}

fn panic_text(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use checklist_conformance::{CaseFuture, Failure, Subject};
    use checklist_core::BackendRegistry;
    use checklist_core::prelude::*;

    use super::*;

    // Cases of our own, because no real case fails on a file system that works: they
    // drive the runner's failure paths (a reported failure, a panic) with a real store.
    fn writes_then_fails(subject: &Subject) -> CaseFuture<'_> {
        Box::pin(async move {
            let state = checklist_core::ChecklistState::new();
            subject
                .store
                .commit(&state, checklist_core::Expectation::Absent)
                .await
                .map_err(|e| Failure(e.to_string()))?;
            Err(Failure("expected revision 7, found revision 1".into()))
        })
    }

    fn panics(_: &Subject) -> CaseFuture<'_> {
        Box::pin(async { panic!("boom in the case") })
    }

    fn passes(subject: &Subject) -> CaseFuture<'_> {
        Box::pin(async move {
            match subject.store.read().await {
                Ok(None) => Ok(()),
                other => Err(Failure(format!("expected an empty store, found {other:?}"))),
            }
        })
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                suite: "runner",
                name: "passes",
                run: passes,
            },
            Case {
                suite: "runner",
                name: "writes_then_fails",
                run: writes_then_fails,
            },
            Case {
                suite: "runner",
                name: "panics",
                run: panics,
            },
        ]
    }

    fn context<'a>(root: &Path, registry: &'a BackendRegistry, as_json: bool) -> Context<'a> {
        Context {
            root: root.to_owned(),
            lock_timeout_ms: None,
            lock_note: None,
            quiet: false,
            as_json,
            registry,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_streamed_summarized_and_kept_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let registry = checklist_backends::builtin_registry();
        let ctx = context(dir.path(), &registry, false);
        let mut out = Vec::new();
        let outcome = run_cases(
            &ctx,
            true,
            BuiltinBackend::Yaml,
            cases(),
            create_work_dir(dir.path()).unwrap(),
            &mut out,
        )
        .await
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("Running 3 conformance cases against the yaml backend in "),
            "{text}"
        );
        assert_eq!(lines[1], "ok     runner::passes");
        assert_eq!(
            lines[2],
            "FAILED runner::writes_then_fails: expected revision 7, found revision 1"
        );
        assert_eq!(
            lines[3],
            "FAILED runner::panics: the case panicked: boom in the case"
        );
        let Outcome::Failed {
            human,
            json,
            error,
            code,
        } = outcome
        else {
            panic!("a failed run must not be a plain report: {outcome:?}");
        };
        assert_eq!(code, 1);
        assert!(human.starts_with("1 passed, 2 failed, 3 total ("), "{human}");
        assert!(human.contains("does NOT get the guarantees"), "{human}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        assert_eq!(
            (json["passed"].as_u64(), json["failed"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(json["workDirKept"], true);
        // The failed cases' directories are kept, with what the case wrote; the passing
        // case's directory is gone.
        let work = Path::new(json["workDir"].as_str().unwrap());
        assert!(work.starts_with(dir.path()), "{}", work.display());
        assert!(work.join("runner-writes_then_fails").join("state.yaml").is_file());
        assert!(work.join("runner-panics").is_dir());
        assert!(!work.join("runner-passes").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn json_output_streams_nothing_and_failed_cases_are_removed_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let registry = checklist_backends::builtin_registry();
        let ctx = context(dir.path(), &registry, true);
        let mut out = Vec::new();
        let outcome = run_cases(
            &ctx,
            false,
            BuiltinBackend::Json,
            cases(),
            create_work_dir(dir.path()).unwrap(),
            &mut out,
        )
        .await
        .unwrap();
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        let Outcome::Failed { json, .. } = outcome else {
            panic!("a failed run must not be a plain report: {outcome:?}");
        };
        assert_eq!(json["ok"], false);
        assert_eq!(json["cases"][1]["error"], "expected revision 7, found revision 1");
        assert_eq!(json["cases"][0]["ok"], true);
        assert_eq!(json["workDirKept"], false);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the work dir and the failed cases' directories must be removed"
        );
    }
}
