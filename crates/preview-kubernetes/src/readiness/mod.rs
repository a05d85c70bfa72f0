//! Readiness: is an applied object done, still progressing, or failing?
//!
//! [`evaluate`] is a pure function of the live object (as JSON), the
//! resource's [`WaitRule`] and the [`Related`] objects the engine fetched for it
//! (pods, ReplicaSets, Events — see [`related_needed`] and [`pod_selector`]). It
//! dispatches to one module per kind, in the manner of kapp's
//! `resourcesmisc/*` files and kube-runtime's `wait::conditions`:
//!
//! | kind | ready when |
//! |------|------------|
//! | Namespace | `status.phase == Active` |
//! | CustomResourceDefinition | `Established=True` |
//! | Deployment | rolled out, as `kubectl rollout status` decides |
//! | StatefulSet, DaemonSet | rolled out, as `kubectl rollout status` decides |
//! | Job | `Complete=True` |
//! | Service | always; `LoadBalancer` once it has an ingress address |
//! | PersistentVolumeClaim | `Bound` (or binding deferred to the first consumer) |
//! | Pod | `Ready=True` or `Succeeded` |
//! | Gateway | `Programmed=True` for the current generation |
//! | HTTPRoute (and other Gateway API routes) | every parent `Accepted` and `ResolvedRefs` |
//! | cert-manager Certificate | `Ready=True` |
//! | configuration kinds (ConfigMap, Secret, RBAC, NetworkPolicy, quota, …) | at once |
//! | anything else | its `Ready`/`Available`/`Programmed`/`Established` condition, else `status.observedGeneration` |
//!
//! Known causes fail a step at once ([`Readiness::Failed`]), not after the
//! timeout: a claim with no storage class or no matching volume, a quota the
//! pod can never fit, an image that cannot be pulled, a crash loop of
//! [`CRASH_LOOP_RESTARTS`] restarts. A failing readiness probe (the kubelet's
//! `Unhealthy` events about running, unready pods) is [`Readiness::Failing`]:
//! an application may still be starting, so it fails after the grace period.
//!
//! A result is one of four [`Readiness`] states. The engine keeps polling while
//! the state is [`Readiness::InProgress`] or [`Readiness::Failing`] (the latter is
//! shown as a problem, and fails the step when it persists until the timeout), and
//! stops at [`Readiness::Ready`] or [`Readiness::Failed`].

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use preview_core::resource::{ProviderName, ResourceId, WaitRule};

mod certificate;
mod conditions;
mod crd;
mod daemonset;
mod deployment;
mod gateway;
mod generic;
mod httproute;
mod job;
mod namespace;
mod pod;
mod pvc;
mod quota;
mod service;
mod statefulset;

pub use namespace::is_gone_blocked;
pub use pod::CRASH_LOOP_RESTARTS;

/// The readiness of one applied object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "camelCase")]
pub enum Readiness {
    /// Done: the object serves what it was applied for.
    Ready,
    /// Not ready yet, progressing normally; the message says what it waits for
    /// (e.g. `1 of 2 replicas updated`).
    InProgress(String),
    /// Not ready, and a known failure is visible (a pod in `ImagePullBackOff`, a
    /// quota rejecting pod creation…) that fails the step if it persists. The
    /// message names the object (pod, container, ReplicaSet) and quotes the
    /// controller's or kubelet's message.
    Failing(String),
    /// Terminal failure: waiting longer will not help (a Job `Failed`, a
    /// Deployment past its progress deadline, a route not accepted by its parent).
    Failed(String),
}

impl Readiness {
    /// True for [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    /// True when waiting longer changes nothing ([`Readiness::Ready`] or [`Readiness::Failed`]).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Readiness::Ready | Readiness::Failed(_))
    }

    /// True for [`Readiness::Failing`] and [`Readiness::Failed`].
    pub fn is_failure(&self) -> bool {
        matches!(self, Readiness::Failing(_) | Readiness::Failed(_))
    }

    /// The message, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            Readiness::Ready => None,
            Readiness::InProgress(m) | Readiness::Failing(m) | Readiness::Failed(m) => Some(m),
        }
    }
}

impl fmt::Display for Readiness {
    /// `ready`, `in progress: …`, `failing: …`, `failed: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Ready => f.write_str("ready"),
            Readiness::InProgress(m) => write!(f, "in progress: {m}"),
            Readiness::Failing(m) => write!(f, "failing: {m}"),
            Readiness::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

/// Objects the engine fetched to explain a workload's state (see [`related_needed`]).
///
/// Lists may contain more than the object's own children (they are listed by
/// label selector or by namespace); the rules keep only those the object
/// controls, by owner reference where present.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Related {
    /// Pods matching [`pod_selector`] in the object's namespace.
    pub pods: Vec<Value>,
    /// ReplicaSets matching [`pod_selector`] in the object's namespace (Deployments).
    pub replica_sets: Vec<Value>,
    /// `v1` Events: a claim's own (any type); for workloads the namespace's
    /// Warning events (e.g. `FailedCreate` from a controller, the kubelet's
    /// `Unhealthy`), which the rules filter by the objects they are about.
    pub events: Vec<Value>,
}

/// Which [`Related`] lists a kind's rule reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedNeeds {
    /// List pods matching [`pod_selector`].
    pub pods: bool,
    /// List ReplicaSets matching [`pod_selector`].
    pub replica_sets: bool,
    /// List Events in the namespace.
    pub events: bool,
}

impl RelatedNeeds {
    /// True when anything must be fetched.
    pub fn any(self) -> bool {
        self.pods || self.replica_sets || self.events
    }
}

/// The rule a resource's kind uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Not a Kubernetes object: its provider checks itself.
    Provider,
    Namespace,
    Crd,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    Service,
    Pvc,
    Pod,
    Gateway,
    Route,
    Certificate,
    /// Configuration objects without a status worth waiting for.
    Immediate,
    Generic,
}

/// Configuration kinds that are ready as soon as the API server accepts them, by group.
const IMMEDIATE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "ResourceQuota",
            "LimitRange",
            "Endpoints",
        ],
    ),
    (
        "rbac.authorization.k8s.io",
        &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"],
    ),
    ("networking.k8s.io", &["NetworkPolicy", "IngressClass"]),
    ("policy", &["PodDisruptionBudget"]),
    ("scheduling.k8s.io", &["PriorityClass"]),
    ("storage.k8s.io", &["StorageClass"]),
    ("gateway.networking.k8s.io", &["ReferenceGrant"]),
    (
        "admissionregistration.k8s.io",
        &[
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ],
    ),
];

fn rule_for(id: &ResourceId) -> Rule {
    if id.provider != ProviderName::KUBERNETES {
        return Rule::Provider;
    }
    match (id.group(), id.kind.as_str()) {
        ("", "Namespace") => Rule::Namespace,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Rule::Crd,
        ("apps", "Deployment") => Rule::Deployment,
        ("apps", "StatefulSet") => Rule::StatefulSet,
        ("apps", "DaemonSet") => Rule::DaemonSet,
        ("batch", "Job") => Rule::Job,
        ("", "Service") => Rule::Service,
        ("", "PersistentVolumeClaim") => Rule::Pvc,
        ("", "Pod") => Rule::Pod,
        ("gateway.networking.k8s.io", "Gateway") => Rule::Gateway,
        ("gateway.networking.k8s.io", kind) if kind.ends_with("Route") => Rule::Route,
        ("cert-manager.io", "Certificate") => Rule::Certificate,
        (group, kind)
            if IMMEDIATE
                .iter()
                .any(|(g, kinds)| *g == group && kinds.contains(&kind)) =>
        {
            Rule::Immediate
        }
        _ => Rule::Generic,
    }
}

/// What the engine must list, besides the object itself, before calling [`evaluate`]
/// for `id`: pods and ReplicaSets matching [`pod_selector`], Events in the namespace.
pub fn related_needed(id: &ResourceId) -> RelatedNeeds {
    match rule_for(id) {
        Rule::Deployment => RelatedNeeds {
            pods: true,
            replica_sets: true,
            events: true,
        },
        Rule::StatefulSet | Rule::DaemonSet | Rule::Job => RelatedNeeds {
            pods: true,
            replica_sets: false,
            events: true,
        },
        Rule::Pvc => RelatedNeeds {
            pods: false,
            replica_sets: false,
            events: true,
        },
        _ => RelatedNeeds::default(),
    }
}

/// The label selector (in `kubectl -l` / `labelSelector=` syntax) of the pods a
/// workload controls, built from `spec.selector.matchLabels` and
/// `spec.selector.matchExpressions`. For a Job without a selector, falls back to
/// `controller-uid=<metadata.uid>`, then `job-name=<metadata.name>`.
///
/// `None` when the object has no usable selector (an empty selector would match
/// every pod in the namespace; the engine should not list then).
pub fn pod_selector(obj: &Value) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    if let Some(labels) = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            terms.push(format!("{key}={}", value.as_str().unwrap_or_default()));
        }
    }
    for expr in obj
        .pointer("/spec/selector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(key) = expr.get("key").and_then(Value::as_str) else {
            continue;
        };
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => terms.push(format!("{key} in ({values})")),
            Some("NotIn") => terms.push(format!("{key} notin ({values})")),
            Some("Exists") => terms.push(key.to_owned()),
            Some("DoesNotExist") => terms.push(format!("!{key}")),
            _ => {}
        }
    }
    if !terms.is_empty() {
        return Some(terms.join(","));
    }
    if obj.get("kind").and_then(Value::as_str) == Some("Job") {
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            return Some(format!("controller-uid={uid}"));
        }
        if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            return Some(format!("job-name={name}"));
        }
    }
    None
}

/// The readiness of the live object `obj` of resource `id` under `rule`.
///
/// [`WaitRule::None`] and non-Kubernetes providers (the Postgres provider checks
/// itself) are always ready; [`WaitRule::Condition`] waits for that condition on
/// any kind; [`WaitRule::Default`] uses the kind's rule. An object being deleted
/// (other than a Namespace, whose rule explains its termination) is in progress.
pub fn evaluate(id: &ResourceId, rule: &WaitRule, obj: &Value, related: &Related) -> Readiness {
    let kind_rule = rule_for(id);
    if kind_rule == Rule::Provider {
        return Readiness::Ready;
    }
    let condition = match rule {
        WaitRule::None => return Readiness::Ready,
        WaitRule::Condition { condition } => Some(condition.as_str()),
        WaitRule::Default => None,
    };
    if kind_rule != Rule::Namespace && conditions::is_deleting(obj) {
        return Readiness::InProgress(deleting_message(obj));
    }
    if let Some(condition) = condition {
        return generic::condition_true(obj, condition);
    }
    match kind_rule {
        Rule::Provider | Rule::Immediate => Readiness::Ready,
        Rule::Namespace => namespace::evaluate(obj),
        Rule::Crd => crd::evaluate(obj),
        Rule::Deployment => deployment::evaluate(obj, related),
        Rule::StatefulSet => statefulset::evaluate(obj, related),
        Rule::DaemonSet => daemonset::evaluate(obj, related),
        Rule::Job => job::evaluate(obj, related),
        Rule::Service => service::evaluate(obj),
        Rule::Pvc => pvc::evaluate(obj, related),
        Rule::Pod => pod::evaluate(obj),
        Rule::Gateway => gateway::evaluate(obj),
        Rule::Route => httproute::evaluate(obj),
        Rule::Certificate => certificate::evaluate(obj),
        Rule::Generic => generic::evaluate(obj),
    }
}

fn deleting_message(obj: &Value) -> String {
    let finalizers: Vec<&str> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if finalizers.is_empty() {
        "the object is being deleted".to_owned()
    } else {
        format!(
            "the object is being deleted (finalizers: {})",
            finalizers.join(", ")
        )
    }
}

/// Test helpers: fixtures are multi-document YAML files, the object under test
/// first, then related Pods, ReplicaSets and Events in any order.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde::Deserialize;
    use serde_json::Value;

    use super::{Readiness, Related, evaluate};
    use preview_core::resource::{ResourceId, WaitRule};

    /// The object and its related objects from a multi-document YAML string.
    pub fn load(yaml: &str) -> (Value, Related) {
        let mut docs = serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| Value::deserialize(d).expect("fixture is valid YAML"))
            .filter(|v| !v.is_null());
        let object = docs.next().expect("fixture has an object");
        let mut related = Related::default();
        for doc in docs {
            match doc.get("kind").and_then(Value::as_str) {
                Some("Pod") => related.pods.push(doc),
                Some("ReplicaSet") => related.replica_sets.push(doc),
                Some("Event") => related.events.push(doc),
                other => panic!("unexpected related kind {other:?}"),
            }
        }
        (object, related)
    }

    /// The resource id of a manifest.
    pub fn id_of(obj: &Value) -> ResourceId {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).expect(p).to_owned();
        ResourceId::kubernetes(
            s("/apiVersion"),
            s("/kind"),
            obj.pointer("/metadata/namespace").and_then(Value::as_str),
            s("/metadata/name"),
        )
    }

    /// Evaluates the first document with [`WaitRule::Default`] and the rest as related.
    pub fn eval(yaml: &str) -> Readiness {
        let (object, related) = load(yaml);
        evaluate(&id_of(&object), &WaitRule::Default, &object, &related)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{eval, id_of, load};
    use super::*;
    use serde_json::json;

    #[test]
    fn configuration_kinds_are_ready_at_once() {
        for (api_version, kind) in [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("v1", "ResourceQuota"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
        ] {
            let id = ResourceId::kubernetes(api_version, kind, Some("preview-pr-1"), "x");
            let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
            assert_eq!(
                evaluate(&id, &WaitRule::Default, &obj, &Related::default()),
                Readiness::Ready,
                "{kind}"
            );
        }
    }

    #[test]
    fn postgres_resources_are_ready() {
        let id = ResourceId {
            provider: ProviderName::POSTGRES,
            api_version: "postgres/v1".into(),
            kind: "Database".into(),
            namespace: None,
            name: "aphiria_pr_1".into(),
        };
        assert_eq!(
            evaluate(&id, &WaitRule::Default, &Value::Null, &Related::default()),
            Readiness::Ready
        );
    }

    #[test]
    fn wait_rule_none_is_ready_even_when_failing() {
        let (obj, related) = load(include_fixture!("deployment-image-pull-backoff.yaml"));
        assert!(evaluate(&id_of(&obj), &WaitRule::Default, &obj, &related).is_failure());
        assert_eq!(
            evaluate(&id_of(&obj), &WaitRule::None, &obj, &related),
            Readiness::Ready
        );
    }

    #[test]
    fn wait_rule_condition_overrides_the_kind_rule() {
        let (obj, related) = load(include_fixture!("deployment-mid-rollout.yaml"));
        let id = id_of(&obj);
        let available = WaitRule::Condition {
            condition: "Available".into(),
        };
        assert_eq!(evaluate(&id, &available, &obj, &related), Readiness::Ready);
        let missing = WaitRule::Condition {
            condition: "Frobnicated".into(),
        };
        assert_eq!(
            evaluate(&id, &missing, &obj, &related),
            Readiness::InProgress("waiting for condition Frobnicated".into())
        );
    }

    #[test]
    fn object_being_deleted_is_in_progress() {
        let r = eval(
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: preview-pr-1
  deletionTimestamp: "2024-05-01T10:00:00Z"
  finalizers: [kubernetes.io/pvc-protection]
status: {phase: Bound}
"#,
        );
        assert_eq!(
            r,
            Readiness::InProgress(
                "the object is being deleted (finalizers: kubernetes.io/pvc-protection)".into()
            )
        );
    }

    #[test]
    fn related_needs_per_kind() {
        let dep = ResourceId::kubernetes("apps/v1", "Deployment", Some("n"), "web");
        assert_eq!(
            related_needed(&dep),
            RelatedNeeds {
                pods: true,
                replica_sets: true,
                events: true
            }
        );
        let job = ResourceId::kubernetes("batch/v1", "Job", Some("n"), "migrate");
        assert!(related_needed(&job).pods && !related_needed(&job).replica_sets);
        let pvc = ResourceId::kubernetes("v1", "PersistentVolumeClaim", Some("n"), "data");
        assert!(related_needed(&pvc).events && !related_needed(&pvc).pods);
        let cm = ResourceId::kubernetes("v1", "ConfigMap", Some("n"), "c");
        assert!(!related_needed(&cm).any());
    }

    #[test]
    fn pod_selector_from_match_labels_and_expressions() {
        let obj = json!({"kind": "Deployment", "spec": {"selector": {
        "matchLabels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "pr-1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "track", "operator": "NotIn", "values": ["legacy"]},
            {"key": "owner", "operator": "Exists"}
        ]}}});
        assert_eq!(
            pod_selector(&obj).as_deref(),
            Some(
                "app.kubernetes.io/name=web,app.kubernetes.io/instance=pr-1,tier in (frontend,edge),\
                 !canary,track notin (legacy),owner"
            )
        );
    }

    #[test]
    fn pod_selector_for_jobs_falls_back_to_uid_then_name() {
        let (job, _) = load(include_fixture!("job-running.yaml"));
        assert_eq!(
            pod_selector(&job).as_deref(),
            Some("controller-uid=8d4c2a6e-5b1f-4c3d-9e7a-1f2b3c4d5e6f")
        );
        let with_uid = json!({"kind": "Job", "metadata": {"name": "migrate", "uid": "abc"}});
        assert_eq!(
            pod_selector(&with_uid).as_deref(),
            Some("controller-uid=abc")
        );
        let desired = json!({"kind": "Job", "metadata": {"name": "migrate"}});
        assert_eq!(pod_selector(&desired).as_deref(), Some("job-name=migrate"));
        let empty = json!({"kind": "Deployment", "spec": {"selector": {}}});
        assert_eq!(pod_selector(&empty), None);
    }

    #[test]
    fn display_and_helpers() {
        assert_eq!(Readiness::Ready.to_string(), "ready");
        let failing = Readiness::Failing("x".into());
        assert_eq!(failing.to_string(), "failing: x");
        assert!(failing.is_failure() && !failing.is_terminal());
        assert_eq!(failing.message(), Some("x"));
        assert!(Readiness::Failed("y".into()).is_terminal());
        assert_eq!(
            serde_json::to_value(Readiness::InProgress("z".into())).expect("serialise"),
            json!({"state": "inProgress", "message": "z"})
        );
    }
}
