//! `v1/Namespace`: ready when `status.phase == Active`.
//!
//! A `Terminating` namespace is in progress, with the namespace controller's
//! conditions as the message; [`is_gone_blocked`] gives destroy the same summary
//! to report a namespace stuck in termination.

use serde_json::Value;

use super::Readiness;
use super::conditions::{all, excerpt, is_deleting, name, str_at};

/// Readiness of a namespace.
pub(super) fn evaluate(ns: &Value) -> Readiness {
    match str_at(ns, "/status/phase") {
        Some("Active") if !is_deleting(ns) => Readiness::Ready,
        Some("Terminating") | Some("Active") => {
            Readiness::InProgress(is_gone_blocked(ns).unwrap_or_default())
        }
        Some(other) => Readiness::InProgress(format!("namespace is {other}")),
        None => Readiness::InProgress("waiting for the namespace to become Active".into()),
    }
}

/// For a namespace in termination, one readable line saying what holds it up:
/// the namespace controller's problem conditions (`NamespaceDeletionContentFailure`,
/// `NamespaceDeletionDiscoveryFailure`, `NamespaceContentRemaining`,
/// `NamespaceFinalizersRemaining`, … — those with status `True`) and the
/// remaining `spec.finalizers`. `None` when the namespace is not terminating.
///
/// Destroy calls this on each poll and reports it once the namespace is stuck
/// (its own deadline); the message alone does not mean "stuck".
pub fn is_gone_blocked(namespace_obj: &Value) -> Option<String> {
    let terminating =
        str_at(namespace_obj, "/status/phase") == Some("Terminating") || is_deleting(namespace_obj);
    if !terminating {
        return None;
    }
    let mut parts: Vec<String> = all(namespace_obj.pointer("/status/conditions"))
        .into_iter()
        .filter(|c| c.is_true())
        .map(|c| {
            let message = excerpt(c.message);
            if message.is_empty() {
                format!("{} ({})", c.type_, c.reason)
            } else {
                format!("{}: {message}", c.type_)
            }
        })
        .collect();
    let finalizers: Vec<&str> = namespace_obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !finalizers.is_empty() {
        parts.push(format!("spec.finalizers: {}", finalizers.join(", ")));
    }
    let head = format!("namespace {} is terminating", name(namespace_obj));
    Some(if parts.is_empty() {
        format!("{head} (no blocking condition reported yet)")
    } else {
        format!("{head}: {}", parts.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn active_namespace_is_ready() {
        assert_eq!(
            eval(include_fixture!("namespace-active.yaml")),
            Readiness::Ready
        );
        let (ns, _) = load(include_fixture!("namespace-active.yaml"));
        assert_eq!(is_gone_blocked(&ns), None);
    }

    #[test]
    fn terminating_namespace_is_in_progress_with_conditions() {
        let expected = "namespace preview-pr-7 is terminating: \
            NamespaceContentRemaining: Some resources are remaining: persistentvolumeclaims. has 1 resource instances, pods. has 1 resource instances; \
            NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances; \
            spec.finalizers: kubernetes";
        assert_eq!(
            eval(include_fixture!("namespace-terminating.yaml")),
            Readiness::InProgress(expected.into())
        );
        let (ns, _) = load(include_fixture!("namespace-terminating.yaml"));
        assert_eq!(is_gone_blocked(&ns).as_deref(), Some(expected));
    }

    #[test]
    fn content_failure_is_reported() {
        let (ns, _) = load(
            r#"
apiVersion: v1
kind: Namespace
metadata:
  name: preview-pr-9
  deletionTimestamp: "2024-05-01T10:05:00Z"
spec:
  finalizers: [kubernetes]
status:
  phase: Terminating
  conditions:
  - lastTransitionTime: "2024-05-01T10:05:03Z"
    message: 'Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request'
    reason: DiscoveryFailed
    status: "True"
    type: NamespaceDeletionDiscoveryFailure
"#,
        );
        let message = is_gone_blocked(&ns).expect("terminating");
        assert!(
            message.starts_with("namespace preview-pr-9 is terminating: NamespaceDeletionDiscoveryFailure: Discovery failed"),
            "{message}"
        );
    }

    #[test]
    fn terminating_without_conditions_says_so() {
        let (ns, _) = load(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nstatus: {phase: Terminating}\n",
        );
        assert_eq!(
            is_gone_blocked(&ns).as_deref(),
            Some("namespace x is terminating (no blocking condition reported yet)")
        );
    }
}
