//! Endpoint behaviour: what GitHub does for each request the CLI sends.

use openapi_fake::pages::Page;
use serde_json::{Value, json};

use crate::model::{
    Comment, Deployment, DeploymentStatus, Review, State, comment_json, deployment_json,
    simple_user, stable_id, status_json,
};
use crate::openapi::Spec;

/// GitHub's comment body limit (characters).
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// What the server sends back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (none for 204).
    pub body: Option<Value>,
    /// Extra headers (e.g. `Link`).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub(crate) fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        )
    }

    fn not_found() -> Self {
        Self::error(404, "Not Found")
    }

    fn validation(message: &str, errors: Value) -> Self {
        Self::json(
            422,
            json!({"message": message, "errors": errors, "documentation_url": "https://docs.github.com/rest"}),
        )
    }
}

/// A parsed request handed to [`handle`].
pub struct Call<'a> {
    /// Method, upper case.
    pub method: &'a str,
    /// Path segments after the leading `/`.
    pub segments: Vec<&'a str>,
    /// Query pairs.
    pub query: &'a [(String, String)],
    /// Parsed body (`Null` when absent).
    pub body: Value,
    /// Login of the caller (from the token).
    pub login: String,
    /// The fake's base URL (for `url` fields and `Link` headers).
    pub base: &'a str,
    /// The raw path.
    pub path: &'a str,
}

impl Call<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Handles one (already validated) request.
pub fn handle(state: &mut State, spec: &Spec, call: &Call<'_>) -> Reply {
    let s = &call.segments;
    if s.len() < 3 || s[0] != "repos" {
        return Reply::not_found();
    }
    let repo = format!("{}/{}", s[1], s[2]);
    if !repo.eq_ignore_ascii_case(&state.repo) {
        return Reply::not_found();
    }
    let rest: Vec<&str> = s[3..].to_vec();
    let id = |index: usize| rest.get(index).and_then(|v| v.parse::<u64>().ok());
    match (call.method, rest.as_slice()) {
        ("GET", ["issues", _, "comments"]) => match id(1) {
            Some(issue) => list_comments(state, call, &repo, issue),
            None => Reply::not_found(),
        },
        ("POST", ["issues", _, "comments"]) => match id(1) {
            Some(issue) => create_comment(state, call, &repo, issue),
            None => Reply::not_found(),
        },
        ("GET" | "PATCH" | "DELETE", ["issues", "comments", _]) => match id(2) {
            Some(comment) => comment_by_id(state, call, comment),
            None => Reply::not_found(),
        },
        ("GET", ["deployments"]) => list_deployments(state, call),
        ("POST", ["deployments"]) => create_deployment(state, call, &repo),
        ("GET", ["deployments", _, "statuses"]) => match id(1) {
            Some(deployment) => list_statuses(state, call, &repo, deployment),
            None => Reply::not_found(),
        },
        ("POST", ["deployments", _, "statuses"]) => match id(1) {
            Some(deployment) => create_status(state, call, &repo, deployment),
            None => Reply::not_found(),
        },
        ("GET", ["collaborators", user, "permission"]) => permission(state, user),
        ("GET", ["actions", "runs", _, "pending_deployments"]) => match id(2) {
            Some(run) => pending(state, call, &repo, run),
            None => Reply::not_found(),
        },
        ("POST", ["actions", "runs", _, "pending_deployments"]) => match id(2) {
            Some(run) => review(state, call, &repo, run),
            None => Reply::not_found(),
        },
        ("GET", ["pulls", _]) => match id(1) {
            Some(number) => pull(state, spec, call, number),
            None => Reply::not_found(),
        },
        _ => Reply::not_found(),
    }
}

/// Applies `per_page` / `page` and adds a `Link` header like GitHub's.
fn paginate(call: &Call<'_>, items: Vec<Value>) -> Reply {
    let (page, slice) = Page::of(call.query, 30, 100, items);
    let (per_page, last) = (page.per_page, page.last);
    let page = page.number;
    let mut reply = Reply::json(200, Value::Array(slice));
    let others: Vec<String> = call
        .query
        .iter()
        .filter(|(key, _)| key != "page" && key != "per_page")
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let link = |target: usize, rel: &str| {
        let mut query = others.clone();
        query.push(format!("per_page={per_page}"));
        query.push(format!("page={target}"));
        format!(
            "<{}{}?{}>; rel=\"{rel}\"",
            call.base,
            call.path,
            query.join("&")
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    if !links.is_empty() {
        reply.headers.push(("link".into(), links.join(", ")));
    }
    reply
}

fn list_comments(state: &mut State, call: &Call<'_>, repo: &str, issue: u64) -> Reply {
    if !state.pulls.contains_key(&issue) {
        return Reply::not_found();
    }
    let items = state
        .comments
        .iter()
        .filter(|c| c.issue == issue && c.repo == repo)
        .map(|c| comment_json(call.base, c))
        .collect();
    paginate(call, items)
}

fn body_too_long(body: &str) -> Option<Reply> {
    (body.chars().count() > MAX_COMMENT_CHARS).then(|| {
        Reply::validation(
            "Validation Failed",
            json!([{"resource": "IssueComment", "code": "custom", "field": "body",
                "message": format!("body is too long (maximum is {MAX_COMMENT_CHARS} characters)")}]),
        )
    })
}

fn create_comment(state: &mut State, call: &Call<'_>, repo: &str, issue: u64) -> Reply {
    if !state.pulls.contains_key(&issue) {
        return Reply::not_found();
    }
    let body = call.body["body"].as_str().unwrap_or_default().to_string();
    if let Some(reply) = body_too_long(&body) {
        return reply;
    }
    let id = state.next_id();
    let now = state.now();
    let comment = Comment {
        id,
        repo: repo.to_string(),
        issue,
        author: call.login.clone(),
        body,
        created_at: now.clone(),
        updated_at: now,
    };
    let json = comment_json(call.base, &comment);
    state.comments.push(comment);
    let mut reply = Reply::json(201, json);
    reply.headers.push((
        "location".into(),
        format!("{}/repos/{repo}/issues/comments/{id}", call.base),
    ));
    reply
}

fn comment_by_id(state: &mut State, call: &Call<'_>, id: u64) -> Reply {
    let Some(index) = state.comments.iter().position(|c| c.id == id) else {
        return Reply::not_found();
    };
    match call.method {
        "GET" => Reply::json(200, comment_json(call.base, &state.comments[index])),
        "DELETE" => {
            state.comments.remove(index);
            Reply {
                status: 204,
                body: None,
                headers: Vec::new(),
            }
        }
        _ => {
            let body = call.body["body"].as_str().unwrap_or_default().to_string();
            if let Some(reply) = body_too_long(&body) {
                return reply;
            }
            let now = state.now();
            let comment = &mut state.comments[index];
            comment.body = body;
            comment.updated_at = now;
            Reply::json(200, comment_json(call.base, comment))
        }
    }
}

fn list_deployments(state: &mut State, call: &Call<'_>) -> Reply {
    let filter = |name: &str| call.query(name).filter(|v| *v != "none");
    let items = state
        .deployments
        .iter()
        .rev()
        .filter(|d| filter("environment").is_none_or(|e| e == d.environment))
        .filter(|d| filter("sha").is_none_or(|v| v == d.sha))
        .filter(|d| filter("ref").is_none_or(|v| v == d.git_ref))
        .filter(|d| filter("task").is_none_or(|v| v == d.task))
        .map(|d| deployment_json(call.base, d))
        .collect();
    paginate(call, items)
}

fn resolve_ref(state: &State, git_ref: &str) -> Option<String> {
    let is_sha = git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit());
    if is_sha {
        return Some(git_ref.to_ascii_lowercase());
    }
    if let Some(pull) = state
        .pulls
        .values()
        .find(|p| p.head_ref == git_ref || format!("refs/pull/{}/head", p.number) == git_ref)
    {
        return Some(pull.head_sha.clone());
    }
    (git_ref == "main").then(|| "0".repeat(40))
}

fn create_deployment(state: &mut State, call: &Call<'_>, repo: &str) -> Reply {
    let body = &call.body;
    let git_ref = body["ref"].as_str().unwrap_or_default().to_string();
    let Some(sha) = resolve_ref(state, &git_ref) else {
        return Reply::validation(&format!("No ref found for: {git_ref}"), json!([]));
    };
    let environment = body["environment"]
        .as_str()
        .unwrap_or("production")
        .to_string();
    let production = body["production_environment"]
        .as_bool()
        .unwrap_or(environment == "production");
    let id = state.next_id();
    let created_at = state.now();
    let deployment = Deployment {
        id,
        repo: repo.to_string(),
        sha,
        git_ref,
        task: body["task"].as_str().unwrap_or("deploy").to_string(),
        payload: match &body["payload"] {
            Value::Null => json!({}),
            other => other.clone(),
        },
        description: body["description"].as_str().map(str::to_string),
        transient_environment: body["transient_environment"].as_bool().unwrap_or(false),
        production_environment: production,
        environment,
        creator: call.login.clone(),
        created_at,
    };
    let json = deployment_json(call.base, &deployment);
    state.deployments.push(deployment);
    Reply::json(201, json)
}

fn list_statuses(state: &mut State, call: &Call<'_>, repo: &str, deployment: u64) -> Reply {
    if !state.deployments.iter().any(|d| d.id == deployment) {
        return Reply::not_found();
    }
    let items = state
        .statuses
        .iter()
        .rev()
        .filter(|s| s.deployment_id == deployment)
        .map(|s| status_json(call.base, repo, s))
        .collect();
    paginate(call, items)
}

fn create_status(state: &mut State, call: &Call<'_>, repo: &str, deployment_id: u64) -> Reply {
    let Some(deployment) = state
        .deployments
        .iter()
        .find(|d| d.id == deployment_id)
        .cloned()
    else {
        return Reply::not_found();
    };
    let body = &call.body;
    let text = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    let state_name = text("state");
    let environment = body["environment"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| deployment.environment.clone());
    let log_url = match text("log_url") {
        url if url.is_empty() => text("target_url"),
        url => url,
    };
    let id = state.next_id();
    let created_at = state.now();
    let status = DeploymentStatus {
        id,
        deployment_id,
        state: state_name.clone(),
        description: text("description"),
        environment: environment.clone(),
        environment_url: text("environment_url"),
        log_url,
        creator: call.login.clone(),
        created_at,
    };
    let json = status_json(call.base, repo, &status);
    state.statuses.push(status);

    // `auto_inactive` (default true): a new success marks earlier successful deployments
    // of the same non-transient, non-production environment inactive.
    let auto_inactive = body["auto_inactive"].as_bool().unwrap_or(true);
    if state_name == "success" && auto_inactive {
        let earlier: Vec<u64> = state
            .deployments
            .iter()
            .filter(|d| {
                d.id != deployment_id
                    && d.environment == environment
                    && !d.transient_environment
                    && !d.production_environment
            })
            .filter(|d| {
                state
                    .statuses
                    .iter()
                    .rev()
                    .find(|s| s.deployment_id == d.id)
                    .is_some_and(|s| s.state == "success")
            })
            .map(|d| d.id)
            .collect();
        for earlier_id in earlier {
            let id = state.next_id();
            let created_at = state.now();
            state.statuses.push(DeploymentStatus {
                id,
                deployment_id: earlier_id,
                state: "inactive".into(),
                description: String::new(),
                environment: environment.clone(),
                environment_url: String::new(),
                log_url: String::new(),
                creator: call.login.clone(),
                created_at,
            });
        }
    }
    Reply::json(201, json)
}

fn permission(state: &State, user: &str) -> Reply {
    if state
        .unknown_users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(user))
    {
        return Reply::error(404, &format!("{user} is not a user"));
    }
    let role = state
        .roles
        .iter()
        .find(|(login, _)| login.eq_ignore_ascii_case(user))
        .map(|(_, role)| role.as_str())
        .unwrap_or("read");
    // `permission` is the legacy value: maintain → write, triage → read.
    let legacy = match role {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    };
    let rank = |r: &str| match r {
        "admin" => 5,
        "maintain" => 4,
        "write" => 3,
        "triage" => 2,
        "read" => 1,
        _ => 0,
    };
    let level = rank(role);
    let mut collaborator = simple_user(user);
    collaborator["role_name"] = json!(role);
    collaborator["permissions"] = json!({
        "pull": level >= 1, "triage": level >= 2, "push": level >= 3,
        "maintain": level >= 4, "admin": level >= 5
    });
    Reply::json(
        200,
        json!({"permission": legacy, "role_name": role, "user": collaborator}),
    )
}

fn pending(state: &mut State, call: &Call<'_>, repo: &str, run: u64) -> Reply {
    let polls = state.polls.entry(run).or_insert(0);
    *polls += 1;
    let polls = *polls;
    let started = state.now();
    let items: Vec<Value> = state
        .pending
        .get(&run)
        .map(|envs| {
            envs.iter()
                .filter(|e| e.reviewed.is_none() && polls > e.visible_after_polls)
                .map(|e| {
                    let can_approve = e.reviewers.is_empty()
                        || e.reviewers.iter().any(|r| r.eq_ignore_ascii_case(&call.login));
                    let reviewers: Vec<Value> = e
                        .reviewers
                        .iter()
                        .map(|r| json!({"type": "User", "reviewer": simple_user(r)}))
                        .collect();
                    json!({
                        "environment": {
                            "id": e.id,
                            "node_id": format!("EN_kwDO{}", e.id),
                            "name": e.name,
                            "url": format!("{}/repos/{repo}/environments/{}", call.base, e.name),
                            "html_url": format!("https://github.com/{repo}/deployments/activity_log?environments_filter={}", e.name),
                        },
                        "wait_timer": 0,
                        "wait_timer_started_at": started,
                        "current_user_can_approve": can_approve,
                        "reviewers": reviewers,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Reply::json(200, Value::Array(items))
}

fn review(state: &mut State, call: &Call<'_>, repo: &str, run: u64) -> Reply {
    let body = &call.body;
    let ids: Vec<u64> = body["environment_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let review_state = body["state"].as_str().unwrap_or_default().to_string();
    let polls = state.polls.get(&run).copied().unwrap_or(0);
    let login = call.login.clone();
    let Some(envs) = state.pending.get_mut(&run) else {
        return Reply::validation("No pending deployments for this run", json!([]));
    };
    for id in &ids {
        let Some(env) = envs
            .iter()
            .find(|e| e.id == *id && e.reviewed.is_none() && polls > e.visible_after_polls)
        else {
            return Reply::validation(
                &format!("Environment {id} is not waiting for a review in this run"),
                json!([]),
            );
        };
        if !env.reviewers.is_empty()
            && !env.reviewers.iter().any(|r| r.eq_ignore_ascii_case(&login))
        {
            return Reply::validation(
                &format!(
                    "{login} is not a required reviewer of environment {}",
                    env.name
                ),
                json!([]),
            );
        }
    }
    let mut names = Vec::new();
    for env in envs.iter_mut().filter(|e| ids.contains(&e.id)) {
        env.reviewed = Some(review_state.clone());
        names.push(env.name.clone());
    }
    state.reviews.push(Review {
        run_id: run,
        environment_ids: ids,
        state: review_state,
        comment: body["comment"].as_str().unwrap_or_default().to_string(),
        by: login.clone(),
    });
    let mut created = Vec::new();
    for name in names {
        let id = state.next_id();
        let created_at = state.now();
        let deployment = Deployment {
            id,
            repo: repo.to_string(),
            sha: "0".repeat(40),
            git_ref: "main".into(),
            task: "deploy".into(),
            payload: json!({}),
            description: None,
            transient_environment: false,
            production_environment: false,
            environment: name,
            creator: login.clone(),
            created_at,
        };
        created.push(deployment_json(call.base, &deployment));
    }
    Reply::json(200, Value::Array(created))
}

fn pull(state: &State, spec: &Spec, call: &Call<'_>, number: u64) -> Reply {
    let Some(pull) = state.pulls.get(&number) else {
        return Reply::not_found();
    };
    // Start from the official example and override what the scenario defines.
    let Some(mut json) = spec.example("pull-request").cloned() else {
        return Reply::error(500, "the OpenAPI description has no pull-request example");
    };
    let author = simple_user(&pull.author);
    let repo = &pull.repo;
    json["number"] = json!(number);
    json["id"] = json!(number + 1_000_000);
    json["state"] = json!(pull.state);
    json["title"] = json!(pull.title);
    json["user"] = author.clone();
    json["url"] = json!(format!("{}/repos/{repo}/pulls/{number}", call.base));
    json["html_url"] = json!(format!("https://github.com/{repo}/pull/{number}"));
    json["head"]["sha"] = json!(pull.head_sha);
    json["head"]["ref"] = json!(pull.head_ref);
    json["head"]["user"] = author;
    let head_owner = pull.head_repo.split('/').next().unwrap_or_default();
    json["head"]["label"] = json!(format!("{head_owner}:{}", pull.head_ref));
    json["head"]["repo"] = repo_json(&json["head"]["repo"], &pull.head_repo, repo);
    json["base"]["repo"] = repo_json(&json["base"]["repo"], repo, repo);
    let base_owner = repo.split('/').next().unwrap_or_default();
    json["base"]["user"] = simple_user(base_owner);
    json["base"]["label"] = json!(format!("{base_owner}:main"));
    json["base"]["ref"] = json!("main");
    json["merged"] = json!(pull.merged);
    if pull.state == "closed" {
        json["closed_at"] = json!("2026-01-02T00:00:00Z");
        if pull.merged {
            json["merged_at"] = json!("2026-01-02T00:00:00Z");
            json["merged_by"] = simple_user(base_owner);
        } else {
            json["merged_at"] = Value::Null;
            json["merged_by"] = Value::Null;
        }
    } else {
        json["closed_at"] = Value::Null;
        json["merged_at"] = Value::Null;
        json["merged_by"] = Value::Null;
    }
    // The official example lists a team without `type`, which its own schema requires.
    json["requested_teams"] = json!([]);
    Reply::json(200, json)
}

/// The example `repository` object rewritten as `full_name` (a fork of `base` when
/// they differ). Ids are stable per name, so the head and base of a same-repository
/// PR carry the same id, as on GitHub.
fn repo_json(example: &Value, full_name: &str, base: &str) -> Value {
    let mut repo = example.clone();
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
    repo["id"] = json!(stable_id(&format!(
        "repo:{}",
        full_name.to_ascii_lowercase()
    )));
    repo["node_id"] = json!(format!("R_kgDO{}", repo["id"]));
    repo["name"] = json!(name);
    repo["full_name"] = json!(full_name);
    repo["owner"] = simple_user(owner);
    repo["fork"] = json!(!full_name.eq_ignore_ascii_case(base));
    repo["html_url"] = json!(format!("https://github.com/{full_name}"));
    repo["url"] = json!(format!("https://api.github.com/repos/{full_name}"));
    repo
}
