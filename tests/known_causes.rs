//! Known causes are named at once, not after the timeout (nor after the failure
//! grace period): the engine against the real control plane.
//!
//! Real where the cause is real: a claim with no storage class is reported by
//! the REAL persistentvolume controller (`FailedBinding`), one naming a class
//! that does not exist by its provisioning path (`ProvisioningFailed`), and a
//! pod over its namespace's quota is rejected by the REAL ResourceQuota
//! admission (the ReplicaSet and Job controllers' `FailedCreate`). Simulated
//! where a kubelet is needed (the node simulator writes the pod status and the
//! kubelet's Events): an image pull failure, a crash loop, a failing
//! readiness probe (which, an application being possibly still starting,
//! fails after the grace period rather than at once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use preview_core::ProviderName;
use preview_core::Resource;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::state::file::FileBackend;
use preview_kubernetes::KubeProvider;
use serde_json::{Value, json};
use testkit::{NodeSimulator, TestCluster};

const IMAGE: &str =
    "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// Generous on purpose: a known cause must fail long before either.
const TIMEOUT: Duration = Duration::from_secs(240);
const GRACE: Duration = Duration::from_secs(180);
/// What "at once" must beat (the API server and controllers under load included).
const AT_ONCE: Duration = Duration::from_secs(60);

fn res(body: Value) -> Resource {
    Resource::kubernetes(body).expect("valid manifest")
}

struct Run {
    error: String,
    elapsed: Duration,
}

/// `up` of `resources` in namespace `ns` (created first); must fail. Then destroy.
async fn up_fails(ns: &str, resources: Vec<Value>, grace: Duration) -> Run {
    up_fails_with(ns, resources, grace, None).await
}

/// [`up_fails`], with a ResourceQuota made in the namespace first, outside the
/// stack (the engine's own validation refuses a stack whose pods exceed its
/// own quota before anything is sent; this is the API server's admission).
async fn up_fails_with(
    ns: &str,
    resources: Vec<Value>,
    grace: Duration,
    outside_quota: Option<Value>,
) -> Run {
    let cluster = TestCluster::shared().await.expect("cluster");
    NodeSimulator::shared().await.expect("simulator");
    let outside_quota_made = outside_quota.is_some();
    if let Some(quota) = outside_quota {
        let client = cluster.client().expect("client");
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        let namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        namespaces
            .create(&Default::default(), &namespace)
            .await
            .expect("create namespace");
        let quotas: kube::Api<k8s_openapi::api::core::v1::ResourceQuota> =
            kube::Api::namespaced(client.clone(), ns);
        let quota = serde_json::from_value(quota).expect("quota");
        quotas
            .create(&Default::default(), &quota)
            .await
            .expect("create quota");
        // Admission enforces it once the quota controller has computed its usage.
        let began = Instant::now();
        while quotas
            .get("small")
            .await
            .expect("get quota")
            .status
            .and_then(|s| s.used)
            .is_none()
        {
            assert!(
                began.elapsed() < AT_ONCE,
                "the quota controller never computed usage"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let kube = KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let providers = Providers::new().with(ProviderName::KUBERNETES, Arc::new(kube));
    let engine = Engine::new(
        providers,
        Arc::new(FileBackend::new(dir.path())),
        EventSink::none(),
        EngineOptions {
            timeout: TIMEOUT,
            failure_grace: grace,
            ..EngineOptions::default()
        },
    );
    // With an outside quota, the namespace is the test's, not the stack's.
    let mut all = Vec::new();
    if !outside_quota_made {
        all.push(res(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        ));
    }
    all.extend(resources.into_iter().map(res));
    let graph = DesiredGraph::new(ns, all).expect("graph");
    let started = Instant::now();
    let error = engine
        .up(&graph, BTreeMap::new())
        .await
        .expect_err("the run must fail")
        .to_string();
    let elapsed = started.elapsed();
    engine.destroy(ns).await.expect("destroy");
    if outside_quota_made {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(cluster.client().expect("client"));
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
    Run { error, elapsed }
}

fn assert_at_once(run: &Run, expected: &[&str]) {
    for e in expected {
        assert!(run.error.contains(e), "missing {e:?} in: {}", run.error);
    }
    assert!(
        !run.error.contains("still failing after") && !run.error.contains("not ready after"),
        "failed by the grace or the timeout, not at once: {}",
        run.error
    );
    assert!(
        run.elapsed < AT_ONCE,
        "took {:?}: {}",
        run.elapsed,
        run.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_with_no_storage_class_fails_at_once() {
    let ns = "known-no-class";
    let run = up_fails(
        ns,
        vec![json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": ns},
            "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}})],
        GRACE,
    )
    .await;
    assert_at_once(
        &run,
        &[
            "PersistentVolumeClaim known-no-class/data",
            "FailedBinding: no persistent volumes available for this claim and no storage class is set",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_a_missing_storage_class_fails_at_once() {
    let ns = "known-missing-class";
    let run = up_fails(
        ns,
        vec![json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": ns},
            "spec": {"storageClassName": "does-not-exist", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}})],
        GRACE,
    )
    .await;
    assert_at_once(
        &run,
        &[
            "ProvisioningFailed",
            "storageclass.storage.k8s.io \"does-not-exist\" not found",
        ],
    );
}

fn quota(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "small", "namespace": ns},
        "spec": {"hard": {"requests.cpu": "500m", "limits.cpu": "1"}}})
}

fn big_container() -> Value {
    json!({"name": "app", "image": IMAGE,
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_over_its_quota_fails_at_once() {
    let ns = "known-quota-deploy";
    let run = up_fails_with(
        ns,
        vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "big", "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "big"}},
                    "template": {"metadata": {"labels": {"app": "big"}},
                        "spec": {"containers": [big_container()]}}}})],
        GRACE,
        Some(quota(ns)),
    )
    .await;
    assert_at_once(
        &run,
        &["Deployment known-quota-deploy/big", "exceeded quota: small"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_its_quota_fails_at_once() {
    let ns = "known-quota-job";
    let run = up_fails_with(
        ns,
        vec![json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "migrate", "namespace": ns},
                "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [big_container()]}}}})],
        GRACE,
        Some(quota(ns)),
    )
    .await;
    assert_at_once(
        &run,
        &[
            "Job known-quota-job/migrate",
            "FailedCreate",
            "exceeded quota: small",
        ],
    );
}

fn simulated(ns: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": IMAGE}]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_at_once() {
    let ns = "known-pull";
    let run = up_fails(
        ns,
        vec![simulated(ns, "pull", json!({
            "testkit.preview-envs.io/simulate": "ErrImagePull",
            "testkit.preview-envs.io/message": "rpc error: code = NotFound desc = manifest unknown"}))],
        GRACE,
    )
    .await;
    assert_at_once(
        &run,
        &["container app: ErrImagePull: rpc error: code = NotFound desc = manifest unknown"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_fails_at_once() {
    let ns = "known-crash";
    let run = up_fails(
        ns,
        vec![simulated(
            ns,
            "crash",
            json!({
            "testkit.preview-envs.io/simulate": "CrashLoopBackOff",
            "testkit.preview-envs.io/exit-code": "2"}),
        )],
        GRACE,
    )
    .await;
    assert_at_once(
        &run,
        &[
            "container app: CrashLoopBackOff",
            "last exit code 2",
            "(3 restarts)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_readiness_probe_is_named_and_fails_after_the_grace() {
    let ns = "known-probe";
    let grace = Duration::from_secs(3);
    let run = up_fails(
        ns,
        vec![simulated(
            ns,
            "probe",
            json!({"testkit.preview-envs.io/simulate": "Unhealthy"}),
        )],
        grace,
    )
    .await;
    for e in [
        "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503",
        "still failing after",
    ] {
        assert!(run.error.contains(e), "missing {e:?} in: {}", run.error);
    }
    assert!(run.elapsed < AT_ONCE, "took {:?}", run.elapsed);
}
