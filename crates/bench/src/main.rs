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
//! - a synthetic 2,000-resource stack: graph + plan time and peak memory (own process);
//! - scale: 100 preview-pr stacks (`BENCH_SCALE=N` to change, 0 to skip) applied
//!   by as many `stacks up --no-wait` processes started at once, then a no-op up
//!   of all of them at once, each against as many `kubectl apply --server-side`
//!   processes at once: wall time, each process's p50/p95, errors.
//!
//! The note column says what a number contains that its baseline does not
//! (the per-PR database on a real PostgreSQL server), timed alone in the same run.

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
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let scale = env_number("BENCH_SCALE", 100);

    // Synthetic plan in its own process, so its peak memory is its own.
    let exe = std::env::current_exe()?;
    let out = Command::new(&exe).args(["synthetic", "2000"]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "synthetic run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let synth: serde_json::Value = serde_json::from_slice(&out.stdout)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(cluster::run(runs, scale))?;

    println!(
        "\n| measurement (median of {runs}, whole process) | preview-envs | kubectl baseline | target | note |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.name, row.ours, row.baseline, row.target, row.note
        );
    }
    println!(
        "| plan, synthetic {}-resource stack (in-process, graph + plan) | {:.0} ms, peak {:.1} MB RSS | — | ≤ 1 s, ≤ 100 MB | median of 5 in its own process |",
        synth["resources"],
        synth["planMs"].as_f64().unwrap_or(0.0),
        synth["peakKib"].as_f64().unwrap_or(0.0) / 1024.0
    );
    Ok(())
}
