//! `preview health` against tiny local servers.

mod common;

use std::sync::atomic::Ordering;

use common::{run, run_binary, status_server};

fn env() -> preview_github::Environment {
    // Health checks need no token.
    preview_github::Environment::for_api("https://api.github.com", None)
}

#[tokio::test]
async fn retries_until_the_url_answers() {
    let (web, web_hits) = status_server(vec![503, 503], 200).await;
    let (api, api_hits) = status_server(vec![], 204).await;
    let run = run(
        &env(),
        &[
            "health",
            "--url",
            &web,
            "--url",
            &api,
            "--timeout",
            "5s",
            "--interval",
            "10ms",
            "--max-interval",
            "40ms",
        ],
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert_eq!(web_hits.load(Ordering::SeqCst), 3);
    assert_eq!(api_hits.load(Ordering::SeqCst), 1);
    assert!(
        run.err
            .contains(&format!("health: {web} attempt 1: 503 — retrying in 10ms")),
        "{}",
        run.err
    );
    assert!(
        run.err
            .contains(&format!("health: {web} attempt 2: 503 — retrying in 20ms")),
        "{}",
        run.err
    );
    assert!(
        run.err.contains(&format!("health: {web} attempt 3: 200")),
        "{}",
        run.err
    );
    assert!(
        run.out
            .contains(&format!("health: ok {web} after 3 attempt(s)")),
        "{}",
        run.out
    );
    assert!(run.out.contains("(statuses: 503, 503, 200)"), "{}", run.out);
    assert!(
        run.out
            .contains(&format!("health: ok {api} after 1 attempt(s)")),
        "{}",
        run.out
    );
}

#[tokio::test]
async fn fails_with_statuses_when_the_deadline_passes() {
    let (good, _) = status_server(vec![], 200).await;
    let (bad, bad_hits) = status_server(vec![], 503).await;
    let run = run(
        &env(),
        &[
            "--json",
            "health",
            "--url",
            &good,
            "--url",
            &bad,
            "--timeout",
            "300ms",
            "--interval",
            "20ms",
            "--max-interval",
            "80ms",
        ],
    )
    .await;
    assert_eq!(run.exit_code(), 1);
    let line = run.error_line();
    assert!(
        line.starts_with(&format!(
            "error: health check failed: {bad} (statuses: 503, 503"
        )),
        "{line}"
    );
    assert!(
        line.ends_with("did not answer 200-399 within 300ms"),
        "{line}"
    );
    let hits = bad_hits.load(Ordering::SeqCst);
    assert!((3..=10).contains(&hits), "bounded, with backoff: {hits}");

    let report = run.json();
    assert_eq!(report["healthy"], false);
    assert_eq!(report["urls"][0]["healthy"], true);
    assert_eq!(report["urls"][1]["healthy"], false);
    assert_eq!(report["urls"][1]["attempts"][0]["status"], 503);
}

#[tokio::test]
async fn expect_range_and_connection_errors() {
    let (redirect, _) = status_server(vec![], 302).await;
    let strict = run(
        &env(),
        &[
            "health",
            "--url",
            &redirect,
            "--expect",
            "200",
            "--timeout",
            "50ms",
            "--interval",
            "10ms",
        ],
    )
    .await;
    assert_eq!(strict.exit_code(), 1, "302 is outside 200");

    // A port nobody listens on: reported as an error per attempt, not a panic.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let refused = run(
        &env(),
        &[
            "health",
            "--url",
            &closed,
            "--timeout",
            "50ms",
            "--interval",
            "10ms",
        ],
    )
    .await;
    assert_eq!(refused.exit_code(), 1);
    assert!(
        refused
            .err
            .contains(&format!("health: {closed} attempt 1: ")),
        "{}",
        refused.err
    );
    assert!(
        refused.error_line().contains("statuses: error"),
        "{}",
        refused.error_line()
    );
}

#[tokio::test]
async fn binary_exit_codes() {
    let (bad, _) = status_server(vec![], 500).await;
    let process = run_binary(
        &[],
        &[
            "health",
            "--url",
            &bad,
            "--timeout",
            "100ms",
            "--interval",
            "20ms",
        ],
    )
    .await;
    assert_eq!(process.code, 1);
    assert!(
        process.err.contains("error: health check failed"),
        "{}",
        process.err
    );

    let usage = run_binary(&[], &["health", "--url", "not a url"]).await;
    assert_eq!(usage.code, 2);
    let help = run_binary(&[], &["--help"]).await;
    assert_eq!(help.code, 0);
    for needle in ["Exit codes:", "GITHUB_TOKEN", "Examples:", "preview gate"] {
        assert!(help.out.contains(needle), "--help teaches `{needle}`");
    }
}
