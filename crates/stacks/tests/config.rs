//! Loading and resolving the per-stack configuration: the repository's files,
//! defaults, environment overrides and manifest bundles.

mod support;

use sha2::{Digest, Sha256};
use stacks::StackKind;
use stacks::config::{IssuerKind, StackConfig};
use support::{ALL, FakeSecrets, config, config_dir, find};

#[test]
fn the_repository_files_load_for_every_stack() {
    for kind in ALL {
        let loaded = StackConfig::load_with_env(&config_dir(), kind, &|_| None)
            .unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        assert_eq!(loaded.stack, kind);
        assert!(loaded.bundles.is_empty());
        let mut from_text = config(kind);
        from_text.origin = loaded.origin.clone();
        assert_eq!(loaded, from_text, "{kind:?}");
    }
}

#[test]
fn preview_pr_values() {
    let c = config(StackKind::PreviewPr);
    assert_eq!(c.domain, "aphiria.com");
    assert_eq!(c.database.name_prefix, "aphiria_pr_");
    assert_eq!(c.database.user, "aphiria");
    let quota = c.quota.expect("quota");
    assert_eq!(
        (quota.cpu.as_str(), quota.memory.as_str(), quota.pods),
        ("2", "4Gi", 5)
    );
    assert_eq!(quota.ephemeral_storage.as_deref(), Some("4Gi"));
    assert_eq!(c.replicas, 1);
    for (name, r) in [
        ("web", &c.resources.web),
        ("apiNginx", &c.resources.api_nginx),
        ("apiPhp", &c.resources.api_php),
        ("apiInit", &c.resources.api_init),
        ("migration", &c.resources.migration),
    ] {
        let r = r.as_ref().unwrap_or_else(|| panic!("{name}"));
        assert!(
            r.requests.cpu.is_some() && r.requests.memory.is_some(),
            "{name}"
        );
        assert!(
            r.limits.cpu.is_some() && r.limits.memory.is_some(),
            "{name}"
        );
        assert!(
            r.requests.ephemeral_storage.is_some() && r.limits.ephemeral_storage.is_some(),
            "{name}"
        );
    }
    assert_eq!(
        c.nginx_image.as_deref(),
        Some(stacks::config::DEFAULT_NGINX_IMAGE)
    );
}

#[test]
fn production_and_base_values() {
    let p = config(StackKind::Production);
    assert_eq!(p.replicas, 2);
    assert_eq!(
        (p.web_host.as_str(), p.api_host.as_str()),
        ("www.aphiria.com", "api.aphiria.com")
    );
    assert_eq!(p.tls.issuer, IssuerKind::Letsencrypt);
    assert!(p.protect);
    assert_eq!(p.namespace, "aphiria");
    let b = config(StackKind::PreviewBase);
    assert_eq!(b.database.namespace, "default");
    assert_eq!(
        b.database.storage.as_ref().map(|s| s.size.as_str()),
        Some("10Gi")
    );
    assert_eq!(b.gateway.namespace, "nginx-gateway");
    assert!(
        b.postgres_image
            .as_deref()
            .is_some_and(|i| i.contains("postgres:16"))
    );
}

#[test]
fn issuers_are_namespaced_beside_their_token() {
    for kind in [StackKind::PreviewBase, StackKind::Production] {
        let build = support::stack(kind);
        assert!(!build.resources.iter().any(|r| r.id.kind == "ClusterIssuer"));
        let issuer = find(&build, "Issuer nginx-gateway/letsencrypt-prod");
        assert_eq!(
            issuer.body["spec"]["acme"]["solvers"][0]["dns01"]["digitalocean"]["tokenSecretRef"],
            serde_json::json!({"name": "digitalocean-dns", "key": "access_token"})
        );
        find(&build, "Secret nginx-gateway/digitalocean-dns");
        let cert = find(&build, "Certificate nginx-gateway/wildcard-tls");
        assert_eq!(cert.body["spec"]["issuerRef"]["kind"], "Issuer");
    }
}

#[test]
fn local_defaults_need_no_file() {
    let c = StackConfig::from_source(None, StackKind::Local, "config/local.yaml", &|_| None)
        .expect("defaults");
    assert_eq!(c.domain, "aphiria.localhost");
    assert_eq!(c.namespace, "aphiria-local");
    assert_eq!(c.local_web_image, "aphiria/web:local");
    assert_eq!(c.local_api_image, "aphiria/api:local");
    assert_eq!(c.tls.issuer, IssuerKind::SelfSigned);
    assert_eq!(c.web_host, "www.aphiria.localhost");
    assert_eq!(c.quota, None);
    assert_eq!(c.database.storage, None);
    // And the defaults build a valid stack.
    let build = stacks::build(
        &support::request(StackKind::Local, None),
        &c,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    let web = find(&build, "Deployment aphiria-local/web");
    let container = &web.body["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "aphiria/web:local");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    preview_core::validate::validate(&build.resources, &build.policy).expect("valid");
}

#[test]
fn environment_overrides() {
    let env = |name: &str| match name {
        "PREVIEW_DOMAIN" => Some("example.org".to_owned()),
        "PREVIEW_TLS_ISSUER" => Some("self-signed".to_owned()),
        _ => None,
    };
    let base =
        StackConfig::load_with_env(&config_dir(), StackKind::PreviewBase, &env).expect("base");
    assert_eq!(base.domain, "example.org");
    assert_eq!(base.tls.issuer, IssuerKind::SelfSigned);
    // preview-pr reads no TLS settings: the override does not apply (nor fail).
    let pr = StackConfig::load_with_env(&config_dir(), StackKind::PreviewPr, &env).expect("pr");
    assert_eq!(pr.domain, "example.org");
    // A missing domain can come from the environment alone.
    let c = StackConfig::from_source(
        Some(
            "nginxImage: docker.io/nginxinc/nginx-unprivileged@sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
        ),
        StackKind::PreviewPr,
        "config/preview-pr.yaml",
        &env,
    );
    let c = c.expect("the domain comes from the environment");
    assert_eq!(c.domain, "example.org");
    // (preview-pr also needs complete resources, checked against the app when it is built)
    let err = c.check_app().expect_err("resources").to_string();
    assert!(err.contains("config key `resources."), "{err}");
    let bad = |name: &str| (name == "PREVIEW_TLS_ISSUER").then(|| "letsencrypt-prod".to_owned());
    let err = StackConfig::load_with_env(&config_dir(), StackKind::PreviewBase, &bad)
        .expect_err("bad issuer");
    assert_eq!(
        err.to_string(),
        "PREVIEW_TLS_ISSUER=letsencrypt-prod: expected self-signed, letsencrypt-staging or letsencrypt"
    );
    // Self-signed preview-base needs no DigitalOcean token.
    let build = stacks::build(
        &support::request(StackKind::PreviewBase, None),
        &base,
        &stacks::References::new(),
        &FakeSecrets::without("DIGITALOCEAN_TOKEN"),
    )
    .expect("self-signed base");
    assert!(
        build
            .resources
            .iter()
            .any(|r| r.id.to_string() == "Issuer nginx-gateway/selfsigned-issuer")
    );
}

const BUNDLE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: nginx-gateway
  labels:
    pod-security.kubernetes.io/enforce: baseline
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: nginx
spec:
  controllerName: gateway.nginx.org/nginx-gateway-controller
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: nginx-gateway
  namespace: somewhere-else
";

fn bundle_dir(sha: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("bundles")).expect("mkdir");
    std::fs::write(dir.path().join("bundles/ngf.yaml"), BUNDLE).expect("write");
    let sha = sha.map_or_else(
        || format!("{:x}", Sha256::digest(BUNDLE.as_bytes())),
        str::to_owned,
    );
    let base = std::fs::read_to_string(config_dir().join("preview-base.yaml")).expect("base");
    let text = format!(
        "{base}\nbundles:\n  - name: ngf-test\n    path: bundles/ngf.yaml\n    sha256: {sha}\n    namespace: nginx-gateway\n"
    );
    std::fs::write(dir.path().join("preview-base.yaml"), text).expect("write");
    dir
}

#[test]
fn bundles_are_read_verified_and_merged() {
    let dir = bundle_dir(None);
    let config =
        StackConfig::load_with_env(dir.path(), StackKind::PreviewBase, &|_| None).expect("loads");
    assert_eq!(config.bundles.len(), 1);
    assert_eq!(config.bundles[0].bytes.as_deref(), Some(BUNDLE.as_bytes()));
    let build = stacks::build(
        &support::request(StackKind::PreviewBase, None),
        &config,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    // The bundle's GatewayClass replaces the stack's; its namespace override applies.
    let classes: Vec<&preview_core::Resource> = build
        .resources
        .iter()
        .filter(|r| r.id.kind == "GatewayClass")
        .collect();
    assert_eq!(classes.len(), 1);
    find(&build, "ServiceAccount nginx-gateway/nginx-gateway");
    // The Namespace is the stack's (labels for the policies, protected) plus the bundle's labels.
    let namespaces: Vec<&preview_core::Resource> = build
        .resources
        .iter()
        .filter(|r| r.id.to_string() == "Namespace nginx-gateway")
        .collect();
    assert_eq!(namespaces.len(), 1);
    let ns = namespaces[0];
    assert!(ns.options.protect);
    let labels = &ns.body["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    // The API server sets `kubernetes.io/metadata.name`; the stack sets no name
    // label of its own (the < 1.21 workaround is gone), nor a PodSecurity level
    // over the bundle's.
    assert!(
        labels.get("preview-envs.io/namespace").is_none(),
        "{labels}"
    );
    assert!(
        labels.get("kubernetes.io/metadata.name").is_none(),
        "{labels}"
    );
    assert!(
        labels.get("pod-security.kubernetes.io/warn").is_none(),
        "{labels}"
    );
    preview_core::graph::DesiredGraph::new(&build.name, build.resources).expect("graph");
}

#[test]
fn bundle_digest_mismatch_and_missing_file() {
    let wrong = "0".repeat(64);
    let dir = bundle_dir(Some(&wrong));
    let config =
        StackConfig::load_with_env(dir.path(), StackKind::PreviewBase, &|_| None).expect("loads");
    let err = stacks::build(
        &support::request(StackKind::PreviewBase, None),
        &config,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("mismatch");
    assert!(
        err.to_string().starts_with(&format!(
            "bundle ngf-test: sha256 mismatch: expected {wrong}, actual "
        )),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("bundles/ngf.yaml")).expect("rm");
    let err = StackConfig::load_with_env(dir.path(), StackKind::PreviewBase, &|_| None)
        .expect_err("no file");
    assert!(
        err.to_string().starts_with(&format!(
            "bundle `ngf-test` in {}: cannot read {}",
            dir.path().join("preview-base.yaml").display(),
            dir.path().join("bundles/ngf.yaml").display()
        )),
        "{err}"
    );
}

#[test]
fn pod_security_is_restricted_unless_relaxed_and_a_relaxation_is_noted() {
    let enforce = |build: &stacks::StackBuild, ns: &str| {
        find(build, &format!("Namespace {ns}")).body["metadata"]["labels"]
            ["pod-security.kubernetes.io/enforce"]
            .as_str()
            .map(str::to_owned)
    };
    for kind in support::ALL {
        let build = support::stack(kind);
        assert!(build.notes.is_empty(), "{}: {:?}", build.name, build.notes);
    }
    assert_eq!(
        enforce(&support::preview("123"), "preview-pr-123").as_deref(),
        Some("restricted")
    );
    let production = support::stack(StackKind::Production);
    assert_eq!(
        enforce(&production, "aphiria").as_deref(),
        Some("restricted")
    );

    let text = std::fs::read_to_string(config_dir().join("production.yaml")).expect("file");
    let relaxed = text.replace("# podSecurity: baseline\n", "podSecurity: baseline\n");
    assert_ne!(
        relaxed, text,
        "production.yaml shows the relaxation, commented out"
    );
    let config = StackConfig::from_yaml(&relaxed, StackKind::Production).expect("resolves");
    let build = stacks::build(
        &support::request(StackKind::Production, None),
        &config,
        &stacks::References::new(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    assert_eq!(enforce(&build, "aphiria").as_deref(), Some("baseline"));
    assert_eq!(
        build.notes,
        [
            "PodSecurity relaxed: namespace aphiria enforces `baseline`, not `restricted` (config key `podSecurity` in config/production.yaml); the stack's own pods stay restricted-compliant, other pods there may run as root"
        ]
    );
    // The pods are hardened either way.
    let web = find(&build, "Deployment aphiria/web");
    assert_eq!(
        web.body["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
}
