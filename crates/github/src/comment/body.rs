//! The PR comment body: a pure function of its inputs.

use serde::Serialize;

use super::failure::{FailedStep, MAX_FAILURE_CHARS, render_failures};

/// Hidden marker that identifies the one preview comment per PR.
pub const PR_COMMENT_MARKER: &str = "<!-- preview-envs:pr-comment -->";
/// GitHub's limit on a comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// Status shown at the top of the comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CommentStatus {
    /// ✅ deployed and healthy.
    Success,
    /// ❌ failed.
    Failure,
    /// ⏳ plan posted / waiting for approval / deploying.
    Pending,
    /// 🧹 the PR closed and the environment was destroyed.
    Destroyed,
}

impl CommentStatus {
    /// The emoji and headline.
    fn headline(self, pr: u64) -> String {
        match self {
            Self::Success => format!("✅ Preview environment for #{pr} is ready"),
            Self::Failure => format!("❌ Preview deployment for #{pr} failed"),
            Self::Pending => format!("⏳ Preview deployment for #{pr} is pending"),
            Self::Destroyed => format!("🧹 Preview environment for #{pr} was destroyed"),
        }
    }
}

/// Everything the comment shows. Values are validated by the caller (URLs, SHAs and
/// digests cannot carry Markdown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommentContent {
    /// Pull request number.
    pub pr: u64,
    /// Status.
    pub status: Option<CommentStatus>,
    /// Web URL.
    pub web_url: Option<String>,
    /// API URL.
    pub api_url: Option<String>,
    /// Commit SHA.
    pub sha: Option<String>,
    /// Web image `name@sha256:…`.
    pub web_image: Option<String>,
    /// API image `name@sha256:…`.
    pub api_image: Option<String>,
    /// URLs of other routes by label (`app` → row `🌐 app`), after the web and API URLs.
    pub urls: Vec<(String, String)>,
    /// Images of other keys (`worker` → row `📦 worker image`), after the web and API images.
    pub images: Vec<(String, String)>,
    /// Link to the workflow run / logs.
    pub log_url: Option<String>,
    /// Free text under the headline.
    pub message: Option<String>,
    /// The plan (Markdown), shown collapsed.
    pub plan: Option<String>,
    /// The saved plan's id (`sha256:…`): the plan reviewed, and once deployed the plan applied.
    pub plan_id: Option<String>,
    /// Failed steps with their failure digests, shown collapsed under the table.
    pub failures: Vec<FailedStep>,
}

/// Renders the comment within GitHub's size limit.
pub fn render_comment(content: &CommentContent) -> String {
    render_comment_with_limit(content, MAX_COMMENT_CHARS)
}

/// Renders the comment so it has at most `limit` characters, truncating the plan (at a
/// line boundary, keeping code fences balanced) with a note when it does not fit.
pub fn render_comment_with_limit(content: &CommentContent, limit: usize) -> String {
    let head = render_head(content);
    let foot = render_foot();
    let Some(plan) = content.plan.as_deref().map(str::trim_end) else {
        return format!("{head}{foot}");
    };
    // A plan rendered by `stacks preview --format markdown` brings its own summary table
    // and `<details>`; wrapping it again would make readers open two collapsibles.
    let own_details = plan.contains("<details");
    let full = format!("{head}{}{foot}", plan_block(plan, None, own_details));
    if chars(&full) <= limit {
        return full;
    }

    let lines: Vec<&str> = plan.lines().collect();
    let total_lines = lines.len();
    let total_chars = chars(plan);
    // The note with the largest numbers it can show bounds its own size; 8 more
    // characters cover the blank line after the plan and a closing fence.
    let widest_note = note(total_lines, total_lines, total_chars, content);
    let fixed =
        chars(&head) + chars(&foot) + chars(&plan_block("", Some(widest_note), own_details)) + 8;
    let mut budget = limit.saturating_sub(fixed);
    for _ in 0..8 {
        let (kept, count) = take_lines(&lines, budget);
        let kept = balance_details(&balance_fences(&kept));
        let body = format!(
            "{head}{}{foot}",
            plan_block(
                &kept,
                Some(note(count, total_lines, total_chars, content)),
                own_details
            )
        );
        let size = chars(&body);
        if size <= limit {
            return body;
        }
        budget = budget.saturating_sub(size - limit);
    }
    // Not even the frame fits (a tiny limit): leave the plan out.
    format!("{head}{foot}")
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Whole lines from the start whose total length (with newlines) is within `budget`.
fn take_lines(lines: &[&str], budget: usize) -> (String, usize) {
    let mut used = 0;
    let mut kept = String::new();
    let mut count = 0;
    for line in lines {
        let cost = chars(line) + 1;
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push_str(line);
        kept.push('\n');
        count += 1;
    }
    (kept.trim_end_matches('\n').to_string(), count)
}

/// Closes a code fence left open by truncation, with the same fence it was opened with
/// (plans use longer fences when values contain backticks).
fn balance_fences(text: &str) -> String {
    let mut open: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let Some(marker) = trimmed.chars().next().filter(|c| *c == '`' || *c == '~') else {
            continue;
        };
        let run: String = trimmed.chars().take_while(|c| *c == marker).collect();
        if run.len() < 3 {
            continue;
        }
        match &open {
            None => open = Some(run),
            Some(fence) => {
                let closes = fence.starts_with(marker)
                    && run.len() >= fence.len()
                    && trimmed[run.len()..].trim().is_empty();
                if closes {
                    open = None;
                }
            }
        }
    }
    match open {
        Some(fence) => format!("{text}\n{fence}"),
        None => text.to_string(),
    }
}

/// Closes `<details>` blocks left open by truncation (after any closing fence).
fn balance_details(text: &str) -> String {
    let opened = text.matches("<details").count();
    let closed = text.matches("</details>").count();
    let mut out = text.to_string();
    for _ in closed..opened {
        out.push_str("\n\n</details>");
    }
    out
}

fn note(shown: usize, total_lines: usize, total_chars: usize, content: &CommentContent) -> String {
    let whereabouts = match content.log_url.as_deref() {
        Some(url) => format!("the full plan is in the [workflow run log]({url})"),
        None => "the full plan is in the workflow run log".to_string(),
    };
    format!(
        "> [!WARNING]\n> Plan truncated to fit GitHub's {} character comment limit: showing {shown} of {total_lines} lines ({} characters in full); {whereabouts}.",
        group(MAX_COMMENT_CHARS),
        group(total_chars),
    )
}

fn group(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn plan_block(plan: &str, note: Option<String>, own_details: bool) -> String {
    if own_details {
        let mut out = String::new();
        if let Some(note) = note {
            out.push_str(&note);
            out.push_str("\n\n");
        }
        if !plan.is_empty() {
            out.push_str(plan);
            out.push_str("\n\n");
        }
        return out;
    }
    let mut out = String::from("<details>\n<summary>📋 Plan</summary>\n\n");
    if let Some(note) = note {
        out.push_str(&note);
        out.push_str("\n\n");
    }
    if !plan.is_empty() {
        out.push_str(plan);
        out.push_str("\n\n");
    }
    out.push_str("</details>\n\n");
    out
}

fn render_head(content: &CommentContent) -> String {
    let status = content.status.unwrap_or(CommentStatus::Pending);
    let mut out = format!(
        "{PR_COMMENT_MARKER}\n### {}\n\n",
        status.headline(content.pr)
    );
    if let Some(message) = content
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        out.push_str(message);
        out.push_str("\n\n");
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(url) = &content.web_url {
        rows.push(("🌐 Web".into(), format!("<{url}>")));
    }
    if let Some(url) = &content.api_url {
        rows.push(("🔌 API".into(), format!("<{url}>")));
    }
    for (label, url) in &content.urls {
        rows.push((format!("🌐 {label}"), format!("<{url}>")));
    }
    if let Some(sha) = &content.sha {
        rows.push(("📌 Commit".into(), format!("`{sha}`")));
    }
    if let Some(image) = &content.web_image {
        rows.push(("📦 Web image".into(), format!("`{image}`")));
    }
    if let Some(image) = &content.api_image {
        rows.push(("📦 API image".into(), format!("`{image}`")));
    }
    for (key, image) in &content.images {
        rows.push((format!("📦 {key} image"), format!("`{image}`")));
    }
    if let Some(id) = &content.plan_id {
        let label = match status {
            CommentStatus::Success | CommentStatus::Failure => "🧾 Plan applied",
            CommentStatus::Pending | CommentStatus::Destroyed => "🧾 Plan",
        };
        rows.push((label.into(), format!("`{id}`")));
    }
    if let Some(url) = &content.log_url {
        rows.push(("📜 Logs".into(), format!("[workflow run]({url})")));
    }
    if !rows.is_empty() {
        out.push_str("| | |\n|---|---|\n");
        for (label, value) in rows {
            out.push_str(&format!("| {label} | {value} |\n"));
        }
        out.push('\n');
    }
    if !content.failures.is_empty() {
        out.push_str(&render_failures(&content.failures, MAX_FAILURE_CHARS));
    }
    out
}

fn render_foot() -> String {
    "<sub>Maintained by preview-envs: this comment is updated in place on every run.</sub>\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn digest(name: &str, fill: char) -> String {
        format!(
            "ghcr.io/aphiria/{name}@sha256:{}",
            fill.to_string().repeat(64)
        )
    }

    fn plan() -> String {
        "**Plan for `preview-pr-123`**: 3 to create, 1 to update\n\n```diff\n+ Namespace/preview-pr-123\n+ ConfigMap/preview-pr-123/env-vars-pr-123\n~ Deployment/preview-pr-123/web\n-   image: ghcr.io/aphiria/web@sha256:aaaa…\n+   image: ghcr.io/aphiria/web@sha256:bbbb…\n```".to_string()
    }

    fn content(status: CommentStatus) -> CommentContent {
        CommentContent {
            pr: 123,
            status: Some(status),
            web_url: Some("https://123.pr.aphiria.com".into()),
            api_url: Some("https://123.pr-api.aphiria.com".into()),
            sha: Some(SHA.into()),
            web_image: Some(digest("web", 'a')),
            api_image: Some(digest("api", 'b')),
            urls: Vec::new(),
            images: Vec::new(),
            log_url: Some("https://github.com/aphiria/aphiria.com/actions/runs/42".into()),
            message: None,
            plan: Some(plan()),
            plan_id: None,
            failures: Vec::new(),
        }
    }

    #[test]
    fn success() {
        insta::assert_snapshot!(render_comment(&content(CommentStatus::Success)));
    }

    #[test]
    fn failure() {
        let mut failed = content(CommentStatus::Failure);
        failed.message =
            Some("Health check failed: https://123.pr-api.aphiria.com answered 503.".into());
        failed.web_url = None;
        failed.api_url = None;
        insta::assert_snapshot!(render_comment(&failed));
    }

    #[test]
    fn pending() {
        let mut pending = content(CommentStatus::Pending);
        pending.message = Some("The plan is below. A maintainer must approve the `preview` environment before it is applied.".into());
        pending.web_url = None;
        pending.api_url = None;
        insta::assert_snapshot!(render_comment(&pending));
    }

    #[test]
    fn failure_with_digests_shows_them_collapsed_above_the_plan() {
        let mut failed = content(CommentStatus::Failure);
        failed.web_url = None;
        failed.api_url = None;
        failed.failures = crate::comment::parse_failures(
            r#"{"failed": [{"resource": "Deployment preview-pr-123/web", "error": "x",
                "failure": {"reason": "pod web-1 container web: ImagePullBackOff: Back-off pulling image",
                            "events": [{"object": "Pod web-1", "reason": "Failed", "message": "Failed to pull image", "count": 2}],
                            "containers": [{"pod": "web-1", "container": "web", "restarts": 0,
                                            "state": "waiting: ImagePullBackOff",
                                            "logError": "container web in pod web-1 is waiting to start: trying and failing to pull image"}]}}]}"#,
        )
        .expect("document");
        let body = render_comment(&failed);
        let digest = body
            .find("🔎 Why Deployment preview-pr-123/web failed")
            .expect("digest");
        let plan = body.find("📋 Plan").expect("plan");
        assert!(digest < plan, "{body}");
        insta::assert_snapshot!(body);
    }

    #[test]
    fn destroyed_without_plan() {
        let destroyed = CommentContent {
            pr: 123,
            status: Some(CommentStatus::Destroyed),
            message: Some("The PR was closed; namespace `preview-pr-123` and database `aphiria_pr_123` are gone.".into()),
            ..CommentContent::default()
        };
        insta::assert_snapshot!(render_comment(&destroyed));
    }

    #[test]
    fn truncated_plan() {
        let mut big = content(CommentStatus::Pending);
        let mut plan = String::from("```diff\n");
        for i in 0..200 {
            plan.push_str(&format!("+ ConfigMap/preview-pr-123/generated-{i:03}\n"));
        }
        plan.push_str("```");
        big.plan = Some(plan);
        let body = render_comment_with_limit(&big, 1_500);
        assert!(chars(&body) <= 1_500, "{}", chars(&body));
        insta::assert_snapshot!(body);
    }

    #[test]
    fn real_limit_is_respected_with_multibyte_plans() {
        let mut huge = content(CommentStatus::Success);
        let line = "+ ConfigMap/preview-pr-123/αβγ — ✅ unicode line that is fairly long\n";
        huge.plan = Some(format!("```\n{}```", line.repeat(4_000)));
        let body = render_comment(&huge);
        assert!(chars(&body) <= MAX_COMMENT_CHARS);
        assert!(
            chars(&body) > MAX_COMMENT_CHARS - 200,
            "uses the space it has"
        );
        assert!(body.contains("Plan truncated"));
        assert!(body.starts_with(PR_COMMENT_MARKER));
        let fences = body.lines().filter(|l| l.starts_with("```")).count();
        assert_eq!(fences % 2, 0, "code fences stay balanced");
        assert!(body.contains("</details>"));
    }

    fn stacks_plan(resources: usize) -> String {
        let mut plan = String::from(
            "### Preview plan for `preview-pr-123`\n\n| Create | Update | Replace | Delete | Import | Unchanged |\n|---:|---:|---:|---:|---:|---:|\n| 2 | 1 | 0 | 0 | 0 | 9 |\n\n<details><summary>Plan: 2 to create, 1 to update, 9 unchanged.</summary>\n\n```diff\n",
        );
        for i in 0..resources {
            plan.push_str(&format!("+ ConfigMap preview-pr-123/generated-{i:03}\n"));
        }
        plan.push_str("~ Deployment preview-pr-123/web\n~     spec.template.spec.containers[name=web].image: \"ghcr.io/aphiria/web@sha256:aaaa…\" => \"ghcr.io/aphiria/web@sha256:bbbb…\"\n```\n\n</details>\n");
        plan
    }

    #[test]
    fn plan_with_its_own_details_is_not_wrapped_again() {
        let mut with_stacks_plan = content(CommentStatus::Pending);
        with_stacks_plan.plan = Some(stacks_plan(2));
        with_stacks_plan.web_url = None;
        with_stacks_plan.api_url = None;
        let body = render_comment(&with_stacks_plan);
        assert_eq!(body.matches("<details").count(), 1);
        insta::assert_snapshot!(body);
    }

    #[test]
    fn truncating_a_plan_with_its_own_details_closes_it() {
        let mut big = content(CommentStatus::Pending);
        big.plan = Some(stacks_plan(400));
        let body = render_comment_with_limit(&big, 3_000);
        assert!(chars(&body) <= 3_000, "{}", chars(&body));
        assert!(body.contains("Plan truncated"));
        assert_eq!(
            body.matches("<details").count(),
            body.matches("</details>").count()
        );
        let fences = body.lines().filter(|l| l.starts_with("```")).count();
        assert_eq!(fences % 2, 0);
        let closing_fence = body.rfind("```").unwrap_or_default();
        let closing_details = body.rfind("</details>").unwrap_or_default();
        assert!(
            closing_fence < closing_details,
            "fence closes inside the details block"
        );
    }

    #[test]
    fn the_plan_id_is_shown_as_reviewed_then_as_applied() {
        let id = format!("sha256:{}", "c".repeat(64));
        let mut pending = content(CommentStatus::Pending);
        pending.plan_id = Some(id.clone());
        assert!(render_comment(&pending).contains(&format!("| 🧾 Plan | `{id}` |")));
        let mut deployed = content(CommentStatus::Success);
        deployed.plan_id = Some(id.clone());
        let body = render_comment(&deployed);
        assert!(
            body.contains(&format!("| 🧾 Plan applied | `{id}` |")),
            "{body}"
        );
        insta::assert_snapshot!(body);
        assert!(!render_comment(&content(CommentStatus::Success)).contains("🧾"));
    }

    #[test]
    fn another_apps_urls_and_images_get_rows_of_their_own() {
        // The node-redis example: route `app`, images `api` and `worker`.
        let mut other = content(CommentStatus::Success);
        other.web_url = None;
        other.api_url = None;
        other.web_image = None;
        other.urls = vec![("app".into(), "https://123.pr.example.com".into())];
        other.images = vec![("worker".into(), digest("worker", 'c'))];
        other.plan = None;
        insta::assert_snapshot!(render_comment(&other));
    }

    #[test]
    fn small_plans_are_untouched() {
        let body = render_comment(&content(CommentStatus::Success));
        assert!(body.contains(&plan()));
        assert!(!body.contains("truncated"));
    }

    #[test]
    fn fences_close_with_their_own_length() {
        assert_eq!(
            balance_fences("````diff\n+ a ``` b"),
            "````diff\n+ a ``` b\n````"
        );
        assert_eq!(balance_fences("```\na\n```\ntext"), "```\na\n```\ntext");
        assert_eq!(balance_fences("~~~\na"), "~~~\na\n~~~");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(65_536), "65,536");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000_000), "1,000,000");
    }
}
