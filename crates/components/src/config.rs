//! The runtime environment of the API and the migration Job: an env `ConfigMap`
//! (`env-vars-pr-N`) and an env `Secret` (`env-var-secrets-pr-N`).
//!
//! The stack decides names and keys (`APP_ENV`, `APP_WEB_URL`, `DB_HOST`, …,
//! `DB_PASSWORD`); these components only render them. Keys must be valid
//! environment variable names (`[A-Za-z_][A-Za-z0-9_]*`), because they are read with
//! `envFrom` and the kubelet silently skips keys that are not; every bad key is
//! reported at once.
//!
//! # Secret encoding: `data` (base64), not `stringData`
//! `stringData` is write-only: the API server folds it into `data` and never
//! returns it, so a desired body with `stringData` never equals the live object
//! (a diff on every plan), and server-side apply records ownership of a field that
//! does not exist on reads. Writing base64 `data` makes the desired body identical
//! to what the server stores, so a second `up` sees no change. Values are
//! [`SecretString`]s; the engine treats `/data` of every Secret as secret and never
//! renders it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use preview_core::Resource;
use preview_core::secret::SecretString;

use crate::common::{Labels, check_dns_label, meta, to_resource};
use crate::error::ComponentError;

/// Environment variables rendered as one object (a ConfigMap or a Secret): its
/// place, its variables and its extra labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVars<V> {
    /// Namespace.
    pub namespace: String,
    /// Name, e.g. `env-vars-pr-123` or `env-var-secrets-pr-123`.
    pub name: String,
    /// Variables.
    pub data: BTreeMap<String, V>,
    /// Extra labels.
    pub labels: Labels,
}

/// Non-secret environment variables: a `ConfigMap`.
pub type EnvConfigMap = EnvVars<String>;

/// Secret environment variables: an `Opaque` `Secret`.
pub type EnvSecret = EnvVars<SecretString>;

impl<V> EnvVars<V> {
    /// The object `name` in `namespace` with `data`.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        data: BTreeMap<String, V>,
    ) -> Self {
        EnvVars {
            namespace: namespace.into(),
            name: name.into(),
            data,
            labels: Labels::new(),
        }
    }

    /// Checks the namespace, the name and every key; `name` and `key` say what
    /// the errors name (e.g. `ConfigMap name`, `ConfigMap key`).
    fn check(&self, name: &'static str, key: &'static str) -> Result<(), ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_object_name(name, &self.name)?;
        check_env_keys(key, self.data.keys())
    }

    /// The object's metadata (component `config`).
    fn metadata(&self) -> ObjectMeta {
        meta(
            &self.name,
            Some(&self.namespace),
            &self.labels.component(&self.name, "config"),
        )
    }
}

impl EnvVars<String> {
    /// Renders the ConfigMap.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        self.check("ConfigMap name", "ConfigMap key")?;
        to_resource(&ConfigMap {
            metadata: self.metadata(),
            data: Some(self.data.clone()),
            ..ConfigMap::default()
        })
    }
}

impl EnvVars<SecretString> {
    /// Renders the Secret (values base64-encoded in `data`).
    pub fn build(&self) -> Result<Resource, ComponentError> {
        self.check("Secret name", "Secret key")?;
        let data = self
            .data
            .iter()
            .map(|(key, value)| (key.clone(), ByteString(value.expose().as_bytes().to_vec())))
            .collect();
        to_resource(&Secret {
            metadata: self.metadata(),
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Secret::default()
        })
    }
}

/// A DNS-1123 subdomain-ish object name (lowercase, digits, `-`, `.`; ≤ 253).
fn check_object_name(what: &'static str, name: &str) -> Result<(), ComponentError> {
    if name.len() <= 253
        && !name.is_empty()
        && name
            .split('.')
            .all(|label| check_dns_label(what, label).is_ok())
    {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            what,
            name,
            "must be a lowercase DNS-1123 name",
        ))
    }
}

/// Every key must be `[A-Za-z_][A-Za-z0-9_]*`; all bad keys are reported together.
fn check_env_keys<'a>(
    what: &'static str,
    keys: impl Iterator<Item = &'a String>,
) -> Result<(), ComponentError> {
    let bad: Vec<&str> = keys
        .filter(|key| {
            !(key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
        .map(String::as_str)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            what,
            bad.join(", "),
            "environment variable names must match [A-Za-z_][A-Za-z0-9_]*",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NS, bodies, labels};
    use serde_json::json;

    fn config_map() -> EnvConfigMap {
        let data: BTreeMap<String, String> = [
            ("APP_ENV", "preview"),
            ("APP_WEB_URL", "https://123.pr.aphiria.com"),
            ("APP_API_URL", "https://123.pr-api.aphiria.com"),
            ("APP_COOKIE_DOMAIN", ".123.pr.aphiria.com"),
            ("APP_COOKIE_SECURE", "1"),
            ("DB_HOST", "db.default.svc.cluster.local"),
            ("DB_PORT", "5432"),
            ("DB_NAME", "aphiria_pr_123"),
            ("DB_USER", "aphiria"),
            ("PR_NUMBER", "123"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        EnvConfigMap {
            labels: labels(),
            ..EnvConfigMap::new(NS, "env-vars-pr-123", data)
        }
    }

    fn secret() -> EnvSecret {
        EnvSecret {
            labels: labels(),
            ..EnvSecret::new(
                NS,
                "env-var-secrets-pr-123",
                BTreeMap::from([("DB_PASSWORD".to_owned(), SecretString::new("s3cret-canary"))]),
            )
        }
    }

    #[test]
    fn snapshot() {
        let resources = [
            config_map().build().expect("cm"),
            secret().build().expect("secret"),
        ];
        insta::assert_yaml_snapshot!(bodies(&resources));
    }

    #[test]
    fn config_map_keys_and_values() {
        let cm = config_map().build().expect("cm");
        assert_eq!(cm.id.name, "env-vars-pr-123");
        assert_eq!(cm.id.namespace.as_deref(), Some(NS));
        assert_eq!(cm.body["data"]["DB_NAME"], "aphiria_pr_123");
        assert_eq!(cm.body["data"]["APP_COOKIE_DOMAIN"], ".123.pr.aphiria.com");
        assert_eq!(cm.body["data"].as_object().map(|m| m.len()), Some(10));
    }

    #[test]
    fn secret_is_base64_data_and_secret_path() {
        let s = secret().build().expect("secret");
        assert_eq!(s.body["type"], "Opaque");
        // base64("s3cret-canary")
        assert_eq!(
            s.body["data"],
            json!({"DB_PASSWORD": "czNjcmV0LWNhbmFyeQ=="})
        );
        assert!(s.body.get("stringData").is_none());
        assert!(s.is_secret_path("/data/DB_PASSWORD"));
        assert!(!format!("{s:?}").contains("s3cret-canary"));
    }

    #[test]
    fn bad_keys_are_all_reported() {
        let mut cm = config_map();
        cm.data.insert("1BAD".into(), "x".into());
        cm.data.insert("ALSO-BAD".into(), "x".into());
        let err = cm.build().expect_err("bad keys").to_string();
        assert!(err.contains("1BAD, ALSO-BAD"), "{err}");
        let mut s = secret();
        s.data.insert("db.password".into(), SecretString::new("x"));
        assert!(
            s.build()
                .expect_err("bad")
                .to_string()
                .contains("db.password")
        );
        let mut s = secret();
        s.name = "Env_Secrets".into();
        assert!(s.build().is_err());
    }
}
