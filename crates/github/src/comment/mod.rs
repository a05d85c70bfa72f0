//! One comment per pull request, found by a hidden marker and updated in place.

mod body;
mod failure;
mod links;

pub use links::{Labelled, Links, image_flag, url_flag};

pub use failure::{FailedStep, MAX_FAILURE_CHARS, parse_failures, render_failures};

pub use body::{
    CommentContent, CommentStatus, MAX_COMMENT_CHARS, PR_COMMENT_MARKER, render_comment,
    render_comment_with_limit,
};

use serde::Serialize;

use crate::github::{GithubClient, GithubError, IssueComment, RepoSlug};

/// The author the marker comments are expected from when `GITHUB_TOKEN` posts them.
pub const DEFAULT_COMMENT_AUTHOR: &str = "github-actions[bot]";

/// Which comments count as ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorFilter {
    /// Only comments by this login (case-insensitive). Anyone can paste the marker into a
    /// comment; this keeps us from editing or deleting other people's comments.
    Login(String),
    /// Any author (for tokens whose login is not known in advance).
    Any,
}

impl AuthorFilter {
    /// `*` means any author; anything else is a login.
    pub fn parse(text: &str) -> Self {
        if text.trim() == "*" {
            Self::Any
        } else {
            Self::Login(text.trim().to_string())
        }
    }

    fn accepts(&self, comment: &IssueComment) -> bool {
        match self {
            Self::Any => true,
            Self::Login(login) => comment
                .user
                .as_ref()
                .is_some_and(|user| user.login.eq_ignore_ascii_case(login)),
        }
    }
}

/// Which existing comment to keep and which duplicates to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The newest marker comment (to update), if any.
    pub keep: Option<IssueComment>,
    /// Older marker comments (left by an earlier bug or race) to delete.
    pub delete: Vec<u64>,
}

/// Picks our comments: body starting with `marker`, written by an accepted author.
/// The newest (by `created_at`, then id) is kept; the others are duplicates. Pure.
pub fn select_comments(
    comments: &[IssueComment],
    marker: &str,
    author: &AuthorFilter,
) -> Selection {
    let mut ours: Vec<&IssueComment> = comments
        .iter()
        .filter(|c| {
            c.body
                .as_deref()
                .is_some_and(|body| body.trim_start().starts_with(marker))
        })
        .filter(|c| author.accepts(c))
        .collect();
    ours.sort_by(|a, b| (a.created_at.as_str(), a.id).cmp(&(b.created_at.as_str(), b.id)));
    let keep = ours.pop().cloned();
    Selection {
        keep,
        delete: ours.iter().map(|c| c.id).collect(),
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsertAction {
    /// No marker comment existed; one was created.
    Created,
    /// The existing comment was edited.
    Updated,
    /// The existing comment already had this body; nothing was sent.
    Unchanged,
    /// No marker comment existed and creating one was not wanted (`--if-exists`).
    Skipped,
}

/// Result of [`upsert_comment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpsertOutcome {
    /// What happened.
    pub action: UpsertAction,
    /// The comment's id (none when skipped).
    pub comment_id: Option<u64>,
    /// Link to it (none when skipped).
    pub url: Option<String>,
    /// Duplicates deleted.
    pub deleted: Vec<u64>,
}

/// Whether a missing comment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    /// Create it (the normal case).
    Create,
    /// Do nothing (e.g. cleanup of a PR that never had a preview).
    Skip,
}

/// Creates or updates the one comment carrying `marker` on `issue`, then deletes any
/// older duplicates. `body` must start with `marker`.
pub async fn upsert_comment(
    client: &GithubClient,
    repo: &RepoSlug,
    issue: u64,
    marker: &str,
    author: &AuthorFilter,
    body: &str,
) -> Result<UpsertOutcome, GithubError> {
    upsert_comment_with(
        client,
        repo,
        issue,
        marker,
        author,
        body,
        WhenMissing::Create,
    )
    .await
}

/// [`upsert_comment`] with a choice for when no comment exists yet.
pub async fn upsert_comment_with(
    client: &GithubClient,
    repo: &RepoSlug,
    issue: u64,
    marker: &str,
    author: &AuthorFilter,
    body: &str,
    when_missing: WhenMissing,
) -> Result<UpsertOutcome, GithubError> {
    let comments = client.list_issue_comments(repo, issue).await?;
    let selection = select_comments(&comments, marker, author);
    let (action, comment) = match selection.keep {
        None if when_missing == WhenMissing::Skip => {
            return Ok(UpsertOutcome {
                action: UpsertAction::Skipped,
                comment_id: None,
                url: None,
                deleted: Vec::new(),
            });
        }
        None => (
            UpsertAction::Created,
            client.create_issue_comment(repo, issue, body).await?,
        ),
        Some(existing) if existing.body.as_deref() == Some(body) => {
            (UpsertAction::Unchanged, existing)
        }
        Some(existing) => (
            UpsertAction::Updated,
            client.update_issue_comment(repo, existing.id, body).await?,
        ),
    };
    let mut deleted = Vec::new();
    for id in selection.delete {
        match client.delete_issue_comment(repo, id).await {
            Ok(()) => deleted.push(id),
            // Deleted concurrently by another run: the goal is reached.
            Err(GithubError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(UpsertOutcome {
        action,
        comment_id: Some(comment.id),
        url: Some(comment.html_url),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::User;

    fn comment(id: u64, login: &str, created: &str, body: &str) -> IssueComment {
        IssueComment {
            id,
            body: Some(body.into()),
            user: Some(User {
                login: login.into(),
                kind: None,
            }),
            created_at: created.into(),
            updated_at: created.into(),
            html_url: format!("https://github.com/o/r/pull/1#issuecomment-{id}"),
        }
    }

    #[test]
    fn keeps_newest_and_ignores_strangers() {
        let bot = "github-actions[bot]";
        let comments = vec![
            comment(
                5,
                bot,
                "2026-01-01T00:00:05Z",
                &format!("{PR_COMMENT_MARKER}\nold"),
            ),
            comment(
                3,
                bot,
                "2026-01-01T00:00:09Z",
                &format!("{PR_COMMENT_MARKER}\nnewest"),
            ),
            comment(
                7,
                "mallory",
                "2026-01-01T00:00:10Z",
                &format!("{PR_COMMENT_MARKER}\nfake"),
            ),
            comment(8, bot, "2026-01-01T00:00:11Z", "unrelated bot comment"),
            comment(
                9,
                bot,
                "2026-01-01T00:00:12Z",
                &format!("quoting {PR_COMMENT_MARKER}"),
            ),
        ];
        let selection = select_comments(&comments, PR_COMMENT_MARKER, &AuthorFilter::parse(bot));
        assert_eq!(selection.keep.map(|c| c.id), Some(3));
        assert_eq!(selection.delete, vec![5]);

        let any = select_comments(&comments, PR_COMMENT_MARKER, &AuthorFilter::parse("*"));
        assert_eq!(any.keep.map(|c| c.id), Some(7));
        assert_eq!(any.delete, vec![5, 3]);
    }

    #[test]
    fn same_timestamp_falls_back_to_id() {
        let comments = vec![
            comment(10, "a", "2026-01-01T00:00:00Z", PR_COMMENT_MARKER),
            comment(11, "a", "2026-01-01T00:00:00Z", PR_COMMENT_MARKER),
        ];
        let selection = select_comments(&comments, PR_COMMENT_MARKER, &AuthorFilter::Any);
        assert_eq!(selection.keep.map(|c| c.id), Some(11));
        assert_eq!(selection.delete, vec![10]);
    }
}
