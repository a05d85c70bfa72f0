//! Turns engine events into progress output on stderr: a live display on a
//! terminal ([`live`]: one line per running step, redrawn; finished steps scroll
//! up as lines), plain lines otherwise (CI logs; `--progress plain`) with a
//! [`heartbeat`] during long waits, nothing with `--progress none` or `-q`.

mod heartbeat;
mod live;

use std::io::Write;
use std::time::{Duration, Instant};

use preview_core::events::Event;
use preview_core::plan::Action;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::cli::Progress;
use crate::terminal::{self, paint, style};

fn verb(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("creating", "created"),
        Action::Update => ("updating", "updated"),
        Action::Replace => ("replacing", "replaced"),
        Action::Delete => ("deleting", "deleted"),
        Action::Import => ("importing", "imported"),
        Action::NoOp => ("checking", "unchanged"),
        Action::Refuse => ("refusing to delete", "left untouched"),
    }
}

/// Prints events until the channel closes.
pub async fn print(mut rx: UnboundedReceiver<Event>, mode: Progress) {
    if mode == Progress::None || terminal::quiet() {
        while rx.recv().await.is_some() {}
        return;
    }
    let color = terminal::stderr_colors();
    if mode == Progress::Auto && terminal::stderr_is_terminal() {
        live::show(rx, color).await;
    } else {
        plain(rx, color).await;
    }
}

/// One line per event, and [`heartbeat`] lines while steps run long.
async fn plain(mut rx: UnboundedReceiver<Event>, color: bool) {
    let mut beat = heartbeat::Heartbeat::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                match &event {
                    Event::StepStarted { id, .. } => beat.started(id, now),
                    Event::Waiting { id, reason, .. } => beat.waiting(id, reason, now),
                    Event::StepDone { id, .. } | Event::StepFailed { id, .. } => beat.finished(id),
                    Event::Observing { .. } | Event::Warning { .. } => {}
                }
                write_stderr(&line(&event, color));
            }
            _ = tick.tick() => {
                for text in beat.due(Instant::now()) {
                    write_stderr(&text);
                }
            }
        }
    }
}

fn write_stderr(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The plain line of an event (scripts and tests read these: keep them stable).
fn line(event: &Event, color: bool) -> String {
    match event {
        Event::Observing { resources } => format!("reading {resources} resources"),
        Event::StepStarted { id, action } => format!("  {} {id}", verb(*action).0),
        Event::Waiting {
            id,
            reason,
            failing,
        } => {
            let s = format!("  … {id}: {reason}");
            if *failing {
                paint(color, style::WARN, &s)
            } else {
                s
            }
        }
        Event::StepDone {
            id,
            action,
            elapsed,
        } => paint(
            color,
            style::OK,
            &format!(
                "  ✓ {id} {} ({:.1}s)",
                verb(*action).1,
                elapsed.as_secs_f64()
            ),
        ),
        Event::StepFailed { id, action, error } => paint(
            color,
            style::ERROR,
            &format!("  ✗ {id} {} failed: {error}", verb(*action).0),
        ),
        Event::Warning { id, message } => match id {
            Some(id) => paint(color, style::WARN, &format!("  ! {id}: {message}")),
            None => paint(color, style::WARN, &format!("  ! {message}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use preview_core::ResourceId;

    use super::*;

    #[test]
    fn the_plain_lines_stay_as_scripts_read_them() {
        let id = ResourceId::kubernetes("apps/v1", "Deployment", Some("app"), "web");
        let cases = [
            (Event::Observing { resources: 3 }, "reading 3 resources"),
            (
                Event::StepStarted {
                    id: id.clone(),
                    action: Action::Create,
                },
                "  creating Deployment app/web",
            ),
            (
                Event::Waiting {
                    id: id.clone(),
                    reason: "1/2 replicas ready".into(),
                    failing: false,
                },
                "  … Deployment app/web: 1/2 replicas ready",
            ),
            (
                Event::StepDone {
                    id: id.clone(),
                    action: Action::Update,
                    elapsed: Duration::from_millis(1_234),
                },
                "  ✓ Deployment app/web updated (1.2s)",
            ),
            (
                Event::StepFailed {
                    id: id.clone(),
                    action: Action::Delete,
                    error: "gone wrong".into(),
                },
                "  ✗ Deployment app/web deleting failed: gone wrong",
            ),
            (
                Event::Warning {
                    id: None,
                    message: "careful".into(),
                },
                "  ! careful",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(line(&event, false), text);
        }
        let done = Event::StepDone {
            id,
            action: Action::Create,
            elapsed: Duration::from_millis(300),
        };
        assert_eq!(
            line(&done, true),
            "\u{1b}[32m  ✓ Deployment app/web created (0.3s)\u{1b}[0m"
        );
    }
}
