//! `preview deployment …` against the OpenAPI-validating fake.

mod common;

use common::{
    REPO, SHA, deployment_create_args, deployment_deactivate_args, deployment_status_args, env_for,
    fake, run,
};

#[tokio::test]
async fn lifecycle_in_progress_success_inactive() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let env = env_for(&fake);

    let created = run(&env, &deployment_create_args("7", &[])).await;
    assert!(created.result.is_ok(), "{}", created.error_line());
    let id: u64 = created
        .out
        .trim()
        .parse()
        .expect("create prints only the id");

    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    let deployment = &deployments[0];
    assert_eq!(deployment.id, id);
    assert_eq!(deployment.environment, "preview-pr-7");
    assert_eq!(deployment.sha, SHA);
    assert!(deployment.transient_environment);
    assert!(!deployment.production_environment);
    assert_eq!(deployment.payload["pr_number"], 7);
    let create_request = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .and_then(|r| r.body)
        .expect("create body");
    assert_eq!(create_request["auto_merge"], false);
    assert_eq!(create_request["required_contexts"], serde_json::json!([]));

    let id_text = id.to_string();
    let progress = run(
        &env,
        &deployment_status_args(
            &id_text,
            "in_progress",
            &["--log-url", "https://github.com/acme/site/actions/runs/5"],
        ),
    )
    .await;
    assert!(progress.result.is_ok(), "{}", progress.error_line());
    let success = run(
        &env,
        &deployment_status_args(
            &id_text,
            "success",
            &["--environment-url", "https://7.pr.example.com", "--json"],
        ),
    )
    .await;
    assert!(success.result.is_ok(), "{}", success.error_line());
    assert_eq!(success.json()["state"], "success");
    assert_eq!(
        success.json()["environment_url"],
        "https://7.pr.example.com"
    );

    let statuses = fake.statuses(id);
    assert_eq!(
        statuses
            .iter()
            .map(|s| s.state.as_str())
            .collect::<Vec<_>>(),
        vec!["in_progress", "success"]
    );
    assert_eq!(statuses[1].environment_url, "https://7.pr.example.com");
    assert_eq!(
        statuses[0].log_url,
        "https://github.com/acme/site/actions/runs/5"
    );

    let deactivated = run(&env, &deployment_deactivate_args("preview-pr-7", &[])).await;
    assert!(deactivated.result.is_ok(), "{}", deactivated.error_line());
    assert_eq!(
        deactivated.out.trim(),
        "deployment deactivate: preview-pr-7: marked 1 inactive (0 already inactive)"
    );
    assert_eq!(
        fake.statuses(id).last().map(|s| s.state.clone()).as_deref(),
        Some("inactive")
    );

    // Idempotent: a second cleanup adds nothing.
    let again = run(
        &env,
        &deployment_deactivate_args("preview-pr-7", &["--json"]),
    )
    .await;
    assert_eq!(again.json()["deactivated"], serde_json::json!([]));
    assert_eq!(again.json()["already_inactive"], serde_json::json!([id]));
    assert_eq!(fake.statuses(id).len(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn deactivate_covers_every_deployment_across_pages() {
    let fake = fake().await;
    fake.add_pull(8, "alice", SHA);
    let env = env_for(&fake);
    let mut ids = Vec::new();
    // More than one page of 100.
    for _ in 0..105 {
        let created = run(&env, &deployment_create_args("8", &["--json"])).await;
        ids.push(created.json()["id"].as_u64().expect("id"));
    }
    // Another environment is left alone.
    let other = run(&env, &deployment_create_args("9", &[])).await;
    let other_id: u64 = other.out.trim().parse().expect("id");

    let deactivated = run(
        &env,
        &deployment_deactivate_args("preview-pr-8", &["--json"]),
    )
    .await;
    assert!(deactivated.result.is_ok(), "{}", deactivated.error_line());
    let mut done: Vec<u64> = deactivated.json()["deactivated"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    done.sort_unstable();
    assert_eq!(done, ids);
    assert!(fake.statuses(other_id).is_empty());
    let list_pages = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/deployments"))
        .count();
    assert_eq!(list_pages, 2);
    fake.assert_no_violations();
}

#[tokio::test]
async fn production_deployment_and_bad_input() {
    let fake = fake().await;
    let env = env_for(&fake);
    let created = run(
        &env,
        &[
            "deployment",
            "create",
            "--repo",
            REPO,
            "--environment",
            "production",
            "--production",
            "--sha",
            SHA,
            "--json",
        ],
    )
    .await;
    assert!(created.result.is_ok(), "{}", created.error_line());
    let deployment = &fake.deployments()[0];
    assert!(deployment.production_environment && !deployment.transient_environment);

    let neither = run(
        &env,
        &["deployment", "create", "--repo", REPO, "--sha", SHA],
    )
    .await;
    assert_eq!(neither.exit_code(), 2);
    assert!(neither.error_line().contains("needs --pr N"));

    // A long description is cut to GitHub's 140 characters (the fake validates maxLength).
    let id = created.json()["id"].as_u64().expect("id").to_string();
    let long = "x".repeat(400);
    let status = run(
        &env,
        &deployment_status_args(&id, "failure", &["--description", &long]),
    )
    .await;
    assert!(status.result.is_ok(), "{}", status.error_line());
    fake.assert_no_violations();
}

#[test]
fn short_shas_and_tags_are_rejected_at_parse_time() {
    use clap::Parser;
    for args in [
        vec![
            "preview",
            "deployment",
            "create",
            "--repo",
            REPO,
            "--pr",
            "1",
            "--sha",
            "abc1234",
        ],
        vec![
            "preview",
            "deployment",
            "status",
            "--repo",
            REPO,
            "--id",
            "1",
            "--state",
            "done",
        ],
        vec![
            "preview",
            "comment",
            "--repo",
            REPO,
            "--pr",
            "1",
            "--status",
            "success",
            "--web-digest",
            "ghcr.io/acme/web:latest",
        ],
        vec![
            "preview",
            "comment",
            "--repo",
            "not-a-slug",
            "--pr",
            "1",
            "--status",
            "success",
        ],
        vec![
            "preview", "comment", "--repo", REPO, "--pr", "0", "--status", "success",
        ],
    ] {
        let error = preview_github::Cli::try_parse_from(&args).expect_err("rejected");
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }
}
