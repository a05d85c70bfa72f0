//! Picks what a digest shows from the objects [`super::collect`] read (pure).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ContainerReport, EventLine, FailureDigest, Termination};
use crate::readiness::Related;
use preview_core::resource::ResourceId;

/// Warning Events kept (the most recent).
pub const MAX_EVENTS: usize = 10;
/// Pods whose containers are described (not-ready pods first).
pub const MAX_PODS: usize = 3;

/// A container whose log the digest wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTarget {
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn name(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or("")
}

/// True when `child` names `owner` (by uid, else by kind and name) as an owner,
/// or has no owner references at all.
fn owned_by(child: &Value, owner_kind: &str, owner: &Value) -> bool {
    let Some(refs) = child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return true;
    };
    let uid = str_at(owner, "/metadata/uid");
    refs.iter().any(|r| match (uid, str_at(r, "/uid")) {
        (Some(a), Some(b)) => a == b,
        _ => str_at(r, "/kind") == Some(owner_kind) && str_at(r, "/name") == Some(name(owner)),
    })
}

/// The digest of resource `id`, failed with `reason`, from its live object
/// (if any) and the related objects read for it; and the containers whose logs
/// to read.
pub fn assemble(
    id: &ResourceId,
    reason: &str,
    object: Option<&Value>,
    related: &Related,
) -> (FailureDigest, Vec<LogTarget>) {
    let mut digest = FailureDigest {
        resource: id.to_string(),
        reason: reason.to_owned(),
        ..FailureDigest::default()
    };
    let Some(object) = object else {
        digest.notes.push("the object does not exist".into());
        return (digest, Vec::new());
    };
    // What the object owns: its ReplicaSets (Deployments), then its pods.
    let replica_sets: Vec<&Value> = related
        .replica_sets
        .iter()
        .filter(|rs| owned_by(rs, &id.kind, object))
        .collect();
    let pods: Vec<&Value> = if id.kind == "Pod" {
        vec![object]
    } else {
        related
            .pods
            .iter()
            .filter(|p| {
                if replica_sets.is_empty() {
                    owned_by(p, &id.kind, object)
                } else {
                    replica_sets.iter().any(|rs| owned_by(p, "ReplicaSet", rs))
                }
            })
            .collect()
    };
    let mut involved: BTreeSet<(String, String)> = BTreeSet::new();
    involved.insert((id.kind.clone(), id.name.clone()));
    for rs in &replica_sets {
        involved.insert(("ReplicaSet".into(), name(rs).to_owned()));
    }
    for pod in &pods {
        involved.insert(("Pod".into(), name(pod).to_owned()));
    }
    digest.events = warning_events(&related.events, &involved);

    let mut ordered: Vec<&Value> = pods;
    ordered.sort_by_key(|p| (is_ready(p), name(p).to_owned()));
    let failing: Vec<&Value> = ordered.into_iter().filter(|p| !is_ready(p)).collect();
    if failing.len() > MAX_PODS {
        digest.notes.push(format!(
            "{} more pods not ready, not shown",
            failing.len() - MAX_PODS
        ));
    }
    let mut targets = Vec::new();
    for pod in failing.into_iter().take(MAX_PODS) {
        for (pointer, init) in [
            ("/status/initContainerStatuses", true),
            ("/status/containerStatuses", false),
        ] {
            for status in pod
                .pointer(pointer)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(report) = container_report(pod, status, init) else {
                    continue;
                };
                if has_run(status) {
                    targets.push(LogTarget {
                        pod: report.pod.clone(),
                        container: report.container.clone(),
                    });
                }
                digest.containers.push(report);
            }
        }
    }
    (digest, targets)
}

fn is_ready(pod: &Value) -> bool {
    if str_at(pod, "/status/phase") == Some("Succeeded") {
        return true;
    }
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == Some("Ready") && str_at(c, "/status") == Some("True"))
}

/// True when the container ran (a kubelet has a log for it).
fn has_run(status: &Value) -> bool {
    status.pointer("/state/running").is_some()
        || status.pointer("/state/terminated").is_some()
        || status.pointer("/lastState/terminated").is_some()
}

/// The report of one container, or `None` when it is fine (ready, or an init
/// container that completed).
fn container_report(pod: &Value, status: &Value, init: bool) -> Option<ContainerReport> {
    let ready = status.get("ready").and_then(Value::as_bool) == Some(true);
    let terminated = status.pointer("/state/terminated");
    let exit_code = |t: &Value| t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
    if ready || (init && terminated.is_some_and(|t| exit_code(t) == 0)) {
        return None;
    }
    let with_detail = |what: &str, detail: &Value| {
        let mut text = what.to_owned();
        for key in ["/reason", "/message"] {
            if let Some(part) = str_at(detail, key).filter(|s| !s.is_empty()) {
                text.push_str(": ");
                text.push_str(part);
            }
        }
        text
    };
    let state = if let Some(waiting) = status.pointer("/state/waiting") {
        with_detail("waiting", waiting)
    } else if status.pointer("/state/running").is_some() {
        "running (not ready)".to_owned()
    } else if terminated.is_some() {
        "terminated".to_owned()
    } else {
        "unknown".to_owned()
    };
    let last = terminated.or_else(|| status.pointer("/lastState/terminated"));
    Some(ContainerReport {
        pod: name(pod).to_owned(),
        container: str_at(status, "/name").unwrap_or("?").to_owned(),
        init,
        restarts: status
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        state,
        last_termination: last.map(|t| Termination {
            reason: str_at(t, "/reason").map(str::to_owned),
            exit_code: exit_code(t),
            message: str_at(t, "/message")
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        }),
        log: Vec::new(),
        log_error: None,
    })
}

/// An event's last-seen time (RFC 3339 strings sort by time).
fn event_time(e: &Value) -> Option<&str> {
    [
        "/lastTimestamp",
        "/series/lastObservedTime",
        "/eventTime",
        "/firstTimestamp",
    ]
    .iter()
    .find_map(|p| str_at(e, p))
}

/// The Warning Events about the `involved` objects: the same reason and
/// message once (the latest, with the summed count), oldest first, the last
/// [`MAX_EVENTS`].
fn warning_events(events: &[Value], involved: &BTreeSet<(String, String)>) -> Vec<EventLine> {
    let mut lines: Vec<EventLine> = Vec::new();
    let mut chosen: Vec<&Value> = events
        .iter()
        .filter(|e| str_at(e, "/type") == Some("Warning"))
        .filter(|e| {
            let kind = str_at(e, "/involvedObject/kind").or_else(|| str_at(e, "/regarding/kind"));
            let name = str_at(e, "/involvedObject/name").or_else(|| str_at(e, "/regarding/name"));
            matches!((kind, name), (Some(k), Some(n)) if involved.contains(&(k.to_owned(), n.to_owned())))
        })
        .collect();
    chosen.sort_by_key(|e| event_time(e).unwrap_or("").to_owned());
    for e in chosen {
        let object = format!(
            "{} {}",
            str_at(e, "/involvedObject/kind")
                .or_else(|| str_at(e, "/regarding/kind"))
                .unwrap_or("?"),
            str_at(e, "/involvedObject/name")
                .or_else(|| str_at(e, "/regarding/name"))
                .unwrap_or("?")
        );
        let line = EventLine {
            object,
            reason: str_at(e, "/reason").unwrap_or("").to_owned(),
            message: str_at(e, "/message")
                .or_else(|| str_at(e, "/note"))
                .unwrap_or("")
                .trim()
                .to_owned(),
            count: e
                .get("count")
                .and_then(Value::as_u64)
                .or_else(|| e.pointer("/series/count").and_then(Value::as_u64))
                .unwrap_or(1),
            last_seen: event_time(e).map(str::to_owned),
        };
        if let Some(pos) = lines.iter().position(|l| {
            l.object == line.object && l.reason == line.reason && l.message == line.message
        }) {
            let earlier = lines.remove(pos);
            lines.push(EventLine {
                count: earlier.count + line.count,
                ..line
            });
        } else {
            lines.push(line);
        }
    }
    let skip = lines.len().saturating_sub(MAX_EVENTS);
    lines.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::{id_of, load};

    #[test]
    fn crash_looping_deployment() {
        let (dep, mut related) = load(include_fixture!("deployment-progress-deadline.yaml"));
        let event = |object: &str,
                     reason: &str,
                     kind: &str,
                     message: &str,
                     count: u64,
                     at: &str| {
            serde_json::json!({"involvedObject": {"kind": "Pod", "name": object},
                "reason": reason, "type": kind, "message": message, "count": count, "lastTimestamp": at})
        };
        let pod = "api-6b7f9d8c4-m5n6p";
        related.events = vec![
            event(
                pod,
                "BackOff",
                "Warning",
                "Back-off restarting failed container php-fpm",
                3,
                "2024-05-01T10:01:00Z",
            ),
            event(
                pod,
                "Scheduled",
                "Normal",
                "Successfully assigned",
                1,
                "2024-05-01T10:00:00Z",
            ),
            event(
                "someone-else-1",
                "BackOff",
                "Warning",
                "not ours",
                1,
                "2024-05-01T10:02:00Z",
            ),
            event(
                pod,
                "Unhealthy",
                "Warning",
                "Readiness probe failed: connection refused",
                2,
                "2024-05-01T10:00:30Z",
            ),
            event(
                pod,
                "BackOff",
                "Warning",
                "Back-off restarting failed container php-fpm",
                4,
                "2024-05-01T10:03:00Z",
            ),
        ];
        let (digest, targets) =
            assemble(&id_of(&dep), "not ready after 300s", Some(&dep), &related);
        insta::assert_yaml_snapshot!(digest);
        assert_eq!(
            targets,
            vec![LogTarget {
                pod: "api-6b7f9d8c4-m5n6p".into(),
                container: "php-fpm".into()
            }]
        );
    }

    #[test]
    fn image_pull_backoff_has_no_log_to_read() {
        let (dep, related) = load(include_fixture!("deployment-image-pull-backoff.yaml"));
        let (digest, targets) = assemble(&id_of(&dep), "failed", Some(&dep), &related);
        assert!(targets.is_empty());
        assert_eq!(digest.containers.len(), 1);
        assert!(
            digest.containers[0]
                .state
                .starts_with("waiting: ImagePullBackOff: Back-off pulling image"),
            "{:?}",
            digest.containers[0]
        );
    }

    #[test]
    fn quota_events_of_the_replica_set() {
        let (dep, related) = load(include_fixture!("deployment-quota.yaml"));
        let (digest, _) = assemble(&id_of(&dep), "failed", Some(&dep), &related);
        assert!(
            digest
                .events
                .iter()
                .any(|e| e.object == "ReplicaSet web-7c9d8f6b5" && e.reason == "FailedCreate"),
            "{:?}",
            digest.events
        );
    }

    #[test]
    fn a_missing_object_says_so() {
        let id = ResourceId::kubernetes("apps/v1", "Deployment", Some("n"), "web");
        let (digest, targets) = assemble(&id, "gone", None, &Related::default());
        assert_eq!(digest.notes, vec!["the object does not exist".to_owned()]);
        assert!(targets.is_empty());
    }
}
