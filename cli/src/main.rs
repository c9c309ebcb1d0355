//! The `checklist` binary.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // `checklist conformance` starts this binary again to hold a lock in another
    // process; such a run holds it and exits here.
    checklist_conformance::holder::serve_if_asked();
    let app = checklist_cli::App::new();
    let cli = match app.try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The conformance cases break locks and panic inside changes on purpose; their
    // warnings are part of the test, not news for the user (-v shows them).
    let conformance = matches!(cli.command, checklist_cli::args::Command::Conformance(_));
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) if conformance => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("CHECKLIST_LOG").unwrap_or_else(|_| EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .with_ansi(checklist_cli::output::colour(
            std::env::var_os("NO_COLOR").as_deref(),
            std::io::stderr().is_terminal(),
        ))
        .with_target(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if conformance {
        // A panic inside a case (deliberate, like the change that panics to prove the
        // rollback, or a bug) is caught and reported on that case's FAILED line with
        // its message; the default hook would add a backtrace to a passing run.
        std::panic::set_hook(Box::new(|_| {}));
    }
    // Unlocked handles: log events from other threads write to stderr too, and would
    // wait forever for a lock held across the whole run.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = runtime.block_on(app.run_until_signal(cli, &mut out, &mut err));
    let _ = out.flush();
    ExitCode::from(code)
}
