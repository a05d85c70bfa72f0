//! The engine against the real control plane: create → no-op (zero writes, checked
//! by the client's request counter AND the API server's audit log) → change one
//! field → replace on an immutable change → delete one resource → failure reporting
//! → adoption refusal and `import` → field-manager conflicts → destroy (the real
//! namespace controller removes the namespace).
//!
//! Pods never run here: the test kit's node simulator writes the status a kubelet
//! would, so readiness waits exercise the real deployment and job controllers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineError, EngineOptions, Providers};
use preview_core::events::{Event, EventSink};
use preview_core::graph::DesiredGraph;
use preview_core::plan::Action;
use preview_core::planner::ImportSelection;
use preview_core::state::file::FileBackend;
use preview_core::state::{StackState, StateBackend};
use preview_core::{Resource, ResourceId};
use preview_kubernetes::KubeProvider;
use serde_json::{Value, json};
use testkit::{ADMIN_USER, NodeSimulator, TestCluster};

struct Rig {
    cluster: &'static TestCluster,
    kube: KubeProvider,
    backend: Arc<FileBackend>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let cluster = TestCluster::shared().await.expect("cluster");
    NodeSimulator::shared().await.expect("simulator");
    let kube = KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    Rig {
        cluster,
        kube,
        backend: Arc::new(FileBackend::new(dir.path())),
        _dir: dir,
    }
}

impl Rig {
    fn engine(
        &self,
        options: EngineOptions,
    ) -> (Engine, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = EventSink::channel();
        let providers =
            Providers::new().with(ProviderName::KUBERNETES, Arc::new(self.kube.clone()));
        (
            Engine::new(providers, self.backend.clone(), events, options),
            rx,
        )
    }

    /// Mutating requests the admin user sent about namespace `ns` (audit log).
    fn audit_writes(&self, ns: &str) -> usize {
        self.cluster
            .audit_events_by(ADMIN_USER)
            .expect("audit log")
            .into_iter()
            .filter(|e| e.is_complete())
            .filter(|e| {
                matches!(
                    e.verb.as_str(),
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
            })
            .filter(|e| !e.request_uri.contains("dryRun="))
            .filter(|e| {
                e.namespace.as_deref() == Some(ns)
                    || (e.resource.as_deref() == Some("namespaces")
                        && e.name.as_deref() == Some(ns))
            })
            .count()
    }
}

fn options() -> EngineOptions {
    EngineOptions {
        timeout: Duration::from_secs(90),
        failure_grace: Duration::from_secs(3),
        ..EngineOptions::default()
    }
}

fn res(body: Value) -> Resource {
    Resource::kubernetes(body).expect("valid manifest")
}

const IMAGE: &str =
    "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// A small app: namespace, config, secret, deployment, service, migration job.
fn app(ns: &str, greeting: &str, job_image: &str, with_service: bool) -> Vec<Resource> {
    let mut out = vec![
        res(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        res(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "env", "namespace": ns}, "data": {"GREETING": greeting}})),
        res(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "env-secrets", "namespace": ns}, "type": "Opaque",
            "data": {"DB_PASSWORD": "c2VjcmV0LWNhbmFyeS12YWx1ZQ=="}})),
        res(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": IMAGE,
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "envFrom": [{"configMapRef": {"name": "env"}}, {"secretRef": {"name": "env-secrets"}}]}]}}}})),
        res(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": job_image}]}}}})),
    ];
    if with_service {
        out.push(res(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}})));
    }
    out
}

fn graph(stack: &str, resources: Vec<Resource>) -> DesiredGraph {
    DesiredGraph::new(stack, resources).expect("graph")
}

fn actions(plan: &preview_core::plan::Plan) -> BTreeMap<String, Action> {
    plan.steps
        .iter()
        .map(|s| (s.id.to_string(), s.action))
        .collect()
}

async fn live(rig: &Rig, id: &ResourceId) -> Option<Value> {
    use preview_core::provider::Provider;
    rig.kube.read(id).await.expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_create_noop_change_replace_delete_destroy() {
    let rig = rig().await;
    let ns = "engine-it-lifecycle";
    let stack = "engine-it-lifecycle";
    let (engine, _rx) = rig.engine(options());

    // Create.
    let g = graph(stack, app(ns, "hello", IMAGE, true));
    let plan = engine.preview(&g).await.expect("preview");
    assert!(
        plan.steps.iter().all(|s| s.action == Action::Create),
        "{:?}",
        actions(&plan)
    );
    let report = engine.up(&g, BTreeMap::new()).await.expect("first up");
    assert_eq!(report.plan.summary().create, 6);
    let dep = live(
        &rig,
        &ResourceId::kubernetes("apps/v1", "Deployment", Some(ns), "web"),
    )
    .await
    .expect("deployment");
    assert_eq!(
        dep.pointer("/status/availableReplicas"),
        Some(&json!(1)),
        "rolled out: {dep}"
    );
    let job = live(
        &rig,
        &ResourceId::kubernetes("batch/v1", "Job", Some(ns), "migrate"),
    )
    .await
    .expect("job");
    assert_eq!(
        job.pointer("/status/succeeded"),
        Some(&json!(1)),
        "job complete: {job}"
    );
    assert_eq!(
        dep.pointer("/metadata/labels/preview-envs.io~1stack"),
        Some(&json!(stack)),
        "ownership label stamped"
    );

    // No-op: zero writes and zero dry-runs, by the client counter and the audit log.
    let before = rig.kube.counts().snapshot();
    let audit_before = rig.audit_writes(ns);
    let report = engine.up(&g, BTreeMap::new()).await.expect("no-op up");
    let after = rig.kube.counts().snapshot();
    assert!(report.plan.is_empty(), "{:?}", actions(&report.plan));
    assert_eq!(after.writes - before.writes, 0, "no-op up must not write");
    assert_eq!(
        after.dry_runs - before.dry_runs,
        0,
        "no-op up needs no dry-run"
    );
    assert_eq!(after.reads - before.reads, 6, "one GET per resource");
    assert_eq!(
        rig.audit_writes(ns),
        audit_before,
        "audit log shows no engine write"
    );
    let serial = rig
        .backend
        .read(stack)
        .await
        .expect("state")
        .expect("exists")
        .serial;
    assert_eq!(serial, report.serial, "no-op up does not rewrite state");

    // Change one field: the ConfigMap updates and the Deployment rolls (config hash).
    let g = graph(stack, app(ns, "bonjour", IMAGE, true));
    let before = rig.kube.counts().snapshot();
    let plan = engine.preview(&g).await.expect("preview change");
    let a = actions(&plan);
    assert_eq!(a[&format!("ConfigMap {ns}/env")], Action::Update);
    assert_eq!(
        a[&format!("Deployment {ns}/web")],
        Action::Update,
        "config hash rolls the pods"
    );
    assert_eq!(a[&format!("Service {ns}/web")], Action::NoOp);
    let dry_runs = rig.kube.counts().snapshot().dry_runs - before.dry_runs;
    assert_eq!(dry_runs, 2, "dry-runs only for the two changed bodies");
    let cm_step = plan
        .steps
        .iter()
        .find(|s| s.id.kind == "ConfigMap")
        .expect("cm step");
    assert!(
        cm_step.diff.iter().any(|c| c.path.contains("GREETING")),
        "field-level diff names the field: {:?}",
        cm_step.diff
    );
    engine.up(&g, BTreeMap::new()).await.expect("change up");
    let cm = live(
        &rig,
        &ResourceId::kubernetes("v1", "ConfigMap", Some(ns), "env"),
    )
    .await
    .expect("cm");
    assert_eq!(cm.pointer("/data/GREETING"), Some(&json!("bonjour")));

    // Immutable field (Job template) → replace, detected from the API server's dry-run rejection.
    let job_id = ResourceId::kubernetes("batch/v1", "Job", Some(ns), "migrate");
    let old_uid = live(&rig, &job_id)
        .await
        .expect("job")
        .pointer("/metadata/uid")
        .cloned();
    let image2 = IMAGE.replace("0001", "0002");
    let g = graph(stack, app(ns, "bonjour", &image2, true));
    let plan = engine.preview(&g).await.expect("preview replace");
    let step = plan
        .steps
        .iter()
        .find(|s| s.id == job_id)
        .expect("job step");
    assert_eq!(step.action, Action::Replace, "{step:?}");
    assert!(
        step.reason.as_deref().unwrap_or("").contains("immutable"),
        "{step:?}"
    );
    engine.up(&g, BTreeMap::new()).await.expect("replace up");
    let new_uid = live(&rig, &job_id)
        .await
        .expect("job")
        .pointer("/metadata/uid")
        .cloned();
    assert_ne!(old_uid, new_uid, "the job was recreated");

    // Remove the Service from the graph → deleted and gone.
    let g = graph(stack, app(ns, "bonjour", &image2, false));
    let report = engine.up(&g, BTreeMap::new()).await.expect("delete up");
    assert_eq!(report.plan.summary().delete, 1);
    assert!(
        live(
            &rig,
            &ResourceId::kubernetes("v1", "Service", Some(ns), "web")
        )
        .await
        .is_none()
    );

    // Destroy: reverse order, the real namespace controller removes the namespace,
    // nothing carrying the stack label remains, and the state is removed.
    let report = engine.destroy(stack).await.expect("destroy");
    assert_eq!(report.plan.summary().delete, 5);
    assert!(
        live(&rig, &ResourceId::kubernetes("v1", "Namespace", None, ns))
            .await
            .is_none()
    );
    // Verified: the stack's state is gone too (`keep_state` would keep it emptied).
    assert!(
        rig.backend.read(stack).await.expect("read").is_none(),
        "a verified destroy removes the stack's state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failure_is_named_at_once() {
    let rig = rig().await;
    let ns = "engine-it-failure";
    let stack = "engine-it-failure";
    let (engine, mut rx) = rig.engine(EngineOptions {
        timeout: Duration::from_secs(120),
        // A known cause: the step fails at once, not after the grace period.
        failure_grace: Duration::from_secs(90),
        ..EngineOptions::default()
    });
    let resources = vec![
        res(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        res(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "broken", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "broken"}},
                "template": {"metadata": {"labels": {"app": "broken"}, "annotations": {
                    "testkit.preview-envs.io/simulate": "ImagePullBackOff",
                    "testkit.preview-envs.io/message": "Back-off pulling image \"registry.example/app@sha256:dead\""}},
                    "spec": {"containers": [{"name": "app", "image": IMAGE}]}}}})),
    ];
    let started = std::time::Instant::now();
    let err = engine
        .up(&graph(stack, resources), BTreeMap::new())
        .await
        .expect_err("must fail");
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.contains("ImagePullBackOff"), "{text}");
    assert!(text.contains("Back-off pulling image"), "{text}");
    assert!(text.contains(&format!("Deployment {ns}/broken")), "{text}");
    assert!(
        elapsed < Duration::from_secs(60),
        "failed at once ({elapsed:?}), not after the 90 s grace or the 120 s timeout"
    );
    let mut saw_failed_event = false;
    while let Ok(e) = rx.try_recv() {
        if let Event::StepFailed { error, .. } = e {
            saw_failed_event |= error.contains("ImagePullBackOff");
        }
    }
    assert!(saw_failed_event, "the step failed naming the cause");
    // The namespace was created and recorded: destroy cleans it up.
    engine.destroy(stack).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_not_adopted_without_import() {
    let rig = rig().await;
    let ns = "engine-it-adopt";
    let stack = "engine-it-adopt";
    let client = rig.cluster.client().expect("client");
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
    )
    .await
    .expect("create ns by hand");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "legacy"}, "data": {"A": "1"}}))
            .expect("cm");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create cm by hand");
    let resources = || {
        vec![
            res(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
            res(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "legacy", "namespace": ns}, "data": {"A": "1", "B": "2"}})),
        ]
    };

    let (engine, _rx) = rig.engine(options());
    let before = rig.kube.counts().snapshot();
    let err = engine
        .up(&graph(stack, resources()), BTreeMap::new())
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, EngineError::Plan(_)), "{text}");
    assert!(
        text.contains(&format!("ConfigMap {ns}/legacy")) && text.contains("import"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Namespace {ns}")),
        "all problems reported: {text}"
    );
    assert_eq!(
        rig.kube.counts().snapshot().writes,
        before.writes,
        "nothing applied"
    );

    let (importer, _rx) = rig.engine(EngineOptions {
        plan: preview_core::planner::PlanOptions {
            import: ImportSelection::All,
            ..Default::default()
        },
        ..options()
    });
    let report = importer
        .up(&graph(stack, resources()), BTreeMap::new())
        .await
        .expect("import");
    assert_eq!(
        report.plan.summary().import,
        2,
        "{:?}",
        actions(&report.plan)
    );
    let now = cms.get("legacy").await.expect("cm");
    assert_eq!(
        now.metadata.uid, created.metadata.uid,
        "adopted, not recreated"
    );
    assert_eq!(
        now.data.expect("data").get("B").map(String::as_str),
        Some("2")
    );
    let state: StackState = rig.backend.read(stack).await.expect("read").expect("state");
    assert!(state.resources.values().all(|r| r.imported), "{state:?}");

    // Another manager takes a field we own → conflict names the field and manager;
    // --force-conflicts takes it back.
    let other = PatchParams::apply("other-tool").force();
    cms.patch(
        "legacy",
        &other,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "legacy"}, "data": {"B": "from-other"}})),
    )
    .await
    .expect("other manager");
    let (engine, _rx) = rig.engine(options());
    let mut desired = resources();
    desired[1] = res(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "legacy", "namespace": ns}, "data": {"A": "1", "B": "3"}}));
    let err = engine
        .up(&graph(stack, desired.clone()), BTreeMap::new())
        .await
        .expect_err("conflict");
    let text = err.to_string();
    assert!(
        text.contains("other-tool") && text.contains(".data.B"),
        "{text}"
    );
    let (forcing, _rx) = rig.engine(EngineOptions {
        force_conflicts: true,
        ..options()
    });
    forcing
        .up(&graph(stack, desired), BTreeMap::new())
        .await
        .expect("forced");
    assert_eq!(
        cms.get("legacy").await.expect("cm").data.expect("data")["B"],
        "3"
    );
    forcing.destroy(stack).await.expect("destroy");
    assert!(
        live(&rig, &ResourceId::kubernetes("v1", "Namespace", None, ns))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_namespace_is_reported_and_finalized_only_on_request() {
    let rig = rig().await;
    let ns = "engine-it-stuck";
    let stack = "engine-it-stuck";
    // A finalizer no controller here will ever remove keeps the namespace Terminating.
    let resources = vec![res(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes", "example.com/hold"]}}))];
    let (engine, _rx) = rig.engine(options());
    engine
        .up(&graph(stack, resources), BTreeMap::new())
        .await
        .expect("up");

    let (impatient, _rx) = rig.engine(EngineOptions {
        timeout: Duration::from_secs(20),
        failure_grace: Duration::from_secs(2),
        ..EngineOptions::default()
    });
    let err = impatient.destroy(stack).await.expect_err("stuck");
    let text = err.to_string();
    assert!(text.contains(&format!("Namespace {ns}")), "{text}");
    assert!(
        text.contains("example.com/hold"),
        "names the finalizer: {text}"
    );
    assert!(
        err.leftovers()
            .iter()
            .any(|l| l.deleting && l.id.to_string() == format!("Namespace {ns}")),
        "names what is held, for the binary's hint: {err:?}"
    );
    assert!(
        !text.contains("--force-finalize"),
        "the library names no CLI flag: {text}"
    );
    let still = live(&rig, &ResourceId::kubernetes("v1", "Namespace", None, ns))
        .await
        .expect("still there");
    assert_eq!(still.pointer("/status/phase"), Some(&json!("Terminating")));

    let (forcing, _rx) = rig.engine(EngineOptions {
        timeout: Duration::from_secs(60),
        failure_grace: Duration::from_secs(1),
        force_finalize: true,
        ..EngineOptions::default()
    });
    forcing.destroy(stack).await.expect("forced destroy");
    assert!(
        live(&rig, &ResourceId::kubernetes("v1", "Namespace", None, ns))
            .await
            .is_none()
    );
}
