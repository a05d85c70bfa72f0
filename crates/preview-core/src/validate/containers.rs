//! Cheap container checks the API server would reject with a less helpful
//! message: container (and init container) names unique within a pod, container
//! port names valid IANA service names (at most 15 characters of lowercase
//! letters, digits and `-`, at least one letter, no leading, trailing or
//! doubled `-`), and a Service's named `targetPort`s following the same rule.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::resource::Resource;

use super::Problem;
use super::pods::{containers, pod_spec};

/// Checks container names and port names.
pub(super) fn check(resource: &Resource, out: &mut Vec<Problem>) {
    if resource.id.is("", "Service") {
        for (index, port) in list(&resource.body, "/spec/ports").iter().enumerate() {
            if let Some(name) = port.get("targetPort").and_then(Value::as_str)
                && let Some(message) = port_name_problem(name)
            {
                out.push(Problem::new(
                    &resource.id,
                    format!("spec.ports[{index}].targetPort"),
                    message,
                ));
            }
        }
    }
    let Some(pod) = pod_spec(resource) else {
        return;
    };
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for container in containers(&pod) {
        if let Some(name) = container.value.get("name").and_then(Value::as_str) {
            let field = format!("{}.name", container.path);
            match seen.get(name) {
                Some(first) => out.push(Problem::new(
                    &resource.id,
                    field,
                    format!("container name \"{name}\" is already used by {first}"),
                )),
                None => {
                    seen.insert(name, container.path.clone());
                }
            }
        }
        for (index, port) in list(container.value, "/ports").iter().enumerate() {
            if let Some(name) = port.get("name").and_then(Value::as_str)
                && let Some(message) = port_name_problem(name)
            {
                out.push(Problem::new(
                    &resource.id,
                    format!("{}.ports[{index}].name", container.path),
                    message,
                ));
            }
        }
    }
}

fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Why `name` is not a valid IANA service name (port name), or `None`.
pub(super) fn port_name_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if len > 15 {
        return Some(format!(
            "port name \"{name}\" is {len} characters; a port name allows at most 15"
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some(format!(
            "port name \"{name}\" may only contain lowercase letters, digits and '-'"
        ));
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Some(format!(
            "port name \"{name}\" must contain at least one letter"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Some(format!(
            "port name \"{name}\" may not start or end with '-' or contain \"--\""
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names() {
        assert_eq!(port_name_problem("http"), None);
        assert_eq!(port_name_problem("php-fpm-metrics"), None);
        assert_eq!(
            port_name_problem("php-fpm-metrics-x").as_deref(),
            Some("port name \"php-fpm-metrics-x\" is 17 characters; a port name allows at most 15")
        );
        assert!(port_name_problem("HTTP").is_some());
        assert!(port_name_problem("8080").is_some());
        assert!(port_name_problem("a--b").is_some());
    }
}
