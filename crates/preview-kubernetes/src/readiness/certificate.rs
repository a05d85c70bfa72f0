//! `cert-manager.io/Certificate`: ready when `Ready=True` for the current generation.
//!
//! `Ready=False` is in progress with cert-manager's reason and message (issuing
//! takes a while: ACME orders, DNS challenges). `Issuing=False` with reason
//! `Failed` means an issuance attempt failed and cert-manager backs off before
//! retrying: failing, with the message (it quotes the ACME or issuer error).

use serde_json::Value;

use super::Readiness;
use super::conditions::{generation, status_condition};

/// Readiness of a Certificate.
pub(super) fn evaluate(cert: &Value) -> Readiness {
    let generation = generation(cert);
    let ready = status_condition(cert, "Ready");
    if let Some(r) = ready
        && r.is_true()
        && r.is_current(generation)
    {
        return Readiness::Ready;
    }
    if let Some(issuing) = status_condition(cert, "Issuing")
        && issuing.is_false()
        && issuing.reason == "Failed"
    {
        return Readiness::Failing(format!("issuance failed: {}", issuing.describe()));
    }
    match ready {
        Some(r) if !r.is_current(generation) => Readiness::InProgress(format!(
            "waiting for cert-manager to observe generation {}",
            generation.unwrap_or_default()
        )),
        Some(r) => Readiness::InProgress(format!("not ready: {}", r.describe())),
        None => Readiness::InProgress("waiting for cert-manager to issue the certificate".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn ready_certificate_is_ready() {
        assert_eq!(
            eval(include_fixture!("certificate-ready.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn issuing_certificate_is_in_progress() {
        assert_eq!(
            eval(include_fixture!("certificate-issuing.yaml")),
            Readiness::InProgress(
                "not ready: DoesNotExist: Issuing certificate as Secret does not exist".into()
            )
        );
    }

    #[test]
    fn failed_issuance_is_failing() {
        assert_eq!(
            eval(include_fixture!("certificate-failed.yaml")),
            Readiness::Failing(
                "issuance failed: Failed: The certificate request has failed to complete and will be \
                 retried: Failed to wait for order resource \"wildcard-pr-1-2875923418\" to become ready: \
                 order is in \"errored\" state: Failed to create Order: 429 \
                 urn:ietf:params:acme:error:rateLimited: too many certificates already issued"
                    .into()
            )
        );
    }

    #[test]
    fn certificate_without_status_waits() {
        let (mut cert, _) = load(include_fixture!("certificate-ready.yaml"));
        cert.as_object_mut().expect("object").remove("status");
        assert_eq!(
            evaluate(&cert),
            Readiness::InProgress("waiting for cert-manager to issue the certificate".into())
        );
    }

    #[test]
    fn stale_ready_condition_waits() {
        let (mut cert, _) = load(include_fixture!("certificate-ready.yaml"));
        cert["metadata"]["generation"] = 2.into();
        assert_eq!(
            evaluate(&cert),
            Readiness::InProgress("waiting for cert-manager to observe generation 2".into())
        );
    }
}
