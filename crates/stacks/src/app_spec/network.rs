//! The NetworkPolicy rules an app spec implies, on top of the namespace's
//! default deny, DNS egress and (with the database add-on) database egress:
//! - ingress from the gateway on the container ports of the routed services
//!   (Aphiria: 8080, where its nginx pods listen behind Service port 80);
//! - between services: a service named in a template (`{service.api.url}`) may
//!   be reached by the app's pods on its container port (rule `service-<name>`);
//! - the declared `network.egress` rules.

use std::collections::BTreeSet;

use components::{Labels, PolicyPeer, PolicyRule};

use super::App;
use super::check::{container_port, templates};
use super::template::placeholders;

/// The container ports the gateway may reach: those of the services a route
/// points at, sorted, without repeats (8080 when there are no routes, the
/// component's default).
pub fn ingress_ports(app: &App) -> Vec<u16> {
    let mut ports: Vec<u16> = app
        .spec
        .routes
        .iter()
        .filter_map(|route| app.spec.services.iter().find(|s| s.name == route.service))
        .filter_map(container_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        ports.push(components::web::HTTP_PORT);
    }
    ports
}

/// The rules beyond the built-in policies: services named in templates, then
/// the declared egress (see the module docs).
pub fn rules(app: &App) -> Vec<PolicyRule> {
    let mut named = BTreeSet::new();
    for (_, (_, text), _) in templates(&app.spec) {
        for name in placeholders(&text).unwrap_or_default() {
            if let Some(rest) = name.strip_prefix("service.")
                && let Some((service, _)) = rest.rsplit_once('.')
            {
                named.insert(service.to_owned());
            }
        }
    }
    let mut out: Vec<PolicyRule> = app
        .spec
        .services
        .iter()
        .filter(|s| named.contains(&s.name))
        .filter_map(|s| {
            container_port(s).map(|port| PolicyRule {
                name: format!("service-{}", s.name),
                ports: vec![port],
                peer: PolicyPeer::OwnPods(
                    Labels::new().with(components::common::NAME_LABEL, s.name.as_str()),
                ),
            })
        })
        .collect();
    for egress in &app.spec.network.egress {
        let pods: Labels = egress
            .pod_selector
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let peer = match (&egress.cidr, &egress.namespace) {
            (Some(cidr), _) => PolicyPeer::Cidr(cidr.clone()),
            (None, Some(namespace)) => PolicyPeer::Namespace {
                namespace: namespace.clone(),
                pods,
            },
            (None, None) => PolicyPeer::OwnPods(pods),
        };
        out.push(PolicyRule {
            name: egress.name.clone(),
            ports: egress.ports.clone(),
            peer,
        });
    }
    out
}
