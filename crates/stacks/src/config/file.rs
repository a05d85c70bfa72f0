//! The config file as written: [`ConfigFile`] and its nested sections, every
//! key optional, unknown keys rejected; which stacks read which key.

use serde::Deserialize;

use crate::{StackError, StackKind};

/// A config file as written: every key optional, unknown keys rejected.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// Public domain, e.g. `aphiria.com`.
    pub domain: Option<String>,
    /// Application name.
    pub app: Option<String>,
    /// Application namespace (local, production).
    pub namespace: Option<String>,
    /// Registry host.
    pub registry: Option<String>,
    /// Registry user for the pull Secret.
    pub registry_user: Option<String>,
    /// Render an image pull Secret.
    pub registry_pull_secret: Option<bool>,
    /// Database settings.
    pub database: Option<DatabaseFile>,
    /// ResourceQuota of the application namespace.
    pub quota: Option<QuotaFile>,
    /// Requests/limits per container.
    pub resources: Option<ResourcesFile>,
    /// Web and API replicas.
    pub replicas: Option<i32>,
    /// `LOG_LEVEL`.
    pub log_level: Option<String>,
    /// `DOC_LEXEMES_TABLE_NAME`.
    pub lexemes_table_name: Option<String>,
    /// `APP_BUILDER_API` / `APP_BUILDER_CONSOLE`.
    pub builder: Option<BuilderFile>,
    /// `APP_ENV` (local, production).
    pub app_env: Option<String>,
    /// The nginx image of the API pods.
    pub nginx_image: Option<String>,
    /// Image prefixes the stack may run.
    pub allowed_images: Option<Vec<String>>,
    /// PodSecurity level of the application namespace (local, production).
    pub pod_security: Option<String>,
    /// The PostgreSQL image.
    pub postgres_image: Option<String>,
    /// Default local images.
    pub images: Option<ImagesFile>,
    /// The Gateway.
    pub gateway: Option<GatewayFile>,
    /// TLS issuer.
    pub tls: Option<TlsFile>,
    /// Public host names (local, production).
    pub hosts: Option<HostsFile>,
    /// Kubeconfig context exported by preview-base.
    pub kube_context: Option<String>,
    /// Upstream manifest bundles.
    pub bundles: Option<Vec<BundleFile>>,
    /// Protect persistent objects from deletion.
    pub protect: Option<bool>,
    /// Render NetworkPolicies (local, production).
    pub network_policies: Option<bool>,
    /// Per-client limits on the routes.
    pub connection_limit: Option<ConnectionLimitFile>,
    /// Migration shell command.
    pub migration_command: Option<String>,
    /// Values of the app spec (`{values.NAME}`), by name.
    pub values: Option<std::collections::BTreeMap<String, String>>,
    /// Wildcard DNS records for the preview hosts (preview-base).
    pub dns: Option<DnsFile>,
    /// The DigitalOcean Kubernetes cluster (preview-cluster).
    pub cluster: Option<ClusterFile>,
    /// The identity the plan credential authenticates as (preview-base).
    pub plan_identity: Option<PlanIdentityFile>,
}

/// `planIdentity:` — who the plan-only RBAC and admission policy apply to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanIdentityFile {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: Option<String>,
    /// The user name, group name, or service account name.
    pub name: Option<String>,
    /// The service account's namespace (ServiceAccount only).
    pub namespace: Option<String>,
}

/// `cluster:` — the DOKS cluster of `preview-cluster`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterFile {
    /// Cluster name (unique in the DigitalOcean account).
    pub name: Option<String>,
    /// Region slug, e.g. `fra1`.
    pub region: Option<String>,
    /// Exact version slug, e.g. `1.33.1-do.0`.
    pub version: Option<String>,
    /// Node pools.
    pub node_pools: Option<Vec<NodePoolFile>>,
    /// Lifetime of the kubeconfig's token (`7d`).
    pub kubeconfig_expiry: Option<String>,
}

/// One entry of `cluster.nodePools:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePoolFile {
    /// Pool name (default `workers`).
    pub name: Option<String>,
    /// Droplet size slug, e.g. `s-2vcpu-4gb`.
    pub size: Option<String>,
    /// Number of nodes.
    pub count: Option<u32>,
}

/// `database:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseFile {
    /// `DB_USER`.
    pub user: Option<String>,
    /// Per-PR database name prefix.
    pub name_prefix: Option<String>,
    /// Database name (local, production).
    pub name: Option<String>,
    /// Namespace of the server.
    pub namespace: Option<String>,
    /// External server host.
    pub host: Option<String>,
    /// External server port.
    pub port: Option<u16>,
    /// External server address range.
    pub cidr: Option<String>,
    /// Data volume of the server.
    pub storage: Option<StorageFile>,
    /// `CONNECTION LIMIT` of each preview's database role.
    pub connection_limit: Option<u32>,
}

/// `database.storage:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageFile {
    /// Claim size.
    pub size: Option<QuantityValue>,
    /// StorageClass.
    pub storage_class: Option<String>,
}

/// `quota:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotaFile {
    /// CPU cap.
    pub cpu: Option<QuantityValue>,
    /// Memory cap.
    pub memory: Option<QuantityValue>,
    /// Ephemeral-storage cap.
    pub ephemeral_storage: Option<QuantityValue>,
    /// Pod cap.
    pub pods: Option<u32>,
}

/// `resources:` — one entry per container.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourcesFile {
    /// The web container.
    pub web: Option<ContainerResourcesFile>,
    /// The API pod's nginx container.
    pub api_nginx: Option<ContainerResourcesFile>,
    /// The API pod's PHP-FPM container.
    pub api_php: Option<ContainerResourcesFile>,
    /// The API pod's init container (code copy).
    pub api_init: Option<ContainerResourcesFile>,
    /// The migration Job's container.
    pub migration: Option<ContainerResourcesFile>,
    /// The in-cluster database executor's Job container (`psql`).
    pub database_job: Option<ContainerResourcesFile>,
    /// The PostgreSQL container.
    pub postgres: Option<ContainerResourcesFile>,
}

/// Requests and limits of one container.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerResourcesFile {
    /// `requests`.
    pub requests: Option<CpuMemoryFile>,
    /// `limits`.
    pub limits: Option<CpuMemoryFile>,
}

/// `cpu`, `memory` and `ephemeralStorage`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CpuMemoryFile {
    /// CPU.
    pub cpu: Option<QuantityValue>,
    /// Memory.
    pub memory: Option<QuantityValue>,
    /// Ephemeral storage.
    pub ephemeral_storage: Option<QuantityValue>,
}

/// `builder:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BuilderFile {
    /// `APP_BUILDER_API`.
    pub api: Option<String>,
    /// `APP_BUILDER_CONSOLE`.
    pub console: Option<String>,
}

/// `images:` (local): the default image per image key of the app spec (`web`,
/// `api` for the built-in app). A key the spec has no image for is an error
/// naming it, once the app is known ([`crate::StackConfig::check_app`]).
pub type ImagesFile = std::collections::BTreeMap<String, String>;

/// `gateway:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayFile {
    /// Gateway name.
    pub name: Option<String>,
    /// Gateway namespace.
    pub namespace: Option<String>,
    /// GatewayClass name.
    pub class_name: Option<String>,
}

/// `tls:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsFile {
    /// Issuer kind.
    pub issuer: Option<IssuerKind>,
    /// ACME account e-mail.
    pub email: Option<String>,
    /// DNS-01 token Secret name.
    pub dns_token_secret: Option<String>,
}

/// `hosts:` (local, production): the host per route of the app spec; `web` and
/// `api` also fill `{hosts.web}`/`{hosts.api}`. A name that is neither a route of
/// the spec nor `web`/`api` is an error naming it, once the app is known
/// ([`crate::StackConfig::check_app`]).
pub type HostsFile = std::collections::BTreeMap<String, String>;

/// One entry of `bundles:`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleFile {
    /// Short name for messages, e.g. `cert-manager-v1.20.3`.
    pub name: String,
    /// The YAML file (relative to the config file's directory).
    pub path: String,
    /// Its pinned SHA-256 (64 lowercase hex).
    pub sha256: String,
    /// Namespace for its namespaced objects (default: the file's).
    pub namespace: Option<String>,
}

/// `dns:` — wildcard DNS records pointing the preview hosts at the gateway.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsFile {
    /// Who hosts the zone (only `digitalocean`).
    pub provider: Option<DnsProvider>,
    /// The zone the records live in (default: `domain`).
    pub zone: Option<String>,
    /// TTL in seconds.
    pub ttl: Option<u32>,
    /// A fixed IPv4 address instead of the Gateway's load-balancer address.
    pub address: Option<String>,
}

/// Who hosts a DNS zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsProvider {
    /// DigitalOcean DNS, over the DigitalOcean API (token from secret `DIGITALOCEAN_TOKEN`).
    Digitalocean,
}

/// `connectionLimit:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionLimitFile {
    /// Concurrent connections per client address.
    pub connections_per_client: Option<u32>,
    /// Request rate per client address (`10r/s`).
    pub request_rate: Option<String>,
    /// Burst allowance.
    pub burst: Option<u32>,
}

/// A Kubernetes quantity written as a string (`512Mi`) or a number (`2`, `0.5`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "QuantityRepr")]
pub struct QuantityValue(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum QuantityRepr {
    Text(String),
    Integer(u64),
    Float(f64),
}

impl From<QuantityRepr> for QuantityValue {
    fn from(repr: QuantityRepr) -> Self {
        QuantityValue(match repr {
            QuantityRepr::Text(s) => s,
            QuantityRepr::Integer(n) => n.to_string(),
            QuantityRepr::Float(f) => f.to_string(),
        })
    }
}

/// Who signs the certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerKind {
    /// A self-signed ClusterIssuer (local; browsers warn).
    SelfSigned,
    /// Let's Encrypt staging over DNS-01 (DigitalOcean DNS).
    LetsencryptStaging,
    /// Let's Encrypt production over DNS-01 (DigitalOcean DNS).
    Letsencrypt,
}

impl IssuerKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::SelfSigned => "self-signed",
            IssuerKind::LetsencryptStaging => "letsencrypt-staging",
            IssuerKind::Letsencrypt => "letsencrypt",
        }
    }

    /// Parses the config spelling (used for `PREVIEW_TLS_ISSUER`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "self-signed" => Some(IssuerKind::SelfSigned),
            "letsencrypt-staging" => Some(IssuerKind::LetsencryptStaging),
            "letsencrypt" => Some(IssuerKind::Letsencrypt),
            _ => None,
        }
    }

    /// True for the Let's Encrypt issuers (which need an e-mail and a DNS token).
    pub fn is_acme(self) -> bool {
        !matches!(self, IssuerKind::SelfSigned)
    }
}

impl ConfigFile {
    /// Parses YAML; `origin` names the file in errors. An empty document is an
    /// empty configuration.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, StackError> {
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        {
            return Ok(ConfigFile::default());
        }
        serde_yaml_ng::from_str::<Option<ConfigFile>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|err| StackError::Invalid(format!("{origin}: {err}")))
    }

    /// The dotted keys that are set, for the "read by which stack" check.
    pub(super) fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |set: bool, key: &'static str| {
            if set {
                keys.push(key);
            }
        };
        add(self.domain.is_some(), "domain");
        add(self.app.is_some(), "app");
        add(self.namespace.is_some(), "namespace");
        add(self.registry.is_some(), "registry");
        add(self.registry_user.is_some(), "registryUser");
        add(self.registry_pull_secret.is_some(), "registryPullSecret");
        if let Some(db) = &self.database {
            add(db.user.is_some(), "database.user");
            add(db.name_prefix.is_some(), "database.namePrefix");
            add(db.name.is_some(), "database.name");
            add(db.namespace.is_some(), "database.namespace");
            add(db.host.is_some(), "database.host");
            add(db.port.is_some(), "database.port");
            add(db.cidr.is_some(), "database.cidr");
            add(db.storage.is_some(), "database.storage");
            add(db.connection_limit.is_some(), "database.connectionLimit");
        }
        add(self.quota.is_some(), "quota");
        if let Some(r) = &self.resources {
            add(r.web.is_some(), "resources.web");
            add(r.api_nginx.is_some(), "resources.apiNginx");
            add(r.api_php.is_some(), "resources.apiPhp");
            add(r.api_init.is_some(), "resources.apiInit");
            add(r.migration.is_some(), "resources.migration");
            add(r.database_job.is_some(), "resources.databaseJob");
            add(r.postgres.is_some(), "resources.postgres");
        }
        add(self.replicas.is_some(), "replicas");
        add(self.log_level.is_some(), "logLevel");
        add(self.lexemes_table_name.is_some(), "lexemesTableName");
        add(self.builder.is_some(), "builder");
        add(self.app_env.is_some(), "appEnv");
        add(self.nginx_image.is_some(), "nginxImage");
        add(self.allowed_images.is_some(), "allowedImages");
        add(self.pod_security.is_some(), "podSecurity");
        add(self.postgres_image.is_some(), "postgresImage");
        add(self.images.is_some(), "images");
        add(self.gateway.is_some(), "gateway");
        add(self.tls.is_some(), "tls");
        add(self.hosts.is_some(), "hosts");
        add(self.kube_context.is_some(), "kubeContext");
        add(self.bundles.is_some(), "bundles");
        add(self.protect.is_some(), "protect");
        add(self.network_policies.is_some(), "networkPolicies");
        add(self.connection_limit.is_some(), "connectionLimit");
        add(self.migration_command.is_some(), "migrationCommand");
        add(self.values.is_some(), "values");
        add(self.dns.is_some(), "dns");
        add(self.cluster.is_some(), "cluster");
        add(self.plan_identity.is_some(), "planIdentity");
        keys
    }
}

/// The stacks that read a (dotted) key.
pub(super) fn readers(key: &str) -> &'static [StackKind] {
    use StackKind::{
        Local as L, PreviewBase as B, PreviewCluster as C, PreviewPr as P, Production as X,
    };
    match key {
        "database.namePrefix" => &[P],
        "database.connectionLimit" => &[P],
        "database.name" | "database.host" | "database.port" | "database.cidr" => &[L, X],
        "database.namespace" | "database.storage" | "resources.postgres" | "postgresImage"
        | "gateway" | "tls" | "bundles" => &[L, B, X],
        "namespace" | "appEnv" | "hosts" | "networkPolicies" | "podSecurity" => &[L, X],
        "allowedImages" => &[L, B, P, X],
        "quota"
        | "replicas"
        | "logLevel"
        | "lexemesTableName"
        | "builder"
        | "nginxImage"
        | "connectionLimit"
        | "migrationCommand"
        | "values"
        | "resources.web"
        | "resources.apiNginx"
        | "resources.apiPhp"
        | "resources.apiInit"
        | "resources.migration"
        | "resources.databaseJob" => &[L, P, X],
        "images" => &[L],
        "kubeContext" | "dns" | "planIdentity" => &[B],
        "protect" => &[B, X, C],
        "cluster" => &[C],
        _ => &[L, B, P, X],
    }
}
