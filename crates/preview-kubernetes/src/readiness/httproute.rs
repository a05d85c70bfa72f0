//! `gateway.networking.k8s.io/HTTPRoute` (and the other Gateway API routes, which
//! share the `status.parents` shape): ready when every `spec.parentRefs` entry has
//! a `status.parents` entry, and every `status.parents` entry has `Accepted=True`
//! and `ResolvedRefs=True`, for the current generation.
//!
//! - `Accepted=False` (other than reason `Pending`) is failed, naming the parent:
//!   the Gateway refuses the route as written (hostname matches no listener, the
//!   listener does not allow the namespace…).
//! - `ResolvedRefs=False` is failing with its message (a backend Service that does
//!   not exist, a cross-namespace reference without a ReferenceGrant).
//! - Conditions whose `observedGeneration` is older than `metadata.generation`
//!   are stale and only mean "waiting".

use serde_json::Value;

use super::Readiness;
use super::conditions::{Condition, find, generation, str_at};

/// The default `group` of a parent reference.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// A parent reference with its defaults filled in.
#[derive(Debug, PartialEq, Eq)]
struct Parent<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    section: Option<&'a str>,
    port: Option<i64>,
}

impl Parent<'_> {
    fn describe(&self) -> String {
        let mut out = format!("{} {}/{}", self.kind, self.namespace, self.name);
        match (self.section, self.port) {
            (Some(section), _) => out.push_str(&format!(" (listener {section})")),
            (None, Some(port)) => out.push_str(&format!(" (port {port})")),
            (None, None) => {}
        }
        out
    }
}

fn parent<'a>(reference: &'a Value, route_namespace: &'a str) -> Option<Parent<'a>> {
    Some(Parent {
        group: str_at(reference, "/group").unwrap_or(GATEWAY_GROUP),
        kind: str_at(reference, "/kind").unwrap_or("Gateway"),
        namespace: str_at(reference, "/namespace").unwrap_or(route_namespace),
        name: str_at(reference, "/name")?,
        section: str_at(reference, "/sectionName"),
        port: reference.get("port").and_then(Value::as_i64),
    })
}

/// Readiness of a route.
pub(super) fn evaluate(route: &Value) -> Readiness {
    let generation = generation(route);
    let namespace = str_at(route, "/metadata/namespace").unwrap_or("default");
    let wanted: Vec<Parent<'_>> = route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| parent(r, namespace))
        .collect();
    let statuses: Vec<(Parent<'_>, Option<&Value>)> = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| Some((parent(s.get("parentRef")?, namespace)?, s.get("conditions"))))
        .collect();

    let current = |conditions, type_| current(conditions, type_, generation);
    for (parent, conditions) in &statuses {
        if let Some(accepted) = current(*conditions, "Accepted")
            && accepted.is_false()
            && accepted.reason != "Pending"
        {
            return Readiness::Failed(format!(
                "not accepted by {}: {}",
                parent.describe(),
                accepted.describe()
            ));
        }
    }
    for (parent, conditions) in &statuses {
        if let Some(resolved) = current(*conditions, "ResolvedRefs")
            && resolved.is_false()
        {
            return Readiness::Failing(format!(
                "references not resolved for {}: {}",
                parent.describe(),
                resolved.describe()
            ));
        }
    }
    let mut waiting: Vec<String> = wanted
        .iter()
        .filter(|w| !statuses.iter().any(|(p, _)| p == *w))
        .map(|w| format!("waiting for {} to accept the route", w.describe()))
        .collect();
    for (parent, conditions) in &statuses {
        for type_ in ["Accepted", "ResolvedRefs"] {
            match current(*conditions, type_) {
                Some(c) if c.is_true() => {}
                Some(c) => waiting.push(format!(
                    "{} for {}: {}",
                    type_,
                    parent.describe(),
                    c.describe()
                )),
                None => waiting.push(format!(
                    "waiting for {} to report {type_} for generation {}",
                    parent.describe(),
                    generation.unwrap_or_default()
                )),
            }
        }
    }
    if waiting.is_empty() {
        Readiness::Ready
    } else {
        Readiness::InProgress(waiting.join("; "))
    }
}

/// The condition of `type_`, unless it was computed for an older generation.
fn current<'a>(
    conditions: Option<&'a Value>,
    type_: &str,
    generation: Option<i64>,
) -> Option<Condition<'a>> {
    find(conditions, type_).filter(|c| c.is_current(generation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn route_accepted_by_all_parents_is_ready() {
        assert_eq!(
            eval(include_fixture!("httproute-accepted.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn route_not_accepted_by_one_parent_is_failed() {
        assert_eq!(
            eval(include_fixture!("httproute-not-accepted.yaml")),
            Readiness::Failed(
                "not accepted by Gateway nginx-gateway/gateway (listener https-pr): \
                 NotAllowedByListeners: Route is not allowed by any listener: namespace preview-pr-7 \
                 does not match the listener's allowedRoutes"
                    .into()
            )
        );
    }

    #[test]
    fn route_with_unresolved_backend_is_failing() {
        assert_eq!(
            eval(include_fixture!("httproute-refs-unresolved.yaml")),
            Readiness::Failing(
                "references not resolved for Gateway nginx-gateway/gateway (listener https-pr): \
                 BackendNotFound: spec.rules[0].backendRefs[0].name: Not found: \"web\""
                    .into()
            )
        );
    }

    #[test]
    fn route_missing_a_parent_status_waits() {
        let (mut route, _) = load(include_fixture!("httproute-accepted.yaml"));
        route["status"]["parents"]
            .as_array_mut()
            .expect("parents")
            .truncate(1);
        assert_eq!(
            evaluate(&route),
            Readiness::InProgress(
                "waiting for Gateway nginx-gateway/gateway (listener https-pr) to accept the route"
                    .into()
            )
        );
    }

    #[test]
    fn stale_route_status_waits() {
        let (mut route, _) = load(include_fixture!("httproute-not-accepted.yaml"));
        route["metadata"]["generation"] = 2.into();
        let r = evaluate(&route);
        assert!(
            matches!(&r, Readiness::InProgress(m) if m.contains("to report Accepted for generation 2")),
            "{r:?}"
        );
    }

    #[test]
    fn route_without_status_waits_for_every_parent() {
        let (mut route, _) = load(include_fixture!("httproute-accepted.yaml"));
        route["status"] = serde_json::json!({"parents": []});
        assert_eq!(
            evaluate(&route),
            Readiness::InProgress(
                "waiting for Gateway nginx-gateway/gateway (listener http) to accept the route; \
                 waiting for Gateway nginx-gateway/gateway (listener https-pr) to accept the route"
                    .into()
            )
        );
    }
}
