//! Stack compositions: what each stack is made of.
//!
//! [`build`] checks that the configuration was resolved for the requested stack
//! and dispatches to one module per stack:
//!
//! | module | stack | composes |
//! | --- | --- | --- |
//! | [`preview_base`] | `preview-base` | PostgreSQL 16 in `default`, gateway namespace, GatewayClass, issuer, wildcard Certificate, Gateway, bundles, optional wildcard DNS records (DigitalOcean); exports [`preview_base::BaseOutputs`] |
//! | [`preview_pr`] | `preview-pr --pr N` | namespace + quota + NetworkPolicies, env ConfigMap/Secret, logical database, migration Job, API, web, HTTPRoutes through the base gateway |
//! | [`local`] | `local` | gateway, PostgreSQL and the application in one cluster; local images, self-signed TLS |
//! | [`production`] | `production` | the same as `local` with pinned images, 2+ replicas, Let's Encrypt, persistent and protected database |
//! | [`preview_cluster`] | `preview-cluster` | the DigitalOcean Kubernetes cluster (optional; instead of your own kubeconfig), protected; its kubeconfig is recorded sealed by the engine |
//!
//! The application in `local`, `preview-pr` and `production` is the config's app
//! spec ([`crate::app_spec`]; the built-in one is Aphiria's: env, database,
//! migration, API, web, routes), rendered by [`crate::app_spec::render`].
//!
//! Shared pieces: [`app`] (the app's images from the request), `standalone` (local and production), `gateway` (gateway namespace,
//! TLS issuer, Gateway), `server` (the PostgreSQL server), `bundles` (upstream
//! manifests), `dns` (wildcard DNS records), `inputs` (flags, secrets, outputs).
//!
//! [`builtin`] implements the [`crate::Stack`] trait for each of them (the
//! driver's view: parameters, references, providers).
//!
//! Every builder is pure and deterministic: the same request, configuration,
//! references and secrets give byte-identical resources.

pub mod app;
pub mod builtin;
mod bundles;
mod dns;
mod gateway;
mod inputs;
pub mod local;
pub mod plan_identity;
pub mod preview_base;
pub mod preview_cluster;
pub mod preview_pr;
pub mod production;
mod server;
mod standalone;

use crate::config::StackConfig;
use crate::{References, SecretSource, StackBuild, StackError, StackKind, StackRequest};

/// Secret: the PostgreSQL server's superuser password (`preview-base`, `local`,
/// `production`; also the app's `DB_PASSWORD` in `local` and `production`).
/// `preview-pr` never reads it: a preview's database role has a generated
/// password ([`crate::StackRequest::db_role_password`]).
pub const DB_PASSWORD: &str = "DB_PASSWORD";
/// Secret: the registry token of the image pull Secret (`registryPullSecret: true`).
pub const REGISTRY_TOKEN: &str = "REGISTRY_TOKEN";
/// Secret: the DigitalOcean API token: cert-manager's DNS-01 (Let's Encrypt issuers) and
/// the wildcard DNS records of `preview-base` (`dns:`), and the cluster of `preview-cluster`.
pub const DIGITALOCEAN_TOKEN: &str = "DIGITALOCEAN_TOKEN";

/// Builds the requested stack.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    references: &References,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    if config.stack != request.kind {
        return Err(StackError::Invalid(format!(
            "the configuration from {} was resolved for the {} stack, not {}",
            config.origin,
            config.stack.as_str(),
            request.kind.as_str()
        )));
    }
    config.check_app()?;
    match request.kind {
        StackKind::Local => local::build(request, config, secrets),
        StackKind::PreviewBase => preview_base::build(request, config, secrets),
        StackKind::PreviewPr => preview_pr::build(request, config, references, secrets),
        StackKind::Production => production::build(request, config, secrets),
        StackKind::PreviewCluster => preview_cluster::build(request, config, secrets),
    }
}
