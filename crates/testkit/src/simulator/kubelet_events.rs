//! The Warning Events a kubelet records about a pod whose container fails, for
//! the failures the simulator injects ([`super::annotations`]):
//!
//! | simulated | reason | message |
//! | --- | --- | --- |
//! | `CrashLoopBackOff` | `BackOff` | `Back-off restarting failed container C in pod P_NS(UID)` |
//! | `ImagePullBackOff`, `ErrImagePull` | `Failed` | the waiting message (`Back-off pulling image …`) |
//! | `Unhealthy` | `Unhealthy` | `Readiness probe failed: …` ([`MESSAGE`](super::annotations::MESSAGE) or an HTTP 503) |
//!
//! One Event per pod and reason, created once (`source.component: kubelet`).

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::Ctx;
use super::annotations::Injection;
use super::status::{now, time_string};

/// The (reason, message, container) of the Event a kubelet would record, if any.
pub(crate) fn event_for(pod: &Pod) -> Option<(&'static str, String, String)> {
    let injection = Injection::of(pod.metadata.annotations.as_ref());
    let container = pod.spec.as_ref()?.containers.first()?;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let image = container.image.as_deref().unwrap_or_default();
    let (reason, message) = match injection.simulate.as_deref()? {
        "CrashLoopBackOff" => (
            "BackOff",
            format!(
                "Back-off restarting failed container {} in pod {name}_{namespace}({uid})",
                container.name
            ),
        ),
        "ImagePullBackOff" | "ErrImagePull" => (
            "Failed",
            injection.message_or(|| format!("Failed to pull image \"{image}\": not found")),
        ),
        "Unhealthy" => (
            "Unhealthy",
            injection.message_or(|| {
                "Readiness probe failed: HTTP probe failed with statuscode: 503".to_owned()
            }),
        ),
        _ => return None,
    };
    Some((reason, message, container.name.clone()))
}

/// Records the kubelet's Event about `pod`, if its simulated failure has one.
pub(crate) async fn record(ctx: &Ctx, pod: &Pod) {
    let Some((reason, message, container)) = event_for(pod) else {
        return;
    };
    let (Some(namespace), Some(name)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    ) else {
        return;
    };
    let t = time_string(now());
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{name}.testkit-{}", reason.to_ascii_lowercase()),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": name,
            "namespace": namespace,
            "uid": pod.metadata.uid,
            "fieldPath": format!("spec.containers{{{container}}}"),
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 1,
        "firstTimestamp": t,
        "lastTimestamp": t,
        "source": {"component": "kubelet", "host": ctx.options.node_name},
        "reportingComponent": "kubelet",
        "reportingInstance": ctx.options.node_name,
    });
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return;
    };
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), namespace);
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            tracing::debug!(%namespace, pod = %name, reason, "simulated kubelet event recorded")
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            tracing::warn!(%namespace, pod = %name, error = %e, "recording a kubelet event failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::SIMULATE;

    #[test]
    fn events_per_simulated_failure() {
        let pod = |simulate: &str| -> Pod {
            serde_yaml_ng::from_str(&format!(
                "metadata: {{name: web-1, namespace: ns, uid: u1, annotations: {{'{SIMULATE}': {simulate}}}}}\n\
                 spec: {{containers: [{{name: web, image: 'ghcr.io/x/web@sha256:00'}}]}}"
            ))
            .expect("pod")
        };
        let (reason, message, container) = event_for(&pod("CrashLoopBackOff")).expect("event");
        assert_eq!(reason, "BackOff");
        assert_eq!(
            message,
            "Back-off restarting failed container web in pod web-1_ns(u1)"
        );
        assert_eq!(container, "web");
        assert_eq!(event_for(&pod("ErrImagePull")).expect("event").0, "Failed");
        assert!(
            event_for(&pod("Unhealthy"))
                .expect("event")
                .1
                .starts_with("Readiness probe failed")
        );
        assert_eq!(event_for(&pod("Fail")), None);
    }
}
