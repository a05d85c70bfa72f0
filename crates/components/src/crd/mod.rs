//! Typed structs for the custom resources the components render.
//!
//! Only the fields the components use are modelled; every optional field is
//! skipped when unset, so the rendered body contains exactly what we manage
//! (server-side apply then owns exactly those fields). Each top-level type has a
//! `new(metadata, spec)` constructor that fills in `apiVersion` and `kind`.
//!
//! - [`gateway_api`]: Gateway API v1 (`gateway.networking.k8s.io/v1`, standard
//!   channel v1.3.0): `GatewayClass`, `Gateway`, `HTTPRoute`.
//! - [`cert_manager`]: cert-manager v1 (`cert-manager.io/v1`): `ClusterIssuer`,
//!   `Issuer`, `Certificate`.
//! - [`nginx_gateway`]: NGINX Gateway Fabric v2.2.2 (`gateway.nginx.org/v1alpha1`):
//!   `SnippetsFilter`, `ClientSettingsPolicy`.

pub mod cert_manager;
pub mod gateway_api;
pub mod nginx_gateway;
