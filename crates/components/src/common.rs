//! Shared building blocks for every component.
//!
//! - [`Labels`]: the `app.kubernetes.io/*` labels; every component adds its own
//!   `name` and `component` to the labels the stack passes in (`part-of`,
//!   `instance`, …). Selectors use only [`NAME_LABEL`], which is unique per workload
//!   within a namespace and never changes (Deployment selectors are immutable).
//! - [`ComputeResources`]: optional requests/limits for a container. Components
//!   never invent sizes; the stack decides (a namespace with a ResourceQuota needs
//!   them on every container, which the engine's static checks enforce).
//! - [`ImagePullPolicy`]: `IfNotPresent` by default (images are pinned by digest,
//!   so a cached copy is the right copy); `Never`/`IfNotPresent` for local images.
//! - Port helpers that always set the list-map keys (`protocol: TCP`, `name`):
//!   the v1.20 API server's server-side apply rejects list entries that omit a key.
//! - [`config_fingerprint`]: a short content hash of ConfigMaps/Secrets, for names
//!   that must change when configuration changes (the migration Job).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerPort, HTTPGetAction, LocalObjectReference, Probe, ResourceRequirements, ServicePort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;
use preview_core::diff::canonical_json;
use preview_core::secret::SecretString;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ComponentError;

/// `app.kubernetes.io/name`: what the object is (`web`, `api`, `postgresql`).
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component`: its role (`frontend`, `backend`, `database`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/part-of`: the application (`aphiria`).
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/instance`: the environment instance (`preview-pr-123`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// A set of labels. Keys are sorted, so rendering is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Labels::default()
    }

    /// `app.kubernetes.io/part-of` and `app.kubernetes.io/instance`, the labels a
    /// stack usually passes to every component.
    pub fn for_instance(part_of: impl Into<String>, instance: impl Into<String>) -> Self {
        Labels::new()
            .with(PART_OF_LABEL, part_of)
            .with(INSTANCE_LABEL, instance)
    }

    /// Adds (or replaces) one label.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The value of a label.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// These labels plus `app.kubernetes.io/name` and `app.kubernetes.io/component`
    /// (which win over same-named labels passed in).
    pub fn component(&self, name: &str, component: &str) -> Labels {
        self.clone()
            .with(NAME_LABEL, name)
            .with(COMPONENT_LABEL, component)
    }

    /// The labels as a map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.clone()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Labels(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The selector labels of a workload named `name`.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), name.to_owned())])
}

/// A `matchLabels` selector.
pub(crate) fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// CPU, memory and ephemeral-storage quantities (Kubernetes notation: `250m`,
/// `1`, `256Mi`, `4Gi`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuMemory {
    /// CPU, e.g. `250m`.
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi`.
    pub memory: Option<String>,
    /// Ephemeral storage (container writable layer, logs, `emptyDir`), e.g. `1Gi`.
    pub ephemeral_storage: Option<String>,
}

impl CpuMemory {
    fn to_map(&self) -> Option<BTreeMap<String, Quantity>> {
        let map: BTreeMap<String, Quantity> = [
            ("cpu", &self.cpu),
            ("ephemeral-storage", &self.ephemeral_storage),
            ("memory", &self.memory),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), Quantity(v.clone()))))
        .collect();
        (!map.is_empty()).then_some(map)
    }
}

/// Optional requests and limits of one container. Every workload component takes
/// `Option<ComputeResources>` per container; `None` renders no `resources` at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputeResources {
    /// `resources.requests`.
    pub requests: CpuMemory,
    /// `resources.limits`.
    pub limits: CpuMemory,
}

impl ComputeResources {
    /// Requests and limits, all four set.
    pub fn new(
        request_cpu: impl Into<String>,
        request_memory: impl Into<String>,
        limit_cpu: impl Into<String>,
        limit_memory: impl Into<String>,
    ) -> Self {
        ComputeResources {
            requests: CpuMemory {
                cpu: Some(request_cpu.into()),
                memory: Some(request_memory.into()),
                ephemeral_storage: None,
            },
            limits: CpuMemory {
                cpu: Some(limit_cpu.into()),
                memory: Some(limit_memory.into()),
                ephemeral_storage: None,
            },
        }
    }

    /// These requests and limits plus an ephemeral-storage request and limit.
    pub fn with_ephemeral_storage(
        mut self,
        request: impl Into<String>,
        limit: impl Into<String>,
    ) -> Self {
        self.requests.ephemeral_storage = Some(request.into());
        self.limits.ephemeral_storage = Some(limit.into());
        self
    }

    /// The Kubernetes `ResourceRequirements` (`None` when nothing is set).
    pub fn to_k8s(&self) -> Option<ResourceRequirements> {
        let requests = self.requests.to_map();
        let limits = self.limits.to_map();
        if requests.is_none() && limits.is_none() {
            return None;
        }
        Some(ResourceRequirements {
            requests,
            limits,
            ..ResourceRequirements::default()
        })
    }
}

/// `resources` of a container from an optional parameter.
pub(crate) fn requirements(resources: Option<&ComputeResources>) -> Option<ResourceRequirements> {
    resources.and_then(ComputeResources::to_k8s)
}

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull every time a container starts.
    Always,
    /// Pull only when the image is not on the node (the default: images are
    /// pinned by digest, and locally built images are found on the node).
    #[default]
    IfNotPresent,
    /// Never pull (the image must already be on the node).
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }

    pub(crate) fn to_k8s(self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

/// `metadata` with a name, an optional namespace and labels.
pub(crate) fn meta(name: &str, namespace: Option<&str>, labels: &Labels) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: (!labels.is_empty()).then(|| labels.to_map()),
        ..ObjectMeta::default()
    }
}

/// Pod-template metadata: labels only.
pub(crate) fn template_meta(labels: &Labels) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels.to_map()),
        ..ObjectMeta::default()
    }
}

/// A named TCP container port (`protocol` set explicitly: it is a list-map key).
pub(crate) fn tcp_container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// A named TCP service port targeting a named container port.
pub(crate) fn tcp_service_port(name: &str, port: u16, target_port: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        target_port: Some(IntOrString::String(target_port.to_owned())),
        ..ServicePort::default()
    }
}

/// An HTTP GET probe on a named port.
pub(crate) fn http_probe(path: &str, port: &str, initial_delay: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

/// `imagePullSecrets` from names (`None` when empty).
pub(crate) fn pull_secrets(names: &[String]) -> Option<Vec<LocalObjectReference>> {
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// A typed object as a [`Resource`].
pub(crate) fn to_resource<T: Serialize>(object: &T) -> Result<Resource, ComponentError> {
    Ok(Resource::from_typed(object)?)
}

/// The first `len` hex characters of the SHA-256 of `bytes`.
pub(crate) fn short_hash(bytes: &[u8], len: usize) -> String {
    let mut hex = hex::encode(Sha256::digest(bytes));
    hex.truncate(len);
    hex
}

/// A short (16 hex characters) fingerprint of the content (`data`, `binaryData`,
/// `stringData`) of the given ConfigMaps/Secrets, independent of their order.
///
/// Use it where a name must change whenever configuration changes (see
/// [`crate::migration::MigrationJob::config_fingerprint`]). The input includes
/// secret values, but only a truncated SHA-256 of them comes out.
pub fn config_fingerprint(resources: &[&Resource]) -> String {
    let mut parts: Vec<String> = resources
        .iter()
        .map(|resource| {
            let mut content = Map::new();
            for field in ["data", "binaryData", "stringData"] {
                if let Some(value) = resource.body.get(field) {
                    content.insert(field.to_owned(), value.clone());
                }
            }
            format!(
                "{}\n{}",
                resource.id,
                canonical_json(&Value::Object(content))
            )
        })
        .collect();
    parts.sort();
    short_hash(parts.join("\n").as_bytes(), 16)
}

/// Checks a DNS-1123 label (lowercase alphanumerics and `-`, at most 63
/// characters, starting and ending alphanumeric).
pub(crate) fn check_dns_label(what: &'static str, value: &str) -> Result<(), ComponentError> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = value
        .bytes()
        .next()
        .zip(value.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if value.is_empty() || value.len() > 63 || !ok_chars || !ok_ends {
        return Err(ComponentError::invalid(
            what,
            value,
            "must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks that `value` (an image, a command) is not empty or blank; the error shows
/// no value.
pub(crate) fn check_not_blank(what: &'static str, value: &str) -> Result<(), ComponentError> {
    if value.trim().is_empty() {
        return Err(ComponentError::invalid(what, "", "must not be empty"));
    }
    Ok(())
}

/// Checks that `value` (a host, an owner) is not empty or blank; the error shows
/// the value and says `reason`.
pub(crate) fn check_present(
    what: &'static str,
    value: &str,
    reason: &'static str,
) -> Result<(), ComponentError> {
    if value.trim().is_empty() {
        return Err(ComponentError::invalid(what, value, reason));
    }
    Ok(())
}

/// Checks that a secret (a password, a token) is set; the error shows no value.
pub(crate) fn check_secret_set(
    what: &'static str,
    secret: &SecretString,
) -> Result<(), ComponentError> {
    if secret.is_empty() {
        return Err(ComponentError::invalid(
            what,
            "[secret]",
            "must not be empty",
        ));
    }
    Ok(())
}

/// Checks that a count (replicas, a backoff limit) is not negative.
pub(crate) fn check_not_negative(what: &'static str, value: i32) -> Result<(), ComponentError> {
    if value < 0 {
        return Err(ComponentError::invalid(
            what,
            value.to_string(),
            "must not be negative",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn component_labels_win_over_passed_labels() {
        let labels = Labels::for_instance("aphiria", "preview-pr-123").with(NAME_LABEL, "other");
        let merged = labels.component("web", "frontend");
        assert_eq!(merged.get(NAME_LABEL), Some("web"));
        assert_eq!(merged.get(COMPONENT_LABEL), Some("frontend"));
        assert_eq!(merged.get(PART_OF_LABEL), Some("aphiria"));
        assert_eq!(merged.get(INSTANCE_LABEL), Some("preview-pr-123"));
    }

    #[test]
    fn empty_compute_resources_render_nothing() {
        assert_eq!(ComputeResources::default().to_k8s(), None);
        let only_requests = ComputeResources {
            requests: CpuMemory {
                cpu: Some("100m".into()),
                ..CpuMemory::default()
            },
            ..ComputeResources::default()
        };
        let k8s = only_requests.to_k8s().expect("some");
        assert_eq!(k8s.limits, None);
        assert_eq!(
            k8s.requests,
            Some(BTreeMap::from([(
                "cpu".to_owned(),
                Quantity("100m".into())
            )]))
        );
    }

    #[test]
    fn fingerprint_follows_content_not_order() {
        let cm = |v: &str| {
            Resource::kubernetes(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "labels": {"x": v}}, "data": {"K": v}}))
            .expect("valid")
        };
        let secret = Resource::kubernetes(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "data": {"P": "cA=="}}))
        .expect("valid");
        let a = cm("1");
        let b = cm("2");
        assert_eq!(
            config_fingerprint(&[&a, &secret]),
            config_fingerprint(&[&secret, &a])
        );
        assert_ne!(
            config_fingerprint(&[&a, &secret]),
            config_fingerprint(&[&b, &secret])
        );
        assert_eq!(config_fingerprint(&[&a]).len(), 16);
    }

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("name", "preview-pr-123").is_ok());
        for bad in ["", "-a", "a-", "Upper", "a_b", &"a".repeat(64)] {
            assert!(check_dns_label("name", bad).is_err(), "{bad}");
        }
    }
}
