//! The DigitalOcean provider against `digitalocean-fake` (which checks every
//! exchange against the official OpenAPI description). `dataFrom` is resolved
//! by the engine (`tests/data_from_engine.rs`); here only its declaration.

use std::collections::BTreeSet;

use std::time::Duration;

use digitalocean_fake::{DigitalOceanFake, Fault};
use serde_json::{Value, json};

use super::record::{API_VERSION, KIND, OWNER_RECORD_NAME, marker_text};
use super::*;
use preview_core::diff::{body_hash, diff, projection_hash, strip_server_fields};
use preview_core::planner::needs_dry_run;
use preview_core::resource::{ResourceOptions, STACK_LABEL};
use preview_core::state::ResourceRecord;

const TOKEN: &str = "dop_v1_token_canary_5d1c";
const ZONE: &str = "example.com";
const STACK: &str = "preview-base";

async fn fake() -> DigitalOceanFake {
    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.add_domain(ZONE);
    fake
}

fn client(fake: &DigitalOceanFake, token: &str) -> DoClient {
    DoClient::with_retry(
        &fake.base_url(),
        SecretString::new(token),
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            request_timeout: Duration::from_secs(10),
        },
    )
    .expect("client")
}

fn provider(fake: &DigitalOceanFake) -> DigitalOceanProvider {
    DigitalOceanProvider::new(client(fake, TOKEN))
}

fn gateway_source() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "namespace": "nginx-gateway", "name": "preview-gateway",
        "path": "/status/addresses/0/value"})
}

/// A `DomainRecord` resource as `components::DnsRecord` builds it.
fn record(name: &str, data: Value) -> Resource {
    let key = RecordKey::new(ZONE, "A", name);
    let mut body = json!({
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": key.id().name, "namespace": ZONE, "labels": {STACK_LABEL: STACK}},
        "domain": ZONE, "type": "A", "name": name, "ttl": 300,
    });
    match data {
        Value::String(_) => body["data"] = data,
        other => body["dataFrom"] = other,
    }
    Resource {
        id: key.id(),
        body,
        depends_on: BTreeSet::new(),
        options: ResourceOptions::default(),
    }
}

fn recorded(res: &Resource, live: &Value) -> ResourceRecord {
    ResourceRecord {
        id: res.id.clone(),
        depends_on: Vec::new(),
        desired_hash: body_hash(&res.body),
        live_hash: projection_hash(live, &res.body),
        uid: live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        protect: false,
        imported: false,
    }
}

fn owner(live: &Value) -> Option<&str> {
    live.pointer("/metadata/labels")
        .and_then(|l| l.get(STACK_LABEL))
        .and_then(Value::as_str)
}

fn markers(fake: &DigitalOceanFake) -> Vec<String> {
    fake.records(ZONE)
        .into_iter()
        .filter(|r| r.name == OWNER_RECORD_NAME)
        .map(|r| r.data)
        .collect()
}

fn a_records(fake: &DigitalOceanFake) -> Vec<(String, String, i64)> {
    fake.records(ZONE)
        .into_iter()
        .filter(|r| r.record_type == "A")
        .map(|r| (r.name, r.data, r.ttl))
        .collect()
}

fn wait() -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(2),
        failure_grace: Duration::from_secs(1),
        force_finalize: false,
    }
}

/// `res` exists but carries no owner: dry-run rejects it (409, `why`), and apply
/// and delete refuse it without `force`. Returns the apply error.
async fn assert_unowned_refused(p: &DigitalOceanProvider, res: &Resource, why: &str) -> String {
    let live = p.read(&res.id).await.expect("read").expect("exists");
    assert_eq!(owner(&live), None, "no marker, no owner");
    let DryRun::Rejected { code, message } = p.dry_run(res, false).await.expect("dry-run") else {
        panic!("rejected expected");
    };
    assert_eq!(code, 409);
    assert!(message.contains(why), "{message}");
    let err = p.apply(res, false).await.expect_err("refused").to_string();
    assert!(err.contains("refusing to take it over"), "{err}");
    let delete_err = p.delete(&res.id).await.expect_err("refused").to_string();
    assert!(delete_err.contains("refusing to delete"), "{delete_err}");
    err
}

#[tokio::test]
async fn literal_record_lifecycle_and_no_op() {
    let fake = fake().await;
    let p = provider(&fake);
    let res = record("*.pr", json!("203.0.113.10"));
    assert_eq!(p.read(&res.id).await.expect("read"), None);

    let applied = p.apply(&res, false).await.expect("apply");
    assert_eq!(owner(&applied), Some(STACK));
    assert_eq!(
        a_records(&fake),
        vec![("*.pr".into(), "203.0.113.10".into(), 300)]
    );
    assert_eq!(
        markers(&fake),
        vec![marker_text(&RecordKey::new(ZONE, "A", "*.pr"), STACK)]
    );
    let ready = p
        .wait_ready(&res, wait(), &EventSink::none())
        .await
        .expect("ready");
    let state = recorded(&res, &ready);

    // A second run reads the same thing: no dry-run needed, no write.
    fake.clear_requests();
    let live = p.read(&res.id).await.expect("read").expect("exists");
    assert_eq!(live, ready);
    assert!(!needs_dry_run(
        &res,
        Some(&state),
        Some(&live),
        &preview_core::state::auth::RecordHasher::fixed_for_tests()
    ));
    assert_eq!(fake.writes(), 0);

    // Changed TTL: a dry-run shows it, apply patches the record (the marker stays).
    let mut changed = res.clone();
    changed.body["ttl"] = json!(60);
    assert!(needs_dry_run(
        &changed,
        Some(&state),
        Some(&live),
        &preview_core::state::auth::RecordHasher::fixed_for_tests()
    ));
    let DryRun::Accepted { object } = p.dry_run(&changed, false).await.expect("dry-run") else {
        panic!("accepted expected");
    };
    let changes = diff(
        &strip_server_fields(&live),
        &strip_server_fields(&object),
        &|_| false,
    );
    assert_eq!(
        changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        ["ttl"]
    );
    fake.clear_requests();
    p.apply(&changed, false).await.expect("update");
    let writes: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(writes, ["PATCH"]);
    assert_eq!(a_records(&fake)[0].2, 60);

    // Drift outside the engine is seen by the projection hash.
    let id = fake
        .records(ZONE)
        .iter()
        .find(|r| r.record_type == "A")
        .map(|r| r.id)
        .expect("id");
    fake.set_record_data(ZONE, id, "198.51.100.1");
    let drifted = p.read(&changed.id).await.expect("read").expect("exists");
    assert_ne!(
        projection_hash(&drifted, &changed.body),
        projection_hash(&object, &changed.body)
    );

    p.delete(&res.id).await.expect("delete");
    p.wait_gone(&res.id, wait(), &EventSink::none())
        .await
        .expect("gone");
    assert!(fake.records(ZONE).is_empty(), "record and marker removed");
    // Deleting again is a no-op.
    p.delete(&res.id).await.expect("idempotent");
    fake.assert_no_violations();
}

#[tokio::test]
async fn unowned_records_are_refused_and_import_adopts_them() {
    let fake = fake().await;
    let p = provider(&fake);
    let res = record("*.pr", json!("203.0.113.10"));
    fake.seed_record(ZONE, "A", "*.pr", "203.0.113.10", 300);

    let err = assert_unowned_refused(&p, &res, "carries no preview-envs ownership marker").await;
    assert!(
        err.contains("digitalocean DomainRecord example.com/A:*.pr"),
        "{err}"
    );
    assert_eq!(fake.writes(), 0);

    // import = apply with force: the marker is written, the record left as it is.
    p.apply(&res, true).await.expect("import");
    let writes: Vec<(String, Option<Value>)> = fake
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method.clone(), r.body.as_ref().map(|b| b["type"].clone())))
        .collect();
    assert_eq!(writes, [("POST".to_owned(), Some(json!("TXT")))]);
    let live = p.read(&res.id).await.expect("read").expect("exists");
    assert_eq!(owner(&live), Some(STACK));

    // Another stack's marker: the record belongs to it.
    let mut theirs = res.clone();
    theirs.body["metadata"]["labels"][STACK_LABEL] = json!("production");
    let err = p
        .apply(&theirs, false)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("is owned by stack preview-base, not by stack production"),
        "{err}"
    );
    // …until it is imported there: one marker, now naming the importer.
    p.apply(&theirs, true).await.expect("import elsewhere");
    assert_eq!(
        markers(&fake),
        vec![marker_text(
            &RecordKey::new(ZONE, "A", "*.pr"),
            "production"
        )]
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn interrupted_create_leaves_a_marker_the_next_run_uses() {
    let fake = fake().await;
    let p = provider(&fake);
    let res = record("*.pr-api", json!("203.0.113.10"));
    let key = RecordKey::new(ZONE, "A", "*.pr-api");
    // A crash after the marker's POST and before the record's.
    fake.seed_record(
        ZONE,
        "TXT",
        OWNER_RECORD_NAME,
        &marker_text(&key, STACK),
        3600,
    );
    assert_eq!(p.read(&res.id).await.expect("read"), None);
    p.apply(&res, false).await.expect("create");
    assert_eq!(markers(&fake).len(), 1, "the marker is reused");
    // A crash after the record's POST: the record carries the stack (crash resume).
    let live = p.read(&res.id).await.expect("read").expect("exists");
    assert_eq!(owner(&live), Some(STACK));
    // A marker whose record is gone is removed by the record's delete.
    let id = fake
        .records(ZONE)
        .iter()
        .find(|r| r.record_type == "A")
        .map(|r| r.id)
        .expect("id");
    fake.remove_record(ZONE, id);
    p.delete(&res.id).await.expect("delete");
    assert!(fake.records(ZONE).is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn residue_and_ambiguity() {
    let fake = fake().await;
    let p = provider(&fake);
    let web = record("*.pr", json!("203.0.113.10"));
    let api = record("*.pr-api", json!("203.0.113.10"));
    p.apply(&web, false).await.expect("web");
    p.apply(&api, false).await.expect("api");
    fake.seed_record(ZONE, "TXT", OWNER_RECORD_NAME, "v=spf1 -all", 3600);
    let owned = p
        .list_owned(STACK, std::slice::from_ref(&web.id))
        .await
        .expect("list");
    assert_eq!(owned, vec![web.id.clone(), api.id.clone()]);
    assert!(
        p.list_owned("production", std::slice::from_ref(&web.id))
            .await
            .expect("list")
            .is_empty()
    );

    // Two A records with one name: reported, not guessed at.
    fake.seed_record(ZONE, "A", "*.pr", "198.51.100.2", 300);
    let err = p.read(&web.id).await.expect_err("ambiguous").to_string();
    assert!(
        err.contains("2 A records are named *.pr.example.com"),
        "{err}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn lists_follow_pagination() {
    let fake = fake().await;
    for i in 0..450 {
        fake.seed_record(ZONE, "A", &format!("h{i}"), "10.0.0.1", 300);
    }
    let c = client(&fake, TOKEN);
    let all = c.list_records(ZONE, Some("A"), None).await.expect("list");
    assert_eq!(all.len(), 450);
    let pages: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "page")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    fake.assert_no_violations();
}

#[tokio::test]
async fn errors_name_the_request_and_never_the_token() {
    let fake = fake().await;
    let p = DigitalOceanProvider::new(client(&fake, "dop_v1_wrong_canary_77"));
    let res = record("*.pr", json!("203.0.113.10"));
    let err = p.apply(&res, false).await.expect_err("401").to_string();
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    assert!(err.contains("/v2/domains/example.com/records"), "{err}");
    assert!(!err.contains("canary"), "{err}");
    assert!(!format!("{:?}", p.client).contains("canary"));

    // Rate limits and server errors are retried; a POST only on 429.
    let p = provider(&fake);
    fake.inject(Fault::rate_limited().on("GET").times(2));
    assert_eq!(p.read(&res.id).await.expect("retried"), None);
    fake.inject(Fault::server_error().on("POST"));
    let err = p
        .apply(&res, false)
        .await
        .expect_err("500 on POST")
        .to_string();
    assert!(err.contains("HTTP 500"), "{err}");
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1, "a POST is not repeated after a 5xx");
    // Unknown zone.
    let mut elsewhere = record("*.pr", json!("203.0.113.10"));
    elsewhere.id.namespace = Some("other.org".into());
    elsewhere.body["domain"] = json!("other.org");
    let err = p.read(&elsewhere.id).await.expect_err("404").to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn data_from_is_declared_and_never_applied_unresolved() {
    let fake = fake().await;
    let p = provider(&fake);
    let res = record("*.pr", gateway_source());
    let declared = p.values_from(&res).expect("declared");
    assert_eq!(declared.len(), 1);
    assert_eq!(declared[0].reference, "/dataFrom");
    assert_eq!(declared[0].field, "/data");
    assert_eq!(
        declared[0].source.to_string(),
        "Gateway nginx-gateway/preview-gateway"
    );
    assert_eq!(declared[0].path, "/status/addresses/0/value");
    assert!(
        p.values_from(&record("*.pr", json!("203.0.113.10")))
            .expect("literal")
            .is_empty()
    );
    // The engine resolves it; the provider refuses a body that was not.
    let err = p
        .apply(&res, false)
        .await
        .expect_err("unresolved")
        .to_string();
    assert!(err.contains("field dataFrom (Gateway nginx-gateway/preview-gateway /status/addresses/0/value) reached the DigitalOcean provider unresolved"), "{err}");
    let DryRun::Rejected { code, .. } = p.dry_run(&res, false).await.expect("dry-run") else {
        panic!("rejected expected");
    };
    assert_eq!(code, 422);
    // A resolved body that is not an address is refused, naming the field.
    let resolved = preview_core::values::resolved(&res, &[(&declared[0], json!("lb.example.net"))]);
    let err = p
        .apply(&resolved, false)
        .await
        .expect_err("hostname")
        .to_string();
    assert!(
        err.contains("field data: \"lb.example.net\" is not an IPv4 address"),
        "{err}"
    );
    assert_eq!(fake.writes(), 0);
    fake.assert_no_violations();
}

// ---------------------------------------------------------------------------
// KubernetesCluster
// ---------------------------------------------------------------------------

fn cluster_resource(owner: &str, count: u32) -> Resource {
    let desired = DesiredCluster {
        name: "aphiria-previews".into(),
        region: "fra1".into(),
        version: digitalocean_fake::LATEST_VERSION.into(),
        node_pools: vec![NodePoolSpec {
            name: "workers".into(),
            size: "s-2vcpu-4gb".into(),
            count,
        }],
        owner: owner.into(),
    };
    Resource {
        id: desired.id(),
        body: desired.body(),
        depends_on: BTreeSet::new(),
        options: ResourceOptions::default(),
    }
}

fn cluster_provider(fake: &DigitalOceanFake) -> DigitalOceanProvider {
    provider(fake).with_cluster_poll(Duration::from_millis(5))
}

#[tokio::test]
async fn cluster_life_cycle_and_kubeconfig() {
    let fake = fake().await;
    fake.set_provision_polls(3);
    let p = cluster_provider(&fake);
    let res = cluster_resource("preview-cluster", 2);
    assert_eq!(p.read(&res.id).await.expect("read"), None);

    let applied = p.apply(&res, false).await.expect("create");
    assert_eq!(owner(&applied), Some("preview-cluster"));
    assert_eq!(applied["status"]["state"], "provisioning");
    let err = p
        .cluster_kubeconfig("aphiria-previews", None)
        .await
        .expect_err("not running")
        .to_string();
    assert!(err.contains("is provisioning"), "{err}");

    let (events, mut rx) = EventSink::channel();
    let ready = p.wait_ready(&res, wait(), &events).await.expect("running");
    assert_eq!(ready["status"]["state"], "running");
    let mut waited = 0;
    while let Ok(event) = rx.try_recv() {
        if matches!(event, preview_core::events::Event::Waiting { .. }) {
            waited += 1;
        }
    }
    assert!(waited >= 1, "progress was reported");
    let state = recorded(&res, &ready);

    // No-op: nothing needs a dry-run, nothing is written.
    fake.clear_requests();
    let live = p.read(&res.id).await.expect("read").expect("exists");
    assert!(!needs_dry_run(
        &res,
        Some(&state),
        Some(&live),
        &preview_core::state::auth::RecordHasher::fixed_for_tests()
    ));
    assert_eq!(fake.writes(), 0);

    // The kubeconfig is a secret.
    let kubeconfig = p
        .cluster_kubeconfig("aphiria-previews", Some(Duration::from_secs(3600)))
        .await
        .expect("kubeconfig");
    assert!(kubeconfig.expose().contains("kind: Config"));
    assert_eq!(format!("{kubeconfig:?}"), "[secret]");
    let asked = fake
        .requests()
        .iter()
        .find(|r| r.path.ends_with("/kubeconfig"))
        .map(|r| r.query.clone())
        .expect("kubeconfig request");
    assert_eq!(asked, [("expiry_seconds".to_owned(), "3600".to_owned())]);

    // A resize cannot be done in place: the plan gets a replacement (which
    // `protect` turns into a refusal), apply alone refuses.
    let bigger = cluster_resource("preview-cluster", 3);
    let DryRun::Immutable { message } = p.dry_run(&bigger, false).await.expect("dry-run") else {
        panic!("immutable expected");
    };
    assert!(
        message.contains("node pools [workers 2×s-2vcpu-4gb] → [workers 3×s-2vcpu-4gb]"),
        "{message}"
    );
    let err = p
        .apply(&bigger, false)
        .await
        .expect_err("in place")
        .to_string();
    assert!(err.contains("cannot change in place"), "{err}");

    assert_eq!(
        p.list_owned("preview-cluster", std::slice::from_ref(&res.id))
            .await
            .expect("owned"),
        vec![res.id.clone()]
    );
    p.delete(&res.id).await.expect("delete");
    p.wait_gone(&res.id, wait(), &EventSink::none())
        .await
        .expect("gone");
    assert!(fake.clusters().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn clusters_are_adopted_only_with_import() {
    let fake = fake().await;
    fake.set_provision_polls(0);
    let p = cluster_provider(&fake);
    // A cluster made by hand, with a tag of the user's.
    let made = client(&fake, TOKEN)
        .create_cluster(&NewCluster {
            name: "aphiria-previews".into(),
            region: "fra1".into(),
            version: digitalocean_fake::LATEST_VERSION.into(),
            node_pools: vec![ClusterNodePool {
                name: "workers".into(),
                size: "s-2vcpu-4gb".into(),
                count: 2,
            }],
            tags: vec!["team:web".into()],
        })
        .await
        .expect("made by hand");

    let res = cluster_resource("preview-cluster", 2);
    assert_unowned_refused(&p, &res, "carries no preview-envs-stack:<stack> tag").await;

    let adopted = p.apply(&res, true).await.expect("import");
    assert_eq!(owner(&adopted), Some("preview-cluster"));
    let tags = fake
        .clusters()
        .into_iter()
        .find(|cl| cl.id == made.id)
        .expect("cluster")
        .tags;
    assert!(tags.contains(&"team:web".to_owned()), "{tags:?}");
    assert!(
        tags.contains(&"preview-envs-stack:preview-cluster".to_owned()),
        "{tags:?}"
    );

    // Another stack is refused now.
    let err = p
        .apply(&cluster_resource("other-stack", 2), false)
        .await
        .expect_err("owned by preview-cluster")
        .to_string();
    assert!(
        err.contains("is owned by stack preview-cluster, not by stack other-stack"),
        "{err}"
    );

    // A cluster that fails to provision is reported with DigitalOcean's state.
    fake.set_cluster_state(&made.id, "error");
    let err = p
        .wait_ready(&res, wait(), &EventSink::none())
        .await
        .expect_err("error state")
        .to_string();
    assert!(err.contains("cluster state error"), "{err}");
    fake.assert_no_violations();
}
