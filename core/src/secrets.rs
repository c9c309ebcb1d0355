//! The secret scanner run on every document before it is written (docs/decisions/0012-secrets-outside-the-document.md): private
//! keys, cloud and service tokens, JWTs, URLs with passwords and `password=` style
//! assignments. It reports the JSON pointer of the field, never the secret.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::ChecklistState;

/// One kind of secret and how to recognise it.
struct Detector {
    kind: &'static str,
    pattern: &'static str,
    /// Whether a match is a real secret rather than a placeholder or a reference to
    /// one (`password: true`, `token=${TOKEN}`): a regex alone cannot tell.
    is_secret: fn(&str) -> bool,
}

const DETECTORS: &[Detector] = &[
    Detector {
        kind: "private_key",
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
        is_secret: always,
    },
    Detector {
        kind: "aws_access_key_id",
        pattern: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[0-9A-Z]{16}\b",
        is_secret: always,
    },
    Detector {
        kind: "aws_secret_access_key",
        pattern: r#"(?i)\baws_?secret_?access_?key\b['"]?\s*[=:]\s*['"]?[A-Za-z0-9/+=]{40}"#,
        is_secret: always,
    },
    Detector {
        kind: "github_token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b",
        is_secret: always,
    },
    Detector {
        kind: "gitlab_token",
        pattern: r"\b(?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glsoat)-[A-Za-z0-9_-]{20,}|\bGR1348941[A-Za-z0-9_-]{20,}",
        is_secret: always,
    },
    Detector {
        kind: "slack_token",
        pattern: r"\bxox[abposre]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/-]{20,}",
        is_secret: always,
    },
    Detector {
        kind: "stripe_key",
        pattern: r"\b(?:sk|rk|whsec)_(?:(?:live|test)_)?[A-Za-z0-9]{24,}\b",
        is_secret: is_not_a_word,
    },
    Detector {
        kind: "google_api_key",
        pattern: r"\bAIza[0-9A-Za-z_-]{35}",
        is_secret: always,
    },
    Detector {
        kind: "google_oauth",
        pattern: r"\bGOCSPX-[A-Za-z0-9_-]{28}|\bya29\.[0-9A-Za-z_-]{20,}",
        is_secret: always,
    },
    Detector {
        kind: "package_registry_token",
        pattern: r"\bnpm_[A-Za-z0-9]{36}\b|\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
        is_secret: always,
    },
    Detector {
        kind: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        is_secret: always,
    },
    Detector {
        kind: "bearer_token",
        pattern: r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*",
        is_secret: always,
    },
    Detector {
        kind: "url_password",
        pattern: r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:[^\s/@]+@",
        is_secret: url_password_is_literal,
    },
    Detector {
        kind: "assignment",
        pattern: r#"(?i)(?:\b|_)(?:password|passwd|passphrase|secret|client_secret|secret_key|token|auth_token|access_token|refresh_token|api[_-]?key|access[_-]?key|private[_-]?key)\b['"]?\s*[=:]\s*['"]?[^\s'"$%<{*\[(][^\s'"]{3,}"#,
        is_secret: assigned_value_is_literal,
    },
    Detector {
        kind: "credential_flag",
        pattern: r#"(?i)--(?:password|passwd|token|auth-token|api-key|access-key|secret|client-secret)\s+['"]?[^\s'"$%<{*\[(-][^\s'"]{3,}"#,
        is_secret: flag_value_is_literal,
    },
];

fn always(_: &str) -> bool {
    true
}

/// `sk_live_…` keys are random: a run of letters only (an identifier such as
/// `sk_test_helpers_for_the_payment_module`) is code, not a key.
fn is_not_a_word(found: &str) -> bool {
    found.bytes().any(|b| b.is_ascii_digit())
}

/// `scheme://user:PASSWORD@` where PASSWORD is not a variable or a mask.
fn url_password_is_literal(found: &str) -> bool {
    let credentials = found.trim_end_matches('@');
    let password = credentials.rsplit_once(':').map_or("", |(_, p)| p);
    is_literal(password)
}

/// `name = VALUE` where VALUE is a literal, not a placeholder, a mask, a path or code.
fn assigned_value_is_literal(found: &str) -> bool {
    let Some(at) = found.find(['=', ':']) else {
        return false;
    };
    let value = found[at + 1..].trim_start().trim_start_matches(['\'', '"']);
    is_literal(value)
}

/// `--password VALUE` where VALUE is a literal (`--password=VALUE` is an assignment).
fn flag_value_is_literal(found: &str) -> bool {
    let Some((_, value)) = found.split_once(char::is_whitespace) else {
        return false;
    };
    is_literal(value.trim_start().trim_start_matches(['\'', '"']))
}

/// Words that stand for a value in documentation, logs and config templates.
const PLACEHOLDERS: &[&str] = &[
    "true",
    "false",
    "null",
    "nil",
    "none",
    "undefined",
    "empty",
    "string",
    "str",
    "bool",
    "int",
    "required",
    "optional",
    "redacted",
    "hidden",
    "masked",
    "secret",
    "password",
    "token",
    "example",
    "placeholder",
    "expired",
    "invalid",
    "missing",
    "unset",
    "default",
];

fn is_literal(value: &str) -> bool {
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_.]*[(\[]").expect("the pattern compiles"));
    let lower = value.to_ascii_lowercase();
    // Empty, or one character repeated (`xxxxxxxx`, `--------`): a mask, not a value.
    let first = value.chars().next();
    let masked = value.chars().all(|c| Some(c) == first);
    !(masked
        || PLACEHOLDERS.contains(&lower.trim_end_matches([',', ';', '.']))
        || value.starts_with(['$', '%', '<', '{', '*', '/', '~', '.'])
        || CODE.is_match(value))
}

static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(DETECTORS.iter().map(|d| d.pattern)).expect("the secret patterns compile")
});

static EACH: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    DETECTORS
        .iter()
        .map(|d| Regex::new(d.pattern).expect("the secret patterns compile"))
        .collect()
});

/// A secret found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretFinding {
    /// JSON pointer of the field holding it. A map key that is itself a secret appears
    /// as `[REDACTED:<kind>]`, so the path never repeats the secret.
    pub field_path: String,
    /// What kind of secret it looks like (`private_key`, `github_token`, …).
    pub kind: &'static str,
}

/// The detectors with at least one real secret in `text`.
fn detectors_in(text: &str) -> Vec<usize> {
    SET.matches(text)
        .into_iter()
        .filter(|&i| {
            EACH[i]
                .find_iter(text)
                .any(|m| (DETECTORS[i].is_secret)(m.as_str()))
        })
        .collect()
}

/// The kinds of secret found in `text`, if any.
pub fn kinds_in(text: &str) -> Vec<&'static str> {
    detectors_in(text)
        .into_iter()
        .map(|i| DETECTORS[i].kind)
        .collect()
}

/// Replaces every secret in `text` with `[REDACTED:<kind>]`; returns the kinds found.
pub fn redact_text(text: &mut String) -> Vec<&'static str> {
    let found = detectors_in(text);
    for &i in &found {
        let detector = &DETECTORS[i];
        let marker = format!("[REDACTED:{}]", detector.kind);
        *text = EACH[i]
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let matched = &caps[0];
                if (detector.is_secret)(matched) {
                    marker.clone()
                } else {
                    matched.to_owned()
                }
            })
            .into_owned();
    }
    found.into_iter().map(|i| DETECTORS[i].kind).collect()
}

/// Scans every string of `state`; with `redact`, replaces what it finds. Returns the
/// findings in document order.
pub fn scan_state(state: &mut ChecklistState, redact: bool) -> Vec<SecretFinding> {
    let mut scan = Scan {
        redact,
        findings: Vec::new(),
        path: String::new(),
    };
    scan.map("", &mut state.extra);
    if let Some(instance) = &mut state.active_instance {
        scan.within("/activeInstance", |s| {
            s.text("/id", &mut instance.id);
            s.text("/templateId", &mut instance.template_id);
            s.opt_text("/templateVersion", &mut instance.template_version);
            s.opt_text("/projectPath", &mut instance.project_path);
            s.opt_text("/currentStepId", &mut instance.current_step_id);
            s.map("", &mut instance.extra);
        });
    }
    for (i, step) in state.completed_steps.iter_mut().enumerate() {
        scan.within(&format!("/completedSteps/{i}"), |s| {
            s.text("/stepId", &mut step.step_id);
            s.map("", &mut step.extra);
            for (j, command) in step.command_results.iter_mut().enumerate() {
                s.within(&format!("/commandResults/{j}"), |s| {
                    s.text("/command", &mut command.command);
                    s.text("/stdout", &mut command.stdout);
                    s.text("/stderr", &mut command.stderr);
                    s.map("", &mut command.extra);
                });
            }
        });
    }
    if let Some(recovery) = &mut state.recovery {
        scan.within("/recovery", |s| s.map("", &mut recovery.extra));
    }
    if let Some(conflicts) = &mut state.conflicts {
        scan.within("/conflicts", |s| s.map("", &mut conflicts.extra));
    }
    scan.findings
}

struct Scan {
    redact: bool,
    findings: Vec<SecretFinding>,
    path: String,
}

impl Scan {
    fn within(&mut self, segment: &str, body: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        self.path.push_str(segment);
        body(self);
        self.path.truncate(len);
    }

    fn text(&mut self, segment: &str, text: &mut String) {
        if SET.is_match(text) {
            let kinds = if self.redact {
                redact_text(text)
            } else {
                kinds_in(text)
            };
            for kind in kinds {
                self.findings.push(SecretFinding {
                    field_path: format!("{}{segment}", self.path),
                    kind,
                });
            }
        }
    }

    fn opt_text(&mut self, segment: &str, text: &mut Option<String>) {
        if let Some(text) = text {
            self.text(segment, text);
        }
    }

    fn map(&mut self, segment: &str, map: &mut Map<String, Value>) {
        self.within(segment, |s| {
            let mut renamed = false;
            for (key, value) in map.iter_mut() {
                let shown = match kinds_in(key).as_slice() {
                    [] => escape_pointer(key),
                    kinds => {
                        renamed = true;
                        let shown = format!("[REDACTED:{}]", kinds[0]);
                        for &kind in kinds {
                            s.findings.push(SecretFinding {
                                field_path: format!("{}/{shown}", s.path),
                                kind,
                            });
                        }
                        shown
                    }
                };
                s.within(&format!("/{shown}"), |s| s.value(value));
            }
            if renamed && s.redact {
                redact_keys(map);
            }
        });
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => self.text("", text),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.within(&format!("/{i}"), |s| s.value(item));
                }
            }
            Value::Object(map) => self.map("", map),
            _ => {}
        }
    }
}

/// Renames every key that holds a secret to its marker (`[REDACTED:kind]`, then
/// `[REDACTED:kind]-2`… when several would collide), keeping the order of the keys.
fn redact_keys(map: &mut Map<String, Value>) {
    let mut redacted = Map::with_capacity(map.len());
    for (mut key, value) in std::mem::take(map) {
        if redact_text(&mut key).is_empty() {
            redacted.insert(key, value);
            continue;
        }
        let mut unique = key.clone();
        let mut n = 1;
        while redacted.contains_key(&unique) {
            n += 1;
            unique = format!("{key}-{n}");
        }
        redacted.insert(unique, value);
    }
    *map = redacted;
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};

    fn state_with_output(stdout: &str) -> ChecklistState {
        let mut state = ChecklistState::new();
        state
            .start_instance(
                InstanceStart {
                    template_id: "t".into(),
                    template_version: None,
                    project_path: None,
                    first_step_id: None,
                },
                now(),
            )
            .unwrap();
        state
            .complete_step(
                StepCompletion {
                    step_id: "deploy".into(),
                    result: StepResult::Success,
                    execution_time_ms: 1,
                    command_results: vec![CommandResult {
                        command: "./deploy".into(),
                        exit_code: 0,
                        stdout: stdout.into(),
                        stderr: String::new(),
                        duration: 1,
                        extra: Map::new(),
                    }],
                },
                now(),
            )
            .unwrap();
        state
    }

    #[test]
    fn each_kind_is_recognised() {
        let samples = [
            (
                "private_key",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            ),
            (
                "private_key",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE",
            ),
            ("aws_access_key_id", "key AKIAIOSFODNN7EXAMPLE used"),
            (
                "aws_secret_access_key",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("gitlab_token", "glpat-xxxxxxxxxxxxxxxxxxxx"),
            ("slack_token", "xoxb-123456789012-abcdefghijkl"),
            ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            ("google_api_key", "AIzaSyA-1234567890abcdefghijklmnopqrstu"),
            (
                "jwt",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            ),
            (
                "url_password",
                "cloning https://deploy:hunter2@example.com/repo.git",
            ),
            ("assignment", "export PASSWORD=correct-horse"),
            ("assignment", "api_key: 9f8e7d6c5b4a"),
        ];
        for (kind, text) in samples {
            assert!(
                kinds_in(text).contains(&kind),
                "{kind} not found in {text:?}: {:?}",
                kinds_in(text)
            );
        }
    }

    #[test]
    fn ordinary_text_is_not_a_secret() {
        for text in [
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "52da1a1f-cda3-4b3f-95c9-41837b94ba3e",
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "Finished release [optimized] target(s) in 0.52s",
            "password: ********",
            "token=$GITHUB_TOKEN",
            "set the password in the vault",
            "https://example.com/path?q=1",
        ] {
            assert!(
                kinds_in(text).is_empty(),
                "false positive in {text:?}: {:?}",
                kinds_in(text)
            );
        }
    }

    #[test]
    fn findings_name_the_field_and_redaction_keeps_the_rest() {
        let mut state = state_with_output("ok\nAWS key AKIAIOSFODNN7EXAMPLE\ndone\n");
        state.extra.insert(
            "x-env".into(),
            serde_json::json!({"db/url": ["postgres://app:s3cret@db/prod"]}),
        );
        let found = scan_state(&mut state.clone(), false);
        assert_eq!(
            found,
            [
                SecretFinding {
                    field_path: "/x-env/db~1url/0".into(),
                    kind: "url_password"
                },
                SecretFinding {
                    field_path: "/completedSteps/0/commandResults/0/stdout".into(),
                    kind: "aws_access_key_id"
                },
            ]
        );
        let redacted = scan_state(&mut state, true);
        assert_eq!(redacted.len(), 2);
        assert_eq!(
            state.completed_steps[0].command_results[0].stdout,
            "ok\nAWS key [REDACTED:aws_access_key_id]\ndone\n"
        );
        assert!(
            scan_state(&mut state, false).is_empty(),
            "nothing is left after redaction"
        );
    }
}
