//! Faults during `stacks up preview-pr`, against a real control plane and
//! PostgreSQL of each test's own (the faults hit the servers; no other test
//! shares them). State is in `kubernetes://` (a state Secret and a lock Lease
//! through the same API server), as in CI. Each fault is followed by a
//! converging `up` (empty plan, nothing pending) and a verified `destroy`,
//! with the orphan check of the crash tests (`support_cluster/orphans.rs`:
//! every listable kind carrying the stack's label, the database, its temporary
//! create name and the per-PR role) finding 0 orphans and 0 duplicates.
//!
//! - **API server restart** in the middle of an `up`: the kube-apiserver
//!   process is stopped (SIGTERM; SIGKILL after 10 s, which it needed here)
//!   after a step boundary and started again on the same port and etcd 3 s
//!   later
//!   ([`testkit::TestCluster::stop_apiserver`]). The running `up` must ride it
//!   out or fail cleanly: exit 1 with an `error:` line, no panic, its lock
//!   released.
//! - **PostgreSQL restart during a database create**, with each database
//!   executor (direct SQL and in-cluster Jobs): the test holds a session on
//!   `template1`, so `CREATE DATABASE` (which copies it) waits for up to 5 s
//!   for that session to leave; the test sees the waiting statement in
//!   `pg_stat_activity` and restarts the server (`pg_ctl stop -m fast`, which
//!   terminates the create's session mid-statement, then `start` on the same
//!   port and data). The role already exists, the temporary database does not.
//! - **Network partition**: the `stacks` process runs in a network namespace
//!   of the test's own whose only way out is a forwarder to the API server
//!   ([`testkit::CuttablePath`]; loopback only, the host's network untouched).
//!   After a step boundary every packet in the namespace is dropped (the
//!   kernel's `blackhole` qdisc on its `lo`: connections get no answer, not a
//!   refusal) for 15 s, then delivered again; and, in another test, cut for
//!   good: the run must end by itself, cleanly, in bounded time (before the
//!   HTTP/2 keep-alive of `preview-kubernetes/src/connection.rs` it hung with
//!   its writes unacknowledged, still running 420 s later). A forwarder that
//!   merely stopped copying would leave the kernel acknowledging the client's
//!   segments; the qdisc drops them, as a dead link or a firewall does.
//! - **A Lease-holding run SIGKILLed**: the next run fails fast naming the dead
//!   holder; a run with `--lock-timeout` takes the stack over as soon as the
//!   Lease (20 s, renewed every ~6.7 s) expires, not before and not much later,
//!   and converges.
//!
//! Each test prints one summary line (`faults: …`): faults injected, runs,
//! orphans and duplicates found.

mod support_cluster;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use preview_envs::{BackendOptions, open_backend_with};
use support_cluster::orphans::{
    database_objects, labelled_objects_of_every_kind, recorded_objects,
};
use support_cluster::{Stacks, pr_args};
use testkit::{
    CuttablePath, NodeSimulator, SimulatorOptions, TestCluster, TestPostgres, default_crd_dir,
    install_crds,
};

/// The state backend of every run.
const BACKEND: &str = "kubernetes://preview-state";
/// The namespace of the database server and its Jobs (preview-base's).
const DB_NAMESPACE: &str = "default";
/// Longest a faulted run may take before it counts as hung.
const RUN_BOUND: Duration = Duration::from_secs(420);

/// A control plane, node simulator and PostgreSQL of the test's own, with
/// `preview-base` deployed on the `kubernetes://` backend.
struct Fixture {
    /// Declared first: stopped before the cluster.
    _simulator: NodeSimulator,
    cluster: TestCluster,
    pg: TestPostgres,
    work: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let cluster = TestCluster::start().await.expect("cluster");
        let client = cluster.client().expect("client");
        install_crds(&client, &default_crd_dir())
            .await
            .expect("crds");
        cluster.cert_manager().await.expect("cert-manager");
        let simulator = NodeSimulator::start_detached(
            cluster.simulator_config().clone(),
            SimulatorOptions::default(),
        )
        .await
        .expect("simulator");
        let pg = TestPostgres::start().await.expect("postgres");
        // The base's Service `db` leads to this server for the database Jobs.
        simulator.route_service(
            "db.default.svc.cluster.local:5432",
            &format!("127.0.0.1:{}", pg.port()),
        );
        // The server's superuser, as POSTGRES_USER is in the official image.
        pg.client()
            .await
            .expect("pg")
            .batch_execute("CREATE ROLE aphiria LOGIN SUPERUSER")
            .await
            .expect("role");
        support_cluster::create_namespace(&client, "preview-state").await;
        let fixture = Fixture {
            _simulator: simulator,
            cluster,
            pg,
            work: tempfile::tempdir().expect("work"),
        };
        fixture.stacks().ok(&["up", "preview-base"]);
        fixture
    }

    /// A runner on this cluster: `kubernetes://` state, direct database executor.
    /// A path to the API server the test can cut, and `stacks` runs (with
    /// in-cluster database Jobs: no route to PostgreSQL needed) whose only way
    /// out is that path.
    fn behind_cuttable_path(&self) -> (CuttablePath, Stacks) {
        let port: u16 = self
            .cluster
            .server_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("API server port");
        let path = CuttablePath::new(&[port]).expect("cuttable path");
        let stacks = self
            .stacks()
            .in_cluster_database()
            .wrapped_in(path.exec_prefix());
        (path, stacks)
    }

    fn stacks(&self) -> Stacks {
        Stacks::on(
            self.cluster.kubeconfig_path(),
            &self.pg.url(),
            self.work.path(),
            BACKEND,
        )
    }

    async fn state(&self, stack: &str) -> Option<preview_core::state::StackState> {
        let client = self.cluster.client().expect("client");
        let backend = open_backend_with(BACKEND, Some(&client), &BackendOptions::default())
            .await
            .expect("backend");
        backend.read(stack).await.expect("state readable")
    }

    /// Whether the stack's lock Lease exists.
    async fn lease(&self, stack: &str) -> Option<k8s_openapi::api::coordination::v1::Lease> {
        let client = self.cluster.client().expect("client");
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(client, "preview-state");
        leases
            .get_opt(&preview_kubernetes::state::lease::lease_name(stack))
            .await
            .expect("lease")
    }
}

fn up_args(pr: u64) -> Vec<String> {
    let mut a = vec!["up".to_owned(), "preview-pr".to_owned()];
    a.extend(pr_args(pr));
    a
}

/// A running `stacks` process whose progress lines (stderr) arrive on a channel.
struct Run {
    child: std::process::Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<String>,
    started: Instant,
}

/// How a run ended.
struct Ended {
    status: ExitStatus,
    stderr: String,
}

impl Run {
    fn start(mut command: Command) -> Run {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stacks");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            seen: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Waits for the first line containing `needle`: when it came, or `None`
    /// when the run ended first (or `within` passed).
    fn wait_for(&mut self, needle: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return Some(at);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for the `k`-th finished step (`✓` line); false when the run ended first.
    fn wait_for_steps(&mut self, k: usize) -> bool {
        let mut done = self.seen.iter().filter(|l| l.contains(" ✓ ")).count();
        while done < k {
            if self.wait_for(" ✓ ", RUN_BOUND).is_none() {
                return false;
            }
            done += 1;
        }
        true
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; a run still going after [`RUN_BOUND`]
    /// is a hang: killed, and the test fails.
    fn finish(mut self) -> Ended {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if self.started.elapsed() > RUN_BOUND {
                self.sigkill();
                panic!(
                    "the run hung: still running after {RUN_BOUND:?}:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends at end of file.
        while let Ok((_, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        Ended {
            status,
            stderr: self.seen.join("\n"),
        }
    }
}

/// How a faulted run ended: "rode it out" or "failed cleanly"; anything else fails.
async fn judge(fx: &Fixture, stack: &str, ended: &Ended, label: &str) -> &'static str {
    assert!(
        !ended.stderr.contains("panicked"),
        "{label}: the run panicked:\n{}",
        ended.stderr
    );
    if ended.status.success() {
        return "rode it out";
    }
    assert_eq!(
        ended.status.code(),
        Some(1),
        "{label}: a failed run exits 1:\n{}",
        ended.stderr
    );
    assert!(
        ended.stderr.lines().any(|l| l.starts_with("error: ")),
        "{label}: a failed run says why:\n{}",
        ended.stderr
    );
    assert!(
        fx.lease(stack).await.is_none(),
        "{label}: a failed run releases its lock:\n{}",
        ended.stderr
    );
    "failed cleanly"
}

/// Why a failed run failed, for the summary: its first failed step's line
/// (`✗ …`), else its `error:` line; nothing for a run that succeeded.
fn error_line(ended: &Ended) -> String {
    if ended.status.success() {
        return String::new();
    }
    let lines = || ended.stderr.lines().map(str::trim);
    lines()
        .find(|l| l.starts_with("✗ "))
        .or_else(|| lines().find(|l| l.starts_with("error: ")))
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// What the orphan check found after a converging `up`.
#[derive(Default)]
struct Found {
    orphans: usize,
    duplicates: usize,
}

/// The converging `up` after a fault (empty plan, nothing pending, no orphan,
/// no duplicate, exactly one database and its role) and a verified `destroy`
/// (nothing labelled left, no database, temporary database or role, no state).
async fn converge_and_destroy(fx: &Fixture, stacks: &Stacks, pr: u64, label: &str) -> Found {
    let stack = format!("preview-pr-{pr}");
    stacks.ok(&up_args(pr));
    let mut preview = vec![
        "--json".to_owned(),
        "preview".to_owned(),
        "preview-pr".to_owned(),
    ];
    preview.extend(pr_args(pr));
    let plan: serde_json::Value =
        serde_json::from_slice(&stacks.ok(&preview).stdout).expect("plan json");
    for action in ["create", "update", "delete", "replace"] {
        assert_eq!(plan["summary"][action], 0, "{label}: {plan}");
    }
    let state = fx.state(&stack).await.expect("state");
    assert!(state.pending.is_empty(), "{label}: {:?}", state.pending);
    let recorded = recorded_objects(&state, DB_NAMESPACE);
    let client = fx.cluster.client().expect("client");
    let live = labelled_objects_of_every_kind(&client, &stack).await;
    let orphans: Vec<&String> = live.iter().filter(|o| !recorded.contains(*o)).collect();
    let mut distinct = live.clone();
    distinct.dedup();
    let pg = fx.pg.client().await.expect("pg");
    let db = format!("aphiria_pr_{pr}");
    let databases = database_objects(&pg, pr).await;
    let expected = vec![format!("database {db}"), format!("role {db}")];
    let found = Found {
        orphans: orphans.len(),
        duplicates: live.len() - distinct.len()
            + databases.iter().filter(|d| !expected.contains(d)).count(),
    };
    assert!(orphans.is_empty(), "{label}: orphans {orphans:?}");
    assert_eq!(
        databases, expected,
        "{label}: one database and its role, no temporary one"
    );
    assert_eq!(found.duplicates, 0, "{label}: duplicates in {live:?}");

    stacks.ok(&["destroy", "preview-pr", "--pr", &pr.to_string()]);
    let left = labelled_objects_of_every_kind(&client, &stack).await;
    assert!(left.is_empty(), "{label}: left {left:?}");
    assert!(
        database_objects(&pg, pr).await.is_empty(),
        "{label}: database objects left"
    );
    assert!(
        fx.state(&stack).await.is_none(),
        "{label}: the verified destroy removed the state"
    );
    found
}

fn summary(fault: &str, injected: usize, runs: usize, found: &Found, outcomes: &[String]) {
    eprintln!(
        "faults: {fault}: {injected} injected, {runs} runs, {} orphans, {} duplicates ({})",
        found.orphans,
        found.duplicates,
        outcomes.join("; ")
    );
}

/// The kube-apiserver restarted after the 2nd and after the 9th finished step
/// of two `up`s: down for 3 s after its graceful stop, then started on the
/// same port and etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_in_the_middle_of_an_up() {
    let mut fx = Fixture::start().await;
    let stacks = fx.stacks();
    let mut found = Found::default();
    let mut outcomes = Vec::new();
    let mut runs = 0;
    for (pr, k) in [(3101_u64, 2_usize), (3102, 9)] {
        let stack = format!("preview-pr-{pr}");
        let label = format!("API server restart after step {k}");
        let mut run = Run::start(stacks.command(&up_args(pr)));
        assert!(run.wait_for_steps(k), "{label}: the run ended first");
        let down = Instant::now();
        fx.cluster.stop_apiserver().expect("stop kube-apiserver");
        let stopping = down.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        fx.cluster
            .start_apiserver()
            .await
            .expect("start kube-apiserver");
        let outage = down.elapsed();
        let ended = run.finish();
        let outcome = judge(&fx, &stack, &ended, &label).await;
        outcomes.push(format!(
            "after step {k}: stopped in {:.1} s, back after {:.1} s, the run {outcome}{}",
            stopping.as_secs_f64(),
            outage.as_secs_f64(),
            error_line(&ended)
        ));
        let f = converge_and_destroy(&fx, &stacks, pr, &label).await;
        found.orphans += f.orphans;
        found.duplicates += f.duplicates;
        runs += 3; // the faulted up, the converging up, the destroy
    }
    summary("API server restart", 2, runs, &found, &outcomes);
}

/// PostgreSQL restarted while `CREATE DATABASE` of the PR's database runs,
/// once with each executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_during_a_database_create() {
    let fx = Fixture::start().await;
    let mut found = Found::default();
    let mut outcomes = Vec::new();
    let mut runs = 0;
    for (pr, in_cluster) in [(3201_u64, false), (3202, true)] {
        let executor = if in_cluster { "in-cluster" } else { "direct" };
        let label = format!("PostgreSQL restart, {executor} executor");
        let stack = format!("preview-pr-{pr}");
        let stacks = if in_cluster {
            fx.stacks().in_cluster_database()
        } else {
            fx.stacks()
        };
        // A session on the template: CREATE DATABASE waits (≤ 5 s) for it to leave.
        let (holder, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=template1",
                fx.pg.port()
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("template1 session");
        let held = tokio::spawn(connection);
        holder.batch_execute("SELECT 1").await.expect("hold");
        let watcher = fx.pg.client().await.expect("pg");
        let run = Run::start(stacks.command(&up_args(pr)));
        let began = Instant::now();
        let creating = loop {
            let rows = watcher
                .query(
                    "SELECT query FROM pg_stat_activity \
                     WHERE state = 'active' AND query ILIKE 'CREATE DATABASE%'",
                    &[],
                )
                .await
                .expect("pg_stat_activity");
            if let Some(row) = rows.first() {
                break row.get::<_, String>(0);
            }
            assert!(
                began.elapsed() < Duration::from_secs(240),
                "{label}: no CREATE DATABASE seen"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            creating.contains(&preview_postgres::sql::temp_name(&format!(
                "aphiria_pr_{pr}"
            ))),
            "{label}: the create runs under the temporary name: {creating}"
        );
        drop(watcher);
        fx.pg.stop().await.expect("stop postgres");
        tokio::time::sleep(Duration::from_secs(2)).await;
        fx.pg.start_again().await.expect("start postgres");
        drop(holder);
        let _ = held.await;
        let ended = run.finish();
        let outcome = judge(&fx, &stack, &ended, &label).await;
        outcomes.push(format!(
            "{executor}: the run {outcome}{}",
            error_line(&ended)
        ));
        let f = converge_and_destroy(&fx, &stacks, pr, &label).await;
        found.orphans += f.orphans;
        found.duplicates += f.duplicates;
        runs += 3;
    }
    summary(
        "PostgreSQL restart during CREATE DATABASE",
        2,
        runs,
        &found,
        &outcomes,
    );
}

/// The network path to the API server cut after a step boundary: every packet
/// dropped for 15 s, then delivered again. The run is in a namespace of its
/// own whose only way out is the forwarder to the API server; its databases
/// are made by in-cluster Jobs (it needs no route to PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_path_to_the_api_server_cut_mid_run() {
    let fx = Fixture::start().await;
    let (mut path, stacks) = fx.behind_cuttable_path();
    let mut found = Found::default();
    let mut outcomes = Vec::new();
    let mut runs = 0;
    for (pr, k, cut_for) in [(3301_u64, 3_usize, Duration::from_secs(15))] {
        let stack = format!("preview-pr-{pr}");
        let label = format!("network cut after step {k}");
        let mut run = Run::start(stacks.command(&up_args(pr)));
        assert!(run.wait_for_steps(k), "{label}: the run ended first");
        path.cut().expect("cut");
        tokio::time::sleep(cut_for).await;
        path.restore().expect("restore");
        let ended = run.finish();
        let outcome = judge(&fx, &stack, &ended, &label).await;
        outcomes.push(format!(
            "after step {k}: cut {} s, the run {outcome}{}",
            cut_for.as_secs(),
            error_line(&ended)
        ));
        let f = converge_and_destroy(&fx, &stacks, pr, &label).await;
        found.orphans += f.orphans;
        found.duplicates += f.duplicates;
        runs += 3;
    }
    summary(
        "network path to the API server cut",
        path.cuts() as usize,
        runs,
        &found,
        &outcomes,
    );
}

/// A run holding the stack's Lease SIGKILLed after its 5th finished step: a
/// run right after fails naming the dead holder; one with `--lock-timeout`
/// takes the stack over once the Lease expires and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_lease_holder_is_taken_over_within_the_lease_expiry() {
    let fx = Fixture::start().await;
    let stacks = fx.stacks();
    let pr = 3401_u64;
    let stack = format!("preview-pr-{pr}");
    let mut run = Run::start(stacks.command(&up_args(pr)));
    let holder_pid = run.child.id();
    assert!(run.wait_for_steps(5), "the run ended first");
    run.sigkill();
    let killed = Instant::now();
    let lease = fx
        .lease(&stack)
        .await
        .expect("the dead run's Lease is left");
    let spec = lease.spec.clone().expect("spec");
    let expires = preview_kubernetes::state::lease::expires_at(&spec).expect("expiry");
    let now = preview_kubernetes::state::lease::now_micro()
        .0
        .as_microsecond();
    let expires_in = Duration::from_micros(u64::try_from(expires - now).unwrap_or(0));

    // Without waiting: refused, naming the holder.
    let refused = stacks.run(&up_args(pr));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("is locked by pid {holder_pid} ")),
        "names the dead holder: {stderr}"
    );

    // Waiting: taken over once the Lease expires.
    let mut wait = up_args(pr);
    wait.extend(["--lock-timeout".to_owned(), "60s".to_owned()]);
    let mut command = stacks.command(&wait);
    command.env("PREVIEW_LOG", "warn");
    let mut taker = Run::start(command);
    let taken = taker
        .wait_for("taking over an expired lock", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no takeover:\n{}", taker.seen.join("\n")));
    let after = taken.duration_since(killed);
    let ended = taker.finish();
    assert!(ended.status.success(), "{}", ended.stderr);
    // Not before the Lease expired, and soon after: within the lock's retry
    // pause (≤ 2.5 s) and a takeover's two requests, with room for a loaded machine.
    assert!(
        after + Duration::from_millis(500) >= expires_in,
        "taken over {after:?} after the kill, before the Lease expired ({expires_in:?})"
    );
    assert!(
        after <= expires_in + Duration::from_secs(6),
        "taken over {after:?} after the kill; the Lease expired after {expires_in:?}"
    );
    let f = converge_and_destroy(&fx, &stacks, pr, "SIGKILLed Lease holder").await;
    summary(
        "SIGKILLed Lease holder",
        1,
        5, // the killed up, the refused up, the waiting up, the converging up, the destroy
        &f,
        &[format!(
            "Lease expired {:.1} s after the kill; taken over after {:.1} s",
            expires_in.as_secs_f64(),
            after.as_secs_f64()
        )],
    );
}

/// The network path to the API server cut after a step boundary and not
/// restored until the run has ended: the run must end by itself, cleanly
/// (exit 1, an `error:` line, no panic), in bounded time, not hang on
/// connections that get no answer. Its Lease cannot be released over the cut
/// path; it is not renewed either, so it expires on its own. Then the path is
/// restored and an `up` converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_path_to_the_api_server_cut_for_good_the_run_ends_cleanly() {
    let fx = Fixture::start().await;
    let (mut path, stacks) = fx.behind_cuttable_path();
    let pr = 3302_u64;
    let stack = format!("preview-pr-{pr}");
    let label = "network cut for good after step 3";
    let mut run = Run::start(stacks.command(&up_args(pr)));
    assert!(run.wait_for_steps(3), "{label}: the run ended first");
    path.cut().expect("cut");
    let cut_at = Instant::now();
    let cut_wall = preview_kubernetes::state::lease::now_micro()
        .0
        .as_microsecond();
    let ended = run.finish();
    let ended_after = cut_at.elapsed();
    assert!(
        !ended.stderr.contains("panicked"),
        "{label}: panicked:\n{}",
        ended.stderr
    );
    assert!(!ended.status.success(), "{label}: {}", ended.stderr);
    assert_eq!(ended.status.code(), Some(1), "{label}: {}", ended.stderr);
    assert!(
        ended.stderr.lines().any(|l| l.starts_with("error: ")),
        "{label}: says why:\n{}",
        ended.stderr
    );
    // Bounded: the readiness timeout (300 s) is the longest wait of a run.
    assert!(
        ended_after < Duration::from_secs(300),
        "{label}: ended {ended_after:?} after the cut:\n{}",
        ended.stderr
    );
    // The Lease is left (it could not be deleted over the cut path) but was
    // not renewed after the cut: it expires on its own.
    if let Some(lease) = fx.lease(&stack).await {
        let spec = lease.spec.expect("spec");
        let renewed = spec
            .renew_time
            .or(spec.acquire_time)
            .expect("renew time")
            .0
            .as_microsecond();
        assert!(
            renewed <= cut_wall + 1_000_000,
            "{label}: the Lease was renewed after the cut"
        );
    }
    path.restore().expect("restore");
    let outcome = format!(
        "after step 3: cut until the run ended, {:.0} s later{}",
        ended_after.as_secs_f64(),
        error_line(&ended)
    );
    // The dead run's Lease (20 s) has expired by now, or soon.
    let mut converge = up_args(pr);
    converge.extend(["--lock-timeout".to_owned(), "60s".to_owned()]);
    stacks.ok(&converge);
    let f = converge_and_destroy(&fx, &stacks, pr, label).await;
    summary(
        "network path to the API server cut for good",
        path.cuts() as usize,
        4, // the cut up, the up after it, the converging up, the destroy
        &f,
        &[outcome],
    );
}
