//! `v1/Pod`: ready when the `Ready` condition is `True` (or the pod `Succeeded`).
//!
//! Also home of the pod-failure scanner shared by Deployment, StatefulSet,
//! DaemonSet and Job: a container (or init container) waiting with one of
//! [`WAITING_FAILURES`], or a pod the scheduler marked `Unschedulable`, is a
//! visible failure that will fail the step if it persists. The message names the
//! pod, the container, the kubelet's reason and its message.

use serde_json::Value;

use super::Readiness;
use super::conditions::{count, excerpt, is_deleting, name, status_condition, str_at};

/// Container `state.waiting.reason`s that mean "this will not fix itself soon".
pub(super) const WAITING_FAILURES: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

/// Readiness of a bare pod.
pub(super) fn evaluate(pod: &Value) -> Readiness {
    match str_at(pod, "/status/phase") {
        Some("Succeeded") => return Readiness::Ready,
        Some("Failed") => {
            let mut parts = terminations(pod);
            if parts.is_empty() {
                parts.push(format!("pod {} failed", name(pod)));
            }
            return Readiness::Failed(parts.join("; "));
        }
        _ => {}
    }
    let ready = status_condition(pod, "Ready");
    if ready.is_some_and(|c| c.is_true()) {
        return Readiness::Ready;
    }
    if let Some(failure) = failure(pod) {
        return Readiness::Failing(failure);
    }
    let phase = str_at(pod, "/status/phase").unwrap_or("Pending");
    Readiness::InProgress(match ready.filter(|c| !c.message.is_empty()) {
        Some(c) => format!("pod is {phase}: {}", excerpt(c.message)),
        None => format!("pod is {phase}"),
    })
}

/// The first visible failure of one pod: init containers first (they run first),
/// then containers, then scheduling.
pub(super) fn failure(pod: &Value) -> Option<String> {
    let pod_name = name(pod);
    let statuses = [
        ("/status/initContainerStatuses", "init container"),
        ("/status/containerStatuses", "container"),
    ];
    for (pointer, what) in statuses {
        let Some(list) = pod.pointer(pointer).and_then(Value::as_array) else {
            continue;
        };
        for status in list {
            let Some(reason) = str_at(status, "/state/waiting/reason") else {
                continue;
            };
            if !WAITING_FAILURES.contains(&reason) {
                continue;
            }
            let container = str_at(status, "/name").unwrap_or("?");
            let mut text = format!("pod {pod_name} {what} {container}: {reason}");
            if let Some(message) = str_at(status, "/state/waiting/message").map(excerpt)
                && !message.is_empty()
            {
                text.push_str(": ");
                text.push_str(&message);
            }
            if let Some(last) = status.pointer("/lastState/terminated") {
                text.push_str(&format!(
                    "; last exit code {}{}",
                    count(last, "/exitCode"),
                    terminated_detail(last)
                ));
            }
            return Some(text);
        }
    }
    let scheduled = status_condition(pod, "PodScheduled")?;
    (scheduled.is_false() && scheduled.reason == "Unschedulable").then(|| {
        format!(
            "pod {pod_name} is unschedulable: {}",
            excerpt(scheduled.message)
        )
    })
}

/// Scans pods (skipping those being deleted) for failures; reports the first by
/// pod name and how many other pods fail too.
pub(super) fn scan<'a>(pods: impl IntoIterator<Item = &'a Value>) -> Option<String> {
    let mut failures: Vec<(&str, String)> = pods
        .into_iter()
        .filter(|p| !is_deleting(p))
        .filter_map(|p| failure(p).map(|f| (name(p), f)))
        .collect();
    failures.sort();
    let mut failures = failures.into_iter();
    let (_, first) = failures.next()?;
    Some(match failures.len() {
        0 => first,
        1 => format!("{first} (and 1 more pod failing)"),
        more => format!("{first} (and {more} more pods failing)"),
    })
}

/// Why a failed pod failed: `pod P container C exited N: Reason: message` for every
/// container (init containers first) that terminated with a non-zero code, or the
/// pod's own reason (`Evicted`, `DeadlineExceeded`) when no container says more.
pub(super) fn terminations(pod: &Value) -> Vec<String> {
    let pod_name = name(pod);
    let mut out = Vec::new();
    for (pointer, what) in [
        ("/status/initContainerStatuses", "init container"),
        ("/status/containerStatuses", "container"),
    ] {
        for status in pod
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(terminated) = status.pointer("/state/terminated") else {
                continue;
            };
            let code = count(terminated, "/exitCode");
            if code == 0 {
                continue;
            }
            let container = str_at(status, "/name").unwrap_or("?");
            out.push(format!(
                "pod {pod_name} {what} {container} exited {code}{}",
                terminated_detail(terminated)
            ));
        }
    }
    if out.is_empty()
        && let Some(reason) = str_at(pod, "/status/reason")
    {
        let message = str_at(pod, "/status/message")
            .map(excerpt)
            .unwrap_or_default();
        out.push(if message.is_empty() {
            format!("pod {pod_name}: {reason}")
        } else {
            format!("pod {pod_name}: {reason}: {message}")
        });
    }
    out
}

/// `: Reason: message` of a `terminated` state (empty parts left out).
fn terminated_detail(terminated: &Value) -> String {
    let mut out = String::new();
    for pointer in ["/reason", "/message"] {
        if let Some(text) = str_at(terminated, pointer).map(excerpt)
            && !text.is_empty()
        {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{eval, load};

    #[test]
    fn running_ready_pod_is_ready() {
        assert_eq!(eval(include_fixture!("pod-running.yaml")), Readiness::Ready);
    }

    #[test]
    fn image_pull_backoff_is_failing_with_kubelet_message() {
        let r = eval(include_fixture!("pod-image-pull-backoff.yaml"));
        assert_eq!(
            r,
            Readiness::Failing(
                "pod web-7c9d8f6b5-x2x4q container web: ImagePullBackOff: Back-off pulling image \
                 \"registry.example.com/aphiria/web@sha256:0c2f4f3a9d1b8e7c6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9\""
                    .into()
            )
        );
    }

    #[test]
    fn init_container_crash_loop_names_init_container_and_last_exit() {
        let r = eval(include_fixture!("pod-init-crashloop.yaml"));
        let Readiness::Failing(message) = r else {
            panic!("expected Failing, got {r:?}");
        };
        assert!(
            message.starts_with(
                "pod api-6b7f9d8c4-q9w8e init container migrate: CrashLoopBackOff: back-off 40s"
            ),
            "{message}"
        );
        assert!(message.contains("last exit code 1: Error"), "{message}");
    }

    #[test]
    fn pending_unscheduled_pod_is_in_progress() {
        let r = eval(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: preview-pr-1}
status:
  phase: Pending
  qosClass: Burstable
"#,
        );
        assert_eq!(r, Readiness::InProgress("pod is Pending".into()));
    }

    #[test]
    fn unschedulable_pod_is_failing() {
        let r = eval(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: preview-pr-1}
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2024-05-01T10:00:00Z"
    message: '0/1 nodes are available: 1 Insufficient cpu.'
    reason: Unschedulable
    status: "False"
    type: PodScheduled
  phase: Pending
  qosClass: Burstable
"#,
        );
        assert_eq!(
            r,
            Readiness::Failing(
                "pod web-1 is unschedulable: 0/1 nodes are available: 1 Insufficient cpu.".into()
            )
        );
    }

    #[test]
    fn failed_pod_is_failed_with_exit_code() {
        let r = eval(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: once, namespace: preview-pr-1}
status:
  phase: Failed
  containerStatuses:
  - name: main
    ready: false
    restartCount: 0
    image: busybox
    imageID: ""
    lastState: {}
    state:
      terminated:
        exitCode: 2
        reason: Error
        startedAt: "2024-05-01T10:00:00Z"
        finishedAt: "2024-05-01T10:00:01Z"
"#,
        );
        assert_eq!(
            r,
            Readiness::Failed("pod once container main exited 2: Error".into())
        );
    }

    #[test]
    fn evicted_pod_reports_pod_reason() {
        let r = eval(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: evicted, namespace: preview-pr-1}
status:
  phase: Failed
  reason: Evicted
  message: 'The node was low on resource: memory.'
"#,
        );
        assert_eq!(
            r,
            Readiness::Failed("pod evicted: Evicted: The node was low on resource: memory.".into())
        );
    }

    #[test]
    fn scan_reports_first_pod_and_counts_the_rest() {
        let (_, related) = load(include_fixture!("deployment-image-pull-backoff.yaml"));
        let mut pods = related.pods.clone();
        let mut second = pods[0].clone();
        second["metadata"]["name"] = "web-7c9d8f6b5-zzzzz".into();
        pods.push(second);
        let message = scan(&pods).expect("failure");
        assert!(
            message.starts_with("pod web-7c9d8f6b5-x2x4q container web"),
            "{message}"
        );
        assert!(message.ends_with("(and 1 more pod failing)"), "{message}");
    }
}
