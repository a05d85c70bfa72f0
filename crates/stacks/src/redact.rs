//! Secret values in rendered manifests (`stacks render`).
//!
//! A rendered manifest shows every value at a secret path of its resource —
//! `data` and `stringData` of a `Secret`, and the resource's own
//! `secret_paths` ([`preview_core::Resource::is_secret_path`]) — as
//! [`REDACTED`], unless the caller asks for the values (`--include-secrets`).
//! Keys stay visible, so a reviewer sees which secrets exist. Pure: the caller
//! writes the result and says on stderr what it did.

use preview_core::Resource;
use serde_json::Value;

/// What a rendered secret value is replaced with.
pub const REDACTED: &str = "<redacted: use --include-secrets>";

/// A resource's body as rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The body, secret values replaced unless they were asked for.
    pub body: Value,
    /// True when the resource has a value at a secret path (whether or not it
    /// was redacted): with the values included, the file must be private.
    pub holds_secrets: bool,
}

/// `resource`'s body with every secret value replaced by [`REDACTED`], or
/// untouched when `include_secrets`.
pub fn render(resource: &Resource, include_secrets: bool) -> Rendered {
    let mut body = resource.body.clone();
    let mut holds_secrets = false;
    walk(
        resource,
        &mut body,
        &mut String::new(),
        &mut |value: &mut Value| {
            holds_secrets = true;
            if !include_secrets {
                *value = Value::from(REDACTED);
            }
        },
    );
    Rendered {
        body,
        holds_secrets,
    }
}

/// Every value at a secret path of `resource`, as text: what must never be
/// shown (a failure digest redacts them from log lines and messages). A
/// Secret's `data` values are given decoded as well as in base64.
pub fn secret_values(resource: &Resource) -> Vec<String> {
    use base64::Engine as _;
    let mut body = resource.body.clone();
    let mut values = Vec::new();
    let is_secret = resource.id.is("", "Secret");
    walk(
        resource,
        &mut body,
        &mut String::new(),
        &mut |value: &mut Value| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if is_secret
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.as_bytes())
                && let Ok(decoded) = String::from_utf8(bytes)
            {
                values.push(decoded);
            }
            values.push(text);
        },
    );
    values
}

/// Calls `secret` on every leaf (not an object or array) at a secret path.
fn walk(
    resource: &Resource,
    value: &mut Value,
    path: &mut String,
    secret: &mut dyn FnMut(&mut Value),
) {
    let len = path.len();
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(resource, child, path, secret);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push('/');
                path.push_str(&i.to_string());
                walk(resource, child, path, secret);
                path.truncate(len);
            }
        }
        Value::Null => {}
        leaf => {
            if resource.is_secret_path(path) {
                secret(leaf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::ResourceOptions;
    use serde_json::json;

    fn secret() -> Resource {
        Resource::kubernetes(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n", "labels": {"a": "b"}},
            "type": "Opaque",
            "data": {"DB_PASSWORD": "Y2FuYXJ5"},
            "stringData": {"TOKEN": "canary"},
        }))
        .expect("valid")
    }

    #[test]
    fn secret_values_are_redacted_keys_and_metadata_stay() {
        let out = render(&secret(), false);
        assert!(out.holds_secrets);
        assert_eq!(out.body["data"], json!({"DB_PASSWORD": REDACTED}));
        assert_eq!(out.body["stringData"], json!({"TOKEN": REDACTED}));
        assert_eq!(out.body["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(out.body["type"], "Opaque");
        let text = out.body.to_string();
        assert!(
            !text.contains("Y2FuYXJ5") && !text.contains("canary"),
            "{text}"
        );
    }

    #[test]
    fn secret_values_decoded_and_raw() {
        let mut values = secret_values(&secret());
        values.sort();
        assert_eq!(values, ["Y2FuYXJ5", "canary", "canary"]);
    }

    #[test]
    fn included_on_request() {
        let out = render(&secret(), true);
        assert!(out.holds_secrets);
        assert_eq!(out.body, secret().body);
    }

    #[test]
    fn other_objects_are_untouched_unless_they_declare_secret_paths() {
        let cm = Resource::kubernetes(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n"},
            "data": {"DB_HOST": "db"},
        }))
        .expect("valid");
        let out = render(&cm, false);
        assert!(!out.holds_secrets);
        assert_eq!(out.body, cm.body);
        let sealed = cm.with_options(ResourceOptions {
            secret_paths: vec!["/data/DB_HOST".to_owned()],
            ..ResourceOptions::default()
        });
        let out = render(&sealed, false);
        assert!(out.holds_secrets);
        assert_eq!(out.body["data"]["DB_HOST"], REDACTED);
        let empty = Resource::kubernetes(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "e", "namespace": "n"},
        }))
        .expect("valid");
        assert!(!render(&empty, false).holds_secrets);
    }
}
