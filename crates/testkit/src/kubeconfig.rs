//! Kubeconfig files for the kit's users.
//!
//! Each file names the API server (`https://127.0.0.1:PORT`), trusts the CA the
//! API server generated in its `--cert-dir` (embedded as
//! `certificate-authority-data`) and authenticates with a static bearer token from
//! the `--token-auth-file`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::KitError;

/// Renders a kubeconfig with one cluster, one user and one current context.
pub(crate) fn render(server: &str, ca_pem: &[u8], user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testkit
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user:?}
  user:
    token: {token}
contexts:
- name: testkit
  context:
    cluster: testkit
    user: {user:?}
current-context: testkit
"
    )
}

/// Writes `text` to `path`, readable only by the owner (it holds a token).
pub(crate) fn write(path: &Path, text: &str) -> Result<(), KitError> {
    let context = || format!("writing kubeconfig {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KitError::io(context(), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| KitError::io(context(), e))
}

/// Loads a kubeconfig text into a client configuration.
pub(crate) async fn load(path: &Path, text: &str) -> Result<kube::Config, KitError> {
    let err = |source| KitError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(err)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rendered_kubeconfig_loads() {
        let text = render(
            "https://127.0.0.1:6443",
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "system:kube-controller-manager",
            "tok",
        );
        let kubeconfig = Kubeconfig::from_yaml(&text).expect("parses");
        assert_eq!(kubeconfig.current_context.as_deref(), Some("testkit"));
        assert_eq!(
            kubeconfig.auth_infos[0].name,
            "system:kube-controller-manager"
        );
    }
}
