//! The cluster half of the benchmark: a real etcd + kube-apiserver +
//! kube-controller-manager with CRDs and the node simulator (test kit), a real
//! PostgreSQL, the release `stacks` binary and `kubectl`.
//!
//! The per-PR database and its login role are reached directly
//! (`PREVIEW_POSTGRES_URL`, as the server's superuser, which can CREATE ROLE),
//! so the plan, no-op and first-up numbers include a new PostgreSQL connection
//! (and the first up a `CREATE ROLE` and a `CREATE DATABASE`); the same SQL is
//! timed alone in the same run and reported in the note column, so that part
//! can be told apart.
//!
//! The single-process rows run on one control plane; each scale size on a
//! fresh one (so that 500 stacks do not also carry the 100 of the size
//! before), whose simulated node and PostgreSQL are sized for it: node capacity
//! for every pod of both sides, `max_connections` above the processes at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use preview_postgres::{role, sql};
use testkit::{
    NodeCapacity, NodeSimulator, SimulatorOptions, TestCluster, TestPostgres, default_crd_dir,
    install_crds,
};

use crate::scale::{Batch, peak_rss_kib, run_limited};
use crate::stats::{median, ms};

/// One table row.
pub struct Row {
    pub name: String,
    pub ours: String,
    pub baseline: String,
    pub target: String,
    /// Whether the targets are met, said plainly (`yes` or `**no**: why`).
    pub met: String,
    pub note: String,
}

/// `yes (summary)`, or `**no**: ` and every failed check, from
/// `(passed, what failed)`.
pub fn verdict_with(checks: &[(bool, String)], summary: &str) -> String {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, why)| why.as_str())
        .collect();
    if failed.is_empty() {
        format!("yes ({summary})")
    } else {
        format!("**no**: {}", failed.join("; "))
    }
}

/// `kubectl ÷ ours` as `12.3×`, and whether it is at least `at_least`.
fn ratio_check(ours: Duration, kubectl: Duration, at_least: f64) -> (bool, String, f64) {
    let ratio = kubectl.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    (
        ratio >= at_least,
        format!("{ratio:.1}× kubectl (target ≥ {at_least}×)"),
        ratio,
    )
}

/// The verdict of a row timed against kubectl: `ours` within `bound_ms`, the
/// `extra` checks, and at least `at_least` times faster than `kubectl`.
fn against_kubectl(
    ours: Duration,
    kubectl: Duration,
    bound_ms: u64,
    extra: Vec<(bool, String)>,
    at_least: f64,
) -> String {
    let (ratio_ok, ratio_text, ratio) = ratio_check(ours, kubectl, at_least);
    let mut checks = vec![(
        ours <= Duration::from_millis(bound_ms),
        format!("{} > {bound_ms} ms", ms(ours)),
    )];
    checks.extend(extra);
    checks.push((ratio_ok, ratio_text));
    verdict_with(&checks, &format!("{ratio:.1}× kubectl"))
}

/// The state passphrase of every run: preview-pr seals its role's password with it.
const STATE_PASSPHRASE: &str = "bench-state-passphrase-3f9c1d0a";

struct Env {
    stacks: PathBuf,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    /// `--backend` of every run: `file://` a directory of the world, or
    /// `kubernetes://preview-state` with `BENCH_BACKEND=kubernetes`.
    backend: String,
    config: PathBuf,
    pg_url: String,
}

fn digest(n: u32) -> String {
    format!("{n:064x}")
}

impl Env {
    fn stacks(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.stacks);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--backend")
            .arg(&self.backend)
            .arg("--config-dir")
            .arg(&self.config)
            .arg("--progress")
            .arg("none")
            .args(args)
            .env("PREVIEW_DB_PASSWORD", "bench-password")
            // The direct executor, as the superuser (it creates each PR's role).
            .env("PREVIEW_POSTGRES_URL", &self.pg_url)
            // preview-pr seals its generated role password in the state with it.
            .env("PREVIEW_STATE_PASSPHRASE", STATE_PASSPHRASE)
            .env("PREVIEW_DIGITALOCEAN_TOKEN", "bench-dns-token")
            // The real cert-manager issues the base's wildcard certificate from a
            // self-signed Issuer (Let's Encrypt is out of reach here).
            .env("PREVIEW_TLS_ISSUER", "self-signed")
            // Nothing from the caller's environment decides where things go.
            .env_remove("KUBECONFIG")
            .env_remove("PREVIEW_BACKEND")
            .env_remove("PREVIEW_POSTGRES_URL_FILE")
            .env_remove("PREVIEW_STATE_PASSPHRASE_FILE")
            .env_remove("PREVIEW_RECORDS_BACKEND")
            .env_remove("GITHUB_SHA")
            .env_remove("PREVIEW_COMMIT_SHA");
        c
    }

    fn pr_args(pr: u32) -> Vec<String> {
        vec![
            "--pr".into(),
            pr.to_string(),
            "--web-image".into(),
            format!("ghcr.io/aphiria/web@sha256:{}", digest(pr)),
            "--api-image".into(),
            format!("ghcr.io/aphiria/api@sha256:{}", digest(pr + 1000)),
        ]
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG");
        c
    }
}

/// Runs a whole process and times it. The waiting happens outside the async
/// runtime's worker threads ([`tokio::task::block_in_place`]), so the node
/// simulator running on them keeps going.
fn timed(mut cmd: Command, ok_codes: &[i32]) -> Result<(Duration, Output)> {
    let t = Instant::now();
    let out =
        tokio::task::block_in_place(|| cmd.output()).with_context(|| format!("running {cmd:?}"))?;
    let elapsed = t.elapsed();
    let code = out.status.code().unwrap_or(-1);
    if !ok_codes.contains(&code) {
        bail!(
            "{cmd:?} exited {code}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((elapsed, out))
}

/// Mutating requests kubectl sent (PATCH/POST/PUT/DELETE) since `since` audit events.
fn kubectl_writes(cluster: &TestCluster, skip: usize) -> Result<(usize, usize)> {
    let events = cluster.audit_events()?;
    let writes = events
        .iter()
        .skip(skip)
        .filter(|e| e.is_complete())
        .filter(|e| {
            e.user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("kubectl"))
        })
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|e| !e.request_uri.contains("dryRun="))
        .count();
    Ok((writes, events.len()))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the direct PostgreSQL executor spends, timed alone (median of `runs`),
/// statement for statement as it sends them:
/// - `connect_read`: a new connection plus the read of one database (owner,
///   marker) and of its role (marker, connection limit, verifier), as a plan
///   or no-op up does;
/// - `connect_create`: a new connection plus a first up's database step: both
///   reads, `CREATE ROLE` with its COMMENT in one transaction, the database
///   the crash-safe way (temporary name, COMMENT, REVOKE, RENAME), the REVOKEs
///   on it and on the system databases, and both reads again.
struct PostgresCosts {
    connect_read: Duration,
    connect_create: Duration,
}

async fn postgres_costs(url: &str, runs: usize) -> Result<PostgresCosts> {
    const READ_DB: &str = "SELECT pg_catalog.pg_get_userbyid(d.datdba), \
        COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') \
        FROM pg_catalog.pg_database d WHERE d.datname = $1";
    const READ_ROLE: &str = "SELECT COALESCE(pg_catalog.shobj_description(a.oid, 'pg_authid'), ''), \
        a.rolconnlimit::int8, COALESCE(a.rolpassword, '') \
        FROM pg_catalog.pg_authid a WHERE a.rolname = $1";
    let connect = async || -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    };
    let mut reads = Vec::new();
    let mut creates = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        let c = connect().await?;
        c.query_opt(READ_DB, &[&"aphiria_pr_100"]).await?;
        c.query_opt(READ_ROLE, &[&"aphiria_pr_100"]).await?;
        reads.push(t.elapsed());
        drop(c);

        let name = format!("bench_create_{i}");
        // The verifier is computed before the step (at render time), not timed.
        let password = role::generate_password();
        let verifier = role::scram_verifier(&name, &password);
        let (db, tmp) = (
            sql::quote_ident(&name),
            sql::quote_ident(&sql::temp_name(&name)),
        );
        let comment = sql::quote_literal(&sql::marker_comment("bench"));
        let t = Instant::now();
        let c = connect().await?;
        c.query_opt(READ_DB, &[&name]).await?;
        c.query_opt(READ_ROLE, &[&name]).await?;
        // One statement (or transaction) per round trip, as the executor sends
        // them (CREATE DATABASE cannot share a transaction).
        for statement in [
            format!(
                "BEGIN; CREATE ROLE {db} WITH {} CONNECTION LIMIT {} PASSWORD {}; COMMENT ON ROLE {db} IS {comment}; COMMIT",
                role::ATTRIBUTES,
                role::DEFAULT_CONNECTION_LIMIT,
                sql::quote_literal(&verifier)
            ),
            format!("DROP DATABASE IF EXISTS {tmp} WITH (FORCE)"),
            format!("CREATE DATABASE {tmp} OWNER {db}"),
            format!("COMMENT ON DATABASE {tmp} IS {comment}"),
            format!("REVOKE ALL ON DATABASE {tmp} FROM PUBLIC"),
            format!("ALTER DATABASE {tmp} RENAME TO {db}"),
            format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; {}",
                sql::REVOKE_SYSTEM_DATABASES
            ),
        ] {
            c.batch_execute(&statement).await.map_err(|e| {
                anyhow::anyhow!(
                    "{statement}: {}",
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), ToString::to_string)
                )
            })?;
        }
        c.query_opt(READ_DB, &[&name]).await?;
        c.query_opt(READ_ROLE, &[&name]).await?;
        creates.push(t.elapsed());
        // DROP DATABASE cannot share a multi-statement query (an implicit transaction).
        c.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await?;
        c.batch_execute(&format!("DROP ROLE {db}")).await?;
    }
    Ok(PostgresCosts {
        connect_read: median(&mut reads),
        connect_create: median(&mut creates),
    })
}

/// One Argon2id derivation of the state passphrase under the default cost
/// (19 MiB, 2 passes, 1 lane), timed alone (median of `runs`): opening the
/// data key of a state sealed with it. Every process of preview-pr derives
/// at least one (to authenticate and seal its state).
fn argon2_alone(runs: usize) -> Result<Duration> {
    use preview_core::secret::SecretString;
    use preview_core::state::StackState;
    use preview_core::state::crypto::Sealer;
    let passphrase = SecretString::new(STATE_PASSPHRASE);
    let mut state = StackState::new("bench-kdf");
    Sealer::open_or_init(&mut state, &passphrase)?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        Sealer::open(&state, &passphrase)?;
        times.push(t.elapsed());
    }
    Ok(median(&mut times))
}

/// Waits until the controllers and the node simulator have caught up with
/// what a batch created — every namespace `preview-pr-N` of `prs` has its three
/// pods (web, API, migration Job) started or completed, and no pod anywhere is
/// Pending — so that the next measurement does not pay for the previous one's
/// background work. Gives up after two minutes plus a quarter of a second per
/// stack (said on stderr).
fn settle(env: &Env, prs: &[u32]) -> Result<Duration> {
    const PODS_PER_STACK: usize = 3;
    let namespaces: std::collections::BTreeSet<String> =
        prs.iter().map(|pr| format!("preview-pr-{pr}")).collect();
    let limit = Duration::from_secs(120)
        + Duration::from_millis(250) * u32::try_from(prs.len()).unwrap_or(u32::MAX);
    let t = Instant::now();
    loop {
        let (_, out) = timed(
            env.kubectl(&["get", "pods", "--all-namespaces", "--no-headers"]),
            &[0],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut started = 0;
        let mut pending = 0;
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(ns), Some(status)) = (cols.first(), cols.get(3)) else {
                continue;
            };
            match *status {
                "Running" | "Completed" if namespaces.contains(*ns) => started += 1,
                "Pending" | "ContainerCreating" => pending += 1,
                s if s.starts_with("Init:") => pending += 1,
                _ => {}
            }
        }
        if pending == 0 && started >= PODS_PER_STACK * namespaces.len() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            eprintln!(
                "settling: gave up after {:.0} s ({started} of {} pods started, {pending} pending)",
                t.elapsed().as_secs_f64(),
                PODS_PER_STACK * namespaces.len()
            );
            return Ok(t.elapsed());
        }
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(500)));
    }
}

/// Sum of the engine's mutating requests over `up --json` reports.
fn engine_writes(batch: &Batch) -> u64 {
    batch
        .outputs
        .iter()
        .filter_map(|o| serde_json::from_slice::<serde_json::Value>(o).ok())
        .map(|r| r["requests"]["writes"].as_u64().unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add)
}

/// Prints a batch's failures: the first in full, then how many failed with
/// each last line of output.
fn report_errors(what: &str, batch: &Batch) {
    if let Some(e) = &batch.first_error {
        eprintln!("{what}: {} error(s); the first:\n{e}", batch.errors);
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for f in &batch.failures {
            let last: String = f
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            *kinds.entry(last).or_default() += 1;
        }
        for (kind, n) in kinds {
            eprintln!("  {n} × {kind}");
        }
    }
}

/// `MemAvailable` from `/proc/meminfo`, in KiB (0 when unknown).
fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mb(kib: u64) -> String {
    format!("{:.0} MB", kib as f64 / 1024.0)
}

/// A control plane with CRDs, cert-manager, the node simulator and a
/// PostgreSQL server, with `preview-base` deployed; sized for `stacks`
/// preview-pr stacks: the node's capacity fits all their pods (the default
/// 8 CPUs and 110 pods fit about 20), and PostgreSQL accepts a connection
/// from each of that many processes at once.
struct World {
    env: Env,
    cluster: TestCluster,
    _sim: NodeSimulator,
    _pg: TestPostgres,
    work: tempfile::TempDir,
}

/// Capacity for `stacks` stacks: per stack its pods request 350m CPU, 448Mi
/// of memory and 512Mi of ephemeral storage at most; one CPU, 2Gi and 2Gi
/// each leave room for the rolling updates of a first up's Deployments.
fn node_capacity(stacks: u32) -> NodeCapacity {
    let d = NodeCapacity::default();
    NodeCapacity {
        cpu: stacks.max(8).to_string(),
        memory: format!("{}Gi", (2 * stacks).max(32)),
        pods: (4 * stacks + 100).max(d.pods),
        ephemeral_storage: format!("{}Gi", (2 * stacks).max(100)),
    }
}

/// The state backend of the runs: `BENCH_BACKEND=kubernetes` for
/// `kubernetes://preview-state` (the namespace created here), else `file://DIR`.
async fn bench_backend(cluster: &TestCluster, dir: &Path) -> Result<String> {
    match std::env::var("BENCH_BACKEND").as_deref() {
        Ok("kubernetes") => {
            let out = Command::new(testkit::bins::kubectl()?)
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig_path())
                .args(["create", "namespace", "preview-state"])
                .output()
                .context("kubectl create namespace preview-state")?;
            anyhow::ensure!(
                out.status.success(),
                "kubectl create namespace preview-state: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok("kubernetes://preview-state".into())
        }
        Ok("file") | Err(_) => Ok(format!("file://{}", dir.display())),
        Ok(other) => bail!("BENCH_BACKEND={other:?}: use file or kubernetes"),
    }
}

impl World {
    async fn start(stacks: usize) -> Result<World> {
        eprintln!(
            "starting a local control plane, CRDs, cert-manager, node simulator and PostgreSQL (for {stacks} stacks) …"
        );
        let n = u32::try_from(stacks).context("stack count")?;
        let cluster = TestCluster::start().await?;
        install_crds(&cluster.client()?, &default_crd_dir()).await?;
        cluster.cert_manager().await?;
        let sim = NodeSimulator::start_with(
            cluster.simulator_client()?,
            SimulatorOptions {
                capacity: node_capacity(n),
                ..SimulatorOptions::default()
            },
        )
        .await?;
        // One connection per process at once, plus the bench's and the server's
        // reserved ones.
        let pg = TestPostgres::start_with_max_connections((n + 100).max(100)).await?;
        pg.client()
            .await?
            .batch_execute("CREATE ROLE aphiria LOGIN")
            .await?;
        let work = tempfile::tempdir()?;
        let exe_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("exe dir")?;
        let env = Env {
            stacks: exe_dir.join("stacks"),
            kubectl: testkit::bins::kubectl()?,
            kubeconfig: cluster.kubeconfig_path().to_path_buf(),
            backend: bench_backend(&cluster, &work.path().join("state")).await?,
            config: repo_root().join("config"),
            pg_url: pg.url(),
        };
        anyhow::ensure!(
            env.stacks.exists(),
            "{} missing: build with `cargo build --release -p stacks-cli -p bench`",
            env.stacks.display()
        );
        eprintln!("stacks up preview-base …");
        timed(env.stacks(&["up", "preview-base"]), &[0])?;
        Ok(World {
            env,
            cluster,
            _sim: sim,
            _pg: pg,
            work,
        })
    }
}

/// Renders preview-pr for `pr` into `dir` (for kubectl), secret values
/// included (redacted ones would not apply).
fn render(env: &Env, pr: u32, dir: &Path) -> Result<String> {
    let dir_s = dir.display().to_string();
    let mut r: Vec<String> = vec![
        "render".into(),
        "preview-pr".into(),
        "--include-secrets".into(),
        "--dir".into(),
        dir_s.clone(),
    ];
    r.extend(Env::pr_args(pr));
    timed(
        env.stacks(&r.iter().map(String::as_str).collect::<Vec<_>>()),
        &[0],
    )?;
    Ok(dir_s)
}

/// `count` preview-pr stacks, applied by `count` processes at once: first up
/// (no readiness waits) and then a no-op up, each against the same number of
/// `kubectl apply --server-side` processes applying the rendered manifests of
/// as many other PRs — all at once when their memory fits, otherwise at most
/// as many at once as fit (said in the row).
fn scale_rows(world: &World, count: usize) -> Result<Vec<Row>> {
    let (env, cluster, work) = (&world.env, &world.cluster, world.work.path());
    let n = u32::try_from(count).context("stack count")?;
    let ours_prs: Vec<u32> = (0..n).map(|i| 1000 + i).collect();
    let kubectl_prs: Vec<u32> = (0..n).map(|i| 3000 + i).collect();
    eprintln!("rendering {count} PR stacks for kubectl …");
    let mut dirs = Vec::new();
    for pr in &kubectl_prs {
        dirs.push(render(env, *pr, &work.join(format!("scale-{pr}")))?);
    }

    // One process of each alone, for its peak memory (PRs of their own).
    let probe_dir = render(env, 999, &work.join("probe-kubectl"))?;
    let mut a: Vec<String> = vec!["up".into(), "preview-pr".into(), "--no-wait".into()];
    a.extend(Env::pr_args(998));
    let (status, ours_peak) =
        peak_rss_kib(env.stacks(&a.iter().map(String::as_str).collect::<Vec<_>>()))?;
    anyhow::ensure!(
        status.success(),
        "stacks up (memory probe) failed: {status}"
    );
    let (status, kubectl_peak) = peak_rss_kib(env.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager",
        "bench",
        "-f",
        &probe_dir,
    ]))?;
    anyhow::ensure!(
        status.success(),
        "kubectl apply (memory probe) failed: {status}"
    );
    eprintln!(
        "peak RSS of one process: stacks up {}, kubectl apply {}",
        mb(ours_peak),
        mb(kubectl_peak)
    );

    let ours = |extra: &[&str]| -> Vec<Command> {
        ours_prs
            .iter()
            .map(|pr| {
                let mut a: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
                a.extend(["up".into(), "preview-pr".into(), "--no-wait".into()]);
                a.extend(Env::pr_args(*pr));
                env.stacks(&a.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect()
    };
    let kubectl = || -> Vec<Command> {
        dirs.iter()
            .map(|dir| {
                env.kubectl(&[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "bench",
                    "-f",
                    dir,
                ])
            })
            .collect()
    };
    // How many processes of `peak` KiB each fit in memory at once: three
    // quarters of what is available now (the rest for the control plane and
    // PostgreSQL as they grow), or `var` when set.
    let fit = |peak: u64, var: &str| -> (usize, u64) {
        let available = mem_available_kib();
        let fit = usize::try_from(available * 3 / 4 / peak.max(1)).unwrap_or(usize::MAX);
        let at_once = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(fit)
            .clamp(1, count);
        (at_once, available)
    };

    eprintln!("settling: {:.1} s", settle(env, &[998, 999])?.as_secs_f64());
    // One batch: as many at once as fit in memory, announced, run, its errors reported.
    let batch = |commands: Vec<Command>, peak: u64, var: &str, what: &str, label: &str| {
        let (at_once, available) = fit(peak, var);
        eprintln!(
            "{count} × {what}, {at_once} at once ({} available) …",
            mb(available)
        );
        let batch = run_limited(commands, at_once);
        report_errors(label, &batch);
        (batch, available)
    };
    let (ours_first, ours_available_first) = batch(
        ours(&[]),
        ours_peak,
        "BENCH_OURS_AT_ONCE",
        "stacks up preview-pr --no-wait",
        "stacks up",
    );
    eprintln!("settling: {:.1} s", settle(env, &ours_prs)?.as_secs_f64());
    let (kubectl_first, available_first) = batch(
        kubectl(),
        kubectl_peak,
        "BENCH_KUBECTL_AT_ONCE",
        "kubectl apply --server-side",
        "kubectl apply",
    );
    eprintln!(
        "settling: {:.1} s",
        settle(env, &kubectl_prs)?.as_secs_f64()
    );

    let (ours_noop, ours_available_noop) = batch(
        ours(&["--json"]),
        ours_peak,
        "BENCH_OURS_AT_ONCE",
        "no-op stacks up",
        "stacks up (no-op)",
    );
    let ours_writes = engine_writes(&ours_noop);
    let (_, skip) = kubectl_writes(cluster, 0)?;
    let (kubectl_noop, available_noop) = batch(
        kubectl(),
        kubectl_peak,
        "BENCH_KUBECTL_AT_ONCE",
        "kubectl apply --server-side again",
        "kubectl apply (again)",
    );
    let (kubectl_patches, _) = kubectl_writes(cluster, skip)?;

    // What a capped batch says about itself.
    let capped = |batch: &Batch, peak: u64, available: u64| -> Option<String> {
        (batch.at_once < count).then(|| {
            format!(
                "**at most {} at once**: {count} × {} peak RSS does not fit in the {} available",
                batch.at_once,
                mb(peak),
                mb(available)
            )
        })
    };
    let ours_label = |batch: &Batch, available: u64| -> String {
        match capped(batch, ours_peak, available) {
            Some(c) => format!("{} ({c})", batch.summary()),
            None => batch.summary(),
        }
    };
    let how = |batch: &Batch, available: u64| -> String {
        match capped(batch, kubectl_peak, available) {
            Some(c) => format!("kubectl apply --server-side, {c}"),
            None => "kubectl apply --server-side".into(),
        }
    };
    let all_at_once = kubectl_first.at_once == count && ours_first.at_once == count;
    let (ratio_ok, ratio_text, ratio) = ratio_check(ours_first.wall, kubectl_first.wall, 5.0);
    let at_once_check = |batch: &Batch| {
        (
            batch.at_once == count,
            format!(
                "not {count} at once (at most {}: memory); {} errors that way",
                batch.at_once, batch.errors
            ),
        )
    };
    let mut first_checks = vec![
        at_once_check(&ours_first),
        (
            ours_first.errors == 0,
            format!("{} errors", ours_first.errors),
        ),
    ];
    let first_target = if count == 100 {
        first_checks.push((
            ratio_ok && all_at_once,
            if all_at_once {
                ratio_text
            } else {
                "no wall-time ratio: not both at once".into()
            },
        ));
        "0 errors, all at once; wall ≥ 5× faster than kubectl"
    } else {
        "0 errors, all at once"
    };
    let noop_ratio = kubectl_noop.wall.as_secs_f64() / ours_noop.wall.as_secs_f64().max(1e-9);
    Ok(vec![
        Row {
            name: format!(
                "{count} preview-pr stacks, first up (no readiness waits), {count} processes at once"
            ),
            ours: ours_label(&ours_first, ours_available_first),
            baseline: format!(
                "{} ({})",
                kubectl_first.summary(),
                how(&kubectl_first, available_first)
            ),
            target: first_target.into(),
            met: verdict_with(&first_checks, &format!("{ratio:.1}× kubectl's wall")),
            note: format!(
                "a fresh control plane: one API server, one PostgreSQL server ({count} CREATE ROLE + CREATE DATABASE); per stack = its process's start to exit; peak RSS of one process: stacks {}, kubectl {}",
                mb(ours_peak),
                mb(kubectl_peak)
            ),
        },
        Row {
            name: format!("{count} preview-pr stacks, no-op up, {count} processes at once"),
            ours: format!(
                "{}; {ours_writes} writes",
                ours_label(&ours_noop, ours_available_noop)
            ),
            baseline: format!(
                "{}; {kubectl_patches} writes ({})",
                kubectl_noop.summary(),
                how(&kubectl_noop, available_noop)
            ),
            target: "0 errors, 0 writes, all at once".into(),
            met: verdict_with(
                &[
                    at_once_check(&ours_noop),
                    (
                        ours_noop.errors == 0,
                        format!("{} errors", ours_noop.errors),
                    ),
                    (ours_writes == 0, format!("{ours_writes} writes")),
                ],
                &format!("{noop_ratio:.1}× kubectl's wall"),
            ),
            note: format!("{count} new PostgreSQL connections at once"),
        },
    ])
}

/// The single-process rows: plan, first up and no-op up against kubectl.
async fn single_rows(world: &World, runs: usize) -> Result<Vec<Row>> {
    let (env, cluster, work) = (&world.env, &world.cluster, world.work.path());
    // The database work alone. This also warms the new server up, as a server
    // in use is: its first CREATE DATABASEs allocate WAL segments.
    let pg_costs = postgres_costs(&env.pg_url, runs.max(3)).await?;
    let kdf = tokio::task::block_in_place(|| argon2_alone(runs.max(3)))?;
    let kdf_note = format!(
        "and at least one Argon2id of the state passphrase (19 MiB, 2 passes: {} alone, in-process)",
        ms(kdf)
    );

    // First up without readiness waits, on fresh PR numbers; kubectl on fresh
    // namespaces. Each starts on a settled cluster: the controllers and the node
    // simulator have finished the pods of the previous one.
    let mut ours_first = Vec::new();
    let mut kubectl_first = Vec::new();
    let mut manifest_dirs = Vec::new();
    let mut previous: Vec<u32> = Vec::new();
    let mut settling = Duration::ZERO;
    for i in 0..runs as u32 {
        let pr = 100 + i;
        let args = Env::pr_args(pr);
        let mut a: Vec<&str> = vec!["up", "preview-pr", "--no-wait"];
        a.extend(args.iter().map(String::as_str));
        settling += settle(env, &previous)?;
        ours_first.push(timed(env.stacks(&a), &[0])?.0);
        // Same manifests, other namespace, for kubectl: render PR 200+i.
        let kpr = 200 + i;
        let dir_s = render(env, kpr, &work.join(format!("manifests-{kpr}")))?;
        settling += settle(env, &[pr])?;
        previous = vec![kpr];
        kubectl_first.push(
            timed(
                env.kubectl(&[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "bench",
                    "-f",
                    &dir_s,
                ]),
                &[0],
            )?
            .0,
        );
        manifest_dirs.push(dir_s);
    }
    eprintln!(
        "first ups measured (settling between them: {:.1} s)",
        settling.as_secs_f64()
    );
    let resources = std::fs::read_dir(&manifest_dirs[0])?.count();

    // Let the first PR's stack become ready, then measure no-op up and plan.
    let args = Env::pr_args(100);
    let mut a: Vec<&str> = vec!["up", "preview-pr"];
    a.extend(args.iter().map(String::as_str));
    timed(env.stacks(&a), &[0])?;
    settle(env, &previous)?;
    let mut ours_noop = Vec::new();
    let mut ours_writes = Vec::new();
    let mut aj = a.clone();
    aj.insert(0, "--json");
    for _ in 0..runs {
        let (d, out) = timed(env.stacks(&aj), &[0])?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        ours_writes.push(report["requests"]["writes"].as_u64().unwrap_or(u64::MAX));
        ours_noop.push(d);
    }
    let mut ours_plan = Vec::new();
    let mut p: Vec<&str> = vec!["preview", "preview-pr"];
    p.extend(args.iter().map(String::as_str));
    for _ in 0..runs {
        ours_plan.push(timed(env.stacks(&p), &[0])?.0);
    }
    let mut kubectl_noop = Vec::new();
    let mut kubectl_patches = Vec::new();
    let mut kubectl_diff = Vec::new();
    for _ in 0..runs {
        let (_, skip) = kubectl_writes(cluster, 0)?;
        kubectl_noop.push(
            timed(
                env.kubectl(&[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "bench",
                    "-f",
                    &manifest_dirs[0],
                ]),
                &[0],
            )?
            .0,
        );
        kubectl_patches.push(kubectl_writes(cluster, skip)?.0);
        kubectl_diff.push(
            timed(
                env.kubectl(&[
                    "diff",
                    "--server-side",
                    "--field-manager",
                    "bench",
                    "-f",
                    &manifest_dirs[0],
                ]),
                &[0, 1],
            )?
            .0,
        );
    }
    let pg_read_note = format!(
        "includes a new PostgreSQL connection + 2 queries (database, role: {} alone, overlapped with the Kubernetes reads) {kdf_note}",
        ms(pg_costs.connect_read)
    );

    let max_writes = ours_writes.iter().max().copied().unwrap_or(0);
    let kubectl_writes_median = median(&mut kubectl_patches);
    let (plan, diff) = (median(&mut ours_plan), median(&mut kubectl_diff));
    let (first, kfirst) = (median(&mut ours_first), median(&mut kubectl_first));
    let (noop, knoop) = (median(&mut ours_noop), median(&mut kubectl_noop));
    Ok(vec![
        Row {
            name: format!(
                "plan, deployed preview-pr ({resources} Kubernetes objects + 1 database with its role)"
            ),
            ours: ms(plan),
            baseline: format!("{} (kubectl diff --server-side)", ms(diff)),
            target: "≤ 30 ms; ≥ 15× faster than kubectl".into(),
            met: against_kubectl(plan, diff, 30, Vec::new(), 15.0),
            note: pg_read_note.clone(),
        },
        Row {
            name: "first up, excluding readiness waits".into(),
            ours: ms(first),
            baseline: format!("{} (kubectl apply --server-side)", ms(kfirst)),
            target: "≤ 100 ms; ≥ 6× faster than kubectl".into(),
            met: against_kubectl(first, kfirst, 100, Vec::new(), 6.0),
            note: format!(
                "includes the database step: new connection, CREATE ROLE, CREATE DATABASE (temporary name, COMMENT, REVOKE, RENAME), REVOKEs, reads = {} alone, on the path database → migration Job → API Deployment; {kdf_note}",
                ms(pg_costs.connect_create)
            ),
        },
        Row {
            name: "no-op up".into(),
            ours: format!("{}, {max_writes} writes", ms(noop)),
            baseline: format!(
                "{}, {kubectl_writes_median} writes (kubectl apply --server-side)",
                ms(knoop)
            ),
            target: "≤ 50 ms, 0 writes; ≥ 25× faster than kubectl".into(),
            met: against_kubectl(
                noop,
                knoop,
                50,
                vec![(max_writes == 0, format!("{max_writes} writes"))],
                25.0,
            ),
            note: pg_read_note,
        },
    ])
}

/// Single-process rows on one control plane, then each scale size on a fresh one.
pub async fn run(runs: usize, scales: &[usize]) -> Result<Vec<Row>> {
    let world = World::start(2 * runs + 2).await?;
    let mut rows = single_rows(&world, runs).await?;
    drop(world);
    for &count in scales {
        // Ours, kubectl's and the two memory probes'.
        let world = World::start(2 * count + 2).await?;
        rows.extend(tokio::task::block_in_place(|| scale_rows(&world, count))?);
    }
    Ok(rows)
}
