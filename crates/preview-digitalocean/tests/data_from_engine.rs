//! `dataFrom` through the engine, against `digitalocean-fake` (every exchange
//! checked against DigitalOcean's OpenAPI description) and an in-memory Gateway
//! standing in for the Kubernetes provider: the engine reads the record's
//! address from the Gateway (known after apply while the Gateway is created, then
//! from its observed object), the provider only writes literal records; and a
//! state written before the engine resolved `dataFrom` stays a no-op.

#[path = "support/client.rs"]
mod client;
#[path = "support/gateways.rs"]
mod gateways;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use digitalocean_fake::DigitalOceanFake;
use gateways::{Gateways, gateway, gateway_source};
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineError, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::plan::{Action, Shown};
use preview_core::resource::{Resource, ResourceOptions, STACK_LABEL};
use preview_core::schema::dns_record::{API_VERSION, KIND, RecordKey, marker_text};
use preview_core::state::StateBackend;
use preview_core::state::file::FileBackend;
use preview_digitalocean::DigitalOceanProvider;
use serde_json::json;

const TOKEN: &str = "dop_v1_data_from_canary_3e7b";
const ZONE: &str = "example.com";
const STACK: &str = "preview-base";

/// A record whose address is the Gateway's, as `components::DnsRecord` builds it.
fn record(name: &str) -> Resource {
    let key = RecordKey::new(ZONE, "A", name);
    Resource {
        id: key.id(),
        body: json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": key.id().name, "namespace": ZONE,
                         "labels": {STACK_LABEL: STACK}},
            "domain": ZONE, "type": "A", "name": name, "ttl": 300,
            "dataFrom": gateway_source(),
        }),
        depends_on: BTreeSet::from([gateway().id]),
        options: ResourceOptions::default(),
    }
}

fn graph() -> DesiredGraph {
    DesiredGraph::new(STACK, vec![gateway(), record("*.pr"), record("*.pr-api")]).expect("graph")
}

async fn fake() -> DigitalOceanFake {
    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.add_domain(ZONE);
    fake
}

fn engine(fake: &DigitalOceanFake, gateways: &Arc<Gateways>, dir: &std::path::Path) -> Engine {
    let client = client::test_client(fake, TOKEN);
    Engine::new(
        Providers::new()
            .with(ProviderName::KUBERNETES, gateways.clone())
            .with(
                ProviderName::DIGITALOCEAN,
                Arc::new(DigitalOceanProvider::new(client)),
            ),
        Arc::new(FileBackend::new(dir)),
        EventSink::none(),
        EngineOptions {
            timeout: Duration::from_secs(10),
            ..EngineOptions::default()
        },
    )
}

/// `(name, data)` of the A records, sorted.
fn a_records(fake: &DigitalOceanFake) -> Vec<(String, String)> {
    let mut records: Vec<_> = fake
        .records(ZONE)
        .into_iter()
        .filter(|r| r.record_type == "A")
        .map(|r| (r.name, r.data))
        .collect();
    records.sort();
    records
}

#[tokio::test]
async fn records_follow_the_gateway_address_the_engine_reads() {
    let fake = fake().await;
    let gateways = Arc::new(Gateways::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&fake, &gateways, dir.path());
    let g = graph();

    // The Gateway is created in the same run: the address is known after apply.
    let plan = engine.preview(&g).await.expect("preview");
    let pr = plan
        .steps
        .iter()
        .find(|s| s.id == record("*.pr").id)
        .expect("record step");
    assert_eq!(pr.action, Action::Create);
    assert!(
        matches!(pr.diff[0].new, Some(Shown::KnownAfterApply(_))),
        "{pr:?}"
    );

    // No address once the Gateway is ready: the records fail, naming the
    // Gateway and the field, and nothing is written to DigitalOcean.
    let err = engine
        .up(&g, BTreeMap::new())
        .await
        .expect_err("no address");
    let EngineError::Apply { failed, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(failed.len(), 2, "{err}");
    assert!(
        err.to_string().contains(
            "field dataFrom: Gateway nginx-gateway/preview-gateway has no value at /status/addresses/0/value yet"
        ),
        "{err}"
    );
    assert_eq!(fake.writes(), 0);

    // The load balancer assigns one: the next run reads it from the observed
    // Gateway (unchanged now) and creates the records with it.
    gateways.set_address(Some("10.240.0.100"));
    let plan = engine.preview(&g).await.expect("preview");
    let creates: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Create)
        .map(|s| s.id.name.as_str())
        .collect();
    assert_eq!(creates, ["A:*.pr", "A:*.pr-api"]);
    assert!(plan.steps.iter().all(|s| s.diff.is_empty()), "{plan:?}");
    engine.up(&g, BTreeMap::new()).await.expect("up");
    assert_eq!(
        a_records(&fake),
        [
            ("*.pr".to_owned(), "10.240.0.100".to_owned()),
            ("*.pr-api".to_owned(), "10.240.0.100".to_owned())
        ]
    );

    // Nothing changed: a no-op, nothing sent to DigitalOcean.
    fake.clear_requests();
    let again = engine.up(&g, BTreeMap::new()).await.expect("no-op");
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    assert_eq!(fake.writes(), 0);

    // A recreated load balancer: the plan shows the new address and the
    // update writes it.
    gateways.set_address(Some("10.240.0.101"));
    let report = engine.up(&g, BTreeMap::new()).await.expect("update");
    let updated: Vec<_> = report
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Update)
        .collect();
    assert_eq!(updated.len(), 2, "{:?}", report.plan);
    assert_eq!(updated[0].diff[0].path, "data");
    assert_eq!(
        updated[0].diff[0].new,
        Some(Shown::Value(json!("10.240.0.101")))
    );
    assert_eq!(a_records(&fake)[0].1, "10.240.0.101");

    // Refresh reports a record edited by hand, not a moved source (the next
    // plan shows that one).
    assert!(engine.refresh(&g).await.expect("refresh").is_empty());
    gateways.set_address(Some("10.240.0.102"));
    assert!(engine.refresh(&g).await.expect("refresh").is_empty());
    let edited = fake
        .records(ZONE)
        .into_iter()
        .find(|r| r.record_type == "A" && r.name == "*.pr")
        .expect("*.pr");
    fake.set_record_data(ZONE, edited.id, "192.0.2.50");
    let drift = engine.refresh(&g).await.expect("refresh");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].id, record("*.pr").id);
    assert_eq!(drift[0].detail, "changed outside the engine: data");

    engine.destroy(STACK).await.expect("destroy");
    assert!(fake.records(ZONE).is_empty(), "{:?}", fake.records(ZONE));
    fake.assert_no_violations();
}

/// A state file written by main at 50331a3, before the engine resolved
/// `dataFrom`: its records hold the hashes of the body with `dataFrom`.
const OLD_STATE: &str =
    include_str!("../../preview-core/tests/fixtures/state/format-2-data-from.json");

#[tokio::test]
async fn a_state_written_before_the_engine_resolved_data_from_stays_a_no_op() {
    let fake = fake().await;
    // The records and markers that run left, with the same ids (the fake
    // numbers them in order).
    for name in ["*.pr", "*.pr-api"] {
        let marker = marker_text(&RecordKey::new(ZONE, "A", name), STACK);
        fake.seed_record(ZONE, "TXT", "_preview-envs", &marker, 3600);
    }
    assert_eq!(
        fake.seed_record(ZONE, "A", "*.pr", "10.240.0.100", 300),
        28_448_003
    );
    assert_eq!(
        fake.seed_record(ZONE, "A", "*.pr-api", "10.240.0.100", 300),
        28_448_004
    );
    let gateways = Arc::new(Gateways::default());
    gateways.set_address(Some("10.240.0.100"));
    gateways.seed(&gateway(), STACK);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(format!("{STACK}.json")), OLD_STATE).expect("old state");
    let engine = engine(&fake, &gateways, dir.path());
    let g = graph();

    // Nothing to do, nothing sent to DigitalOcean or to the cluster.
    fake.clear_requests();
    let report = engine.up(&g, BTreeMap::new()).await.expect("up");
    assert!(report.plan.is_empty(), "{:?}", report.plan);
    assert_eq!(report.plan.summary().no_op, 3);
    assert_eq!(fake.writes(), 0, "{:?}", fake.requests());
    assert!(gateways.applies.lock().expect("lock").is_empty());
    // The records now hold the resolved bodies' hashes (one state write): the
    // next run writes nothing at all.
    let backend = FileBackend::new(dir.path());
    let upgraded = backend.read(STACK).await.expect("read").expect("state");
    assert_eq!(upgraded.serial, 5, "the old state's serial was 4");
    let again = engine.up(&g, BTreeMap::new()).await.expect("again");
    assert!(again.plan.is_empty());
    assert_eq!(
        backend
            .read(STACK)
            .await
            .expect("read")
            .expect("state")
            .serial,
        5
    );
    assert_eq!(fake.writes(), 0);
    fake.assert_no_violations();
}
