//! PersistentVolumeClaims: what a dynamic provisioner would do.
//!
//! The simulator installs one StorageClass, [`STORAGE_CLASS`] (provisioner
//! [`PROVISIONER`], `Immediate` binding), marked as the cluster's default, so
//! the REAL `DefaultStorageClass` admission gives it to claims that name no
//! class, as on a cluster with a default class. It provisions only claims of
//! that class: a claim with `storageClassName: ""` (or another class) gets no
//! volume, and the REAL persistentvolume controller reports why
//! (`FailedBinding`, `ProvisioningFailed`), as on a cluster without a
//! provisioner for it.
//!
//! For each Pending, unbound claim of its class the simulator creates a PersistentVolume
//! named `testkit-pv-<claim uid>`: capacity = the claim's storage request, the
//! claim's access modes, volume mode and storage class (empty if none), the
//! claim's `selector.matchLabels` as labels, reclaim policy `Retain`, a `hostPath`
//! source, and a `claimRef` to the claim (pre-bound, like a provisioner's volume).
//! The REAL persistentvolume-binder controller in kube-controller-manager then
//! binds the two. When the claim goes away the volume becomes `Released` and the
//! simulator deletes it.
//!
//! Nothing is created on disk: the `hostPath` is never mounted because no kubelet
//! runs. A claim annotated `testkit.preview-envs.io/simulate: Pending` is left
//! unbound.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::{Value, json};

use super::annotations::{Injection, SIMULATED_LABEL};

/// The simulator's (default) StorageClass.
pub const STORAGE_CLASS: &str = "testkit-simulated";
/// The provisioner its StorageClass names.
pub const PROVISIONER: &str = "testkit.preview-envs.io/simulated";

/// The default StorageClass the simulator provisions for.
pub(crate) fn storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "labels": {SIMULATED_LABEL: "true"},
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    })
}

/// The volume name for a claim.
pub(crate) fn volume_name(claim_uid: &str) -> String {
    format!("testkit-pv-{claim_uid}")
}

/// The PersistentVolume to create for `claim`, or `None` when it needs none.
pub(crate) fn volume_for(claim: &PersistentVolumeClaim) -> Option<PersistentVolume> {
    if claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let phase = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let spec = claim.spec.as_ref()?;
    let bound = spec.volume_name.as_deref().is_some_and(|v| !v.is_empty());
    if phase != "Pending" || bound || spec.storage_class_name.as_deref() != Some(STORAGE_CLASS) {
        return None;
    }
    if Injection::of(claim.metadata.annotations.as_ref())
        .simulate
        .as_deref()
        == Some("Pending")
    {
        return None;
    }
    let namespace = claim.metadata.namespace.as_deref()?;
    let name = claim.metadata.name.as_deref()?;
    let uid = claim.metadata.uid.as_deref()?;
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into());
    let access_modes = spec
        .access_modes
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
    let mut labels: BTreeMap<String, String> = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    labels.insert(SIMULATED_LABEL.into(), "true".into());
    let mut volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(uid),
            "labels": labels,
            "annotations": {
                "pv.kubernetes.io/provisioned-by": "testkit.preview-envs.io/node-simulator",
            },
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": access_modes,
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": format!("/var/lib/testkit-simulated/{namespace}/{name}")},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": name,
                "uid": uid,
            },
        },
    });
    if let Some(mode) = &spec.volume_mode {
        volume["spec"]["volumeMode"] = Value::String(mode.clone());
    }
    serde_json::from_value(volume).ok()
}

/// Whether a volume the simulator created is no longer needed.
pub(crate) fn is_released(volume: &PersistentVolume) -> bool {
    let simulated = volume
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(SIMULATED_LABEL).map(String::as_str) == Some("true"));
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    simulated
        && volume.metadata.deletion_timestamp.is_none()
        && matches!(phase, Some("Released" | "Failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(yaml: &str) -> PersistentVolumeClaim {
        serde_yaml_ng::from_str(yaml).expect("claim yaml")
    }

    #[test]
    fn pending_claim_gets_a_pre_bound_volume() {
        let c = claim(
            "
metadata: {name: data, namespace: ns, uid: abc}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
  storageClassName: testkit-simulated
  selector: {matchLabels: {app: db}}
status: {phase: Pending}
",
        );
        let v = volume_for(&c).expect("a volume");
        assert_eq!(v.metadata.name.as_deref(), Some("testkit-pv-abc"));
        let spec = v.spec.expect("spec");
        assert_eq!(spec.capacity.expect("capacity")["storage"].0, "5Gi");
        assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
        assert_eq!(
            spec.claim_ref.expect("claimRef").uid.as_deref(),
            Some("abc")
        );
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        let labels = v.metadata.labels.expect("labels");
        assert_eq!(labels["app"], "db");
        assert_eq!(labels[SIMULATED_LABEL], "true");
    }

    #[test]
    fn claims_of_other_classes_or_none_get_nothing() {
        for class in ["storageClassName: ''", "storageClassName: fast", ""] {
            let c = claim(&format!(
                "metadata: {{name: d, namespace: n, uid: u}}\nspec: {{{class}}}\nstatus: {{phase: Pending}}"
            ));
            assert!(volume_for(&c).is_none(), "{class}");
        }
    }

    #[test]
    fn bound_or_held_claims_get_nothing() {
        let c = claim(
            "metadata: {name: d, namespace: n, uid: u}\nspec: {volumeName: pv1}\nstatus: {phase: Bound}",
        );
        assert!(volume_for(&c).is_none());
        let c = claim(&format!(
            "metadata: {{name: d, namespace: n, uid: u, annotations: {{'{}': Pending}}}}\nspec: {{}}",
            super::super::annotations::SIMULATE
        ));
        assert!(volume_for(&c).is_none());
    }

    #[test]
    fn released_simulated_volumes_are_reclaimed() {
        let v: PersistentVolume = serde_yaml_ng::from_str(&format!(
            "metadata: {{name: v, labels: {{'{SIMULATED_LABEL}': 'true'}}}}\nstatus: {{phase: Released}}"
        ))
        .expect("pv");
        assert!(is_released(&v));
        let v: PersistentVolume =
            serde_yaml_ng::from_str("metadata: {name: v}\nstatus: {phase: Released}").expect("pv");
        assert!(!is_released(&v));
    }
}
