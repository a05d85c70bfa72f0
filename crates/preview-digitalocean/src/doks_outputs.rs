//! The outputs of a running DOKS cluster ([`Provider::outputs`]): its id,
//! endpoint and kubeconfig context, and its kubeconfig (a secret: the engine
//! seals it) with the time its token expires.
//!
//! The kubeconfig is fetched again only when the recorded one belongs to
//! another cluster (id or endpoint differ), is missing, or has less than half
//! of its lifetime ([`DigitalOceanProvider::with_kubeconfig_expiry`]) left;
//! otherwise every output is [`ComputedOutput::Kept`], so a no-op `up` sends
//! nothing to DigitalOcean and writes nothing to the state. A cluster that is
//! not running yet (an `up --no-wait`) keeps what was recorded, with a warning.
//!
//! [`Provider::outputs`]: preview_core::provider::Provider::outputs

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::cluster::{DesiredCluster, outputs};
use super::{DigitalOceanProvider, api_error, other};
use preview_core::events::{Event, EventSink};
use preview_core::provider::{ComputedOutput, ProviderError};
use preview_core::resource::Resource;
use preview_core::secret::SecretString;
use preview_core::state::Output;

impl DigitalOceanProvider {
    pub(super) async fn cluster_outputs(
        &self,
        res: &Resource,
        live: &Value,
        recorded: &BTreeMap<String, Output>,
        events: &EventSink,
    ) -> Result<BTreeMap<String, ComputedOutput>, ProviderError> {
        let id = &res.id;
        let text = |pointer: &str| {
            live.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (uid, state, endpoint) = (
            text("/metadata/uid"),
            text("/status/state"),
            text("/status/endpoint"),
        );
        let kept = || {
            outputs::ALL
                .iter()
                .map(|name| ((*name).to_owned(), ComputedOutput::Kept))
                .collect()
        };
        if state != "running" {
            events.emit(Event::Warning {
                id: Some(id.clone()),
                message: format!(
                    "the cluster is {state}: its kubeconfig is recorded by an `up` that finds it running"
                ),
            });
            return Ok(kept());
        }
        if uid.is_empty() {
            return Err(other(id, "the running cluster has no id".into()));
        }
        let expiry = self.kubeconfig_expiry;
        let plain = |name: &str| match recorded.get(name) {
            Some(Output::Plain(Value::String(s))) => Some(s.as_str()),
            _ => None,
        };
        let expires_at =
            plain(outputs::KUBECONFIG_EXPIRES_AT).and_then(|s| humantime::parse_rfc3339(s).ok());
        let fresh = plain(outputs::CLUSTER_ID) == Some(uid.as_str())
            && plain(outputs::ENDPOINT) == Some(endpoint.as_str())
            && matches!(recorded.get(outputs::KUBECONFIG), Some(Output::Secret(_)))
            && expires_at
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .is_some_and(|left| left > expiry / 2);
        if fresh {
            return Ok(kept());
        }
        let cluster = DesiredCluster::from_resource(res).map_err(|m| other(id, m))?;
        let fetched_at = SystemTime::now();
        let kubeconfig = self
            .client
            .kubeconfig(&uid, Some(expiry.as_secs().max(1)))
            .await
            .map_err(|e| api_error(id, "get", e))?;
        let context = current_context(&kubeconfig)
            .unwrap_or_else(|| format!("do-{}-{}", cluster.region, cluster.name));
        let expires = humantime::format_rfc3339_seconds(fetched_at + expiry).to_string();
        let plain = |value: String| ComputedOutput::Plain(Value::String(value));
        Ok(BTreeMap::from([
            (outputs::CLUSTER_ID.to_owned(), plain(uid)),
            (outputs::ENDPOINT.to_owned(), plain(endpoint)),
            (outputs::KUBE_CONTEXT.to_owned(), plain(context)),
            (
                outputs::KUBECONFIG.to_owned(),
                ComputedOutput::Secret(kubeconfig),
            ),
            (outputs::KUBECONFIG_EXPIRES_AT.to_owned(), plain(expires)),
        ]))
    }
}

/// The kubeconfig's `current-context` (errors never quote the document).
fn current_context(kubeconfig: &SecretString) -> Option<String> {
    let doc: Value = serde_yaml_ng::from_str(kubeconfig.expose()).ok()?;
    doc.get("current-context")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
