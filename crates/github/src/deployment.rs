//! GitHub Deployments: one per preview run, statuses as it progresses, all inactive on
//! cleanup.

use serde::Serialize;

use crate::github::{
    CreateDeployment, CreateDeploymentStatus, Deployment, DeploymentStatus, GithubClient,
    GithubError, RepoSlug,
};

/// GitHub's limit on a deployment status description.
pub const MAX_STATUS_DESCRIPTION: usize = 140;

/// Deployment status states (GitHub's full set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Queued.
    Queued,
    /// Pending.
    Pending,
    /// Deploying.
    InProgress,
    /// Deployed (set `--environment-url`).
    Success,
    /// Failed (set `--log-url`).
    Failure,
    /// Errored.
    Error,
    /// Gone (cleanup).
    Inactive,
}

impl DeploymentState {
    /// The API value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
            Self::Inactive => "inactive",
        }
    }

    fn default_description(self) -> &'static str {
        match self {
            Self::Queued | Self::Pending => "Waiting to deploy",
            Self::InProgress => "Deploying",
            Self::Success => "Deployed and healthy",
            Self::Failure | Self::Error => "Deployment failed",
            Self::Inactive => "Environment destroyed",
        }
    }
}

/// `preview-pr-N`.
pub fn preview_environment(pr: u64) -> String {
    format!("preview-pr-{pr}")
}

/// Cuts `text` to GitHub's 140-character description limit.
pub fn status_description(text: &str) -> String {
    let text = crate::github::one_line(text);
    if text.chars().count() <= MAX_STATUS_DESCRIPTION {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_STATUS_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// Parameters of a new deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    /// The PR (recorded in the payload).
    pub pr: Option<u64>,
    /// Full commit SHA.
    pub sha: String,
    /// Environment name.
    pub environment: String,
    /// Production (not transient) rather than a preview.
    pub production: bool,
    /// Description.
    pub description: Option<String>,
}

/// Creates the deployment.
pub async fn create(
    client: &GithubClient,
    repo: &RepoSlug,
    new: &NewDeployment,
) -> Result<Deployment, GithubError> {
    let description = status_description(new.description.as_deref().unwrap_or({
        if new.production {
            "Production deployment"
        } else {
            "Preview environment"
        }
    }));
    let payload = match new.pr {
        Some(pr) => serde_json::json!({ "pr_number": pr }),
        None => serde_json::json!({}),
    };
    let request = CreateDeployment {
        git_ref: &new.sha,
        task: "deploy",
        auto_merge: false,
        required_contexts: Vec::new(),
        payload,
        environment: &new.environment,
        description: &description,
        transient_environment: !new.production,
        production_environment: new.production,
    };
    client.create_deployment(repo, &request).await
}

/// Adds a status.
pub async fn set_status(
    client: &GithubClient,
    repo: &RepoSlug,
    deployment_id: u64,
    state: DeploymentState,
    environment_url: Option<&str>,
    log_url: Option<&str>,
    description: Option<&str>,
) -> Result<DeploymentStatus, GithubError> {
    let description = status_description(description.unwrap_or(state.default_description()));
    let request = CreateDeploymentStatus {
        state: state.as_str(),
        environment_url,
        log_url,
        description: Some(&description),
        auto_inactive: None,
    };
    client
        .create_deployment_status(repo, deployment_id, &request)
        .await
}

/// Result of [`deactivate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deactivation {
    /// Environment.
    pub environment: String,
    /// Deployments that got an `inactive` status now.
    pub deactivated: Vec<u64>,
    /// Deployments that already were inactive.
    pub already_inactive: Vec<u64>,
}

/// Marks every deployment of `environment` inactive (idempotent: deployments whose
/// newest status is already `inactive` are left alone).
pub async fn deactivate(
    client: &GithubClient,
    repo: &RepoSlug,
    environment: &str,
) -> Result<Deactivation, GithubError> {
    let deployments = client.list_deployments(repo, environment).await?;
    let mut outcome = Deactivation {
        environment: environment.to_string(),
        deactivated: Vec::new(),
        already_inactive: Vec::new(),
    };
    for deployment in deployments {
        let latest = client.latest_deployment_status(repo, deployment.id).await?;
        if latest.is_some_and(|s| s.state == "inactive") {
            outcome.already_inactive.push(deployment.id);
            continue;
        }
        set_status(
            client,
            repo,
            deployment.id,
            DeploymentState::Inactive,
            None,
            None,
            None,
        )
        .await?;
        outcome.deactivated.push(deployment.id);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit() {
        assert_eq!(status_description("Deployed\n  ok"), "Deployed ok");
        let long = "x".repeat(300);
        let cut = status_description(&long);
        assert_eq!(cut.chars().count(), MAX_STATUS_DESCRIPTION);
        assert!(cut.ends_with('…'));
        assert_eq!(preview_environment(7), "preview-pr-7");
    }
}
