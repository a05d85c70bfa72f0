//! `v1/PersistentVolumeClaim`: ready when `status.phase == Bound`; `Lost` (its
//! volume is gone) is failed.
//!
//! `Pending` is in progress, with two refinements read from Events on the claim:
//! `WaitForFirstConsumer` means binding is deferred until a pod uses the claim
//! (storage classes with `volumeBindingMode: WaitForFirstConsumer`), so the claim
//! counts as ready — waiting for it would deadlock the Deployment that consumes
//! it. Two known causes fail the step at once, quoting the controller:
//! `ProvisioningFailed` (the provisioner's message, e.g. a StorageClass that does
//! not exist) and `FailedBinding` (the persistentvolume controller found no
//! matching volume and has no class to provision one with: "no persistent volumes
//! available for this claim and no storage class is set"; it records that as a
//! `Normal` event, so events of any type count).

use serde_json::Value;

use super::conditions::{excerpt, latest_event, name, str_at};
use super::{Readiness, Related};

/// Readiness of a PersistentVolumeClaim.
pub(super) fn evaluate(pvc: &Value, related: &Related) -> Readiness {
    match str_at(pvc, "/status/phase") {
        Some("Bound") => Readiness::Ready,
        Some("Lost") => Readiness::Failed(format!(
            "claim lost its volume {}",
            str_at(pvc, "/spec/volumeName").unwrap_or("(unknown)")
        )),
        phase => {
            let involved = [("PersistentVolumeClaim", name(pvc))];
            if has_event(&related.events, "WaitForFirstConsumer", name(pvc)) {
                return Readiness::Ready;
            }
            if let Some(failure) = latest_event(&related.events, "ProvisioningFailed", &involved) {
                return Readiness::Failed(failure);
            }
            if let Some(message) = latest_message(&related.events, "FailedBinding", name(pvc)) {
                let hint = if message.contains("no storage class") {
                    " (name a StorageClass in the claim's storageClassName, or make one the cluster's default)"
                } else {
                    ""
                };
                return Readiness::Failed(format!(
                    "PersistentVolumeClaim {}: FailedBinding: {}{hint}",
                    name(pvc),
                    excerpt(message)
                ));
            }
            Readiness::InProgress(format!("claim is {}", phase.unwrap_or("Pending")))
        }
    }
}

/// The message of the latest event of `reason` (of any type) about the claim.
fn latest_message<'a>(events: &'a [Value], reason: &str, claim: &str) -> Option<&'a str> {
    events
        .iter()
        .filter(|e| {
            str_at(e, "/reason") == Some(reason)
                && str_at(e, "/involvedObject/kind") == Some("PersistentVolumeClaim")
                && str_at(e, "/involvedObject/name") == Some(claim)
        })
        .max_by_key(|e| {
            ["/lastTimestamp", "/eventTime", "/firstTimestamp"]
                .iter()
                .find_map(|p| str_at(e, p))
                .unwrap_or("")
        })
        .and_then(|e| str_at(e, "/message"))
}

/// True when an event of `reason` (of any type: `WaitForFirstConsumer` is `Normal`,
/// which [`latest_event`] skips) is about the claim.
fn has_event(events: &[Value], reason: &str, claim: &str) -> bool {
    events.iter().any(|e| {
        str_at(e, "/reason") == Some(reason)
            && str_at(e, "/involvedObject/kind") == Some("PersistentVolumeClaim")
            && str_at(e, "/involvedObject/name") == Some(claim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn bound_claim_is_ready() {
        assert_eq!(eval(include_fixture!("pvc-bound.yaml")), Readiness::Ready);
    }

    #[test]
    fn pending_claim_waits() {
        assert_eq!(
            eval(include_fixture!("pvc-pending.yaml")),
            Readiness::InProgress("claim is Pending".into())
        );
    }

    #[test]
    fn wait_for_first_consumer_counts_as_ready() {
        let (pvc, mut related) = load(include_fixture!("pvc-pending.yaml"));
        related.events.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "data.17cb", "namespace": "preview-pr-7"},
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "preview-pr-7"},
            "reason": "WaitForFirstConsumer", "type": "Normal",
            "message": "waiting for first consumer to be created before binding",
            "source": {"component": "persistentvolume-controller"}}));
        assert_eq!(evaluate(&pvc, &related), Readiness::Ready);
    }

    #[test]
    fn no_storage_class_fails_at_once() {
        let (mut pvc, mut related) = load(include_fixture!("pvc-pending.yaml"));
        pvc["spec"]["storageClassName"] = "".into();
        related.events.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "data.17cd", "namespace": "preview-pr-7"},
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "preview-pr-7"},
            "reason": "FailedBinding", "type": "Normal",
            "message": "no persistent volumes available for this claim and no storage class is set",
            "source": {"component": "persistentvolume-controller"}}));
        assert_eq!(
            evaluate(&pvc, &related),
            Readiness::Failed(
                "PersistentVolumeClaim data: FailedBinding: no persistent volumes available for this claim \
                 and no storage class is set (name a StorageClass in the claim's storageClassName, or make \
                 one the cluster's default)"
                    .into()
            )
        );
    }

    #[test]
    fn provisioning_failure_is_failed() {
        let (pvc, mut related) = load(include_fixture!("pvc-pending.yaml"));
        related.events.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "data.17cc", "namespace": "preview-pr-7"},
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "preview-pr-7"},
            "reason": "ProvisioningFailed", "type": "Warning",
            "message": "storageclass.storage.k8s.io \"fast\" not found",
            "lastTimestamp": "2024-05-01T10:00:05Z",
            "source": {"component": "persistentvolume-controller"}}));
        assert_eq!(
            evaluate(&pvc, &related),
            Readiness::Failed(
                "PersistentVolumeClaim data: ProvisioningFailed: storageclass.storage.k8s.io \"fast\" not found"
                    .into()
            )
        );
    }

    #[test]
    fn lost_claim_is_failed() {
        let (mut pvc, related) = load(include_fixture!("pvc-bound.yaml"));
        pvc["status"] = serde_json::json!({"phase": "Lost"});
        assert_eq!(
            evaluate(&pvc, &related),
            Readiness::Failed(
                "claim lost its volume pvc-4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d".into()
            )
        );
    }
}
