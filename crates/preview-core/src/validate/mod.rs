//! Static checks on the desired resources, run before any side effect.
//!
//! [`validate`] runs every check on every resource and returns **every** problem
//! found (not just the first), each naming the resource, the field (a dotted path
//! such as `spec.template.spec.containers[name=web].image`) and what is wrong.
//! If anything is reported, nothing is applied.
//!
//! One check per file:
//!
//! | file | check |
//! |------|-------|
//! | `names.rs` | `metadata.name` / `metadata.namespace` are valid DNS-1123 subdomains / labels |
//! | `labels.rs` | label keys and values in metadata, pod templates and selectors |
//! | `images.rs` | images non-empty, digests well-formed, pinned when [`Policy::require_image_digests`] |
//! | `quota.rs` | requests and limits for cpu and memory in namespaces with a ResourceQuota |
//! | `fqdn.rs` | cross-namespace Service addresses are fully qualified |
//! | `services.rs` | a Service selector matches a pod template in its namespace |
//! | `containers.rs` | port names, duplicate container names |
//!
//! All checks are pure functions of the resources and the [`Policy`].

mod containers;
mod fqdn;
mod images;
mod labels;
mod names;
mod pods;
mod quota;
mod services;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resource::{ProviderName, Resource, ResourceId};

/// One problem with one desired resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The resource.
    pub resource: ResourceId,
    /// Dotted path of the field, e.g. `spec.template.spec.containers[name=web].image`.
    pub field: String,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl Problem {
    /// A problem with `field` of `resource`.
    pub fn new(
        resource: &ResourceId,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            resource: resource.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `Deployment preview-pr-1/web: spec.template.spec.containers[name=web].image: image "nginx:1.27" is not pinned …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.resource, self.field, self.message)
    }
}

/// Every problem [`validate`] found; nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct ValidationError(pub Vec<Problem>);

impl ValidationError {
    /// The problems.
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }
}

fn summary(problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => "1 problem found, nothing was applied:".to_owned(),
        n => format!("{n} problems found, nothing was applied:"),
    };
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// What the checks require. Stacks choose; the defaults suit local development.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Policy {
    /// Every container image must be `name@sha256:<64 lowercase hex>` (default `false`;
    /// preview and production stacks turn it on).
    pub require_image_digests: bool,
    /// In a namespace with a ResourceQuota, every container and init container must
    /// have requests and limits for cpu and memory (default `true`).
    pub require_resources_in_quota_namespaces: bool,
    /// Namespaces known to have a ResourceQuota that is not in the graph.
    pub extra_quota_namespaces: BTreeSet<String>,
    /// Require `<svc>.<ns>.svc.cluster.local` for Service addresses in another
    /// namespace, in ConfigMap data and container env values (default `true`).
    pub check_cross_namespace_fqdn: bool,
    /// Namespaces outside the graph that Service addresses may point into (the
    /// cross-namespace check always knows the graph's namespaces, `default`,
    /// `kube-system` and [`Policy::extra_quota_namespaces`]).
    pub known_namespaces: BTreeSet<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_image_digests: false,
            require_resources_in_quota_namespaces: true,
            extra_quota_namespaces: BTreeSet::new(),
            check_cross_namespace_fqdn: true,
            known_namespaces: BTreeSet::new(),
        }
    }
}

/// Facts about the whole graph that single-resource checks need.
struct Context<'a> {
    policy: &'a Policy,
    quota: quota::QuotaNamespaces,
    known_namespaces: BTreeSet<String>,
    workloads: Vec<services::Workload<'a>>,
}

impl<'a> Context<'a> {
    fn new(resources: &'a [Resource], policy: &'a Policy) -> Self {
        let mut known_namespaces: BTreeSet<String> = ["default", "kube-system"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        known_namespaces.extend(policy.known_namespaces.iter().cloned());
        known_namespaces.extend(policy.extra_quota_namespaces.iter().cloned());
        for r in kubernetes(resources) {
            if r.id.is("", "Namespace") {
                known_namespaces.insert(r.id.name.clone());
            }
            if let Some(ns) = &r.id.namespace {
                known_namespaces.insert(ns.clone());
            }
        }
        Context {
            policy,
            quota: quota::QuotaNamespaces::new(resources, policy),
            known_namespaces,
            workloads: services::workloads(resources),
        }
    }
}

fn kubernetes(resources: &[Resource]) -> impl Iterator<Item = &Resource> {
    resources
        .iter()
        .filter(|r| r.id.provider == ProviderName::KUBERNETES)
}

/// Runs every check on every Kubernetes resource; `Err` lists all problems, in
/// resource order, then check order.
pub fn validate(resources: &[Resource], policy: &Policy) -> Result<(), ValidationError> {
    let ctx = Context::new(resources, policy);
    let mut problems = Vec::new();
    for resource in kubernetes(resources) {
        names::check(resource, &mut problems);
        labels::check(resource, &mut problems);
        images::check(resource, ctx.policy, &mut problems);
        containers::check(resource, &mut problems);
        quota::check(resource, &ctx.quota, &mut problems);
        if ctx.policy.check_cross_namespace_fqdn {
            fqdn::check(resource, &ctx.known_namespaces, &mut problems);
        }
        services::check(resource, &ctx.workloads, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationError(problems))
    }
}

/// `prefix.key` when `key` is a plain identifier, else `prefix[key]`.
fn key_path(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}[{key}]")
    }
}

#[cfg(test)]
mod tests;
