//! The shared PostgreSQL server: credentials `Secret`, optional
//! `PersistentVolumeClaim`, `Deployment` and `Service` (`db`, port 5432).
//!
//! Mirrors the reference project's `database.ts`: a single-replica Deployment of the
//! `postgres` image (the stack passes `postgres:16` pinned by digest), credentials
//! from a Secret, data under `/var/lib/postgresql/data/pgdata` on a PVC, a
//! `pg_isready` readiness probe. Differences, on purpose:
//! - the Deployment uses the `Recreate` strategy: a `ReadWriteOnce` volume cannot
//!   be mounted by the old and the new pod at once, and two servers must never
//!   share a data directory;
//! - the credentials Secret is called `db-credentials` (the reference reused
//!   `env-var-secrets`, which collides with the application's Secret when both live
//!   in `default`) and holds `POSTGRES_USER`/`POSTGRES_PASSWORD`, which the
//!   container reads with `envFrom`;
//! - the password is a [`SecretString`] supplied by the stack — never generated
//!   here, so rendering stays deterministic;
//! - without [`Storage`] the data lives in an `emptyDir` (fine for local stacks,
//!   lost when the pod goes).
//!
//! The Service's in-cluster address is [`PostgresServer::host`]
//! (`db.default.svc.cluster.local`), which the preview-base stack exports.
//!
//! Hardening (the server runs beside untrusted preview code):
//! - the pod never gets a service-account token (`automountServiceAccountToken:
//!   false`): PostgreSQL does not talk to the API server;
//! - with [`PostgresServer::run_as`] (the stacks set it: the official image's
//!   `postgres` user, uid/gid 999 on Debian, 70 on Alpine) a restricted
//!   security context: `runAsNonRoot`, that uid and gid, `fsGroup` (volume
//!   ownership; `fsGroupChangePolicy: OnRootMismatch`), seccomp
//!   `RuntimeDefault`, `allowPrivilegeEscalation: false`, all capabilities
//!   dropped. Running as that user from the start, the image's entrypoint
//!   needs none of the root-only steps (`chown`, `gosu`);
//! - with [`PostgresServer::clients`] a NetworkPolicy `<service>-clients` in the
//!   server's namespace admits TCP 5432 to the server's pods only from the
//!   namespaces and the local pods it names (preview-base: every preview
//!   namespace, and the in-cluster database Jobs), and nothing else.

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret, SecretEnvSource,
    SecurityContext, Service, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;
use preview_core::secret::SecretString;
use std::collections::BTreeMap;

use crate::common::{
    ComputeResources, ImagePullPolicy, Labels, check_dns_label, check_not_blank, check_secret_set,
    match_labels, meta, pull_secrets, requirements, selector_labels, tcp_container_port,
    tcp_service_port, template_meta, to_resource,
};
use crate::error::ComponentError;

/// `app.kubernetes.io/name` of the server's pods (selected by the network policies).
pub const NAME: &str = "postgresql";
/// The PostgreSQL port.
pub const PORT: u16 = 5432;
/// Where the data volume is mounted.
const DATA_MOUNT: &str = "/var/lib/postgresql/data";

/// A PostgreSQL server.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresServer {
    /// Namespace (default `default`).
    pub namespace: String,
    /// Name of the Service and the Deployment (default `db`).
    pub service_name: String,
    /// Image, e.g. `postgres:16` pinned by digest (required; no default tag).
    pub image: String,
    /// Pull policy (default `IfNotPresent`).
    pub image_pull_policy: ImagePullPolicy,
    /// Superuser name (`POSTGRES_USER`), e.g. `aphiria`.
    pub user: String,
    /// Superuser password (`POSTGRES_PASSWORD`), supplied by the stack.
    pub password: SecretString,
    /// Name of the credentials Secret (default `db-credentials`).
    pub credentials_secret: String,
    /// Persistent storage; `None` = `emptyDir`.
    pub storage: Option<Storage>,
    /// Container requests/limits (default none).
    pub resources: Option<ComputeResources>,
    /// `imagePullSecrets` names (default none).
    pub image_pull_secrets: Vec<String>,
    /// Extra labels for every object.
    pub labels: Labels,
    /// Run as this (non-root) user and group; `None` = the image's default
    /// (root, dropping to `postgres` itself) and no restricted context.
    pub run_as: Option<i64>,
    /// Who may connect; `None` = no NetworkPolicy (every pod may).
    pub clients: Option<ServerClients>,
}

/// The pods admitted to the server's port by its NetworkPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerClients {
    /// Pods in namespaces matching this selector (e.g. every preview namespace).
    pub namespaces: LabelSelector,
    /// Pods of the server's own namespace matching this selector (e.g. the
    /// database Jobs).
    pub local_pods: LabelSelector,
}

/// uid (and gid) of the `postgres` user of the official Debian-based image.
pub const DEBIAN_POSTGRES_UID: i64 = 999;
/// uid (and gid) of the `postgres` user of the official Alpine-based image.
pub const ALPINE_POSTGRES_UID: i64 = 70;

/// The `postgres` uid of an official image reference (`postgres:16-alpine@…` →
/// 70, `postgres:16@…` → 999).
pub fn postgres_uid(image: &str) -> i64 {
    let tag = image
        .rsplit_once('/')
        .map_or(image, |(_, last)| last)
        .split('@')
        .next()
        .unwrap_or_default();
    if tag.contains("alpine") {
        ALPINE_POSTGRES_UID
    } else {
        DEBIAN_POSTGRES_UID
    }
}

/// The data volume's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// PVC name (default `db-pv-claim`, as in the reference project).
    pub claim_name: String,
    /// Requested size, e.g. `10Gi` (required).
    pub size: String,
    /// StorageClass; `None` = the cluster default.
    pub storage_class: Option<String>,
}

impl Storage {
    /// A `ReadWriteOnce` claim of `size` on the default StorageClass.
    pub fn new(size: impl Into<String>) -> Self {
        Storage {
            claim_name: "db-pv-claim".to_owned(),
            size: size.into(),
            storage_class: None,
        }
    }
}

/// What [`PostgresServer::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresResources {
    /// The clients NetworkPolicy, with [`PostgresServer::clients`].
    pub network_policy: Option<Resource>,
    /// Credentials Secret.
    pub secret: Resource,
    /// Data claim, when storage is persistent.
    pub claim: Option<Resource>,
    /// The server.
    pub deployment: Resource,
    /// Service `db`.
    pub service: Resource,
}

impl PostgresResources {
    /// All resources.
    pub fn into_resources(self) -> Vec<Resource> {
        let mut out = vec![self.secret];
        out.extend(self.claim);
        out.extend([self.deployment, self.service]);
        out.extend(self.network_policy);
        out
    }
}

impl PostgresServer {
    /// Service `db` in `default`, ephemeral storage, no resources.
    pub fn new(image: impl Into<String>, user: impl Into<String>, password: SecretString) -> Self {
        PostgresServer {
            namespace: "default".to_owned(),
            service_name: "db".to_owned(),
            image: image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            user: user.into(),
            password,
            credentials_secret: "db-credentials".to_owned(),
            storage: None,
            resources: None,
            image_pull_secrets: Vec::new(),
            labels: Labels::new(),
            run_as: None,
            clients: None,
        }
    }

    /// The Service's cluster FQDN, e.g. `db.default.svc.cluster.local`.
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service_name, self.namespace)
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<PostgresResources, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("service name", &self.service_name)?;
        check_not_blank("postgres image", &self.image)?;
        crate::database::check_identifier("postgres user", &self.user)?;
        check_secret_set("postgres password", &self.password)?;
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(NAME, "database");

        let secret = to_resource(&Secret {
            metadata: meta(&self.credentials_secret, ns, &labels),
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([
                (
                    "POSTGRES_PASSWORD".to_owned(),
                    ByteString(self.password.expose().as_bytes().to_vec()),
                ),
                (
                    "POSTGRES_USER".to_owned(),
                    ByteString(self.user.as_bytes().to_vec()),
                ),
            ])),
            ..Secret::default()
        })?;

        let claim = self
            .storage
            .as_ref()
            .map(|storage| {
                to_resource(&PersistentVolumeClaim {
                    metadata: meta(&storage.claim_name, ns, &labels),
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                        storage_class_name: storage.storage_class.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some(BTreeMap::from([(
                                "storage".to_owned(),
                                Quantity(storage.size.clone()),
                            )])),
                            ..VolumeResourceRequirements::default()
                        }),
                        ..PersistentVolumeClaimSpec::default()
                    }),
                    ..PersistentVolumeClaim::default()
                })
            })
            .transpose()?;

        let data_volume = match &self.storage {
            Some(storage) => Volume {
                name: "data".to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: storage.claim_name.clone(),
                    read_only: None,
                }),
                ..Volume::default()
            },
            None => Volume {
                name: "data".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        };
        let container = Container {
            name: "postgres".to_owned(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.to_k8s(),
            ports: Some(vec![tcp_container_port("postgres", PORT)]),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: self.credentials_secret.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            env: Some(vec![EnvVar {
                name: "PGDATA".to_owned(),
                value: Some(format!("{DATA_MOUNT}/pgdata")),
                value_from: None,
            }]),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".to_owned(),
                mount_path: DATA_MOUNT.to_owned(),
                ..VolumeMount::default()
            }]),
            readiness_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: Some(
                        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"]
                            .map(str::to_owned)
                            .to_vec(),
                    ),
                }),
                initial_delay_seconds: Some(5),
                period_seconds: Some(10),
                timeout_seconds: Some(5),
                failure_threshold: Some(5),
                ..Probe::default()
            }),
            resources: requirements(self.resources.as_ref()),
            security_context: self.run_as.map(|_| SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        if let Some(uid) = self.run_as
            && uid <= 0
        {
            return Err(ComponentError::invalid(
                "postgres runAsUser",
                uid.to_string(),
                "must be a non-root uid (the image's postgres user)",
            ));
        }
        let pod_security = self.run_as.map(|uid| PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(uid),
            fs_group: Some(uid),
            fs_group_change_policy: Some("OnRootMismatch".to_owned()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        });
        let deployment = to_resource(&Deployment {
            metadata: meta(&self.service_name, ns, &labels),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: match_labels(selector_labels(NAME)),
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".to_owned()),
                    rolling_update: None,
                }),
                template: PodTemplateSpec {
                    metadata: Some(template_meta(&labels)),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        volumes: Some(vec![data_volume]),
                        image_pull_secrets: pull_secrets(&self.image_pull_secrets),
                        automount_service_account_token: Some(false),
                        security_context: pod_security,
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        })?;

        let service = to_resource(&Service {
            metadata: meta(&self.service_name, ns, &labels),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                selector: Some(selector_labels(NAME)),
                ports: Some(vec![tcp_service_port("postgres", PORT, "postgres")]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })?;

        let network_policy = self
            .clients
            .as_ref()
            .map(|clients| {
                to_resource(&NetworkPolicy {
                    metadata: meta(&format!("{}-clients", self.service_name), ns, &labels),
                    spec: Some(NetworkPolicySpec {
                        pod_selector: Some(match_labels(selector_labels(NAME))),
                        policy_types: Some(vec!["Ingress".to_owned()]),
                        ingress: Some(vec![NetworkPolicyIngressRule {
                            from: Some(vec![
                                NetworkPolicyPeer {
                                    namespace_selector: Some(clients.namespaces.clone()),
                                    ..NetworkPolicyPeer::default()
                                },
                                NetworkPolicyPeer {
                                    pod_selector: Some(clients.local_pods.clone()),
                                    ..NetworkPolicyPeer::default()
                                },
                            ]),
                            ports: Some(vec![NetworkPolicyPort {
                                protocol: Some("TCP".to_owned()),
                                port: Some(IntOrString::Int(i32::from(PORT))),
                                end_port: None,
                            }]),
                        }]),
                        egress: None,
                    }),
                })
            })
            .transpose()?;

        Ok(PostgresResources {
            network_policy,
            secret,
            claim,
            deployment,
            service,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{POSTGRES_IMAGE, bodies};
    use serde_json::json;

    fn server() -> PostgresServer {
        PostgresServer {
            storage: Some(Storage::new("10Gi")),
            labels: Labels::for_instance("aphiria", "preview-base"),
            run_as: Some(postgres_uid(POSTGRES_IMAGE)),
            clients: Some(ServerClients {
                namespaces: LabelSelector {
                    match_labels: Some(std::collections::BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "preview-envs".to_owned(),
                    )])),
                    ..LabelSelector::default()
                },
                local_pods: LabelSelector {
                    match_expressions: Some(vec![
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                            key: "preview-envs.io/database-operation".to_owned(),
                            operator: "Exists".to_owned(),
                            values: None,
                        },
                    ]),
                    ..LabelSelector::default()
                },
            }),
            ..PostgresServer::new(
                POSTGRES_IMAGE,
                "aphiria",
                SecretString::new("pw-canary-8c1f"),
            )
        }
    }

    #[test]
    fn snapshot() {
        let out = server().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn service_db_on_5432_and_fqdn() {
        let s = server();
        assert_eq!(s.host(), "db.default.svc.cluster.local");
        let out = s.build().expect("builds");
        assert_eq!(out.service.id.name, "db");
        assert_eq!(out.service.id.namespace.as_deref(), Some("default"));
        assert_eq!(
            out.service.body["spec"]["ports"],
            json!([{"name": "postgres", "port": 5432, "protocol": "TCP", "targetPort": "postgres"}])
        );
        assert_eq!(
            out.service.body["spec"]["selector"],
            json!({"app.kubernetes.io/name": "postgresql"})
        );
    }

    #[test]
    fn credentials_are_base64_data_and_read_with_env_from() {
        let out = server().build().expect("builds");
        assert_eq!(out.secret.id.name, "db-credentials");
        // "pw-canary-8c1f" and "aphiria", base64.
        assert_eq!(
            out.secret.body["data"],
            json!({"POSTGRES_PASSWORD": "cHctY2FuYXJ5LThjMWY=", "POSTGRES_USER": "YXBoaXJpYQ=="})
        );
        assert!(out.secret.is_secret_path("/data/POSTGRES_PASSWORD"));
        let container = &out.deployment.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"],
            "db-credentials"
        );
        assert_eq!(container["image"], POSTGRES_IMAGE);
        assert!(out.deployment.body.to_string().find("pw-canary").is_none());
    }

    #[test]
    fn storage_is_optional() {
        let out = server().build().expect("builds");
        let claim = out.claim.expect("claim");
        assert_eq!(claim.id.name, "db-pv-claim");
        assert_eq!(
            claim.body["spec"]["resources"]["requests"]["storage"],
            "10Gi"
        );
        assert!(claim.body["spec"].get("storageClassName").is_none());

        let mut ephemeral = server();
        ephemeral.storage = None;
        let out = ephemeral.build().expect("builds");
        assert!(out.claim.is_none());
        assert_eq!(
            out.deployment.body["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "data", "emptyDir": {}}])
        );

        let mut classed = server();
        classed.storage = Some(Storage {
            storage_class: Some("do-block-storage".into()),
            ..Storage::new("20Gi")
        });
        let claim = classed.build().expect("builds").claim.expect("claim");
        assert_eq!(claim.body["spec"]["storageClassName"], "do-block-storage");
    }

    #[test]
    fn the_pod_is_restricted_and_gets_no_token() {
        let out = server().build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        let uid = postgres_uid(POSTGRES_IMAGE);
        assert_eq!(
            pod["securityContext"],
            json!({"fsGroup": uid, "fsGroupChangePolicy": "OnRootMismatch", "runAsGroup": uid,
                   "runAsNonRoot": true, "runAsUser": uid,
                   "seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert_eq!(
            pod["containers"][0]["securityContext"],
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
        // Without run_as: the image's default user, no restricted context
        // (its entrypoint needs root to chown and drop to postgres).
        let mut plain = server();
        plain.run_as = None;
        let out = plain.build().expect("builds");
        let pod = &out.deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert!(pod.get("securityContext").is_none());
        let mut root = server();
        root.run_as = Some(0);
        let err = root.build().expect_err("root").to_string();
        assert!(err.contains("postgres runAsUser"), "{err}");
    }

    #[test]
    fn uids_follow_the_image_flavour() {
        assert_eq!(
            postgres_uid("docker.io/library/postgres:16-alpine@sha256:abc"),
            70
        );
        assert_eq!(
            postgres_uid("docker.io/library/postgres:16@sha256:abc"),
            999
        );
        assert_eq!(postgres_uid("postgres@sha256:abc"), 999);
        assert_eq!(postgres_uid("registry.alpine.example/postgres:16"), 999);
    }

    #[test]
    fn only_the_named_clients_reach_port_5432() {
        let out = server().build().expect("builds");
        let policy = out.network_policy.expect("policy");
        assert_eq!(policy.id.name, "db-clients");
        assert_eq!(policy.id.namespace.as_deref(), Some("default"));
        let spec = &policy.body["spec"];
        assert_eq!(
            spec["podSelector"],
            json!({"matchLabels": {"app.kubernetes.io/name": "postgresql"}})
        );
        assert_eq!(spec["policyTypes"], json!(["Ingress"]));
        let rules = spec["ingress"].as_array().expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 5432, "protocol": "TCP"}])
        );
        let from = rules[0]["from"].as_array().expect("peers");
        assert_eq!(from.len(), 2);
        assert!(
            from[0].get("podSelector").is_none(),
            "every pod of those namespaces"
        );
        assert!(
            from[1].get("namespaceSelector").is_none(),
            "own namespace only"
        );
        let mut open = server();
        open.clients = None;
        assert!(open.build().expect("builds").network_policy.is_none());
    }

    #[test]
    fn empty_password_is_rejected_without_echoing_it() {
        let mut s = server();
        s.password = SecretString::new("");
        let err = s.build().expect_err("empty");
        assert!(err.to_string().contains("postgres password"), "{err}");
    }
}
