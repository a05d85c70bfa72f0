//! `local`: the whole application on a local cluster (minikube, kind, …) with
//! locally built images.
//!
//! The composition is `standalone.rs`'s (gateway, PostgreSQL, application in
//! namespace `aphiria-local`) with:
//! - images from `--image KEY=REF` (`--web-image` / `--api-image`) when given,
//!   else `images.web` / `images.api` (default `<app>/<key>:local`:
//!   `aphiria/web:local`, `aphiria/api:local`), not
//!   required to be pinned, pulled `IfNotPresent` so images loaded into the
//!   node (`minikube image load`, `kind load`) are used; `allowedImages` also
//!   allows `<app>/` by default for them;
//! - the nginx image defaults to the pinned `nginxinc/nginx-unprivileged`, the
//!   PostgreSQL image to the upstream tag `postgres:16-alpine`;
//! - a self-signed issuer (browsers warn) for `*.aphiria.localhost`, hosts
//!   `www.aphiria.localhost` and `api.aphiria.localhost` (`*.localhost` resolves
//!   to the loopback address);
//! - ephemeral database storage unless `database.storage` is set; nothing is
//!   protected; no quota unless `quota` is set.
//!
//! Secrets: `DB_PASSWORD` (also the local server's superuser password), plus
//! `DIGITALOCEAN_TOKEN` only if a Let's Encrypt issuer is configured.

use components::ImagePullPolicy;
use preview_core::validate::Policy;

use super::app::local_images;
use super::standalone::Standalone;
use crate::app_spec::render::Images;
use crate::config::StackConfig;
use crate::{SecretSource, StackBuild, StackError, StackKind, StackRequest};

/// Builds `local`.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    // Not necessarily pinned, but from an allowed prefix (by default also `<app>/`,
    // the local builds' names).
    let images = Images {
        refs: local_images(request, config)?,
        nginx: config.nginx_image.clone(),
        pull_policy: ImagePullPolicy::IfNotPresent,
        pull_secrets: Vec::new(),
    };
    Standalone {
        config,
        name: StackKind::Local.as_str(),
        images,
        protect: false,
        policy: Policy {
            require_image_digests: false,
            ..Policy::default()
        },
    }
    .build(secrets)
}
