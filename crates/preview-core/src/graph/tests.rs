//! Tests for the desired graph: order, implied dependencies, stamping, errors.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::test_fixtures::{self as fx, NS, STACK, id, k8s};
use super::*;
use crate::resource::{
    CONFIG_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ProviderName, STACK_LABEL,
};
use serde_json::Value;

macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => true}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

fn graph() -> DesiredGraph {
    DesiredGraph::new(STACK, fx::preview_resources()).expect("valid graph")
}

fn config_hash_of(graph: &DesiredGraph, name: &str) -> Option<String> {
    graph
        .get(&id("apps/v1", "Deployment", name))
        .and_then(|r| {
            r.body
                .pointer("/spec/template/metadata/annotations")
                .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[test]
fn preview_environment_order_and_dependencies() {
    let g = graph();
    assert_eq!(g.len(), 16);
    assert_eq!(g.stack(), STACK);
    snap!("preview_environment", render_graph(&g));
}

#[test]
fn order_puts_every_dependency_first() {
    let g = graph();
    let position: BTreeMap<&ResourceId, usize> = g
        .order()
        .iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    for id in g.order() {
        for dep in g.dependencies(id) {
            assert!(position[dep] < position[id], "{dep} must come before {id}");
        }
        for dependent in g.dependents(id) {
            assert!(g.dependencies(dependent).contains(id));
        }
    }
    let ordered: Vec<&ResourceId> = g.resources().map(|r| &r.id).collect();
    assert_eq!(ordered, g.order().iter().collect::<Vec<_>>());
}

#[test]
fn order_does_not_depend_on_input_order() {
    let mut reversed = fx::preview_resources();
    reversed.reverse();
    let a = graph();
    let b = DesiredGraph::new(STACK, reversed).expect("valid graph");
    assert_eq!(a.order(), b.order());
    assert_eq!(a, b);
}

#[test]
fn implied_dependencies_follow_references() {
    let g = graph();
    let deps = |i: &ResourceId| g.dependencies(i).iter().cloned().collect::<Vec<_>>();
    let namespace = ResourceId::kubernetes("v1", "Namespace", None, NS);
    let web = id("apps/v1", "Deployment", "web");
    assert_eq!(
        deps(&web),
        vec![
            id("v1", "ConfigMap", "app-config"),
            namespace.clone(),
            id("v1", "Secret", "app-secrets"),
            id("v1", "ServiceAccount", "app"),
        ]
    );
    let route = id("gateway.networking.k8s.io/v1", "HTTPRoute", "web");
    assert_eq!(
        deps(&route),
        vec![
            id("gateway.networking.k8s.io/v1", "Gateway", "preview"),
            namespace.clone(),
            id("v1", "Service", "web"),
        ]
    );
    // The TLS Secret is written by cert-manager: the Gateway waits for the Certificate.
    let gateway = id("gateway.networking.k8s.io/v1", "Gateway", "preview");
    assert!(g.dependencies(&gateway).contains(&id(
        "cert-manager.io/v1",
        "Certificate",
        "preview-tls"
    )));
    // The ClusterIssuer is not part of the stack: ignored, not an error.
    assert_eq!(
        deps(&id("cert-manager.io/v1", "Certificate", "preview-tls")),
        vec![namespace.clone()]
    );
    // Explicit dependencies on another provider are kept.
    assert!(
        g.dependencies(&id("batch/v1", "Job", "migrate"))
            .contains(&fx::database_id())
    );
    assert!(g.dependents(&namespace).contains(&web));
    assert!(g.dependencies(&namespace).is_empty());
    assert!(g.dependencies(&id("v1", "Pod", "unknown")).is_empty());
}

#[test]
fn custom_resources_depend_on_their_crd_and_issuers() {
    let crd = k8s(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced"}
    }));
    let widget = k8s(
        json!({"apiVersion": "example.com/v1beta1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": NS}}),
    );
    let issuer = k8s(json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": "selfsigned", "namespace": NS}, "spec": {"selfSigned": {}}}));
    let cert = k8s(
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"secretName": "c-tls", "issuerRef": {"name": "selfsigned"}}}),
    );
    let other_ns_route = k8s(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "apps"},
        "spec": {"parentRefs": [{"name": "shared", "namespace": "infra"}],
                 "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}}),
    );
    let shared_gateway = k8s(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "shared", "namespace": "infra"}, "spec": {"gatewayClassName": "nginx", "listeners": []}}),
    );
    let binding = k8s(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "b", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
    );
    let role = k8s(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader", "namespace": NS}, "rules": []}),
    );
    let sa = k8s(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": NS}}),
    );
    let g = DesiredGraph::new(
        STACK,
        vec![
            widget,
            crd,
            cert,
            issuer,
            other_ns_route,
            shared_gateway,
            binding,
            role,
            sa,
        ],
    )
    .expect("valid");
    snap!("custom_resources", render_graph(&g));
    let widget_id = ResourceId::kubernetes("example.com/v1beta1", "Widget", Some(NS), "w");
    let crd_id = ResourceId::kubernetes(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "widgets.example.com",
    );
    assert!(g.dependencies(&widget_id).contains(&crd_id));
    let route_id = ResourceId::kubernetes(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        Some("apps"),
        "r",
    );
    let gateway_id = ResourceId::kubernetes(
        "gateway.networking.k8s.io/v1",
        "Gateway",
        Some("infra"),
        "shared",
    );
    assert_eq!(
        g.dependencies(&route_id).iter().collect::<Vec<_>>(),
        vec![&gateway_id]
    );
}

#[test]
fn ownership_labels_are_stamped_and_other_labels_kept() {
    let g = graph();
    for resource in g.resources() {
        if resource.id.provider != ProviderName::KUBERNETES {
            assert_eq!(resource.body, json!({"name": "app_pr_1", "owner": "app"}));
            continue;
        }
        let labels = resource.body.pointer("/metadata/labels").expect("labels");
        assert_eq!(
            labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE,
            "{}",
            resource.id
        );
        assert_eq!(labels[STACK_LABEL], STACK, "{}", resource.id);
    }
    let ns = g
        .get(&ResourceId::kubernetes("v1", "Namespace", None, NS))
        .expect("ns");
    assert_eq!(
        ns.body.pointer("/metadata/labels/preview-envs.io~1pr"),
        Some(&json!("1"))
    );
    let web = g.get(&id("apps/v1", "Deployment", "web")).expect("web");
    // Pod template labels are selector material: untouched.
    assert_eq!(
        web.body.pointer("/spec/template/metadata/labels"),
        Some(&json!({"app.kubernetes.io/name": "web"}))
    );
}

#[test]
fn config_hash_changes_only_with_referenced_config() {
    let base = graph();
    let hash = config_hash_of(&base, "web").expect("stamped");
    assert_eq!(hash.len(), 16);
    assert_eq!(
        config_hash_of(&base, "api"),
        Some(hash.clone()),
        "same config, same hash"
    );

    let with_level = |level: &str| {
        let mut resources = fx::preview_resources();
        for r in &mut resources {
            if r.id == id("v1", "ConfigMap", "app-config") {
                *r = fx::config_map(level);
            }
        }
        DesiredGraph::new(STACK, resources).expect("valid")
    };
    assert_eq!(
        config_hash_of(&with_level("info"), "web"),
        Some(hash.clone())
    );
    let changed = config_hash_of(&with_level("debug"), "web").expect("stamped");
    assert_ne!(changed, hash, "a ConfigMap value change rolls the pods");

    // Metadata of the ConfigMap (labels, annotations) does not count.
    let mut resources = fx::preview_resources();
    for r in &mut resources {
        if r.id == id("v1", "ConfigMap", "app-config") {
            r.body["metadata"]["annotations"] = json!({"note": "x"});
        }
    }
    let g = DesiredGraph::new(STACK, resources).expect("valid");
    assert_eq!(config_hash_of(&g, "web"), Some(hash));
}

#[test]
fn config_hash_covers_init_containers_projected_volumes_and_cronjobs() {
    let cm = |v: &str| {
        k8s(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"k": v}}))
    };
    let sec = |v: &str| {
        k8s(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sec", "namespace": NS}, "stringData": {"k": v}}))
    };
    let init = k8s(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "init", "namespace": NS},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}],
            "containers": [{"name": "c"}]}}}}));
    let projected = k8s(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "projected", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}],
            "volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "sec"}}]}}]}}}}));
    let cron = k8s(json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "cron", "namespace": NS},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c"}],
            "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}}}}}}));
    let plain = k8s(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "plain", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "elsewhere"}}]}]}}}}));
    let build = |c: &str, s: &str| {
        DesiredGraph::new(
            STACK,
            vec![
                cm(c),
                sec(s),
                init.clone(),
                projected.clone(),
                cron.clone(),
                plain.clone(),
            ],
        )
        .expect("valid")
    };
    let hash = |g: &DesiredGraph, kind: &str, name: &str, ptr: &str| {
        let api = if kind == "CronJob" {
            "batch/v1"
        } else {
            "apps/v1"
        };
        g.get(&id(api, kind, name))
            .and_then(|r| r.body.pointer(ptr))
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let tpl = "/spec/template/metadata/annotations";
    let cron_tpl = "/spec/jobTemplate/spec/template/metadata/annotations";
    let a = build("1", "x");
    let b = build("2", "x");
    let c = build("1", "y");
    assert_ne!(
        hash(&a, "StatefulSet", "init", tpl),
        hash(&b, "StatefulSet", "init", tpl)
    );
    assert_eq!(
        hash(&a, "StatefulSet", "init", tpl),
        hash(&c, "StatefulSet", "init", tpl)
    );
    assert_eq!(
        hash(&a, "DaemonSet", "projected", tpl),
        hash(&b, "DaemonSet", "projected", tpl)
    );
    assert_ne!(
        hash(&a, "DaemonSet", "projected", tpl),
        hash(&c, "DaemonSet", "projected", tpl)
    );
    assert!(hash(&a, "CronJob", "cron", cron_tpl).is_some());
    assert_ne!(
        hash(&a, "CronJob", "cron", cron_tpl),
        hash(&b, "CronJob", "cron", cron_tpl)
    );
    // References only to objects outside the graph: no annotation at all.
    assert_eq!(hash(&a, "Deployment", "plain", tpl), None);
    let plain_body = &a
        .get(&id("apps/v1", "Deployment", "plain"))
        .expect("plain")
        .body;
    assert_eq!(plain_body.pointer("/spec/template/metadata"), None);
}

#[test]
fn duplicate_and_missing_dependencies_are_all_reported() {
    let missing = id("v1", "ConfigMap", "nope");
    let resources = vec![
        fx::service("web"),
        fx::service("web"),
        fx::service("api").depends_on(&missing),
    ];
    let err = DesiredGraph::new(STACK, resources).expect_err("invalid");
    assert_eq!(
        err,
        GraphError::Multiple(vec![
            GraphError::DuplicateId(id("v1", "Service", "web")),
            GraphError::MissingDependency {
                from: id("v1", "Service", "api"),
                to: missing.clone()
            },
        ])
    );
    snap!("duplicate_and_missing", err.to_string());

    let err = DesiredGraph::new(STACK, vec![fx::service("api").depends_on(&missing)])
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "Service preview-pr-1/api depends on ConfigMap preview-pr-1/nope, which is not part of the stack"
    );
}

#[test]
fn cycle_names_every_member_in_order() {
    let deployment = k8s(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "a"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "y"}}]}]}}}}));
    let config = k8s(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": "a"}}))
        .depends_on(&ResourceId::kubernetes("apps/v1", "Deployment", Some("a"), "x"));
    let namespace =
        k8s(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
    let err = DesiredGraph::new("s", vec![config, namespace, deployment]).expect_err("cycle");
    assert_eq!(
        err.to_string(),
        "dependency cycle: Deployment a/x → ConfigMap a/y → Deployment a/x"
    );

    let selfish = fx::service("web").depends_on(&id("v1", "Service", "web"));
    let err = DesiredGraph::new(STACK, vec![selfish]).expect_err("cycle");
    assert_eq!(
        err.to_string(),
        "dependency cycle: Service preview-pr-1/web → Service preview-pr-1/web"
    );
}

#[test]
fn cycle_reached_through_a_dependent_names_only_the_cycle() {
    let a = id("v1", "ConfigMap", "a");
    let b = id("v1", "ConfigMap", "b");
    let c = id("v1", "ConfigMap", "c");
    let d = id("v1", "ConfigMap", "d");
    let mut edges: BTreeMap<ResourceId, BTreeSet<ResourceId>> = BTreeMap::new();
    edges.insert(a.clone(), [b.clone()].into()); // a is outside the cycle, waiting on it
    edges.insert(b.clone(), [c.clone()].into());
    edges.insert(c.clone(), [d.clone()].into());
    edges.insert(d.clone(), [b.clone()].into());
    assert_eq!(
        topological_order(&edges),
        Err(GraphError::Cycle(vec![b, c, d]))
    );
}

#[test]
fn topological_order_breaks_ties_by_id_and_ignores_unknown_dependencies() {
    let a = id("v1", "ConfigMap", "a");
    let b = id("v1", "ConfigMap", "b");
    let c = id("v1", "ConfigMap", "c");
    let gone = id("v1", "ConfigMap", "gone");
    let mut edges: BTreeMap<ResourceId, BTreeSet<ResourceId>> = BTreeMap::new();
    edges.insert(c.clone(), BTreeSet::new());
    edges.insert(a.clone(), [c.clone(), gone].into());
    edges.insert(b.clone(), BTreeSet::new());
    assert_eq!(topological_order(&edges), Ok(vec![b, c, a]));
    assert_eq!(topological_order(&BTreeMap::new()), Ok(vec![]));
}

#[test]
fn empty_graph() {
    let g = DesiredGraph::empty("s");
    assert!(g.is_empty());
    assert_eq!(g.len(), 0);
    assert_eq!(g.stack(), "s");
    assert_eq!(render_graph(&g), "");
    assert_eq!(DesiredGraph::new("s", vec![]).expect("empty"), g);
}
