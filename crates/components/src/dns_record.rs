//! A DNS record in a DigitalOcean-hosted zone, as an engine resource of the
//! DigitalOcean provider (`preview_digitalocean`).
//!
//! This component only *describes* the record: a [`Resource`] with
//! [`ProviderName::DIGITALOCEAN`], `apiVersion` `dns.digitalocean.com/v1`, kind
//! `DomainRecord`, namespace = the zone, name = `<TYPE>:<name>` (e.g.
//! `digitalocean DomainRecord aphiria.com/A:*.pr`), and the body
//!
//! ```yaml
//! apiVersion: dns.digitalocean.com/v1
//! kind: DomainRecord
//! metadata:
//!   name: "A:*.pr"
//!   namespace: aphiria.com
//!   labels: {preview-envs.io/stack: preview-base}   # owner_stack
//! domain: aphiria.com
//! type: A
//! name: "*.pr"
//! ttl: 300
//! dataFrom:                 # DnsRecordData::FromObject (or `data: <address>`)
//!   apiVersion: gateway.networking.k8s.io/v1
//!   kind: Gateway
//!   namespace: nginx-gateway
//!   name: preview-gateway
//!   path: /status/addresses/0/value
//! ```
//!
//! With [`DnsRecordData::FromObject`] the resource depends on that object, so the
//! engine applies the record once the object (the Gateway) is ready, and the
//! engine reads the value from the ready object then and fills it in before the
//! provider sees the record (the provider only declares which field comes from
//! where; a plan in which the object is created or changed shows the value as
//! "(known after apply)"). The provider marks ownership with a companion TXT
//! record (`_preview-envs.<zone>`), never adopts a record it does not own, and
//! deletes only records carrying its marker.
//!
//! # Parameters
//!
//! | field | meaning | default |
//! | --- | --- | --- |
//! | `domain` | the DigitalOcean zone, e.g. `aphiria.com` | required |
//! | `record_type` | `A`, `AAAA`, `CNAME` or `TXT` | `A` |
//! | `name` | name relative to the zone: `*.pr`, `www`, `@` | required |
//! | `ttl` | seconds, at least 30 | 300 |
//! | `data` | [`DnsRecordData`]: a literal value, or a string field of a Kubernetes object | required |
//! | `owner_stack` | the stack that owns the record (ownership marker) | required |

use std::collections::BTreeSet;

use preview_core::schema::dns_record::{
    DataFrom, DesiredRecord, RecordData, RecordKey, check_data, check_domain, check_relative_name,
};
use preview_core::{ProviderName, Resource, ResourceId, ResourceOptions};

use crate::common::check_present;
use crate::error::ComponentError;

/// JSON pointer to the first address a Gateway reports (its load balancer's).
pub const GATEWAY_ADDRESS_PATH: &str = "/status/addresses/0/value";
/// Default TTL (seconds): short enough to follow a recreated load balancer.
pub const DEFAULT_TTL: u32 = 300;

/// Where a record's data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsRecordData {
    /// A literal value (an address for A/AAAA records).
    Literal(String),
    /// A string field of a Kubernetes object, read when the record is applied.
    FromObject {
        /// The object (a Kubernetes resource id).
        object: ResourceId,
        /// JSON pointer to the field, e.g. [`GATEWAY_ADDRESS_PATH`].
        path: String,
    },
}

impl DnsRecordData {
    /// The first address of the Gateway `namespace/name` (Gateway API v1).
    pub fn gateway_address(namespace: &str, name: &str) -> Self {
        DnsRecordData::FromObject {
            object: ResourceId::kubernetes(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                Some(namespace),
                name,
            ),
            path: GATEWAY_ADDRESS_PATH.to_owned(),
        }
    }
}

/// One DNS record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRecord {
    /// The zone, e.g. `aphiria.com`.
    pub domain: String,
    /// Record type (default `A`).
    pub record_type: String,
    /// Name relative to the zone, e.g. `*.pr`.
    pub name: String,
    /// TTL in seconds (default [`DEFAULT_TTL`], at least 30).
    pub ttl: u32,
    /// The data.
    pub data: DnsRecordData,
    /// The owning stack.
    pub owner_stack: String,
}

impl DnsRecord {
    /// An A record `name` in `domain` owned by `owner_stack`, TTL 300.
    pub fn a(
        domain: impl Into<String>,
        name: impl Into<String>,
        data: DnsRecordData,
        owner_stack: impl Into<String>,
    ) -> Self {
        DnsRecord {
            domain: domain.into(),
            record_type: "A".to_owned(),
            name: name.into(),
            ttl: DEFAULT_TTL,
            data,
            owner_stack: owner_stack.into(),
        }
    }

    fn key(&self) -> RecordKey {
        RecordKey::new(&self.domain, &self.record_type, &self.name)
    }

    /// The resource id (`digitalocean DomainRecord <zone>/<TYPE>:<name>`).
    pub fn id(&self) -> ResourceId {
        self.key().id()
    }

    /// Validates and renders the resource.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        check_domain(&self.domain)
            .map_err(|m| ComponentError::invalid("DNS zone", self.domain.as_str(), m))?;
        if !preview_core::schema::dns_record::SUPPORTED_TYPES.contains(&self.record_type.as_str()) {
            return Err(ComponentError::invalid(
                "DNS record type",
                self.record_type.as_str(),
                format!(
                    "supported: {}",
                    preview_core::schema::dns_record::SUPPORTED_TYPES.join(", ")
                ),
            ));
        }
        check_relative_name(&self.name, &self.domain)
            .map_err(|m| ComponentError::invalid("DNS record name", self.name.as_str(), m))?;
        if self.ttl < 30 {
            return Err(ComponentError::invalid(
                "DNS record ttl",
                self.ttl.to_string(),
                "DigitalOcean accepts at least 30 seconds",
            ));
        }
        check_present(
            "DNS record owner stack",
            &self.owner_stack,
            "must name the owning stack",
        )?;
        let mut depends_on = BTreeSet::new();
        let data = match &self.data {
            DnsRecordData::Literal(value) => {
                check_data(&self.record_type, value)
                    .map_err(|m| ComponentError::invalid("DNS record data", value.as_str(), m))?;
                RecordData::Literal(value.clone())
            }
            DnsRecordData::FromObject { object, path } => {
                if object.provider != ProviderName::KUBERNETES {
                    return Err(ComponentError::invalid(
                        "DNS record data source",
                        object.to_string(),
                        "must be a Kubernetes object",
                    ));
                }
                if !path.starts_with('/') {
                    return Err(ComponentError::invalid(
                        "DNS record data path",
                        path.as_str(),
                        "must be a JSON pointer such as /status/addresses/0/value",
                    ));
                }
                depends_on.insert(object.clone());
                RecordData::From(DataFrom {
                    api_version: object.api_version.clone(),
                    kind: object.kind.clone(),
                    namespace: object.namespace.clone(),
                    name: object.name.clone(),
                    path: path.clone(),
                })
            }
        };
        let desired = DesiredRecord {
            key: self.key(),
            ttl: i64::from(self.ttl),
            data,
            owner: self.owner_stack.clone(),
        };
        Ok(Resource {
            id: self.id(),
            body: desired.body(),
            depends_on,
            options: ResourceOptions::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> DnsRecord {
        DnsRecord::a(
            "aphiria.com",
            "*.pr",
            DnsRecordData::gateway_address("nginx-gateway", "preview-gateway"),
            "preview-base",
        )
    }

    #[test]
    fn snapshot() {
        let r = web().build().expect("builds");
        insta::assert_yaml_snapshot!(r.body);
    }

    #[test]
    fn identity_and_dependency() {
        let r = web().build().expect("builds");
        assert_eq!(r.id.provider, ProviderName::DIGITALOCEAN);
        assert_eq!(
            r.id.to_string(),
            "digitalocean DomainRecord aphiria.com/A:*.pr"
        );
        assert_eq!(r.id, web().id());
        let gateway = ResourceId::kubernetes(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            Some("nginx-gateway"),
            "preview-gateway",
        );
        assert_eq!(r.depends_on, BTreeSet::from([gateway]));
        // The provider parses what the component renders.
        let parsed = DesiredRecord::from_resource(&r).expect("parses");
        assert_eq!(parsed.owner, "preview-base");
        assert_eq!(parsed.ttl, 300);
    }

    #[test]
    fn literal_addresses() {
        let r = DnsRecord::a(
            "aphiria.com",
            "*.pr-api",
            DnsRecordData::Literal("203.0.113.10".into()),
            "preview-base",
        )
        .build()
        .expect("builds");
        assert_eq!(r.body["data"], "203.0.113.10");
        assert!(r.body.get("dataFrom").is_none());
        assert!(r.depends_on.is_empty());
    }

    #[test]
    fn parameters_are_validated() {
        type Change = Box<dyn Fn(&mut DnsRecord)>;
        let cases: [(Change, &str); 7] = [
            (
                Box::new(|r| r.domain = "Aphiria.com".into()),
                "invalid DNS zone",
            ),
            (
                Box::new(|r| r.record_type = "MX".into()),
                "invalid DNS record type",
            ),
            (
                Box::new(|r| r.name = "*.pr.aphiria.com".into()),
                "relative to the zone",
            ),
            (
                Box::new(|r| r.name = "pr.*".into()),
                "invalid DNS record name",
            ),
            (Box::new(|r| r.ttl = 10), "at least 30"),
            (Box::new(|r| r.owner_stack = String::new()), "owning stack"),
            (
                Box::new(|r| r.data = DnsRecordData::Literal("lb.example.net".into())),
                "is not an IPv4 address",
            ),
        ];
        for (change, expected) in cases {
            let mut record = web();
            change(&mut record);
            let err = record.build().expect_err(expected).to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
