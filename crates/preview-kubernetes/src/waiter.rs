//! Waits for readiness and for deletion, driven by watches.
//!
//! Each wait opens watches on the object (by name) and, for kinds whose
//! readiness depends on them, on the pods and ReplicaSets it selects. Every
//! event triggers a fresh evaluation of the pure rule in [`crate::readiness`];
//! a slow safety tick covers missed events. Known failures (ImagePullBackOff, a
//! quota rejection…) are reported as soon as they are seen and fail the step
//! when they persist past the failure grace period, not only at the timeout.

use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt, stream};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::time::Instant;

use super::kinds::api_for;
use super::{KubeProvider, reader, writer};
use crate::readiness::{self, Readiness, Related};
use preview_core::events::{Event, EventSink};
use preview_core::provider::{ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId, WaitRule};

/// Re-evaluate at least this often even without events.
const SAFETY_TICK: Duration = Duration::from_secs(2);

type Changes = Pin<Box<dyn Stream<Item = ()> + Send>>;

fn watch_changes(api: kube::Api<kube::core::DynamicObject>, config: watcher::Config) -> Changes {
    Box::pin(watcher(api, config).map(|_| ()))
}

async fn object_changes(p: &KubeProvider, id: &ResourceId) -> Result<Changes, ProviderError> {
    let kind = p.kinds.resolve(&p.client, id).await?;
    let api = api_for(&p.client, &kind, id)?;
    Ok(watch_changes(
        api,
        watcher::Config::default().fields(&format!("metadata.name={}", id.name)),
    ))
}

/// Waits for the next change (or the safety tick), bounded by the deadline.
async fn next_change(changes: &mut Changes, deadline: Instant) {
    let wait = SAFETY_TICK.min(deadline.saturating_duration_since(Instant::now()));
    let _ = tokio::time::timeout(wait, changes.next()).await;
    // Drain whatever else is already queued, so a burst of events costs one evaluation.
    while let Some(Some(())) = changes.next().now_or_never() {}
}

/// The pod-selected kinds a readiness rule for `id` reads (pods, ReplicaSets),
/// as kind-of ids in the object's namespace, with the label selector to use.
fn selected_kinds(id: &ResourceId, obj: &Value) -> Option<(Vec<ResourceId>, String)> {
    let needs = readiness::related_needed(id);
    let selector = readiness::pod_selector(obj)?;
    let ns = id.namespace.as_deref();
    let kinds = [
        (needs.pods, "v1", "Pod"),
        (needs.replica_sets, "apps/v1", "ReplicaSet"),
    ]
    .into_iter()
    .filter(|(wanted, _, _)| *wanted)
    .map(|(_, api_version, kind)| ResourceId::kubernetes(api_version, kind, ns, ""))
    .collect();
    Some((kinds, selector))
}

async fn related_objects(
    p: &KubeProvider,
    id: &ResourceId,
    obj: &Value,
) -> Result<Related, ProviderError> {
    let mut related = Related::default();
    if readiness::related_needed(id).events {
        // A claim's own events (some are Normal); a workload's rule reads the
        // Warning events of its ReplicaSets and pods too.
        related.events = match id.namespace.as_deref() {
            Some(ns) if !id.is("", "PersistentVolumeClaim") => {
                reader::warning_events_in(p, ns).await?
            }
            _ => reader::events_about(p, id).await?,
        };
    }
    let Some((kinds, selector)) = selected_kinds(id, obj) else {
        return Ok(related);
    };
    for kind_of in kinds {
        let items = reader::list(p, &kind_of, &selector).await?;
        match kind_of.kind.as_str() {
            "Pod" => related.pods = items,
            _ => related.replica_sets = items,
        }
    }
    Ok(related)
}

async fn related_changes(
    p: &KubeProvider,
    id: &ResourceId,
    obj: &Value,
) -> Result<Vec<Changes>, ProviderError> {
    let Some((kinds, selector)) = selected_kinds(id, obj) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for kind_of in kinds {
        let k = p.kinds.resolve(&p.client, &kind_of).await?;
        let api = api_for(&p.client, &k, &kind_of)?;
        out.push(watch_changes(
            api,
            watcher::Config::default().labels(&selector),
        ));
    }
    Ok(out)
}

/// Waits until `res` is ready by its rule; returns the last observed object.
pub async fn wait_ready(
    p: &KubeProvider,
    res: &Resource,
    opts: WaitOptions,
    events: &EventSink,
) -> Result<Value, ProviderError> {
    let id = &res.id;
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut changes: Changes = object_changes(p, id).await?;
    let mut watching_related = false;
    let mut last_message = String::new();
    let mut failing_since: Option<Instant> = None;
    loop {
        let obj = reader::get(p, id).await?;
        let verdict = match &obj {
            None => Readiness::InProgress("waiting for the object to appear".into()),
            Some(obj) if res.options.wait == WaitRule::None => {
                return Ok(obj.clone());
            }
            Some(obj) => {
                if !watching_related {
                    let extra = related_changes(p, id, obj).await?;
                    if !extra.is_empty() {
                        let mut all = extra;
                        all.push(changes);
                        changes = Box::pin(stream::select_all(all));
                    }
                    watching_related = true;
                }
                let related = related_objects(p, id, obj).await?;
                readiness::evaluate(id, &res.options.wait, obj, &related)
            }
        };
        match verdict {
            Readiness::Ready => return Ok(obj.unwrap_or(Value::Null)),
            Readiness::Failed(message) => {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message,
                });
            }
            Readiness::Failing(message) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if message != last_message {
                    events.emit(Event::Waiting {
                        id: id.clone(),
                        reason: message.clone(),
                        failing: true,
                    });
                }
                if since.elapsed() >= opts.failure_grace {
                    return Err(ProviderError::NotReady {
                        id: id.clone(),
                        message: format!(
                            "{message} (still failing after {}s)",
                            since.elapsed().as_secs()
                        ),
                    });
                }
                last_message = message;
            }
            Readiness::InProgress(message) => {
                failing_since = None;
                if message != last_message {
                    events.emit(Event::Waiting {
                        id: id.clone(),
                        reason: message.clone(),
                        failing: false,
                    });
                }
                last_message = message;
            }
        }
        if Instant::now() >= deadline {
            return Err(ProviderError::NotReady {
                id: id.clone(),
                message: format!(
                    "not ready after {}s: {last_message}",
                    opts.timeout.as_secs()
                ),
            });
        }
        next_change(&mut changes, deadline).await;
    }
}

/// Waits until the object no longer exists. A namespace stuck Terminating is
/// reported with its conditions; its finalizers are removed only when
/// `opts.force_finalize` is set.
pub async fn wait_gone(
    p: &KubeProvider,
    id: &ResourceId,
    opts: WaitOptions,
    events: &EventSink,
) -> Result<(), ProviderError> {
    let deadline = Instant::now() + opts.timeout;
    let mut changes = object_changes(p, id).await?;
    let mut last_message = String::new();
    let mut finalized = false;
    let is_namespace = id.is("", "Namespace");
    let stuck_after = Instant::now() + opts.failure_grace;
    loop {
        let Some(obj) = reader::get(p, id).await? else {
            return Ok(());
        };
        let blocked = if is_namespace {
            readiness::is_gone_blocked(&obj)
        } else {
            None
        };
        let message = blocked
            .clone()
            .unwrap_or_else(|| "waiting for deletion to finish".to_owned());
        if message != last_message {
            events.emit(Event::Waiting {
                id: id.clone(),
                reason: message.clone(),
                failing: blocked.is_some(),
            });
            last_message = message.clone();
        }
        if is_namespace
            && opts.force_finalize
            && !finalized
            && blocked.is_some()
            && Instant::now() >= stuck_after
        {
            events.emit(Event::Warning {
                id: Some(id.clone()),
                message: "removing the namespace's finalizers (--force-finalize)".into(),
            });
            writer::force_finalize_namespace(p, id).await?;
            finalized = true;
        }
        if Instant::now() >= deadline {
            let hint = if is_namespace && !opts.force_finalize {
                "; inspect it, or re-run destroy with --force-finalize to remove its finalizers"
            } else {
                ""
            };
            return Err(ProviderError::NotReady {
                id: id.clone(),
                message: format!(
                    "still present after {}s: {message}{hint}",
                    opts.timeout.as_secs()
                ),
            });
        }
        next_change(&mut changes, deadline).await;
    }
}
