//! Any other kind (custom resources, APIService, …) and [`WaitRule::Condition`].
//!
//! Default rule: the first of `Ready`, `Available`, `Programmed`, `Established`
//! present in `status.conditions` must be `True`, for the current generation
//! (both `status.observedGeneration` and the condition's own `observedGeneration`
//! are respected); without any of them, `status.observedGeneration` behind
//! `metadata.generation` means in progress; otherwise ready — an object whose
//! controller reports nothing cannot be waited for.
//!
//! A condition that is `False` is in progress, not failing: the meaning of a
//! custom controller's reasons is unknown here, and the step timeout bounds the wait.
//!
//! [`WaitRule::Condition`]: preview_core::resource::WaitRule::Condition

use serde_json::Value;

use super::Readiness;
use super::conditions::{generation, generation_lag, status_condition};

/// Well-known "this object is usable" conditions, in order of preference.
const READY_CONDITIONS: &[&str] = &["Ready", "Available", "Programmed", "Established"];

/// Readiness of an object of a kind without its own rule.
pub(super) fn evaluate(obj: &Value) -> Readiness {
    match READY_CONDITIONS
        .iter()
        .find(|t| status_condition(obj, t).is_some())
    {
        Some(type_) => condition_true(obj, type_),
        None if obj.pointer("/status/observedGeneration").is_none() => Readiness::Ready,
        None => match generation_lag(obj, "controller") {
            Some(lag) => Readiness::InProgress(lag),
            None => Readiness::Ready,
        },
    }
}

/// Ready when `status.conditions[type=type_]` is `True` for the current generation.
pub(super) fn condition_true(obj: &Value, type_: &str) -> Readiness {
    let Some(c) = status_condition(obj, type_) else {
        return Readiness::InProgress(format!("waiting for condition {type_}"));
    };
    if obj.pointer("/status/observedGeneration").is_some()
        && let Some(lag) = generation_lag(obj, "controller")
    {
        return Readiness::InProgress(lag);
    }
    let generation = generation(obj);
    if !c.is_current(generation) {
        return Readiness::InProgress(format!(
            "waiting for the controller to report {type_} for generation {}",
            generation.unwrap_or_default()
        ));
    }
    if c.is_true() {
        Readiness::Ready
    } else {
        Readiness::InProgress(format!("{type_}={}: {}", c.status, c.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, id_of, load};
    use crate::readiness::{Related, evaluate as evaluate_any};
    use preview_core::resource::WaitRule;

    const ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: letsencrypt, generation: 1}
spec:
  acme:
    server: https://acme-v02.api.letsencrypt.org/directory
    privateKeySecretRef: {name: letsencrypt-account}
status:
  acme:
    uri: https://acme-v02.api.letsencrypt.org/acme/acct/123456789
  conditions:
  - lastTransitionTime: "2024-05-01T09:00:03Z"
    message: The ACME account was registered with the ACME server
    observedGeneration: 1
    reason: ACMEAccountRegistered
    status: "True"
    type: Ready
"#;

    #[test]
    fn ready_condition_true_is_ready() {
        assert_eq!(eval(ISSUER), Readiness::Ready);
    }

    #[test]
    fn ready_condition_false_is_in_progress_with_reason() {
        let yaml = ISSUER
            .replace("status: \"True\"", "status: \"False\"")
            .replace("ACMEAccountRegistered", "ErrRegisterACMEAccount")
            .replace(
                "The ACME account was registered with the ACME server",
                "'Failed to register ACME account: 400 urn:ietf:params:acme:error:invalidContact'",
            );
        assert_eq!(
            eval(&yaml),
            Readiness::InProgress(
                "Ready=False: ErrRegisterACMEAccount: Failed to register ACME account: 400 \
                 urn:ietf:params:acme:error:invalidContact"
                    .into()
            )
        );
    }

    #[test]
    fn stale_condition_waits() {
        let yaml = ISSUER.replace("generation: 1}", "generation: 2}");
        assert_eq!(
            eval(&yaml),
            Readiness::InProgress(
                "waiting for the controller to report Ready for generation 2".into()
            )
        );
    }

    #[test]
    fn available_condition_is_used_when_ready_is_absent() {
        let r = eval(
            r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec: {group: metrics.k8s.io, version: v1beta1, groupPriorityMinimum: 100, versionPriority: 100,
       service: {name: metrics-server, namespace: kube-system, port: 443}}
status:
  conditions:
  - lastTransitionTime: "2024-05-01T09:00:00Z"
    message: 'failing or missing response from https://10.244.0.9:4443/apis/metrics.k8s.io/v1beta1: Get "https://10.244.0.9:4443/apis/metrics.k8s.io/v1beta1": dial tcp 10.244.0.9:4443: connect: connection refused'
    reason: FailedDiscoveryCheck
    status: "False"
    type: Available
"#,
        );
        assert!(
            matches!(&r, Readiness::InProgress(m) if m.starts_with("Available=False: FailedDiscoveryCheck")),
            "{r:?}"
        );
    }

    #[test]
    fn observed_generation_lag_without_conditions_waits() {
        let obj = r#"
apiVersion: gateway.nginx.org/v1alpha1
kind: ClientSettingsPolicy
metadata: {name: limits, namespace: preview-pr-7, generation: 2}
spec: {targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web}}
status: {observedGeneration: 1}
"#;
        assert_eq!(
            eval(obj),
            Readiness::InProgress(
                "waiting for the controller to observe generation 2 (observed 1)".into()
            )
        );
        assert_eq!(
            eval(&obj.replace("observedGeneration: 1", "observedGeneration: 2")),
            Readiness::Ready
        );
    }

    #[test]
    fn custom_resource_without_status_is_ready() {
        assert_eq!(
            eval(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: n, generation: 1}\nspec: {}\n"
            ),
            Readiness::Ready
        );
    }

    #[test]
    fn explicit_condition_rule_on_a_custom_resource() {
        let (obj, _) = load(
            r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: n, generation: 4}
status:
  observedGeneration: 4
  conditions:
  - {type: Synced, status: "True", reason: Synced, lastTransitionTime: "2024-05-01T09:00:00Z"}
  - {type: Ready, status: "False", reason: Waiting, lastTransitionTime: "2024-05-01T09:00:00Z"}
"#,
        );
        let rule = WaitRule::Condition {
            condition: "Synced".into(),
        };
        assert_eq!(
            evaluate_any(&id_of(&obj), &rule, &obj, &Related::default()),
            Readiness::Ready
        );
        assert_eq!(
            evaluate_any(&id_of(&obj), &WaitRule::Default, &obj, &Related::default()),
            Readiness::InProgress("Ready=False: Waiting".into())
        );
    }
}
