//! GitHub API errors as one-line messages that say what to check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An error talking to the GitHub API. Every variant displays as one line naming the
/// request, what GitHub answered and what to check. Tokens never appear in it.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// `GITHUB_TOKEN` is not set; nothing was sent.
    #[error(
        "GITHUB_TOKEN is not set: export a token with the permissions this command needs (in GitHub Actions: `env: GITHUB_TOKEN: ${{{{ github.token }}}}`); no request was sent"
    )]
    MissingToken,
    /// The token cannot be sent as a header (e.g. a stray newline in the secret).
    #[error(
        "GITHUB_TOKEN contains characters that cannot be sent in an HTTP header (a newline?); check the secret's value; no request was sent"
    )]
    BadToken,
    /// `GITHUB_API_URL` is unusable.
    #[error("GITHUB_API_URL {url:?} is not usable: {reason}")]
    BadApiUrl {
        /// The configured value.
        url: String,
        /// Why.
        reason: String,
    },
    /// 401.
    #[error(
        "{request}: 401 Unauthorized ({message}) — the token in GITHUB_TOKEN is invalid or expired; check the secret's value and expiry"
    )]
    Unauthorized {
        /// `METHOD /path`.
        request: String,
        /// GitHub's message.
        message: String,
    },
    /// 403/429 with `x-ratelimit-remaining: 0`.
    #[error(
        "{request}: primary rate limit exhausted (x-ratelimit-remaining: 0, resource {resource}) — rate limited until {reset}; wait, or use a token with its own quota (e.g. a GitHub App installation token)"
    )]
    RateLimited {
        /// `METHOD /path`.
        request: String,
        /// RFC 3339 reset time, or `unknown`.
        reset: String,
        /// `x-ratelimit-resource`.
        resource: String,
    },
    /// 403/429 secondary rate limit.
    #[error(
        "{request}: secondary rate limit ({message}) — retry after {retry_after_seconds} s; run fewer jobs against the API at once"
    )]
    SecondaryRateLimited {
        /// `METHOD /path`.
        request: String,
        /// GitHub's message.
        message: String,
        /// Suggested wait.
        retry_after_seconds: u64,
    },
    /// 403 without rate-limit signals.
    #[error(
        "{request}: 403 Forbidden ({message}) — the token lacks permission `{permission}` for this endpoint; grant it in the workflow's `permissions:` (or the token's scopes)"
    )]
    Forbidden {
        /// `METHOD /path`.
        request: String,
        /// GitHub's message.
        message: String,
        /// The permission this endpoint needs.
        permission: &'static str,
    },
    /// 404.
    #[error(
        "{request}: 404 Not Found — the {what} does not exist, or the token cannot see it; check --repo, the number/id, and the token's repository access"
    )]
    NotFound {
        /// `METHOD /path`.
        request: String,
        /// What was looked up.
        what: &'static str,
    },
    /// 422.
    #[error("{request}: 422 validation failed: {message}{details}")]
    Validation {
        /// `METHOD /path`.
        request: String,
        /// GitHub's `message`.
        message: String,
        /// `; errors: …` rendered from GitHub's `errors`, or empty.
        details: String,
    },
    /// Any other status (5xx after retries, 409, …).
    #[error("{request}: {status} {message}{hint}")]
    Status {
        /// `METHOD /path`.
        request: String,
        /// HTTP status code.
        status: u16,
        /// GitHub's message.
        message: String,
        /// Extra advice, or empty.
        hint: String,
    },
    /// The request could not be sent or the answer not read.
    #[error(
        "{request}: cannot reach the GitHub API ({cause}) — check GITHUB_API_URL and network access"
    )]
    Transport {
        /// `METHOD /path`.
        request: String,
        /// The error chain on one line.
        cause: String,
    },
    /// The answer was not what the API description promises.
    #[error("{request}: unexpected response body ({cause})")]
    Decode {
        /// `METHOD /path`.
        request: String,
        /// Parser message.
        cause: String,
    },
    /// A `Link: rel="next"` pointed somewhere else; the token is never sent there.
    #[error(
        "{request}: pagination link leaves the API host ({link}); refusing to send the token there"
    )]
    ForeignLink {
        /// `METHOD /path`.
        request: String,
        /// The link.
        link: String,
    },
    /// Retries ran out.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<GithubError>,
    },
}

impl GithubError {
    /// The HTTP status behind the error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::RateLimited { .. }
            | Self::SecondaryRateLimited { .. }
            | Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Validation { .. } => Some(422),
            Self::Status { status, .. } => Some(*status),
            Self::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// What the client should do after a non-success answer.
#[derive(Debug)]
pub struct Classified {
    /// The error to report if we stop here.
    pub error: GithubError,
    /// Wait this long and retry, if retrying makes sense.
    pub retry_after: Option<Duration>,
}

/// The parts of an error answer that matter for classification.
#[derive(Debug, Clone, Default)]
pub struct ErrorAnswer {
    /// HTTP status.
    pub status: u16,
    /// `x-ratelimit-remaining`.
    pub ratelimit_remaining: Option<u64>,
    /// `x-ratelimit-reset` (Unix seconds).
    pub ratelimit_reset: Option<u64>,
    /// `x-ratelimit-resource`.
    pub ratelimit_resource: Option<String>,
    /// `retry-after` (seconds).
    pub retry_after: Option<u64>,
    /// GitHub's `message`.
    pub message: String,
    /// GitHub's `errors`, rendered.
    pub errors: Vec<String>,
}

/// Limits that decide whether waiting is worth it.
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    /// Backoff for this attempt (5xx, bare 429).
    pub backoff: Duration,
    /// Longest wait accepted for a rate limit (primary or secondary).
    pub max_rate_limit_wait: Duration,
}

/// Decides what a non-success answer means. Pure, so every branch is unit-tested.
pub fn classify(
    method: &str,
    path: &str,
    answer: &ErrorAnswer,
    limits: WaitLimits,
    now: SystemTime,
) -> Classified {
    let request = format!("{method} {path}");
    let message = one_line(&answer.message);
    let status = answer.status;
    let rate_limit_status = status == 403 || status == 429;

    if status == 401 {
        return stop(GithubError::Unauthorized { request, message });
    }
    if rate_limit_status && answer.ratelimit_remaining == Some(0) {
        let reset_at = answer
            .ratelimit_reset
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds));
        let wait = reset_at.map(|reset| {
            reset.duration_since(now).unwrap_or(Duration::ZERO) + Duration::from_secs(1)
        });
        let error = GithubError::RateLimited {
            request,
            reset: reset_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| "unknown".into()),
            resource: answer
                .ratelimit_resource
                .clone()
                .unwrap_or_else(|| "core".into()),
        };
        let retry_after = wait
            .filter(|w| *w <= limits.max_rate_limit_wait)
            .map(|w| w.max(limits.backoff).min(limits.max_rate_limit_wait));
        return Classified { error, retry_after };
    }
    let secondary_text = message
        .to_ascii_lowercase()
        .contains("secondary rate limit");
    if rate_limit_status && (answer.retry_after.is_some() || secondary_text) {
        // GitHub asks for at least a minute when it gives no retry-after.
        let seconds = answer.retry_after.unwrap_or(60);
        let wait = Duration::from_secs(seconds);
        let error = GithubError::SecondaryRateLimited {
            request,
            message,
            retry_after_seconds: seconds,
        };
        let retry_after = (wait <= limits.max_rate_limit_wait)
            .then_some(wait.max(limits.backoff.min(limits.max_rate_limit_wait)));
        return Classified { error, retry_after };
    }
    if status == 403 {
        return stop(GithubError::Forbidden {
            request,
            message,
            permission: required_permission(method, path),
        });
    }
    if status == 404 {
        return stop(GithubError::NotFound {
            request,
            what: what_is_missing(path),
        });
    }
    if status == 422 {
        let details = if answer.errors.is_empty() {
            String::new()
        } else {
            format!("; errors: {}", answer.errors.join(", "))
        };
        return stop(GithubError::Validation {
            request,
            message,
            details,
        });
    }
    let retryable = status >= 500 || status == 429;
    let hint = if status >= 500 {
        " — GitHub may be degraded (https://www.githubstatus.com); re-run the job later".to_string()
    } else if status == 409 {
        " — conflict: the commit's required status checks or a merge blocked it".to_string()
    } else {
        String::new()
    };
    let error = GithubError::Status {
        request,
        status,
        message,
        hint,
    };
    let retry_after = retryable.then(|| {
        answer
            .retry_after
            .map(Duration::from_secs)
            .filter(|w| *w <= limits.max_rate_limit_wait)
            .unwrap_or(limits.backoff)
    });
    Classified { error, retry_after }
}

fn stop(error: GithubError) -> Classified {
    Classified {
        error,
        retry_after: None,
    }
}

/// Collapses whitespace so a message stays on one line.
pub fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "no message".into()
    } else {
        joined
    }
}

/// The token permission an endpoint needs (GitHub Actions `permissions:` names).
pub fn required_permission(method: &str, path: &str) -> &'static str {
    let write = method != "GET";
    if path.contains("/pending_deployments") {
        if write {
            "deployments: write, as a required reviewer of the environment (GITHUB_TOKEN cannot approve; set PREVIEW_APPROVER_TOKEN)"
        } else {
            "actions: read"
        }
    } else if path.contains("/deployments") {
        if write {
            "deployments: write"
        } else {
            "deployments: read"
        }
    } else if path.contains("/issues/") {
        if write {
            "pull-requests: write (or issues: write)"
        } else {
            "pull-requests: read (or issues: read)"
        }
    } else if path.contains("/collaborators/") {
        "metadata: read (and visibility of the repository's collaborators)"
    } else if path.contains("/pulls/") {
        "pull-requests: read"
    } else {
        "access to this repository"
    }
}

fn what_is_missing(path: &str) -> &'static str {
    if path.contains("/issues/comments/") {
        "repository or comment"
    } else if path.contains("/issues/") {
        "repository or pull request"
    } else if path.contains("/statuses") {
        "repository or deployment id"
    } else if path.contains("/deployments") {
        "repository"
    } else if path.contains("/collaborators/") {
        "repository or user"
    } else if path.contains("/pending_deployments") {
        "repository or workflow run id"
    } else if path.contains("/pulls/") {
        "repository or pull request"
    } else {
        "repository or resource"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> WaitLimits {
        WaitLimits {
            backoff: Duration::from_secs(2),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }

    fn answer(status: u16, message: &str) -> ErrorAnswer {
        ErrorAnswer {
            status,
            message: message.into(),
            ..ErrorAnswer::default()
        }
    }

    #[test]
    fn unauthorized_is_final() {
        let c = classify(
            "GET",
            "/repos/a/b/pulls/1",
            &answer(401, "Bad credentials"),
            limits(),
            SystemTime::now(),
        );
        assert!(c.retry_after.is_none());
        assert_eq!(
            c.error.to_string(),
            "GET /repos/a/b/pulls/1: 401 Unauthorized (Bad credentials) — the token in GITHUB_TOKEN is invalid or expired; check the secret's value and expiry"
        );
    }

    #[test]
    fn primary_rate_limit_waits_until_reset_when_short() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut a = answer(403, "API rate limit exceeded");
        a.ratelimit_remaining = Some(0);
        a.ratelimit_reset = Some(1_010);
        let c = classify("GET", "/x", &a, limits(), now);
        assert_eq!(c.retry_after, Some(Duration::from_secs(11)));
        assert!(
            c.error
                .to_string()
                .contains("rate limited until 1970-01-01T00:16:50Z")
        );

        a.ratelimit_reset = Some(5_000);
        let c = classify("GET", "/x", &a, limits(), now);
        assert_eq!(c.retry_after, None, "an hour-long wait is not worth it");
    }

    #[test]
    fn secondary_rate_limit_and_plain_forbidden() {
        let mut a = answer(403, "You have exceeded a secondary rate limit");
        a.retry_after = Some(3);
        let c = classify("POST", "/x", &a, limits(), SystemTime::now());
        assert_eq!(c.retry_after, Some(Duration::from_secs(3)));

        let c = classify(
            "POST",
            "/repos/a/b/issues/3/comments",
            &answer(403, "Resource not accessible by integration"),
            limits(),
            SystemTime::now(),
        );
        assert!(c.retry_after.is_none());
        assert!(
            c.error
                .to_string()
                .contains("lacks permission `pull-requests: write (or issues: write)`")
        );
    }

    #[test]
    fn not_found_validation_and_server_errors() {
        let c = classify(
            "GET",
            "/repos/a/b/pulls/9",
            &answer(404, "Not Found"),
            limits(),
            SystemTime::now(),
        );
        assert!(
            c.error
                .to_string()
                .contains("repository or pull request does not exist")
        );

        let mut a = answer(422, "Validation Failed");
        a.errors = vec!["IssueComment.body custom: body is too long".into()];
        let c = classify("PATCH", "/x", &a, limits(), SystemTime::now());
        assert_eq!(
            c.error.to_string(),
            "PATCH /x: 422 validation failed: Validation Failed; errors: IssueComment.body custom: body is too long"
        );

        let c = classify(
            "GET",
            "/x",
            &answer(502, "Bad\nGateway"),
            limits(),
            SystemTime::now(),
        );
        assert_eq!(c.retry_after, Some(Duration::from_secs(2)));
        assert!(
            c.error
                .to_string()
                .starts_with("GET /x: 502 Bad Gateway — GitHub may be degraded")
        );
    }
}
