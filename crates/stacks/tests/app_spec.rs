//! Stacks built from an app spec other than the built-in one: the example
//! Node.js API + worker + Redis (`examples/apps/node-redis`) in preview-pr and
//! local, its derived NetworkPolicies and extra manifests, `--image KEY=REF`, and
//! the errors that stop a build before anything is applied.

mod support;

use std::path::PathBuf;

use stacks::app_spec::{App, ManifestSource};
use stacks::config::StackConfig;
use stacks::{StackBuild, StackError, StackKind, StackRequest};
use support::{FakeSecrets, build_with, find, manifest, references, request};

const API: &str = "ghcr.io/example-shop/api@sha256:3333333333333333333333333333333333333333333333333333333333333333";
const WORKER: &str = "ghcr.io/example-shop/worker@sha256:4444444444444444444444444444444444444444444444444444444444444444";

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/apps/node-redis")
}

fn example_app() -> App {
    let mut app = App::load(&example_dir().join("preview-app.yaml")).expect("the example loads");
    // Stable in snapshots wherever the repository is.
    app.origin = "examples/apps/node-redis/preview-app.yaml".into();
    if let Some(m) = &mut app.manifests {
        m.name = "examples/apps/node-redis/k8s".into();
    }
    app
}

/// The example's preview-pr config, on the test base's domain.
fn example_config(kind: StackKind, app: App) -> Result<StackConfig, StackError> {
    let text = std::fs::read_to_string(example_dir().join("config/preview-pr.yaml"))
        .expect("the example config")
        .replace("domain: example.com", "domain: aphiria.com");
    let text = if kind == StackKind::Local {
        // local reads no allowedImages restriction beyond its own, and no quota by default.
        text.replace("domain: aphiria.com", "domain: shop.localhost")
    } else {
        text
    };
    Ok(StackConfig::from_yaml(&text, kind)?.with_app(app))
}

fn node_request(kind: StackKind) -> StackRequest {
    let mut req = request(kind, (kind == StackKind::PreviewPr).then_some("7"));
    req.images.remove("web");
    req.images.remove("api");
    req.images = [("api", API), ("worker", WORKER)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    req
}

fn node_preview(req: &StackRequest, app: App) -> Result<StackBuild, StackError> {
    build_with(
        req,
        &example_config(StackKind::PreviewPr, app)?,
        &references(),
        &FakeSecrets::all(),
    )
}

#[test]
fn the_node_app_in_preview_pr() {
    let build = node_preview(&node_request(StackKind::PreviewPr), example_app()).expect("builds");
    insta::assert_yaml_snapshot!(manifest(&build));
}

#[test]
fn no_database_no_php_and_the_derived_network_rules() {
    let build = node_preview(&node_request(StackKind::PreviewPr), example_app()).expect("builds");
    let ids: Vec<String> = build.resources.iter().map(|r| r.id.to_string()).collect();
    assert!(!ids.iter().any(|id| id.starts_with("postgres ")), "{ids:?}");
    assert!(
        !ids.iter().any(|id| id.contains("allow-egress-database")),
        "{ids:?}"
    );
    assert!(!ids.iter().any(|id| id.contains("nginx-config")), "{ids:?}");
    for id in [
        "Deployment preview-pr-7/api",
        "Service preview-pr-7/api",
        "Deployment preview-pr-7/worker",
        "Deployment preview-pr-7/redis",
        "Service preview-pr-7/redis",
        "HTTPRoute preview-pr-7/app",
        "ConfigMap preview-pr-7/env-vars-pr-7",
    ] {
        assert!(ids.iter().any(|i| i.ends_with(id)), "{id} in {ids:?}");
    }
    assert!(
        !ids.iter()
            .any(|id| id.ends_with("Service preview-pr-7/worker"))
    );
    let ingress = find(
        &build,
        "NetworkPolicy preview-pr-7/allow-ingress-from-gateway",
    );
    assert_eq!(
        ingress.body["spec"]["ingress"][0]["ports"],
        serde_json::json!([{"port": 3000, "protocol": "TCP"}])
    );
    for name in [
        "allow-egress-redis",
        "allow-ingress-redis",
        "allow-egress-service-api",
        "allow-ingress-service-api",
    ] {
        find(&build, &format!("NetworkPolicy preview-pr-7/{name}"));
    }
    let outputs: Vec<&String> = build.outputs.keys().collect();
    assert_eq!(outputs, ["apiImage", "appUrl", "namespace", "workerImage"]);
    let worker = find(&build, "Deployment preview-pr-7/worker");
    let env = &worker.body["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &serde_json::json!([{"name": "API_URL", "value": "http://api:80"}])
    );
    let cm = find(&build, "ConfigMap preview-pr-7/env-vars-pr-7");
    assert_eq!(cm.body["data"]["QUEUE"], "jobs-pr-7");
    assert_eq!(cm.body["data"]["PUBLIC_URL"], "https://7.pr.aphiria.com");
}

#[test]
fn the_node_app_in_local_needs_no_database_password() {
    let mut req = node_request(StackKind::Local);
    req.images.clear();
    let config = example_config(StackKind::Local, example_app()).expect("config");
    let config = StackConfig {
        allowed_images: vec!["shop/".into(), "docker.io/library/redis".into()],
        ..config
    };
    let build = build_with(
        &req,
        &config,
        &stacks::References::new(),
        &FakeSecrets::without("DB_PASSWORD"),
    )
    .expect("builds without DB_PASSWORD");
    let api = find(&build, "Deployment shop-local/api");
    assert_eq!(
        api.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/api:local"
    );
    assert!(
        !build
            .resources
            .iter()
            .any(|r| r.id.to_string().contains("postgres"))
    );
    let route = find(&build, "HTTPRoute shop-local/app");
    assert_eq!(route.body["spec"]["hostnames"][0], "shop.shop.localhost");
}

/// `images.<key>` and `hosts.<route>` take any image key and route of the app,
/// and name the key when the app has none such.
#[test]
fn images_and_hosts_keys_are_the_apps() {
    let local = |extra: &str| -> Result<StackBuild, StackError> {
        let text = std::fs::read_to_string(example_dir().join("config/preview-pr.yaml"))
            .expect("the example config")
            .replace("domain: example.com", "domain: shop.localhost")
            + extra;
        let config = StackConfig {
            allowed_images: vec!["shop/".into(), "docker.io/library/redis".into()],
            ..StackConfig::from_yaml(&text, StackKind::Local)?.with_app(example_app())
        };
        let mut req = node_request(StackKind::Local);
        req.images.clear();
        build_with(
            &req,
            &config,
            &stacks::References::new(),
            &FakeSecrets::all(),
        )
    };
    let build = local("images: {worker: shop/worker:dev}\nhosts: {app: shop.example.localhost}\n")
        .expect("builds");
    let worker = find(&build, "Deployment shop-local/worker");
    assert_eq!(
        worker.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/worker:dev"
    );
    // The key not set keeps its default.
    let api = find(&build, "Deployment shop-local/api");
    assert_eq!(
        api.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/api:local"
    );
    let route = find(&build, "HTTPRoute shop-local/app");
    assert_eq!(route.body["spec"]["hostnames"][0], "shop.example.localhost");

    for (extra, says) in [
        (
            "images: {wrker: shop/worker:dev}\n",
            "config key `images.wrker` in config/local.yaml: examples/apps/node-redis/preview-app.yaml has no image key `wrker` (its image keys: api, worker); remove the key or use one of those",
        ),
        // The built-in app's keys are no exception.
        (
            "images: {web: shop/web:local}\n",
            "config key `images.web` in config/local.yaml: examples/apps/node-redis/preview-app.yaml has no image key `web`",
        ),
        (
            "hosts: {shop: shop.example.localhost}\n",
            "config key `hosts.shop` in config/local.yaml: examples/apps/node-redis/preview-app.yaml has no route `shop` (its routes: app;",
        ),
        (
            "hosts: {app: not_a_host}\n",
            "config key `hosts.app` in config/local.yaml: \"not_a_host\" is not a lowercase DNS name",
        ),
    ] {
        let err = local(extra).expect_err(extra).to_string();
        assert!(err.starts_with(says), "{extra}: {err}");
    }
    // An image from `images.<key>` is held to `allowedImages` like the others.
    let err = local("images: {worker: docker.io/attacker/worker:1}\n")
        .expect_err("not allowed")
        .to_string();
    assert!(
        err.contains("config key `images.worker` in config/local.yaml:")
            && err.contains("not an allowed image"),
        "{err}"
    );
}

#[test]
fn image_flags_name_the_key() {
    let mut req = node_request(StackKind::PreviewPr);
    req.images.remove("worker");
    let err = node_preview(&req, example_app()).expect_err("no worker image");
    assert_eq!(
        err.to_string(),
        "missing --image worker: pass the `worker` image pinned by digest: --image worker=NAME@sha256:<64 hex>"
    );
    let mut req = node_request(StackKind::PreviewPr);
    req.images.insert("wrker".into(), WORKER.into());
    let err = node_preview(&req, example_app()).expect_err("typo");
    assert_eq!(
        err.to_string(),
        "--image wrker: the app (examples/apps/node-redis/preview-app.yaml) has no image key `wrker`; its keys: api, worker"
    );
    let mut req = node_request(StackKind::PreviewPr);
    req.images.insert("web".into(), API.into());
    let err = node_preview(&req, example_app()).expect_err("no web here");
    assert!(err.to_string().starts_with("--web-image: the app"), "{err}");
    let mut req = node_request(StackKind::PreviewPr);
    req.images
        .insert("worker".into(), "ghcr.io/example-shop/worker:latest".into());
    let err = node_preview(&req, example_app()).expect_err("tag");
    assert!(
        err.to_string()
            .starts_with("--image worker ghcr.io/example-shop/worker:latest: not pinned by digest"),
        "{err}"
    );
}

/// `--image web=REF --image api=REF` is `--web-image REF --api-image REF`.
#[test]
fn image_keys_are_the_aliases_of_the_builtin_app() {
    let aliases = support::preview("123");
    let mut req = request(StackKind::PreviewPr, Some("123"));
    let web = req.images.remove("web").expect("web");
    let api = req.images.remove("api").expect("api");
    req.images = [("web".to_owned(), web), ("api".to_owned(), api)].into();
    let keys = build_with(
        &req,
        &support::config(StackKind::PreviewPr),
        &references(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    assert_eq!(manifest(&keys), manifest(&aliases));
}

#[test]
fn extra_manifests_stay_in_the_namespace_and_the_allowed_images() {
    let with = |yaml: &str| {
        example_app().with_manifests(ManifestSource {
            name: "stdin".into(),
            bytes: yaml.as_bytes().to_vec(),
        })
    };
    let err = node_preview(
        &node_request(StackKind::PreviewPr),
        with("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n"),
    )
    .expect_err("cluster-scoped");
    assert_eq!(
        err.to_string(),
        "examples/apps/node-redis/preview-app.yaml: `manifests`: ClusterRole x in stdin is cluster-scoped; an app's extra manifests may only hold objects of its own namespace"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: elsewhere}\nspec:\n  containers:\n    - {name: x, image: docker.io/attacker/x@sha256:5555555555555555555555555555555555555555555555555555555555555555}\n";
    let err = node_preview(&node_request(StackKind::PreviewPr), with(pod)).expect_err("image");
    assert!(
        err.to_string().contains("docker.io/attacker/x@sha256:5555555555555555555555555555555555555555555555555555555555555555: not an allowed image"),
        "{err}"
    );
    // Objects naming another namespace land in the preview's.
    let ok = pod.replace("docker.io/attacker/x", "docker.io/library/redis");
    let build = node_preview(&node_request(StackKind::PreviewPr), with(&ok)).expect("builds");
    find(&build, "Pod preview-pr-7/x");
}

#[test]
fn template_and_config_errors_stop_the_build() {
    // A value the config sets but the spec does not declare.
    let text = std::fs::read_to_string(example_dir().join("config/preview-pr.yaml"))
        .expect("config")
        .replace("domain: example.com", "domain: aphiria.com")
        + "values: {logLevel: debug}\n";
    let config = StackConfig::from_yaml(&text, StackKind::PreviewPr)
        .expect("resolves")
        .with_app(example_app());
    let err = build_with(
        &node_request(StackKind::PreviewPr),
        &config,
        &references(),
        &FakeSecrets::all(),
    )
    .expect_err("undeclared value");
    assert_eq!(
        err.to_string(),
        "config key `values.logLevel` in config/preview-pr.yaml sets the app value `logLevel`, which examples/apps/node-redis/preview-app.yaml does not declare (its values: none); remove the key or declare the value under `values:`"
    );

    // A host outside the base gateway's wildcards.
    let spec = std::fs::read_to_string(example_dir().join("preview-app.yaml"))
        .expect("spec")
        .replace("\"{pr}.pr.{domain}\"", "\"{pr}.{domain}\"");
    let app = App::parse("preview-app.yaml", &spec).expect("parses");
    let err = node_preview(&node_request(StackKind::PreviewPr), app).expect_err("host");
    assert_eq!(
        err.to_string(),
        "`routes[0].host` in preview-app.yaml: 7.aphiria.com is not covered by the preview gateway: a preview's hosts are `<label>.pr.aphiria.com` or `<label>.pr-api.aphiria.com` (its wildcard certificate and listeners)"
    );

    // `{pr}` where there is no PR: caught while building local, naming the key.
    let spec = std::fs::read_to_string(example_dir().join("preview-app.yaml"))
        .expect("spec")
        .replace(
            "REDIS_URL: redis://redis:6379",
            "REDIS_URL: \"redis://redis-{pr}:6379\"",
        );
    let app = App::parse("preview-app.yaml", &spec).expect("parses");
    let mut req = node_request(StackKind::Local);
    req.images.clear();
    let config = StackConfig {
        allowed_images: vec!["shop/".into(), "docker.io/library/redis".into()],
        ..example_config(StackKind::Local, app).expect("config")
    };
    let err = build_with(
        &req,
        &config,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("no pr in local");
    assert_eq!(
        err.to_string(),
        "preview-app.yaml: `env.REDIS_URL`: placeholder `{pr}` has no value in the local stack (only preview-pr has a PR number: give this key a value per stack)"
    );
}

/// The older Aphiria keys set the built-in app's values; the same value twice is refused.
#[test]
fn older_keys_set_values_and_values_win_nowhere_silently() {
    let text = std::fs::read_to_string(support::config_dir().join("production.yaml"))
        .expect("production.yaml");
    let config = StackConfig::from_yaml(&text, StackKind::Production).expect("resolves");
    assert_eq!(
        config.values.get("logLevel"),
        Some(&("logLevel".to_owned(), "info".to_owned()))
    );
    let err = StackConfig::from_yaml(
        &format!("{text}\nvalues: {{logLevel: debug}}\n"),
        StackKind::Production,
    )
    .expect_err("twice");
    assert_eq!(
        err.to_string(),
        "config key `logLevel` in config/production.yaml: sets the app value `logLevel`, and so does `values.logLevel`; keep one"
    );
    // `values:` alone changes the env of the built-in app.
    let text = text.replace("logLevel: info\n", "values: {logLevel: warning}\n");
    let config = StackConfig::from_yaml(&text, StackKind::Production).expect("resolves");
    let build = build_with(
        &request(StackKind::Production, None),
        &config,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    let env = find(&build, "ConfigMap aphiria/env-vars");
    assert_eq!(env.body["data"]["LOG_LEVEL"], "warning");
}

/// `preview-app.yaml` in the directory is found; without one, the built-in app.
#[test]
fn the_spec_is_discovered_in_the_repository() {
    let dir = tempfile::tempdir().expect("dir");
    assert_eq!(
        App::discover(None, dir.path(), None)
            .expect("builtin")
            .origin,
        stacks::app_spec::DEFAULT_ORIGIN
    );
    std::fs::copy(
        example_dir().join("preview-app.yaml"),
        dir.path().join("preview-app.yaml"),
    )
    .expect("copy");
    let err = App::discover(None, dir.path(), None).expect_err("no k8s/ beside it");
    assert!(
        err.to_string().contains("cannot read the extra manifests"),
        "{err}"
    );
    let app = App::discover(None, dir.path(), Some(&example_dir().join("k8s"))).expect("found");
    assert_eq!(app.image_keys(), ["api", "worker"]);
    let manifests = app.manifests.expect("manifests");
    assert!(
        String::from_utf8_lossy(&manifests.bytes).contains("kind: Deployment"),
        "the directory's files"
    );
    // --app wins over the file in the directory.
    let builtin = dir.path().join("other.yaml");
    std::fs::write(&builtin, stacks::app_spec::DEFAULT_SPEC).expect("write");
    let app = App::discover(Some(&builtin), dir.path(), None).expect("explicit");
    assert_eq!(app.image_keys(), ["api", "web"]);
}
