//! Shared helpers for the integration tests in this directory.
//!
//! Every test binary gets one control plane ([`testkit::TestCluster::shared`]) with
//! one node simulator ([`testkit::NodeSimulator::shared`]); tests isolate
//! themselves by namespace ([`unique_name`]). Waits use watches with generous
//! bounds ([`wait_for`]), never fixed sleeps.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Resource;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use preview_core::{ProviderName, ResourceId, ResourceOptions};
use testkit::{
    CrdInstall, KitError, NodeSimulator, TestCluster, TestPostgres, default_crd_dir, install_crds,
};
use tokio::sync::OnceCell;

/// The bound for anything the tests wait for (generous: 2-core machines).
pub const WAIT: Duration = Duration::from_secs(60);

/// The binary's shared cluster, with the shared node simulator running.
pub async fn cluster() -> Result<&'static TestCluster, KitError> {
    let cluster = TestCluster::shared().await?;
    NodeSimulator::shared().await?;
    Ok(cluster)
}

static CRDS: OnceCell<CrdInstall> = OnceCell::const_new();

/// The shared cluster with every CRD from [`default_crd_dir`] installed (once per
/// binary); returns the report of that installation.
pub async fn cluster_with_crds() -> Result<(&'static TestCluster, &'static CrdInstall), KitError> {
    let cluster = cluster().await?;
    let report = CRDS
        .get_or_try_init(|| async { install_crds(&cluster.client()?, &default_crd_dir()).await })
        .await?;
    Ok((cluster, report))
}

/// A client of the binary's shared cluster, for tests that only store objects
/// (no node simulator).
pub async fn store_client() -> Result<kube::Client, KitError> {
    TestCluster::shared().await?.client()
}

/// A fresh database named [`unique_name`]`(prefix)` (with `_` for `-`) on the
/// shared PostgreSQL, so listings in it are exact; returns its URL.
pub async fn fresh_database(prefix: &str) -> Result<String, KitError> {
    let pg = TestPostgres::shared().await?;
    let db = unique_name(prefix).replace('-', "_");
    pg.client()
        .await?
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .map_err(|source| KitError::Postgres {
            context: format!("creating database {db}"),
            source,
        })?;
    Ok(pg.url_for(&db))
}

/// A `Database` of the PostgreSQL provider named `name`, with `body` (owner,
/// server, ownership marker, …) and `options`.
pub fn database_resource(
    name: &str,
    body: serde_json::Value,
    options: ResourceOptions,
) -> preview_core::Resource {
    preview_core::Resource {
        id: ResourceId {
            provider: ProviderName::POSTGRES,
            api_version: "postgres.preview-envs.io/v1".into(),
            kind: "Database".into(),
            namespace: None,
            name: name.into(),
        },
        body,
        depends_on: BTreeSet::new(),
        options,
    }
}

/// A name no other test in this process uses: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a namespace named [`unique_name`]`(prefix)` and returns its name.
pub async fn create_namespace(client: &kube::Client, prefix: &str) -> Result<String, kube::Error> {
    let name = unique_name(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;
    Ok(name)
}

/// Waits (with a watch) until object `name` satisfies `condition`, up to [`WAIT`].
/// The error says what was awaited and shows the object's last state.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    condition: impl Condition<K>,
) -> Result<K, String>
where
    K: Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(format!("{what}: {name} was deleted")),
        Ok(Err(e)) => Err(format!("{what}: watching {name} failed: {e}")),
        Err(_) => {
            let last = api.get_opt(name).await;
            Err(format!(
                "{what}: not reached within {WAIT:?}; last state of {name}: {last:#?}"
            ))
        }
    }
}

/// Processes whose command line contains `needle` (zombies have none, so they
/// never match), as `(pid, command line)`.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// Polls (every 100 ms, up to `bound`) until `done` holds; returns how long it took.
pub async fn poll_until(
    bound: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, Duration> {
    let began = std::time::Instant::now();
    loop {
        if done() {
            return Ok(began.elapsed());
        }
        if began.elapsed() >= bound {
            return Err(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
