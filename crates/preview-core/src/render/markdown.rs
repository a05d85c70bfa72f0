//! Markdown rendering for a pull-request comment.
//!
//! A heading, the plan's notes ([`Plan::notes`]) as `> [!WARNING]` blocks, a table of
//! counts, then the changes in a collapsible
//! `<details><summary>Plan: …</summary>` with a ```` ```diff ```` block, so GitHub colours
//! `+` lines green and `-` lines red:
//!
//! ````text
//! ~ Deployment preview-pr-1/web
//! ~     spec.template.spec.containers[name=web].image: "web:1" => "web:2"
//! - ConfigMap preview-pr-1/old
//! ````
//!
//! A step the API server did not validate is marked `[not validated by the server]`,
//! with a `> [!WARNING]` counting them above the table's details.
//! Unchanged resources are only counted. The whole rendering stays within
//! [`MarkdownOptions::max_chars`] characters (GitHub accepts 65,536 per comment; the
//! default [`DEFAULT_MAX_CHARS`] leaves room for text around the plan): lines that do
//! not fit are dropped, with a visible note above the details block and a marker line
//! at the end of the diff.

use crate::plan::{NOT_VALIDATED, Plan};
use crate::render::{
    change_symbol, change_text, one_line, one_line_full, summary_line, unvalidated_line,
};

/// Default [`MarkdownOptions::max_chars`].
pub const DEFAULT_MAX_CHARS: usize = 60_000;

/// Options of [`markdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Maximum length of the rendering, in characters.
    pub max_chars: usize,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions {
            max_chars: DEFAULT_MAX_CHARS,
        }
    }
}

/// Renders `plan` as a Markdown comment body of at most `opts.max_chars` characters
/// (as long as that fits the heading and table).
pub fn markdown(plan: &Plan, opts: &MarkdownOptions) -> String {
    let summary = plan.summary();
    let mut head = format!("### Preview plan for `{}`\n\n", plan.stack);
    for note in &plan.notes {
        head.push_str(&format!("> [!WARNING]\n> {}\n\n", one_line_full(note)));
    }
    head.push_str("| Create | Update | Replace | Delete | Import | Unchanged |\n");
    head.push_str("|---:|---:|---:|---:|---:|---:|\n");
    head.push_str(&format!(
        "| {} | {} | {} | {} | {} | {} |\n",
        summary.create,
        summary.update,
        summary.replace,
        summary.delete,
        summary.import,
        summary.no_op
    ));
    if summary.refuse > 0 {
        head.push_str(&format!(
            "\n**{} recorded object(s) refused:** they fail the ownership checks (stack label, uid) and are never deleted.\n",
            summary.refuse
        ));
    }
    let unvalidated = plan.unvalidated_steps().count();
    if unvalidated > 0 {
        head.push_str(&format!(
            "\n> [!WARNING]\n> {}\n",
            unvalidated_line(unvalidated)
        ));
    }
    let lines = diff_lines(plan);
    if lines.is_empty() {
        head.push_str("\nNo changes.\n");
        return head;
    }
    let fence = fence_for(&lines);
    let open = format!(
        "\n<details><summary>{}</summary>\n\n{fence}diff\n",
        summary_line(&summary)
    );
    let close = format!("{fence}\n\n</details>\n");
    let total = lines.len();
    let fixed = chars(&head) + chars(&open) + chars(&close);
    let all: usize = lines.iter().map(|l| chars(l) + 1).sum();
    if fixed + all <= opts.max_chars {
        return format!("{head}{open}{}\n{close}", lines.join("\n"));
    }
    // Reserve room for the note and marker with worst-case numbers, then fill.
    let note = |shown: usize| {
        format!(
            "\n> [!NOTE]\n> The plan is too long for a comment: {shown} of {total} lines are shown (limit {} characters). The job log and the JSON plan have all of it.\n",
            opts.max_chars
        )
    };
    let marker = |shown: usize| format!("… {} more lines not shown\n", total - shown);
    let reserve = chars(&note(total)) + chars(&marker(0));
    let budget = opts.max_chars.saturating_sub(fixed + reserve);
    let mut used = 0;
    let mut shown = 0;
    for line in &lines {
        let cost = chars(line) + 1;
        if used + cost > budget {
            break;
        }
        used += cost;
        shown += 1;
    }
    let mut out = head;
    out.push_str(&note(shown));
    out.push_str(&open);
    for line in &lines[..shown] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&marker(shown));
    out.push_str(&close);
    out
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The lines of the diff block: one per mutating or refused step, then one per
/// field change.
fn diff_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for step in plan
        .steps
        .iter()
        .filter(|s| s.action.is_mutating() || s.action == crate::plan::Action::Refuse)
    {
        let mut line = format!("{} {}", step.action.symbol(), step.id);
        if let Some(reason) = &step.reason {
            line.push_str(&format!(" ({})", one_line(reason)));
        }
        if step.unvalidated.is_some() {
            line.push_str(&format!(" [{NOT_VALIDATED}]"));
        }
        lines.push(line);
        for change in &step.diff {
            lines.push(format!(
                "{}     {}",
                change_symbol(change.kind),
                change_text(change)
            ));
        }
    }
    lines
}

/// A backtick fence longer than any backtick run in `lines` (at least three).
fn fence_for(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .map(|line| line.split(|c| c != '`').map(str::len).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}
