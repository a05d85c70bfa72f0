//! Label keys and values, wherever labels and label selectors appear: every
//! `metadata.labels` in the body (the object's, pod templates', a CronJob's job
//! template, volume claim templates), every `matchLabels` and `matchExpressions`
//! (Deployment selectors, NetworkPolicy peers, Gateway `allowedRoutes`…), and a
//! Service's `spec.selector`.
//!
//! - value: at most 63 characters, empty or
//!   `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`;
//! - key: an optional prefix (a DNS-1123 subdomain of at most 253 characters) and
//!   `/`, then a name (1–63 characters, same pattern as a value).
//!
//! CustomResourceDefinition bodies are skipped: their schemas name properties
//! `matchLabels` and `labels` without being labels.

use serde_json::{Map, Value};

use crate::resource::Resource;

use super::Problem;
use super::names::{Rule, dns_problem};

/// Checks every label map and selector in the body.
pub(super) fn check(resource: &Resource, out: &mut Vec<Problem>) {
    if resource
        .id
        .is("apiextensions.k8s.io", "CustomResourceDefinition")
    {
        return;
    }
    let mut found = Vec::new();
    walk(&resource.body, "", &mut found);
    if resource.id.is("", "Service")
        && let Some(selector) = resource
            .body
            .pointer("/spec/selector")
            .and_then(Value::as_object)
    {
        check_map(selector, "spec.selector", &mut found);
    }
    out.extend(
        found
            .into_iter()
            .map(|(field, message)| Problem::new(&resource.id, field, message)),
    );
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = join(path, key);
                match (key.as_str(), child) {
                    ("metadata", Value::Object(meta)) => {
                        if let Some(Value::Object(labels)) = meta.get("labels") {
                            check_map(labels, &join(&child_path, "labels"), out);
                        }
                    }
                    ("matchLabels", Value::Object(labels)) => check_map(labels, &child_path, out),
                    ("matchExpressions", Value::Array(exprs)) => {
                        check_expressions(exprs, &child_path, out);
                    }
                    // Never labels, and possibly large: skip.
                    ("data" | "stringData" | "binaryData", _) => {}
                    _ => walk(child, &child_path, out),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let child_path = match item.get("name").and_then(Value::as_str) {
                    Some(name) => format!("{path}[name={name}]"),
                    None => format!("{path}[{index}]"),
                };
                walk(item, &child_path, out);
            }
        }
        _ => {}
    }
}

fn check_map(labels: &Map<String, Value>, path: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in labels {
        let field = format!("{path}[{key}]");
        if let Some(message) = key_problem(key) {
            out.push((field.clone(), message));
        }
        match value {
            Value::String(v) => {
                if let Some(message) = value_problem(v) {
                    out.push((field, message));
                }
            }
            other => out.push((
                field,
                format!("label value must be a string, found {other}"),
            )),
        }
    }
}

fn check_expressions(exprs: &[Value], path: &str, out: &mut Vec<(String, String)>) {
    for (index, expr) in exprs.iter().enumerate() {
        let expr_path = format!("{path}[{index}]");
        if let Some(key) = expr.get("key").and_then(Value::as_str)
            && let Some(message) = key_problem(key)
        {
            out.push((format!("{expr_path}.key"), message));
        }
        for (i, v) in expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(message) = v.as_str().and_then(value_problem) {
                out.push((format!("{expr_path}.values[{i}]"), message));
            }
        }
    }
}

/// Why a label value is invalid, or `None`.
pub(super) fn value_problem(value: &str) -> Option<String> {
    name_part_problem("label value", value, true)
}

/// Why a label key is invalid, or `None`.
pub(super) fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Some(format!("label key \"{key}\" has more than one '/'"));
    }
    if let Some(prefix) = prefix
        && let Some(problem) = dns_problem("prefix", prefix, Rule::Subdomain)
    {
        return Some(format!("label key \"{key}\": {problem}"));
    }
    name_part_problem("name part", name, false).map(|p| format!("label key \"{key}\": {p}"))
}

/// The shared rule of label values and key names.
fn name_part_problem(what: &str, value: &str, allow_empty: bool) -> Option<String> {
    if value.is_empty() {
        return (!allow_empty).then(|| format!("{what} is empty"));
    }
    let len = value.chars().count();
    if len > 63 {
        return Some(format!(
            "{what} \"{value}\" is {len} characters; at most 63 are allowed"
        ));
    }
    if let Some((position, c)) = value
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "{what} \"{value}\": '{c}' at position {} is not allowed; use letters, digits, '-', '_' and '.'",
            position + 1
        ));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !value.starts_with(alnum) || !value.ends_with(alnum) {
        return Some(format!(
            "{what} \"{value}\" must start and end with a letter or digit"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value_problem(""), None);
        assert_eq!(value_problem("web_1.2-x"), None);
        assert_eq!(
            value_problem("-web").as_deref(),
            Some("label value \"-web\" must start and end with a letter or digit")
        );
        assert_eq!(
            value_problem("a b").as_deref(),
            Some(
                "label value \"a b\": ' ' at position 2 is not allowed; use letters, digits, '-', '_' and '.'"
            )
        );
        let long = "v".repeat(64);
        assert_eq!(
            value_problem(&long),
            Some(format!(
                "label value \"{long}\" is 64 characters; at most 63 are allowed"
            ))
        );
    }

    #[test]
    fn keys() {
        assert_eq!(key_problem("app"), None);
        assert_eq!(key_problem("app.kubernetes.io/name"), None);
        assert_eq!(
            key_problem("a/b/c").as_deref(),
            Some("label key \"a/b/c\" has more than one '/'")
        );
        assert_eq!(
            key_problem("Example.com/x").as_deref(),
            Some(
                "label key \"Example.com/x\": prefix \"Example.com\" is not a valid DNS-1123 subdomain: 'E' (uppercase) at position 1 is not allowed; use lowercase letters, digits, '-' and '.'"
            )
        );
        assert_eq!(
            key_problem("example.com/").as_deref(),
            Some("label key \"example.com/\": name part is empty")
        );
    }
}
