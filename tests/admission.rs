//! The admission plugins a current cluster runs are really in the test control
//! plane: PodSecurity rejects a pod that the `restricted` level forbids in a
//! namespace labelled `pod-security.kubernetes.io/enforce: restricted`, and
//! admits one that complies; the real scheduler binds the admitted pod to the
//! simulated node.
//!
//! And at stack level: the `preview-pr` stack's own Namespace (its PodSecurity
//! labels as rendered) admits the pods of its web and API Deployments and of its
//! migration Job, while the same web pod without the stack's hardening is
//! rejected, naming every violated control.

use std::collections::BTreeMap;

use integration_tests::{cluster, unique_name, wait_for};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use preview_core::secret::SecretString;
use serde_json::{Value, json};
use stacks::{PrNumber, References, SecretSource, StackKind, StackRequest};

const IMAGE: &str =
    "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn pod(name: &str, security: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 101, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": IMAGE, "securityContext": security}],
        },
    }))
    .expect("pod")
}

#[tokio::test]
async fn pod_security_restricted_is_enforced() {
    let cluster = cluster().await.expect("cluster");
    let client = cluster.client().expect("client");
    let ns = unique_name("restricted");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }},
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // Privilege escalation allowed, capabilities kept: forbidden by `restricted`.
    let err = pods
        .create(
            &PostParams::default(),
            &pod("loose", json!({"allowPrivilegeEscalation": true})),
        )
        .await
        .expect_err("PodSecurity rejects the pod");
    let kube::Error::Api(status) = &err else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status
            .message
            .contains("violates PodSecurity \"restricted:latest\""),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("allowPrivilegeEscalation != false"),
        "names the field: {}",
        status.message
    );
    assert!(
        status.message.contains("unrestricted capabilities"),
        "{}",
        status.message
    );

    // The compliant pod is admitted, and the real scheduler binds it.
    pods.create(
        &PostParams::default(),
        &pod(
            "hardened",
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        ),
    )
    .await
    .expect("a restricted-compliant pod is admitted");
    let bound = wait_for(
        &pods,
        "hardened",
        "pod bound to a node",
        |p: Option<&Pod>| {
            p.and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.as_deref())
                .is_some()
        },
    )
    .await
    .expect("scheduled");
    assert_eq!(
        bound.spec.and_then(|s| s.node_name).as_deref(),
        Some("sim-node")
    );
    let scheduler = cluster
        .audit_events_by(testkit::SCHEDULER_USER)
        .expect("audit log");
    assert!(
        scheduler.iter().any(|e| e.verb == "create"
            && e.subresource.as_deref() == Some("binding")
            && e.namespace.as_deref() == Some(ns.as_str())),
        "the binding came from kube-scheduler"
    );
}

/// Canary secrets for building stacks in-process.
struct Secrets;

impl SecretSource for Secrets {
    fn get(&self, _name: &str) -> Option<SecretString> {
        Some(SecretString::new("canary-admission-NOT-REAL"))
    }

    fn hint(&self, name: &str) -> String {
        format!("set {name}")
    }
}

fn config(kind: StackKind) -> stacks::config::StackConfig {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    stacks::config::StackConfig::load_with_env(&dir, kind, &|_| None).expect("config")
}

/// `preview-pr --pr <pr>` built from the repository's config on a base built the same way.
fn preview_pr(pr: &str) -> stacks::StackBuild {
    let request = |kind, pr: Option<&str>| StackRequest {
        kind,
        pr: pr.map(|p| PrNumber::parse(p).expect("pr")),
        images: [
            (
                "web".to_owned(),
                format!("ghcr.io/aphiria/web@sha256:{}", "1".repeat(64)),
            ),
            (
                "api".to_owned(),
                format!("ghcr.io/aphiria/api@sha256:{}", "2".repeat(64)),
            ),
        ]
        .into(),
        // What `stacks` generates and seals for a preview; any value builds.
        db_role_password: (kind == StackKind::PreviewPr)
            .then(|| preview_core::secret::SecretString::new("admission-test-role-password")),
    };
    let base = stacks::build(
        &request(StackKind::PreviewBase, None),
        &config(StackKind::PreviewBase),
        &References::new(),
        &Secrets,
    )
    .expect("preview-base builds");
    let references = References::from([("preview-base".to_owned(), base.outputs)]);
    stacks::build(
        &request(StackKind::PreviewPr, Some(pr)),
        &config(StackKind::PreviewPr),
        &references,
        &Secrets,
    )
    .expect("preview-pr builds")
}

/// A Pod named `name` with the pod template of `workload` (Deployment or Job).
fn pod_of(workload: &Value, name: &str) -> Pod {
    let template = &workload["spec"]["template"];
    let mut spec = template["spec"].clone();
    if workload["kind"] == "Deployment" {
        spec["restartPolicy"] = json!("Always");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": spec,
    }))
    .expect("pod")
}

/// Removes every `securityContext` and `automountServiceAccountToken` of a pod spec.
fn unharden(pod: &mut Value) {
    if let Some(spec) = pod.as_object_mut() {
        spec.remove("securityContext");
        spec.remove("automountServiceAccountToken");
    }
    for key in ["containers", "initContainers"] {
        for c in pod[key].as_array_mut().into_iter().flatten() {
            if let Some(c) = c.as_object_mut() {
                c.remove("securityContext");
            }
        }
    }
}

#[tokio::test]
async fn preview_pods_are_admitted_by_the_stacks_restricted_namespace() {
    let cluster = cluster().await.expect("cluster");
    let client = cluster.client().expect("client");
    // A PR number no other run of this test uses.
    let pr = format!("9{}", std::process::id());
    let build = preview_pr(&pr);
    let ns = format!("preview-pr-{pr}");
    let find = |id: &str| -> &Value {
        &build
            .resources
            .iter()
            .find(|r| r.id.to_string() == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .body
    };

    // The stack's Namespace, as rendered.
    let namespace: Namespace =
        serde_json::from_value(find(&format!("Namespace {ns}")).clone()).expect("namespace");
    let labels: BTreeMap<String, String> = namespace.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the stack's namespace");
    // The API server labelled it with its name (what the NetworkPolicies select).
    let live = namespaces.get(&ns).await.expect("namespace");
    assert_eq!(
        live.metadata
            .labels
            .unwrap_or_default()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some(ns.as_str())
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let job = build
        .resources
        .iter()
        .find(|r| r.id.kind == "Job")
        .map(|r| r.body.clone())
        .expect("migration job");
    let workloads = [
        ("web", find(&format!("Deployment {ns}/web")).clone()),
        ("api", find(&format!("Deployment {ns}/api")).clone()),
        ("migration", job),
    ];
    for (name, workload) in &workloads {
        pods.create(&PostParams::default(), &pod_of(workload, name))
            .await
            .unwrap_or_else(|e| panic!("the {name} pod is restricted-compliant: {e}"));
    }

    // The same web pod without the stack's hardening: rejected, every control named.
    let mut loose = workloads[0].1.clone();
    unharden(&mut loose["spec"]["template"]["spec"]);
    let err = pods
        .create(&PostParams::default(), &pod_of(&loose, "web-unhardened"))
        .await
        .expect_err("PodSecurity rejects the unhardened pod");
    let kube::Error::Api(status) = &err else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    for says in [
        "violates PodSecurity \"restricted:v1.33\"",
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ] {
        assert!(status.message.contains(says), "{says}: {}", status.message);
    }

    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
}
