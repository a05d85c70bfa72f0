//! A preview namespace: `Namespace`, optional `ResourceQuota`, optional set of
//! `NetworkPolicy` objects that isolate it.
//!
//! # Pod security
//! [`PreviewNamespace::pod_security`] adds the PodSecurity admission labels
//! ([`crate::security::PodSecurity::labels`]: `enforce`, `audit` and `warn`);
//! preview namespaces enforce `restricted`.
//!
//! # Quota
//! [`Quota`] has no defaults: the stack passes the sizes (previews use 2 CPU, 4Gi,
//! 4Gi of ephemeral storage, 5 pods). The quota caps `requests.cpu` and
//! `limits.cpu` at `cpu`, `requests.memory` and `limits.memory` at `memory`,
//! `requests.ephemeral-storage` and `limits.ephemeral-storage` at
//! `ephemeral_storage` (when set), and `pods` at `pods`. With a quota in place
//! every container needs requests and limits of each capped resource (the API
//! server rejects pods without them), so stacks must pass
//! [`crate::ComputeResources`] to every workload in the namespace.
//!
//! # Network isolation
//! [`NetworkIsolation`] renders four policies, all selecting every pod of the
//! namespace (`podSelector: {}`):
//! - `default-deny-all`: policy types Ingress and Egress with no rules — nothing in,
//!   nothing out. This is what keeps previews from reaching each other.
//! - `allow-ingress-from-gateway`: ingress from the gateway's namespace on the
//!   pods' ports (TCP; default 8080, where the web and API pods listen behind their
//!   Services' port 80 — a policy matches the pod's port, not the Service's).
//! - `allow-egress-dns`: egress to the DNS pods (`k8s-app: kube-dns` in
//!   `kube-system` by default) on UDP and TCP 53.
//! - `allow-egress-database` (when [`NetworkIsolation::database`] is set): egress to
//!   the PostgreSQL pods' namespace (or a CIDR, for managed databases) on TCP 5432.
//!
//! - one per [`PolicyRule`] (an app's declared egress, and the traffic between
//!   its services): `allow-egress-<name>` to another namespace's pods or an
//!   address range; for pods of this namespace also `allow-ingress-<name>`
//!   selecting those pods, so the traffic `default-deny-all` blocks at both ends
//!   is allowed at both.
//!
//! Namespace peers select `kubernetes.io/metadata.name=<ns>`, the label the API
//! server sets on every namespace (Kubernetes 1.21+; the engine refuses servers
//! older than 1.33), so the namespaces the stack does not create (`kube-system`,
//! the database's) need no labels of ours.
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

use crate::common::{Labels, check_dns_label, check_present, match_labels, meta, to_resource};
use crate::error::ComponentError;
use crate::security::PodSecurity;

/// The namespace-name label the API server sets on every namespace.
pub const BUILTIN_NAMESPACE_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace with optional quota and isolation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewNamespace {
    /// Namespace name (DNS-1123 label), e.g. `preview-pr-123`.
    pub name: String,
    /// Extra labels for every object.
    pub labels: Labels,
    /// PodSecurity admission labels of the namespace; `None` = none (the
    /// cluster's default, usually `privileged`).
    pub pod_security: Option<PodSecurity>,
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
    /// Ephemeral-storage cap for both `requests.ephemeral-storage` and
    /// `limits.ephemeral-storage`, e.g. `4Gi`; `None` = not capped.
    pub ephemeral_storage: Option<String>,
    /// Maximum number of pods, e.g. `5`.
    pub pods: u32,
}

/// What a preview namespace may talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkIsolation {
    /// Namespace of the Gateway's data plane; the only ingress source.
    pub gateway_namespace: String,
    /// TCP ports of the pods the gateway may reach (default `[8080]`: the `web`
    /// and `api` pods listen on 8080 behind their Services' port 80).
    pub ingress_ports: Vec<u16>,
    /// Namespace of the cluster DNS (default `kube-system`).
    pub dns_namespace: String,
    /// Labels of the DNS pods (default `k8s-app: kube-dns`, which CoreDNS keeps for
    /// compatibility); empty = any pod of [`Self::dns_namespace`].
    pub dns_pod_selector: Labels,
    /// Where the database is; `None` = no database egress.
    pub database: Option<DatabaseEgress>,
    /// Further allowed traffic (default none), one or two policies each.
    pub rules: Vec<PolicyRule>,
}

/// Allowed traffic beyond the built-in policies, on TCP `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Rule name (a DNS label; the policies are `allow-egress-<name>` and, for
    /// [`PolicyPeer::OwnPods`], `allow-ingress-<name>`).
    pub name: String,
    /// TCP ports.
    pub ports: Vec<u16>,
    /// Where to.
    pub peer: PolicyPeer,
}

/// The other end of a [`PolicyRule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyPeer {
    /// Pods of this namespace with these labels: egress from every pod of the
    /// namespace to them, and ingress at them from every pod of the namespace.
    OwnPods(Labels),
    /// Pods of another namespace (empty labels: any of its pods), egress only.
    Namespace {
        /// The namespace.
        namespace: String,
        /// Labels of its pods.
        pods: Labels,
    },
    /// An address range, egress only.
    Cidr(String),
}

impl NetworkIsolation {
    /// Ingress from `gateway_namespace` on port 8080, DNS egress to `kube-system`, no
    /// database egress (set [`Self::database`]).
    pub fn new(gateway_namespace: impl Into<String>) -> Self {
        NetworkIsolation {
            gateway_namespace: gateway_namespace.into(),
            ingress_ports: vec![crate::web::HTTP_PORT],
            dns_namespace: "kube-system".to_owned(),
            dns_pod_selector: Labels::new().with("k8s-app", "kube-dns"),
            database: None,
            rules: Vec::new(),
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
            pod_security: None,
            quota: None,
            network: None,
        }
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<NamespaceResources, ComponentError> {
        check_dns_label("namespace name", &self.name)?;
        let ns = self.name.as_str();
        let mut ns_labels = self.labels.clone();
        for (k, v) in self.pod_security.iter().flat_map(PodSecurity::labels) {
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
        let storage = quota.ephemeral_storage.as_ref();
        let values = [
            ("quota cpu", Some(&quota.cpu)),
            ("quota memory", Some(&quota.memory)),
            ("quota ephemeral storage", storage),
        ];
        for (what, value) in values
            .into_iter()
            .filter_map(|(what, v)| v.map(|v| (what, v)))
        {
            check_present(what, value, "must not be empty")?;
        }
        let mut hard = BTreeMap::from([
            ("limits.cpu".to_owned(), Quantity(quota.cpu.clone())),
            ("limits.memory".to_owned(), Quantity(quota.memory.clone())),
            ("pods".to_owned(), Quantity(quota.pods.to_string())),
            ("requests.cpu".to_owned(), Quantity(quota.cpu.clone())),
            ("requests.memory".to_owned(), Quantity(quota.memory.clone())),
        ]);
        if let Some(storage) = storage {
            for key in ["limits.ephemeral-storage", "requests.ephemeral-storage"] {
                hard.insert(key.to_owned(), Quantity(storage.clone()));
            }
        }
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
        for rule in &network.rules {
            out.extend(self.rule_policies(rule)?);
        }
        Ok(out)
    }

    fn rule_policies(&self, rule: &PolicyRule) -> Result<Vec<Resource>, ComponentError> {
        check_dns_label("network rule name", &rule.name)?;
        let ports: Vec<NetworkPolicyPort> = rule
            .ports
            .iter()
            .map(|port| policy_port("TCP", *port))
            .collect();
        let egress = |to: Vec<NetworkPolicyPeer>| NetworkPolicyEgressRule {
            to: Some(to),
            ports: Some(ports.clone()),
        };
        let egress_name = format!("allow-egress-{}", rule.name);
        match &rule.peer {
            PolicyPeer::OwnPods(pods) => {
                // Empty labels: `podSelector: {}` (every pod), as the server stores it.
                let selector = |labels: &Labels| {
                    if labels.is_empty() {
                        LabelSelector::default()
                    } else {
                        match_labels(labels.to_map())
                    }
                };
                let own = |labels: &Labels| NetworkPolicyPeer {
                    pod_selector: Some(selector(labels)),
                    ..NetworkPolicyPeer::default()
                };
                let out = self.policy(&egress_name, None, Some(egress(vec![own(pods)])))?;
                let ingress = to_resource(&NetworkPolicy {
                    metadata: meta(
                        &format!("allow-ingress-{}", rule.name),
                        Some(&self.name),
                        &self.labels,
                    ),
                    spec: Some(NetworkPolicySpec {
                        pod_selector: Some(selector(pods)),
                        policy_types: Some(vec!["Ingress".to_owned()]),
                        ingress: Some(vec![NetworkPolicyIngressRule {
                            from: Some(vec![own(&Labels::new())]),
                            ports: Some(ports.clone()),
                        }]),
                        egress: None,
                    }),
                })?;
                Ok(vec![out, ingress])
            }
            PolicyPeer::Namespace { namespace, pods } => {
                check_dns_label("network rule namespace", namespace)?;
                Ok(vec![self.policy(
                    &egress_name,
                    None,
                    Some(egress(namespace_peers(namespace, pods))),
                )?])
            }
            PolicyPeer::Cidr(cidr) => Ok(vec![self.policy(
                &egress_name,
                None,
                Some(egress(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: cidr.clone(),
                        except: None,
                    }),
                    ..NetworkPolicyPeer::default()
                }])),
            )?]),
        }
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

/// The peer selecting namespace `name` by its built-in name label, optionally
/// narrowed to pods with `pods` labels.
fn namespace_peers(name: &str, pods: &Labels) -> Vec<NetworkPolicyPeer> {
    vec![NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            BUILTIN_NAMESPACE_LABEL.to_owned(),
            name.to_owned(),
        )]))),
        pod_selector: (!pods.is_empty()).then(|| match_labels(pods.to_map())),
        ..NetworkPolicyPeer::default()
    }]
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
            pod_security: Some(PodSecurity::default()),
            quota: Some(Quota {
                cpu: "2".into(),
                memory: "4Gi".into(),
                ephemeral_storage: Some("4Gi".into()),
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
    fn rules_snapshot() {
        let mut network = NetworkIsolation::new("nginx-gateway");
        network.ingress_ports = vec![3000];
        network.rules = vec![
            PolicyRule {
                name: "redis".into(),
                ports: vec![6379],
                peer: PolicyPeer::OwnPods(Labels::new().with("app.kubernetes.io/name", "redis")),
            },
            PolicyRule {
                name: "metrics".into(),
                ports: vec![9090],
                peer: PolicyPeer::Namespace {
                    namespace: "monitoring".into(),
                    pods: Labels::new(),
                },
            },
            PolicyRule {
                name: "https".into(),
                ports: vec![443],
                peer: PolicyPeer::Cidr("0.0.0.0/0".into()),
            },
        ];
        let out = PreviewNamespace {
            network: Some(network),
            ..PreviewNamespace::new("preview-pr-123")
        }
        .build()
        .expect("builds");
        let names: Vec<&str> = out
            .network_policies
            .iter()
            .map(|p| p.id.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "default-deny-all",
                "allow-ingress-from-gateway",
                "allow-egress-dns",
                "allow-egress-redis",
                "allow-ingress-redis",
                "allow-egress-metrics",
                "allow-egress-https"
            ]
        );
        insta::assert_yaml_snapshot!(bodies(&out.network_policies[3..]));
    }

    #[test]
    fn snapshot() {
        let out = preview().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn namespace_carries_pod_security_but_no_name_label_of_its_own() {
        let out = preview().build().expect("builds");
        let labels = &out.namespace.body["metadata"]["labels"];
        // The API server sets the name label; the stack does not own it.
        assert!(labels.get(BUILTIN_NAMESPACE_LABEL).is_none(), "{labels}");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
        assert_eq!(labels["pod-security.kubernetes.io/audit"], "restricted");
        assert_eq!(out.namespace.id.namespace, None);
        let mut plain = preview();
        plain.pod_security = None;
        let out = plain.build().expect("builds");
        let labels = &out.namespace.body["metadata"]["labels"];
        assert!(
            labels
                .as_object()
                .is_some_and(|m| !m.keys().any(|k| k.starts_with("pod-security"))),
            "{labels}"
        );
    }

    #[test]
    fn quota_values_come_from_the_parameters() {
        let out = preview().build().expect("builds");
        let quota = out.quota.expect("quota");
        assert_eq!(quota.id.name, "preview-pr-123-quota");
        assert_eq!(quota.id.namespace.as_deref(), Some("preview-pr-123"));
        assert_eq!(
            quota.body["spec"]["hard"],
            json!({"limits.cpu": "2", "limits.ephemeral-storage": "4Gi", "limits.memory": "4Gi",
                   "pods": "5", "requests.cpu": "2", "requests.ephemeral-storage": "4Gi",
                   "requests.memory": "4Gi"})
        );
        let mut no_storage = preview();
        if let Some(q) = no_storage.quota.as_mut() {
            q.ephemeral_storage = None;
        }
        let hard = &no_storage
            .build()
            .expect("builds")
            .quota
            .expect("quota")
            .body["spec"]["hard"];
        assert!(hard.get("requests.ephemeral-storage").is_none(), "{hard}");
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
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nginx-gateway"}}}
                ],
                "ports": [{"port": 8080, "protocol": "TCP"}]
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
            dns["to"],
            json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}])
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
        assert_eq!(selected, ["nginx-gateway", "kube-system", "default"]);
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
