//! Failure injection through annotations.
//!
//! Tests put these on a Pod template (Deployment, Job, ...) — the controllers copy
//! template annotations onto the pods — or directly on a custom resource:
//!
//! | annotation | on | effect |
//! | --- | --- | --- |
//! | [`SIMULATE`] = `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError` or any other reason | pod | first container waiting with that reason; phase `Pending` (as a kubelet reports it: the container never started) |
//! | [`SIMULATE`] = `CrashLoopBackOff` | pod | first container waiting `CrashLoopBackOff`, 3 restarts, last state terminated (exit [`EXIT_CODE`], default 1, reason `Error`, message [`TERMINATION_MESSAGE`]); phase `Running`, not Ready |
//! | [`SIMULATE`] = `Unhealthy` | pod | first container running but not Ready, and a kubelet-style `Unhealthy` Warning Event (`Readiness probe failed: …`, or [`MESSAGE`]) about the pod, its count raised every second |
//! | [`SIMULATE`] = `Fail` | pod | phase `Failed`, first container terminated exit 1 reason `Error` |
//! | [`SIMULATE`] = `Succeed` | pod | phase `Succeeded` (Job pods get this without asking) |
//! | [`SIMULATE`] = `Pending` | pod, PVC | left alone: the pod stays unscheduled, the PVC unbound |
//! | [`MESSAGE`] | pod, CR | the message of the simulated failure |
//! | [`EXIT_CODE`], [`TERMINATION_MESSAGE`] | pod | exit code and message of the simulated termination (`Fail`, `CrashLoopBackOff`) |
//! | [`LOG`] | pod | the log of the first container, served by the simulated kubelet's `/containerLogs` endpoint (see [`super::kubelet`]), one line per line |
//! | [`DELAY_MS`] | pod | Running but not Ready until this many ms after the simulated start |
//! | [`SIMULATE`] = `NotAccepted` / `NotProgrammed` | Gateway | `Accepted=False` (and Programmed) / `Programmed=False`, reason `Invalid` |
//! | [`SIMULATE`] = `NotAccepted` / `UnresolvedRefs` | HTTPRoute | `Accepted=False` reason `NotAllowedByListeners` / `ResolvedRefs=False` reason `BackendNotFound` |
//! | [`SIMULATE`] = other value | Gateway / HTTPRoute | the main condition (Programmed / Accepted) `False` with that value as reason |

use std::collections::BTreeMap;
use std::time::Duration;

/// Selects a simulated outcome.
pub const SIMULATE: &str = "testkit.preview-envs.io/simulate";
/// The message of a simulated failure.
pub const MESSAGE: &str = "testkit.preview-envs.io/message";
/// Exit code of a simulated termination.
pub const EXIT_CODE: &str = "testkit.preview-envs.io/exit-code";
/// Message of a simulated termination (`terminated.message`).
pub const TERMINATION_MESSAGE: &str = "testkit.preview-envs.io/termination-message";
/// The first container's log lines, as the simulated kubelet serves them.
pub const LOG: &str = "testkit.preview-envs.io/log";
/// Delays a pod's readiness (milliseconds after its simulated start).
pub const DELAY_MS: &str = "testkit.preview-envs.io/delay-ms";
/// Label on objects the simulator creates (Node, PersistentVolumes).
pub const SIMULATED_LABEL: &str = "testkit.preview-envs.io/simulated";

/// The injection annotations of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Injection {
    /// The requested outcome, if any.
    pub simulate: Option<String>,
    /// The message to report.
    pub message: Option<String>,
    /// The readiness delay.
    pub delay: Option<Duration>,
    /// The exit code of a simulated termination.
    pub exit_code: Option<i32>,
    /// The message of a simulated termination.
    pub termination_message: Option<String>,
    /// The first container's log.
    pub log: Option<String>,
}

impl Injection {
    /// Reads the annotations of an object (missing or malformed values are ignored).
    pub(crate) fn of(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let Some(a) = annotations else {
            return Self::default();
        };
        let non_empty = |k: &str| {
            a.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            simulate: non_empty(SIMULATE),
            message: a.get(MESSAGE).cloned().filter(|m| !m.is_empty()),
            delay: non_empty(DELAY_MS)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis),
            exit_code: non_empty(EXIT_CODE).and_then(|v| v.parse::<i32>().ok()),
            termination_message: a
                .get(TERMINATION_MESSAGE)
                .cloned()
                .filter(|m| !m.is_empty()),
            log: a.get(LOG).cloned(),
        }
    }

    /// The message, or `default`.
    pub(crate) fn message_or(&self, default: impl FnOnce() -> String) -> String {
        self.message.clone().unwrap_or_else(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_annotations() {
        let mut a = BTreeMap::new();
        a.insert(SIMULATE.to_string(), " ImagePullBackOff ".to_string());
        a.insert(MESSAGE.to_string(), "no such image".to_string());
        a.insert(DELAY_MS.to_string(), "1500".to_string());
        a.insert(EXIT_CODE.to_string(), "137".to_string());
        a.insert(LOG.to_string(), "one\ntwo".to_string());
        let i = Injection::of(Some(&a));
        assert_eq!(i.exit_code, Some(137));
        assert_eq!(i.log.as_deref(), Some("one\ntwo"));
        assert_eq!(i.simulate.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(i.message.as_deref(), Some("no such image"));
        assert_eq!(i.delay, Some(Duration::from_millis(1500)));
        assert_eq!(Injection::of(None), Injection::default());
    }

    #[test]
    fn ignores_malformed_delay() {
        let mut a = BTreeMap::new();
        a.insert(DELAY_MS.to_string(), "soon".to_string());
        assert_eq!(Injection::of(Some(&a)).delay, None);
    }
}
