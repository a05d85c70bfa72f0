//! Resolution of a [`ConfigFile`] for one stack: the readers check,
//! environment overrides, defaults, value checks and required keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use components::{
    ComputeResources, ConnectionLimit, PodSecurityLevel, Quota, RequestRate, Storage,
};

use super::file::{
    ClusterFile, ConfigFile, ContainerResourcesFile, DatabaseFile, DnsFile, DnsProvider,
    IssuerKind, PlanIdentityFile, QuantityValue, QuotaFile, ResourcesFile, TlsFile, readers,
};
use super::{
    BundleSource, ClusterConfig, DatabaseConfig, DnsConfig, EnvLookup, ExternalDatabase,
    GatewayConfig, PlanIdentity, PullSecretConfig, ResourcesConfig, StackConfig, TlsConfig,
};
use crate::app_spec::App;
use crate::{StackError, StackKind};

/// Resolves a [`ConfigFile`] for one stack.
pub(super) struct Resolver<'a> {
    pub(super) kind: StackKind,
    pub(super) origin: &'a str,
    pub(super) file_exists: bool,
}

impl Resolver<'_> {
    fn reads(&self, key: &str) -> bool {
        readers(key).contains(&self.kind)
    }

    fn missing(&self, key: &str, example: &str, env: Option<&str>) -> StackError {
        let mut hint = if self.file_exists {
            format!("add `{example}` to {}", self.origin)
        } else {
            format!(
                "{} does not exist; create it with `{example}` (the repository's config/ directory has a file for every stack)",
                self.origin
            )
        };
        if let Some(env) = env {
            hint.push_str(&format!(", or set {env}"));
        }
        StackError::Missing {
            what: format!("config key `{key}` in {}", self.origin),
            hint,
        }
    }

    fn invalid(&self, key: &str, message: impl std::fmt::Display) -> StackError {
        StackError::Invalid(format!("config key `{key}` in {}: {message}", self.origin))
    }

    pub(super) fn check_readers(&self, file: &ConfigFile) -> Result<(), StackError> {
        for key in file.present_keys() {
            if !self.reads(key) {
                let readers: Vec<&str> = readers(key).iter().map(|k| k.as_str()).collect();
                return Err(self.invalid(
                    key,
                    format!(
                        "the {} stack does not read it (read by: {}); remove it",
                        self.kind.as_str(),
                        readers.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn apply_env(
        &self,
        mut file: ConfigFile,
        env: EnvLookup<'_>,
    ) -> Result<ConfigFile, StackError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if self.reads("domain")
            && let Some(domain) = get("PREVIEW_DOMAIN")
        {
            file.domain = Some(domain);
        }
        if self.reads("tls") {
            if let Some(raw) = get("PREVIEW_TLS_ISSUER") {
                let issuer = IssuerKind::parse(raw.trim()).ok_or_else(|| {
                    StackError::Invalid(format!(
                        "PREVIEW_TLS_ISSUER={raw}: expected self-signed, letsencrypt-staging or letsencrypt"
                    ))
                })?;
                file.tls.get_or_insert_with(TlsFile::default).issuer = Some(issuer);
            }
            if let Some(email) = get("PREVIEW_TLS_EMAIL") {
                file.tls.get_or_insert_with(TlsFile::default).email = Some(email);
            }
        }
        Ok(file)
    }

    pub(super) fn resolve(&self, file: ConfigFile) -> Result<StackConfig, StackError> {
        use StackKind::{Local, PreviewBase, PreviewCluster, PreviewPr, Production};
        let kind = self.kind;
        let values = self.values(&file)?;

        let domain = match (file.domain, kind) {
            (Some(d), _) => d,
            // preview-cluster reads no domain; the field keeps local's default.
            (None, Local | PreviewCluster) => "aphiria.localhost".to_owned(),
            (None, _) => {
                return Err(self.missing("domain", "domain: aphiria.com", Some("PREVIEW_DOMAIN")));
            }
        };
        check_domain(&domain).map_err(|m| self.invalid("domain", m))?;
        let app = file.app.unwrap_or_else(|| "aphiria".to_owned());
        check_label(&app).map_err(|m| self.invalid("app", m))?;
        let namespace = file.namespace.unwrap_or_else(|| match kind {
            Local => format!("{app}-local"),
            _ => app.clone(),
        });
        check_label(&namespace).map_err(|m| self.invalid("namespace", m))?;

        let registry = file.registry.unwrap_or_else(|| "ghcr.io".to_owned());
        let pull_secret = if file.registry_pull_secret.unwrap_or(false) {
            let user = file.registry_user.ok_or_else(|| {
                self.missing("registryUser", "registryUser: <registry user name>", None)
            })?;
            Some(PullSecretConfig { user })
        } else {
            None
        };

        let database = self.database(file.database.unwrap_or_default(), &app)?;
        let quota = self.quota(file.quota)?;
        let resources = self.resources(file.resources.unwrap_or_default())?;

        let replicas = file
            .replicas
            .unwrap_or(if kind == Production { 2 } else { 1 });
        let min_replicas = if kind == Production { 2 } else { 1 };
        if replicas < min_replicas {
            return Err(self.invalid(
                "replicas",
                format!(
                    "{replicas}: the {} stack needs at least {min_replicas}",
                    kind.as_str()
                ),
            ));
        }

        let nginx_in_file = file.nginx_image.is_some();
        let postgres_in_file = file.postgres_image.is_some();
        let nginx_image = match (file.nginx_image, kind) {
            (Some(image), _) => Some(image),
            (None, Local | PreviewPr | Production) => Some(super::DEFAULT_NGINX_IMAGE.to_owned()),
            (None, PreviewBase | PreviewCluster) => None,
        };
        let postgres_image = match (file.postgres_image, kind) {
            (Some(image), _) => Some(image),
            (None, Local) => Some("docker.io/library/postgres:16-alpine".to_owned()),
            (None, PreviewBase | Production) => {
                return Err(self.missing(
                    "postgresImage",
                    "postgresImage: docker.io/library/postgres:16-alpine@sha256:<64 hex>",
                    None,
                ));
            }
            (None, PreviewPr | PreviewCluster) => None,
        };
        if kind != Local {
            for (key, image) in [
                ("nginxImage", &nginx_image),
                ("postgresImage", &postgres_image),
            ] {
                if let Some(image) = image {
                    crate::PinnedImage::parse(key, image).map_err(|m| {
                        StackError::Invalid(format!("config key `{key}` in {}: {m}", self.origin))
                    })?;
                }
            }
        }
        let allowed_images = self.allowed_images(file.allowed_images, &registry, &app)?;
        let pod_security = match file.pod_security {
            None => PodSecurityLevel::Restricted,
            Some(raw) => PodSecurityLevel::parse(raw.trim()).ok_or_else(|| {
                self.invalid(
                    "podSecurity",
                    format!("{raw:?}: expected restricted, baseline or privileged"),
                )
            })?,
        };
        let images = file.images.unwrap_or_default();

        let gateway = file.gateway.unwrap_or_default();
        let gateway = GatewayConfig {
            name: gateway.name.unwrap_or_else(|| {
                if kind == PreviewBase {
                    "preview-gateway"
                } else {
                    "gateway"
                }
                .to_owned()
            }),
            namespace: gateway
                .namespace
                .unwrap_or_else(|| "nginx-gateway".to_owned()),
            class_name: gateway.class_name.unwrap_or_else(|| "nginx".to_owned()),
        };
        for (key, value) in [
            ("gateway.name", &gateway.name),
            ("gateway.namespace", &gateway.namespace),
        ] {
            check_label(value).map_err(|m| self.invalid(key, m))?;
        }
        let tls = self.tls(file.tls.unwrap_or_default())?;

        let hosts = file.hosts.unwrap_or_default();
        let web_host = hosts
            .get("web")
            .cloned()
            .unwrap_or_else(|| format!("www.{domain}"));
        let api_host = hosts
            .get("api")
            .cloned()
            .unwrap_or_else(|| format!("api.{domain}"));
        for (key, host) in [("web", &web_host), ("api", &api_host)]
            .into_iter()
            .chain(hosts.iter().map(|(k, h)| (k.as_str(), h)))
        {
            check_domain(host).map_err(|m| self.invalid(&format!("hosts.{key}"), m))?;
        }

        let bundles = file
            .bundles
            .unwrap_or_default()
            .into_iter()
            .map(|b| BundleSource {
                name: b.name,
                path: PathBuf::from(b.path),
                sha256: b.sha256,
                namespace: b.namespace,
                bytes: None,
            })
            .collect();

        let dns = self.dns(file.dns, &domain)?;
        let cluster = self.cluster(file.cluster)?;

        let limit = file.connection_limit.unwrap_or_default();
        let defaults = ConnectionLimit::default();
        let default_rate = RequestRate::default();
        let connection_limit = ConnectionLimit {
            connections_per_client: limit
                .connections_per_client
                .unwrap_or(defaults.connections_per_client),
            request_rate: Some(RequestRate {
                rate: limit.request_rate.unwrap_or(default_rate.rate),
                burst: limit.burst.unwrap_or(default_rate.burst),
                no_delay: default_rate.no_delay,
            }),
            ..defaults
        };

        let config = StackConfig {
            stack: kind,
            origin: self.origin.to_owned(),
            domain,
            app: app.clone(),
            namespace,
            registry,
            pull_secret,
            database,
            quota,
            resources,
            replicas,
            values,
            app_spec: App::builtin(),
            nginx_image,
            allowed_images,
            pod_security,
            postgres_image,
            local_web_image: images
                .get("web")
                .cloned()
                .unwrap_or_else(|| format!("{app}/web:local")),
            local_api_image: images
                .get("api")
                .cloned()
                .unwrap_or_else(|| format!("{app}/api:local")),
            local_images: images,
            gateway,
            tls,
            web_host,
            api_host,
            hosts,
            kube_context: file.kube_context,
            bundles,
            protect: file.protect.unwrap_or(true),
            network_policies: file.network_policies.unwrap_or(true),
            connection_limit,
            dns,
            cluster,
            plan_identity: self.plan_identity(file.plan_identity)?,
        };
        // Images from this file, against the allowed prefixes, before anything runs.
        // nginxImage / postgresImage when the file names them; the defaults are
        // checked when the stack is built, if its app runs them (`check_app`).
        let configured = [
            (
                "nginxImage",
                config.nginx_image.as_deref().filter(|_| nginx_in_file),
            ),
            (
                "postgresImage",
                config
                    .postgres_image
                    .as_deref()
                    .filter(|_| postgres_in_file),
            ),
        ];
        for (key, image) in configured {
            if let Some(image) = image {
                config.check_image(&format!("config key `{key}` in {}:", self.origin), image)?;
            }
        }
        Ok(config)
    }

    /// The app values the file sets: `values:` and the older keys that name one
    /// value each (name → (key, value)); a value set twice is an error naming both keys.
    fn values(&self, file: &ConfigFile) -> Result<BTreeMap<String, (String, String)>, StackError> {
        let builder = file.builder.clone().unwrap_or_default();
        let legacy = [
            ("logLevel", "logLevel", file.log_level.clone()),
            (
                "lexemesTableName",
                "lexemesTableName",
                file.lexemes_table_name.clone(),
            ),
            ("builder.api", "builderApi", builder.api),
            ("builder.console", "builderConsole", builder.console),
            ("appEnv", "appEnv", file.app_env.clone()),
            (
                "migrationCommand",
                "migrationCommand",
                file.migration_command.clone(),
            ),
        ];
        let mut out = BTreeMap::new();
        for (name, value) in file.values.clone().unwrap_or_default() {
            out.insert(name.clone(), (format!("values.{name}"), value));
        }
        for (key, name, value) in legacy {
            let Some(value) = value else { continue };
            if let Some((other, _)) = out.get(name) {
                return Err(self.invalid(
                    key,
                    format!("sets the app value `{name}`, and so does `{other}`; keep one"),
                ));
            }
            out.insert(name.to_owned(), (key.to_owned(), value));
        }
        Ok(out)
    }

    /// `allowedImages`: the default (see the module docs of `config`), or the
    /// file's list, which must name at least one prefix.
    fn allowed_images(
        &self,
        file: Option<Vec<String>>,
        registry: &str,
        app: &str,
    ) -> Result<Vec<String>, StackError> {
        let Some(list) = file else {
            let mut list = vec![
                format!("{registry}/{app}/"),
                super::DEFAULT_NGINX_REPOSITORY.to_owned(),
                super::DEFAULT_POSTGRES_REPOSITORY.to_owned(),
            ];
            if self.kind == StackKind::Local {
                list.push(format!("{app}/"));
            }
            return Ok(list);
        };
        if list.is_empty() {
            return Err(self.invalid(
                "allowedImages",
                "lists no prefix, so no image could run; remove the key for the default",
            ));
        }
        for entry in &list {
            let ok = !entry.is_empty()
                && !entry.starts_with('/')
                && !entry.contains(['@', ' ', '\t'])
                && !entry.contains("//");
            if !ok {
                return Err(self.invalid(
                    "allowedImages",
                    format!("{entry:?} is not an image prefix (e.g. `ghcr.io/aphiria/`, or a repository such as `docker.io/nginxinc/nginx-unprivileged`)"),
                ));
            }
        }
        Ok(list)
    }

    /// `planIdentity:` (preview-base).
    fn plan_identity(
        &self,
        identity: Option<PlanIdentityFile>,
    ) -> Result<Option<PlanIdentity>, StackError> {
        let Some(identity) = identity else {
            return Ok(None);
        };
        let name = identity
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                self.invalid(
                    "planIdentity.name",
                    "required: the user, group or service account name",
                )
            })?;
        if name
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(self.invalid(
                "planIdentity.name",
                format!("{name:?} contains a quote, a backslash or a control character"),
            ));
        }
        let kind = identity.kind.unwrap_or_default();
        if kind != "ServiceAccount" && identity.namespace.is_some() {
            return Err(self.invalid(
                "planIdentity.namespace",
                "only a ServiceAccount has a namespace; remove it",
            ));
        }
        match kind.as_str() {
            "User" => Ok(Some(PlanIdentity::User(name))),
            "Group" => Ok(Some(PlanIdentity::Group(name))),
            "ServiceAccount" => {
                let namespace = identity.namespace.ok_or_else(|| {
                    self.invalid("planIdentity.namespace", "required for a ServiceAccount")
                })?;
                for (key, value) in [
                    ("planIdentity.namespace", &namespace),
                    ("planIdentity.name", &name),
                ] {
                    let ok = !value.is_empty()
                        && value.len() <= 253
                        && value.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                        });
                    if !ok {
                        return Err(self.invalid(
                            key,
                            format!("{value:?} is not a Kubernetes name (lowercase letters, digits, `-`, `.`)"),
                        ));
                    }
                }
                Ok(Some(PlanIdentity::ServiceAccount { namespace, name }))
            }
            other => Err(self.invalid(
                "planIdentity.kind",
                format!("{other:?}: use User, Group or ServiceAccount"),
            )),
        }
    }

    /// `cluster:`, required by (and only read by) `preview-cluster`.
    fn cluster(&self, file: Option<ClusterFile>) -> Result<Option<ClusterConfig>, StackError> {
        use preview_core::schema::doks_cluster::{check_name, check_version};
        if self.kind != StackKind::PreviewCluster {
            return Ok(None);
        }
        let file = file.unwrap_or_default();
        let name = file.name.ok_or_else(|| {
            self.missing(
                "cluster.name",
                "cluster: {name: aphiria-previews, region: fra1, version: 1.33.1-do.0}",
                None,
            )
        })?;
        check_name(&name).map_err(|m| self.invalid("cluster.name", m))?;
        let region = file
            .region
            .ok_or_else(|| self.missing("cluster.region", "region: fra1", None))?;
        check_region(&region).map_err(|m| self.invalid("cluster.region", m))?;
        let version = file
            .version
            .ok_or_else(|| self.missing("cluster.version", "version: 1.33.1-do.0", None))?;
        check_version(&version).map_err(|m| self.invalid("cluster.version", m))?;
        let node_pools = match file.node_pools {
            None => vec![components::DoksNodePool::new("workers", "s-2vcpu-4gb", 2)],
            Some(pools) if pools.is_empty() => {
                return Err(self.invalid("cluster.nodePools", "needs at least one pool"));
            }
            Some(pools) => pools
                .into_iter()
                .enumerate()
                .map(|(i, pool)| {
                    let key = |field: &str| format!("cluster.nodePools[{i}].{field}");
                    let name = pool.name.unwrap_or_else(|| "workers".to_owned());
                    check_label(&name).map_err(|m| self.invalid(&key("name"), m))?;
                    let size = pool
                        .size
                        .ok_or_else(|| self.missing(&key("size"), "size: s-2vcpu-4gb", None))?;
                    check_slug(&size).map_err(|m| self.invalid(&key("size"), m))?;
                    let count = pool
                        .count
                        .ok_or_else(|| self.missing(&key("count"), "count: 2", None))?;
                    if count == 0 {
                        return Err(
                            self.invalid(&key("count"), "0: a pool needs at least one node")
                        );
                    }
                    Ok(components::DoksNodePool::new(name, size, count))
                })
                .collect::<Result<Vec<_>, StackError>>()?,
        };
        let mut names: Vec<&str> = node_pools.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(self.invalid(
                "cluster.nodePools",
                format!("two pools are named {:?}; give each a name", dup[0]),
            ));
        }
        let kubeconfig_expiry = match file.kubeconfig_expiry {
            None => std::time::Duration::from_secs(7 * 24 * 3600),
            Some(raw) => {
                let d = humantime::parse_duration(raw.trim()).map_err(|e| {
                    self.invalid(
                        "cluster.kubeconfigExpiry",
                        format!("{raw:?}: {e} (e.g. 7d)"),
                    )
                })?;
                if d < std::time::Duration::from_secs(3600) {
                    return Err(
                        self.invalid("cluster.kubeconfigExpiry", format!("{raw}: at least 1h"))
                    );
                }
                d
            }
        };
        Ok(Some(ClusterConfig {
            name,
            region,
            version,
            node_pools,
            kubeconfig_expiry,
        }))
    }

    fn dns(&self, dns: Option<DnsFile>, domain: &str) -> Result<Option<DnsConfig>, StackError> {
        let Some(dns) = dns else { return Ok(None) };
        let provider = dns.provider.unwrap_or(DnsProvider::Digitalocean);
        let zone = dns.zone.unwrap_or_else(|| domain.to_owned());
        check_domain(&zone).map_err(|m| self.invalid("dns.zone", m))?;
        if zone != domain && !domain.ends_with(&format!(".{zone}")) {
            return Err(self.invalid(
                "dns.zone",
                format!("{zone:?} does not contain the domain {domain:?}; use the domain or one of its parents"),
            ));
        }
        let ttl = dns.ttl.unwrap_or(300);
        if ttl < 30 {
            return Err(self.invalid(
                "dns.ttl",
                format!("{ttl}: DigitalOcean accepts at least 30 seconds"),
            ));
        }
        if let Some(address) = &dns.address
            && address.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(self.invalid(
                "dns.address",
                format!("{address:?} is not an IPv4 address; leave it out to use the Gateway's load-balancer address"),
            ));
        }
        Ok(Some(DnsConfig {
            provider,
            zone,
            ttl,
            address: dns.address,
        }))
    }

    fn database(&self, db: DatabaseFile, app: &str) -> Result<DatabaseConfig, StackError> {
        let suffix = match self.kind {
            StackKind::Local => "local",
            _ => "production",
        };
        let external = match (db.host, db.port, db.cidr) {
            (Some(host), port, cidr) => Some(ExternalDatabase {
                host,
                port: port.unwrap_or(5432),
                cidr,
            }),
            (None, None, None) => None,
            (None, _, _) => {
                return Err(self.invalid(
                    "database.port",
                    "`database.port` and `database.cidr` describe an external server; set `database.host` too",
                ));
            }
        };
        let storage = match (db.storage, self.kind) {
            (Some(s), _) => {
                let size = s
                    .size
                    .ok_or_else(|| self.missing("database.storage.size", "size: 10Gi", None))?
                    .0;
                check_quantity(&size).map_err(|m| self.invalid("database.storage.size", m))?;
                Some(Storage {
                    storage_class: s.storage_class,
                    ..Storage::new(size)
                })
            }
            (None, StackKind::Local) => None,
            (None, _) => Some(Storage::new("10Gi")),
        };
        Ok(DatabaseConfig {
            user: db.user.unwrap_or_else(|| app.to_owned()),
            name_prefix: db.name_prefix.unwrap_or_else(|| format!("{app}_pr_")),
            name: db.name.unwrap_or_else(|| format!("{app}_{suffix}")),
            namespace: db.namespace.unwrap_or_else(|| "default".to_owned()),
            external,
            storage,
            connection_limit: match db.connection_limit {
                None => preview_core::schema::database_role::DEFAULT_CONNECTION_LIMIT,
                Some(n)
                    if (1..=preview_core::schema::database_role::MAX_CONNECTION_LIMIT)
                        .contains(&n) =>
                {
                    n
                }
                Some(n) => {
                    return Err(self.invalid(
                        "database.connectionLimit",
                        format!(
                            "is {n}; use 1 to {}",
                            preview_core::schema::database_role::MAX_CONNECTION_LIMIT
                        ),
                    ));
                }
            },
        })
    }

    fn quota(&self, quota: Option<QuotaFile>) -> Result<Option<Quota>, StackError> {
        let quota = match (quota, self.kind) {
            (Some(q), _) => q,
            (None, StackKind::PreviewPr) => QuotaFile::default(),
            (None, _) => return Ok(None),
        };
        let preview = self.kind == StackKind::PreviewPr;
        let value =
            |v: Option<QuantityValue>, key: &str, default: &str| -> Result<String, StackError> {
                let v = match (v, preview) {
                    (Some(v), _) => v.0,
                    (None, true) => default.to_owned(),
                    (None, false) => {
                        return Err(self.missing(
                            key,
                            &format!("{}: {default}", key.trim_start_matches("quota.")),
                            None,
                        ));
                    }
                };
                check_quantity(&v).map_err(|m| self.invalid(key, m))?;
                Ok(v)
            };
        let cpu = value(quota.cpu, "quota.cpu", "2")?;
        let memory = value(quota.memory, "quota.memory", "4Gi")?;
        // Optional outside preview-pr, where it defaults to 4Gi.
        let ephemeral_storage = match (quota.ephemeral_storage, preview) {
            (None, false) => None,
            (v, _) => Some(value(v, "quota.ephemeralStorage", "4Gi")?),
        };
        let pods = match (quota.pods, preview) {
            (Some(p), _) => p,
            (None, true) => 5,
            (None, false) => return Err(self.missing("quota.pods", "pods: 5", None)),
        };
        if pods == 0 {
            return Err(self.invalid("quota.pods", "0: no pod could run"));
        }
        Ok(Some(Quota {
            cpu,
            memory,
            ephemeral_storage,
            pods,
        }))
    }

    fn resources(&self, file: ResourcesFile) -> Result<ResourcesConfig, StackError> {
        let convert = |name: &str,
                       c: Option<ContainerResourcesFile>|
         -> Result<Option<ComputeResources>, StackError> {
            let Some(c) = c else { return Ok(None) };
            let mut out = ComputeResources::default();
            for (section, values, target) in [
                ("requests", c.requests, &mut out.requests),
                ("limits", c.limits, &mut out.limits),
            ] {
                let values = values.unwrap_or_default();
                for (field, value, slot) in [
                    ("cpu", values.cpu, &mut target.cpu),
                    ("memory", values.memory, &mut target.memory),
                    (
                        "ephemeralStorage",
                        values.ephemeral_storage,
                        &mut target.ephemeral_storage,
                    ),
                ] {
                    if let Some(v) = value {
                        check_quantity(&v.0).map_err(|m| {
                            self.invalid(&format!("resources.{name}.{section}.{field}"), m)
                        })?;
                        *slot = Some(v.0);
                    }
                }
            }
            Ok(Some(out))
        };
        Ok(ResourcesConfig {
            web: convert("web", file.web)?,
            api_nginx: convert("apiNginx", file.api_nginx)?,
            api_php: convert("apiPhp", file.api_php)?,
            api_init: convert("apiInit", file.api_init)?,
            migration: convert("migration", file.migration)?,
            database_job: convert("databaseJob", file.database_job)?,
            postgres: convert("postgres", file.postgres)?,
        })
    }

    fn tls(&self, tls: TlsFile) -> Result<TlsConfig, StackError> {
        let issuer = tls.issuer.unwrap_or(match self.kind {
            StackKind::Local => IssuerKind::SelfSigned,
            _ => IssuerKind::Letsencrypt,
        });
        let reads_tls = self.reads("tls");
        if reads_tls && issuer.is_acme() {
            match &tls.email {
                None => {
                    return Err(self.missing(
                        "tls.email",
                        "tls: {email: you@example.com}",
                        Some("PREVIEW_TLS_EMAIL"),
                    ));
                }
                Some(email) if !email.contains('@') => {
                    return Err(
                        self.invalid("tls.email", format!("{email:?} is not an e-mail address"))
                    );
                }
                Some(_) => {}
            }
        }
        let config = TlsConfig {
            issuer,
            email: tls.email,
            dns_token_secret: tls
                .dns_token_secret
                .unwrap_or_else(|| "digitalocean-dns".to_owned()),
        };
        Ok(config)
    }
}

/// A DNS-1123 label.
fn check_label(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
        ))
    }
}

/// A lowercase DNS name with at least two labels.
fn check_domain(value: &str) -> Result<(), String> {
    if value.len() <= 253 && value.contains('.') && value.split('.').all(|l| check_label(l).is_ok())
    {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a lowercase DNS name such as aphiria.com"
        ))
    }
}

/// A Kubernetes quantity: a decimal number with an optional suffix.
fn check_quantity(value: &str) -> Result<(), String> {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    let ok = SUFFIXES.iter().any(|suffix| {
        value.strip_suffix(suffix).is_some_and(|number| {
            let (int, frac) = number.split_once('.').unwrap_or((number, ""));
            !(int.is_empty() && frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && (number.contains('.') || !int.is_empty())
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 4Gi)"
        ))
    }
}

/// A DigitalOcean region slug: lowercase letters, then digits (`fra1`, `nyc3`).
fn check_region(region: &str) -> Result<(), String> {
    let letters = region.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &region.as_bytes()[letters..];
    if (2..=4).contains(&letters)
        && (1..=2).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
    {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not a DigitalOcean region slug (lowercase letters then digits, e.g. fra1, nyc3; list them with `doctl kubernetes options regions`)"
        ))
    }
}

/// A DigitalOcean size slug (`s-2vcpu-4gb`): lowercase letters, digits and `-`.
fn check_slug(slug: &str) -> Result<(), String> {
    if !slug.is_empty()
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "{slug:?} is not a Droplet size slug such as s-2vcpu-4gb (list them with `doctl kubernetes options sizes`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::*;
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["2", "250m", "0.5", "4Gi", "512Mi", "1k", ".5"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2 cores", "Gi", "1.2.3", "-1", "4GB", "."] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_are_quantities() {
        let file =
            ConfigFile::parse("quota: {cpu: 2, memory: 4Gi, pods: 5}\n", "x").expect("parses");
        let quota = file.quota.expect("quota");
        assert_eq!(quota.cpu, Some(QuantityValue("2".into())));
        let file = ConfigFile::parse("quota: {cpu: 0.5}\n", "x").expect("parses");
        assert_eq!(
            file.quota.expect("quota").cpu,
            Some(QuantityValue("0.5".into()))
        );
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_configs() {
        assert_eq!(
            ConfigFile::parse("", "x").expect("ok"),
            ConfigFile::default()
        );
        assert_eq!(
            ConfigFile::parse("# nothing\n\n", "x").expect("ok"),
            ConfigFile::default()
        );
    }

    #[test]
    fn dns_section() {
        let base = |dns: &str| {
            format!(
                "domain: preview.example.com\npostgresImage: docker.io/library/postgres@sha256:{}\ntls: {{issuer: self-signed}}\n{dns}",
                "a".repeat(64)
            )
        };
        let config = crate::config::StackConfig::from_yaml(&base(""), StackKind::PreviewBase)
            .expect("no dns");
        assert_eq!(config.dns, None);
        let config =
            crate::config::StackConfig::from_yaml(&base("dns: {}\n"), StackKind::PreviewBase)
                .expect("defaults");
        let dns = config.dns.expect("dns");
        assert_eq!(
            (
                dns.provider,
                dns.zone.as_str(),
                dns.ttl,
                dns.address.as_deref()
            ),
            (DnsProvider::Digitalocean, "preview.example.com", 300, None)
        );
        assert_eq!(dns.wildcard_name("pr", "preview.example.com"), "*.pr");
        let config = crate::config::StackConfig::from_yaml(
            &base("dns: {provider: digitalocean, zone: example.com, ttl: 60, address: 203.0.113.10}\n"),
            StackKind::PreviewBase,
        )
        .expect("explicit");
        let dns = config.dns.expect("dns");
        assert_eq!(
            dns.wildcard_name("pr-api", "preview.example.com"),
            "*.pr-api.preview"
        );
        assert_eq!(dns.address.as_deref(), Some("203.0.113.10"));
        for (dns, expected) in [
            ("dns: {zone: other.org}", "config key `dns.zone`"),
            ("dns: {ttl: 5}", "at least 30"),
            ("dns: {address: lb.example.net}", "not an IPv4 address"),
            ("dns: {provider: route53}", "unknown variant `route53`"),
            ("dns: {zones: x.org}", "unknown field `zones`"),
        ] {
            let err = crate::config::StackConfig::from_yaml(&base(dns), StackKind::PreviewBase)
                .expect_err(dns)
                .to_string();
            assert!(err.contains(expected), "{dns}: {err}");
        }
        let err = crate::config::StackConfig::from_yaml(
            "domain: example.com\nnginxImage: x\ndns: {}\n",
            StackKind::PreviewPr,
        )
        .expect_err("preview-pr does not read dns")
        .to_string();
        assert!(err.contains("config key `dns`"), "{err}");
        assert!(err.contains("read by: preview-base"), "{err}");
    }

    #[test]
    fn the_fingerprint_ignores_where_the_file_is_and_sees_every_value() {
        let yaml = format!(
            "domain: example.com\npostgresImage: docker.io/library/postgres@sha256:{}\ntls: {{issuer: self-signed}}\nkubeContext: one\n",
            "a".repeat(64)
        );
        let yaml = yaml.as_str();
        let load = |text: &str, origin: &str, domain: Option<&str>| {
            let env = |name: &str| {
                (name == "PREVIEW_DOMAIN")
                    .then(|| domain.map(str::to_owned))
                    .flatten()
            };
            crate::config::StackConfig::from_source(
                Some(text),
                StackKind::PreviewBase,
                origin,
                &env,
            )
            .expect("config")
            .fingerprint()
        };
        let here = load(yaml, "/a/config/preview-base.yaml", None);
        assert!(here.starts_with("sha256:"));
        assert_eq!(
            here,
            load(yaml, "/b/checkout/config/preview-base.yaml", None)
        );
        assert_ne!(
            here,
            load(
                &yaml.replace("kubeContext: one", "kubeContext: two"),
                "/a/config/preview-base.yaml",
                None
            )
        );
        assert_ne!(
            here,
            load(
                yaml,
                "/a/config/preview-base.yaml",
                Some("other.example.com")
            )
        );
    }

    #[test]
    fn plan_identity_section() {
        let base = |section: &str| {
            format!(
                "domain: preview.example.com\npostgresImage: docker.io/library/postgres@sha256:{}\ntls: {{issuer: self-signed}}\n{section}",
                "a".repeat(64)
            )
        };
        let load = |section: &str| {
            crate::config::StackConfig::from_yaml(&base(section), StackKind::PreviewBase)
        };
        assert_eq!(load("").expect("none").plan_identity, None);
        assert_eq!(
            load("planIdentity: {kind: User, name: \"ci:planner\"}\n")
                .expect("user")
                .plan_identity,
            Some(PlanIdentity::User("ci:planner".into()))
        );
        assert_eq!(
            load("planIdentity: {kind: Group, name: planners}\n")
                .expect("group")
                .plan_identity,
            Some(PlanIdentity::Group("planners".into()))
        );
        let sa = load("planIdentity: {kind: ServiceAccount, namespace: ci, name: planner}\n")
            .expect("service account")
            .plan_identity
            .expect("identity");
        assert_eq!(
            sa.username().as_deref(),
            Some("system:serviceaccount:ci:planner")
        );
        for (section, expected) in [
            (
                "planIdentity: {kind: Robot, name: x}",
                "config key `planIdentity.kind`",
            ),
            (
                "planIdentity: {kind: User}",
                "config key `planIdentity.name`",
            ),
            (
                "planIdentity: {kind: ServiceAccount, name: x}",
                "config key `planIdentity.namespace`",
            ),
            (
                "planIdentity: {kind: User, name: x, namespace: y}",
                "only a ServiceAccount",
            ),
            (
                "planIdentity: {kind: User, name: 'a\"b'}",
                "contains a quote",
            ),
            (
                "planIdentity: {kind: ServiceAccount, namespace: Bad_NS, name: x}",
                "not a Kubernetes name",
            ),
            (
                "planIdentity: {kind: User, user: x}",
                "unknown field `user`",
            ),
        ] {
            let err = load(section).expect_err(section).to_string();
            assert!(err.contains(expected), "{section}: {err}");
        }
        let err = crate::config::StackConfig::from_yaml(
            "domain: example.com\nnginxImage: x\nplanIdentity: {kind: User, name: x}\n",
            StackKind::PreviewPr,
        )
        .expect_err("preview-pr does not read planIdentity")
        .to_string();
        assert!(err.contains("read by: preview-base"), "{err}");
    }

    #[test]
    fn every_settable_key_has_readers() {
        // Keys of the reader table that are not top-level fall through to "all";
        // make sure the stack-specific ones are spelled like present_keys().
        let all = ConfigFile {
            domain: Some("a.b".into()),
            app: Some("a".into()),
            namespace: Some("n".into()),
            registry: Some("r".into()),
            registry_user: Some("u".into()),
            registry_pull_secret: Some(true),
            database: Some(DatabaseFile {
                user: Some("u".into()),
                name_prefix: Some("p".into()),
                name: Some("n".into()),
                namespace: Some("n".into()),
                host: Some("h".into()),
                port: Some(1),
                cidr: Some("c".into()),
                storage: Some(StorageFile::default()),
                connection_limit: Some(1),
            }),
            quota: Some(QuotaFile::default()),
            resources: Some(ResourcesFile {
                web: Some(ContainerResourcesFile::default()),
                api_nginx: Some(ContainerResourcesFile::default()),
                api_php: Some(ContainerResourcesFile::default()),
                api_init: Some(ContainerResourcesFile::default()),
                migration: Some(ContainerResourcesFile::default()),
                database_job: Some(ContainerResourcesFile::default()),
                postgres: Some(ContainerResourcesFile::default()),
            }),
            replicas: Some(1),
            log_level: Some("l".into()),
            lexemes_table_name: Some("t".into()),
            builder: Some(BuilderFile::default()),
            app_env: Some("e".into()),
            nginx_image: Some("i".into()),
            allowed_images: Some(vec!["p/".into()]),
            pod_security: Some("baseline".into()),
            postgres_image: Some("i".into()),
            images: Some(ImagesFile::default()),
            gateway: Some(GatewayFile::default()),
            tls: Some(TlsFile::default()),
            hosts: Some(HostsFile::default()),
            kube_context: Some("c".into()),
            bundles: Some(Vec::new()),
            protect: Some(true),
            network_policies: Some(true),
            connection_limit: Some(ConnectionLimitFile::default()),
            migration_command: Some("m".into()),
            values: Some(Default::default()),
            dns: Some(DnsFile::default()),
            cluster: Some(ClusterFile::default()),
            plan_identity: Some(PlanIdentityFile::default()),
        };
        let keys = all.present_keys();
        assert_eq!(keys.len(), 46);
        let all_stacks = readers("domain");
        let specific = keys
            .iter()
            .filter(|k| readers(k).len() < all_stacks.len())
            .count();
        assert_eq!(specific, 39, "{keys:?}");
    }

    #[test]
    fn cluster_section() {
        let resolve = |yaml: &str| {
            crate::config::StackConfig::from_yaml(yaml, StackKind::PreviewCluster)
                .map_err(|e| e.to_string())
        };
        let config = resolve(
            "cluster: {name: previews, region: fra1, version: 1.33.1-do.0}
",
        )
        .expect("defaults");
        let cluster = config.cluster.expect("cluster");
        assert_eq!(
            cluster.node_pools,
            [components::DoksNodePool::new("workers", "s-2vcpu-4gb", 2)]
        );
        assert_eq!(cluster.kubeconfig_expiry.as_secs(), 7 * 24 * 3600);
        assert!(config.protect);
        for (yaml, says) in [
            ("protect: false
", "config key `cluster.name`"),
            (
                "cluster: {name: p, region: Frankfurt, version: 1.33.1-do.0}
",
                "config key `cluster.region` in config/preview-cluster.yaml: \"Frankfurt\" is not a DigitalOcean region slug",
            ),
            (
                "cluster: {name: p, region: fra1, version: latest}
",
                "config key `cluster.version`",
            ),
            (
                "cluster: {name: P_1, region: fra1, version: 1.33.1-do.0}
",
                "config key `cluster.name`",
            ),
            (
                "cluster: {name: p, region: fra1, version: 1.33.1-do.0, nodePools: [{size: s-1vcpu-2gb, count: 0}]}
",
                "config key `cluster.nodePools[0].count`",
            ),
            (
                "cluster: {name: p, region: fra1, version: 1.33.1-do.0, nodePools: [{count: 1}]}
",
                "config key `cluster.nodePools[0].size`",
            ),
            (
                "cluster: {name: p, region: fra1, version: 1.33.1-do.0, kubeconfigExpiry: 5m}
",
                "config key `cluster.kubeconfigExpiry`",
            ),
            (
                "domain: example.com\ncluster: {name: p, region: fra1, version: 1.33.1-do.0}
",
                "config key `domain` in config/preview-cluster.yaml: the preview-cluster stack does not read it",
            ),
            ("cluster: {nodes: 3}
", "unknown field `nodes`"),
        ] {
            let err = resolve(yaml).expect_err(yaml);
            assert!(err.contains(says), "{yaml}: {err}");
        }
        let err = crate::config::StackConfig::from_yaml(
            "domain: example.com\nnginxImage: x\ncluster: {}\n",
            StackKind::PreviewPr,
        )
        .expect_err("preview-pr does not read cluster")
        .to_string();
        assert!(err.contains("read by: preview-cluster"), "{err}");
    }
}
