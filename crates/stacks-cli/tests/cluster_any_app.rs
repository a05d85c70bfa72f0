//! Another project's app end to end on the real control plane: the example
//! Node.js API + worker + Redis of `examples/apps/node-redis` (its own app spec,
//! config and plain Redis manifest; no PHP, no PostgreSQL), deployed as a
//! preview on the shared base by the `stacks` binary with `--app` and
//! `--image KEY=REF`: up, a no-op up (no write), a new image, the plan of its
//! promotion to production (every image key the record holds, by `--from-pr`
//! and by `--image` per key), and a verified destroy.

mod support_cluster;

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use support_cluster::{Stacks, digest, has_state, world};

const PR: u64 = 7401;
const NS: &str = "preview-pr-7401";

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/apps/node-redis")
}

fn image(name: &str, n: u64) -> String {
    format!("ghcr.io/example-shop/{name}@sha256:{}", digest(n))
}

/// `stacks --json <command> preview-pr` of the example app.
fn run(stacks: &Stacks, command: &str, api: &str, worker: &str) -> serde_json::Value {
    let app = example().join("preview-app.yaml");
    let args = [
        "--json".to_owned(),
        "--app".to_owned(),
        app.display().to_string(),
        command.to_owned(),
        "preview-pr".to_owned(),
        "--pr".to_owned(),
        PR.to_string(),
        "--image".to_owned(),
        format!("api={api}"),
        "--image".to_owned(),
        format!("worker={worker}"),
    ];
    // The example's config names its own domain; the test base serves aphiria.com.
    let out = stacks
        .command(&args)
        .env("PREVIEW_DOMAIN", "aphiria.com")
        .output()
        .expect("run stacks");
    assert!(
        out.status.success(),
        "stacks {args:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// `stacks render preview-pr` of the example with a ConfigMap on stdin.
fn render_with_stdin_manifests(stacks: &Stacks) -> String {
    use std::io::Write;
    let app = example().join("preview-app.yaml");
    let args = [
        "--app".to_owned(),
        app.display().to_string(),
        "--manifests".to_owned(),
        "-".to_owned(),
        "render".to_owned(),
        "preview-pr".to_owned(),
        "--pr".to_owned(),
        PR.to_string(),
        "--image".to_owned(),
        format!("api={}", image("api", 1)),
        "--image".to_owned(),
        format!("worker={}", image("worker", 2)),
    ];
    let mut child = stacks
        .command(&args)
        .env("PREVIEW_DOMAIN", "aphiria.com")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn stacks");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin}\ndata: {a: b}\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("stacks render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn image_of(client: &kube::Client, name: &str) -> String {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d = deployments.get(name).await.expect("deployment");
    d.spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default()
}

/// A production config of the example (its own namespace and gateway; only
/// planned here, never applied).
fn production_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let production = "domain: example.com\napp: shop\nnamespace: shop-prod\nreplicas: 2\n\
        postgresImage: docker.io/library/postgres:16-alpine@sha256:57c72fd2a128e416c7fcc499958864df5301e940bca0a56f58fddf30ffc07777\n\
        allowedImages: [ghcr.io/example-shop/, docker.io/library/redis, docker.io/library/postgres]\n\
        gateway: {name: shop-gateway, namespace: shop-gateway, className: nginx-shop}\n\
        tls: {issuer: self-signed}\n";
    std::fs::write(dir.path().join("production.yaml"), production).expect("write");
    dir
}

/// `promote --preview` of the example after its preview ran `api` and `worker`.
fn promote_plans_every_key(world: &'static support_cluster::World, api: &str, worker: &str) {
    let config = production_config();
    let stacks = Stacks::new(world).with_config_dir(config.path());
    let app = example().join("preview-app.yaml").display().to_string();
    let promote = |source: &[String]| {
        let mut args = vec!["--app".to_owned(), app.clone(), "promote".to_owned()];
        args.extend(source.iter().cloned());
        args.extend(["--preview", "--format", "json"].map(str::to_owned));
        let out = stacks.command(&args).output().expect("run stacks");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "promote {source:?}: {stderr}");
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json plan");
        (plan, stderr)
    };
    let (plan, stderr) = promote(&["--from-pr".to_owned(), PR.to_string()]);
    assert_eq!(plan["stack"], "production", "{plan}");
    assert!(plan.get("notes").is_none(), "tested: {plan}");
    assert!(
        stderr.contains(&format!("promoting the images tested by preview-pr-{PR}"))
            && stderr.contains(&format!("api {api} and worker {worker}")),
        "{stderr}"
    );
    let deployments: std::collections::BTreeSet<&str> = plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["resource"]["kind"] == "Deployment" && s["resource"]["namespace"] == "shop-prod"
        })
        .filter_map(|s| s["resource"]["name"].as_str())
        .collect();
    assert_eq!(deployments, ["api", "redis", "worker"].into(), "{plan}");
    // `--image KEY=REF` per key: the same tested pair, no note.
    let (plan, _) = promote(&[
        "--image".to_owned(),
        format!("api={api}"),
        "--image".to_owned(),
        format!("worker={worker}"),
    ]);
    assert!(plan.get("notes").is_none(), "tested: {plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_redis_example_up_noop_change_destroy() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let stacks = Stacks::new(world).with_config_dir(&example().join("config"));

    // `--manifests -`: the extra manifests from stdin (as `helm template … |`).
    let rendered = render_with_stdin_manifests(&stacks);
    assert!(rendered.contains("name: from-stdin"), "{rendered}");
    assert!(
        !rendered.contains("docker.io/library/redis"),
        "stdin replaces k8s/: {rendered}"
    );

    // Up: the app's services, Redis from the plain manifest, its route and policies.
    let first = run(&stacks, "up", &image("api", 1), &image("worker", 2));
    assert_eq!(
        first["outputs"]["appUrl"], "https://7401.pr.aphiria.com",
        "{first}"
    );
    assert!(first["outputs"].get("databaseName").is_none(), "{first}");
    // Every image of the app is recorded as tested (what promote deploys).
    assert_eq!(
        first["tested"]["images"],
        serde_json::json!({"api": image("api", 1), "worker": image("worker", 2)}),
        "{first}"
    );
    assert_eq!(image_of(&client, "api").await, image("api", 1));
    assert_eq!(image_of(&client, "worker").await, image("worker", 2));
    let redis: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let redis = redis
        .get("redis")
        .await
        .expect("redis from the extra manifests");
    let labels = redis.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("preview-envs.io/stack").map(String::as_str),
        Some(NS),
        "owned by the stack like everything else"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    for name in ["api", "redis"] {
        assert!(
            services.get_opt(name).await.expect("get").is_some(),
            "{name}"
        );
    }
    assert!(services.get_opt("worker").await.expect("get").is_none());
    let env: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let data = env
        .get(&format!("env-vars-pr-{PR}"))
        .await
        .expect("env")
        .data
        .unwrap_or_default();
    assert_eq!(data.get("QUEUE").map(String::as_str), Some("jobs-pr-7401"));
    assert_eq!(
        data.get("PUBLIC_URL").map(String::as_str),
        Some("https://7401.pr.aphiria.com")
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let names: Vec<String> = policies
        .list(&Default::default())
        .await
        .expect("policies")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for name in [
        "default-deny-all",
        "allow-ingress-from-gateway",
        "allow-egress-dns",
        "allow-egress-redis",
        "allow-ingress-redis",
        "allow-egress-service-api",
        "allow-ingress-service-api",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "allow-egress-database"),
        "{names:?}"
    );
    let databases = world
        .pg
        .client()
        .await
        .expect("pg")
        .query("SELECT 1 FROM pg_database WHERE datname LIKE 'shop%'", &[])
        .await
        .expect("query");
    assert!(
        databases.is_empty(),
        "no database for an app without the add-on"
    );

    // The same again: nothing to do, nothing written.
    let again = run(&stacks, "up", &image("api", 1), &image("worker", 2));
    assert_eq!(again["requests"]["writes"], 0, "{again}");
    assert_eq!(again["plan"]["summary"]["create"], 0, "{again}");

    // A new API image: the API Deployment is updated, the rest left alone.
    let change = run(&stacks, "up", &image("api", 3), &image("worker", 2));
    assert!(
        change["plan"]["summary"]["update"].as_u64().unwrap_or(0) >= 1,
        "{change}"
    );
    assert_eq!(change["plan"]["summary"]["create"], 0, "{change}");
    assert_eq!(image_of(&client, "api").await, image("api", 3));
    assert_eq!(image_of(&client, "worker").await, image("worker", 2));

    // Promotion deploys every image key the record holds (api and worker, not
    // web/api): the plan of production from the PR's last test, and by `--image`.
    promote_plans_every_key(world, &image("api", 3), &image("worker", 2));

    // Destroy, verified: the namespace and the state's records are gone.
    let out = stacks.ok(&["--json", "destroy", "preview-pr", "--pr", &PR.to_string()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verified"], true, "{report}");
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(namespaces.get_opt(NS).await.expect("get").is_none());
    assert!(!has_state(world, PR));
}
