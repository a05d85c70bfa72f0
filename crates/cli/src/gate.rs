//! The approval gate: maintainers' PRs are approved automatically, everyone else's wait
//! for a maintainer. The author comes from the API (`GET pulls/{n}`), never from branch
//! names, titles or the environment.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::comment::{AuthorFilter, UpsertOutcome, WhenMissing, upsert_comment_with};
use crate::github::{CollaboratorPermission, GithubClient, GithubError, RepoSlug, ReviewRequest};

/// Hidden marker of the gate's own comment (separate from the preview comment).
pub const GATE_COMMENT_MARKER: &str = "<!-- preview-envs:approval-gate -->";

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The author is a maintainer: approve the pending deployment.
    Approve,
    /// Someone else: a maintainer must approve by hand.
    ManualApprovalRequired,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The decision.
    pub decision: Decision,
    /// One sentence explaining it.
    pub reason: String,
}

/// Whether a permission answer means admin or maintain. `permission` is the legacy
/// field (maintain reads as `write` there), so `role_name` and the flags decide.
/// Custom roles count as non-maintainers (fail closed).
pub fn is_maintainer(permission: &CollaboratorPermission) -> bool {
    let role = permission.role_name.to_ascii_lowercase();
    let flags = permission
        .user
        .as_ref()
        .and_then(|u| u.permissions)
        .unwrap_or_default();
    matches!(role.as_str(), "admin" | "maintain")
        || permission.permission.eq_ignore_ascii_case("admin")
        || flags.admin
        || flags.maintain
}

/// Decides from the API's answers. `permission` is `None` when GitHub does not know
/// the user as a collaborator (404). `expected_sha` is the commit the images were built
/// from; if the PR head moved since, nobody is approved automatically. Pure.
pub fn decide(
    author: &str,
    permission: Option<&CollaboratorPermission>,
    head_sha: &str,
    expected_sha: Option<&str>,
) -> Assessment {
    if let Some(expected) = expected_sha
        && !head_sha.eq_ignore_ascii_case(expected)
    {
        return Assessment {
            decision: Decision::ManualApprovalRequired,
            reason: format!(
                "the PR head is now {head_sha}, not {expected} (the commit the images were built from)"
            ),
        };
    }
    match permission {
        Some(p) if is_maintainer(p) => Assessment {
            decision: Decision::Approve,
            reason: format!("{author} has the {} role", p.role_name),
        },
        Some(p) => Assessment {
            decision: Decision::ManualApprovalRequired,
            reason: format!(
                "{author} has the {} role (needs admin or maintain)",
                p.role_name
            ),
        },
        None => Assessment {
            decision: Decision::ManualApprovalRequired,
            reason: format!("{author} is not a collaborator"),
        },
    }
}

/// The comment explaining that a maintainer must approve. Pure.
pub fn manual_approval_comment(
    pr: u64,
    repo: &RepoSlug,
    environment: &str,
    run_url: &str,
    reason: &str,
) -> String {
    format!(
        "{GATE_COMMENT_MARKER}\n\
### 🔒 Preview deployment for #{pr} is waiting for a maintainer\n\n\
The preview is not approved automatically because {reason}.\n\n\
A maintainer of `{repo}` should read the plan in the preview comment and the changes in this PR, \
then approve the **`{environment}`** environment in [the workflow run]({run_url}) \
(\"Review deployments\"). Nothing is deployed and no secret is used until then.\n\n\
<sub>Maintained by preview-envs: this comment is updated in place.</sub>\n"
    )
}

/// The gate comment after an automatic approval (only replaces an earlier "waiting"
/// comment; none is created for maintainers). Pure.
pub fn approved_comment(pr: u64, environment: &str, run_url: &str, reason: &str) -> String {
    format!(
        "{GATE_COMMENT_MARKER}\n\
### ✅ Preview deployment for #{pr} was approved automatically\n\n\
The **`{environment}`** environment was approved in [the workflow run]({run_url}) because {reason}.\n\n\
<sub>Maintained by preview-envs: this comment is updated in place.</sub>\n"
    )
}

/// Polling limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// First wait between polls; doubles each time.
    pub interval: Duration,
    /// Longest wait between polls.
    pub max_interval: Duration,
}

/// Inputs of [`run_gate`].
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// Repository.
    pub repo: RepoSlug,
    /// PR number (from the triggering event / workflow input).
    pub pr: u64,
    /// Workflow run whose deployment waits.
    pub run_id: u64,
    /// Protected environment name.
    pub environment: String,
    /// Commit the images were built from (optional check).
    pub expected_sha: Option<String>,
    /// Link to the run, for the comment.
    pub run_url: String,
    /// Which marker comments are ours.
    pub comment_author: AuthorFilter,
    /// Polling limits.
    pub poll: PollOptions,
}

/// What the gate did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateReport {
    /// Decision.
    pub decision: Decision,
    /// Why.
    pub reason: String,
    /// PR author (from the API).
    pub author: String,
    /// Role name (`none` when not a collaborator).
    pub role: String,
    /// Environment.
    pub environment: String,
    /// Environment id approved, when approved.
    pub environment_id: Option<u64>,
    /// Workflow run.
    pub run_id: u64,
    /// The gate comment, when one was posted.
    pub comment: Option<UpsertOutcome>,
}

/// Errors of the gate beyond API errors.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// API error.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// The PR is closed.
    #[error("gate: pull request #{pr} is {state}; nothing to approve")]
    NotOpen {
        /// PR.
        pr: u64,
        /// Its state.
        state: String,
    },
    /// The environment never showed up as pending.
    #[error(
        "gate: environment '{environment}' did not become pending in run {run_id} within {waited}; check that the deploy job uses `environment: {environment}`, that the environment has required reviewers, and that --run-id is this run"
    )]
    Timeout {
        /// Environment.
        environment: String,
        /// Run.
        run_id: u64,
        /// How long we waited.
        waited: String,
    },
    /// The approving token's user is not a required reviewer.
    #[error(
        "gate: the approving token cannot approve environment '{environment}' (current_user_can_approve is false); set PREVIEW_APPROVER_TOKEN to a token of a required reviewer (GITHUB_TOKEN itself can never approve)"
    )]
    CannotApprove {
        /// Environment.
        environment: String,
    },
    /// The answer lacked the environment id.
    #[error("gate: GitHub listed environment '{environment}' as pending without an id")]
    NoEnvironmentId {
        /// Environment.
        environment: String,
    },
}

/// Runs the gate: look up the PR author, decide, then approve (polling until the
/// environment is pending) or post the explanation comment.
pub async fn run_gate(
    client: &GithubClient,
    approver: &GithubClient,
    request: &GateRequest,
) -> Result<GateReport, GateError> {
    let repo = &request.repo;
    let pull = client.get_pull(repo, request.pr).await?;
    if pull.state != "open" {
        return Err(GateError::NotOpen {
            pr: request.pr,
            state: pull.state,
        });
    }
    let author = pull.user.login;
    let permission = match client.collaborator_permission(repo, &author).await {
        Ok(permission) => Some(permission),
        // Not a user GitHub knows as a collaborator: fail closed.
        Err(GithubError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let assessment = decide(
        &author,
        permission.as_ref(),
        &pull.head.sha,
        request.expected_sha.as_deref(),
    );
    let role = permission
        .as_ref()
        .map(|p| p.role_name.clone())
        .unwrap_or_else(|| "none".into());
    let mut report = GateReport {
        decision: assessment.decision,
        reason: assessment.reason.clone(),
        author: author.clone(),
        role,
        environment: request.environment.clone(),
        environment_id: None,
        run_id: request.run_id,
        comment: None,
    };
    match assessment.decision {
        Decision::ManualApprovalRequired => {
            let body = manual_approval_comment(
                request.pr,
                repo,
                &request.environment,
                &request.run_url,
                &assessment.reason,
            );
            let outcome = upsert_gate_comment(client, request, &body, WhenMissing::Create).await?;
            report.comment = Some(outcome);
        }
        Decision::Approve => {
            let id = wait_and_approve(approver, request, &author).await?;
            report.environment_id = Some(id);
            // An earlier run may have said a maintainer must approve; correct it.
            let body = approved_comment(
                request.pr,
                &request.environment,
                &request.run_url,
                &assessment.reason,
            );
            let outcome = upsert_gate_comment(client, request, &body, WhenMissing::Skip).await?;
            if outcome.comment_id.is_some() {
                report.comment = Some(outcome);
            }
        }
    }
    Ok(report)
}

/// Creates or updates the gate's own comment (carrying [`GATE_COMMENT_MARKER`]) on
/// the request's PR.
async fn upsert_gate_comment(
    client: &GithubClient,
    request: &GateRequest,
    body: &str,
    when_missing: WhenMissing,
) -> Result<UpsertOutcome, GithubError> {
    upsert_comment_with(
        client,
        &request.repo,
        request.pr,
        GATE_COMMENT_MARKER,
        &request.comment_author,
        body,
        when_missing,
    )
    .await
}

async fn wait_and_approve(
    approver: &GithubClient,
    request: &GateRequest,
    author: &str,
) -> Result<u64, GateError> {
    let started = Instant::now();
    let deadline = started + request.poll.timeout;
    let mut interval = request.poll.interval;
    loop {
        let pending = approver
            .pending_deployments(&request.repo, request.run_id)
            .await?;
        let waiting = pending.iter().find(|p| {
            p.environment
                .name
                .as_deref()
                .is_some_and(|name| name.eq_ignore_ascii_case(&request.environment))
        });
        if let Some(waiting) = waiting {
            if !waiting.current_user_can_approve {
                return Err(GateError::CannotApprove {
                    environment: request.environment.clone(),
                });
            }
            let id = waiting
                .environment
                .id
                .ok_or_else(|| GateError::NoEnvironmentId {
                    environment: request.environment.clone(),
                })?;
            let comment = format!(
                "Approved automatically: PR #{} is by {author}, who has admin or maintain permission.",
                request.pr
            );
            approver
                .review_pending_deployments(
                    &request.repo,
                    request.run_id,
                    &ReviewRequest {
                        environment_ids: vec![id],
                        state: "approved",
                        comment: &comment,
                    },
                )
                .await?;
            return Ok(id);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(GateError::Timeout {
                environment: request.environment.clone(),
                run_id: request.run_id,
                waited: humantime::format_duration(Duration::from_secs(
                    started.elapsed().as_secs(),
                ))
                .to_string(),
            });
        }
        tracing::info!(
            environment = %request.environment,
            "environment not pending yet; polling again in {}",
            humantime::format_duration(interval)
        );
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(request.poll.max_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::{Collaborator, PermissionFlags};

    fn permission(legacy: &str, role: &str) -> CollaboratorPermission {
        CollaboratorPermission {
            permission: legacy.into(),
            role_name: role.into(),
            user: Some(Collaborator {
                login: "someone".into(),
                permissions: None,
            }),
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn maintainers_and_admins_are_approved() {
        for (legacy, role) in [("admin", "admin"), ("write", "maintain")] {
            let p = permission(legacy, role);
            let a = decide("alice", Some(&p), SHA, Some(SHA));
            assert_eq!(a.decision, Decision::Approve, "{role}");
        }
        let mut flags_only = permission("write", "custom-release-manager");
        flags_only.user = Some(Collaborator {
            login: "alice".into(),
            permissions: Some(PermissionFlags {
                admin: false,
                maintain: true,
                push: true,
            }),
        });
        assert!(is_maintainer(&flags_only));
    }

    #[test]
    fn everyone_else_needs_a_maintainer() {
        for (legacy, role) in [
            ("write", "write"),
            ("read", "triage"),
            ("read", "read"),
            ("none", "none"),
            ("write", "custom-role"),
        ] {
            let p = permission(legacy, role);
            assert_eq!(
                decide("bob", Some(&p), SHA, None).decision,
                Decision::ManualApprovalRequired,
                "{role}"
            );
        }
        let unknown = decide("ghost", None, SHA, None);
        assert_eq!(unknown.decision, Decision::ManualApprovalRequired);
        assert_eq!(unknown.reason, "ghost is not a collaborator");
    }

    #[test]
    fn a_moved_head_is_never_auto_approved() {
        let p = permission("admin", "admin");
        let a = decide("alice", Some(&p), SHA, Some(&"f".repeat(40)));
        assert_eq!(a.decision, Decision::ManualApprovalRequired);
        assert!(a.reason.contains("PR head is now"));
    }

    #[test]
    fn comment_snapshot() {
        let repo: RepoSlug = "aphiria/aphiria.com".parse().expect("slug");
        insta::assert_snapshot!(manual_approval_comment(
            123,
            &repo,
            "preview",
            "https://github.com/aphiria/aphiria.com/actions/runs/42",
            "bob has the read role (needs admin or maintain)"
        ));
    }
}
