//! `preview` behaves like its neighbours: `--repo` and `gate --run-id` default to
//! GitHub Actions' `GITHUB_REPOSITORY` and `GITHUB_RUN_ID`; `--version` names the
//! commit; shell completions; a closed stdout pipe ends quietly.

mod common;

use std::process::{Command, Stdio};

use common::{REPO, SHA, TOKEN, fake, run_binary};

#[tokio::test]
async fn the_repository_comes_from_github_repository_when_not_given() {
    let fake = fake().await;
    fake.add_pull(7, "alice", SHA);
    let base = fake.base_url();
    let vars = [
        ("GITHUB_API_URL", base.as_str()),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_REPOSITORY", REPO),
    ];
    let process = run_binary(&vars, &["verify-head", "--pr", "7", "--sha", SHA]).await;
    assert_eq!(process.code, 0, "{}", process.err);
    assert!(
        process.out.contains(&format!("{REPO}#7 is open")),
        "{}",
        process.out
    );
    // Without it, --repo is required (a usage error; nothing sent).
    let before = fake.requests().len();
    let process = run_binary(&vars[..2], &["verify-head", "--pr", "7", "--sha", SHA]).await;
    assert_eq!(process.code, 2, "{}", process.err);
    assert!(process.err.contains("--repo"), "{}", process.err);
    assert_eq!(fake.requests().len(), before);
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_gate_takes_its_run_id_from_github_run_id() {
    let args = [
        "gate",
        "--pr",
        "7",
        "--sha",
        SHA,
        "--triggering-actor",
        "alice",
    ];
    // Parsed, then stopped at the missing token: the run id was not asked for.
    let with = run_binary(
        &[("GITHUB_REPOSITORY", REPO), ("GITHUB_RUN_ID", "42")],
        &args,
    )
    .await;
    assert_eq!(with.code, 2, "{}", with.err);
    assert!(
        with.err.starts_with("error: GITHUB_TOKEN is not set"),
        "{}",
        with.err
    );
    let without = run_binary(&[("GITHUB_REPOSITORY", REPO)], &args).await;
    assert_eq!(without.code, 2);
    assert!(without.err.contains("--run-id"), "{}", without.err);
}

#[tokio::test]
async fn version_and_completions() {
    let version = run_binary(&[], &["--version"]).await;
    assert_eq!(version.code, 0);
    assert!(
        version
            .out
            .starts_with(concat!("preview ", env!("CARGO_PKG_VERSION"), " (commit ")),
        "{}",
        version.out
    );
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = run_binary(&[], &["completions", shell]).await;
        assert_eq!(script.code, 0, "{shell}: {}", script.err);
        assert!(script.out.contains("verify-head"), "{shell}");
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(["completions", "bash"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn preview");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
