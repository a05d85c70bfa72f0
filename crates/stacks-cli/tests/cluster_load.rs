//! Load on one stack's lock, for every state backend (`file://`,
//! `kubernetes://`, `postgres://`), against the real control plane and
//! PostgreSQL: 10 `stacks up preview-pr` of the same PR started at once from
//! separate processes. Exactly one applies; every run that fails names the
//! holder as the lock records it (`pid P on HOST since …`), and that holder is
//! one of the runs that succeeded; a run that starts after the applying one has
//! finished changes nothing; the stored state is the applying run's.
//!
//! (100 `preview-pr` ups at once from separate processes on `kubernetes://`
//! need a node and a PostgreSQL sized for them: that is the benchmark's scale
//! run, `BENCH_BACKEND=kubernetes BENCH_SCALE=100 scripts/bench.sh`.)

mod support_cluster;

use std::process::{Output, Stdio};

use preview_envs::{BackendOptions, open_backend_with};
use serde_json::Value;
use support_cluster::{Stacks, backends, pr_args, runner_on, world};

/// Starts every run before waiting for any; returns each run's pid and output.
fn spawn_all(stacks: &Stacks, runs: &[Vec<String>]) -> Vec<(u32, Output)> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            stacks
                .command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let pid = c.id();
            (pid, c.wait_with_output().expect("wait"))
        })
        .collect()
}

/// `(pid, host)` of `… is locked by pid P on HOST since …`.
fn holder(stderr: &str) -> Option<(u32, String)> {
    let rest = stderr.split("is locked by pid ").nth(1)?;
    let (pid, rest) = rest.split_once(" on ")?;
    let host = rest.split_whitespace().next()?;
    Some((pid.parse().ok()?, host.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_ups_of_one_stack_apply_once_in_every_backend() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    for (i, b) in backends(world, "load").await.into_iter().enumerate() {
        let pr = 1101 + i as u64;
        let stack = format!("preview-pr-{pr}");
        let stacks = runner_on(world, &b.url);
        let mut up = vec!["--json".to_owned(), "up".into(), "preview-pr".into()];
        up.extend(pr_args(pr));
        let outputs = spawn_all(&stacks, &vec![up; 10]);
        let succeeded: Vec<u32> = outputs
            .iter()
            .filter(|(_, o)| o.status.success())
            .map(|(pid, _)| *pid)
            .collect();
        let mut applied = Vec::new();
        let mut unchanged = 0;
        let mut locked = 0;
        for (pid, out) in &outputs {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                let report: Value = serde_json::from_slice(&out.stdout).expect("json");
                if report["plan"]["summary"]["create"].as_u64().unwrap_or(0) > 0 {
                    applied.push(report["serial"].as_u64().expect("serial"));
                } else {
                    assert_eq!(report["requests"]["writes"], 0, "{}: {report}", b.label);
                    unchanged += 1;
                }
                continue;
            }
            let (holder_pid, holder_host) = holder(&stderr).unwrap_or_else(|| {
                panic!(
                    "{}: run {pid} failed without naming the holder:\n{stderr}",
                    b.label
                )
            });
            assert!(
                succeeded.contains(&holder_pid),
                "{}: the holder named (pid {holder_pid}) is one of the runs that held the lock and succeeded {succeeded:?}:\n{stderr}",
                b.label
            );
            if !host.is_empty() {
                assert_eq!(holder_host, host, "{}: {stderr}", b.label);
            }
            locked += 1;
        }
        assert_eq!(
            applied.len(),
            1,
            "{}: exactly one run applies ({unchanged} unchanged, {locked} locked)",
            b.label
        );
        assert!(locked > 0, "{}: the runs overlapped", b.label);
        eprintln!(
            "{}: 10 concurrent ups: 1 applied, {locked} failed naming the holder, {unchanged} unchanged",
            b.label
        );
        let backend = open_backend_with(&b.url, Some(&client), &BackendOptions::default())
            .await
            .expect("open");
        assert!(backend.list().await.expect("list").contains(&stack));
        let shown: Value =
            serde_json::from_slice(&stacks.ok(&["--json", "state", "show", &stack]).stdout)
                .expect("state json");
        let state = if shown["state"].is_object() {
            &shown["state"]
        } else {
            &shown
        };
        assert_eq!(
            state["serial"].as_u64(),
            Some(applied[0]),
            "{}: no other run wrote the state: {shown}",
            b.label
        );
        stacks.ok(&["destroy", "preview-pr", "--pr", &pr.to_string()]);
    }
}
