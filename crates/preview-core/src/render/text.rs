//! Plain-text rendering, like `pulumi preview --diff`.
//!
//! ```text
//! Plan for stack preview-pr-1:
//!
//!   + Deployment preview-pr-1/web
//!   ~ Deployment preview-pr-1/api
//!       ~ spec.template.spec.containers[name=api].image: "api:1" => "api:2"
//!  +- Service preview-pr-1/db (spec.clusterIP: field is immutable)
//!   - ConfigMap preview-pr-1/old
//!   ! Namespace other (it does not carry the label preview-envs.io/stack=preview-pr-1 …)
//!
//! Plan: 1 to create, 1 to update, 1 to replace, 1 to delete, 12 unchanged.
//! ```
//!
//! Notes attached to the plan ([`Plan::notes`]) come first, one `  ! …` line each.
//! A step the API server did not validate ([`Step::unvalidated`](crate::plan::Step::unvalidated))
//! gets a `! not validated by the server (…)` line, and the plan a closing line counting them.
//! Steps appear in execution order; unchanged resources only with
//! [`TextOptions::show_unchanged`]. ANSI colours (green create, yellow update,
//! magenta replace, red delete, cyan import, bold red refused delete) only with [`TextOptions::color`]; the
//! binary decides, from the terminal, whether to ask for them.

use crate::plan::{Action, ChangeKind, NOT_VALIDATED, Plan};
use crate::render::{
    change_symbol, change_text, one_line, one_line_full, summary_line, unvalidated_line,
};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const BOLD_RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";

/// Options of [`text`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Emit ANSI colour codes.
    pub color: bool,
    /// List unchanged resources too.
    pub show_unchanged: bool,
}

fn action_color(action: Action) -> &'static str {
    match action {
        Action::NoOp => DIM,
        Action::Create => GREEN,
        Action::Update => YELLOW,
        Action::Replace => MAGENTA,
        Action::Delete => RED,
        Action::Import => CYAN,
        Action::Refuse => BOLD_RED,
    }
}

fn change_color(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => GREEN,
        ChangeKind::Removed => RED,
        ChangeKind::Changed => YELLOW,
    }
}

/// Renders `plan` as text (ends with a newline).
pub fn text(plan: &Plan, opts: &TextOptions) -> String {
    let paint = |color: &str, s: &str| {
        if opts.color {
            format!("{color}{s}{RESET}")
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    out.push_str(&paint(BOLD, &format!("Plan for stack {}:", plan.stack)));
    out.push_str("\n\n");
    for note in &plan.notes {
        out.push_str(&paint(YELLOW, &format!("  ! {}", one_line_full(note))));
        out.push('\n');
    }
    if !plan.notes.is_empty() {
        out.push('\n');
    }
    let mut shown = 0;
    for step in &plan.steps {
        if step.action == Action::NoOp && !opts.show_unchanged {
            continue;
        }
        shown += 1;
        let mut line = format!("{:>3} {}", step.action.symbol(), step.id);
        if let Some(reason) = &step.reason {
            line.push_str(&format!(" ({})", one_line(reason)));
        }
        out.push_str(&paint(action_color(step.action), &line));
        out.push('\n');
        if let Some(message) = &step.unvalidated {
            let line = format!(
                "! {NOT_VALIDATED} (dry-run forbidden: {})",
                one_line(message)
            );
            out.push_str("      ");
            out.push_str(&paint(YELLOW, &line));
            out.push('\n');
        }
        for change in &step.diff {
            let line = format!("{} {}", change_symbol(change.kind), change_text(change));
            out.push_str("      ");
            out.push_str(&paint(change_color(change.kind), &line));
            out.push('\n');
        }
    }
    if shown == 0 {
        out.push_str("  no changes\n");
    }
    out.push('\n');
    out.push_str(&paint(BOLD, &summary_line(&plan.summary())));
    out.push('\n');
    let unvalidated = plan.unvalidated_steps().count();
    if unvalidated > 0 {
        out.push_str(&paint(YELLOW, &unvalidated_line(unvalidated)));
        out.push('\n');
    }
    out
}
