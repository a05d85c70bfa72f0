//! cert-manager v1 types (`cert-manager.io/v1`), only the fields we use.
//!
//! Field names follow `shared/data/crds/cert-manager-v1.20.3.yaml`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `apiVersion` of every cert-manager object here.
pub const API_VERSION: &str = "cert-manager.io/v1";
/// The API group.
pub const GROUP: &str = "cert-manager.io";

/// A `ClusterIssuer` (cluster-scoped issuer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIssuer {
    /// `cert-manager.io/v1`.
    pub api_version: String,
    /// `ClusterIssuer`.
    pub kind: String,
    /// Metadata (no namespace).
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: IssuerSpec,
}

impl ClusterIssuer {
    /// A ClusterIssuer with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: IssuerSpec) -> Self {
        ClusterIssuer {
            api_version: API_VERSION.to_owned(),
            kind: "ClusterIssuer".to_owned(),
            metadata,
            spec,
        }
    }
}

/// An `Issuer` (namespaced issuer; issues certificates in its namespace only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issuer {
    /// `cert-manager.io/v1`.
    pub api_version: String,
    /// `Issuer`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: IssuerSpec,
}

impl Issuer {
    /// An Issuer with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: IssuerSpec) -> Self {
        Issuer {
            api_version: API_VERSION.to_owned(),
            kind: "Issuer".to_owned(),
            metadata,
            spec,
        }
    }
}

/// `spec` of an Issuer or ClusterIssuer: exactly one of the issuer types.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// ACME (Let's Encrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    /// Self-signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
}

/// `spec.selfSigned` (renders as `{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfSignedIssuer {}

/// `spec.acme`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// ACME directory URL.
    pub server: String,
    /// Account e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Secret holding the ACME account key (created by cert-manager).
    pub private_key_secret_ref: SecretKeySelector,
    /// Challenge solvers.
    pub solvers: Vec<AcmeSolver>,
}

/// A reference to a Secret (and optionally one key of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `acme.solvers[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolver {
    /// DNS-01 challenge (needed for wildcard certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns01: Option<AcmeDns01>,
}

/// `solvers[].dns01`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeDns01 {
    /// DigitalOcean DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digitalocean: Option<DigitalOceanDns01>,
}

/// `dns01.digitalocean`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigitalOceanDns01 {
    /// Secret (and key) holding the DigitalOcean API token.
    pub token_secret_ref: SecretKeySelector,
}

/// A `Certificate`: cert-manager keeps `spec.secretName` filled with a valid certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// `cert-manager.io/v1`.
    pub api_version: String,
    /// `Certificate`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: CertificateSpec,
}

impl Certificate {
    /// A Certificate with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: CertificateSpec) -> Self {
        Certificate {
            api_version: API_VERSION.to_owned(),
            kind: "Certificate".to_owned(),
            metadata,
            spec,
        }
    }
}

/// `Certificate.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The `kubernetes.io/tls` Secret cert-manager writes.
    pub secret_name: String,
    /// DNS names (wildcards allowed with DNS-01).
    pub dns_names: Vec<String>,
    /// The issuer.
    pub issuer_ref: IssuerRef,
}

/// `Certificate.spec.issuerRef`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// `Issuer` or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `cert-manager.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}
