//! `preview verify-head`: a deploy goes ahead only while the PR head is the commit its
//! images were built from.

mod common;

use common::{REPO, SHA, TOKEN, env_for, fake, run, run_binary};
use github_fake::Fault;

fn args(sha: &str) -> Vec<&str> {
    vec!["verify-head", "--repo", REPO, "--pr", "7", "--sha", sha]
}

#[tokio::test]
async fn the_built_commit_at_the_head_passes() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let upper = SHA.to_ascii_uppercase();
    let text = run(&env_for(&fake), &args(&upper)).await;
    assert!(text.result.is_ok(), "{}", text.error_line());
    assert_eq!(
        text.out.trim(),
        format!("verify-head: {REPO}#7 is open at {SHA}, the commit the images were built from")
    );
    let mut json_args = vec!["--json"];
    json_args.extend(args(SHA));
    let json = run(&env_for(&fake), &json_args).await;
    assert_eq!(
        json.json(),
        serde_json::json!({"repo": REPO, "pr": 7, "sha": SHA, "state": "open"})
    );
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_moved_head_fails_naming_both_commits() {
    let fake = fake().await;
    let newer = "b".repeat(40);
    fake.add_pull(7, "alice", &newer);
    let run = run(&env_for(&fake), &args(SHA)).await;
    assert_eq!(run.exit_code(), 1);
    assert_eq!(
        run.error_line(),
        format!(
            "error: verify-head: the head of pull request {REPO}#7 is {newer}, but the images were built from {SHA}; refusing to deploy them (the newer push starts its own build and deploy)"
        )
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn closed_and_merged_prs_are_not_deployed() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.close_pull(7, false);
    let closed = run(&env_for(&fake), &args(SHA)).await;
    assert_eq!(closed.exit_code(), 1);
    assert!(
        closed
            .error_line()
            .contains(&format!("pull request {REPO}#7 is closed; refusing")),
        "{}",
        closed.error_line()
    );
    fake.close_pull(7, true);
    let merged = run(&env_for(&fake), &args(SHA)).await;
    assert!(
        merged.error_line().contains("#7 is merged; refusing"),
        "{}",
        merged.error_line()
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn when_github_cannot_say_nothing_is_deployed() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.inject(Fault::server_error(503).times(100));
    let run = run(&env_for(&fake), &args(SHA)).await;
    assert_eq!(run.exit_code(), 1);
    assert!(run.error_line().contains("503"), "{}", run.error_line());
    fake.assert_no_violations();
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let fake = fake().await;
    let base = fake.base_url();
    let vars = [("GITHUB_API_URL", base.as_str()), ("GITHUB_TOKEN", TOKEN)];
    for (bad, expected) in [
        (
            vec![
                "verify-head",
                "--repo",
                REPO,
                "--pr",
                "7",
                "--sha",
                "abc1234",
            ],
            "is not a full 40-digit commit SHA",
        ),
        (
            vec!["verify-head", "--repo", REPO, "--pr", "0", "--sha", SHA],
            "is not a pull request number",
        ),
        (
            vec!["verify-head", "--repo", REPO, "--pr", "7"],
            "--sha <SHA>",
        ),
    ] {
        let process = run_binary(&vars, &bad).await;
        assert_eq!(process.code, 2, "{bad:?}: {}", process.err);
        assert!(process.err.contains(expected), "{bad:?}: {}", process.err);
    }
    // Without a token nothing is sent either.
    let process = run_binary(&[("GITHUB_API_URL", base.as_str())], &args(SHA)).await;
    assert_eq!(process.code, 2, "{}", process.err);
    assert!(fake.requests().is_empty());
}
