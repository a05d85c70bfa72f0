//! The cluster half of the benchmark: a real etcd + kube-apiserver +
//! kube-controller-manager with CRDs and the node simulator (test kit), a real
//! PostgreSQL, the release `stacks` binary and `kubectl`.
//!
//! The per-PR database is reached directly (`PREVIEW_POSTGRES_URL`), so the
//! plan, no-op and first-up numbers include a new PostgreSQL connection (and
//! the first up a `CREATE DATABASE`); the same SQL is timed alone in the same
//! run and reported in the note column, so that part can be told apart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::{NodeSimulator, TestCluster, TestPostgres, default_crd_dir, install_crds};

use crate::scale::{Batch, run_all};
use crate::stats::{median, ms};

/// One table row.
pub struct Row {
    pub name: String,
    pub ours: String,
    pub baseline: String,
    pub target: String,
    pub note: String,
}

struct Env {
    stacks: PathBuf,
    kubectl: String,
    kubeconfig: PathBuf,
    state: PathBuf,
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
            .arg(format!("file://{}", self.state.display()))
            .arg("--config-dir")
            .arg(&self.config)
            .arg("--progress")
            .arg("none")
            .args(args)
            .env("PREVIEW_DB_PASSWORD", "bench-password")
            .env("PREVIEW_POSTGRES_URL", &self.pg_url)
            .env("PREVIEW_DIGITALOCEAN_TOKEN", "bench-dns-token")
            // The real cert-manager issues the base's wildcard certificate from a
            // self-signed Issuer (Let's Encrypt is out of reach here).
            .env("PREVIEW_TLS_ISSUER", "self-signed");
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
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
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

/// What the direct PostgreSQL executor spends, timed alone (median of `runs`):
/// a new connection plus the read of one database's owner and marker, and a
/// new connection plus creating a database the crash-safe way (temporary name,
/// COMMENT, RENAME) and reading it back.
struct PostgresCosts {
    connect_read: Duration,
    connect_create: Duration,
}

async fn postgres_costs(url: &str, runs: usize) -> Result<PostgresCosts> {
    const READ: &str = "SELECT pg_catalog.pg_get_userbyid(d.datdba), \
        COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') \
        FROM pg_catalog.pg_database d WHERE d.datname = $1";
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
        c.query_opt(READ, &[&"aphiria_pr_100"]).await?;
        reads.push(t.elapsed());
        drop(c);

        let db = format!("bench_create_{i}");
        let t = Instant::now();
        let c = connect().await?;
        // One statement per round trip, as the executor sends them (CREATE
        // DATABASE cannot share a transaction).
        for sql in [
            format!("DROP DATABASE IF EXISTS {db}_tmp WITH (FORCE)"),
            format!("CREATE DATABASE {db}_tmp OWNER aphiria"),
            format!("COMMENT ON DATABASE {db}_tmp IS 'bench'"),
            format!("ALTER DATABASE {db}_tmp RENAME TO {db}"),
        ] {
            c.batch_execute(&sql).await?;
        }
        c.query_opt(READ, &[&db]).await?;
        creates.push(t.elapsed());
        c.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await?;
    }
    Ok(PostgresCosts {
        connect_read: median(&mut reads),
        connect_create: median(&mut creates),
    })
}

/// Waits until the controllers and the node simulator have caught up with
/// what a batch created — every namespace `preview-pr-N` of `prs` has its three
/// pods (web, API, migration Job) started or completed, and no pod anywhere is
/// Pending — so that the next measurement does not pay for the previous one's
/// background work. Gives up after two minutes (said on stderr).
fn settle(env: &Env, prs: &[u32]) -> Result<Duration> {
    const PODS_PER_STACK: usize = 3;
    let namespaces: std::collections::BTreeSet<String> =
        prs.iter().map(|pr| format!("preview-pr-{pr}")).collect();
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
                _ => {}
            }
        }
        if pending == 0 && started >= PODS_PER_STACK * namespaces.len() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(120) {
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

fn report_errors(what: &str, batch: &Batch) {
    if let Some(e) = &batch.first_error {
        eprintln!("{what}: {} error(s); the first:\n{e}", batch.errors);
    }
}

/// `count` preview-pr stacks, applied by `count` processes at once: first up
/// (no readiness waits) and then a no-op up, each against the same number of
/// `kubectl apply --server-side` processes applying the rendered manifests of
/// as many other PRs.
fn scale_rows(env: &Env, cluster: &TestCluster, work: &Path, count: usize) -> Result<Vec<Row>> {
    let ours_prs: Vec<u32> = (0..count as u32).map(|i| 1000 + i).collect();
    let kubectl_prs: Vec<u32> = (0..count as u32).map(|i| 3000 + i).collect();
    eprintln!("rendering {count} PR stacks for kubectl …");
    let mut dirs = Vec::new();
    for pr in &kubectl_prs {
        let dir = work.join(format!("scale-{pr}"));
        let dir_s = dir.display().to_string();
        let mut r: Vec<String> = vec![
            "render".into(),
            "preview-pr".into(),
            "--dir".into(),
            dir_s.clone(),
        ];
        r.extend(Env::pr_args(*pr));
        timed(
            env.stacks(&r.iter().map(String::as_str).collect::<Vec<_>>()),
            &[0],
        )?;
        dirs.push(dir_s);
    }
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

    eprintln!("settling: {:.1} s", settle(env, &[])?.as_secs_f64());
    eprintln!("{count} × stacks up preview-pr --no-wait, at once …");
    let ours_first = run_all(ours(&[]));
    report_errors("stacks up", &ours_first);
    eprintln!("settling: {:.1} s", settle(env, &ours_prs)?.as_secs_f64());
    eprintln!("{count} × kubectl apply --server-side, at once …");
    let kubectl_first = run_all(kubectl());
    report_errors("kubectl apply", &kubectl_first);
    eprintln!(
        "settling: {:.1} s",
        settle(env, &kubectl_prs)?.as_secs_f64()
    );

    eprintln!("{count} × no-op stacks up, at once …");
    let ours_noop = run_all(ours(&["--json"]));
    report_errors("stacks up (no-op)", &ours_noop);
    let ours_writes = engine_writes(&ours_noop);
    let (_, skip) = kubectl_writes(cluster, 0)?;
    eprintln!("{count} × kubectl apply --server-side again, at once …");
    let kubectl_noop = run_all(kubectl());
    report_errors("kubectl apply (again)", &kubectl_noop);
    let (kubectl_patches, _) = kubectl_writes(cluster, skip)?;

    Ok(vec![
        Row {
            name: format!(
                "{count} preview-pr stacks, first up (no readiness waits), {count} processes at once"
            ),
            ours: ours_first.summary(),
            baseline: format!("{} (kubectl apply --server-side)", kubectl_first.summary()),
            target: "0 errors".into(),
            note: format!(
                "one API server, one PostgreSQL server ({count} CREATE DATABASE); per stack = its process's start to exit"
            ),
        },
        Row {
            name: format!("{count} preview-pr stacks, no-op up, {count} processes at once"),
            ours: format!("{}; {ours_writes} writes", ours_noop.summary()),
            baseline: format!(
                "{}; {kubectl_patches} writes (kubectl apply --server-side)",
                kubectl_noop.summary()
            ),
            target: "0 errors, 0 writes".into(),
            note: format!("{count} new PostgreSQL connections at once"),
        },
    ])
}

pub async fn run(runs: usize, scale: usize) -> Result<Vec<Row>> {
    eprintln!(
        "starting the local control plane, CRDs, cert-manager, node simulator and PostgreSQL …"
    );
    let cluster = TestCluster::start().await?;
    install_crds(&cluster.client()?, &default_crd_dir()).await?;
    cluster.cert_manager().await?;
    let _sim = NodeSimulator::start_for(&cluster).await?;
    let pg = TestPostgres::start().await?;
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
        kubectl: std::env::var("PREVIEW_KUBECTL").unwrap_or_else(|_| "kubectl".into()),
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
        state: work.path().join("state"),
        config: repo_root().join("config"),
        pg_url: pg.url(),
    };
    anyhow::ensure!(
        env.stacks.exists(),
        "{} missing: build with `cargo build --release -p stacks -p bench`",
        env.stacks.display()
    );

    eprintln!("stacks up preview-base …");
    timed(env.stacks(&["up", "preview-base"]), &[0])?;

    // The database work alone. This also warms the new server up, as a server
    // in use is: its first CREATE DATABASEs allocate WAL segments.
    let pg_costs = postgres_costs(&env.pg_url, runs.max(3)).await?;

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
        settling += settle(&env, &previous)?;
        ours_first.push(timed(env.stacks(&a), &[0])?.0);
        // Same manifests, other namespace, for kubectl: render PR 200+i.
        let kpr = 200 + i;
        let kargs = Env::pr_args(kpr);
        let dir = work.path().join(format!("manifests-{kpr}"));
        let dir_s = dir.display().to_string();
        let mut r: Vec<&str> = vec!["render", "preview-pr", "--dir", &dir_s];
        r.extend(kargs.iter().map(String::as_str));
        timed(env.stacks(&r), &[0])?;
        settling += settle(&env, &[pr])?;
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
    settle(&env, &previous)?;
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
        let (_, skip) = kubectl_writes(&cluster, 0)?;
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
        kubectl_patches.push(kubectl_writes(&cluster, skip)?.0);
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
        "includes a new PostgreSQL connection + 1 query ({} alone, overlapped with the Kubernetes reads)",
        ms(pg_costs.connect_read)
    );

    let max_writes = ours_writes.iter().max().copied().unwrap_or(0);
    let kubectl_writes_median = median(&mut kubectl_patches);
    let mut rows = vec![
        Row {
            name: format!(
                "plan, deployed preview-pr ({resources} Kubernetes objects + 1 database)"
            ),
            ours: ms(median(&mut ours_plan)),
            baseline: format!(
                "{} (kubectl diff --server-side)",
                ms(median(&mut kubectl_diff))
            ),
            target: "≤ 30 ms".into(),
            note: pg_read_note.clone(),
        },
        Row {
            name: "first up, excluding readiness waits".into(),
            ours: ms(median(&mut ours_first)),
            baseline: format!(
                "{} (kubectl apply --server-side)",
                ms(median(&mut kubectl_first))
            ),
            target: "≤ 100 ms".into(),
            note: format!(
                "includes creating the database: new connection + CREATE DATABASE, COMMENT, RENAME = {} alone, on the path database → migration Job → API Deployment",
                ms(pg_costs.connect_create)
            ),
        },
        Row {
            name: "no-op up".into(),
            ours: format!("{}, {max_writes} writes", ms(median(&mut ours_noop))),
            baseline: format!(
                "{}, {kubectl_writes_median} writes (kubectl apply --server-side)",
                ms(median(&mut kubectl_noop))
            ),
            target: "≤ 50 ms, 0 writes".into(),
            note: pg_read_note,
        },
    ];
    if scale > 0 {
        rows.extend(tokio::task::block_in_place(|| {
            scale_rows(&env, &cluster, work.path(), scale)
        })?);
    }
    Ok(rows)
}
