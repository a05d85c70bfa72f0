//! A manifest bundle: upstream install YAML (CRDs, controllers) pinned by SHA-256,
//! split into resources for the engine.
//!
//! [`ManifestBundle::build`]
//! 1. verifies the SHA-256 of the bytes against the pinned digest (64 lowercase hex
//!    characters, optionally prefixed `sha256:`), failing with
//!    [`ComponentError::DigestMismatch`] naming both digests;
//! 2. splits the multi-document YAML, skipping empty documents and expanding
//!    `kind: List`;
//! 3. requires `apiVersion`, `kind` and `metadata.name` of every object (errors name
//!    the document's index);
//! 4. drops `status` and `metadata.creationTimestamp` (generated CRDs carry
//!    `creationTimestamp: null` and `status:` stubs; they are server-owned, and
//!    keeping them would show a difference on every plan);
//! 5. puts namespaced objects into [`ManifestBundle::namespace`] when set
//!    (overriding theirs), else into their own namespace, else into `default`
//!    (what `kubectl apply` does). Cluster-scoped kinds are not overridden (a stray
//!    `metadata.namespace` on one is dropped, since the API server ignores it): the
//!    built-in list [`CLUSTER_SCOPED_KINDS`], plus every kind a
//!    `CustomResourceDefinition` of the same bundle declares with `scope: Cluster`,
//!    plus [`ManifestBundle::extra_cluster_scoped`]. Only `metadata.namespace` is
//!    rewritten; references inside objects (ClusterRoleBinding subjects, webhook
//!    service references) keep the namespace the file names, so override only
//!    bundles that do not refer to their own namespace that way.
//!
//! Resources come back in file order. Fetching the bytes from a URL is the
//! caller's job (the digest makes the source irrelevant); [`ManifestBundle::from_file`]
//! reads a local file.

use std::collections::BTreeSet;
use std::path::Path;

use preview_core::Resource;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ComponentError;

/// Built-in cluster-scoped kinds, as `(group, kind)` (`""` = core group).
pub const CLUSTER_SCOPED_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("policy", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("gateway.networking.k8s.io", "GatewayClass"),
    ("cert-manager.io", "ClusterIssuer"),
];

/// Upstream manifests pinned by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBundle {
    /// A short name for messages, e.g. `cert-manager-v1.20.3`.
    pub name: String,
    /// The YAML bytes.
    pub bytes: Vec<u8>,
    /// The pinned SHA-256 (64 lowercase hex, optionally `sha256:`-prefixed).
    pub sha256: String,
    /// Namespace for every namespaced object (default none: keep the file's).
    pub namespace: Option<String>,
    /// Further cluster-scoped kinds as `(group, kind)` (default none).
    pub extra_cluster_scoped: Vec<(String, String)>,
}

impl ManifestBundle {
    /// A bundle from bytes.
    pub fn from_bytes(
        name: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
        sha256: impl Into<String>,
    ) -> Self {
        ManifestBundle {
            name: name.into(),
            bytes: bytes.into(),
            sha256: sha256.into(),
            namespace: None,
            extra_cluster_scoped: Vec::new(),
        }
    }

    /// A bundle from a local file (read now; everything else stays pure).
    pub fn from_file(
        name: impl Into<String>,
        path: impl AsRef<Path>,
        sha256: impl Into<String>,
    ) -> Result<Self, ComponentError> {
        let name = name.into();
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ComponentError::Read {
            bundle: name.clone(),
            path: path.to_owned(),
            source,
        })?;
        Ok(ManifestBundle::from_bytes(name, bytes, sha256))
    }

    /// Puts every namespaced object into `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Checks the digest of the bytes.
    pub fn verify(&self) -> Result<(), ComponentError> {
        let expected = self.sha256.strip_prefix("sha256:").unwrap_or(&self.sha256);
        let well_formed = expected.len() == 64
            && expected
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(ComponentError::invalid(
                "bundle sha256",
                self.sha256.as_str(),
                format!("bundle {}: must be 64 lowercase hex characters", self.name),
            ));
        }
        let actual = hex::encode(Sha256::digest(&self.bytes));
        if actual != expected {
            return Err(ComponentError::DigestMismatch {
                bundle: self.name.clone(),
                expected: expected.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// Verifies the digest and renders the resources in file order.
    pub fn build(&self) -> Result<Vec<Resource>, ComponentError> {
        self.verify()?;
        if let Some(ns) = &self.namespace {
            crate::common::check_dns_label("bundle namespace", ns)?;
        }
        let documents = self.documents()?;
        let mut cluster_scoped: BTreeSet<(String, String)> = CLUSTER_SCOPED_KINDS
            .iter()
            .map(|(g, k)| ((*g).to_owned(), (*k).to_owned()))
            .chain(self.extra_cluster_scoped.iter().cloned())
            .collect();
        for (_, doc) in &documents {
            if let Some(kind) = cluster_scoped_crd(doc) {
                cluster_scoped.insert(kind);
            }
        }
        documents
            .into_iter()
            .map(|(index, mut doc)| {
                let manifest = |reason: String| ComponentError::Manifest {
                    bundle: self.name.clone(),
                    index,
                    reason,
                };
                let api_version = str_at(&doc, "/apiVersion")
                    .ok_or_else(|| manifest("missing apiVersion".into()))?;
                let kind = str_at(&doc, "/kind")
                    .ok_or_else(|| manifest("missing kind".into()))?
                    .to_owned();
                let group = api_version
                    .split_once('/')
                    .map_or("", |(g, _)| g)
                    .to_owned();
                let key = (group, kind.clone());
                let Some(object) = doc.as_object_mut() else {
                    return Err(manifest("not a mapping".into()));
                };
                object.remove("status");
                let metadata = object
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| manifest(format!("{kind}: missing metadata")))?;
                metadata.remove("creationTimestamp");
                if cluster_scoped.contains(&key) {
                    metadata.remove("namespace");
                } else {
                    let current = metadata
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default");
                    let ns = self.namespace.as_deref().unwrap_or(current).to_owned();
                    metadata.insert("namespace".to_owned(), Value::from(ns));
                }
                Resource::kubernetes(doc).map_err(|e| manifest(e.to_string()))
            })
            .collect()
    }

    /// The non-empty documents with their index in the file; `List`s expanded.
    fn documents(&self) -> Result<Vec<(usize, Value)>, ComponentError> {
        let mut out = Vec::new();
        for (index, document) in serde_yaml_ng::Deserializer::from_slice(&self.bytes).enumerate() {
            let value = Value::deserialize(document).map_err(|source| ComponentError::Yaml {
                bundle: self.name.clone(),
                index,
                source,
            })?;
            match value {
                Value::Null => {}
                Value::Object(ref map)
                    if map.get("kind").and_then(Value::as_str) == Some("List")
                        && map.get("apiVersion").and_then(Value::as_str) == Some("v1") =>
                {
                    let items = map
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    out.extend(items.into_iter().map(|item| (index, item)));
                }
                Value::Object(_) => out.push((index, value)),
                _ => {
                    return Err(ComponentError::Manifest {
                        bundle: self.name.clone(),
                        index,
                        reason: "not a mapping".into(),
                    });
                }
            }
        }
        Ok(out)
    }
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// `(group, kind)` of a CRD with `scope: Cluster`.
fn cluster_scoped_crd(doc: &Value) -> Option<(String, String)> {
    let is_crd = str_at(doc, "/kind") == Some("CustomResourceDefinition")
        && str_at(doc, "/apiVersion").is_some_and(|v| v.starts_with("apiextensions.k8s.io/"));
    if !is_crd || str_at(doc, "/spec/scope") != Some("Cluster") {
        return None;
    }
    Some((
        str_at(doc, "/spec/group")?.to_owned(),
        str_at(doc, "/spec/names/kind")?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"# An upstream install file
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
  creationTimestamp: null
spec:
  group: example.io
  scope: Cluster
  names: {kind: Widget, plural: widgets}
status:
  acceptedNames: {kind: "", plural: ""}
---
apiVersion: v1
kind: Namespace
metadata:
  name: example-system
---
# only a comment
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: controller
  namespace: example-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: example-controller
rules: []
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller
spec:
  replicas: 1
---
apiVersion: example.io/v1
kind: Widget
metadata:
  name: global
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a, namespace: example-system}
"#;

    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn bundle() -> ManifestBundle {
        ManifestBundle::from_bytes("example-v1", YAML, digest(YAML.as_bytes()))
    }

    #[test]
    fn snapshot() {
        let resources = bundle().with_namespace("tools").build().expect("builds");
        let bodies: Vec<&Value> = resources.iter().map(|r| &r.body).collect();
        insta::assert_yaml_snapshot!(bodies);
    }

    #[test]
    fn splits_in_file_order_and_keeps_namespaces() {
        let resources = bundle().build().expect("builds");
        let ids: Vec<String> = resources.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(
            ids,
            [
                "CustomResourceDefinition widgets.example.io",
                "Namespace example-system",
                "ServiceAccount example-system/controller",
                "ClusterRole example-controller",
                "Deployment default/controller",
                "Widget global",
                "ConfigMap example-system/a",
            ]
        );
        let crd = &resources[0].body;
        assert!(crd.get("status").is_none());
        assert!(crd["metadata"].get("creationTimestamp").is_none());
    }

    #[test]
    fn namespace_override_touches_only_namespaced_kinds() {
        let resources = bundle().with_namespace("tools").build().expect("builds");
        let ns_of = |name: &str, kind: &str| {
            resources
                .iter()
                .find(|r| r.id.name == name && r.id.kind == kind)
                .map(|r| r.id.namespace.clone())
                .expect("present")
        };
        assert_eq!(
            ns_of("controller", "ServiceAccount").as_deref(),
            Some("tools")
        );
        assert_eq!(ns_of("controller", "Deployment").as_deref(), Some("tools"));
        assert_eq!(ns_of("a", "ConfigMap").as_deref(), Some("tools"));
        assert_eq!(ns_of("example-system", "Namespace"), None);
        assert_eq!(ns_of("example-controller", "ClusterRole"), None);
        assert_eq!(ns_of("global", "Widget"), None, "cluster-scoped by its CRD");
    }

    #[test]
    fn digest_mismatch_names_both_digests() {
        let wrong = "0".repeat(64);
        let err = ManifestBundle::from_bytes("example-v1", YAML, wrong.clone())
            .build()
            .expect_err("mismatch");
        let actual = digest(YAML.as_bytes());
        match &err {
            ComponentError::DigestMismatch {
                bundle,
                expected,
                actual: got,
            } => {
                assert_eq!(bundle, "example-v1");
                assert_eq!(expected, &wrong);
                assert_eq!(got, &actual);
            }
            other => panic!("unexpected {other}"),
        }
        let text = err.to_string();
        assert!(text.contains(&wrong) && text.contains(&actual), "{text}");
    }

    #[test]
    fn digest_format_is_checked_and_prefix_accepted() {
        let prefixed = format!("sha256:{}", digest(YAML.as_bytes()));
        assert!(
            ManifestBundle::from_bytes("b", YAML, prefixed)
                .build()
                .is_ok()
        );
        let upper = digest(YAML.as_bytes()).to_uppercase();
        let err = ManifestBundle::from_bytes("b", YAML, upper)
            .build()
            .expect_err("upper");
        assert!(err.to_string().contains("64 lowercase hex"), "{err}");
        assert!(
            ManifestBundle::from_bytes("b", YAML, "abc")
                .verify()
                .is_err()
        );
    }

    #[test]
    fn malformed_documents_are_named_by_index() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n";
        let err = ManifestBundle::from_bytes("bad", yaml, digest(yaml.as_bytes()))
            .build()
            .expect_err("missing apiVersion");
        assert_eq!(
            err.to_string(),
            "bundle bad: document 1: missing apiVersion"
        );
        let yaml = "a: [1, 2\n";
        let err = ManifestBundle::from_bytes("bad", yaml, digest(yaml.as_bytes()))
            .build()
            .expect_err("yaml");
        assert!(
            err.to_string().starts_with("bundle bad: document 0:"),
            "{err}"
        );
        let yaml = "- 1\n- 2\n";
        assert!(
            ManifestBundle::from_bytes("bad", yaml, digest(yaml.as_bytes()))
                .build()
                .is_err()
        );
    }

    #[test]
    fn reads_files() {
        let path =
            std::env::temp_dir().join(format!("components-bundle-{}.yaml", std::process::id()));
        std::fs::write(&path, YAML).expect("write");
        let resources = ManifestBundle::from_file("example-v1", &path, digest(YAML.as_bytes()))
            .expect("read")
            .build()
            .expect("builds");
        assert_eq!(resources.len(), 7);
        std::fs::remove_file(&path).expect("cleanup");
        let err = ManifestBundle::from_file("example-v1", &path, "x").expect_err("gone");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn real_upstream_gateway_api_crds() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/crds/gateway-api-v1.3.0-standard.yaml"
        );
        let Ok(bytes) = std::fs::read(path) else {
            return; // the shared data directory is not part of every checkout
        };
        let resources =
            ManifestBundle::from_bytes("gateway-api-v1.3.0", bytes.clone(), digest(&bytes))
                .build()
                .expect("builds");
        assert!(
            resources
                .iter()
                .all(|r| r.id.kind == "CustomResourceDefinition" && r.id.namespace.is_none())
        );
        assert!(
            resources
                .iter()
                .any(|r| r.id.name == "httproutes.gateway.networking.k8s.io")
        );
        assert!(resources.iter().all(|r| r.body.get("status").is_none()));
    }
}
