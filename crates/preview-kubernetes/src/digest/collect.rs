//! Reads what a digest needs (the only effect of [`super`]): GETs, LISTs and
//! `pods/log`. Nothing is written. A read that fails becomes a note; the
//! digest is still returned, redacted and capped.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, LogParams};
use serde_json::Value;

use super::cap::{self, LOG_LINES_PER_CONTAINER};
use super::{FailureDigest, Redactor, assemble};
use crate::readiness::{self, Related};
use crate::{KubeProvider, reader};
use preview_core::resource::ResourceId;

/// Longest a digest may take to read; then what was read so far is not shown,
/// only the reason and a note.
pub const COLLECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes of log asked for per container (the API server's `limitBytes`).
const LOG_LIMIT_BYTES: i64 = 16 * 1024;

/// The digest of `id`, failed with `reason`: read, redacted with `redactor`
/// (plus the values of the Secrets its pods read) and capped.
pub async fn collect(
    p: &KubeProvider,
    id: &ResourceId,
    reason: &str,
    redactor: &Redactor,
) -> FailureDigest {
    let mut redactor = redactor.clone();
    let mut digest =
        match tokio::time::timeout(COLLECT_TIMEOUT, read(p, id, reason, &mut redactor)).await {
            Ok(digest) => digest,
            Err(_) => FailureDigest {
                resource: id.to_string(),
                reason: reason.to_owned(),
                notes: vec![format!(
                    "reading the cluster for this digest took longer than {}s",
                    COLLECT_TIMEOUT.as_secs()
                )],
                ..FailureDigest::default()
            },
        };
    redactor.digest(&mut digest);
    cap::cap(&mut digest);
    digest
}

/// Kinds whose pods (found by their selector) the digest describes.
const POD_OWNERS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
];

async fn read(
    p: &KubeProvider,
    id: &ResourceId,
    reason: &str,
    redactor: &mut Redactor,
) -> FailureDigest {
    let mut notes = Vec::new();
    let object = match reader::get(p, id).await {
        Ok(object) => object,
        Err(e) => {
            notes.push(format!("reading the object: {e}"));
            None
        }
    };
    let mut related = Related::default();
    let namespace = id.namespace.as_deref();
    if let (Some(obj), Some(ns)) = (&object, namespace) {
        let owns_pods = POD_OWNERS.iter().any(|(g, k)| id.is(g, k));
        if let (true, Some(selector)) = (owns_pods, readiness::pod_selector(obj)) {
            let pods = ResourceId::kubernetes("v1", "Pod", Some(ns), "");
            match reader::list(p, &pods, &selector).await {
                Ok(items) => related.pods = items,
                Err(e) => notes.push(format!("listing pods: {e}")),
            }
            if id.is("apps", "Deployment") {
                let sets = ResourceId::kubernetes("apps/v1", "ReplicaSet", Some(ns), "");
                match reader::list(p, &sets, &selector).await {
                    Ok(items) => related.replica_sets = items,
                    Err(e) => notes.push(format!("listing ReplicaSets: {e}")),
                }
            }
        }
        let events: Api<Event> = Api::namespaced(p.client.clone(), ns);
        match events
            .list(&ListParams::default().fields("type=Warning"))
            .await
        {
            Ok(list) => {
                related.events = list
                    .items
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect();
            }
            Err(e) => notes.push(format!("listing events: {e}")),
        }
    }
    let (mut digest, targets) = assemble(id, reason, object.as_ref(), &related);
    digest.notes.extend(notes);
    let Some(ns) = namespace else {
        return digest;
    };
    redactor.extend(secret_values(p, ns, &related.pods, object.as_ref(), id).await);
    let pods: Api<Pod> = Api::namespaced(p.client.clone(), ns);
    for target in targets {
        let params = LogParams {
            container: Some(target.container.clone()),
            tail_lines: Some(LOG_LINES_PER_CONTAINER as i64),
            limit_bytes: Some(LOG_LIMIT_BYTES),
            ..LogParams::default()
        };
        let result = pods.logs(&target.pod, &params).await;
        let Some(report) = digest
            .containers
            .iter_mut()
            .find(|c| c.pod == target.pod && c.container == target.container)
        else {
            continue;
        };
        match result {
            Ok(text) => report.log = text.lines().map(str::to_owned).collect(),
            Err(kube::Error::Api(status)) => report.log_error = Some(status.message),
            Err(e) => report.log_error = Some(e.to_string()),
        }
    }
    digest
}

/// The names of the Secrets a pod spec reads: `env[].valueFrom.secretKeyRef`,
/// `envFrom[].secretRef`, `volumes[].secret` (and projected sources).
fn secret_names(spec: &Value, names: &mut BTreeSet<String>) {
    let mut add = |v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str) {
            names.insert(n.to_owned());
        }
    };
    for list in ["initContainers", "containers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add(env.pointer("/valueFrom/secretKeyRef/name"));
            }
            for from in c
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(from.pointer("/secretRef/name"));
            }
        }
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(volume.pointer("/secret/secretName"));
        for source in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(source.pointer("/secret/name"));
        }
    }
}

/// The values of the Secrets the object's pods (or its pod template) read, for
/// redaction only; a Secret that cannot be read is skipped.
async fn secret_values(
    p: &KubeProvider,
    ns: &str,
    pods: &[Value],
    object: Option<&Value>,
    id: &ResourceId,
) -> Vec<String> {
    let mut names = BTreeSet::new();
    for pod in pods {
        if let Some(spec) = pod.get("spec") {
            secret_names(spec, &mut names);
        }
    }
    if let Some(obj) = object {
        let spec = if id.kind == "Pod" {
            obj.get("spec")
        } else {
            obj.pointer("/spec/template/spec")
        };
        if let Some(spec) = spec {
            secret_names(spec, &mut names);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(p.client.clone(), ns);
    let mut values = Vec::new();
    for name in names {
        let Ok(Some(secret)) = secrets.get_opt(&name).await else {
            continue;
        };
        for bytes in secret.data.into_iter().flat_map(|d| d.into_values()) {
            values.push(String::from_utf8_lossy(&bytes.0).into_owned());
        }
        values.extend(secret.string_data.into_iter().flat_map(|d| d.into_values()));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_from_env_env_from_and_volumes() {
        let spec = serde_json::json!({
            "containers": [{"name": "web", "env": [
                {"name": "A", "value": "x"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "B"}}}
            ], "envFrom": [{"secretRef": {"name": "more"}}, {"configMapRef": {"name": "cm"}}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "tls"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "proj"}}]}}]
        });
        let mut names = BTreeSet::new();
        secret_names(&spec, &mut names);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["app-secrets", "more", "proj", "tls"]
        );
    }
}
