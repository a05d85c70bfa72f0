//! The `KubernetesCluster` resource against the DigitalOcean API: what cannot be
//! changed in place, the API's node-pool shape, and the live value the planner
//! sees. The resource itself (identity, body, checks) is
//! [`preview_core::schema::doks_cluster`].

use serde_json::{Value, json};

use super::clusters_api::{ClusterNodePool, KubernetesCluster};
use preview_core::resource::STACK_LABEL;
pub use preview_core::schema::doks_cluster::*;

/// The API side of a [`DesiredCluster`].
pub trait DesiredClusterApi {
    /// What differs from `live` in fields this provider cannot change in place.
    fn immutable_changes(&self, live: &KubernetesCluster) -> Vec<String>;
    /// The node pools in the API's shape.
    fn api_node_pools(&self) -> Vec<ClusterNodePool>;
}

impl DesiredClusterApi for DesiredCluster {
    fn immutable_changes(&self, live: &KubernetesCluster) -> Vec<String> {
        let mut changes = Vec::new();
        if self.region != live.region {
            changes.push(format!("region {} → {}", live.region, self.region));
        }
        if self.version != live.version {
            changes.push(format!("version {} → {}", live.version, self.version));
        }
        let live_pools: Vec<NodePoolSpec> = live
            .node_pools
            .iter()
            .map(|p| NodePoolSpec {
                name: p.name.clone(),
                size: p.size.clone(),
                count: p.count,
            })
            .collect();
        if self.node_pools != live_pools {
            let show = |pools: &[NodePoolSpec]| {
                pools
                    .iter()
                    .map(|p| format!("{} {}×{}", p.name, p.count, p.size))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            changes.push(format!(
                "node pools [{}] → [{}]",
                show(&live_pools),
                show(&self.node_pools)
            ));
        }
        changes
    }

    fn api_node_pools(&self) -> Vec<ClusterNodePool> {
        self.node_pools
            .iter()
            .map(|p| ClusterNodePool {
                name: p.name.clone(),
                size: p.size.clone(),
                count: p.count,
            })
            .collect()
    }
}

/// The observed cluster as the planner sees it: the desired body's shape, the
/// owning stack (from the tag) as the stack label, the cluster id as
/// `metadata.uid`, and `status` (ignored by comparisons) with the state and the
/// endpoint. `owner` overrides the tag (an apply that just wrote it).
pub fn live_value(cluster: &KubernetesCluster, owner: Option<&str>) -> Value {
    let owner = owner.or_else(|| owner_of(&cluster.tags));
    let labels = match owner {
        Some(owner) => json!({ STACK_LABEL: owner }),
        None => json!({}),
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": cluster.name, "labels": labels, "uid": cluster.id},
        "region": cluster.region,
        "version": cluster.version,
        "nodePools": cluster.node_pools.iter().map(|p| json!({
            "name": p.name, "size": p.size, "count": p.count,
        })).collect::<Vec<_>>(),
        "status": {
            "state": cluster.state(),
            "message": cluster.status.message.clone().unwrap_or_default(),
            "endpoint": cluster.endpoint,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::clusters_api::ClusterStatus;
    use preview_core::resource::{Resource, ResourceOptions};

    fn desired() -> DesiredCluster {
        DesiredCluster {
            name: "aphiria-previews".into(),
            region: "fra1".into(),
            version: "1.33.1-do.0".into(),
            node_pools: vec![NodePoolSpec {
                name: "workers".into(),
                size: "s-2vcpu-4gb".into(),
                count: 2,
            }],
            owner: "preview-cluster".into(),
        }
    }

    fn live(tags: &[&str]) -> KubernetesCluster {
        KubernetesCluster {
            id: "bd5f5959-5e1e-4205-a714-000000000001".into(),
            name: "aphiria-previews".into(),
            region: "fra1".into(),
            version: "1.33.1-do.0".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            node_pools: desired().api_node_pools(),
            endpoint: String::new(),
            status: ClusterStatus {
                state: Some("provisioning".into()),
                message: None,
            },
        }
    }

    #[test]
    fn bodies_round_trip_and_match_the_live_value() {
        let d = desired();
        let res = Resource {
            id: d.id(),
            body: d.body(),
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        };
        assert_eq!(
            res.id.to_string(),
            "digitalocean KubernetesCluster aphiria-previews"
        );
        assert_eq!(DesiredCluster::from_resource(&res), Ok(d.clone()));
        let value = live_value(&live(&["k8s", "preview-envs-stack:preview-cluster"]), None);
        assert_eq!(value["metadata"]["labels"][STACK_LABEL], "preview-cluster");
        assert_eq!(
            preview_core::diff::projection_hash(&value, &res.body),
            preview_core::diff::body_hash(&res.body)
        );
        assert_eq!(
            live_value(&live(&["k8s"]), None)["metadata"]["labels"],
            json!({})
        );
    }

    #[test]
    fn checks_and_immutable_changes() {
        for (change, expected) in [
            (
                Box::new(|d: &mut DesiredCluster| d.version = "latest".into())
                    as Box<dyn Fn(&mut DesiredCluster)>,
                "exact DOKS version slug",
            ),
            (
                Box::new(|d| d.version = "1.33".into()),
                "exact DOKS version slug",
            ),
            (Box::new(|d| d.name = "Previews".into()), "cluster name"),
            (Box::new(|d| d.node_pools.clear()), "at least one pool"),
            (Box::new(|d| d.node_pools[0].count = 0), "nodePools[0]"),
            (Box::new(|d| d.owner.clear()), "owning stack"),
        ] {
            let mut d = desired();
            change(&mut d);
            let err = d.check().expect_err(expected);
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let mut d = desired();
        assert!(d.immutable_changes(&live(&[])).is_empty());
        d.region = "ams3".into();
        d.node_pools[0].count = 3;
        assert_eq!(
            d.immutable_changes(&live(&[])),
            [
                "region fra1 → ams3",
                "node pools [workers 2×s-2vcpu-4gb] → [workers 3×s-2vcpu-4gb]"
            ]
        );
    }

    #[test]
    fn ownership_tags() {
        assert_eq!(
            owner_tag("preview-cluster"),
            "preview-envs-stack:preview-cluster"
        );
        let tags = vec!["k8s".to_owned(), "preview-envs-stack:x".to_owned()];
        assert_eq!(owner_of(&tags), Some("x"));
        assert_eq!(owner_of(&["preview-envs-stack:".to_owned()]), None);
    }
}
