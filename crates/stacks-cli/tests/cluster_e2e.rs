//! The stacks end to end on the real control plane (node simulator standing in for
//! the kubelet and gateway, the real cert-manager issuing the base's wildcard
//! certificate) and a real PostgreSQL: `up preview-base`, then two
//! `preview-pr` stacks side by side; every requirement is checked directly on the
//! cluster; destroying one preview leaves the other and the base untouched.

mod support_cluster;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::ListParams;
use support_cluster::{Stacks, digest, pr_args, world};

fn up(stacks: &Stacks, pr: u64) -> serde_json::Value {
    let mut a = vec![
        "--json".to_owned(),
        "up".to_owned(),
        "preview-pr".to_owned(),
    ];
    a.extend(pr_args(pr));
    let out = stacks.ok(&a);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let created = report["plan"]["summary"]["create"].as_u64().unwrap_or(0);
    let done = check_progress_lines(&String::from_utf8_lossy(&out.stderr));
    assert!(created == 0 || done > 0, "a ✓ line per created resource");
    report
}

/// The plain progress lines (no terminal) keep the form scripts read:
/// `  ✓ Kind ns/name created (1.2s)`, no colour codes.
fn check_progress_lines(stderr: &str) -> usize {
    let done: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ✓ ")).collect();
    for line in &done {
        let (_, tail) = line.rsplit_once(" (").unwrap_or_else(|| panic!("{line}"));
        let seconds = tail
            .strip_suffix("s)")
            .unwrap_or_else(|| panic!("elapsed in seconds: {line}"));
        assert!(
            seconds.parse::<f64>().is_ok() && seconds.contains('.'),
            "{line}"
        );
        let verb = line
            .trim_end_matches(&format!(" ({tail}"))
            .rsplit(' ')
            .next();
        assert!(
            matches!(
                verb,
                Some(
                    "created"
                        | "updated"
                        | "replaced"
                        | "deleted"
                        | "imported"
                        | "unchanged"
                        | "untouched"
                )
            ),
            "{line}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in CI: {stderr}"
    );
    done.len()
}

/// `stacks preview --detailed-exitcode` of PR `pr`: 0 no changes, 2 changes.
fn preview_exit_code(stacks: &Stacks, pr: u64) -> Option<i32> {
    let mut a = vec![
        "preview".to_owned(),
        "preview-pr".to_owned(),
        "--detailed-exitcode".to_owned(),
    ];
    a.extend(pr_args(pr));
    stacks.run(&a).status.code()
}

async fn database_exists(name: &str) -> bool {
    let pg = world().await.pg.client().await.expect("pg");
    pg.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query")
        .is_some()
}

async fn role_exists(name: &str) -> bool {
    let pg = world().await.pg.client().await.expect("pg");
    pg.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .expect("query")
        .is_some()
}

async fn httproute_hosts(client: &kube::Client, ns: &str) -> BTreeSet<String> {
    let ar = kube::core::ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let mut hosts = BTreeSet::new();
    for r in api
        .list(&ListParams::default())
        .await
        .expect("routes")
        .items
    {
        for h in r.data["spec"]["hostnames"].as_array().into_iter().flatten() {
            hosts.insert(h.as_str().unwrap_or_default().to_owned());
        }
    }
    hosts
}

async fn check_preview(client: &kube::Client, pr: u64) {
    let ns = format!("preview-pr-{pr}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live = namespaces
        .get_opt(&ns)
        .await
        .expect("get ns")
        .unwrap_or_else(|| panic!("namespace {ns}"));
    // PodSecurity `restricted` is enforced (the pods below were admitted under it),
    // and the name label the NetworkPolicies select is the API server's own.
    let labels = live.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted"),
        "{labels:?}"
    );
    assert_eq!(
        labels.get("kubernetes.io/metadata.name"),
        Some(&ns),
        "{labels:?}"
    );

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let quota = quotas
        .list(&ListParams::default())
        .await
        .expect("quotas")
        .items;
    assert_eq!(quota.len(), 1, "one ResourceQuota");
    let hard = quota[0]
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .expect("hard");
    let q = |k: &str| hard.get(k).map(|v| v.0.clone());
    assert_eq!(
        q("limits.cpu").or(q("requests.cpu")).as_deref(),
        Some("2"),
        "{hard:?}"
    );
    assert_eq!(
        q("limits.memory").or(q("requests.memory")).as_deref(),
        Some("4Gi"),
        "{hard:?}"
    );
    assert_eq!(q("pods").as_deref(), Some("5"), "{hard:?}");
    assert_eq!(
        q("limits.ephemeral-storage").as_deref(),
        Some("4Gi"),
        "{hard:?}"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let env = cms
        .get(&format!("env-vars-pr-{pr}"))
        .await
        .expect("env configmap");
    let data = env.data.expect("data");
    let expect: BTreeMap<&str, String> = [
        ("APP_ENV", "preview".to_owned()),
        ("APP_WEB_URL", format!("https://{pr}.pr.aphiria.com")),
        ("APP_API_URL", format!("https://{pr}.pr-api.aphiria.com")),
        ("APP_COOKIE_DOMAIN", format!(".{pr}.pr.aphiria.com")),
        ("APP_COOKIE_SECURE", "1".to_owned()),
        ("DB_HOST", "db.default.svc.cluster.local".to_owned()),
        ("DB_PORT", "5432".to_owned()),
        ("DB_NAME", format!("aphiria_pr_{pr}")),
        // The PR's own role, never the server's superuser.
        ("DB_USER", format!("aphiria_pr_{pr}")),
        ("PR_NUMBER", pr.to_string()),
    ]
    .into_iter()
    .collect();
    for (k, v) in &expect {
        assert_eq!(data.get(*k), Some(v), "ConfigMap key {k}");
    }
    for k in [
        "APP_BUILDER_API",
        "APP_BUILDER_CONSOLE",
        "DOC_LEXEMES_TABLE_NAME",
        "LOG_LEVEL",
    ] {
        assert!(data.contains_key(k), "ConfigMap key {k}: {data:?}");
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = secrets
        .get(&format!("env-var-secrets-pr-{pr}"))
        .await
        .expect("env secret");
    let keys: BTreeSet<String> = s.data.unwrap_or_default().into_keys().collect();
    assert!(keys.contains("DB_PASSWORD"), "{keys:?}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for (name, image_digest) in [("web", digest(pr)), ("api", digest(pr + 1_000_000))] {
        let d = deployments
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("deployment {name}: {e}"));
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(1), "{name} replicas");
        let images: Vec<String> = spec
            .template
            .spec
            .expect("pod spec")
            .containers
            .into_iter()
            .filter_map(|c| c.image)
            .collect();
        assert!(
            images
                .iter()
                .any(|i| i.ends_with(&format!("@sha256:{image_digest}"))),
            "{name} runs the digest it was given: {images:?}"
        );
        assert!(
            images.iter().all(|i| i.contains("@sha256:")),
            "{name}: every image pinned: {images:?}"
        );
        let status = d.status.expect("status");
        assert_eq!(status.available_replicas, Some(1), "{name} available");
    }
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for name in ["web", "api"] {
        services
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("service {name}: {e}"));
    }

    // Migrations + seeder completed before the API Deployment was created.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = jobs.list(&ListParams::default()).await.expect("jobs").items;
    assert_eq!(job.len(), 1, "one migration job");
    let completed = job[0]
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .expect("job completed");
    let api = deployments.get("api").await.expect("api");
    let api_created = api.metadata.creation_timestamp.expect("created");
    assert!(
        api_created.0 >= completed.0,
        "API applied only after the migration job completed"
    );

    assert_eq!(
        httproute_hosts(client, &ns).await,
        [
            format!("{pr}.pr.aphiria.com"),
            format!("{pr}.pr-api.aphiria.com")
        ]
        .into_iter()
        .collect(),
        "HTTPRoute hostnames"
    );

    // Isolation: default deny, and nothing admits traffic from other previews.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let policies = policies
        .list(&ListParams::default())
        .await
        .expect("netpols")
        .items;
    assert!(
        policies.iter().any(|p| {
            let spec = p.spec.as_ref().expect("spec");
            spec.pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_none_or(|m| m.is_empty())
                && spec.ingress.as_ref().is_none_or(|i| i.is_empty())
                && spec
                    .policy_types
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == "Ingress"))
        }),
        "a default-deny ingress policy"
    );
    // Every namespace an ingress rule admits is the gateway's: never another preview.
    let admitted: BTreeSet<String> = policies
        .iter()
        .flat_map(|p| p.spec.iter().flat_map(|s| s.ingress.iter().flatten()))
        .flat_map(|rule| rule.from.iter().flatten())
        .filter_map(|peer| peer.namespace_selector.as_ref()?.match_labels.clone())
        .flat_map(|labels| labels.into_values())
        .collect();
    assert!(
        !admitted.is_empty(),
        "ingress is admitted from somewhere (the gateway)"
    );
    assert!(
        admitted.iter().all(|ns| ns == "nginx-gateway"),
        "only the gateway namespace is admitted: {admitted:?}"
    );

    assert!(
        database_exists(&format!("aphiria_pr_{pr}")).await,
        "database aphiria_pr_{pr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_and_two_previews_side_by_side_then_destroy_one() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let stacks = Stacks::new(world);

    let first = up(&stacks, 123);
    assert_eq!(
        first["outputs"]["webUrl"], "https://123.pr.aphiria.com",
        "{first}"
    );
    assert_eq!(
        first["outputs"]["apiUrl"], "https://123.pr-api.aphiria.com",
        "{first}"
    );
    assert_eq!(preview_exit_code(&stacks, 7), Some(2), "changes pending");
    // Colours only when asked for (or forced): never in a pipe by default.
    let colored = |flags: &[&str], env: Option<(&str, &str)>| {
        let mut a: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        a.extend(["preview".to_owned(), "preview-pr".to_owned()]);
        a.extend(pr_args(7));
        let mut command = stacks.command(&a);
        command.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let out = command.output().expect("run stacks");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).contains('\u{1b}')
    };
    assert!(!colored(&[], None), "no colour in a pipe");
    assert!(colored(&["--color", "always"], None), "--color always");
    assert!(
        colored(&[], Some(("CLICOLOR_FORCE", "1"))),
        "CLICOLOR_FORCE"
    );
    assert!(
        !colored(&["--color", "never"], Some(("CLICOLOR_FORCE", "1"))),
        "--color never wins"
    );
    up(&stacks, 7);
    check_preview(&client, 123).await;
    check_preview(&client, 7).await;

    // A second up of an unchanged stack writes nothing.
    let again = up(&stacks, 123);
    assert_eq!(again["requests"]["writes"], 0, "{again}");
    assert_eq!(again["plan"]["summary"]["create"], 0, "{again}");
    assert_eq!(preview_exit_code(&stacks, 123), Some(0), "no changes");

    // The two previews share no namespaced object.
    let state_of = |pr: u64| {
        let text = std::fs::read_to_string(stacks.state.join(format!("preview-pr-{pr}.json")))
            .expect("state");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["state"]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| r["id"].to_string())
            .collect::<BTreeSet<_>>()
    };
    let (a, b) = (state_of(123), state_of(7));
    assert!(
        a.is_disjoint(&b),
        "shared: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );

    // Destroy PR 7: its namespace and database go; PR 123 and the base stay.
    let base_before = std::fs::read(stacks.state.join("preview-base.json")).expect("base state");
    stacks.ok(&["destroy", "preview-pr", "--pr", "7"]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt("preview-pr-7")
            .await
            .expect("get")
            .is_none(),
        "namespace gone"
    );
    assert!(!database_exists("aphiria_pr_7").await, "database dropped");
    assert!(!role_exists("aphiria_pr_7").await, "role dropped");
    assert!(role_exists("aphiria_pr_123").await);
    check_preview(&client, 123).await;
    assert_eq!(
        std::fs::read(stacks.state.join("preview-base.json")).expect("base state"),
        base_before,
        "base state untouched"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    assert!(
        services.get_opt("db").await.expect("get").is_some(),
        "base database service untouched"
    );

    stacks.ok(&["destroy", "preview-pr", "--pr", "123"]);
    assert!(!database_exists("aphiria_pr_123").await);
    assert!(!role_exists("aphiria_pr_123").await);
}

/// The base's wildcard Certificate (`up preview-base` waited for it) was made
/// Ready by the real cert-manager, from the self-signed Issuer the test config
/// selects: Secret `tls-cert` holds a real certificate for both wildcards,
/// written by cert-manager's own user. (Let's Encrypt over DNS-01 cannot be
/// tested here: no network.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wildcard_certificate_is_issued_by_the_real_cert_manager() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let ar = kube::core::ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    };
    let certificates: Api<kube::core::DynamicObject> =
        Api::namespaced_with(client.clone(), "nginx-gateway", &ar);
    let certificate = certificates.get("wildcard-tls").await.expect("Certificate");
    let ready = certificate.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .expect("Ready condition");
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(ready["reason"], "Ready", "{ready}");
    assert_eq!(
        certificate.data["spec"]["issuerRef"]["name"], "selfsigned-issuer",
        "the test config selects the self-signed issuer"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "nginx-gateway");
    let secret = secrets.get("tls-cert").await.expect("Secret tls-cert");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.expect("data");
    assert!(data.contains_key("tls.key"));
    let info = testkit::x509::inspect(&data["tls.crt"].0)
        .await
        .expect("a real certificate");
    assert_eq!(info.dns_names, ["*.pr.aphiria.com", "*.pr-api.aphiria.com"]);
    assert_eq!(info.issuer, info.subject, "self-signed");

    let writes = world
        .cluster
        .audit_events_by(testkit::CERT_MANAGER_USER)
        .expect("audit log");
    assert!(
        writes
            .iter()
            .any(|e| matches!(e.verb.as_str(), "create" | "patch")
                && e.resource.as_deref() == Some("secrets")
                && e.namespace.as_deref() == Some("nginx-gateway")
                && e.name.as_deref() == Some("tls-cert")
                && matches!(e.code, Some(200 | 201))),
        "Secret tls-cert was not written by {}",
        testkit::CERT_MANAGER_USER
    );
}

/// NFR-017: without a route from the engine to the database server, the
/// preview's database is created and dropped by Jobs in the server's namespace
/// (their `psql` really runs against the real PostgreSQL), the migration Job
/// runs after it, a second up changes nothing, and destroy leaves no Job behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_made_by_jobs_when_the_engine_cannot_reach_it() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let stacks = Stacks::new(world).in_cluster_database();
    let pr = 314;
    let first = up(&stacks, pr);
    assert_eq!(
        first["plan"]["summary"]["create"].as_u64().map(|n| n > 10),
        Some(true),
        "{first}"
    );
    assert!(
        database_exists("aphiria_pr_314").await,
        "database created by the Job"
    );
    let pg = world.pg.client().await.expect("pg");
    let comment: String = pg
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'aphiria_pr_314'",
            &[],
        )
        .await
        .expect("comment")
        .get(0);
    assert_eq!(comment, "managed-by=preview-envs stack=preview-pr-314");
    // Owned by its own role, made by the same Job, carrying the same marker.
    let role = pg
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, shobj_description(a.oid, 'pg_authid'), a.rolsuper \
             FROM pg_database d JOIN pg_authid a ON a.rolname = d.datname WHERE d.datname = 'aphiria_pr_314'",
            &[],
        )
        .await
        .expect("role");
    assert_eq!(role.get::<_, String>(0), "aphiria_pr_314");
    assert_eq!(
        role.get::<_, String>(1),
        "managed-by=preview-envs stack=preview-pr-314"
    );
    assert!(!role.get::<_, bool>(2));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let ours = ListParams::default().labels("preview-envs.io/stack=preview-pr-314");
    let names: Vec<String> = jobs
        .list(&ours)
        .await
        .expect("jobs")
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("create-db-aphiria-pr-314-"),
        "{names:?}"
    );
    check_preview(&client, pr).await;

    let again = up(&stacks, pr);
    assert_eq!(again["requests"]["writes"], 0, "{again}");

    stacks.ok(&["destroy", "preview-pr", "--pr", "314"]);
    assert!(
        !database_exists("aphiria_pr_314").await,
        "dropped by the drop Job"
    );
    assert!(
        !role_exists("aphiria_pr_314").await,
        "role dropped by the drop Job"
    );
    assert!(
        jobs.list(&ours).await.expect("jobs").items.is_empty(),
        "no database Job is left in the server's namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_before_any_side_effect() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let good = format!("ghcr.io/aphiria/web@sha256:{}", digest(1));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--pr".into(), "0".into()], "start at 1"),
        (vec!["--pr".into(), "-1".into()], "positive"),
        (vec!["--pr".into(), "abc".into()], "not a number"),
        (vec!["--pr".into(), "1".repeat(60)], "63"),
        (
            vec![
                "--pr".into(),
                "5".into(),
                "--web-image".into(),
                "registry.example/web:1.0".into(),
                "--api-image".into(),
                good.clone(),
            ],
            "not pinned by digest",
        ),
        (
            vec![
                "--pr".into(),
                "5".into(),
                "--web-image".into(),
                "registry.example/web@sha256:abc123".into(),
                "--api-image".into(),
                good.clone(),
            ],
            "hex characters, expected 64",
        ),
        (
            vec![
                "--pr".into(),
                "5".into(),
                "--web-image".into(),
                format!("registry.example/web@sha256:{}", "A".repeat(64)),
                "--api-image".into(),
                good.clone(),
            ],
            "lowercase",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["up".to_owned(), "preview-pr".to_owned()];
        let has_images = extra.iter().any(|a| a == "--web-image");
        args.extend(extra.clone());
        if !has_images {
            args.extend([
                "--web-image".into(),
                good.clone(),
                "--api-image".into(),
                good.clone(),
            ]);
        }
        let out = stacks.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} must fail");
        assert!(
            err.contains(says),
            "{extra:?}: expected {says:?} in:\n{err}"
        );
    }
    // A base stack that was never deployed (an empty state backend).
    let empty = tempfile::tempdir().expect("tempdir");
    let fresh = Stacks::with_state(world, empty.path());
    let mut args = vec!["up".to_owned(), "preview-pr".to_owned()];
    args.extend(pr_args(5));
    let out = fresh.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("preview-base"),
        "{err}"
    );
    // No state passphrase: the database role's password cannot be sealed.
    let out = stacks
        .command(&args)
        .env_remove("PREVIEW_STATE_PASSPHRASE")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("PREVIEW_STATE_PASSPHRASE"),
        "{err}"
    );
    // Nothing was applied: no namespace for PR 5, no state written.
    let client = world.cluster.client().expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(
        namespaces
            .get_opt("preview-pr-5")
            .await
            .expect("get")
            .is_none()
    );
    assert!(!stacks.state.join("preview-pr-5.json").exists());
}
