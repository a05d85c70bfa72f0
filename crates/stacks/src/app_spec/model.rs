//! The app spec as written: the serde model of `preview-app.yaml` (camelCase
//! YAML, unknown keys rejected). Its JSON Schema is generated from these types
//! ([`super::schema_json`]) and checked in as `schemas/preview-app.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::StackKind;

/// An application: its services, the jobs gating them, its public routes, its
/// environment, add-ons, extra manifests and network rules.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// Format version; `1`.
    pub version: u32,
    /// Named values, referenced as `{values.NAME}`; a stack's config file may set
    /// them (`values:`). Literal strings (no placeholders), optionally per stack.
    #[serde(default)]
    pub values: BTreeMap<String, PerStack>,
    /// Add-ons the stacks provide (the per-PR PostgreSQL database).
    #[serde(default)]
    pub addons: Addons,
    /// The shared environment: one ConfigMap (`env-vars[-pr-N]`) that services and
    /// jobs with `sharedEnv` read with `envFrom`. Values are templates.
    #[serde(default)]
    pub env: BTreeMap<String, PerStack>,
    /// The shared secret environment: one Secret (`env-var-secrets[-pr-N]`),
    /// read with the ConfigMap. Values are templates (`{db.password}`).
    #[serde(default)]
    pub secret_env: BTreeMap<String, PerStack>,
    /// The workloads (one Deployment each, and a Service when it has a port), in
    /// the order they are rendered.
    pub services: Vec<Service>,
    /// Jobs that gate services (migrations): named `<name>-<hash of the pod
    /// template and the shared env>`, so a new image or configuration runs them
    /// again; a service lists them in `after`.
    #[serde(default)]
    pub jobs: Vec<Job>,
    /// Public routes through the gateway.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Extra manifests applied through the engine in the app's namespace.
    #[serde(default)]
    pub manifests: Option<Manifests>,
    /// NetworkPolicy rules beyond the derived ones.
    #[serde(default)]
    pub network: Network,
}

/// A template (or literal), for every stack or per stack.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PerStack {
    /// The same for every stack.
    All(String),
    /// Per stack; a stack without an entry takes `default`, and without a
    /// `default` the key is absent in that stack.
    ByStack(ByStack),
}

/// Values per stack.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByStack {
    /// For the stacks not listed.
    pub default: Option<String>,
    /// `local`.
    pub local: Option<String>,
    /// `preview-pr`.
    #[serde(rename = "preview-pr")]
    pub preview_pr: Option<String>,
    /// `production`.
    pub production: Option<String>,
}

impl PerStack {
    /// The text for `stack` (`None`: absent there).
    pub fn for_stack(&self, stack: StackKind) -> Option<&str> {
        match self {
            PerStack::All(text) => Some(text),
            PerStack::ByStack(by) => {
                let own = match stack {
                    StackKind::Local => &by.local,
                    StackKind::PreviewPr => &by.preview_pr,
                    StackKind::Production => &by.production,
                    StackKind::PreviewBase | StackKind::PreviewCluster => &None,
                };
                own.as_deref().or(by.default.as_deref())
            }
        }
    }

    /// Every text it holds, with its key (`""` for [`PerStack::All`]).
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        match self {
            PerStack::All(text) => vec![("", text.as_str())],
            PerStack::ByStack(by) => [
                ("default", &by.default),
                ("local", &by.local),
                ("preview-pr", &by.preview_pr),
                ("production", &by.production),
            ]
            .into_iter()
            .filter_map(|(key, text)| text.as_deref().map(|t| (key, t)))
            .collect(),
        }
    }
}

/// Add-ons.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Addons {
    /// The app's PostgreSQL database: per PR a database and its own login role
    /// on the base's server (preview-pr), the stack's own server and database
    /// (local, production). Enables the `{db.*}` placeholders.
    pub postgres: Option<PostgresAddon>,
}

/// The PostgreSQL add-on (names and sizes come from the config's `database:`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresAddon {}

/// How a service's pods are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// One container of `image` (`command`, `args`, `env`, `port`, probes).
    #[default]
    Container,
    /// A static site on nginx (unprivileged, port 8080) with a `js-config`
    /// ConfigMap holding `jsConfig` (`apiUri` required) as `config.js`.
    StaticSite,
    /// A PHP application: PHP-FPM from `image` behind nginx (config `nginxImage`)
    /// on port 8080, the code copied into a shared volume by an init container.
    PhpFpm,
}

/// One workload.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Service {
    /// Deployment and Service name (a DNS label).
    pub name: String,
    /// How its pods are made (default `container`).
    #[serde(default)]
    pub kind: ServiceKind,
    /// The image key: `--image KEY=REF` fills it (`--web-image`/`--api-image`
    /// are `--image web=…`/`--image api=…`).
    pub image: String,
    /// Container port (named `http`; `container` only; static-site and php-fpm
    /// listen on 8080). Without one: no Service, no probes (a worker).
    pub port: Option<u16>,
    /// The Service's port (default 80), forwarding to the container port.
    pub service_port: Option<u16>,
    /// Container command (`container` only; default: the image's entrypoint).
    pub command: Option<Vec<String>>,
    /// Container arguments (`container` only).
    pub args: Option<Vec<String>>,
    /// Container environment (`container` only): values are templates.
    #[serde(default)]
    pub env: BTreeMap<String, PerStack>,
    /// Read the shared `env` / `secretEnv` with `envFrom` (default: `true` for
    /// `container` and `php-fpm` when the app has any, never for `static-site`).
    pub shared_env: Option<bool>,
    /// `config.js` entries (`static-site` only; `apiUri` required): templates.
    #[serde(default)]
    pub js_config: BTreeMap<String, PerStack>,
    /// Readiness and liveness probes (`container` with a port; default: none).
    pub probes: Option<Probes>,
    /// Requests and limits of the main container.
    pub resources: Option<Resources>,
    /// Requests and limits of the other containers of `php-fpm` (`nginx`, `init`).
    #[serde(default)]
    pub sidecar_resources: BTreeMap<String, Resources>,
    /// Replicas (default: the config's `replicas`).
    pub replicas: Option<i32>,
    /// Jobs that must complete before this service is applied.
    #[serde(default)]
    pub after: Vec<String>,
}

/// Requests and limits: a key of the config's `resources:` (so each stack sizes
/// it), or given here.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Resources {
    /// `resources.<key>` of the stack's config file (e.g. `web`, `apiPhp`).
    Config(String),
    /// Given in the spec.
    Inline(InlineResources),
}

/// Requests and limits given in the spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InlineResources {
    /// Requests.
    #[serde(default)]
    pub requests: Quantities,
    /// Limits.
    #[serde(default)]
    pub limits: Quantities,
}

impl InlineResources {
    /// As the components take them.
    pub fn to_compute(&self) -> components::ComputeResources {
        components::ComputeResources {
            requests: self.requests.to_cpu_memory(),
            limits: self.limits.to_cpu_memory(),
        }
    }
}

impl Quantities {
    fn to_cpu_memory(&self) -> components::CpuMemory {
        components::CpuMemory {
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            ephemeral_storage: self.ephemeral_storage.clone(),
        }
    }
}

/// CPU, memory and ephemeral-storage quantities (`250m`, `128Mi`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Quantities {
    /// CPU.
    pub cpu: Option<String>,
    /// Memory.
    pub memory: Option<String>,
    /// Ephemeral storage.
    pub ephemeral_storage: Option<String>,
}

/// Probes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probes {
    /// Readiness.
    pub readiness: Option<Probe>,
    /// Liveness.
    pub liveness: Option<Probe>,
}

/// A probe on the container's `http` port: an HTTP GET of `path`, or a TCP
/// connect without one.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    /// HTTP path (absent: TCP connect).
    pub path: Option<String>,
    /// Seconds before the first probe (default 5).
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes (default 10).
    pub period_seconds: Option<i32>,
}

/// A Job gating services.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Job {
    /// Name prefix (the Job is `<name>-<10 hex>`; at most 52 characters).
    pub name: String,
    /// The image key.
    pub image: String,
    /// A shell command (`sh -c`; a template), or
    pub shell: Option<String>,
    /// a command and its arguments (templates).
    pub command: Option<Vec<String>>,
    /// Requests and limits.
    pub resources: Option<Resources>,
    /// Read the shared env (default `true`).
    pub shared_env: Option<bool>,
    /// Retries before the Job fails (default 2).
    pub backoff_limit: Option<i32>,
}

/// A public route: host → service port, with per-client connection limits.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    /// Route name (HTTPRoute `<name>`, filter `<name>-limits`; `{url.<name>}`).
    pub name: String,
    /// Host template, e.g. `{pr}.pr.{domain}` for preview-pr. In preview-pr the
    /// host must fall under one of the base gateway's wildcards
    /// (`*.pr.<domain>`, `*.pr-api.<domain>`).
    pub host: PerStack,
    /// The service.
    pub service: String,
    /// The Service port (default the service's `servicePort`, 80).
    pub port: Option<u16>,
    /// Connection limits (default: the config's `connectionLimit`); `false`: none.
    pub connection_limit: Option<RouteLimit>,
}

/// A route's connection limits.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RouteLimit {
    /// `false`: no limits; `true`: the config's.
    Enabled(bool),
    /// These limits (unset fields: the config's).
    Limits(RouteLimits),
}

/// Per-client limits.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteLimits {
    /// Concurrent connections per client address.
    pub connections_per_client: Option<u32>,
    /// Request rate per client address (`10r/s`, `600r/m`).
    pub request_rate: Option<String>,
    /// Burst allowance.
    pub burst: Option<u32>,
}

/// Extra manifests.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifests {
    /// A YAML file or a directory of them (`*.yaml`, `*.yml`, in name order),
    /// relative to the spec file. `--manifests -` reads `helm template` or
    /// `kustomize build` output from stdin instead.
    pub path: Option<String>,
}

/// NetworkPolicy rules beyond the derived ones (ingress from the gateway to the
/// routed services' ports, traffic between services that name each other's
/// `{service.NAME.url}`, DNS, and the database with the add-on).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// Allowed egress.
    #[serde(default)]
    pub egress: Vec<Egress>,
}

/// One egress rule: policy `allow-egress-<name>`, to pods of the app's own
/// namespace (`podSelector` alone; that traffic is then also admitted at those
/// pods), to another namespace, or to an address range.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Egress {
    /// Rule name (a DNS label).
    pub name: String,
    /// TCP ports.
    pub ports: Vec<u16>,
    /// Labels of the pods.
    #[serde(default)]
    pub pod_selector: BTreeMap<String, String>,
    /// Another namespace.
    pub namespace: Option<String>,
    /// An address range (`10.0.0.0/8`, `0.0.0.0/0`).
    pub cidr: Option<String>,
}
