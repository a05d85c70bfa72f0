//! Pod security: the PodSecurity level a namespace enforces ([`PodSecurity`]) and
//! the settings that make a workload's pods comply with the `restricted` level
//! ([`Hardening`]).
//!
//! # Namespace labels
//! [`PodSecurity::labels`] renders the three modes of the built-in PodSecurity
//! admission (Kubernetes 1.25+):
//! - `pod-security.kubernetes.io/enforce: <level>` with
//!   `enforce-version: v1.<oldest supported minor>` ([`ENFORCE_VERSION`], `v1.33`):
//!   pods that violate the level are rejected. The version is **pinned** so that a
//!   cluster upgrade never changes what is admitted on its own (the policy of a
//!   level can tighten between releases; Kubernetes recommends pinning enforce);
//! - `audit` and `warn` at the same level with `-version: latest`: the newest
//!   policy of the running server is evaluated too, and what it would forbid shows
//!   up as warnings on every apply and in the audit log before it is enforced.
//!
//! # Restricted pods
//! [`Hardening`] (the default of the web, API and migration components) sets what
//! the `restricted` level asks for, whatever the namespace enforces:
//! - pod: `runAsNonRoot: true`, `runAsUser`/`runAsGroup` (default 101, the user of
//!   `nginxinc/nginx-unprivileged`; a numeric user lets the kubelet verify
//!   non-root even for images whose `USER` is a name), `seccompProfile:
//!   RuntimeDefault`, `automountServiceAccountToken: false` (the pods never talk
//!   to the API server);
//! - every container and init container: `allowPrivilegeEscalation: false`,
//!   `capabilities.drop: [ALL]`.
//!
//! So the images must run as an arbitrary non-root user: nginx from
//! `nginx-unprivileged` listening on 8080, PHP-FPM on 9000.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

/// `pod-security.kubernetes.io/`, the prefix of the PodSecurity labels.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// The `enforce-version`: the oldest Kubernetes minor the engine supports
/// (`v1.33`; a test keeps it equal to `OLDEST_SUPPORTED_MINOR`).
pub const ENFORCE_VERSION: &str = "v1.33";

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodSecurityLevel {
    /// Hardened: non-root, no privilege escalation, all capabilities dropped,
    /// seccomp `RuntimeDefault`, restricted volume types (the default).
    #[default]
    Restricted,
    /// Prevents known privilege escalations (no host namespaces, no privileged
    /// containers, …) but allows root and the default capabilities.
    Baseline,
    /// Unrestricted.
    Privileged,
}

impl PodSecurityLevel {
    /// The label value (`restricted`, `baseline`, `privileged`).
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Privileged => "privileged",
        }
    }

    /// Parses the label spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "restricted" => Some(PodSecurityLevel::Restricted),
            "baseline" => Some(PodSecurityLevel::Baseline),
            "privileged" => Some(PodSecurityLevel::Privileged),
            _ => None,
        }
    }
}

/// What a namespace's PodSecurity admission enforces, audits and warns about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSecurity {
    /// The level of all three modes (default `restricted`).
    pub level: PodSecurityLevel,
}

impl PodSecurity {
    /// `level` in all three modes.
    pub fn new(level: PodSecurityLevel) -> Self {
        PodSecurity { level }
    }

    /// The namespace labels (see the module docs).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let level = self.level.as_str();
        let mut out = BTreeMap::new();
        for (mode, version) in [
            ("enforce", ENFORCE_VERSION),
            ("audit", "latest"),
            ("warn", "latest"),
        ] {
            out.insert(format!("{LABEL_PREFIX}{mode}"), level.to_owned());
            out.insert(format!("{LABEL_PREFIX}{mode}-version"), version.to_owned());
        }
        out
    }
}

/// The settings that make a pod comply with the `restricted` level (see the
/// module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hardening {
    /// `runAsUser` (default 101).
    pub run_as_user: i64,
    /// `runAsGroup` (default 101).
    pub run_as_group: i64,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            run_as_user: 101,
            run_as_group: 101,
        }
    }
}

impl Hardening {
    /// The pod-level security context.
    pub fn pod_context(&self) -> PodSecurityContext {
        PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(self.run_as_user),
            run_as_group: Some(self.run_as_group),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }
    }

    /// The container-level security context.
    pub fn container_context() -> SecurityContext {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }
    }

    /// Applies itself to `pod`: the pod context, no service-account token, and
    /// the container context on every container and init container.
    pub fn apply(&self, pod: &mut PodSpec) {
        pod.security_context = Some(self.pod_context());
        pod.automount_service_account_token = Some(false);
        let containers = pod
            .containers
            .iter_mut()
            .chain(pod.init_containers.iter_mut().flatten());
        for container in containers {
            container.security_context = Some(Hardening::container_context());
        }
    }
}

/// Applies `hardening` to `pod` when set.
pub(crate) fn harden(pod: &mut PodSpec, hardening: Option<&Hardening>) {
    if let Some(hardening) = hardening {
        hardening.apply(pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use preview_kubernetes::version::OLDEST_SUPPORTED_MINOR;
    use serde_json::json;

    #[test]
    fn enforce_version_is_the_oldest_supported_minor() {
        assert_eq!(ENFORCE_VERSION, format!("v1.{OLDEST_SUPPORTED_MINOR}"));
    }

    #[test]
    fn labels_enforce_pinned_audit_and_warn_latest() {
        let labels = PodSecurity::default().labels();
        assert_eq!(
            serde_json::to_value(&labels).expect("json"),
            json!({
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/audit-version": "latest",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.33",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/warn-version": "latest",
            })
        );
        let baseline = PodSecurity::new(PodSecurityLevel::Baseline).labels();
        assert_eq!(baseline["pod-security.kubernetes.io/enforce"], "baseline");
        for level in ["restricted", "baseline", "privileged"] {
            assert_eq!(
                PodSecurityLevel::parse(level).map(PodSecurityLevel::as_str),
                Some(level)
            );
        }
        assert_eq!(PodSecurityLevel::parse("Restricted"), None);
    }

    #[test]
    fn hardening_covers_every_container() {
        let mut pod = PodSpec {
            containers: vec![Container {
                name: "a".into(),
                ..Container::default()
            }],
            init_containers: Some(vec![Container {
                name: "i".into(),
                ..Container::default()
            }]),
            ..PodSpec::default()
        };
        Hardening::default().apply(&mut pod);
        let value = serde_json::to_value(&pod).expect("json");
        assert_eq!(value["automountServiceAccountToken"], false);
        assert_eq!(
            value["securityContext"],
            json!({"runAsGroup": 101, "runAsNonRoot": true, "runAsUser": 101,
                   "seccompProfile": {"type": "RuntimeDefault"}})
        );
        for path in ["/containers/0", "/initContainers/0"] {
            assert_eq!(
                value.pointer(&format!("{path}/securityContext")),
                Some(&json!({"allowPrivilegeEscalation": false,
                             "capabilities": {"drop": ["ALL"]}})),
                "{path}"
            );
        }
    }
}
