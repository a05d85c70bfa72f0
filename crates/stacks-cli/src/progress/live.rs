//! The live progress display on a terminal: one spinner line per running step
//! (what it does, what it waits for, for how long), redrawn in place by
//! `indicatif`; a finished or failed step's line is replaced by its plain line
//! printed above the running ones, so the scrollback reads like the CI log.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use preview_core::ResourceId;
use preview_core::events::Event;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{line, verb};
use crate::terminal::{paint, style};

/// A running step's line: spinner, what it does or waits for, time so far.
const TEMPLATE: &str = "  {spinner} {msg} [{elapsed}]";

/// Shows events on stderr until the channel closes.
pub async fn show(rx: UnboundedReceiver<Event>, color: bool) {
    show_on(MultiProgress::new(), rx, color).await;
}

/// Shows events on `multi` until the channel closes; returns how many steps
/// were still running then (their lines are cleared).
async fn show_on(multi: MultiProgress, mut rx: UnboundedReceiver<Event>, color: bool) -> usize {
    let spinner =
        ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut running: BTreeMap<ResourceId, (ProgressBar, String)> = BTreeMap::new();
    while let Some(event) = rx.recv().await {
        match &event {
            Event::StepStarted { id, action } => {
                let title = format!("{} {id}", verb(*action).0);
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner.clone());
                bar.set_message(title.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                running.insert(id.clone(), (bar, title));
            }
            Event::Waiting {
                id,
                reason,
                failing,
            } => match running.get(id) {
                Some((bar, title)) => {
                    let text = format!("{title}: {reason}");
                    bar.set_message(if *failing {
                        paint(color, style::WARN, &text)
                    } else {
                        text
                    });
                }
                None => {
                    let _ = multi.println(line(&event, color));
                }
            },
            Event::StepDone { id, .. } | Event::StepFailed { id, .. } => {
                if let Some((bar, _)) = running.remove(id) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(line(&event, color));
            }
            Event::Observing { .. } | Event::Warning { .. } => {
                let _ = multi.println(line(&event, color));
            }
        }
    }
    for (bar, _) in running.values() {
        bar.finish_and_clear();
    }
    running.len()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use indicatif::ProgressDrawTarget;
    use preview_core::plan::Action;

    use super::*;

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[tokio::test]
    async fn every_running_line_is_cleared_when_its_step_ends_or_the_run_stops() {
        let id = |name: &str| ResourceId::kubernetes("v1", "ConfigMap", Some("app"), name);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for event in [
            Event::Observing { resources: 2 },
            Event::StepStarted {
                id: id("a"),
                action: Action::Create,
            },
            Event::StepStarted {
                id: id("b"),
                action: Action::Update,
            },
            Event::Waiting {
                id: id("a"),
                reason: "waiting".into(),
                failing: true,
            },
            Event::Waiting {
                id: id("unknown"),
                reason: "not started here".into(),
                failing: false,
            },
            Event::StepDone {
                id: id("a"),
                action: Action::Create,
                elapsed: Duration::from_millis(10),
            },
            Event::Warning {
                id: None,
                message: "note".into(),
            },
        ] {
            tx.send(event).expect("send");
        }
        drop(tx);
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        // `b` never finished: its line is cleared at the end; `a`'s when it was done.
        assert_eq!(show_on(multi, rx, true).await, 1);
    }
}
