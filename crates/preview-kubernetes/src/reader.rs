//! Reads: GET, LIST and server-side dry-run applies. Nothing here changes the cluster.

use futures::future::try_join_all;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::Value;

use super::errors::{api_error, dry_run_outcome};
use super::kinds::api_for;
use super::{FIELD_MANAGER, KubeProvider};
use preview_core::observe::DryRun;
use preview_core::provider::ProviderError;
use preview_core::resource::{Resource, ResourceId, STACK_LABEL};

fn to_value(id: &ResourceId, obj: &kube::core::DynamicObject) -> Result<Value, ProviderError> {
    serde_json::to_value(obj).map_err(|e| ProviderError::failed(id, "cannot encode object", e))
}

/// The live object, or `None` when it does not exist.
pub async fn get(p: &KubeProvider, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    match api.get_opt(&id.name).await {
        Ok(Some(obj)) => to_value(id, &obj).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(api_error(id, "get", e)),
    }
}

/// A server-side dry-run apply of the desired body.
pub async fn dry_run_apply(
    p: &KubeProvider,
    res: &Resource,
    force: bool,
) -> Result<DryRun, ProviderError> {
    let id = &res.id;
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    let mut params = PatchParams::apply(FIELD_MANAGER).dry_run();
    params.force = force;
    match api.patch(&id.name, &params, &Patch::Apply(&res.body)).await {
        Ok(obj) => Ok(DryRun::Accepted {
            object: to_value(id, &obj)?,
        }),
        Err(e) => dry_run_outcome(id, e),
    }
}

/// Lists objects of `kind_of`'s kind in its namespace matching a label selector.
pub async fn list(
    p: &KubeProvider,
    kind_of: &ResourceId,
    label_selector: &str,
) -> Result<Vec<Value>, ProviderError> {
    list_with(p, kind_of, &ListParams::default().labels(label_selector)).await
}

/// The Events about one object (newest last), for readiness messages.
pub async fn events_about(p: &KubeProvider, id: &ResourceId) -> Result<Vec<Value>, ProviderError> {
    let events = ResourceId::kubernetes("v1", "Event", id.namespace.as_deref(), "");
    let fields = format!(
        "involvedObject.name={},involvedObject.kind={}",
        id.name, id.kind
    );
    list_with(p, &events, &ListParams::default().fields(&fields)).await
}

/// The Warning Events in namespace `ns` (about a workload, its ReplicaSets and
/// pods: quota rejections, image pulls, probes), for readiness messages.
pub async fn warning_events_in(p: &KubeProvider, ns: &str) -> Result<Vec<Value>, ProviderError> {
    let events = ResourceId::kubernetes("v1", "Event", Some(ns), "");
    list_with(p, &events, &ListParams::default().fields("type=Warning")).await
}

async fn list_with(
    p: &KubeProvider,
    kind_of: &ResourceId,
    params: &ListParams,
) -> Result<Vec<Value>, ProviderError> {
    let kind = p.kinds.resolve(&p.client, kind_of).await?;
    let api = api_for(&p.client, &kind, kind_of)?;
    let list = api
        .list(params)
        .await
        .map_err(|e| api_error(kind_of, "list", e))?;
    list.items.iter().map(|o| to_value(kind_of, o)).collect()
}

/// The label selector of [`list_owned`]: the stack's objects, without the
/// `kubernetes://` state backend's own Secrets (the main state Secret and its
/// chunks carry the stack's label too, and a `preview-pr` stack records Secrets:
/// its state is not residue of its destroy).
pub fn owned_selector(stack: &str) -> String {
    format!("{STACK_LABEL}={stack},!{}", crate::state::LABEL_PART)
}

/// Every object of the given kinds (cluster-wide) that carries this stack's
/// label, except the stack's state objects ([`owned_selector`]).
pub async fn list_owned(
    p: &KubeProvider,
    stack: &str,
    kinds: &[ResourceId],
) -> Result<Vec<ResourceId>, ProviderError> {
    let selector = owned_selector(stack);
    let mut seen = std::collections::BTreeSet::new();
    let kinds: Vec<&ResourceId> = kinds
        .iter()
        .filter(|id| seen.insert((id.api_version.clone(), id.kind.clone())))
        .collect();
    let found = try_join_all(kinds.into_iter().map(|id| {
        let selector = selector.clone();
        async move {
            let kind = p.kinds.resolve(&p.client, id).await?;
            let api: kube::Api<kube::core::DynamicObject> =
                kube::Api::all_with(p.client.clone(), &kind.resource);
            let list = api
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| api_error(id, "list", e))?;
            Ok::<_, ProviderError>(
                list.items
                    .into_iter()
                    .filter_map(|o| {
                        Some(ResourceId::kubernetes(
                            id.api_version.clone(),
                            id.kind.clone(),
                            o.metadata.namespace.as_deref(),
                            o.metadata.name?,
                        ))
                    })
                    .collect::<Vec<_>>(),
            )
        }
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The objects in `namespace` carrying `stack`'s label that are being deleted
/// and held by finalizers, of every namespaced kind the API server serves (one
/// aggregated discovery, then one LIST per kind): the content that keeps a
/// namespace of the stack Terminating. Kinds that cannot be listed are skipped.
pub async fn held_content(
    p: &KubeProvider,
    namespace: &str,
    stack: &str,
) -> Result<Vec<ResourceId>, ProviderError> {
    use kube::discovery::{Discovery, Scope, verbs};
    let ns_id = ResourceId::kubernetes("v1", "Namespace", None, namespace);
    let discovery = Discovery::new(p.client.clone())
        .run_aggregated()
        .await
        .map_err(|e| api_error(&ns_id, "discover kinds in", e))?;
    let kinds: Vec<kube::discovery::ApiResource> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| caps.scope == Scope::Namespaced && caps.supports_operation(verbs::LIST))
        .map(|(ar, _)| ar)
        .collect();
    let selector = owned_selector(stack);
    let found = futures::future::join_all(kinds.iter().map(|ar| {
        let selector = selector.clone();
        async move {
            let api: kube::Api<kube::core::DynamicObject> =
                kube::Api::namespaced_with(p.client.clone(), namespace, ar);
            let Ok(list) = api
                .list_metadata(&ListParams::default().labels(&selector))
                .await
            else {
                return Vec::new();
            };
            list.items
                .into_iter()
                .filter(|o| {
                    o.metadata.deletion_timestamp.is_some()
                        && o.metadata
                            .finalizers
                            .as_ref()
                            .is_some_and(|f| !f.is_empty())
                })
                .filter_map(|o| {
                    Some(ResourceId::kubernetes(
                        ar.api_version.clone(),
                        ar.kind.clone(),
                        Some(namespace),
                        o.metadata.name?,
                    ))
                })
                .collect::<Vec<_>>()
        }
    }))
    .await;
    Ok(found.into_iter().flatten().collect())
}
