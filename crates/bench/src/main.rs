//! `bench`: measures the engine against `kubectl` on a real local control plane
//! and prints a table. Run with `scripts/bench.sh` (release build).
//!
//! Every number is the median of several runs of a whole process, measured in the
//! same run as its baseline:
//! - plan: `stacks preview preview-pr` (deployed stack) vs `kubectl diff --server-side`;
//! - first up without readiness waits: `stacks up --no-wait` on a new PR vs
//!   `kubectl apply --server-side` of the same rendered manifests into a new namespace;
//! - no-op up: `stacks up` again vs `kubectl apply --server-side` again, with the
//!   mutating requests each sent (from the API server's audit log);
//! - synthetic 2,000- and 20,000-resource stacks (`BENCH_SYNTHETIC=N,M` to
//!   change): graph + plan time and peak memory, each in its own process;
//! - scale: 100 and 500 preview-pr stacks (`BENCH_SCALE=100,500`, a list of
//!   sizes, each on a fresh control plane; `0` or empty to skip) applied by as
//!   many `stacks up --no-wait` processes started at once, then a no-op up of
//!   all of them at once, each against as many `kubectl apply --server-side`
//!   processes — all at once when their memory fits, otherwise at most as many
//!   at once as fit, said in the row (`BENCH_KUBECTL_AT_ONCE=N` to set): wall
//!   time, each process's p50/p95, errors. `BENCH_BACKEND=kubernetes` keeps the
//!   state of every run in `kubernetes://preview-state` (default `file://`).
//!
//! The note column says what a number contains that its baseline does not
//! (the per-PR database and role on a real PostgreSQL server), timed alone in
//! the same run; the "met" column checks each row against its targets
//! (REQUIREMENTS.md), ratios to kubectl included.

mod cluster;
mod scale;
mod stats;
mod synthetic;

use std::process::Command;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("synthetic") {
        let n: usize = args
            .get(2)
            .map_or(Ok(2000), |s| s.parse())
            .context("synthetic N")?;
        let r = synthetic::run(n, 5)?;
        println!(
            "{}",
            serde_json::json!({"resources": r.resources, "planMs": r.plan.as_secs_f64() * 1000.0, "peakKib": r.peak_kib})
        );
        return Ok(());
    }
    let env_number = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let env_list = |name: &str, default: &str| -> Result<Vec<usize>> {
        let text = std::env::var(name).unwrap_or_else(|_| default.into());
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().with_context(|| format!("{name}: {s:?}")))
            .filter(|n| !matches!(n, Ok(0)))
            .collect()
    };
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let scales = env_list("BENCH_SCALE", "100,500")?;
    let synthetic_sizes = env_list("BENCH_SYNTHETIC", "2000,20000")?;

    // Synthetic plans, each in its own process, so its peak memory is its own.
    let exe = std::env::current_exe()?;
    let mut synthetic = Vec::new();
    for n in synthetic_sizes {
        let out = Command::new(&exe)
            .args(["synthetic", &n.to_string()])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "synthetic run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        synthetic.push(v);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(cluster::run(runs, &scales))?;

    println!(
        "\n| measurement (median of {runs}, whole process) | preview-envs | kubectl baseline | target | met | note |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.name, row.ours, row.baseline, row.target, row.met, row.note
        );
    }
    for synth in synthetic {
        let resources = synth["resources"].as_u64().unwrap_or(0);
        let plan_ms = synth["planMs"].as_f64().unwrap_or(f64::MAX);
        let peak_mb = synth["peakKib"].as_f64().unwrap_or(f64::MAX) / 1024.0;
        // 2,000 resources: ≤ 1 s, ≤ 100 MB; 20,000 (raised 2026-12): ≤ 1 s, ≤ 200 MB.
        let mb_limit = if resources > 2000 { 200.0 } else { 100.0 };
        let met = cluster::verdict_with(
            &[
                (plan_ms <= 1000.0, format!("{plan_ms:.0} ms > 1 s")),
                (
                    peak_mb <= mb_limit,
                    format!("{peak_mb:.1} MB > {mb_limit} MB"),
                ),
            ],
            "in-process",
        );
        println!(
            "| plan, synthetic {resources}-resource stack (in-process, graph + plan) | {plan_ms:.0} ms, peak {peak_mb:.1} MB RSS | — | ≤ 1 s, ≤ {mb_limit:.0} MB | {met} | median of 5 in its own process |"
        );
    }
    Ok(())
}
