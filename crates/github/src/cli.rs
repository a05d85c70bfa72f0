//! Command-line surface (clap) and the thin handlers that connect it to the library.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::comment::{
    AuthorFilter, CommentContent, CommentStatus, DEFAULT_COMMENT_AUTHOR, Labelled, Links,
    PR_COMMENT_MARKER, UpsertAction, WhenMissing, render_comment, upsert_comment_with,
};
use crate::deployment::{self, DeploymentState, NewDeployment};
use crate::env::{APPROVER_TOKEN_VAR, Environment};
use crate::error::CliError;
use crate::gate::{Decision, GateRequest, PollOptions, RunActor, run_gate};
use crate::github::{GithubClient, RepoSlug};
use crate::head;
use crate::health::{Attempt, ExpectRange, HealthOptions, check_urls};
use crate::validate;

/// `--version`: the package version and the commit it was built from
/// (`-dirty` when tracked files differed; `unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GIT_COMMIT"),
    ")"
);

const EXAMPLES: &str = "\
Environment:
  GITHUB_REPOSITORY       default of --repo (set by GitHub Actions)
  GITHUB_RUN_ID           default of `gate --run-id` (set by GitHub Actions)
  GITHUB_TOKEN            token for the GitHub API (required by every command but `health`;
                          never printed)
  PREVIEW_APPROVER_TOKEN  token of a required reviewer, used by `gate` only to approve
                          (GITHUB_TOKEN cannot approve deployments); falls back to GITHUB_TOKEN
  GITHUB_API_URL          API base URL (default https://api.github.com)
  GITHUB_SERVER_URL       web base URL for links (default https://github.com)
  PREVIEW_LOG, RUST_LOG   log filter for stderr (default warn), e.g. debug; NO_COLOR turns colours off

Exit codes:
  0  done (for `gate`, both \"approved\" and \"a maintainer must approve\")
  1  failed: GitHub API error, unhealthy URL, gate timed out or cannot approve
  2  usage or configuration error (bad flag, GITHUB_TOKEN missing); nothing was sent

Examples:
  # Post the plan before approval is requested (creates or updates the one comment)
  preview comment --repo aphiria/aphiria.com --pr 123 --status pending \\
      --sha \"$HEAD_SHA\" --web-digest \"$WEB\" --api-digest \"$API\" --plan-file plan.md \\
      --message 'Waiting for a maintainer to approve the preview environment.'

  # Track the deployment
  id=$(preview deployment create --repo aphiria/aphiria.com --pr 123 --sha \"$HEAD_SHA\")
  preview deployment status --repo aphiria/aphiria.com --id \"$id\" --state in_progress
  preview deployment status --repo aphiria/aphiria.com --id \"$id\" --state success \\
      --environment-url https://123.pr.aphiria.com

  # Approve automatically when the PR author and the run's actor are maintainers and the
  # head branch is in this repository (run next to the deploy job)
  preview gate --repo aphiria/aphiria.com --pr 123 --run-id \"$GITHUB_RUN_ID\" --sha \"$BUILT_SHA\" \\
      --triggering-actor \"$GITHUB_TRIGGERING_ACTOR\" --json

  # Wait for the environment to answer
  preview health --url https://123.pr.aphiria.com --url https://123.pr-api.aphiria.com/health

  # Right before applying: the PR head must still be the commit the images were built from
  preview verify-head --repo aphiria/aphiria.com --pr 123 --sha \"$BUILT_SHA\"

  # On PR close
  preview deployment deactivate --repo aphiria/aphiria.com --environment preview-pr-123

  # Scheduled: destroy the previews of closed PRs (an unknown PR state never destroys)
  preview sweep --repo aphiria/aphiria.com --dry-run --json
";

/// `preview`: the pull-request side of preview environments — one PR comment, GitHub
/// Deployments, the maintainer approval gate and health checks.
#[derive(Debug, Parser)]
#[command(
    name = "preview",
    version = VERSION,
    about = "Pull-request lifecycle for preview environments: PR comment, deployments, approval gate, health checks",
    long_about = "Pull-request lifecycle for preview environments.\n\n\
Posts and updates one comment per pull request (found by a hidden marker), records GitHub \
Deployments and their statuses, approves the protected environment automatically for PRs \
by maintainers (others wait for a maintainer), and checks that the deployed URLs answer.",
    after_long_help = EXAMPLES,
    after_help = "Run `preview --help` for environment variables, exit codes and examples."
)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Attempts per GitHub API request (retries 5xx and rate limits with backoff).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub github_attempts: Option<u32>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the one preview comment on a pull request.
    #[command(
        after_help = "Examples:\n  stacks --json outputs preview-pr --pr 7 > outputs.json   # every <route>Url and <key>Image\n  preview comment --repo o/r --pr 7 --status success --sha \"$SHA\" \\\n      --outputs-file outputs.json --plan-file plan.md\n  preview comment --repo o/r --pr 7 --status pending --sha \"$SHA\" \\\n      --image api=\"$API\" --image worker=\"$WORKER\" --url app=https://7.pr.example.com\n\n--web-url/--api-url/--web-digest/--api-digest are --url web=/api= and --image web=/api=."
    )]
    Comment(CommentArgs),
    /// GitHub Deployments: create, set status, deactivate an environment.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Approve the pending deployment if the PR author and the run's actor are maintainers
    /// and the head branch is in this repository (never for forks), at the built commit;
    /// otherwise post a comment asking a maintainer to approve.
    #[command(
        after_help = "Example:\n  preview gate --repo o/r --pr 7 --run-id \"$GITHUB_RUN_ID\" --sha \"$BUILT_SHA\" \\\n      --triggering-actor \"$GITHUB_TRIGGERING_ACTOR\" --environment preview --timeout 120s --json\n\nExit code 0 for both decisions; read `decision` from --json (approve | manual_approval_required)."
    )]
    Gate(GateArgs),
    /// Check that a PR is open and its head is the commit the images were built from;
    /// fails naming both SHAs otherwise (run at the start of a deploy and right before
    /// `stacks up`).
    #[command(
        name = "verify-head",
        after_help = "Example:\n  preview verify-head --repo o/r --pr 7 --sha \"$BUILT_SHA\"\n\nExit code 0 when the head is that commit, 1 when it moved, the PR is closed, or GitHub cannot say."
    )]
    VerifyHead(VerifyHeadArgs),
    /// Destroy the previews of closed or merged PRs: lists `preview-pr-N` stacks with
    /// `stacks state list`, asks GitHub for each PR's state, runs `stacks destroy` for
    /// the closed ones. An unknown state (API error, timeout, rate limit) never destroys.
    #[command(
        after_help = "Example:\n  preview sweep --repo o/r --dry-run --json\n  preview sweep --repo o/r --stacks-bin tools/stacks --lock-timeout 5m\n\nThe stacks binary gets this process's environment (PREVIEW_BACKEND, KUBECONFIG, PREVIEW_STATE_PASSPHRASE, …) without GITHUB_TOKEN and PREVIEW_APPROVER_TOKEN.\nExit code 0 when every PR's state was known and every destroy succeeded; 1 otherwise (after the report); nothing is destroyed for a PR whose state is unknown."
    )]
    Sweep(SweepArgs),
    /// GET URLs with retries and backoff until they answer in the expected range.
    #[command(
        after_help = "Example:\n  preview health --url https://7.pr.example.com --url https://7.pr-api.example.com/health --timeout 300s --interval 5s --expect 200-399"
    )]
    Health(HealthArgs),
    /// Print a shell completion script, e.g. `preview completions bash > /etc/bash_completion.d/preview`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn repo_parser(text: &str) -> Result<RepoSlug, String> {
    text.parse()
}

/// `preview comment`.
#[derive(Debug, Args)]
pub struct CommentArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Pull request number.
    #[arg(long, value_parser = validate::pr_number)]
    pub pr: u64,
    /// ✅ success, ❌ failure, ⏳ pending, 🧹 destroyed.
    #[arg(long, value_enum)]
    pub status: CommentStatus,
    /// The `stacks outputs --json` of the stack: every `<route>Url` and `<key>Image`
    /// output is shown (the flags below win for the same label).
    #[arg(long, value_name = "FILE")]
    pub outputs_file: Option<PathBuf>,
    /// A URL of the environment by route, e.g. `app=https://7.pr.example.com` (repeat per route).
    #[arg(long = "url", value_name = "LABEL=URL", value_parser = crate::comment::url_flag)]
    pub urls: Vec<Labelled>,
    /// An image by key, pinned by digest, e.g. `worker=NAME@sha256:…` (repeat per key).
    #[arg(long = "image", value_name = "KEY=REF", value_parser = crate::comment::image_flag)]
    pub images: Vec<Labelled>,
    /// Web URL of the environment (same as --url web=URL; --url wins).
    #[arg(long, value_parser = validate::http_url)]
    pub web_url: Option<String>,
    /// API URL of the environment (same as --url api=URL; --url wins).
    #[arg(long, value_parser = validate::http_url)]
    pub api_url: Option<String>,
    /// Commit SHA deployed.
    #[arg(long, value_parser = validate::commit_sha)]
    pub sha: Option<String>,
    /// Web image by digest, NAME@sha256:… (same as --image web=REF; --image wins).
    #[arg(long, value_parser = validate::pinned_image)]
    pub web_digest: Option<String>,
    /// API image by digest, NAME@sha256:… (same as --image api=REF; --image wins).
    #[arg(long, value_parser = validate::pinned_image)]
    pub api_digest: Option<String>,
    /// Markdown plan to show in a collapsed block (truncated to fit GitHub's limit).
    #[arg(long, value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
    /// The `--json` output of a failed `stacks up`: each failed step's failure
    /// digest (reason, events, terminations, last log lines) is shown collapsed.
    /// An empty file (the run failed before printing) adds nothing.
    #[arg(long, value_name = "FILE")]
    pub failure_file: Option<PathBuf>,
    /// Id of the saved plan shown or applied (`sha256:…`, from `stacks preview --out` / `stacks up --plan`).
    #[arg(long, value_parser = validate::plan_id)]
    pub plan_id: Option<String>,
    /// Text under the headline.
    #[arg(long)]
    pub message: Option<String>,
    /// Link to the workflow run / logs.
    #[arg(long, value_parser = validate::http_url)]
    pub log_url: Option<String>,
    /// Only comments by this login count as ours (`*` for any author).
    #[arg(long, default_value = DEFAULT_COMMENT_AUTHOR, env = "PREVIEW_COMMENT_AUTHOR")]
    pub comment_author: String,
    /// Only update an existing comment; do nothing if the PR has none (cleanup of PRs
    /// that never had a preview).
    #[arg(long)]
    pub if_exists: bool,
}

/// `preview deployment …`.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Create a deployment at a commit; prints its id.
    Create(DeploymentCreateArgs),
    /// Add a status to a deployment.
    Status(DeploymentStatusArgs),
    /// Mark every deployment of an environment inactive (PR closed).
    Deactivate(DeploymentDeactivateArgs),
}

/// `preview deployment create`.
#[derive(Debug, Args)]
pub struct DeploymentCreateArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Pull request number (environment defaults to preview-pr-N).
    #[arg(long, value_parser = validate::pr_number)]
    pub pr: Option<u64>,
    /// Full commit SHA to deploy (the PR's head SHA).
    #[arg(long, value_parser = validate::full_commit_sha)]
    pub sha: String,
    /// Environment name (default preview-pr-N).
    #[arg(long, value_parser = validate::environment_name)]
    pub environment: Option<String>,
    /// A production deployment (not transient).
    #[arg(long)]
    pub production: bool,
    /// Description (≤ 140 characters).
    #[arg(long)]
    pub description: Option<String>,
}

/// `preview deployment status`.
#[derive(Debug, Args)]
pub struct DeploymentStatusArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Deployment id (from `deployment create`).
    #[arg(long)]
    pub id: u64,
    /// New state.
    #[arg(long, value_enum)]
    pub state: DeploymentState,
    /// Where the environment is reachable (with success).
    #[arg(long, value_parser = validate::http_url)]
    pub environment_url: Option<String>,
    /// Where the logs are (with failure).
    #[arg(long, value_parser = validate::http_url)]
    pub log_url: Option<String>,
    /// Description (≤ 140 characters).
    #[arg(long)]
    pub description: Option<String>,
}

/// `preview deployment deactivate`.
#[derive(Debug, Args)]
pub struct DeploymentDeactivateArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Environment whose deployments become inactive, e.g. preview-pr-123.
    #[arg(long, value_parser = validate::environment_name)]
    pub environment: String,
}

/// `preview gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Pull request number (from the event or workflow input — never from names).
    #[arg(long, value_parser = validate::pr_number)]
    pub pr: u64,
    /// Workflow run whose deployment waits for approval (`$GITHUB_RUN_ID`).
    #[arg(long, env = "GITHUB_RUN_ID")]
    pub run_id: u64,
    /// Protected environment to approve.
    #[arg(long, default_value = "preview", value_parser = validate::environment_name)]
    pub environment: String,
    /// Commit the images were built from; the approval is bound to it (no automatic
    /// approval if the PR head moved).
    #[arg(long, value_parser = validate::full_commit_sha)]
    pub sha: String,
    /// Who started this run: `$GITHUB_TRIGGERING_ACTOR` (`github.triggering_actor`).
    /// Must be a maintainer too, unless it is the --dispatcher.
    #[arg(long, value_name = "LOGIN", value_parser = validate::login)]
    pub triggering_actor: String,
    /// The account whose token only the default branch's publishing workflow holds.
    /// When it triggered the run, --build-actor (the login that started the build it
    /// published) must be a maintainer instead.
    #[arg(long, value_name = "LOGIN", value_parser = validate::login)]
    pub dispatcher: Option<String>,
    /// Who started the build (`github.event.workflow_run.triggering_actor.login` in the
    /// publishing workflow); counts only when the --dispatcher triggered this run.
    #[arg(long, value_name = "LOGIN", value_parser = validate::login)]
    pub build_actor: Option<String>,
    /// Give up waiting for the environment to become pending after this long.
    #[arg(long, default_value = "120s", value_parser = validate::duration)]
    pub timeout: Duration,
    /// First wait between polls (doubles, capped by --max-poll-interval).
    #[arg(long, default_value = "2s", value_parser = validate::duration)]
    pub poll_interval: Duration,
    /// Longest wait between polls.
    #[arg(long, default_value = "15s", value_parser = validate::duration)]
    pub max_poll_interval: Duration,
    /// Only comments by this login count as ours (`*` for any author).
    #[arg(long, default_value = DEFAULT_COMMENT_AUTHOR, env = "PREVIEW_COMMENT_AUTHOR")]
    pub comment_author: String,
}

/// `preview verify-head`.
#[derive(Debug, Args)]
pub struct VerifyHeadArgs {
    /// Repository, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Pull request number.
    #[arg(long, value_parser = validate::pr_number)]
    pub pr: u64,
    /// Full SHA of the commit the images were built from.
    #[arg(long, value_parser = validate::full_commit_sha)]
    pub sha: String,
}

/// `preview sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Repository whose PRs the `preview-pr-N` stacks belong to, OWNER/REPO.
    #[arg(long, value_parser = repo_parser, env = "GITHUB_REPOSITORY")]
    pub repo: RepoSlug,
    /// Only list what would be destroyed.
    #[arg(long)]
    pub dry_run: bool,
    /// The `stacks` binary (default: `stacks` on PATH).
    #[arg(long, value_name = "PATH", default_value = "stacks")]
    pub stacks_bin: PathBuf,
    /// How long each `stacks destroy` waits for a stack another run holds.
    #[arg(long, default_value = "2m", value_parser = validate::duration)]
    pub lock_timeout: Duration,
}

/// `preview health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// URL to check (repeat for several; checked concurrently).
    #[arg(long = "url", required = true, value_parser = validate::http_url)]
    pub urls: Vec<String>,
    /// Deadline per URL.
    #[arg(long, default_value = "300s", value_parser = validate::duration)]
    pub timeout: Duration,
    /// First wait between attempts (doubles, capped by --max-interval).
    #[arg(long, default_value = "5s", value_parser = validate::duration)]
    pub interval: Duration,
    /// Longest wait between attempts.
    #[arg(long, default_value = "30s", value_parser = validate::duration)]
    pub max_interval: Duration,
    /// Timeout of one request.
    #[arg(long, default_value = "10s", value_parser = validate::duration)]
    pub request_timeout: Duration,
    /// Accepted status codes, e.g. 200-399 or 204.
    #[arg(long, default_value = "200-399")]
    pub expect: ExpectRange,
}

/// Writes one line of the result. A reader that went away (`preview … | head -1`)
/// ends the output quietly: the command's outcome stands.
fn write_line(out: &mut dyn Write, line: &str) -> Result<(), CliError> {
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Output),
    }
}

fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    write_line(out, &text)
}

fn client(env: &Environment, attempts: Option<u32>) -> Result<GithubClient, CliError> {
    let mut retry = env.retry;
    if let Some(attempts) = attempts {
        retry.max_attempts = attempts;
    }
    Ok(GithubClient::new(&env.api_url, env.token.clone(), retry)?)
}

/// Runs a parsed command. Results go to `out`; progress to `err`.
pub async fn run(
    cli: Cli,
    env: &Environment,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    match cli.command {
        Command::Comment(args) => comment(args, cli.json, cli.github_attempts, env, out).await,
        Command::Deployment(command) => {
            deployment(command, cli.json, cli.github_attempts, env, out).await
        }
        Command::Gate(args) => gate(args, cli.json, cli.github_attempts, env, out).await,
        Command::VerifyHead(args) => {
            verify_head(args, cli.json, cli.github_attempts, env, out).await
        }
        Command::Sweep(args) => sweep(args, cli.json, cli.github_attempts, env, out, err).await,
        Command::Health(args) => health(args, cli.json, out, err).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Into memory first: clap_complete panics when a write fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "preview", &mut script);
            write_line(out, String::from_utf8_lossy(&script).trim_end())
        }
    }
}

async fn verify_head(
    args: VerifyHeadArgs,
    json: bool,
    attempts: Option<u32>,
    env: &Environment,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = client(env, attempts)?;
    let check = head::verify_head(&client, &args.repo, args.pr, &args.sha).await?;
    if json {
        return write_json(out, &check);
    }
    write_line(
        out,
        &format!(
            "verify-head: {}#{} is open at {}, the commit the images were built from",
            check.repo, check.pr, check.sha
        ),
    )
}

async fn sweep(
    args: SweepArgs,
    json: bool,
    attempts: Option<u32>,
    env: &Environment,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::sweep::{StacksCommand, SweepAction, SweepOptions};
    let client = client(env, attempts)?;
    // Progress is best effort; a closed stderr must not stop the sweep.
    let mut log = |line: &str| {
        let _ = writeln!(err, "{line}");
    };
    let report = crate::sweep::sweep(
        &client,
        &args.repo,
        &StacksCommand::new(&args.stacks_bin),
        SweepOptions {
            dry_run: args.dry_run,
            lock_timeout: args.lock_timeout,
        },
        &mut log,
    )
    .await
    .map_err(|e| CliError::Sweep(format!("sweep: nothing destroyed: {e}")))?;
    let summary = report.summary;
    if json {
        write_json(out, &report)?;
    } else {
        for v in &report.stacks {
            let what = match (v.action, v.destroyed) {
                (SweepAction::Keep, _) => "kept",
                (SweepAction::Unknown, _) => "kept (state unknown)",
                (SweepAction::Destroy, None) => "would destroy",
                (SweepAction::Destroy, Some(true)) => "destroyed",
                (SweepAction::Destroy, Some(false)) => "DESTROY FAILED",
            };
            let error = v
                .error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default();
            write_line(
                out,
                &format!(
                    "sweep: {} (PR #{}): {what} — {}{error}",
                    v.stack, v.pr, v.reason
                ),
            )?;
        }
        write_line(
            out,
            &format!(
                "sweep: {} kept, {} destroyed, {} to destroy{}, {} unknown, {} failed; {} already empty, {} other stack(s) ignored",
                summary.kept,
                summary.destroyed,
                summary.would_destroy,
                if report.dry_run { " (dry run)" } else { "" },
                summary.unknown,
                summary.failed,
                report.empty.len(),
                report.ignored.len()
            ),
        )?;
    }
    if summary.unknown > 0 || summary.failed > 0 {
        let mut problems = Vec::new();
        if summary.unknown > 0 {
            problems.push(format!(
                "the state of {} PR(s) is unknown, so their previews were kept (re-run when GitHub answers)",
                summary.unknown
            ));
        }
        if summary.failed > 0 {
            problems.push(format!("{} destroy(s) failed", summary.failed));
        }
        return Err(CliError::Sweep(format!(
            "sweep incomplete: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// The text of the file that `flag` names, or an input error naming the flag and the path.
fn read_flag_file(flag: &str, path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {flag} {}: {e}", path.display())))
}

/// The URLs and images of `preview comment`: the outputs file, then the old
/// web/API flags, then `--url`/`--image` (each wins over what comes before).
fn comment_links(args: &CommentArgs) -> Result<Links, CliError> {
    let mut links = match &args.outputs_file {
        Some(path) => {
            let text = read_flag_file("--outputs-file", path)?;
            Links::from_outputs(&format!("--outputs-file {}", path.display()), &text)
                .map_err(CliError::Input)?
        }
        None => Links::default(),
    };
    for (images, key, value) in [
        (false, "web", &args.web_url),
        (false, "api", &args.api_url),
        (true, "web", &args.web_digest),
        (true, "api", &args.api_digest),
    ] {
        if let Some(value) = value {
            let map = if images {
                &mut links.images
            } else {
                &mut links.urls
            };
            map.insert(key.to_owned(), value.clone());
        }
    }
    links
        .add("--url", &args.urls, false)
        .map_err(CliError::Input)?;
    links
        .add("--image", &args.images, true)
        .map_err(CliError::Input)?;
    Ok(links)
}

async fn comment(
    args: CommentArgs,
    json: bool,
    attempts: Option<u32>,
    env: &Environment,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // Read inputs before anything is sent.
    let plan = match &args.plan_file {
        Some(path) => Some(read_flag_file("--plan-file", path)?),
        None => None,
    };
    let failures = match &args.failure_file {
        Some(path) => {
            let text = read_flag_file("--failure-file", path)?;
            crate::comment::parse_failures(&text).map_err(|e| {
                CliError::Input(format!(
                    "--failure-file {}: not the --json output of stacks: {e}",
                    path.display()
                ))
            })?
        }
        None => Vec::new(),
    };
    let links = comment_links(&args)?;
    let client = client(env, attempts)?;
    let mut content = CommentContent {
        pr: args.pr,
        status: Some(args.status),
        sha: args.sha,
        log_url: args.log_url,
        message: args.message,
        plan,
        plan_id: args.plan_id,
        failures,
        ..CommentContent::default()
    };
    links.fill(&mut content);
    let body = render_comment(&content);
    let when_missing = if args.if_exists {
        WhenMissing::Skip
    } else {
        WhenMissing::Create
    };
    let outcome = upsert_comment_with(
        &client,
        &args.repo,
        args.pr,
        PR_COMMENT_MARKER,
        &AuthorFilter::parse(&args.comment_author),
        &body,
        when_missing,
    )
    .await?;
    if json {
        return write_json(out, &outcome);
    }
    let action = match outcome.action {
        UpsertAction::Created => "created",
        UpsertAction::Updated => "updated",
        UpsertAction::Unchanged => "unchanged",
        UpsertAction::Skipped => {
            return write_line(
                out,
                &format!(
                    "comment: skipped — {}#{} has no preview comment (--if-exists)",
                    args.repo, args.pr
                ),
            );
        }
    };
    let mut line = format!(
        "comment: {action} {} on {}#{} ({})",
        outcome.comment_id.unwrap_or_default(),
        args.repo,
        args.pr,
        outcome.url.as_deref().unwrap_or_default()
    );
    if !outcome.deleted.is_empty() {
        let ids: Vec<String> = outcome.deleted.iter().map(u64::to_string).collect();
        line.push_str(&format!("; deleted duplicates {}", ids.join(", ")));
    }
    write_line(out, &line)
}

async fn deployment(
    command: DeploymentCommand,
    json: bool,
    attempts: Option<u32>,
    env: &Environment,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        DeploymentCommand::Create(args) => {
            let environment = match (&args.environment, args.pr) {
                (Some(environment), _) => environment.clone(),
                (None, Some(pr)) => deployment::preview_environment(pr),
                (None, None) => {
                    return Err(CliError::Input(
                        "deployment create needs --pr N (environment preview-pr-N) or --environment NAME".into(),
                    ));
                }
            };
            let client = client(env, attempts)?;
            let created = deployment::create(
                &client,
                &args.repo,
                &NewDeployment {
                    pr: args.pr,
                    sha: args.sha,
                    environment,
                    production: args.production,
                    description: args.description,
                },
            )
            .await?;
            if json {
                write_json(out, &created)
            } else {
                write_line(out, &created.id.to_string())
            }
        }
        DeploymentCommand::Status(args) => {
            let client = client(env, attempts)?;
            let status = deployment::set_status(
                &client,
                &args.repo,
                args.id,
                args.state,
                args.environment_url.as_deref(),
                args.log_url.as_deref(),
                args.description.as_deref(),
            )
            .await?;
            if json {
                write_json(out, &status)
            } else {
                write_line(
                    out,
                    &format!(
                        "deployment {}: {} (status {})",
                        args.id, status.state, status.id
                    ),
                )
            }
        }
        DeploymentCommand::Deactivate(args) => {
            let client = client(env, attempts)?;
            let outcome = deployment::deactivate(&client, &args.repo, &args.environment).await?;
            if json {
                write_json(out, &outcome)
            } else {
                write_line(
                    out,
                    &format!(
                        "deployment deactivate: {}: marked {} inactive ({} already inactive)",
                        outcome.environment,
                        outcome.deactivated.len(),
                        outcome.already_inactive.len()
                    ),
                )
            }
        }
    }
}

async fn gate(
    args: GateArgs,
    json: bool,
    attempts: Option<u32>,
    env: &Environment,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = client(env, attempts)?;
    let approver = match &env.approver_token {
        Some(token) => client.with_token(token.clone()),
        None => client.clone(),
    };
    if env.approver_token.is_none() {
        tracing::info!("{APPROVER_TOKEN_VAR} is not set; approving with GITHUB_TOKEN");
    }
    let run_url = format!(
        "{}/{}/actions/runs/{}",
        env.server_url.trim_end_matches('/'),
        args.repo,
        args.run_id
    );
    let request = GateRequest {
        repo: args.repo,
        pr: args.pr,
        run_id: args.run_id,
        environment: args.environment,
        expected_sha: args.sha,
        actor: RunActor::from_context(
            &args.triggering_actor,
            args.dispatcher.as_deref(),
            args.build_actor.as_deref(),
        ),
        run_url,
        comment_author: AuthorFilter::parse(&args.comment_author),
        poll: PollOptions {
            timeout: args.timeout,
            interval: args.poll_interval,
            max_interval: args.max_poll_interval,
        },
    };
    let report = run_gate(&client, &approver, &request).await?;
    if json {
        return write_json(out, &report);
    }
    let line = match report.decision {
        Decision::Approve => format!(
            "gate: approve — {}; approved environment '{}' (id {}) in run {}",
            report.reason,
            report.environment,
            report.environment_id.unwrap_or_default(),
            report.run_id
        ),
        Decision::ManualApprovalRequired => format!(
            "gate: manual_approval_required — {}; a maintainer must approve environment '{}' in run {}{}",
            report.reason,
            report.environment,
            report.run_id,
            report
                .comment
                .as_ref()
                .and_then(|c| c.comment_id)
                .map(|id| format!(" (comment {id})"))
                .unwrap_or_default()
        ),
    };
    write_line(out, &line)
}

#[derive(Debug, Serialize)]
struct HealthSummary {
    healthy: bool,
    expect: ExpectRange,
    urls: Vec<crate::health::UrlReport>,
}

async fn health(
    args: HealthArgs,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let options = HealthOptions {
        timeout: args.timeout,
        interval: args.interval,
        max_interval: args.max_interval.max(args.interval),
        request_timeout: args.request_timeout,
        expect: args.expect,
    };
    let progress = RefCell::new(err);
    let on_attempt = |attempt: &Attempt, next: Option<Duration>| {
        let result = attempt
            .status
            .map(|s| s.to_string())
            .or_else(|| attempt.error.clone())
            .unwrap_or_default();
        let then = match next {
            Some(wait) => format!(" — retrying in {}", humantime::format_duration(wait)),
            None => String::new(),
        };
        let mut err = progress.borrow_mut();
        // Progress is best effort; a closed stderr must not fail the check.
        let _ = writeln!(
            err,
            "health: {} attempt {}: {result}{then}",
            attempt.url, attempt.attempt
        );
    };
    let reports = check_urls(&args.urls, &options, &on_attempt)
        .await
        .map_err(CliError::Input)?;
    let healthy = reports.iter().all(|r| r.healthy);
    if json {
        write_json(
            out,
            &HealthSummary {
                healthy,
                expect: args.expect,
                urls: reports.clone(),
            },
        )?;
    } else {
        for report in &reports {
            let elapsed = report.attempts.last().map(|a| a.elapsed_ms).unwrap_or(0);
            let verdict = if report.healthy { "ok" } else { "FAILED" };
            write_line(
                out,
                &format!(
                    "health: {verdict} {} after {} attempt(s) in {:.1}s (statuses: {})",
                    report.url,
                    report.attempts.len(),
                    elapsed as f64 / 1000.0,
                    report.statuses()
                ),
            )?;
        }
    }
    if healthy {
        Ok(())
    } else {
        let failed: Vec<String> = reports
            .iter()
            .filter(|r| !r.healthy)
            .map(|r| format!("{} (statuses: {})", r.url, r.statuses()))
            .collect();
        Err(CliError::Unhealthy(format!(
            "{} did not answer {}-{} within {}",
            failed.join("; "),
            args.expect.low,
            args.expect.high,
            humantime::format_duration(args.timeout)
        )))
    }
}
