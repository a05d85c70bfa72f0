//! # github-fake
//!
//! A local HTTP server (hyper, `127.0.0.1:0`) that implements the GitHub REST endpoints
//! used by the `preview` CLI, with in-memory state, pagination (`Link` headers),
//! configurable users / permissions / pull requests / pending deployments, and failure
//! injection (rate limits, secondary rate limits, 5xx, 401, 422).
//!
//! Every request and every response is checked against GitHub's official REST OpenAPI
//! description, read at run time from `../shared/data/openapi/github-subset.json`
//! (relative to the workspace root) or from `$PREVIEW_GITHUB_OPENAPI`. The file is never
//! copied into this project. Checks cover path and query parameters, request bodies,
//! response bodies per status, and the contract headers (`Accept`,
//! `X-GitHub-Api-Version`, `User-Agent`). Any problem is recorded in
//! [`GithubFake::violations`] and turned into a 422 (bad request) or 500 (bad response
//! from the fake itself), so the client sees it too. Tests assert the list is empty.
//!
//! ```no_run
//! # async fn demo() -> Result<(), github_fake::FakeError> {
//! let fake = github_fake::GithubFake::start().await?;
//! fake.add_pull(7, "alice", &"a".repeat(40));
//! fake.set_role("alice", "maintain");
//! // point the client at fake.base_url() …
//! assert!(fake.violations().is_empty());
//! # Ok(()) }
//! ```

mod model;
mod openapi;
mod routes;
mod server;

/// The JSON-schema validator (shared with the other fakes, see [`openapi_fake`]).
pub use openapi_fake::schema;

use std::net::SocketAddr;
use std::path::Path;

pub use model::{
    Comment, Deployment, DeploymentStatus, Fault, PendingEnvironment, Pull, RecordedRequest, Review,
};
pub use openapi::{OPENAPI_ENV, Spec, SpecError, default_spec_path};
pub use routes::MAX_COMMENT_CHARS;
pub use server::API_VERSION;

use model::State;

/// Errors starting the fake.
pub type FakeError = openapi_fake::fake::StartError;

/// A running fake GitHub API. Stops when dropped.
#[derive(Debug)]
pub struct GithubFake {
    fake: openapi_fake::fake::Fake<State>,
}

impl GithubFake {
    /// Starts a fake with the default description location (see [`default_spec_path`]).
    pub async fn start() -> Result<Self, FakeError> {
        Self::start_with_spec(&default_spec_path()).await
    }

    /// Starts a fake validating against the description at `spec_path`.
    pub async fn start_with_spec(spec_path: &Path) -> Result<Self, FakeError> {
        let spec = openapi::load(spec_path).map_err(|source| FakeError::Spec {
            api: "GitHub",
            env: OPENAPI_ENV,
            source,
        })?;
        let fake =
            openapi_fake::fake::Fake::start(spec, "github-fake", |shared, request| async move {
                server::respond(&shared, request).await
            })
            .await?;
        Ok(Self { fake })
    }

    /// `http://127.0.0.1:PORT` — use as `GITHUB_API_URL`.
    pub fn base_url(&self) -> String {
        self.fake.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.fake.addr()
    }

    /// The repository the fake serves (`acme/site` by default); others answer 404.
    pub fn repo(&self) -> String {
        self.fake.lock().repo.clone()
    }

    /// Serves `owner/repo` instead.
    pub fn set_repo(&self, repo: &str) {
        self.fake.lock().repo = repo.to_string();
    }

    /// Login used for any token not registered with [`Self::add_token`]
    /// (`github-actions[bot]` by default, like `GITHUB_TOKEN`).
    pub fn set_default_login(&self, login: &str) {
        self.fake.lock().default_login = login.to_string();
    }

    /// Registers `token` as belonging to `login`.
    pub fn add_token(&self, token: &str, login: &str) {
        self.fake
            .lock()
            .tokens
            .insert(token.to_string(), login.to_string());
    }

    /// When true, unregistered tokens get 401 Bad credentials.
    pub fn require_known_token(&self, required: bool) {
        self.fake.lock().require_known_token = required;
    }

    /// Adds (or replaces) an open pull request.
    pub fn add_pull(&self, number: u64, author: &str, head_sha: &str) {
        let mut state = self.fake.lock();
        let repo = state.repo.clone();
        state.pulls.insert(
            number,
            Pull {
                head_repo: repo.clone(),
                repo,
                number,
                author: author.to_string(),
                head_sha: head_sha.to_string(),
                head_ref: format!("feature-{number}"),
                title: format!("Change #{number}"),
                state: "open".into(),
                merged: false,
            },
        );
    }

    /// Closes a pull request (`merged`: merged into the base branch, else closed
    /// without merging).
    pub fn close_pull(&self, number: u64, merged: bool) {
        if let Some(pull) = self.fake.lock().pulls.get_mut(&number) {
            pull.state = "closed".into();
            pull.merged = merged;
        }
    }

    /// Moves a pull request's head to another commit (a new push).
    pub fn set_pull_head(&self, number: u64, head_sha: &str) {
        if let Some(pull) = self.fake.lock().pulls.get_mut(&number) {
            pull.head_sha = head_sha.to_string();
        }
    }

    /// Makes the head branch of a pull request live in `owner/repo` (a fork) instead
    /// of the base repository.
    pub fn set_pull_head_repo(&self, number: u64, head_repo: &str) {
        if let Some(pull) = self.fake.lock().pulls.get_mut(&number) {
            pull.head_repo = head_repo.to_string();
        }
    }

    /// Sets title and head branch of a pull request (untrusted strings in real life).
    pub fn set_pull_strings(&self, number: u64, title: &str, head_ref: &str) {
        if let Some(pull) = self.fake.lock().pulls.get_mut(&number) {
            pull.title = title.to_string();
            pull.head_ref = head_ref.to_string();
        }
    }

    /// Sets a user's role on the repository: `admin`, `maintain`, `write`, `triage`,
    /// `read` or `none`. Users without a role read as `read` (public repository).
    pub fn set_role(&self, login: &str, role: &str) {
        self.fake
            .lock()
            .roles
            .insert(login.to_string(), role.to_string());
    }

    /// Makes the permission endpoint answer 404 for `login`.
    pub fn set_unknown_user(&self, login: &str) {
        self.fake.lock().unknown_users.push(login.to_string());
    }

    /// Makes workflow run `run_id` wait on environment `name` (id `id`); it shows up in
    /// `pending_deployments` after `visible_after_polls` GETs. `reviewers` limits who may
    /// approve (empty: anyone).
    pub fn add_pending_environment(
        &self,
        run_id: u64,
        id: u64,
        name: &str,
        visible_after_polls: u32,
        reviewers: &[&str],
    ) {
        self.fake
            .lock()
            .pending
            .entry(run_id)
            .or_default()
            .push(PendingEnvironment {
                id,
                name: name.to_string(),
                visible_after_polls,
                reviewers: reviewers.iter().map(|r| r.to_string()).collect(),
                reviewed: None,
            });
    }

    /// Creates a comment directly (scenario set-up); returns its id.
    pub fn seed_comment(&self, issue: u64, author: &str, body: &str) -> u64 {
        let mut state = self.fake.lock();
        let id = state.next_id();
        let now = state.now();
        let repo = state.repo.clone();
        state.comments.push(Comment {
            id,
            repo,
            issue,
            author: author.to_string(),
            body: body.to_string(),
            created_at: now.clone(),
            updated_at: now,
        });
        id
    }

    /// Comments on `issue`, oldest first.
    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.fake
            .lock()
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    /// All deployments, oldest first.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.fake.lock().deployments.clone()
    }

    /// Statuses of a deployment, oldest first.
    pub fn statuses(&self, deployment_id: u64) -> Vec<DeploymentStatus> {
        self.fake
            .lock()
            .statuses
            .iter()
            .filter(|s| s.deployment_id == deployment_id)
            .cloned()
            .collect()
    }

    /// Reviews of pending deployments received so far.
    pub fn reviews(&self) -> Vec<Review> {
        self.fake.lock().reviews.clone()
    }

    /// Queues a failure for the next matching request(s).
    pub fn inject(&self, fault: Fault) {
        self.fake.lock().faults.push_back(fault);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fake.lock().requests.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.fake.lock().requests.clear();
    }

    /// Every schema / contract violation seen, one line each. Must be empty in tests.
    pub fn violations(&self) -> Vec<String> {
        self.fake.lock().violations.clone()
    }

    /// Panics with every violation listed when there is any. Call at the end of a test.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "github-fake recorded {} OpenAPI/contract violation(s):\n{}",
            violations.len(),
            violations.join("\n")
        );
    }

    /// The loaded OpenAPI description (for extra checks in tests).
    pub fn validate_against(&self, schema_pointer: &str, value: &serde_json::Value) -> Vec<String> {
        self.fake.spec().validate_at(schema_pointer, value)
    }
}
