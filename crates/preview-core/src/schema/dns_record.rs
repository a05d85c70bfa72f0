//! The `DomainRecord` resource as plain data (no IO): its identity, its desired
//! body, the ownership marker, and the live value the provider reports.
//!
//! Identity: `ResourceId { provider: digitalocean, apiVersion: dns.digitalocean.com/v1,
//! kind: DomainRecord, namespace: <zone>, name: "<TYPE>:<name>" }`, e.g.
//! `digitalocean DomainRecord aphiria.com/A:*.pr`. A record is identified by its
//! type and its name relative to the zone; the engine manages exactly one record
//! per (type, name).
//!
//! Desired body (built by `components::DnsRecord`):
//!
//! ```yaml
//! apiVersion: dns.digitalocean.com/v1
//! kind: DomainRecord
//! metadata:
//!   name: "A:*.pr"
//!   namespace: aphiria.com
//!   labels: {preview-envs.io/stack: preview-base}   # the owning stack
//! domain: aphiria.com
//! type: A
//! name: "*.pr"
//! ttl: 300
//! data: 203.0.113.10            # either a literal …
//! dataFrom:                     # … or a field of a cluster object, read by the engine
//!   apiVersion: gateway.networking.k8s.io/v1
//!   kind: Gateway
//!   namespace: nginx-gateway
//!   name: preview-gateway
//!   path: /status/addresses/0/value
//! ```
//!
//! A `dataFrom` is resolved by the engine ([`crate::values`]; the provider
//! declares it with [`DataFrom::value_from`]): the provider is handed the body
//! with `data` set to the object's value and `dataFrom` removed, which is the
//! body of a literal record.
//!
//! Ownership marker: DigitalOcean records carry no labels, so each managed record
//! has a companion TXT record named [`OWNER_RECORD_NAME`] in the same zone whose
//! data is [`marker_text`] (`heritage=preview-envs,preview-envs/stack=<stack>,
//! preview-envs/record=<TYPE> <name>`), like external-dns' TXT registry. All
//! markers share one name outside the preview subdomains, so they never answer for
//! a preview host.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::resource::{ProviderName, Resource, ResourceId, STACK_LABEL};
use crate::values::ValueFrom;

/// `apiVersion` of DigitalOcean DNS records.
pub const API_VERSION: &str = "dns.digitalocean.com/v1";
/// `kind` of DigitalOcean DNS records.
pub const KIND: &str = "DomainRecord";
/// Name (relative to the zone) of the TXT records that mark ownership.
pub const OWNER_RECORD_NAME: &str = "_preview-envs";
/// TTL of the ownership TXT records.
pub const OWNER_RECORD_TTL: i64 = 3600;
/// `heritage` value of the ownership TXT records.
const HERITAGE: &str = "preview-envs";

/// Record types the provider manages (those whose `data` alone describes them).
pub const SUPPORTED_TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT"];

/// Which record: zone, type and name relative to the zone (`@` for the apex).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordKey {
    /// The zone, e.g. `aphiria.com`.
    pub domain: String,
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    pub record_type: String,
    /// Name relative to the zone, e.g. `*.pr` or `@`.
    pub name: String,
}

impl RecordKey {
    /// A key.
    pub fn new(
        domain: impl Into<String>,
        record_type: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        RecordKey {
            domain: domain.into(),
            record_type: record_type.into(),
            name: name.into(),
        }
    }

    /// The resource id (`digitalocean DomainRecord <zone>/<TYPE>:<name>`).
    pub fn id(&self) -> ResourceId {
        ResourceId {
            provider: ProviderName::DIGITALOCEAN,
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            namespace: Some(self.domain.clone()),
            name: format!("{}:{}", self.record_type, self.name),
        }
    }

    /// The key of a `DomainRecord` id.
    pub fn from_id(id: &ResourceId) -> Result<Self, String> {
        if id.provider != ProviderName::DIGITALOCEAN || id.kind != KIND {
            return Err(format!(
                "the DigitalOcean provider manages {KIND} resources, not {} {}",
                id.provider, id.kind
            ));
        }
        let domain = id
            .namespace
            .clone()
            .ok_or_else(|| "a DomainRecord id needs the zone as its namespace".to_owned())?;
        let (record_type, name) = id.name.split_once(':').ok_or_else(|| {
            format!(
                "DomainRecord name {:?} must be <TYPE>:<name>, e.g. A:*.pr",
                id.name
            )
        })?;
        let key = RecordKey::new(domain, record_type, name);
        key.check()?;
        Ok(key)
    }

    /// Checks the parts (zone is a DNS name, type supported, name relative).
    pub fn check(&self) -> Result<(), String> {
        check_domain(&self.domain)?;
        if !SUPPORTED_TYPES.contains(&self.record_type.as_str()) {
            return Err(format!(
                "record type {:?} is not supported (supported: {})",
                self.record_type,
                SUPPORTED_TYPES.join(", ")
            ));
        }
        check_relative_name(&self.name, &self.domain)
    }

    /// The fully qualified name (`*.pr.aphiria.com`; the zone for `@`), which the
    /// list filter `name` expects.
    pub fn fqdn(&self) -> String {
        fqdn(&self.name, &self.domain)
    }

    /// `<TYPE> <name>`, as written in the ownership marker.
    pub fn marker_record(&self) -> String {
        format!("{} {}", self.record_type, self.name)
    }
}

/// The fully qualified form of `name` in `domain`.
pub fn fqdn(name: &str, domain: &str) -> String {
    if name == "@" {
        domain.to_owned()
    } else {
        format!("{name}.{domain}")
    }
}

/// The data of the ownership TXT record for `key` owned by `stack`.
pub fn marker_text(key: &RecordKey, stack: &str) -> String {
    format!(
        "heritage={HERITAGE},preview-envs/stack={stack},preview-envs/record={}",
        key.marker_record()
    )
}

/// `(stack, "<TYPE> <name>")` from the data of an ownership TXT record; `None` for
/// TXT data that is not a preview-envs marker. Surrounding quotes are ignored.
pub fn parse_marker(text: &str) -> Option<(String, String)> {
    let text = text.trim().trim_matches('"');
    let mut heritage = None;
    let mut stack = None;
    let mut record = None;
    for part in text.split(',') {
        let (key, value) = part.split_once('=')?;
        match key.trim() {
            "heritage" => heritage = Some(value.trim()),
            "preview-envs/stack" => stack = Some(value.trim()),
            "preview-envs/record" => record = Some(value.trim()),
            _ => {}
        }
    }
    match (heritage, stack, record) {
        (Some(HERITAGE), Some(stack), Some(record)) if !stack.is_empty() => {
            Some((stack.to_owned(), record.to_owned()))
        }
        _ => None,
    }
}

/// Where a record's `data` comes from: a string field of a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFrom {
    /// The object's `apiVersion`.
    pub api_version: String,
    /// The object's `kind`.
    pub kind: String,
    /// The object's namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// JSON pointer (RFC 6901) to the value, e.g. `/status/addresses/0/value`.
    pub path: String,
}

impl DataFrom {
    /// The object's resource id.
    pub fn object_id(&self) -> ResourceId {
        ResourceId::kubernetes(
            self.api_version.clone(),
            self.kind.clone(),
            self.namespace.as_deref(),
            self.name.clone(),
        )
    }

    /// The body form (`dataFrom:`).
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
        });
        if let Some(ns) = &self.namespace {
            value["namespace"] = json!(ns);
        }
        value
    }

    /// Checks the body form ([`DataFromBody`]); errors name the field.
    fn from_body(body: DataFromBody) -> Result<Self, String> {
        let text = |key: &str, value: Option<String>| -> Result<String, String> {
            value
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("field dataFrom.{key} is missing or not a string"))
        };
        let from = DataFrom {
            api_version: text("apiVersion", body.api_version)?,
            kind: text("kind", body.kind)?,
            namespace: body.namespace,
            name: text("name", body.name)?,
            path: text("path", body.path)?,
        };
        if !from.path.starts_with('/') {
            return Err(format!(
                "field dataFrom.path {:?} must be a JSON pointer such as /status/addresses/0/value",
                from.path
            ));
        }
        Ok(from)
    }

    /// `Gateway nginx-gateway/preview-gateway`, for messages.
    pub fn describe(&self) -> String {
        self.object_id().to_string()
    }

    /// The engine's form: the value goes into `data`, replacing `dataFrom`.
    pub fn value_from(&self) -> ValueFrom {
        ValueFrom {
            reference: "/dataFrom".to_owned(),
            field: "/data".to_owned(),
            source: self.object_id(),
            path: self.path.clone(),
        }
    }
}

/// A record's data: literal, or read from a cluster object by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// The value itself.
    Literal(String),
    /// A field of a Kubernetes object.
    From(DataFrom),
}

/// The desired state of one record, parsed from a resource body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRecord {
    /// Which record.
    pub key: RecordKey,
    /// TTL in seconds.
    pub ttl: i64,
    /// The data.
    pub data: RecordData,
    /// The owning stack (`metadata.labels["preview-envs.io/stack"]`).
    pub owner: String,
}

impl DesiredRecord {
    /// The resource body (the format in the module docs).
    pub fn body(&self) -> Value {
        let mut body = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": self.key.id().name,
                "namespace": self.key.domain,
                "labels": { STACK_LABEL: self.owner },
            },
            "domain": self.key.domain,
            "type": self.key.record_type,
            "name": self.key.name,
            "ttl": self.ttl,
        });
        match &self.data {
            RecordData::Literal(data) => body["data"] = json!(data),
            RecordData::From(from) => body["dataFrom"] = from.to_json(),
        }
        body
    }

    /// Parses and checks a `DomainRecord` resource (its typed body,
    /// [`RecordBody`]); errors name the field.
    pub fn from_resource(res: &Resource) -> Result<Self, String> {
        let key = RecordKey::from_id(&res.id)?;
        let body: RecordBody = serde_json::from_value(res.body.clone())
            .map_err(|e| format!("DomainRecord body: {e}"))?;
        for (field, value, expected) in [
            ("domain", &body.domain, key.domain.as_str()),
            ("type", &body.record_type, key.record_type.as_str()),
            ("name", &body.name, key.name.as_str()),
        ] {
            if value.as_deref() != Some(expected) {
                return Err(format!(
                    "field {field} must be {expected:?} (the resource id {} says so)",
                    res.id
                ));
            }
        }
        let ttl = body
            .ttl
            .ok_or_else(|| "field ttl is missing or not an integer".to_owned())?;
        if ttl < 30 {
            return Err(format!(
                "field ttl is {ttl}; DigitalOcean accepts at least 30 seconds"
            ));
        }
        let data = match (body.data, body.data_from) {
            (Some(Value::String(data)), None) => {
                check_data(&key.record_type, &data).map_err(|m| format!("field data: {m}"))?;
                RecordData::Literal(data)
            }
            (None, Some(from)) => RecordData::From(DataFrom::from_body(from)?),
            (Some(_), Some(_)) => {
                return Err("fields data and dataFrom are exclusive; set one".to_owned());
            }
            (Some(_), None) => return Err("field data must be a string".to_owned()),
            (None, None) => return Err("set field data or dataFrom".to_owned()),
        };
        let owner = body
            .metadata
            .labels
            .get(STACK_LABEL)
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| {
                format!("field metadata.labels[\"{STACK_LABEL}\"] (the owning stack) is missing")
            })?;
        Ok(DesiredRecord {
            key,
            ttl,
            data,
            owner,
        })
    }
}

/// The fields of a `DomainRecord` body (the format in the module docs), as
/// read; [`DesiredRecord::from_resource`] checks them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordBody {
    /// Name, zone and the owning stack's label.
    #[serde(default)]
    pub metadata: RecordMetadata,
    /// The zone.
    #[serde(default)]
    pub domain: Option<String>,
    /// The record type.
    #[serde(default, rename = "type")]
    pub record_type: Option<String>,
    /// The name relative to the zone.
    #[serde(default)]
    pub name: Option<String>,
    /// TTL in seconds.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// A literal value (checked to be a string).
    #[serde(default)]
    pub data: Option<Value>,
    /// Where the value comes from.
    #[serde(default)]
    pub data_from: Option<DataFromBody>,
}

/// `metadata` of a `DomainRecord` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RecordMetadata {
    /// Labels (the owning stack's, [`STACK_LABEL`]).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The `dataFrom` of a `DomainRecord` body, as read ([`DataFrom`] checked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFromBody {
    /// The object's `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The object's `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object's name.
    #[serde(default)]
    pub name: Option<String>,
    /// JSON pointer to the value.
    #[serde(default)]
    pub path: Option<String>,
}

/// Checks that `data` suits a record of `record_type`.
pub fn check_data(record_type: &str, data: &str) -> Result<(), String> {
    let ok = match record_type {
        "A" => data.parse::<std::net::Ipv4Addr>().is_ok(),
        "AAAA" => data.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => !data.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        let expected = match record_type {
            "A" => "an IPv4 address",
            "AAAA" => "an IPv6 address",
            _ => "a non-empty value",
        };
        Err(format!(
            "{data:?} is not {expected} (record type {record_type})"
        ))
    }
}

/// The observed record as the planner sees it: the desired body's shape with the
/// live `data`/`ttl`, the owning stack (from the marker) as the stack label, and
/// the DigitalOcean record id as `metadata.uid`.
pub fn live_value(
    key: &RecordKey,
    record_id: Option<u64>,
    data: &str,
    ttl: i64,
    owner: Option<&str>,
) -> Value {
    let labels = match owner {
        Some(owner) => json!({ STACK_LABEL: owner }),
        None => json!({}),
    };
    let mut metadata = json!({
        "name": key.id().name,
        "namespace": key.domain,
        "labels": labels,
    });
    if let Some(id) = record_id {
        metadata["uid"] = json!(id.to_string());
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "domain": key.domain,
        "type": key.record_type,
        "name": key.name,
        "ttl": ttl,
        "data": data,
    })
}

fn check_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A lowercase DNS name with at least two labels.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.len() <= 253 && domain.contains('.') && domain.split('.').all(check_label) {
        Ok(())
    } else {
        Err(format!(
            "zone {domain:?} is not a lowercase DNS name such as aphiria.com"
        ))
    }
}

/// A record name relative to `domain`: `@`, or labels with an optional leading `*`.
pub fn check_relative_name(name: &str, domain: &str) -> Result<(), String> {
    if name == "@" {
        return Ok(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let valid = labels
        .iter()
        .enumerate()
        .all(|(i, label)| (i == 0 && *label == "*") || check_label(label));
    if !valid {
        return Err(format!(
            "record name {name:?} must be `@` or lowercase DNS labels relative to the zone, optionally starting with `*.` (e.g. `*.pr`)"
        ));
    }
    if name == domain || name.ends_with(&format!(".{domain}")) {
        return Err(format!(
            "record name {name:?} must be relative to the zone {domain} (e.g. `*.pr`, not `*.pr.{domain}`)"
        ));
    }
    let full = fqdn(name, domain);
    if full.len() > 253 {
        return Err(format!(
            "record name {name:?} makes {full:?}, longer than 253 characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::resource::ResourceOptions;

    fn resource(body: Value) -> Resource {
        Resource {
            id: RecordKey::new("example.com", "A", "*.pr").id(),
            body,
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        }
    }

    fn body(data: Value) -> Value {
        let mut body = json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "A:*.pr", "namespace": "example.com",
                "labels": {STACK_LABEL: "preview-base"}},
            "domain": "example.com", "type": "A", "name": "*.pr", "ttl": 300,
        });
        if let Value::Object(extra) = data {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        body
    }

    #[test]
    fn ids_round_trip_and_are_checked() {
        let key = RecordKey::new("example.com", "A", "*.pr");
        let id = key.id();
        assert_eq!(
            id.to_string(),
            "digitalocean DomainRecord example.com/A:*.pr"
        );
        assert_eq!(RecordKey::from_id(&id), Ok(key.clone()));
        assert_eq!(key.fqdn(), "*.pr.example.com");
        assert_eq!(
            RecordKey::new("example.com", "A", "@").fqdn(),
            "example.com"
        );
        for (bad, expected) in [
            (RecordKey::new("example.com", "MX", "x"), "not supported"),
            (RecordKey::new("Example.com", "A", "x"), "zone"),
            (RecordKey::new("example.com", "A", "a.*"), "must be `@`"),
            (
                RecordKey::new("example.com", "A", "*.pr.example.com"),
                "relative to the zone",
            ),
        ] {
            let err = RecordKey::from_id(&bad.id()).expect_err("invalid");
            assert!(err.contains(expected), "{err}");
        }
        let mut other = id.clone();
        other.name = "no-type".into();
        assert!(
            RecordKey::from_id(&other)
                .expect_err("no type")
                .contains("<TYPE>:<name>")
        );
    }

    #[test]
    fn markers_round_trip_and_ignore_foreign_txt() {
        let key = RecordKey::new("example.com", "A", "*.pr");
        let text = marker_text(&key, "preview-base");
        assert_eq!(
            text,
            "heritage=preview-envs,preview-envs/stack=preview-base,preview-envs/record=A *.pr"
        );
        assert_eq!(
            parse_marker(&text),
            Some(("preview-base".into(), "A *.pr".into()))
        );
        assert_eq!(
            parse_marker(&format!("\"{text}\"")),
            Some(("preview-base".into(), "A *.pr".into()))
        );
        for foreign in [
            "v=spf1 include:_spf.google.com ~all",
            "heritage=external-dns,external-dns/owner=default",
            "heritage=preview-envs,preview-envs/record=A *.pr",
            "",
        ] {
            assert_eq!(parse_marker(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn desired_records_parse_with_field_errors() {
        let literal =
            DesiredRecord::from_resource(&resource(body(json!({"data": "203.0.113.10"}))))
                .expect("literal");
        assert_eq!(literal.data, RecordData::Literal("203.0.113.10".into()));
        assert_eq!(literal.owner, "preview-base");
        assert_eq!(literal.ttl, 300);

        let from = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "namespace": "nginx-gateway", "name": "preview-gateway",
            "path": "/status/addresses/0/value"});
        let parsed = DesiredRecord::from_resource(&resource(body(json!({"dataFrom": from}))))
            .expect("dataFrom");
        let RecordData::From(source) = &parsed.data else {
            panic!("dataFrom expected");
        };
        assert_eq!(source.describe(), "Gateway nginx-gateway/preview-gateway");
        assert_eq!(source.to_json(), from);

        for (extra, expected) in [
            (
                json!({"data": "nope"}),
                "field data: \"nope\" is not an IPv4 address",
            ),
            (json!({}), "set field data or dataFrom"),
            (json!({"data": "10.0.0.1", "dataFrom": from}), "exclusive"),
            (json!({"data": "10.0.0.1", "ttl": 5}), "at least 30"),
            (json!({"data": "10.0.0.1", "type": "AAAA"}), "field type"),
            (
                json!({"dataFrom": {"apiVersion": "v1", "kind": "Service", "name": "x", "path": "status"}}),
                "JSON pointer",
            ),
            (
                json!({"dataFrom": {"kind": "Service", "name": "x", "path": "/a"}}),
                "dataFrom.apiVersion",
            ),
            (
                json!({"data": "10.0.0.1", "metadata": {"labels": {}}}),
                "owning stack",
            ),
        ] {
            let err = DesiredRecord::from_resource(&resource(body(extra))).expect_err(expected);
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn bodies_round_trip() {
        let desired =
            DesiredRecord::from_resource(&resource(body(json!({"data": "203.0.113.10"}))))
                .expect("parses");
        assert_eq!(desired.body(), body(json!({"data": "203.0.113.10"})));
    }

    #[test]
    fn live_value_projects_onto_the_desired_body() {
        let key = RecordKey::new("example.com", "A", "*.pr");
        let desired = body(json!({"data": "10.0.0.1"}));
        let live = live_value(&key, Some(42), "10.0.0.1", 300, Some("preview-base"));
        assert_eq!(live["metadata"]["uid"], "42");
        assert_eq!(
            crate::diff::projection_hash(&live, &desired),
            crate::diff::body_hash(&desired)
        );
        // A dataFrom resolved by the engine is a literal body.
        let from = DataFrom {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            namespace: Some("nginx-gateway".into()),
            name: "preview-gateway".into(),
            path: "/status/addresses/0/value".into(),
        };
        let reading = resource(body(json!({"dataFrom": from.to_json()})));
        let value_from = from.value_from();
        assert_eq!(value_from.source, from.object_id());
        let resolved = crate::values::resolved(&reading, &[(&value_from, json!("10.0.0.1"))]);
        assert_eq!(resolved.body, desired);
    }
}
