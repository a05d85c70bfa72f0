//! The fake itself: OpenAPI validation of requests and responses, pagination, faults.

use github_fake::{Fault, GithubFake, Spec, default_spec_path};
use serde_json::{Value, json};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

async fn fake() -> GithubFake {
    GithubFake::start().await.expect("fake starts")
}

fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .header("authorization", "Bearer t")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", "github-fake-tests")
}

/// Sends a GET with the contract headers of [`request`].
async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    request(client, reqwest::Method::GET, url)
        .send()
        .await
        .expect("send")
}

#[test]
fn official_examples_validate_except_the_documented_ones() {
    let spec = Spec::load(&default_spec_path()).expect("spec");
    let validator = spec.validator();
    let check = |example: &str, schema: Value| {
        validator.validate(&schema, spec.example(example).expect("example"))
    };
    let one = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let many = |name: &str| json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}});
    assert_eq!(
        check("issue-comment", one("issue-comment")),
        Vec::<String>::new()
    );
    assert_eq!(
        check("issue-comment-items", many("issue-comment")),
        Vec::<String>::new()
    );
    assert_eq!(
        check("deployment-simple-example", one("deployment")),
        Vec::<String>::new()
    );
    assert_eq!(
        check("deployment-status", one("deployment-status")),
        Vec::<String>::new()
    );
    // The official pull-request example lists a team without `type` (its schema requires
    // it) — the fake replaces `requested_teams` when it uses the example as a template.
    assert_eq!(
        check("pull-request", one("pull-request")),
        vec!["$.requested_teams[0]: missing required property `type`".to_string()]
    );
    // The permission example predates the required `role_name` of its user.
    assert_eq!(
        check(
            "repository-collaborator-permission-response-if-user-has-admin-permissions",
            one("repository-collaborator-permission")
        ),
        vec!["$.user: missing required property `role_name`".to_string()]
    );
}

#[tokio::test]
async fn bad_requests_are_rejected_and_recorded() {
    let fake = fake().await;
    fake.add_pull(1, "alice", SHA);
    let client = reqwest::Client::new();
    let base = fake.base_url();

    // Body without the required `body` field.
    let response = request(
        &client,
        reqwest::Method::POST,
        &format!("{base}/repos/acme/site/issues/1/comments"),
    )
    .json(&json!({"text": "hi"}))
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 422);
    let answer: Value = response.json().await.expect("json");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("missing required property `body`")
    );

    // Wrong enum value and wrong type.
    request(
        &client,
        reqwest::Method::POST,
        &format!("{base}/repos/acme/site/actions/runs/1/pending_deployments"),
    )
    .json(&json!({"environment_ids": ["x"], "state": "maybe", "comment": "c"}))
    .send()
    .await
    .expect("send");

    // Unknown query parameter and non-integer page.
    get(
        &client,
        &format!("{base}/repos/acme/site/issues/1/comments?perpage=100&page=two"),
    )
    .await;

    // Missing contract headers, and an endpoint the description does not have.
    client
        .get(format!("{base}/repos/acme/site/pulls/1"))
        .header("authorization", "Bearer t")
        .header("user-agent", "x")
        .send()
        .await
        .expect("send");
    get(&client, &format!("{base}/repos/acme/site/branches")).await;

    let violations = fake.violations().join("\n");
    for expected in [
        "POST /repos/acme/site/issues/1/comments: request: request body $: missing required property `body`",
        "request body $.environment_ids[0]: expected integer, found string",
        "request body $.state: \"maybe\" is not one of [\"approved\",\"rejected\"]",
        "query parameter `perpage` is not accepted by issues/list-comments",
        "query parameter `page`: $: expected integer, found string",
        "GET /repos/acme/site/pulls/1: Accept must be application/vnd.github+json",
        "GET /repos/acme/site/pulls/1: no X-GitHub-Api-Version header",
        "GET /repos/acme/site/branches: no such operation in the OpenAPI description",
    ] {
        assert!(
            violations.contains(expected),
            "missing `{expected}` in:\n{violations}"
        );
    }
}

#[tokio::test]
async fn responses_follow_the_description_and_paginate() {
    let fake = fake().await;
    fake.add_pull(1, "alice", SHA);
    for i in 0..45 {
        fake.seed_comment(1, "bob", &format!("c{i}"));
    }
    let client = reqwest::Client::new();
    let base = fake.base_url();
    let url = format!("{base}/repos/acme/site/issues/1/comments?per_page=20&page=2");
    let response = get(&client, &url).await;
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"]
        .to_str()
        .expect("ascii")
        .to_string();
    let page: Vec<Value> = response.json().await.expect("json");
    assert_eq!(page.len(), 20);
    assert_eq!(page[0]["body"], "c20");
    let path = format!("{base}/repos/acme/site/issues/1/comments");
    assert_eq!(
        link,
        format!(
            "<{path}?per_page=20&page=1>; rel=\"prev\", <{path}?per_page=20&page=3>; rel=\"next\", <{path}?per_page=20&page=3>; rel=\"last\", <{path}?per_page=20&page=1>; rel=\"first\""
        )
    );

    // The pull request (built from the official example), permission, pending deployments.
    fake.set_role("alice", "maintain");
    fake.add_pending_environment(5, 77, "preview", 0, &["alice"]);
    for path in [
        "/repos/acme/site/pulls/1",
        "/repos/acme/site/collaborators/alice/permission",
        "/repos/acme/site/actions/runs/5/pending_deployments",
    ] {
        let response = get(&client, &format!("{base}{path}")).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let permission: Value = get(
        &client,
        &format!("{base}/repos/acme/site/collaborators/alice/permission"),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        permission["permission"], "write",
        "maintain shows as legacy `write`"
    );
    assert_eq!(permission["role_name"], "maintain");
    fake.assert_no_violations();
}

#[tokio::test]
async fn faults_are_served_in_order_and_then_cleared() {
    let fake = fake().await;
    fake.add_pull(1, "alice", SHA);
    fake.inject(Fault::rate_limited(1_700_000_000).on("GET", "/pulls/"));
    fake.inject(Fault::server_error(502).times(2));
    let client = reqwest::Client::new();
    let url = format!("{}/repos/acme/site/pulls/1", fake.base_url());
    let mut seen = Vec::new();
    for _ in 0..4 {
        let response = get(&client, &url).await;
        seen.push((
            response.status().as_u16(),
            response
                .headers()
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (403, Some("0".into())),
            (502, Some("4999".into())),
            (502, Some("4999".into())),
            (200, Some("4999".into())),
        ]
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn missing_description_is_a_clear_error() {
    let error = GithubFake::start_with_spec(std::path::Path::new("/nonexistent/github.json"))
        .await
        .expect_err("no spec");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/github.json"), "{message}");
    assert!(message.contains("PREVIEW_GITHUB_OPENAPI"), "{message}");
}

#[tokio::test]
async fn responses_that_break_the_description_are_caught() {
    let fake = fake().await;
    fake.add_pull(1, "alice", SHA);
    // A 422 for create-comment must be a `validation-error` (message + documentation_url).
    let mut fault = Fault::status(422, "Validation Failed");
    fault.body = json!({"message": 42});
    fake.inject(fault);
    let client = reqwest::Client::new();
    let response = request(
        &client,
        reqwest::Method::POST,
        &format!("{}/repos/acme/site/issues/1/comments", fake.base_url()),
    )
    .json(&json!({"body": "hi"}))
    .send()
    .await
    .expect("send");
    assert_eq!(
        response.status(),
        500,
        "the client sees the fake's own mistake"
    );
    let violations = fake.violations().join("\n");
    assert!(
        violations.contains("response 422 body $: missing required property `documentation_url`"),
        "{violations}"
    );
    assert!(
        violations.contains("response 422 body $.message: expected string, found integer"),
        "{violations}"
    );
}

#[tokio::test]
async fn pulls_carry_head_and_base_repositories_and_their_state() {
    let fake = fake().await;
    fake.add_pull(1, "alice", SHA);
    fake.add_pull(2, "mallory", SHA);
    fake.set_pull_head_repo(2, "mallory/site");
    fake.close_pull(2, false);
    fake.add_pull(3, "alice", SHA);
    fake.close_pull(3, true);
    let client = reqwest::Client::new();
    let pull = |n: u64| {
        let url = format!("{}/repos/acme/site/pulls/{n}", fake.base_url());
        let client = client.clone();
        async move {
            let response = get(&client, &url).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let same = pull(1).await;
    assert_eq!(same["head"]["repo"]["full_name"], "acme/site");
    assert_eq!(same["head"]["repo"]["id"], same["base"]["repo"]["id"]);
    assert_eq!(same["head"]["repo"]["fork"], false);
    assert_eq!(
        (same["state"].clone(), same["merged"].clone()),
        (json!("open"), json!(false))
    );
    assert!(same["closed_at"].is_null());

    let fork = pull(2).await;
    assert_eq!(fork["head"]["repo"]["full_name"], "mallory/site");
    assert_eq!(fork["head"]["repo"]["owner"]["login"], "mallory");
    assert_eq!(fork["head"]["repo"]["fork"], true);
    assert_ne!(fork["head"]["repo"]["id"], fork["base"]["repo"]["id"]);
    assert_eq!(fork["head"]["label"], "mallory:feature-2");
    assert_eq!(
        (fork["state"].clone(), fork["merged"].clone()),
        (json!("closed"), json!(false))
    );
    assert!(fork["merged_at"].is_null() && !fork["closed_at"].is_null());

    let merged = pull(3).await;
    assert_eq!(merged["merged"], true);
    assert!(!merged["merged_at"].is_null());
    assert_eq!(merged["merged_by"]["login"], "acme");
    fake.assert_no_violations();
}
