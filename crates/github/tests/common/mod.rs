//! Shared helpers for the CLI integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use github_fake::GithubFake;
use preview_github::github::RetryPolicy;
use preview_github::{Cli, CliError, Environment, GithubToken};

/// The repository the fake serves.
pub const REPO: &str = "acme/site";
/// A full head SHA.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// Token the tests send as GITHUB_TOKEN.
pub const TOKEN: &str = "test-token-not-secret";

/// An image pinned by digest.
pub fn digest(name: &str, fill: char) -> String {
    format!("ghcr.io/acme/{name}@sha256:{}", fill.to_string().repeat(64))
}

/// Starts the OpenAPI-validating fake.
pub async fn fake() -> GithubFake {
    GithubFake::start()
        .await
        .expect("github-fake starts (needs ../shared/data/openapi/github-subset.json)")
}

/// An environment pointing at the fake with fast retries.
pub fn env_for(fake: &GithubFake) -> Environment {
    Environment {
        token: GithubToken::new(TOKEN),
        approver_token: None,
        api_url: fake.base_url(),
        server_url: "https://github.com".into(),
        retry: RetryPolicy::fast(),
    }
}

/// `comment --repo REPO --pr <pr> --status <status>`, then `extra`.
pub fn comment_args<'a>(pr: &'a str, status: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["comment", "--repo", REPO, "--pr", pr, "--status", status];
    args.extend_from_slice(extra);
    args
}

/// `deployment create --repo REPO --pr <pr> --sha SHA`, then `extra`.
pub fn deployment_create_args<'a>(pr: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deployment",
        "create",
        "--repo",
        REPO,
        "--pr",
        pr,
        "--sha",
        SHA,
    ];
    args.extend_from_slice(extra);
    args
}

/// `deployment status --repo REPO --id <id> --state <state>`, then `extra`.
pub fn deployment_status_args<'a>(id: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deployment",
        "status",
        "--repo",
        REPO,
        "--id",
        id,
        "--state",
        state,
    ];
    args.extend_from_slice(extra);
    args
}

/// `deployment deactivate --repo REPO --environment <environment>`, then `extra`.
pub fn deployment_deactivate_args<'a>(environment: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deployment",
        "deactivate",
        "--repo",
        REPO,
        "--environment",
        environment,
    ];
    args.extend_from_slice(extra);
    args
}

/// What an in-process run produced.
pub struct Run {
    /// Ok or the error.
    pub result: Result<(), CliError>,
    /// stdout.
    pub out: String,
    /// stderr.
    pub err: String,
}

impl Run {
    /// The error line, as `main` would print it.
    pub fn error_line(&self) -> String {
        match &self.result {
            Ok(()) => String::new(),
            Err(error) => format!("error: {error}"),
        }
    }

    /// The exit code `main` would return.
    pub fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(()) => 0,
            Err(error) => error.exit_code(),
        }
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out).expect("stdout is JSON")
    }
}

/// Parses `args` like the binary and runs them in-process.
pub async fn run(env: &Environment, args: &[&str]) -> Run {
    let cli = Cli::try_parse_from(std::iter::once("preview").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let result = preview_github::run(cli, env, &mut out, &mut err).await;
    Run {
        result,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Result of running the real binary.
pub struct Process {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub out: String,
    /// stderr.
    pub err: String,
}

/// Runs the `preview` binary with exactly `vars` as its environment.
pub async fn run_binary(vars: &[(&str, &str)], args: &[&str]) -> Process {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .await
        .expect("the preview binary runs");
    Process {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A tiny HTTP server answering each request with the next status of `script`, then
/// `then` forever. Returns its base URL and a request counter.
pub async fn status_server(script: Vec<u16>, then: u16) -> (String, Arc<AtomicUsize>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counter = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let hits = Arc::clone(&counter);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let hits = Arc::clone(&hits);
            let script = Arc::clone(&script);
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let status = script.get(n).copied().unwrap_or(then);
                    async move {
                        hyper::Response::builder()
                            .status(status)
                            .body(Full::new(bytes::Bytes::from_static(b"ok")))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), counter)
}

/// Comments on `issue` whose body starts with `marker`.
pub fn marker_comments(fake: &GithubFake, issue: u64, marker: &str) -> Vec<github_fake::Comment> {
    fake.comments(issue)
        .into_iter()
        .filter(|c| c.body.starts_with(marker))
        .collect()
}
