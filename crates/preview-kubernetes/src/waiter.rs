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
use preview_core::resource::{Resource, ResourceId, STACK_LABEL, WaitRule};

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

/// The finalizers holding an object that is being deleted (none: it is not
/// being deleted, or nothing holds it).
fn holding_finalizers(obj: &Value) -> Vec<String> {
    if obj.pointer("/metadata/deletionTimestamp").is_none() {
        return Vec::new();
    }
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How far a force-finalize of a stuck deletion went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forcing {
    /// Nothing removed yet.
    Not,
    /// A namespace: the finalizers of the stack's own content were removed.
    ContentReleased,
    /// Everything force-finalize may do was done.
    Done,
}

/// Whether a terminating namespace still has content (with finalizers or not)
/// by its conditions.
fn content_remaining(namespace_obj: &Value) -> bool {
    namespace_obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("NamespaceContentRemaining" | "NamespaceFinalizersRemaining")
                ) && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// "held by finalizer a" / "held by finalizers a, b".
fn held_by(finalizers: &[String]) -> String {
    format!(
        "held by finalizer{} {}",
        if finalizers.len() == 1 { "" } else { "s" },
        finalizers.join(", ")
    )
}

/// Waits until the object no longer exists. A namespace stuck Terminating is
/// reported with its conditions, any other object being deleted with the
/// finalizers holding it. With `opts.force_finalize`, once that has lasted the
/// failure grace: another object's `metadata.finalizers` are removed when it
/// carries a stack's label (the object this destroy deleted after checking its
/// ownership); for a namespace, first those of its content carrying the
/// namespace's stack label ([`reader::held_content`]), and after another grace
/// period the namespace's own `spec.finalizers`, unless content (then not the
/// stack's) still remains.
pub async fn wait_gone(
    p: &KubeProvider,
    id: &ResourceId,
    opts: WaitOptions,
    events: &EventSink,
) -> Result<(), ProviderError> {
    let deadline = Instant::now() + opts.timeout;
    let mut changes = object_changes(p, id).await?;
    let mut last_message = String::new();
    let mut forcing = Forcing::Not;
    let is_namespace = id.is("", "Namespace");
    let mut stuck_after = Instant::now() + opts.failure_grace;
    loop {
        let Some(obj) = reader::get(p, id).await? else {
            return Ok(());
        };
        let blocked = if is_namespace {
            readiness::is_gone_blocked(&obj)
        } else {
            let held = holding_finalizers(&obj);
            (!held.is_empty()).then(|| format!("being deleted, {}", held_by(&held)))
        };
        let message = blocked
            .clone()
            .unwrap_or_else(|| "waiting for deletion to finish".to_owned());
        if message != last_message {
            events.emit(Event::Waiting {
                id: id.clone(),
                reason: message.clone(),
                // Finalizers of other objects usually finish on their own
                // (pvc-protection once the pod is gone…).
                failing: is_namespace && blocked.is_some(),
            });
            last_message = message.clone();
        }
        if opts.force_finalize && blocked.is_some() && Instant::now() >= stuck_after {
            match (is_namespace, forcing) {
                (false, Forcing::Not) => {
                    let removed = writer::release_finalizers(p, id, None).await?;
                    if !removed.is_empty() {
                        events.emit(Event::Warning {
                            id: Some(id.clone()),
                            message: format!(
                                "removed finalizers {} (force-finalize)",
                                removed.join(", ")
                            ),
                        });
                    }
                    forcing = Forcing::Done;
                }
                (true, Forcing::Not) => {
                    // First the stack's own content holding the namespace; the
                    // namespace controller then gets another grace period.
                    if let Some(stack) = obj
                        .pointer("/metadata/labels")
                        .and_then(|l| l.get(STACK_LABEL))
                        .and_then(Value::as_str)
                    {
                        let held = match reader::held_content(p, &id.name, stack).await {
                            Ok(held) => held,
                            Err(e) => {
                                events.emit(Event::Warning {
                                    id: Some(id.clone()),
                                    message: format!("cannot list the namespace's content: {e}"),
                                });
                                Vec::new()
                            }
                        };
                        for held in held {
                            let removed = writer::release_finalizers(p, &held, Some(stack)).await?;
                            if !removed.is_empty() {
                                events.emit(Event::Warning {
                                    id: Some(held.clone()),
                                    message: format!(
                                        "removed finalizers {} (force-finalize; it held namespace {})",
                                        removed.join(", "),
                                        id.name
                                    ),
                                });
                            }
                        }
                    }
                    forcing = Forcing::ContentReleased;
                    stuck_after = Instant::now() + opts.failure_grace;
                }
                // Content that still holds it is not the stack's: removing the
                // namespace now would orphan it, so it is left to its owner.
                (true, Forcing::ContentReleased) if !content_remaining(&obj) => {
                    events.emit(Event::Warning {
                        id: Some(id.clone()),
                        message: "removing the namespace's finalizers (force-finalize)".into(),
                    });
                    writer::force_finalize_namespace(p, id).await?;
                    forcing = Forcing::Done;
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(ProviderError::NotReady {
                id: id.clone(),
                message: format!("still present after {}s: {message}", opts.timeout.as_secs()),
            });
        }
        next_change(&mut changes, deadline).await;
    }
}
