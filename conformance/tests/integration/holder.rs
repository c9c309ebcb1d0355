//! The lock holder in another process, where a runner gets it wrong.

use std::time::Duration;

use checklist_conformance::holder::{HolderProcess, LockSpec};

/// A case run on a thread libtest did not name cannot say which test to run again as
/// the holder: the holder exits at once, running no test, and the error says why.
#[test]
fn a_holder_asked_for_from_an_unnamed_thread_exits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LockSpec::File {
        dir: dir.path().to_owned(),
    };
    let error = std::thread::spawn(move || HolderProcess::spawn(&spec, Duration::from_secs(5)).unwrap_err())
        .join()
        .unwrap();
    let message = error.to_string();
    assert!(
        message.contains("exited") && message.contains("on its own thread"),
        "{message}"
    );
}
