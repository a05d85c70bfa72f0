//! `apps/v1/StatefulSet`: rolled out, decided as `kubectl rollout status` does:
//!
//! 1. `status.observedGeneration >= metadata.generation`;
//! 2. `readyReplicas == spec.replicas` ("1 of 2 replicas ready");
//! 3. with `updateStrategy: RollingUpdate` (the default): with a partition,
//!    `updatedReplicas >= replicas - partition`; otherwise
//!    `updateRevision == currentRevision`. `OnDelete` stops after step 2.
//!
//! While not ready, a failing pod (see [`super::pod`]) or a `FailedCreate` Event
//! on the StatefulSet (quota, admission) makes the state failing.

use serde_json::Value;

use super::conditions::{count, generation_lag, int_at, is_owned_by, latest_event, name, str_at};
use super::{Readiness, Related, pod};

/// Readiness of a StatefulSet.
pub(super) fn evaluate(sts: &Value, related: &Related) -> Readiness {
    if let Some(lag) = generation_lag(sts, "statefulset controller") {
        return Readiness::InProgress(lag);
    }
    let Some(progress) = progress(sts) else {
        return Readiness::Ready;
    };
    let pods: Vec<&Value> = related
        .pods
        .iter()
        .filter(|p| is_owned_by(p, "StatefulSet", sts))
        .collect();
    let failure = pod::scan(pods.iter().copied())
        .or_else(|| pod::probe_failure(&related.events, pods.iter().copied()))
        .or_else(|| {
            let want = int_at(sts, "/spec/replicas").unwrap_or(1);
            (count(sts, "/status/replicas") < want)
                .then(|| {
                    latest_event(
                        &related.events,
                        "FailedCreate",
                        &[("StatefulSet", name(sts))],
                    )
                })
                .flatten()
                .map(pod::cannot_create)
        });
    match failure {
        Some(failure) => failure.readiness(Some(&progress)),
        None => Readiness::InProgress(progress),
    }
}

fn progress(sts: &Value) -> Option<String> {
    let want = int_at(sts, "/spec/replicas").unwrap_or(1);
    let ready = count(sts, "/status/readyReplicas");
    if ready < want {
        return Some(format!("{ready} of {want} replicas ready"));
    }
    let strategy = str_at(sts, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return None;
    }
    let updated = count(sts, "/status/updatedReplicas");
    let partition = count(sts, "/spec/updateStrategy/rollingUpdate/partition");
    if partition > 0 {
        let target = (want - partition).max(0);
        return (updated < target)
            .then(|| format!("{updated} of {target} replicas updated (partition {partition})"));
    }
    let update_revision = str_at(sts, "/status/updateRevision");
    let current_revision = str_at(sts, "/status/currentRevision");
    match (update_revision, current_revision) {
        (Some(update), Some(current)) if update != current => Some(format!(
            "{updated} of {want} replicas updated to revision {update}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn rolled_out_statefulset_is_ready() {
        assert_eq!(
            eval(include_fixture!("statefulset-ready.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn rolling_update_waits_for_revision() {
        assert_eq!(
            eval(include_fixture!("statefulset-rolling.yaml")),
            Readiness::InProgress("1 of 2 replicas updated to revision db-6c8d9f7b5".into())
        );
    }

    #[test]
    fn partitioned_rollout_counts_updated_replicas() {
        let (mut sts, related) = load(include_fixture!("statefulset-rolling.yaml"));
        sts["spec"]["updateStrategy"]["rollingUpdate"] = serde_json::json!({"partition": 1});
        assert_eq!(evaluate(&sts, &related), Readiness::Ready);
        sts["status"]["updatedReplicas"] = 0.into();
        assert_eq!(
            evaluate(&sts, &related),
            Readiness::InProgress("0 of 1 replicas updated (partition 1)".into())
        );
    }

    #[test]
    fn on_delete_only_needs_ready_replicas() {
        let (mut sts, related) = load(include_fixture!("statefulset-rolling.yaml"));
        sts["spec"]["updateStrategy"] = serde_json::json!({"type": "OnDelete"});
        assert_eq!(evaluate(&sts, &related), Readiness::Ready);
    }

    #[test]
    fn lagging_generation_waits() {
        let (mut sts, related) = load(include_fixture!("statefulset-ready.yaml"));
        sts["metadata"]["generation"] = 2.into();
        assert_eq!(
            evaluate(&sts, &related),
            Readiness::InProgress(
                "waiting for the statefulset controller to observe generation 2 (observed 1)"
                    .into()
            )
        );
    }

    #[test]
    fn failing_pod_is_reported() {
        let (mut sts, mut related) = load(include_fixture!("statefulset-ready.yaml"));
        sts["status"]["readyReplicas"] = 0.into();
        related.pods[0]["status"]["containerStatuses"][0]["state"] = serde_json::json!({
            "waiting": {"reason": "CreateContainerConfigError",
                        "message": "secret \"db-credentials\" not found"}});
        assert_eq!(
            evaluate(&sts, &related),
            Readiness::Failing(
                "pod db-0 container postgres: CreateContainerConfigError: secret \"db-credentials\" \
                 not found (0 of 1 replicas ready)"
                    .into()
            )
        );
    }

    #[test]
    fn quota_event_is_reported_when_pods_are_missing() {
        assert_eq!(
            eval(include_fixture!("statefulset-quota.yaml")),
            Readiness::Failing(
                "StatefulSet db: FailedCreate: create Pod db-0 in StatefulSet db failed error: \
                 pods \"db-0\" is forbidden: failed quota: preview-quota: must specify \
                 limits.cpu,limits.memory (0 of 1 replicas ready)"
                    .into()
            )
        );
    }
}
