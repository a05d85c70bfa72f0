//! In-memory scenario state of the fake and the JSON objects GitHub would return for it.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

/// A comment on an issue or pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Comment id (global, increasing).
    pub id: u64,
    /// `owner/repo`.
    pub repo: String,
    /// Issue / pull request number.
    pub issue: u64,
    /// Author login.
    pub author: String,
    /// Markdown body.
    pub body: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 last update time.
    pub updated_at: String,
}

/// A GitHub Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Deployment id.
    pub id: u64,
    /// `owner/repo`.
    pub repo: String,
    /// Commit SHA the ref resolved to.
    pub sha: String,
    /// The ref as requested.
    pub git_ref: String,
    /// `deploy` unless told otherwise.
    pub task: String,
    /// Environment name.
    pub environment: String,
    /// Free-form payload.
    pub payload: Value,
    /// Description (may be null).
    pub description: Option<String>,
    /// Transient environment flag.
    pub transient_environment: bool,
    /// Production environment flag.
    pub production_environment: bool,
    /// Who created it.
    pub creator: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A status of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// Status id.
    pub id: u64,
    /// The deployment it belongs to.
    pub deployment_id: u64,
    /// `in_progress`, `success`, `failure`, `inactive`, …
    pub state: String,
    /// Description (≤ 140 characters).
    pub description: String,
    /// Environment name.
    pub environment: String,
    /// Where the environment is reachable.
    pub environment_url: String,
    /// Where the logs are.
    pub log_url: String,
    /// Who created it.
    pub creator: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A pull request known to the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// `owner/repo`.
    pub repo: String,
    /// Number.
    pub number: u64,
    /// Author login (what the gate must trust).
    pub author: String,
    /// Head commit SHA.
    pub head_sha: String,
    /// Head branch name (untrusted in real life; here to prove the CLI ignores it).
    pub head_ref: String,
    /// Title (untrusted).
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// Whether it was merged (only when `closed`).
    pub merged: bool,
    /// `owner/repo` the head branch lives in: the base repository, or a fork.
    pub head_repo: String,
}

/// An environment a workflow run waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEnvironment {
    /// Environment id.
    pub id: u64,
    /// Environment name.
    pub name: String,
    /// The environment becomes visible as pending after this many GETs.
    pub visible_after_polls: u32,
    /// Logins allowed to approve; empty means any caller.
    pub reviewers: Vec<String>,
    /// Set once reviewed.
    pub reviewed: Option<String>,
}

/// A review sent to `pending_deployments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Workflow run id.
    pub run_id: u64,
    /// Environments reviewed.
    pub environment_ids: Vec<u64>,
    /// `approved` or `rejected`.
    pub state: String,
    /// The review comment.
    pub comment: String,
    /// Who reviewed (login of the token used).
    pub by: String,
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// JSON body, if any (or the raw text as a JSON string when not JSON).
    pub body: Option<Value>,
    /// The token from `Authorization`, if any.
    pub token: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// `X-GitHub-Api-Version`.
    pub api_version: Option<String>,
}

/// A canned failure returned instead of handling the next matching request(s).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Status to answer with.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Value,
    /// How many matching requests get this answer.
    pub times: u32,
    /// Only requests with this method (any when `None`).
    pub method: Option<String>,
    /// Only requests whose path contains this text (any when `None`).
    pub path_contains: Option<String>,
}

const RATE_LIMIT_DOCS: &str =
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api";

impl Fault {
    /// Any status with a `basic-error` body.
    pub fn status(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
            times: 1,
            method: None,
            path_contains: None,
        }
    }

    /// A primary rate limit: 403 with `x-ratelimit-remaining: 0` and a reset time
    /// (Unix seconds).
    pub fn rate_limited(reset_epoch_seconds: u64) -> Self {
        let mut fault = Self::status(403, "API rate limit exceeded for installation ID 1.");
        fault.body["documentation_url"] = json!(RATE_LIMIT_DOCS);
        fault.headers = vec![
            ("x-ratelimit-limit".into(), "5000".into()),
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-used".into(), "5000".into()),
            ("x-ratelimit-resource".into(), "core".into()),
            ("x-ratelimit-reset".into(), reset_epoch_seconds.to_string()),
        ];
        fault
    }

    /// A secondary rate limit: 403 with `retry-after`.
    pub fn secondary_rate_limit(retry_after_seconds: u64) -> Self {
        let mut fault = Self::status(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        fault.body["documentation_url"] = json!(RATE_LIMIT_DOCS);
        fault.headers = vec![("retry-after".into(), retry_after_seconds.to_string())];
        fault
    }

    /// A 5xx server error.
    pub fn server_error(status: u16) -> Self {
        Self::status(status, "Server Error")
    }

    /// 401 Bad credentials.
    pub fn bad_credentials() -> Self {
        Self::status(401, "Bad credentials")
    }

    /// 422 with GitHub's `validation-error` shape.
    pub fn validation_failed(message: &str, errors: Value) -> Self {
        let mut fault = Self::status(422, message);
        fault.body["errors"] = errors;
        fault
    }

    /// Applies to the next `times` matching requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Only for requests with this method and a path containing `path_contains`.
    pub fn on(mut self, method: &str, path_contains: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self.path_contains = Some(path_contains.to_string());
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// Everything the fake knows. Tests change it through [`crate::GithubFake`].
#[derive(Debug)]
pub struct State {
    pub(crate) repo: String,
    pub(crate) default_login: String,
    pub(crate) tokens: BTreeMap<String, String>,
    pub(crate) require_known_token: bool,
    pub(crate) next_id: u64,
    pub(crate) comments: Vec<Comment>,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) statuses: Vec<DeploymentStatus>,
    pub(crate) pulls: BTreeMap<u64, Pull>,
    pub(crate) roles: BTreeMap<String, String>,
    pub(crate) unknown_users: Vec<String>,
    pub(crate) pending: BTreeMap<u64, Vec<PendingEnvironment>>,
    pub(crate) polls: BTreeMap<u64, u32>,
    pub(crate) reviews: Vec<Review>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) violations: Vec<String>,
    pub(crate) clock: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            repo: "acme/site".into(),
            default_login: "github-actions[bot]".into(),
            tokens: BTreeMap::new(),
            require_known_token: false,
            next_id: 1000,
            comments: Vec::new(),
            deployments: Vec::new(),
            statuses: Vec::new(),
            pulls: BTreeMap::new(),
            roles: BTreeMap::new(),
            unknown_users: Vec::new(),
            pending: BTreeMap::new(),
            polls: BTreeMap::new(),
            reviews: Vec::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            clock: 0,
        }
    }
}

impl State {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A strictly increasing RFC 3339 timestamp (one second per call), so ordering by
    /// `created_at` is meaningful and deterministic.
    pub(crate) fn now(&mut self) -> String {
        self.clock += 1;
        let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        humantime::format_rfc3339_seconds(base + std::time::Duration::from_secs(self.clock))
            .to_string()
    }
}

/// `simple-user` for a login.
pub(crate) fn simple_user(login: &str) -> Value {
    let id = stable_id(login);
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_kgDO{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": false,
        "user_view_type": "public"
    })
}

/// A deterministic id for a login.
pub(crate) fn stable_id(text: &str) -> u64 {
    // FNV-1a, reduced to a plausible user id range.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % 100_000_000 + 1
}

pub(crate) fn comment_json(base: &str, comment: &Comment) -> Value {
    let repo = &comment.repo;
    json!({
        "id": comment.id,
        "node_id": format!("IC_kwDO{}", comment.id),
        "url": format!("{base}/repos/{repo}/issues/comments/{}", comment.id),
        "html_url": format!("https://github.com/{repo}/pull/{}#issuecomment-{}", comment.issue, comment.id),
        "body": comment.body,
        "user": simple_user(&comment.author),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "issue_url": format!("{base}/repos/{repo}/issues/{}", comment.issue),
        "author_association": if comment.author.ends_with("[bot]") { "NONE" } else { "CONTRIBUTOR" },
    })
}

pub(crate) fn deployment_json(base: &str, deployment: &Deployment) -> Value {
    let repo = &deployment.repo;
    let url = format!("{base}/repos/{repo}/deployments/{}", deployment.id);
    json!({
        "url": url,
        "id": deployment.id,
        "node_id": format!("DE_kwDO{}", deployment.id),
        "sha": deployment.sha,
        "ref": deployment.git_ref,
        "task": deployment.task,
        "payload": deployment.payload,
        "original_environment": deployment.environment,
        "environment": deployment.environment,
        "description": deployment.description,
        "creator": simple_user(&deployment.creator),
        "created_at": deployment.created_at,
        "updated_at": deployment.created_at,
        "statuses_url": format!("{url}/statuses"),
        "repository_url": format!("{base}/repos/{repo}"),
        "transient_environment": deployment.transient_environment,
        "production_environment": deployment.production_environment,
    })
}

pub(crate) fn status_json(base: &str, repo: &str, status: &DeploymentStatus) -> Value {
    let deployment_url = format!("{base}/repos/{repo}/deployments/{}", status.deployment_id);
    json!({
        "url": format!("{deployment_url}/statuses/{}", status.id),
        "id": status.id,
        "node_id": format!("DES_kwDO{}", status.id),
        "state": status.state,
        "creator": simple_user(&status.creator),
        "description": status.description,
        "environment": status.environment,
        "target_url": status.log_url,
        "log_url": status.log_url,
        "environment_url": status.environment_url,
        "created_at": status.created_at,
        "updated_at": status.created_at,
        "deployment_url": deployment_url,
        "repository_url": format!("{base}/repos/{repo}"),
    })
}
