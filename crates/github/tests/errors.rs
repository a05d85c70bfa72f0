//! Token handling, retries and one-line error messages.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use github_fake::Fault;
use serde_json::json;

use common::{
    REPO, SHA, TOKEN, comment_args, deployment_create_args, deployment_deactivate_args,
    deployment_status_args, env_for, fake, run, run_binary,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

const COMMENT: [&str; 8] = [
    "comment", "--repo", REPO, "--pr", "7", "--status", "pending", "--json",
];

#[tokio::test]
async fn missing_token_is_a_clear_error_and_nothing_is_sent() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let base = fake.base_url();
    let process = run_binary(
        &[("GITHUB_API_URL", base.as_str())],
        &comment_args("7", "pending", &[]),
    )
    .await;
    assert_eq!(process.code, 2, "{}", process.err);
    assert!(process.out.is_empty());
    assert_eq!(process.err.lines().count(), 1, "{}", process.err);
    assert!(
        process.err.starts_with("error: GITHUB_TOKEN is not set"),
        "{}",
        process.err
    );
    assert!(fake.requests().is_empty(), "no request without a token");

    // Blank counts as missing too.
    let blank = run_binary(
        &[("GITHUB_API_URL", base.as_str()), ("GITHUB_TOKEN", "  ")],
        &deployment_deactivate_args("preview-pr-7", &[]),
    )
    .await;
    assert_eq!(blank.code, 2);
    assert!(fake.requests().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn token_is_not_sent_over_plain_http_to_remote_hosts() {
    let process = run_binary(
        &[
            ("GITHUB_API_URL", "http://api.example.com"),
            ("GITHUB_TOKEN", TOKEN),
        ],
        &comment_args("7", "pending", &[]),
    )
    .await;
    assert_eq!(process.code, 2);
    assert!(
        process
            .err
            .contains("plain http is only allowed for loopback"),
        "{}",
        process.err
    );
}

#[tokio::test]
async fn primary_rate_limit_then_success_is_retried() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.inject(Fault::rate_limited(now()).times(2));
    let run = run(&env_for(&fake), &COMMENT).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert_eq!(run.json()["action"], "created");
    let methods: Vec<String> = fake.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, vec!["GET", "GET", "GET", "POST"]);
    fake.assert_no_violations();
}

#[tokio::test]
async fn long_rate_limit_fails_at_once_with_the_reset_time() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let reset = now() + 3_000;
    fake.inject(Fault::rate_limited(reset));
    let run = run(&env_for(&fake), &COMMENT).await;
    assert_eq!(run.exit_code(), 1);
    let line = run.error_line();
    let expected =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(reset))
            .to_string();
    assert!(
        line.contains(&format!("rate limited until {expected}")),
        "{line}"
    );
    assert!(line.contains("x-ratelimit-remaining: 0"), "{line}");
    assert_eq!(fake.requests().len(), 1, "no pointless retries");
    fake.assert_no_violations();
}

#[tokio::test]
async fn secondary_rate_limit_and_server_errors_are_retried() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.inject(Fault::secondary_rate_limit(0).on("GET", "/comments"));
    fake.inject(Fault::server_error(502).times(2).on("POST", "/comments"));
    let run = run(&env_for(&fake), &COMMENT).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let methods: Vec<String> = fake.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, vec!["GET", "GET", "POST", "POST", "POST"]);
    fake.assert_no_violations();
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_bounded_attempts() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.inject(Fault::server_error(503).times(100));
    let run = run(&env_for(&fake), &COMMENT).await;
    assert_eq!(run.exit_code(), 1);
    let line = run.error_line();
    assert!(line.contains("503 Server Error"), "{line}");
    assert!(line.contains("gave up after 4 attempts"), "{line}");
    assert_eq!(fake.requests().len(), 4);
    fake.assert_no_violations();
}

#[tokio::test]
async fn unauthorized_forbidden_not_found_and_validation_messages() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let env = env_for(&fake);

    // 401: the fake only accepts registered tokens now.
    fake.require_known_token(true);
    let unauthorized = run(&env, &COMMENT).await;
    assert_eq!(
        unauthorized.error_line(),
        format!(
            "error: GET /repos/{REPO}/issues/7/comments: 401 Unauthorized (Bad credentials) — the token in GITHUB_TOKEN is invalid or expired; check the secret's value and expiry"
        )
    );
    fake.require_known_token(false);

    // 403 without rate-limit headers: a missing permission.
    fake.inject(
        Fault::status(403, "Resource not accessible by integration").on("POST", "/comments"),
    );
    let forbidden = run(&env, &COMMENT).await;
    assert_eq!(
        forbidden.error_line(),
        format!(
            "error: POST /repos/{REPO}/issues/7/comments: 403 Forbidden (Resource not accessible by integration) — the token lacks permission `pull-requests: write (or issues: write)` for this endpoint; grant it in the workflow's `permissions:` (or the token's scopes)"
        )
    );

    // 404: a PR the repository does not have.
    let missing = run(&env, &comment_args("999", "pending", &[])).await;
    assert_eq!(
        missing.error_line(),
        format!(
            "error: GET /repos/{REPO}/issues/999/comments: 404 Not Found — the repository or pull request does not exist, or the token cannot see it; check --repo, the number/id, and the token's repository access"
        )
    );
    let other_repo = run(
        &env,
        &[
            "deployment",
            "status",
            "--repo",
            "acme/other",
            "--id",
            "1",
            "--state",
            "success",
        ],
    )
    .await;
    assert!(
        other_repo
            .error_line()
            .contains("404 Not Found — the repository or deployment id does not exist")
    );

    // 422 with GitHub's message and errors.
    fake.inject(
        Fault::validation_failed(
            "Validation Failed",
            json!([{"resource": "DeploymentStatus", "field": "environment_url", "code": "invalid",
                    "message": "environment_url must be an http(s) URL"}]),
        )
        .on("POST", "/statuses"),
    );
    let created = run(&env, &deployment_create_args("7", &[])).await;
    let id = created.out.trim().to_string();
    let invalid = run(
        &env,
        &deployment_status_args(
            &id,
            "success",
            &["--environment-url", "https://7.pr.example.com"],
        ),
    )
    .await;
    assert_eq!(
        invalid.error_line(),
        format!(
            "error: POST /repos/{REPO}/deployments/{id}/statuses: 422 validation failed: Validation Failed; errors: DeploymentStatus.environment_url invalid: environment_url must be an http(s) URL"
        )
    );
    for run in [&unauthorized, &forbidden, &missing, &invalid] {
        assert_eq!(run.exit_code(), 1);
        assert_eq!(run.error_line().lines().count(), 1);
    }
    fake.assert_no_violations();
}

/// The token (and the approver token) never appear in stdout, stderr, errors or logs,
/// on success and failure paths, even with trace logging.
#[tokio::test]
async fn canary_tokens_never_appear_in_any_output() {
    const CANARY: &str = "ghp_CANARY0123456789abcdefCANARY";
    const APPROVER_CANARY: &str = "ghs_APPROVERCANARY9876543210";
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    fake.add_pull(8, "mallory", SHA);
    fake.add_token(CANARY, "github-actions[bot]");
    fake.add_token(APPROVER_CANARY, "release-bot");
    fake.add_pending_environment(1, 5, "preview", 0, &["release-bot"]);
    let base = fake.base_url();
    let vars = [
        ("GITHUB_API_URL", base.as_str()),
        ("GITHUB_TOKEN", CANARY),
        ("PREVIEW_APPROVER_TOKEN", APPROVER_CANARY),
        ("PREVIEW_LOG", "trace"),
    ];
    let attempts = ["--github-attempts", "2"];
    let mut outputs = Vec::new();
    let scenarios: Vec<(Option<Fault>, Vec<&str>)> = vec![
        (None, comment_args("7", "success", &[])),
        (
            Some(Fault::bad_credentials()),
            comment_args("7", "failure", &[]),
        ),
        (
            Some(Fault::status(403, "Resource not accessible by integration")),
            deployment_deactivate_args("preview-pr-7", &[]),
        ),
        (
            Some(Fault::rate_limited(now() + 3_000)),
            comment_args("7", "pending", &[]),
        ),
        (
            Some(Fault::server_error(500).times(5)),
            comment_args("7", "pending", &[]),
        ),
        (
            Some(Fault::validation_failed(
                "Validation Failed",
                json!([{"code": "invalid", "field": "ref"}]),
            )),
            deployment_create_args("7", &[]),
        ),
        (None, comment_args("404", "pending", &[])),
        (
            None,
            vec![
                "gate",
                "--repo",
                REPO,
                "--pr",
                "7",
                "--run-id",
                "1",
                "--sha",
                SHA,
                "--triggering-actor",
                "alice",
                "--poll-interval",
                "10ms",
            ],
        ),
        (
            None,
            vec![
                "gate",
                "--repo",
                REPO,
                "--pr",
                "8",
                "--run-id",
                "1",
                "--sha",
                SHA,
                "--triggering-actor",
                "mallory",
                "--json",
            ],
        ),
        (
            None,
            vec!["verify-head", "--repo", REPO, "--pr", "7", "--sha", SHA],
        ),
        (
            Some(Fault::server_error(502).times(2)),
            vec!["verify-head", "--repo", REPO, "--pr", "7", "--sha", SHA],
        ),
        (
            None,
            vec![
                "--json",
                "deployment",
                "create",
                "--repo",
                REPO,
                "--pr",
                "7",
                "--sha",
                SHA,
            ],
        ),
    ];
    for (fault, args) in scenarios {
        if let Some(fault) = fault {
            fake.inject(fault);
        }
        let mut full = attempts.to_vec();
        full.extend(args);
        let process = run_binary(&vars, &full).await;
        outputs.push((full.join(" "), process));
    }
    let mut failures = 0;
    for (args, process) in &outputs {
        for secret in [CANARY, APPROVER_CANARY, "CANARY"] {
            assert!(
                !process.out.contains(secret),
                "stdout of `{args}` leaks {secret}:\n{}",
                process.out
            );
            assert!(
                !process.err.contains(secret),
                "stderr of `{args}` leaks {secret}:\n{}",
                process.err
            );
        }
        if process.code != 0 {
            failures += 1;
            assert!(process.err.contains("error: "), "{args}: {}", process.err);
        }
    }
    assert_eq!(failures, 7, "the failure paths were exercised");
    // The tokens were really used.
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.token.as_deref() == Some(CANARY)));
    assert!(
        requests
            .iter()
            .any(|r| r.token.as_deref() == Some(APPROVER_CANARY))
    );
    fake.assert_no_violations();
}
