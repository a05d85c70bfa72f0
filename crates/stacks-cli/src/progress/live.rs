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

/// Shows events until the channel closes.
pub async fn show(mut rx: UnboundedReceiver<Event>, color: bool) {
    let multi = MultiProgress::new();
    let spinner = ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
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
}
