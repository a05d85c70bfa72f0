//! The API: an `nginx-config` ConfigMap, a `Deployment` with nginx + PHP-FPM, and
//! Service `api`.
//!
//! Pod layout, as in the reference project's `api-deployment.ts`:
//! - init container `copy-api-code` (API image) copies the application from
//!   [`Api::code_path`] (`/app/api`) into the shared `emptyDir` volume `api-code`,
//!   preserving permissions;
//! - container `nginx` (the nginx image) serves `api-code` on port 8080 (`http`,
//!   [`crate::web::HTTP_PORT`]; Service `api` exposes it as port 80) with
//!   the `default.conf` from the `nginx-config` ConfigMap, passing PHP to
//!   `127.0.0.1:9000`; readiness and liveness `GET /health`;
//! - container `php` (the API image, PHP-FPM) listens on 9000 (`fastcgi`), mounts
//!   `api-code` at the same path, and gets the runtime environment with `envFrom`:
//!   the env ConfigMap, then the env Secret.
//!
//! Both images are parameters (pinned by digest; nothing is hard-coded, unlike the
//! reference's `nginx:alpine`). The engine stamps a hash of the ConfigMaps and the
//! Secret into the pod template, so configuration changes roll the pods.
//!
//! The pod is restricted-compliant by default ([`crate::security::Hardening`], on
//! every container and init container), so both images must run as a non-root
//! user: nginx from `nginxinc/nginx-unprivileged` (the stacks' default), PHP-FPM
//! on its unprivileged port 9000.
//!
//! # Migrations
//! [`Migration`] chooses how the database is migrated before the API serves:
//! - [`Migration::AfterJob`] (what [`Api::new`] sets up): the Deployment depends on
//!   the migration Job's id ([`crate::migration::MigrationJob::id`]), so the engine
//!   applies it only after the Job has completed;
//! - [`Migration::InitContainer`]: a `db-migration` init container runs the command
//!   in the API image before the pod's containers start (every pod start migrates);
//! - [`Migration::None`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, Container, EmptyDirVolumeSource,
    EnvFromSource, KeyToPath, PodSpec, SecretEnvSource, Volume, VolumeMount,
};
use preview_core::{Resource, ResourceId};

use crate::common::{
    ComputeResources, ImagePullPolicy, Labels, check_dns_label, check_not_blank,
    check_not_negative, http_probe, meta, pull_secrets, requirements, tcp_container_port,
    to_resource,
};
use crate::error::ComponentError;
use crate::security::{Hardening, harden};
use crate::web::{HTTP_PORT, http_service, rolling_deployment};

/// How the database is migrated before the API runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Apply the Deployment only after this migration Job has completed.
    AfterJob(ResourceId),
    /// Run this shell command in an init container of every API pod.
    InitContainer {
        /// Shell command (e.g. [`crate::migration::DEFAULT_COMMAND`]).
        command: String,
    },
    /// No migration.
    None,
}

/// The API Deployment and its nginx configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// Namespace.
    pub namespace: String,
    /// Name of the Deployment and Service (default `api`).
    pub name: String,
    /// The API image (PHP-FPM with the code), pinned by digest (required).
    pub php_image: String,
    /// The nginx image, pinned by digest (required).
    pub nginx_image: String,
    /// Pull policy for both images (default `IfNotPresent`).
    pub image_pull_policy: ImagePullPolicy,
    /// Replicas (default 1).
    pub replicas: i32,
    /// The env ConfigMap, e.g. `env-vars-pr-123`.
    pub env_config_map: String,
    /// The env Secret, e.g. `env-var-secrets-pr-123`.
    pub env_secret: String,
    /// Migration gating.
    pub migration: Migration,
    /// Where the API image keeps the code (default `/app/api`).
    pub code_path: String,
    /// Where nginx and PHP-FPM see the code (default `/usr/share/nginx/html`).
    pub web_root: String,
    /// nginx ConfigMap name (default `nginx-config`).
    pub nginx_config_name: String,
    /// nginx `default.conf` (default [`default_nginx_conf`] of [`Self::web_root`]).
    pub nginx_conf: Option<String>,
    /// Health path for the probes (default `/health`).
    pub health_path: String,
    /// Requests/limits of the nginx container (default none).
    pub nginx_resources: Option<ComputeResources>,
    /// Requests/limits of the php container (default none).
    pub php_resources: Option<ComputeResources>,
    /// Requests/limits of the init containers (default none).
    pub init_resources: Option<ComputeResources>,
    /// Restricted-compliant security settings (default [`Hardening::default`];
    /// `None` renders no security context).
    pub hardening: Option<Hardening>,
    /// `imagePullSecrets` names (default none).
    pub image_pull_secrets: Vec<String>,
    /// Extra labels for every object.
    pub labels: Labels,
}

/// What [`Api::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiResources {
    /// `nginx-config`.
    pub nginx_config: Resource,
    /// The Deployment (depends on the migration Job with [`Migration::AfterJob`]).
    pub deployment: Resource,
    /// Service `api`.
    pub service: Resource,
}

impl ApiResources {
    /// All resources.
    pub fn into_resources(self) -> Vec<Resource> {
        vec![self.nginx_config, self.deployment, self.service]
    }
}

/// A PHP front controller behind nginx on port 8080 ([`crate::web::HTTP_PORT`]):
/// static files from `<web_root>/public`, everything else to `index.php` on
/// PHP-FPM at `127.0.0.1:9000`.
pub fn default_nginx_conf(web_root: &str) -> String {
    let port = HTTP_PORT;
    format!(
        r#"server {{
    listen {port};
    root {web_root}/public;
    index index.php;
    add_header X-Content-Type-Options "nosniff";
    add_header X-Frame-Options "SAMEORIGIN";

    location / {{
        try_files $uri /index.php$is_args$args;
    }}

    location ~ \.php$ {{
        fastcgi_split_path_info ^(.+\.php)(/.+)$;
        fastcgi_pass 127.0.0.1:9000;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param PATH_INFO $fastcgi_path_info;
        fastcgi_hide_header X-Powered-By;
    }}
}}
"#
    )
}

/// `envFrom`: the ConfigMap, then the Secret.
pub(crate) fn env_from(config_map: &str, secret: &str) -> Vec<EnvFromSource> {
    vec![
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map.to_owned(),
                optional: None,
            }),
            ..EnvFromSource::default()
        },
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.to_owned(),
                optional: None,
            }),
            ..EnvFromSource::default()
        },
    ]
}

impl Api {
    /// The API of `php_image` behind `nginx_image`, reading `env_config_map` and
    /// `env_secret`, applied after the migration Job `migration_job` completed.
    pub fn new(
        namespace: impl Into<String>,
        php_image: impl Into<String>,
        nginx_image: impl Into<String>,
        env_config_map: impl Into<String>,
        env_secret: impl Into<String>,
        migration_job: ResourceId,
    ) -> Self {
        Api {
            namespace: namespace.into(),
            name: "api".to_owned(),
            php_image: php_image.into(),
            nginx_image: nginx_image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            replicas: 1,
            env_config_map: env_config_map.into(),
            env_secret: env_secret.into(),
            migration: Migration::AfterJob(migration_job),
            code_path: "/app/api".to_owned(),
            web_root: "/usr/share/nginx/html".to_owned(),
            nginx_config_name: "nginx-config".to_owned(),
            nginx_conf: None,
            health_path: "/health".to_owned(),
            nginx_resources: None,
            php_resources: None,
            init_resources: None,
            hardening: Some(Hardening::default()),
            image_pull_secrets: Vec::new(),
            labels: Labels::new(),
        }
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<ApiResources, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("api name", &self.name)?;
        check_dns_label("nginx config name", &self.nginx_config_name)?;
        check_not_blank("API image", &self.php_image)?;
        check_not_blank("nginx image", &self.nginx_image)?;
        check_not_negative("api replicas", self.replicas)?;
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(&self.name, "backend");

        let conf = self
            .nginx_conf
            .clone()
            .unwrap_or_else(|| default_nginx_conf(&self.web_root));
        let nginx_config = to_resource(&ConfigMap {
            metadata: meta(&self.nginx_config_name, ns, &labels),
            data: Some(BTreeMap::from([("default.conf".to_owned(), conf)])),
            ..ConfigMap::default()
        })?;

        let pull_policy = self.image_pull_policy.to_k8s();
        let code_mount = VolumeMount {
            name: "api-code".to_owned(),
            mount_path: self.web_root.clone(),
            ..VolumeMount::default()
        };
        let mut init_containers = vec![Container {
            name: "copy-api-code".to_owned(),
            image: Some(self.php_image.clone()),
            image_pull_policy: pull_policy.clone(),
            command: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("cp -Rp {}/. {}", self.code_path, self.web_root),
            ]),
            volume_mounts: Some(vec![code_mount.clone()]),
            resources: requirements(self.init_resources.as_ref()),
            ..Container::default()
        }];
        if let Migration::InitContainer { command } = &self.migration {
            check_not_blank("migration command", command)?;
            init_containers.push(Container {
                name: "db-migration".to_owned(),
                image: Some(self.php_image.clone()),
                image_pull_policy: pull_policy.clone(),
                command: Some(vec!["sh".to_owned(), "-c".to_owned(), command.clone()]),
                env_from: Some(env_from(&self.env_config_map, &self.env_secret)),
                resources: requirements(self.init_resources.as_ref()),
                ..Container::default()
            });
        }
        let nginx = Container {
            name: "nginx".to_owned(),
            image: Some(self.nginx_image.clone()),
            image_pull_policy: pull_policy.clone(),
            ports: Some(vec![tcp_container_port("http", HTTP_PORT)]),
            volume_mounts: Some(vec![
                code_mount.clone(),
                VolumeMount {
                    name: "nginx-config".to_owned(),
                    mount_path: "/etc/nginx/conf.d/default.conf".to_owned(),
                    sub_path: Some("default.conf".to_owned()),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]),
            readiness_probe: Some(http_probe(&self.health_path, "http", 5, 5)),
            liveness_probe: Some(http_probe(&self.health_path, "http", 10, 30)),
            resources: requirements(self.nginx_resources.as_ref()),
            ..Container::default()
        };
        let php = Container {
            name: "php".to_owned(),
            image: Some(self.php_image.clone()),
            image_pull_policy: pull_policy,
            ports: Some(vec![tcp_container_port("fastcgi", 9000)]),
            env_from: Some(env_from(&self.env_config_map, &self.env_secret)),
            volume_mounts: Some(vec![code_mount]),
            resources: requirements(self.php_resources.as_ref()),
            ..Container::default()
        };
        let volumes = vec![
            Volume {
                name: "api-code".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            Volume {
                name: "nginx-config".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.nginx_config_name.clone(),
                    items: Some(vec![KeyToPath {
                        key: "default.conf".to_owned(),
                        path: "default.conf".to_owned(),
                        mode: None,
                    }]),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
        ];
        let mut pod = PodSpec {
            init_containers: Some(init_containers),
            containers: vec![nginx, php],
            volumes: Some(volumes),
            image_pull_secrets: pull_secrets(&self.image_pull_secrets),
            ..PodSpec::default()
        };
        harden(&mut pod, self.hardening.as_ref());
        let mut deployment = rolling_deployment(&self.name, ns, &labels, self.replicas, pod)?;
        if let Migration::AfterJob(job) = &self.migration {
            deployment = deployment.depends_on(job);
        }

        let service = http_service(&self.name, &self.namespace, &labels)?;
        Ok(ApiResources {
            nginx_config,
            deployment,
            service,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{DEFAULT_COMMAND, MigrationJob};
    use crate::test_support::{API_IMAGE, NGINX_IMAGE, NS, bodies, labels};
    use serde_json::json;

    fn job() -> MigrationJob {
        MigrationJob::new(NS, API_IMAGE, "env-vars-pr-123", "env-var-secrets-pr-123")
    }

    fn api() -> Api {
        let resources = ComputeResources::new("100m", "128Mi", "500m", "256Mi")
            .with_ephemeral_storage("128Mi", "1Gi");
        Api {
            labels: labels(),
            nginx_resources: Some(resources.clone()),
            php_resources: Some(resources.clone()),
            init_resources: Some(resources),
            ..Api::new(
                NS,
                API_IMAGE,
                NGINX_IMAGE,
                "env-vars-pr-123",
                "env-var-secrets-pr-123",
                job().id().expect("id"),
            )
        }
    }

    #[test]
    fn snapshot() {
        let out = api().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn applied_only_after_the_migration_job() {
        let out = api().build().expect("builds");
        let job_id = job().id().expect("id");
        assert!(out.deployment.depends_on.contains(&job_id));
        assert_eq!(job_id.kind, "Job");
        assert!(job_id.name.starts_with("db-migration-"));
    }

    #[test]
    fn env_comes_from_the_config_map_and_secret() {
        let out = api().build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        let php = &pod["containers"][1];
        assert_eq!(php["name"], "php");
        assert_eq!(php["image"], API_IMAGE);
        assert_eq!(
            php["envFrom"],
            json!([{"configMapRef": {"name": "env-vars-pr-123"}},
                   {"secretRef": {"name": "env-var-secrets-pr-123"}}])
        );
        assert_eq!(
            php["ports"],
            json!([{"name": "fastcgi", "containerPort": 9000, "protocol": "TCP"}])
        );
        let nginx = &pod["containers"][0];
        assert_eq!(nginx["image"], NGINX_IMAGE);
        assert_eq!(nginx["readinessProbe"]["httpGet"]["path"], "/health");
        assert!(nginx.get("envFrom").is_none());
    }

    #[test]
    fn nginx_listens_unprivileged_behind_service_port_80() {
        let out = api().build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        let nginx = &pod["containers"][0];
        assert_eq!(
            nginx["ports"],
            json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(nginx["livenessProbe"]["httpGet"]["port"], "http");
        let conf = out.nginx_config.body["data"]["default.conf"]
            .as_str()
            .expect("conf");
        assert!(conf.contains("    listen 8080;\n"), "{conf}");
        assert_eq!(
            out.service.body["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}])
        );
    }

    #[test]
    fn every_container_is_hardened() {
        let mut a = api();
        a.migration = Migration::InitContainer {
            command: DEFAULT_COMMAND.into(),
        };
        let out = a.build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let containers: Vec<&serde_json::Value> = ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_array().into_iter().flatten())
            .collect();
        assert_eq!(containers.len(), 4);
        for c in containers {
            assert_eq!(
                c["securityContext"],
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
                "{}",
                c["name"]
            );
        }
    }

    #[test]
    fn code_is_shared_through_an_empty_dir() {
        let out = api().build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        let init = &pod["initContainers"];
        assert_eq!(init.as_array().map(Vec::len), Some(1));
        assert_eq!(
            init[0]["command"][2],
            "cp -Rp /app/api/. /usr/share/nginx/html"
        );
        for container in [&init[0], &pod["containers"][0], &pod["containers"][1]] {
            assert_eq!(
                container["volumeMounts"][0],
                json!({"name": "api-code", "mountPath": "/usr/share/nginx/html"})
            );
        }
        assert_eq!(
            pod["volumes"][0],
            json!({"name": "api-code", "emptyDir": {}})
        );
        let conf = out.nginx_config.body["data"]["default.conf"]
            .as_str()
            .expect("conf");
        assert!(conf.contains("fastcgi_pass 127.0.0.1:9000;"), "{conf}");
        assert!(
            conf.contains("root /usr/share/nginx/html/public;"),
            "{conf}"
        );
        assert_eq!(out.service.id.name, "api");
        assert_eq!(out.service.body["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn migration_as_init_container() {
        let mut a = api();
        a.migration = Migration::InitContainer {
            command: DEFAULT_COMMAND.into(),
        };
        let out = a.build().expect("builds");
        assert!(out.deployment.depends_on.is_empty());
        let init = &out.deployment.body["spec"]["template"]["spec"]["initContainers"];
        assert_eq!(init[1]["name"], "db-migration");
        assert_eq!(init[1]["command"][2], DEFAULT_COMMAND);
        assert_eq!(
            init[1]["envFrom"][0]["configMapRef"]["name"],
            "env-vars-pr-123"
        );
        assert_eq!(init[1]["resources"]["requests"]["cpu"], "100m");

        a.migration = Migration::None;
        let out = a.build().expect("builds");
        let init = &out.deployment.body["spec"]["template"]["spec"]["initContainers"];
        assert_eq!(init.as_array().map(Vec::len), Some(1));
    }
}
