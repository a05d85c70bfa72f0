//! The `stacks` binary behaves like its neighbours, tested on the real binary
//! without a cluster: `--version` names the commit; shell completions; flags
//! only where they apply; a closed stdout pipe ends quietly; `-q`; a
//! `KUBECONFIG` list merged as kubectl merges it with the context from
//! `PREVIEW_KUBE_CONTEXT`; a connection error naming the server, the context and
//! the kubeconfig; errors under `--json` as a JSON document.
//!
//! The API servers are small HTTP listeners on loopback: one answers `/version`
//! as a Kubernetes v1.20 server would (refused as too old, which proves which
//! server was reached), the other address refuses connections.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn stacks() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stacks"));
    c.env_remove("KUBECONFIG")
        .env_remove("PREVIEW_KUBE_CONTEXT")
        .env_remove("PREVIEW_BACKEND")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("PREVIEW_LOG")
        .env_remove("RUST_LOG");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// `stacks render local` (no cluster): a long document on stdout, notes on stderr.
fn render_local(state: &Path) -> Command {
    let mut c = stacks();
    c.args(["--backend", &format!("file://{}", state.display())])
        .args(["--config-dir", &config_dir().display().to_string()])
        .args(["render", "local"])
        .env("PREVIEW_DB_PASSWORD", "canary-conventions-NOT-REAL")
        .env_remove("PREVIEW_DB_PASSWORD_FILE")
        .env_remove("PREVIEW_DIGITALOCEAN_TOKEN")
        .env_remove("PREVIEW_DOMAIN")
        .env_remove("PREVIEW_TLS_ISSUER");
    c
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = stacks().arg("--version").output().expect("run stacks");
    assert!(out.status.success());
    let version = text(&out.stdout);
    let commit = version
        .trim()
        .strip_prefix(concat!("stacks ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {version}"));
    let in_git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "a short commit hash: {version}"
        );
    } else {
        assert_eq!(commit, "unknown");
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = stacks()
            .args(["completions", shell])
            .output()
            .expect("run stacks");
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("stacks") && script.contains("destroy"),
            "{shell} completes the commands:\n{script}"
        );
    }
}

#[test]
fn destroy_and_outputs_take_no_image_flags() {
    for command in ["destroy", "outputs"] {
        let out = stacks()
            .args([
                command,
                "preview-pr",
                "--pr",
                "7",
                "--web-image",
                "x@sha256:0",
            ])
            .output()
            .expect("run stacks");
        assert_eq!(out.status.code(), Some(2), "{command}: usage error");
        assert!(
            text(&out.stderr).contains("unexpected argument '--web-image'"),
            "{command}: {}",
            text(&out.stderr)
        );
        let help = stacks()
            .args([command, "--help"])
            .output()
            .expect("run stacks");
        assert!(
            !text(&help.stdout).contains("--api-image"),
            "{command} --help"
        );
    }
}

/// Runs `command` with its stdout a pipe whose reading end is closed before
/// the child writes: every write to it fails with EPIPE.
fn with_closed_stdout(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stacks");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait for stacks")
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let state = tempfile::tempdir().expect("tempdir");
    let out = with_closed_stdout(render_local(state.path()));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "render: {stderr}");
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("error")
            && !stderr.contains("Broken pipe"),
        "quiet: {stderr}"
    );
    let mut completions = stacks();
    completions.args(["completions", "bash"]);
    let out = with_closed_stdout(completions);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "completions: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn quiet_leaves_out_notes_but_not_the_result() {
    let state = tempfile::tempdir().expect("tempdir");
    let loud = render_local(state.path()).output().expect("run stacks");
    assert!(loud.status.success(), "{}", text(&loud.stderr));
    assert!(
        text(&loud.stderr).contains("note:"),
        "{}",
        text(&loud.stderr)
    );
    let quiet = render_local(state.path())
        .arg("-q")
        .output()
        .expect("run stacks");
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert_eq!(text(&quiet.stderr), "", "-q prints no notes");
    assert_eq!(quiet.stdout, loud.stdout, "the result is the same");
}

/// A one-thread HTTP server answering `GET /version` as Kubernetes v1.20.2.
fn old_api_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let body = r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","gitCommit":"faecb196815e248d3ecfb03c680a4507229c2a56","gitTreeState":"clean","buildDate":"2021-01-13T13:20:00Z","goVersion":"go1.15.5","compiler":"gc","platform":"linux/amd64"}"#;
        for mut socket in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = socket.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes());
        }
    });
    url
}

/// A kubeconfig file with one cluster, user and context named `name`.
fn kubeconfig(dir: &Path, name: &str, server: &str, current: bool) -> PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    let current = if current {
        format!("current-context: {name}\n")
    } else {
        String::new()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\n{current}clusters:\n- name: {name}\n  cluster: {{server: '{server}'}}\n\
         users:\n- name: {name}\n  user: {{token: not-a-secret}}\ncontexts:\n- name: {name}\n  context: {{cluster: {name}, user: {name}}}\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// `stacks state list` on a `kubernetes://` backend: connects first.
fn connect_with(kubeconfig: &std::ffi::OsStr, context: Option<&str>, json: bool) -> Output {
    let mut c = stacks();
    c.args(["--backend", "kubernetes://preview-state", "state", "list"])
        .env("KUBECONFIG", kubeconfig);
    if json {
        c.arg("--json");
    }
    if let Some(context) = context {
        c.env("PREVIEW_KUBE_CONTEXT", context);
    }
    c.output().expect("run stacks")
}

#[test]
fn a_kubeconfig_list_is_merged_and_the_context_comes_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first file sets current-context (it wins, as with kubectl); its server refuses connections.
    let first = kubeconfig(dir.path(), "first", "https://127.0.0.1:1", true);
    let url = old_api_server();
    let second = kubeconfig(dir.path(), "second", &url, true);
    let list = std::env::join_paths([&first, &second]).expect("join");

    // The second file's context, chosen by PREVIEW_KUBE_CONTEXT: its server is reached.
    let out = connect_with(&list, Some("second"), false);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("the API server at {url}")) && stderr.contains("v1.20.2"),
        "the second file's server answered: {stderr}"
    );

    // By default the first file's current-context; the error names server, context and files.
    let out = connect_with(&list, None, false);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("connecting to the API server at https://127.0.0.1:1/"),
        "names the server: {stderr}"
    );
    assert!(
        stderr.contains("context first"),
        "names the context: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "kubeconfig KUBECONFIG={}:{}",
            first.display(),
            second.display()
        )),
        "names the kubeconfig files: {stderr}"
    );

    // A context no file has is named with the ones there are.
    let out = connect_with(&list, Some("third"), false);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no context \"third\" (contexts: first, second)"),
        "{stderr}"
    );

    // Under --json the error is a JSON document on stdout.
    let out = connect_with(&list, None, true);
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", text(&out.stdout)));
    assert_eq!(doc["error"]["kind"], "connection", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("https://127.0.0.1:1/"), "{doc}");
}
