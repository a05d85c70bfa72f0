//! `preview comment` against the OpenAPI-validating fake.

mod common;

use common::{SHA, comment_args, digest, env_for, fake, marker_comments, run};
use preview_github::comment::{MAX_COMMENT_CHARS, PR_COMMENT_MARKER};

const BOT: &str = "github-actions[bot]";

#[tokio::test]
async fn first_run_creates_one_comment() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let plan = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(plan.path(), "```diff\n+ Namespace/preview-pr-7\n```\n").expect("write plan");
    let web = digest("web", 'a');
    let api = digest("api", 'b');
    let run = run(
        &env_for(&fake),
        &comment_args(
            "7",
            "pending",
            &[
                "--sha",
                SHA,
                "--web-digest",
                &web,
                "--api-digest",
                &api,
                "--plan-file",
                plan.path().to_str().expect("utf-8 path"),
                "--message",
                "Waiting for approval.",
            ],
        ),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert!(run.out.starts_with("comment: created "), "{}", run.out);

    let ours = marker_comments(&fake, 7, PR_COMMENT_MARKER);
    assert_eq!(ours.len(), 1);
    let body = &ours[0].body;
    assert_eq!(ours[0].author, BOT);
    assert!(body.contains("⏳"));
    assert!(body.contains(SHA));
    assert!(body.contains(&web) && body.contains(&api));
    assert!(body.contains("<details>") && body.contains("+ Namespace/preview-pr-7"));

    let requests = fake.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r.method.as_str())
            .collect::<Vec<_>>(),
        vec!["GET", "POST"]
    );
    assert!(
        requests[0]
            .query
            .contains(&("per_page".into(), "100".into()))
    );
    for request in &requests {
        assert_eq!(
            request.accept.as_deref(),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.api_version.as_deref(), Some("2022-11-28"));
        assert!(
            request
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("preview-envs-cli/"))
        );
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn rerun_updates_in_place_and_identical_rerun_sends_nothing() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let env = env_for(&fake);
    let pending = comment_args("7", "pending", &["--json"]);
    let first = run(&env, &pending).await;
    assert!(first.result.is_ok(), "{}", first.error_line());
    let first_id = first.json()["comment_id"].as_u64().expect("id");
    assert_eq!(first.json()["action"], "created");

    let success = comment_args(
        "7",
        "success",
        &[
            "--web-url",
            "https://7.pr.example.com",
            "--api-url",
            "https://7.pr-api.example.com",
            "--json",
        ],
    );
    let second = run(&env, &success).await;
    assert!(second.result.is_ok(), "{}", second.error_line());
    assert_eq!(second.json()["action"], "updated");
    assert_eq!(second.json()["comment_id"].as_u64(), Some(first_id));

    let ours = marker_comments(&fake, 7, PR_COMMENT_MARKER);
    assert_eq!(ours.len(), 1, "never duplicated");
    assert_eq!(ours[0].id, first_id);
    assert!(ours[0].body.contains("✅") && ours[0].body.contains("https://7.pr.example.com"));
    assert!(!ours[0].body.contains("⏳"));

    fake.clear_requests();
    let third = run(&env, &success).await;
    assert_eq!(third.json()["action"], "unchanged");
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "no write for an identical body"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn duplicate_markers_keep_newest_and_delete_the_rest() {
    let fake = fake().await;
    fake.add_pull(9, "alice", SHA);
    let oldest = fake.seed_comment(9, BOT, &format!("{PR_COMMENT_MARKER}\nold 1"));
    fake.seed_comment(9, "bob", "LGTM");
    let older = fake.seed_comment(9, BOT, &format!("{PR_COMMENT_MARKER}\nold 2"));
    let stranger = fake.seed_comment(9, "mallory", &format!("{PR_COMMENT_MARKER}\nnot ours"));
    let newest = fake.seed_comment(9, BOT, &format!("{PR_COMMENT_MARKER}\nold 3"));

    let run = run(
        &env_for(&fake),
        &comment_args("9", "failure", &["--message", "boom"]),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert!(
        run.out.contains(&format!("updated {newest}")),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains(&format!("deleted duplicates {oldest}, {older}")),
        "{}",
        run.out
    );

    let remaining: Vec<u64> = fake.comments(9).iter().map(|c| c.id).collect();
    assert!(!remaining.contains(&oldest) && !remaining.contains(&older));
    assert!(
        remaining.contains(&stranger),
        "another author's comment is never touched"
    );
    let ours: Vec<_> = marker_comments(&fake, 9, PR_COMMENT_MARKER)
        .into_iter()
        .filter(|c| c.author == BOT)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id, newest);
    assert!(ours[0].body.contains("❌") && ours[0].body.contains("boom"));
    let stranger_body = fake
        .comments(9)
        .into_iter()
        .find(|c| c.id == stranger)
        .expect("kept");
    assert!(stranger_body.body.ends_with("not ours"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn pagination_finds_the_marker_on_page_two() {
    let fake = fake().await;
    fake.add_pull(11, "alice", SHA);
    for i in 0..120 {
        fake.seed_comment(11, "reviewer", &format!("comment {i}"));
    }
    let ours = fake.seed_comment(11, BOT, &format!("{PR_COMMENT_MARKER}\nold"));
    for i in 0..30 {
        fake.seed_comment(11, "reviewer", &format!("late comment {i}"));
    }

    let run = run(&env_for(&fake), &comment_args("11", "success", &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    assert!(run.out.contains(&format!("updated {ours}")), "{}", run.out);
    assert_eq!(marker_comments(&fake, 11, PR_COMMENT_MARKER).len(), 1);
    assert_eq!(fake.comments(11).len(), 151);

    let requests = fake.requests();
    let gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(gets.len(), 2, "two pages of 100");
    assert!(gets[1].query.contains(&("page".into(), "2".into())));
    assert!(gets[1].query.contains(&("per_page".into(), "100".into())));
    assert_eq!(requests.last().map(|r| r.method.as_str()), Some("PATCH"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn huge_plans_are_truncated_to_what_github_accepts() {
    let fake = fake().await;
    fake.add_pull(12, "alice", SHA);
    let plan = tempfile::NamedTempFile::new().expect("temp file");
    let line = "+ ConfigMap/preview-pr-12/some-generated-object-with-a-long-name\n";
    std::fs::write(plan.path(), format!("```diff\n{}```\n", line.repeat(3_000))).expect("write");
    let run = run(
        &env_for(&fake),
        &comment_args(
            "12",
            "pending",
            &["--plan-file", plan.path().to_str().expect("utf-8 path")],
        ),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let ours = marker_comments(&fake, 12, PR_COMMENT_MARKER);
    assert_eq!(ours.len(), 1);
    assert!(ours[0].body.chars().count() <= MAX_COMMENT_CHARS);
    assert!(ours[0].body.contains("Plan truncated"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn unreadable_plan_file_fails_before_any_request() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let run = run(
        &env_for(&fake),
        &comment_args("7", "pending", &["--plan-file", "/nonexistent/plan.md"]),
    )
    .await;
    assert_eq!(run.exit_code(), 2);
    assert!(
        run.error_line()
            .contains("cannot read --plan-file /nonexistent/plan.md")
    );
    assert!(fake.requests().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn if_exists_skips_prs_without_a_preview_comment() {
    let fake = fake().await;
    fake.add_pull(20, "alice", SHA);
    let env = env_for(&fake);
    let args = comment_args("20", "destroyed", &["--if-exists"]);
    let skipped = run(&env, &args).await;
    assert!(skipped.result.is_ok(), "{}", skipped.error_line());
    assert!(
        skipped.out.starts_with("comment: skipped"),
        "{}",
        skipped.out
    );
    assert!(fake.comments(20).is_empty());
    assert!(fake.requests().iter().all(|r| r.method == "GET"));

    let created = run(&env, &comment_args("20", "success", &[])).await;
    assert!(created.result.is_ok());
    let destroyed = run(&env, &args).await;
    assert!(
        destroyed.out.starts_with("comment: updated"),
        "{}",
        destroyed.out
    );
    assert!(
        marker_comments(&fake, 20, PR_COMMENT_MARKER)[0]
            .body
            .contains("🧹")
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_comment_names_the_plan_id_applied_and_refuses_a_malformed_one() {
    let fake = fake().await;
    fake.add_pull(8, "alice", SHA);
    let id = format!("sha256:{}", "d".repeat(64));
    let run = run(
        &env_for(&fake),
        &comment_args("8", "success", &["--sha", SHA, "--plan-id", &id]),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let ours = marker_comments(&fake, 8, PR_COMMENT_MARKER);
    assert_eq!(ours.len(), 1);
    assert!(
        ours[0]
            .body
            .contains(&format!("| 🧾 Plan applied | `{id}` |")),
        "{}",
        ours[0].body
    );
    fake.assert_no_violations();

    // A value that is not a plan id never reaches GitHub (it could carry Markdown).
    let parsed = <preview_github::Cli as clap::Parser>::try_parse_from([
        "preview",
        "comment",
        "--repo",
        "o/r",
        "--pr",
        "8",
        "--status",
        "success",
        "--plan-id",
        "sha256:abc` [x](http://evil)",
    ]);
    let err = parsed.expect_err("a malformed plan id is refused");
    assert!(err.to_string().contains("is not a plan id"), "{err}");
}

#[tokio::test]
async fn a_failure_file_adds_the_digests_collapsed_and_an_empty_one_nothing() {
    let fake = fake().await;
    fake.add_pull(9, "alice", SHA);
    let doc = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        doc.path(),
        r#"{"stack": "preview-pr-9", "failed": [{"resource": "Deployment preview-pr-9/web",
            "error": "Deployment preview-pr-9/web: failed",
            "failure": {"resource": "Deployment preview-pr-9/web",
                        "reason": "pod web-1 container web: CrashLoopBackOff (3 restarts)",
                        "containers": [{"pod": "web-1", "container": "web", "restarts": 3,
                                        "state": "waiting: CrashLoopBackOff",
                                        "lastTermination": {"reason": "Error", "exitCode": 3},
                                        "log": ["fatal: js-config unreadable"]}]}}],
            "skipped": [], "done": 3}"#,
    )
    .expect("write");
    let path = doc.path().to_str().expect("utf-8 path");
    let run1 = run(
        &env_for(&fake),
        &comment_args("9", "failure", &["--failure-file", path]),
    )
    .await;
    assert!(run1.result.is_ok(), "{}", run1.error_line());
    let ours = marker_comments(&fake, 9, PR_COMMENT_MARKER);
    let body = &ours[0].body;
    assert!(
        body.contains("<summary>🔎 Why Deployment preview-pr-9/web failed</summary>"),
        "{body}"
    );
    assert!(body.contains("    | fatal: js-config unreadable"), "{body}");
    assert!(
        body.contains("last termination: exit code 3 (Error)"),
        "{body}"
    );

    std::fs::write(doc.path(), "").expect("truncate");
    let run2 = run(
        &env_for(&fake),
        &comment_args("9", "failure", &["--failure-file", path]),
    )
    .await;
    assert!(run2.result.is_ok(), "{}", run2.error_line());
    let body = &marker_comments(&fake, 9, PR_COMMENT_MARKER)[0].body;
    assert!(!body.contains("🔎"), "{body}");

    std::fs::write(doc.path(), "not json").expect("write");
    let run3 = run(
        &env_for(&fake),
        &comment_args("9", "failure", &["--failure-file", path]),
    )
    .await;
    assert!(run3.result.is_err());
    assert!(
        run3.error_line().contains("--failure-file"),
        "{}",
        run3.error_line()
    );
    fake.assert_no_violations();
}

/// The body of the one marker comment on `pr` after `preview comment` with `extra`.
async fn body_with(pr: u64, extra: &[&str]) -> String {
    let fake = fake().await;
    fake.add_pull(pr, "alice", SHA);
    let run = run(
        &env_for(&fake),
        &comment_args(&pr.to_string(), "success", extra),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let ours = marker_comments(&fake, pr, PR_COMMENT_MARKER);
    assert_eq!(ours.len(), 1);
    fake.assert_no_violations();
    ours[0].body.clone()
}

#[tokio::test]
async fn an_outputs_file_shows_every_url_and_image_of_any_app() {
    let (web, api, worker) = (
        digest("web", 'a'),
        digest("api", 'b'),
        digest("worker", 'c'),
    );
    let outputs = tempfile::NamedTempFile::new().expect("temp file");
    let path = outputs.path().to_str().expect("utf-8 path");

    // Aphiria's outputs, as `stacks outputs --json` prints them, render exactly as
    // the old flags do; so do `--url`/`--image` with web and api.
    let aphiria = serde_json::json!({
        "apiImage": api, "apiUrl": "https://10.pr-api.example.com",
        "databaseName": "aphiria_pr_10", "namespace": "preview-pr-10",
        "webImage": web, "webUrl": "https://10.pr.example.com",
    });
    std::fs::write(outputs.path(), aphiria.to_string()).expect("write");
    let old = body_with(
        10,
        &[
            "--sha",
            SHA,
            "--web-url",
            "https://10.pr.example.com",
            "--api-url",
            "https://10.pr-api.example.com",
            "--web-digest",
            &web,
            "--api-digest",
            &api,
        ],
    )
    .await;
    assert!(
        old.contains("| 🌐 Web | <https://10.pr.example.com> |"),
        "{old}"
    );
    assert_eq!(
        body_with(10, &["--sha", SHA, "--outputs-file", path]).await,
        old
    );
    let web_url = "web=https://10.pr.example.com";
    let api_url = "api=https://10.pr-api.example.com";
    let (web_image, api_image) = (format!("web={web}"), format!("api={api}"));
    let flags = [
        "--sha", SHA, "--url", api_url, "--url", web_url, "--image", &api_image, "--image",
        &web_image,
    ];
    assert_eq!(body_with(10, &flags).await, old);

    // The node-redis example: route `app`, images `api` and `worker`.
    let node = serde_json::json!({
        "apiImage": api, "appUrl": "https://11.pr.example.com",
        "namespace": "preview-pr-11", "workerImage": worker,
    });
    std::fs::write(outputs.path(), node.to_string()).expect("write");
    let body = body_with(11, &["--outputs-file", path]).await;
    for row in [
        "| 🌐 app | <https://11.pr.example.com> |".to_owned(),
        format!("| 📦 API image | `{api}` |"),
        format!("| 📦 worker image | `{worker}` |"),
    ] {
        assert!(body.contains(&row), "{row}: {body}");
    }
    assert!(
        !body.contains("preview-pr-11"),
        "only URLs and images: {body}"
    );

    // A flag wins over the file; a bad file is refused before any request.
    let other = format!("worker={}", digest("worker", 'd'));
    let body = body_with(11, &["--outputs-file", path, "--image", &other]).await;
    assert!(
        body.contains(&digest("worker", 'd')) && !body.contains(&worker),
        "{body}"
    );
    std::fs::write(outputs.path(), r#"{"appUrl": "javascript:alert(1)"}"#).expect("write");
    let fake = fake().await;
    fake.add_pull(12, "alice", SHA);
    let run = run(
        &env_for(&fake),
        &comment_args("12", "success", &["--outputs-file", path]),
    )
    .await;
    let err = run.error_line();
    assert!(
        run.result.is_err() && err.contains("output `appUrl`") && err.contains("--outputs-file"),
        "{err}"
    );
    assert!(fake.requests().is_empty(), "nothing was sent");
}
