//! Requests and limits in namespaces with a ResourceQuota.
//!
//! A ResourceQuota on cpu or memory makes the API server reject every pod whose
//! containers lack the corresponding requests or limits — at runtime, as a
//! ReplicaSet `FailedCreate` ("failed quota: …: must specify limits.cpu,…"), long
//! after apply succeeded. So in every namespace that has a ResourceQuota in the
//! graph (or listed in [`Policy::extra_quota_namespaces`]), every container and
//! init container must set `requests.cpu`, `requests.memory`, `limits.cpu` and
//! `limits.memory`, and, when the quota caps ephemeral storage (`hard` has
//! `requests.ephemeral-storage`, `limits.ephemeral-storage` or
//! `ephemeral-storage`), `requests.ephemeral-storage` and
//! `limits.ephemeral-storage` too.
//!
//! A value counts as set when the container sets it or a LimitRange in the graph
//! (same namespace, `type: Container`) defaults it (`default` for limits,
//! `defaultRequest` — else `default` — for requests, `max` as the API server's
//! fallback). The API server's own copying of limits into missing requests is
//! deliberately not counted: we ask for explicit requests.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::resource::Resource;

use super::pods::{containers, pod_spec};
use super::{Policy, Problem};

/// The four values every container needs, as `<section>.<resource>`.
const REQUIRED: [(&str, &str); 4] = [
    ("requests", "cpu"),
    ("requests", "memory"),
    ("limits", "cpu"),
    ("limits", "memory"),
];

/// The two ephemeral-storage values a quota on ephemeral storage requires.
const STORAGE: [(&str, &str); 2] = [
    ("requests", "ephemeral-storage"),
    ("limits", "ephemeral-storage"),
];

/// Namespaces with a quota, and what their LimitRanges default.
pub(super) struct QuotaNamespaces {
    enabled: bool,
    /// Namespace → the quota's name (`None` when it comes from the policy).
    quotas: BTreeMap<String, Option<String>>,
    /// Namespaces whose quota caps ephemeral storage.
    storage: BTreeSet<String>,
    /// Namespace → the `<section>.<resource>` values a LimitRange defaults.
    defaulted: BTreeMap<String, BTreeSet<(&'static str, &'static str)>>,
}

impl QuotaNamespaces {
    pub(super) fn new(resources: &[Resource], policy: &Policy) -> Self {
        let mut quotas: BTreeMap<String, Option<String>> = policy
            .extra_quota_namespaces
            .iter()
            .map(|ns| (ns.clone(), None))
            .collect();
        let mut defaulted: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
        let mut storage = BTreeSet::new();
        for r in resources {
            let Some(ns) = &r.id.namespace else { continue };
            if r.id.is("", "ResourceQuota") {
                quotas.insert(ns.clone(), Some(r.id.name.clone()));
                let hard = r.body.pointer("/spec/hard").and_then(Value::as_object);
                let caps = |key: &str| hard.is_some_and(|h| h.contains_key(key));
                if caps("requests.ephemeral-storage")
                    || caps("limits.ephemeral-storage")
                    || caps("ephemeral-storage")
                {
                    storage.insert(ns.clone());
                }
            }
            if r.id.is("", "LimitRange") {
                defaulted
                    .entry(ns.clone())
                    .or_default()
                    .extend(limit_range_defaults(&r.body));
            }
        }
        QuotaNamespaces {
            enabled: policy.require_resources_in_quota_namespaces,
            quotas,
            storage,
            defaulted,
        }
    }
}

fn limit_range_defaults(body: &Value) -> BTreeSet<(&'static str, &'static str)> {
    let mut out = BTreeSet::new();
    for item in body
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let has = |section: &str, resource: &str| {
            item.get(section).and_then(|s| s.get(resource)).is_some()
        };
        for resource in ["cpu", "memory", "ephemeral-storage"] {
            let limit = has("default", resource) || has("max", resource);
            if limit {
                out.insert(("limits", resource));
            }
            if has("defaultRequest", resource) || limit {
                out.insert(("requests", resource));
            }
        }
    }
    out
}

/// Checks every container of a workload in a quota namespace.
pub(super) fn check(resource: &Resource, quota: &QuotaNamespaces, out: &mut Vec<Problem>) {
    if !quota.enabled {
        return;
    }
    let Some(ns) = &resource.id.namespace else {
        return;
    };
    let Some(quota_name) = quota.quotas.get(ns) else {
        return;
    };
    let Some(pod) = pod_spec(resource) else {
        return;
    };
    let defaulted = quota.defaulted.get(ns);
    let caps_storage = quota.storage.contains(ns);
    let required: Vec<(&str, &str)> = if caps_storage {
        REQUIRED.iter().chain(STORAGE.iter()).copied().collect()
    } else {
        REQUIRED.to_vec()
    };
    let resources = if caps_storage {
        "cpu, memory and ephemeral-storage"
    } else {
        "cpu and memory"
    };
    for container in containers(&pod) {
        let missing: Vec<String> = required
            .iter()
            .filter(|(section, res)| {
                let set = container
                    .value
                    .pointer(&format!("/resources/{section}/{res}"))
                    .is_some_and(|v| !v.is_null());
                !set && !defaulted.is_some_and(|d| d.contains(&(*section, *res)))
            })
            .map(|(section, res)| format!("{section}.{res}"))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let which = match quota_name {
            Some(name) => format!("a ResourceQuota ({name})"),
            None => "a ResourceQuota".to_owned(),
        };
        out.push(Problem::new(
            &resource.id,
            format!("{}.resources", container.path),
            format!(
                "container \"{}\" has no {}; namespace {ns} has {which}, which rejects pods \
                 whose containers do not set {resources} requests and limits",
                container.name,
                missing.join(", ")
            ),
        ));
    }
}
