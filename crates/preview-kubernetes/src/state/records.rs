//! Records of the Kubernetes backend: one ConfigMap per record,
//! `preview-<kind>-<name>` (e.g. `preview-tested-images-pr-12`) in the backend's
//! namespace, labelled `app.kubernetes.io/managed-by=preview-envs`,
//! `preview-envs.io/record-kind=<kind>` and `preview-envs.io/record-name=<name>`,
//! the document in data key `record`. ConfigMaps, not Secrets: a record holds no
//! secret, and read access to records (`get`/`list` on configmaps) can be granted
//! without read access to the states. A swap reads the ConfigMap, compares its
//! document with what the caller read, then creates it or replaces it with the
//! `resourceVersion` it read as a precondition: a concurrent writer gets 409
//! Conflict → [`StateError::Stale`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta};

use super::{KubeBackend, LABEL_MANAGED_BY, MANAGED_BY, kube_io, post_params, status_code};
use preview_core::state::{StateBackend, StateError, check_record_key};

/// Label naming a record's kind.
pub const LABEL_RECORD_KIND: &str = "preview-envs.io/record-kind";
/// Label naming a record.
pub const LABEL_RECORD_NAME: &str = "preview-envs.io/record-name";
/// Data key holding the document.
const DATA_KEY: &str = "record";

impl KubeBackend {
    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Name of the ConfigMap holding record `kind`/`name`.
    pub fn record_object_name(kind: &str, name: &str) -> String {
        format!("preview-{kind}-{name}")
    }

    fn is_record(cm: &ConfigMap, kind: &str) -> bool {
        let labels = cm.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        label(LABEL_MANAGED_BY) == Some(MANAGED_BY) && label(LABEL_RECORD_KIND) == Some(kind)
    }

    /// The ConfigMap and its document, refusing a foreign ConfigMap of that name.
    async fn get_record(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<(ConfigMap, Vec<u8>)>, StateError> {
        check_record_key(kind, name)?;
        let object = Self::record_object_name(kind, name);
        let Some(cm) = self
            .config_maps()
            .get_opt(&object)
            .await
            .map_err(|e| kube_io(&self.describe(), format!("reading configmap {object}"), e))?
        else {
            return Ok(None);
        };
        if !Self::is_record(&cm, kind) {
            return Err(StateError::Io {
                backend: self.describe(),
                message: format!(
                    "configmap {object} exists but is not a {kind} record (labels {LABEL_MANAGED_BY}={MANAGED_BY}, {LABEL_RECORD_KIND}={kind} missing); not touching it"
                ),
                source: None,
            });
        }
        let body = cm
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default();
        Ok(Some((cm, body)))
    }

    pub(super) async fn read_record_impl(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get_record(kind, name).await?.map(|(_, body)| body))
    }

    pub(super) async fn swap_record_impl(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        let object = Self::record_object_name(kind, name);
        let text = std::str::from_utf8(body).map_err(|_| StateError::Io {
            backend: self.describe(),
            message: format!("record {kind}/{name} is not UTF-8 text"),
            source: None,
        })?;
        let stale = || StateError::Stale {
            stack: format!("{kind}/{name}"),
            message: format!("another writer changed configmap {object} after it was read"),
        };
        let current = self.get_record(kind, name).await?;
        if current.as_ref().map(|(_, b)| b.as_slice()) != expected {
            return Err(stale());
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(object.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                    (LABEL_RECORD_KIND.to_owned(), kind.to_owned()),
                    (LABEL_RECORD_NAME.to_owned(), name.to_owned()),
                ])),
                resource_version: current
                    .as_ref()
                    .and_then(|(cm, _)| cm.metadata.resource_version.clone()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), text.to_owned())])),
            ..Default::default()
        };
        let api = self.config_maps();
        let result = match current {
            Some(_) => api.replace(&object, &post_params(), &cm).await.map(drop),
            None => api.create(&post_params(), &cm).await.map(drop),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => Err(stale()),
            Err(e) => Err(kube_io(
                &self.describe(),
                format!("writing configmap {object}"),
                e,
            )),
        }
    }

    pub(super) async fn list_records_impl(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        check_record_key(kind, "x")?;
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_RECORD_KIND}={kind}");
        let list = self
            .config_maps()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_io(&self.describe(), format!("listing {kind} records"), e))?;
        let mut out: Vec<(String, Vec<u8>)> = list
            .items
            .iter()
            .filter_map(|cm| {
                let name = cm.metadata.labels.as_ref()?.get(LABEL_RECORD_NAME)?;
                let object = cm.metadata.name.as_deref()?;
                // Only the object a read of that record would find.
                (check_record_key(kind, name).is_ok()
                    && object == Self::record_object_name(kind, name))
                .then(|| {
                    let body = cm.data.as_ref()?.get(DATA_KEY)?;
                    Some((name.clone(), body.as_bytes().to_vec()))
                })
                .flatten()
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert_eq!(
            KubeBackend::record_object_name("tested-images", "pr-12"),
            "preview-tested-images-pr-12"
        );
    }
}
