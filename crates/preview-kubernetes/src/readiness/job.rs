//! `batch/v1/Job`: ready when `Complete=True` (kube-runtime's `is_job_completed`).
//!
//! `Failed=True` (backoff limit or deadline reached) is terminal: the message
//! carries the condition's reason and message and, for the Job's failed pods
//! (newest first, at most [`MAX_FAILED_PODS`]), each container that exited
//! non-zero with its reason and termination message — e.g. `pod migrate-x7k9q
//! container migrate exited 1: Error: …`.
//!
//! Otherwise in progress ("0 of 1 completions"), or failing when a pod's
//! container waits with a failure reason (see [`super::pod`]), a `FailedCreate`
//! Event says the Job cannot create pods, or a pod already failed and the Job is
//! retrying (it will fail for good at `backoffLimit`).

use serde_json::Value;

use super::conditions::{count, int_at, is_owned_by, latest_event, name, status_condition, str_at};
use super::{Readiness, Related, pod};

/// Failed pods described in a message; older ones are counted, not described.
const MAX_FAILED_PODS: usize = 3;

/// Readiness of a Job.
pub(super) fn evaluate(job: &Value, related: &Related) -> Readiness {
    if status_condition(job, "Complete").is_some_and(|c| c.is_true()) {
        return Readiness::Ready;
    }
    let pods: Vec<&Value> = related
        .pods
        .iter()
        .filter(|p| is_owned_by(p, "Job", job))
        .collect();
    if let Some(failed) = status_condition(job, "Failed")
        && failed.is_true()
    {
        let mut parts = vec![format!("job failed: {}", failed.describe())];
        parts.extend(failed_pods(&pods));
        return Readiness::Failed(parts.join("; "));
    }
    if job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Readiness::InProgress("the job is suspended".into());
    }
    let completions = int_at(job, "/spec/completions").unwrap_or(1);
    let succeeded = count(job, "/status/succeeded");
    let active = count(job, "/status/active");
    let failed = count(job, "/status/failed");
    let mut progress = format!("{succeeded} of {completions} completions");
    let counts: Vec<String> = [(active, "active"), (failed, "failed")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if !counts.is_empty() {
        progress.push_str(&format!(" ({})", counts.join(", ")));
    }
    let failure = pod::scan(pods.iter().copied())
        .or_else(|| {
            (active == 0)
                .then(|| latest_event(&related.events, "FailedCreate", &[("Job", name(job))]))
                .flatten()
                .map(pod::cannot_create)
        })
        .or_else(|| {
            let latest = failed_pods(&pods).into_iter().next()?;
            let limit = int_at(job, "/spec/backoffLimit").unwrap_or(6);
            Some(pod::PodFailure {
                message: format!("{latest}; retrying (backoffLimit {limit})"),
                terminal: false,
            })
        });
    match failure {
        Some(failure) => failure.readiness(Some(&progress)),
        None => Readiness::InProgress(progress),
    }
}

/// Descriptions of the failed pods' non-zero exits, newest pod first.
fn failed_pods(pods: &[&Value]) -> Vec<String> {
    let mut failed: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| str_at(p, "/status/phase") == Some("Failed"))
        .collect();
    failed.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                str_at(p, "/metadata/creationTimestamp")
                    .unwrap_or("")
                    .to_owned(),
                name(p).to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    let mut out: Vec<String> = failed
        .iter()
        .take(MAX_FAILED_PODS)
        .flat_map(|p| {
            let lines = pod::terminations(p);
            if lines.is_empty() {
                vec![format!("pod {} failed", name(p))]
            } else {
                lines
            }
        })
        .collect();
    if failed.len() > MAX_FAILED_PODS {
        out.push(format!(
            "{} earlier failed pods not shown",
            failed.len() - MAX_FAILED_PODS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn complete_job_is_ready() {
        assert_eq!(
            eval(include_fixture!("job-complete.yaml")),
            Readiness::Ready
        );
    }

    #[test]
    fn running_job_counts_completions() {
        assert_eq!(
            eval(include_fixture!("job-running.yaml")),
            Readiness::InProgress("0 of 1 completions (1 active)".into())
        );
    }

    #[test]
    fn failed_job_reports_condition_and_pod_exit() {
        assert_eq!(
            eval(include_fixture!("job-failed.yaml")),
            Readiness::Failed(
                "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit; \
                 pod migrate-x7k9q container migrate exited 1: Error: \
                 PDOException: SQLSTATE[42P01]: Undefined table: 7 ERROR:  relation \"lexemes\" does not exist / \
                 #0 /app/vendor/robmorgan/phinx/src/Phinx/Db/Adapter/PdoAdapter.php(192): PDO->exec()"
                    .into()
            )
        );
    }

    #[test]
    fn failed_job_without_pods_still_reports_condition() {
        let (job, _) = load(include_fixture!("job-failed.yaml"));
        assert_eq!(
            evaluate(&job, &Related::default()),
            Readiness::Failed(
                "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                    .into()
            )
        );
    }

    #[test]
    fn retrying_job_with_a_failed_pod_is_failing() {
        let (mut job, related) = load(include_fixture!("job-failed.yaml"));
        job["status"]["conditions"] = serde_json::json!([]);
        job["spec"]["backoffLimit"] = 3.into();
        let r = evaluate(&job, &related);
        let Readiness::Failing(message) = &r else {
            panic!("expected Failing, got {r:?}");
        };
        assert!(
            message
                .starts_with("pod migrate-x7k9q container migrate exited 1: Error: PDOException"),
            "{message}"
        );
        assert!(
            message.ends_with("; retrying (backoffLimit 3) (0 of 1 completions (1 failed))"),
            "{message}"
        );
    }

    #[test]
    fn job_pod_that_cannot_pull_its_image_is_failed_at_once() {
        let (job, mut related) = load(include_fixture!("job-running.yaml"));
        related.pods[0]["status"]["containerStatuses"][0]["state"] = serde_json::json!({
            "waiting": {"reason": "ErrImagePull",
                        "message": "rpc error: code = NotFound desc = failed to pull and unpack image"}});
        assert_eq!(
            evaluate(&job, &related),
            Readiness::Failed(
                "pod migrate-b4n8d container migrate: ErrImagePull: rpc error: code = NotFound desc = \
                 failed to pull and unpack image (0 of 1 completions (1 active))"
                    .into()
            )
        );
    }

    #[test]
    fn job_that_cannot_create_pods_is_failing() {
        let (mut job, mut related) = load(include_fixture!("job-running.yaml"));
        job["status"] = serde_json::json!({"startTime": "2024-05-01T10:00:00Z"});
        related.pods.clear();
        related.events.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "migrate.17cb", "namespace": "preview-pr-7"},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate",
                               "namespace": "preview-pr-7"},
            "reason": "FailedCreate", "type": "Warning",
            "message": "Error creating: pods \"migrate-b4n8d\" is forbidden: exceeded quota: preview-quota, requested: pods=1, used: pods=5, limited: pods=5",
            "lastTimestamp": "2024-05-01T10:00:03Z",
            "source": {"component": "job-controller"}}));
        assert_eq!(
            evaluate(&job, &related),
            Readiness::Failing(
                "Job migrate: FailedCreate: Error creating: pods \"migrate-b4n8d\" is forbidden: \
                 exceeded quota: preview-quota, requested: pods=1, used: pods=5, limited: pods=5 \
                 (0 of 1 completions)"
                    .into()
            )
        );
    }

    #[test]
    fn suspended_job_waits() {
        let (mut job, related) = load(include_fixture!("job-running.yaml"));
        job["spec"]["suspend"] = true.into();
        assert_eq!(
            evaluate(&job, &related),
            Readiness::InProgress("the job is suspended".into())
        );
    }
}
