//! The fake's DOKS clusters: create, provisioning → running, kubeconfig as YAML,
//! tags, delete; requests and responses checked against the description.

use digitalocean_fake::{DigitalOceanFake, LATEST_VERSION, Spec, default_spec_path};
use serde_json::{Value, json};

const TOKEN: &str = "dop_v1_fake_token";

async fn fake() -> DigitalOceanFake {
    let fake = DigitalOceanFake::start().await.expect("fake starts");
    fake.add_token(TOKEN);
    fake
}

async fn send(
    fake: &DigitalOceanFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", fake.base_url()))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

#[test]
fn official_examples_validate() {
    let spec = Spec::load(&default_spec_path()).expect("spec");
    let request = spec
        .example("kubernetes_clusters_basic_request")
        .expect("example");
    assert_eq!(
        spec.validate_at("/components/schemas/cluster", request),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn cluster_life_cycle() {
    let fake = fake().await;
    fake.set_provision_polls(1);
    let (status, created) = send(
        &fake,
        reqwest::Method::POST,
        "/v2/kubernetes/clusters",
        Some(
            json!({"name": "previews", "region": "fra1", "version": "latest",
            "tags": ["preview-envs-stack:preview-cluster"],
            "node_pools": [{"name": "workers", "size": "s-2vcpu-4gb", "count": 2}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let cluster = json_of(&created)["kubernetes_cluster"].clone();
    assert_eq!(cluster["status"]["state"], "provisioning");
    assert_eq!(cluster["version"], LATEST_VERSION);
    assert_eq!(cluster["endpoint"], "");
    let id = cluster["id"].as_str().expect("id").to_owned();
    let tags = cluster["tags"].as_array().expect("tags");
    assert!(tags.contains(&json!("k8s")) && tags.contains(&json!(format!("k8s:{id}"))));
    assert!(tags.contains(&json!("preview-envs-stack:preview-cluster")));

    // Not running yet: no kubeconfig.
    let path = format!("/v2/kubernetes/clusters/{id}");
    let (status, _) = send(
        &fake,
        reqwest::Method::GET,
        &format!("{path}/kubeconfig"),
        None,
    )
    .await;
    assert_eq!(status, 412);

    let (_, first) = send(&fake, reqwest::Method::GET, &path, None).await;
    assert_eq!(
        json_of(&first)["kubernetes_cluster"]["status"]["state"],
        "provisioning"
    );
    let (_, second) = send(&fake, reqwest::Method::GET, &path, None).await;
    let running = json_of(&second)["kubernetes_cluster"].clone();
    assert_eq!(running["status"]["state"], "running");
    assert!(
        running["endpoint"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://")
    );

    let (status, yaml) = send(
        &fake,
        reqwest::Method::GET,
        &format!("{path}/kubeconfig?expiry_seconds=300"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(yaml.contains("kind: Config"), "{yaml}");
    assert!(
        yaml.contains(&format!("server: https://{id}.k8s.ondigitalocean.com")),
        "{yaml}"
    );

    let (status, list) = send(&fake, reqwest::Method::GET, "/v2/kubernetes/clusters", None).await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&list)["meta"]["total"], 1);

    let (status, updated) = send(
        &fake,
        reqwest::Method::PUT,
        &path,
        Some(json!({"name": "previews", "tags": ["team:web"]})),
    )
    .await;
    assert_eq!(status, 202, "{updated}");
    assert_eq!(
        json_of(&updated)["kubernetes_cluster"]["tags"],
        json!(["k8s", format!("k8s:{id}"), "team:web"])
    );

    let (status, _) = send(&fake, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = send(&fake, reqwest::Method::GET, &path, None).await;
    assert_eq!(
        (status, json_of(&body)["id"].clone()),
        (404, json!("not_found"))
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn bad_cluster_requests() {
    let fake = fake().await;
    // The description requires name, region, version and node pools with a size.
    let (status, body) = send(
        &fake,
        reqwest::Method::POST,
        "/v2/kubernetes/clusters",
        Some(json!({"name": "x", "node_pools": [{"name": "w", "count": 1}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let violations = fake.violations().join("\n");
    for expected in [
        "missing required property `region`",
        "missing required property `version`",
        "node_pools[0]: missing required property `size`",
    ] {
        assert!(violations.contains(expected), "{expected}:\n{violations}");
    }
    let (status, _) = send(
        &fake,
        reqwest::Method::GET,
        "/v2/kubernetes/clusters/x/kubeconfig?expiry_seconds=soon",
        None,
    )
    .await;
    assert_eq!(status, 400);

    // DigitalOcean's own checks.
    let fake = self::fake().await;
    for (body, message) in [
        (
            json!({"name": "x", "region": "mars1", "version": "latest",
                "node_pools": [{"name": "w", "size": "s-1vcpu-2gb", "count": 1}]}),
            "region",
        ),
        (
            json!({"name": "x", "region": "fra1", "version": "0.1",
                "node_pools": [{"name": "w", "size": "s-1vcpu-2gb", "count": 1}]}),
            "version",
        ),
        (
            json!({"name": "x", "region": "fra1", "version": "latest",
                "node_pools": [{"name": "w", "size": "s-1vcpu-2gb", "count": 0}]}),
            "at least one node",
        ),
    ] {
        let (status, reply) = send(
            &fake,
            reqwest::Method::POST,
            "/v2/kubernetes/clusters",
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{reply}");
        assert!(reply.contains(message), "{reply}");
    }
    fake.assert_no_violations();
}
