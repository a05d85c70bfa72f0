//! An image pull Secret (`kubernetes.io/dockerconfigjson`) for a private registry.
//!
//! The `.dockerconfigjson` document is
//! `{"auths": {"<registry>": {"username": …, "password": …, "auth": base64("user:token")}}}`,
//! built with a JSON serialiser (so no value can break out of its string) and
//! stored base64-encoded in `data` (see [`crate::config`] for why not `stringData`).
//! Pods use it through `imagePullSecrets`; every workload component takes the
//! Secret names as `image_pull_secrets`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use preview_core::Resource;
use preview_core::secret::SecretString;
use serde_json::json;

use crate::common::{Labels, check_dns_label, check_secret_set, meta, to_resource};
use crate::error::ComponentError;

/// Registry credentials as a pull Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePullSecret {
    /// Namespace (pull Secrets are namespaced: one per namespace that pulls).
    pub namespace: String,
    /// Secret name (default `registry-credentials`).
    pub name: String,
    /// Registry host, e.g. `registry.digitalocean.com` or `ghcr.io`.
    pub registry: String,
    /// User name.
    pub username: String,
    /// Token or password.
    pub token: SecretString,
    /// Extra labels.
    pub labels: Labels,
}

impl ImagePullSecret {
    /// `registry-credentials` in `namespace` for `registry`.
    pub fn new(
        namespace: impl Into<String>,
        registry: impl Into<String>,
        username: impl Into<String>,
        token: SecretString,
    ) -> Self {
        ImagePullSecret {
            namespace: namespace.into(),
            name: "registry-credentials".to_owned(),
            registry: registry.into(),
            username: username.into(),
            token,
            labels: Labels::new(),
        }
    }

    /// Renders the Secret.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("pull secret name", &self.name)?;
        let registry_ok = !self.registry.is_empty()
            && !self.registry.contains(['/', ' ', '@'])
            && !self.registry.contains("://");
        if !registry_ok {
            return Err(ComponentError::invalid(
                "registry",
                self.registry.as_str(),
                "must be a registry host such as registry.digitalocean.com (no scheme or path)",
            ));
        }
        if self.username.is_empty() || self.username.contains(':') {
            return Err(ComponentError::invalid(
                "registry user",
                self.username.as_str(),
                "must be non-empty and contain no ':'",
            ));
        }
        check_secret_set("registry token", &self.token)?;
        let auth = STANDARD.encode(format!("{}:{}", self.username, self.token.expose()));
        let config = json!({
            "auths": {
                self.registry.as_str(): {
                    "username": self.username,
                    "password": self.token.expose(),
                    "auth": auth,
                }
            }
        });
        to_resource(&Secret {
            metadata: meta(
                &self.name,
                Some(&self.namespace),
                &self.labels.component(&self.name, "registry"),
            ),
            type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(config.to_string().into_bytes()),
            )])),
            ..Secret::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NS, labels};
    use serde_json::Value;

    fn secret() -> ImagePullSecret {
        ImagePullSecret {
            labels: labels(),
            ..ImagePullSecret::new(
                NS,
                "registry.digitalocean.com",
                "aphiria",
                SecretString::new("dop_v1_token-canary"),
            )
        }
    }

    fn decoded(resource: &Resource) -> Value {
        let b64 = resource.body["data"][".dockerconfigjson"]
            .as_str()
            .expect("data");
        let bytes = STANDARD.decode(b64).expect("base64");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn snapshot() {
        let s = secret().build().expect("builds");
        insta::assert_yaml_snapshot!(s.body);
    }

    #[test]
    fn docker_config_json() {
        let s = secret().build().expect("builds");
        assert_eq!(s.body["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(s.id.name, "registry-credentials");
        assert!(s.is_secret_path("/data/.dockerconfigjson"));
        let config = decoded(&s);
        let entry = &config["auths"]["registry.digitalocean.com"];
        assert_eq!(entry["username"], "aphiria");
        assert_eq!(entry["password"], "dop_v1_token-canary");
        assert_eq!(
            entry["auth"],
            STANDARD.encode("aphiria:dop_v1_token-canary")
        );
    }

    #[test]
    fn quotes_in_the_token_cannot_break_the_json() {
        let mut s = secret();
        s.token = SecretString::new("a\"b}");
        let config = decoded(&s.build().expect("builds"));
        assert_eq!(
            config["auths"]["registry.digitalocean.com"]["password"],
            "a\"b}"
        );
    }

    #[test]
    fn invalid_input_is_rejected() {
        let mut s = secret();
        s.registry = "https://ghcr.io".into();
        assert!(
            s.build()
                .expect_err("scheme")
                .to_string()
                .contains("registry")
        );
        let mut s = secret();
        s.token = SecretString::new("");
        let err = s.build().expect_err("empty").to_string();
        assert!(err.contains("registry token"), "{err}");
    }
}
