//! The `# Contract` bullets in core's documentation and the suite's cases name each
//! other: a bullet naming a case that does not exist (renamed, never written) tells a
//! backend author something nothing checks, and a case of a backend-facing trait
//! without a bullet checks something no contract promises.

use std::collections::BTreeSet;
use std::path::Path;

use checklist_conformance::all_cases;

/// The case names of every contract bullet in `dir`'s Rust files: a doc line
/// `/// - `name`, `other`:` (the list may wrap onto `///   ` lines), the names
/// before the first colon. Bullets that open with anything but names are prose.
fn bullet_names(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bullet_names(&path, found);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(bullet) = line.strip_prefix("/// - `") else {
                continue;
            };
            let mut head = format!("`{bullet}");
            let mut next = i + 1;
            while !head.contains(':') {
                match lines.get(next).and_then(|l| l.strip_prefix("///   ")) {
                    Some(more) => head.push_str(&format!(" {more}")),
                    None => break,
                }
                next += 1;
            }
            let Some((names, _)) = head.split_once(':') else {
                continue;
            };
            let names: Vec<&str> = names.split(',').map(str::trim).collect();
            let all_names = names.iter().all(|name| {
                name.len() > 2
                    && name.starts_with('`')
                    && name.ends_with('`')
                    && name[1..name.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
            if all_names {
                for name in names {
                    found.push((name.trim_matches('`').to_owned(), path.display().to_string()));
                }
            }
        }
    }
}

#[test]
fn every_contract_bullet_names_a_case_and_every_backend_case_has_a_bullet() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let mut bullets = Vec::new();
    bullet_names(&core, &mut bullets);
    let cases = all_cases();
    let case_names: BTreeSet<&str> = cases.iter().map(|case| case.name).collect();
    let stale: Vec<&(String, String)> = bullets
        .iter()
        .filter(|(name, _)| !case_names.contains(name.as_str()))
        .collect();
    assert!(stale.is_empty(), "contract bullets naming no case: {stale:?}");
    let promised: BTreeSet<&str> = bullets.iter().map(|(name, _)| name.as_str()).collect();
    // The coordinator and recovery suites check core's own code over a backend; their
    // promises are in docs/backends.md and the cases' documentation, not on a trait.
    let unpromised: Vec<&str> = cases
        .iter()
        .filter(|case| matches!(case.suite, "store" | "locks" | "backup_policy"))
        .map(|case| case.name)
        .filter(|name| !promised.contains(name))
        .collect();
    assert!(
        unpromised.is_empty(),
        "cases of a backend-facing trait with no contract bullet in core: {unpromised:?}"
    );
}
