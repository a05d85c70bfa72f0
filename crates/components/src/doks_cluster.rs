//! A DigitalOcean Kubernetes (DOKS) cluster, as an engine resource of the
//! DigitalOcean provider (`preview_digitalocean`): the option of creating the
//! preview cluster instead of bringing your own kubeconfig.
//!
//! This component only *describes* the cluster: a [`Resource`] with
//! `ProviderName::DIGITALOCEAN`, `apiVersion` `kubernetes.digitalocean.com/v1`,
//! kind `KubernetesCluster`, name = the cluster's name, and the body
//!
//! ```yaml
//! apiVersion: kubernetes.digitalocean.com/v1
//! kind: KubernetesCluster
//! metadata:
//!   name: aphiria-previews
//!   labels: {preview-envs.io/stack: preview-cluster}   # owner_stack
//! region: fra1
//! version: 1.33.1-do.0
//! nodePools:
//! - {name: workers, size: s-2vcpu-4gb, count: 2}
//! ```
//!
//! The provider creates it tagged `preview-envs-stack:<owner_stack>`, waits until it
//! is `running`, refuses clusters it does not own (adopt them with `import`), and
//! never changes region, version or node pools in place; protect the resource
//! (the stacks do) so that such a change is refused rather than planned as a
//! replacement. The kubeconfig comes from
//! `DigitalOceanProvider::cluster_kubeconfig` once it runs.
//!
//! # Parameters
//!
//! | field | meaning | default |
//! | --- | --- | --- |
//! | `name` | cluster name, 1–63 lowercase letters, digits, `-` | required |
//! | `region` | region slug, e.g. `fra1` | required |
//! | `version` | exact version slug, e.g. `1.33.1-do.0` (not `latest`) | required |
//! | `node_pools` | [`DoksNodePool`]s: name, Droplet size slug, count ≥ 1 | one pool `workers`, `s-2vcpu-4gb` × 2 |
//! | `owner_stack` | the stack that owns the cluster (tag) | required |

use std::collections::BTreeSet;

use preview_core::schema::doks_cluster::{DesiredCluster, NodePoolSpec};
use preview_core::{Resource, ResourceId, ResourceOptions};

use crate::error::ComponentError;

/// One node pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoksNodePool {
    /// Pool name.
    pub name: String,
    /// Droplet size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// Number of nodes (at least 1).
    pub count: u32,
}

impl DoksNodePool {
    /// A pool of `count` nodes of `size`.
    pub fn new(name: impl Into<String>, size: impl Into<String>, count: u32) -> Self {
        DoksNodePool {
            name: name.into(),
            size: size.into(),
            count,
        }
    }
}

/// A DOKS cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoksCluster {
    /// Cluster name.
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Exact version slug.
    pub version: String,
    /// Node pools (at least one).
    pub node_pools: Vec<DoksNodePool>,
    /// The owning stack.
    pub owner_stack: String,
}

impl DoksCluster {
    /// A cluster with one pool `workers` of two `s-2vcpu-4gb` nodes.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        version: impl Into<String>,
        owner_stack: impl Into<String>,
    ) -> Self {
        DoksCluster {
            name: name.into(),
            region: region.into(),
            version: version.into(),
            node_pools: vec![DoksNodePool::new("workers", "s-2vcpu-4gb", 2)],
            owner_stack: owner_stack.into(),
        }
    }

    fn desired(&self) -> DesiredCluster {
        DesiredCluster {
            name: self.name.clone(),
            region: self.region.clone(),
            version: self.version.clone(),
            node_pools: self
                .node_pools
                .iter()
                .map(|p| NodePoolSpec {
                    name: p.name.clone(),
                    size: p.size.clone(),
                    count: p.count,
                })
                .collect(),
            owner: self.owner_stack.clone(),
        }
    }

    /// The resource id (`digitalocean KubernetesCluster <name>`).
    pub fn id(&self) -> ResourceId {
        self.desired().id()
    }

    /// Validates and renders the resource.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        let desired = self.desired();
        desired.check().map_err(|reason| {
            ComponentError::invalid("DOKS cluster", self.name.as_str(), reason)
        })?;
        Ok(Resource {
            id: desired.id(),
            body: desired.body(),
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::ProviderName;

    fn cluster() -> DoksCluster {
        DoksCluster::new("aphiria-previews", "fra1", "1.33.1-do.0", "preview-cluster")
    }

    #[test]
    fn snapshot() {
        let r = cluster().build().expect("builds");
        insta::assert_yaml_snapshot!(r.body);
    }

    #[test]
    fn identity() {
        let r = cluster().build().expect("builds");
        assert_eq!(r.id.provider, ProviderName::DIGITALOCEAN);
        assert_eq!(
            r.id.to_string(),
            "digitalocean KubernetesCluster aphiria-previews"
        );
        assert_eq!(r.id, cluster().id());
        assert_eq!(
            DesiredCluster::from_resource(&r)
                .expect("parses")
                .node_pools[0]
                .count,
            2
        );
    }

    #[test]
    fn parameters_are_validated() {
        let mut latest = cluster();
        latest.version = "latest".into();
        let err = latest.build().expect_err("latest").to_string();
        assert!(
            err.contains("invalid DOKS cluster \"aphiria-previews\""),
            "{err}"
        );
        assert!(err.contains("exact DOKS version slug"), "{err}");
        let mut empty = cluster();
        empty.node_pools[0].count = 0;
        assert!(
            empty
                .build()
                .expect_err("no nodes")
                .to_string()
                .contains("nodePools[0]")
        );
    }
}
