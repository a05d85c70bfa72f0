//! Failure digests: why a step failed or timed out, from what the cluster says.
//!
//! A [`FailureDigest`] holds the readiness reason, the recent Warning Events
//! of the object and of what it owns (ReplicaSets, pods), each container's
//! state and last termination (reason, exit code, message), and the last log
//! lines of the containers that fail, read through the API server's
//! `pods/{name}/log`.
//!
//! - [`collect`] is the only effect: GETs and LISTs (the object, its
//!   ReplicaSets and pods, the namespace's Events, the Secrets its pods read,
//!   for redaction) and log reads. It never writes.
//! - [`assemble`] (pure) picks events, pods and containers from those objects
//!   and says whose logs to read; [`redact`] (pure) removes secret values
//!   (the stack's own, the Secrets the pods read, and `password=`-like
//!   patterns); [`cap`](cap::cap) (pure) bounds the size (40 log lines per
//!   container, 8 KiB in all); [`render_text`] (pure) is the terminal form.
//!
//! Nothing leaves [`collect`] unredacted or uncapped.

mod assemble;
pub mod cap;
mod collect;
pub mod redact;
mod render;

use serde::{Deserialize, Serialize};

pub use assemble::{LogTarget, assemble};
pub use collect::collect;
pub use redact::Redactor;
pub use render::render_text;

/// Why one step failed, as far as the cluster can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDigest {
    /// The resource, as `Deployment preview-pr-1/web`.
    pub resource: String,
    /// The readiness reason (the step's error message).
    pub reason: String,
    /// Recent Warning Events of the object and of what it owns, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventLine>,
    /// The containers of the object's pods that are not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerReport>,
    /// What could not be read or was left out (`3 more pods not shown`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// True when [`cap`](cap::cap) cut something.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One Warning Event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// The object it is about, as `Pod web-7c9d8f6b5-x2x4q`.
    pub object: String,
    /// `FailedCreate`, `BackOff`, `Unhealthy`…
    pub reason: String,
    /// The controller's or kubelet's message.
    pub message: String,
    /// How often it was seen.
    pub count: u64,
    /// When it was last seen (RFC 3339), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// One container of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// An init container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Restarts so far.
    pub restarts: i64,
    /// Its state now: `waiting: CrashLoopBackOff: back-off 10s …`, `running (not ready)`,
    /// `terminated`.
    pub state: String,
    /// Its last termination (the current one when it is terminated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<Termination>,
    /// The last lines of its log (read through `pods/log`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// Why the log could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

/// How a container ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    /// `Error`, `OOMKilled`, `Completed`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The exit code.
    pub exit_code: i64,
    /// The termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
