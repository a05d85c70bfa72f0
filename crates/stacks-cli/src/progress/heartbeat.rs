//! The CI heartbeat: while a step runs with nothing printed about it for
//! [`INTERVAL`], one line says it is still waiting and for how long
//! (`  … still waiting for Deployment/app/web (1 min 30 s): 1/2 replicas ready`),
//! so a long wait in a log without a terminal does not look like a hang.
//!
//! Pure: the caller passes the time ([`Heartbeat::due`]), so tests need no clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use preview_core::ResourceId;

use crate::terminal;

/// How long a step may run without a line before the heartbeat prints one.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// A step in flight.
#[derive(Debug)]
struct Running {
    started: Instant,
    /// When the last line about it was printed.
    last_line: Instant,
    /// The last thing it waited for.
    reason: Option<String>,
}

/// The steps in flight, and when a line was last printed about each.
#[derive(Debug, Default)]
pub struct Heartbeat {
    running: BTreeMap<ResourceId, Running>,
}

impl Heartbeat {
    /// A step started at `now` (its start line was printed).
    pub fn started(&mut self, id: &ResourceId, now: Instant) {
        self.running.insert(
            id.clone(),
            Running {
                started: now,
                last_line: now,
                reason: None,
            },
        );
    }

    /// A waiting line about `id` was printed at `now`.
    pub fn waiting(&mut self, id: &ResourceId, reason: &str, now: Instant) {
        let running = self.running.entry(id.clone()).or_insert(Running {
            started: now,
            last_line: now,
            reason: None,
        });
        running.last_line = now;
        running.reason = Some(reason.to_owned());
    }

    /// The step finished (done or failed).
    pub fn finished(&mut self, id: &ResourceId) {
        self.running.remove(id);
    }

    /// The heartbeat lines due at `now`, one per step that had no line for
    /// [`INTERVAL`]; each counts as its step's latest line.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for (id, running) in &mut self.running {
            if now.saturating_duration_since(running.last_line) < INTERVAL {
                continue;
            }
            running.last_line = now;
            let elapsed = terminal::duration(now.saturating_duration_since(running.started));
            lines.push(match &running.reason {
                Some(reason) => format!("  … still waiting for {id} ({elapsed}): {reason}"),
                None => format!("  … still waiting for {id} ({elapsed})"),
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ResourceId {
        ResourceId::kubernetes("apps/v1", "Deployment", Some("app"), name)
    }

    #[test]
    fn a_line_every_thirty_seconds_without_output_with_the_elapsed_time() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut beat = Heartbeat::default();
        beat.started(&id("web"), t0);
        assert!(beat.due(at(29)).is_empty());
        assert_eq!(
            beat.due(at(30)),
            [format!("  … still waiting for {} (30 s)", id("web"))]
        );
        // Not again until another 30 s passed.
        assert!(beat.due(at(59)).is_empty());
        // A waiting line resets the clock and gives the reason.
        beat.waiting(&id("web"), "1/2 replicas ready", at(50));
        assert!(beat.due(at(79)).is_empty());
        assert_eq!(
            beat.due(at(90)),
            [format!(
                "  … still waiting for {} (1 min 30 s): 1/2 replicas ready",
                id("web")
            )]
        );
        beat.finished(&id("web"));
        assert!(beat.due(at(600)).is_empty());
    }

    #[test]
    fn each_running_step_has_its_own_clock() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut beat = Heartbeat::default();
        beat.started(&id("api"), t0);
        beat.started(&id("web"), at(20));
        assert_eq!(beat.due(at(30)).len(), 1);
        let lines = beat.due(at(50));
        assert_eq!(
            lines,
            [format!("  … still waiting for {} (30 s)", id("web"))]
        );
        assert_eq!(beat.due(at(125)).len(), 2);
    }
}
