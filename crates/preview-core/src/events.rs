//! Typed progress events.
//!
//! The engine emits an [`Event`] for every step transition through an
//! [`EventSink`] (a channel) and as a `tracing` event. Libraries never print;
//! the binaries turn events into a live display on terminals and plain lines in CI.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::plan::Action;
use crate::resource::ResourceId;

/// One progress event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    /// Reading live objects and dry-runs before planning.
    Observing {
        /// Number of resources read.
        resources: usize,
    },
    /// A step started.
    StepStarted {
        /// Resource.
        id: ResourceId,
        /// Action.
        action: Action,
    },
    /// A step is waiting for readiness (or for deletion to finish).
    Waiting {
        /// Resource.
        id: ResourceId,
        /// What it waits for, or the problem seen (e.g. a pod in ImagePullBackOff).
        reason: String,
        /// True when the reason is a failure that will fail the step if it persists.
        failing: bool,
    },
    /// A step finished.
    StepDone {
        /// Resource.
        id: ResourceId,
        /// Action.
        action: Action,
        /// Time taken, including waits.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
    },
    /// A step failed.
    StepFailed {
        /// Resource.
        id: ResourceId,
        /// Action.
        action: Action,
        /// The error, one line.
        error: String,
    },
    /// Something worth telling that is not a failure.
    Warning {
        /// Resource, if any.
        id: Option<ResourceId>,
        /// Message.
        message: String,
    },
}

/// Where events go. Cloneable; sending never blocks and never fails the engine.
#[derive(Clone, Debug, Default)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<Event>>,
}

impl EventSink {
    /// A sink that only logs through `tracing`.
    pub fn none() -> Self {
        EventSink { tx: None }
    }

    /// A sink and the receiver the caller reads events from.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink { tx: Some(tx) }, rx)
    }

    /// Emits an event.
    pub fn emit(&self, event: Event) {
        tracing::debug!(?event, "progress");
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
