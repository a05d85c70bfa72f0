//! The `KubernetesCluster` resource (a DOKS cluster) as plain data (no IO).
//!
//! Identity: `digitalocean KubernetesCluster <name>` (apiVersion
//! `kubernetes.digitalocean.com/v1`, no namespace); cluster names are unique in a
//! DigitalOcean account. Desired body (built by `components::DoksCluster`):
//!
//! ```yaml
//! apiVersion: kubernetes.digitalocean.com/v1
//! kind: KubernetesCluster
//! metadata:
//!   name: aphiria-previews
//!   labels: {preview-envs.io/stack: preview-cluster}   # the owning stack
//! region: fra1
//! version: 1.33.1-do.0        # an exact slug (see below)
//! nodePools:
//! - {name: workers, size: s-2vcpu-4gb, count: 2}
//! ```
//!
//! Ownership: the cluster carries the tag `preview-envs-stack:<stack>`
//! ([`owner_tag`]), reported as the stack label of the live value.
//!
//! The version must be an exact slug (`1.33.1-do.0`): `latest` or a minor version
//! would be resolved by DigitalOcean and then read back as a difference on every
//! run. Region, version and node pools cannot be changed in place by this
//! provider: a change is reported as needing a replacement (which `protect`
//! refuses) — upgrade or resize through DigitalOcean and then update the config.

use serde_json::{Value, json};

use super::clusters_api::{ClusterNodePool, KubernetesCluster};
use crate::resource::{ProviderName, Resource, ResourceId, STACK_LABEL};

/// `apiVersion` of DOKS clusters.
pub const API_VERSION: &str = "kubernetes.digitalocean.com/v1";
/// `kind` of DOKS clusters.
pub const KIND: &str = "KubernetesCluster";
/// Prefix of the ownership tag (`preview-envs-stack:<stack>`).
pub const OWNER_TAG_PREFIX: &str = "preview-envs-stack:";

/// One node pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePoolSpec {
    /// Pool name.
    pub name: String,
    /// Droplet size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// Number of nodes (at least 1).
    pub count: i64,
}

/// The desired state of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCluster {
    /// Cluster name.
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Exact version slug.
    pub version: String,
    /// Node pools (at least one).
    pub node_pools: Vec<NodePoolSpec>,
    /// The owning stack.
    pub owner: String,
}

/// The resource id of cluster `name`.
pub fn cluster_id(name: &str) -> ResourceId {
    ResourceId {
        provider: ProviderName::DIGITALOCEAN,
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        namespace: None,
        name: name.to_owned(),
    }
}

/// The ownership tag of `stack`.
pub fn owner_tag(stack: &str) -> String {
    format!("{OWNER_TAG_PREFIX}{stack}")
}

/// The stack named by a cluster's ownership tag.
pub fn owner_of(tags: &[String]) -> Option<&str> {
    tags.iter()
        .find_map(|t| t.strip_prefix(OWNER_TAG_PREFIX))
        .filter(|s| !s.is_empty())
}

/// Checks a version slug: `<major>.<minor>.<patch>-do.<n>`.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = version.split_once("-do.").is_some_and(|(semver, build)| {
        semver.split('.').count() == 3
            && semver
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && !build.is_empty()
            && build.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {version:?} must be an exact DOKS version slug such as 1.33.1-do.0 (`latest` and minor versions would read as a change on every run; list them with `doctl kubernetes options versions`)"
        ))
    }
}

/// A cluster name DigitalOcean accepts and a tag can carry: lowercase letters,
/// digits and `-`, 1–63 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster name {name:?} must be 1-63 lowercase letters, digits or '-'"
        ))
    }
}

impl DesiredCluster {
    /// The resource id.
    pub fn id(&self) -> ResourceId {
        cluster_id(&self.name)
    }

    /// The resource body (see the module docs).
    pub fn body(&self) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "labels": {STACK_LABEL: self.owner}},
            "region": self.region,
            "version": self.version,
            "nodePools": self.node_pools.iter().map(|p| json!({
                "name": p.name, "size": p.size, "count": p.count,
            })).collect::<Vec<_>>(),
        })
    }

    /// Checks the parameters; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.region.is_empty() {
            return Err("field region is empty".into());
        }
        check_version(&self.version).map_err(|m| format!("field version: {m}"))?;
        if self.node_pools.is_empty() {
            return Err("field nodePools needs at least one pool".into());
        }
        for (i, pool) in self.node_pools.iter().enumerate() {
            if pool.name.is_empty() || pool.size.is_empty() || pool.count < 1 {
                return Err(format!(
                    "field nodePools[{i}] needs a name, a size and a count of at least 1"
                ));
            }
        }
        if self.owner.is_empty() {
            return Err(format!(
                "field metadata.labels[\"{STACK_LABEL}\"] (the owning stack) is missing"
            ));
        }
        Ok(())
    }

    /// Parses and checks a `KubernetesCluster` resource.
    pub fn from_resource(res: &Resource) -> Result<Self, String> {
        let body = &res.body;
        let text = |key: &str| -> Result<String, String> {
            body.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("field {key} is missing or not a string"))
        };
        let node_pools =
            body.get("nodePools")
                .and_then(Value::as_array)
                .ok_or_else(|| "field nodePools is missing or not a list".to_owned())?
                .iter()
                .enumerate()
                .map(|(i, pool)| {
                    Ok(NodePoolSpec {
                        name: pool
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        size: pool
                            .get("size")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        count: pool.get("count").and_then(Value::as_i64).ok_or_else(|| {
                            format!("field nodePools[{i}].count is not an integer")
                        })?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
        let cluster = DesiredCluster {
            name: res.id.name.clone(),
            region: text("region")?,
            version: text("version")?,
            node_pools,
            owner: body
                .pointer("/metadata/labels")
                .and_then(|l| l.get(STACK_LABEL))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        cluster.check()?;
        Ok(cluster)
    }

    /// What differs from `live` in fields this provider cannot change in place.
    pub fn immutable_changes(&self, live: &KubernetesCluster) -> Vec<String> {
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

    /// The node pools in the API's shape.
    pub fn api_node_pools(&self) -> Vec<ClusterNodePool> {
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
    use crate::digitalocean::clusters_api::ClusterStatus;
    use crate::resource::ResourceOptions;

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
            crate::diff::projection_hash(&value, &res.body),
            crate::diff::body_hash(&res.body)
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
