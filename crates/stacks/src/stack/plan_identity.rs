//! The plan credential's objects in `preview-base` (`planIdentity:`): what lets
//! `stacks preview` run with a credential that can plan and nothing more.
//!
//! A server-side dry-run is authorised as the write it simulates, so a
//! credential bound to get/list/watch only cannot plan a change (its dry-run
//! patch is refused with 403). These objects give the plan identity what a
//! plan needs, and the API server itself refuses everything else:
//!
//! - ClusterRole and ClusterRoleBinding `preview-envs-planner`: `get`, `list`,
//!   `watch` on everything (the engine reads every object a stack manages,
//!   Secrets included, to compare them), and `patch`, `create` — the verbs a
//!   server-side-apply dry-run is authorised as — on exactly the kinds the
//!   stacks render ([`DRY_RUN_RESOURCES`]). Not on RBAC or admission objects:
//!   admission policies do not apply to those, so a patch there could lift the
//!   policy below.
//! - ValidatingAdmissionPolicy `preview-envs-plan-only` and its binding
//!   (`admissionregistration.k8s.io/v1`, action `Deny`): every CREATE, UPDATE,
//!   DELETE or CONNECT request by the plan identity (matched on the user name,
//!   or the group) is refused unless it is a dry-run (`request.dryRun == true`),
//!   with the message [`DENIED_MESSAGE`]. `failurePolicy: Fail`.
//!
//! The identity is a User, a Group, or a ServiceAccount
//! (`system:serviceaccount:<namespace>:<name>`); the objects are cluster-scoped
//! and not protected (they hold no data).

use components::Labels;
use preview_core::Resource;
use serde_json::{Value, json};

use crate::StackError;
use crate::config::PlanIdentity;

/// Name of the ClusterRole, its binding, the policy and the policy binding's prefix.
pub const PLANNER: &str = "preview-envs-planner";
/// Name of the ValidatingAdmissionPolicy and its binding.
pub const PLAN_ONLY_POLICY: &str = "preview-envs-plan-only";
/// The message of the policy's refusal (the API server adds the policy's name).
pub const DENIED_MESSAGE: &str = "the preview-envs plan identity may only dry-run: this credential plans (stacks preview), it never writes";

/// API groups and resources the plan identity may dry-run (`patch`, `create`):
/// the kinds the stacks render.
pub const DRY_RUN_RESOURCES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "namespaces",
            "configmaps",
            "secrets",
            "services",
            "serviceaccounts",
            "persistentvolumeclaims",
            "resourcequotas",
            "limitranges",
        ],
    ),
    ("apps", &["deployments", "statefulsets"]),
    ("batch", &["jobs"]),
    ("networking.k8s.io", &["networkpolicies"]),
    ("policy", &["poddisruptionbudgets"]),
    (
        "gateway.networking.k8s.io",
        &[
            "gatewayclasses",
            "gateways",
            "httproutes",
            "referencegrants",
        ],
    ),
    (
        "cert-manager.io",
        &["issuers", "clusterissuers", "certificates"],
    ),
    (
        "gateway.nginx.org",
        &["snippetsfilters", "clientsettingspolicies"],
    ),
];

/// The ClusterRole, its binding, the admission policy and its binding.
pub fn plan_identity_resources(
    identity: &PlanIdentity,
    labels: &Labels,
) -> Result<Vec<Resource>, StackError> {
    let labels = labels.to_map();
    let meta = |name: &str| json!({"name": name, "labels": labels});
    let dry_run_rules: Vec<Value> = DRY_RUN_RESOURCES
        .iter()
        .map(|(group, resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": ["patch", "create"]})
        })
        .collect();
    let mut rules =
        vec![json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]})];
    rules.extend(dry_run_rules);
    let subject = match identity {
        PlanIdentity::User(name) => {
            json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
        }
        PlanIdentity::Group(name) => {
            json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
        }
        PlanIdentity::ServiceAccount { namespace, name } => {
            json!({"kind": "ServiceAccount", "namespace": namespace, "name": name})
        }
    };
    // JSON string literals are CEL string literals (the name has no quote or
    // backslash: checked with the config).
    let matches = match identity {
        PlanIdentity::Group(group) => format!("{} in request.userInfo.groups", json!(group)),
        other => format!(
            "request.userInfo.username == {}",
            json!(other.username().unwrap_or_default())
        ),
    };
    let bodies = [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(PLANNER),
            "rules": rules,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(PLANNER),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PLANNER},
            "subjects": [subject],
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": meta(PLAN_ONLY_POLICY),
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [{
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "resources": ["*/*"],
                        "operations": ["CREATE", "UPDATE", "DELETE", "CONNECT"],
                    }],
                },
                "matchConditions": [{"name": "plan-identity", "expression": matches}],
                "validations": [{
                    "expression": "request.dryRun == true",
                    "message": DENIED_MESSAGE,
                    "reason": "Forbidden",
                }],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": meta(PLAN_ONLY_POLICY),
            "spec": {
                "policyName": PLAN_ONLY_POLICY,
                "validationActions": ["Deny"],
            },
        }),
    ];
    let mut resources = Vec::new();
    for body in bodies {
        resources.push(
            Resource::kubernetes(body)
                .map_err(|e| StackError::Invalid(format!("planIdentity: {e}")))?,
        );
    }
    // The binding refers to the policy, the role binding to the role.
    let (role, policy) = (resources[0].id.clone(), resources[2].id.clone());
    resources[1] = resources[1].clone().depends_on(&role);
    resources[3] = resources[3].clone().depends_on(&policy);
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_is_matched_on_its_user_name() {
        let identity = PlanIdentity::ServiceAccount {
            namespace: "preview-ci".into(),
            name: "planner".into(),
        };
        let resources = plan_identity_resources(&identity, &Labels::new()).expect("resources");
        let kinds: Vec<&str> = resources.iter().map(|r| r.id.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
        let policy = &resources[2].body;
        assert_eq!(
            policy["spec"]["matchConditions"][0]["expression"],
            json!("request.userInfo.username == \"system:serviceaccount:preview-ci:planner\"")
        );
        assert_eq!(
            policy["spec"]["validations"][0]["expression"],
            json!("request.dryRun == true")
        );
        assert_eq!(
            resources[1].body["subjects"][0],
            json!({"kind": "ServiceAccount", "namespace": "preview-ci", "name": "planner"})
        );
        insta::assert_yaml_snapshot!(resources.iter().map(|r| &r.body).collect::<Vec<_>>());
    }

    #[test]
    fn a_group_is_matched_on_membership_and_rbac_objects_are_never_writable() {
        let resources =
            plan_identity_resources(&PlanIdentity::Group("ci:planners".into()), &Labels::new())
                .expect("resources");
        assert_eq!(
            resources[2].body["spec"]["matchConditions"][0]["expression"],
            json!("\"ci:planners\" in request.userInfo.groups")
        );
        let rules = resources[0].body["rules"].as_array().expect("rules");
        for rule in rules {
            let verbs = rule["verbs"].to_string();
            if verbs.contains("patch") || verbs.contains("create") {
                let groups = rule["apiGroups"].to_string();
                assert!(!groups.contains('*'), "no wildcard write: {rule}");
                assert!(
                    !groups.contains("rbac") && !groups.contains("admissionregistration"),
                    "{rule}"
                );
            }
        }
        assert!(
            rules
                .iter()
                .all(|r| !r["verbs"].to_string().contains("delete"))
        );
    }
}
