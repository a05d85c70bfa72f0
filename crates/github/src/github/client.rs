//! HTTP transport for the GitHub API.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RepoSlug;
use super::error::{ErrorAnswer, GithubError, WaitLimits, classify};
use super::types::{
    CollaboratorPermission, CommentBody, CreateDeployment, CreateDeploymentStatus, Deployment,
    DeploymentStatus, ErrorBody, IssueComment, PendingDeployment, PullRequest, ReviewRequest,
};
use crate::env::GithubToken;

/// `Accept` header GitHub recommends.
pub const ACCEPT_GITHUB_JSON: &str = "application/vnd.github+json";
/// The REST API version this client is written against.
pub const API_VERSION: &str = "2022-11-28";
/// `User-Agent` (GitHub rejects requests without one).
pub const USER_AGENT: &str = concat!(
    "preview-envs-cli/",
    env!("CARGO_PKG_VERSION"),
    " (+https://example.invalid/preview-envs)"
);
/// Largest page size GitHub accepts.
pub const PER_PAGE: &str = "100";
/// Guard against endless pagination (100 × 100 items).
const MAX_PAGES: usize = 100;

/// How hard to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, including the first (≥ 1).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt (plus a jitter of up to itself).
    pub initial_backoff: Duration,
    /// Backoff cap (before the jitter).
    pub max_backoff: Duration,
    /// Longest wait accepted for a rate-limit reset or `retry-after`.
    pub max_rate_limit_wait: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The retry schedule shared with the DigitalOcean client: exponential,
    /// capped, with jitter ([`preview_http::Backoff`]).
    pub fn backoff(&self) -> preview_http::Backoff {
        preview_http::Backoff {
            first: self.initial_backoff,
            max: self.max_backoff,
        }
    }

    /// Millisecond-scale delays for tests.
    pub fn fast() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_rate_limit_wait: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A GitHub REST client bound to one API base URL and one token.
#[derive(Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    base: Url,
    token: GithubToken,
    retry: RetryPolicy,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("retry", &self.retry)
            .finish()
    }
}

impl GithubClient {
    /// A client for `api_url`; fails without a token (nothing is sent) or with a URL
    /// that is not http(s), or plain http to anything but loopback.
    pub fn new(
        api_url: &str,
        token: Option<GithubToken>,
        retry: RetryPolicy,
    ) -> Result<Self, GithubError> {
        let token = token.ok_or(GithubError::MissingToken)?;
        let bad = |reason: &str| GithubError::BadApiUrl {
            url: api_url.to_string(),
            reason: reason.to_string(),
        };
        let base =
            preview_http::api_base_url(api_url, "https://api.github.com").map_err(|e| bad(&e))?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(retry.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| bad(&format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            token,
            retry: RetryPolicy {
                max_attempts: retry.max_attempts.max(1),
                ..retry
            },
        })
    }

    /// A client for the same API with another token (e.g. the approver's).
    pub fn with_token(&self, token: GithubToken) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// `base` + percent-encoded path segments.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn repo_url(&self, repo: &RepoSlug, rest: &[&str]) -> Url {
        let mut segments = vec!["repos", repo.owner.as_str(), repo.name.as_str()];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url.path().starts_with(self.base.path())
    }

    /// Sends one request, retrying transport errors, 5xx, and rate limits whose wait is
    /// bounded. Non-idempotent requests (POST) are retried too: GitHub answers 5xx
    /// before doing the work in the common case, and a duplicate comment left by a rare
    /// late failure is removed by the next upsert.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), GithubError> {
        let label = method.as_str().to_string();
        let path = url.path().to_string();
        let request_name = format!("{label} {path}");
        let mut attempt = 0;
        let mut delays = self.retry.backoff().delays();
        loop {
            attempt += 1;
            // This attempt's wait if it fails (the schedule never ends: the
            // attempts are counted here).
            let backoff = delays.next().unwrap_or(self.retry.max_backoff);
            let mut authorization =
                HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
                    .map_err(|_| GithubError::BadToken)?;
            authorization.set_sensitive(true);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, authorization)
                .header(ACCEPT, ACCEPT_GITHUB_JSON)
                .header("X-GitHub-Api-Version", API_VERSION);
            if let Some(body) = body {
                request = request.json(body);
            }
            tracing::debug!(method = %label, %path, attempt, "GitHub API request");
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes.to_vec())),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            let (status, headers, bytes) = match outcome {
                Ok(answer) => answer,
                Err(error) => {
                    let transient = error.is_connect() || error.is_timeout() || error.is_request();
                    let failure = GithubError::Transport {
                        request: request_name.clone(),
                        cause: error_chain(&error),
                    };
                    if transient && attempt < self.retry.max_attempts {
                        let wait = backoff;
                        tracing::warn!(
                            "{failure}; retrying in {} (attempt {attempt}/{})",
                            humantime::format_duration(round_ms(wait)),
                            self.retry.max_attempts
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(give_up(failure, attempt));
                }
            };
            if status.is_success() {
                return Ok((status, headers, bytes));
            }
            let error_body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .map(str::to_string)
            };
            let answer = ErrorAnswer {
                status: status.as_u16(),
                ratelimit_remaining: header("x-ratelimit-remaining").and_then(|v| v.parse().ok()),
                ratelimit_reset: header("x-ratelimit-reset").and_then(|v| v.parse().ok()),
                ratelimit_resource: header("x-ratelimit-resource"),
                retry_after: header("retry-after").and_then(|v| v.parse().ok()),
                message: error_body
                    .message
                    .clone()
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string()),
                errors: error_body.rendered_errors(),
            };
            let limits = WaitLimits {
                backoff,
                max_rate_limit_wait: self.retry.max_rate_limit_wait,
            };
            let classified = classify(&label, &path, &answer, limits, SystemTime::now());
            match classified.retry_after {
                Some(wait) if attempt < self.retry.max_attempts => {
                    tracing::warn!(
                        "{}; retrying in {} (attempt {attempt}/{})",
                        classified.error,
                        humantime::format_duration(round_ms(wait)),
                        self.retry.max_attempts
                    );
                    tokio::time::sleep(wait).await;
                }
                Some(_) => return Err(give_up(classified.error, attempt)),
                None => return Err(classified.error),
            }
        }
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<T, GithubError> {
        let request = format!("{} {}", method.as_str(), url.path());
        let (_, _, bytes) = self.execute(method, url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| GithubError::Decode {
            request,
            cause: e.to_string(),
        })
    }

    fn to_value<B: Serialize>(body: &B) -> serde_json::Value {
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// Every item of a paginated list, following `Link: rel="next"` with `per_page=100`.
    async fn list_all<T: DeserializeOwned>(
        &self,
        mut url: Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, GithubError> {
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
            pairs.append_pair("per_page", PER_PAGE);
        }
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let request = format!("GET {}", url.path());
            let (_, headers, bytes) = self.execute(Method::GET, url.clone(), None).await?;
            let page: Vec<T> = serde_json::from_slice(&bytes).map_err(|e| GithubError::Decode {
                request: request.clone(),
                cause: e.to_string(),
            })?;
            items.extend(page);
            let next = headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let Some(next) = next else {
                return Ok(items);
            };
            let next_url = Url::parse(&next).map_err(|e| GithubError::Decode {
                request: request.clone(),
                cause: format!("bad Link header: {e}"),
            })?;
            if !self.same_origin(&next_url) {
                return Err(GithubError::ForeignLink {
                    request,
                    link: next,
                });
            }
            url = next_url;
        }
        Ok(items)
    }

    /// All comments on an issue or pull request, oldest first.
    pub async fn list_issue_comments(
        &self,
        repo: &RepoSlug,
        issue: u64,
    ) -> Result<Vec<IssueComment>, GithubError> {
        let issue = issue.to_string();
        self.list_all(self.repo_url(repo, &["issues", &issue, "comments"]), &[])
            .await
    }

    /// Creates a comment.
    pub async fn create_issue_comment(
        &self,
        repo: &RepoSlug,
        issue: u64,
        body: &str,
    ) -> Result<IssueComment, GithubError> {
        let issue = issue.to_string();
        let url = self.repo_url(repo, &["issues", &issue, "comments"]);
        self.send_json(
            Method::POST,
            url,
            Some(&Self::to_value(&CommentBody { body })),
        )
        .await
    }

    /// Replaces a comment's body.
    pub async fn update_issue_comment(
        &self,
        repo: &RepoSlug,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, GithubError> {
        let id = comment_id.to_string();
        let url = self.repo_url(repo, &["issues", "comments", &id]);
        self.send_json(
            Method::PATCH,
            url,
            Some(&Self::to_value(&CommentBody { body })),
        )
        .await
    }

    /// Deletes a comment.
    pub async fn delete_issue_comment(
        &self,
        repo: &RepoSlug,
        comment_id: u64,
    ) -> Result<(), GithubError> {
        let id = comment_id.to_string();
        let url = self.repo_url(repo, &["issues", "comments", &id]);
        self.execute(Method::DELETE, url, None).await.map(|_| ())
    }

    /// A pull request.
    pub async fn get_pull(&self, repo: &RepoSlug, number: u64) -> Result<PullRequest, GithubError> {
        let number = number.to_string();
        let url = self.repo_url(repo, &["pulls", &number]);
        self.send_json(Method::GET, url, None).await
    }

    /// A user's permission on the repository.
    pub async fn collaborator_permission(
        &self,
        repo: &RepoSlug,
        login: &str,
    ) -> Result<CollaboratorPermission, GithubError> {
        let url = self.repo_url(repo, &["collaborators", login, "permission"]);
        self.send_json(Method::GET, url, None).await
    }

    /// Environments a workflow run is waiting on.
    pub async fn pending_deployments(
        &self,
        repo: &RepoSlug,
        run_id: u64,
    ) -> Result<Vec<PendingDeployment>, GithubError> {
        let run = run_id.to_string();
        let url = self.repo_url(repo, &["actions", "runs", &run, "pending_deployments"]);
        self.send_json(Method::GET, url, None).await
    }

    /// Approves or rejects pending deployments of a run.
    pub async fn review_pending_deployments(
        &self,
        repo: &RepoSlug,
        run_id: u64,
        review: &ReviewRequest<'_>,
    ) -> Result<Vec<Deployment>, GithubError> {
        let run = run_id.to_string();
        let url = self.repo_url(repo, &["actions", "runs", &run, "pending_deployments"]);
        self.send_json(Method::POST, url, Some(&Self::to_value(review)))
            .await
    }

    /// Creates a deployment. A 202 ("auto-merged") answer is an error: we never merge.
    pub async fn create_deployment(
        &self,
        repo: &RepoSlug,
        request: &CreateDeployment<'_>,
    ) -> Result<Deployment, GithubError> {
        let url = self.repo_url(repo, &["deployments"]);
        let path = url.path().to_string();
        let (status, _, bytes) = self
            .execute(Method::POST, url, Some(&Self::to_value(request)))
            .await?;
        if status != StatusCode::CREATED {
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(GithubError::Status {
                request: format!("POST {path}"),
                status: status.as_u16(),
                message: body.message.unwrap_or_default(),
                hint: " — GitHub did not create a deployment".into(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| GithubError::Decode {
            request: format!("POST {path}"),
            cause: e.to_string(),
        })
    }

    /// Deployments of an environment, newest first.
    pub async fn list_deployments(
        &self,
        repo: &RepoSlug,
        environment: &str,
    ) -> Result<Vec<Deployment>, GithubError> {
        self.list_all(
            self.repo_url(repo, &["deployments"]),
            &[("environment", environment)],
        )
        .await
    }

    /// The newest status of a deployment, if any.
    pub async fn latest_deployment_status(
        &self,
        repo: &RepoSlug,
        deployment_id: u64,
    ) -> Result<Option<DeploymentStatus>, GithubError> {
        let id = deployment_id.to_string();
        let mut url = self.repo_url(repo, &["deployments", &id, "statuses"]);
        url.query_pairs_mut().append_pair("per_page", "1");
        let statuses: Vec<DeploymentStatus> = self.send_json(Method::GET, url, None).await?;
        Ok(statuses.into_iter().next())
    }

    /// Adds a status to a deployment.
    pub async fn create_deployment_status(
        &self,
        repo: &RepoSlug,
        deployment_id: u64,
        status: &CreateDeploymentStatus<'_>,
    ) -> Result<DeploymentStatus, GithubError> {
        let id = deployment_id.to_string();
        let url = self.repo_url(repo, &["deployments", &id, "statuses"]);
        self.send_json(Method::POST, url, Some(&Self::to_value(status)))
            .await
    }
}

fn give_up(error: GithubError, attempts: u32) -> GithubError {
    if attempts > 1 {
        GithubError::GaveUp {
            attempts,
            last: Box::new(error),
        }
    } else {
        error
    }
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// The error and its sources on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = inner.source();
    }
    super::error::one_line(&parts.join(": "))
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = target.strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        let header = "<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>; rel=\"next\", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>; rel=\"last\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2")
        );
        assert_eq!(
            next_link("<https://x/?page=1>; rel=\"prev\", <https://x/?page=1>; rel=\"first\""),
            None
        );
    }

    #[test]
    fn backoff_doubles_and_caps_with_jitter() {
        let policy = RetryPolicy::default();
        let waits: Vec<Duration> = policy.backoff().delays().take(7).collect();
        for (wait, step) in waits.iter().zip([1, 2, 4, 8, 16, 30, 30]) {
            let step = Duration::from_secs(step);
            assert!(*wait >= step && *wait <= step * 2, "{wait:?} for {step:?}");
        }
    }

    #[test]
    fn client_rejects_missing_token_and_unsafe_urls() {
        let token = GithubToken::new("t");
        assert!(matches!(
            GithubClient::new("https://api.github.com", None, RetryPolicy::default()),
            Err(GithubError::MissingToken)
        ));
        for bad in [
            "http://example.com",
            "ftp://x",
            "not a url",
            "https://u:p@h/",
        ] {
            assert!(
                GithubClient::new(bad, token.clone(), RetryPolicy::default()).is_err(),
                "{bad}"
            );
        }
        let client = GithubClient::new(
            "https://ghe.example.com/api/v3",
            token,
            RetryPolicy::default(),
        )
        .expect("valid");
        let slug: RepoSlug = "o/r".parse().expect("slug");
        assert_eq!(
            client
                .repo_url(&slug, &["collaborators", "a b", "permission"])
                .as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/collaborators/a%20b/permission"
        );
        assert!(!format!("{client:?}").contains("\"t\""));
    }
}
