//! The `KubernetesCluster` resource (a DOKS cluster) as plain data (no IO): its
//! identity, desired body and checks, shared by `components::DoksCluster` and the
//! DigitalOcean provider.
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
//! Outputs: once the cluster runs, the provider computes the ones in
//! [`outputs`] (its id, endpoint, kubeconfig context, and the kubeconfig itself,
//! a secret the engine seals, with its expiry).
//!
//! Ownership: the cluster carries the tag `preview-envs-stack:<stack>`
//! ([`owner_tag`]), reported as the stack label of the live value.
//!
//! The version must be an exact slug (`1.33.1-do.0`): `latest` or a minor version
//! would be resolved by DigitalOcean and then read back as a difference on every
//! run. Region, version and node pools cannot be changed in place by this
//! provider: a change is reported as needing a replacement (which `protect`
//! refuses) — upgrade or resize through DigitalOcean and then update the config.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::resource::{ProviderName, Resource, ResourceId, STACK_LABEL};

/// `apiVersion` of DOKS clusters.
pub const API_VERSION: &str = "kubernetes.digitalocean.com/v1";
/// `kind` of DOKS clusters.
pub const KIND: &str = "KubernetesCluster";
/// Prefix of the ownership tag (`preview-envs-stack:<stack>`).
pub const OWNER_TAG_PREFIX: &str = "preview-envs-stack:";

/// The outputs the DigitalOcean provider computes for a running cluster
/// (`Provider::outputs`), recorded with the stack's outputs.
pub mod outputs {
    /// DigitalOcean's id of the cluster.
    pub const CLUSTER_ID: &str = "clusterId";
    /// The API server URL.
    pub const ENDPOINT: &str = "endpoint";
    /// The kubeconfig's context (`do-<region>-<name>`).
    pub const KUBE_CONTEXT: &str = "kubeContext";
    /// The kubeconfig: a secret, sealed in the state.
    pub const KUBECONFIG: &str = "kubeconfig";
    /// When the kubeconfig's token expires (RFC 3339).
    pub const KUBECONFIG_EXPIRES_AT: &str = "kubeconfigExpiresAt";

    /// Every output of a running cluster.
    pub const ALL: [&str; 5] = [
        CLUSTER_ID,
        ENDPOINT,
        KUBE_CONTEXT,
        KUBECONFIG,
        KUBECONFIG_EXPIRES_AT,
    ];
}

/// One node pool (`{name, size, count}` in the body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePoolSpec {
    /// Pool name.
    pub name: String,
    /// Droplet size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// Number of nodes (at least 1).
    pub count: u32,
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

    /// Parses and checks a `KubernetesCluster` resource (its typed body,
    /// [`ClusterBody`]); errors name the field.
    pub fn from_resource(res: &Resource) -> Result<Self, String> {
        let body: ClusterBody = serde_json::from_value(res.body.clone())
            .map_err(|e| format!("KubernetesCluster body: {e}"))?;
        let cluster = DesiredCluster {
            name: res.id.name.clone(),
            region: body.region,
            version: body.version,
            node_pools: body.node_pools,
            owner: body
                .metadata
                .labels
                .get(STACK_LABEL)
                .cloned()
                .unwrap_or_default(),
        };
        cluster.check()?;
        Ok(cluster)
    }
}

/// The fields of a `KubernetesCluster` body the provider reads (the body as
/// [`DesiredCluster::body`] writes it).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBody {
    /// Name and the owning stack's label.
    #[serde(default)]
    pub metadata: ClusterMetadata,
    /// Region slug.
    pub region: String,
    /// Exact version slug.
    pub version: String,
    /// Node pools.
    pub node_pools: Vec<NodePoolSpec>,
}

/// `metadata` of a `KubernetesCluster` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ClusterMetadata {
    /// Labels (the owning stack's, [`STACK_LABEL`]).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> DesiredCluster {
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

    fn resource(body: Value) -> Resource {
        Resource {
            id: cluster().id(),
            body,
            depends_on: Default::default(),
            options: Default::default(),
        }
    }

    #[test]
    fn bodies_round_trip_through_the_typed_body() {
        let desired = cluster();
        assert_eq!(
            DesiredCluster::from_resource(&resource(desired.body())),
            Ok(desired.clone())
        );
        let mut bad = desired.body();
        bad["nodePools"][0]["count"] = json!("two");
        let err = DesiredCluster::from_resource(&resource(bad)).expect_err("not a count");
        assert!(err.starts_with("KubernetesCluster body: "), "{err}");
        let mut none = desired.body();
        none["nodePools"][0]["count"] = json!(0);
        let err = DesiredCluster::from_resource(&resource(none)).expect_err("no nodes");
        assert!(err.contains("count of at least 1"), "{err}");
    }
}
