//! `v1/Pod`: ready when the `Ready` condition is `True` (or the pod `Succeeded`).
//!
//! Also home of the pod-failure scanner shared by Deployment, StatefulSet,
//! DaemonSet and Job: a container (or init container) waiting with one of
//! [`WAITING_FAILURES`], or a pod the scheduler marked `Unschedulable`, is a
//! visible failure that will fail the step if it persists. The message names the
//! pod, the container, the kubelet's reason and its message.
//!
//! Some of them are known causes that waiting will not fix, and fail the step
//! at once ([`PodFailure::terminal`]): an image that cannot be pulled
//! ([`IMAGE_FAILURES`]) and a crash loop of at least [`CRASH_LOOP_RESTARTS`]
//! restarts. The others (a crash loop that may still settle, a missing Secret
//! that another step may be creating, an unschedulable pod) fail it when they
//! persist past the failure grace period.

use serde_json::Value;

use super::Readiness;
use super::conditions::{
    count, excerpt, is_deleting, latest_event, name, status_condition, str_at,
};

/// Container `state.waiting.reason`s of an image that cannot be pulled: terminal.
pub(super) const IMAGE_FAILURES: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
];

/// Restarts after which `CrashLoopBackOff` is terminal (fewer: an application
/// that crashes while a dependency starts may still settle).
pub const CRASH_LOOP_RESTARTS: i64 = 3;

/// A visible failure of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodFailure {
    /// What fails, naming the pod and container.
    pub message: String,
    /// Waiting will not fix it: the step fails at once.
    pub terminal: bool,
}

impl PodFailure {
    /// `Failed` or `Failing` with the message and, when given, the progress.
    pub fn readiness(self, progress: Option<&str>) -> Readiness {
        let message = match progress {
            Some(p) => format!("{} ({p})", self.message),
            None => self.message,
        };
        if self.terminal {
            Readiness::Failed(message)
        } else {
            Readiness::Failing(message)
        }
    }
}

/// A controller that cannot create pods (`FailedCreate`, `ReplicaFailure`):
/// terminal when it is a quota the pod can never fit ([`super::quota`]).
pub(super) fn cannot_create(message: String) -> PodFailure {
    PodFailure {
        terminal: super::quota::never_fits(&message),
        message,
    }
}

/// A readiness probe failing on one of `pods` whose containers run but are
/// not ready: the kubelet's latest `Unhealthy` event about it.
pub(super) fn probe_failure<'a>(
    events: &[Value],
    pods: impl IntoIterator<Item = &'a Value>,
) -> Option<PodFailure> {
    let running_unready: Vec<(&str, &str)> = pods
        .into_iter()
        .filter(|p| !is_deleting(p))
        .filter(|p| str_at(p, "/status/phase") == Some("Running"))
        .filter(|p| status_condition(p, "Ready").is_some_and(|c| !c.is_true()))
        .map(|p| ("Pod", name(p)))
        .collect();
    let message = latest_event(events, "Unhealthy", &running_unready)?;
    Some(PodFailure {
        message,
        terminal: false,
    })
}

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
        return failure.readiness(None);
    }
    let phase = str_at(pod, "/status/phase").unwrap_or("Pending");
    Readiness::InProgress(match ready.filter(|c| !c.message.is_empty()) {
        Some(c) => format!("pod is {phase}: {}", excerpt(c.message)),
        None => format!("pod is {phase}"),
    })
}

/// The first visible failure of one pod: init containers first (they run first),
/// then containers, then scheduling.
pub(super) fn failure(pod: &Value) -> Option<PodFailure> {
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
            let restarts = count(status, "/restartCount");
            let terminal = IMAGE_FAILURES.contains(&reason)
                || (reason == "CrashLoopBackOff" && restarts >= CRASH_LOOP_RESTARTS);
            if reason == "CrashLoopBackOff" {
                text.push_str(&format!(
                    " ({restarts} restart{})",
                    if restarts == 1 { "" } else { "s" }
                ));
            }
            return Some(PodFailure {
                message: text,
                terminal,
            });
        }
    }
    let scheduled = status_condition(pod, "PodScheduled")?;
    (scheduled.is_false() && scheduled.reason == "Unschedulable").then(|| PodFailure {
        message: format!(
            "pod {pod_name} is unschedulable: {}",
            excerpt(scheduled.message)
        ),
        terminal: false,
    })
}

/// Scans pods (skipping those being deleted) for failures; reports the first by
/// pod name and how many other pods fail too.
/// A terminal failure is reported before any other.
pub(super) fn scan<'a>(pods: impl IntoIterator<Item = &'a Value>) -> Option<PodFailure> {
    let mut failures: Vec<(bool, &str, String)> = pods
        .into_iter()
        .filter(|p| !is_deleting(p))
        .filter_map(|p| failure(p).map(|f| (!f.terminal, name(p), f.message)))
        .collect();
    failures.sort();
    let mut failures = failures.into_iter();
    let (not_terminal, _, first) = failures.next()?;
    let message = match failures.len() {
        0 => first,
        1 => format!("{first} (and 1 more pod failing)"),
        more => format!("{first} (and {more} more pods failing)"),
    };
    Some(PodFailure {
        message,
        terminal: !not_terminal,
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
    fn image_pull_backoff_is_failed_at_once_with_kubelet_message() {
        let r = eval(include_fixture!("pod-image-pull-backoff.yaml"));
        assert_eq!(
            r,
            Readiness::Failed(
                "pod web-7c9d8f6b5-x2x4q container web: ImagePullBackOff: Back-off pulling image \
                 \"registry.example.com/aphiria/web@sha256:0c2f4f3a9d1b8e7c6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9\""
                    .into()
            )
        );
    }

    #[test]
    fn init_container_crash_loop_names_init_container_and_last_exit() {
        let r = eval(include_fixture!("pod-init-crashloop.yaml"));
        let Readiness::Failed(message) = r else {
            panic!("expected Failed (3 restarts), got {r:?}");
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
    fn crash_loop_is_terminal_from_the_third_restart() {
        let (mut pod, _) = load(include_fixture!("pod-init-crashloop.yaml"));
        pod["status"]["initContainerStatuses"][0]["restartCount"] = 2.into();
        assert!(matches!(evaluate(&pod), Readiness::Failing(m) if m.ends_with("(2 restarts)")));
        pod["status"]["initContainerStatuses"][0]["restartCount"] = 3.into();
        assert!(matches!(evaluate(&pod), Readiness::Failed(m) if m.ends_with("(3 restarts)")));
    }

    #[test]
    fn readiness_probe_failures_of_running_pods() {
        let (mut pod, _) = load(include_fixture!("pod-running.yaml"));
        let events = vec![serde_json::json!({
            "involvedObject": {"kind": "Pod", "name": name(&pod)},
            "reason": "Unhealthy", "type": "Warning",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "lastTimestamp": "2024-05-01T10:00:05Z"})];
        // Ready: the event is history.
        assert_eq!(probe_failure(&events, [&pod]), None);
        for c in pod["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
        {
            if c["type"] == "Ready" {
                c["status"] = "False".into();
            }
        }
        let failure = probe_failure(&events, [&pod]).expect("probe failure");
        assert!(!failure.terminal);
        assert!(
            failure.message.ends_with(
                "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503"
            ),
            "{}",
            failure.message
        );
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
        let message = scan(&pods).expect("failure").message;
        assert!(
            message.starts_with("pod web-7c9d8f6b5-x2x4q container web"),
            "{message}"
        );
        assert!(message.ends_with("(and 1 more pod failing)"), "{message}");
    }
}
