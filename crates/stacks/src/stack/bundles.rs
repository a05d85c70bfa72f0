//! Upstream manifest bundles (Gateway API CRDs, nginx-gateway-fabric,
//! cert-manager) listed under `bundles:` in the config, pinned by SHA-256.
//!
//! The default configuration lists none: the test cluster loads the CRDs itself,
//! and a real cluster may have the controllers installed already. On a real
//! cluster, list the pinned upstream install files, e.g.
//!
//! ```yaml
//! bundles:
//!   - name: gateway-api-v1.3.0
//!     path: bundles/gateway-api-v1.3.0-standard.yaml
//!     sha256: <sha256sum of the file>
//!   - name: cert-manager-v1.20.3
//!     path: bundles/cert-manager-v1.20.3.yaml
//!     sha256: <…>
//!   - name: nginx-gateway-fabric-v2.2.2
//!     path: bundles/nginx-gateway-fabric-v2.2.2-deploy.yaml   # with --snippets-filters
//!     sha256: <…>
//! ```
//!
//! The bytes are read by [`crate::config::StackConfig::load`]; here they are only
//! verified and split ([`components::ManifestBundle`]).
//!
//! A bundle may contain an object the stack also renders. A `Namespace` (NGF's
//! install creates `nginx-gateway`) is merged: the stack's object is kept, with
//! the bundle's labels and annotations added under the stack's, so the network
//! policies' namespace labels and the protection stay. Any other duplicate is an
//! error naming the object and the bundle.

use components::ManifestBundle;
use preview_core::{Resource, ResourceId};
use serde_json::{Map, Value};

use crate::StackError;
use crate::config::StackConfig;

/// The resources of every configured bundle, in config and file order, each
/// tagged with its bundle's name.
pub(crate) fn bundle_resources(
    config: &StackConfig,
) -> Result<Vec<(String, Resource)>, StackError> {
    let mut out = Vec::new();
    for source in &config.bundles {
        let bytes = source.bytes.as_ref().ok_or_else(|| {
            StackError::Invalid(format!(
                "bundle `{}` in {}: its file {} was not read (load the configuration with StackConfig::load)",
                source.name,
                config.origin,
                source.path.display()
            ))
        })?;
        let mut bundle =
            ManifestBundle::from_bytes(source.name.as_str(), bytes.clone(), source.sha256.as_str());
        bundle.namespace = source.namespace.clone();
        for resource in bundle.build()? {
            out.push((source.name.clone(), resource));
        }
    }
    Ok(out)
}

/// True when a bundle renders `id` (e.g. the GatewayClass).
pub(crate) fn contains(bundles: &[(String, Resource)], id: &ResourceId) -> bool {
    bundles.iter().any(|(_, r)| &r.id == id)
}

/// Bundles first, then the stack's own resources; duplicates handled as the
/// module docs say.
pub(crate) fn merge(
    bundles: Vec<(String, Resource)>,
    own: Vec<Resource>,
) -> Result<Vec<Resource>, StackError> {
    let mut own = own;
    let mut out = Vec::with_capacity(bundles.len() + own.len());
    for (bundle, resource) in bundles {
        let Some(mine) = own.iter_mut().find(|r| r.id == resource.id) else {
            out.push(resource);
            continue;
        };
        if !resource.id.is("", "Namespace") {
            return Err(StackError::Invalid(format!(
                "bundle `{bundle}` contains {}, which the stack renders too; remove it from one of them",
                resource.id
            )));
        }
        for field in ["labels", "annotations"] {
            merge_map(&mut mine.body, &resource.body, field);
        }
    }
    out.extend(own);
    Ok(out)
}

/// `metadata.<field>` of `ours` = theirs, overridden by ours.
fn merge_map(ours: &mut Value, theirs: &Value, field: &str) {
    let Some(their_map) = theirs
        .pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
    else {
        return;
    };
    let mut merged: Map<String, Value> = their_map.clone();
    if let Some(our_map) = ours
        .pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
    {
        for (k, v) in our_map {
            merged.insert(k.clone(), v.clone());
        }
    }
    let mut sorted: Vec<(String, Value)> = merged.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(metadata) = ours.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert(
            field.to_owned(),
            Value::Object(sorted.into_iter().collect()),
        );
    }
}
