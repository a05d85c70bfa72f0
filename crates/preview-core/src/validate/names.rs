//! Object names: `metadata.name` must be a valid DNS-1123 subdomain (≤ 253
//! characters of lowercase letters, digits, `-` and `.`, each dot-separated part
//! starting and ending with a letter or digit); stricter where the API server or
//! the object's use is stricter:
//!
//! - Namespace: DNS-1123 label (≤ 63, no dots); the same for every
//!   `metadata.namespace`.
//! - Service: DNS-1035 label (a DNS-1123 label that starts with a letter) — the
//!   API server validates Service names so, as they become DNS names.
//! - Job: at most 63 characters (the name becomes the `job-name` label value of
//!   its pods); CronJob: at most 52 (the API server's limit, leaving room for the
//!   Job name suffix).
//! - RBAC kinds: a path segment (no `/` or `%`, not `.` or `..`), since names like
//!   `system:aggregate-to-edit` are valid there.

use crate::resource::Resource;

use super::Problem;

/// Which DNS rule a name must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    /// DNS-1123 subdomain.
    Subdomain,
    /// DNS-1123 label.
    Label,
    /// DNS-1035 label.
    Label1035,
}

impl Rule {
    fn describe(self) -> &'static str {
        match self {
            Rule::Subdomain => "DNS-1123 subdomain",
            Rule::Label => "DNS-1123 label",
            Rule::Label1035 => "DNS-1035 label",
        }
    }

    fn max(self) -> usize {
        match self {
            Rule::Subdomain => 253,
            Rule::Label | Rule::Label1035 => 63,
        }
    }
}

/// Why `value` (called `what`, e.g. `name`) breaks `rule`, or `None`.
pub(super) fn dns_problem(what: &str, value: &str, rule: Rule) -> Option<String> {
    let rule_name = rule.describe();
    if value.is_empty() {
        return Some(format!(
            "{what} is empty; a {rule_name} needs at least one character"
        ));
    }
    let len = value.chars().count();
    if len > rule.max() {
        return Some(format!(
            "{what} \"{value}\" is {len} characters; a {rule_name} allows at most {}",
            rule.max()
        ));
    }
    for (position, c) in value.chars().enumerate() {
        let allowed = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (c == '.' && rule == Rule::Subdomain);
        if !allowed {
            let hint = if c.is_ascii_uppercase() {
                " (uppercase)"
            } else if c == '.' {
                " (dots are not allowed in a label)"
            } else {
                ""
            };
            let allowed_list = if rule == Rule::Subdomain {
                "lowercase letters, digits, '-' and '.'"
            } else {
                "lowercase letters, digits and '-'"
            };
            return Some(format!(
                "{what} \"{value}\" is not a valid {rule_name}: '{c}'{hint} at position {} is not allowed; use {allowed_list}",
                position + 1
            ));
        }
    }
    let parts_ok = value.split('.').all(|part| {
        part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
    });
    if !parts_ok {
        let which = if rule == Rule::Subdomain {
            "each dot-separated part must start and end with a lowercase letter or digit"
        } else {
            "it must start and end with a lowercase letter or digit"
        };
        return Some(format!(
            "{what} \"{value}\" is not a valid {rule_name}: {which}"
        ));
    }
    if rule == Rule::Label1035 && !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!(
            "{what} \"{value}\" is not a valid {rule_name}: it must start with a lowercase letter"
        ));
    }
    None
}

/// Checks `metadata.name` and `metadata.namespace`.
pub(super) fn check(resource: &Resource, out: &mut Vec<Problem>) {
    let id = &resource.id;
    let name = resource
        .body
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(&id.name);
    let is_rbac = id.group() == "rbac.authorization.k8s.io";
    let problem = if is_rbac {
        path_segment_problem(name)
    } else if id.is("", "Namespace") {
        dns_problem("name", name, Rule::Label)
    } else if id.is("", "Service") {
        dns_problem("name", name, Rule::Label1035)
    } else {
        dns_problem("name", name, Rule::Subdomain).or_else(|| length_limit(resource, name))
    };
    if let Some(message) = problem {
        out.push(Problem::new(id, "metadata.name", message));
    }
    let namespace = resource
        .body
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .or(id.namespace.as_deref());
    if let Some(namespace) = namespace
        && let Some(message) = dns_problem("namespace", namespace, Rule::Label)
    {
        out.push(Problem::new(id, "metadata.namespace", message));
    }
}

/// Kind-specific length limits beyond the subdomain rule.
fn length_limit(resource: &Resource, name: &str) -> Option<String> {
    let len = name.chars().count();
    if resource.id.is("batch", "Job") && len > 63 {
        return Some(format!(
            "name \"{name}\" is {len} characters; a Job's name becomes its pods' job-name label value, which allows at most 63"
        ));
    }
    if resource.id.is("batch", "CronJob") && len > 52 {
        return Some(format!(
            "name \"{name}\" is {len} characters; a CronJob name allows at most 52"
        ));
    }
    None
}

/// RBAC names only need to be a valid path segment.
fn path_segment_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name is empty".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!("name \"{name}\" is not allowed"));
    }
    name.chars()
        .find(|c| *c == '/' || *c == '%')
        .map(|c| format!("name \"{name}\" may not contain '{c}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_rules() {
        assert_eq!(dns_problem("name", "web", Rule::Subdomain), None);
        assert_eq!(dns_problem("name", "web.v1-2", Rule::Subdomain), None);
        assert_eq!(
            dns_problem("name", "Web", Rule::Subdomain).as_deref(),
            Some(
                "name \"Web\" is not a valid DNS-1123 subdomain: 'W' (uppercase) at position 1 is not allowed; use lowercase letters, digits, '-' and '.'"
            )
        );
        assert_eq!(
            dns_problem("name", "web_1", Rule::Subdomain).as_deref(),
            Some(
                "name \"web_1\" is not a valid DNS-1123 subdomain: '_' at position 4 is not allowed; use lowercase letters, digits, '-' and '.'"
            )
        );
        assert_eq!(
            dns_problem("name", "web.-x", Rule::Subdomain).as_deref(),
            Some(
                "name \"web.-x\" is not a valid DNS-1123 subdomain: each dot-separated part must start and end with a lowercase letter or digit"
            )
        );
        let long = "a".repeat(254);
        assert_eq!(
            dns_problem("name", &long, Rule::Subdomain),
            Some(format!(
                "name \"{long}\" is 254 characters; a DNS-1123 subdomain allows at most 253"
            ))
        );
        assert!(dns_problem("name", "", Rule::Subdomain).is_some());
    }

    #[test]
    fn label_rules() {
        assert_eq!(dns_problem("name", "preview-pr-1", Rule::Label), None);
        assert_eq!(
            dns_problem("name", "preview.pr", Rule::Label).as_deref(),
            Some(
                "name \"preview.pr\" is not a valid DNS-1123 label: '.' (dots are not allowed in a label) at position 8 is not allowed; use lowercase letters, digits and '-'"
            )
        );
        assert_eq!(
            dns_problem("name", "-web", Rule::Label).as_deref(),
            Some(
                "name \"-web\" is not a valid DNS-1123 label: it must start and end with a lowercase letter or digit"
            )
        );
        let name = format!("preview-pr-{}", "1".repeat(59));
        assert_eq!(
            dns_problem("name", &name, Rule::Label),
            Some(format!(
                "name \"{name}\" is 70 characters; a DNS-1123 label allows at most 63"
            ))
        );
        assert_eq!(
            dns_problem("name", "1web", Rule::Label1035).as_deref(),
            Some(
                "name \"1web\" is not a valid DNS-1035 label: it must start with a lowercase letter"
            )
        );
        assert_eq!(dns_problem("name", "1web", Rule::Label), None);
    }

    #[test]
    fn rbac_names_are_path_segments() {
        assert_eq!(path_segment_problem("system:aggregate-to-edit"), None);
        assert_eq!(
            path_segment_problem("a/b").as_deref(),
            Some("name \"a/b\" may not contain '/'")
        );
    }
}
