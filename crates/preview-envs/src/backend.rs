//! Choosing a backend by URL: `file://DIR`, `kubernetes://NAMESPACE`,
//! `postgres://…` / `postgresql://…`.
//!
//! A PostgreSQL URL may carry a password: it is kept in a [`SecretString`] and
//! every description, error and `Debug` output uses [`redact_url`] or the parsed
//! `user@host:port/db` form instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use preview_core::secret::SecretString;
use preview_core::state::format::Codec;
pub use preview_core::state::redact_url;
use preview_core::state::{StateBackend, StateError, file::FileBackend};
use preview_kubernetes::state::{DEFAULT_LEASE_DURATION, KubeBackend};
use preview_postgres::state::PgBackend;

/// The accepted forms, for error messages.
pub const ACCEPTED: &str = "file://DIR, kubernetes://NAMESPACE (kubernetes:// = namespace preview-state) or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";

/// Namespace of `kubernetes://` without one.
pub const DEFAULT_NAMESPACE: &str = "preview-state";

/// A parsed backend URL.
#[derive(Clone)]
pub enum BackendUrl {
    /// `file://DIR`.
    File(PathBuf),
    /// `kubernetes://NAMESPACE`.
    Kubernetes {
        /// Namespace holding the state Secrets and lock Leases.
        namespace: String,
    },
    /// `postgres://…`.
    Postgres {
        /// The full URL (may contain a password).
        url: SecretString,
        /// `postgres://user@host:port/db`, without the password.
        described: String,
    },
}

impl std::fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendUrl({})", self.describe())
    }
}

fn config_error(url: &str, message: impl Into<String>) -> StateError {
    StateError::Config {
        url: redact_url(url),
        message: message.into(),
    }
}

impl BackendUrl {
    /// Parses a backend URL (no IO).
    pub fn parse(url: &str) -> Result<Self, StateError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(config_error(
                url,
                format!(
                    "not a backend URL; use {ACCEPTED} (for a local directory: file://{})",
                    redact_url(url)
                ),
            ));
        };
        match scheme {
            "file" => {
                if rest.is_empty() {
                    return Err(config_error(
                        url,
                        "file:// needs a directory, e.g. file://.preview/state",
                    ));
                }
                Ok(BackendUrl::File(PathBuf::from(rest)))
            }
            "kubernetes" | "k8s" => {
                let ns = rest.trim_end_matches('/');
                let namespace = if ns.is_empty() { DEFAULT_NAMESPACE } else { ns };
                if !is_dns_label(namespace) {
                    return Err(config_error(
                        url,
                        format!(
                            "{namespace:?} is not a valid namespace name (lowercase letters, digits and '-', at most 63)"
                        ),
                    ));
                }
                Ok(BackendUrl::Kubernetes {
                    namespace: namespace.to_owned(),
                })
            }
            "postgres" | "postgresql" => {
                let described = preview_postgres::state::describe_url(url)
                    .map_err(|message| config_error(url, message))?;
                Ok(BackendUrl::Postgres {
                    url: SecretString::new(url),
                    described,
                })
            }
            other => Err(config_error(
                url,
                format!("unknown scheme {other:?}; use {ACCEPTED}"),
            )),
        }
    }

    /// The URL without any password.
    pub fn describe(&self) -> String {
        match self {
            BackendUrl::File(dir) => format!("file://{}", dir.display()),
            BackendUrl::Kubernetes { namespace } => format!("kubernetes://{namespace}"),
            BackendUrl::Postgres { described, .. } => described.clone(),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Settings of the backends.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Kubernetes: `leaseDurationSeconds` of the lock Lease (renewed every third
    /// of it; a crashed holder's lock expires after it). At most 60 s.
    pub lease_duration: Duration,
    /// How documents are encoded and decoded: [`Codec::plain`] without a state
    /// passphrase, [`Codec::authenticated`] with one.
    pub codec: Codec,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            lease_duration: DEFAULT_LEASE_DURATION,
            codec: Codec::plain(),
        }
    }
}

/// Opens the backend named by `url` with default options. `kube` is the cluster
/// connection for `kubernetes://` (required there, ignored otherwise). A
/// PostgreSQL backend connects (and creates its tables if missing) here.
pub async fn open_backend(
    url: &str,
    kube: Option<&kube::Client>,
) -> Result<Arc<dyn StateBackend>, StateError> {
    open_backend_with(url, kube, &BackendOptions::default()).await
}

/// [`open_backend`] with explicit options.
pub async fn open_backend_with(
    url: &str,
    kube: Option<&kube::Client>,
    options: &BackendOptions,
) -> Result<Arc<dyn StateBackend>, StateError> {
    match BackendUrl::parse(url)? {
        BackendUrl::File(dir) => Ok(Arc::new(
            FileBackend::new(dir).with_codec(options.codec.clone()),
        )),
        BackendUrl::Kubernetes { namespace } => {
            let Some(client) = kube else {
                return Err(config_error(
                    url,
                    format!(
                        "the kubernetes:// backend needs a cluster connection{}",
                        preview_core::remedy::in_parentheses(
                            &preview_core::remedy::Remedy::ClusterConnection
                        )
                    ),
                ));
            };
            let backend = KubeBackend::new(client.clone(), &namespace)
                .with_codec(options.codec.clone())
                .with_lease_duration(options.lease_duration)
                .map_err(|m| config_error(url, m))?;
            Ok(Arc::new(backend))
        }
        BackendUrl::Postgres { url, described } => Ok(Arc::new(
            PgBackend::connect(url, described)
                .await?
                .with_codec(options.codec.clone()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert!(matches!(
            BackendUrl::parse("file://.preview/state").expect("file"),
            BackendUrl::File(p) if p == std::path::Path::new(".preview/state")
        ));
        assert!(matches!(
            BackendUrl::parse("file:///var/state").expect("file"),
            BackendUrl::File(p) if p == std::path::Path::new("/var/state")
        ));
        assert!(matches!(
            BackendUrl::parse("kubernetes://team-a").expect("k8s"),
            BackendUrl::Kubernetes { namespace } if namespace == "team-a"
        ));
        assert!(matches!(
            BackendUrl::parse("kubernetes://").expect("k8s"),
            BackendUrl::Kubernetes { namespace } if namespace == DEFAULT_NAMESPACE
        ));
        let pg = BackendUrl::parse("postgresql://ci:s3cr3t-pw@db.example:6432/state").expect("pg");
        assert_eq!(pg.describe(), "postgres://ci@db.example:6432/state");
        assert!(!format!("{pg:?}").contains("s3cr3t"));
    }

    #[test]
    fn errors_name_the_accepted_schemes_and_never_the_password() {
        let err = BackendUrl::parse("s3://bucket")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown scheme \"s3\""), "{err}");
        assert!(
            err.contains("file://DIR")
                && err.contains("kubernetes://")
                && err.contains("postgres://"),
            "{err}"
        );
        let err = BackendUrl::parse("./state")
            .expect_err("no scheme")
            .to_string();
        assert!(err.contains("file://./state"), "{err}");
        let err = BackendUrl::parse("host=h password=s3cr3t-pw")
            .expect_err("kv")
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(BackendUrl::parse("file://").is_err());
        assert!(BackendUrl::parse("kubernetes://Bad_NS").is_err());
        let err = BackendUrl::parse("postgres://u:s3cr3t-pw@h:notaport/db")
            .expect_err("bad port")
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("u:***@h"), "{err}");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/db?sslmode=disable&password=x"),
            "postgres://u:***@h:5432/db?sslmode=disable&password=***"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("file:///tmp/x"), "file:///tmp/x");
        assert_eq!(
            redact_url("postgres://u:pa/ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("postgres://u:p?ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("host=h password=x"), "host=h password=***");
    }

    #[tokio::test]
    async fn kubernetes_needs_a_client() {
        let err = open_backend("kubernetes://x", None)
            .await
            .err()
            .expect("err");
        assert!(
            err.to_string().contains("needs a cluster connection"),
            "{err}"
        );
    }
}
