//! Static checks of a parsed app spec, before any stack is built: names, kinds,
//! references between services, jobs and routes, and every template's
//! placeholders. Each error names the file, the key path and what is expected.

use std::collections::BTreeSet;

use super::SpecError;
use super::model::{AppSpec, Egress, PerStack, Resources, Service, ServiceKind};
use super::template::placeholders;

/// Longest Job name prefix (63 minus `-` and the 10-character hash).
const MAX_JOB_NAME: usize = 52;

/// Checks `spec` read from `origin`.
pub(super) fn check(origin: &str, spec: &AppSpec) -> Result<(), SpecError> {
    let err = |path: String, message: String| SpecError {
        origin: origin.to_owned(),
        path,
        message,
    };
    if spec.version != 1 {
        return Err(err(
            "version".into(),
            format!("{}: expected 1", spec.version),
        ));
    }
    if spec.services.is_empty() {
        return Err(err(
            "services".into(),
            "expected at least one service".into(),
        ));
    }
    let mut services = BTreeSet::new();
    for (i, service) in spec.services.iter().enumerate() {
        let path = format!("services[{i}]");
        dns_label(&service.name, 63).map_err(|m| err(format!("{path}.name"), m))?;
        if !services.insert(service.name.as_str()) {
            return Err(err(
                format!("{path}.name"),
                format!("`{}` is already a service's name", service.name),
            ));
        }
        image_key(&service.image).map_err(|m| err(format!("{path}.image"), m))?;
        kind_fields(service).map_err(|(key, m)| err(format!("{path}.{key}"), m))?;
    }
    // One ConfigMap name per kind (`js-config`, `nginx-config`).
    for (kind, name, config_map) in [
        (ServiceKind::StaticSite, "static-site", "js-config"),
        (ServiceKind::PhpFpm, "php-fpm", "nginx-config"),
    ] {
        if let Some(second) = spec
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == kind)
            .nth(1)
        {
            return Err(err(
                format!("services[{}].kind", second.0),
                format!("at most one service of kind `{name}` (its ConfigMap is `{config_map}`)"),
            ));
        }
    }
    let mut jobs = BTreeSet::new();
    for (i, job) in spec.jobs.iter().enumerate() {
        let path = format!("jobs[{i}]");
        dns_label(&job.name, MAX_JOB_NAME).map_err(|m| err(format!("{path}.name"), m))?;
        if !jobs.insert(job.name.as_str()) {
            return Err(err(
                format!("{path}.name"),
                format!("`{}` is already a job's name", job.name),
            ));
        }
        image_key(&job.image).map_err(|m| err(format!("{path}.image"), m))?;
        match (&job.shell, &job.command) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(err(
                    path,
                    "expected exactly one of `shell` (a shell command) and `command` (a list)"
                        .into(),
                ));
            }
        }
    }
    for (i, service) in spec.services.iter().enumerate() {
        for (j, job) in service.after.iter().enumerate() {
            if !jobs.contains(job.as_str()) {
                return Err(err(
                    format!("services[{i}].after[{j}]"),
                    format!("`{job}` is not a job of this spec ({})", list(&jobs)),
                ));
            }
        }
    }
    let mut routes = BTreeSet::new();
    for (i, route) in spec.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        dns_label(&route.name, 63).map_err(|m| err(format!("{path}.name"), m))?;
        if !routes.insert(route.name.as_str()) {
            return Err(err(
                format!("{path}.name"),
                format!("`{}` is already a route's name", route.name),
            ));
        }
        let Some(service) = spec.services.iter().find(|s| s.name == route.service) else {
            return Err(err(
                format!("{path}.service"),
                format!(
                    "`{}` is not a service of this spec ({})",
                    route.service,
                    list(&services)
                ),
            ));
        };
        if container_port(service).is_none() {
            return Err(err(
                format!("{path}.service"),
                format!("service `{}` has no `port` to route to", service.name),
            ));
        }
        let port = service_port(service);
        if route.port.is_some_and(|p| p != port) {
            return Err(err(
                format!("{path}.port"),
                format!("service `{}` serves port {port}", service.name),
            ));
        }
    }
    let mut egress_names = BTreeSet::new();
    for (i, egress) in spec.network.egress.iter().enumerate() {
        egress_rule(egress).map_err(|(key, m)| err(format!("network.egress[{i}]{key}"), m))?;
        if egress.name.starts_with("service-") || !egress_names.insert(egress.name.as_str()) {
            return Err(err(
                format!("network.egress[{i}].name"),
                format!(
                    "`{}` is taken (names are unique; `service-*` are the derived rules')",
                    egress.name
                ),
            ));
        }
    }

    let names = Names {
        spec,
        routes: &routes,
    };
    for (path, template, secret) in templates(spec) {
        names
            .check(&template.1, secret, path.starts_with("routes["))
            .map_err(|m| err(join(&path, template.0), m))?;
    }
    Ok(())
}

/// `path` with the per-stack key appended (`env.PR_NUMBER.preview-pr`).
fn join(path: &str, key: &str) -> String {
    if key.is_empty() {
        path.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Every template of the spec: (key path, (per-stack key, text), secret).
pub(super) fn templates(spec: &AppSpec) -> Vec<(String, (&'static str, String), bool)> {
    let mut out = Vec::new();
    let mut add = |path: String, value: &PerStack, secret: bool| {
        for (key, text) in value.texts() {
            out.push((path.clone(), (key, text.to_owned()), secret));
        }
    };
    for (name, value) in &spec.env {
        add(format!("env.{name}"), value, false);
    }
    for (name, value) in &spec.secret_env {
        add(format!("secretEnv.{name}"), value, true);
    }
    for (i, service) in spec.services.iter().enumerate() {
        for (name, value) in &service.env {
            add(format!("services[{i}].env.{name}"), value, false);
        }
        for (name, value) in &service.js_config {
            add(format!("services[{i}].jsConfig.{name}"), value, false);
        }
        for (j, arg) in service.command.iter().flatten().enumerate() {
            add(
                format!("services[{i}].command[{j}]"),
                &PerStack::All(arg.clone()),
                false,
            );
        }
        for (j, arg) in service.args.iter().flatten().enumerate() {
            add(
                format!("services[{i}].args[{j}]"),
                &PerStack::All(arg.clone()),
                false,
            );
        }
    }
    for (i, job) in spec.jobs.iter().enumerate() {
        if let Some(shell) = &job.shell {
            add(
                format!("jobs[{i}].shell"),
                &PerStack::All(shell.clone()),
                false,
            );
        }
        for (j, arg) in job.command.iter().flatten().enumerate() {
            add(
                format!("jobs[{i}].command[{j}]"),
                &PerStack::All(arg.clone()),
                false,
            );
        }
    }
    for (i, route) in spec.routes.iter().enumerate() {
        add(format!("routes[{i}].host"), &route.host, false);
    }
    out
}

struct Names<'a> {
    spec: &'a AppSpec,
    routes: &'a BTreeSet<&'a str>,
}

impl Names<'_> {
    fn check(&self, template: &str, secret: bool, route_host: bool) -> Result<(), String> {
        for name in placeholders(template)? {
            self.known(&name, secret, route_host)?;
        }
        Ok(())
    }

    fn known(&self, name: &str, secret: bool, route_host: bool) -> Result<(), String> {
        let unknown = || {
            format!(
                "unknown placeholder `{{{name}}}`; expected one of {{pr}}, {{domain}}, {{namespace}}, {{stack}}, {{app}}, {{db.host}}, {{db.port}}, {{db.name}}, {{db.user}}, {{db.password}}, {{host.ROUTE}}, {{url.ROUTE}}, {{hosts.web}}, {{hosts.api}}, {{service.NAME.host}}, {{service.NAME.url}}, {{values.NAME}}"
            )
        };
        let (head, rest) = name.split_once('.').unwrap_or((name, ""));
        match (head, rest) {
            ("pr" | "domain" | "namespace" | "stack" | "app", "") => Ok(()),
            ("db", "host" | "port" | "name" | "user" | "password") => {
                if self.spec.addons.postgres.is_none() {
                    return Err(format!(
                        "`{{{name}}}` needs the database add-on (`addons: {{postgres: {{}}}}`)"
                    ));
                }
                if rest == "password" && !secret {
                    return Err(format!(
                        "`{{{name}}}` is secret: use it only in `secretEnv`"
                    ));
                }
                Ok(())
            }
            ("host" | "url", route) if !route.is_empty() => {
                if route_host {
                    return Err(format!(
                        "`{{{name}}}`: a route's host cannot depend on a route's host"
                    ));
                }
                if self.routes.contains(route) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{{{name}}}`: `{route}` is not a route of this spec ({})",
                        list(self.routes)
                    ))
                }
            }
            ("hosts", "web" | "api") => Ok(()),
            ("service", rest) => {
                let (service, field) = rest.rsplit_once('.').unwrap_or((rest, ""));
                if !matches!(field, "host" | "url") {
                    return Err(unknown());
                }
                match self.spec.services.iter().find(|s| s.name == service) {
                    Some(s) if container_port(s).is_some() => Ok(()),
                    Some(_) => Err(format!("`{{{name}}}`: service `{service}` has no `port`")),
                    None => Err(format!(
                        "`{{{name}}}`: `{service}` is not a service of this spec"
                    )),
                }
            }
            ("values", value) if !value.is_empty() => {
                if self.spec.values.contains_key(value) {
                    Ok(())
                } else {
                    let known: BTreeSet<&str> =
                        self.spec.values.keys().map(String::as_str).collect();
                    Err(format!(
                        "`{{{name}}}`: `{value}` is not declared under `values` ({})",
                        list(&known)
                    ))
                }
            }
            _ => Err(unknown()),
        }
    }
}

/// The fields a kind does not read, as (key, message).
fn kind_fields(service: &Service) -> Result<(), (&'static str, String)> {
    let kind = match service.kind {
        ServiceKind::Container => "container",
        ServiceKind::StaticSite => "static-site",
        ServiceKind::PhpFpm => "php-fpm",
    };
    let not_for = |key: &'static str, set: bool, kinds: &str| {
        if set {
            Err((key, format!("not read by kind `{kind}` (only {kinds})")))
        } else {
            Ok(())
        }
    };
    let container = service.kind == ServiceKind::Container;
    not_for(
        "port",
        service.port.is_some() && !container,
        "`container`; the others listen on 8080",
    )?;
    not_for(
        "command",
        service.command.is_some() && !container,
        "`container`",
    )?;
    not_for("args", service.args.is_some() && !container, "`container`")?;
    not_for("env", !service.env.is_empty() && !container, "`container`")?;
    not_for(
        "probes",
        service.probes.is_some() && !container,
        "`container`",
    )?;
    not_for(
        "jsConfig",
        !service.js_config.is_empty() && service.kind != ServiceKind::StaticSite,
        "`static-site`",
    )?;
    not_for(
        "servicePort",
        service.service_port.is_some_and(|p| p != 80) && !container,
        "`container`; the others are served on 80",
    )?;
    not_for(
        "sharedEnv",
        (service.shared_env == Some(true) && service.kind == ServiceKind::StaticSite)
            || (service.shared_env == Some(false) && service.kind == ServiceKind::PhpFpm),
        "`container`; a `static-site` reads none, a `php-fpm` always reads it",
    )?;
    if service.probes.is_some() && service.port.is_none() {
        return Err(("probes", "probes need a `port`".into()));
    }
    if service.kind == ServiceKind::StaticSite && !service.js_config.contains_key("apiUri") {
        return Err((
            "jsConfig",
            "a `static-site` needs `jsConfig.apiUri` (e.g. `{url.api}`)".into(),
        ));
    }
    for key in service.sidecar_resources.keys() {
        if service.kind != ServiceKind::PhpFpm || !matches!(key.as_str(), "nginx" | "init") {
            return Err((
                "sidecarResources",
                format!("`{key}`: only kind `php-fpm` has other containers (`nginx`, `init`)"),
            ));
        }
    }
    if let Some(Resources::Config(key)) = &service.resources
        && key.trim().is_empty()
    {
        return Err((
            "resources",
            "expected a config `resources` key or requests/limits".into(),
        ));
    }
    if service.replicas.is_some_and(|r| r < 0) {
        return Err(("replicas", "must not be negative".into()));
    }
    Ok(())
}

/// The container port a service listens on (`None`: no Service).
pub(super) fn container_port(service: &Service) -> Option<u16> {
    match service.kind {
        ServiceKind::Container => service.port,
        ServiceKind::StaticSite | ServiceKind::PhpFpm => Some(components::web::HTTP_PORT),
    }
}

/// The Service port of a service (default 80).
pub(super) fn service_port(service: &Service) -> u16 {
    service.service_port.unwrap_or(80)
}

fn egress_rule(egress: &Egress) -> Result<(), (&'static str, String)> {
    dns_label(&egress.name, 40).map_err(|m| (".name", m))?;
    if egress.ports.is_empty() || egress.ports.contains(&0) {
        return Err((".ports", "expected at least one port (1-65535)".into()));
    }
    match (&egress.cidr, &egress.namespace, egress.pod_selector.is_empty()) {
        (Some(_), None, true) => Ok(()),
        (None, Some(ns), _) => dns_label(ns, 63).map_err(|m| (".namespace", m)),
        (None, None, false) => Ok(()),
        _ => Err((
            "",
            "expected `cidr`, or `namespace` (and optionally `podSelector`), or `podSelector` alone (pods of the app's namespace)".into(),
        )),
    }
}

/// A DNS-1123 label of at most `max` characters.
pub(super) fn dns_label(name: &str, max: usize) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: expected a DNS label (lowercase letters, digits, `-`; at most {max} characters)"
        ))
    }
}

/// An image key: what `--image KEY=REF` names.
fn image_key(key: &str) -> Result<(), String> {
    dns_label(key, 63).map_err(|_| {
        format!("{key:?}: expected an image key (lowercase letters, digits, `-`), as in `--image {key}=REF`")
    })
}

fn list(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "there are none".to_owned()
    } else {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("expected {}", names.join(", "))
    }
}
