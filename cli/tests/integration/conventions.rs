//! The CLI's conventions (docs/decisions/0029-cli-conventions-and-editor-schemas.md):
//! shell completions, the manual page, `--version`, colour, where an unknown backend's
//! name came from, and the schema line editors read in state.yaml and config.yaml.

use std::path::Path;
use std::process::{Command, Output};

use checklist_backends::builtin_registry;
use checklist_core::schema::{CONFIG_SCHEMA, STATE_SCHEMA};
use serde_json::Value;

use crate::support::{checklist, code, json, ok, stderr};

/// Runs `checklist ARGS…` with no project (these commands need none).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_checklist"))
        .args(args)
        .env_remove("CHECKLIST_DIR")
        .output()
        .expect("run checklist")
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "checklist {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Subcommands every completion script and the manual page must name.
const SUBCOMMANDS: [&str; 8] = [
    "init",
    "status",
    "verify",
    "migrate",
    "recover",
    "conformance",
    "completions",
    "schema",
];

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {script}");
        for subcommand in SUBCOMMANDS {
            assert!(
                script.contains(subcommand),
                "{shell} completions lack {subcommand}"
            );
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn the_committed_manual_page_is_the_one_the_binary_prints() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH checklist 1"),
        "{page}"
    );
    for subcommand in SUBCOMMANDS {
        assert!(page.contains(subcommand), "the manual page lacks {subcommand}");
    }
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/checklist.1");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == page,
        "{} is stale: regenerate it with `cargo run -p checklist-cli -- man > docs/checklist.1`",
        committed_path.display()
    );
}

#[test]
fn version_lists_the_backends_of_the_registry() {
    let expected = format!(
        "checklist {} (backends: {})\n",
        env!("CARGO_PKG_VERSION"),
        builtin_registry().names().join(", ")
    );
    assert_eq!(stdout_of(&["--version"]), expected);
    assert_eq!(stdout_of(&["-V"]), expected);
    assert!(
        expected.contains("yaml") && expected.contains("memory"),
        "{expected}"
    );
}

#[test]
fn output_that_is_not_a_terminal_has_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    for no_color in [None, Some("1")] {
        let command = |args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_checklist"));
            command
                .args(args)
                .env_remove("CHECKLIST_DIR")
                .env_remove("NO_COLOR");
            if let Some(value) = no_color {
                command.env("NO_COLOR", value);
            }
            command.output().unwrap()
        };
        // A usage error (clap's styled text) and a command that warns.
        let usage = command(&["--no-such-flag"]);
        assert_eq!(code(&usage), 2);
        let warned = command(&[
            "--dir",
            dir.path().to_str().unwrap(),
            "-vv",
            "init",
            "--backend",
            "memory",
        ]);
        assert!(stderr(&warned).contains("warning:"), "{}", stderr(&warned));
        for out in [&usage, &warned] {
            let all = [&out.stdout[..], &out.stderr[..]].concat();
            assert!(
                !all.contains(&0x1b),
                "escape sequence with NO_COLOR={no_color:?}: {}",
                String::from_utf8_lossy(&all)
            );
        }
    }
}

/// On a terminal (a pseudo-terminal from util-linux `script`), colour unless `NO_COLOR`.
#[cfg(target_os = "linux")]
#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let line = format!("{} --no-such-flag", env!("CARGO_BIN_EXE_checklist"));
    let on_terminal = |no_color: Option<&str>| {
        let mut command = Command::new("script");
        command.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let out = command
            .output()
            .expect("util-linux `script` runs the command on a terminal");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(None);
    assert!(coloured.contains("unexpected argument"), "{coloured}");
    assert!(coloured.contains('\x1b'), "a terminal gets colour: {coloured:?}");
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("unexpected argument"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR turns it off: {plain:?}");
}

#[test]
fn an_unknown_backend_on_the_command_line_blames_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = checklist(dir.path(), &["init", "--backend", "nosuch"]);
    assert_ne!(code(&out), 0);
    let message = stderr(&out);
    assert!(
        message.contains("unknown backend \"nosuch\" (from the --backend option)"),
        "{message}"
    );
    assert!(
        !message.contains("config.yaml"),
        "no config.yaml is involved: {message}"
    );
    assert!(!dir.path().join(".checklist").exists(), "nothing is created");

    let out = checklist(dir.path(), &["--json", "init", "--backend", "nosuch"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["from"], "the --backend option");
    assert_eq!(report["error"]["path"], Value::Null);

    // A config.yaml that names it is blamed by its path.
    ok(dir.path(), &["init"]);
    let config = dir.path().join(".checklist/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("type: yaml", "type: nosuch")).unwrap();
    let out = checklist(dir.path(), &["status"]);
    let message = stderr(&out);
    assert!(
        message.contains(&format!("(from backend.type in {})", config.display())),
        "{message}"
    );
}

#[test]
fn schema_prints_the_schemas_the_store_validates_with_and_init_writes_them_for_editors() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init"]);
    let schemas = dir.path().join(".checklist/schemas");
    for (file, embedded, written) in [
        ("state", STATE_SCHEMA, "state.schema.json"),
        ("config", CONFIG_SCHEMA, "config.schema.json"),
    ] {
        let printed: Value = serde_json::from_str(&stdout_of(&["schema", file])).unwrap();
        let embedded: Value = serde_json::from_str(embedded).unwrap();
        assert_eq!(printed, embedded, "{file}");
        let on_disk: Value = serde_json::from_slice(&std::fs::read(schemas.join(written)).unwrap()).unwrap();
        assert_eq!(on_disk, embedded, "{written}");
    }
}

const STATE_LINE: &str = "# yaml-language-server: $schema=./schemas/state.schema.json\n";

#[test]
fn state_yaml_and_config_yaml_name_their_schema_and_the_line_never_changes_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init"]);
    ok(dir.path(), &["start", "--template", "release"]);
    let store = dir.path().join(".checklist");
    let state = store.join("state.yaml");
    let config = std::fs::read_to_string(store.join("config.yaml")).unwrap();
    assert!(
        config.starts_with("# yaml-language-server: $schema=./schemas/config.schema.json\n"),
        "{config}"
    );
    let with_line = std::fs::read_to_string(&state).unwrap();
    assert!(with_line.starts_with(STATE_LINE), "{with_line}");
    let verified = json(dir.path(), &["verify"]);

    // A hand edit that removes the line still verifies, to the same checksum.
    std::fs::write(&state, with_line.strip_prefix(STATE_LINE).unwrap()).unwrap();
    let without = json(dir.path(), &["verify"]);
    assert_eq!(without["checksum"], verified["checksum"], "{without}");
    assert_eq!(without["revision"], verified["revision"]);

    // The next write puts it back.
    ok(dir.path(), &["step", "current", "build"]);
    let rewritten = std::fs::read_to_string(&state).unwrap();
    assert!(rewritten.starts_with(STATE_LINE), "{rewritten}");
    assert_eq!(
        rewritten.matches("yaml-language-server").count(),
        1,
        "{rewritten}"
    );
    json(dir.path(), &["verify"]);
}

#[test]
fn only_the_yaml_backend_writes_the_line() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--backend", "json"]);
    let state = std::fs::read_to_string(dir.path().join(".checklist/state.json")).unwrap();
    assert!(state.starts_with('{'), "{state}");
    let config = std::fs::read_to_string(dir.path().join(".checklist/config.yaml")).unwrap();
    assert!(config.starts_with("# yaml-language-server: $schema="), "{config}");
}

/// Runs `checklist ARGS…` on a pseudo-terminal (util-linux `script`) and returns what
/// the terminal showed (stdout and stderr both).
#[cfg(target_os = "linux")]
fn on_a_terminal(root: &Path, args: &str) -> String {
    let line = format!(
        "{} --dir {} {args}",
        env!("CARGO_BIN_EXE_checklist"),
        root.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CHECKLIST_DIR")
        .output()
        .expect("util-linux `script` runs the command on a terminal");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(target_os = "linux")]
#[test]
fn conformance_shows_progress_on_a_terminal_without_breaking_its_case_lines() {
    let dir = tempfile::tempdir().unwrap();
    let shown = on_a_terminal(dir.path(), "conformance --backend memory");
    assert!(shown.contains("conformance ["), "a bar after a second: {shown}");
    // The bar is cleared (carriage return, erase line) before each case's line.
    let lines: Vec<&str> = shown
        .split("\r\n")
        .map(|line| line.rsplit("\x1b[2K").next().unwrap_or(line))
        .collect();
    let cases = lines.iter().filter(|line| line.starts_with("ok     ")).count();
    assert!(cases >= 100, "every case's line whole: {lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| !line.contains("ok     ") || line.starts_with("ok     ")),
        "{lines:?}"
    );
    for quiet in [
        "--quiet conformance --backend memory",
        "--json conformance --backend memory",
    ] {
        let shown = on_a_terminal(dir.path(), quiet);
        assert!(!shown.contains("conformance ["), "no bar with {quiet}: {shown}");
    }
}
