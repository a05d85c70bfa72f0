//! The resource model: what a stack wants to exist.
//!
//! A [`Resource`] is an identity ([`ResourceId`]), a desired body (a Kubernetes
//! manifest as JSON, or a provider-specific document), explicit dependencies and
//! [`ResourceOptions`]. Components build resources from typed objects with
//! [`Resource::from_typed`]; the engine only ever sees JSON bodies, so every
//! kind (built-in or custom) flows through the same plan/apply path.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Label every object the engine applies carries (`managed-by`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "preview-envs";
/// Label naming the stack that owns an object; orphan detection and adoption checks use it.
pub const STACK_LABEL: &str = "preview-envs.io/stack";
/// Pod-template annotation carrying the content hash of referenced ConfigMaps/Secrets.
pub const CONFIG_HASH_ANNOTATION: &str = "preview-envs.io/config-hash";

/// The name of the provider that reads and writes a resource: one of the
/// built-in providers ([`ProviderName::KUBERNETES`], [`ProviderName::POSTGRES`],
/// [`ProviderName::DIGITALOCEAN`]) or one a program registers with
/// [`crate::engine::Providers::register`]. The set is open: the core knows no
/// provider beyond these names.
///
/// Serialized as the bare name (`"kubernetes"`), as in every state file. The
/// ordering (part of [`ResourceId`]'s, the tie-breaker of every graph order)
/// puts the three built-in providers first, in their historical order
/// (Kubernetes, PostgreSQL, DigitalOcean), then other names alphabetically, so
/// plans keep the order they always had.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ProviderName(Cow<'static, str>);

impl ProviderName {
    /// Kubernetes objects, applied with server-side apply.
    pub const KUBERNETES: ProviderName = ProviderName(Cow::Borrowed("kubernetes"));
    /// PostgreSQL objects (a logical database and its role), over SQL or in-cluster Jobs.
    pub const POSTGRES: ProviderName = ProviderName(Cow::Borrowed("postgres"));
    /// DigitalOcean API objects (DNS records, Kubernetes clusters).
    pub const DIGITALOCEAN: ProviderName = ProviderName(Cow::Borrowed("digitalocean"));

    /// A provider name: 1–63 lowercase ASCII letters, digits and `-`, starting
    /// with a letter (it appears in state files, plans and messages).
    pub fn new(name: impl Into<String>) -> Result<ProviderName, String> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(ProviderName(Cow::Owned(name)))
        } else {
            Err(format!(
                "invalid provider name {name:?}: expected 1-63 lowercase letters, digits and '-', starting with a letter"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Built-in providers first, in their historical order (see the type docs).
    fn rank(&self) -> u8 {
        match self.as_str() {
            "kubernetes" => 0,
            "postgres" => 1,
            "digitalocean" => 2,
            _ => 3,
        }
    }
}

impl Ord for ProviderName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.rank(), self.as_str()).cmp(&(other.rank(), other.as_str()))
    }
}

impl PartialOrd for ProviderName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<'de> Deserialize<'de> for ProviderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ProviderName::new(name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a resource: unique within a stack, stable across runs.
///
/// The derived ordering (provider, apiVersion, kind, namespace, name) is the
/// tie-breaker that makes every graph order deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    /// Provider that owns the resource.
    pub provider: ProviderName,
    /// `apiVersion` (`v1`, `apps/v1`, `gateway.networking.k8s.io/v1`, or a provider's own).
    pub api_version: String,
    /// `kind` (`Deployment`, `Database`, …).
    pub kind: String,
    /// Namespace for namespaced objects; `None` for cluster-scoped ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ResourceId {
    /// A Kubernetes object identity.
    pub fn kubernetes(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ResourceId {
            provider: ProviderName::KUBERNETES,
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// The version part of `apiVersion`.
    pub fn version(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((_, version)) => version,
            None => &self.api_version,
        }
    }

    /// True when this is a Kubernetes object of `kind` in the core or named group.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.provider == ProviderName::KUBERNETES && self.group() == group && self.kind == kind
    }
}

impl fmt::Display for ResourceId {
    /// `Deployment preview-pr-1/web`, `Namespace preview-pr-1`, `postgres Database aphiria_pr_1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.provider != ProviderName::KUBERNETES {
            write!(f, "{} ", self.provider)?;
        }
        f.write_str(&self.kind)?;
        match &self.namespace {
            Some(ns) => write!(f, " {ns}/{}", self.name),
            None => write!(f, " {}", self.name),
        }
    }
}

/// How the engine decides that an applied resource is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "rule")]
pub enum WaitRule {
    /// The per-kind rule from the provider (for Kubernetes: `preview_kubernetes::readiness`).
    #[default]
    Default,
    /// Do not wait: ready as soon as the write is accepted.
    None,
    /// Wait for `status.conditions[type=condition].status == "True"`.
    Condition {
        /// Condition type, e.g. `Ready`.
        condition: String,
    },
}

/// Per-resource options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOptions {
    /// Never delete (destroy and removal from the graph fail instead).
    #[serde(default)]
    pub protect: bool,
    /// Readiness rule.
    #[serde(default)]
    pub wait: WaitRule,
    /// Readiness timeout; `None` = the engine default.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
    /// Extra JSON pointers (RFC 6901) into the body whose values are secret.
    /// A `v1/Secret`'s `/data` and `/stringData` are always secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_paths: Vec<String>,
}

/// One desired resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Identity.
    pub id: ResourceId,
    /// The full desired body (for Kubernetes: `apiVersion`, `kind`, `metadata`, …).
    pub body: Value,
    /// Explicit dependencies; references (namespace, ConfigMaps/Secrets a pod uses…)
    /// are added by [`crate::graph`].
    pub depends_on: BTreeSet<ResourceId>,
    /// Options.
    pub options: ResourceOptions,
}

/// Errors building a [`Resource`].
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The object could not be serialised to JSON.
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        /// What was being serialised.
        what: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A required field is missing from the body.
    #[error("{what}: missing field {field}")]
    MissingField {
        /// The object.
        what: String,
        /// The JSON path of the missing field.
        field: &'static str,
    },
}

impl Resource {
    /// A Kubernetes resource from a JSON manifest (`apiVersion`, `kind`, `metadata.name` required).
    pub fn kubernetes(body: Value) -> Result<Self, ResourceError> {
        let get = |ptr: &'static str| {
            body.pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ResourceError::MissingField {
                    what: "manifest".into(),
                    field: ptr,
                })
        };
        let api_version = get("/apiVersion")?;
        let kind = get("/kind")?;
        let name = get("/metadata/name")?;
        let namespace = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Resource {
            id: ResourceId {
                provider: ProviderName::KUBERNETES,
                api_version,
                kind,
                namespace,
                name,
            },
            body,
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        })
    }

    /// A Kubernetes resource from a typed k8s-openapi object (or any serialisable
    /// struct whose JSON has `apiVersion`, `kind` and `metadata`).
    pub fn from_typed<T: Serialize>(object: &T) -> Result<Self, ResourceError> {
        let body = serde_json::to_value(object).map_err(|source| ResourceError::Serialize {
            what: std::any::type_name::<T>().to_owned(),
            source,
        })?;
        Resource::kubernetes(body)
    }

    /// Adds an explicit dependency.
    pub fn depends_on(mut self, id: &ResourceId) -> Self {
        self.depends_on.insert(id.clone());
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: ResourceOptions) -> Self {
        self.options = options;
        self
    }

    /// True when the value at JSON pointer `path` (or anything under it) is secret.
    pub fn is_secret_path(&self, path: &str) -> bool {
        is_secret_path(&self.id, &self.options.secret_paths, path)
    }
}

/// True when `path` (a JSON pointer into a body of `id`) holds a secret value.
pub fn is_secret_path(id: &ResourceId, extra: &[String], path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    (id.is("", "Secret") && (under("/data") || under("/stringData")))
        || extra.iter().any(|p| under(p))
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_display_is_short_and_readable() {
        let d = ResourceId::kubernetes("apps/v1", "Deployment", Some("preview-pr-1"), "web");
        assert_eq!(d.to_string(), "Deployment preview-pr-1/web");
        let n = ResourceId::kubernetes("v1", "Namespace", None, "preview-pr-1");
        assert_eq!(n.to_string(), "Namespace preview-pr-1");
        assert_eq!(d.group(), "apps");
        assert_eq!(n.group(), "");
        assert_eq!(d.version(), "v1");
    }

    #[test]
    fn manifest_without_name_is_rejected() {
        let err =
            Resource::kubernetes(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}))
                .expect_err("no name");
        assert!(err.to_string().contains("/metadata/name"), "{err}");
    }

    #[test]
    fn secret_data_is_secret() {
        let r = Resource::kubernetes(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "dg=="}}))
        .expect("valid");
        assert!(r.is_secret_path("/data/k"));
        assert!(r.is_secret_path("/data"));
        assert!(!r.is_secret_path("/metadata/name"));
        assert!(!r.is_secret_path("/database"));
    }
}
