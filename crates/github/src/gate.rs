//! The approval gate: a preview is approved automatically only when the PR's author
//! and the run's actor are maintainers and the PR's head branch lives in the base
//! repository; everyone else's wait for a maintainer, and fork PRs always do. Every
//! fact comes from the API (`GET pulls/{n}`, collaborator permissions) or from
//! GitHub's own run context (`github.triggering_actor`), never from branch names,
//! titles or workflow inputs, and the approval is bound to the commit the images were
//! built from.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::comment::{AuthorFilter, UpsertOutcome, WhenMissing, upsert_comment_with};
use crate::github::{
    CollaboratorPermission, GithubClient, GithubError, PullRequest, RepoRef, RepoSlug,
    ReviewRequest,
};

/// Hidden marker of the gate's own comment (separate from the preview comment).
pub const GATE_COMMENT_MARKER: &str = "<!-- preview-envs:approval-gate -->";

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Every condition holds: approve the pending deployment.
    Approve,
    /// Some condition does not: a maintainer must approve by hand.
    ManualApprovalRequired,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The decision.
    pub decision: Decision,
    /// One sentence explaining it (every unmet condition, when not approved).
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

/// Who started the run, as the gate counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RunActor {
    /// `github.triggering_actor` itself: whoever dispatched or re-ran the workflow.
    Triggering {
        /// Login.
        login: String,
    },
    /// The run was triggered by the configured dispatcher account (whose token only
    /// the default branch's `publish-images.yml` holds), which names the login that
    /// triggered the build it publishes.
    Dispatched {
        /// The dispatcher's login (`github.triggering_actor`).
        dispatcher: String,
        /// The login that triggered the build, as the dispatcher reported it.
        login: Option<String>,
    },
}

impl RunActor {
    /// Chooses from the run context: the triggering actor counts, unless it is the
    /// configured dispatcher, in which case the build's actor it reported counts.
    pub fn from_context(
        triggering_actor: &str,
        dispatcher: Option<&str>,
        build_actor: Option<&str>,
    ) -> Self {
        match dispatcher {
            Some(dispatcher) if dispatcher.eq_ignore_ascii_case(triggering_actor) => {
                Self::Dispatched {
                    dispatcher: triggering_actor.to_string(),
                    login: build_actor.map(str::to_string),
                }
            }
            _ => Self::Triggering {
                login: triggering_actor.to_string(),
            },
        }
    }

    /// The login whose permission decides, if any.
    pub fn login(&self) -> Option<&str> {
        match self {
            Self::Triggering { login } => Some(login),
            Self::Dispatched { login, .. } => login.as_deref(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Triggering { login } => format!("{login} (who started this run)"),
            Self::Dispatched {
                dispatcher,
                login: Some(login),
            } => format!("{login} (who started the build {dispatcher} published)"),
            Self::Dispatched {
                dispatcher,
                login: None,
            } => format!("the run started by {dispatcher}"),
        }
    }
}

/// Everything [`decide`] looks at, as the API answered it.
#[derive(Debug, Clone, Copy)]
pub struct GateFacts<'a> {
    /// PR author (`user.login` of `GET pulls/{n}`).
    pub author: &'a str,
    /// The author's permission; `None` when GitHub does not know them as a
    /// collaborator (404).
    pub author_permission: Option<&'a CollaboratorPermission>,
    /// Who started the run.
    pub actor: &'a RunActor,
    /// The actor's permission (`None`: unknown user, or no login to look up).
    pub actor_permission: Option<&'a CollaboratorPermission>,
    /// The PR's head commit now.
    pub head_sha: &'a str,
    /// The commit the images were built from.
    pub expected_sha: &'a str,
    /// Where the head branch lives (`None`: a deleted fork).
    pub head_repo: Option<&'a RepoRef>,
    /// The repository the PR targets.
    pub base_repo: Option<&'a RepoRef>,
}

fn role_text(login: &str, permission: Option<&CollaboratorPermission>) -> (bool, String) {
    match permission {
        Some(p) if is_maintainer(p) => (true, format!("{login} has the {} role", p.role_name)),
        Some(p) => (
            false,
            format!(
                "{login} has the {} role (needs admin or maintain)",
                p.role_name
            ),
        ),
        None => (false, format!("{login} is not a collaborator")),
    }
}

/// Decides from the API's answers. Approves only when all hold: the PR head is the
/// built commit, the head repository is the base repository, the author is a
/// maintainer and the run's actor is a maintainer. The reason names every condition
/// that fails. Pure.
pub fn decide(facts: &GateFacts<'_>) -> Assessment {
    let mut unmet = Vec::new();
    if !facts.head_sha.eq_ignore_ascii_case(facts.expected_sha) {
        unmet.push(format!(
            "the PR head is now {}, not {} (the commit the images were built from)",
            facts.head_sha, facts.expected_sha
        ));
    }
    let same_repo = match (facts.head_repo, facts.base_repo) {
        (Some(head), Some(base)) if head.id == base.id => None,
        (Some(head), _) => Some(format!(
            "the head branch is in the fork {} (fork PRs always need a maintainer)",
            head.full_name
        )),
        (None, _) => Some(
            "the head repository is unknown (a deleted fork?); fork PRs always need a maintainer"
                .to_string(),
        ),
    };
    unmet.extend(same_repo);
    let (author_ok, author_text) = role_text(facts.author, facts.author_permission);
    if !author_ok {
        unmet.push(format!("the PR author {author_text}"));
    }
    let actor_text = match facts.actor.login() {
        Some(login) => {
            let (ok, text) = role_text(login, facts.actor_permission);
            if !ok {
                unmet.push(format!("the run's actor {text}"));
            }
            format!(
                "{} has the {} role",
                facts.actor.describe(),
                role_name(facts.actor_permission)
            )
        }
        None => {
            unmet.push(format!(
                "{} names no build actor (--build-actor)",
                facts.actor.describe()
            ));
            String::new()
        }
    };
    if unmet.is_empty() {
        Assessment {
            decision: Decision::Approve,
            reason: format!(
                "the PR author {author_text}, {actor_text}, the head branch is in {} and the head is {}",
                facts
                    .base_repo
                    .map(|r| r.full_name.as_str())
                    .unwrap_or_default(),
                facts.expected_sha
            ),
        }
    } else {
        Assessment {
            decision: Decision::ManualApprovalRequired,
            reason: unmet.join("; "),
        }
    }
}

fn role_name(permission: Option<&CollaboratorPermission>) -> &str {
    permission.map(|p| p.role_name.as_str()).unwrap_or("none")
}

/// The comment explaining that a maintainer must approve. Pure.
pub fn manual_approval_comment(
    pr: u64,
    repo: &RepoSlug,
    environment: &str,
    run_url: &str,
    sha: &str,
    reason: &str,
) -> String {
    format!(
        "{GATE_COMMENT_MARKER}\n\
### 🔒 Preview deployment for #{pr} is waiting for a maintainer\n\n\
The preview is not approved automatically because {reason}.\n\n\
A maintainer of `{repo}` should read the plan in the preview comment and the changes in this PR \
at commit `{sha}`, then approve the **`{environment}`** environment in [the workflow run]({run_url}) \
(\"Review deployments\"). The run deploys only that commit: it stops if the PR head has moved. \
Nothing is deployed and no secret is used until then.\n\n\
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
    /// Commit the images were built from; approval is bound to it.
    pub expected_sha: String,
    /// Who started the run.
    pub actor: RunActor,
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
    /// The author's role name (`none` when not a collaborator).
    pub role: String,
    /// Who started the run, as counted.
    pub actor: RunActor,
    /// The actor's role name (`none` when unknown or not looked up).
    pub actor_role: String,
    /// Where the head branch lives (`owner/repo`; `null` for a deleted fork).
    pub head_repo: Option<String>,
    /// Whether the head repository is the base repository.
    pub same_repository: bool,
    /// The commit the approval is bound to.
    pub sha: String,
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
    /// The PR head moved between the decision and the approval.
    #[error(
        "gate: the head of pull request #{pr} moved to {head_sha} while waiting to approve {expected_sha}; not approving"
    )]
    HeadMoved {
        /// PR.
        pr: u64,
        /// Commit the approval was for.
        expected_sha: String,
        /// The head now.
        head_sha: String,
    },
}

async fn permission_of(
    client: &GithubClient,
    repo: &RepoSlug,
    login: &str,
) -> Result<Option<CollaboratorPermission>, GithubError> {
    match client.collaborator_permission(repo, login).await {
        Ok(permission) => Ok(Some(permission)),
        // Not a user GitHub knows as a collaborator: fail closed.
        Err(GithubError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Runs the gate: look up the PR, its author's and the run actor's permissions,
/// decide, then approve (polling until the environment is pending, and checking the
/// head once more right before approving) or post the explanation comment.
pub async fn run_gate(
    client: &GithubClient,
    approver: &GithubClient,
    request: &GateRequest,
) -> Result<GateReport, GateError> {
    let repo = &request.repo;
    let pull: PullRequest = client.get_pull(repo, request.pr).await?;
    if pull.state != "open" {
        return Err(GateError::NotOpen {
            pr: request.pr,
            state: pull.state,
        });
    }
    let author = pull.user.login.clone();
    let author_permission = permission_of(client, repo, &author).await?;
    let actor_permission = match request.actor.login() {
        Some(login) if login.eq_ignore_ascii_case(&author) => author_permission.clone(),
        Some(login) => permission_of(client, repo, login).await?,
        None => None,
    };
    let head_repo = pull.head.repo.as_ref();
    let base_repo = pull.base.repo.as_ref();
    let assessment = decide(&GateFacts {
        author: &author,
        author_permission: author_permission.as_ref(),
        actor: &request.actor,
        actor_permission: actor_permission.as_ref(),
        head_sha: &pull.head.sha,
        expected_sha: &request.expected_sha,
        head_repo,
        base_repo,
    });
    let mut report = GateReport {
        decision: assessment.decision,
        reason: assessment.reason.clone(),
        author: author.clone(),
        role: role_name(author_permission.as_ref()).to_string(),
        actor: request.actor.clone(),
        actor_role: role_name(actor_permission.as_ref()).to_string(),
        head_repo: head_repo.map(|r| r.full_name.clone()),
        same_repository: matches!((head_repo, base_repo), (Some(h), Some(b)) if h.id == b.id),
        sha: request.expected_sha.clone(),
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
                &request.expected_sha,
                &assessment.reason,
            );
            let outcome = upsert_gate_comment(client, request, &body, WhenMissing::Create).await?;
            report.comment = Some(outcome);
        }
        Decision::Approve => {
            let id = wait_and_approve(client, approver, request, &assessment.reason).await?;
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
    client: &GithubClient,
    approver: &GithubClient,
    request: &GateRequest,
    reason: &str,
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
            // The environment may have become pending long after the decision: the
            // approval is for the built commit only.
            let head = client.get_pull(&request.repo, request.pr).await?.head.sha;
            if !head.eq_ignore_ascii_case(&request.expected_sha) {
                return Err(GateError::HeadMoved {
                    pr: request.pr,
                    expected_sha: request.expected_sha.clone(),
                    head_sha: head,
                });
            }
            let comment = format!(
                "Approved automatically for commit {}: {reason}.",
                request.expected_sha
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

    fn repo(id: u64, name: &str) -> RepoRef {
        RepoRef {
            id,
            full_name: name.into(),
        }
    }

    fn triggering(login: &str) -> RunActor {
        RunActor::Triggering {
            login: login.into(),
        }
    }

    /// A maintainer's same-repository PR at the built commit, started by them.
    fn facts<'a>(
        author: &'a CollaboratorPermission,
        actor: &'a RunActor,
        actor_permission: &'a CollaboratorPermission,
        base: &'a RepoRef,
    ) -> GateFacts<'a> {
        GateFacts {
            author: "alice",
            author_permission: Some(author),
            actor,
            actor_permission: Some(actor_permission),
            head_sha: SHA,
            expected_sha: SHA,
            head_repo: Some(base),
            base_repo: Some(base),
        }
    }

    #[test]
    fn maintainers_and_admins_are_approved() {
        let base = repo(1, "acme/site");
        let actor = triggering("alice");
        for (legacy, role) in [("admin", "admin"), ("write", "maintain")] {
            let p = permission(legacy, role);
            let a = decide(&facts(&p, &actor, &p, &base));
            assert_eq!(a.decision, Decision::Approve, "{role}");
            assert!(a.reason.contains("acme/site"), "{}", a.reason);
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
        let base = repo(1, "acme/site");
        let actor = triggering("alice");
        let maintainer = permission("write", "maintain");
        for (legacy, role) in [
            ("write", "write"),
            ("read", "triage"),
            ("read", "read"),
            ("none", "none"),
            ("write", "custom-role"),
        ] {
            let p = permission(legacy, role);
            let mut f = facts(&p, &actor, &maintainer, &base);
            f.author = "bob";
            assert_eq!(
                decide(&f).decision,
                Decision::ManualApprovalRequired,
                "{role}"
            );
        }
        let mut f = facts(&maintainer, &actor, &maintainer, &base);
        f.author = "ghost";
        f.author_permission = None;
        let unknown = decide(&f);
        assert_eq!(unknown.decision, Decision::ManualApprovalRequired);
        assert_eq!(unknown.reason, "the PR author ghost is not a collaborator");
    }

    #[test]
    fn a_write_collaborator_starting_a_maintainers_pr_is_not_enough() {
        let base = repo(1, "acme/site");
        let maintainer = permission("write", "maintain");
        let writer = permission("write", "write");
        let actor = triggering("wendy");
        let a = decide(&facts(&maintainer, &actor, &writer, &base));
        assert_eq!(a.decision, Decision::ManualApprovalRequired);
        assert_eq!(
            a.reason,
            "the run's actor wendy has the write role (needs admin or maintain)"
        );
        // The dispatcher vouches for the build's actor, who is a writer here.
        let dispatched = RunActor::from_context("preview-bot", Some("preview-bot"), Some("wendy"));
        let a = decide(&facts(&maintainer, &dispatched, &writer, &base));
        assert_eq!(a.decision, Decision::ManualApprovalRequired);
        // A dispatcher that names nobody approves nobody.
        let nobody = RunActor::from_context("preview-bot", Some("preview-bot"), None);
        assert_eq!(nobody.login(), None);
        let mut f = facts(&maintainer, &nobody, &maintainer, &base);
        f.actor_permission = None;
        assert_eq!(decide(&f).decision, Decision::ManualApprovalRequired);
        // A build actor passed without the dispatcher having started the run is ignored.
        let ignored = RunActor::from_context("wendy", Some("preview-bot"), Some("alice"));
        assert_eq!(ignored.login(), Some("wendy"));
        let not_configured = RunActor::from_context("preview-bot", None, Some("alice"));
        assert_eq!(not_configured.login(), Some("preview-bot"));
    }

    #[test]
    fn fork_heads_always_need_a_maintainer() {
        let base = repo(1, "acme/site");
        let fork = repo(2, "alice/site");
        let maintainer = permission("admin", "admin");
        let actor = triggering("alice");
        let mut f = facts(&maintainer, &actor, &maintainer, &base);
        f.head_repo = Some(&fork);
        let a = decide(&f);
        assert_eq!(a.decision, Decision::ManualApprovalRequired);
        assert!(a.reason.contains("the fork alice/site"), "{}", a.reason);
        f.head_repo = None;
        assert_eq!(decide(&f).decision, Decision::ManualApprovalRequired);
    }

    #[test]
    fn a_moved_head_is_never_auto_approved_and_every_reason_is_named() {
        let base = repo(1, "acme/site");
        let fork = repo(2, "bob/site");
        let maintainer = permission("admin", "admin");
        let reader = permission("read", "read");
        let actor = triggering("bob");
        let moved = "f".repeat(40);
        let mut f = facts(&reader, &actor, &reader, &base);
        f.author = "bob";
        f.head_sha = &moved;
        f.head_repo = Some(&fork);
        let a = decide(&f);
        assert_eq!(a.decision, Decision::ManualApprovalRequired);
        assert_eq!(a.reason.split("; ").count(), 4, "{}", a.reason);
        assert!(a.reason.contains("PR head is now"));
        let mut only_moved = facts(&maintainer, &actor, &maintainer, &base);
        only_moved.head_sha = &moved;
        assert!(
            decide(&only_moved)
                .reason
                .starts_with("the PR head is now ffff")
        );
    }

    #[test]
    fn comment_snapshot() {
        let repo: RepoSlug = "aphiria/aphiria.com".parse().expect("slug");
        insta::assert_snapshot!(manual_approval_comment(
            123,
            &repo,
            "preview",
            "https://github.com/aphiria/aphiria.com/actions/runs/42",
            SHA,
            "the PR author bob has the read role (needs admin or maintain)"
        ));
    }
}
