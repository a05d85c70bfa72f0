//! The custom resources the simulator writes status for, and how.
//!
//! Each kind is watched cluster-wide as a `DynamicObject`. Until its CRD is
//! installed the watch fails with 404 and is retried quietly every couple of
//! seconds, so the simulator can start before [`install_crds`](crate::install_crds).

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::status::{is_subset, now, time_string};
use super::{Ctx, certificate, gateway};

/// A custom resource kind the simulator handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomKind {
    GatewayClass,
    Gateway,
    HttpRoute,
    Certificate,
    Issuer,
    ClusterIssuer,
}

impl CustomKind {
    /// Every handled kind.
    pub(crate) const ALL: [CustomKind; 6] = [
        CustomKind::GatewayClass,
        CustomKind::Gateway,
        CustomKind::HttpRoute,
        CustomKind::Certificate,
        CustomKind::Issuer,
        CustomKind::ClusterIssuer,
    ];

    /// Group, version, kind and plural.
    pub(crate) fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            CustomKind::GatewayClass => (gateway::GROUP, "v1", "GatewayClass", "gatewayclasses"),
            CustomKind::Gateway => (gateway::GROUP, "v1", "Gateway", "gateways"),
            CustomKind::HttpRoute => (gateway::GROUP, "v1", "HTTPRoute", "httproutes"),
            CustomKind::Certificate => ("cert-manager.io", "v1", "Certificate", "certificates"),
            CustomKind::Issuer => ("cert-manager.io", "v1", "Issuer", "issuers"),
            CustomKind::ClusterIssuer => {
                ("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers")
            }
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    fn cluster_scoped(self) -> bool {
        matches!(self, CustomKind::GatewayClass | CustomKind::ClusterIssuer)
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
    let ts = now();
    let t = time_string(ts);
    let options = &ctx.options;
    let (desired, ready_certificate) = match kind {
        CustomKind::GatewayClass => {
            match gateway::gateway_class_status(&obj, &options.gateway_controller_name, &t) {
                Some(s) => (s, false),
                None => return,
            }
        }
        CustomKind::Gateway => (
            gateway::gateway_status(&obj, &options.gateway_address, &t),
            false,
        ),
        CustomKind::HttpRoute => (
            gateway::http_route_status(&obj, &options.gateway_controller_name, &t),
            false,
        ),
        CustomKind::Certificate => certificate::certificate_status(&obj, ts),
        CustomKind::Issuer | CustomKind::ClusterIssuer => {
            (certificate::issuer_status(&obj, &t), false)
        }
    };
    let current = obj.data.get("status").cloned().unwrap_or(Value::Null);
    if is_subset(&desired, &current) {
        return;
    }
    if ready_certificate && let Err(e) = ensure_tls_secret(ctx, &obj).await {
        tracing::warn!(certificate = %name, error = %e, "could not create the simulated TLS Secret; will retry");
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

/// Creates the Certificate's `spec.secretName` Secret unless it exists.
async fn ensure_tls_secret(ctx: &Ctx, obj: &DynamicObject) -> Result<(), kube::Error> {
    let (Some(namespace), Some(secret_name)) = (
        obj.metadata.namespace.as_deref(),
        obj.data.pointer("/spec/secretName").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    if secrets.get_opt(secret_name).await?.is_some() {
        return Ok(());
    }
    let secret = certificate::tls_secret(obj, secret_name).await;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
