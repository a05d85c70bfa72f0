//! A generic workload: one container of any image in a `Deployment`, and a
//! ClusterIP `Service` when it listens on a port — what an app spec's
//! `kind: container` services render (a Node.js API, a queue worker).
//!
//! The container's port is named `http`; the Service maps its
//! [`Workload::service_port`] (default 80) to it. Probes are HTTP GETs of a path
//! on that port, or TCP connects. Environment: inline `env` entries, and
//! optionally the app's shared env ConfigMap and Secret with `envFrom`.
//! Restricted-compliant by default ([`crate::security::Hardening`]), rolling
//! updates that never drop below the desired replicas, as the web and API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, EnvFromSource, EnvVar, PodSpec, Probe as K8sProbe,
    SecretEnvSource, Service, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;

use crate::common::{
    ComputeResources, ImagePullPolicy, Labels, check_dns_label, check_not_blank,
    check_not_negative, http_probe, meta, pull_secrets, requirements, selector_labels,
    tcp_container_port, tcp_service_port, to_resource,
};
use crate::error::ComponentError;
use crate::security::{Hardening, harden};
use crate::web::rolling_deployment;

/// A readiness or liveness probe on the container's `http` port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadProbe {
    /// HTTP GET of this path; `None` = TCP connect.
    pub path: Option<String>,
    /// Seconds before the first probe.
    pub initial_delay_seconds: i32,
    /// Seconds between probes.
    pub period_seconds: i32,
}

/// One container in a Deployment, and its Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Deployment, Service and container name.
    pub name: String,
    /// Image, pinned by digest (required).
    pub image: String,
    /// Pull policy (default `IfNotPresent`).
    pub image_pull_policy: ImagePullPolicy,
    /// Replicas (default 1).
    pub replicas: i32,
    /// Container port (named `http`); `None` = no port, no Service.
    pub port: Option<u16>,
    /// The Service's port (default 80).
    pub service_port: u16,
    /// `command` (default: the image's entrypoint).
    pub command: Option<Vec<String>>,
    /// `args`.
    pub args: Option<Vec<String>>,
    /// Inline environment.
    pub env: BTreeMap<String, String>,
    /// `envFrom` this ConfigMap (the app's shared env), when set.
    pub env_config_map: Option<String>,
    /// `envFrom` this Secret (the app's shared secret env), when set.
    pub env_secret: Option<String>,
    /// Readiness probe (needs a port).
    pub readiness: Option<WorkloadProbe>,
    /// Liveness probe (needs a port).
    pub liveness: Option<WorkloadProbe>,
    /// Container requests/limits (default none).
    pub resources: Option<ComputeResources>,
    /// Restricted-compliant security settings (default [`Hardening::default`]).
    pub hardening: Option<Hardening>,
    /// `imagePullSecrets` names.
    pub image_pull_secrets: Vec<String>,
    /// `app.kubernetes.io/component` (default `backend`).
    pub component: String,
    /// Extra labels for every object.
    pub labels: Labels,
}

impl Workload {
    /// `image` as `name` in `namespace`, no port.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Workload {
            namespace: namespace.into(),
            name: name.into(),
            image: image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            replicas: 1,
            port: None,
            service_port: 80,
            command: None,
            args: None,
            env: BTreeMap::new(),
            env_config_map: None,
            env_secret: None,
            readiness: None,
            liveness: None,
            resources: None,
            hardening: Some(Hardening::default()),
            image_pull_secrets: Vec::new(),
            component: "backend".to_owned(),
            labels: Labels::new(),
        }
    }

    fn probe(&self, probe: &WorkloadProbe) -> K8sProbe {
        match &probe.path {
            Some(path) => http_probe(
                path,
                "http",
                probe.initial_delay_seconds,
                probe.period_seconds,
            ),
            None => K8sProbe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::String("http".to_owned()),
                    host: None,
                }),
                initial_delay_seconds: Some(probe.initial_delay_seconds),
                period_seconds: Some(probe.period_seconds),
                ..K8sProbe::default()
            },
        }
    }

    fn env_from(&self) -> Option<Vec<EnvFromSource>> {
        let mut out = Vec::new();
        if let Some(name) = &self.env_config_map {
            out.push(EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            });
        }
        if let Some(name) = &self.env_secret {
            out.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            });
        }
        (!out.is_empty()).then_some(out)
    }

    /// Renders the Deployment and, with a port, the Service.
    pub fn build(&self) -> Result<Vec<Resource>, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("workload name", &self.name)?;
        check_not_blank("workload image", &self.image)?;
        check_not_negative("workload replicas", self.replicas)?;
        if self.port.is_none() && (self.readiness.is_some() || self.liveness.is_some()) {
            return Err(ComponentError::invalid(
                "workload probes",
                self.name.as_str(),
                "probes need a port",
            ));
        }
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(&self.name, &self.component);
        let env: Vec<EnvVar> = self
            .env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })
            .collect();
        let container = Container {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.to_k8s(),
            command: self.command.clone(),
            args: self.args.clone(),
            env: (!env.is_empty()).then_some(env),
            env_from: self.env_from(),
            ports: self.port.map(|port| vec![tcp_container_port("http", port)]),
            readiness_probe: self.readiness.as_ref().map(|p| self.probe(p)),
            liveness_probe: self.liveness.as_ref().map(|p| self.probe(p)),
            resources: requirements(self.resources.as_ref()),
            ..Container::default()
        };
        let mut pod = PodSpec {
            containers: vec![container],
            image_pull_secrets: pull_secrets(&self.image_pull_secrets),
            ..PodSpec::default()
        };
        harden(&mut pod, self.hardening.as_ref());
        let mut out = vec![rolling_deployment(
            &self.name,
            ns,
            &labels,
            self.replicas,
            pod,
        )?];
        if self.port.is_some() {
            out.push(to_resource(&Service {
                metadata: meta(&self.name, ns, &labels),
                spec: Some(ServiceSpec {
                    type_: Some("ClusterIP".to_owned()),
                    selector: Some(selector_labels(&self.name)),
                    ports: Some(vec![tcp_service_port("http", self.service_port, "http")]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NS, bodies, labels};
    use serde_json::json;

    const IMAGE: &str = "ghcr.io/example/api@sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn api() -> Workload {
        Workload {
            port: Some(3000),
            command: Some(vec!["node".into()]),
            args: Some(vec!["server.js".into()]),
            env: BTreeMap::from([("REDIS_URL".into(), "redis://redis:6379".into())]),
            env_config_map: Some("env-vars-pr-123".into()),
            env_secret: Some("env-var-secrets-pr-123".into()),
            readiness: Some(WorkloadProbe {
                path: Some("/healthz".into()),
                initial_delay_seconds: 2,
                period_seconds: 5,
            }),
            liveness: Some(WorkloadProbe {
                path: None,
                initial_delay_seconds: 5,
                period_seconds: 20,
            }),
            resources: Some(ComputeResources::new("50m", "64Mi", "200m", "128Mi")),
            labels: labels(),
            ..Workload::new(NS, "api", IMAGE)
        }
    }

    #[test]
    fn snapshot() {
        insta::assert_yaml_snapshot!(bodies(&api().build().expect("builds")));
    }

    #[test]
    fn a_worker_has_no_service_and_no_ports() {
        let worker = Workload::new(NS, "worker", IMAGE).build().expect("builds");
        assert_eq!(worker.len(), 1);
        let container = &worker[0].body["spec"]["template"]["spec"]["containers"][0];
        assert!(container.get("ports").is_none());
        assert!(container.get("env").is_none());
        assert_eq!(
            worker[0].body["spec"]["template"]["spec"]["automountServiceAccountToken"],
            false
        );
        let mut bad = Workload::new(NS, "worker", IMAGE);
        bad.readiness = api().readiness;
        assert!(bad.build().is_err());
    }

    #[test]
    fn service_maps_its_port_to_the_named_container_port() {
        let mut w = api();
        w.service_port = 8080;
        let out = w.build().expect("builds");
        assert_eq!(
            out[1].body["spec"]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": "http"}])
        );
        assert_eq!(
            out[0].body["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["tcpSocket"],
            json!({"port": "http"})
        );
    }
}
