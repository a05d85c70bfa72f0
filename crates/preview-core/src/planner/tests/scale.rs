//! A 2,000-resource stack plans correctly (the benchmark times it elsewhere).

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::k8s;

const APPS: usize = 400;

fn big_stack(image_tag: &str, apps: usize) -> DesiredGraph {
    let ns = "preview-big";
    let mut resources = vec![k8s(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )];
    for i in 0..apps {
        let name = format!("app-{i:04}");
        resources.push(k8s(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"INDEX": i.to_string()}})));
        resources.push(k8s(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns}, "data": {"TOKEN": "c2VjcmV0"}})));
        resources.push(k8s(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("example/{name}:{image_tag}"),
                    "envFrom": [{"configMapRef": {"name": name}}, {"secretRef": {"name": name}}]}]}}}})));
        resources.push(k8s(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}})));
        resources.push(k8s(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                     "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}}),
        ));
    }
    DesiredGraph::new("big", resources).expect("valid")
}

#[test]
fn two_thousand_resources_plan_correctly() {
    let before = big_stack("v1", APPS);
    assert_eq!(before.len(), 1 + 5 * APPS);
    let (mut state, mut observed) = applied(&before);
    state.stack = "big".into();

    // Unchanged: all no-ops, no dry-run needed.
    let noop = plan(
        &before,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(noop.summary().no_op, before.len());

    // New image everywhere, and the last 10 apps removed.
    let after = big_stack("v2", APPS - 10);
    for resource in after.resources() {
        if needs_dry_run(
            resource,
            state.resources.get(&resource.id),
            observed[&resource.id].live.as_ref(),
            &hasher(),
        ) {
            accept_dry_run(&after, &mut observed, &resource.id);
        }
    }
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let summary = plan.summary();
    assert_eq!(summary.update, APPS - 10);
    assert_eq!(summary.delete, 50);
    assert_eq!(summary.no_op, after.len() - (APPS - 10));
    assert_eq!(plan.steps.len(), after.len() + 50);
    let first_delete = plan
        .steps
        .iter()
        .position(|s| s.action == Action::Delete)
        .expect("deletes");
    assert!(
        plan.steps[first_delete..]
            .iter()
            .all(|s| s.action == Action::Delete)
    );
}
