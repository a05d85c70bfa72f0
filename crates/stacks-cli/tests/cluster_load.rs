//! Load on one stack's lock, for every state backend (`file://`,
//! `kubernetes://`, `postgres://`), against the real control plane and
//! PostgreSQL: 10 `stacks up preview-pr` of the same PR started at once from
//! separate processes. Exactly one applies; every run that fails names the
//! holder as the lock records it (`pid P on HOST since …`), and that holder is
//! one of the runs that succeeded; a run that starts after the applying one has
//! finished changes nothing; the stored state is the applying run's.
//!
//! And (in the suite with the debug binary; `scripts/load.sh` runs it alone with the release one)
//! 100 `stacks up preview-pr` of different PRs at once from separate processes
//! with the `kubernetes://` backend, on a control plane, node and PostgreSQL of
//! its own sized for them: 0 errors; then 100 destroys at once: 0 errors, no
//! state left.

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

/// 100 `stacks up preview-pr` at once from separate processes, state in
/// `kubernetes://`, on a control plane, node and PostgreSQL of its own sized for
/// them (the shared one's node fits about 20 previews): 0 errors; then 100
/// destroys at once, 0 errors, and no state left. With `STACKS_BIN` set to a
/// release build it is what `scripts/load.sh` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_preview_pr_ups_at_once_on_the_kubernetes_backend() {
    use testkit::{
        NodeCapacity, NodeSimulator, SimulatorOptions, TestCluster, TestPostgres, default_crd_dir,
        install_crds,
    };
    let count: u64 = std::env::var("LOAD_PREVIEWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let n = u32::try_from(count).expect("count");
    let cluster = TestCluster::start().await.expect("cluster");
    let client = cluster.client().expect("client");
    install_crds(&client, &default_crd_dir())
        .await
        .expect("crds");
    cluster.cert_manager().await.expect("cert-manager");
    // Per preview at most 350m CPU, 448Mi and 512Mi of ephemeral storage, with
    // room for the rolling updates of a first up (as the benchmark sizes it).
    let _sim = NodeSimulator::start_with(
        cluster.simulator_client().expect("simulator client"),
        SimulatorOptions {
            capacity: NodeCapacity {
                cpu: n.max(8).to_string(),
                memory: format!("{}Gi", (2 * n).max(32)),
                pods: 4 * n + 110,
                ephemeral_storage: format!("{}Gi", (2 * n).max(100)),
            },
            ..SimulatorOptions::default()
        },
    )
    .await
    .expect("simulator");
    let pg = TestPostgres::start_with_max_connections(n + 100)
        .await
        .expect("postgres");
    pg.client()
        .await
        .expect("pg")
        .batch_execute("CREATE ROLE aphiria LOGIN")
        .await
        .expect("role");
    support_cluster::create_namespace(&client, "preview-state").await;
    let work = tempfile::tempdir().expect("work");
    let stacks = Stacks::on(
        cluster.kubeconfig_path(),
        &pg.url(),
        work.path(),
        "kubernetes://preview-state",
    );
    stacks.ok(&["up", "preview-base"]);

    let prs: Vec<u64> = (2001..2001 + count).collect();
    let ups: Vec<Vec<String>> = prs
        .iter()
        .map(|pr| {
            let mut a = vec!["up".to_owned(), "preview-pr".into()];
            a.extend(pr_args(*pr));
            a
        })
        .collect();
    let started = std::time::Instant::now();
    let outputs = spawn_all(&stacks, &ups);
    let up_wall = started.elapsed();
    let failed: Vec<String> = prs
        .iter()
        .zip(&outputs)
        .filter(|(_, (_, o))| !o.status.success())
        .map(|(pr, (_, o))| format!("PR {pr}: {}", String::from_utf8_lossy(&o.stderr)))
        .collect();
    eprintln!(
        "{count} ups at once on kubernetes://: {:.1} s wall, {} errors",
        up_wall.as_secs_f64(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} errors:\n{}",
        failed.len(),
        failed.join("\n")
    );

    let destroys: Vec<Vec<String>> = prs
        .iter()
        .map(|pr| {
            vec![
                "destroy".to_owned(),
                "preview-pr".into(),
                "--pr".into(),
                pr.to_string(),
            ]
        })
        .collect();
    let started = std::time::Instant::now();
    let outputs = spawn_all(&stacks, &destroys);
    let failed: Vec<String> = prs
        .iter()
        .zip(&outputs)
        .filter(|(_, (_, o))| !o.status.success())
        .map(|(pr, (_, o))| format!("PR {pr}: {}", String::from_utf8_lossy(&o.stderr)))
        .collect();
    eprintln!(
        "{count} destroys at once: {:.1} s wall, {} errors",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} errors:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let backend = open_backend_with(
        "kubernetes://preview-state",
        Some(&client),
        &BackendOptions::default(),
    )
    .await
    .expect("open");
    let left: Vec<String> = backend
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|s| s.starts_with("preview-pr-"))
        .collect();
    assert!(left.is_empty(), "states left: {left:?}");
}
