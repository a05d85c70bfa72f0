//! Bounds on a digest's size (pure): a failure is explained in a screenful,
//! and a PR comment has room for several.

use super::FailureDigest;

/// Log lines kept per container (the last ones).
pub const LOG_LINES_PER_CONTAINER: usize = 40;
/// Characters kept of one log line or message.
pub const LINE_CHARS: usize = 300;
/// Bytes of text in one digest, all fields together.
pub const TOTAL_BYTES: usize = 8 * 1024;

/// Limits for [`cap_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Log lines kept per container.
    pub lines_per_container: usize,
    /// Characters kept of one line.
    pub line_chars: usize,
    /// Bytes of text in all.
    pub total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lines_per_container: LOG_LINES_PER_CONTAINER,
            line_chars: LINE_CHARS,
            total_bytes: TOTAL_BYTES,
        }
    }
}

/// [`cap_with`] the default [`Limits`].
pub fn cap(digest: &mut FailureDigest) {
    cap_with(digest, Limits::default());
}

/// Cuts `digest` to `limits`: long lines are shortened (`…`), each
/// container's log keeps its last lines; while the whole is over the byte
/// budget, the oldest log line of the longest log goes, then the oldest
/// event. Sets [`FailureDigest::truncated`] when anything was cut.
pub fn cap_with(digest: &mut FailureDigest, limits: Limits) {
    let shorten = |s: &mut String| -> bool {
        match s.char_indices().nth(limits.line_chars) {
            Some((at, _)) => {
                s.truncate(at);
                s.push('…');
                true
            }
            None => false,
        }
    };
    let mut cut = shorten(&mut digest.reason);
    for e in &mut digest.events {
        cut |= shorten(&mut e.message);
    }
    for c in &mut digest.containers {
        cut |= shorten(&mut c.state);
        if let Some(m) = c.last_termination.as_mut().and_then(|t| t.message.as_mut()) {
            cut |= shorten(m);
        }
        for line in &mut c.log {
            cut |= shorten(line);
        }
        let extra = c.log.len().saturating_sub(limits.lines_per_container);
        if extra > 0 {
            c.log.drain(..extra);
            cut = true;
        }
    }
    while size(digest) > limits.total_bytes {
        let longest = digest
            .containers
            .iter_mut()
            .filter(|c| !c.log.is_empty())
            .max_by_key(|c| c.log.len());
        if let Some(c) = longest {
            c.log.remove(0);
        } else if digest.events.len() > 1 {
            digest.events.remove(0);
        } else if digest.containers.len() > 1 {
            digest.containers.pop();
        } else {
            break;
        }
        cut = true;
    }
    digest.truncated |= cut;
}

/// Bytes of text in the digest.
pub fn size(d: &FailureDigest) -> usize {
    let events: usize = d
        .events
        .iter()
        .map(|e| e.object.len() + e.reason.len() + e.message.len() + 16)
        .sum();
    let containers: usize = d
        .containers
        .iter()
        .map(|c| {
            c.pod.len()
                + c.container.len()
                + c.state.len()
                + c.log.iter().map(|l| l.len() + 1).sum::<usize>()
                + c.log_error.as_ref().map_or(0, String::len)
                + c.last_termination.as_ref().map_or(0, |t| {
                    t.reason.as_ref().map_or(0, String::len)
                        + t.message.as_ref().map_or(0, String::len)
                        + 8
                })
        })
        .sum();
    d.resource.len()
        + d.reason.len()
        + events
        + containers
        + d.notes.iter().map(String::len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{ContainerReport, EventLine};

    fn digest(lines: usize, events: usize) -> FailureDigest {
        FailureDigest {
            resource: "Deployment n/web".into(),
            reason: "failed".into(),
            events: (0..events)
                .map(|i| EventLine {
                    object: "Pod web-1".into(),
                    reason: "BackOff".into(),
                    message: format!("event {i}"),
                    count: 1,
                    last_seen: None,
                })
                .collect(),
            containers: vec![ContainerReport {
                pod: "web-1".into(),
                container: "web".into(),
                log: (0..lines)
                    .map(|i| format!("line {i:04} {}", "x".repeat(80)))
                    .collect(),
                ..ContainerReport::default()
            }],
            ..FailureDigest::default()
        }
    }

    #[test]
    fn keeps_the_last_lines_per_container() {
        let mut d = digest(100, 1);
        cap(&mut d);
        assert_eq!(d.containers[0].log.len(), LOG_LINES_PER_CONTAINER);
        assert!(d.containers[0].log[0].starts_with("line 0060"));
        assert!(d.truncated);
    }

    #[test]
    fn fits_the_byte_budget() {
        let mut d = digest(40, 60);
        cap_with(
            &mut d,
            Limits {
                total_bytes: 2048,
                ..Limits::default()
            },
        );
        assert!(size(&d) <= 2048, "{}", size(&d));
        assert!(d.truncated);
        // The newest log line and event survive.
        assert!(
            d.containers[0]
                .log
                .last()
                .is_none_or(|l| l.starts_with("line 0039"))
        );
        assert_eq!(
            d.events.last().map(|e| e.message.as_str()),
            Some("event 59")
        );
    }

    #[test]
    fn long_lines_are_shortened_and_small_digests_untouched() {
        let mut d = digest(1, 1);
        d.containers[0].log[0] = "y".repeat(1000);
        cap(&mut d);
        assert_eq!(d.containers[0].log[0].chars().count(), LINE_CHARS + 1);
        let mut small = digest(2, 2);
        cap(&mut small);
        assert!(!small.truncated);
        assert_eq!(small.containers[0].log.len(), 2);
    }
}
