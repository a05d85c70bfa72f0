//! The fake itself: domain records, pagination, authentication, error shapes,
//! OpenAPI validation of requests and responses, faults.

mod support;

use digitalocean_fake::{DigitalOceanFake, Fault, Spec, default_spec_path};
use serde_json::{Value, json};

async fn fake() -> DigitalOceanFake {
    let fake = support::started().await;
    fake.add_domain("example.com");
    fake
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// The status and the JSON body (`null` when empty).
async fn send(
    fake: &DigitalOceanFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = support::send_text(fake, method, path, body).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, value)
}

async fn get(fake: &DigitalOceanFake, path: &str) -> (u16, Value) {
    send(fake, reqwest::Method::GET, path, None).await
}

async fn post(fake: &DigitalOceanFake, path: &str, body: Option<Value>) -> (u16, Value) {
    send(fake, reqwest::Method::POST, path, body).await
}

async fn delete(fake: &DigitalOceanFake, path: &str) -> (u16, Value) {
    send(fake, reqwest::Method::DELETE, path, None).await
}

async fn put(fake: &DigitalOceanFake, path: &str, body: Option<Value>) -> (u16, Value) {
    send(fake, reqwest::Method::PUT, path, body).await
}

async fn patch(fake: &DigitalOceanFake, path: &str, body: Option<Value>) -> (u16, Value) {
    send(fake, reqwest::Method::PATCH, path, body).await
}

#[test]
fn official_example_validates() {
    let spec = Spec::load(&default_spec_path()).expect("spec");
    let example = spec.example("domain_records_all").expect("example");
    let schema = spec
        .document()
        .pointer(
            "/components/responses/all_domain_records_response/content/application~1json/schema",
        )
        .expect("schema");
    assert_eq!(
        spec.validator().validate(schema, example),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn create_get_update_delete() {
    let fake = fake().await;
    let (status, created) = post(
        &fake,
        "/v2/domains/example.com/records",
        Some(json!({"type": "A", "name": "*.pr", "data": "10.0.0.1", "ttl": 300})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let record = &created["domain_record"];
    assert_eq!(record["name"], "*.pr");
    assert_eq!(record["ttl"], 300);
    assert_eq!(record["weight"], Value::Null);
    let id = record["id"].as_u64().expect("id");

    let path = format!("/v2/domains/example.com/records/{id}");
    let (status, got) = get(&fake, &path).await;
    assert_eq!((status, &got["domain_record"]), (200, record));

    let (status, patched) =
        patch(&fake, &path, Some(json!({"type": "A", "data": "10.0.0.2"}))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["domain_record"]["data"], "10.0.0.2");
    assert_eq!(patched["domain_record"]["ttl"], 300, "PATCH keeps the rest");

    let (status, put) = put(
        &fake,
        &path,
        Some(json!({"type": "A", "name": "*.pr", "data": "10.0.0.3", "ttl": 60})),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(fake.records("example.com")[0].data, "10.0.0.3");

    let (status, body) = delete(&fake, &path).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = delete(&fake, &path).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"id": "not_found", "message": "The resource you requested could not be found."})
    );
    assert!(fake.records("example.com").is_empty());
    assert_eq!(fake.writes(), 5, "POST, PATCH, PUT and two DELETEs");
    fake.assert_no_violations();
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let fake = fake().await;
    for i in 0..5 {
        fake.seed_record("example.com", "A", &format!("h{i}"), "10.0.0.1", 300);
    }
    fake.seed_record("example.com", "TXT", "h0", "hello", 300);
    fake.seed_record("example.com", "A", "@", "10.0.0.9", 300);

    let (status, all) = get(&fake, "/v2/domains/example.com/records").await;
    assert_eq!(status, 200);
    assert_eq!(all["meta"]["total"], 7);
    assert_eq!(all["links"], json!({}));

    let (_, named) = get(&fake, "/v2/domains/example.com/records?name=h0.example.com").await;
    assert_eq!(named["meta"]["total"], 2, "A and TXT at h0");
    let (_, typed) = get(
        &fake,
        "/v2/domains/example.com/records?type=A&name=h0.example.com",
    )
    .await;
    assert_eq!(typed["domain_records"][0]["type"], "A");
    assert_eq!(typed["meta"]["total"], 1);
    let (_, apex) = get(&fake, "/v2/domains/example.com/records?name=example.com").await;
    assert_eq!(apex["domain_records"][0]["name"], "@");

    let (_, page1) = get(&fake, "/v2/domains/example.com/records?type=A&per_page=2").await;
    assert_eq!(page1["domain_records"].as_array().map(Vec::len), Some(2));
    assert_eq!(page1["meta"]["total"], 6);
    let next = page1["links"]["pages"]["next"].as_str().expect("next");
    assert!(next.ends_with("?type=A&page=2&per_page=2"), "{next}");
    assert!(page1["links"]["pages"].get("prev").is_none());
    let (_, page3) = get(
        &fake,
        "/v2/domains/example.com/records?type=A&per_page=2&page=3",
    )
    .await;
    assert_eq!(page3["domain_records"].as_array().map(Vec::len), Some(2));
    assert!(page3["links"]["pages"].get("next").is_none());
    assert!(page3["links"]["pages"]["first"].is_string());
    fake.assert_no_violations();
}

#[tokio::test]
async fn authentication_and_unknown_domains() {
    let fake = fake().await;
    let url = format!("{}/v2/domains/example.com/records", fake.base_url());
    for request in [
        client().get(&url),
        client().get(&url).bearer_auth("wrong-token"),
    ] {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["id"], "unauthorized");
    }
    let (status, body) = get(&fake, "/v2/domains/other.org/records").await;
    assert_eq!((status, body["id"].as_str()), (404, Some("not_found")));
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.method == "GET" && !r.is_write())
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn requests_that_break_the_description_are_rejected_and_recorded() {
    let fake = fake().await;
    // `data` is required for an A record (domain_record_a), `ttl` is an integer.
    let (status, body) = post(
        &fake,
        "/v2/domains/example.com/records",
        Some(json!({"type": "A", "name": "www", "ttl": "300"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["id"], "bad_request");
    let (status, _) = get(
        &fake,
        "/v2/domains/example.com/records?type=SPF&per_page=500&color=blue",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = get(&fake, "/v2/domains/example.com/records/not-a-number").await;
    assert_eq!(status, 400);
    let (status, _) = get(&fake, "/v2/droplets").await;
    assert_eq!(status, 404);

    let violations = fake.violations().join("\n");
    for expected in [
        "request body $: missing required property `data`",
        "request body $.ttl: expected integer, found string",
        "query parameter `type`: $: \"SPF\" is not one of",
        "query parameter `per_page`: $: 500 is above the maximum 200",
        "query parameter `color` is not accepted by domains_list_records",
        "path parameter `domain_record_id`: $: expected integer, found string",
        "GET /v2/droplets: no such operation in the OpenAPI description",
    ] {
        assert!(
            violations.contains(expected),
            "{expected}\nin:\n{violations}"
        );
    }
    assert!(fake.records("example.com").is_empty());
}

#[tokio::test]
async fn digitalocean_checks_beyond_the_schema() {
    let fake = fake().await;
    for (body, message) in [
        (
            json!({"type": "A", "name": "www", "data": "not-an-ip"}),
            "valid IPv4",
        ),
        (
            json!({"type": "A", "name": "www", "data": "10.0.0.1", "ttl": 5}),
            "at least 30",
        ),
        (
            json!({"type": "A", "name": "www.example.com", "data": "10.0.0.1"}),
            "relative to the domain",
        ),
    ] {
        let (status, reply) = post(&fake, "/v2/domains/example.com/records", Some(body)).await;
        assert_eq!(status, 422, "{reply}");
        assert_eq!(reply["id"], "unprocessable_entity");
        assert!(
            reply["message"].as_str().unwrap_or("").contains(message),
            "{reply}"
        );
    }
    let id = fake.seed_record("example.com", "A", "www", "10.0.0.1", 300);
    let (status, _) = patch(
        &fake,
        &format!("/v2/domains/example.com/records/{id}"),
        Some(json!({"type": "TXT", "data": "x"})),
    )
    .await;
    assert_eq!(status, 422, "the type never changes");
    fake.assert_no_violations();
}

#[tokio::test]
async fn faults_use_the_error_shape_and_run_out() {
    let fake = fake().await;
    fake.inject(Fault::rate_limited().on("GET").times(2));
    for _ in 0..2 {
        let response = client()
            .get(format!(
                "{}/v2/domains/example.com/records",
                fake.base_url()
            ))
            .bearer_auth(support::TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 429);
        assert_eq!(
            response
                .headers()
                .get("ratelimit-remaining")
                .and_then(|v| v.to_str().ok()),
            Some("0")
        );
    }
    let (status, _) = get(&fake, "/v2/domains/example.com/records").await;
    assert_eq!(status, 200);
    fake.assert_no_violations();
}

#[tokio::test]
async fn missing_description_is_a_clear_error() {
    let error = DigitalOceanFake::start_with_spec(std::path::Path::new("/nonexistent/do.json"))
        .await
        .expect_err("no spec");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/do.json"), "{message}");
    assert!(
        message.contains("PREVIEW_DIGITALOCEAN_OPENAPI"),
        "{message}"
    );
}
