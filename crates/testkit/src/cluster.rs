//! A real local control plane: etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler, configured as a current cluster is.
//!
//! [`TestCluster::start`] runs the v1.37 binaries (see [`crate::bins`]) on free
//! loopback ports with everything in one temp dir: etcd's data, the API server's
//! self-signed serving certificate (`certs/`), a service-account key pair made with
//! `openssl`, a token file, the audit policy and log, kubeconfigs and each
//! process's log file.
//!
//! The API server runs with `--authorization-mode=Node,RBAC`, its default
//! admission plugins (PodSecurity, ResourceQuota, LimitRanger, ServiceAccount,
//! ValidatingAdmissionPolicy, …) and a service-account issuer with signing keys.
//! The controller-manager runs every default controller with per-controller
//! service-account credentials (`--use-service-account-credentials`), as kubeadm
//! sets it up; the scheduler binds pods to the Nodes the
//! [`NodeSimulator`](crate::NodeSimulator) registers.
//!
//! Users (all static bearer tokens except the controllers' service accounts):
//!
//! | user | groups | used by |
//! | --- | --- | --- |
//! | [`ADMIN_USER`] | `system:masters` | [`TestCluster::client`], the kubeconfig file — the engine under test |
//! | [`CONTROLLER_MANAGER_USER`] | none (bootstrap RBAC) | kube-controller-manager itself; its controllers act as `system:serviceaccount:kube-system:<controller>` ([`TestCluster::controller_audit_events`]) |
//! | [`SCHEDULER_USER`] | none (bootstrap RBAC) | kube-scheduler |
//! | [`SIMULATOR_USER`] | `system:masters` | [`NodeSimulator`](crate::NodeSimulator) via [`TestCluster::simulator_client`] |
//! | [`UNPRIVILEGED_USER`] | none | [`TestCluster::unprivileged_client`], for RBAC-denial tests |
//! | [`PLANNER_USER`] | [`PLANNER_GROUP`] | [`TestCluster::planner_client`], [`TestCluster::planner_kubeconfig_path`]: the plan credential (no bindings until a test or `preview-base`'s `planIdentity` grants them) |
//! | [`CERT_MANAGER_USER`] | none (ClusterRole [`CLUSTER_ROLE`](crate::cert_manager::CLUSTER_ROLE)) | the cert-manager controller, when a test starts it ([`TestCluster::cert_manager`]) |
//!
//! so the audit log ([`TestCluster::audit_events`]) tells their requests apart.
//!
//! The real cert-manager controller runs only for the tests that ask for it
//! ([`TestCluster::cert_manager`], see [`crate::cert_manager`]).
//!
//! Not running: kubelet, kube-proxy, any container runtime, any cloud provider.
//! Pods are bound by the real scheduler and then stay Pending unless a
//! [`NodeSimulator`](crate::NodeSimulator) writes the status a kubelet would.
//!
//! The API server advertises 127.0.0.1 with `--endpoint-reconciler-type=none`
//! (a loopback address is not allowed in the `kubernetes` Endpoints, and the
//! default would need a routable host address); the controller-manager gets its own
//! `--flex-volume-plugin-dir` inside the temp dir instead of creating
//! `/usr/libexec/kubernetes/...` on the host.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use crate::audit::{self, AuditEvent};
use crate::cert_manager::{CERT_MANAGER_USER, CertManager};
use crate::scratch::Scratch;
use crate::{KitError, bins, kubeconfig, ports};

/// The user behind [`TestCluster::client`] and the kubeconfig file.
pub const ADMIN_USER: &str = "admin";
/// The user kube-controller-manager authenticates as.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The user kube-scheduler authenticates as.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The prefix of the service accounts the controller-manager's controllers act as.
pub const CONTROLLER_SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:kube-system:";
/// The user the node simulator authenticates as.
pub const SIMULATOR_USER: &str = "testkit:node-simulator";
/// A user with no groups and no RBAC bindings.
pub const UNPRIVILEGED_USER: &str = "testkit:unprivileged";
/// The plan credential's user: no RBAC bindings of its own.
pub const PLANNER_USER: &str = "testkit:planner";
/// The group of [`PLANNER_USER`].
pub const PLANNER_GROUP: &str = "testkit:planners";

/// The API server's service-account issuer.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc";
/// The Service cluster-IP range.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// The kubeconfig of [`CERT_MANAGER_USER`], in the cluster's temp dir.
const CERT_MANAGER_KUBECONFIG: &str = "cert-manager.kubeconfig";

const START_ATTEMPTS: usize = 3;
const POLL: Duration = Duration::from_millis(75);

/// Options for [`TestCluster::start_with`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Bound on each readiness wait (etcd, API server, controller-manager).
    pub start_timeout: Duration,
    /// Extra `kube-apiserver` flags, appended last.
    pub extra_apiserver_args: Vec<String>,
    /// Extra `kube-controller-manager` flags, appended last.
    pub extra_controller_manager_args: Vec<String>,
    /// Extra `kube-scheduler` flags, appended last.
    pub extra_scheduler_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(60),
            extra_apiserver_args: Vec::new(),
            extra_controller_manager_args: Vec::new(),
            extra_scheduler_args: Vec::new(),
        }
    }
}

/// A running etcd + kube-apiserver + kube-controller-manager + kube-scheduler.
/// Dropping it stops all four (whole process groups) and removes its temp dir.
#[derive(Debug)]
pub struct TestCluster {
    /// Declared first: dropped (stopped) before the API server.
    cert_manager: OnceCell<CertManager>,
    scratch: Scratch,
    server_url: String,
    etcd_url: String,
    admin_token: String,
    admin_config: kube::Config,
    simulator_config: kube::Config,
    unprivileged_config: kube::Config,
    planner_config: kube::Config,
    planner_kubeconfig_path: PathBuf,
    kubeconfig_path: PathBuf,
    audit_log_path: PathBuf,
    started_in: Duration,
    api_index: usize,
    api_port: u16,
    start_timeout: Duration,
}

/// How long a stopped API server gets to finish its requests before SIGKILL.
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(10);

static SHARED: OnceCell<TestCluster> = OnceCell::const_new();

impl TestCluster {
    /// Starts a new control plane with default options.
    pub async fn start() -> Result<TestCluster, KitError> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// Starts a new control plane. A port taken between reservation and bind is
    /// retried with fresh ports (three attempts in all).
    pub async fn start_with(options: ClusterOptions) -> Result<TestCluster, KitError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&options).await {
                Err(KitError::PortInUse { component, port }) if attempt < START_ATTEMPTS => {
                    tracing::warn!(%component, port, attempt, "port taken; retrying with fresh ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One process-wide cluster, started on first use and shared by every test in
    /// the binary. It is never dropped: a watchdog process stops it and removes its
    /// temp dir when the test process exits (however it exits).
    pub async fn shared() -> Result<&'static TestCluster, KitError> {
        SHARED.get_or_try_init(Self::start).await
    }

    async fn start_once(options: &ClusterOptions) -> Result<TestCluster, KitError> {
        let began = Instant::now();
        let etcd = bins::etcd()?;
        let apiserver = bins::kube_apiserver()?;
        let controller_manager = bins::kube_controller_manager()?;
        let scheduler = bins::kube_scheduler()?;
        let openssl = bins::openssl()?;

        let mut scratch = Scratch::new("testkit-cluster-", None)?;
        let dir = scratch.path().to_path_buf();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs)
            .map_err(|e| KitError::io(format!("creating {}", certs.display()), e))?;
        let flexvolume = dir.join("flexvolume");
        std::fs::create_dir_all(&flexvolume)
            .map_err(|e| KitError::io(format!("creating {}", flexvolume.display()), e))?;

        generate_service_account_keys(&openssl, &dir).await?;

        let admin_token = random_token()?;
        let controller_manager_token = random_token()?;
        let scheduler_token = random_token()?;
        let simulator_token = random_token()?;
        let unprivileged_token = random_token()?;
        let planner_token = random_token()?;
        let cert_manager_token = random_token()?;
        let tokens = format!(
            "{admin_token},{ADMIN_USER},testkit-admin,\"system:masters\"\n\
             {controller_manager_token},{CONTROLLER_MANAGER_USER},testkit-kcm\n\
             {scheduler_token},{SCHEDULER_USER},testkit-scheduler\n\
             {simulator_token},{SIMULATOR_USER},testkit-simulator,\"system:masters\"\n\
             {unprivileged_token},{UNPRIVILEGED_USER},testkit-unprivileged\n\
             {planner_token},{PLANNER_USER},testkit-planner,\"{PLANNER_GROUP}\"\n\
             {cert_manager_token},{CERT_MANAGER_USER},testkit-cert-manager\n"
        );
        write_file(&dir.join("tokens.csv"), &tokens)?;
        write_file(&dir.join("audit-policy.yaml"), audit::POLICY)?;
        let audit_log_path = dir.join("audit.log");

        let [etcd_port, peer_port, api_port] = match ports::free_ports(3)?.as_slice() {
            [a, b, c] => [*a, *b, *c],
            _ => {
                return Err(KitError::NoFreePort(std::io::Error::other(
                    "expected three ports",
                )));
            }
        };

        // etcd
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd_args = vec![
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
            "--log-level=warn".into(),
        ];
        let etcd_index = scratch.spawn("etcd", &etcd, &etcd_args, &[etcd_port, peer_port])?;
        wait_ready(&mut scratch, etcd_index, options.start_timeout, || {
            etcd_health(etcd_port)
        })
        .await?;
        tracing::debug!(elapsed = ?began.elapsed(), "etcd ready");

        // kube-apiserver
        let d = |p: &str| dir.join(p).display().to_string();
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", certs.display()),
            format!("--token-auth-file={}", d("tokens.csv")),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            "--authorization-mode=Node,RBAC".into(),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--allow-privileged=true".into(),
            format!("--audit-policy-file={}", d("audit-policy.yaml")),
            format!("--audit-log-path={}", audit_log_path.display()),
            // The simulated kubelet's log endpoint is the Node's ExternalIP
            // (loopback); no --kubelet-certificate-authority: its self-signed
            // certificate is not verified.
            "--kubelet-preferred-address-types=ExternalIP,InternalIP,Hostname".into(),
        ];
        apiserver_args.extend(options.extra_apiserver_args.iter().cloned());
        let api_index =
            scratch.spawn("kube-apiserver", &apiserver, &apiserver_args, &[api_port])?;
        let ca_file = certs.join("apiserver.crt");
        wait_ready(&mut scratch, api_index, options.start_timeout, || {
            serving_with_certificate(api_port, &ca_file)
        })
        .await?;
        let ca_pem = std::fs::read(&ca_file)
            .map_err(|e| KitError::io(format!("reading {}", ca_file.display()), e))?;

        let server_url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig_path = dir.join("kubeconfig");
        let admin_kubeconfig = kubeconfig::render(&server_url, &ca_pem, ADMIN_USER, &admin_token);
        kubeconfig::write(&kubeconfig_path, &admin_kubeconfig)?;
        let admin_config = kubeconfig::load(&kubeconfig_path, &admin_kubeconfig).await?;

        let mut configs = Vec::new();
        for (file, user, token) in [
            (
                "controller-manager.kubeconfig",
                CONTROLLER_MANAGER_USER,
                &controller_manager_token,
            ),
            ("scheduler.kubeconfig", SCHEDULER_USER, &scheduler_token),
            ("simulator.kubeconfig", SIMULATOR_USER, &simulator_token),
            (
                "unprivileged.kubeconfig",
                UNPRIVILEGED_USER,
                &unprivileged_token,
            ),
            ("planner.kubeconfig", PLANNER_USER, &planner_token),
            (
                CERT_MANAGER_KUBECONFIG,
                CERT_MANAGER_USER,
                &cert_manager_token,
            ),
        ] {
            let path = dir.join(file);
            let text = kubeconfig::render(&server_url, &ca_pem, user, token);
            kubeconfig::write(&path, &text)?;
            configs.push(kubeconfig::load(&path, &text).await?);
        }
        let planner_kubeconfig_path = dir.join("planner.kubeconfig");
        let [
            _,
            _,
            simulator_config,
            unprivileged_config,
            planner_config,
            _,
        ] = match <[kube::Config; 6]>::try_from(configs) {
            Ok(c) => c,
            Err(_) => {
                return Err(KitError::io(
                    "building client configurations",
                    std::io::Error::other("expected six kubeconfigs"),
                ));
            }
        };

        let admin = client_from(&admin_config)?;
        wait_ready(&mut scratch, api_index, options.start_timeout, || {
            api_ready(admin.clone())
        })
        .await?;
        tracing::debug!(elapsed = ?began.elapsed(), "kube-apiserver ready");

        // kube-controller-manager
        let mut controller_manager_args = vec![
            format!("--kubeconfig={}", d("controller-manager.kubeconfig")),
            format!("--service-account-private-key-file={}", d("sa.key")),
            format!("--root-ca-file={}", ca_file.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
            "--use-service-account-credentials=true".into(),
            format!("--flex-volume-plugin-dir={}", flexvolume.display()),
        ];
        controller_manager_args.extend(options.extra_controller_manager_args.iter().cloned());
        let kcm_index = scratch.spawn(
            "kube-controller-manager",
            &controller_manager,
            &controller_manager_args,
            &[],
        )?;
        // Ready when its service-account controller has made the default
        // ServiceAccount: pods can be admitted from then on.
        wait_ready(&mut scratch, kcm_index, options.start_timeout, || {
            default_service_account_exists(admin.clone())
        })
        .await?;

        // kube-scheduler: binds pods to the simulated Nodes.
        let mut scheduler_args = vec![
            format!("--kubeconfig={}", d("scheduler.kubeconfig")),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
        ];
        scheduler_args.extend(options.extra_scheduler_args.iter().cloned());
        let scheduler_index = scratch.spawn("kube-scheduler", &scheduler, &scheduler_args, &[])?;
        // Ready once its informers have listed: it has read the pods it will schedule.
        wait_ready(&mut scratch, scheduler_index, options.start_timeout, || {
            scheduler_is_watching(audit_log_path.clone())
        })
        .await?;
        let started_in = began.elapsed();
        tracing::info!(?started_in, %server_url, dir = %dir.display(), "test cluster ready");

        Ok(TestCluster {
            cert_manager: OnceCell::new(),
            scratch,
            server_url,
            etcd_url,
            admin_token,
            admin_config,
            simulator_config,
            unprivileged_config,
            planner_config,
            planner_kubeconfig_path,
            kubeconfig_path,
            audit_log_path,
            started_in,
            api_index,
            api_port,
            start_timeout: options.start_timeout,
        })
    }

    /// Stops the kube-apiserver process (SIGTERM: it finishes its requests and
    /// closes its watches; SIGKILL after 10 s), leaving etcd, the controllers
    /// and everything else running, as an API server restart or upgrade does.
    /// Clients get "connection refused" until [`TestCluster::start_apiserver`].
    pub fn stop_apiserver(&mut self) -> Result<(), KitError> {
        self.scratch
            .stop_server(self.api_index, APISERVER_STOP_GRACE)?;
        tracing::info!(port = self.api_port, "kube-apiserver stopped");
        Ok(())
    }

    /// Starts the kube-apiserver stopped by [`TestCluster::stop_apiserver`]
    /// again: the same flags, so the same port, etcd, certificate, tokens and
    /// audit log (appended to); returns once `/readyz` says `ok`.
    pub async fn start_apiserver(&mut self) -> Result<(), KitError> {
        self.scratch.respawn_server(self.api_index)?;
        let ca_file = self.scratch.path().join("certs").join("apiserver.crt");
        let port = self.api_port;
        wait_ready(
            &mut self.scratch,
            self.api_index,
            self.start_timeout,
            || serving_with_certificate(port, &ca_file),
        )
        .await?;
        let admin = client_from(&self.admin_config)?;
        wait_ready(
            &mut self.scratch,
            self.api_index,
            self.start_timeout,
            || api_ready(admin.clone()),
        )
        .await?;
        tracing::info!(port, "kube-apiserver started again");
        Ok(())
    }

    /// The real cert-manager controller for this cluster, started on first call
    /// (later calls, from any test, return the same one) and stopped with the
    /// cluster. Needs the cert-manager CRDs installed
    /// ([`install_crds`](crate::install_crds)); see [`crate::cert_manager`].
    pub async fn cert_manager(&self) -> Result<&CertManager, KitError> {
        let kubeconfig = self.scratch.path().join(CERT_MANAGER_KUBECONFIG);
        self.cert_manager
            .get_or_try_init(|| CertManager::start(self, &kubeconfig))
            .await
    }

    /// The admin kubeconfig file (token auth, the API server's CA embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// etcd's client URL, `http://127.0.0.1:PORT`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The admin user's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The client configuration of the admin user.
    pub fn config(&self) -> &kube::Config {
        &self.admin_config
    }

    /// A new client for the admin user ([`ADMIN_USER`], group `system:masters`).
    ///
    /// Each call builds a new client bound to the calling tokio runtime, so a
    /// [`TestCluster::shared`] cluster works from every `#[tokio::test]`.
    pub fn client(&self) -> Result<kube::Client, KitError> {
        client_from(&self.admin_config)
    }

    /// The client configuration of the node simulator's user.
    pub fn simulator_config(&self) -> &kube::Config {
        &self.simulator_config
    }

    /// A new client for the node simulator's user ([`SIMULATOR_USER`]).
    pub fn simulator_client(&self) -> Result<kube::Client, KitError> {
        client_from(&self.simulator_config)
    }

    /// A new client for a user without any permissions ([`UNPRIVILEGED_USER`]).
    pub fn unprivileged_client(&self) -> Result<kube::Client, KitError> {
        client_from(&self.unprivileged_config)
    }

    /// A new client for the plan credential's user ([`PLANNER_USER`], group
    /// [`PLANNER_GROUP`]).
    pub fn planner_client(&self) -> Result<kube::Client, KitError> {
        client_from(&self.planner_config)
    }

    /// The kubeconfig file of [`PLANNER_USER`] (token auth, the API server's CA
    /// embedded), for running the `stacks` binary as the plan credential.
    pub fn planner_kubeconfig_path(&self) -> &Path {
        &self.planner_kubeconfig_path
    }

    /// The API server's audit log (JSON lines).
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log_path
    }

    /// Every event in the audit log so far.
    pub fn audit_events(&self) -> Result<Vec<AuditEvent>, KitError> {
        audit::read_log(&self.audit_log_path)
    }

    /// The completed requests made by kube-controller-manager: its own user's and
    /// its controllers' service accounts' (`system:serviceaccount:kube-system:*`).
    pub fn controller_audit_events(&self) -> Result<Vec<AuditEvent>, KitError> {
        Ok(self
            .audit_events()?
            .into_iter()
            .filter(|e| {
                (e.user == CONTROLLER_MANAGER_USER
                    || e.user.starts_with(CONTROLLER_SERVICE_ACCOUNT_PREFIX))
                    && e.is_complete()
            })
            .collect())
    }

    /// The completed requests (stage `ResponseComplete`) made by `user`.
    pub fn audit_events_by(&self, user: &str) -> Result<Vec<AuditEvent>, KitError> {
        Ok(self
            .audit_events()?
            .into_iter()
            .filter(|e| e.user == user && e.is_complete())
            .collect())
    }

    /// The temp dir holding data, certificates, kubeconfigs and logs.
    pub fn temp_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The log file of `component` (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler`).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.scratch.path().join(format!("{component}.log"))
    }

    /// Names and process ids of the four servers.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.scratch.pids()
    }

    /// How long start-up took (from the first binary lookup to a ready controller-manager).
    pub fn startup_time(&self) -> Duration {
        self.started_in
    }
}

fn client_from(config: &kube::Config) -> Result<kube::Client, KitError> {
    kube::Client::try_from(config.clone()).map_err(|e| KitError::kube("building a client", e))
}

/// Polls `probe` every ~75 ms until it succeeds, the server exits, or `timeout`.
pub(crate) async fn wait_ready<F, Fut>(
    scratch: &mut Scratch,
    index: usize,
    timeout: Duration,
    mut probe: F,
) -> Result<(), KitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let began = Instant::now();
    let mut last_error: String;
    loop {
        let Some(server) = scratch.server(index) else {
            return Err(KitError::io(
                "waiting for a server",
                std::io::Error::other("unknown server index"),
            ));
        };
        server.check_running()?;
        match tokio::time::timeout(Duration::from_secs(5), probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = "probe timed out after 5s".into(),
        }
        if began.elapsed() >= timeout {
            return Err(server.not_ready(timeout, last_error));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `GET path` on a loopback port over plain HTTP/1.0 (no HTTP client
/// dependency needed): the whole response, status line first.
pub(crate) async fn loopback_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(response)
}

/// etcd's `/health`.
async fn etcd_health(port: u16) -> Result<(), String> {
    let response = loopback_get(port, "/health").await?;
    if response.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!(
            "/health said: {}",
            response.lines().last().unwrap_or_default()
        ))
    }
}

/// The API server writes its self-signed certificate, then listens.
async fn serving_with_certificate(port: u16, ca_file: &Path) -> Result<(), String> {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let pem =
        std::fs::read_to_string(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    if pem.contains("END CERTIFICATE") {
        Ok(())
    } else {
        Err(format!("{} is incomplete", ca_file.display()))
    }
}

async fn api_ready(client: kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let body = client
        .request_text(request)
        .await
        .map_err(|e| format!("/readyz: {e}"))?;
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("/readyz said: {body}"))
    }
}

async fn default_service_account_exists(client: kube::Client) -> Result<(), String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    match accounts.get_opt("default").await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("ServiceAccount default/default not made yet".into()),
        Err(e) => Err(format!("reading ServiceAccount default/default: {e}")),
    }
}

/// The scheduler has started watching pods (seen in the audit log as its
/// user's pod watch), so a pod created from now on gets scheduled.
async fn scheduler_is_watching(audit_log: PathBuf) -> Result<(), String> {
    let events = audit::read_log(&audit_log).map_err(|e| e.to_string())?;
    if events.iter().any(|e| {
        e.user == SCHEDULER_USER && e.verb == "watch" && e.resource.as_deref() == Some("pods")
    }) {
        Ok(())
    } else {
        Err("kube-scheduler has not started watching pods yet".into())
    }
}

/// `openssl genrsa` + `openssl rsa -pubout` into `dir/sa.key` and `dir/sa.pub`.
async fn generate_service_account_keys(openssl: &Path, dir: &Path) -> Result<(), KitError> {
    let key = dir.join("sa.key");
    let public = dir.join("sa.pub");
    run(tokio::process::Command::new(openssl)
        .arg("genrsa")
        .arg("-out")
        .arg(&key)
        .arg("2048"))
    .await?;
    run(tokio::process::Command::new(openssl)
        .arg("rsa")
        .arg("-in")
        .arg(&key)
        .arg("-pubout")
        .arg("-out")
        .arg(&public))
    .await
}

/// Runs a short helper command; a non-zero exit becomes [`KitError::Command`].
pub(crate) async fn run(command: &mut tokio::process::Command) -> Result<(), KitError> {
    let shown = format!("{:?}", command.as_std()).replace('"', "");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| KitError::Spawn {
            program: shown.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(KitError::Command {
        command: shown,
        status: output.status.to_string(),
        output: crate::process::tail_lines(&text, 10).trim().to_string(),
    })
}

/// 128 random bits as hex, from `/dev/urandom`.
fn random_token() -> Result<String, KitError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| KitError::io("reading /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_file(path: &Path, text: &str) -> Result<(), KitError> {
    std::fs::write(path, text).map_err(|e| KitError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
