//! The app spec a configuration carries, and the checks of the configuration
//! against it: the nginx image of `php-fpm` services and the PostgreSQL
//! server's image of the database add-on against `allowedImages`,
//! and the container resources the spec takes from `resources:` must be
//! complete when the namespace has a ResourceQuota (and so must the ones the
//! spec gives inline); `images.<key>` and `hosts.<route>` must name an image
//! key and a route of the spec.

use components::ComputeResources;

use super::StackConfig;
use crate::app_spec::App;
use crate::app_spec::model::{Resources, ServiceKind};
use crate::{StackError, StackKind};

/// `a, b` or `none`.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl StackConfig {
    /// `images.<key>` names an image key of the app, `hosts.<name>` a route of it
    /// (or `web`/`api`, the `{hosts.web}`/`{hosts.api}` placeholders).
    fn check_app_keys(&self) -> Result<(), StackError> {
        let keys = self.app_spec.image_keys();
        if let Some(key) = self.local_images.keys().find(|k| !keys.contains(k)) {
            return Err(StackError::Invalid(format!(
                "config key `images.{key}` in {}: {} has no image key `{key}` (its image keys: {}); remove the key or use one of those",
                self.origin,
                self.app_spec.origin,
                listed(&keys)
            )));
        }
        let routes: Vec<String> = self
            .app_spec
            .spec
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let placeholder = |name: &str| name == "web" || name == "api";
        if let Some(name) = self
            .hosts
            .keys()
            .find(|n| !routes.contains(n) && !placeholder(n))
        {
            return Err(StackError::Invalid(format!(
                "config key `hosts.{name}` in {}: {} has no route `{name}` (its routes: {}; `hosts.web`/`hosts.api` fill `{{hosts.web}}`/`{{hosts.api}}`); remove the key or use one of those",
                self.origin,
                self.app_spec.origin,
                listed(&routes)
            )));
        }
        Ok(())
    }

    /// This configuration deploying `app` instead of the built-in one.
    pub fn with_app(mut self, app: App) -> StackConfig {
        self.app_spec = app;
        self
    }

    /// Under a quota, every container of the app (and the stack's own
    /// PostgreSQL server in the same namespace) has cpu and memory (and, when
    /// the quota caps it, ephemeral-storage) requests and limits.
    /// The checks of this configuration against its app (module docs); the
    /// stacks run them first when they are built.
    pub fn check_app(&self) -> Result<(), StackError> {
        if !crate::uses_app(self.stack) {
            return Ok(());
        }
        self.check_app_keys()?;
        // The nginx of `php-fpm` services, against the allowed prefixes.
        let runs_nginx = self
            .app_spec
            .spec
            .services
            .iter()
            .any(|s| s.kind == ServiceKind::PhpFpm);
        if let (true, Some(image)) = (runs_nginx, &self.nginx_image) {
            self.check_image(
                &format!("config key `nginxImage` in {}:", self.origin),
                image,
            )?;
        }
        // The stack's own PostgreSQL server (local, production) for the add-on.
        let runs_postgres = self.app_spec.spec.addons.postgres.is_some()
            && self.stack != StackKind::PreviewPr
            && self.database.external.is_none();
        if let (true, Some(image)) = (runs_postgres, &self.postgres_image) {
            self.check_image(
                &format!("config key `postgresImage` in {}:", self.origin),
                image,
            )?;
        }
        let Some(quota) = &self.quota else {
            return Ok(());
        };
        let spec = &self.app_spec.spec;
        // (the spec path, the resources)
        let mut containers: Vec<(String, Option<&Resources>)> = Vec::new();
        for (i, service) in spec.services.iter().enumerate() {
            containers.push((
                format!("services[{i}].resources"),
                service.resources.as_ref(),
            ));
            for (key, resources) in &service.sidecar_resources {
                containers.push((
                    format!("services[{i}].sidecarResources.{key}"),
                    Some(resources),
                ));
            }
        }
        for (i, job) in spec.jobs.iter().enumerate() {
            containers.push((format!("jobs[{i}].resources"), job.resources.as_ref()));
        }
        // The config keys in the order they are documented, then the inline ones.
        let mut checks: Vec<(String, Option<ComputeResources>)> = Vec::new();
        let mut inline: Vec<(String, Option<ComputeResources>)> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        for (source, resources) in &containers {
            match resources {
                Some(Resources::Config(key)) => keys.push(key.as_str()),
                Some(Resources::Inline(r)) => inline.push((source.clone(), Some(r.to_compute()))),
                None => inline.push((source.clone(), None)),
            }
        }
        let own_server_in_namespace = self.stack != StackKind::PreviewPr
            && self.database.external.is_none()
            && self.database.namespace == self.namespace
            && spec.addons.postgres.is_some();
        if own_server_in_namespace {
            keys.extend(["postgres", "databaseJob"]);
        }
        for key in super::ResourcesConfig::KEYS {
            if keys.contains(&key) {
                let value = self.resources.get(key).cloned().flatten();
                checks.push((format!("resources.{key}"), value));
            }
        }
        let hint_of = || {
            let (storage, what) = match &quota.ephemeral_storage {
                Some(s) => (
                    format!(", ephemeral storage {s}"),
                    "cpu, memory and ephemeral-storage",
                ),
                None => (String::new(), "cpu and memory"),
            };
            format!(
                "the namespace has a ResourceQuota (cpu {}, memory {}{storage}, pods {}), so every container needs {what} requests and limits",
                quota.cpu, quota.memory, quota.pods
            )
        };
        for (from_config, list) in [(true, checks), (false, inline)] {
            for (name, value) in list {
                let Some(field) = first_missing(value.as_ref(), quota.ephemeral_storage.is_some())
                else {
                    continue;
                };
                let key = format!("{name}.{field}");
                return Err(if from_config {
                    StackError::Missing {
                        what: format!("config key `{key}` in {}", self.origin),
                        hint: format!("{}; add `{key}: …` to {}", hint_of(), self.origin),
                    }
                } else {
                    StackError::Missing {
                        what: format!("`{key}` in {}", self.app_spec.origin),
                        hint: format!(
                            "{}; give the container's requests and limits in the app spec, or name a key of the config's `resources:`",
                            hint_of()
                        ),
                    }
                });
            }
        }
        Ok(())
    }
}

/// The first unset field (`requests.cpu`, …), when any.
fn first_missing(value: Option<&ComputeResources>, storage: bool) -> Option<String> {
    let empty = ComputeResources::default();
    let value = value.unwrap_or(&empty);
    for (section, cm) in [("requests", &value.requests), ("limits", &value.limits)] {
        let mut fields = vec![("cpu", &cm.cpu), ("memory", &cm.memory)];
        if storage {
            fields.push(("ephemeralStorage", &cm.ephemeral_storage));
        }
        for (field, v) in fields {
            if v.is_none() {
                return Some(format!("{section}.{field}"));
            }
        }
    }
    None
}
