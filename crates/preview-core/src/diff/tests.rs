//! Tests for hashing, stripping, projection and field-level diffs.

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::{CANARY, CANARY_B64};
use crate::resource::ResourceId;

macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => true}, {
            insta::assert_yaml_snapshot!($name, $value);
        })
    };
}

fn no_secrets(_: &str) -> bool {
    false
}

fn secret_resource_paths(path: &str) -> bool {
    let id = ResourceId::kubernetes("v1", "Secret", Some("ns"), "s");
    crate::resource::is_secret_path(&id, &[], path)
}

#[test]
fn canonical_json_sorts_keys_recursively() {
    let a = json!({"b": 1, "a": {"z": [3, {"y": 1, "x": "q\"\n"}], "c": null}});
    assert_eq!(
        canonical_json(&a),
        r#"{"a":{"c":null,"z":[3,{"x":"q\"\n","y":1}]},"b":1}"#
    );
    let b: Value = serde_json::from_str(r#"{"a":{"z":[3,{"x":"q\"\n","y":1}],"c":null},"b":1}"#)
        .expect("json");
    assert_eq!(body_hash(&a), body_hash(&b));
    assert!(body_hash(&a).starts_with("sha256:"));
    assert_eq!(body_hash(&a).len(), "sha256:".len() + 64);
    assert_ne!(body_hash(&a), body_hash(&json!({"b": 2})));
    // Same escaping as serde_json, so the canonical form is valid JSON.
    let parsed: Value =
        serde_json::from_str(&canonical_json(&json!({"k": "\u{1}\t\\"}))).expect("valid");
    assert_eq!(parsed, json!({"k": "\u{1}\t\\"}));
}

fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "ns",
            "uid": "1234", "resourceVersion": "99", "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "managedFields": [{"manager": "preview-envs"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"secret\":\"x\"}",
                            "deployment.kubernetes.io/revision": "3"},
            "labels": {"app": "web"}
        },
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {"spec": {
                "restartPolicy": "Always",
                "dnsPolicy": "ClusterFirst",
                "containers": [
                    {"name": "sidecar", "image": "envoy:1", "imagePullPolicy": "IfNotPresent"},
                    {"name": "web", "image": "web:1", "imagePullPolicy": "IfNotPresent",
                     "terminationMessagePath": "/dev/termination-log",
                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                     "args": ["--port", "8080"]}
                ]
            }}
        },
        "status": {"replicas": 1, "readyReplicas": 1}
    })
}

fn desired_deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {
                "containers": [
                    {"name": "web", "image": image, "ports": [{"containerPort": 8080}],
                     "args": ["--port", "8080"]}
                ]
            }}
        }
    })
}

#[test]
fn strip_removes_server_owned_fields() {
    let stripped = strip_server_fields(&live_deployment());
    assert_eq!(stripped.get("status"), None);
    let meta = &stripped["metadata"];
    for field in SERVER_METADATA_FIELDS {
        assert_eq!(meta.get(field), None, "{field}");
    }
    assert_eq!(
        meta["annotations"],
        json!({"deployment.kubernetes.io/revision": "3"})
    );
    // An annotations map holding only the last-applied copy disappears.
    let only = json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{}"}}});
    assert_eq!(strip_server_fields(&only), json!({"metadata": {}}));
    assert_eq!(strip_server_fields(&json!("x")), json!("x"));
}

#[test]
fn projection_ignores_defaulted_fields() {
    let desired = desired_deployment("web:1");
    let projected = project(&strip_server_fields(&live_deployment()), &desired);
    snap!("projection", &projected);
    assert_eq!(
        projected, desired,
        "server defaults and other containers are not drift"
    );
    assert_eq!(
        projection_hash(&live_deployment(), &desired),
        body_hash(&desired)
    );
    // A drifted field we manage changes the projection hash.
    let mut drifted = live_deployment();
    drifted["spec"]["template"]["spec"]["containers"][1]["image"] = json!("web:hacked");
    assert_ne!(
        projection_hash(&drifted, &desired),
        projection_hash(&live_deployment(), &desired)
    );
    // A changed length of an atomic list is drift too.
    let mut longer = live_deployment();
    longer["spec"]["template"]["spec"]["containers"][1]["args"] =
        json!(["--port", "8080", "--debug"]);
    assert_ne!(
        projection_hash(&longer, &desired),
        projection_hash(&live_deployment(), &desired)
    );
    // A missing container is drift.
    let mut fewer = live_deployment();
    fewer["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "sidecar", "image": "envoy:1"}]);
    assert_ne!(projection_hash(&fewer, &desired), body_hash(&desired));
    // Server status and bookkeeping never count.
    let mut bumped = live_deployment();
    bumped["metadata"]["resourceVersion"] = json!("100");
    bumped["status"] = json!({"replicas": 2});
    assert_eq!(projection_hash(&bumped, &desired), body_hash(&desired));
}

#[test]
fn merge_keys() {
    let named = [json!({"name": "a"}), json!({"name": "b"})];
    assert_eq!(MergeKey::detect(&named, &[]), Some(MergeKey::Name));
    let mounts = [
        json!({"name": "v", "mountPath": "/a"}),
        json!({"name": "v", "mountPath": "/b"}),
    ];
    assert_eq!(
        MergeKey::detect(&mounts, &mounts),
        Some(MergeKey::MountPath)
    );
    let ports = [
        json!({"containerPort": 80}),
        json!({"containerPort": 80, "protocol": "UDP"}),
    ];
    assert_eq!(MergeKey::detect(&ports, &[]), Some(MergeKey::ContainerPort));
    let svc_ports = [json!({"port": 80, "protocol": "TCP"})];
    assert_eq!(
        MergeKey::detect(&svc_ports, &[json!({"port": 80})]),
        Some(MergeKey::Port)
    );
    assert_eq!(
        MergeKey::detect(&[json!({"type": "Ready"})], &[]),
        Some(MergeKey::Type)
    );
    assert_eq!(
        MergeKey::detect(&[json!({"key": "k", "path": "p"})], &[]),
        Some(MergeKey::Key)
    );
    assert_eq!(
        MergeKey::detect(&[json!({"ip": "1.2.3.4"})], &[]),
        Some(MergeKey::Ip)
    );
    assert_eq!(MergeKey::detect(&[json!({"x": 1})], &[]), None);
    assert_eq!(MergeKey::detect(&[json!("a")], &[]), None);
    assert_eq!(MergeKey::detect(&[], &[]), None);
}

#[test]
fn diff_paths_and_merge_keys() {
    let old = json!({
        "metadata": {"labels": {"app.kubernetes.io/name": "web", "tier": "front"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy:1"},
                {"name": "web", "image": "web:1", "args": ["--port", "8080"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]}
            ]}},
            "items": [{"x": 1}, {"x": 2}]
        }
    });
    let new = json!({
        "metadata": {"labels": {"app.kubernetes.io/name": "web2", "team": "a"}},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [
                {"name": "web", "image": "web:2", "args": ["--port", "9090"],
                 "env": [{"name": "NEW", "value": "0"}, {"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
                 "ports": [{"containerPort": 8080}],
                 "resources": {"limits": {"memory": "128Mi"}}},
                {"name": "sidecar", "image": "envoy:1"}
            ]}},
            "items": [{"x": 1}, {"x": 3}, {"x": 4}]
        }
    });
    let changes = diff(&old, &new, &no_secrets);
    snap!("paths_and_merge_keys", &changes);
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert!(paths.contains(&"spec.template.spec.containers[name=web].image"));
    assert!(paths.contains(&"metadata.labels[\"app.kubernetes.io/name\"]"));
    assert!(paths.contains(&"spec.items[1].x"));
    assert!(paths.contains(&"spec.items[2]"));
    // Reordering containers is not a change; a port without `protocol` still matches
    // its `TCP` counterpart (only the dropped field shows).
    assert!(!paths.iter().any(|p| p.contains("sidecar")));
    assert!(paths.contains(
        &"spec.template.spec.containers[name=web].ports[containerPort=8080,protocol=TCP].protocol"
    ));
    assert!(diff(&old, &old, &no_secrets).is_empty());
    let again = diff(&old, &new, &no_secrets);
    assert_eq!(again, changes, "deterministic");
}

#[test]
fn diff_of_type_changes_and_removals() {
    let changes = diff(
        &json!({"a": {"b": 1}, "gone": [1, 2], "n": null}),
        &json!({"a": "flat", "n": 0}),
        &no_secrets,
    );
    snap!("type_changes", &changes);
    assert_eq!(changes.len(), 3);
}

#[test]
fn secret_values_are_masked_on_both_sides() {
    let old = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "data": {"DB_PASSWORD": "b2xk", "KEPT": CANARY_B64, "GONE": CANARY_B64}});
    let new = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "data": {"DB_PASSWORD": CANARY_B64, "KEPT": CANARY_B64, "ADDED": CANARY_B64}});
    let changes = diff(&old, &new, &secret_resource_paths);
    snap!("secret_masked", &changes);
    let text = serde_json::to_string(&changes).expect("json");
    assert!(
        !text.contains(CANARY_B64) && !text.contains("b2xk"),
        "{text}"
    );
    assert!(
        text.contains("kubernetes.io/tls"),
        "non-secret fields stay visible"
    );
}

#[test]
fn secret_subtrees_that_appear_are_listed_per_key() {
    let old = json!({"kind": "Secret", "type": "Opaque"});
    let new = json!({"kind": "Secret", "type": "Opaque",
        "data": {"B": CANARY_B64, "A": CANARY_B64}, "stringData": {}});
    let changes = diff(&old, &new, &secret_resource_paths);
    snap!("secret_subtree_added", &changes);
    let removed = diff(&new, &old, &secret_resource_paths);
    assert_eq!(removed.len(), 3);
    let text = serde_json::to_string(&(changes, removed)).expect("json");
    assert!(!text.contains(CANARY_B64), "{text}");
}

#[test]
fn extra_secret_paths_mask_values_inside_lists_and_containers() {
    // A secret env value (pointer by index) and a secret subtree of a non-Secret object.
    let is_secret = |p: &str| {
        p == "/spec/containers/0/env/1/value"
            || p == "/spec/credentials"
            || p.starts_with("/spec/credentials/")
    };
    let old = json!({"spec": {
        "containers": [{"name": "c", "env": [{"name": "A", "value": "a"}, {"name": "TOKEN", "value": CANARY}]}],
        "credentials": {"user": "u", "password": CANARY},
        "args": ["x"]
    }});
    let new = json!({"spec": {
        // TOKEN moved to index 0 in the new version: still masked (old pointer matches).
        // A now sits at the secret index of the new document: masked too (conservative).
        "containers": [{"name": "c", "env": [{"name": "TOKEN", "value": "rotated-canary"}, {"name": "A", "value": "b"}]}],
        "credentials": "replaced-canary",
        "args": ["y"]
    }});
    let changes = diff(&old, &new, &is_secret);
    snap!("extra_secret_paths", &changes);
    let text = serde_json::to_string(&changes).expect("json");
    assert!(!text.contains("canary"), "{text}");
}

#[test]
fn scalar_arrays_are_one_change_and_object_arrays_without_key_go_by_index() {
    let changes = diff(
        &json!({"args": ["a", "b"], "rules": [{"host": "a"}]}),
        &json!({"args": ["a", "c", "d"], "rules": [{"host": "b"}, {"host": "c"}]}),
        &no_secrets,
    );
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["args", "rules[0].host", "rules[1]"]);
}

#[test]
fn pointer_tokens_are_escaped() {
    assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |p: &str| {
        seen.borrow_mut().push(p.to_owned());
        false
    };
    diff(
        &json!({"data": {"a/b": "1"}}),
        &json!({"data": {"a/b": "2"}}),
        &record,
    );
    assert!(seen.borrow().contains(&"/data/a~1b".to_owned()));
}
