//! Running the file backends' blocking I/O without stalling the async runtime.

use std::io;
use std::path::Path;

use checklist_core::{Error, Result};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work`, which blocks on file I/O, without stalling other tasks.
///
/// On a multi-threaded runtime it runs in place ([`tokio::task::block_in_place`]): the
/// worker hands its other tasks to another thread and does the I/O itself, which saves
/// the round trip to the blocking pool (about 50 µs here, several times per
/// transaction). A current-thread runtime cannot give its tasks away, so there `work`
/// goes to the blocking pool. A panic inside `work` is resumed in the caller; a runtime
/// shutting down under it is reported as an I/O error on `path`.
pub(crate) async fn run_blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if Handle::try_current().is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread) {
        return tokio::task::block_in_place(work);
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io("finish I/O on", path, io::Error::other(e.to_string()))),
    }
}

/// Runs `work`, which blocks on file I/O and reports nothing, from synchronous code such
/// as a `Drop`, without stalling other tasks: in place on a multi-threaded runtime (as
/// [`run_blocking`]), so it is done when the call returns; on the blocking pool of a
/// current-thread runtime, not waited for; in place outside a runtime, where this
/// thread is nobody's worker.
pub(crate) fn run_blocking_detached(work: impl FnOnce() + Send + 'static) {
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work);
        }
        Ok(runtime) => drop(runtime.spawn_blocking(work)),
        Err(_) => work(),
    }
}
