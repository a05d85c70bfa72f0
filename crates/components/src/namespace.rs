//! A preview namespace: `Namespace`, optional `ResourceQuota`, optional set of
//! `NetworkPolicy` objects that isolate it.
//!
//! # Quota
//! [`Quota`] has no defaults: the stack passes the sizes (previews use 2 CPU, 4Gi,
//! 5 pods). The quota caps `requests.cpu` and `limits.cpu` at `cpu`,
//! `requests.memory` and `limits.memory` at `memory`, and `pods` at `pods`, as the
//! reference project does. With a quota in place every container needs requests and
//! limits (the API server rejects pods without them), so stacks must pass
//! [`crate::ComputeResources`] to every workload in the namespace.
//!
//! # Network isolation
//! [`NetworkIsolation`] renders four policies, all selecting every pod of the
//! namespace (`podSelector: {}`):
//! - `default-deny-all`: policy types Ingress and Egress with no rules — nothing in,
//!   nothing out. This is what keeps previews from reaching each other.
//! - `allow-ingress-from-gateway`: ingress from the gateway's namespace on the app
//!   ports (TCP; default 80).
//! - `allow-egress-dns`: egress to the DNS pods (`k8s-app: kube-dns` in
//!   `kube-system` by default) on UDP and TCP 53.
//! - `allow-egress-database` (when [`NetworkIsolation::database`] is set): egress to
//!   the PostgreSQL pods' namespace (or a CIDR, for managed databases) on TCP 5432.
//!
//! ## Which namespace labels the selectors use
//! The natural selector is `kubernetes.io/metadata.name`, but the API server only
//! sets that label automatically since Kubernetes 1.21; on 1.20 (our test API
//! server) namespaces do not carry it. So every namespace peer is written **twice**,
//! as two peers of the same rule (peers are ORed): once selecting
//! `kubernetes.io/metadata.name=<ns>` and once selecting our own label
//! [`NAMESPACE_LABEL`]` = <ns>`. Namespaces created by [`PreviewNamespace`] carry
//! both labels (see [`namespace_labels`]). On a cluster older than 1.21 the stack
//! must also label the namespaces it does not create — the gateway's namespace, the
//! database's (`default`) and `kube-system` — with [`NAMESPACE_LABEL`]; on 1.21+ the
//! built-in label already matches and nothing else is needed.
//!
//! NetworkPolicies only take effect with a network plugin that enforces them
//! (Calico, Cilium, …); the test control plane has none, so tests check the rules
//! on the objects.

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;
use std::collections::BTreeMap;

use crate::common::{Labels, check_dns_label, match_labels, meta, to_resource};
use crate::error::ComponentError;

/// Our own namespace-name label, set on every namespace we create (see the module docs).
pub const NAMESPACE_LABEL: &str = "preview-envs.io/namespace";
/// The built-in namespace-name label (set automatically since Kubernetes 1.21).
pub const BUILTIN_NAMESPACE_LABEL: &str = "kubernetes.io/metadata.name";

/// The labels that identify namespace `name` to the network policies: the built-in
/// `kubernetes.io/metadata.name` and our [`NAMESPACE_LABEL`]. Stacks put these on
/// namespaces other components or bundles create (e.g. the gateway's).
pub fn namespace_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (BUILTIN_NAMESPACE_LABEL.to_owned(), name.to_owned()),
        (NAMESPACE_LABEL.to_owned(), name.to_owned()),
    ])
}

/// A namespace with optional quota and isolation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewNamespace {
    /// Namespace name (DNS-1123 label), e.g. `preview-pr-123`.
    pub name: String,
    /// Extra labels for every object (the namespace also gets [`namespace_labels`]).
    pub labels: Labels,
    /// ResourceQuota; `None` = no quota. No default sizes.
    pub quota: Option<Quota>,
    /// NetworkPolicies; `None` = no policies (all traffic allowed).
    pub network: Option<NetworkIsolation>,
}

/// Hard limits of the namespace's ResourceQuota (named `<namespace>-quota`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// CPU cap for both `requests.cpu` and `limits.cpu`, e.g. `2`.
    pub cpu: String,
    /// Memory cap for both `requests.memory` and `limits.memory`, e.g. `4Gi`.
    pub memory: String,
    /// Maximum number of pods, e.g. `5`.
    pub pods: u32,
}

/// What a preview namespace may talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkIsolation {
    /// Namespace of the Gateway's data plane; the only ingress source.
    pub gateway_namespace: String,
    /// TCP ports the gateway may reach (default `[80]`: the `web` and `api` Services'
    /// pods listen on 80).
    pub ingress_ports: Vec<u16>,
    /// Namespace of the cluster DNS (default `kube-system`).
    pub dns_namespace: String,
    /// Labels of the DNS pods (default `k8s-app: kube-dns`, which CoreDNS keeps for
    /// compatibility); empty = any pod of [`Self::dns_namespace`].
    pub dns_pod_selector: Labels,
    /// Where the database is; `None` = no database egress.
    pub database: Option<DatabaseEgress>,
}

impl NetworkIsolation {
    /// Ingress from `gateway_namespace` on port 80, DNS egress to `kube-system`, no
    /// database egress (set [`Self::database`]).
    pub fn new(gateway_namespace: impl Into<String>) -> Self {
        NetworkIsolation {
            gateway_namespace: gateway_namespace.into(),
            ingress_ports: vec![80],
            dns_namespace: "kube-system".to_owned(),
            dns_pod_selector: Labels::new().with("k8s-app", "kube-dns"),
            database: None,
        }
    }
}

/// Egress to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseEgress {
    /// PostgreSQL running in the cluster.
    InCluster {
        /// Its namespace (`default` for the shared preview server).
        namespace: String,
        /// Labels of its pods; empty = any pod of the namespace.
        pod_selector: Labels,
        /// Port (5432).
        port: u16,
    },
    /// A database outside the cluster (managed PostgreSQL), by address range.
    Cidr {
        /// The range, e.g. `10.110.0.0/20`.
        cidr: String,
        /// Port (5432, or the managed service's).
        port: u16,
    },
}

impl DatabaseEgress {
    /// The shared in-cluster server: pods labelled `app.kubernetes.io/name:
    /// postgresql` (as [`crate::postgres::PostgresServer`] renders them) in
    /// `namespace`, port 5432.
    pub fn in_cluster(namespace: impl Into<String>) -> Self {
        DatabaseEgress::InCluster {
            namespace: namespace.into(),
            pod_selector: Labels::new().with(crate::common::NAME_LABEL, crate::postgres::NAME),
            port: crate::postgres::PORT,
        }
    }
}

/// What [`PreviewNamespace::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceResources {
    /// The `Namespace`.
    pub namespace: Resource,
    /// The `ResourceQuota`, when requested.
    pub quota: Option<Resource>,
    /// The `NetworkPolicy` objects (empty when no isolation was requested).
    pub network_policies: Vec<Resource>,
}

impl NamespaceResources {
    /// All resources, namespace first.
    pub fn into_resources(self) -> Vec<Resource> {
        let mut out = vec![self.namespace];
        out.extend(self.quota);
        out.extend(self.network_policies);
        out
    }
}

impl PreviewNamespace {
    /// A namespace without quota or policies.
    pub fn new(name: impl Into<String>) -> Self {
        PreviewNamespace {
            name: name.into(),
            labels: Labels::new(),
            quota: None,
            network: None,
        }
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<NamespaceResources, ComponentError> {
        check_dns_label("namespace name", &self.name)?;
        let ns = self.name.as_str();
        let mut ns_labels = self.labels.clone();
        for (k, v) in namespace_labels(ns) {
            ns_labels = ns_labels.with(k, v);
        }
        let namespace = to_resource(&Namespace {
            metadata: meta(ns, None, &ns_labels),
            ..Namespace::default()
        })?;
        let quota = self
            .quota
            .as_ref()
            .map(|q| self.quota_object(q))
            .transpose()?;
        let network_policies = match &self.network {
            Some(network) => self.policies(network)?,
            None => Vec::new(),
        };
        Ok(NamespaceResources {
            namespace,
            quota,
            network_policies,
        })
    }

    fn quota_object(&self, quota: &Quota) -> Result<Resource, ComponentError> {
        for (what, value) in [("quota cpu", &quota.cpu), ("quota memory", &quota.memory)] {
            if value.trim().is_empty() {
                return Err(ComponentError::invalid(
                    what,
                    value.as_str(),
                    "must not be empty",
                ));
            }
        }
        let hard = BTreeMap::from([
            ("limits.cpu".to_owned(), Quantity(quota.cpu.clone())),
            ("limits.memory".to_owned(), Quantity(quota.memory.clone())),
            ("pods".to_owned(), Quantity(quota.pods.to_string())),
            ("requests.cpu".to_owned(), Quantity(quota.cpu.clone())),
            ("requests.memory".to_owned(), Quantity(quota.memory.clone())),
        ]);
        to_resource(&ResourceQuota {
            metadata: meta(
                &format!("{}-quota", self.name),
                Some(&self.name),
                &self.labels,
            ),
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        })
    }

    fn policies(&self, network: &NetworkIsolation) -> Result<Vec<Resource>, ComponentError> {
        check_dns_label("gateway namespace", &network.gateway_namespace)?;
        check_dns_label("DNS namespace", &network.dns_namespace)?;
        let deny = self.policy("default-deny-all", None, None)?;
        let ingress = self.policy(
            "allow-ingress-from-gateway",
            Some(NetworkPolicyIngressRule {
                from: Some(namespace_peers(&network.gateway_namespace, &Labels::new())),
                ports: Some(
                    network
                        .ingress_ports
                        .iter()
                        .map(|port| policy_port("TCP", *port))
                        .collect(),
                ),
            }),
            None,
        )?;
        let dns = self.policy(
            "allow-egress-dns",
            None,
            Some(NetworkPolicyEgressRule {
                to: Some(namespace_peers(
                    &network.dns_namespace,
                    &network.dns_pod_selector,
                )),
                ports: Some(vec![policy_port("UDP", 53), policy_port("TCP", 53)]),
            }),
        )?;
        let mut out = vec![deny, ingress, dns];
        if let Some(database) = &network.database {
            let (to, port) = match database {
                DatabaseEgress::InCluster {
                    namespace,
                    pod_selector,
                    port,
                } => {
                    check_dns_label("database namespace", namespace)?;
                    (namespace_peers(namespace, pod_selector), *port)
                }
                DatabaseEgress::Cidr { cidr, port } => (
                    vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: cidr.clone(),
                            except: None,
                        }),
                        ..NetworkPolicyPeer::default()
                    }],
                    *port,
                ),
            };
            out.push(self.policy(
                "allow-egress-database",
                None,
                Some(NetworkPolicyEgressRule {
                    to: Some(to),
                    ports: Some(vec![policy_port("TCP", port)]),
                }),
            )?);
        }
        Ok(out)
    }

    /// A policy over all pods; with no rule it denies both directions.
    fn policy(
        &self,
        name: &str,
        ingress: Option<NetworkPolicyIngressRule>,
        egress: Option<NetworkPolicyEgressRule>,
    ) -> Result<Resource, ComponentError> {
        let types = match (&ingress, &egress) {
            (Some(_), None) => vec!["Ingress".to_owned()],
            (None, Some(_)) => vec!["Egress".to_owned()],
            _ => vec!["Ingress".to_owned(), "Egress".to_owned()],
        };
        to_resource(&NetworkPolicy {
            metadata: meta(name, Some(&self.name), &self.labels),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(types),
                ingress: ingress.map(|rule| vec![rule]),
                egress: egress.map(|rule| vec![rule]),
            }),
        })
    }
}

/// Two ORed peers selecting namespace `name` (built-in label, then ours), each
/// optionally narrowed to pods with `pods` labels.
fn namespace_peers(name: &str, pods: &Labels) -> Vec<NetworkPolicyPeer> {
    [BUILTIN_NAMESPACE_LABEL, NAMESPACE_LABEL]
        .into_iter()
        .map(|label| NetworkPolicyPeer {
            namespace_selector: Some(match_labels(BTreeMap::from([(
                label.to_owned(),
                name.to_owned(),
            )]))),
            pod_selector: (!pods.is_empty()).then(|| match_labels(pods.to_map())),
            ..NetworkPolicyPeer::default()
        })
        .collect()
}

fn policy_port(protocol: &str, port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(i32::from(port))),
        end_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{bodies, labels};
    use serde_json::{Value, json};

    fn preview() -> PreviewNamespace {
        let mut network = NetworkIsolation::new("nginx-gateway");
        network.database = Some(DatabaseEgress::in_cluster("default"));
        PreviewNamespace {
            labels: labels(),
            quota: Some(Quota {
                cpu: "2".into(),
                memory: "4Gi".into(),
                pods: 5,
            }),
            network: Some(network),
            ..PreviewNamespace::new("preview-pr-123")
        }
    }

    fn policy<'a>(out: &'a NamespaceResources, name: &str) -> &'a Value {
        &out.network_policies
            .iter()
            .find(|p| p.id.name == name)
            .unwrap_or_else(|| panic!("no policy {name}"))
            .body
    }

    #[test]
    fn snapshot() {
        let out = preview().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn namespace_carries_both_name_labels() {
        let out = preview().build().expect("builds");
        let labels = &out.namespace.body["metadata"]["labels"];
        assert_eq!(labels[BUILTIN_NAMESPACE_LABEL], "preview-pr-123");
        assert_eq!(labels[NAMESPACE_LABEL], "preview-pr-123");
        assert_eq!(out.namespace.id.namespace, None);
    }

    #[test]
    fn quota_values_come_from_the_parameters() {
        let out = preview().build().expect("builds");
        let quota = out.quota.expect("quota");
        assert_eq!(quota.id.name, "preview-pr-123-quota");
        assert_eq!(quota.id.namespace.as_deref(), Some("preview-pr-123"));
        assert_eq!(
            quota.body["spec"]["hard"],
            json!({"limits.cpu": "2", "limits.memory": "4Gi", "pods": "5",
                   "requests.cpu": "2", "requests.memory": "4Gi"})
        );
        let mut no_quota = preview();
        no_quota.quota = None;
        assert!(no_quota.build().expect("builds").quota.is_none());
    }

    #[test]
    fn default_deny_covers_both_directions_with_no_rules() {
        let out = preview().build().expect("builds");
        let deny = policy(&out, "default-deny-all");
        assert_eq!(deny["spec"]["podSelector"], json!({}));
        assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(deny["spec"].get("ingress").is_none());
        assert!(deny["spec"].get("egress").is_none());
    }

    #[test]
    fn ingress_only_from_the_gateway_namespace_on_app_ports() {
        let out = preview().build().expect("builds");
        let spec = &policy(&out, "allow-ingress-from-gateway")["spec"];
        assert_eq!(spec["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            spec["ingress"],
            json!([{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nginx-gateway"}}},
                    {"namespaceSelector": {"matchLabels": {"preview-envs.io/namespace": "nginx-gateway"}}}
                ],
                "ports": [{"port": 80, "protocol": "TCP"}]
            }])
        );
    }

    #[test]
    fn egress_only_to_dns_and_the_database() {
        let out = preview().build().expect("builds");
        let dns = &policy(&out, "allow-egress-dns")["spec"]["egress"][0];
        assert_eq!(
            dns["ports"],
            json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
        );
        assert_eq!(
            dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
            "kube-dns"
        );
        assert_eq!(
            dns["to"][1]["namespaceSelector"]["matchLabels"][NAMESPACE_LABEL],
            "kube-system"
        );
        let db = &policy(&out, "allow-egress-database")["spec"]["egress"][0];
        assert_eq!(db["ports"], json!([{"port": 5432, "protocol": "TCP"}]));
        assert_eq!(
            db["to"][0]["namespaceSelector"]["matchLabels"][BUILTIN_NAMESPACE_LABEL],
            "default"
        );
        assert_eq!(
            db["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "postgresql"
        );
        // No peer anywhere admits another preview namespace.
        let selected: Vec<String> = out
            .network_policies
            .iter()
            .flat_map(|p| {
                let spec = &p.body["spec"];
                let rules = [&spec["ingress"], &spec["egress"]];
                rules
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .flat_map(|rule| [&rule["from"], &rule["to"]])
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(|peer| peer["namespaceSelector"]["matchLabels"].as_object())
                    .flat_map(|m| m.values().filter_map(Value::as_str).map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            selected,
            [
                "nginx-gateway",
                "nginx-gateway",
                "kube-system",
                "kube-system",
                "default",
                "default"
            ]
        );
    }

    #[test]
    fn managed_database_by_cidr() {
        let mut ns = preview();
        if let Some(network) = ns.network.as_mut() {
            network.database = Some(DatabaseEgress::Cidr {
                cidr: "10.110.0.0/20".into(),
                port: 25060,
            });
        }
        let out = ns.build().expect("builds");
        let db = &policy(&out, "allow-egress-database")["spec"]["egress"][0];
        assert_eq!(db["to"], json!([{"ipBlock": {"cidr": "10.110.0.0/20"}}]));
        assert_eq!(db["ports"], json!([{"port": 25060, "protocol": "TCP"}]));
    }

    #[test]
    fn invalid_names_are_rejected() {
        let err = PreviewNamespace::new("Preview_PR")
            .build()
            .expect_err("invalid");
        assert!(err.to_string().contains("namespace name"), "{err}");
        let mut ns = preview();
        if let Some(q) = ns.quota.as_mut() {
            q.memory = " ".into();
        }
        assert!(
            ns.build()
                .expect_err("empty")
                .to_string()
                .contains("quota memory")
        );
    }
}
