//! The DigitalOcean provider through the engine (plan, apply, state, destroy with
//! verification) against `digitalocean-fake`, which checks every exchange against
//! DigitalOcean's OpenAPI description: DNS records with literal data, and a DOKS
//! cluster whose kubeconfig is sealed into the stack's state as a secret output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use digitalocean_fake::DigitalOceanFake;
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineError, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::schema::dns_record::{DesiredRecord, RecordData, RecordKey};
use preview_core::schema::doks_cluster::{DesiredCluster, NodePoolSpec};
use preview_core::secret::SecretString;
use preview_core::state::crypto::{KdfParams, Sealer};
use preview_core::state::file::FileBackend;
use preview_core::state::{Output, StateBackend};
use preview_core::{Resource, ResourceOptions};
use preview_digitalocean::{DigitalOceanProvider, DoClient, RetryPolicy};

const TOKEN: &str = "dop_v1_engine_canary_91aa";
const ZONE: &str = "example.com";

fn provider(fake: &DigitalOceanFake) -> Arc<DigitalOceanProvider> {
    let client = DoClient::with_retry(
        &fake.base_url(),
        SecretString::new(TOKEN),
        RetryPolicy {
            attempts: 2,
            backoff: Duration::from_millis(1),
            request_timeout: Duration::from_secs(10),
        },
    )
    .expect("client");
    Arc::new(DigitalOceanProvider::new(client).with_cluster_poll(Duration::from_millis(5)))
}

fn engine(fake: &DigitalOceanFake, dir: &std::path::Path) -> Engine {
    Engine::new(
        Providers::new().with(ProviderName::DIGITALOCEAN, provider(fake)),
        Arc::new(FileBackend::new(dir)),
        EventSink::none(),
        EngineOptions {
            timeout: Duration::from_secs(10),
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
    let engine = engine(&fake, dir.path());
    let stack = "preview-cluster";
    let graph = DesiredGraph::new(stack, vec![cluster(stack, 2, true)]).expect("graph");

    // up creates the cluster and returns once it is running.
    let report = engine.up(&graph, BTreeMap::new()).await.expect("create");
    assert_eq!(report.plan.summary().create, 1);
    let clusters = fake.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].state, "running");
    assert!(
        clusters[0]
            .tags
            .contains(&"preview-envs-stack:preview-cluster".to_owned())
    );

    // The kubeconfig, sealed into the stack's state as a secret output.
    let kubeconfig = provider(&fake)
        .cluster_kubeconfig("aphiria-previews", None)
        .await
        .expect("kubeconfig");
    let passphrase = SecretString::new("engine test passphrase, long enough");
    let mut state = backend.read(stack).await.expect("read").expect("state");
    let sealer =
        Sealer::open_or_init_with(&mut state, &passphrase, KdfParams::insecure_for_tests())
            .expect("sealer");
    let sealed = sealer.seal("kubeconfig", &kubeconfig).expect("seal");
    state.outputs.insert("kubeconfig".into(), sealed);
    state.serial += 1;
    backend.write(&state).await.expect("write");
    let text = state_text(dir.path(), stack);
    assert!(
        !text.contains("fake-doks-token"),
        "the kubeconfig is sealed"
    );
    let stored = backend.read(stack).await.expect("read").expect("state");
    let reopened = Sealer::open(&stored, &passphrase).expect("open");
    let unsealed = reopened
        .unseal("kubeconfig", &stored.outputs["kubeconfig"])
        .expect("unseal");
    assert_eq!(unsealed.expose(), kubeconfig.expose());
    assert!(matches!(stored.outputs["kubeconfig"], Output::Secret(_)));

    // No-op: no write to DigitalOcean.
    fake.clear_requests();
    let outputs = stored.outputs.clone();
    let report = engine.up(&graph, outputs.clone()).await.expect("no-op");
    assert!(report.plan.is_empty(), "{:?}", report.plan);
    assert_eq!(fake.writes(), 0);

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
