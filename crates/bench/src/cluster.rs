//! The cluster half of the benchmark: a real etcd + kube-apiserver +
//! kube-controller-manager with CRDs and the node simulator (test kit), a real
//! PostgreSQL, the release `stacks` binary and `kubectl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::{NodeSimulator, TestCluster, TestPostgres, default_crd_dir, install_crds};

use crate::stats::{median, ms};

/// One table row.
pub struct Row {
    pub name: String,
    pub ours: String,
    pub baseline: String,
    pub target: String,
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
            .env("PREVIEW_DIGITALOCEAN_TOKEN", "bench-dns-token");
        c
    }

    fn pr_args(pr: u32) -> Vec<String> {
        vec![
            "--pr".into(),
            pr.to_string(),
            "--web-image".into(),
            format!("registry.example/web@sha256:{}", digest(pr)),
            "--api-image".into(),
            format!("registry.example/api@sha256:{}", digest(pr + 1000)),
        ]
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c
    }
}

fn timed(mut cmd: Command, ok_codes: &[i32]) -> Result<(Duration, Output)> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
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

pub async fn run(runs: usize) -> Result<Vec<Row>> {
    eprintln!("starting the local control plane, CRDs, node simulator and PostgreSQL …");
    let cluster = TestCluster::start().await?;
    install_crds(&cluster.client()?, &default_crd_dir()).await?;
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

    // First up without readiness waits, on fresh PR numbers; kubectl on fresh namespaces.
    let mut ours_first = Vec::new();
    let mut kubectl_first = Vec::new();
    let mut manifest_dirs = Vec::new();
    for i in 0..runs as u32 {
        let pr = 100 + i;
        let args = Env::pr_args(pr);
        let mut a: Vec<&str> = vec!["up", "preview-pr", "--no-wait"];
        a.extend(args.iter().map(String::as_str));
        ours_first.push(timed(env.stacks(&a), &[0])?.0);
        // Same manifests, other namespace, for kubectl: render PR 200+i.
        let kpr = 200 + i;
        let kargs = Env::pr_args(kpr);
        let dir = work.path().join(format!("manifests-{kpr}"));
        let dir_s = dir.display().to_string();
        let mut r: Vec<&str> = vec!["render", "preview-pr", "--dir", &dir_s];
        r.extend(kargs.iter().map(String::as_str));
        timed(env.stacks(&r), &[0])?;
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
    let resources = std::fs::read_dir(&manifest_dirs[0])?.count();

    // Let the first PR's stack become ready, then measure no-op up and plan.
    let args = Env::pr_args(100);
    let mut a: Vec<&str> = vec!["up", "preview-pr"];
    a.extend(args.iter().map(String::as_str));
    timed(env.stacks(&a), &[0])?;
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

    let max_writes = ours_writes.iter().max().copied().unwrap_or(0);
    let kubectl_writes_median = median(&mut kubectl_patches);
    Ok(vec![
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
        },
        Row {
            name: "first up, excluding readiness waits".into(),
            ours: ms(median(&mut ours_first)),
            baseline: format!(
                "{} (kubectl apply --server-side)",
                ms(median(&mut kubectl_first))
            ),
            target: "≤ 100 ms".into(),
        },
        Row {
            name: "no-op up".into(),
            ours: format!("{}, {max_writes} writes", ms(median(&mut ours_noop))),
            baseline: format!(
                "{}, {kubectl_writes_median} writes (kubectl apply --server-side)",
                ms(median(&mut kubectl_noop))
            ),
            target: "≤ 50 ms, 0 writes".into(),
        },
    ])
}
