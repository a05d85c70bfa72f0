//! Binding a deploy to the commit its images were built from: the build passes the
//! SHA it built, and the deploy checks that the PR's head is still that commit when
//! it starts and again right before `stacks up` ([`verify_head`]). A newer push starts
//! its own build and deploy, so a moved head stops this one instead of deploying
//! images of one commit under the name of another.

use serde::Serialize;

use crate::github::{GithubClient, GithubError, RepoSlug};

/// A passed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadCheck {
    /// Repository.
    pub repo: String,
    /// PR number.
    pub pr: u64,
    /// The built commit, which is also the PR head.
    pub sha: String,
    /// `open`.
    pub state: String,
}

/// Why a deploy must stop.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// API error: the head could not be checked, so nothing is deployed.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// The PR head is another commit.
    #[error(
        "verify-head: the head of pull request {repo}#{pr} is {head_sha}, but the images were built from {built_sha}; refusing to deploy them (the newer push starts its own build and deploy)"
    )]
    Moved {
        /// Repository.
        repo: String,
        /// PR.
        pr: u64,
        /// The commit the images were built from.
        built_sha: String,
        /// The PR head now.
        head_sha: String,
    },
    /// The PR is closed or merged.
    #[error(
        "verify-head: pull request {repo}#{pr} is {state}; refusing to deploy a preview for it"
    )]
    NotOpen {
        /// Repository.
        repo: String,
        /// PR.
        pr: u64,
        /// `closed` or `merged`.
        state: String,
    },
}

/// Checks that PR `pr` is open and its head is `built_sha` (a full SHA, compared
/// case-insensitively). One `GET pulls/{n}`.
pub async fn verify_head(
    client: &GithubClient,
    repo: &RepoSlug,
    pr: u64,
    built_sha: &str,
) -> Result<HeadCheck, HeadError> {
    let pull = client.get_pull(repo, pr).await?;
    if pull.state != "open" {
        let state = if pull.merged == Some(true) {
            "merged".to_string()
        } else {
            pull.state
        };
        return Err(HeadError::NotOpen {
            repo: repo.to_string(),
            pr,
            state,
        });
    }
    if !pull.head.sha.eq_ignore_ascii_case(built_sha) {
        return Err(HeadError::Moved {
            repo: repo.to_string(),
            pr,
            built_sha: built_sha.to_ascii_lowercase(),
            head_sha: pull.head.sha,
        });
    }
    Ok(HeadCheck {
        repo: repo.to_string(),
        pr,
        sha: built_sha.to_ascii_lowercase(),
        state: pull.state,
    })
}
