//! The secret scanner (issue 7, item 1): every supported format is found in realistic
//! text and reported by field path only, redaction leaves nothing behind, every
//! free-text field of the document is scanned, and a corpus of ordinary text that
//! looks random — UUIDs, checksums, git SHAs, base64 of prose, build logs — is not
//! mistaken for a secret.

use checklist_core::model::{CommandResult, InstanceStart, StepCompletion, StepResult, now};
use checklist_core::secrets::{SecretFinding, kinds_in, redact_text, scan_state};
use checklist_core::{ChecklistState, schema};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Realistic text holding one secret of each kind, with the secret itself.
const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "private_key",
        "Wrote key to deploy.pem:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\ndone",
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    ),
    (
        "private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n(output truncated)",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    ),
    (
        "private_key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIq1dSxX2fLxoCAggA\n-----END ENCRYPTED PRIVATE KEY-----",
        "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIq1dSxX2fLxoCAggA",
    ),
    (
        "private_key",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0w0tIBCADE4vJd8n1f1h0Xq2y7vQ3S\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBF0w0tIBCADE4vJd8n1f1h0Xq2y7vQ3S",
    ),
    (
        "aws_access_key_id",
        "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
    ),
    (
        "aws_access_key_id",
        "{\"Credentials\": {\"AccessKeyId\": \"ASIAJEXAMPLEXEG2JICE\"}}",
        "ASIAJEXAMPLEXEG2JICE",
    ),
    (
        "aws_secret_access_key",
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "aws_secret_access_key",
        "{\"AWS_SECRET_ACCESS_KEY\": \"je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\"}",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    ),
    (
        "github_token",
        "remote: using ghp_16C7e42F292c6912E7710c838347Ae178B4a for https://github.com/org/repo",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    (
        "github_token",
        "GITHUB_TOKEN=ghs_8aPxQw2RtY9uVb3NcD4eF5gH6iJ7kL8mN9oP",
        "ghs_8aPxQw2RtY9uVb3NcD4eF5gH6iJ7kL8mN9oP",
    ),
    (
        "github_token",
        "token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123",
    ),
    (
        "gitlab_token",
        "git clone https://oauth2@gitlab.com/group/project.git # PRIVATE-TOKEN: glpat-Zx8yW7vU6tS5rQ4pO3nM",
        "glpat-Zx8yW7vU6tS5rQ4pO3nM",
    ),
    (
        "gitlab_token",
        "gitlab-runner register --token glrt-t1_AbCdEfGhIjKlMnOpQrSt",
        "glrt-t1_AbCdEfGhIjKlMnOpQrSt",
    ),
    (
        "slack_token",
        "SLACK_BOT_TOKEN=xoxb-2154937165830-2168293648023-Qb0eNfXkJ4S6pG1yT3VwZ8aR",
        "xoxb-2154937165830-2168293648023-Qb0eNfXkJ4S6pG1yT3VwZ8aR",
    ),
    (
        "slack_token",
        "posting to https://hooks.slack.com/services/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",
        "kB7xYw2Qp9LmN4vR8sT1uZ3c",
    ),
    (
        "stripe_key",
        "Stripe.api_key = sk_live_51HqLyjWDarjtT1zdp7dcAbCdEf",
        "sk_live_51HqLyjWDarjtT1zdp7dcAbCdEf",
    ),
    (
        "stripe_key",
        "STRIPE_WEBHOOK_SECRET=whsec_5f8d2a1b9c7e3f6a4d2b8c1e9f7a3d5b",
        "whsec_5f8d2a1b9c7e3f6a4d2b8c1e9f7a3d5b",
    ),
    (
        "google_api_key",
        "https://maps.googleapis.com/maps/api/geocode/json?key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    ),
    (
        "google_oauth",
        "\"client_secret\":\"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\"",
        "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",
    ),
    (
        "google_oauth",
        "gcloud auth print-access-token\nya29.a0AfH6SMBx7cVq2LmN3pQ4rS5tU6vW7xY8zA9",
        "ya29.a0AfH6SMBx7cVq2LmN3pQ4rS5tU6vW7xY8zA9",
    ),
    (
        "package_registry_token",
        "//registry.npmjs.org/:_authToken=npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    ),
    (
        "jwt",
        "Set-Cookie: session=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c; HttpOnly",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    (
        "bearer_token",
        "curl -H 'Authorization: Bearer 4f9a1c7e2b8d3f6a0e5c9b1d7a3f8e2c' https://api.example.com/v1/me",
        "4f9a1c7e2b8d3f6a0e5c9b1d7a3f8e2c",
    ),
    (
        "url_password",
        "DATABASE_URL=postgres://app:S3cr3t-Pa55@db.internal:5432/prod",
        "S3cr3t-Pa55",
    ),
    (
        "url_password",
        "connecting to redis://:Zq8Lw2Xv9@cache:6379/0",
        "Zq8Lw2Xv9",
    ),
    (
        "assignment",
        "export DB_PASSWORD=correct-horse-battery-staple",
        "correct-horse-battery-staple",
    ),
    (
        "assignment",
        "{\"username\": \"deploy\", \"password\": \"Tr0ub4dor&3\"}",
        "Tr0ub4dor&3",
    ),
    (
        "assignment",
        "settings.py: SECRET_KEY = 'django-insecure-8x#k2m!q9z'",
        "django-insecure-8x#k2m!q9z",
    ),
    ("assignment", "api_key: 9f8e7d6c5b4a3210", "9f8e7d6c5b4a3210"),
    (
        "credential_flag",
        "mysqldump --user root --password Hunter2Hunter2 shop > shop.sql",
        "Hunter2Hunter2",
    ),
    (
        "credential_flag",
        "docker login --username ci --password dckr-Lq8Zx2Vw9Ty5 registry.example.com",
        "dckr-Lq8Zx2Vw9Ty5",
    ),
];

fn state_with(stdout: &str) -> ChecklistState {
    let mut state = ChecklistState::new();
    state
        .start_instance(
            InstanceStart {
                template_id: "release".into(),
                template_version: Some("1.2.0".into()),
                project_path: Some("/src/shop".into()),
                first_step_id: Some("build".into()),
            },
            now(),
        )
        .unwrap();
    state
        .complete_step(
            StepCompletion {
                step_id: "deploy".into(),
                result: StepResult::Success,
                execution_time_ms: 1200,
                command_results: vec![CommandResult {
                    command: "./deploy.sh --env prod".into(),
                    exit_code: 0,
                    stdout: stdout.into(),
                    stderr: String::new(),
                    duration: 1200,
                    extra: Map::new(),
                }],
            },
            now(),
        )
        .unwrap();
    state
}

#[test]
fn each_format_is_found_by_field_path_and_redacted_without_a_trace() {
    for &(kind, text, secret) in SAMPLES {
        assert!(
            text.contains(secret),
            "the sample for {kind} does not hold its secret"
        );
        let mut state = state_with(text);
        let found = scan_state(&mut state.clone(), false);
        assert!(
            found.contains(&SecretFinding {
                field_path: "/completedSteps/0/commandResults/0/stdout".into(),
                kind,
            }),
            "{kind} not found in {text:?}: {found:?}"
        );
        assert!(
            found.iter().all(|f| !f.field_path.contains(secret)),
            "a finding repeats the secret"
        );

        let redacted = scan_state(&mut state, true);
        assert_eq!(redacted, found, "redaction reports what the scan found");
        let stdout = &state.completed_steps[0].command_results[0].stdout;
        assert!(
            !stdout.contains(secret),
            "{kind}: the secret survived redaction: {stdout:?}"
        );
        assert!(stdout.contains(&format!("[REDACTED:{kind}]")), "{stdout:?}");
        assert_eq!(
            scan_state(&mut state, false),
            [],
            "{kind}: something is left after redaction"
        );
    }
}

#[test]
fn redaction_keeps_the_text_around_the_secret() {
    let mut text = "pushing\nremote: ghp_16C7e42F292c6912E7710c838347Ae178B4a ok\ndone\n".to_owned();
    assert_eq!(redact_text(&mut text), ["github_token"]);
    assert_eq!(text, "pushing\nremote: [REDACTED:github_token] ok\ndone\n");

    let mut placeholder_beside_a_secret = "password: ******** then password: hunter2hunter2".to_owned();
    redact_text(&mut placeholder_beside_a_secret);
    assert_eq!(
        placeholder_beside_a_secret,
        "password: ******** then [REDACTED:assignment]"
    );
}

#[test]
fn a_map_key_that_is_a_secret_never_appears_in_the_path() {
    let token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let mut state = state_with("ok");
    state.extra.insert(
        "x-tokens".into(),
        json!({ token: "read-only", "plain": "nothing here" }),
    );
    let found = scan_state(&mut state.clone(), false);
    assert_eq!(
        found,
        [SecretFinding {
            field_path: "/x-tokens/[REDACTED:github_token]".into(),
            kind: "github_token",
        }]
    );
    scan_state(&mut state, true);
    let tokens = state.extra["x-tokens"].as_object().unwrap();
    assert_eq!(
        tokens.keys().collect::<Vec<_>>(),
        ["[REDACTED:github_token]", "plain"],
        "the key is renamed in place, the order kept"
    );
    assert_eq!(tokens["[REDACTED:github_token]"], "read-only");
}

/// Every string of the document the schema accepts as free text is scanned: the test
/// plants a secret in each string leaf in turn and keeps those the model and the
/// schema accept. A new free-text field that the scanner does not walk fails here.
#[test]
fn every_free_text_field_of_the_document_is_scanned() {
    const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let mut state = state_with("ok");
    state
        .extra
        .insert("x-top".into(), json!({"list": ["a", {"deep": "b"}]}));
    let full = json!({
        "recovery": {
            "lastCorruption": "2026-11-01T10:00:00.000Z",
            "corruptionType": "checksum_mismatch",
            "recoveryMethod": "backup",
            "dataLoss": false,
            "note": "x"
        },
        "conflicts": {"detected": "2026-11-01T10:00:00.000Z", "resolution": "merge", "note": "y"}
    });
    let mut base = checklist_core::document::seal(&state, 1, std::path::Path::new("state.yaml"))
        .unwrap()
        .value;
    for (key, value) in full.as_object().unwrap() {
        base[key] = value.clone();
    }
    base["activeInstance"]["x-owner"] = json!("z");
    base["completedSteps"][0]["x-note"] = json!("w");
    base["completedSteps"][0]["commandResults"][0]["x-env"] = json!({"K": "v"});
    serde_json::from_value::<ChecklistState>(base.clone()).expect("the full document parses");
    schema::validate_state(&base).expect("the full document is valid");

    let mut leaves = Vec::new();
    string_leaves(&base, String::new(), &mut leaves);
    let mut free_text = 0;
    for pointer in leaves {
        let mut planted = base.clone();
        *planted.pointer_mut(&pointer).unwrap() = Value::String(TOKEN.into());
        let Ok(mut candidate) = serde_json::from_value::<ChecklistState>(planted.clone()) else {
            continue;
        };
        if schema::validate_state(&planted).is_err() {
            continue;
        }
        free_text += 1;
        let found = scan_state(&mut candidate, false);
        assert!(
            found.iter().any(|f| f.field_path == pointer),
            "a secret at {pointer} is not found: {found:?}"
        );
    }
    assert!(free_text >= 12, "only {free_text} free-text fields were tried");
}

fn string_leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                string_leaves(
                    item,
                    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Ordinary text a step records, which must never be taken for a secret.
fn false_positive_corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "Compiling checklist-core v0.1.0 (/work/main/core)\n    Finished `release` profile [optimized] target(s) in 41.27s",
        "added 1337 packages, and audited 1338 packages in 12s\n\n211 packages are looking for funding\n  run `npm fund` for details",
        "Digest: sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4\nStatus: Downloaded newer image for postgres:16",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Ada <ada@example.com>\nDate:   Mon Nov 2 10:00:00 2026 +0000",
        "HOME=/root\nPWD=/work/main\nOLDPWD=/work\nPATH=/usr/local/bin:/usr/bin\nSHELL=/bin/bash\nPASSWORD_FILE=/run/secrets/db_password",
        "NAME                     READY   STATUS    RESTARTS   AGE\napi-7d9f8b6c5d-x2k9p     1/1     Running   0          3d",
        "  + password = (sensitive value)\n  ~ token    = (known after apply)",
        "password: ********",
        "password: <your password here>",
        "token=${{ secrets.GITHUB_TOKEN }}",
        "token=$GITHUB_TOKEN",
        "set PASSWORD=%DB_PASSWORD%",
        "secret: true",
        "api_key: null",
        "password: none",
        "token: string",
        "max_tokens: 4096",
        "password_hash: $2b$12$KIXQJ8ld0VbG4hGm5Jr5aOQ4FvSLxG1n0e0X6Z2Qj2Wc2r3Y9hQ2u",
        "api_key = os.environ[\"API_KEY\"]",
        "password = getpass.getpass()",
        "postgres://app:${DB_PASSWORD}@db/prod",
        "https://user:****@example.com/private",
        "git clone git@github.com:rust-lang/rust.git",
        "ssh://git@gitlab.com:22/group/project.git",
        "https://example.com:8443/path?q=1&page=2#top",
        "http://[::1]:8080/health",
        "set the password in the vault, then rotate the token",
        "Finished release [optimized] target(s) in 0.52s",
        "sk_test_helpers_for_the_payment_module",
        "Bearer tokens expire after 3600 seconds",
        "mailto:ada@example.com",
        "--password-file /run/secrets/pw --token-file=/run/secrets/token",
        "test secrets::tests::ordinary_text_is_not_a_secret ... ok",
        "[REDACTED:github_token]",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();

    for i in 0..500 {
        corpus.push(uuid::Uuid::new_v4().to_string());
        let sha = sha256_hex(&format!("file-{i}"));
        corpus.push(format!("sha256:{sha}"));
        corpus.push(format!("commit {} Merge pull request #{i}", &sha[..40]));
        corpus.push(format!("{}  target/release/checklist-{i}", sha));
    }
    let prose = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/architecture.md"),
        include_str!("../../../docs/file-formats.md"),
    ];
    for line in prose.iter().flat_map(|doc| doc.lines()).filter(|l| l.len() > 8) {
        corpus.push(base64(line.as_bytes()));
        corpus.push(format!("data:text/plain;base64,{}", base64(line.as_bytes())));
    }
    corpus
}

#[test]
fn the_false_positive_corpus_is_clean() {
    let corpus = false_positive_corpus();
    assert!(corpus.len() > 2000, "the corpus is too small: {}", corpus.len());
    let flagged: Vec<(&String, Vec<&str>)> = corpus
        .iter()
        .map(|text| (text, kinds_in(text)))
        .filter(|(_, kinds)| !kinds.is_empty())
        .collect();
    assert_eq!(flagged, [], "false positives");
}

/// The project's own documents — checksums, UUID instance ids, timestamps, revision
/// numbers — scan clean, however many steps they hold.
#[test]
fn the_projects_own_documents_scan_clean() {
    let mut state = state_with("ok");
    for i in 0..200 {
        state
            .complete_step(
                StepCompletion {
                    step_id: format!("step-{i}"),
                    result: StepResult::Success,
                    execution_time_ms: i,
                    command_results: vec![CommandResult {
                        command: format!("sha256sum artifact-{i}.tar.gz"),
                        exit_code: 0,
                        stdout: format!("{}  artifact-{i}.tar.gz\n", sha256_hex(&i.to_string())),
                        stderr: String::new(),
                        duration: i,
                        extra: Map::new(),
                    }],
                },
                now(),
            )
            .unwrap();
    }
    let sealed = checklist_core::document::seal(&state, 42, std::path::Path::new("state.yaml")).unwrap();
    let mut reread =
        checklist_core::document::unseal(sealed.value.clone(), std::path::Path::new("state.yaml")).unwrap();
    assert!(
        reread
            .checksum
            .as_deref()
            .is_some_and(|c| c.starts_with("sha256:"))
    );
    assert_eq!(scan_state(&mut reread, false), []);
    assert_eq!(kinds_in(&sealed.value.to_string()), Vec::<&str>::new());
}
