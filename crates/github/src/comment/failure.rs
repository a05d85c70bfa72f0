//! Failure digests in the PR comment: why each failed step failed, read from
//! the `--json` document of a failed `stacks up` (`failed[]`, each with a
//! `failure` digest: reason, Warning events, container terminations, last log
//! lines; already redacted and capped by `stacks`), shown as one collapsed
//! `<details>` block per step.
//!
//! Everything the cluster or an application wrote is shown inside a code
//! fence longer than any run of backticks in it, so no log line can add
//! Markdown, HTML or an @-mention to the comment. The blocks together are kept
//! under [`MAX_FAILURE_CHARS`]; steps that do not fit are counted.

use std::fmt::Write as _;

use serde::Deserialize;

/// Most characters all failure blocks together may take in a comment.
pub const MAX_FAILURE_CHARS: usize = 24_000;

/// One failed step of a `stacks --json` failure document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedStep {
    /// `Deployment preview-pr-7/web`.
    pub resource: String,
    /// The step's error.
    #[serde(default)]
    pub error: String,
    /// The digest, when the cluster could explain it.
    #[serde(default)]
    pub failure: Option<Digest>,
}

/// A failure digest (see `preview_kubernetes::digest::FailureDigest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    /// The readiness reason.
    #[serde(default)]
    pub reason: String,
    /// Warning events, oldest first.
    #[serde(default)]
    pub events: Vec<EventLine>,
    /// Containers that are not ready.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// What was left out or could not be read.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Shortened to fit.
    #[serde(default)]
    pub truncated: bool,
}

/// One Warning event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// `Pod web-1`.
    pub object: String,
    /// `BackOff`.
    pub reason: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Times seen.
    #[serde(default)]
    pub count: u64,
}

/// One container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// An init container.
    #[serde(default)]
    pub init: bool,
    /// Restarts.
    #[serde(default)]
    pub restarts: i64,
    /// Its state.
    #[serde(default)]
    pub state: String,
    /// Its last termination.
    #[serde(default)]
    pub last_termination: Option<Termination>,
    /// Last log lines.
    #[serde(default)]
    pub log: Vec<String>,
    /// Why there is no log.
    #[serde(default)]
    pub log_error: Option<String>,
}

/// How a container ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    /// `Error`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The exit code.
    #[serde(default)]
    pub exit_code: i64,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    failed: Vec<FailedStep>,
}

/// The failed steps of a `stacks --json` document; an empty document (the run
/// failed before it printed one) has none.
pub fn parse_failures(text: &str) -> Result<Vec<FailedStep>, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str::<Document>(text)?.failed)
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The plain text shown in a step's code block.
fn text_of(step: &FailedStep) -> String {
    let mut out = String::new();
    let Some(d) = &step.failure else {
        let _ = writeln!(out, "error: {}", one_line(&step.error));
        return out;
    };
    let _ = writeln!(out, "reason: {}", one_line(&d.reason));
    if !d.events.is_empty() {
        out.push_str("events (Warning, oldest first):\n");
        for e in &d.events {
            let count = if e.count > 1 {
                format!(" (×{})", e.count)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} {}{count}: {}",
                e.object,
                e.reason,
                one_line(&e.message)
            );
        }
    }
    for c in &d.containers {
        let what = if c.init {
            "init container"
        } else {
            "container"
        };
        let _ = writeln!(
            out,
            "{what} {}/{} (restarts {}): {}",
            c.pod,
            c.container,
            c.restarts,
            one_line(&c.state)
        );
        if let Some(t) = &c.last_termination {
            let mut line = format!("  last termination: exit code {}", t.exit_code);
            if let Some(reason) = &t.reason {
                let _ = write!(line, " ({reason})");
            }
            if let Some(message) = &t.message {
                let _ = write!(line, ": {}", one_line(message));
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(e) = &c.log_error {
            let _ = writeln!(out, "  log: not available: {}", one_line(e));
        } else if !c.log.is_empty() {
            let _ = writeln!(out, "  log (last {} lines):", c.log.len());
            for line in &c.log {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    for note in &d.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if d.truncated {
        out.push_str("(shortened to fit; the full logs are in the cluster)\n");
    }
    out
}

/// A fence of backticks longer than any run of backticks in `text` (at least 3).
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// `<`, `>` and `&` as entities (for the `<summary>` line).
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One step's collapsed block.
fn block(step: &FailedStep) -> String {
    let text = text_of(step);
    let fence = fence_for(&text);
    format!(
        "<details>\n<summary>🔎 Why {} failed</summary>\n\n{fence}text\n{}{fence}\n\n</details>\n\n",
        html_escape(&step.resource),
        text
    )
}

/// The failure blocks of `steps`, within `budget` characters: steps that do
/// not fit are counted in a closing line.
pub fn render_failures(steps: &[FailedStep], budget: usize) -> String {
    let mut out = String::new();
    let mut left_out = 0;
    for step in steps {
        let b = block(step);
        if out.chars().count() + b.chars().count() <= budget {
            out.push_str(&b);
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "_{left_out} more failed step(s) not shown here; see the workflow run log._\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<FailedStep> {
        parse_failures(
            r#"{
  "stack": "preview-pr-7",
  "failed": [
    {
      "resource": "Deployment preview-pr-7/web",
      "error": "Deployment preview-pr-7/web: pod web-1 container web: CrashLoopBackOff",
      "failure": {
        "resource": "Deployment preview-pr-7/web",
        "reason": "pod web-1 container web: CrashLoopBackOff: back-off 10s (3 restarts)",
        "events": [{"object": "Pod web-1", "reason": "BackOff", "message": "Back-off restarting failed container web", "count": 4}],
        "containers": [{
          "pod": "web-1", "container": "web", "restarts": 3,
          "state": "waiting: CrashLoopBackOff: back-off 10s",
          "lastTermination": {"reason": "Error", "exitCode": 3, "message": "cannot read js-config"},
          "log": ["starting web", "```", "@octocat <script>alert(1)</script> password=[secret]"]
        }]
      }
    },
    {"resource": "Job preview-pr-7/migrate", "error": "Job preview-pr-7/migrate: apply failed: forbidden (HTTP 403)"}
  ],
  "skipped": [],
  "done": 12
}"#,
        )
        .expect("document")
    }

    #[test]
    fn blocks_per_step() {
        let text = render_failures(&sample(), MAX_FAILURE_CHARS);
        // The log's own ``` cannot close the fence.
        assert!(text.contains("````text\n"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn steps_over_the_budget_are_counted() {
        let steps = sample();
        let one = render_failures(&steps[..1], MAX_FAILURE_CHARS)
            .chars()
            .count();
        let text = render_failures(&steps, one + 10);
        assert!(
            text.contains("_1 more failed step(s) not shown here"),
            "{text}"
        );
        assert!(!text.contains("migrate"), "{text}");
    }

    #[test]
    fn an_empty_document_has_no_failures() {
        assert!(parse_failures("  \n").expect("empty").is_empty());
        assert!(parse_failures("{}").expect("no failed[]").is_empty());
        assert!(parse_failures("not json").is_err());
    }
}
