//! Where pod specs live in workload bodies, and their containers with field paths.

use serde_json::Value;

use crate::resource::Resource;

/// A pod spec inside a resource body.
pub(super) struct PodSpec<'a> {
    /// Dotted path of the pod spec, e.g. `spec.template.spec`.
    pub path: &'static str,
    /// The pod spec.
    pub spec: &'a Value,
    /// The pod's labels, if any.
    pub labels: Option<&'a Value>,
}

/// The pod spec of a workload (Pod, Deployment, StatefulSet, DaemonSet,
/// ReplicaSet, ReplicationController, Job, CronJob); `None` for other kinds.
pub(super) fn pod_spec(resource: &Resource) -> Option<PodSpec<'_>> {
    let id = &resource.id;
    let template = |path, spec_ptr: &str, labels_ptr: &str| {
        Some(PodSpec {
            path,
            spec: resource.body.pointer(spec_ptr)?,
            labels: resource.body.pointer(labels_ptr),
        })
    };
    if id.is("", "Pod") {
        template("spec", "/spec", "/metadata/labels")
    } else if id.is("batch", "CronJob") {
        template(
            "spec.jobTemplate.spec.template.spec",
            "/spec/jobTemplate/spec/template/spec",
            "/spec/jobTemplate/spec/template/metadata/labels",
        )
    } else if ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]
        .iter()
        .any(|k| id.is("apps", k))
        || id.is("batch", "Job")
        || id.is("", "ReplicationController")
    {
        template(
            "spec.template.spec",
            "/spec/template/spec",
            "/spec/template/metadata/labels",
        )
    } else {
        None
    }
}

/// One container of a pod spec.
pub(super) struct Container<'a> {
    /// Dotted path, e.g. `spec.template.spec.initContainers[name=migrate]`.
    pub path: String,
    /// `name`, or `#<index>` when absent.
    pub name: String,
    /// The container object.
    pub value: &'a Value,
}

/// Init containers, then containers, each with its path.
pub(super) fn containers<'a>(pod: &PodSpec<'a>) -> Vec<Container<'a>> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(items) = pod.spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (index, value) in items.iter().enumerate() {
            let (path, name) = match value.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => {
                    (format!("{}.{list}[name={name}]", pod.path), name.to_owned())
                }
                _ => (format!("{}.{list}[{index}]", pod.path), format!("#{index}")),
            };
            out.push(Container { path, name, value });
        }
    }
    out
}
