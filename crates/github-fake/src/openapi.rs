//! Where the official GitHub REST OpenAPI description is found, and how it is
//! loaded: [`openapi_fake::Spec`] with GitHub's `basic-error` as the schema of the
//! error statuses GitHub answers on every endpoint without documenting them.

use std::path::{Path, PathBuf};

pub use openapi_fake::{Spec, SpecError};

/// Environment variable that overrides the location of the OpenAPI description.
pub const OPENAPI_ENV: &str = "PREVIEW_GITHUB_OPENAPI";

/// Where the description lives: `$PREVIEW_GITHUB_OPENAPI`, else
/// `<workspace>/../shared/data/openapi/github-subset.json`.
pub fn default_spec_path() -> PathBuf {
    if let Some(path) = std::env::var_os(OPENAPI_ENV) {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/openapi/github-subset.json")
}

/// Loads the GitHub description at `path`.
pub(crate) fn load(path: &Path) -> Result<Spec, SpecError> {
    Ok(Spec::load(path)?.with_undocumented_error_schema("/components/schemas/basic-error"))
}
