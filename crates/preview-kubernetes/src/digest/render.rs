//! The terminal form of a digest (pure): indented plain lines for stderr and CI logs.

use std::fmt::Write as _;

use super::{ContainerReport, FailureDigest, Termination};

/// `exit code 3 (Error): message`.
pub(crate) fn termination(t: &Termination) -> String {
    let mut text = format!("exit code {}", t.exit_code);
    if let Some(reason) = &t.reason {
        let _ = write!(text, " ({reason})");
    }
    if let Some(message) = &t.message {
        let _ = write!(text, ": {}", one_line(message));
    }
    text
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn container(out: &mut String, c: &ContainerReport) {
    let what = if c.init {
        "init container"
    } else {
        "container"
    };
    let _ = writeln!(
        out,
        "  {what} {}/{} (restarts {}): {}",
        c.pod,
        c.container,
        c.restarts,
        one_line(&c.state)
    );
    if let Some(t) = &c.last_termination {
        let _ = writeln!(out, "    last termination: {}", termination(t));
    }
    if let Some(e) = &c.log_error {
        let _ = writeln!(out, "    log: not available: {}", one_line(e));
    } else if c.log.is_empty() {
        let _ = writeln!(out, "    log: empty");
    } else {
        let _ = writeln!(out, "    log (last {} lines):", c.log.len());
        for line in &c.log {
            let _ = writeln!(out, "      | {line}");
        }
    }
}

/// The digest as indented lines, ending in a newline.
pub fn render_text(d: &FailureDigest) -> String {
    let mut out = format!("failure digest: {}\n", d.resource);
    let _ = writeln!(out, "  reason: {}", one_line(&d.reason));
    if d.events.is_empty() {
        out.push_str("  events: no Warning events\n");
    } else {
        out.push_str("  events (Warning, oldest first):\n");
        for e in &d.events {
            let count = if e.count > 1 {
                format!(" (×{})", e.count)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "    {} {}{count}: {}",
                e.object,
                e.reason,
                one_line(&e.message)
            );
        }
    }
    for c in &d.containers {
        container(&mut out, c);
    }
    for note in &d.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if d.truncated {
        out.push_str("  (shortened to fit; the full logs are in the cluster)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{EventLine, cap, redact::Redactor};

    pub(crate) fn sample() -> FailureDigest {
        FailureDigest {
            resource: "Deployment preview-pr-7/api".into(),
            reason: "pod api-6b7f9d8c4-m5n6p container php-fpm: CrashLoopBackOff: back-off 5m0s \
                     restarting failed container (still failing after 30s)"
                .into(),
            events: vec![
                EventLine {
                    object: "Pod api-6b7f9d8c4-m5n6p".into(),
                    reason: "BackOff".into(),
                    message: "Back-off restarting failed container php-fpm".into(),
                    count: 14,
                    last_seen: Some("2024-05-01T10:05:00Z".into()),
                },
                EventLine {
                    object: "Pod api-6b7f9d8c4-m5n6p".into(),
                    reason: "Unhealthy".into(),
                    message: "Readiness probe failed: HTTP probe failed with statuscode: 500".into(),
                    count: 1,
                    last_seen: None,
                },
            ],
            containers: vec![ContainerReport {
                pod: "api-6b7f9d8c4-m5n6p".into(),
                container: "php-fpm".into(),
                init: false,
                restarts: 5,
                state: "waiting: CrashLoopBackOff: back-off 5m0s restarting failed container".into(),
                last_termination: Some(Termination {
                    reason: Some("Error".into()),
                    exit_code: 255,
                    message: Some("PDOException: could not connect".into()),
                }),
                log: vec![
                    "[01-May-2024 10:04:59] NOTICE: fpm is running".into(),
                    "PHP Fatal error: SQLSTATE[08006] connection to server failed, DB_PASSWORD=pr7-role-password-x9".into(),
                    "dsn pgsql://app_pr_7:pr7-role-password-x9@db.default.svc/aphiria_pr_7".into(),
                ],
                log_error: None,
            }],
            notes: vec!["1 more pods not ready, not shown".into()],
            truncated: false,
        }
    }

    #[test]
    fn renders_redacted_text() {
        let mut d = sample();
        Redactor::new(["pr7-role-password-x9".into()]).digest(&mut d);
        cap::cap(&mut d);
        let text = render_text(&d);
        assert!(!text.contains("pr7-role-password-x9"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_bare_digest() {
        let d = FailureDigest {
            resource: "PersistentVolumeClaim preview-base/data".into(),
            reason: "no storage class".into(),
            containers: vec![ContainerReport {
                pod: "web-1".into(),
                container: "web".into(),
                state: "waiting: ImagePullBackOff".into(),
                log_error: Some("container \"web\" in pod \"web-1\" is waiting to start: trying and failing to pull image".into()),
                ..ContainerReport::default()
            }],
            truncated: true,
            ..FailureDigest::default()
        };
        insta::assert_snapshot!(render_text(&d));
    }
}
