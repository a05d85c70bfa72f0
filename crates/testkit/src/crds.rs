//! Installing CustomResourceDefinitions into a test cluster.
//!
//! [`install_crds`] reads every `*.yaml` file in a directory (sorted by name),
//! splits multi-document YAML, server-side applies each
//! `CustomResourceDefinition` with field manager [`FIELD_MANAGER`] (forced, so a
//! re-install takes over), then waits until every one reports `Established=True`.
//! Server-side apply matters: the largest CRDs (nginxproxies, about 293 KB) are too
//! big for client-side apply's `last-applied-configuration` annotation.
//!
//! [`default_crd_dir`] is the shared data's upstream Gateway API v1.3.0,
//! cert-manager v1.20.3 and NGINX Gateway Fabric CRD files, unmodified (see
//! `shared/data/crds/README.md`): the API server enforces their OpenAPI schemas
//! and their CEL rules (`x-kubernetes-validations`). They are read in place,
//! never copied into this repository; only the `*.yaml` files directly in the
//! directory are read (not the `k8s-1.20-compat/` or `samples/` subdirectories).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;

use crate::KitError;

/// The field manager for CRDs the kit installs.
pub const FIELD_MANAGER: &str = "testkit";

/// How long [`install_crds`] waits for each CRD to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`install_crds`] did, and how long it took.
#[derive(Debug, Clone)]
pub struct CrdInstall {
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The CRD names applied (`plural.group`), in file order.
    pub names: Vec<String>,
    /// Time spent applying.
    pub applied_in: Duration,
    /// Time from the last apply until all were Established.
    pub established_in: Duration,
}

impl CrdInstall {
    /// Total time.
    pub fn elapsed(&self) -> Duration {
        self.applied_in + self.established_in
    }
}

/// The directory with the upstream CRDs: `$PREVIEW_CRD_DIR` if set, else
/// `shared/data/crds` next to the repository.
pub fn default_crd_dir() -> PathBuf {
    match std::env::var_os("PREVIEW_CRD_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/crds");
            dir.canonicalize().unwrap_or(dir)
        }
    }
}

/// Reads the CRD documents in `dir` (every `*.yaml`, multi-document files split),
/// without contacting a cluster.
pub fn read_crds(dir: &Path) -> Result<(Vec<PathBuf>, Vec<serde_json::Value>), KitError> {
    if !dir.is_dir() {
        return Err(KitError::CrdDirMissing {
            path: dir.to_path_buf(),
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| KitError::io(format!("listing {}", dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| KitError::io(format!("reading {}", file.display()), e))?;
        for (index, doc) in split_yaml(&text, file)?.into_iter().enumerate() {
            if doc.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition") {
                crds.push(doc);
            } else {
                tracing::warn!(file = %file.display(), index, "skipping a document that is not a CustomResourceDefinition");
            }
        }
    }
    Ok((files, crds))
}

/// Splits a multi-document YAML text into JSON values, dropping empty documents.
pub fn split_yaml(text: &str, source: &Path) -> Result<Vec<serde_json::Value>, KitError> {
    let mut docs = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document).map_err(|e| KitError::Parse {
            what: format!("{} (document {index})", source.display()),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Applies every CRD in `dir` and waits until all are Established.
pub async fn install_crds(client: &kube::Client, dir: &Path) -> Result<CrdInstall, KitError> {
    let (files, crds) = read_crds(dir)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();

    let began = Instant::now();
    let names: Vec<String> = futures::stream::iter(crds)
        .map(|crd| {
            let api = api.clone();
            let params = params.clone();
            async move {
                let name = crd
                    .pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                api.patch(&name, &params, &Patch::Apply(&crd))
                    .await
                    .map_err(|e| KitError::kube(format!("applying CRD {name}"), e))?;
                Ok::<_, KitError>(name)
            }
        })
        .buffered(4)
        .try_collect()
        .await?;
    let applied_in = began.elapsed();

    let began = Instant::now();
    futures::stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
            async move {
                let established = await_condition(api, &name, conditions::is_crd_established());
                match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(KitError::Timeout {
                        what: format!("CRD {name} to become Established ({e})"),
                        timeout: ESTABLISH_TIMEOUT,
                    }),
                    Err(_) => Err(KitError::Timeout {
                        what: format!("CRD {name} to become Established"),
                        timeout: ESTABLISH_TIMEOUT,
                    }),
                }
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let established_in = began.elapsed();
    tracing::info!(
        crds = names.len(),
        ?applied_in,
        ?established_in,
        "CRDs installed"
    );
    Ok(CrdInstall {
        files,
        names,
        applied_in,
        established_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_yaml() {
        let text = "---\na: 1\n---\n# only a comment\n---\nkind: X\n";
        let docs = split_yaml(text, Path::new("t.yaml")).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "X");
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let err = read_crds(Path::new("/nonexistent/crds")).expect_err("missing");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/crds"), "{msg}");
        assert!(msg.contains("PREVIEW_CRD_DIR"), "{msg}");
    }

    #[test]
    fn shared_crds_parse() {
        let dir = default_crd_dir();
        if !dir.is_dir() {
            // The shared data is not part of every checkout; install_crds reports it.
            return;
        }
        let (files, crds) = read_crds(&dir).expect("readable");
        assert_eq!(files.len(), 4, "{files:?}");
        assert_eq!(crds.len(), 19);
    }
}
