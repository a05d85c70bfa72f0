//! `apps/v1/DaemonSet`: rolled out, decided as `kubectl rollout status` does:
//! the current generation observed, then (for `RollingUpdate`)
//! `updatedNumberScheduled == desiredNumberScheduled` and
//! `numberAvailable == desiredNumberScheduled`. Failing pods (see [`super::pod`])
//! and `FailedCreate` Events make the state failing.

use serde_json::Value;

use super::conditions::{count, generation_lag, is_owned_by, latest_event, name, str_at};
use super::{Readiness, Related, pod};

/// Readiness of a DaemonSet.
pub(super) fn evaluate(ds: &Value, related: &Related) -> Readiness {
    if let Some(lag) = generation_lag(ds, "daemonset controller") {
        return Readiness::InProgress(lag);
    }
    let desired = count(ds, "/status/desiredNumberScheduled");
    let updated = count(ds, "/status/updatedNumberScheduled");
    let available = count(ds, "/status/numberAvailable");
    let rolling =
        str_at(ds, "/spec/updateStrategy/type").unwrap_or("RollingUpdate") == "RollingUpdate";
    let progress = if rolling && updated < desired {
        format!("{updated} of {desired} scheduled pods updated")
    } else if available < desired {
        format!("{available} of {desired} scheduled pods available")
    } else {
        return Readiness::Ready;
    };
    let pods: Vec<&Value> = related
        .pods
        .iter()
        .filter(|p| is_owned_by(p, "DaemonSet", ds))
        .collect();
    let failure = pod::scan(pods.iter().copied())
        .or_else(|| pod::probe_failure(&related.events, pods.iter().copied()))
        .or_else(|| {
            latest_event(&related.events, "FailedCreate", &[("DaemonSet", name(ds))])
                .map(pod::cannot_create)
        });
    match failure {
        Some(failure) => failure.readiness(Some(&progress)),
        None => Readiness::InProgress(progress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::eval;

    const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: log-agent, namespace: kube-system, generation: 2, uid: 1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a}
spec:
  selector: {matchLabels: {app: log-agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
status:
  currentNumberScheduled: 2
  desiredNumberScheduled: 2
  numberAvailable: 2
  numberMisscheduled: 0
  numberReady: 2
  observedGeneration: 2
  updatedNumberScheduled: 2
"#;

    #[test]
    fn rolled_out_daemonset_is_ready() {
        assert_eq!(eval(DAEMONSET), Readiness::Ready);
    }

    #[test]
    fn partially_updated_daemonset_waits() {
        let yaml = DAEMONSET.replace("updatedNumberScheduled: 2", "updatedNumberScheduled: 1");
        assert_eq!(
            eval(&yaml),
            Readiness::InProgress("1 of 2 scheduled pods updated".into())
        );
        let yaml = DAEMONSET.replace("numberAvailable: 2", "numberAvailable: 1");
        assert_eq!(
            eval(&yaml),
            Readiness::InProgress("1 of 2 scheduled pods available".into())
        );
    }
}
