//! The fake's DOKS clusters: create, provisioning → running, kubeconfig as YAML,
//! tags, delete; requests and responses checked against the description.

mod support;

use digitalocean_fake::{DigitalOceanFake, LATEST_VERSION, Spec, default_spec_path};
use serde_json::{Value, json};

async fn fake() -> DigitalOceanFake {
    support::started().await
}

async fn send(
    fake: &DigitalOceanFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    support::send_text(fake, method, path, body).await
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

async fn get(fake: &DigitalOceanFake, path: &str) -> (u16, String) {
    send(fake, reqwest::Method::GET, path, None).await
}

async fn post(fake: &DigitalOceanFake, path: &str, body: Option<Value>) -> (u16, String) {
    send(fake, reqwest::Method::POST, path, body).await
}

async fn delete(fake: &DigitalOceanFake, path: &str) -> (u16, String) {
    send(fake, reqwest::Method::DELETE, path, None).await
}

async fn put(fake: &DigitalOceanFake, path: &str, body: Option<Value>) -> (u16, String) {
    send(fake, reqwest::Method::PUT, path, body).await
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
    let (status, created) = post(
        &fake,
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
    let (status, _) = get(&fake, &format!("{path}/kubeconfig")).await;
    assert_eq!(status, 412);

    let (_, first) = get(&fake, &path).await;
    assert_eq!(
        json_of(&first)["kubernetes_cluster"]["status"]["state"],
        "provisioning"
    );
    let (_, second) = get(&fake, &path).await;
    let running = json_of(&second)["kubernetes_cluster"].clone();
    assert_eq!(running["status"]["state"], "running");
    assert!(
        running["endpoint"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://")
    );

    let (status, yaml) = get(&fake, &format!("{path}/kubeconfig?expiry_seconds=300")).await;
    assert_eq!(status, 200);
    assert!(yaml.contains("kind: Config"), "{yaml}");
    assert!(
        yaml.contains(&format!("server: https://{id}.k8s.ondigitalocean.com")),
        "{yaml}"
    );

    let (status, list) = get(&fake, "/v2/kubernetes/clusters").await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&list)["meta"]["total"], 1);

    let (status, updated) = put(
        &fake,
        &path,
        Some(json!({"name": "previews", "tags": ["team:web"]})),
    )
    .await;
    assert_eq!(status, 202, "{updated}");
    assert_eq!(
        json_of(&updated)["kubernetes_cluster"]["tags"],
        json!(["k8s", format!("k8s:{id}"), "team:web"])
    );

    let (status, _) = delete(&fake, &path).await;
    assert_eq!(status, 204);
    let (status, body) = get(&fake, &path).await;
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
    let (status, body) = post(
        &fake,
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
    let (status, _) = get(
        &fake,
        "/v2/kubernetes/clusters/x/kubeconfig?expiry_seconds=soon",
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
        let (status, reply) = post(&fake, "/v2/kubernetes/clusters", Some(body)).await;
        assert_eq!(status, 422, "{reply}");
        assert!(reply.contains(message), "{reply}");
    }
    fake.assert_no_violations();
}
