//! `preview sweep` against the GitHub fake, driving a stand-in `stacks` binary (a
//! shell script that prints a `state list` and records every `destroy` it is asked
//! for). The real destroy needs a cluster: `tests/` covers it end to end; here the
//! decision is what is tested: open PRs kept, closed and merged PRs destroyed, and an
//! unknown state — outage, rate limit, timeout, 404 — never destroys.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{REPO, SHA, TOKEN, env_for, fake, run, run_binary};
use github_fake::{Fault, GithubFake};
use preview_github::github::RetryPolicy;

/// A stand-in for the `stacks` binary in a temporary directory.
struct FakeStacks {
    dir: tempfile::TempDir,
}

impl FakeStacks {
    /// `state list` prints `stacks` (as `stacks state list` does, each with 19
    /// resources); `destroy preview-pr --pr N` succeeds unless N is in `failing`.
    fn new(stacks: &[&str], failing: &[u64]) -> Self {
        let listing: Vec<serde_json::Value> = stacks
            .iter()
            .map(|s| serde_json::json!({"stack": s, "serial": 3, "resources": 19, "pending": 0}))
            .collect();
        Self::with_listing(&listing, failing)
    }

    /// `state list` prints `listing`.
    fn with_listing(listing: &[serde_json::Value], failing: &[u64]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("list.json"),
            serde_json::to_string_pretty(&listing).expect("json"),
        )
        .expect("write list");
        for pr in failing {
            std::fs::write(dir.path().join(format!("fail-{pr}")), "").expect("write");
        }
        let d = dir.path().display();
        let script = format!(
            r#"#!/bin/sh
echo "$*" >> "{d}/calls"
if [ -n "$GITHUB_TOKEN$PREVIEW_APPROVER_TOKEN" ]; then echo "token visible" >> "{d}/leaks"; fi
if [ "$1 $2" = "state list" ]; then
  if [ -f "{d}/list-fails" ]; then echo "error: cannot read state: connection refused" >&2; exit 1; fi
  cat "{d}/list.json"; exit 0
fi
if [ "$1" = "--lock-timeout" ] && [ "$3 $4 $5" = "destroy preview-pr --pr" ]; then
  if [ -f "{d}/fail-$6" ]; then
    echo "error: stack preview-pr-$6 is locked by another run" >&2; exit 1
  fi
  echo "preview-pr-$6: destroyed 19 resources in 0.1s; verified nothing carrying the stack's label remains."
  exit 0
fi
echo "unexpected arguments: $*" >&2
exit 2
"#
        );
        let path = dir.path().join("stacks");
        std::fs::write(&path, script).expect("write script");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Self { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("stacks")
    }

    fn bin_arg(&self) -> String {
        self.bin().display().to_string()
    }

    fn calls(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("calls"))
    }

    /// The PR numbers `destroy` was run for, in order.
    fn destroyed(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.contains("destroy"))
            .map(|c| c.rsplit(' ').next().unwrap_or_default().to_string())
            .collect()
    }

    fn leaks(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("leaks"))
    }

    fn fail_listing(&self) {
        std::fs::write(self.dir.path().join("list-fails"), "").expect("write");
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sweep_args<'a>(bin: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "sweep", "--repo", REPO, "--stacks-bin", bin];
    args.extend_from_slice(extra);
    args
}

/// PR 1 open, 2 merged, 3 closed, 4 open.
async fn fake_with_prs() -> GithubFake {
    let fake = fake().await;
    for pr in 1..=4 {
        fake.add_pull(pr, "alice", SHA);
    }
    fake.close_pull(2, true);
    fake.close_pull(3, false);
    fake
}

const STACKS: &[&str] = &[
    "preview-base",
    "preview-pr-1",
    "preview-pr-2",
    "preview-pr-3",
    "preview-pr-4",
    "production",
];

fn pull_gets(fake: &GithubFake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/pulls/"))
        .count()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test]
async fn open_prs_are_kept_and_closed_or_merged_ones_destroyed() {
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(STACKS, &[]);
    let bin = stacks.bin_arg();
    let run = run(
        &env_for(&fake),
        &sweep_args(&bin, &["--lock-timeout", "5m"]),
    )
    .await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["summary"],
        serde_json::json!({"kept": 2, "destroyed": 2, "would_destroy": 0, "unknown": 0, "failed": 0})
    );
    let rows: Vec<(String, String, String)> = report["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .map(|v| {
            (
                v["stack"].as_str().unwrap_or_default().to_string(),
                v["state"].as_str().unwrap_or_default().to_string(),
                v["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("preview-pr-1", "open", "keep"),
        ("preview-pr-2", "merged", "destroy"),
        ("preview-pr-3", "closed", "destroy"),
        ("preview-pr-4", "open", "keep"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(rows, expected);
    assert_eq!(report["stacks"][1]["destroyed"], true);
    assert_eq!(
        report["ignored"],
        serde_json::json!(["preview-base", "production"])
    );
    // Exactly the closed PRs' previews, with the verified destroy and the lock timeout.
    assert_eq!(stacks.destroyed(), ["2", "3"]);
    assert!(
        stacks
            .calls()
            .contains(&"--lock-timeout 5m destroy preview-pr --pr 2".to_string()),
        "{:?}",
        stacks.calls()
    );
    assert!(
        run.err
            .contains("sweep: preview-pr-2: PR was merged; running")
    );
    assert!(
        run.err
            .contains("verified nothing carrying the stack's label remains")
    );
    // Read-only on GitHub: one GET per PR stack, nothing else.
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(pull_gets(&fake), 4);
    fake.assert_no_violations();
}

#[tokio::test]
async fn dry_run_lists_what_it_would_destroy_and_destroys_nothing() {
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(STACKS, &[]);
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &["--dry-run"])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["summary"]["would_destroy"], 2);
    assert_eq!(report["summary"]["destroyed"], 0);
    assert!(report["stacks"][1].get("destroyed").is_none());
    assert!(stacks.destroyed().is_empty(), "{:?}", stacks.calls());
    assert_eq!(stacks.calls(), ["state list"]);

    // The text form says the same, one line per stack and a summary.
    let bin = stacks.bin_arg();
    let text_args = ["sweep", "--repo", REPO, "--stacks-bin", &bin, "--dry-run"];
    let text = common::run(&env_for(&fake), &text_args).await;
    assert!(text.result.is_ok(), "{}", text.error_line());
    let lines: Vec<&str> = text.out.lines().collect();
    assert_eq!(lines.len(), 5, "{}", text.out);
    assert_eq!(
        lines[1],
        "sweep: preview-pr-2 (PR #2): would destroy — PR was merged"
    );
    assert_eq!(
        lines[4],
        "sweep: 2 kept, 0 destroyed, 2 to destroy (dry run), 0 unknown, 0 failed; 0 already empty, 2 other stack(s) ignored"
    );
    fake.assert_no_violations();
}

/// Runs the sweep with `fault` queued for every PR lookup and checks that nothing
/// was destroyed, every PR is unknown, and the run failed after its report.
async fn nothing_destroyed_when(fault: Fault, expect_in_reason: &str) {
    let fake = fake_with_prs().await;
    fake.inject(fault.times(1_000).on("GET", "/pulls/"));
    let stacks = FakeStacks::new(STACKS, &[]);
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert_eq!(run.exit_code(), 1, "{}", run.out);
    assert!(
        run.error_line().contains("the state of 4 PR(s) is unknown"),
        "{}",
        run.error_line()
    );
    let report = run.json();
    assert_eq!(report["summary"]["unknown"], 4, "{}", run.out);
    assert_eq!(report["summary"]["destroyed"], 0);
    for verdict in report["stacks"].as_array().expect("stacks") {
        assert_eq!(verdict["state"], "unknown");
        assert_eq!(verdict["action"], "unknown");
    }
    let first = report["stacks"][0]["reason"].as_str().unwrap_or_default();
    assert!(first.contains(expect_in_reason), "{first}");
    let rest = report["stacks"][3]["reason"].as_str().unwrap_or_default();
    assert!(
        rest.contains("not asked, GitHub was unavailable earlier in this sweep"),
        "{rest}"
    );
    assert!(stacks.destroyed().is_empty(), "{:?}", stacks.calls());
    // After the first sign of an outage, the other PRs are not asked (retries of the
    // first lookup only).
    assert!(
        pull_gets(&fake) <= RetryPolicy::fast().max_attempts as usize,
        "{} lookups",
        pull_gets(&fake)
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_outage_means_unknown_and_destroys_nothing() {
    nothing_destroyed_when(Fault::server_error(500), "500").await;
}

#[tokio::test]
async fn a_primary_rate_limit_means_unknown_and_destroys_nothing() {
    // 403 with x-ratelimit-remaining: 0, reset an hour away (not worth waiting for).
    nothing_destroyed_when(
        Fault::rate_limited(now() + 3_600),
        "primary rate limit exhausted",
    )
    .await;
}

#[tokio::test]
async fn a_429_means_unknown_and_destroys_nothing() {
    let mut too_many = Fault::rate_limited(now() + 3_600);
    too_many.status = 429;
    nothing_destroyed_when(too_many, "primary rate limit exhausted").await;
    // A bare 429 without rate-limit headers is retried, then unknown too.
    nothing_destroyed_when(Fault::status(429, "Too Many Requests"), "429").await;
}

#[tokio::test]
async fn a_timeout_means_unknown_and_destroys_nothing() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let fake = fake_with_prs().await;
    let mut env = env_for(&fake);
    env.api_url = format!("http://{addr}");
    env.retry = RetryPolicy {
        max_attempts: 2,
        request_timeout: Duration::from_millis(200),
        ..RetryPolicy::fast()
    };
    let stacks = FakeStacks::new(STACKS, &[]);
    let bin = stacks.bin_arg();
    let run = run(&env, &sweep_args(&bin, &[])).await;
    held.abort();
    assert_eq!(run.exit_code(), 1);
    let report = run.json();
    assert_eq!(report["summary"]["unknown"], 4);
    let reason = report["stacks"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot reach the GitHub API"), "{reason}");
    assert!(stacks.destroyed().is_empty());
}

#[tokio::test]
async fn answers_before_an_outage_count_and_a_missing_pr_is_unknown() {
    let fake = fake_with_prs().await;
    // PR 5 does not exist (404: wrong repository, or a token that cannot see it).
    let stacks = FakeStacks::new(
        &[
            "preview-pr-2",
            "preview-pr-5",
            "preview-pr-3",
            "preview-pr-1",
            "preview-pr-4",
        ],
        &[],
    );
    // Lookups in PR order: 1 (open), 2 (merged), 3 (closed), then an outage for 4.
    fake.inject(Fault::server_error(502).times(1_000).on("GET", "/pulls/4"));
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert_eq!(run.exit_code(), 1);
    let report = run.json();
    let actions: Vec<(u64, &str)> = report["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .map(|v| {
            (
                v["pr"].as_u64().unwrap_or_default(),
                v["action"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (1, "keep"),
            (2, "destroy"),
            (3, "destroy"),
            (4, "unknown"),
            (5, "unknown")
        ]
    );
    let five = report["stacks"][4]["reason"].as_str().unwrap_or_default();
    assert!(five.contains("not asked"), "{five}");
    assert_eq!(stacks.destroyed(), ["2", "3"]);

    // Alone, a missing PR is unknown and is not mistaken for an outage.
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(&["preview-pr-5", "preview-pr-3"], &[]);
    let bin = stacks.bin_arg();
    let run = common::run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert_eq!(run.exit_code(), 1);
    let report = run.json();
    assert_eq!(report["stacks"][0]["action"], "destroy");
    assert_eq!(report["stacks"][1]["action"], "unknown");
    let reason = report["stacks"][1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("404 Not Found"), "{reason}");
    assert_eq!(stacks.destroyed(), ["3"]);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_failed_destroy_is_reported_and_the_others_still_run() {
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(STACKS, &[2]);
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line().contains("1 destroy(s) failed"),
        "{}",
        run.error_line()
    );
    let report = run.json();
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["destroyed"], 1);
    assert_eq!(report["stacks"][1]["destroyed"], false);
    let error = report["stacks"][1]["error"].as_str().unwrap_or_default();
    assert!(error.contains("locked by another run"), "{error}");
    assert_eq!(stacks.destroyed(), ["2", "3"]);
}

#[tokio::test]
async fn a_failed_listing_destroys_nothing() {
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(STACKS, &[]);
    stacks.fail_listing();
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line().contains("sweep: nothing destroyed: ")
            && run.error_line().contains("state list` failed")
            && run.error_line().contains("connection refused"),
        "{}",
        run.error_line()
    );
    assert!(fake.requests().is_empty());
    assert_eq!(stacks.calls(), ["state list"]);

    let missing = [
        "sweep",
        "--repo",
        REPO,
        "--stacks-bin",
        "/nonexistent/stacks",
    ];
    let run = common::run(&env_for(&fake), &missing).await;
    assert_eq!(run.exit_code(), 1);
    assert!(
        run.error_line().contains("cannot run /nonexistent/stacks"),
        "{}",
        run.error_line()
    );
}

#[tokio::test]
async fn the_binary_keeps_github_tokens_from_stacks() {
    let fake = fake_with_prs().await;
    let stacks = FakeStacks::new(STACKS, &[]);
    let base = fake.base_url();
    let bin = stacks.bin_arg();
    let process = run_binary(
        &[
            ("GITHUB_API_URL", base.as_str()),
            ("GITHUB_TOKEN", TOKEN),
            ("PREVIEW_APPROVER_TOKEN", "approver-not-secret"),
            ("PATH", "/usr/bin:/bin"),
        ],
        &["sweep", "--repo", REPO, "--stacks-bin", &bin],
    )
    .await;
    assert_eq!(process.code, 0, "{}", process.err);
    assert_eq!(stacks.destroyed(), ["2", "3"]);
    assert!(stacks.leaks().is_empty(), "{:?}", stacks.leaks());
    assert!(!process.out.contains(TOKEN) && !process.err.contains(TOKEN));
    fake.assert_no_violations();
}

#[tokio::test]
async fn already_destroyed_previews_are_not_asked_about() {
    let fake = fake_with_prs().await;
    let listing = [
        // What a verified destroy leaves: the state, with nothing recorded.
        serde_json::json!({"stack": "preview-pr-2", "serial": 9, "resources": 0, "pending": 0}),
        // An interrupted run: something may exist.
        serde_json::json!({"stack": "preview-pr-3", "serial": 4, "resources": 0, "pending": 2}),
        // Unreadable: the destroy decides (and reports) what it can.
        serde_json::json!({"stack": "preview-pr-4", "resources": 0, "pending": 0, "problem": "corrupt"}),
        serde_json::json!({"stack": "preview-pr-1", "serial": 2, "resources": 19, "pending": 0}),
    ];
    let stacks = FakeStacks::with_listing(&listing, &[]);
    let bin = stacks.bin_arg();
    let run = run(&env_for(&fake), &sweep_args(&bin, &[])).await;
    assert!(run.result.is_ok(), "{}", run.error_line());
    let report = run.json();
    assert_eq!(report["empty"], serde_json::json!(["preview-pr-2"]));
    let asked: Vec<u64> = report["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .map(|v| v["pr"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(asked, [1, 3, 4]);
    assert!(
        !fake.requests().iter().any(|r| r.path.ends_with("/pulls/2")),
        "an empty stack costs no API call"
    );
    assert_eq!(stacks.destroyed(), ["3"], "PR 4 is open");
    fake.assert_no_violations();
}
