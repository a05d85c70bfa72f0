//! The real cert-manager controller, run out of cluster against a [`TestCluster`].
//!
//! `cert-manager-controller` is built by `scripts/control-plane.sh install` from
//! the cert-manager Go modules (v1.20.3, the version of the CRDs in
//! `shared/data/crds`; see `control-plane/cert-manager/main.go`): upstream's
//! controller packages, wired without leader election, webhook or ACME solver.
//! [`TestCluster::cert_manager`] starts it once per cluster (opt-in: tests
//! that need no issued certificate do not pay for it) and it stops with the
//! cluster.
//!
//! It runs only the controllers that issue from self-signed and CA issuers
//! ([`CONTROLLERS`]): Issuer/ClusterIssuer readiness, the CertificateRequest
//! approver and the self-signed and CA signers, and the certificates-* controllers
//! (trigger, key manager, request manager, issuing, readiness, revision manager).
//! So a `Certificate` of a self-signed or CA issuer really becomes Ready with a
//! real key pair and certificate in its Secret. ACME (Let's Encrypt, DNS-01 or
//! HTTP-01) cannot work here: the machines have no route to Let's Encrypt and no
//! DNS zone, so an ACME Issuer never becomes Ready in the test kit.
//!
//! Identity: its own user [`CERT_MANAGER_USER`] (a static token), bound to the
//! ClusterRole [`CLUSTER_ROLE`], the union of the upstream Helm chart's rules for
//! those controllers (issuers, clusterissuers, certificates, the CertificateRequest
//! approver) — not `system:masters`. The audit log shows its requests under that
//! user.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::scratch::Scratch;
use crate::{KitError, TestCluster, bins, ports};

/// The user the cert-manager controller authenticates as.
pub const CERT_MANAGER_USER: &str = "testkit:cert-manager";

/// The ClusterRole (and ClusterRoleBinding) granting [`CERT_MANAGER_USER`] what
/// the controllers in [`CONTROLLERS`] need.
pub const CLUSTER_ROLE: &str = "testkit:cert-manager-controller";

/// The namespace of the Secrets ClusterIssuers refer to (upstream's default).
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "kube-system";

/// The controllers it runs (upstream names, `--controllers`).
pub const CONTROLLERS: &[&str] = &[
    "issuers",
    "clusterissuers",
    "certificaterequests-approver",
    "certificaterequests-issuer-selfsigned",
    "certificaterequests-issuer-ca",
    "certificates-trigger",
    "certificates-key-manager",
    "certificates-request-manager",
    "certificates-issuing",
    "certificates-readiness",
    "certificates-revision-manager",
];

/// The cert-manager CRDs that must be established before it starts.
const CRDS: &[&str] = &[
    "certificates.cert-manager.io",
    "certificaterequests.cert-manager.io",
    "issuers.cert-manager.io",
    "clusterissuers.cert-manager.io",
];

const START_ATTEMPTS: usize = 3;
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running cert-manager controller (see the module docs). Dropping it stops the
/// process and removes its temp dir.
#[derive(Debug)]
pub struct CertManager {
    scratch: Scratch,
    healthz_port: u16,
    log_path: PathBuf,
    started_in: Duration,
}

impl CertManager {
    /// Starts the controller for `cluster` with the kubeconfig of
    /// [`CERT_MANAGER_USER`]: applies its RBAC, then waits until its informer
    /// caches have synced (`/readyz`). The cert-manager CRDs must be installed
    /// ([`install_crds`](crate::install_crds)).
    pub(crate) async fn start(
        cluster: &TestCluster,
        kubeconfig: &Path,
    ) -> Result<CertManager, KitError> {
        let began = Instant::now();
        let binary = bins::cert_manager_controller()?;
        let admin = cluster.client()?;
        require_crds(&admin).await?;
        apply_rbac(&admin).await?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binary, kubeconfig, began).await {
                Err(KitError::PortInUse { component, port }) if attempt < START_ATTEMPTS => {
                    tracing::warn!(%component, port, attempt, "port taken; retrying with a fresh port");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        binary: &Path,
        kubeconfig: &Path,
        began: Instant,
    ) -> Result<CertManager, KitError> {
        let mut scratch = Scratch::new("testkit-cert-manager-", None)?;
        let healthz_port = ports::free_port()?;
        let args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--controllers={}", CONTROLLERS.join(",")),
            format!("--cluster-resource-namespace={CLUSTER_RESOURCE_NAMESPACE}"),
            "--leader-elect=false".into(),
            format!("--healthz-listen-address=127.0.0.1:{healthz_port}"),
            "-v=2".into(),
        ];
        let index = scratch.spawn("cert-manager-controller", binary, &args, &[healthz_port])?;
        crate::cluster::wait_ready(&mut scratch, index, START_TIMEOUT, || readyz(healthz_port))
            .await?;
        let log_path = scratch.path().join("cert-manager-controller.log");
        let started_in = began.elapsed();
        tracing::info!(?started_in, "cert-manager controller ready");
        Ok(CertManager {
            scratch,
            healthz_port,
            log_path,
            started_in,
        })
    }

    /// The controller's log file (klog, `-v=2`).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Its process id (also its process group).
    pub fn pid(&self) -> Option<u32> {
        self.scratch.pids().first().map(|(_, pid)| *pid)
    }

    /// The loopback port of its `/readyz` and `/livez` endpoints.
    pub fn healthz_port(&self) -> u16 {
        self.healthz_port
    }

    /// How long start-up took (RBAC, process start, informer caches synced).
    pub fn startup_time(&self) -> Duration {
        self.started_in
    }
}

/// An error naming the first cert-manager CRD that is not established.
async fn require_crds(client: &kube::Client) -> Result<(), KitError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        let crd = crds
            .get_opt(name)
            .await
            .map_err(|e| KitError::kube(format!("reading CRD {name}"), e))?;
        let established = crd
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if !established {
            return Err(KitError::CertManager(format!(
                "CRD {name} is not established; install the CRDs first (testkit::install_crds)"
            )));
        }
    }
    Ok(())
}

/// The ClusterRole and its binding to [`CERT_MANAGER_USER`] (server-side apply,
/// field manager `testkit`).
async fn apply_rbac(client: &kube::Client) -> Result<(), KitError> {
    let params = PatchParams::apply(crate::crds::FIELD_MANAGER).force();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles
        .patch(CLUSTER_ROLE, &params, &Patch::Apply(cluster_role()))
        .await
        .map_err(|e| KitError::kube(format!("applying ClusterRole {CLUSTER_ROLE}"), e))?;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings
        .patch(CLUSTER_ROLE, &params, &Patch::Apply(cluster_role_binding()))
        .await
        .map_err(|e| KitError::kube(format!("applying ClusterRoleBinding {CLUSTER_ROLE}"), e))?;
    Ok(())
}

/// Upstream's controller-issuers, -clusterissuers, -certificates and
/// -approve:cert-manager-io rules (deploy/charts/cert-manager/templates/rbac.yaml,
/// v1.20.3), plus the CertificateRequest create/delete the request manager needs
/// (upstream grants it through the ingress-shim role, not run here). Nothing for
/// ACME orders, challenges, ingresses or leader election.
fn cluster_role() -> serde_json::Value {
    let cm = "cert-manager.io";
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE},
        "rules": [
            {"apiGroups": [cm],
             "resources": ["issuers", "issuers/status", "clusterissuers", "clusterissuers/status",
                           "certificates", "certificates/status",
                           "certificaterequests", "certificaterequests/status"],
             "verbs": ["update", "patch"]},
            {"apiGroups": [cm],
             "resources": ["issuers", "clusterissuers", "certificates", "certificaterequests"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [cm], "resources": ["certificaterequests"], "verbs": ["create", "delete"]},
            {"apiGroups": [cm],
             "resources": ["certificates/finalizers", "certificaterequests/finalizers"],
             "verbs": ["update"]},
            {"apiGroups": [cm], "resources": ["signers"], "verbs": ["approve"],
             "resourceNames": ["issuers.cert-manager.io/*", "clusterissuers.cert-manager.io/*"]},
            {"apiGroups": [""], "resources": ["secrets"],
             "verbs": ["get", "list", "watch", "create", "update", "delete", "patch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    })
}

fn cluster_role_binding() -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": CLUSTER_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": CERT_MANAGER_USER}],
    })
}

/// `GET /readyz` over plain HTTP: 200 once every informer cache has synced.
async fn readyz(port: u16) -> Result<(), String> {
    let response = crate::cluster::loopback_get(port, "/readyz").await?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!(
            "/readyz said: {status} {}",
            response.lines().last().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The controller is built at the version of the CRDs the kit loads.
    #[test]
    fn go_module_pins_the_version_of_the_crds() {
        let go_mod =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane/cert-manager/go.mod");
        let text = std::fs::read_to_string(&go_mod).expect("go.mod");
        let version = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("github.com/cert-manager/cert-manager ")
            })
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
            .expect("a cert-manager requirement");
        let crds = crate::default_crd_dir().join(format!("cert-manager-{version}.yaml"));
        assert!(
            crds.is_file(),
            "{} requires cert-manager {version}, but {} does not exist",
            go_mod.display(),
            crds.display()
        );
    }

    #[test]
    fn rbac_binds_the_role_to_the_user_only() {
        let binding = cluster_role_binding();
        assert_eq!(binding["subjects"].as_array().map(Vec::len), Some(1));
        assert_eq!(binding["subjects"][0]["name"], CERT_MANAGER_USER);
        assert_eq!(binding["roleRef"]["name"], CLUSTER_ROLE);
        let role = cluster_role();
        let text = role.to_string();
        assert!(
            !text.contains("\"*\""),
            "no wildcard verbs or resources: {text}"
        );
        assert!(
            !text.contains("acme.cert-manager.io"),
            "no ACME rules: {text}"
        );
    }
}
