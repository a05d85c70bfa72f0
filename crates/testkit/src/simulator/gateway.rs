//! Gateway API objects: the status a gateway controller (NGINX Gateway Fabric)
//! would write. No gateway, no NGINX and no data plane runs; no traffic is routed.
//!
//! * GatewayClass whose `controllerName` is the simulated controller:
//!   `Accepted=True`, `SupportedVersion=True`.
//! * Gateway: `Accepted=True`, `Programmed=True` (with `observedGeneration`), one
//!   `status.listeners` entry per spec listener (`attachedRoutes: 0`, supported kind
//!   HTTPRoute, `Accepted`/`Programmed`/`ResolvedRefs` True) and one fake address.
//! * HTTPRoute: one `status.parents` entry per `spec.parentRefs` entry, with the
//!   simulated `controllerName` and `Accepted=True`, `ResolvedRefs=True`.
//!
//! Failure injection: see [`annotations`](super::annotations).

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::annotations::Injection;
use super::status::condition;

/// The Gateway API group.
pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

fn generation(obj: &DynamicObject) -> Option<i64> {
    obj.metadata.generation
}

fn injection(obj: &DynamicObject) -> Injection {
    Injection::of(obj.metadata.annotations.as_ref())
}

/// The status for a GatewayClass, if the simulated controller owns it.
pub(crate) fn gateway_class_status(
    obj: &DynamicObject,
    controller: &str,
    now: &str,
) -> Option<Value> {
    let owner = obj
        .data
        .pointer("/spec/controllerName")
        .and_then(Value::as_str);
    if owner != Some(controller) {
        return None;
    }
    let g = generation(obj);
    Some(json!({
        "conditions": [
            condition("Accepted", true, "Accepted", "GatewayClass is accepted", g, now),
            condition("SupportedVersion", true, "SupportedVersion", "Gateway API CRD versions are supported", g, now),
        ],
    }))
}

/// The status for a Gateway.
pub(crate) fn gateway_status(obj: &DynamicObject, address: &str, now: &str) -> Value {
    let g = generation(obj);
    let inj = injection(obj);
    let message = |default: &str| inj.message_or(|| default.to_string());
    let gateway_accepted =
        || condition("Accepted", true, "Accepted", "Gateway is accepted", g, now);
    let (accepted, programmed) = match inj.simulate.as_deref() {
        None => (
            gateway_accepted(),
            condition(
                "Programmed",
                true,
                "Programmed",
                "Gateway is programmed",
                g,
                now,
            ),
        ),
        Some("NotAccepted") => (
            condition(
                "Accepted",
                false,
                "Invalid",
                &message("Gateway is not accepted"),
                g,
                now,
            ),
            condition(
                "Programmed",
                false,
                "Invalid",
                &message("Gateway is not accepted"),
                g,
                now,
            ),
        ),
        Some("NotProgrammed") => (
            gateway_accepted(),
            condition(
                "Programmed",
                false,
                "Invalid",
                &message("Gateway is not programmed"),
                g,
                now,
            ),
        ),
        Some(reason) => (
            gateway_accepted(),
            condition(
                "Programmed",
                false,
                reason,
                &message("Gateway is not programmed"),
                g,
                now,
            ),
        ),
    };
    let programmed_ok = programmed["status"] == "True";
    let accepted_ok = accepted["status"] == "True";
    let listeners: Vec<Value> = obj
        .data
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("name").and_then(Value::as_str))
        .map(|name| {
            json!({
                "name": name,
                "attachedRoutes": 0,
                "supportedKinds": [{"group": GROUP, "kind": "HTTPRoute"}],
                "conditions": [
                    condition("Accepted", accepted_ok, if accepted_ok { "Accepted" } else { "Invalid" }, "Listener is accepted", g, now),
                    condition("Programmed", programmed_ok, if programmed_ok { "Programmed" } else { "Invalid" }, "Listener is programmed", g, now),
                    condition("ResolvedRefs", true, "ResolvedRefs", "All references are resolved", g, now),
                ],
            })
        })
        .collect();
    let mut status = json!({
        "conditions": [accepted, programmed],
        "listeners": listeners,
    });
    if programmed_ok {
        status["addresses"] = json!([{"type": "IPAddress", "value": address}]);
    }
    status
}

/// The status for an HTTPRoute.
pub(crate) fn http_route_status(obj: &DynamicObject, controller: &str, now: &str) -> Value {
    let g = generation(obj);
    let inj = injection(obj);
    let message = |default: &str| inj.message_or(|| default.to_string());
    let route_accepted = || {
        condition(
            "Accepted",
            true,
            "Accepted",
            "The route is accepted",
            g,
            now,
        )
    };
    let refs_resolved = || {
        condition(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "All references are resolved",
            g,
            now,
        )
    };
    let (accepted, resolved) = match inj.simulate.as_deref() {
        None => (route_accepted(), refs_resolved()),
        Some("UnresolvedRefs") => (
            route_accepted(),
            condition(
                "ResolvedRefs",
                false,
                "BackendNotFound",
                &message("Backend not found"),
                g,
                now,
            ),
        ),
        Some("NotAccepted") => (
            condition(
                "Accepted",
                false,
                "NotAllowedByListeners",
                &message("No listener allows this route"),
                g,
                now,
            ),
            refs_resolved(),
        ),
        Some(reason) => (
            condition(
                "Accepted",
                false,
                reason,
                &message("The route is not accepted"),
                g,
                now,
            ),
            refs_resolved(),
        ),
    };
    let parents: Vec<Value> = obj
        .data
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|parent| {
            json!({
                "parentRef": parent,
                "controllerName": controller,
                "conditions": [accepted.clone(), resolved.clone()],
            })
        })
        .collect();
    json!({ "parents": parents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::{MESSAGE, SIMULATE};

    const CONTROLLER: &str = "gateway.nginx.org/nginx-gateway-controller";

    fn object(yaml: &str) -> DynamicObject {
        serde_yaml_ng::from_str(yaml).expect("object yaml")
    }

    const GATEWAY: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns, generation: 2}
spec:
  gatewayClassName: nginx
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - {name: https, protocol: HTTPS, port: 443}
";

    #[test]
    fn gateway_is_accepted_and_programmed_with_listeners() {
        let s = gateway_status(&object(GATEWAY), "10.240.0.100", "t");
        assert_eq!(s["conditions"][0]["type"], "Accepted");
        assert_eq!(s["conditions"][1]["type"], "Programmed");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["conditions"][1]["observedGeneration"], 2);
        assert_eq!(s["listeners"].as_array().map(Vec::len), Some(2));
        assert_eq!(s["listeners"][1]["name"], "https");
        assert_eq!(s["listeners"][1]["attachedRoutes"], 0);
        assert_eq!(s["listeners"][1]["supportedKinds"][0]["kind"], "HTTPRoute");
        assert_eq!(s["addresses"][0]["value"], "10.240.0.100");
    }

    #[test]
    fn gateway_failure_injection() {
        let mut gw = object(GATEWAY);
        let a = gw.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(SIMULATE.into(), "NotProgrammed".into());
        a.insert(MESSAGE.into(), "no free address".into());
        let s = gateway_status(&gw, "10.240.0.100", "t");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["message"], "no free address");
        assert!(s.get("addresses").is_none());
    }

    #[test]
    fn route_has_one_parent_status_per_parent_ref() {
        let route = object(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: ns, generation: 1}
spec:
  parentRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: https}
  - {name: other}
",
        );
        let s = http_route_status(&route, CONTROLLER, "t");
        let parents = s["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0]["parentRef"]["sectionName"], "https");
        assert_eq!(parents[0]["controllerName"], CONTROLLER);
        assert_eq!(parents[1]["conditions"][0]["type"], "Accepted");
        assert_eq!(parents[1]["conditions"][1]["type"], "ResolvedRefs");
    }

    #[test]
    fn only_our_gateway_classes() {
        let ours = object(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: nginx}\nspec: {controllerName: gateway.nginx.org/nginx-gateway-controller}",
        );
        assert!(gateway_class_status(&ours, CONTROLLER, "t").is_some());
        let theirs = object(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: x}\nspec: {controllerName: example.com/other}",
        );
        assert!(gateway_class_status(&theirs, CONTROLLER, "t").is_none());
    }
}
