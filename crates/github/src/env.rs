//! Everything read from the process environment, read once in `main` and passed down
//! (argument parsing has no side effects; tests build an [`Environment`] by hand).

use std::fmt;

use crate::github::RetryPolicy;

/// Token for the GitHub API (`GITHUB_TOKEN`).
pub const TOKEN_VAR: &str = "GITHUB_TOKEN";
/// Optional token of a required reviewer, used only to approve pending deployments.
pub const APPROVER_TOKEN_VAR: &str = "PREVIEW_APPROVER_TOKEN";
/// API base URL (`https://api.github.com` unless set; GitHub Enterprise or the test fake).
pub const API_URL_VAR: &str = "GITHUB_API_URL";
/// Web base URL, for links to workflow runs (`https://github.com` unless set).
pub const SERVER_URL_VAR: &str = "GITHUB_SERVER_URL";

/// Default API base URL.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Default web base URL.
pub const DEFAULT_SERVER_URL: &str = "https://github.com";

/// A GitHub token. Its `Debug` is redacted and it has no `Display`, so it cannot end up
/// in output, errors or logs by accident; the crate-private `expose` is the one way out,
/// used only to build the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubToken(String);

impl GithubToken {
    /// Wraps a token; `None` for an empty or blank value.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_string()))
    }

    /// The secret value. Only for the `Authorization` header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GithubToken(***)")
    }
}

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `GITHUB_TOKEN`.
    pub token: Option<GithubToken>,
    /// `PREVIEW_APPROVER_TOKEN` (falls back to `GITHUB_TOKEN` when unset).
    pub approver_token: Option<GithubToken>,
    /// `GITHUB_API_URL`.
    pub api_url: String,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// Retry policy for GitHub API calls.
    pub retry: RetryPolicy,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        Self {
            token: var(TOKEN_VAR).and_then(GithubToken::new),
            approver_token: var(APPROVER_TOKEN_VAR).and_then(GithubToken::new),
            api_url: non_empty(API_URL_VAR).unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            server_url: non_empty(SERVER_URL_VAR).unwrap_or_else(|| DEFAULT_SERVER_URL.to_string()),
            retry: RetryPolicy::default(),
        }
    }

    /// An environment pointing at `api_url` with `token` (for tests and embedding).
    pub fn for_api(api_url: &str, token: Option<&str>) -> Self {
        Self {
            token: token.and_then(GithubToken::new),
            approver_token: None,
            api_url: api_url.to_string(),
            server_url: DEFAULT_SERVER_URL.to_string(),
            retry: RetryPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let token = GithubToken::new("ghp_canary123").expect("token");
        assert_eq!(format!("{token:?}"), "GithubToken(***)");
        let env = Environment {
            token: Some(token.clone()),
            approver_token: Some(token),
            ..Environment::for_api("http://127.0.0.1:1", None)
        };
        assert!(!format!("{env:?}").contains("canary"));
        assert!(GithubToken::new("  ").is_none());
    }
}
