//! Running the file backends' blocking I/O on tokio's blocking pool.

use std::io;
use std::path::Path;

use checklist_core::{Error, Result};

/// Runs `work` on tokio's blocking pool. A panic inside it is resumed in the caller;
/// a runtime shutting down under it is reported as an I/O error on `path`.
pub(crate) async fn run_blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io("finish I/O on", path, io::Error::other(e.to_string()))),
    }
}
