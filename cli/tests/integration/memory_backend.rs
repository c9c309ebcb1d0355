//! The memory backend keeps its state only inside one process, so its end-to-end test
//! runs the commands in-process through one `App` (one registry, one memory store).

use checklist_cli::App;
use serde_json::Value;

struct Run {
    code: u8,
    out: String,
    err: String,
}

async fn run(app: &App, root: &std::path::Path, args: &[&str]) -> Run {
    let mut argv = vec!["checklist", "--dir", root.to_str().unwrap()];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = app.run(argv, &mut out, &mut err).await;
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

#[tokio::test]
async fn the_tour_works_with_the_memory_backend() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let app = App::new();
    let init = run(&app, root, &["init", "--backend", "memory"]).await;
    assert_eq!(init.code, 0, "{}", init.err);
    assert!(init.err.contains("only while this process runs"), "{}", init.err);
    assert!(!root.join(".checklist/state.yaml").exists() && !root.join(".checklist/state.json").exists());
    for args in [
        &["start", "--template", "t"][..],
        &["step", "complete", "s1"],
        &["verify"],
    ] {
        let r = run(&app, root, args).await;
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
    }
    let status = run(&app, root, &["--json", "-q", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.err);
    assert!(status.err.is_empty(), "-q silences the warning: {}", status.err);
    let doc: Value = serde_json::from_str(&status.out).unwrap();
    assert_eq!(doc["revision"], 3);
    assert_eq!(doc["store"]["backend"], "memory");
    assert_eq!(doc["completedSteps"][0]["stepId"], "s1");
    let export = run(&app, root, &["export", "--format", "json"]).await;
    let exported: Value = serde_json::from_str(&export.out).unwrap();
    assert_eq!(exported["checksum"], doc["checksum"]);

    // A new process (a new App) starts with an empty memory store.
    let fresh = run(&App::new(), root, &["status"]).await;
    assert_eq!(fresh.code, 3, "{}", fresh.err);
}
