//! Realistic reference values shared by the unit and snapshot tests.

use preview_core::Resource;
use serde_json::Value;

use crate::common::Labels;

/// The reference project's domain.
pub const DOMAIN: &str = "aphiria.com";
/// The preview namespace of PR 123.
pub const NS: &str = "preview-pr-123";
/// Web image pinned by digest.
pub const WEB_IMAGE: &str = "registry.digitalocean.com/aphiria/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// API (PHP-FPM) image pinned by digest.
pub const API_IMAGE: &str = "registry.digitalocean.com/aphiria/api@sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// Upstream nginx pinned by digest.
pub const NGINX_IMAGE: &str = "docker.io/library/nginx@sha256:3333333333333333333333333333333333333333333333333333333333333333";
/// PostgreSQL 16 pinned by digest.
pub const POSTGRES_IMAGE: &str = "docker.io/library/postgres@sha256:4444444444444444444444444444444444444444444444444444444444444444";

/// The labels a preview-pr stack passes to every component.
pub fn labels() -> Labels {
    Labels::for_instance("aphiria", NS)
}

/// The bodies, for snapshots.
pub fn bodies(resources: &[Resource]) -> Vec<&Value> {
    resources.iter().map(|r| &r.body).collect()
}
