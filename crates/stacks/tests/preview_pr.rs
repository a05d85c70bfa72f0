//! The preview-pr requirements, checked on the built resources of PR 123 (and
//! PR 7 for isolation).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use preview_core::ResourceId;
use preview_core::state::Output;
use serde_json::{Value, json};
use stacks::StackKind;
use support::{API_IMAGE, DB_PASSWORD, FakeSecrets, ROLE_PASSWORD, WEB_IMAGE, find, preview};

#[test]
fn config_map_has_exactly_the_listed_keys_and_values() {
    let build = preview("123");
    let cm = find(&build, "ConfigMap preview-pr-123/env-vars-pr-123");
    let data: BTreeMap<String, String> =
        serde_json::from_value(cm.body["data"].clone()).expect("string data");
    let expected: BTreeMap<String, String> = [
        ("APP_ENV", "preview"),
        ("APP_WEB_URL", "https://123.pr.aphiria.com"),
        ("APP_API_URL", "https://123.pr-api.aphiria.com"),
        ("APP_COOKIE_DOMAIN", ".123.pr.aphiria.com"),
        ("APP_COOKIE_SECURE", "1"),
        (
            "APP_BUILDER_API",
            "\\Aphiria\\Framework\\Api\\SynchronousApiApplicationBuilder",
        ),
        (
            "APP_BUILDER_CONSOLE",
            "\\Aphiria\\Framework\\Console\\ConsoleApplicationBuilder",
        ),
        ("DB_HOST", "db.default.svc.cluster.local"),
        ("DB_PORT", "5432"),
        ("DB_NAME", "aphiria_pr_123"),
        // The PR's own role, never the server's superuser.
        ("DB_USER", "aphiria_pr_123"),
        ("DOC_LEXEMES_TABLE_NAME", ""),
        ("LOG_LEVEL", "debug"),
        ("PR_NUMBER", "123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(data, expected);
}

#[test]
fn secret_holds_only_the_database_role_password() {
    let build = preview("123");
    let secret = find(&build, "Secret preview-pr-123/env-var-secrets-pr-123");
    assert_eq!(
        secret.body["data"],
        json!({"DB_PASSWORD": STANDARD.encode(ROLE_PASSWORD)})
    );
    assert_eq!(secret.body["type"], "Opaque");
    // The server's superuser password is nowhere in the preview.
    let text = serde_json::to_string(&build.resources.iter().map(|r| &r.body).collect::<Vec<_>>())
        .expect("json");
    assert!(!text.contains(&STANDARD.encode(DB_PASSWORD)), "{text}");
    assert!(!text.contains(DB_PASSWORD));
}

#[test]
fn the_database_has_its_own_role() {
    let build = preview("123");
    let db = find(&build, "postgres Database aphiria_pr_123");
    assert_eq!(db.body["owner"], "aphiria_pr_123");
    assert_eq!(db.body["role"]["connectionLimit"], 20);
    let verifier = db.body["role"]["passwordVerifier"]
        .as_str()
        .expect("verifier");
    assert_eq!(
        verifier,
        preview_core::schema::database_role::scram_verifier(
            "aphiria_pr_123",
            &preview_core::secret::SecretString::new(ROLE_PASSWORD)
        )
    );
    assert!(db.is_secret_path("/role/passwordVerifier"));
    assert!(!db.body.to_string().contains(ROLE_PASSWORD));
}

#[test]
fn the_role_password_never_comes_from_the_environment() {
    // Without the generated password the stack does not build, whatever the
    // secrets say (DB_PASSWORD is the superuser's, and is not read at all).
    let mut req = support::request(stacks::StackKind::PreviewPr, Some("123"));
    req.db_role_password = None;
    let err = support::build_with(
        &req,
        &support::config(stacks::StackKind::PreviewPr),
        &support::references(),
        &FakeSecrets::all(),
    )
    .expect_err("no generated password");
    assert!(
        err.to_string().contains("PREVIEW_STATE_PASSPHRASE"),
        "{err}"
    );
    let without = support::build_with(
        &support::request(stacks::StackKind::PreviewPr, Some("123")),
        &support::config(stacks::StackKind::PreviewPr),
        &support::references(),
        &FakeSecrets::without("DB_PASSWORD"),
    );
    assert!(without.is_ok(), "{:?}", without.err());
}

#[test]
fn namespace_quota_and_isolation() {
    let build = preview("123");
    let ns = find(&build, "Namespace preview-pr-123");
    assert_eq!(ns.id.namespace, None);
    let labels = &ns.body["metadata"]["labels"];
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels[format!("pod-security.kubernetes.io/{mode}")],
            "restricted",
            "{labels}"
        );
    }
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce-version"],
        "v1.33"
    );
    assert!(
        labels.get("kubernetes.io/metadata.name").is_none(),
        "{labels}"
    );
    let quota = find(&build, "ResourceQuota preview-pr-123/preview-pr-123-quota");
    assert_eq!(
        quota.body["spec"]["hard"],
        json!({"limits.cpu": "2", "limits.ephemeral-storage": "4Gi", "limits.memory": "4Gi",
               "pods": "5", "requests.cpu": "2", "requests.ephemeral-storage": "4Gi",
               "requests.memory": "4Gi"})
    );
    let policies: BTreeSet<&str> = build
        .resources
        .iter()
        .filter(|r| r.id.kind == "NetworkPolicy")
        .map(|r| r.id.name.as_str())
        .collect();
    assert_eq!(
        policies,
        BTreeSet::from([
            "default-deny-all",
            "allow-ingress-from-gateway",
            "allow-egress-dns",
            "allow-egress-database"
        ])
    );
    let ingress = find(
        &build,
        "NetworkPolicy preview-pr-123/allow-ingress-from-gateway",
    );
    assert_eq!(
        ingress.body["spec"]["ingress"][0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nginx-gateway"}}}])
    );
    // The pods' port, behind the Services' port 80.
    assert_eq!(
        ingress.body["spec"]["ingress"][0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    let db = find(&build, "NetworkPolicy preview-pr-123/allow-egress-database");
    let egress = &db.body["spec"]["egress"][0];
    assert_eq!(
        egress["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "default"
    );
    assert_eq!(egress["ports"], json!([{"port": 5432, "protocol": "TCP"}]));
}

#[test]
fn database_is_owned_by_the_stack() {
    let build = preview("123");
    let db = find(&build, "postgres Database aphiria_pr_123");
    assert_eq!(
        db.body,
        json!({"owner": "aphiria_pr_123",
               "server": {"host": "db.default.svc.cluster.local", "port": 5432},
               "ownerMarker": "preview-pr-123",
               "role": db.body["role"],
               // The in-cluster executor's Jobs: in the server's namespace, with
               // the server's image and credentials, read from preview-base.
               "job": {"namespace": "default",
                       "image": db.body["job"]["image"],
                       "credentialsSecret": "db-credentials"}})
    );
    let image = db.body["job"]["image"].as_str().expect("image");
    assert!(
        image.contains("postgres:16") && image.contains("@sha256:"),
        "{image}"
    );
}

#[test]
fn migrations_gate_the_api() {
    let build = preview("123");
    let job = build
        .resources
        .iter()
        .find(|r| r.id.kind == "Job")
        .expect("migration job");
    assert!(job.id.name.starts_with("db-migration-"), "{}", job.id);
    let db_id = find(&build, "postgres Database aphiria_pr_123").id.clone();
    assert!(job.depends_on.contains(&db_id));
    let command = &job.body["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(
        command[2],
        "/app/api/vendor/bin/phinx migrate && /app/api/vendor/bin/phinx seed:run -s LexemeSeeder"
    );
    assert_eq!(
        job.body["spec"]["template"]["spec"]["containers"][0]["image"],
        API_IMAGE
    );
    let api = find(&build, "Deployment preview-pr-123/api");
    assert!(api.depends_on.contains(&job.id));
    // And the engine's graph orders them so.
    let graph = preview_core::graph::DesiredGraph::new(&build.name, build.resources.clone())
        .expect("graph");
    let position = |id: &ResourceId| {
        graph
            .order()
            .iter()
            .position(|o| o == id)
            .expect("in order")
    };
    assert!(position(&db_id) < position(&job.id));
    assert!(position(&job.id) < position(&api.id));
}

#[test]
fn workloads_use_the_pinned_images_and_one_replica() {
    let build = preview("123");
    let web = find(&build, "Deployment preview-pr-123/web");
    assert_eq!(web.body["spec"]["replicas"], 1);
    assert_eq!(
        web.body["spec"]["template"]["spec"]["containers"][0]["image"],
        WEB_IMAGE
    );
    let api = find(&build, "Deployment preview-pr-123/api");
    assert_eq!(api.body["spec"]["replicas"], 1);
    let images: BTreeMap<String, String> = api.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["image"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(images["php"], API_IMAGE);
    assert!(
        images["nginx"].starts_with("docker.io/nginxinc/nginx-unprivileged:1.27-alpine@sha256:")
    );
    let js = find(&build, "ConfigMap preview-pr-123/js-config");
    assert!(
        js.body["data"]["config.js"]
            .as_str()
            .expect("config.js")
            .contains("apiUri: \"https://123.pr-api.aphiria.com\"")
    );
    for service in ["Service preview-pr-123/web", "Service preview-pr-123/api"] {
        find(&build, service);
    }
    // Every container has requests and limits (the namespace has a quota).
    for r in &build.resources {
        let Some(pod) = r.body.pointer("/spec/template/spec") else {
            continue;
        };
        for list in ["containers", "initContainers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                for path in [
                    "/requests/cpu",
                    "/requests/memory",
                    "/limits/cpu",
                    "/limits/memory",
                ] {
                    assert!(
                        c["resources"].pointer(path).is_some(),
                        "{} {} lacks resources{path}",
                        r.id,
                        c["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn routes_attach_to_the_base_gateway_with_limits() {
    let build = preview("123");
    for (name, host, section) in [
        ("web", "123.pr.aphiria.com", "https-pr"),
        ("api", "123.pr-api.aphiria.com", "https-pr-api"),
    ] {
        let route = find(&build, &format!("HTTPRoute preview-pr-123/{name}"));
        let spec = &route.body["spec"];
        assert_eq!(spec["hostnames"], json!([host]));
        assert_eq!(spec["parentRefs"][0]["name"], "preview-gateway", "{name}");
        assert_eq!(spec["parentRefs"][0]["namespace"], "nginx-gateway");
        assert_eq!(spec["parentRefs"][0]["sectionName"], section);
        assert_eq!(spec["rules"][0]["backendRefs"][0]["name"], name);
        assert_eq!(
            spec["rules"][0]["filters"][0]["extensionRef"]["kind"],
            "SnippetsFilter"
        );
        let filter = find(
            &build,
            &format!("SnippetsFilter preview-pr-123/{name}-limits"),
        );
        let snippets = filter.body["spec"]["snippets"].to_string();
        assert!(
            snippets.contains("limit_conn preview-pr-123-"),
            "{snippets}"
        );
    }
}

#[test]
fn outputs() {
    let build = preview("123");
    let plain = |v: &str| Output::Plain(Value::from(v));
    assert_eq!(
        build.outputs,
        BTreeMap::from([
            ("webUrl".to_owned(), plain("https://123.pr.aphiria.com")),
            ("apiUrl".to_owned(), plain("https://123.pr-api.aphiria.com")),
            ("namespace".to_owned(), plain("preview-pr-123")),
            ("databaseName".to_owned(), plain("aphiria_pr_123")),
            ("webImage".to_owned(), plain(WEB_IMAGE)),
            ("apiImage".to_owned(), plain(API_IMAGE)),
        ])
    );
    assert_eq!(build.name, "preview-pr-123");
    assert!(build.policy.require_image_digests);
    assert!(build.policy.require_resources_in_quota_namespaces);
}

#[test]
fn two_previews_share_no_object() {
    let a = preview("123");
    let b = preview("7");
    let ids = |build: &stacks::StackBuild| -> BTreeSet<ResourceId> {
        build.resources.iter().map(|r| r.id.clone()).collect()
    };
    let (ia, ib) = (ids(&a), ids(&b));
    assert!(
        ia.is_disjoint(&ib),
        "shared: {:?}",
        ia.intersection(&ib).collect::<Vec<_>>()
    );
    // The only objects outside the preview's namespace are its own Namespace and database.
    let outside: Vec<String> = a
        .resources
        .iter()
        .filter(|r| r.id.namespace.as_deref() != Some("preview-pr-123"))
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        outside,
        [
            "Namespace preview-pr-123",
            "postgres Database aphiria_pr_123"
        ]
    );
    // Nor does a preview touch anything of the base.
    let base = ids(&support::base());
    assert!(ia.is_disjoint(&base));
    // Connection-limit zones are global to nginx: they differ too.
    let zones = |build: &stacks::StackBuild| -> String {
        build
            .resources
            .iter()
            .filter(|r| r.id.kind == "SnippetsFilter")
            .map(|r| r.body["spec"].to_string())
            .collect()
    };
    assert!(zones(&a).contains("zone=preview-pr-123-web-conn"));
    assert!(zones(&b).contains("zone=preview-pr-7-web-conn"));
}

#[test]
fn pull_secret_when_configured() {
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("file")
        .replace(
            "registryPullSecret: false",
            "registryPullSecret: true\nregistryUser: aphiria-bot",
        );
    let config = support::config_from(&text, StackKind::PreviewPr).expect("config");
    let build = support::build_with(
        &support::request(StackKind::PreviewPr, Some("123")),
        &config,
        &support::references(),
        &FakeSecrets::all(),
    )
    .expect("builds");
    let secret = find(&build, "Secret preview-pr-123/registry-credentials");
    assert_eq!(secret.body["type"], "kubernetes.io/dockerconfigjson");
    for deployment in ["web", "api"] {
        let d = find(&build, &format!("Deployment preview-pr-123/{deployment}"));
        assert_eq!(
            d.body["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "registry-credentials"}])
        );
    }
    let err = support::build_with(
        &support::request(StackKind::PreviewPr, Some("123")),
        &config,
        &support::references(),
        &FakeSecrets::without("REGISTRY_TOKEN"),
    )
    .expect_err("no token");
    assert!(
        err.to_string().starts_with("missing secret REGISTRY_TOKEN"),
        "{err}"
    );
}

#[test]
fn every_pod_is_restricted_compliant_and_listens_unprivileged() {
    let build = preview("123");
    let workloads: Vec<&preview_core::Resource> = build
        .resources
        .iter()
        .filter(|r| matches!(r.id.kind.as_str(), "Deployment" | "Job"))
        .collect();
    assert_eq!(workloads.len(), 3, "web, api, migration");
    for w in workloads {
        let pod = &w.body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{}", w.id);
        assert_eq!(
            pod["securityContext"],
            json!({"runAsGroup": 101, "runAsNonRoot": true, "runAsUser": 101,
                   "seccompProfile": {"type": "RuntimeDefault"}}),
            "{}",
            w.id
        );
        for key in ["containers", "initContainers"] {
            for c in pod[key].as_array().into_iter().flatten() {
                assert_eq!(
                    c["securityContext"],
                    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
                    "{} {}",
                    w.id,
                    c["name"]
                );
                for section in ["requests", "limits"] {
                    assert!(
                        c["resources"][section]["ephemeral-storage"].is_string(),
                        "{} {} {section}",
                        w.id,
                        c["name"]
                    );
                }
                for port in c["ports"].as_array().into_iter().flatten() {
                    assert!(
                        port["containerPort"].as_u64() >= Some(1024),
                        "{} {port}",
                        w.id
                    );
                }
            }
        }
    }
    for name in ["web", "api"] {
        let service = find(&build, &format!("Service preview-pr-123/{name}"));
        assert_eq!(
            service.body["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}])
        );
        let deployment = find(&build, &format!("Deployment preview-pr-123/{name}"));
        let containers = &deployment.body["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["ports"][0]["name"], "http");
        assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    }
    let conf = find(&build, "ConfigMap preview-pr-123/nginx-config").body["data"]["default.conf"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(conf.contains("listen 8080;"), "{conf}");
}
