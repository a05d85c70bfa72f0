//! The simulated Node and its heartbeat.
//!
//! One Node object (default name `sim-node`) with `Ready=True`, the pressure
//! conditions `False`, capacity and allocatable from
//! [`SimulatorOptions::capacity`](super::SimulatorOptions) (default cpu 8 /
//! memory 32Gi / pods 110 / ephemeral-storage 100Gi), a fake InternalIP and `nodeInfo` that says
//! `testkit-simulated` where a real node names its kubelet and runtime. It exists
//! so that anything looking at nodes finds one; no kubelet backs it, except the
//! log endpoint of [`super::kubelet`]: its loopback address is the Node's
//! `ExternalIP` and its port `daemonEndpoints.kubeletEndpoint.Port`.
//!
//! The REAL node-lifecycle controller marks a node `Unknown` (and its pods not
//! Ready) after 40 s without a heartbeat, so the simulator renews the node's Lease
//! in `kube-node-lease` and the Ready condition's `lastHeartbeatTime` every
//! [`SimulatorOptions::heartbeat_interval`](super::SimulatorOptions).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::SimulatorOptions;
use super::annotations::SIMULATED_LABEL;
use super::status::{now, time_string};
use crate::KitError;

/// The address the simulated kubelet listens on, reported as the Node's `ExternalIP`.
pub(crate) const KUBELET_ADDRESS: &str = "127.0.0.1";

/// The namespace the API server creates for node leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The field manager for the simulator's server-side applies.
pub(crate) const FIELD_MANAGER: &str = "testkit-node-simulator";

/// The Node object (status included; the API server keeps status on create).
pub(crate) fn node_object(
    options: &SimulatorOptions,
    kubelet_port: u16,
) -> Result<Node, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": options.node_name,
            "labels": {
                "kubernetes.io/hostname": options.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                SIMULATED_LABEL: "true",
            },
            "annotations": {
                "testkit.preview-envs.io/note": "simulated by the testkit node simulator; no kubelet runs and no container starts",
            },
        },
        "spec": {},
        "status": node_status(options, kubelet_port),
    }))
}

/// The node's status with heartbeat times set to now.
pub(crate) fn node_status(options: &SimulatorOptions, kubelet_port: u16) -> Value {
    let t = time_string(now());
    let cap = &options.capacity;
    let resources = json!({"cpu": cap.cpu, "memory": cap.memory, "pods": cap.pods.to_string(), "ephemeral-storage": cap.ephemeral_storage});
    let c = |kind: &str, status: &str, reason: &str, message: &str| json!({"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": t});
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            c("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated: kubelet has sufficient memory available"),
            c("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated: kubelet has no disk pressure"),
            c("PIDPressure", "False", "KubeletHasSufficientPID", "simulated: kubelet has sufficient PID available"),
            c("Ready", "True", "KubeletReady", "simulated by testkit: no kubelet runs on this node"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": options.node_ip},
            {"type": "Hostname", "address": options.node_name},
            {"type": "ExternalIP", "address": KUBELET_ADDRESS},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "testkit-simulated",
            "systemUUID": "testkit-simulated",
            "bootID": "testkit-simulated",
            "kernelVersion": "testkit-simulated",
            "osImage": "testkit-simulated",
            "containerRuntimeVersion": "testkit-simulated://0",
            "kubeletVersion": "v1.37.2-testkit-simulated",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// Creates the Node if missing and writes its status and Lease.
pub(crate) async fn ensure(
    client: &kube::Client,
    options: &SimulatorOptions,
    kubelet_port: u16,
) -> Result<(), KitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(options, kubelet_port)
        .map_err(|e| KitError::Simulator(format!("building the Node: {e}")))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %options.node_name, "simulated node created"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            return Err(KitError::kube(
                format!("creating Node {}", options.node_name),
                e,
            ));
        }
    }
    heartbeat(client, options, kubelet_port).await.map_err(|e| {
        KitError::kube(
            format!("writing the status of Node {}", options.node_name),
            e,
        )
    })
}

/// Renews the node's Ready heartbeat and its Lease.
pub(crate) async fn heartbeat(
    client: &kube::Client,
    options: &SimulatorOptions,
    kubelet_port: u16,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": node_status(options, kubelet_port)});
    match nodes
        .patch_status(
            &options.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            // Someone deleted the node: bring it back.
            let node = node_object(options, kubelet_port).map_err(kube::Error::SerdeError)?;
            nodes.create(&PostParams::default(), &node).await?;
        }
        Err(e) => return Err(e),
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": options.node_name},
        "spec": {
            "holderIdentity": options.node_name,
            "leaseDurationSeconds": 40,
            "renewTime": MicroTime(now()),
        },
    });
    leases
        .patch(
            &options.node_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_is_ready_with_capacity() {
        let node = node_object(&SimulatorOptions::default(), 41234).expect("valid node");
        let status = node.status.expect("status");
        let endpoint = status
            .daemon_endpoints
            .as_ref()
            .and_then(|d| d.kubelet_endpoint.as_ref());
        assert_eq!(endpoint.map(|e| e.port), Some(41234));
        let addresses = status.addresses.clone().expect("addresses");
        assert!(
            addresses
                .iter()
                .any(|a| a.type_ == "ExternalIP" && a.address == KUBELET_ADDRESS)
        );
        assert_eq!(status.capacity.as_ref().expect("capacity")["cpu"].0, "8");
        assert_eq!(
            status.allocatable.as_ref().expect("allocatable")["memory"].0,
            "32Gi"
        );
        assert_eq!(status.capacity.as_ref().expect("capacity")["pods"].0, "110");
        let ready = status
            .conditions
            .expect("conditions")
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn capacity_comes_from_the_options() {
        let options = SimulatorOptions {
            capacity: super::super::NodeCapacity {
                cpu: "500".into(),
                memory: "2Ti".into(),
                pods: 4000,
                ephemeral_storage: "10Ti".into(),
            },
            ..SimulatorOptions::default()
        };
        let status = node_object(&options, 10250)
            .expect("valid node")
            .status
            .expect("status");
        for map in [status.capacity, status.allocatable] {
            let map = map.expect("resources");
            assert_eq!(map["cpu"].0, "500");
            assert_eq!(map["memory"].0, "2Ti");
            assert_eq!(map["pods"].0, "4000");
            assert_eq!(map["ephemeral-storage"].0, "10Ti");
        }
    }
}
