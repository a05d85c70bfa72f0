//! Typed request and response bodies (only the fields we use; unknown fields ignored).

use serde::{Deserialize, Serialize};

/// `simple-user` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    /// Login.
    pub login: String,
    /// `User`, `Bot`, `Organization`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `issue-comment` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct IssueComment {
    /// Comment id.
    pub id: u64,
    /// Markdown body.
    #[serde(default)]
    pub body: Option<String>,
    /// Author (null for deleted users).
    pub user: Option<User>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
    /// Link to the comment.
    pub html_url: String,
}

/// Body of create/update comment.
#[derive(Debug, Clone, Serialize)]
pub struct CommentBody<'a> {
    /// Markdown body.
    pub body: &'a str,
}

/// `pull-request` (subset).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullRequest {
    /// Number.
    pub number: u64,
    /// `open` / `closed`.
    pub state: String,
    /// Author.
    pub user: User,
    /// Head branch info.
    pub head: PullHead,
    /// Base branch info.
    pub base: PullBase,
    /// Whether it was merged (`closed` + `merged` = merged; `closed` alone = closed
    /// without merging).
    #[serde(default)]
    pub merged: Option<bool>,
}

/// `pull-request.head` (subset). The branch name is untrusted and never read.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullHead {
    /// Head commit.
    pub sha: String,
    /// The repository the head branch lives in; `null` when a fork was deleted.
    #[serde(default)]
    pub repo: Option<RepoRef>,
}

/// `pull-request.base` (subset).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullBase {
    /// The repository the PR targets.
    #[serde(default)]
    pub repo: Option<RepoRef>,
}

/// `repository` (subset): enough to tell a fork from the base repository.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RepoRef {
    /// Repository id (stable across renames).
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
}

/// `repository-collaborator-permission`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct CollaboratorPermission {
    /// Legacy permission: `admin`, `write`, `read`, `none` (maintain shows as `write`).
    pub permission: String,
    /// Role: `admin`, `maintain`, `write`, `triage`, `read` or a custom role name.
    pub role_name: String,
    /// The collaborator.
    pub user: Option<Collaborator>,
}

/// `nullable-collaborator` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Collaborator {
    /// Login.
    pub login: String,
    /// Permission flags.
    #[serde(default)]
    pub permissions: Option<PermissionFlags>,
}

/// Permission flags of a collaborator.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub struct PermissionFlags {
    /// Admin.
    #[serde(default)]
    pub admin: bool,
    /// Maintain.
    #[serde(default)]
    pub maintain: bool,
    /// Push.
    #[serde(default)]
    pub push: bool,
}

/// `pending-deployment` (subset).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PendingDeployment {
    /// The environment waiting.
    pub environment: PendingEnvironment,
    /// Whether the token's user may approve it.
    pub current_user_can_approve: bool,
}

/// `pending-deployment.environment`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PendingEnvironment {
    /// Environment id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Environment name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Body of the review-pending-deployments request.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewRequest<'a> {
    /// Environments to review.
    pub environment_ids: Vec<u64>,
    /// `approved` / `rejected`.
    pub state: &'a str,
    /// Comment.
    pub comment: &'a str,
}

/// `deployment` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Deployment {
    /// Id.
    pub id: u64,
    /// Commit.
    pub sha: String,
    /// Ref as requested.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Environment.
    pub environment: String,
    /// Creation time.
    pub created_at: String,
}

/// Body of create-deployment.
#[derive(Debug, Clone, Serialize)]
pub struct CreateDeployment<'a> {
    /// Ref (a full commit SHA here).
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    /// `deploy`.
    pub task: &'a str,
    /// Never merge the default branch into the ref.
    pub auto_merge: bool,
    /// Empty: the workflow has already decided; do not re-check commit statuses.
    pub required_contexts: Vec<String>,
    /// Free-form payload.
    pub payload: serde_json::Value,
    /// Environment name.
    pub environment: &'a str,
    /// Short description.
    pub description: &'a str,
    /// The environment goes away (previews).
    pub transient_environment: bool,
    /// Production.
    pub production_environment: bool,
}

/// `deployment-status` (subset).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// Id.
    pub id: u64,
    /// State.
    pub state: String,
    /// Environment URL.
    #[serde(default)]
    pub environment_url: Option<String>,
    /// Log URL.
    #[serde(default)]
    pub log_url: Option<String>,
}

/// Body of create-deployment-status.
#[derive(Debug, Clone, Serialize)]
pub struct CreateDeploymentStatus<'a> {
    /// State.
    pub state: &'a str,
    /// Environment URL (omitted when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<&'a str>,
    /// Log URL (omitted when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<&'a str>,
    /// Description, at most 140 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Mark earlier successful deployments of the environment inactive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_inactive: Option<bool>,
}

/// GitHub's error body (`basic-error` / `validation-error`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ErrorBody {
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// Validation errors.
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
}

impl ErrorBody {
    /// `errors` rendered as `Resource.field code: message` (or the raw value).
    pub fn rendered_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|error| match error {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Object(map) => {
                    let text = |key: &str| map.get(key).and_then(|v| v.as_str()).unwrap_or("");
                    let mut out = String::new();
                    match (text("resource"), text("field")) {
                        ("", "") => {}
                        (resource, "") => out.push_str(resource),
                        ("", field) => out.push_str(field),
                        (resource, field) => out.push_str(&format!("{resource}.{field}")),
                    }
                    if !text("code").is_empty() {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(text("code"));
                    }
                    if !text("message").is_empty() {
                        if !out.is_empty() {
                            out.push_str(": ");
                        }
                        out.push_str(text("message"));
                    }
                    if out.is_empty() {
                        error.to_string()
                    } else {
                        out
                    }
                }
                other => other.to_string(),
            })
            .map(|e| super::error::one_line(&e))
            .collect()
    }
}
