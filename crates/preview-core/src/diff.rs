//! Canonical hashing, server-field stripping, projection and field-level diffs of
//! JSON bodies. Pure: no IO.
//!
//! - [`canonical_json`] / [`body_hash`]: a stable text and hash of a body (object keys
//!   sorted recursively), independent of the key order a serialiser or API server used.
//! - [`strip_server_fields`]: drops what the API server owns (`status`,
//!   `metadata.resourceVersion`, `managedFields`, the client-side-apply annotation, …).
//! - [`project`] / [`projection_hash`]: the live object restricted to the fields the
//!   desired body sets. The engine records the projection hash right after apply; when
//!   neither the desired body nor that hash changed, the planner knows without a
//!   dry-run that nothing drifted, and server defaults never count as drift.
//! - [`diff`]: deterministic leaf-level [`FieldChange`]s with readable paths
//!   (`spec.template.spec.containers[name=web].image`,
//!   `metadata.labels["app.kubernetes.io/name"]`) where secret values are always
//!   replaced by [`Shown::Secret`].
//!
//! Arrays of objects are matched by a merge key (see [`MergeKey`]) so that inserting a
//! container or an env var does not show every later element as changed.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::plan::{ChangeKind, FieldChange, SecretMarker, Shown};

/// Annotation written by `kubectl apply` (client-side); it may hold a copy of a
/// Secret's data, so it is stripped before anything is compared or shown.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `metadata` fields owned by the API server.
const SERVER_METADATA_FIELDS: [&str; 8] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Serialises `value` as compact JSON with object keys sorted (recursively).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_json_string(s, out),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// Writes `s` as a JSON string literal (same escapes as `serde_json`).
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `sha256:<hex>` of [`canonical_json`] of `value`.
pub fn body_hash(value: &Value) -> String {
    format!("sha256:{}", sha256_hex(canonical_json(value).as_bytes()))
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A copy of a live object without the fields the API server owns: `status`,
/// `metadata.{resourceVersion, managedFields, generation, uid, creationTimestamp,
/// selfLink, deletionTimestamp, deletionGracePeriodSeconds}` and the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (an `annotations`
/// map left empty by that removal is removed too).
pub fn strip_server_fields(live: &Value) -> Value {
    let mut out = live.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    obj.remove("status");
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        for field in SERVER_METADATA_FIELDS {
            meta.remove(field);
        }
        let emptied = match meta.get_mut("annotations") {
            Some(Value::Object(annotations)) => {
                annotations.remove(LAST_APPLIED_ANNOTATION).is_some() && annotations.is_empty()
            }
            _ => false,
        };
        if emptied {
            meta.remove("annotations");
        }
    }
    out
}

/// The live object restricted to the fields present in `shape` (the desired body).
///
/// Objects keep only the keys `shape` has (recursively). Arrays whose elements have
/// a [`MergeKey`] keep, in live order, the live elements whose key appears in `shape`,
/// each restricted to its shape element. Other arrays are matched by index; live
/// elements beyond the shape's length are kept whole, so a changed length stays
/// visible. Scalars (and type mismatches) keep the live value.
pub fn project(live: &Value, shape: &Value) -> Value {
    match (live, shape) {
        (Value::Object(l), Value::Object(s)) => {
            let mut out = Map::new();
            for (key, shape_value) in s {
                if let Some(live_value) = l.get(key) {
                    out.insert(key.clone(), project(live_value, shape_value));
                }
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(s)) => Value::Array(project_array(l, s)),
        _ => live.clone(),
    }
}

fn project_array(live: &[Value], shape: &[Value]) -> Vec<Value> {
    if let Some(key) = MergeKey::detect(shape, live) {
        let mut by_key: HashMap<String, &Value> = HashMap::with_capacity(shape.len());
        for s in shape {
            if let Some(k) = key.value_of(s) {
                by_key.insert(k, s);
            }
        }
        return live
            .iter()
            .filter_map(|l| {
                let k = key.value_of(l)?;
                by_key.get(&k).map(|s| project(l, s))
            })
            .collect();
    }
    live.iter()
        .enumerate()
        .map(|(i, l)| match shape.get(i) {
            Some(s) => project(l, s),
            None => l.clone(),
        })
        .collect()
}

/// [`body_hash`] of the live object, stripped of server fields and projected onto
/// the desired body.
pub fn projection_hash(live: &Value, desired: &Value) -> String {
    body_hash(&project(&strip_server_fields(live), desired))
}

/// How elements of an array of objects are matched between two versions.
///
/// Candidates, in order; the first whose fields every element (on both sides) has,
/// with values unique per side, wins:
/// `name`; `mountPath` (volume mounts that share a volume name);
/// `containerPort`+`protocol`; `port`+`protocol` (a missing `protocol` counts as
/// `TCP`, the API server's default); `type` (conditions); `key`; `ip` (host aliases).
/// Arrays with none of these are compared by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKey {
    /// `name`.
    Name,
    /// `mountPath`.
    MountPath,
    /// `containerPort` + `protocol`.
    ContainerPort,
    /// `port` + `protocol`.
    Port,
    /// `type`.
    Type,
    /// `key`.
    Key,
    /// `ip`.
    Ip,
}

impl MergeKey {
    const CANDIDATES: [MergeKey; 7] = [
        MergeKey::Name,
        MergeKey::MountPath,
        MergeKey::ContainerPort,
        MergeKey::Port,
        MergeKey::Type,
        MergeKey::Key,
        MergeKey::Ip,
    ];

    fn field(self) -> &'static str {
        match self {
            MergeKey::Name => "name",
            MergeKey::MountPath => "mountPath",
            MergeKey::ContainerPort => "containerPort",
            MergeKey::Port => "port",
            MergeKey::Type => "type",
            MergeKey::Key => "key",
            MergeKey::Ip => "ip",
        }
    }

    fn has_protocol(self) -> bool {
        matches!(self, MergeKey::ContainerPort | MergeKey::Port)
    }

    /// The merge key shared by the elements of `a` and `b`, if any. `None` when either
    /// side has a non-object element or both sides are empty.
    pub fn detect(a: &[Value], b: &[Value]) -> Option<MergeKey> {
        if a.is_empty() && b.is_empty() {
            return None;
        }
        if !a.iter().chain(b).all(Value::is_object) {
            return None;
        }
        MergeKey::CANDIDATES
            .into_iter()
            .find(|key| key.applies_to(a) && key.applies_to(b))
    }

    fn applies_to(self, items: &[Value]) -> bool {
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        items
            .iter()
            .all(|item| self.value_of(item).is_some_and(|k| seen.insert(k)))
    }

    /// The element's key value, e.g. `web` or `8080,TCP`; `None` when it lacks the field.
    fn value_of(self, item: &Value) -> Option<String> {
        let v = item.get(self.field())?;
        let mut out = scalar_text(v)?;
        if self.has_protocol() {
            let protocol = item
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            out.push(',');
            out.push_str(protocol);
        }
        Some(out)
    }

    /// The path segment selecting `item`, e.g. `[name=web]` or `[port=80,protocol=TCP]`.
    fn selector(self, item: &Value) -> String {
        let v = item
            .get(self.field())
            .and_then(scalar_text)
            .unwrap_or_default();
        if self.has_protocol() {
            let protocol = item
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            format!("[{}={v},protocol={protocol}]", self.field())
        } else {
            format!("[{}={v}]", self.field())
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Field-level changes from `old` to `new`, deterministic and leaf-level.
///
/// - Object keys are walked in sorted order; map keys that are not plain identifiers
///   are quoted: `metadata.labels["app.kubernetes.io/name"]`.
/// - Arrays of objects with a [`MergeKey`] are matched by key
///   (`containers[name=web].image`): changed/added elements in new order, then removed
///   elements in old order. Arrays of scalars that differ are one change of the whole
///   array. Other arrays are compared by index (`args[0]`).
/// - A subtree that appears or disappears is one change holding the whole value,
///   unless it contains a secret, in which case it is broken down to its leaves.
/// - `is_secret` receives the RFC 6901 JSON pointer of a value (in the old and in the
///   new document); when it (or any leaf below it) is secret, both the old and the new
///   value are shown as [`Shown::Secret`]. A secret value never enters a [`FieldChange`].
pub fn diff(old: &Value, new: &Value, is_secret: &dyn Fn(&str) -> bool) -> Vec<FieldChange> {
    let mut walker = Walker {
        is_secret,
        out: Vec::new(),
    };
    let root = Location::root();
    walker.compare(&root, old, new);
    walker.out
}

/// A position in both documents: the display path and the JSON pointers.
#[derive(Clone, Debug)]
struct Location {
    path: String,
    old_ptr: String,
    new_ptr: String,
}

impl Location {
    fn root() -> Self {
        Location {
            path: String::new(),
            old_ptr: String::new(),
            new_ptr: String::new(),
        }
    }

    fn key(&self, key: &str) -> Location {
        let mut path = self.path.clone();
        push_key_segment(&mut path, key);
        let escaped = escape_pointer_token(key);
        Location {
            path,
            old_ptr: format!("{}/{escaped}", self.old_ptr),
            new_ptr: format!("{}/{escaped}", self.new_ptr),
        }
    }

    /// An array element; an element absent on one side uses the other side's pointer.
    fn element(&self, segment: &str, old_index: Option<usize>, new_index: Option<usize>) -> Self {
        let old_ptr = old_index.map(|i| format!("{}/{i}", self.old_ptr));
        let new_ptr = new_index.map(|i| format!("{}/{i}", self.new_ptr));
        let (old_ptr, new_ptr) = match (old_ptr, new_ptr) {
            (Some(o), Some(n)) => (o, n),
            (Some(o), None) => (o.clone(), o),
            (None, Some(n)) => (n.clone(), n),
            (None, None) => (self.old_ptr.clone(), self.new_ptr.clone()),
        };
        Location {
            path: format!("{}{segment}", self.path),
            old_ptr,
            new_ptr,
        }
    }

    fn display_path(&self) -> String {
        if self.path.is_empty() {
            ".".to_owned()
        } else {
            self.path.clone()
        }
    }
}

fn push_key_segment(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        write_json_string(key, path);
        path.push(']');
    }
}

/// Escapes one RFC 6901 reference token.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

struct Walker<'a> {
    is_secret: &'a dyn Fn(&str) -> bool,
    out: Vec<FieldChange>,
}

impl Walker<'_> {
    fn secret_at(&self, ptr: &str) -> bool {
        (self.is_secret)(ptr)
    }

    /// True when `value` at `ptr`, or any value below it, is secret.
    fn contains_secret(&self, ptr: &str, value: &Value) -> bool {
        if self.secret_at(ptr) {
            return true;
        }
        match value {
            Value::Object(map) => map.iter().any(|(k, v)| {
                self.contains_secret(&format!("{ptr}/{}", escape_pointer_token(k)), v)
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .any(|(i, v)| self.contains_secret(&format!("{ptr}/{i}"), v)),
            _ => false,
        }
    }

    fn contains_secret_items(&self, ptr: &str, items: &[Value]) -> bool {
        self.secret_at(ptr)
            || items
                .iter()
                .enumerate()
                .any(|(i, v)| self.contains_secret(&format!("{ptr}/{i}"), v))
    }

    fn shown(&self, ptr: &str, value: &Value) -> Shown {
        if self.contains_secret(ptr, value) {
            Shown::Secret(SecretMarker)
        } else {
            Shown::Value(value.clone())
        }
    }

    fn compare(&mut self, at: &Location, old: &Value, new: &Value) {
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let child = at.key(key);
                    match (o.get(key), n.get(key)) {
                        (Some(ov), Some(nv)) => self.compare(&child, ov, nv),
                        (Some(ov), None) => self.whole(&child, ChangeKind::Removed, ov),
                        (None, Some(nv)) => self.whole(&child, ChangeKind::Added, nv),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(o), Value::Array(n)) => self.compare_arrays(at, o, n),
            _ => {
                if old != new {
                    let secret = self.contains_secret(&at.old_ptr, old)
                        || self.contains_secret(&at.new_ptr, new);
                    let show = |v: &Value| {
                        if secret {
                            Shown::Secret(SecretMarker)
                        } else {
                            Shown::Value(v.clone())
                        }
                    };
                    self.out.push(FieldChange {
                        path: at.display_path(),
                        kind: ChangeKind::Changed,
                        old: Some(show(old)),
                        new: Some(show(new)),
                    });
                }
            }
        }
    }

    fn compare_arrays(&mut self, at: &Location, old: &[Value], new: &[Value]) {
        if old == new {
            return;
        }
        if let Some(key) = MergeKey::detect(old, new) {
            let old_index: HashMap<String, usize> = old
                .iter()
                .enumerate()
                .filter_map(|(i, v)| key.value_of(v).map(|k| (k, i)))
                .collect();
            let mut matched = vec![false; old.len()];
            for (ni, nv) in new.iter().enumerate() {
                let found = key.value_of(nv).and_then(|k| old_index.get(&k).copied());
                let segment = key.selector(nv);
                match found {
                    Some(oi) => {
                        matched[oi] = true;
                        let child = at.element(&segment, Some(oi), Some(ni));
                        self.compare(&child, &old[oi], nv);
                    }
                    None => {
                        let child = at.element(&segment, None, Some(ni));
                        self.whole(&child, ChangeKind::Added, nv);
                    }
                }
            }
            for (oi, ov) in old.iter().enumerate() {
                if !matched[oi] {
                    let child = at.element(&key.selector(ov), Some(oi), None);
                    self.whole(&child, ChangeKind::Removed, ov);
                }
            }
            return;
        }
        let all_scalars = old
            .iter()
            .chain(new)
            .all(|v| !v.is_object() && !v.is_array());
        if all_scalars {
            let secret = self.contains_secret_items(&at.old_ptr, old)
                || self.contains_secret_items(&at.new_ptr, new);
            let show = |v: &[Value]| {
                if secret {
                    Shown::Secret(SecretMarker)
                } else {
                    Shown::Value(Value::Array(v.to_vec()))
                }
            };
            self.out.push(FieldChange {
                path: at.display_path(),
                kind: ChangeKind::Changed,
                old: Some(show(old)),
                new: Some(show(new)),
            });
            return;
        }
        for i in 0..old.len().max(new.len()) {
            let segment = format!("[{i}]");
            match (old.get(i), new.get(i)) {
                (Some(ov), Some(nv)) => {
                    let child = at.element(&segment, Some(i), Some(i));
                    self.compare(&child, ov, nv);
                }
                (Some(ov), None) => {
                    let child = at.element(&segment, Some(i), None);
                    self.whole(&child, ChangeKind::Removed, ov);
                }
                (None, Some(nv)) => {
                    let child = at.element(&segment, None, Some(i));
                    self.whole(&child, ChangeKind::Added, nv);
                }
                (None, None) => {}
            }
        }
    }

    /// A subtree that exists on one side only: one change, or one per leaf when the
    /// subtree holds a secret (so the other keys stay readable and none leaks).
    fn whole(&mut self, at: &Location, kind: ChangeKind, value: &Value) {
        let ptr = match kind {
            ChangeKind::Removed => &at.old_ptr,
            _ => &at.new_ptr,
        };
        let breakable = match value {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if breakable && self.contains_secret(ptr, value) {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for key in keys {
                        if let Some(v) = map.get(key) {
                            self.whole(&at.key(key), kind, v);
                        }
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        let child = match kind {
                            ChangeKind::Removed => at.element(&format!("[{i}]"), Some(i), None),
                            _ => at.element(&format!("[{i}]"), None, Some(i)),
                        };
                        self.whole(&child, kind, v);
                    }
                }
                _ => {}
            }
            return;
        }
        let shown = self.shown(ptr, value);
        let (old, new) = match kind {
            ChangeKind::Removed => (Some(shown), None),
            _ => (None, Some(shown)),
        };
        self.out.push(FieldChange {
            path: at.display_path(),
            kind,
            old,
            new,
        });
    }
}

#[cfg(test)]
mod tests;
