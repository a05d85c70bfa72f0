//! The DigitalOcean API's Kubernetes (DOKS) cluster endpoints, on [`DoClient`]:
//! list, create, get, update (name, tags), delete, kubeconfig.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{DoClient, DoError, PER_PAGE, to_value};
use preview_core::secret::SecretString;

/// A node pool as the API returns it (the fields the engine uses).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ClusterNodePool {
    /// Pool name.
    pub name: String,
    /// Droplet size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// Number of nodes.
    pub count: u32,
}

/// `status` of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ClusterStatus {
    /// `provisioning`, `running`, `degraded`, `error`, `deleted`, `upgrading`, `deleting`.
    #[serde(default)]
    pub state: Option<String>,
    /// What DigitalOcean says about the state.
    #[serde(default)]
    pub message: Option<String>,
}

/// A cluster as the API returns it (the fields the engine uses).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct KubernetesCluster {
    /// Cluster id (a UUID).
    pub id: String,
    /// Name (unique in the account).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Version slug, e.g. `1.33.1-do.0`.
    pub version: String,
    /// Tags, including DigitalOcean's own `k8s` and `k8s:<id>`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Node pools.
    #[serde(default)]
    pub node_pools: Vec<ClusterNodePool>,
    /// API server URL (empty while provisioning).
    #[serde(default)]
    pub endpoint: String,
    /// State.
    #[serde(default)]
    pub status: ClusterStatus,
}

impl KubernetesCluster {
    /// The state, `unknown` when the API gave none.
    pub fn state(&self) -> &str {
        self.status.state.as_deref().unwrap_or("unknown")
    }
}

/// A cluster to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewCluster {
    /// Name.
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Version slug.
    pub version: String,
    /// Node pools.
    pub node_pools: Vec<ClusterNodePool>,
    /// Tags.
    pub tags: Vec<String>,
}

#[derive(Serialize)]
struct ClusterUpdate<'a> {
    name: &'a str,
    tags: &'a [String],
}

#[derive(Deserialize)]
struct ClusterEnvelope {
    kubernetes_cluster: KubernetesCluster,
}

#[derive(Deserialize)]
struct ClusterList {
    #[serde(default)]
    kubernetes_clusters: Vec<KubernetesCluster>,
    #[serde(default)]
    meta: Option<ListMeta>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(default)]
    total: Option<usize>,
}

/// Upper bound on pages read by one list.
const MAX_PAGES: usize = 100;

impl DoClient {
    /// Every cluster of the account.
    pub async fn list_clusters(&self) -> Result<Vec<KubernetesCluster>, DoError> {
        let mut clusters = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["v2", "kubernetes", "clusters"]);
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &PER_PAGE.to_string());
            let list: ClusterList = self.json(Method::GET, url, None).await?;
            let got = list.kubernetes_clusters.len();
            clusters.extend(list.kubernetes_clusters);
            let total = list.meta.and_then(|m| m.total);
            if got < PER_PAGE || total.is_some_and(|t| clusters.len() >= t) {
                break;
            }
        }
        Ok(clusters)
    }

    /// One cluster, or `None` when it does not exist.
    pub async fn get_cluster(&self, id: &str) -> Result<Option<KubernetesCluster>, DoError> {
        let url = self.url(&["v2", "kubernetes", "clusters", id]);
        match self.json::<ClusterEnvelope>(Method::GET, url, None).await {
            Ok(envelope) => Ok(Some(envelope.kubernetes_cluster)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a cluster (it starts `provisioning`).
    pub async fn create_cluster(&self, cluster: &NewCluster) -> Result<KubernetesCluster, DoError> {
        let url = self.url(&["v2", "kubernetes", "clusters"]);
        let body = to_value(cluster);
        let envelope: ClusterEnvelope = self.json(Method::POST, url, Some(&body)).await?;
        Ok(envelope.kubernetes_cluster)
    }

    /// Sets a cluster's name and tags (PUT).
    pub async fn update_cluster(
        &self,
        id: &str,
        name: &str,
        tags: &[String],
    ) -> Result<KubernetesCluster, DoError> {
        let url = self.url(&["v2", "kubernetes", "clusters", id]);
        let body = to_value(&ClusterUpdate { name, tags });
        let envelope: ClusterEnvelope = self.json(Method::PUT, url, Some(&body)).await?;
        Ok(envelope.kubernetes_cluster)
    }

    /// Deletes a cluster; `false` when it was already gone.
    pub async fn delete_cluster(&self, id: &str) -> Result<bool, DoError> {
        let url = self.url(&["v2", "kubernetes", "clusters", id]);
        match self.execute(Method::DELETE, url, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The cluster's kubeconfig (YAML with credentials: a secret), valid for
    /// `expiry_seconds` (DigitalOcean's default, 7 days, when `None`).
    pub async fn kubeconfig(
        &self,
        id: &str,
        expiry_seconds: Option<u64>,
    ) -> Result<SecretString, DoError> {
        let mut url = self.url(&["v2", "kubernetes", "clusters", id, "kubeconfig"]);
        if let Some(expiry) = expiry_seconds {
            url.query_pairs_mut()
                .append_pair("expiry_seconds", &expiry.to_string());
        }
        let request = format!("GET {}", url.path());
        let (_, bytes) = self.execute(Method::GET, url, None).await?;
        String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|_| DoError::Decode {
                request,
                message: "the kubeconfig is not UTF-8".into(),
            })
    }
}
