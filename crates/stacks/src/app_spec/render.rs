//! Rendering an app spec for one stack instance: pure, in two steps.
//!
//! 1. [`Renderer::new`] fills the template [`Context`] (the stack's names, the
//!    database, the values: the spec's defaults and the config's `values`) and
//!    resolves the route hosts, so the stack can pick the gateway listeners for
//!    them ([`Renderer::hosts`]).
//! 2. [`Renderer::render`] renders, in order: the database, the shared env
//!    ConfigMap and Secret, the jobs (each after the database; named with a hash
//!    of its pod template and of the shared env, so a new image or configuration
//!    runs it again), the services (each after the jobs in its `after`), the
//!    routes (each after its limits filter), then the extra manifests (in the
//!    app's namespace; cluster-scoped objects are refused).
//!
//! Every template is resolved before anything is returned: an unknown
//! placeholder is an error naming the key path, and nothing is applied.

use std::collections::BTreeMap;

use components::{
    Api, ComputeResources, EnvConfigMap, EnvSecret, GatewayRef, HttpRoute, ImagePullPolicy, Labels,
    ManifestBundle, Migration, MigrationJob, Web, Workload, WorkloadProbe,
};
use preview_core::secret::SecretString;
use preview_core::{Resource, ResourceId};
use sha2::Digest;

use super::check::{container_port, service_port};
use super::model::{PerStack, Resources, RouteLimit, ServiceKind};
use super::template::Context;
use super::{App, SpecError};
use crate::config::StackConfig;
use crate::{StackError, StackKind};

/// The database the app's templates and jobs see (with `addons.postgres`).
pub struct Database {
    /// The logical database resource (jobs depend on it).
    pub resource: Resource,
    /// `{db.host}`.
    pub host: String,
    /// `{db.port}`.
    pub port: u16,
    /// `{db.name}`.
    pub name: String,
    /// `{db.user}`.
    pub user: String,
    /// `{db.password}`.
    pub password: SecretString,
}

/// What the stack decides for one instance.
pub struct Instance<'a> {
    /// The stack.
    pub stack: StackKind,
    /// Its resolved config.
    pub config: &'a StackConfig,
    /// The app's namespace.
    pub namespace: &'a str,
    /// `{pr}` (preview-pr).
    pub pr: Option<String>,
    /// The database (required when the spec has `addons.postgres`).
    pub database: Option<Database>,
}

/// Images and pulling, decided by the stack.
pub struct Images {
    /// Image key → reference (every key of [`App::image_keys`]).
    pub refs: BTreeMap<String, String>,
    /// The nginx of `php-fpm` services.
    pub nginx: Option<String>,
    /// Pull policy.
    pub pull_policy: ImagePullPolicy,
    /// `imagePullSecrets`.
    pub pull_secrets: Vec<String>,
}

/// Names of the shared env objects.
pub struct EnvNames {
    /// The ConfigMap (`env-vars-pr-123`).
    pub config_map: String,
    /// The Secret (`env-var-secrets-pr-123`).
    pub secret: String,
}

/// The rendered application.
pub struct Rendered {
    /// Resources, in the order of the module docs.
    pub resources: Vec<Resource>,
    /// `https://<host>` per route name.
    pub urls: Vec<(String, String)>,
}

/// A spec bound to one stack instance (see the module docs).
pub struct Renderer<'a> {
    app: &'a App,
    config: &'a StackConfig,
    namespace: String,
    context: Context,
    database: Option<Resource>,
    hosts: Vec<(String, String)>,
}

/// The spec's values for `stack`, overridden by the config's.
fn values(
    app: &App,
    config: &StackConfig,
    stack: StackKind,
) -> Result<BTreeMap<String, String>, StackError> {
    let mut out = BTreeMap::new();
    for (name, value) in &app.spec.values {
        if let Some(text) = value.for_stack(stack) {
            out.insert(name.clone(), text.to_owned());
        }
    }
    for (name, (key, value)) in &config.values {
        if !app.spec.values.contains_key(name) {
            let declared: Vec<&str> = app.spec.values.keys().map(String::as_str).collect();
            return Err(StackError::Invalid(format!(
                "config key `{key}` in {} sets the app value `{name}`, which {} does not declare (its values: {}); remove the key or declare the value under `values:`",
                config.origin,
                app.origin,
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            )));
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

impl<'a> Renderer<'a> {
    /// Fills the context and resolves the route hosts.
    pub fn new(app: &'a App, instance: Instance<'a>) -> Result<Renderer<'a>, StackError> {
        let config = instance.config;
        let spec = &app.spec;
        let err = |path: String, message: String| -> StackError {
            SpecError {
                origin: app.origin.clone(),
                path,
                message,
            }
            .into()
        };
        let mut context = Context::new(instance.stack.as_str());
        if let Some(pr) = &instance.pr {
            context.set("pr", pr.clone());
        }
        context.set("domain", config.domain.clone());
        context.set("namespace", instance.namespace);
        context.set("stack", instance.stack.as_str());
        context.set("app", config.app.clone());
        if instance.stack != StackKind::PreviewPr {
            context.set("hosts.web", config.web_host.clone());
            context.set("hosts.api", config.api_host.clone());
        }
        let database = match (&spec.addons.postgres, instance.database) {
            (Some(_), Some(db)) => {
                context.set("db.host", db.host);
                context.set("db.port", db.port.to_string());
                context.set("db.name", db.name);
                context.set("db.user", db.user);
                context.set_secret("db.password", db.password);
                Some(db.resource)
            }
            (Some(_), None) => {
                return Err(err(
                    "addons.postgres".into(),
                    format!(
                        "the {} stack provides no database here",
                        instance.stack.as_str()
                    ),
                ));
            }
            (None, _) => None,
        };
        for (name, value) in values(app, config, instance.stack)? {
            context.set(format!("values.{name}"), value);
        }
        for service in &spec.services {
            if container_port(service).is_some() {
                let port = service_port(service);
                context.set(
                    format!("service.{}.host", service.name),
                    service.name.clone(),
                );
                context.set(
                    format!("service.{}.url", service.name),
                    format!("http://{}:{port}", service.name),
                );
            }
        }
        let mut hosts = Vec::new();
        for (i, route) in spec.routes.iter().enumerate() {
            // The config's `hosts.<route>` (local, production) wins over the template.
            if let Some(host) = Self::configured_host(config, instance.stack, &route.name) {
                hosts.push((route.name.clone(), host.to_owned()));
                continue;
            }
            let path = format!("routes[{i}].host");
            let Some(template) = route.host.for_stack(instance.stack) else {
                return Err(err(
                    path,
                    format!(
                        "no host for the {} stack (give `default` or `{}`)",
                        instance.stack.as_str(),
                        instance.stack.as_str()
                    ),
                ));
            };
            let host = context.render(template).map_err(|m| err(path, m))?;
            hosts.push((route.name.clone(), host));
        }
        for (name, host) in &hosts {
            context.set(format!("host.{name}"), host.clone());
            context.set(format!("url.{name}"), format!("https://{host}"));
        }
        Ok(Renderer {
            app,
            config,
            namespace: instance.namespace.to_owned(),
            context,
            database,
            hosts,
        })
    }

    /// The config's `hosts.<route>`, for the stacks that read it.
    fn configured_host<'c>(
        config: &'c StackConfig,
        stack: StackKind,
        route: &str,
    ) -> Option<&'c str> {
        (stack != StackKind::PreviewPr)
            .then(|| config.hosts.get(route))
            .flatten()
            .map(String::as_str)
    }

    /// The route hosts, as (route name, host), in spec order.
    pub fn hosts(&self) -> &[(String, String)] {
        &self.hosts
    }

    /// Where a route's host came from, for messages: the config key it reads
    /// (`hosts.web`) or its key path in the spec.
    pub fn host_source(&self, route: &str) -> String {
        let index = self.app.spec.routes.iter().position(|r| r.name == route);
        let template = index.and_then(|i| {
            self.app.spec.routes[i]
                .host
                .for_stack(self.config.stack)
                .map(str::to_owned)
        });
        if Self::configured_host(self.config, self.config.stack, route).is_some() {
            return format!("config key `hosts.{route}` in {}", self.config.origin);
        }
        match (index, template.as_deref()) {
            (_, Some("{hosts.web}")) => format!("config key `hosts.web` in {}", self.config.origin),
            (_, Some("{hosts.api}")) => format!("config key `hosts.api` in {}", self.config.origin),
            (Some(i), _) => format!("`routes[{i}].host` in {}", self.app.origin),
            (None, _) => format!("route {route}"),
        }
    }

    fn err(&self, path: String, message: String) -> StackError {
        SpecError {
            origin: self.app.origin.clone(),
            path,
            message,
        }
        .into()
    }

    fn render_map(
        &self,
        path: &str,
        map: &BTreeMap<String, PerStack>,
    ) -> Result<BTreeMap<String, String>, StackError> {
        let mut out = BTreeMap::new();
        for (name, value) in map {
            if let Some(template) = value.for_stack(self.config.stack) {
                let text = self
                    .context
                    .render(template)
                    .map_err(|m| self.err(format!("{path}.{name}"), m))?;
                out.insert(name.clone(), text);
            }
        }
        Ok(out)
    }

    fn resources(
        &self,
        path: String,
        resources: Option<&Resources>,
    ) -> Result<Option<ComputeResources>, StackError> {
        match resources {
            None => Ok(None),
            Some(Resources::Config(key)) => match self.config.resources.get(key) {
                Some(found) => Ok(found.clone()),
                None => Err(self.err(
                    path,
                    format!(
                        "`{key}` is not a key of the config's `resources:` (expected one of {})",
                        crate::config::ResourcesConfig::KEYS.join(", ")
                    ),
                )),
            },
            Some(Resources::Inline(inline)) => Ok(Some(inline.to_compute())),
        }
    }

    fn image(&self, path: String, images: &Images, key: &str) -> Result<String, StackError> {
        images.refs.get(key).cloned().ok_or_else(|| {
            self.err(
                path,
                format!("no image given for key `{key}` (--image {key}=REF)"),
            )
        })
    }

    /// Renders the resources (see the module docs); `listener` gives the gateway
    /// listener of each route, by route name.
    pub fn render(
        self,
        labels: &Labels,
        env_names: &EnvNames,
        images: &Images,
        listener: &dyn Fn(&str) -> Result<GatewayRef, StackError>,
    ) -> Result<Rendered, StackError> {
        let spec = &self.app.spec;
        let stack = self.config.stack;
        let ns = self.namespace.as_str();
        let mut out: Vec<Resource> = Vec::new();
        let database_id = self.database.as_ref().map(|db| db.id.clone());
        out.extend(self.database.clone());

        let env = EnvConfigMap {
            labels: labels.clone(),
            ..EnvConfigMap::new(
                ns,
                env_names.config_map.as_str(),
                self.render_map("env", &spec.env)?,
            )
        }
        .build()?;
        let mut secret_data = BTreeMap::new();
        for (name, value) in &spec.secret_env {
            if let Some(template) = value.for_stack(stack) {
                let text = self
                    .context
                    .render_secret(template)
                    .map_err(|m| self.err(format!("secretEnv.{name}"), m))?;
                secret_data.insert(name.clone(), text);
            }
        }
        let secret = EnvSecret {
            labels: labels.clone(),
            ..EnvSecret::new(ns, env_names.secret.as_str(), secret_data)
        }
        .build()?;
        let env_id = (env.id.name.clone(), secret.id.name.clone());

        let mut jobs: BTreeMap<&str, ResourceId> = BTreeMap::new();
        let mut job_resources = Vec::new();
        for (i, job) in spec.jobs.iter().enumerate() {
            let path = format!("jobs[{i}]");
            let image = self.image(format!("{path}.image"), images, &job.image)?;
            let mut migration = MigrationJob {
                base_name: job.name.clone(),
                image_pull_policy: images.pull_policy,
                resources: self.resources(format!("{path}.resources"), job.resources.as_ref())?,
                image_pull_secrets: images.pull_secrets.clone(),
                labels: labels.clone(),
                backoff_limit: job.backoff_limit.unwrap_or(2),
                ..MigrationJob::new(ns, image, env_id.0.as_str(), env_id.1.as_str())
            };
            if let Some(shell) = &job.shell {
                migration.command = self
                    .context
                    .render(shell)
                    .map_err(|m| self.err(format!("{path}.shell"), m))?;
            }
            if let Some(command) = &job.command {
                let mut argv = Vec::new();
                for (j, arg) in command.iter().enumerate() {
                    argv.push(
                        self.context
                            .render(arg)
                            .map_err(|m| self.err(format!("{path}.command[{j}]"), m))?,
                    );
                }
                migration.argv = Some(argv);
            }
            let mut built = migration.with_config(&[&env, &secret]).build()?;
            if let Some(db) = &database_id {
                built = built.depends_on(db);
            }
            jobs.insert(job.name.as_str(), built.id.clone());
            job_resources.push(built);
        }
        // Jobs and php-fpm read both; a `container` only the non-empty ones.
        let both =
            !spec.jobs.is_empty() || spec.services.iter().any(|s| s.kind == ServiceKind::PhpFpm);
        let containers = spec.services.iter().any(|s| reads_shared_env(spec, s));
        if both || (containers && !spec.env.is_empty()) {
            out.push(env);
        }
        if both || (containers && !spec.secret_env.is_empty()) {
            out.push(secret);
        }
        out.extend(job_resources);

        for (i, service) in spec.services.iter().enumerate() {
            let path = format!("services[{i}]");
            let image = self.image(format!("{path}.image"), images, &service.image)?;
            let replicas = service.replicas.unwrap_or(self.config.replicas);
            let resources =
                self.resources(format!("{path}.resources"), service.resources.as_ref())?;
            let gates: Vec<ResourceId> = service
                .after
                .iter()
                .filter_map(|job| jobs.get(job.as_str()).cloned())
                .collect();
            let mut rendered = match service.kind {
                ServiceKind::StaticSite => {
                    let mut js =
                        self.render_map(&format!("{path}.jsConfig"), &service.js_config)?;
                    let api_url = js.remove(components::web::API_URI_KEY).unwrap_or_default();
                    Web {
                        name: service.name.clone(),
                        image_pull_policy: images.pull_policy,
                        replicas,
                        resources,
                        image_pull_secrets: images.pull_secrets.clone(),
                        labels: labels.clone(),
                        js_config: js,
                        ..Web::new(ns, image, api_url)
                    }
                    .build()?
                    .into_resources()
                }
                ServiceKind::PhpFpm => {
                    let nginx = images
                        .nginx
                        .clone()
                        .ok_or_else(|| self.config.missing("nginxImage"))?;
                    let sidecar = |key: &str| {
                        self.resources(
                            format!("{path}.sidecarResources.{key}"),
                            service.sidecar_resources.get(key),
                        )
                    };
                    let mut api = Api {
                        name: service.name.clone(),
                        image_pull_policy: images.pull_policy,
                        replicas,
                        nginx_resources: sidecar("nginx")?,
                        php_resources: resources,
                        init_resources: sidecar("init")?,
                        image_pull_secrets: images.pull_secrets.clone(),
                        labels: labels.clone(),
                        ..Api::new(
                            ns,
                            image,
                            nginx,
                            env_id.0.as_str(),
                            env_id.1.as_str(),
                            gates.first().cloned().unwrap_or_else(|| {
                                ResourceId::kubernetes("batch/v1", "Job", Some(ns), "none")
                            }),
                        )
                    };
                    if gates.is_empty() {
                        api.migration = Migration::None;
                    }
                    api.build()?.into_resources()
                }
                ServiceKind::Container => {
                    let render_list = |key: &str, list: &Option<Vec<String>>| {
                        list.as_ref()
                            .map(|items| {
                                items
                                    .iter()
                                    .enumerate()
                                    .map(|(j, item)| {
                                        self.context
                                            .render(item)
                                            .map_err(|m| self.err(format!("{path}.{key}[{j}]"), m))
                                    })
                                    .collect::<Result<Vec<String>, StackError>>()
                            })
                            .transpose()
                    };
                    let probe = |probe: &Option<super::model::Probe>, delay: i32, period: i32| {
                        probe.as_ref().map(|p| WorkloadProbe {
                            path: p.path.clone(),
                            initial_delay_seconds: p.initial_delay_seconds.unwrap_or(delay),
                            period_seconds: p.period_seconds.unwrap_or(period),
                        })
                    };
                    let probes = service.probes.clone().unwrap_or_default();
                    Workload {
                        image_pull_policy: images.pull_policy,
                        replicas,
                        port: service.port,
                        service_port: service_port(service),
                        command: render_list("command", &service.command)?,
                        args: render_list("args", &service.args)?,
                        env: self.render_map(&format!("{path}.env"), &service.env)?,
                        env_config_map: (reads_shared_env(spec, service) && !spec.env.is_empty())
                            .then(|| env_id.0.clone()),
                        env_secret: (reads_shared_env(spec, service)
                            && !spec.secret_env.is_empty())
                        .then(|| env_id.1.clone()),
                        readiness: probe(&probes.readiness, 5, 10),
                        liveness: probe(&probes.liveness, 10, 30),
                        resources,
                        image_pull_secrets: images.pull_secrets.clone(),
                        labels: labels.clone(),
                        ..Workload::new(ns, service.name.as_str(), image)
                    }
                    .build()?
                }
            };
            for resource in &mut rendered {
                if resource.id.kind == "Deployment" {
                    resource.depends_on.extend(gates.iter().cloned());
                }
            }
            out.extend(rendered);
        }

        let mut urls = Vec::new();
        for (i, route) in spec.routes.iter().enumerate() {
            let Some((_, host)) = self.hosts.iter().find(|(name, _)| *name == route.name) else {
                continue;
            };
            let service = spec
                .services
                .iter()
                .find(|s| s.name == route.service)
                .map(service_port)
                .unwrap_or(80);
            let connection_limit = match &route.connection_limit {
                None | Some(RouteLimit::Enabled(true)) => {
                    Some(self.config.connection_limit.clone())
                }
                Some(RouteLimit::Enabled(false)) => None,
                Some(RouteLimit::Limits(limits)) => {
                    let mut limit = self.config.connection_limit.clone();
                    if let Some(n) = limits.connections_per_client {
                        limit.connections_per_client = n;
                    }
                    if let Some(rate) = &mut limit.request_rate {
                        if let Some(r) = &limits.request_rate {
                            rate.rate = r.clone();
                        }
                        if let Some(b) = limits.burst {
                            rate.burst = b;
                        }
                    }
                    Some(limit)
                }
            };
            let built = HttpRoute {
                port: route.port.unwrap_or(service),
                connection_limit,
                labels: labels.clone(),
                ..HttpRoute::new(
                    route.name.as_str(),
                    ns,
                    host.as_str(),
                    route.service.as_str(),
                    listener(&route.name).map_err(|e| match e {
                        StackError::Invalid(m) => self.err(format!("routes[{i}].host"), m),
                        other => other,
                    })?,
                )
            }
            .build()?;
            out.extend(built.into_resources());
            urls.push((route.name.clone(), format!("https://{host}")));
        }

        if let Some(manifests) = &self.app.manifests {
            let extra = extra_manifests(&self.app.origin, manifests, ns)?;
            // Their images come from the allowed prefixes too (digests: the policy).
            for resource in &extra {
                for image in pod_images(&resource.body) {
                    self.config.check_image(
                        &format!("{} in the extra manifests {}:", resource.id, manifests.name),
                        &image,
                    )?;
                }
            }
            out.extend(extra);
        }
        Ok(Rendered {
            resources: out,
            urls,
        })
    }
}

/// Whether `service` reads the shared env (`sharedEnv`, default: a `container`
/// or `php-fpm` when the app has any shared env).
pub(super) fn reads_shared_env(spec: &super::AppSpec, service: &super::model::Service) -> bool {
    match service.kind {
        ServiceKind::StaticSite => false,
        ServiceKind::PhpFpm => true,
        ServiceKind::Container => service
            .shared_env
            .unwrap_or(!spec.env.is_empty() || !spec.secret_env.is_empty()),
    }
}

/// The extra manifests, every object in `namespace`; cluster-scoped objects and
/// objects naming another namespace are refused.
fn extra_manifests(
    origin: &str,
    manifests: &super::ManifestSource,
    namespace: &str,
) -> Result<Vec<Resource>, StackError> {
    // Not pinned: the bytes are the repository's own (or the renderer's output);
    // the digest only satisfies the bundle's check.
    let digest = hex::encode(sha2::Sha256::digest(&manifests.bytes));
    let bundle = ManifestBundle {
        namespace: Some(namespace.to_owned()),
        ..ManifestBundle::from_bytes(
            format!("extra manifests {}", manifests.name),
            manifests.bytes.clone(),
            digest,
        )
    };
    let resources = bundle.build()?;
    for resource in &resources {
        if resource.id.namespace.is_none() {
            return Err(StackError::Invalid(format!(
                "{origin}: `manifests`: {} in {} is cluster-scoped; an app's extra manifests may only hold objects of its own namespace",
                resource.id, manifests.name
            )));
        }
    }
    Ok(resources)
}

/// The images of the containers and init containers of a workload body (Pod,
/// the kinds with a pod template, CronJob).
fn pod_images(body: &serde_json::Value) -> Vec<String> {
    let spec = &body["spec"];
    let pod = match body["kind"].as_str() {
        Some("Pod") => spec,
        Some("CronJob") => &spec["jobTemplate"]["spec"]["template"]["spec"],
        _ => &spec["template"]["spec"],
    };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| pod[*key].as_array())
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}
