//! `stacks render` keeps secret values out of its output unless asked: a canary
//! `DB_PASSWORD` (in plain text and base64, as a Secret's `data` holds it) never
//! appears on stdout or in the files of `--dir`; stderr says what was redacted.
//! With `--include-secrets` the values are there, and each `--dir` file holding
//! them has mode 0600. No cluster is involved (render reads only config and the
//! file state backend).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;

/// The canary: must not appear anywhere unless `--include-secrets`.
const CANARY: &str = "canary-render-password-NOT-REAL";

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn render(state: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(["--backend", &format!("file://{}", state.display())])
        .args(["--config-dir", &config_dir().display().to_string()])
        .args(["render", "local"])
        .args(args)
        .env("PREVIEW_DB_PASSWORD", CANARY)
        .env_remove("PREVIEW_DB_PASSWORD_FILE")
        .env_remove("PREVIEW_DIGITALOCEAN_TOKEN")
        .env_remove("PREVIEW_DOMAIN")
        .env_remove("PREVIEW_TLS_ISSUER")
        .env_remove("PREVIEW_WEB_IMAGE")
        .env_remove("PREVIEW_API_IMAGE")
        .output()
        .expect("runs stacks");
    assert!(
        out.status.success(),
        "stacks render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn forms() -> [String; 2] {
    [
        CANARY.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(CANARY),
    ]
}

fn contains_canary(text: &str) -> bool {
    forms().iter().any(|form| text.contains(form.as_str()))
}

/// (file name, content, mode) of every file in `dir`.
fn files(dir: &Path) -> Vec<(String, String, u32)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read_to_string(&path).expect("read"), mode)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn stdout_is_redacted_by_default_and_complete_on_request() {
    let state = tempfile::tempdir().expect("tmp");
    let out = render(state.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!contains_canary(&stdout), "canary on stdout:\n{stdout}");
    assert!(!contains_canary(&stderr), "canary on stderr:\n{stderr}");
    assert!(
        stdout.contains("DB_PASSWORD: '<redacted: use --include-secrets>'"),
        "the key stays, the value is the placeholder:\n{stdout}"
    );
    assert!(
        stderr.contains("note: secret values of Secret aphiria-local/env-var-secrets")
            && stderr.contains("pass --include-secrets to include them"),
        "{stderr}"
    );

    let out = render(state.path(), &["--include-secrets"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        contains_canary(&stdout),
        "--include-secrets renders the values"
    );
    assert!(!stdout.contains("<redacted"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: --include-secrets"), "{stderr}");
    assert!(!contains_canary(&stderr), "{stderr}");
}

#[test]
fn dir_files_are_redacted_or_private() {
    let state = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    render(state.path(), &["--dir", &dir.path().display().to_string()]);
    let redacted = files(dir.path());
    assert!(redacted.len() > 10, "{} files", redacted.len());
    for (name, text, _) in &redacted {
        assert!(!contains_canary(text), "canary in {name}:\n{text}");
    }
    let secret_files: Vec<&String> = redacted
        .iter()
        .filter(|(_, text, _)| text.contains("<redacted: use --include-secrets>"))
        .map(|(name, _, _)| name)
        .collect();
    assert!(
        secret_files
            .iter()
            .any(|n| n.ends_with("secret-aphiria-local-env-var-secrets.yaml")),
        "{secret_files:?}"
    );

    // A file left readable by others from an earlier run becomes private too.
    let env_secret = dir.path().join(
        secret_files
            .iter()
            .find(|n| n.ends_with("secret-aphiria-local-env-var-secrets.yaml"))
            .map(|n| n.as_str())
            .unwrap_or_default(),
    );
    std::fs::set_permissions(&env_secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    render(
        state.path(),
        &[
            "--dir",
            &dir.path().display().to_string(),
            "--include-secrets",
        ],
    );
    let included = files(dir.path());
    assert_eq!(included.len(), redacted.len());
    let mut private = 0;
    for (name, text, mode) in &included {
        let secret = text.contains("kind: Secret") && text.contains("\ndata:");
        if contains_canary(text) || secret {
            assert_eq!(*mode, 0o600, "{name} holds secrets: mode {mode:o}");
            private += 1;
        }
    }
    assert!(
        included.iter().any(|(name, text, _)| name
            .ends_with("secret-aphiria-local-env-var-secrets.yaml")
            && contains_canary(text)),
        "DB_PASSWORD is rendered with --include-secrets"
    );
    assert!(private >= 1);
}
