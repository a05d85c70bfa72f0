//! `preview-cluster`: the DigitalOcean Kubernetes (DOKS) cluster the previews run
//! on — the option of creating the cluster instead of bringing your own
//! kubeconfig. Persistent, like `preview-base`; never destroyed by PR workflows.
//!
//! Resources: one `KubernetesCluster` (`components::DoksCluster`, owned through
//! the tag `preview-envs-stack:preview-cluster`) from the `cluster:` section of
//! `config/preview-cluster.yaml`. With `protect: true` (the default) the engine
//! refuses to delete it or to replace it (a change of region, version or node
//! pools): `stacks destroy preview-cluster` fails until `protect: false` has been
//! recorded by an `up`.
//!
//! The cluster is managed through the DigitalOcean API only: `up` needs no
//! Kubernetes connection ([`crate::uses_kubernetes`] is false). The API token is the secret `DIGITALOCEAN_TOKEN`
//! (checked here, so a missing token fails before anything is sent); it appears
//! in no resource, output or state.
//!
//! # Outputs
//!
//! Known when the stack is built:
//!
//! | output | value |
//! | --- | --- |
//! | `clusterName` | the cluster's name |
//! | `region` | its region slug |
//! | `version` | its version slug |
//!
//! Computed by the DigitalOcean provider once the cluster is running and
//! recorded by the engine like the others, the kubeconfig sealed (see
//! [`runtime_outputs`]; fetched again only when less than half of
//! `cluster.kubeconfigExpiry` is left):
//!
//! | output | value |
//! | --- | --- |
//! | `clusterId` | DigitalOcean's id of the cluster |
//! | `endpoint` | the API server URL |
//! | `kubeContext` | the kubeconfig's context (`do-<region>-<name>`) |
//! | `kubeconfig` | **secret**, sealed in state: the kubeconfig (`stacks kubeconfig preview-cluster`) |
//! | `kubeconfigExpiresAt` | when its token expires (RFC 3339) |

use std::collections::BTreeMap;

use components::DoksCluster;
use preview_core::validate::Policy;

use super::inputs::{plain, protect, secret};
use crate::config::StackConfig;
use crate::{SecretSource, StackBuild, StackError, StackKind, StackRequest};

/// The stack's name, also its state name.
pub const NAME: &str = "preview-cluster";

/// Output names.
pub mod outputs {
    /// The cluster's name.
    pub const CLUSTER_NAME: &str = "clusterName";
    /// Region slug.
    pub const REGION: &str = "region";
    /// Version slug.
    pub const VERSION: &str = "version";
    // The ones of the running cluster (runtime): DigitalOcean's cluster id,
    // the API server URL, the kubeconfig context, the kubeconfig (a sealed
    // secret) and the expiry of its token (RFC 3339).
    pub use preview_core::schema::doks_cluster::outputs::{
        CLUSTER_ID, ENDPOINT, KUBE_CONTEXT, KUBECONFIG, KUBECONFIG_EXPIRES_AT,
    };
}

/// The outputs the DigitalOcean provider computes from the running cluster
/// after `up` ([`preview_core::provider::Provider::outputs`]), not the build.
pub fn runtime_outputs() -> [&'static str; 5] {
    preview_core::schema::doks_cluster::outputs::ALL
}

/// Builds `preview-cluster`.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    debug_assert_eq!(request.kind, StackKind::PreviewCluster);
    let cluster = config
        .cluster
        .as_ref()
        .ok_or_else(|| config.missing("cluster"))?;
    secret(secrets, super::DIGITALOCEAN_TOKEN)?;
    let resource = DoksCluster {
        name: cluster.name.clone(),
        region: cluster.region.clone(),
        version: cluster.version.clone(),
        node_pools: cluster.node_pools.clone(),
        owner_stack: NAME.to_owned(),
    }
    .build()?;
    let outputs = BTreeMap::from([
        (
            outputs::CLUSTER_NAME.to_owned(),
            plain(cluster.name.as_str()),
        ),
        (outputs::REGION.to_owned(), plain(cluster.region.as_str())),
        (outputs::VERSION.to_owned(), plain(cluster.version.as_str())),
    ]);
    Ok(StackBuild {
        name: NAME.to_owned(),
        resources: vec![protect(resource, config.protect)],
        outputs,
        notes: Vec::new(),
        policy: Policy::default(),
    })
}
