//! The single module that changes the cluster.
//!
//! Create and update are one server-side apply with the [`FIELD_MANAGER`]
//! (`force` only when the caller explicitly asked to take ownership of fields
//! another manager holds). Whether an apply may create is decided by the planner
//! (it refuses to adopt objects the stack does not own) — this module only executes.
//!
//! An apply answered HTTP 500 with a message saying an admission step timed out
//! (`resource quota evaluation timed out`, from an API server short of CPU) is
//! sent again, at most [`TIMED_OUT_RETRIES`] times with exponential backoff and
//! jitter (the one schedule, `preview_core::retry::Backoff`): a server-side apply is idempotent. (429/503/504 are retried lower
//! down, by the client stack in `connection.rs`.)

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use serde_json::{Value, json};

use super::errors::{api_error, status_code};
use super::kinds::api_for;
use super::{FIELD_MANAGER, KubeProvider};
use preview_core::provider::ProviderError;
use preview_core::resource::{Resource, ResourceId, STACK_LABEL};
use preview_core::retry::Backoff;

/// Retries of an apply whose admission timed out on the server (HTTP 500).
pub const TIMED_OUT_RETRIES: usize = 3;

/// Whether `err` is the API server saying a step of its own timed out (HTTP
/// 500 "… timed out"): nothing was stored, and the same apply may succeed.
fn server_timed_out(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 500 && status.message.contains("timed out"))
}

/// Server-side apply of the desired body; returns the stored object.
pub async fn apply(p: &KubeProvider, res: &Resource, force: bool) -> Result<Value, ProviderError> {
    let id = &res.id;
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force;
    let mut delays = Backoff {
        first: std::time::Duration::from_millis(500),
        max: std::time::Duration::from_secs(5),
    }
    .delays();
    let mut retries = 0;
    let obj = loop {
        match api.patch(&id.name, &params, &Patch::Apply(&res.body)).await {
            Ok(obj) => break obj,
            Err(e) if server_timed_out(&e) && retries < TIMED_OUT_RETRIES => {
                retries += 1;
                let wait = delays.next().unwrap_or(std::time::Duration::from_secs(5));
                tracing::warn!(%id, retries, "the API server timed out admitting the apply; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(api_error(id, "apply", e)),
        }
    };
    serde_json::to_value(&obj).map_err(|e| ProviderError::failed(id, "cannot encode object", e))
}

/// Requests deletion with background propagation; a missing object is not an
/// error. With `uid`, the delete is conditional on it (`preconditions.uid`): the
/// API server refuses (409) to delete an object with another uid, i.e. one
/// recreated since the planner checked it.
pub async fn delete(
    p: &KubeProvider,
    id: &ResourceId,
    uid: Option<&str>,
) -> Result<(), ProviderError> {
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&id.name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) if status_code(&e) == Some(409) => {
            // A namespace already terminating answers 409 "the system is ensuring
            // all content is removed": deletion of that very namespace is under
            // way, which is what was asked. Anything else (a failed uid
            // precondition) is an error.
            let live = api
                .get_opt(&id.name)
                .await
                .map_err(|e| api_error(id, "get", e))?;
            let Some(live) = live else { return Ok(()) };
            let terminating = live.metadata.deletion_timestamp.is_some();
            let same = uid.is_none_or(|uid| live.metadata.uid.as_deref() == Some(uid));
            if id.is("", "Namespace") && terminating && same {
                return Ok(());
            }
            Err(if same {
                api_error(id, "delete", e)
            } else {
                ProviderError::Other {
                    id: id.clone(),
                    message: format!(
                        "not deleted: the object now has uid {}, not the checked {} (it was recreated since it was planned)",
                        live.metadata.uid.as_deref().unwrap_or("(none)"),
                        uid.unwrap_or_default()
                    ),
                }
            })
        }
        Err(e) => Err(api_error(id, "delete", e)),
    }
}

/// Removes `metadata.finalizers` of an object that is already being deleted
/// (destroy with force-finalize), only when it carries the stack's label: with
/// `stack`, exactly that stack's; without, any stack's (the object a destroy is
/// waiting on, whose ownership the planner checked before deleting it). The
/// patch carries the `resourceVersion` read, so an object changed since is left
/// alone. Returns the finalizers removed (none: nothing done).
pub async fn release_finalizers(
    p: &KubeProvider,
    id: &ResourceId,
    stack: Option<&str>,
) -> Result<Vec<String>, ProviderError> {
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    let Some(live) = api
        .get_opt(&id.name)
        .await
        .map_err(|e| api_error(id, "get", e))?
    else {
        return Ok(Vec::new());
    };
    let meta = &live.metadata;
    let label = meta.labels.as_ref().and_then(|l| l.get(STACK_LABEL));
    let owned = match stack {
        Some(stack) => label.is_some_and(|l| l == stack),
        None => label.is_some(),
    };
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    if !owned || meta.deletion_timestamp.is_none() || finalizers.is_empty() {
        return Ok(Vec::new());
    }
    let body = json!({"metadata": {
        "finalizers": null,
        "resourceVersion": meta.resource_version,
    }});
    match api
        .patch(&id.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(finalizers),
        // Gone meanwhile: nothing was holding it any more.
        Err(e) if status_code(&e) == Some(404) => Ok(Vec::new()),
        Err(e) => Err(api_error(id, "finalizer removal", e)),
    }
}

/// Removes `spec.finalizers` of a namespace stuck Terminating (only on explicit request).
pub async fn force_finalize_namespace(
    p: &KubeProvider,
    id: &ResourceId,
) -> Result<(), ProviderError> {
    let request = |e: http::Error| ProviderError::failed(id, "cannot build finalize request", e);
    let body = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": id.name},
        "spec": {"finalizers": []},
    });
    let bytes = serde_json::to_vec(&body).map_err(|e| ProviderError::failed(id, "", e))?;
    let req = http::Request::put(format!("/api/v1/namespaces/{}/finalize", id.name))
        .header("content-type", "application/json")
        .body(bytes)
        .map_err(request)?;
    p.client
        .request::<Value>(req)
        .await
        .map(|_| ())
        .map_err(|e| api_error(id, "finalize", e))
}

#[cfg(test)]
mod tests {
    use super::server_timed_out;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "InternalError")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn only_a_server_side_timeout_is_sent_again() {
        assert!(server_timed_out(&api(
            500,
            "Internal error occurred: resource quota evaluation timed out"
        )));
        assert!(!server_timed_out(&api(
            500,
            "Internal error occurred: something else"
        )));
        assert!(!server_timed_out(&api(
            422,
            "spec.replicas: timed out is not a number"
        )));
    }
}
