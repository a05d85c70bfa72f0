//! The sweep end to end on the real control plane and PostgreSQL: four `preview-pr`
//! stacks deployed with the `stacks` binary, PR states from the GitHub fake (validated
//! against GitHub's OpenAPI description), and `preview_github::sweep::sweep` driving this
//! crate's `stacks` binary as `preview sweep` does. Closed and merged PRs' previews are
//! destroyed with the verified destroy (namespace, database and state gone); open
//! PRs' previews and those whose PR state is unknown (an outage, a rate limit) stay.

mod support_cluster;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use github_fake::{Fault, GithubFake};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use preview_github::GithubToken;
use preview_github::github::{GithubClient, RepoSlug, RetryPolicy};
use preview_github::sweep::{StacksCommand, SweepAction, SweepOptions, SweepReport, sweep};
use support_cluster::{Stacks, World, has_state, pr_args, world};

const OPEN: u64 = 8101;
const MERGED: u64 = 8102;
const CLOSED: u64 = 8103;
const LATER: u64 = 8104;
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// The `stacks` binary as the sweep runs it: this world's cluster, state and config.
fn stacks_command(world: &World) -> StacksCommand {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let state = format!("file://{}", world.state.display());
    StacksCommand {
        bin: env!("CARGO_BIN_EXE_stacks").into(),
        global_args: [
            OsString::from("--kubeconfig"),
            world.cluster.kubeconfig_path().into(),
            "--backend".into(),
            state.into(),
            "--config-dir".into(),
            config.into(),
            "--progress".into(),
            "plain".into(),
        ]
        .into(),
        env: [
            ("PREVIEW_DB_PASSWORD", "db-password-canary-7f3a".to_string()),
            ("PREVIEW_DIGITALOCEAN_TOKEN", "dns-token-canary-1b9e".into()),
            ("PREVIEW_POSTGRES_URL", world.pg.url()),
            // The previews' states are authenticated with it (their database
            // role's password is sealed there).
            (
                "PREVIEW_STATE_PASSPHRASE",
                support_cluster::STATE_PASSPHRASE.into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect(),
    }
}

async fn run_sweep(fake: &GithubFake, world: &World, dry_run: bool) -> (SweepReport, Vec<String>) {
    let client = GithubClient::new(
        &fake.base_url(),
        GithubToken::new("sweep-token-not-secret"),
        RetryPolicy::fast(),
    )
    .expect("client");
    let repo: RepoSlug = fake.repo().parse().expect("repo");
    let mut lines = Vec::new();
    let mut log = |line: &str| lines.push(line.to_string());
    let report = sweep(
        &client,
        &repo,
        &stacks_command(world),
        SweepOptions {
            dry_run,
            lock_timeout: Duration::from_secs(60),
        },
        &mut log,
    )
    .await
    .expect("the stacks are listed");
    (report, lines)
}

fn action(report: &SweepReport, pr: u64) -> SweepAction {
    report
        .stacks
        .iter()
        .find(|v| v.pr == pr)
        .map(|v| v.action)
        .unwrap_or_else(|| panic!("PR {pr} not in the report: {report:?}"))
}

async fn namespace_exists(client: &kube::Client, pr: u64) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .get_opt(&format!("preview-pr-{pr}"))
        .await
        .expect("get namespace")
        .is_some()
}

async fn database_exists(world: &World, pr: u64) -> bool {
    let pg = world.pg.client().await.expect("pg");
    pg.query_opt(
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &[&format!("aphiria_pr_{pr}")],
    )
    .await
    .expect("query")
    .is_some()
}

async fn alive(world: &World, client: &kube::Client, pr: u64) -> bool {
    namespace_exists(client, pr).await && database_exists(world, pr).await && has_state(world, pr)
}

/// What is left of PR `pr`'s preview (empty: nothing).
async fn left(world: &World, client: &kube::Client, pr: u64) -> Vec<&'static str> {
    let mut left = Vec::new();
    if namespace_exists(client, pr).await {
        left.push("namespace");
    }
    if database_exists(world, pr).await {
        left.push("database");
    }
    if has_state(world, pr) {
        left.push("state");
    }
    left
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_destroys_closed_prs_previews_and_never_unknown_ones() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let stacks = Stacks::new(world);
    for pr in [OPEN, MERGED, CLOSED, LATER] {
        let mut args = vec!["up".to_string(), "preview-pr".to_string()];
        args.extend(pr_args(pr));
        stacks.ok(&args);
    }
    let fake = GithubFake::start()
        .await
        .expect("github-fake (set PREVIEW_GITHUB_OPENAPI outside the main checkout)");
    for pr in [OPEN, MERGED, CLOSED, LATER] {
        fake.add_pull(pr, "alice", SHA);
    }
    fake.close_pull(MERGED, true);
    fake.close_pull(CLOSED, false);

    // --dry-run: decided, nothing destroyed.
    let (report, _) = run_sweep(&fake, world, true).await;
    assert_eq!(report.summary.would_destroy, 2, "{report:?}");
    assert_eq!(report.ignored, ["preview-base"]);
    for pr in [OPEN, MERGED, CLOSED, LATER] {
        assert!(alive(world, &client, pr).await, "dry run kept PR {pr}");
    }

    // GitHub is down: every state unknown, nothing destroyed.
    fake.inject(Fault::server_error(500).times(1_000).on("GET", "/pulls/"));
    let (report, _) = run_sweep(&fake, world, false).await;
    assert_eq!(report.summary.unknown, 4, "{report:?}");
    assert_eq!(report.summary.destroyed, 0);
    for pr in [OPEN, MERGED, CLOSED, LATER] {
        assert!(
            alive(world, &client, pr).await,
            "an outage destroyed PR {pr}"
        );
    }

    // GitHub is back, but rate-limits the last lookup: the closed and merged PRs'
    // previews are destroyed and verified; the open one and the unknown one stay.
    let fake = GithubFake::start().await.expect("github-fake");
    for pr in [OPEN, MERGED, CLOSED, LATER] {
        fake.add_pull(pr, "alice", SHA);
    }
    fake.close_pull(MERGED, true);
    fake.close_pull(CLOSED, false);
    fake.close_pull(LATER, false);
    fake.inject(Fault::rate_limited(now() + 3_600).on("GET", &format!("/pulls/{LATER}")));
    let (report, log) = run_sweep(&fake, world, false).await;
    assert_eq!(action(&report, OPEN), SweepAction::Keep);
    assert_eq!(action(&report, MERGED), SweepAction::Destroy);
    assert_eq!(action(&report, CLOSED), SweepAction::Destroy);
    assert_eq!(action(&report, LATER), SweepAction::Unknown, "{report:?}");
    assert_eq!(
        report.summary.destroyed,
        2,
        "{report:?}\n{}",
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|l| l.contains("verified nothing carrying the stack's label remains")),
        "{}",
        log.join("\n")
    );
    for pr in [MERGED, CLOSED] {
        let left = left(world, &client, pr).await;
        assert!(left.is_empty(), "PR {pr}: {left:?} left");
    }
    for pr in [OPEN, LATER] {
        assert!(
            alive(world, &client, pr).await,
            "PR {pr}'s preview was touched"
        );
    }
    fake.assert_no_violations();

    // The next sweep, with GitHub answering, finishes the job and keeps the open PR.
    let (report, _) = run_sweep(&fake, world, false).await;
    assert_eq!(action(&report, LATER), SweepAction::Destroy);
    assert_eq!(report.summary.destroyed, 1, "{report:?}");
    // The destroyed previews' states are removed: not asked about again.
    assert!(report.empty.is_empty(), "{report:?}");
    for pr in [MERGED, CLOSED] {
        assert!(
            !world.state.join(format!("preview-pr-{pr}.json")).exists(),
            "the state of PR {pr} is left after its verified destroy"
        );
    }
    // And a last sweep finds nothing to do.
    let (report, _) = run_sweep(&fake, world, false).await;
    assert_eq!(report.stacks.len(), 1, "{report:?}");
    assert_eq!(action(&report, OPEN), SweepAction::Keep);
    assert_eq!(report.summary.destroyed, 0);
    assert!(report.empty.is_empty(), "{report:?}");
    assert_eq!(left(world, &client, LATER).await, Vec::<&str>::new());
    assert!(alive(world, &client, OPEN).await);
    fake.assert_no_violations();

    stacks.ok(&["destroy", "preview-pr", "--pr", &OPEN.to_string()]);
}
