//! cert-manager objects: the status cert-manager would write. No issuer is
//! contacted, no ACME challenge runs and nothing is validated.
//!
//! * Certificate (`cert-manager.io/v1`): first the TLS Secret named in
//!   `spec.secretName` is created if absent (type `kubernetes.io/tls`, cert-manager's
//!   annotations), then `Ready=True` reason `Ready`, `notBefore` = now,
//!   `notAfter` = +90 days, `renewalTime` = +60 days, `revision: 1`.
//!   The Secret's `tls.crt`/`tls.key` are a **self-signed** EC P-256 pair made with
//!   `openssl req -x509` for the Certificate's `dnsNames` (valid, but signed by
//!   nobody: not the requested issuer). If `openssl` fails, they are placeholder PEM
//!   blocks whose base64 body decodes to "testkit placeholder certificate/key", which
//!   no TLS library will accept. An existing Secret is never overwritten.
//! * Issuer / ClusterIssuer: `Ready=True` (reason `ACMEAccountRegistered` for ACME
//!   issuers, `IsReady` otherwise).
//!
//! Failure injection: see [`annotations`](super::annotations).

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::annotations::{Injection, SIMULATED_LABEL};
use super::status::{condition, time_string};

const DAY: i64 = 86_400;

/// The status for a Certificate, and whether it is Ready (then its Secret is due).
pub(crate) fn certificate_status(obj: &DynamicObject, now: Timestamp) -> (Value, bool) {
    let g = obj.metadata.generation;
    let t = time_string(now);
    let inj = Injection::of(obj.metadata.annotations.as_ref());
    match inj.simulate.as_deref() {
        None => {
            let later = |days: i64| {
                Timestamp::from_second(now.as_second() + days * DAY)
                    .map(time_string)
                    .unwrap_or_else(|_| t.clone())
            };
            (
                json!({
                    "conditions": [condition("Ready", true, "Ready", "Certificate is up to date and has not expired", g, &t)],
                    "notBefore": t,
                    "notAfter": later(90),
                    "renewalTime": later(60),
                    "revision": 1,
                }),
                true,
            )
        }
        Some(value) => {
            let reason = if value == "NotReady" { "Failed" } else { value };
            let message = inj.message_or(|| {
                "The certificate request has failed to complete and will be retried".into()
            });
            (
                json!({"conditions": [condition("Ready", false, reason, &message, g, &t)]}),
                false,
            )
        }
    }
}

/// The status for an Issuer or ClusterIssuer.
pub(crate) fn issuer_status(obj: &DynamicObject, now: &str) -> Value {
    let g = obj.metadata.generation;
    let inj = Injection::of(obj.metadata.annotations.as_ref());
    let acme = obj.data.pointer("/spec/acme").is_some();
    let c = match inj.simulate.as_deref() {
        None if acme => condition(
            "Ready",
            true,
            "ACMEAccountRegistered",
            "The ACME account was registered with the ACME server",
            g,
            now,
        ),
        None => condition("Ready", true, "IsReady", "Signing CA verified", g, now),
        Some(value) => {
            let reason = if value == "NotReady" {
                "ErrRegisterACMEAccount"
            } else {
                value
            };
            let message = inj.message_or(|| "Failed to verify ACME account".into());
            condition("Ready", false, reason, &message, g, now)
        }
    };
    json!({ "conditions": [c] })
}

/// The names a Certificate asks for: `commonName` (if any) and `dnsNames`.
fn names(obj: &DynamicObject) -> (Option<String>, Vec<String>) {
    let common = obj
        .data
        .pointer("/spec/commonName")
        .and_then(Value::as_str)
        .map(str::to_string);
    let dns: Vec<String> = obj
        .data
        .pointer("/spec/dnsNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    (common, dns)
}

/// The Secret cert-manager would write for `obj` (without contacting the API).
pub(crate) async fn tls_secret(obj: &DynamicObject, secret_name: &str) -> Secret {
    let (common, dns) = names(obj);
    let (cert, key) = match self_signed(common.as_deref(), &dns).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "openssl failed; writing placeholder PEM into the simulated TLS Secret");
            placeholder_pair()
        }
    };
    let issuer = |field: &str| {
        obj.data
            .pointer(&format!("/spec/issuerRef/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "cert-manager.io/certificate-name".to_string(),
        obj.metadata.name.clone().unwrap_or_default(),
    );
    annotations.insert("cert-manager.io/issuer-name".into(), issuer("name"));
    annotations.insert("cert-manager.io/issuer-kind".into(), {
        let kind = issuer("kind");
        if kind.is_empty() {
            "Issuer".into()
        } else {
            kind
        }
    });
    annotations.insert("cert-manager.io/issuer-group".into(), {
        let group = issuer("group");
        if group.is_empty() {
            "cert-manager.io".into()
        } else {
            group
        }
    });
    annotations.insert("cert-manager.io/alt-names".into(), dns.join(","));
    annotations.insert(
        "cert-manager.io/common-name".into(),
        common.unwrap_or_default(),
    );
    annotations.insert("cert-manager.io/ip-sans".into(), String::new());
    annotations.insert("cert-manager.io/uri-sans".into(), String::new());
    let mut labels = BTreeMap::new();
    labels.insert(
        "controller.cert-manager.io/fao".to_string(),
        "true".to_string(),
    );
    labels.insert(SIMULATED_LABEL.to_string(), "true".to_string());
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_string(), ByteString(cert));
    data.insert("tls.key".to_string(), ByteString(key));
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: obj.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// A self-signed EC P-256 certificate for `dns` via `openssl req -x509`.
async fn self_signed(common: Option<&str>, dns: &[String]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let cn = common
        .or(dns.first().map(String::as_str))
        .filter(|cn| cn.len() <= 64)
        .unwrap_or("testkit-simulated");
    let subject = format!("/CN={}/O=testkit simulated", cn.replace('/', "\\/"));
    let openssl = crate::bins::openssl().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(openssl);
    command
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "90",
        ])
        .arg("-subj")
        .arg(&subject)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if !dns.is_empty() {
        let sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        command
            .arg("-addext")
            .arg(format!("subjectAltName={}", sans.join(",")));
    }
    let output = command
        .output()
        .await
        .map_err(|e| format!("running openssl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok((read(&cert)?, read(&key)?))
}

/// PEM-shaped text that is not a certificate or key.
fn placeholder_pair() -> (Vec<u8>, Vec<u8>) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    (
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64("testkit placeholder certificate")
        )
        .into_bytes(),
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64("testkit placeholder key")
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::SIMULATE;

    fn certificate() -> DynamicObject {
        serde_yaml_ng::from_str(
            "
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: wildcard, namespace: ns, generation: 1}
spec:
  secretName: wildcard-tls
  dnsNames: ['*.preview.example.com']
  issuerRef: {kind: ClusterIssuer, name: letsencrypt}
",
        )
        .expect("certificate yaml")
    }

    #[test]
    fn certificate_becomes_ready() {
        let now = Timestamp::from_second(1_700_000_000).expect("valid");
        let (s, ready) = certificate_status(&certificate(), now);
        assert!(ready);
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["reason"], "Ready");
        assert_eq!(s["notAfter"], "2024-02-12T22:13:20Z");
        assert_eq!(s["revision"], 1);
    }

    #[test]
    fn certificate_failure_injection() {
        let mut c = certificate();
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SIMULATE.into(), "NotReady".into());
        let (s, ready) = certificate_status(&c, Timestamp::now());
        assert!(!ready);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "Failed");
    }

    #[tokio::test]
    async fn secret_has_a_self_signed_pair_and_cert_manager_annotations() {
        let secret = tls_secret(&certificate(), "wildcard-tls").await;
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secret.data.expect("data");
        let cert = String::from_utf8(data["tls.crt"].0.clone()).expect("utf-8");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(data["tls.key"].0.starts_with(b"-----BEGIN"));
        let annotations = secret.metadata.annotations.expect("annotations");
        assert_eq!(annotations["cert-manager.io/certificate-name"], "wildcard");
        assert_eq!(annotations["cert-manager.io/issuer-kind"], "ClusterIssuer");
        assert_eq!(
            annotations["cert-manager.io/alt-names"],
            "*.preview.example.com"
        );
    }

    #[test]
    fn placeholder_is_pem_shaped() {
        let (cert, key) = placeholder_pair();
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
        assert!(key.ends_with(b"-----END PRIVATE KEY-----\n"));
    }
}
