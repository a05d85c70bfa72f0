//! `apps/v1/Deployment`: rolled out, decided as `kubectl rollout status` does
//! (and kube-runtime's `is_deployment_completed` in spirit):
//!
//! 1. `status.observedGeneration >= metadata.generation`, else in progress;
//! 2. `Progressing=False` with reason `ProgressDeadlineExceeded` → failed;
//! 3. `updatedReplicas == spec.replicas` ("1 of 2 replicas updated"), no old
//!    replicas left (`status.replicas == updatedReplicas`), and
//!    `availableReplicas == updatedReplicas` → ready.
//!
//! While not ready, a visible failure makes the state failing instead of in
//! progress, checked in this order: a ReplicaSet's `ReplicaFailure=True` (quota or
//! admission rejecting pod creation — the message names the ReplicaSet and quotes
//! the API server), the Deployment's own copy of that condition, a pod of the new
//! ReplicaSet whose container waits with a failure reason (see [`super::pod`]),
//! and finally a `FailedCreate` Event on one of its ReplicaSets.

use serde_json::Value;

use super::conditions::{
    count, excerpt, generation_lag, int_at, is_owned_by, latest_event, name, status_condition,
    str_at,
};
use super::{Readiness, Related, pod};

/// Annotation the deployment controller sets on a Deployment and its ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";
/// Label tying pods to their ReplicaSet.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Readiness of a Deployment.
pub(super) fn evaluate(dep: &Value, related: &Related) -> Readiness {
    if let Some(lag) = generation_lag(dep, "deployment controller") {
        return Readiness::InProgress(lag);
    }
    let replica_sets: Vec<&Value> = related
        .replica_sets
        .iter()
        .filter(|rs| is_owned_by(rs, "Deployment", dep))
        .collect();
    if let Some(c) = status_condition(dep, "Progressing")
        && c.is_false()
        && c.reason == "ProgressDeadlineExceeded"
    {
        let mut message = format!("progress deadline exceeded: {}", excerpt(c.message));
        if let Some(cause) = failure(dep, &replica_sets, related) {
            message.push_str("; ");
            message.push_str(&cause.message);
        }
        return Readiness::Failed(message);
    }
    if dep.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Readiness::InProgress("the deployment is paused".into());
    }
    let Some(progress) = progress(dep) else {
        return Readiness::Ready;
    };
    match failure(dep, &replica_sets, related) {
        Some(failure) => failure.readiness(Some(&progress)),
        None => Readiness::InProgress(progress),
    }
}

/// What the rollout still waits for, or `None` when it is complete.
fn progress(dep: &Value) -> Option<String> {
    let want = int_at(dep, "/spec/replicas").unwrap_or(1);
    let updated = count(dep, "/status/updatedReplicas");
    let current = count(dep, "/status/replicas");
    let available = count(dep, "/status/availableReplicas");
    if updated < want {
        Some(format!("{updated} of {want} replicas updated"))
    } else if current > updated {
        let old = current - updated;
        Some(if old == 1 {
            "1 old replica pending termination".to_owned()
        } else {
            format!("{old} old replicas pending termination")
        })
    } else if available < updated {
        Some(format!(
            "{available} of {updated} updated replicas available"
        ))
    } else {
        None
    }
}

/// The first visible failure, in the order the module docs give.
fn failure(dep: &Value, replica_sets: &[&Value], related: &Related) -> Option<pod::PodFailure> {
    let new_rs = new_replica_set(dep, replica_sets);
    let mut ordered: Vec<&Value> = new_rs.into_iter().collect();
    ordered.extend(
        replica_sets
            .iter()
            .copied()
            .filter(|rs| Some(*rs) != new_rs),
    );
    for rs in &ordered {
        if let Some(c) = status_condition(rs, "ReplicaFailure")
            && c.is_true()
        {
            return Some(pod::cannot_create(format!(
                "ReplicaSet {} cannot create pods: {}",
                name(rs),
                c.describe()
            )));
        }
    }
    if let Some(c) = status_condition(dep, "ReplicaFailure")
        && c.is_true()
    {
        return Some(pod::cannot_create(format!(
            "cannot create pods: {}",
            c.describe()
        )));
    }
    let pods: Vec<&Value> = related
        .pods
        .iter()
        .filter(|p| match new_rs {
            Some(rs) => belongs_to(p, rs),
            None if replica_sets.is_empty() => true,
            None => replica_sets.iter().any(|rs| belongs_to(p, rs)),
        })
        .collect();
    if let Some(failure) = pod::scan(pods.iter().copied())
        .or_else(|| pod::probe_failure(&related.events, pods.iter().copied()))
    {
        return Some(failure);
    }
    let short: Vec<(&str, &str)> = replica_sets
        .iter()
        .filter(|rs| count(rs, "/status/replicas") < int_at(rs, "/spec/replicas").unwrap_or(1))
        .map(|rs| ("ReplicaSet", name(rs)))
        .collect();
    if !short.is_empty() {
        return latest_event(&related.events, "FailedCreate", &short).map(pod::cannot_create);
    }
    if replica_sets.is_empty() {
        // ReplicaSets not listed: accept events about `<deployment>-<hash>`.
        let prefix = format!("{}-", name(dep));
        let names: Vec<&str> = related
            .events
            .iter()
            .filter(|e| str_at(e, "/involvedObject/kind") == Some("ReplicaSet"))
            .filter_map(|e| str_at(e, "/involvedObject/name"))
            .filter(|n| {
                n.strip_prefix(&prefix).is_some_and(|hash| {
                    !hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric())
                })
            })
            .collect();
        let involved: Vec<(&str, &str)> = names.into_iter().map(|n| ("ReplicaSet", n)).collect();
        return latest_event(&related.events, "FailedCreate", &involved).map(pod::cannot_create);
    }
    None
}

/// The ReplicaSet of the Deployment's current revision.
fn new_replica_set<'a>(dep: &Value, replica_sets: &[&'a Value]) -> Option<&'a Value> {
    let revision = annotation(dep, REVISION)?;
    replica_sets
        .iter()
        .copied()
        .find(|rs| annotation(rs, REVISION) == Some(revision))
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn template_hash(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/labels")?
        .get(POD_TEMPLATE_HASH)?
        .as_str()
}

/// True when `pod` belongs to `rs`: same `pod-template-hash`, or else an owner reference.
fn belongs_to(pod: &Value, rs: &Value) -> bool {
    match (template_hash(pod), template_hash(rs)) {
        (Some(a), Some(b)) => a == b,
        _ => is_owned_by(pod, "ReplicaSet", rs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    fn eval_value(obj: &Value, related: &Related) -> Readiness {
        evaluate(obj, related)
    }

    #[test]
    fn available_deployment_is_ready() {
        assert_eq!(
            eval(include_fixture!("deployment-available.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn mid_rollout_with_old_replica_set_is_in_progress() {
        assert_eq!(
            eval(include_fixture!("deployment-mid-rollout.yaml")),
            Readiness::InProgress("1 of 2 replicas updated".into())
        );
    }

    #[test]
    fn old_replicas_pending_termination() {
        let (mut dep, related) = load(include_fixture!("deployment-mid-rollout.yaml"));
        dep["status"]["updatedReplicas"] = 2.into();
        dep["status"]["replicas"] = 3.into();
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::InProgress("1 old replica pending termination".into())
        );
        dep["status"]["replicas"] = 2.into();
        dep["status"]["availableReplicas"] = 1.into();
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::InProgress("1 of 2 updated replicas available".into())
        );
    }

    #[test]
    fn lagging_observed_generation_is_in_progress() {
        assert_eq!(
            eval(include_fixture!("deployment-generation-lag.yaml")),
            Readiness::InProgress(
                "waiting for the deployment controller to observe generation 3 (observed 2)".into()
            )
        );
    }

    #[test]
    fn image_pull_backoff_is_failed_at_once_naming_pod_and_container() {
        assert_eq!(
            eval(include_fixture!("deployment-image-pull-backoff.yaml")),
            Readiness::Failed(
                "pod web-7c9d8f6b5-x2x4q container web: ImagePullBackOff: Back-off pulling image \
                 \"registry.example.com/aphiria/web@sha256:0c2f4f3a9d1b8e7c6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9\" \
                 (0 of 1 updated replicas available)"
                    .into()
            )
        );
    }

    #[test]
    fn pods_of_old_replica_sets_are_ignored() {
        let (dep, mut related) = load(include_fixture!("deployment-image-pull-backoff.yaml"));
        for pod in &mut related.pods {
            pod["metadata"]["labels"][POD_TEMPLATE_HASH] = "5d8f7c9b6".into();
        }
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::InProgress("0 of 1 updated replicas available".into())
        );
    }

    const QUOTA_MESSAGE: &str = "FailedCreate: pods \"web-7c9d8f6b5-x2x4q\" is forbidden: exceeded quota: \
        preview-quota, requested: limits.cpu=4, used: limits.cpu=0, limited: limits.cpu=2";

    #[test]
    fn quota_the_pod_can_never_fit_is_failed_naming_the_replica_set() {
        assert_eq!(
            eval(include_fixture!("deployment-quota.yaml")),
            Readiness::Failed(format!(
                "ReplicaSet web-7c9d8f6b5 cannot create pods: {QUOTA_MESSAGE} (0 of 1 replicas updated)"
            ))
        );
    }

    #[test]
    fn quota_failure_from_the_deployment_condition_without_replica_sets() {
        let (dep, mut related) = load(include_fixture!("deployment-quota.yaml"));
        related.replica_sets.clear();
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::Failed(format!(
                "cannot create pods: {QUOTA_MESSAGE} (0 of 1 replicas updated)"
            ))
        );
    }

    #[test]
    fn quota_failure_from_events_only() {
        let (mut dep, mut related) = load(include_fixture!("deployment-quota.yaml"));
        dep["status"]["conditions"] = serde_json::json!([]);
        for rs in &mut related.replica_sets {
            rs["status"]["conditions"] = serde_json::json!([]);
        }
        let expected = "ReplicaSet web-7c9d8f6b5: FailedCreate: Error creating: pods \"web-7c9d8f6b5-x2x4q\" \
            is forbidden: exceeded quota: preview-quota, requested: limits.cpu=4, used: limits.cpu=0, \
            limited: limits.cpu=2 (0 of 1 replicas updated)";
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::Failed(expected.into())
        );
        related.replica_sets.clear();
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::Failed(expected.into())
        );
    }

    #[test]
    fn quota_that_usage_exhausts_is_failing_until_the_grace() {
        let (dep, mut related) = load(include_fixture!("deployment-quota.yaml"));
        for rs in &mut related.replica_sets {
            rs["status"]["conditions"][0]["message"] =
                "pods \"web-7c9d8f6b5-x2x4q\" is forbidden: \
                exceeded quota: preview-quota, requested: pods=1, used: pods=5, limited: pods=5"
                    .into();
        }
        assert!(matches!(eval_value(&dep, &related), Readiness::Failing(_)));
    }

    #[test]
    fn a_failing_readiness_probe_is_failing() {
        let (dep, mut related) = load(include_fixture!("deployment-mid-rollout.yaml"));
        // The new ReplicaSet's pod runs, but its readiness probe fails.
        let mut pod = related.pods[0].clone();
        pod["status"]["phase"] = "Running".into();
        pod["status"]["conditions"] = serde_json::json!([{"type": "Ready", "status": "False"}]);
        let pod_name = pod["metadata"]["name"].clone();
        related.pods = vec![pod];
        related.events.push(serde_json::json!({
            "involvedObject": {"kind": "Pod", "name": pod_name},
            "reason": "Unhealthy", "type": "Warning",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 503"}));
        let r = eval_value(&dep, &related);
        assert!(
            matches!(&r, Readiness::Failing(m) if m.contains("Unhealthy: Readiness probe failed")),
            "{r:?}"
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_failed_with_the_cause() {
        assert_eq!(
            eval(include_fixture!("deployment-progress-deadline.yaml")),
            Readiness::Failed(
                "progress deadline exceeded: ReplicaSet \"api-6b7f9d8c4\" has timed out progressing.; \
                 pod api-6b7f9d8c4-m5n6p container php-fpm: CrashLoopBackOff: back-off 5m0s restarting \
                 failed container=php-fpm pod=api-6b7f9d8c4-m5n6p_preview-pr-7(5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f); \
                 last exit code 255: Error (7 restarts)"
                    .into()
            )
        );
    }

    #[test]
    fn stale_progress_deadline_is_not_failed_while_a_new_generation_is_pending() {
        let (mut dep, related) = load(include_fixture!("deployment-progress-deadline.yaml"));
        dep["metadata"]["generation"] = 2.into();
        assert!(matches!(
            eval_value(&dep, &related),
            Readiness::InProgress(_)
        ));
    }

    #[test]
    fn paused_deployment_waits() {
        let (mut dep, related) = load(include_fixture!("deployment-mid-rollout.yaml"));
        dep["spec"]["paused"] = true.into();
        assert_eq!(
            eval_value(&dep, &related),
            Readiness::InProgress("the deployment is paused".into())
        );
    }

    #[test]
    fn scaled_to_zero_is_ready() {
        let (mut dep, _) = load(include_fixture!("deployment-available.yaml"));
        dep["spec"]["replicas"] = 0.into();
        dep["status"] = serde_json::json!({"observedGeneration": 1});
        assert_eq!(eval_value(&dep, &Related::default()), Readiness::Ready);
    }
}
