//! Progress for work that can take longer than about a second (`conformance`,
//! `migrate`, `recover`): drawn on stderr, only when stderr is a terminal, never with
//! `--json` or `--quiet`, and only once the work has gone on for [`SHOW_AFTER`]
//! (docs/decisions/0029-cli-conventions-and-editor-schemas.md).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before its progress appears: quicker work never flashes a bar.
pub(crate) const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Whether progress may be drawn: stderr is a terminal and the output is for people.
pub(crate) fn wanted(as_json: bool, quiet: bool) -> bool {
    !as_json && !quiet && std::io::stderr().is_terminal()
}

/// A progress bar (counted work) or spinner (one long step), hidden until
/// [`SHOW_AFTER`] has passed; cleared when dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    reveal: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A bar counting `total` items, shown when `enabled` (see [`wanted`]).
    pub(crate) fn counting(enabled: bool, total: u64, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})") {
            bar.set_style(style.progress_chars("=> "));
        }
        Self::start(bar, enabled, message)
    }

    /// A spinner for one step of unknown length, shown when `enabled`.
    pub(crate) fn spinning(enabled: bool, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        Self::start(bar, enabled, message)
    }

    fn start(bar: ProgressBar, enabled: bool, message: &str) -> Self {
        bar.set_message(message.to_owned());
        let reveal = enabled.then(|| {
            let shown = bar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SHOW_AFTER).await;
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            })
        });
        Self { bar, reveal }
    }

    /// The number of items to count to, once it is known.
    pub(crate) fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// One more item done.
    pub(crate) fn advance(&self) {
        self.bar.inc(1);
    }

    /// Runs `print` (a line of the command's own output) with the bar cleared, and
    /// draws it again below, so streamed lines are never broken by it.
    pub(crate) fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bar.suspend(print)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(reveal) = self.reveal.take() {
            reveal.abort();
        }
        self.bar.finish_and_clear();
    }
}
