//! Values one resource reads from another resource's live object (`dataFrom`,
//! e.g. a DNS record's address from the Gateway's `/status/addresses/0/value`),
//! resolved by the engine. Pure: no IO.
//!
//! A provider declares where its bodies hold such references
//! ([`crate::provider::Provider::values_from`]): a [`ValueFrom`] names the
//! reference in the body (`/dataFrom`), the field that receives the value
//! (`/data`), the source resource and a JSON pointer into its live object. The
//! engine attaches the declarations to the graph
//! ([`crate::graph::DesiredGraph::with_values_from`]); a source that is part of
//! the stack must be a dependency, so the dependent is applied after it is ready.
//!
//! The **resolved** body is the desired body with each reference removed and its
//! field set to the value, so the provider only ever sees a literal body, and the
//! state records the hashes of the resolved body (a changed source value is a
//! changed desired body). When the planner comes to a resource with references
//! ([`crate::planner`]):
//!
//! - every source is unchanged by the plan (its step is a no-op, or it is not part
//!   of the stack and exists) and its observed object has the value → the resource
//!   is planned with the resolved body like any other ([`Resolution::Known`]);
//! - otherwise (a source is created or changed in this plan, or has no value yet)
//!   → the value is known only after apply ([`Resolution::Unknown`]): the step
//!   shows the field as `(known after apply)` ([`crate::plan::Shown::KnownAfterApply`]),
//!   and apply reads it from the source's ready object (or reads the source again
//!   when this run did not apply it) before the resource is applied.
//!
//! **Records made before the engine resolved values** hashed the body holding the
//! reference. Such a record ([`legacy_in_sync`]: its desired hash is the hash of
//! the unresolved body) whose live object has the value the source has now is
//! unchanged: the plan is a no-op (no dry-run), and the run records the new hashes.

use serde_json::{Map, Value};

use crate::resource::{Resource, ResourceId};
use crate::state::ResourceRecord;
use crate::state::auth::RecordHasher;

/// One field of a resource's body whose value is read from another resource's
/// live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueFrom {
    /// JSON pointer of the reference in the body (`/dataFrom`), removed from the
    /// resolved body.
    pub reference: String,
    /// JSON pointer of the field that receives the value (`/data`).
    pub field: String,
    /// The resource whose live object holds the value.
    pub source: ResourceId,
    /// JSON pointer (RFC 6901) into the source's live object, e.g.
    /// `/status/addresses/0/value`.
    pub path: String,
}

impl ValueFrom {
    /// `field dataFrom (Gateway nginx-gateway/preview-gateway /status/addresses/0/value)`.
    pub fn describe(&self) -> String {
        format!(
            "field {} ({} {})",
            dotted(&self.reference),
            self.source,
            self.path
        )
    }

    /// The value at [`ValueFrom::path`] of the source's live object: present, not
    /// null and not an empty string; the error names the reference, the source
    /// and the path.
    pub fn read(&self, live: &Value) -> Result<Value, String> {
        match live.pointer(&self.path) {
            Some(Value::Null) | None => Err(self.no_value()),
            Some(Value::String(s)) if s.is_empty() => Err(self.no_value()),
            Some(value) => Ok(value.clone()),
        }
    }

    /// The error for a source that does not exist.
    pub fn missing_source(&self) -> String {
        format!(
            "field {}: {} does not exist",
            dotted(&self.reference),
            self.source
        )
    }

    fn no_value(&self) -> String {
        format!(
            "field {}: {} has no value at {} yet",
            dotted(&self.reference),
            self.source,
            self.path
        )
    }
}

/// A JSON pointer as the dotted path of a plan's field changes (`/a/b` → `a.b`).
pub fn dotted(pointer: &str) -> String {
    segments(pointer).collect::<Vec<_>>().join(".")
}

fn segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}

/// How the planner sees a resource with references.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    /// Every value is known: the resolved resource.
    Known(Resource),
    /// Some values are known only after apply.
    Unknown {
        /// The resource with the known values set and the unknown references
        /// still in place (what apply resolves).
        partial: Resource,
        /// The references whose value is known only after apply.
        unknown: Vec<ValueFrom>,
    },
}

/// `res` with `values` set: each reference removed and its field set.
pub fn resolved(res: &Resource, values: &[(&ValueFrom, Value)]) -> Resource {
    let mut out = res.clone();
    for (from, value) in values {
        remove_at(&mut out.body, &from.reference);
        set_at(&mut out.body, &from.field, value.clone());
    }
    out
}

/// `partial`'s body with each unknown field set to `placeholder` (for the
/// plan's diff), references removed.
pub fn with_placeholders(partial: &Resource, unknown: &[ValueFrom], placeholder: &Value) -> Value {
    let values: Vec<(&ValueFrom, Value)> =
        unknown.iter().map(|u| (u, placeholder.clone())).collect();
    resolved(partial, &values).body
}

/// True when `record` was made before the engine resolved values (its desired
/// hash is `unresolved`'s) and the live object has what `resolved` says now:
/// the resource is unchanged.
pub fn legacy_in_sync(
    record: &ResourceRecord,
    unresolved: &Resource,
    resolved: &Resource,
    live: &Value,
    hasher: &RecordHasher,
) -> bool {
    record.desired_hash == hasher.desired_hash(unresolved)
        && hasher.live_hash(live, resolved) == hasher.desired_hash(resolved)
}

fn remove_at(body: &mut Value, pointer: &str) {
    let parts: Vec<String> = segments(pointer).collect();
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let mut current = body;
    for part in parents {
        match current.get_mut(part.as_str()) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
}

fn set_at(body: &mut Value, pointer: &str, value: Value) {
    let parts: Vec<String> = segments(pointer).collect();
    let Some((last, parents)) = parts.split_last() else {
        *body = value;
        return;
    };
    let mut current = body;
    for part in parents {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        current = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    if let Some(map) = current.as_object_mut() {
        map.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from() -> ValueFrom {
        ValueFrom {
            reference: "/dataFrom".into(),
            field: "/data".into(),
            source: ResourceId::kubernetes(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                Some("nginx-gateway"),
                "preview-gateway",
            ),
            path: "/status/addresses/0/value".into(),
        }
    }

    #[test]
    fn reads_name_the_reference_the_source_and_the_path() {
        let f = from();
        let live = json!({"status": {"addresses": [{"value": "10.0.0.1"}]}});
        assert_eq!(f.read(&live), Ok(json!("10.0.0.1")));
        for empty in [json!({}), json!({"status": {"addresses": [{"value": ""}]}})] {
            assert_eq!(
                f.read(&empty),
                Err("field dataFrom: Gateway nginx-gateway/preview-gateway has no value at /status/addresses/0/value yet".into())
            );
        }
        assert_eq!(
            f.describe(),
            "field dataFrom (Gateway nginx-gateway/preview-gateway /status/addresses/0/value)"
        );
        assert_eq!(dotted("/spec/a~1b"), "spec.a/b");
    }

    #[test]
    fn resolved_bodies_hold_the_value_instead_of_the_reference() {
        let f = from();
        let res = Resource {
            id: ResourceId::kubernetes("v1", "ConfigMap", None, "x"),
            body: json!({"ttl": 300, "dataFrom": {"kind": "Gateway"}}),
            depends_on: Default::default(),
            options: Default::default(),
        };
        assert_eq!(
            resolved(&res, &[(&f, json!("10.0.0.1"))]).body,
            json!({"ttl": 300, "data": "10.0.0.1"})
        );
        let nested = ValueFrom {
            reference: "/spec/addressFrom".into(),
            field: "/spec/address/ip".into(),
            ..f
        };
        let res = Resource {
            body: json!({"spec": {"addressFrom": {}}}),
            ..res
        };
        assert_eq!(
            with_placeholders(&res, &[nested], &json!("?")),
            json!({"spec": {"address": {"ip": "?"}}})
        );
    }
}
