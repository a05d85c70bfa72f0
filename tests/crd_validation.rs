//! The upstream CRDs are loaded unmodified, so the API server enforces their CEL
//! rules (`x-kubernetes-validations`). An object a rule forbids is caught by the
//! plan's server-side dry-run: the plan fails naming the resource, the field and
//! the rule's message, and nothing is written (checked with the engine's request
//! counter and the API server's audit log).

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::cluster_with_crds;
use preview_core::ProviderName;
use preview_core::Resource;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::state::file::FileBackend;
use preview_kubernetes::KubeProvider;
use serde_json::{Value, json};
use testkit::ADMIN_USER;

fn res(body: Value) -> Resource {
    Resource::kubernetes(body).expect("valid manifest")
}

fn namespace(ns: &str) -> Resource {
    res(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
}

/// Plans `bad` (with its namespace already applied) and returns the error text,
/// after checking that the plan wrote nothing.
async fn rejected_plan(stack: &str, ns: &str, bad: Resource) -> String {
    let (cluster, _) = cluster_with_crds().await.expect("cluster with CRDs");
    let kube = KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let (events, _rx) = EventSink::channel();
    let engine = Engine::new(
        Providers::new().with(ProviderName::KUBERNETES, Arc::new(kube.clone())),
        Arc::new(FileBackend::new(dir.path())),
        events,
        EngineOptions::default(),
    );
    // The namespace first, so the dry-run of the namespaced object is a real one.
    let graph = |resources| DesiredGraph::new(stack, resources).expect("graph");
    engine
        .up(&graph(vec![namespace(ns)]), BTreeMap::new())
        .await
        .expect("namespace up");

    let writes_before = kube.counts().snapshot().writes;
    let audit_before = real_writes(cluster, ns);
    let err = engine
        .preview(&graph(vec![namespace(ns), bad]))
        .await
        .expect_err("the API server rejects the object");
    assert_eq!(
        kube.counts().snapshot().writes,
        writes_before,
        "the plan sent no write"
    );
    assert_eq!(
        real_writes(cluster, ns),
        audit_before,
        "nothing written (audit log)"
    );
    err.to_string()
}

/// Writes by the engine's user in `ns` that were not dry-runs.
fn real_writes(cluster: &testkit::TestCluster, ns: &str) -> usize {
    cluster
        .audit_events_by(ADMIN_USER)
        .expect("audit log")
        .into_iter()
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|e| !e.request_uri.contains("dryRun="))
        .filter(|e| e.namespace.as_deref() == Some(ns))
        .count()
}

#[tokio::test]
async fn gateway_listener_rule_is_enforced_by_the_plan() {
    let ns = "cel-gateway";
    // CEL on Gateway.spec.listeners: "tls must not be specified for protocols
    // ['HTTP', 'TCP', 'UDP']".
    let bad = res(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": ns},
        "spec": {"gatewayClassName": "nginx", "listeners": [{
            "name": "http", "protocol": "HTTP", "port": 80,
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "tls"}]},
        }]},
    }));
    let text = rejected_plan("cel-gateway", ns, bad).await;
    assert!(
        text.contains(&format!("Gateway {ns}/gw")),
        "names the resource: {text}"
    );
    assert!(text.contains("spec.listeners"), "names the field: {text}");
    assert!(
        text.contains("tls must not be specified for protocols"),
        "quotes the rule's message: {text}"
    );
}

#[tokio::test]
async fn httproute_backend_rule_is_enforced_by_the_plan() {
    let ns = "cel-route";
    // CEL on HTTPRoute backendRefs: "Must have port for Service reference".
    let bad = res(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "nginx-gateway"}],
            "hostnames": ["1.pr.example.com"],
            "rules": [{"backendRefs": [{"name": "web"}]}],
        },
    }));
    let text = rejected_plan("cel-route", ns, bad).await;
    assert!(
        text.contains(&format!("HTTPRoute {ns}/web")),
        "names the resource: {text}"
    );
    assert!(
        text.contains("spec.rules[0].backendRefs[0]"),
        "names the field: {text}"
    );
    assert!(
        text.contains("Must have port for Service reference"),
        "quotes the rule's message: {text}"
    );
}
