//! The web front end: the `js-config` ConfigMap, an nginx `Deployment` serving the
//! static site, and Service `web`.
//!
//! The site's JavaScript reads its environment (the API's URL) from
//! `js/config/config.js`, which the reference project ships as the `js-config`
//! ConfigMap mounted at `/usr/share/nginx/html/js/config`. Its content is an ES
//! module, as in the reference (`infrastructure/kubernetes/base/web/config-maps.yml`):
//!
//! ```js
//! export default {
//!     apiUri: "https://123.pr-api.aphiria.com"
//! }
//! ```
//!
//! Extra entries can be added with [`Web::js_config`]; values are written as JSON
//! strings (so quotes and backslashes are escaped) and keys must be JavaScript
//! identifiers. The engine stamps a hash of the ConfigMap into the pod template, so
//! a new API URL rolls the pods.
//!
//! Defaults from the reference: 1 replica, rolling update with `maxUnavailable: 0`
//! and `maxSurge: 1`, readiness `GET /` every 5 s after 5 s, liveness `GET /` every
//! 30 s after 10 s.
//!
//! # Unprivileged
//! The pod is restricted-compliant by default ([`crate::security::Hardening`]: a
//! non-root user, no privilege escalation, no capabilities, seccomp
//! `RuntimeDefault`, no service-account token), so nginx cannot bind port 80: the
//! container listens on [`HTTP_PORT`] (8080, named `http`) and Service `web` maps
//! its port 80 to it. The web image must therefore serve the site as a non-root
//! user on 8080 — what an image built `FROM nginxinc/nginx-unprivileged` does with
//! its default server (it also keeps nginx's pid and temporary files in `/tmp`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, PodSpec, PodTemplateSpec, Service, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;

use crate::common::{
    ComputeResources, ImagePullPolicy, Labels, check_dns_label, check_not_blank,
    check_not_negative, http_probe, match_labels, meta, pull_secrets, requirements,
    selector_labels, tcp_container_port, tcp_service_port, template_meta, to_resource,
};
use crate::error::ComponentError;
use crate::security::{Hardening, harden};

/// The key of the API URL in `config.js`.
pub const API_URI_KEY: &str = "apiUri";

/// The port the web and API pods listen on (unprivileged; their Services expose 80).
pub const HTTP_PORT: u16 = 8080;

/// The web Deployment and its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Web {
    /// Namespace.
    pub namespace: String,
    /// Name of the Deployment and Service (default `web`).
    pub name: String,
    /// Image (nginx with the built site), pinned by digest (required).
    pub image: String,
    /// Pull policy (default `IfNotPresent`).
    pub image_pull_policy: ImagePullPolicy,
    /// Replicas (default 1; production uses 2+).
    pub replicas: i32,
    /// Container requests/limits (default none).
    pub resources: Option<ComputeResources>,
    /// Restricted-compliant security settings (default [`Hardening::default`];
    /// `None` renders no security context).
    pub hardening: Option<Hardening>,
    /// The API's public URL, written to `config.js` as `apiUri`.
    pub api_url: String,
    /// Further `config.js` entries (default none).
    pub js_config: BTreeMap<String, String>,
    /// ConfigMap name (default `js-config`).
    pub js_config_name: String,
    /// Where the ConfigMap is mounted (default `/usr/share/nginx/html/js/config`).
    pub js_config_mount_path: String,
    /// Readiness/liveness path (default `/`).
    pub probe_path: String,
    /// `imagePullSecrets` names (default none).
    pub image_pull_secrets: Vec<String>,
    /// Extra labels for every object.
    pub labels: Labels,
}

/// What [`Web::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct WebResources {
    /// `js-config`.
    pub config_map: Resource,
    /// The Deployment.
    pub deployment: Resource,
    /// Service `web`.
    pub service: Resource,
}

impl WebResources {
    /// All resources.
    pub fn into_resources(self) -> Vec<Resource> {
        vec![self.config_map, self.deployment, self.service]
    }
}

impl Web {
    /// `image` in `namespace`, pointing the site at `api_url`.
    pub fn new(
        namespace: impl Into<String>,
        image: impl Into<String>,
        api_url: impl Into<String>,
    ) -> Self {
        Web {
            namespace: namespace.into(),
            name: "web".to_owned(),
            image: image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            replicas: 1,
            resources: None,
            hardening: Some(Hardening::default()),
            api_url: api_url.into(),
            js_config: BTreeMap::new(),
            js_config_name: "js-config".to_owned(),
            js_config_mount_path: "/usr/share/nginx/html/js/config".to_owned(),
            probe_path: "/".to_owned(),
            image_pull_secrets: Vec::new(),
            labels: Labels::new(),
        }
    }

    /// The content of `config.js`.
    pub fn config_js(&self) -> Result<String, ComponentError> {
        let mut entries = BTreeMap::from([(API_URI_KEY, self.api_url.as_str())]);
        for (key, value) in &self.js_config {
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            if !valid {
                return Err(ComponentError::invalid(
                    "js-config key",
                    key.as_str(),
                    "must be a JavaScript identifier",
                ));
            }
            entries.insert(key, value);
        }
        let lines: Vec<String> = entries
            .into_iter()
            .map(|(key, value)| {
                // A JSON string is a valid JavaScript string literal.
                let literal = serde_json::Value::from(value).to_string();
                format!("    {key}: {literal}")
            })
            .collect();
        Ok(format!("export default {{\n{}\n}}\n", lines.join(",\n")))
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<WebResources, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("web name", &self.name)?;
        check_dns_label("js-config name", &self.js_config_name)?;
        check_not_blank("web image", &self.image)?;
        if !self.api_url.starts_with("https://") && !self.api_url.starts_with("http://") {
            return Err(ComponentError::invalid(
                "API URL",
                self.api_url.as_str(),
                "must be an http(s) URL",
            ));
        }
        check_not_negative("web replicas", self.replicas)?;
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(&self.name, "frontend");

        let config_map = to_resource(&ConfigMap {
            metadata: meta(&self.js_config_name, ns, &labels),
            data: Some(BTreeMap::from([(
                "config.js".to_owned(),
                self.config_js()?,
            )])),
            ..ConfigMap::default()
        })?;

        let container = Container {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.to_k8s(),
            ports: Some(vec![tcp_container_port("http", HTTP_PORT)]),
            volume_mounts: Some(vec![VolumeMount {
                name: "js-config".to_owned(),
                mount_path: self.js_config_mount_path.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
            readiness_probe: Some(http_probe(&self.probe_path, "http", 5, 5)),
            liveness_probe: Some(http_probe(&self.probe_path, "http", 10, 30)),
            resources: requirements(self.resources.as_ref()),
            ..Container::default()
        };
        let mut pod = PodSpec {
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "js-config".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.js_config_name.clone(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            image_pull_secrets: pull_secrets(&self.image_pull_secrets),
            ..PodSpec::default()
        };
        harden(&mut pod, self.hardening.as_ref());
        let deployment = rolling_deployment(&self.name, ns, &labels, self.replicas, pod)?;

        let service = http_service(&self.name, &self.namespace, &labels)?;
        Ok(WebResources {
            config_map,
            deployment,
            service,
        })
    }
}

/// Rolling update that never drops below the desired replicas (`maxUnavailable: 0`, `maxSurge: 1`).
pub(crate) fn rolling_update() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        }),
    }
}

/// A Deployment `name` of `replicas` pods running `pod`, labelled `labels`, selected
/// by [`selector_labels`]`(name)` and updated with [`rolling_update`].
pub(crate) fn rolling_deployment(
    name: &str,
    namespace: Option<&str>,
    labels: &Labels,
    replicas: i32,
    pod: PodSpec,
) -> Result<Resource, ComponentError> {
    to_resource(&Deployment {
        metadata: meta(name, namespace, labels),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: match_labels(selector_labels(name)),
            strategy: Some(rolling_update()),
            template: PodTemplateSpec {
                metadata: Some(template_meta(labels)),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// A ClusterIP Service `name` on port 80 (`http`, TCP) → the pods' `http` port
/// ([`HTTP_PORT`]).
pub(crate) fn http_service(
    name: &str,
    namespace: &str,
    labels: &Labels,
) -> Result<Resource, ComponentError> {
    to_resource(&Service {
        metadata: meta(name, Some(namespace), labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(name)),
            ports: Some(vec![tcp_service_port("http", 80, "http")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NS, WEB_IMAGE, bodies, labels};
    use serde_json::json;

    fn web() -> Web {
        Web {
            labels: labels(),
            resources: Some(
                ComputeResources::new("50m", "64Mi", "250m", "128Mi")
                    .with_ephemeral_storage("64Mi", "256Mi"),
            ),
            image_pull_secrets: vec!["registry-credentials".into()],
            ..Web::new(NS, WEB_IMAGE, "https://123.pr-api.aphiria.com")
        }
    }

    #[test]
    fn snapshot() {
        let out = web().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn js_config_holds_the_api_url_and_is_mounted() {
        let out = web().build().expect("builds");
        assert_eq!(out.config_map.id.name, "js-config");
        assert_eq!(
            out.config_map.body["data"]["config.js"],
            "export default {\n    apiUri: \"https://123.pr-api.aphiria.com\"\n}\n"
        );
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "js-config");
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            "/usr/share/nginx/html/js/config"
        );
    }

    #[test]
    fn extra_js_config_entries_are_escaped() {
        let mut w = web();
        w.js_config.insert("title".into(), "PR \"123\"".into());
        assert_eq!(
            w.config_js().expect("valid"),
            "export default {\n    apiUri: \"https://123.pr-api.aphiria.com\",\n    title: \"PR \\\"123\\\"\"\n}\n"
        );
        w.js_config.insert("bad-key".into(), "x".into());
        assert!(
            w.build()
                .expect_err("key")
                .to_string()
                .contains("js-config key")
        );
    }

    #[test]
    fn container_and_service_set_list_map_keys() {
        let out = web().build().expect("builds");
        let container = &out.deployment.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], "web");
        assert_eq!(container["image"], WEB_IMAGE);
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            container["ports"],
            json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            json!({"path": "/", "port": "http"})
        );
        assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
        assert_eq!(
            container["resources"]["requests"]["ephemeral-storage"],
            "64Mi"
        );
        assert_eq!(
            container["resources"]["limits"]["ephemeral-storage"],
            "256Mi"
        );
        assert_eq!(
            out.service.body["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}])
        );
        assert_eq!(out.service.id.name, "web");
        assert_eq!(
            out.deployment.body["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            "web"
        );
        assert_eq!(
            out.deployment.body["spec"]["selector"],
            json!({"matchLabels": {"app.kubernetes.io/name": "web"}})
        );
    }

    #[test]
    fn pod_is_restricted_compliant_unless_told_otherwise() {
        let out = web().build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(
            pod["containers"][0]["securityContext"],
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
        let mut loose = web();
        loose.hardening = None;
        let out = loose.build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert!(pod.get("securityContext").is_none());
        assert!(pod["containers"][0].get("securityContext").is_none());
    }

    #[test]
    fn replicas_and_pull_policy_are_parameters() {
        let mut w = web();
        w.replicas = 2;
        w.image_pull_policy = ImagePullPolicy::Never;
        w.resources = None;
        let out = w.build().expect("builds");
        assert_eq!(out.deployment.body["spec"]["replicas"], 2);
        let container = &out.deployment.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Never");
        assert!(container.get("resources").is_none());
        let mut bad = web();
        bad.api_url = "123.pr-api.aphiria.com".into();
        assert!(bad.build().is_err());
    }
}
