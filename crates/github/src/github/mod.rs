//! A small GitHub REST client: typed requests and responses, pagination, retries with
//! backoff on 5xx and rate limits, one-line errors, and a token that is never printed.

mod client;
mod error;
mod types;

pub(crate) use client::error_chain;
pub use client::{GithubClient, RetryPolicy, next_link};
pub use error::{
    Classified, ErrorAnswer, GithubError, WaitLimits, classify, one_line, required_permission,
};
pub use types::*;

use std::fmt;
use std::str::FromStr;

/// `owner/repo`, validated so it can only ever name one repository path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSlug {
    /// Owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub name: String,
}

impl FromStr for RepoSlug {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match text.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok(Self {
                owner: owner.to_string(),
                name: name.to_string(),
            }),
            _ => Err(format!(
                "{text:?} is not OWNER/REPO (letters, digits, '-', '_' and '.' only)"
            )),
        }
    }
}

impl fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_slug_parsing() {
        let slug: RepoSlug = "aphiria/aphiria.com".parse().expect("valid");
        assert_eq!(slug.to_string(), "aphiria/aphiria.com");
        for bad in ["", "a", "a/", "/b", "a/b/c", "a/..", "a b/c", "a/b?x=1"] {
            assert!(bad.parse::<RepoSlug>().is_err(), "{bad}");
        }
    }
}
