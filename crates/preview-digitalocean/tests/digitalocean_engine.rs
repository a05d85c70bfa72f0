//! The DigitalOcean provider through the engine (plan, apply, state, destroy with
//! verification) against `digitalocean-fake`, which checks every exchange against
//! DigitalOcean's OpenAPI description: DNS records with literal data, and a DOKS
//! cluster whose outputs the provider computes once it runs and the engine
//! records, the kubeconfig sealed into the stack's state as a secret output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use digitalocean_fake::DigitalOceanFake;
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineError, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::schema::dns_record::{DesiredRecord, RecordData, RecordKey};
use preview_core::schema::doks_cluster::outputs;
use preview_core::schema::doks_cluster::{DesiredCluster, NodePoolSpec};
use preview_core::secret::SecretString;
use preview_core::state::crypto::{KdfParams, Sealer, StackSealer};
use preview_core::state::file::FileBackend;
use preview_core::state::{Output, StateBackend};
use preview_core::{Resource, ResourceOptions};
use preview_digitalocean::DigitalOceanProvider;

#[path = "support/client.rs"]
mod client;

const TOKEN: &str = "dop_v1_engine_canary_91aa";
const ZONE: &str = "example.com";

fn provider(fake: &DigitalOceanFake) -> Arc<DigitalOceanProvider> {
    let client = client::test_client(fake, TOKEN);
    Arc::new(DigitalOceanProvider::new(client).with_cluster_poll(Duration::from_millis(5)))
}

fn engine(fake: &DigitalOceanFake, dir: &std::path::Path) -> Engine {
    engine_sealing(fake, dir, None)
}

/// An engine that seals secret outputs with `passphrase`.
fn engine_sealing(
    fake: &DigitalOceanFake,
    dir: &std::path::Path,
    passphrase: Option<&SecretString>,
) -> Engine {
    Engine::new(
        Providers::new().with(ProviderName::DIGITALOCEAN, provider(fake)),
        Arc::new(FileBackend::new(dir)),
        EventSink::none(),
        EngineOptions {
            timeout: Duration::from_secs(10),
            sealer: passphrase
                .map(|p| StackSealer::new(p.clone()).with_params(KdfParams::insecure_for_tests())),
            ..EngineOptions::default()
        },
    )
}

fn a_record(name: &str, address: &str, stack: &str) -> Resource {
    let desired = DesiredRecord {
        key: RecordKey::new(ZONE, "A", name),
        ttl: 300,
        data: RecordData::Literal(address.into()),
        owner: stack.into(),
    };
    Resource {
        id: desired.key.id(),
        body: desired.body(),
        depends_on: BTreeSet::new(),
        options: ResourceOptions::default(),
    }
}

fn state_text(dir: &std::path::Path, stack: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{stack}.json"))).expect("state file")
}

#[tokio::test]
async fn records_through_the_engine() {
    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.add_domain(ZONE);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&fake, dir.path());
    let stack = "dns-stack";
    let graph = DesiredGraph::new(
        stack,
        vec![
            a_record("*.pr", "203.0.113.10", stack),
            a_record("*.pr-api", "203.0.113.10", stack),
        ],
    )
    .expect("graph");

    let report = engine.up(&graph, BTreeMap::new()).await.expect("create");
    assert_eq!(report.plan.summary().create, 2);
    assert_eq!(fake.records(ZONE).len(), 4, "two records, two markers");
    assert!(!state_text(dir.path(), stack).contains("canary"));

    fake.clear_requests();
    let report = engine.up(&graph, BTreeMap::new()).await.expect("no-op");
    assert!(report.plan.is_empty(), "{:?}", report.plan);
    assert_eq!(fake.writes(), 0, "a no-op up sends no write");

    // A record another stack wants is refused at plan time, naming `import`.
    let other =
        DesiredGraph::new("other", vec![a_record("*.pr", "203.0.113.10", "other")]).expect("graph");
    let err = engine
        .up(&other, BTreeMap::new())
        .await
        .expect_err("owned by dns-stack")
        .to_string();
    assert!(
        err.contains("already exists and is managed by stack dns-stack, not by stack other"),
        "{err}"
    );
    assert!(err.contains("import"), "{err}");

    // Removing one record from the graph deletes it (and its marker).
    let smaller =
        DesiredGraph::new(stack, vec![a_record("*.pr", "203.0.113.10", stack)]).expect("graph");
    let report = engine
        .up(&smaller, BTreeMap::new())
        .await
        .expect("delete one");
    assert_eq!(report.plan.summary().delete, 1);
    assert_eq!(fake.records(ZONE).len(), 2);

    let report = engine.destroy(stack).await.expect("destroy");
    assert_eq!(report.plan.summary().delete, 1);
    assert!(fake.records(ZONE).is_empty(), "{:?}", fake.records(ZONE));
    fake.assert_no_violations();
}

fn cluster(stack: &str, count: u32, protect: bool) -> Resource {
    let desired = DesiredCluster {
        name: "aphiria-previews".into(),
        region: "fra1".into(),
        version: digitalocean_fake::LATEST_VERSION.into(),
        node_pools: vec![NodePoolSpec {
            name: "workers".into(),
            size: "s-2vcpu-4gb".into(),
            count,
        }],
        owner: stack.into(),
    };
    Resource {
        id: desired.id(),
        body: desired.body(),
        depends_on: BTreeSet::new(),
        options: ResourceOptions {
            protect,
            ..ResourceOptions::default()
        },
    }
}

#[tokio::test]
async fn a_cluster_through_the_engine_with_a_sealed_kubeconfig() {
    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.set_provision_polls(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::new(dir.path());
    let passphrase = SecretString::new("engine test passphrase, long enough");
    let stack = "preview-cluster";
    let graph = DesiredGraph::new(stack, vec![cluster(stack, 2, true)]).expect("graph");

    // Without a sealer, up is refused before anything is sent: the cluster's
    // kubeconfig could not be recorded.
    let err = engine(&fake, dir.path())
        .up(&graph, BTreeMap::new())
        .await
        .expect_err("no sealer");
    assert!(matches!(err, EngineError::NoSealer(_)), "{err}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    // up creates the cluster, returns once it is running, and records its
    // outputs, the kubeconfig sealed by the engine.
    let engine = engine_sealing(&fake, dir.path(), Some(&passphrase));
    let given = BTreeMap::from([("region".to_owned(), Output::Plain("fra1".into()))]);
    let report = engine.up(&graph, given.clone()).await.expect("create");
    assert_eq!(report.plan.summary().create, 1);
    let clusters = fake.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].state, "running");
    assert!(
        clusters[0]
            .tags
            .contains(&"preview-envs-stack:preview-cluster".to_owned())
    );
    assert!(report.computed.contains(outputs::KUBECONFIG));
    let stored = backend.read(stack).await.expect("read").expect("state");
    assert_eq!(stored.outputs, report.outputs);
    assert_eq!(stored.outputs["region"], given["region"]);
    assert_eq!(
        stored.outputs[outputs::CLUSTER_ID],
        Output::Plain(clusters[0].id.as_str().into())
    );
    assert_eq!(
        stored.outputs[outputs::ENDPOINT],
        Output::Plain(clusters[0].endpoint().into())
    );
    let text = state_text(dir.path(), stack);
    assert!(
        !text.contains("fake-doks-token"),
        "the kubeconfig is sealed"
    );
    let served = provider(&fake)
        .cluster_kubeconfig("aphiria-previews", None)
        .await
        .expect("kubeconfig");
    let reopened = Sealer::open(&stored, &passphrase).expect("open");
    let unsealed = reopened
        .unseal(outputs::KUBECONFIG, &stored.outputs[outputs::KUBECONFIG])
        .expect("unseal");
    assert_eq!(unsealed.expose(), served.expose());
    assert!(matches!(
        stored.outputs[outputs::KUBECONFIG],
        Output::Secret(_)
    ));

    // No-op: the recorded kubeconfig is still good, so nothing is fetched or
    // written, to DigitalOcean or to the state.
    fake.clear_requests();
    let report = engine.up(&graph, given.clone()).await.expect("no-op");
    assert!(report.plan.is_empty(), "{:?}", report.plan);
    assert!(report.computed.is_empty(), "{:?}", report.computed);
    assert_eq!(fake.writes(), 0);
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/kubeconfig")),
        "{:?}",
        fake.requests()
    );
    assert_eq!(state_text(dir.path(), stack), text, "no state write");
    let outputs = given;

    // Resizing a protected cluster is refused (it would be a replacement).
    let bigger = DesiredGraph::new(stack, vec![cluster(stack, 3, true)]).expect("graph");
    let err = engine
        .up(&bigger, outputs.clone())
        .await
        .expect_err("protected")
        .to_string();
    assert!(err.contains("is protected but must be replaced"), "{err}");
    assert!(err.contains("node pools"), "{err}");
    assert_eq!(fake.clusters()[0].node_pools[0].count, 2);

    // Protected: destroy refuses; unprotected: destroy deletes and verifies.
    assert!(matches!(
        engine.destroy(stack).await,
        Err(EngineError::Plan(_))
    ));
    let unprotected = DesiredGraph::new(stack, vec![cluster(stack, 2, false)]).expect("graph");
    engine.up(&unprotected, outputs).await.expect("unprotect");
    engine.destroy(stack).await.expect("destroy");
    assert!(fake.clusters().is_empty());
    fake.assert_no_violations();
}
