//! `local-cluster`: runs a test cluster in the foreground for manual use and the
//! README's end-to-end quick start.
//!
//! ```text
//! cargo run -p testkit --bin local-cluster -- [--crds [--cert-manager]] [--simulate] [--kubeconfig-out PATH]
//! ```
//!
//! * `--crds`: install the Gateway API / cert-manager / NGINX Gateway Fabric CRDs
//!   (the upstream files from the shared data directory, or `PREVIEW_CRD_DIR`);
//! * `--cert-manager`: run the real cert-manager controller (needs `--crds`):
//!   self-signed and CA issuers issue real certificates; ACME (Let's Encrypt)
//!   cannot work without network access;
//! * `--simulate`: run the node simulator (status writes only: no container runs,
//!   except the `psql` commands of database Jobs, which run on this host);
//! * `--kubeconfig-out PATH`: also write the admin kubeconfig to PATH (removed on exit);
//! * `--postgres-url-out PATH`: also start a PostgreSQL server (standing in for the
//!   in-cluster one, which cannot run without a kubelet), create the role named by
//!   `--postgres-role` (default `aphiria`) as its superuser (as `POSTGRES_USER` is
//!   in the official image), and write its URL to PATH (removed on exit). With
//!   `--simulate`, `db.default.svc.cluster.local:5432` is routed to it for the
//!   database Jobs the simulator runs.
//!
//! Runs until Ctrl-C or SIGTERM, then stops every process and removes the temp dir.

use std::path::PathBuf;
use std::process::ExitCode;

use testkit::{NodeSimulator, TestCluster, default_crd_dir, install_crds};

const USAGE: &str = "usage: local-cluster [--crds [--cert-manager]] [--simulate] [--kubeconfig-out PATH] [--postgres-url-out PATH [--postgres-role NAME]]";

#[derive(Debug, Default)]
struct Args {
    crds: bool,
    cert_manager: bool,
    simulate: bool,
    kubeconfig_out: Option<PathBuf>,
    postgres_url_out: Option<PathBuf>,
    postgres_role: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--crds" => parsed.crds = true,
            "--cert-manager" => parsed.cert_manager = true,
            "--simulate" => parsed.simulate = true,
            "--kubeconfig-out" => {
                let path = args.next().ok_or("--kubeconfig-out needs a path")?;
                parsed.kubeconfig_out = Some(PathBuf::from(path));
            }
            "--postgres-url-out" => {
                let path = args.next().ok_or("--postgres-url-out needs a path")?;
                parsed.postgres_url_out = Some(PathBuf::from(path));
            }
            "--postgres-role" => {
                let role = args.next().ok_or("--postgres-role needs a name")?;
                if role.is_empty()
                    || !role
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(format!(
                        "--postgres-role {role}: use lowercase letters, digits and '_'"
                    ));
                }
                parsed.postgres_role = Some(role);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if parsed.cert_manager && !parsed.crds {
        return Err("--cert-manager needs --crds (cert-manager watches its CRDs)".into());
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    // kube's HTTP trace layer logs every 5xx at ERROR, including the expected 500s
    // of `/readyz` while the API server starts; failures that matter are reported
    // by the kit itself, with context.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler …");
    let cluster = TestCluster::start().await?;
    eprintln!(
        "control plane ready in {:.1}s at {}",
        cluster.startup_time().as_secs_f64(),
        cluster.server_url()
    );
    if args.crds {
        let dir = default_crd_dir();
        let report = install_crds(&cluster.client()?, &dir).await?;
        eprintln!(
            "installed {} CRDs from {} in {:.1}s",
            report.names.len(),
            dir.display(),
            report.elapsed().as_secs_f64()
        );
    }
    if args.cert_manager {
        let cert_manager = cluster.cert_manager().await?;
        eprintln!(
            "cert-manager controller ready in {:.1}s (log: {})",
            cert_manager.startup_time().as_secs_f64(),
            cert_manager.log_path().display()
        );
    }
    let simulator = if args.simulate {
        let sim = NodeSimulator::start_for(&cluster).await?;
        eprintln!(
            "node simulator running (node `{}`): it writes pod, volume and Gateway status; no kubelet or gateway runs; only database Jobs' psql runs, on this host",
            sim.node_name()
        );
        Some(sim)
    } else {
        None
    };
    let kubeconfig = match &args.kubeconfig_out {
        Some(out) => {
            std::fs::copy(cluster.kubeconfig_path(), out)
                .map_err(|e| format!("writing {}: {e}", out.display()))?;
            out.clone()
        }
        None => cluster.kubeconfig_path().to_path_buf(),
    };
    let postgres = match &args.postgres_url_out {
        Some(out) => {
            let pg = testkit::TestPostgres::start().await?;
            let role = args.postgres_role.as_deref().unwrap_or("aphiria");
            pg.client()
                .await?
                .batch_execute(&format!("CREATE ROLE {role} LOGIN SUPERUSER"))
                .await?;
            if let Some(sim) = &simulator {
                sim.route_service(
                    "db.default.svc.cluster.local:5432",
                    &format!("127.0.0.1:{}", pg.port()),
                );
            }
            std::fs::write(out, pg.url()).map_err(|e| format!("writing {}: {e}", out.display()))?;
            eprintln!("PostgreSQL running at {} (role {role})", pg.url());
            Some(pg)
        }
        None => None,
    };
    println!("kubeconfig: {}", kubeconfig.display());
    println!("export KUBECONFIG={}", kubeconfig.display());
    eprintln!("running; press Ctrl-C to stop and remove everything");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping …");
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    drop(cluster);
    drop(postgres);
    for out in [&args.kubeconfig_out, &args.postgres_url_out]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(out);
    }
    eprintln!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&["--crds", "--simulate", "--kubeconfig-out", "/tmp/k"]).expect("valid");
        assert!(a.crds && a.simulate);
        assert_eq!(a.kubeconfig_out, Some(PathBuf::from("/tmp/k")));
        assert!(parse(&["--kubeconfig-out"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        let a = parse(&["--crds", "--cert-manager"]).expect("valid");
        assert!(a.cert_manager);
        let err = parse(&["--cert-manager"]).expect_err("needs --crds");
        assert!(err.contains("--crds"), "{err}");
    }
}
