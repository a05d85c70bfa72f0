//! # cli — the pull-request lifecycle of preview environments
//!
//! Library behind the `preview` binary:
//!
//! - [`comment`]: one comment per PR, found by the hidden marker
//!   [`comment::PR_COMMENT_MARKER`], rendered by the pure [`comment::render_comment`]
//!   (status ✅ / ❌ / ⏳ / 🧹, URLs, commit, image digests, the plan in a collapsed
//!   `<details>` block truncated to GitHub's 65,536-character limit) and upserted with
//!   [`comment::upsert_comment`] (pagination, duplicate cleanup, never touches comments
//!   by other authors).
//! - [`deployment`]: GitHub Deployments (`preview-pr-N`) and their statuses;
//!   [`deployment::deactivate`] marks an environment's deployments inactive on PR close.
//! - [`gate`]: the maintainer check — the PR author, head commit and head repository
//!   come from `GET pulls/{n}`, the run's actor from `github.triggering_actor`; the
//!   decision ([`gate::decide`], pure) approves only a same-repository PR at the built
//!   commit whose author and actor both have admin or maintain permission. Those
//!   pending deployments are approved after polling, others get a comment
//!   ([`gate::GATE_COMMENT_MARKER`]).
//! - [`head`]: `verify-head`, the deploy's check that the PR head is still the commit
//!   the images were built from.
//! - [`sweep`]: destroys the previews of closed or merged PRs through the `stacks`
//!   binary; an unknown PR state (API error, timeout, rate limit) never destroys.
//! - [`health`]: GET URLs with capped exponential backoff until they answer.
//! - [`github`]: the small REST client (typed bodies, `Link` pagination, retries on 5xx
//!   and rate limits, one-line errors that say what to check).
//!
//! Tokens come only from the environment ([`env::Environment`]) and are wrapped in
//! [`env::GithubToken`], whose `Debug` is redacted and which has no `Display`.
//!
//! Exit codes of the binary: [`error::EXIT_OK`] (0), [`error::EXIT_FAILURE`] (1: API
//! error, unhealthy URL, gate timeout, moved PR head, incomplete sweep), [`error::EXIT_USAGE`] (2: bad flags or missing
//! `GITHUB_TOKEN`, nothing sent). `gate` exits 0 for both decisions.

pub mod cli;
pub mod comment;
pub mod deployment;
pub mod env;
pub mod error;
pub mod gate;
pub mod github;
pub mod head;
pub mod health;
pub mod sweep;
pub mod validate;

pub use cli::{Cli, run};
pub use env::{Environment, GithubToken};
pub use error::CliError;
