//! `production`: the application on the production cluster.
//!
//! The composition is `standalone.rs`'s (gateway, PostgreSQL, application in
//! `namespace`, default `aphiria`) with:
//! - every image of the app (`--image KEY=REF`; `--web-image` / `--api-image`) pinned by digest — the digests that were tested
//!   in a preview (the `promote` command takes them from the tested-image record
//!   that preview's successful `up` wrote;
//!   images are never rebuilt for production);
//! - `replicas` (default and minimum 2);
//! - Let's Encrypt (`tls.issuer: letsencrypt`, DNS-01 with the DigitalOcean token
//!   from secret `DIGITALOCEAN_TOKEN`) for `*.<domain>`, hosts `www.<domain>` and
//!   `api.<domain>`;
//! - persistent database storage (`database.storage`, default 10Gi) and, with
//!   `protect: true` (the default), the namespaces, the PostgreSQL objects and the
//!   database protected from deletion.
//!
//! Existing production objects are adopted with `stacks import production`
//! (names here match what the stack renders: Deployments `web`/`api`, Services,
//! `env-vars`, `env-var-secrets`, Service `db` in `database.namespace`).

use components::ImagePullPolicy;
use preview_core::validate::Policy;

use super::app::pinned_images;
use super::standalone::Standalone;
use crate::app_spec::render::Images;
use crate::config::StackConfig;
use crate::{SecretSource, StackBuild, StackError, StackKind, StackRequest};

/// Builds `production`.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    let refs = pinned_images(request, config)?
        .into_iter()
        .map(|(key, image)| (key, image.to_string()))
        .collect();
    let images = Images {
        refs,
        nginx: config.nginx_image.clone(),
        pull_policy: ImagePullPolicy::IfNotPresent,
        pull_secrets: Vec::new(),
    };
    Standalone {
        config,
        name: StackKind::Production.as_str(),
        images,
        protect: config.protect,
        policy: Policy {
            require_image_digests: true,
            ..Policy::default()
        },
    }
    .build(secrets)
}
