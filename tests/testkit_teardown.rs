//! Teardown: nothing the kit starts outlives its owner.
//!
//! * dropping a [`TestCluster`] / [`TestPostgres`] stops its processes (whole
//!   process groups) and removes its temp dir;
//! * a failed start leaves no process and no directory behind;
//! * the process-wide shared cluster and PostgreSQL, which are never dropped, are
//!   cleaned up by the kit's watchdog when the test process exits normally and
//!   when it is SIGKILLed (checked with a child process, `shared-cluster-probe`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::{WAIT, poll_until, processes_mentioning};
use testkit::{ClusterOptions, KitError, NodeSimulator, TestCluster, TestPostgres};

/// How long cleanup after a drop or a dead test process may take.
const CLEANUP: Duration = Duration::from_secs(30);

async fn assert_cleaned_up(dir: &std::path::Path) {
    let needle = dir.display().to_string();
    let gone = poll_until(CLEANUP, || {
        processes_mentioning(&needle).is_empty() && !dir.exists()
    })
    .await;
    assert!(
        gone.is_ok(),
        "left behind after {CLEANUP:?}: dir exists = {}, processes = {:#?}",
        dir.exists(),
        processes_mentioning(&needle)
    );
}

#[tokio::test]
async fn dropping_a_cluster_stops_its_processes_and_removes_its_dir() {
    let cluster = TestCluster::start().await.expect("start");
    eprintln!("own cluster started in {:?}", cluster.startup_time());
    let dir = cluster.temp_dir().to_path_buf();
    let pids = cluster.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    assert_eq!(
        processes_mentioning(&dir.display().to_string()).len(),
        5,
        "four servers and the watchdog"
    );
    // It works while it lives (and a simulator on the test's runtime stops cleanly).
    let simulator = NodeSimulator::start_for(&cluster).await.expect("simulator");
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
        kube::Api::all(cluster.client().expect("client"));
    assert!(nodes.get_opt("sim-node").await.expect("get node").is_some());
    simulator.stop().await;

    drop(cluster);
    // Drop is synchronous: everything is gone the moment it returns.
    for (name, pid) in &pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) still exists"
        );
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(processes_mentioning(&dir.display().to_string()).is_empty());
}

#[tokio::test]
async fn a_failed_start_leaves_nothing_behind() {
    let options = ClusterOptions {
        extra_apiserver_args: vec!["--no-such-flag=1".into()],
        ..ClusterOptions::default()
    };
    let err = TestCluster::start_with(options)
        .await
        .expect_err("the API server rejects the flag");
    let message = err.to_string();
    eprintln!("{message}");
    let KitError::ProcessExited {
        component,
        log,
        log_tail,
        ..
    } = err
    else {
        panic!("expected ProcessExited, got: {message}");
    };
    assert_eq!(component, "kube-apiserver");
    assert!(
        log_tail.contains("no-such-flag"),
        "the error quotes the log: {log_tail}"
    );
    let first_line = message.lines().next().expect("a message");
    assert!(
        first_line.contains("kube-apiserver exited during start-up"),
        "{first_line}"
    );
    let dir = log.parent().expect("log is in the temp dir").to_path_buf();
    assert!(!dir.exists(), "temp dir removed");
    assert!(
        processes_mentioning(&dir.display().to_string()).is_empty(),
        "etcd stopped"
    );
}

#[tokio::test]
async fn dropping_postgres_stops_it_and_removes_its_dir() {
    let postgres = TestPostgres::start().await.expect("start PostgreSQL");
    let dir = postgres.temp_dir().to_path_buf();
    let client = postgres.client().await.expect("connect");
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(one, 1);
    let pid_text =
        std::fs::read_to_string(dir.join("data/postmaster.pid")).expect("postmaster.pid");
    let pid: u32 = pid_text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    drop(client);
    drop(postgres);
    assert!(!dir.exists(), "temp dir removed");
    let stopped = poll_until(CLEANUP, || {
        !PathBuf::from(format!("/proc/{pid}")).exists() || is_zombie(pid)
    })
    .await;
    assert!(stopped.is_ok(), "postmaster {pid} still running");
    assert!(processes_mentioning(&dir.display().to_string()).is_empty());
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Starts the probe, waits for it to report its temp dirs, and returns them.
fn start_probe(mode: &str) -> (std::process::Child, PathBuf, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shared-cluster-probe"))
        .arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn shared-cluster-probe");
    let stdout = child.stdout.take().expect("stdout");
    let mut cluster_dir = None;
    let mut postgres_dir = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read probe output");
        if let Some(d) = line.strip_prefix("cluster_dir=") {
            cluster_dir = Some(PathBuf::from(d));
        } else if let Some(d) = line.strip_prefix("postgres_dir=") {
            postgres_dir = Some(PathBuf::from(d));
        } else if line == "ready" {
            break;
        }
    }
    let cluster_dir = cluster_dir.expect("probe reported its cluster dir (see its stderr above)");
    let postgres_dir = postgres_dir.expect("probe reported its PostgreSQL dir");
    (child, cluster_dir, postgres_dir)
}

#[tokio::test]
async fn shared_parts_die_with_a_killed_test_process() {
    let (mut child, cluster_dir, postgres_dir) =
        tokio::task::spawn_blocking(|| start_probe("hang"))
            .await
            .expect("probe");
    assert!(cluster_dir.exists() && postgres_dir.exists());
    assert!(!processes_mentioning(&cluster_dir.display().to_string()).is_empty());
    child.kill().expect("SIGKILL the probe"); // no destructor, no atexit: only the watchdog remains
    child.wait().expect("reap the probe");
    assert_cleaned_up(&cluster_dir).await;
    assert_cleaned_up(&postgres_dir).await;
}

#[tokio::test]
async fn shared_parts_die_with_a_test_process_that_exits() {
    let (mut child, cluster_dir, postgres_dir) =
        tokio::task::spawn_blocking(|| start_probe("exit"))
            .await
            .expect("probe");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "probe exited with {status}");
    assert_cleaned_up(&cluster_dir).await;
    assert_cleaned_up(&postgres_dir).await;
    // Sanity: the bound used above is the same order as the kit's own waits.
    assert!(CLEANUP <= WAIT);
}
