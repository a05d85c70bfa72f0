//! The wildcard DNS records of `preview-base` (config section `dns:`): one A record
//! for `*.pr.<domain>` and one for `*.pr-api.<domain>` in the configured zone,
//! pointing at the Gateway's load-balancer address (read by the engine from the
//! ready Gateway when the records are applied) or at `dns.address`.
//!
//! The records are resources of the DigitalOcean provider (the only DNS provider
//! today); its API token is the secret `DIGITALOCEAN_TOKEN`, checked here so a
//! missing token fails before anything is sent. With `protect: true` the records
//! are protected like the rest of the base.

use components::{DnsRecord, DnsRecordData, PreviewGateway};
use preview_core::Resource;

use super::inputs::{protect, secret};
use crate::config::{DnsProvider, StackConfig};
use crate::{SecretSource, StackError};

/// The wildcard records for `subdomains` (e.g. `pr`, `pr-api`), owned by `stack`;
/// none when the config has no `dns:` section.
pub(crate) fn wildcard_records(
    config: &StackConfig,
    stack: &str,
    subdomains: &[&str],
    gateway: &PreviewGateway,
    secrets: &dyn SecretSource,
    protected: bool,
) -> Result<Vec<Resource>, StackError> {
    let Some(dns) = &config.dns else {
        return Ok(Vec::new());
    };
    match dns.provider {
        DnsProvider::Digitalocean => {
            secret(secrets, super::DIGITALOCEAN_TOKEN)?;
        }
    }
    let data = match &dns.address {
        Some(address) => DnsRecordData::Literal(address.clone()),
        None => DnsRecordData::gateway_address(&gateway.namespace, &gateway.name),
    };
    subdomains
        .iter()
        .map(|subdomain| {
            let record = DnsRecord {
                ttl: dns.ttl,
                ..DnsRecord::a(
                    dns.zone.as_str(),
                    dns.wildcard_name(subdomain, &config.domain),
                    data.clone(),
                    stack,
                )
            };
            Ok(protect(record.build()?, protected))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use preview_core::secret::SecretString;
    use preview_core::{ProviderName, ResourceId};

    use crate::config::StackConfig;
    use crate::{SecretSource, StackKind, StackRequest};

    struct Secrets(BTreeMap<&'static str, &'static str>);

    impl SecretSource for Secrets {
        fn get(&self, name: &str) -> Option<SecretString> {
            self.0.get(name).map(|v| SecretString::new(*v))
        }
        fn hint(&self, name: &str) -> String {
            format!("set PREVIEW_{name}")
        }
    }

    fn base(
        dns: &str,
        secrets: &[(&'static str, &'static str)],
    ) -> Result<crate::StackBuild, crate::StackError> {
        let yaml = format!(
            "domain: aphiria.com\npostgresImage: docker.io/library/postgres@sha256:{}\ntls: {{issuer: self-signed}}\nprotect: true\n{dns}",
            "a".repeat(64)
        );
        let config = StackConfig::from_yaml(&yaml, StackKind::PreviewBase)?;
        let request = StackRequest {
            kind: StackKind::PreviewBase,
            pr: None,
            images: Default::default(),
            db_role_password: None,
        };
        crate::build(
            &request,
            &config,
            &BTreeMap::new(),
            &Secrets(secrets.iter().copied().collect()),
        )
    }

    #[test]
    fn records_point_at_the_gateway_and_are_protected() {
        let secrets = [("DB_PASSWORD", "p"), ("DIGITALOCEAN_TOKEN", "t")];
        let none = base("", &secrets).expect("without dns");
        assert!(
            none.resources
                .iter()
                .all(|r| r.id.provider != ProviderName::DIGITALOCEAN)
        );

        let build = base("dns: {provider: digitalocean}\n", &secrets).expect("with dns");
        let records: Vec<_> = build
            .resources
            .iter()
            .filter(|r| r.id.provider == ProviderName::DIGITALOCEAN)
            .collect();
        let names: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(
            names,
            [
                "digitalocean DomainRecord aphiria.com/A:*.pr",
                "digitalocean DomainRecord aphiria.com/A:*.pr-api"
            ]
        );
        let gateway = ResourceId::kubernetes(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            Some("nginx-gateway"),
            "preview-gateway",
        );
        for record in &records {
            assert!(record.depends_on.contains(&gateway), "{}", record.id);
            assert!(record.options.protect, "{}", record.id);
            assert_eq!(record.body["dataFrom"]["path"], "/status/addresses/0/value");
            assert_eq!(record.body["ttl"], 300);
            assert_eq!(
                record.body["metadata"]["labels"]["preview-envs.io/stack"],
                "preview-base"
            );
        }
        // The graph accepts them (the Gateway is part of the stack).
        preview_core::graph::DesiredGraph::new(&build.name, build.resources.clone())
            .expect("graph");

        let fixed = base(
            "dns: {zone: aphiria.com, ttl: 60, address: 203.0.113.10}\n",
            &secrets,
        )
        .expect("literal");
        let record = fixed
            .resources
            .iter()
            .find(|r| r.id.provider == ProviderName::DIGITALOCEAN)
            .expect("record");
        assert_eq!(record.body["data"], "203.0.113.10");
        assert_eq!(record.body["ttl"], 60);
        assert!(record.depends_on.is_empty());
    }

    #[test]
    fn the_token_is_required() {
        let err = base("dns: {}\n", &[("DB_PASSWORD", "p")])
            .expect_err("no token")
            .to_string();
        assert!(err.contains("secret DIGITALOCEAN_TOKEN"), "{err}");
    }
}
