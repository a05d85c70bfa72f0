//! A Service's selector must match the pod template of at least one workload in
//! its namespace — checked only when the graph has workloads in that namespace
//! (a Service may select pods another stack runs). A typo in a selector otherwise
//! shows up as a Service without endpoints and a 503 from the gateway.

use serde_json::{Map, Value};

use crate::resource::{Resource, ResourceId};

use super::Problem;
use super::pods::pod_spec;

/// The pod labels of one workload in the graph.
pub(super) struct Workload<'a> {
    id: &'a ResourceId,
    labels: Option<&'a Map<String, Value>>,
}

/// Every workload (any kind with a pod template) in the graph.
pub(super) fn workloads(resources: &[Resource]) -> Vec<Workload<'_>> {
    resources
        .iter()
        .filter_map(|r| {
            let pod = pod_spec(r)?;
            Some(Workload {
                id: &r.id,
                labels: pod.labels.and_then(Value::as_object),
            })
        })
        .collect()
}

/// Checks a Service's selector against the graph's workloads in its namespace.
pub(super) fn check(resource: &Resource, workloads: &[Workload<'_>], out: &mut Vec<Problem>) {
    if !resource.id.is("", "Service") {
        return;
    }
    let Some(selector) = resource
        .body
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let same_namespace: Vec<&Workload<'_>> = workloads
        .iter()
        .filter(|w| w.id.namespace == resource.id.namespace)
        .collect();
    if same_namespace.is_empty() {
        return;
    }
    let matches = |w: &&Workload<'_>| {
        selector
            .iter()
            .all(|(k, v)| w.labels.and_then(|l| l.get(k)) == Some(v))
    };
    if same_namespace.iter().any(matches) {
        return;
    }
    let seen: Vec<String> = same_namespace
        .iter()
        .map(|w| format!("{} {}: {}", w.id.kind, w.id.name, render(w.labels)))
        .collect();
    out.push(Problem::new(
        &resource.id,
        "spec.selector",
        format!(
            "selector {} matches no pod template in namespace {} (pod labels: {})",
            render(Some(selector)),
            resource.id.namespace.as_deref().unwrap_or("default"),
            seen.join("; ")
        ),
    ));
}

fn render(labels: Option<&Map<String, Value>>) -> String {
    let pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}
