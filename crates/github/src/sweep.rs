//! No preview outlives its PR: `preview sweep` lists the state backend's
//! `preview-pr-N` stacks (`stacks state list`), asks GitHub for each PR's state, and
//! destroys the previews of closed or merged PRs with `stacks destroy preview-pr --pr
//! N`: the same verified destroy the cleanup workflow runs.
//!
//! The rule that matters: only an answer from GitHub that says `closed` leads to a
//! destroy. An API error, a timeout, a rate limit, a 404 (wrong `--repo`, or a token
//! that cannot see the PR) or an answer that does not fit is **unknown**, and unknown
//! never destroys (some tools deleted every environment during a GitHub outage).
//! [`classify`] is that rule, pure; [`assess`] asks GitHub, and after the first sign
//! that GitHub is unavailable (5xx, rate limit, timeout) asks nothing more and marks
//! the rest unknown; [`destroy_closed`] acts on [`SweepAction::Destroy`] verdicts only.
//! Unknown states and failed destroys make the command exit 1 after its report.
//!
//! A `preview-pr-N` state that records no resource and no interrupted step (what a
//! verified destroy leaves) has nothing to destroy: it is reported as empty and not
//! asked about, so a sweep after cleanup finds nothing to do.
//!
//! `preview` holds the GitHub side and `stacks` the cluster side, so the sweep drives
//! the `stacks` binary as a subprocess ([`StacksCommand`], `--stacks-bin`). The child
//! gets the process environment (kubeconfig, backend, passphrase) minus the GitHub
//! tokens. [`sweep`] runs the three phases and returns the [`SweepReport`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::github::{GithubClient, GithubError, PullRequest, RepoSlug};

/// State names of PR previews: `preview-pr-N`.
pub const PR_STACK_PREFIX: &str = "preview-pr-";

/// Environment variables the `stacks` child never gets.
const WITHHELD_FROM_STACKS: &[&str] = &["GITHUB_TOKEN", "PREVIEW_APPROVER_TOKEN"];

/// The PR number of a `preview-pr-N` state name (N a positive integer without
/// leading zeros, at most 10 digits, as `stacks` names them); `None` for any other
/// stack.
pub fn pr_of_stack(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PR_STACK_PREFIX)?;
    let canonical = !digits.is_empty()
        && digits.len() <= 10
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| digits.parse().ok()).flatten()
}

/// A PR's state as far as the sweep knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    /// Open: keep the preview.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged.
    Merged,
    /// GitHub did not say (error, timeout, rate limit, odd answer).
    Unknown,
}

/// What to do with a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepAction {
    /// Leave it.
    Keep,
    /// Destroy it (its PR is closed or merged).
    Destroy,
    /// Leave it: the PR's state is unknown.
    Unknown,
}

/// The verdict for one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// State name, `preview-pr-N`.
    pub stack: String,
    /// PR number.
    pub pr: u64,
    /// The PR's state.
    pub state: PrState,
    /// What the sweep does.
    pub action: SweepAction,
    /// Why, in one line.
    pub reason: String,
    /// For destroys: whether `stacks destroy` succeeded (`null` under `--dry-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<bool>,
    /// For failed destroys: the exit status and last error line of `stacks destroy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verdict {
    fn unknown(stack: &str, pr: u64, reason: String) -> Self {
        Self {
            stack: stack.to_string(),
            pr,
            state: PrState::Unknown,
            action: SweepAction::Unknown,
            reason,
            destroyed: None,
            error: None,
        }
    }
}

/// The rule: only an answer that names this PR and says `closed` destroys. Pure.
pub fn classify(stack: &str, pr: u64, answer: Result<&PullRequest, &GithubError>) -> Verdict {
    let pull = match answer {
        Ok(pull) => pull,
        Err(error) => return Verdict::unknown(stack, pr, format!("unknown: {error}")),
    };
    if pull.number != pr {
        return Verdict::unknown(
            stack,
            pr,
            format!("unknown: GitHub answered for PR #{} instead", pull.number),
        );
    }
    let (state, action, reason) = match (pull.state.as_str(), pull.merged) {
        ("open", _) => (PrState::Open, SweepAction::Keep, "PR is open".to_string()),
        ("closed", Some(true)) => (
            PrState::Merged,
            SweepAction::Destroy,
            "PR was merged".to_string(),
        ),
        ("closed", _) => (
            PrState::Closed,
            SweepAction::Destroy,
            "PR was closed without merging".to_string(),
        ),
        (other, _) => {
            return Verdict::unknown(stack, pr, format!("unknown: GitHub says state {other:?}"));
        }
    };
    Verdict {
        stack: stack.to_string(),
        pr,
        state,
        action,
        reason,
        destroyed: None,
        error: None,
    }
}

/// Whether an error means GitHub as a whole is not answering (so asking about the
/// next PR is pointless), as opposed to a problem with this one PR.
pub fn is_unavailable(error: &GithubError) -> bool {
    match error {
        GithubError::RateLimited { .. }
        | GithubError::SecondaryRateLimited { .. }
        | GithubError::Transport { .. } => true,
        GithubError::Status { status, .. } => *status >= 500 || *status == 429,
        GithubError::GaveUp { last, .. } => is_unavailable(last),
        _ => false,
    }
}

/// Asks GitHub about each `(stack, pr)`, one at a time. After the first error that
/// means GitHub is unavailable, the rest are not asked and are unknown.
pub async fn assess(
    client: &GithubClient,
    repo: &RepoSlug,
    stacks: &[(String, u64)],
) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(stacks.len());
    let mut unavailable: Option<String> = None;
    for (stack, pr) in stacks {
        if let Some(cause) = &unavailable {
            verdicts.push(Verdict::unknown(
                stack,
                *pr,
                format!(
                    "unknown: not asked, GitHub was unavailable earlier in this sweep ({cause})"
                ),
            ));
            continue;
        }
        let answer = client.get_pull(repo, *pr).await;
        if let Err(error) = &answer
            && is_unavailable(error)
        {
            unavailable = Some(format!("PR #{pr}: {error}"));
        }
        verdicts.push(classify(stack, *pr, answer.as_ref()));
    }
    verdicts
}

/// Errors of the `stacks` subprocess.
#[derive(Debug, thiserror::Error)]
pub enum StacksError {
    /// The binary could not be started.
    #[error("cannot run {bin} ({cause}); set --stacks-bin to the stacks binary")]
    Spawn {
        /// The binary.
        bin: String,
        /// Why.
        cause: String,
    },
    /// `stacks state list` failed.
    #[error("`{bin} state list` failed ({status}): {message}")]
    List {
        /// The binary.
        bin: String,
        /// Exit status.
        status: String,
        /// Its last error line.
        message: String,
    },
    /// `stacks state list` printed something else than its JSON.
    #[error("`{bin} state list` printed no stack list: {cause}")]
    Listing {
        /// The binary.
        bin: String,
        /// Parser message.
        cause: String,
    },
}

/// One entry of `stacks state list` (the fields the sweep reads).
#[derive(Deserialize)]
struct ListedStack {
    stack: String,
    #[serde(default)]
    resources: usize,
    #[serde(default)]
    pending: usize,
    #[serde(default)]
    problem: Option<String>,
}

impl ListedStack {
    /// Nothing recorded, nothing interrupted, and readable: nothing to destroy.
    fn is_empty(&self) -> bool {
        self.resources == 0 && self.pending == 0 && self.problem.is_none()
    }
}

/// The stacks of a backend, as the sweep sorts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// `preview-pr-N` stacks with something to destroy, as `(name, N)`, by N.
    pub prs: Vec<(String, u64)>,
    /// `preview-pr-N` stacks that record nothing (already destroyed).
    pub empty: Vec<String>,
    /// Every other stack (never touched).
    pub others: Vec<String>,
}

/// How to run the `stacks` binary.
#[derive(Debug, Clone)]
pub struct StacksCommand {
    /// The binary (a path, or a name looked up on `PATH`).
    pub bin: PathBuf,
    /// Global options put before every subcommand (e.g. `--backend`, `--kubeconfig`
    /// when embedding; the `preview` binary passes none and relies on the
    /// environment).
    pub global_args: Vec<OsString>,
    /// Extra environment variables for the child (on top of this process's, minus
    /// the GitHub tokens).
    pub env: Vec<(OsString, OsString)>,
}

impl StacksCommand {
    /// `bin` with no extra options.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            global_args: Vec::new(),
            env: Vec::new(),
        }
    }

    fn name(&self) -> String {
        self.bin.display().to_string()
    }
}

/// What a `stacks` run produced.
struct ChildOutput {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

async fn run_stacks(stacks: &StacksCommand, args: &[String]) -> Result<ChildOutput, StacksError> {
    let mut command = tokio::process::Command::new(&stacks.bin);
    command
        .args(&stacks.global_args)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in WITHHELD_FROM_STACKS {
        command.env_remove(name);
    }
    command.envs(stacks.env.iter().map(|(k, v)| (k, v)));
    let output = command.output().await.map_err(|e| StacksError::Spawn {
        bin: stacks.name(),
        cause: e.to_string(),
    })?;
    Ok(ChildOutput {
        success: output.status.success(),
        status: output.status.to_string(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The line that says why a `stacks` run failed: its last `error:` line (a
/// `hint:` line may follow it), else its last non-empty line.
fn last_line(text: &str) -> String {
    let mut lines = text.lines().rev().map(str::trim).filter(|l| !l.is_empty());
    let last = lines.clone().next();
    lines
        .find(|l| l.starts_with("error:"))
        .or(last)
        .unwrap_or("no output")
        .to_string()
}

/// The stacks in the backend, from `stacks state list` (which reads
/// `PREVIEW_BACKEND`).
pub async fn list_stacks(stacks: &StacksCommand) -> Result<Listing, StacksError> {
    let output = run_stacks(stacks, &["state".into(), "list".into()]).await?;
    let name = stacks.name();
    if !output.success {
        return Err(StacksError::List {
            bin: name,
            status: output.status,
            message: last_line(&output.stderr),
        });
    }
    let listed: Vec<ListedStack> =
        serde_json::from_str(&output.stdout).map_err(|e| StacksError::Listing {
            bin: name,
            cause: e.to_string(),
        })?;
    let mut listing = Listing::default();
    for entry in listed {
        match pr_of_stack(&entry.stack) {
            Some(_) if entry.is_empty() => listing.empty.push(entry.stack),
            Some(pr) => listing.prs.push((entry.stack, pr)),
            None => listing.others.push(entry.stack),
        }
    }
    listing.prs.sort_by_key(|(_, pr)| *pr);
    listing.prs.dedup();
    listing.empty.sort_by_key(|name| pr_of_stack(name));
    listing.others.sort();
    Ok(listing)
}

/// Runs `stacks destroy preview-pr --pr N` for every [`SweepAction::Destroy`]
/// verdict, one at a time, and records the outcome on it. `log` gets each run's
/// output. Nothing else is ever destroyed.
pub async fn destroy_closed(
    stacks: &StacksCommand,
    lock_timeout: Duration,
    verdicts: &mut [Verdict],
    log: &mut dyn FnMut(&str),
) {
    for verdict in verdicts
        .iter_mut()
        .filter(|v| v.action == SweepAction::Destroy)
    {
        let args = vec![
            "--lock-timeout".to_string(),
            humantime::format_duration(lock_timeout).to_string(),
            "destroy".to_string(),
            "preview-pr".to_string(),
            "--pr".to_string(),
            verdict.pr.to_string(),
        ];
        log(&format!(
            "sweep: {}: {}; running {} {}",
            verdict.stack,
            verdict.reason,
            stacks.name(),
            args.join(" ")
        ));
        match run_stacks(stacks, &args).await {
            Ok(output) => {
                for line in output.stdout.lines().chain(output.stderr.lines()) {
                    log(&format!("sweep: {}: {line}", verdict.stack));
                }
                verdict.destroyed = Some(output.success);
                if !output.success {
                    verdict.error = Some(format!(
                        "stacks destroy {}: {}",
                        output.status,
                        last_line(&output.stderr)
                    ));
                }
            }
            Err(error) => {
                verdict.destroyed = Some(false);
                verdict.error = Some(error.to_string());
            }
        }
    }
}

/// Counts for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Open PRs, previews kept.
    pub kept: usize,
    /// Previews destroyed.
    pub destroyed: usize,
    /// Previews that `--dry-run` would destroy.
    pub would_destroy: usize,
    /// PRs whose state is unknown (previews kept).
    pub unknown: usize,
    /// Destroys that failed.
    pub failed: usize,
}

impl Summary {
    /// Counts `verdicts`.
    pub fn of(verdicts: &[Verdict]) -> Self {
        let mut summary = Self::default();
        for verdict in verdicts {
            match (verdict.action, verdict.destroyed) {
                (SweepAction::Keep, _) => summary.kept += 1,
                (SweepAction::Unknown, _) => summary.unknown += 1,
                (SweepAction::Destroy, None) => summary.would_destroy += 1,
                (SweepAction::Destroy, Some(true)) => summary.destroyed += 1,
                (SweepAction::Destroy, Some(false)) => summary.failed += 1,
            }
        }
        summary
    }
}

/// The report `preview sweep` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Repository asked.
    pub repo: String,
    /// `--dry-run`.
    pub dry_run: bool,
    /// One verdict per `preview-pr-N` stack with something to destroy, by PR number.
    pub stacks: Vec<Verdict>,
    /// `preview-pr-N` stacks that record nothing (already destroyed; not asked about).
    pub empty: Vec<String>,
    /// Other stacks in the backend (never touched).
    pub ignored: Vec<String>,
    /// Counts.
    pub summary: Summary,
}

/// Options of [`sweep`].
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Only decide; destroy nothing.
    pub dry_run: bool,
    /// How long each destroy waits for a stack another run holds.
    pub lock_timeout: Duration,
}

/// The whole sweep: list the stacks, ask GitHub, destroy the closed PRs' previews
/// (unless `dry_run`). `log` gets progress and the destroys' output. An error means
/// the stacks could not be listed, and nothing was asked or destroyed.
pub async fn sweep(
    client: &GithubClient,
    repo: &RepoSlug,
    stacks: &StacksCommand,
    options: SweepOptions,
    log: &mut dyn FnMut(&str),
) -> Result<SweepReport, StacksError> {
    let listing = list_stacks(stacks).await?;
    let mut verdicts = assess(client, repo, &listing.prs).await;
    if !options.dry_run {
        destroy_closed(stacks, options.lock_timeout, &mut verdicts, log).await;
    }
    let summary = Summary::of(&verdicts);
    Ok(SweepReport {
        repo: repo.to_string(),
        dry_run: options.dry_run,
        stacks: verdicts,
        empty: listing.empty,
        ignored: listing.others,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_error_line_not_a_hint_after_it() {
        assert_eq!(
            last_line("progress\nerror: destroy left residue: ConfigMap a/b\nhint: re-run\n"),
            "error: destroy left residue: ConfigMap a/b"
        );
        assert_eq!(last_line("only this\n\n"), "only this");
        assert_eq!(last_line(""), "no output");
    }
    use crate::github::{PullBase, PullHead, User};

    fn pull(number: u64, state: &str, merged: Option<bool>) -> PullRequest {
        PullRequest {
            number,
            state: state.into(),
            user: User {
                login: "alice".into(),
                kind: None,
            },
            head: PullHead {
                sha: "a".repeat(40),
                repo: None,
            },
            base: PullBase { repo: None },
            merged,
        }
    }

    #[test]
    fn stack_names() {
        assert_eq!(pr_of_stack("preview-pr-123"), Some(123));
        assert_eq!(pr_of_stack("preview-pr-9999999999"), Some(9_999_999_999));
        for other in [
            "preview-base",
            "production",
            "preview-pr-",
            "preview-pr-0",
            "preview-pr-012",
            "preview-pr-12a",
            "preview-pr-+1",
            "preview-pr-99999999999",
            "xpreview-pr-1",
        ] {
            assert_eq!(pr_of_stack(other), None, "{other}");
        }
    }

    #[test]
    fn only_closed_answers_destroy() {
        let open = classify("preview-pr-1", 1, Ok(&pull(1, "open", Some(false))));
        assert_eq!(
            (open.state, open.action),
            (PrState::Open, SweepAction::Keep)
        );
        let merged = classify("preview-pr-2", 2, Ok(&pull(2, "closed", Some(true))));
        assert_eq!(
            (merged.state, merged.action),
            (PrState::Merged, SweepAction::Destroy)
        );
        for merged_flag in [Some(false), None] {
            let closed = classify("preview-pr-3", 3, Ok(&pull(3, "closed", merged_flag)));
            assert_eq!(
                (closed.state, closed.action),
                (PrState::Closed, SweepAction::Destroy)
            );
        }
        let odd = classify("preview-pr-4", 4, Ok(&pull(4, "locked", None)));
        assert_eq!(odd.action, SweepAction::Unknown);
        let other_pr = classify("preview-pr-5", 5, Ok(&pull(6, "closed", Some(true))));
        assert_eq!(other_pr.action, SweepAction::Unknown);
    }

    #[test]
    fn every_error_is_unknown() {
        let errors = [
            GithubError::RateLimited {
                request: "GET /x".into(),
                reset: "unknown".into(),
                resource: "core".into(),
            },
            GithubError::Status {
                request: "GET /x".into(),
                status: 500,
                message: "Server Error".into(),
                hint: String::new(),
            },
            GithubError::Transport {
                request: "GET /x".into(),
                cause: "operation timed out".into(),
            },
            GithubError::NotFound {
                request: "GET /x".into(),
                what: "repository or pull request",
            },
            GithubError::Unauthorized {
                request: "GET /x".into(),
                message: "Bad credentials".into(),
            },
        ];
        for error in &errors {
            let verdict = classify("preview-pr-1", 1, Err(error));
            assert_eq!(verdict.action, SweepAction::Unknown, "{error}");
            assert_eq!(verdict.state, PrState::Unknown);
            assert!(
                verdict.reason.starts_with("unknown: "),
                "{}",
                verdict.reason
            );
        }
        assert!(is_unavailable(&errors[0]) && is_unavailable(&errors[1]));
        assert!(is_unavailable(&errors[2]));
        assert!(!is_unavailable(&errors[3]) && !is_unavailable(&errors[4]));
        let gave_up = GithubError::GaveUp {
            attempts: 4,
            last: Box::new(GithubError::Status {
                request: "GET /x".into(),
                status: 429,
                message: "Too Many Requests".into(),
                hint: String::new(),
            }),
        };
        assert!(is_unavailable(&gave_up));
    }

    #[test]
    fn summary_counts() {
        let mut destroyed = classify("preview-pr-2", 2, Ok(&pull(2, "closed", Some(true))));
        destroyed.destroyed = Some(true);
        let mut failed = destroyed.clone();
        failed.destroyed = Some(false);
        let would = classify("preview-pr-3", 3, Ok(&pull(3, "closed", None)));
        let kept = classify("preview-pr-1", 1, Ok(&pull(1, "open", None)));
        let unknown = Verdict::unknown("preview-pr-4", 4, "unknown: x".into());
        let summary = Summary::of(&[destroyed, failed, would, kept, unknown]);
        assert_eq!(
            summary,
            Summary {
                kept: 1,
                destroyed: 1,
                would_destroy: 1,
                unknown: 1,
                failed: 1
            }
        );
    }
}
