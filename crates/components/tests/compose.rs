//! The components composed the way the stacks compose them, checked against the
//! engine's own static validation and graph construction (no cluster needed).

use std::collections::BTreeMap;

use components::{
    AcmeDigitalOcean, AcmeServer, Api, ComputeResources, DatabaseEgress, EnvConfigMap, EnvSecret,
    GatewayRef, HttpRoute, ImagePullSecret, Labels, LogicalDatabase, MigrationJob,
    NetworkIsolation, PodSecurity, PostgresServer, PreviewGateway, PreviewNamespace, Quota,
    Storage, TlsIssuer, Web, WildcardHost,
};
use preview_core::graph::DesiredGraph;
use preview_core::resource::CONFIG_HASH_ANNOTATION;
use preview_core::secret::SecretString;
use preview_core::validate::{Policy, validate};
use preview_core::{Resource, ResourceId};
use serde_json::Value;

const DOMAIN: &str = "aphiria.com";
const WEB_IMAGE: &str = "registry.digitalocean.com/aphiria/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const API_IMAGE: &str = "registry.digitalocean.com/aphiria/api@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const NGINX_IMAGE: &str = "docker.io/library/nginx@sha256:3333333333333333333333333333333333333333333333333333333333333333";
const POSTGRES_IMAGE: &str = "docker.io/library/postgres@sha256:4444444444444444444444444444444444444444444444444444444444444444";

/// The resources of `preview-pr-<pr>` (what the stack renders, minus config files).
fn preview_pr(pr: u32, db_name: &str) -> Vec<Resource> {
    let ns = format!("preview-pr-{pr}");
    let labels = Labels::for_instance("aphiria", &ns);
    let small = ComputeResources::new("100m", "128Mi", "250m", "256Mi")
        .with_ephemeral_storage("64Mi", "256Mi");

    let mut network = NetworkIsolation::new("nginx-gateway");
    network.database = Some(DatabaseEgress::in_cluster("default"));
    let namespace = PreviewNamespace {
        labels: labels.clone(),
        pod_security: Some(PodSecurity::default()),
        quota: Some(Quota {
            cpu: "2".into(),
            memory: "4Gi".into(),
            ephemeral_storage: Some("4Gi".into()),
            pods: 5,
        }),
        network: Some(network),
        ..PreviewNamespace::new(&ns)
    }
    .build()
    .expect("namespace");

    let database = LogicalDatabase::new(db_name, "aphiria", "db.default.svc.cluster.local", &ns)
        .build()
        .expect("database");
    let env = EnvConfigMap {
        labels: labels.clone(),
        ..EnvConfigMap::new(
            &ns,
            format!("env-vars-pr-{pr}"),
            BTreeMap::from([
                ("APP_ENV".to_owned(), "preview".to_owned()),
                (
                    "DB_HOST".to_owned(),
                    "db.default.svc.cluster.local".to_owned(),
                ),
                ("DB_NAME".to_owned(), db_name.to_owned()),
            ]),
        )
    }
    .build()
    .expect("env");
    let secret = EnvSecret::new(
        &ns,
        format!("env-var-secrets-pr-{pr}"),
        BTreeMap::from([("DB_PASSWORD".to_owned(), SecretString::new("pw"))]),
    )
    .build()
    .expect("secret");
    let job = MigrationJob {
        labels: labels.clone(),
        resources: Some(small.clone()),
        ..MigrationJob::new(&ns, API_IMAGE, &env.id.name, &secret.id.name)
    }
    .with_config(&[&env, &secret])
    .build()
    .expect("job")
    .depends_on(&database.id);
    let api = Api {
        labels: labels.clone(),
        nginx_resources: Some(small.clone()),
        php_resources: Some(small.clone()),
        init_resources: Some(small.clone()),
        ..Api::new(
            &ns,
            API_IMAGE,
            NGINX_IMAGE,
            &env.id.name,
            &secret.id.name,
            job.id.clone(),
        )
    }
    .build()
    .expect("api");
    let web = Web {
        labels: labels.clone(),
        resources: Some(small),
        ..Web::new(&ns, WEB_IMAGE, format!("https://{pr}.pr-api.{DOMAIN}"))
    }
    .build()
    .expect("web");
    let listener = |section: &str| GatewayRef {
        name: "preview-gateway".into(),
        namespace: "nginx-gateway".into(),
        section_name: Some(section.into()),
    };
    let web_route = HttpRoute::new(
        "web",
        &ns,
        format!("{pr}.pr.{DOMAIN}"),
        "web",
        listener("https-pr"),
    )
    .build()
    .expect("web route");
    let api_route = HttpRoute::new(
        "api",
        &ns,
        format!("{pr}.pr-api.{DOMAIN}"),
        "api",
        listener("https-pr-api"),
    )
    .build()
    .expect("api route");

    let mut out = namespace.into_resources();
    out.extend([database, env, secret, job]);
    out.extend(api.into_resources());
    out.extend(web.into_resources());
    out.extend(web_route.into_resources());
    out.extend(api_route.into_resources());
    out
}

/// The resources of `preview-base` (without the upstream bundles).
fn preview_base() -> Vec<Resource> {
    let gateway_ns = PreviewNamespace::new("nginx-gateway").build().expect("ns");
    let postgres = PostgresServer {
        storage: Some(Storage::new("10Gi")),
        ..PostgresServer::new(POSTGRES_IMAGE, "aphiria", SecretString::new("pw"))
    }
    .build()
    .expect("postgres");
    let gateway = PreviewGateway::new(
        "preview-gateway",
        "nginx-gateway",
        vec![
            WildcardHost::for_subdomain("pr", DOMAIN),
            WildcardHost::for_subdomain("pr-api", DOMAIN),
        ],
        TlsIssuer::Acme(AcmeDigitalOcean::lets_encrypt(
            AcmeServer::Staging,
            "admin@aphiria.com",
            "digitalocean-dns",
        )),
    )
    .build()
    .expect("gateway");
    let pull = ImagePullSecret::new(
        "default",
        "registry.digitalocean.com",
        "aphiria",
        SecretString::new("token"),
    )
    .build()
    .expect("pull secret");
    let mut out = gateway_ns.into_resources();
    out.extend(postgres.into_resources());
    out.extend(gateway.into_resources());
    out.push(pull);
    out
}

fn strict() -> Policy {
    Policy {
        require_image_digests: true,
        ..Policy::default()
    }
}

fn find<'a>(graph: &'a DesiredGraph, kind: &str, name_prefix: &str) -> &'a Resource {
    graph
        .resources()
        .find(|r| r.id.kind == kind && r.id.name.starts_with(name_prefix))
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}"))
}

fn position(graph: &DesiredGraph, id: &ResourceId) -> usize {
    graph
        .order()
        .iter()
        .position(|o| o == id)
        .unwrap_or_else(|| panic!("{id} not ordered"))
}

#[test]
fn preview_pr_passes_the_engines_static_checks() {
    let resources = preview_pr(123, "aphiria_pr_123");
    if let Err(e) = validate(&resources, &strict()) {
        panic!("{e}");
    }
}

#[test]
fn preview_base_passes_the_engines_static_checks() {
    let resources = preview_base();
    if let Err(e) = validate(&resources, &strict()) {
        panic!("{e}");
    }
    DesiredGraph::new("preview-base", resources).expect("graph");
}

#[test]
fn preview_pr_graph_orders_database_migration_api() {
    let graph =
        DesiredGraph::new("preview-pr-123", preview_pr(123, "aphiria_pr_123")).expect("graph");
    let database = find(&graph, "Database", "aphiria_pr_123");
    let job = find(&graph, "Job", "db-migration-");
    let api = find(&graph, "Deployment", "api");
    assert!(position(&graph, &database.id) < position(&graph, &job.id));
    assert!(position(&graph, &job.id) < position(&graph, &api.id));
    assert!(graph.dependencies(&api.id).contains(&job.id));
    let filter = find(&graph, "SnippetsFilter", "web-limits");
    let route = graph
        .resources()
        .find(|r| r.id.kind == "HTTPRoute" && r.id.name == "web")
        .expect("route");
    assert!(graph.dependencies(&route.id).contains(&filter.id));
}

#[test]
fn workloads_get_a_config_hash_and_it_follows_the_config() {
    let hashes = |db: &str| -> BTreeMap<String, String> {
        let graph = DesiredGraph::new("preview-pr-123", preview_pr(123, db)).expect("graph");
        graph
            .resources()
            .filter(|r| matches!(r.id.kind.as_str(), "Deployment" | "Job"))
            .map(|r| {
                let hash = r.body["spec"]["template"]["metadata"]["annotations"]
                    [CONFIG_HASH_ANNOTATION]
                    .as_str()
                    .unwrap_or_else(|| panic!("{} has no config hash", r.id))
                    .to_owned();
                (
                    r.id.name.split('-').next().unwrap_or_default().to_owned(),
                    hash,
                )
            })
            .collect()
    };
    let a = hashes("aphiria_pr_123");
    let b = hashes("aphiria_pr_124");
    assert_eq!(a.len(), 3, "{a:?}");
    assert_ne!(a["api"], b["api"]);
    assert_ne!(a["db"], b["db"]);
    // The web pods only read js-config, which did not change.
    assert_eq!(a["web"], b["web"]);
}

#[test]
fn every_container_sets_list_map_keys_and_a_pinned_image() {
    let mut resources = preview_pr(123, "aphiria_pr_123");
    resources.extend(preview_base());
    let mut containers = 0;
    for resource in &resources {
        let Some(pod) = resource.body.pointer("/spec/template/spec") else {
            continue;
        };
        for list in ["containers", "initContainers"] {
            for container in pod
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                containers += 1;
                let name = container["name"].as_str().unwrap_or_default();
                assert!(!name.is_empty(), "{}: container without name", resource.id);
                let image = container["image"].as_str().unwrap_or_default();
                assert!(
                    image.contains("@sha256:") && !image.contains(":latest"),
                    "{image}"
                );
                for port in container
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    assert_eq!(port["protocol"], "TCP", "{}: {name}: {port}", resource.id);
                }
            }
        }
    }
    assert_eq!(containers, 6, "web 1, api 3 (one init), job 1, postgres 1");
    for resource in resources.iter().filter(|r| r.id.kind == "Service") {
        for port in resource.body["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(port["protocol"], "TCP", "{}", resource.id);
        }
    }
}

#[test]
fn two_previews_never_share_an_object() {
    let a = preview_pr(123, "aphiria_pr_123");
    let b = preview_pr(124, "aphiria_pr_124");
    for ra in &a {
        assert!(
            b.iter().all(|rb| rb.id != ra.id),
            "{} is rendered by both previews",
            ra.id
        );
    }
    // NGINX zone names are global: they must differ too.
    let zones = |resources: &[Resource]| -> Vec<String> {
        resources
            .iter()
            .filter(|r| r.id.kind == "SnippetsFilter")
            .map(|r| {
                r.body["spec"]["snippets"][0]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    for za in zones(&a) {
        assert!(!zones(&b).contains(&za), "{za}");
    }
}
