//! `KubernetesCluster`: DOKS clusters (see [`super::cluster`] for the model):
//! create, wait until `running`, adopt with `import` (tag), delete and wait until
//! gone, and the kubeconfig of a running cluster.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::cluster::{self, DesiredCluster, DesiredClusterApi};
use super::clusters_api::{KubernetesCluster, NewCluster};
use super::{DigitalOceanProvider, api_error, other};
use preview_core::events::{Event, EventSink};
use preview_core::observe::DryRun;
use preview_core::provider::{ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId};
use preview_core::secret::SecretString;

impl DigitalOceanProvider {
    fn desired_cluster(res: &Resource) -> Result<DesiredCluster, ProviderError> {
        DesiredCluster::from_resource(res).map_err(|m| other(&res.id, m))
    }

    /// The cluster named `name` (names are unique in an account).
    async fn find_cluster(
        &self,
        id: &ResourceId,
        name: &str,
    ) -> Result<Option<KubernetesCluster>, ProviderError> {
        let mut found: Vec<KubernetesCluster> = self
            .client
            .list_clusters()
            .await
            .map_err(|e| api_error(id, "get", e))?
            .into_iter()
            .filter(|c| c.name == name)
            .collect();
        if found.len() > 1 {
            return Err(other(
                id,
                format!(
                    "{} clusters are named {name}; rename or delete the extra ones in DigitalOcean",
                    found.len()
                ),
            ));
        }
        Ok(found.pop())
    }

    pub(super) async fn cluster_read(
        &self,
        id: &ResourceId,
    ) -> Result<Option<Value>, ProviderError> {
        Ok(self
            .find_cluster(id, &id.name)
            .await?
            .map(|c| cluster::live_value(&c, None)))
    }

    pub(super) async fn cluster_dry_run(
        &self,
        res: &Resource,
        force: bool,
    ) -> Result<DryRun, ProviderError> {
        let desired = Self::desired_cluster(res)?;
        let Some(live) = self.find_cluster(&res.id, &desired.name).await? else {
            return Ok(DryRun::Accepted {
                object: Value::Null,
            });
        };
        let owner = cluster::owner_of(&live.tags);
        if owner != Some(desired.owner.as_str()) && !force {
            return Ok(DryRun::Rejected {
                code: 409,
                message: not_owned(&desired.name, &desired.owner, owner),
            });
        }
        let changes = desired.immutable_changes(&live);
        if !changes.is_empty() {
            return Ok(DryRun::Immutable {
                message: format!(
                    "{} cannot change in place ({}); resize or upgrade it through DigitalOcean, then update the configuration",
                    res.id,
                    changes.join("; ")
                ),
            });
        }
        Ok(DryRun::Accepted {
            object: cluster::live_value(&live, Some(&desired.owner)),
        })
    }

    pub(super) async fn cluster_apply(
        &self,
        res: &Resource,
        force: bool,
    ) -> Result<Value, ProviderError> {
        let desired = Self::desired_cluster(res)?;
        let id = &res.id;
        let tag = cluster::owner_tag(&desired.owner);
        let Some(live) = self.find_cluster(id, &desired.name).await? else {
            let created = self
                .client
                .create_cluster(&NewCluster {
                    name: desired.name.clone(),
                    region: desired.region.clone(),
                    version: desired.version.clone(),
                    node_pools: desired.api_node_pools(),
                    tags: vec![tag],
                })
                .await
                .map_err(|e| api_error(id, "apply", e))?;
            return Ok(cluster::live_value(&created, Some(&desired.owner)));
        };
        let owner = cluster::owner_of(&live.tags);
        if owner != Some(desired.owner.as_str()) && !force {
            return Err(other(
                id,
                format!(
                    "{}; refusing to take it over",
                    not_owned(&desired.name, &desired.owner, owner)
                ),
            ));
        }
        let changes = desired.immutable_changes(&live);
        if !changes.is_empty() {
            return Err(other(
                id,
                format!(
                    "cannot change in place: {}; resize or upgrade the cluster through DigitalOcean, then update the configuration",
                    changes.join("; ")
                ),
            ));
        }
        if owner == Some(desired.owner.as_str()) {
            return Ok(cluster::live_value(&live, None));
        }
        // Adopt: our tag replaces any other stack's; the user's tags stay.
        let id_tag = format!("k8s:{}", live.id);
        let mut tags: Vec<String> = live
            .tags
            .iter()
            .filter(|t| !t.starts_with(cluster::OWNER_TAG_PREFIX) && *t != "k8s" && **t != id_tag)
            .cloned()
            .collect();
        tags.push(tag);
        let updated = self
            .client
            .update_cluster(&live.id, &live.name, &tags)
            .await
            .map_err(|e| api_error(id, "apply", e))?;
        Ok(cluster::live_value(&updated, Some(&desired.owner)))
    }

    pub(super) async fn cluster_delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        let Some(live) = self.find_cluster(id, &id.name).await? else {
            return Ok(());
        };
        if cluster::owner_of(&live.tags).is_none() {
            return Err(other(
                id,
                format!(
                    "cluster {} carries no {}<stack> tag; refusing to delete it",
                    live.name,
                    cluster::OWNER_TAG_PREFIX
                ),
            ));
        }
        self.client
            .delete_cluster(&live.id)
            .await
            .map_err(|e| api_error(id, "delete", e))?;
        Ok(())
    }

    pub(super) async fn cluster_wait_ready(
        &self,
        res: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        let id = &res.id;
        let timeout = opts.timeout.max(super::MIN_CLUSTER_WAIT);
        let deadline = Instant::now() + timeout;
        let mut failing_since: Option<Instant> = None;
        let Some(mut current) = self.find_cluster(id, &id.name).await? else {
            return Err(ProviderError::NotReady {
                id: id.clone(),
                message: "the cluster does not exist after it was created".into(),
            });
        };
        loop {
            let state = current.state().to_owned();
            let message = current.status.message.clone().unwrap_or_default();
            match state.as_str() {
                "running" => return Ok(cluster::live_value(&current, None)),
                "error" | "deleted" | "deleting" => {
                    return Err(ProviderError::NotReady {
                        id: id.clone(),
                        message: format!("cluster state {state}: {message}"),
                    });
                }
                "degraded" => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= opts.failure_grace {
                        return Err(ProviderError::NotReady {
                            id: id.clone(),
                            message: format!("cluster degraded: {message}"),
                        });
                    }
                }
                _ => failing_since = None,
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message: format!(
                        "the cluster is still {state} after {} ({message})",
                        humantime::format_duration(timeout)
                    ),
                });
            }
            events.emit(Event::Waiting {
                id: id.clone(),
                reason: format!("cluster {state}"),
                failing: failing_since.is_some(),
            });
            tokio::time::sleep(self.cluster_poll).await;
            current = match self
                .client
                .get_cluster(&current.id)
                .await
                .map_err(|e| api_error(id, "get", e))?
            {
                Some(cluster) => cluster,
                None => {
                    return Err(ProviderError::NotReady {
                        id: id.clone(),
                        message: "the cluster disappeared while provisioning".into(),
                    });
                }
            };
        }
    }

    pub(super) async fn cluster_wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + opts.timeout.max(super::MIN_CLUSTER_WAIT);
        loop {
            let Some(live) = self.find_cluster(id, &id.name).await? else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message: format!("the cluster is still {} after DELETE", live.state()),
                });
            }
            events.emit(Event::Waiting {
                id: id.clone(),
                reason: format!("cluster {}", live.state()),
                failing: false,
            });
            tokio::time::sleep(self.cluster_poll.min(Duration::from_secs(5))).await;
        }
    }

    pub(super) async fn cluster_list_owned(
        &self,
        stack: &str,
        probe: &ResourceId,
    ) -> Result<Vec<ResourceId>, ProviderError> {
        Ok(self
            .client
            .list_clusters()
            .await
            .map_err(|e| api_error(probe, "list", e))?
            .into_iter()
            .filter(|c| cluster::owner_of(&c.tags) == Some(stack))
            .map(|c| cluster::cluster_id(&c.name))
            .collect())
    }

    /// The kubeconfig of the running cluster `name` (a secret: record it sealed,
    /// e.g. as an [`preview_core::state::Output::Secret`]), valid for `expiry` (DigitalOcean's
    /// default, 7 days, when `None`).
    pub async fn cluster_kubeconfig(
        &self,
        name: &str,
        expiry: Option<Duration>,
    ) -> Result<SecretString, ProviderError> {
        let id = cluster::cluster_id(name);
        let live = self
            .find_cluster(&id, name)
            .await?
            .ok_or_else(|| other(&id, format!("cluster {name} does not exist")))?;
        if live.state() != "running" {
            return Err(other(
                &id,
                format!(
                    "cluster {name} is {}; its kubeconfig is available once it is running",
                    live.state()
                ),
            ));
        }
        self.client
            .kubeconfig(&live.id, expiry.map(|e| e.as_secs().max(1)))
            .await
            .map_err(|e| api_error(&id, "get", e))
    }
}

fn not_owned(name: &str, stack: &str, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => {
            format!("cluster {name} exists and is owned by stack {owner}, not by stack {stack}")
        }
        None => format!(
            "cluster {name} exists and carries no {}<stack> tag",
            cluster::OWNER_TAG_PREFIX
        ),
    }
}
