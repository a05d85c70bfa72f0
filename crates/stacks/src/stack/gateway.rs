//! The gateway side of a stack: the gateway's `Namespace`, the TLS issuer (and,
//! for Let's Encrypt, the DigitalOcean DNS-01 token Secret), the wildcard
//! `Certificate`, the `GatewayClass` (unless a bundle installs it) and the
//! `Gateway` ([`components::PreviewGateway`]).
//!
//! The issuer is a namespaced cert-manager `Issuer` in the gateway namespace —
//! `selfsigned-issuer`, `letsencrypt-staging` or `letsencrypt-prod` — not a
//! `ClusterIssuer`: it only signs the gateway's certificate, and a namespaced
//! Issuer reads its DNS-01 token from its own namespace, so everything lives in a
//! namespace the stack creates (nothing depends on cert-manager's namespace
//! existing, and one cluster can hold stacks with different issuers). The token
//! Secret (`tls.dnsTokenSecret`, default `digitalocean-dns`, key `access_token`)
//! holds the secret `DIGITALOCEAN_TOKEN`.

use components::{
    AcmeDigitalOcean, AcmeServer, EnvSecret, IssuerScope, Labels, PreviewGateway, PreviewNamespace,
    TlsIssuer, WildcardHost,
};
use preview_core::{Resource, ResourceId};

use super::inputs::{protect, secret};
use crate::config::{IssuerKind, StackConfig};
use crate::{SecretSource, StackError};

/// Key of the DigitalOcean token in the DNS-01 token Secret.
pub(crate) const DNS_TOKEN_KEY: &str = "access_token";

/// What [`gateway`] renders.
pub(crate) struct Edge {
    /// Namespace, token Secret, class, issuer, certificate, gateway.
    pub resources: Vec<Resource>,
    /// The gateway's parameters (for listener names and the TLS Secret name).
    pub gateway: PreviewGateway,
}

/// Renders the gateway side for `hosts` (one HTTPS listener each).
pub(crate) fn gateway(
    config: &StackConfig,
    labels: &Labels,
    hosts: Vec<WildcardHost>,
    bundles: &[(String, Resource)],
    secrets: &dyn SecretSource,
    protect_namespace: bool,
) -> Result<Edge, StackError> {
    let gw = &config.gateway;
    let namespace = PreviewNamespace {
        labels: labels.clone(),
        ..PreviewNamespace::new(gw.namespace.as_str())
    }
    .build()?
    .namespace;
    let mut resources = vec![protect(namespace, protect_namespace)];

    let issuer = match config.tls.issuer {
        IssuerKind::SelfSigned => TlsIssuer::SelfSigned {
            name: "selfsigned-issuer".to_owned(),
            scope: IssuerScope::Namespaced,
        },
        acme => {
            let server = if acme == IssuerKind::Letsencrypt {
                AcmeServer::Production
            } else {
                AcmeServer::Staging
            };
            let email = config
                .tls
                .email
                .clone()
                .ok_or_else(|| config.missing("tls.email"))?;
            let token = secret(secrets, super::DIGITALOCEAN_TOKEN)?;
            let token_secret = EnvSecret {
                labels: labels.clone(),
                ..EnvSecret::new(
                    gw.namespace.as_str(),
                    config.tls.dns_token_secret.as_str(),
                    [(DNS_TOKEN_KEY.to_owned(), token)].into_iter().collect(),
                )
            }
            .build()?;
            resources.push(token_secret);
            TlsIssuer::Acme(AcmeDigitalOcean {
                scope: IssuerScope::Namespaced,
                token_key: DNS_TOKEN_KEY.to_owned(),
                ..AcmeDigitalOcean::lets_encrypt(
                    server,
                    email,
                    config.tls.dns_token_secret.as_str(),
                )
            })
        }
    };

    let class_id = ResourceId::kubernetes(
        "gateway.networking.k8s.io/v1",
        "GatewayClass",
        None,
        gw.class_name.as_str(),
    );
    let gateway = PreviewGateway {
        class_name: gw.class_name.clone(),
        create_class: !super::bundles::contains(bundles, &class_id),
        labels: labels.clone(),
        ..PreviewGateway::new(gw.name.as_str(), gw.namespace.as_str(), hosts, issuer)
    };
    resources.extend(gateway.build()?.into_resources());
    Ok(Edge { resources, gateway })
}
