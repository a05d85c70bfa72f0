//! The one error type of this crate.
//!
//! Components are pure, so errors are about their input: an invalid parameter, a
//! bundle whose bytes do not match the pinned digest, a manifest that is not a
//! Kubernetes object, or an object that cannot be turned into a
//! [`preview_core::Resource`].

use std::path::PathBuf;

use preview_core::resource::ResourceError;

/// Errors building a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// A parameter is invalid; `what` names the parameter, `reason` says why.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// The parameter (`database name`, `ConfigMap key`, …).
        what: &'static str,
        /// The offending value (never a secret).
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A typed object could not become a [`preview_core::Resource`].
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// A manifest bundle's bytes do not match its pinned SHA-256.
    #[error("bundle {bundle}: sha256 mismatch: expected {expected}, actual {actual}")]
    DigestMismatch {
        /// Bundle name.
        bundle: String,
        /// The pinned digest (lowercase hex).
        expected: String,
        /// The digest of the bytes supplied (lowercase hex).
        actual: String,
    },
    /// A manifest bundle file could not be read.
    #[error("bundle {bundle}: cannot read {}: {source}", path.display())]
    Read {
        /// Bundle name.
        bundle: String,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A document of a manifest bundle is not valid YAML.
    #[error("bundle {bundle}: document {index}: {source}")]
    Yaml {
        /// Bundle name.
        bundle: String,
        /// Zero-based index of the YAML document in the file.
        index: usize,
        /// Cause.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A document of a manifest bundle is YAML but not a usable Kubernetes object.
    #[error("bundle {bundle}: document {index}: {reason}")]
    Manifest {
        /// Bundle name.
        bundle: String,
        /// Zero-based index of the YAML document in the file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl ComponentError {
    /// Shorthand for [`ComponentError::Invalid`].
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ComponentError::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
