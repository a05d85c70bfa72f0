//! The Kubernetes versions this engine supports, and the check that refuses an
//! older API server before any request that could change it.
//!
//! The range follows the `k8s-openapi` feature the workspace builds with
//! (`earliest`, i.e. the types of Kubernetes 1.33): every field the components
//! write exists on every supported server. The newest supported minor is the one
//! the test control plane runs (v1.37). A newer server is accepted with a warning;
//! an older one is refused.

use k8s_openapi::apimachinery::pkg::version::Info;

/// The oldest supported minor version of Kubernetes 1.x.
pub const OLDEST_SUPPORTED_MINOR: u32 = 33;
/// The newest minor version the engine is tested on.
pub const NEWEST_TESTED_MINOR: u32 = 37;

/// What [`check`] found out about a server's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Inside the supported range.
    Supported,
    /// Newer than the newest tested minor: allowed, worth a warning.
    Untested {
        /// The server's `gitVersion`, e.g. `v1.38.0`.
        version: String,
    },
}

/// A server older than the supported range, or one whose version is unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the API server runs Kubernetes {version}, which is not supported: \
     preview-envs supports Kubernetes 1.{OLDEST_SUPPORTED_MINOR} to 1.{NEWEST_TESTED_MINOR} ({reason})"
)]
pub struct UnsupportedVersion {
    /// The server's `gitVersion` (or `major.minor` when that is empty).
    pub version: String,
    /// Why: too old, or unreadable.
    pub reason: String,
}

/// Decides whether a server reporting `info` (its `/version`) is supported.
///
/// Managed clusters often suffix the minor (`"33+"` on EKS/GKE); the digits
/// before any suffix count.
pub fn check(info: &Info) -> Result<Support, UnsupportedVersion> {
    let version = if info.git_version.is_empty() {
        format!("{}.{}", info.major, info.minor)
    } else {
        info.git_version.clone()
    };
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let (Some(major), Some(minor)) = (number(&info.major), number(&info.minor)) else {
        return Err(UnsupportedVersion {
            version,
            reason: format!(
                "its /version reports major {:?} and minor {:?}",
                info.major, info.minor
            ),
        });
    };
    if major != 1 || minor < OLDEST_SUPPORTED_MINOR {
        return Err(UnsupportedVersion {
            version,
            reason: "upgrade the cluster, or use a release of preview-envs that supports it".into(),
        });
    }
    if minor > NEWEST_TESTED_MINOR {
        return Ok(Support::Untested { version });
    }
    Ok(Support::Supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn the_supported_range_is_accepted() {
        for minor in OLDEST_SUPPORTED_MINOR..=NEWEST_TESTED_MINOR {
            let v = info("1", &minor.to_string(), &format!("v1.{minor}.2"));
            assert_eq!(check(&v), Ok(Support::Supported), "1.{minor}");
        }
    }

    #[test]
    fn an_older_server_is_refused_naming_both_versions() {
        let err = check(&info("1", "20", "v1.20.2")).expect_err("too old");
        let msg = err.to_string();
        assert!(msg.contains("v1.20.2"), "{msg}");
        assert!(msg.contains("1.33 to 1.37"), "{msg}");
        let err = check(&info("1", "32", "v1.32.9")).expect_err("too old");
        assert!(err.to_string().contains("v1.32.9"));
    }

    #[test]
    fn vendor_suffixes_are_read() {
        assert_eq!(
            check(&info("1", "35+", "v1.35.3-eks-abc")),
            Ok(Support::Supported)
        );
    }

    #[test]
    fn a_newer_server_is_allowed_but_untested() {
        assert_eq!(
            check(&info("1", "38", "v1.38.0")),
            Ok(Support::Untested {
                version: "v1.38.0".into()
            })
        );
    }

    #[test]
    fn an_unreadable_version_is_refused() {
        let err = check(&info("", "", "")).expect_err("unreadable");
        assert!(err.to_string().contains("major"), "{err}");
    }
}
