//! Maps `apiVersion` + `kind` to the REST resource (plural, scope).
//!
//! Kinds this product uses are in a built-in table, so planning needs no
//! discovery round trips; anything else costs one discovery request per
//! group-version, cached for the life of the provider.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::core::discovery::{ApiResource, Scope};
use kube::core::gvk::GroupVersionKind;

use preview_core::provider::ProviderError;
use preview_core::resource::ResourceId;

/// A resolved kind.
#[derive(Clone, Debug)]
pub struct Kind {
    /// REST description.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

/// (group, kind, plural, namespaced) for the kinds the product uses.
const KNOWN: &[(&str, &str, &str, bool)] = &[
    ("", "Namespace", "namespaces", false),
    ("", "ConfigMap", "configmaps", true),
    ("", "Secret", "secrets", true),
    ("", "Service", "services", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "ResourceQuota", "resourcequotas", true),
    ("", "LimitRange", "limitranges", true),
    ("", "Pod", "pods", true),
    ("", "Endpoints", "endpoints", true),
    ("", "Event", "events", true),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("coordination.k8s.io", "Lease", "leases", true),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
    ),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "GatewayClass",
        "gatewayclasses",
        false,
    ),
    ("gateway.networking.k8s.io", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    ("gateway.networking.k8s.io", "GRPCRoute", "grpcroutes", true),
    (
        "gateway.networking.k8s.io",
        "ReferenceGrant",
        "referencegrants",
        true,
    ),
    ("cert-manager.io", "Certificate", "certificates", true),
    (
        "cert-manager.io",
        "CertificateRequest",
        "certificaterequests",
        true,
    ),
    ("cert-manager.io", "Issuer", "issuers", true),
    ("cert-manager.io", "ClusterIssuer", "clusterissuers", false),
    (
        "gateway.nginx.org",
        "ClientSettingsPolicy",
        "clientsettingspolicies",
        true,
    ),
    ("gateway.nginx.org", "NginxProxy", "nginxproxies", true),
    ("gateway.nginx.org", "NginxGateway", "nginxgateways", true),
    (
        "gateway.nginx.org",
        "ObservabilityPolicy",
        "observabilitypolicies",
        true,
    ),
    (
        "gateway.nginx.org",
        "SnippetsFilter",
        "snippetsfilters",
        true,
    ),
    (
        "gateway.nginx.org",
        "UpstreamSettingsPolicy",
        "upstreamsettingspolicies",
        true,
    ),
    (
        "gateway.nginx.org",
        "RateLimitPolicy",
        "ratelimitpolicies",
        true,
    ),
    (
        "gateway.nginx.org",
        "SnippetsPolicy",
        "snippetspolicies",
        true,
    ),
];

/// Resolved kinds, including discovered ones.
#[derive(Debug, Default)]
pub struct KindCache {
    discovered: Mutex<HashMap<(String, String), Kind>>,
}

fn api_resource(id: &ResourceId, plural: &str) -> ApiResource {
    ApiResource {
        group: id.group().to_owned(),
        version: id.version().to_owned(),
        api_version: id.api_version.clone(),
        kind: id.kind.clone(),
        plural: plural.to_owned(),
    }
}

/// The built-in entry for an id, if any.
pub fn known(id: &ResourceId) -> Option<Kind> {
    KNOWN
        .iter()
        .find(|(group, kind, _, _)| *group == id.group() && *kind == id.kind)
        .map(|(_, _, plural, namespaced)| Kind {
            resource: api_resource(id, plural),
            namespaced: *namespaced,
        })
}

impl KindCache {
    /// Resolves an id's kind: built-in table, cache, then one discovery request.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        id: &ResourceId,
    ) -> Result<Kind, ProviderError> {
        if let Some(kind) = known(id) {
            return Ok(kind);
        }
        let key = (id.api_version.clone(), id.kind.clone());
        if let Some(kind) = self.lock().get(&key) {
            return Ok(kind.clone());
        }
        let gvk = GroupVersionKind::gvk(id.group(), id.version(), &id.kind);
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| {
            ProviderError::Other {
                id: id.clone(),
                message: format!(
                    "the API server does not serve {} {}: {e} (is its CustomResourceDefinition installed?)",
                    id.api_version, id.kind
                ),
            }
        })?;
        let kind = Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.lock().insert(key, kind.clone());
        Ok(kind)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Kind>> {
        self.discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A dynamic API handle for the id's kind and namespace.
pub fn api_for(
    client: &kube::Client,
    kind: &Kind,
    id: &ResourceId,
) -> Result<kube::Api<kube::core::DynamicObject>, ProviderError> {
    match (&id.namespace, kind.namespaced) {
        (Some(ns), true) => Ok(kube::Api::namespaced_with(
            client.clone(),
            ns,
            &kind.resource,
        )),
        (None, false) => Ok(kube::Api::all_with(client.clone(), &kind.resource)),
        (None, true) => Err(ProviderError::Other {
            id: id.clone(),
            message: format!("{} is namespaced: set metadata.namespace", id.kind),
        }),
        (Some(_), false) => Err(ProviderError::Other {
            id: id.clone(),
            message: format!("{} is cluster-scoped: remove metadata.namespace", id.kind),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_resolve_without_discovery() {
        let id =
            ResourceId::kubernetes("gateway.networking.k8s.io/v1", "HTTPRoute", Some("a"), "r");
        let kind = known(&id).expect("known");
        assert_eq!(kind.resource.plural, "httproutes");
        assert!(kind.namespaced);
        let ns = ResourceId::kubernetes("v1", "Namespace", None, "a");
        assert!(!known(&ns).expect("known").namespaced);
        assert!(
            known(&ResourceId::kubernetes(
                "example.com/v1",
                "Widget",
                None,
                "w"
            ))
            .is_none()
        );
    }
}
