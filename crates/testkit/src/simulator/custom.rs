//! The custom resources the simulator writes status for, and how: the Gateway
//! API objects only. cert-manager objects are left to the real cert-manager
//! controller ([`TestCluster::cert_manager`](crate::TestCluster::cert_manager)).
//!
//! Each kind is watched cluster-wide as a `DynamicObject`. Until its CRD is
//! installed the watch fails with 404 and is retried quietly every couple of
//! seconds, so the simulator can start before [`install_crds`](crate::install_crds).

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::status::{is_subset, now, time_string};
use super::{Ctx, gateway};

/// A custom resource kind the simulator handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomKind {
    GatewayClass,
    Gateway,
    HttpRoute,
}

impl CustomKind {
    /// Every handled kind.
    pub(crate) const ALL: [CustomKind; 3] = [
        CustomKind::GatewayClass,
        CustomKind::Gateway,
        CustomKind::HttpRoute,
    ];

    /// Group, version, kind and plural.
    pub(crate) fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            CustomKind::GatewayClass => (gateway::GROUP, "v1", "GatewayClass", "gatewayclasses"),
            CustomKind::Gateway => (gateway::GROUP, "v1", "Gateway", "gateways"),
            CustomKind::HttpRoute => (gateway::GROUP, "v1", "HTTPRoute", "httproutes"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    fn cluster_scoped(self) -> bool {
        matches!(self, CustomKind::GatewayClass)
    }
}

/// Writes the status for one object if it does not say so already.
pub(crate) async fn handle(ctx: &Ctx, kind: CustomKind, obj: DynamicObject) {
    if obj.metadata.deletion_timestamp.is_some() {
        return;
    }
    let Some(name) = obj.metadata.name.clone() else {
        return;
    };
    let namespace = obj.metadata.namespace.clone();
    let t = time_string(now());
    let options = &ctx.options;
    let desired = match kind {
        CustomKind::GatewayClass => {
            match gateway::gateway_class_status(&obj, &options.gateway_controller_name, &t) {
                Some(s) => s,
                None => return,
            }
        }
        CustomKind::Gateway => gateway::gateway_status(&obj, &options.gateway_address, &t),
        CustomKind::HttpRoute => {
            gateway::http_route_status(&obj, &options.gateway_controller_name, &t)
        }
    };
    let current = obj.data.get("status").cloned().unwrap_or(Value::Null);
    if is_subset(&desired, &current) {
        return;
    }
    let resource = kind.resource();
    let api: Api<DynamicObject> = match (&namespace, kind.cluster_scoped()) {
        (Some(ns), false) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        _ => Api::all_with(ctx.client.clone(), &resource),
    };
    let patch = json!({ "status": desired });
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::debug!(kind = %resource.kind, name, "simulated status written"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(kind = %resource.kind, name, error = %e, "could not write simulated status")
        }
    }
}
