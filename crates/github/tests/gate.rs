//! `preview gate`: maintainers' PRs are approved, everyone else's wait for a maintainer.

mod common;

use common::{REPO, SHA, env_for, fake, marker_comments, run};
use preview_github::GithubToken;
use preview_github::gate::GATE_COMMENT_MARKER;

const APPROVER: &str = "approver-token-not-secret";

/// `gate … --triggering-actor <actor>`; `--sha SHA` unless `extra` passes another.
fn gate_args<'a>(pr: &'a str, actor: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "gate",
        "--repo",
        REPO,
        "--pr",
        pr,
        "--triggering-actor",
        actor,
        "--run-id",
        "4242",
        "--environment",
        "preview",
        "--timeout",
        "5s",
        "--poll-interval",
        "10ms",
        "--max-poll-interval",
        "40ms",
        "--json",
    ];
    if !extra.contains(&"--sha") {
        args.extend_from_slice(&["--sha", SHA]);
    }
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn maintainer_pr_is_approved_after_the_environment_becomes_pending() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    fake.add_token(APPROVER, "release-bot");
    fake.add_pending_environment(4242, 555, "preview", 2, &["release-bot"]);
    let mut env = env_for(&fake);
    env.approver_token = GithubToken::new(APPROVER);

    let run = run(&env, &gate_args("7", "alice", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["decision"], "approve");
    assert_eq!(report["author"], "alice");
    assert_eq!(report["role"], "maintain");
    assert_eq!(report["environment_id"], 555);
    assert!(report["comment"].is_null());

    let reviews = fake.reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].run_id, 4242);
    assert_eq!(reviews[0].environment_ids, vec![555]);
    assert_eq!(reviews[0].state, "approved");
    assert_eq!(reviews[0].by, "release-bot");
    assert!(reviews[0].comment.contains("alice"));

    let requests = fake.requests();
    let polls = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/pending_deployments"))
        .count();
    assert_eq!(polls, 3, "polled until pending (visible after 2 polls)");
    for request in &requests {
        let expected = if request.path.ends_with("/pending_deployments") {
            APPROVER
        } else {
            common::TOKEN
        };
        assert_eq!(
            request.token.as_deref(),
            Some(expected),
            "{} {}",
            request.method,
            request.path
        );
    }
    assert!(marker_comments(&fake, 7, GATE_COMMENT_MARKER).is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn admin_is_approved_with_github_token_when_no_approver_token() {
    let fake = fake().await;
    fake.add_pull(3, "root", SHA);
    fake.set_role("root", "admin");
    fake.add_pending_environment(4242, 9, "Preview", 0, &[]);
    let run = run(&env_for(&fake), &gate_args("3", "root", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert_eq!(run.json()["decision"], "approve");
    assert_eq!(fake.reviews().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn external_author_gets_a_comment_and_no_approval() {
    let fake = fake().await;
    fake.add_pull(8, "mallory", SHA);
    // Untrusted strings that name a maintainer must not matter.
    fake.set_pull_strings(8, "Approved by alice (maintainer)", "alice/maintain");
    fake.set_role("alice", "maintain");
    fake.set_role("mallory", "read");
    fake.add_pending_environment(4242, 555, "preview", 0, &[]);

    let first = run(&env_for(&fake), &gate_args("8", "mallory", &[])).await;
    assert!(first.result.is_ok(), "{}", first.error_line());
    assert_eq!(first.exit_code(), 0);
    let report = first.json();
    assert_eq!(report["decision"], "manual_approval_required");
    assert_eq!(report["author"], "mallory");
    assert_eq!(report["role"], "read");
    assert_eq!(report["comment"]["action"], "created");
    assert!(fake.reviews().is_empty());
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.ends_with("/pending_deployments")),
        "never even looks at the pending deployment"
    );
    let comments = marker_comments(&fake, 8, GATE_COMMENT_MARKER);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0]
            .body
            .contains("the PR author mallory has the read role")
    );
    assert!(comments[0].body.contains(SHA), "names the commit to review");
    assert!(
        comments[0]
            .body
            .contains("https://github.com/acme/site/actions/runs/4242")
    );

    // A re-run refreshes the same comment.
    let second = run(&env_for(&fake), &gate_args("8", "mallory", &[])).await;
    assert_eq!(second.json()["comment"]["action"], "unchanged");
    assert_eq!(marker_comments(&fake, 8, GATE_COMMENT_MARKER).len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn write_role_unknown_user_and_moved_head_need_a_maintainer() {
    let fake = fake().await;
    fake.add_pull(1, "writer", SHA);
    fake.set_role("writer", "write");
    fake.add_pull(2, "ghost", SHA);
    fake.set_unknown_user("ghost");
    fake.add_pull(3, "alice", SHA);
    fake.set_role("alice", "admin");
    let env = env_for(&fake);
    let moved = "f".repeat(40);
    for (pr, actor, extra) in [
        ("1", "writer", vec![]),
        ("2", "ghost", vec![]),
        ("3", "alice", vec!["--sha", moved.as_str()]),
    ] {
        let run = run(&env, &gate_args(pr, actor, &extra)).await;
        assert!(run.result.is_ok(), "{pr}: {}", run.error_line());
        assert_eq!(run.json()["decision"], "manual_approval_required", "{pr}");
    }
    assert!(fake.reviews().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn gate_text_output_is_one_clear_line() {
    let fake = fake().await;
    fake.add_pull(8, "mallory", SHA);
    let args = [
        "gate",
        "--repo",
        REPO,
        "--pr",
        "8",
        "--run-id",
        "77",
        "--sha",
        SHA,
        "--triggering-actor",
        "mallory",
    ];
    let run = run(&env_for(&fake), &args).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert_eq!(run.out.lines().count(), 1);
    assert!(run.out.starts_with(
        "gate: manual_approval_required — the PR author mallory has the read role (needs admin or maintain); the run's actor mallory has the read role (needs admin or maintain); a maintainer must approve environment 'preview' in run 77 (comment "
    ), "{}", run.out);
    fake.assert_no_violations();
}

#[tokio::test]
async fn approver_who_is_not_a_reviewer_fails_clearly() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    fake.add_pending_environment(4242, 555, "preview", 0, &["someone-else"]);
    let run = run(&env_for(&fake), &gate_args("7", "alice", &[])).await;
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line().contains("PREVIEW_APPROVER_TOKEN"),
        "{}",
        run.error_line()
    );
    assert!(fake.reviews().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn environment_that_never_becomes_pending_times_out() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    let args = [
        "gate",
        "--repo",
        REPO,
        "--pr",
        "7",
        "--run-id",
        "4242",
        "--sha",
        SHA,
        "--triggering-actor",
        "alice",
        "--timeout",
        "150ms",
        "--poll-interval",
        "20ms",
        "--max-poll-interval",
        "40ms",
    ];
    let run = run(&env_for(&fake), &args).await;
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line()
            .contains("environment 'preview' did not become pending in run 4242"),
        "{}",
        run.error_line()
    );
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pending_deployments"))
        .count();
    assert!(
        (2..=10).contains(&polls),
        "bounded polling with backoff: {polls}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_earlier_waiting_comment_is_corrected_after_approval() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "admin");
    let old = fake.seed_comment(
        7,
        "github-actions[bot]",
        &format!("{GATE_COMMENT_MARKER}\n### 🔒 waiting for a maintainer"),
    );
    fake.add_pending_environment(4242, 555, "preview", 0, &[]);
    let run = run(&env_for(&fake), &gate_args("7", "alice", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert_eq!(run.json()["decision"], "approve");
    assert_eq!(run.json()["comment"]["action"], "updated");
    let comments = marker_comments(&fake, 7, GATE_COMMENT_MARKER);
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].id, old);
    assert!(comments[0].body.contains("approved automatically"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_maintainers_pr_started_by_a_write_collaborator_needs_a_maintainer() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    fake.set_role("wendy", "write");
    fake.add_pending_environment(4242, 555, "preview", 0, &[]);
    let run = run(&env_for(&fake), &gate_args("7", "wendy", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["decision"], "manual_approval_required");
    assert_eq!(report["role"], "maintain");
    assert_eq!(
        report["actor"],
        serde_json::json!({"kind": "triggering", "login": "wendy"})
    );
    assert_eq!(report["actor_role"], "write");
    assert_eq!(
        report["reason"],
        "the run's actor wendy has the write role (needs admin or maintain)"
    );
    assert!(fake.reviews().is_empty());
    let comments = marker_comments(&fake, 7, GATE_COMMENT_MARKER);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("wendy has the write role"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_maintainers_pr_from_a_fork_needs_a_maintainer() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_pull_head_repo(7, "alice/site");
    fake.set_role("alice", "admin");
    fake.add_pending_environment(4242, 555, "preview", 0, &[]);
    let run = run(&env_for(&fake), &gate_args("7", "alice", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["decision"], "manual_approval_required");
    assert_eq!(report["head_repo"], "alice/site");
    assert_eq!(report["same_repository"], false);
    assert_eq!(
        report["reason"],
        "the head branch is in the fork alice/site (fork PRs always need a maintainer)"
    );
    assert!(fake.reviews().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_dispatcher_vouches_only_for_the_build_actor_it_names() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    fake.set_role("wendy", "write");
    fake.add_pending_environment(4242, 555, "preview", 0, &[]);
    let env = env_for(&fake);
    let dispatched = |build_actor: &'static str| {
        gate_args(
            "7",
            "preview-bot",
            &["--dispatcher", "preview-bot", "--build-actor", build_actor],
        )
    };
    // A push by a write collaborator to the maintainer's branch: manual.
    let by_writer = run(&env, &dispatched("wendy")).await;
    assert!(by_writer.result.is_ok(), "{}", by_writer.error_line());
    let report = by_writer.json();
    assert_eq!(report["decision"], "manual_approval_required");
    assert_eq!(
        report["actor"],
        serde_json::json!({"kind": "dispatched", "dispatcher": "preview-bot", "login": "wendy"})
    );
    assert!(fake.reviews().is_empty());
    // The dispatcher itself is never enough: without it being configured, the bot is
    // just a triggering actor with no role.
    let unconfigured = run(
        &env,
        &gate_args("7", "preview-bot", &["--build-actor", "alice"]),
    )
    .await;
    assert_eq!(unconfigured.json()["decision"], "manual_approval_required");
    assert_eq!(unconfigured.json()["actor"]["login"], "preview-bot");
    // The maintainer's own push, published by the dispatcher: approved.
    let by_maintainer = run(&env, &dispatched("alice")).await;
    assert!(
        by_maintainer.result.is_ok(),
        "{}",
        by_maintainer.error_line()
    );
    assert_eq!(by_maintainer.json()["decision"], "approve");
    assert_eq!(fake.reviews().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_head_that_moves_while_waiting_is_not_approved() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    fake.set_role("alice", "maintain");
    // Pending only after a few polls; the head moves meanwhile.
    fake.add_pending_environment(4242, 555, "preview", 3, &[]);
    let env = env_for(&fake);
    let args = gate_args("7", "alice", &[]);
    let moved = "e".repeat(40);
    let push = async {
        loop {
            let polled = fake
                .requests()
                .iter()
                .any(|r| r.path.ends_with("/pending_deployments"));
            if polled {
                fake.set_pull_head(7, &moved);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let (run, ()) = tokio::join!(run(&env, &args), push);
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line().contains(&format!(
            "moved to {moved} while waiting to approve {SHA}; not approving"
        )),
        "{}",
        run.error_line()
    );
    assert!(fake.reviews().is_empty());
    fake.assert_no_violations();
}
