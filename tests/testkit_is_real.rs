//! Proof that the test kit runs the real thing: a real kube-apiserver and the
//! real controllers in kube-controller-manager (deployment, replicaset, job,
//! namespace, garbage collector, persistentvolume-binder) over a real etcd, a real
//! PostgreSQL, the real kube-scheduler, the real CRDs and the real cert-manager
//! controller. The node simulator writes only what a kubelet and a gateway
//! controller would write; no container runs. Each assertion below that a controller acted is checked against the
//! object it writes or the API server's audit log (who sent which request).
//!
//! One cluster for the whole binary ([`integration_tests::cluster`]); each test
//! works in its own namespace.

use std::time::Instant;

use integration_tests::{
    WAIT, cluster, cluster_with_crds, create_namespace, unique_name, wait_for,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::{Value, json};
use testkit::simulator::annotations::{DELAY_MS, MESSAGE, SIMULATE};
use testkit::{
    ADMIN_USER, CERT_MANAGER_USER, CONTROLLER_MANAGER_USER, CONTROLLER_SERVICE_ACCOUNT_PREFIX,
    SCHEDULER_USER, SIMULATOR_USER, TestCluster, TestPostgres,
};

/// The shared cluster, a client for it and a new namespace named after `prefix`.
async fn cluster_namespace(prefix: &str) -> (&'static TestCluster, kube::Client, String) {
    let cluster = cluster().await.expect("shared cluster");
    let client = cluster.client().expect("client");
    let ns = create_namespace(&client, prefix).await.expect("namespace");
    (cluster, client, ns)
}

/// Waits until Deployment `name` has `replicas` available replicas (`what` names the
/// wait in the error).
async fn wait_available(deployments: &Api<Deployment>, name: &str, replicas: i32, what: &str) {
    wait_for(deployments, name, what, |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.available_replicas == Some(replicas))
    })
    .await
    .expect("available");
}

/// Creates [`deployment`]`(name, replicas, annotations)` through `deployments`.
async fn create_deployment(
    deployments: &Api<Deployment>,
    name: &str,
    replicas: i32,
    annotations: Value,
) {
    deployments
        .create(
            &PostParams::default(),
            &deployment(name, replicas, annotations),
        )
        .await
        .unwrap_or_else(|e| panic!("create Deployment {name}: {e}"));
}

fn deployment(name: &str, replicas: i32, annotations: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "initContainers": [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
                    "containers": [{
                        "name": "app",
                        "image": "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                        },
                    }],
                },
            },
        },
    }))
    .expect("valid Deployment")
}

fn job(name: &str, annotations: Value, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": "alpine:3.20", "command": ["true"]}],
                },
            },
        },
    }))
    .expect("valid Job")
}

fn has_condition(conditions: Option<&Vec<impl HasCondition>>, kind: &str, status: &str) -> bool {
    conditions.into_iter().flatten().any(|c| c.is(kind, status))
}

trait HasCondition {
    fn is(&self, kind: &str, status: &str) -> bool;
}

impl HasCondition for k8s_openapi::api::apps::v1::DeploymentCondition {
    fn is(&self, kind: &str, status: &str) -> bool {
        self.type_ == kind && self.status == status
    }
}

impl HasCondition for k8s_openapi::api::batch::v1::JobCondition {
    fn is(&self, kind: &str, status: &str) -> bool {
        self.type_ == kind && self.status == status
    }
}

impl HasCondition for k8s_openapi::api::core::v1::PodCondition {
    fn is(&self, kind: &str, status: &str) -> bool {
        self.type_ == kind && self.status == status
    }
}

fn pod_ready(pod: &Pod) -> bool {
    has_condition(
        pod.status.as_ref().and_then(|s| s.conditions.as_ref()),
        "Ready",
        "True",
    )
}

/// The condition `kind` in a custom object's `.status.conditions`.
fn cr_condition<'a>(obj: &'a DynamicObject, pointer: &str, kind: &str) -> Option<&'a Value> {
    obj.data
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
}

#[tokio::test]
async fn deployment_becomes_available_through_the_real_controllers() {
    let (cluster, client, ns) = cluster_namespace("deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "web", 2, json!({})).await;

    let began = Instant::now();
    let web = wait_for(
        &deployments,
        "web",
        "Deployment Available=True, 2 available",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.available_replicas == Some(2)
                    && has_condition(s.conditions.as_ref(), "Available", "True")
            })
        },
    )
    .await
    .expect("Deployment becomes available");
    eprintln!("Deployment available after {:?}", began.elapsed());

    // The real deployment controller made one ReplicaSet owned by the Deployment …
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let rs_list = replica_sets
        .list(&ListParams::default())
        .await
        .expect("list ReplicaSets");
    assert_eq!(rs_list.items.len(), 1, "one ReplicaSet");
    let rs = &rs_list.items[0];
    let owner = &rs
        .metadata
        .owner_references
        .as_ref()
        .expect("owner references")[0];
    assert_eq!(owner.kind, "Deployment");
    assert_eq!(Some(&owner.uid), web.metadata.uid.as_ref());

    // … whose pods the real replicaset controller created and the simulator bound and ran.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod_list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list Pods");
    assert_eq!(pod_list.items.len(), 2, "two pods");
    for pod in &pod_list.items {
        let spec = pod.spec.as_ref().expect("spec");
        let status = pod.status.as_ref().expect("status");
        assert_eq!(spec.node_name.as_deref(), Some("sim-node"));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(pod_ready(pod), "pod is Ready");
        let container = &status
            .container_statuses
            .as_ref()
            .expect("containerStatuses")[0];
        assert!(container.ready);
        assert_eq!(container.started, Some(true));
        assert!(
            container.image_id.contains("@sha256:"),
            "pinned image reports its digest"
        );
        let init = &status
            .init_container_statuses
            .as_ref()
            .expect("initContainerStatuses")[0];
        let terminated = init
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("init terminated");
        assert_eq!(terminated.exit_code, 0);
        assert_eq!(
            pod.metadata.owner_references.as_ref().expect("owner")[0].kind,
            "ReplicaSet"
        );
        // Resources survived admission (LimitRanger etc. ran for real).
        let requests = spec.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .expect("requests");
        assert_eq!(requests["cpu"].0, "100m");
    }

    // Who did what, according to the API server.
    let kcm = cluster.controller_audit_events().expect("audit log");
    let in_ns = |e: &&testkit::AuditEvent, verb: &str, resource: &str| {
        e.verb == verb
            && e.resource.as_deref() == Some(resource)
            && e.namespace.as_deref() == Some(ns.as_str())
    };
    assert!(
        kcm.iter()
            .any(|e| in_ns(&e, "create", "replicasets") && e.code == Some(201)),
        "the deployment controller created the ReplicaSet"
    );
    assert_eq!(
        kcm.iter()
            .filter(|e| in_ns(e, "create", "pods") && e.code == Some(201))
            .count(),
        2,
        "the replicaset controller created both pods"
    );
    let scheduler = cluster.audit_events_by(SCHEDULER_USER).expect("audit log");
    assert_eq!(
        scheduler
            .iter()
            .filter(|e| in_ns(e, "create", "pods") && e.subresource.as_deref() == Some("binding"))
            .count(),
        2,
        "the real scheduler bound both pods"
    );
    let sim = cluster.audit_events_by(SIMULATOR_USER).expect("audit log");
    assert!(
        !sim.iter()
            .any(|e| in_ns(&e, "create", "pods") && e.subresource.as_deref() == Some("binding")),
        "the simulator binds nothing"
    );
    assert!(
        sim.iter()
            .any(|e| in_ns(&e, "patch", "pods") && e.subresource.as_deref() == Some("status"))
    );
}

#[tokio::test]
async fn job_completes_through_the_real_job_controller() {
    let (cluster, client, ns) = cluster_namespace("job").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job("migrate", json!({}), 6))
        .await
        .expect("create Job");
    let done = wait_for(&jobs, "migrate", "Job Complete=True", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| has_condition(s.conditions.as_ref(), "Complete", "True"))
    })
    .await
    .expect("Job completes");
    assert_eq!(done.status.as_ref().and_then(|s| s.succeeded), Some(1));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod_list = pods
        .list(&ListParams::default().labels("job-name=migrate"))
        .await
        .expect("list");
    assert_eq!(pod_list.items.len(), 1);
    let status = pod_list.items[0].status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let terminated = status.container_statuses.as_ref().expect("statuses")[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );
    // The Complete condition came from the controller-manager, not from the simulator.
    let kcm = cluster.controller_audit_events().expect("audit log");
    assert!(kcm.iter().any(|e| e.resource.as_deref() == Some("jobs")
        && e.subresource.as_deref() == Some("status")
        && e.namespace.as_deref() == Some(ns.as_str())));
    let sim = cluster.audit_events_by(SIMULATOR_USER).expect("audit log");
    assert!(
        !sim.iter().any(|e| e.resource.as_deref() == Some("jobs")),
        "the simulator never touches Jobs"
    );
}

#[tokio::test]
async fn failing_job_pod_makes_the_real_job_controller_give_up() {
    let (_, client, ns) = cluster_namespace("jobfail").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let annotations = json!({SIMULATE: "Fail", MESSAGE: "relation \"users\" does not exist"});
    jobs.create(&PostParams::default(), &job("migrate", annotations, 0))
        .await
        .expect("create Job");
    let failed = wait_for(&jobs, "migrate", "Job Failed=True", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| has_condition(s.conditions.as_ref(), "Failed", "True"))
    })
    .await
    .expect("Job fails");
    let condition = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .expect("conditions")
        .iter()
        .find(|c| c.type_ == "Failed")
        .cloned()
        .expect("Failed condition");
    assert_eq!(condition.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod = &pods
        .list(&ListParams::default().labels("job-name=migrate"))
        .await
        .expect("list")
        .items[0];
    let terminated = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .expect("statuses")[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .cloned()
        .expect("terminated");
    assert_eq!(terminated.exit_code, 1);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    assert_eq!(
        terminated.message.as_deref(),
        Some("relation \"users\" does not exist")
    );
}

#[tokio::test]
async fn image_pull_backoff_and_crash_loop_are_reported() {
    let (_, client, ns) = cluster_namespace("failing").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let message = "rpc error: code = NotFound desc = ghcr.io/acme/api:pr-123: not found";
    create_deployment(
        &deployments,
        "pull",
        1,
        json!({SIMULATE: "ImagePullBackOff", MESSAGE: message}),
    )
    .await;
    create_deployment(
        &deployments,
        "crash",
        1,
        json!({SIMULATE: "CrashLoopBackOff"}),
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let waiting_reason = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .map(|w| {
                (
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default(),
                )
            })
    };
    let mut seen = None;
    let began = Instant::now();
    while began.elapsed() < WAIT {
        let list = pods.list(&ListParams::default()).await.expect("list");
        let by_app = |app: &str| {
            list.items
                .iter()
                .find(|p| p.metadata.labels.as_ref().is_some_and(|l| l["app"] == app))
        };
        let (pull, crash) = (by_app("pull"), by_app("crash"));
        if let (Some(pull), Some(crash)) = (pull, crash)
            && let (Some(a), Some(b)) = (waiting_reason(pull), waiting_reason(crash))
        {
            seen = Some((a, b, pull.clone(), crash.clone()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ((pull_reason, pull_message), (crash_reason, _), pull, crash) =
        seen.expect("both pods report a waiting reason");
    assert_eq!(pull_reason, "ImagePullBackOff");
    assert_eq!(pull_message, message);
    assert_eq!(
        pull.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert!(!pod_ready(&pull));
    assert_eq!(crash_reason, "CrashLoopBackOff");
    assert_eq!(
        crash.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    let crash_status = &crash
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .expect("statuses")[0];
    assert_eq!(crash_status.restart_count, 3);
    // The real deployment controller sees no available replica.
    let pull_deployment = deployments.get("pull").await.expect("get");
    let status = pull_deployment.status.expect("status");
    assert_eq!(status.available_replicas.unwrap_or(0), 0);
    assert_eq!(status.unavailable_replicas, Some(1));
}

#[tokio::test]
async fn delayed_readiness_is_observed() {
    let (_, client, ns) = cluster_namespace("slow").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "slow", 1, json!({DELAY_MS: "2500"})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // First Running but not Ready …
    let began = Instant::now();
    let mut saw_unready_running = false;
    while began.elapsed() < WAIT {
        let list = pods.list(&ListParams::default()).await.expect("list");
        if let Some(pod) = list.items.first() {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running && !pod_ready(pod) {
                saw_unready_running = true;
            }
            if running && pod_ready(pod) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        saw_unready_running,
        "the pod was Running but not Ready during the delay"
    );
    // … then available.
    wait_available(
        &deployments,
        "slow",
        1,
        "Deployment available after the delay",
    )
    .await;
    assert!(
        began.elapsed() >= std::time::Duration::from_millis(2000),
        "readiness waited for the delay"
    );
}

#[tokio::test]
async fn garbage_collector_removes_a_deleted_deployments_dependents() {
    let (cluster, client, ns) = cluster_namespace("gc").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "web", 2, json!({})).await;
    wait_available(&deployments, "web", 2, "Deployment available").await;
    // Background propagation: the API server deletes the Deployment at once and
    // the real garbage collector deletes the ReplicaSet, whose pods follow.
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete Deployment");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let began = Instant::now();
    loop {
        let rs_left = replica_sets
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len();
        let pods_left = pods
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len();
        if rs_left == 0 && pods_left == 0 {
            break;
        }
        assert!(
            began.elapsed() < WAIT,
            "{rs_left} ReplicaSets and {pods_left} pods left after {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!("dependents collected after {:?}", began.elapsed());
    let kcm = cluster.controller_audit_events().expect("audit log");
    assert!(
        kcm.iter().any(|e| e.verb == "delete"
            && e.resource.as_deref() == Some("replicasets")
            && e.namespace.as_deref() == Some(ns.as_str())),
        "the garbage collector deleted the ReplicaSet"
    );
}

#[tokio::test]
async fn namespace_deletion_by_the_real_namespace_controller() {
    let (cluster, client, ns) = cluster_namespace("doomed").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "web", 1, json!({})).await;
    wait_available(&deployments, "web", 1, "Deployment available").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "b"}}))
            .expect("cm");
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let began = Instant::now();
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    loop {
        match namespaces.get_opt(&ns).await.expect("get namespace") {
            None => break,
            Some(n) => {
                assert!(
                    began.elapsed() < WAIT,
                    "namespace still there after {WAIT:?}: {:?}",
                    n.status
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!(
        "namespace {ns} gone (GET → 404) after {:?}",
        began.elapsed()
    );
    // The namespace controller (controller-manager user) emptied it.
    let kcm = cluster.controller_audit_events().expect("audit log");
    assert!(
        kcm.iter()
            .any(|e| e.verb == "deletecollection" && e.namespace.as_deref() == Some(ns.as_str())),
        "the namespace controller deleted the namespace's content"
    );
    let admin = cluster.audit_events_by(ADMIN_USER).expect("audit log");
    assert!(
        !admin
            .iter()
            .any(|e| e.verb == "deletecollection" && e.namespace.as_deref() == Some(ns.as_str()))
    );
}

#[tokio::test]
async fn persistent_volume_claim_is_bound_by_the_real_binder() {
    let (_, client, ns) = cluster_namespace("pvc").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}},
    }))
    .expect("claim");
    let created = claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create PVC");
    let bound = wait_for(
        &claims,
        "data",
        "PVC Bound",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await
    .expect("bound");
    let uid = created.metadata.uid.expect("uid");
    let volume_name = format!("testkit-pv-{uid}");
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
        Some(volume_name.as_str())
    );
    // The binder marks claims it bound; the simulator never writes this annotation.
    let annotations = bound.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("pv.kubernetes.io/bind-completed")
            .map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        bound
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .expect("capacity")["storage"]
            .0,
        "3Gi"
    );

    // Deleting the claim releases the volume; the simulator reclaims it.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    assert!(
        volumes
            .get_opt(&volume_name)
            .await
            .expect("get PV")
            .is_some()
    );
    claims
        .delete("data", &DeleteParams::default())
        .await
        .expect("delete PVC");
    let began = Instant::now();
    while volumes
        .get_opt(&volume_name)
        .await
        .expect("get PV")
        .is_some()
    {
        assert!(began.elapsed() < WAIT, "volume {volume_name} not reclaimed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn crds_load_and_gateway_objects_get_simulated_status() {
    let (cluster, report) = cluster_with_crds().await.expect("cluster with CRDs");
    eprintln!(
        "installed {} CRDs from {} files: applied in {:?}, Established after {:?} more",
        report.names.len(),
        report.files.len(),
        report.applied_in,
        report.established_in
    );
    assert_eq!(report.files.len(), 4);
    assert_eq!(report.names.len(), 19);
    let client = cluster.client().expect("client");
    // Re-applying is idempotent (and shows the cost of a no-change apply).
    let again = testkit::install_crds(&client, &testkit::default_crd_dir())
        .await
        .expect("re-install");
    eprintln!("re-applied all CRDs in {:?}", again.elapsed());

    let ns = create_namespace(&client, "gateway")
        .await
        .expect("namespace");
    let class = unique_name("nginx");
    let gvk = |group: &str, version: &str, kind: &str, plural: &str| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    };
    let gw = "gateway.networking.k8s.io";
    let resources = [
        (
            gvk(gw, "v1", "GatewayClass", "gatewayclasses"),
            false,
            json!({
                "metadata": {"name": class},
                "spec": {"controllerName": "gateway.nginx.org/nginx-gateway-controller"},
            }),
        ),
        (
            gvk(gw, "v1", "Gateway", "gateways"),
            true,
            json!({
                "metadata": {"name": "preview-gateway"},
                "spec": {
                    "gatewayClassName": class,
                    "listeners": [
                        {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.preview.example.com",
                         "allowedRoutes": {"namespaces": {"from": "All"}}},
                        {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "*.preview.example.com",
                         "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "preview-wildcard-tls"}]},
                         "allowedRoutes": {"namespaces": {"from": "All"}}},
                    ],
                },
            }),
        ),
        (
            gvk(gw, "v1", "Gateway", "gateways"),
            true,
            json!({
                "metadata": {"name": "broken-gateway", "annotations": {SIMULATE: "NotProgrammed", MESSAGE: "no address available"}},
                "spec": {"gatewayClassName": class, "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
            }),
        ),
        (
            gvk(gw, "v1", "HTTPRoute", "httproutes"),
            true,
            json!({
                "metadata": {"name": "app"},
                "spec": {
                    "parentRefs": [{"name": "preview-gateway", "sectionName": "https"}],
                    "hostnames": ["pr-123.preview.example.com"],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                               "backendRefs": [{"name": "app", "port": 8080}]}],
                },
            }),
        ),
    ];
    let api_for = |resource: &ApiResource, namespaced: bool| -> Api<DynamicObject> {
        if namespaced {
            Api::namespaced_with(client.clone(), &ns, resource)
        } else {
            Api::all_with(client.clone(), resource)
        }
    };
    for (resource, namespaced, body) in &resources {
        let mut obj: DynamicObject = serde_json::from_value(body.clone()).expect("object");
        obj.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        api_for(resource, *namespaced)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {} {:?}: {e}", resource.kind, obj.metadata.name));
    }
    let [class_res, gateway_res, _, route_res] =
        resources.map(|(r, namespaced, _)| (r, namespaced));

    let condition_true = |pointer: &'static str, kind: &'static str| {
        move |o: Option<&DynamicObject>| {
            o.and_then(|o| cr_condition(o, pointer, kind))
                .is_some_and(|c| c["status"] == "True")
        }
    };
    let accepted_class = wait_for(
        &api_for(&class_res.0, false),
        &class,
        "GatewayClass Accepted",
        condition_true("/status/conditions", "Accepted"),
    )
    .await
    .expect("GatewayClass accepted");
    assert!(cr_condition(&accepted_class, "/status/conditions", "SupportedVersion").is_some());

    let gateways = api_for(&gateway_res.0, true);
    let gateway = wait_for(
        &gateways,
        "preview-gateway",
        "Gateway Programmed",
        condition_true("/status/conditions", "Programmed"),
    )
    .await
    .expect("Gateway programmed");
    let generation = gateway.metadata.generation.expect("generation");
    let accepted = cr_condition(&gateway, "/status/conditions", "Accepted").expect("Accepted");
    assert_eq!(accepted["status"], "True");
    assert_eq!(accepted["observedGeneration"], generation);
    let listeners = gateway
        .data
        .pointer("/status/listeners")
        .and_then(Value::as_array)
        .expect("listeners");
    assert_eq!(
        listeners
            .iter()
            .map(|l| l["name"].clone())
            .collect::<Vec<_>>(),
        vec![json!("http"), json!("https")]
    );
    for listener in listeners {
        assert_eq!(listener["attachedRoutes"], 0);
        assert_eq!(
            listener["supportedKinds"][0],
            json!({"group": gw, "kind": "HTTPRoute"})
        );
        for kind in ["Accepted", "Programmed", "ResolvedRefs"] {
            let c = listener["conditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .find(|c| c["type"] == kind)
                .expect(kind);
            assert_eq!(c["status"], "True");
        }
    }

    let broken = wait_for(
        &gateways,
        "broken-gateway",
        "Gateway with Programmed=False",
        |o: Option<&DynamicObject>| {
            o.and_then(|o| cr_condition(o, "/status/conditions", "Programmed"))
                .is_some_and(|c| c["status"] == "False")
        },
    )
    .await
    .expect("failure injected");
    let programmed = cr_condition(&broken, "/status/conditions", "Programmed").expect("Programmed");
    assert_eq!(programmed["message"], "no address available");

    let routes = api_for(&route_res.0, true);
    let route = wait_for(
        &routes,
        "app",
        "HTTPRoute parent status",
        |o: Option<&DynamicObject>| {
            o.and_then(|o| o.data.pointer("/status/parents/0/conditions"))
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().all(|c| c["status"] == "True") && c.len() == 2)
        },
    )
    .await
    .expect("HTTPRoute accepted");
    let parent = route.data.pointer("/status/parents/0").expect("parent");
    assert_eq!(
        parent["controllerName"],
        "gateway.nginx.org/nginx-gateway-controller"
    );
    assert_eq!(parent["parentRef"]["name"], "preview-gateway");
    assert_eq!(parent["parentRef"]["sectionName"], "https");
    // Defaults from the CRD schema were applied by the real API server.
    assert_eq!(parent["parentRef"]["kind"], "Gateway");
}

async fn databases_named(client: &tokio_postgres::Client, name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("query pg_database")
        .get(0)
}

#[tokio::test]
async fn postgres_creates_and_drops_a_database() {
    let postgres = TestPostgres::shared().await.expect("shared PostgreSQL");
    let client = postgres.client().await.expect("connect");
    let name = unique_name("kit_db").replace('-', "_");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    assert_eq!(databases_named(&client, &name).await, 1);
    // The URL form works too, against the new database.
    let (other, connection) =
        tokio_postgres::connect(&postgres.url_for(&name), tokio_postgres::NoTls)
            .await
            .expect("connect by URL");
    let task = tokio::spawn(connection);
    let current: String = other
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(current, name);
    drop(other);
    let _ = task.await;
    client
        .batch_execute(&format!("DROP DATABASE {name}"))
        .await
        .expect("drop database");
    assert_eq!(databases_named(&client, &name).await, 0);
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .expect("version")
        .get(0);
    eprintln!("PostgreSQL {version} at {}", postgres.url());
}

#[tokio::test]
async fn audit_log_tells_the_users_apart() {
    let (cluster, client, ns) = cluster_namespace("audit").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "probe"}})).expect("cm");
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    config_maps.get("probe").await.expect("get");

    let events = cluster.audit_events().expect("audit log");
    let mine: Vec<_> = events
        .iter()
        .filter(|e| {
            e.is_complete()
                && e.namespace.as_deref() == Some(ns.as_str())
                && e.resource.as_deref() == Some("configmaps")
        })
        .filter(|e| e.name.as_deref() == Some("probe") || e.verb == "create")
        .filter(|e| e.user == ADMIN_USER)
        .collect();
    let verbs: Vec<&str> = mine.iter().map(|e| e.verb.as_str()).collect();
    assert!(
        verbs.contains(&"create") && verbs.contains(&"get"),
        "admin requests recorded: {verbs:?}"
    );
    for e in &mine {
        assert!(e.groups.iter().any(|g| g == "system:masters"));
        assert!(e.request_uri.contains(&ns));
    }
    // The controller-manager's requests carry its own user or its controllers'
    // service accounts …
    let kcm: Vec<_> = events
        .iter()
        .filter(|e| {
            e.user == CONTROLLER_MANAGER_USER
                || e.user.starts_with(CONTROLLER_SERVICE_ACCOUNT_PREFIX)
        })
        .collect();
    assert!(
        !kcm.is_empty(),
        "controller-manager requests are in the log"
    );
    let from_apiserver: Vec<_> = kcm
        .iter()
        .filter(|e| {
            e.user_agent
                .as_deref()
                .unwrap_or_default()
                .starts_with("kube-apiserver/")
        })
        .map(|e| (&e.user, &e.verb, &e.request_uri, &e.user_agent))
        .collect();
    assert!(from_apiserver.is_empty(), "{from_apiserver:?}");
    // … e.g. the service-account controller creating `default` in our namespace.
    let began = Instant::now();
    loop {
        let sa_created = cluster
            .audit_events_by(&format!(
                "{CONTROLLER_SERVICE_ACCOUNT_PREFIX}service-account-controller"
            ))
            .expect("audit log")
            .iter()
            .any(|e| {
                e.verb == "create"
                    && e.resource.as_deref() == Some("serviceaccounts")
                    && e.namespace.as_deref() == Some(ns.as_str())
            });
        if sa_created {
            break;
        }
        assert!(
            began.elapsed() < WAIT,
            "no ServiceAccount created by the controller-manager in {ns}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Nobody else used the admin token for the namespace's ServiceAccount.
    assert!(
        !cluster
            .audit_events_by(ADMIN_USER)
            .expect("audit log")
            .iter()
            .any(|e| e.resource.as_deref() == Some("serviceaccounts")
                && e.namespace.as_deref() == Some(ns.as_str()))
    );
}

#[tokio::test]
async fn unprivileged_user_is_denied_by_rbac() {
    let cluster = cluster().await.expect("shared cluster");
    let client = cluster.unprivileged_client().expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    match namespaces.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

/// A cert-manager object of `kind` (`Issuer`, `Certificate`) in `ns`.
async fn create_cert_manager_object(client: &kube::Client, ns: &str, kind: &str, body: Value) {
    let plural = format!("{}s", kind.to_lowercase());
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", kind),
        &plural,
    );
    let mut obj: DynamicObject = serde_json::from_value(body).expect("object");
    obj.types = Some(kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: kind.to_owned(),
    });
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind} {:?}: {e}", obj.metadata.name));
}

/// Waits until the cert-manager object's `Ready` condition has `status`.
async fn cert_manager_ready(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    status: &'static str,
) -> DynamicObject {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", kind),
        &format!("{}s", kind.to_lowercase()),
    );
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
    wait_for(
        &api,
        name,
        &format!("{kind} Ready={status}"),
        move |o: Option<&DynamicObject>| {
            o.and_then(|o| cr_condition(o, "/status/conditions", "Ready"))
                .is_some_and(|c| c["status"] == status)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The real cert-manager (v1.20, built from its Go modules, run out of cluster as
/// its own RBAC-bound user) issues a self-signed CA and, from a CA Issuer on it, a
/// wildcard certificate: the Secrets hold real certificates with the requested
/// SANs, the leaf verifies against the CA, and an Issuer whose CA Secret is
/// missing is reported not Ready by cert-manager itself.
#[tokio::test]
async fn certificates_are_issued_by_the_real_cert_manager() {
    let (cluster, _) = cluster_with_crds().await.expect("cluster with CRDs");
    let cert_manager = cluster.cert_manager().await.expect("cert-manager");
    eprintln!("cert-manager ready in {:?}", cert_manager.startup_time());
    let client = cluster.client().expect("client");
    let ns = create_namespace(&client, "certs").await.expect("namespace");

    for (kind, object) in [
        (
            "Issuer",
            json!({"metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
        ),
        (
            "Certificate",
            json!({
                "metadata": {"name": "preview-ca"},
                "spec": {
                    "isCA": true,
                    "commonName": "preview-ca",
                    "secretName": "preview-ca",
                    "privateKey": {"algorithm": "ECDSA", "size": 256},
                    "issuerRef": {"kind": "Issuer", "name": "selfsigned"},
                },
            }),
        ),
        (
            "Issuer",
            json!({"metadata": {"name": "preview-ca"}, "spec": {"ca": {"secretName": "preview-ca"}}}),
        ),
        (
            "Certificate",
            json!({
                "metadata": {"name": "wildcard"},
                "spec": {
                    "secretName": "wildcard-tls",
                    "dnsNames": ["*.pr.example.com", "*.pr-api.example.com"],
                    "issuerRef": {"kind": "Issuer", "name": "preview-ca"},
                },
            }),
        ),
        // The Secret a CA Issuer names does not exist: cert-manager says so.
        (
            "Issuer",
            json!({"metadata": {"name": "broken-ca"}, "spec": {"ca": {"secretName": "no-such-secret"}}}),
        ),
    ] {
        create_cert_manager_object(&client, &ns, kind, object).await;
    }

    let issuer = cert_manager_ready(&client, &ns, "Issuer", "selfsigned", "True").await;
    let ready = cr_condition(&issuer, "/status/conditions", "Ready").expect("Ready");
    assert_eq!(ready["reason"], "IsReady", "{ready}");
    cert_manager_ready(&client, &ns, "Certificate", "preview-ca", "True").await;
    cert_manager_ready(&client, &ns, "Issuer", "preview-ca", "True").await;
    let certificate = cert_manager_ready(&client, &ns, "Certificate", "wildcard", "True").await;
    assert!(
        certificate.data.pointer("/status/notAfter").is_some(),
        "{:?}",
        certificate.data
    );
    let broken = cert_manager_ready(&client, &ns, "Issuer", "broken-ca", "False").await;
    let condition = cr_condition(&broken, "/status/conditions", "Ready").expect("Ready");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-secret")),
        "{condition}"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let ca = secrets.get("preview-ca").await.expect("CA Secret");
    let ca_pem = ca.data.as_ref().expect("data")["tls.crt"].0.clone();
    let ca_info = testkit::x509::inspect(&ca_pem)
        .await
        .expect("CA certificate");
    assert_eq!(ca_info.subject, "CN=preview-ca");
    assert_eq!(ca_info.issuer, "CN=preview-ca", "self-signed");

    let leaf = secrets.get("wildcard-tls").await.expect("TLS Secret");
    assert_eq!(leaf.type_.as_deref(), Some("kubernetes.io/tls"));
    let annotations = leaf.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["cert-manager.io/issuer-name"], "preview-ca");
    let data = leaf.data.expect("data");
    assert!(data.contains_key("tls.key"));
    assert_eq!(
        data["ca.crt"].0, ca_pem,
        "the CA issuer adds its certificate"
    );
    let info = testkit::x509::inspect(&data["tls.crt"].0)
        .await
        .expect("leaf certificate");
    assert_eq!(info.dns_names, ["*.pr.example.com", "*.pr-api.example.com"]);
    assert_eq!(info.issuer, "CN=preview-ca");
    testkit::x509::verify(&ca_pem, &data["tls.crt"].0)
        .await
        .expect("the leaf verifies against the CA");

    // cert-manager wrote them as its own user, not as an admin.
    let writes = cluster
        .audit_events_by(CERT_MANAGER_USER)
        .expect("audit log");
    for secret in ["preview-ca", "wildcard-tls"] {
        assert!(
            writes
                .iter()
                .any(|e| matches!(e.verb.as_str(), "create" | "patch")
                    && e.resource.as_deref() == Some("secrets")
                    && e.namespace.as_deref() == Some(ns.as_str())
                    && e.name.as_deref() == Some(secret)
                    && matches!(e.code, Some(200 | 201))),
            "Secret {ns}/{secret} was not written by {CERT_MANAGER_USER}"
        );
    }
    assert!(
        writes
            .iter()
            .any(|e| e.resource.as_deref() == Some("certificates")
                && e.subresource.as_deref() == Some("status")
                && e.namespace.as_deref() == Some(ns.as_str())),
        "cert-manager wrote Certificate status"
    );
}
