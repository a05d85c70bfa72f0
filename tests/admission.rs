//! The admission plugins a current cluster runs are really in the test control
//! plane: PodSecurity rejects a pod that the `restricted` level forbids in a
//! namespace labelled `pod-security.kubernetes.io/enforce: restricted`, and
//! admits one that complies; the real scheduler binds the admitted pod to the
//! simulated node.

use integration_tests::{cluster, unique_name, wait_for};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

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
