//! Starts the process-wide shared cluster (with its node simulator) and the
//! shared PostgreSQL, prints their temp dirs, then either returns from `main`
//! (`exit`: statics are never dropped) or waits to be killed (`hang`).
//! `testkit_teardown` uses it to prove that the kit's watchdog cleans up after a
//! test process that ends without dropping anything.

use std::io::Write;
use std::process::ExitCode;

use testkit::{NodeSimulator, TestCluster, TestPostgres};

#[tokio::main]
async fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode != "exit" && mode != "hang" {
        eprintln!("usage: shared-cluster-probe exit|hang");
        return ExitCode::from(2);
    }
    let started = async {
        let cluster = TestCluster::shared().await?;
        NodeSimulator::shared().await?;
        let postgres = TestPostgres::shared().await?;
        Ok::<_, testkit::KitError>((cluster, postgres))
    };
    let (cluster, postgres) = match started.await {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "cluster_dir={}", cluster.temp_dir().display());
    let _ = writeln!(out, "postgres_dir={}", postgres.temp_dir().display());
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    if mode == "hang" {
        std::future::pending::<()>().await;
    }
    ExitCode::SUCCESS
}
