//! `apiextensions.k8s.io/v1/CustomResourceDefinition`: ready when `Established=True`.
//!
//! `NamesAccepted=False` (a plural, singular, kind or short name already in use)
//! never resolves by itself: failed, with the naming controller's message.

use serde_json::Value;

use super::Readiness;
use super::conditions::status_condition;

/// Readiness of a CRD.
pub(super) fn evaluate(crd: &Value) -> Readiness {
    if let Some(names) = status_condition(crd, "NamesAccepted")
        && names.is_false()
    {
        return Readiness::Failed(format!("names not accepted: {}", names.describe()));
    }
    match status_condition(crd, "Established") {
        Some(c) if c.is_true() => Readiness::Ready,
        Some(c) => Readiness::InProgress(format!("not established yet: {}", c.describe())),
        None => Readiness::InProgress("waiting for the API server to establish the CRD".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::eval;

    #[test]
    fn established_crd_is_ready() {
        assert_eq!(
            eval(include_fixture!("crd-established.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn names_conflict_is_failed() {
        assert_eq!(
            eval(include_fixture!("crd-names-conflict.yaml")),
            Readiness::Failed(
                "names not accepted: PluralConflict: \"gateways\" is already in use".into()
            )
        );
    }

    #[test]
    fn fresh_crd_without_status_waits() {
        let r = eval(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com, generation: 1}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions: []
status:
  acceptedNames: {kind: "", plural: ""}
  conditions: []
  storedVersions: [v1]
"#,
        );
        assert_eq!(
            r,
            Readiness::InProgress("waiting for the API server to establish the CRD".into())
        );
    }

    #[test]
    fn installing_crd_is_in_progress() {
        let r = eval(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com, generation: 1}
status:
  conditions:
  - {lastTransitionTime: "2024-05-01T10:00:00Z", message: no conflicts found, reason: NoConflicts, status: "True", type: NamesAccepted}
  - {lastTransitionTime: "2024-05-01T10:00:00Z", message: the initial names have been accepted, reason: Installing, status: "False", type: Established}
"#,
        );
        assert_eq!(
            r,
            Readiness::InProgress(
                "not established yet: Installing: the initial names have been accepted".into()
            )
        );
    }
}
