//! Reading X.509 certificates in tests, with the `openssl` command (the kit
//! already needs it): what a TLS Secret really holds, not what its annotations
//! say.

use std::path::Path;

use crate::{KitError, bins};

/// What [`inspect`] read from a PEM certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject, RFC 2253 (`CN=…,O=…`; empty when the certificate has none).
    pub subject: String,
    /// The issuer, RFC 2253.
    pub issuer: String,
    /// The `DNS:` entries of the subjectAltName extension, in order.
    pub dns_names: Vec<String>,
}

/// Parses the first certificate of `pem` (`openssl x509`). Fails when it is not a
/// certificate `openssl` accepts.
pub async fn inspect(pem: &[u8]) -> Result<CertificateInfo, KitError> {
    let dir = tempfile::tempdir().map_err(|e| KitError::io("creating a temp dir", e))?;
    let file = write(dir.path(), "cert.pem", pem)?;
    let text = openssl(&[
        "x509",
        "-noout",
        "-nameopt",
        "RFC2253",
        "-subject",
        "-issuer",
        "-ext",
        "subjectAltName",
        "-in",
        path_str(&file)?,
    ])
    .await?;
    Ok(parse(&text))
}

/// Whether `leaf` verifies against the single trusted root `ca` (`openssl
/// verify`); `Err` carries openssl's reason when it does not.
pub async fn verify(ca: &[u8], leaf: &[u8]) -> Result<(), KitError> {
    let dir = tempfile::tempdir().map_err(|e| KitError::io("creating a temp dir", e))?;
    let ca = write(dir.path(), "ca.pem", ca)?;
    let leaf = write(dir.path(), "leaf.pem", leaf)?;
    openssl(&["verify", "-CAfile", path_str(&ca)?, path_str(&leaf)?])
        .await
        .map(|_| ())
}

fn parse(text: &str) -> CertificateInfo {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut lines = text.lines();
    let san = lines
        .by_ref()
        .find(|l| l.contains("Subject Alternative Name"))
        .and_then(|_| lines.next())
        .unwrap_or_default();
    CertificateInfo {
        subject: field("subject="),
        issuer: field("issuer="),
        dns_names: san
            .split(',')
            .filter_map(|entry| entry.trim().strip_prefix("DNS:"))
            .map(str::to_string)
            .collect(),
    }
}

async fn openssl(args: &[&str]) -> Result<String, KitError> {
    let program = bins::openssl()?;
    let output = tokio::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| KitError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(KitError::Command {
            command: format!("openssl {}", args.join(" ")),
            status: output.status.to_string(),
            output: crate::process::tail_lines(&text, 10).trim().to_string(),
        })
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf, KitError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)
        .map_err(|e| KitError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

fn path_str(path: &Path) -> Result<&str, KitError> {
    path.to_str().ok_or_else(|| {
        KitError::io(
            format!("{}", path.display()),
            std::io::Error::other("temp path is not UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_output() {
        let info = parse(
            "subject=\nissuer=CN=preview-ca,O=testkit\nX509v3 Subject Alternative Name: critical\n    DNS:*.pr.example.com, DNS:*.pr-api.example.com, IP Address:127.0.0.1\n",
        );
        assert_eq!(info.subject, "");
        assert_eq!(info.issuer, "CN=preview-ca,O=testkit");
        assert_eq!(info.dns_names, ["*.pr.example.com", "*.pr-api.example.com"]);
    }

    #[tokio::test]
    async fn rejects_what_is_not_a_certificate() {
        let err =
            inspect(b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
                .await
                .expect_err("not a certificate");
        assert!(err.to_string().contains("openssl x509"), "{err}");
    }
}
