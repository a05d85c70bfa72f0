//! # testkit
//!
//! Real parts for integration tests, started from Rust:
//!
//! * [`TestCluster`]: etcd 3.6 + kube-apiserver + kube-controller-manager +
//!   kube-scheduler (v1.37, RBAC, default admission plugins including
//!   PodSecurity) on free loopback ports, token users, an audit log;
//! * [`TestPostgres`]: a throwaway PostgreSQL cluster on a loopback port;
//! * [`install_crds`]: the Gateway API, cert-manager and NGINX Gateway Fabric CRDs,
//!   the upstream files unmodified (CEL rules enforced);
//! * [`TestCluster::cert_manager`]: the real cert-manager controller (v1.20,
//!   built from its Go modules) out of cluster, for the tests that need issued
//!   certificates (self-signed and CA issuers; no ACME: no network);
//! * [`NodeSimulator`]: registers a Node with capacity and writes the status that a
//!   kubelet and a gateway controller would write, and answers the API server's
//!   `pods/log` requests (the lines a test set) from a TLS kubelet endpoint on
//!   loopback. **No container, kubelet or gateway runs**; see the [`simulator`] module.
//!
//! * [`CuttablePath`]: a network namespace on loopback reaching the host's
//!   servers only through a forwarder, and a switch that drops its packets
//!   (network partitions); [`TestCluster::stop_apiserver`] /
//!   [`TestCluster::start_apiserver`] and [`TestPostgres::stop`] /
//!   [`TestPostgres::start_again`] restart servers in place (fault tests).
//!
//! Everything a kit object starts lives in one temp dir and one set of process
//! groups, removed on drop; a watchdog process removes them too when the test
//! process dies without dropping (statics, panics, SIGKILL).
//!
//! Binaries are found as described in [`bins`]; when one is missing the error
//! says to run `scripts/control-plane.sh install`.

pub mod audit;
pub mod bins;
pub mod cert_manager;
mod cluster;
pub mod crds;
mod error;
mod kubeconfig;
pub mod netcut;
pub mod ports;
mod postgres;
mod process;
mod reaper;
mod scratch;
pub mod simulator;
pub mod x509;

pub use audit::AuditEvent;
pub use cert_manager::{CERT_MANAGER_USER, CertManager};
pub use cluster::{
    ADMIN_USER, CONTROLLER_MANAGER_USER, CONTROLLER_SERVICE_ACCOUNT_PREFIX, ClusterOptions,
    PLANNER_GROUP, PLANNER_USER, SCHEDULER_USER, SERVICE_ACCOUNT_ISSUER, SERVICE_CLUSTER_IP_RANGE,
    SIMULATOR_USER, TestCluster, UNPRIVILEGED_USER,
};
pub use crds::{CrdInstall, default_crd_dir, install_crds};
pub use error::KitError;
pub use netcut::CuttablePath;
pub use postgres::TestPostgres;
pub use simulator::{NodeCapacity, NodeSimulator, SimulatorOptions};
