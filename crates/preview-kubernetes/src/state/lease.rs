//! The stack lock of the Kubernetes backend: a `coordination.k8s.io/v1` Lease
//! `preview-lock-<stack>` in the state namespace.
//!
//! - `holderIdentity` is the JSON of a [`LockHolder`] (host, pid, start time and
//!   a random token identifying this acquisition);
//! - **acquire** = create the Lease; if it exists and has expired
//!   (`renewTime + leaseDurationSeconds < now`, by this machine's clock), take it
//!   over by replacing it with its `resourceVersion` as a precondition, so of two
//!   runs taking over the same expired Lease exactly one wins;
//! - while held, a background task renews `renewTime` every third of the
//!   duration (default 20 s → every ~6.7 s); if it finds another holder, the lock
//!   is marked lost ([`StackLock::is_lost`]);
//! - **release** deletes the Lease with a `resourceVersion` precondition, only if
//!   it still names this holder; dropping the guard does the same in the
//!   background;
//! - a crashed holder stops renewing, so its Lease expires on its own after the
//!   lease duration (≤ 60 s); `stacks state break-lock STACK` deletes it at once.
//!
//! Clocks: expiry compares the holder's `renewTime` with the reader's clock, so
//! runners' clocks must agree to well within the lease duration (NTP).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, Preconditions};

use super::{
    KubeBackend, LABEL_MANAGED_BY, LABEL_STACK, MANAGED_BY, kube_io, post_params, status_code,
};
use preview_core::state::{LockHolder, StackLock, StateBackend, StateError};

/// Name of a stack's lock Lease.
pub fn lease_name(stack: &str) -> String {
    format!("preview-lock-{stack}")
}

/// Now, at microsecond precision (what a MicroTime holds).
pub fn now_micro() -> MicroTime {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A time `ago` before now (tests use it to fake a dead holder).
pub fn micro_ago(ago: Duration) -> MicroTime {
    let now = now_micro().0.as_microsecond();
    let ago = i64::try_from(ago.as_micros()).unwrap_or(i64::MAX);
    MicroTime(Timestamp::from_microsecond(now.saturating_sub(ago)).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// When a Lease expires (µs since the epoch): last renewal (or acquisition) plus
/// its duration. `None` when it names no holder or has no time: free to take.
pub fn expires_at(spec: &LeaseSpec) -> Option<i64> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    Some(last.0.as_microsecond().saturating_add(duration * 1_000_000))
}

/// True when the Lease no longer protects anything at `now` (µs since the epoch).
pub fn is_expired(spec: &LeaseSpec, now: i64) -> bool {
    expires_at(spec).is_none_or(|t| t < now)
}

/// A human description of a Lease's holder, with its timing.
pub fn describe_holder(lease: &Lease) -> String {
    let Some(spec) = &lease.spec else {
        return "a Lease without spec".into();
    };
    let raw = spec.holder_identity.clone().unwrap_or_default();
    let who = serde_json::from_str::<LockHolder>(&raw)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| format!("holder {raw:?}"));
    let now = now_micro().0.as_microsecond();
    let timing = match expires_at(spec) {
        Some(t) if t >= now => format!("expires in {} s unless renewed", (t - now) / 1_000_000 + 1),
        Some(t) => format!("expired {} s ago", (now - t) / 1_000_000),
        None => "not held".into(),
    };
    format!(
        "{who} (Lease {}/{}, {timing})",
        lease.metadata.namespace.as_deref().unwrap_or(""),
        lease.metadata.name.as_deref().unwrap_or("")
    )
}

fn leases(backend: &KubeBackend) -> Api<Lease> {
    Api::namespaced(backend.client.clone(), &backend.namespace)
}

fn lease_object(stack: &str, identity: &str, duration: Duration, transitions: i32) -> Lease {
    let now = now_micro();
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(stack)),
            labels: Some(
                [
                    (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                    (LABEL_STACK.to_owned(), stack.to_owned()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(60)),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

/// State shared between the guard and its renewal task.
struct Shared {
    lost: AtomicBool,
}

/// A held Lease.
pub struct KubeLock {
    api: Api<Lease>,
    name: String,
    stack: String,
    identity: String,
    shared: Arc<Shared>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

/// Takes the stack's Lease or fails with [`StateError::Locked`] naming the holder.
pub(crate) async fn acquire(backend: &KubeBackend, stack: &str) -> Result<KubeLock, StateError> {
    let api = leases(backend);
    let name = lease_name(stack);
    let me = LockHolder::current();
    let identity = serde_json::to_string(&me).map_err(|e| StateError::Io {
        backend: backend.describe(),
        message: format!("cannot encode lock holder: {e}"),
        source: None,
    })?;
    let duration = backend.lease_duration;
    for _ in 0..5 {
        let fresh = lease_object(stack, &identity, duration, 0);
        match api.create(&post_params(), &fresh).await {
            Ok(created) => return Ok(held(backend, api, name, stack, identity, created)),
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => {
                return Err(kube_io(
                    &backend.describe(),
                    format!("creating lease {name}"),
                    e,
                ));
            }
        }
        let Some(existing) = api
            .get_opt(&name)
            .await
            .map_err(|e| kube_io(&backend.describe(), format!("reading lease {name}"), e))?
        else {
            continue; // released in between: try to create again
        };
        let spec = existing.spec.clone().unwrap_or_default();
        if !is_expired(&spec, now_micro().0.as_microsecond()) {
            return Err(StateError::Locked {
                stack: stack.to_owned(),
                holder: describe_holder(&existing),
            });
        }
        tracing::warn!(stack, holder = %describe_holder(&existing), "taking over an expired lock");
        let mut takeover = lease_object(
            stack,
            &identity,
            duration,
            spec.lease_transitions.unwrap_or(0) + 1,
        );
        takeover.metadata.resource_version = existing.metadata.resource_version.clone();
        match api.replace(&name, &post_params(), &takeover).await {
            Ok(taken) => return Ok(held(backend, api, name, stack, identity, taken)),
            // Another run took it over first: the next round names it.
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => {
                return Err(kube_io(
                    &backend.describe(),
                    format!("taking over lease {name}"),
                    e,
                ));
            }
        }
    }
    Err(StateError::Locked {
        stack: stack.to_owned(),
        holder: "other runs (the lock changed hands repeatedly while this run tried to take it)"
            .into(),
    })
}

fn held(
    backend: &KubeBackend,
    api: Api<Lease>,
    name: String,
    stack: &str,
    identity: String,
    lease: Lease,
) -> KubeLock {
    let shared = Arc::new(Shared {
        lost: AtomicBool::new(false),
    });
    let renewer = tokio::spawn(renew_loop(
        api.clone(),
        name.clone(),
        stack.to_owned(),
        identity.clone(),
        backend.lease_duration,
        lease,
        shared.clone(),
    ));
    KubeLock {
        api,
        name,
        stack: stack.to_owned(),
        identity,
        shared,
        renewer: Some(renewer),
        released: false,
    }
}

/// Renews the Lease every third of its duration until aborted or lost.
async fn renew_loop(
    api: Api<Lease>,
    name: String,
    stack: String,
    identity: String,
    duration: Duration,
    mut lease: Lease,
    shared: Arc<Shared>,
) {
    let period = duration / 3;
    loop {
        tokio::time::sleep(period).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut next = lease.clone();
            if let Some(spec) = next.spec.as_mut() {
                spec.renew_time = Some(now_micro());
            }
            match api.replace(&name, &post_params(), &next).await {
                Ok(renewed) => {
                    lease = renewed;
                    break;
                }
                Err(e) if status_code(&e) == Some(409) || status_code(&e) == Some(404) => {
                    // Changed under us: still ours (a retried renewal), or lost?
                    match api.get_opt(&name).await {
                        Ok(Some(current))
                            if current
                                .spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.as_deref())
                                == Some(identity.as_str()) =>
                        {
                            lease = current;
                        }
                        Ok(other) => {
                            let by = other.as_ref().map_or_else(
                                || "nobody (it was deleted)".to_owned(),
                                describe_holder,
                            );
                            tracing::error!(stack, now_held_by = %by, "lost the stack lock: it was broken or expired");
                            shared.lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(stack, error = %e, "cannot read the lock lease"),
                    }
                }
                Err(e) => {
                    tracing::warn!(stack, error = %e, "cannot renew the lock lease; retrying");
                }
            }
            if attempts >= 3 {
                break;
            }
        }
    }
}

/// Deletes the Lease if it still names `identity`.
async fn release_lease(api: &Api<Lease>, name: &str, identity: &str) -> Result<(), kube::Error> {
    for _ in 0..3 {
        let Some(current) = api.get_opt(name).await? else {
            return Ok(());
        };
        let ours = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(identity);
        if !ours {
            tracing::warn!(
                lease = name,
                "the lock was taken by another run before release"
            );
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: current.metadata.resource_version.clone(),
                uid: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => return Ok(()),
            Err(e) if matches!(status_code(&e), Some(404)) => return Ok(()),
            Err(e) if matches!(status_code(&e), Some(409)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl KubeLock {
    fn stop_renewing(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

#[async_trait]
impl StackLock for KubeLock {
    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.stop_renewing();
        self.released = true;
        release_lease(&self.api, &self.name, &self.identity)
            .await
            .map_err(|e| StateError::Io {
                backend: "kubernetes".into(),
                message: format!(
                    "cannot release lease {} of stack {} (it expires on its own): {e}",
                    self.name, self.stack
                ),
                source: Some(Box::new(e)),
            })
    }

    fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }
}

impl Drop for KubeLock {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.released {
            return;
        }
        let (api, name, identity) = (self.api.clone(), self.name.clone(), self.identity.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = release_lease(&api, &name, &identity).await {
                    tracing::warn!(lease = %name, error = %e, "could not release the lock on drop; it expires on its own");
                }
            });
        }
    }
}

/// Deletes a stack's Lease whoever holds it; returns the holder it removed.
pub(crate) async fn break_lease(
    backend: &KubeBackend,
    stack: &str,
) -> Result<Option<String>, StateError> {
    let api = leases(backend);
    let name = lease_name(stack);
    let Some(existing) = api
        .get_opt(&name)
        .await
        .map_err(|e| kube_io(&backend.describe(), format!("reading lease {name}"), e))?
    else {
        return Ok(None);
    };
    let holder = describe_holder(&existing);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(Some(holder)),
        Err(e) if status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(kube_io(
            &backend.describe(),
            format!("deleting lease {name}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_ago: Duration, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(secs),
            renew_time: Some(micro_ago(renewed_ago)),
            ..Default::default()
        }
    }

    #[test]
    fn expiry_rules() {
        let now = now_micro().0.as_microsecond();
        assert!(!is_expired(
            &spec(Some("a"), Duration::from_secs(5), 20),
            now
        ));
        assert!(is_expired(
            &spec(Some("a"), Duration::from_secs(25), 20),
            now
        ));
        assert!(is_expired(&spec(None, Duration::ZERO, 20), now));
        assert!(is_expired(&spec(Some(""), Duration::ZERO, 20), now));
        let mut no_time = spec(Some("a"), Duration::ZERO, 20);
        no_time.renew_time = None;
        assert!(is_expired(&no_time, now));
    }

    #[test]
    fn micro_time_has_the_format_the_api_server_accepts() {
        let json = serde_json::to_value(now_micro()).expect("json");
        let text = json.as_str().expect("string");
        // 2026-11-25T01:02:03.000000Z
        assert_eq!(text.len(), 27, "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.', "{text}");
    }

    #[test]
    fn holder_description_names_host_pid_and_start() {
        let me = LockHolder::current();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("preview-lock-s".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(serde_json::to_string(&me).expect("json")),
                lease_duration_seconds: Some(20),
                renew_time: Some(now_micro()),
                ..Default::default()
            }),
        };
        let text = describe_holder(&lease);
        assert!(text.starts_with(&me.to_string()), "{text}");
        assert!(
            text.contains("Lease ns/preview-lock-s, expires in"),
            "{text}"
        );
        assert!(!text.contains(&me.token), "{text}");
    }
}
