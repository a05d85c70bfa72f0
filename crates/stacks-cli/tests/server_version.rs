//! An API server older than the supported range is refused from its `/version`
//! before any other request: `stacks up` against a server that reports
//! Kubernetes v1.20.2 fails naming that version and the supported range, and the
//! server saw nothing but `GET /version`.
//!
//! The server is a small HTTP listener standing in for an old kube-apiserver
//! (no v1.20 API server can be built here any more); its `/version` body has the
//! shape of `k8s.io/apimachinery/pkg/version.Info`.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `version_body` at `/version` and 404 elsewhere; records request lines.
async fn fake_server(version_body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let Ok(n) = socket.read(&mut buf).await else {
                    return;
                };
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = request.lines().next().unwrap_or_default().to_owned();
                log.lock().expect("log").push(line.clone());
                let (status, body) = if line.starts_with("GET /version") {
                    ("200 OK", version_body)
                } else {
                    ("404 Not Found", "{}")
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: old\n  cluster: {{server: '{server}'}}\n\
         users:\n- name: u\n  user: {{token: not-a-secret}}\ncontexts:\n- name: old\n  context: {{cluster: old, user: u}}\n\
         current-context: old\n"
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

#[tokio::test]
async fn an_old_server_is_refused_before_any_other_request() {
    let (url, seen) = fake_server(
        r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","gitCommit":"faecb196815e248d3ecfb03c680a4507229c2a56","gitTreeState":"clean","buildDate":"2021-01-13T13:20:00Z","goVersion":"go1.15.5","compiler":"gc","platform":"linux/amd64"}"#,
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig(dir.path(), &url);
    let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stacks"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--backend")
        .arg(format!("file://{}", dir.path().join("state").display()))
        .arg("--config-dir")
        .arg(config_dir)
        .args(["up", "local"])
        .env("PREVIEW_DB_PASSWORD", "local-only")
        .env_remove("PREVIEW_POSTGRES_URL")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run stacks");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "must fail: {stderr}");
    assert!(
        stderr.contains("v1.20.2"),
        "names the server's version: {stderr}"
    );
    assert!(
        stderr.contains("supports Kubernetes 1.33 to 1.37"),
        "names the supported range: {stderr}"
    );
    assert!(stderr.contains(&url), "names the server: {stderr}");
    let requests = seen.lock().expect("log").clone();
    assert!(
        requests.iter().all(|r| r.starts_with("GET /version")),
        "only /version was asked before refusing: {requests:?}"
    );
    assert!(!requests.is_empty(), "the server was asked");
}
