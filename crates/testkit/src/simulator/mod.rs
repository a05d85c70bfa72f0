//! The node simulator: writes the status that the components a test cluster lacks
//! would write.
//!
//! **What does not run**: no container, no container runtime, no kubelet, no
//! kube-proxy and no gateway (NGINX Gateway Fabric). Nothing is pulled,
//! started, probed or routed. cert-manager is not simulated: the real controller
//! issues certificates when a test starts it
//! ([`TestCluster::cert_manager`](crate::TestCluster::cert_manager)). The
//! simulator only writes, through the API server, the objects and status fields
//! those components would write, so that readiness waits and failure reporting
//! can be tested against the real API server and the real controllers in
//! kube-controller-manager. A pod the simulator marks `Running` ran nothing —
//! with one exception: the commands of selected Job pods (by default those with a
//! `postgres` image: the database executor's `psql` Jobs) run on the host, with
//! their Secrets resolved and `PGHOST` routed to the test PostgreSQL
//! ([`job_runner`], [`NodeSimulator::route_service`]).
//!
//! What it writes:
//! * a Node ([`node`]) with a heartbeat, so the node-lifecycle controller keeps it Ready;
//! * container logs ([`kubelet`]): the API server's `pods/log` requests reach a
//!   small HTTPS kubelet endpoint on loopback that serves the lines a test set;
//! * the kubelet's Warning Events about injected failures ([`kubelet_events`]);
//! * pod status ([`pods`]) for pods the real kube-scheduler bound to that node, including kubelet-style failures
//!   injected with [`annotations`] (or [`injections`] registered at run time,
//!   [`NodeSimulator::inject`]);
//! * a default StorageClass, and PersistentVolumes for pending claims of that
//!   class ([`volumes`]), bound by the REAL persistentvolume-binder controller;
//! * status of Gateway API objects ([`gateway`]).
//!
//! It runs as background tokio tasks ([`NodeSimulator::start`]) or on a thread of
//! its own ([`NodeSimulator::start_detached`], for a cluster shared by many
//! `#[tokio::test]`s, each with its own runtime). Watch errors are retried with a
//! backoff capped at 2 s; everything is logged through `tracing`. Stop it with
//! [`NodeSimulator::stop`] or by dropping it.

pub mod annotations;
mod custom;
mod gateway;
pub mod injections;
pub mod job_runner;
mod kubelet;
mod kubelet_events;
mod node;
mod pods;
mod status;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::{KitError, TestCluster};
use custom::CustomKind;
pub use injections::PodInjections;
pub use job_runner::{JobRunnerOptions, ServiceRoutes};
use pods::{PodAction, PodEnv};

/// The REAL controller name of NGINX Gateway Fabric, which the simulator imitates.
pub const NGINX_GATEWAY_CONTROLLER: &str = "gateway.nginx.org/nginx-gateway-controller";

/// Settings of a [`NodeSimulator`].
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The simulated node's name.
    pub node_name: String,
    /// The simulated node's InternalIP (reported as pods' `hostIP`; routes nowhere).
    pub node_ip: String,
    /// How often the node's Lease and Ready heartbeat are renewed (must stay well
    /// under the controller-manager's 40 s node-monitor grace period).
    pub heartbeat_interval: Duration,
    /// The `controllerName` written into HTTPRoute status and matched on GatewayClasses.
    pub gateway_controller_name: String,
    /// The address written into Gateway status (routes nowhere).
    pub gateway_address: String,
    /// Job pods whose commands really run on the host ([`job_runner`]).
    pub job_runner: JobRunnerOptions,
    /// The node's capacity (= allocatable), which the REAL scheduler checks.
    pub capacity: NodeCapacity,
    /// Failure injection by rule, besides annotations (shared by clones).
    pub injections: PodInjections,
}

/// What the simulated node offers the scheduler (capacity = allocatable).
/// The default is a typical worker: cpu 8, memory 32Gi, 110 pods,
/// ephemeral-storage 100Gi; benchmarks that start hundreds of stacks raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    /// CPU, as a Kubernetes quantity (`"8"`).
    pub cpu: String,
    /// Memory, as a Kubernetes quantity (`"32Gi"`).
    pub memory: String,
    /// Pods the node accepts.
    pub pods: u32,
    /// Ephemeral storage, as a Kubernetes quantity (`"100Gi"`).
    pub ephemeral_storage: String,
}

impl Default for NodeCapacity {
    fn default() -> Self {
        Self {
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: 110,
            ephemeral_storage: "100Gi".into(),
        }
    }
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            node_name: "sim-node".into(),
            node_ip: "10.240.0.10".into(),
            heartbeat_interval: Duration::from_secs(10),
            gateway_controller_name: NGINX_GATEWAY_CONTROLLER.into(),
            gateway_address: "10.240.0.100".into(),
            job_runner: JobRunnerOptions::default(),
            capacity: NodeCapacity::default(),
            injections: PodInjections::default(),
        }
    }
}

/// Shared state of the simulator's tasks.
pub(crate) struct Ctx {
    client: kube::Client,
    options: SimulatorOptions,
    /// The port of the simulated kubelet endpoint ([`kubelet`]).
    kubelet_port: u16,
    next_ip: AtomicU32,
    /// The pods whose commands the job runner has started, by UID, with the
    /// handle that stops a command when its pod is deleted.
    running_jobs: std::sync::Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Ctx {
    fn allocate_pod_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        // 10.244.0.1 … 10.244.255.254, then around again.
        let n = n % (256 * 254);
        format!("10.244.{}.{}", n / 254, n % 254 + 1)
    }
}

enum Runner {
    Task(tokio::task::JoinHandle<()>),
    Thread(Option<oneshot::Receiver<()>>),
}

/// A running node simulator. Dropping it stops it.
pub struct NodeSimulator {
    shutdown: watch::Sender<bool>,
    runner: Runner,
    node_name: String,
    routes: ServiceRoutes,
    injections: PodInjections,
}

impl Debug for NodeSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSimulator")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

static SHARED: tokio::sync::OnceCell<NodeSimulator> = tokio::sync::OnceCell::const_new();

impl NodeSimulator {
    /// Starts simulating with default options on the current tokio runtime. The
    /// node exists when this returns.
    pub async fn start(client: kube::Client) -> Result<NodeSimulator, KitError> {
        Self::start_with(client, SimulatorOptions::default()).await
    }

    /// Starts simulating for a [`TestCluster`], as its simulator user.
    pub async fn start_for(cluster: &TestCluster) -> Result<NodeSimulator, KitError> {
        Self::start(cluster.simulator_client()?).await
    }

    /// Starts simulating on the current tokio runtime.
    pub async fn start_with(
        client: kube::Client,
        options: SimulatorOptions,
    ) -> Result<NodeSimulator, KitError> {
        let kubelet = kubelet::Kubelet::bind().await?;
        setup(&client, &options, kubelet.port()).await?;
        let (shutdown, stop) = watch::channel(false);
        let node_name = options.node_name.clone();
        let routes = options.job_runner.services.clone();
        let injections = options.injections.clone();
        let task = tokio::spawn(run(client, options, kubelet, stop));
        Ok(NodeSimulator {
            shutdown,
            runner: Runner::Task(task),
            node_name,
            routes,
            injections,
        })
    }

    /// Starts simulating on a dedicated thread with its own tokio runtime, so it
    /// outlives the runtime of the caller (each `#[tokio::test]` has its own).
    pub async fn start_detached(
        config: kube::Config,
        options: SimulatorOptions,
    ) -> Result<NodeSimulator, KitError> {
        let (shutdown, stop) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), KitError>>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let node_name = options.node_name.clone();
        let routes = options.job_runner.services.clone();
        let injections = options.injections.clone();
        std::thread::Builder::new()
            .name("testkit-node-simulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(KitError::io("building the simulator's runtime", e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = match kube::Client::try_from(config) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx
                                .send(Err(KitError::kube("building the simulator's client", e)));
                            return;
                        }
                    };
                    let kubelet = match kubelet::Kubelet::bind().await {
                        Ok(k) => k,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = setup(&client, &options, kubelet.port()).await {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    run(client, options, kubelet, stop).await;
                });
                let _ = done_tx.send(());
            })
            .map_err(|e| KitError::io("spawning the simulator thread", e))?;
        ready_rx.await.map_err(|_| {
            KitError::Simulator("the simulator thread ended during start-up".into())
        })??;
        Ok(NodeSimulator {
            shutdown,
            runner: Runner::Thread(Some(done_rx)),
            node_name,
            routes,
            injections,
        })
    }

    /// A process-wide simulator for [`TestCluster::shared`], on its own thread.
    pub async fn shared() -> Result<&'static NodeSimulator, KitError> {
        SHARED
            .get_or_try_init(|| async {
                let cluster = TestCluster::shared().await?;
                Self::start_detached(
                    cluster.simulator_config().clone(),
                    SimulatorOptions::default(),
                )
                .await
            })
            .await
    }

    /// The simulated node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Routes a cluster service address (`db.default.svc.cluster.local:5432`) to a
    /// host address (`127.0.0.1:5433`) for the Job pods the job runner runs.
    pub fn route_service(&self, service: &str, backend: &str) {
        self.routes.add(service, backend);
    }

    /// Pods in `namespace` whose name starts with `pod_prefix` behave as if they
    /// carried `annotations` (see [`annotations`] for the keys): failure
    /// injection for pods whose template the test cannot annotate.
    pub fn inject(&self, namespace: &str, pod_prefix: &str, annotations: BTreeMap<String, String>) {
        self.injections.add(namespace, pod_prefix, annotations);
    }

    /// Removes the [`NodeSimulator::inject`] rules of `namespace`.
    pub fn clear_injections(&self, namespace: &str) {
        self.injections.clear(namespace);
    }

    /// Stops all simulation tasks and waits until they have ended.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        match &mut self.runner {
            Runner::Task(task) => {
                let _ = task.await;
            }
            Runner::Thread(done) => {
                if let Some(done) = done.take() {
                    let _ = done.await;
                }
            }
        }
    }
}

impl Drop for NodeSimulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Runner::Task(task) = &self.runner {
            task.abort();
        }
    }
}

impl TestCluster {
    /// [`TestCluster::shared`] with [`NodeSimulator::shared`] running against it.
    pub async fn shared_with_simulator() -> Result<&'static TestCluster, KitError> {
        let cluster = TestCluster::shared().await?;
        NodeSimulator::shared().await?;
        Ok(cluster)
    }
}

/// What exists before the loops start: the Node (with the kubelet's port) and
/// the default StorageClass ([`volumes`]).
async fn setup(
    client: &kube::Client,
    options: &SimulatorOptions,
    kubelet_port: u16,
) -> Result<(), KitError> {
    node::ensure(client, options, kubelet_port).await?;
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(volumes::storage_class())
        .map_err(|e| KitError::Simulator(format!("building the StorageClass: {e}")))?;
    match classes.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(KitError::kube(
            format!("creating StorageClass {}", volumes::STORAGE_CLASS),
            e,
        )),
    }
}

/// Runs every simulation loop until `stop` turns true.
async fn run(
    client: kube::Client,
    options: SimulatorOptions,
    kubelet: kubelet::Kubelet,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        client,
        options,
        kubelet_port: kubelet.port(),
        next_ip: AtomicU32::new(0),
        running_jobs: std::sync::Mutex::new(HashMap::new()),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(heartbeat_loop(ctx.clone()));
    tasks.spawn(kubelet::serve(ctx.clone(), kubelet));
    tasks.spawn(pod_loop(ctx.clone()));
    tasks.spawn(claim_loop(ctx.clone()));
    tasks.spawn(volume_loop(ctx.clone()));
    for kind in CustomKind::ALL {
        tasks.spawn(custom_loop(ctx.clone(), kind));
    }
    tracing::info!(node = %ctx.options.node_name, "node simulator running");
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            Some(ended) = tasks.join_next() => {
                tracing::error!(?ended, "a node simulator loop ended unexpectedly");
            }
        }
    }
    tasks.shutdown().await;
    tracing::info!(node = %ctx.options.node_name, "node simulator stopped");
}

/// Watches `api` forever, calling `handle` for every added or modified object.
/// Errors are logged (404, i.e. a CRD not installed yet, only at debug level) and
/// retried with a backoff from 250 ms up to 2 s.
async fn watch_each<K, F, Fut>(api: Api<K>, what: &str, mut handle: F)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: FnMut(K) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = Duration::from_millis(250);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                backoff = Duration::from_millis(250);
                handle(obj).await;
            }
            Ok(_) => {}
            Err(e) => {
                if is_not_found(&e) {
                    tracing::debug!(what, "not served (yet); retrying");
                } else {
                    tracing::warn!(what, error = %e, "watch failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    }
}

async fn heartbeat_loop(ctx: Arc<Ctx>) {
    let mut interval = tokio::time::interval(ctx.options.heartbeat_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = node::heartbeat(&ctx.client, &ctx.options, ctx.kubelet_port).await {
            tracing::warn!(error = %e, "node heartbeat failed");
        }
    }
}

async fn pod_loop(ctx: Arc<Ctx>) {
    // Delayed readiness: timers that hand a pod back to the loop when due.
    let mut timers: JoinSet<(String, String)> = JoinSet::new();
    let mut waiting: HashSet<(String, String)> = HashSet::new();
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut backoff = Duration::from_millis(250);
    loop {
        let pod = tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    backoff = Duration::from_millis(250);
                    pod
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                None => return,
            },
            Some(Ok(key)) = timers.join_next(), if !timers.is_empty() => {
                waiting.remove(&key);
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.0);
                match api.get_opt(&key.1).await {
                    Ok(Some(pod)) => pod,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(pod = %key.1, error = %e, "re-reading a delayed pod failed");
                        continue;
                    }
                }
            }
        };
        if let Some((key, after)) = handle_pod(&ctx, pod).await
            && waiting.insert(key.clone())
        {
            timers.spawn(async move {
                tokio::time::sleep(after).await;
                key
            });
        }
    }
}

/// Acts on one pod; returns the pod's key and a delay when it must be looked at again.
async fn handle_pod(ctx: &Arc<Ctx>, pod: Pod) -> Option<((String, String), Duration)> {
    let pod = ctx.options.injections.apply(&pod);
    let namespace = pod.metadata.namespace.clone()?;
    let name = pod.metadata.name.clone()?;
    if job_runner::wants(&pod, &ctx.options.node_name, &ctx.options.job_runner) {
        let uid = pod.metadata.uid.clone()?;
        if let Ok(mut started) = ctx.running_jobs.lock()
            && !started.contains_key(&uid)
        {
            let task = tokio::spawn(job_runner::run(ctx.clone(), pod));
            started.insert(uid, task.abort_handle());
        }
        return None;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        // As a kubelet kills a deleted pod's containers (here at once, as with
        // a grace period of 0): the command's process is killed on drop.
        let running = pod.metadata.uid.as_ref().and_then(|uid| {
            ctx.running_jobs
                .lock()
                .ok()
                .and_then(|started| started.get(uid).cloned())
        });
        if let Some(task) = running
            && !task.is_finished()
        {
            task.abort();
            tracing::debug!(%namespace, pod = %name, "job pod deleted: its command was stopped");
        }
    }
    let env = PodEnv {
        node: &ctx.options.node_name,
        host_ip: &ctx.options.node_ip,
        now: status::now(),
    };
    let action = pods::plan(&pod, &env, &mut || ctx.allocate_pod_ip());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = (namespace.clone(), name.clone());
    match action {
        PodAction::Ignore => None,
        PodAction::Recheck(after) => Some((key, after)),
        PodAction::ForceDelete => {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => tracing::debug!(%namespace, pod = %name, "deletion confirmed"),
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {}
                Err(e) => {
                    tracing::warn!(%namespace, pod = %name, error = %e, "confirming deletion failed")
                }
            }
            None
        }
        PodAction::Patch { status, recheck_in } => {
            let patch = serde_json::json!({ "status": status });
            match api
                .patch_status(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(%namespace, pod = %name, phase = ?patch["status"]["phase"], "simulated pod status written");
                    kubelet_events::record(ctx, &pod).await;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return None,
                Err(e) => {
                    tracing::warn!(%namespace, pod = %name, error = %e, "writing pod status failed")
                }
            }
            recheck_in.map(|after| (key, after))
        }
    }
}

async fn claim_loop(ctx: Arc<Ctx>) {
    let api: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    watch_each(api, "persistentvolumeclaims", |claim| {
        let volumes = volumes.clone();
        async move {
            let Some(volume) = volumes::volume_for(&claim) else {
                return;
            };
            match volumes.create(&PostParams::default(), &volume).await {
                Ok(_) => tracing::debug!(claim = ?claim.metadata.name, "simulated volume created"),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => tracing::warn!(claim = ?claim.metadata.name, error = %e, "creating a volume failed"),
            }
        }
    })
    .await;
}

async fn volume_loop(ctx: Arc<Ctx>) {
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let volumes = api.clone();
    watch_each(api, "persistentvolumes", |volume| {
        let volumes = volumes.clone();
        async move {
            if !volumes::is_released(&volume) {
                return;
            }
            let Some(name) = volume.metadata.name.as_deref() else {
                return;
            };
            match volumes.delete(name, &DeleteParams::default()).await {
                Ok(_) => tracing::debug!(volume = name, "released simulated volume deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(volume = name, error = %e, "deleting a released volume failed")
                }
            }
        }
    })
    .await;
}

async fn custom_loop(ctx: Arc<Ctx>, kind: CustomKind) {
    let resource = kind.resource();
    let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let what = resource.plural.clone();
    watch_each(api, &what, |obj| {
        let ctx = ctx.clone();
        async move { custom::handle(&ctx, kind, obj).await }
    })
    .await;
}
