//! The fake itself: domain records, pagination, authentication, error shapes,
//! OpenAPI validation of requests and responses, faults.

use digitalocean_fake::{DigitalOceanFake, Fault, Spec, default_spec_path};
use serde_json::{Value, json};

const TOKEN: &str = "dop_v1_fake_token";

async fn fake() -> DigitalOceanFake {
    let fake = DigitalOceanFake::start().await.expect("fake starts");
    fake.add_token(TOKEN);
    fake.add_domain("example.com");
    fake
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(
    fake: &DigitalOceanFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", fake.base_url()))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, value)
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
    let (status, created) = send(
        &fake,
        reqwest::Method::POST,
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
    let (status, got) = send(&fake, reqwest::Method::GET, &path, None).await;
    assert_eq!((status, &got["domain_record"]), (200, record));

    let (status, patched) = send(
        &fake,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"type": "A", "data": "10.0.0.2"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["domain_record"]["data"], "10.0.0.2");
    assert_eq!(patched["domain_record"]["ttl"], 300, "PATCH keeps the rest");

    let (status, put) = send(
        &fake,
        reqwest::Method::PUT,
        &path,
        Some(json!({"type": "A", "name": "*.pr", "data": "10.0.0.3", "ttl": 60})),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(fake.records("example.com")[0].data, "10.0.0.3");

    let (status, body) = send(&fake, reqwest::Method::DELETE, &path, None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = send(&fake, reqwest::Method::DELETE, &path, None).await;
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

    let (status, all) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all["meta"]["total"], 7);
    assert_eq!(all["links"], json!({}));

    let (_, named) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?name=h0.example.com",
        None,
    )
    .await;
    assert_eq!(named["meta"]["total"], 2, "A and TXT at h0");
    let (_, typed) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?type=A&name=h0.example.com",
        None,
    )
    .await;
    assert_eq!(typed["domain_records"][0]["type"], "A");
    assert_eq!(typed["meta"]["total"], 1);
    let (_, apex) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?name=example.com",
        None,
    )
    .await;
    assert_eq!(apex["domain_records"][0]["name"], "@");

    let (_, page1) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?type=A&per_page=2",
        None,
    )
    .await;
    assert_eq!(page1["domain_records"].as_array().map(Vec::len), Some(2));
    assert_eq!(page1["meta"]["total"], 6);
    let next = page1["links"]["pages"]["next"].as_str().expect("next");
    assert!(next.ends_with("?type=A&page=2&per_page=2"), "{next}");
    assert!(page1["links"]["pages"].get("prev").is_none());
    let (_, page3) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?type=A&per_page=2&page=3",
        None,
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
    let (status, body) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/other.org/records",
        None,
    )
    .await;
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
    let (status, body) = send(
        &fake,
        reqwest::Method::POST,
        "/v2/domains/example.com/records",
        Some(json!({"type": "A", "name": "www", "ttl": "300"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["id"], "bad_request");
    let (status, _) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records?type=SPF&per_page=500&color=blue",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records/not-a-number",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(&fake, reqwest::Method::GET, "/v2/droplets", None).await;
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
        let (status, reply) = send(
            &fake,
            reqwest::Method::POST,
            "/v2/domains/example.com/records",
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{reply}");
        assert_eq!(reply["id"], "unprocessable_entity");
        assert!(
            reply["message"].as_str().unwrap_or("").contains(message),
            "{reply}"
        );
    }
    let id = fake.seed_record("example.com", "A", "www", "10.0.0.1", 300);
    let (status, _) = send(
        &fake,
        reqwest::Method::PATCH,
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
            .bearer_auth(TOKEN)
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
    let (status, _) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/domains/example.com/records",
        None,
    )
    .await;
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
