//! Turns engine events into progress output on stderr: coloured, compact lines on
//! a terminal; plain timestamped-free lines in CI logs; nothing with `--progress none`.

use std::io::{IsTerminal, Write};

use preview_core::events::Event;
use preview_core::plan::Action;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::cli::Progress;

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
    let color = mode == Progress::Auto && std::io::stderr().is_terminal();
    let paint = |code: &str, s: String| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s
        }
    };
    while let Some(event) = rx.recv().await {
        if mode == Progress::None {
            continue;
        }
        let line = match event {
            Event::Observing { resources } => format!("reading {resources} resources"),
            Event::StepStarted { id, action } => format!("  {} {id}", verb(action).0),
            Event::Waiting {
                id,
                reason,
                failing,
            } => {
                let s = format!("  … {id}: {reason}");
                if failing { paint("33", s) } else { s }
            }
            Event::StepDone {
                id,
                action,
                elapsed,
            } => paint(
                "32",
                format!(
                    "  ✓ {id} {} ({:.1}s)",
                    verb(action).1,
                    elapsed.as_secs_f64()
                ),
            ),
            Event::StepFailed { id, action, error } => {
                paint("31", format!("  ✗ {id} {} failed: {error}", verb(action).0))
            }
            Event::Warning { id, message } => match id {
                Some(id) => paint("33", format!("  ! {id}: {message}")),
                None => paint("33", format!("  ! {message}")),
            },
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}
