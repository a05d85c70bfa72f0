//! Cross-namespace Service addresses must be fully qualified.
//!
//! `db.default` resolves from another namespace only through the pod's DNS
//! search path (and costs extra lookups with `ndots: 5`); the stacks promise
//! FQDNs such as `db.default.svc.cluster.local`. Checked: ConfigMap `data` values
//! and container (and init container) `env[].value` strings.
//!
//! Heuristic, tuned for few false positives:
//!
//! 1. A value without whitespace is split on `,` (host lists); each piece must
//!    parse on its own as a URL with a scheme (`scheme://[user@]host[:port][/…]`)
//!    or as a bare `host` / `host:port` (digits only after `:`, no `/`, `@`, `=`,
//!    `?`, `#`). A value with whitespace (prose, config files) is only searched
//!    for tokens containing `://`, i.e. URLs.
//! 2. The host must consist of lowercase DNS labels. Forms recognised as a short
//!    Service address, with `<ns>` the namespace: `<svc>.<ns>`,
//!    `<pod>.<svc>.<ns>`, `….<ns>.svc`, `….<ns>.svc.cluster`.
//! 3. `<ns>` must be a known namespace (a Namespace in the graph, the namespace of
//!    any resource in the graph, `default`, `kube-system`, or one listed in the
//!    [`Policy`](super::Policy)) and differ from the object's own namespace.
//!    Hosts such as `example.com` or `api.github.com` are not flagged, because
//!    `com` is not a known namespace.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::resource::Resource;

use super::pods::{containers, pod_spec};
use super::{Problem, key_path};

/// Checks ConfigMap data and container env values.
pub(super) fn check(resource: &Resource, known: &BTreeSet<String>, out: &mut Vec<Problem>) {
    let own = resource.id.namespace.as_deref();
    let mut report = |field: String, value: &str| {
        for message in findings(value, own, known) {
            out.push(Problem::new(&resource.id, field.clone(), message));
        }
    };
    if resource.id.is("", "ConfigMap")
        && let Some(data) = resource.body.get("data").and_then(Value::as_object)
    {
        for (key, value) in data {
            if let Some(value) = value.as_str() {
                report(key_path("data", key), value);
            }
        }
    }
    let Some(pod) = pod_spec(resource) else {
        return;
    };
    for container in containers(&pod) {
        for (index, env) in container
            .value
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(value) = env.get("value").and_then(Value::as_str) else {
                continue;
            };
            let entry = match env.get("name").and_then(Value::as_str) {
                Some(name) => format!("env[name={name}]"),
                None => format!("env[{index}]"),
            };
            report(format!("{}.{entry}.value", container.path), value);
        }
    }
}

/// One message per short cross-namespace address in `value`.
pub(super) fn findings(value: &str, own: Option<&str>, known: &BTreeSet<String>) -> Vec<String> {
    let trimmed = value.trim();
    let candidates: Vec<&str> = if trimmed.contains(char::is_whitespace) {
        trimmed
            .split(|c: char| {
                c.is_whitespace()
                    || matches!(
                        c,
                        '"' | '\''
                            | '`'
                            | ';'
                            | ','
                            | '('
                            | ')'
                            | '<'
                            | '>'
                            | '['
                            | ']'
                            | '{'
                            | '}'
                    )
            })
            .filter(|t| t.contains("://"))
            .collect()
    } else {
        trimmed.split(',').collect()
    };
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let host = host_of(candidate)?;
            let (namespace, fqdn) = short_service_address(host, own, known)?;
            Some(format!(
                "\"{candidate}\" addresses namespace {namespace} with the short name \"{host}\"; \
                 use the fully qualified \"{fqdn}\" (addresses into another namespace must be FQDNs)"
            ))
        })
        .collect()
}

/// The host of a URL with a scheme, or of a bare `host[:port]`.
fn host_of(candidate: &str) -> Option<&str> {
    let host_port = if let Some((scheme, rest)) = candidate.split_once("://") {
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        authority.rsplit('@').next().unwrap_or("")
    } else {
        if candidate.contains(['/', '@', '=', '?', '#']) {
            return None;
        }
        candidate
    };
    if host_port.starts_with('[') {
        return None; // IPv6 literal
    }
    let host = match host_port.split_once(':') {
        Some((host, port)) => {
            if !port.is_empty() && !port.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            host
        }
        None => host_port,
    };
    (!host.is_empty()).then_some(host)
}

/// When `host` is a short address into another known namespace: that namespace
/// and the FQDN to use instead.
fn short_service_address(
    host: &str,
    own: Option<&str>,
    known: &BTreeSet<String>,
) -> Option<(String, String)> {
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && l.starts_with(|c: char| c.is_ascii_alphanumeric())
            && l.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let labels: Vec<&str> = host.split('.').collect();
    if !labels.iter().all(valid_label) || host.ends_with(".svc.cluster.local") {
        return None;
    }
    // Index of the namespace label.
    let ns_index = match labels.as_slice() {
        [.., "svc", "cluster"] if labels.len() >= 4 => labels.len() - 3,
        [.., "svc"] if labels.len() >= 3 => labels.len() - 2,
        [_, _] | [_, _, _] => labels.len() - 1,
        _ => return None,
    };
    let namespace = labels[ns_index];
    if !known.contains(namespace) || Some(namespace) == own {
        return None;
    }
    let fqdn = format!("{}.svc.cluster.local", labels[..=ns_index].join("."));
    Some((namespace.to_owned(), fqdn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["default", "kube-system", "nginx-gateway", "preview-pr-1"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn hosts(value: &str) -> Vec<String> {
        findings(value, Some("preview-pr-1"), &known())
    }

    #[test]
    fn short_forms_are_flagged() {
        for (value, fqdn) in [
            ("db.default", "db.default.svc.cluster.local"),
            ("db.default:5432", "db.default.svc.cluster.local"),
            ("db.default.svc", "db.default.svc.cluster.local"),
            ("db.default.svc.cluster", "db.default.svc.cluster.local"),
            ("db-0.db.default", "db-0.db.default.svc.cluster.local"),
            ("db-0.db.default.svc", "db-0.db.default.svc.cluster.local"),
            (
                "postgres://app@db.default:5432/aphiria_pr_1",
                "db.default.svc.cluster.local",
            ),
            (
                "http://gateway.nginx-gateway/healthz",
                "gateway.nginx-gateway.svc.cluster.local",
            ),
        ] {
            let found = hosts(value);
            assert_eq!(found.len(), 1, "{value}: {found:?}");
            assert!(
                found[0].contains(&format!("use the fully qualified \"{fqdn}\"")),
                "{value}: {found:?}"
            );
        }
    }

    #[test]
    fn message_names_value_namespace_and_fqdn() {
        assert_eq!(
            hosts("db.default:5432"),
            vec![
                "\"db.default:5432\" addresses namespace default with the short name \"db.default\"; \
                 use the fully qualified \"db.default.svc.cluster.local\" (addresses into another \
                 namespace must be FQDNs)"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn fqdns_own_namespace_and_unknown_namespaces_pass() {
        for value in [
            "db.default.svc.cluster.local",
            "db.default.svc.cluster.local:5432",
            "postgres://db.default.svc.cluster.local/x",
            "api.preview-pr-1",
            "api.preview-pr-1.svc",
            "example.com",
            "https://api.github.com/repos",
            "https://1.pr.aphiria.com",
            "10.96.0.10:53",
            "db",
            "aphiria_pr_1",
            "DB.default",
            "1.27",
            "key=value.default",
            "",
        ] {
            assert!(hosts(value).is_empty(), "{value}: {:?}", hosts(value));
        }
    }

    #[test]
    fn free_text_only_checks_urls() {
        assert!(hosts("see the docs at docs.default for details").is_empty());
        assert_eq!(
            hosts("location / {\n  proxy_pass http://api.default:8080;\n}").len(),
            1
        );
    }

    #[test]
    fn host_lists_are_split() {
        assert_eq!(
            hosts("kafka-0.kafka.default:9092,kafka-1.kafka.default:9092").len(),
            2
        );
    }
}
