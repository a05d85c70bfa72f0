//! Per-stack configuration: `config/<stack>.yaml`, a few environment overrides, and
//! the built-in defaults of the reference project (aphiria.com).
//!
//! Reading happens in two stages, so the parsing stays pure and testable:
//! 1. [`ConfigFile`] is the file as written: camelCase YAML, every key optional,
//!    unknown keys rejected (`deny_unknown_fields`: a typo is an error naming it).
//! 2. [`StackConfig::from_source`] resolves it for one stack: keys the stack does
//!    not read are rejected (a `quota` in `preview-base.yaml` would otherwise be
//!    silently ignored), environment overrides are applied, defaults fill the
//!    gaps, values are checked, and a required key without a value is a
//!    [`StackError::Missing`] naming the key and the file.
//!
//! [`StackConfig::load`] is the only function doing IO: it reads
//! `<dir>/<stack>.yaml` (a missing file means "all defaults", which only works
//! for stacks whose required keys all have defaults, i.e. `local`), the
//! environment, and the manifest bundles the file lists.
//!
//! # Keys
//!
//! Stacks: L = local, B = preview-base, P = preview-pr, X = production, C =
//! preview-cluster (which reads only `cluster` and `protect`). "req" =
//! required (no default). Quantities (`cpu`, `memory`, sizes) are Kubernetes
//! quantities (`250m`, `1`, `512Mi`); numbers are accepted too.
//!
//! | key | stacks | default |
//! | --- | --- | --- |
//! | `domain` | all | L `aphiria.localhost`; B, P, X req (env `PREVIEW_DOMAIN`) |
//! | `app` | all | `aphiria` (labels `app.kubernetes.io/part-of`, default DB user/names) |
//! | `namespace` | L, X | L `<app>-local`, X `<app>` (P uses `preview-pr-<N>`) |
//! | `registry` | all | `ghcr.io` (host of the pull Secret) |
//! | `registryPullSecret` | all | `false`; `true` renders `registry-credentials` from secret `REGISTRY_TOKEN` |
//! | `registryUser` | all | req when `registryPullSecret` is true |
//! | `database.user` | all | `<app>` (the PostgreSQL superuser of B/L/X, in `db-credentials`; `DB_USER` of L/X; P: the role that owns the base's server, unused by previews) |
//! | `database.namePrefix` | P | `<app>_pr_` (database and its login role `aphiria_pr_123`; `DB_USER` of the preview) |
//! | `database.connectionLimit` | P | `20` (`CONNECTION LIMIT` of each preview's database role, 1–1000) |
//! | `database.name` | L, X | `<app>_local` / `<app>_production` |
//! | `database.namespace` | L, B, X | `default` (where the PostgreSQL server runs) |
//! | `database.host`, `.port`, `.cidr` | L, X | unset: the stack runs its own server; set: use that server (`cidr` is its address range for the NetworkPolicy) |
//! | `database.storage.size`, `.storageClass` | L, B, X | B, X `10Gi` on the default class; L none (`emptyDir`) |
//! | `quota.cpu`, `.memory`, `.ephemeralStorage`, `.pods` | L, P, X | P `2` / `4Gi` / `4Gi` / `5`; L, X none (`ephemeralStorage` optional) |
//! | `resources.<container>.requests/limits.cpu/memory/ephemeralStorage` | containers `web`, `apiNginx`, `apiPhp`, `apiInit`, `migration`, `databaseJob` (the in-cluster database executor's `psql` Job, in the database's namespace) (L, P, X), `postgres` (L, B, X) | none; with a quota every app container needs cpu and memory requests and limits, and ephemeral storage ones when the quota caps it |
//! | `podSecurity` | L, X | `restricted`: the PodSecurity level the application namespace enforces (also audit and warn); `baseline` or `privileged` relax it, which every plan notes (P is always `restricted`). The stack's own pods stay restricted-compliant either way |
//! | `allowedImages` | L, B, P, X | `["<registry>/<app>/", "docker.io/nginxinc/nginx-unprivileged", "docker.io/library/postgres"]` (i.e. `ghcr.io/aphiria/` …); L also `<app>/` (local builds). Every image from a flag or this file must match one: an entry ending in `/` allows the repositories under it, any other entry one repository exactly |
//! | `replicas` | L, P, X | L, P `1`; X `2` (at least 2) |
//! | `values.<name>` | L, P, X | the app spec's (`{values.<name>}` in its templates); a name the spec does not declare is an error naming the key |
//! | `logLevel` | L, P, X | sets the built-in app's value `logLevel` (`LOG_LEVEL`; its default `debug`, X `info`) |
//! | `lexemesTableName` | L, P, X | sets the built-in app's value `lexemesTableName` (`DOC_LEXEMES_TABLE_NAME`, default `""`) |
//! | `builder.api`, `builder.console` | L, P, X | set the built-in app's values `builderApi`, `builderConsole` (defaults: the seed spec's `\Aphiria\Framework\Api\SynchronousApiApplicationBuilder`, `\Aphiria\Framework\Console\ConsoleApplicationBuilder`) |
//! | `appEnv` | L, X | sets the built-in app's value `appEnv` (`development` / `production`; P always `preview`) |
//! | `nginxImage` | L, P, X | [`DEFAULT_NGINX_IMAGE`] (`nginxinc/nginx-unprivileged`, pinned by digest; P, X require a digest) |
//! | `postgresImage` | L, B, X | L `docker.io/library/postgres:16-alpine`; B, X req (pinned by digest) |
//! | `images.<key>` | L | per image key of the app spec (used when no `--image KEY=…`): `images.web`, `images.api` default to `aphiria/web:local`, `aphiria/api:local` (`--web-image`/`--api-image`), any other key to `<app>/<key>:local`; a key the spec has no image for is an error naming it |
//! | `gateway.name`, `.namespace`, `.className` | L, B, X | B `preview-gateway`, L/X `gateway`; `nginx-gateway`; `nginx` |
//! | `tls.issuer` | L, B, X | L `self-signed`; B, X `letsencrypt` (env `PREVIEW_TLS_ISSUER`) |
//! | `tls.email` | L, B, X | req for `letsencrypt`/`letsencrypt-staging` (env `PREVIEW_TLS_EMAIL`) |
//! | `tls.dnsTokenSecret` | L, B, X | `digitalocean-dns` (DNS-01 token Secret in the gateway namespace, from secret `DIGITALOCEAN_TOKEN`) |
//! | `hosts.<route>` | L, X | the spec's host template of the route; set: that host instead. `hosts.web`, `hosts.api` also fill `{hosts.web}`, `{hosts.api}` (defaults `www.<domain>`, `api.<domain>`: the built-in app's route hosts); a name that is neither a route of the app nor `web`/`api` is an error naming it |
//! | `kubeContext` | B | none; exported as output `kubeContext` |
//! | `bundles[]` `{name, path, sha256, namespace}` | L, B, X | none; paths relative to the config file's directory |
//! | `protect` | B, X, C | `true`: the engine refuses to delete the database server, the namespaces and the database (C: the cluster) |
//! | `networkPolicies` | L, X | `true` (P always isolates) |
//! | `connectionLimit.connectionsPerClient`, `.requestRate`, `.burst` | L, P, X | `10`, `10r/s`, `20` |
//! | `migrationCommand` | L, P, X | sets the built-in app's value `migrationCommand` (default: Phinx migrate, then the LexemeSeeder) |
//! | `dns` | B | none: no DNS records (point `*.pr.<domain>` and `*.pr-api.<domain>` at the gateway yourself); set: the stack manages the two wildcard A records |
//! | `dns.provider` | B | `digitalocean` (the only one): records over the DigitalOcean API, token from secret `DIGITALOCEAN_TOKEN`, API URL from env `PREVIEW_DIGITALOCEAN_API_URL` (default `https://api.digitalocean.com`) |
//! | `dns.zone` | B | `domain`; the DigitalOcean domain (zone) holding the records, `domain` itself or a parent of it |
//! | `dns.ttl` | B | `300` seconds (at least 30) |
//! | `dns.address` | B | none: the records point at the Gateway's load-balancer address (`status.addresses[0]`), read when they are applied; set: this IPv4 address |
//! | `cluster.name` | C | req; the DOKS cluster's name (1–63 lowercase letters, digits, `-`; unique in the account) |
//! | `cluster.region` | C | req; region slug (`fra1`, `nyc3`: lowercase letters then digits) |
//! | `cluster.version` | C | req; exact version slug (`1.33.1-do.0`; not `latest`, which would read as a change on every run) |
//! | `cluster.nodePools[]` `{name, size, count}` | C | one pool `workers`, `s-2vcpu-4gb` × 2; `name` defaults to `workers`, `size` and `count` (≥ 1) are required in an entry |
//! | `planIdentity` `{kind, name, namespace}` | B | none: no plan credential objects; set: the plan identity's ClusterRole and binding (get/list/watch, and patch/create for server-side dry-runs) and a ValidatingAdmissionPolicy refusing its every write that is not a dry-run (`kind`: `User`, `Group` or `ServiceAccount`, which needs `namespace`) |
//! | `cluster.kubeconfigExpiry` | C | `7d`: lifetime of the recorded kubeconfig's token (at least `1h`); `up` fetches a new one once less than half of it is left |
//!
//! Keys that set one of the app spec's values (the older, Aphiria-shaped ones
//! above) keep working; setting the same value twice (`logLevel` and
//! `values.logLevel`) is an error naming both keys. The app itself is
//! [`StackConfig::app_spec`] ([`crate::app_spec`], replaced with
//! [`StackConfig::with_app`]); when a stack is built, under a `quota`, the
//! `resources.<key>` the app names must be complete
//! ([`StackConfig::check_app`]).
//!
//! Environment overrides (only for stacks that read the key; empty = unset):
//! `PREVIEW_DOMAIN` → `domain`, `PREVIEW_TLS_ISSUER` → `tls.issuer`,
//! `PREVIEW_TLS_EMAIL` → `tls.email`. Secrets never live in config files; they
//! come from a [`crate::SecretSource`].

mod app;
mod file;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use components::{
    ComputeResources, ConnectionLimit, DoksNodePool, PodSecurityLevel, Quota, Storage,
};

pub use file::{
    BuilderFile, BundleFile, ClusterFile, ConfigFile, ConnectionLimitFile, ContainerResourcesFile,
    CpuMemoryFile, DatabaseFile, DnsFile, DnsProvider, GatewayFile, HostsFile, ImagesFile,
    IssuerKind, NodePoolFile, QuantityValue, QuotaFile, ResourcesFile, StorageFile, TlsFile,
};
use resolve::Resolver;

use crate::app_spec::App;

use crate::{StackError, StackKind};

// ---------------------------------------------------------------------------
// The resolved configuration
// ---------------------------------------------------------------------------

/// The repository of an image reference: without `@digest` and without a `:tag`
/// after the last `/` (a registry's `:port` stays).
fn repository_of(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].find(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    }
}

/// The configuration of one stack, resolved: defaults applied, values checked.
///
/// Fields a stack does not read keep their defaults (see the module docs for who
/// reads what).
#[derive(Clone, Debug, PartialEq)]
pub struct StackConfig {
    /// The stack this configuration was resolved for.
    pub stack: StackKind,
    /// Where it came from, for messages (`config/preview-pr.yaml`).
    pub origin: String,
    /// Public domain (`aphiria.com`).
    pub domain: String,
    /// Application name (`aphiria`).
    pub app: String,
    /// Application namespace (local, production).
    pub namespace: String,
    /// Registry host (`ghcr.io`).
    pub registry: String,
    /// Image pull Secret settings, when one is rendered.
    pub pull_secret: Option<PullSecretConfig>,
    /// Database settings.
    pub database: DatabaseConfig,
    /// ResourceQuota of the application namespace.
    pub quota: Option<Quota>,
    /// Requests/limits per container.
    pub resources: ResourcesConfig,
    /// Web and API replicas.
    pub replicas: i32,
    /// The app spec's values this file sets (`values:`, and the older keys
    /// `logLevel`, `lexemesTableName`, `builder.api`, `builder.console`, `appEnv`,
    /// `migrationCommand`): value name → (the key that set it, the value).
    pub values: BTreeMap<String, (String, String)>,
    /// The application the stack deploys: [`App::builtin`] (Aphiria) unless
    /// replaced with [`StackConfig::with_app`].
    pub app_spec: App,
    /// The nginx image of the API pods (local, preview-pr, production).
    pub nginx_image: Option<String>,
    /// Image prefixes the stack may run (see [`StackConfig::check_image`]).
    pub allowed_images: Vec<String>,
    /// PodSecurity level of the application namespace (local, production;
    /// preview-pr is always `restricted`).
    pub pod_security: PodSecurityLevel,
    /// The PostgreSQL image (local, preview-base, production).
    pub postgres_image: Option<String>,
    /// Local web image (used when no `--web-image`).
    pub local_web_image: String,
    /// Local API image (used when no `--api-image`).
    pub local_api_image: String,
    /// The file's `images.<key>` (local), web and api included; a key without
    /// one defaults to `<app>/<key>:local` ([`StackConfig::local_web_image`]
    /// and [`StackConfig::local_api_image`] are web's and api's, defaults applied).
    pub local_images: BTreeMap<String, String>,
    /// The Gateway.
    pub gateway: GatewayConfig,
    /// TLS.
    pub tls: TlsConfig,
    /// Public web host (local, production).
    pub web_host: String,
    /// Public API host (local, production).
    pub api_host: String,
    /// The file's `hosts.<route>` (local, production): the host of that route of
    /// the app, in place of its host template.
    pub hosts: BTreeMap<String, String>,
    /// Kubeconfig context exported by preview-base.
    pub kube_context: Option<String>,
    /// Upstream manifest bundles.
    pub bundles: Vec<BundleSource>,
    /// Protect persistent objects (preview-base, production).
    pub protect: bool,
    /// Render NetworkPolicies.
    pub network_policies: bool,
    /// Per-client limits on the routes.
    pub connection_limit: ConnectionLimit,
    /// Wildcard DNS records (preview-base; `None` = not managed).
    pub dns: Option<DnsConfig>,
    /// The DOKS cluster (preview-cluster; `None` for the other stacks).
    pub cluster: Option<ClusterConfig>,
    /// `planIdentity`: the identity of the plan credential (preview-base).
    pub plan_identity: Option<PlanIdentity>,
}

/// `planIdentity:` — whom preview-base grants read and dry-run access, and
/// whose every real write its admission policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanIdentity {
    /// A user name (`request.userInfo.username`).
    User(String),
    /// A group (`request.userInfo.groups`).
    Group(String),
    /// A ServiceAccount (user `system:serviceaccount:<namespace>:<name>`).
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl PlanIdentity {
    /// The user name it authenticates as (`None` for a group).
    pub fn username(&self) -> Option<String> {
        match self {
            PlanIdentity::User(name) => Some(name.clone()),
            PlanIdentity::Group(_) => None,
            PlanIdentity::ServiceAccount { namespace, name } => {
                Some(format!("system:serviceaccount:{namespace}:{name}"))
            }
        }
    }
}

/// The DigitalOcean Kubernetes cluster of `preview-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Cluster name.
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Exact version slug.
    pub version: String,
    /// Node pools (at least one).
    pub node_pools: Vec<DoksNodePool>,
    /// Lifetime of the recorded kubeconfig's token.
    pub kubeconfig_expiry: Duration,
}

/// The wildcard DNS records of `preview-base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Who hosts the zone.
    pub provider: DnsProvider,
    /// The zone (DigitalOcean domain) holding the records.
    pub zone: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// A fixed IPv4 address; `None` = the Gateway's load-balancer address.
    pub address: Option<String>,
}

impl DnsConfig {
    /// The name, relative to the zone, of `*.<subdomain>.<domain>` (`*.pr` when the
    /// zone is the domain, `*.pr.preview` for domain `preview.example.com` in zone
    /// `example.com`).
    pub fn wildcard_name(&self, subdomain: &str, domain: &str) -> String {
        let below = domain
            .strip_suffix(self.zone.as_str())
            .and_then(|rest| rest.strip_suffix('.'))
            .filter(|rest| !rest.is_empty());
        match below {
            Some(rest) => format!("*.{subdomain}.{rest}"),
            None => format!("*.{subdomain}"),
        }
    }
}

/// The image pull Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSecretConfig {
    /// Registry user.
    pub user: String,
}

/// Database settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `DB_USER` (and the server's superuser).
    pub user: String,
    /// Per-PR database name prefix (`aphiria_pr_`).
    pub name_prefix: String,
    /// Database name (local, production).
    pub name: String,
    /// Namespace of the stack's own server.
    pub namespace: String,
    /// An external server instead of the stack's own (local, production).
    pub external: Option<ExternalDatabase>,
    /// Persistent storage of the stack's own server.
    pub storage: Option<Storage>,
    /// `CONNECTION LIMIT` of each preview's database role (preview-pr).
    pub connection_limit: u32,
}

/// A PostgreSQL server the stack does not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalDatabase {
    /// Host as the pods see it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Address range, for the NetworkPolicy's egress rule.
    pub cidr: Option<String>,
}

/// Requests/limits per container (`None` = render none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcesConfig {
    /// Web container.
    pub web: Option<ComputeResources>,
    /// API nginx container.
    pub api_nginx: Option<ComputeResources>,
    /// API PHP-FPM container.
    pub api_php: Option<ComputeResources>,
    /// API init container.
    pub api_init: Option<ComputeResources>,
    /// Migration container.
    pub migration: Option<ComputeResources>,
    /// The in-cluster database executor's Job container.
    pub database_job: Option<ComputeResources>,
    /// PostgreSQL container.
    pub postgres: Option<ComputeResources>,
}

impl ResourcesConfig {
    /// The keys of `resources:`, as an app spec names them.
    pub const KEYS: [&'static str; 7] = [
        "web",
        "apiNginx",
        "apiPhp",
        "apiInit",
        "migration",
        "databaseJob",
        "postgres",
    ];

    /// The requests/limits under `key` (`None`: not a key; `Some(None)`: unset).
    pub fn get(&self, key: &str) -> Option<&Option<ComputeResources>> {
        Some(match key {
            "web" => &self.web,
            "apiNginx" => &self.api_nginx,
            "apiPhp" => &self.api_php,
            "apiInit" => &self.api_init,
            "migration" => &self.migration,
            "databaseJob" => &self.database_job,
            "postgres" => &self.postgres,
            _ => return None,
        })
    }
}

/// The Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Gateway name.
    pub name: String,
    /// Gateway namespace.
    pub namespace: String,
    /// GatewayClass name.
    pub class_name: String,
}

/// TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Issuer.
    pub issuer: IssuerKind,
    /// ACME account e-mail (required for ACME issuers).
    pub email: Option<String>,
    /// Secret with the DigitalOcean token for DNS-01.
    pub dns_token_secret: String,
}

/// A manifest bundle listed in the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSource {
    /// Short name.
    pub name: String,
    /// The file (resolved against the config directory by [`StackConfig::load`]).
    pub path: PathBuf,
    /// Pinned SHA-256.
    pub sha256: String,
    /// Namespace override.
    pub namespace: Option<String>,
    /// The bytes, once read ([`StackConfig::load`] reads them; building is pure).
    pub bytes: Option<Vec<u8>>,
}

/// The nginx of the API pods unless `nginxImage` says otherwise: the unprivileged
/// build (runs as user 101, listens on 8080), pinned by digest. The digest is the
/// `1.27-alpine` multi-arch index; it must be bumped with the nginx releases
/// (re-pin with `docker buildx imagetools inspect nginxinc/nginx-unprivileged:<tag>`).
pub const DEFAULT_NGINX_IMAGE: &str = "docker.io/nginxinc/nginx-unprivileged:1.27-alpine@sha256:65e3e85dbaed8ba248841d9d58a899b6197106c23cb0ff1a132b7bfe0547e4c0";

/// The repository of [`DEFAULT_NGINX_IMAGE`], allowed by default.
pub const DEFAULT_NGINX_REPOSITORY: &str = "docker.io/nginxinc/nginx-unprivileged";

/// The upstream PostgreSQL repository, allowed by default (`postgresImage`).
pub const DEFAULT_POSTGRES_REPOSITORY: &str = "docker.io/library/postgres";

/// The config file's name for a stack: `preview-pr.yaml`.
pub fn file_name(kind: StackKind) -> String {
    format!("{}.yaml", kind.as_str())
}

/// Reads an environment variable (tests pass a closure over a map).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl StackConfig {
    /// A hash of the resolved configuration (file, environment overrides and
    /// the bundles' bytes), independent of where the file was read from: a
    /// saved plan records it, and `up --plan` refuses when it changed.
    pub fn fingerprint(&self) -> String {
        let mut config = self.clone();
        config.origin.clear();
        for bundle in &mut config.bundles {
            bundle.path = PathBuf::new();
        }
        preview_core::diff::body_hash(&serde_json::Value::String(format!("{config:?}")))
    }

    /// Reads `<dir>/<stack>.yaml` (missing file = all defaults), applies the
    /// environment overrides, resolves, and reads the bundles the file lists.
    pub fn load(dir: &Path, kind: StackKind) -> Result<StackConfig, StackError> {
        StackConfig::load_with_env(dir, kind, &|name| std::env::var(name).ok())
    }

    /// [`StackConfig::load`] with an explicit environment.
    pub fn load_with_env(
        dir: &Path,
        kind: StackKind,
        env: EnvLookup<'_>,
    ) -> Result<StackConfig, StackError> {
        let path = dir.join(file_name(kind));
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(StackError::Invalid(format!("cannot read {origin}: {err}"))),
        };
        let mut config = StackConfig::from_source(text.as_deref(), kind, &origin, env)?;
        config.read_bundles(dir)?;
        Ok(config)
    }

    /// Resolves `text` (the file's content, `None` when there is no file) for
    /// `kind`. Pure: `env` is the only input besides the text.
    pub fn from_source(
        text: Option<&str>,
        kind: StackKind,
        origin: &str,
        env: EnvLookup<'_>,
    ) -> Result<StackConfig, StackError> {
        let file = match text {
            Some(text) => ConfigFile::parse(text, origin)?,
            None => ConfigFile::default(),
        };
        let resolver = Resolver {
            kind,
            origin,
            file_exists: text.is_some(),
        };
        resolver.check_readers(&file)?;
        let file = resolver.apply_env(file, env)?;
        resolver.resolve(file)
    }

    /// Resolves YAML for `kind` as if read from `config/<stack>.yaml`, without
    /// environment overrides (for tests and embedding).
    pub fn from_yaml(text: &str, kind: StackKind) -> Result<StackConfig, StackError> {
        let origin = format!("config/{}", file_name(kind));
        StackConfig::from_source(Some(text), kind, &origin, &|_| None)
    }

    /// Reads the bytes of every bundle whose bytes are not loaded yet; relative
    /// paths are resolved against `dir`.
    pub fn read_bundles(&mut self, dir: &Path) -> Result<(), StackError> {
        for bundle in &mut self.bundles {
            if bundle.bytes.is_some() {
                continue;
            }
            let path = if bundle.path.is_absolute() {
                bundle.path.clone()
            } else {
                dir.join(&bundle.path)
            };
            let bytes = std::fs::read(&path).map_err(|err| {
                StackError::Invalid(format!(
                    "bundle `{}` in {}: cannot read {}: {err}",
                    bundle.name,
                    self.origin,
                    path.display()
                ))
            })?;
            bundle.path = path;
            bundle.bytes = Some(bytes);
        }
        Ok(())
    }

    /// Refuses `image` (given to `source`: a flag or a config key) unless it is
    /// in a repository [`StackConfig::allowed_images`] allows: an entry ending in
    /// `/` allows every repository below it, any other entry exactly that
    /// repository (the reference without its tag and digest). The error names the
    /// image and the allowed prefixes.
    pub fn check_image(&self, source: &str, image: &str) -> Result<(), StackError> {
        let repository = repository_of(image);
        let allowed = self.allowed_images.iter().any(|entry| {
            if entry.ends_with('/') {
                repository.starts_with(entry.as_str())
            } else {
                repository == entry
            }
        });
        if allowed {
            return Ok(());
        }
        Err(StackError::Invalid(format!(
            "{source} {image}: not an allowed image; only images from {} may run (config key `allowedImages` in {})",
            self.allowed_images.join(", "),
            self.origin
        )))
    }

    /// `Missing` for a key this stack needs but which has no value (used by the
    /// stacks for keys that are optional for other stacks).
    pub fn missing(&self, key: &str) -> StackError {
        StackError::Missing {
            what: format!("config key `{key}` in {}", self.origin),
            hint: format!("set `{key}` in {}", self.origin),
        }
    }
}
