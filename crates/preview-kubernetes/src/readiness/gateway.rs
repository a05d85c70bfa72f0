//! `gateway.networking.k8s.io/Gateway`: ready when `Programmed=True` for the
//! current generation (the condition's `observedGeneration >= metadata.generation`
//! when present) and no listener reports a problem.
//!
//! - `Accepted=False` (other than reason `Pending`) is failed: the controller
//!   refuses the Gateway as written (bad class, unsupported value…).
//! - `Programmed=False` with reason `Pending` (or `Unknown`, the CRD default
//!   "Waiting for controller") is in progress; any other reason (`Invalid`,
//!   `NoResources`, `AddressNotAssigned`…) is failing with its message.
//! - A programmed Gateway with a listener whose `Accepted`, `ResolvedRefs` or
//!   `Programmed` is `False` (or `Conflicted=True`) — e.g. a TLS listener whose
//!   certificate Secret does not exist yet — is failing, naming the listener.
//! - Old controllers that set `Ready` instead of `Programmed` are read the same way.

use serde_json::Value;

use super::Readiness;
use super::conditions::{Condition, all, generation, status_condition, str_at};

/// Readiness of a Gateway.
pub(super) fn evaluate(gw: &Value) -> Readiness {
    let generation = generation(gw);
    if let Some(accepted) = status_condition(gw, "Accepted")
        && accepted.is_current(generation)
        && accepted.is_false()
        && accepted.reason != "Pending"
    {
        return Readiness::Failed(format!("gateway not accepted: {}", accepted.describe()));
    }
    let programmed = status_condition(gw, "Programmed").or_else(|| status_condition(gw, "Ready"));
    match programmed {
        None => {
            Readiness::InProgress("waiting for a gateway controller to program the gateway".into())
        }
        Some(p) if !p.is_current(generation) => Readiness::InProgress(format!(
            "waiting for the gateway controller to observe generation {}",
            generation.unwrap_or_default()
        )),
        Some(p) if p.is_true() => match listener_problem(gw, generation) {
            Some(problem) => Readiness::Failing(problem),
            None => Readiness::Ready,
        },
        Some(p) if p.is_false() && p.reason != "Pending" => {
            Readiness::Failing(format!("gateway not programmed: {}", p.describe()))
        }
        Some(p) => Readiness::InProgress(format!("gateway not programmed yet: {}", p.describe())),
    }
}

/// The first listener condition that reports a problem.
fn listener_problem(gw: &Value, generation: Option<i64>) -> Option<String> {
    let listeners = gw.pointer("/status/listeners")?.as_array()?;
    listeners.iter().find_map(|listener| {
        let name = str_at(listener, "/name").unwrap_or("?");
        all(listener.get("conditions"))
            .into_iter()
            .filter(|c| c.is_current(generation))
            .find(is_problem)
            .map(|c| {
                format!(
                    "listener {name}: {}={}: {}",
                    c.type_,
                    c.status,
                    c.describe()
                )
            })
    })
}

fn is_problem(c: &Condition<'_>) -> bool {
    match c.type_ {
        "Accepted" | "ResolvedRefs" | "Programmed" => c.is_false() && c.reason != "Pending",
        "Conflicted" => c.is_true(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn programmed_gateway_is_ready() {
        assert_eq!(
            eval(include_fixture!("gateway-programmed.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn not_accepted_gateway_is_failed() {
        assert_eq!(
            eval(include_fixture!("gateway-not-accepted.yaml")),
            Readiness::Failed(
                "gateway not accepted: InvalidParameters: GatewayClass \"nginx\" is not accepted: \
                 the GatewayClass parametersRef NginxProxy nginx-gateway/proxy-config is not found"
                    .into()
            )
        );
    }

    #[test]
    fn fresh_gateway_waits_for_controller() {
        let r = eval(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway, namespace: nginx-gateway, generation: 1}
spec:
  gatewayClassName: nginx
  listeners:
  - {name: http, port: 80, protocol: HTTP}
status:
  conditions:
  - {lastTransitionTime: "1970-01-01T00:00:00Z", message: Waiting for controller, reason: Pending, status: Unknown, type: Accepted}
  - {lastTransitionTime: "1970-01-01T00:00:00Z", message: Waiting for controller, reason: Pending, status: Unknown, type: Programmed}
"#,
        );
        assert_eq!(
            r,
            Readiness::InProgress(
                "gateway not programmed yet: Pending: Waiting for controller".into()
            )
        );
    }

    #[test]
    fn stale_programmed_condition_waits_for_new_generation() {
        let (mut gw, _) = load(include_fixture!("gateway-programmed.yaml"));
        gw["metadata"]["generation"] = 3.into();
        assert_eq!(
            evaluate(&gw),
            Readiness::InProgress(
                "waiting for the gateway controller to observe generation 3".into()
            )
        );
    }

    #[test]
    fn not_programmed_for_lack_of_address_is_failing() {
        let (mut gw, _) = load(include_fixture!("gateway-programmed.yaml"));
        gw["status"]["conditions"][1] = serde_json::json!({
            "type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
            "message": "No addresses have been assigned to the Gateway", "observedGeneration": 1,
            "lastTransitionTime": "2024-05-01T09:10:00Z"});
        assert_eq!(
            evaluate(&gw),
            Readiness::Failing(
                "gateway not programmed: AddressNotAssigned: No addresses have been assigned to the Gateway"
                    .into()
            )
        );
    }

    #[test]
    fn listener_with_unresolved_certificate_is_failing() {
        let (mut gw, _) = load(include_fixture!("gateway-programmed.yaml"));
        gw["status"]["listeners"][1]["conditions"][1] = serde_json::json!({
            "type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef",
            "message": "Secret nginx-gateway/wildcard-pr-tls does not exist", "observedGeneration": 1,
            "lastTransitionTime": "2024-05-01T09:10:00Z"});
        assert_eq!(
            evaluate(&gw),
            Readiness::Failing(
                "listener https-pr: ResolvedRefs=False: InvalidCertificateRef: Secret \
                 nginx-gateway/wildcard-pr-tls does not exist"
                    .into()
            )
        );
    }
}
