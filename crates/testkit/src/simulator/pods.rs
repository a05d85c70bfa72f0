//! Pods: what a kubelet would do, as status writes only.
//!
//! The REAL kube-scheduler binds pods to the simulated node (it is registered
//! with capacity, so requests, quotas and taints are really checked); an
//! unbound pod is left alone. For every pod:
//! * bound to the simulated node → `pods/{name}/status` is merge-patched to what a
//!   kubelet would report once the containers run: phase `Running`, conditions
//!   `Initialized`, `Ready`, `ContainersReady`, `PodScheduled` all `True`, a running
//!   `containerStatuses` entry per container (`ready`, `started`, the spec's image,
//!   `imageID` = the image reference when it is pinned by digest, else empty) and a
//!   terminated (exit 0, `Completed`) `initContainerStatuses` entry per init
//!   container. Pods owned by a Job (owner kind `Job`, or a `job-name` label) go
//!   to phase `Succeeded` with containers terminated `Completed`, so the real Job
//!   controller completes the Job. The annotations in
//!   [`annotations`](super::annotations) inject failures and delays;
//! * being deleted on the simulated node → deleted with grace period 0, the
//!   kubelet's final confirmation (without it pods stay `Terminating` forever and
//!   namespaces never finish deleting).
//!
//! No container runs (except the Job pods [`job_runner`](super::job_runner)
//! runs on the host, which are handled there); a pod's IP (10.244.0.0/16) is allocated by the simulator and
//! routes nowhere.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

use super::annotations::Injection;
use super::status::{is_subset, time_string};

/// What the simulator should do about one pod.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PodAction {
    /// Nothing (another node's pod, a finished pod, or already as desired).
    Ignore,
    /// Confirm a graceful deletion (grace period 0).
    ForceDelete,
    /// Write this status; look again after `recheck_in` if set.
    Patch {
        /// The new `status`.
        status: Value,
        /// When a delayed readiness is due.
        recheck_in: Option<Duration>,
    },
    /// Already as desired for now; look again after this long.
    Recheck(Duration),
}

/// Facts about the simulated node the plan depends on.
#[derive(Debug, Clone)]
pub(crate) struct PodEnv<'a> {
    /// The simulated node's name.
    pub node: &'a str,
    /// The simulated node's InternalIP, reported as `hostIP`.
    pub host_ip: &'a str,
    /// The current time.
    pub now: Timestamp,
}

/// What the simulated containers end up doing.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ready,
    Starting,
    Succeed,
    Fail,
    CrashLoop,
    /// Running, but the readiness probe fails: not Ready.
    Unhealthy,
    Waiting(String),
    Unscheduled,
    /// The command really ran ([`super::job_runner`]): exit code and message.
    Exited(i32, Option<String>),
}

/// Decides what to do about `pod`. `allocate_ip` is called only when the pod
/// needs an IP.
pub(crate) fn plan(
    pod: &Pod,
    env: &PodEnv<'_>,
    allocate_ip: &mut dyn FnMut() -> String,
) -> PodAction {
    let Some(spec) = pod.spec.as_ref() else {
        return PodAction::Ignore;
    };
    let node_name = spec.node_name.as_deref().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return if node_name == env.node {
            PodAction::ForceDelete
        } else {
            PodAction::Ignore
        };
    }
    let injection = Injection::of(pod.metadata.annotations.as_ref());
    // Binding is the real kube-scheduler's job: an unbound pod is not ours yet.
    if node_name != env.node || outcome_requested(&injection) == Some(Outcome::Unscheduled) {
        return PodAction::Ignore;
    }
    let status = pod.status.clone().unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return PodAction::Ignore;
    }

    let start = status.start_time.as_ref().map(|t| t.0).unwrap_or(env.now);
    let remaining_delay = injection.delay.and_then(|delay| {
        let ready_at =
            start.as_millisecond() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let remaining = ready_at - env.now.as_millisecond();
        (remaining > 0).then(|| Duration::from_millis(remaining.unsigned_abs()))
    });
    let outcome = if remaining_delay.is_some() {
        Outcome::Starting
    } else {
        match outcome_requested(&injection) {
            Some(o) => o,
            None if owned_by_job(pod) => Outcome::Succeed,
            None => Outcome::Ready,
        }
    };
    let ip = status
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(allocate_ip);
    let desired = desired_status(pod, spec, &injection, &outcome, start, &ip, env);
    let current = serde_json::to_value(&pod.status).unwrap_or(Value::Null);
    if is_subset(&desired, &current) {
        match remaining_delay {
            Some(d) => PodAction::Recheck(d),
            None => PodAction::Ignore,
        }
    } else {
        PodAction::Patch {
            status: desired,
            recheck_in: remaining_delay,
        }
    }
}

/// The status of a pod whose command the job runner runs: `Running` while
/// `exit` is `None`, then terminated with the exit code and message.
pub(crate) fn ran_status(
    pod: &Pod,
    env: &PodEnv<'_>,
    ip: &str,
    exit: Option<(i32, Option<String>)>,
) -> Option<Value> {
    let spec = pod.spec.as_ref()?;
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(env.now);
    let outcome = match exit {
        None => Outcome::Ready,
        Some((code, message)) => Outcome::Exited(code, message),
    };
    Some(desired_status(
        pod,
        spec,
        &Injection::default(),
        &outcome,
        start,
        ip,
        env,
    ))
}

fn outcome_requested(injection: &Injection) -> Option<Outcome> {
    Some(match injection.simulate.as_deref()? {
        "Fail" => Outcome::Fail,
        "Succeed" => Outcome::Succeed,
        "CrashLoopBackOff" => Outcome::CrashLoop,
        "Unhealthy" => Outcome::Unhealthy,
        "Pending" => Outcome::Unscheduled,
        reason => Outcome::Waiting(reason.to_string()),
    })
}

/// Whether a Job owns the pod (owner reference, or the Job controller's label).
pub(crate) fn owned_by_job(pod: &Pod) -> bool {
    let by_owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job");
    let by_label = pod.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key("job-name") || l.contains_key("batch.kubernetes.io/job-name")
    });
    by_owner || by_label
}

fn desired_status(
    pod: &Pod,
    spec: &PodSpec,
    injection: &Injection,
    outcome: &Outcome,
    start: Timestamp,
    ip: &str,
    env: &PodEnv<'_>,
) -> Value {
    let now = time_string(env.now);
    let started = time_string(start);
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let sim = ContainerSim {
        uid,
        started: &started,
        now: &now,
    };

    let first = spec.containers.first().map(|c| c.name.clone());
    let mut not_ready: Vec<String> = Vec::new();
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let is_first = first.as_deref() == Some(c.name.as_str());
            let status = match outcome {
                Outcome::Ready => sim.running(c, true),
                Outcome::Starting => sim.running(c, false),
                Outcome::Succeed => sim.terminated(c, 0, "Completed", None),
                Outcome::Exited(code, message) if is_first => sim.terminated(
                    c,
                    *code,
                    if *code == 0 { "Completed" } else { "Error" },
                    message.clone(),
                ),
                Outcome::Exited(..) => sim.terminated(c, 0, "Completed", None),
                Outcome::Fail if is_first => sim.terminated(
                    c,
                    injection.exit_code.unwrap_or(1),
                    "Error",
                    Some(injection.termination_message.clone().unwrap_or_else(|| {
                        injection.message_or(|| "simulated failure (testkit)".into())
                    })),
                ),
                Outcome::Fail => sim.terminated(c, 0, "Completed", None),
                Outcome::CrashLoop if is_first => sim.crash_loop(
                    c,
                    injection.message_or(|| {
                        format!(
                            "back-off 10s restarting failed container={} pod={pod_name}",
                            c.name
                        )
                    }),
                    injection.exit_code.unwrap_or(1),
                    injection.termination_message.clone(),
                ),
                Outcome::Unhealthy if is_first => sim.running(c, false),
                Outcome::Waiting(reason) if is_first => sim.waiting(
                    c,
                    reason,
                    injection.message_or(|| default_message(reason, c)),
                ),
                Outcome::CrashLoop | Outcome::Unhealthy | Outcome::Waiting(_) => {
                    sim.running(c, true)
                }
                Outcome::Unscheduled => sim.running(c, false),
            };
            if status["ready"] != json!(true) {
                not_ready.push(c.name.clone());
            }
            status
        })
        .collect();
    let init_containers: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| sim.terminated(c, 0, "Completed", None))
        .collect();

    let (phase, ready_reason) = match outcome {
        Outcome::Ready => ("Running", None),
        // Never planned for a bound pod (see `plan`); keep the kubelet's initial phase.
        Outcome::Unscheduled => ("Pending", Some("ContainersNotReady")),
        Outcome::Starting | Outcome::CrashLoop | Outcome::Unhealthy => {
            ("Running", Some("ContainersNotReady"))
        }
        Outcome::Waiting(_) => ("Pending", Some("ContainersNotReady")),
        Outcome::Succeed => ("Succeeded", Some("PodCompleted")),
        Outcome::Fail => ("Failed", Some("PodCompleted")),
        Outcome::Exited(0, _) => ("Succeeded", Some("PodCompleted")),
        Outcome::Exited(..) => ("Failed", Some("PodCompleted")),
    };
    let finished = matches!(
        outcome,
        Outcome::Succeed | Outcome::Fail | Outcome::Exited(..)
    );
    let ready_condition = |kind: &str| match ready_reason {
        None => {
            json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now})
        }
        Some("ContainersNotReady") => json!({
            "type": kind,
            "status": "False",
            "reason": "ContainersNotReady",
            "message": format!("containers with unready status: [{}]", not_ready.join(" ")),
            "lastProbeTime": null,
            "lastTransitionTime": now,
        }),
        Some(reason) => {
            json!({"type": kind, "status": "False", "reason": reason, "lastProbeTime": null, "lastTransitionTime": now})
        }
    };
    let initialized = if finished {
        json!({"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastProbeTime": null, "lastTransitionTime": now})
    } else {
        json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now})
    };

    let mut status = json!({
        "phase": phase,
        "conditions": [
            initialized,
            ready_condition("Ready"),
            ready_condition("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
        ],
        "hostIP": env.host_ip,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "containerStatuses": containers,
    });
    if !init_containers.is_empty() {
        status["initContainerStatuses"] = Value::Array(init_containers);
    }
    status
}

fn default_message(reason: &str, container: &Container) -> String {
    let image = container.image.as_deref().unwrap_or_default();
    match reason {
        "ImagePullBackOff" => format!("Back-off pulling image \"{image}\""),
        "ErrImagePull" => format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        ),
        "CreateContainerConfigError" => format!(
            "configuration of container \"{}\" refers to something that does not exist",
            container.name
        ),
        other => format!("simulated {other} (testkit)"),
    }
}

/// Builds container status entries.
struct ContainerSim<'a> {
    uid: &'a str,
    started: &'a str,
    now: &'a str,
}

impl ContainerSim<'_> {
    fn base(&self, c: &Container) -> Value {
        let image = c.image.clone().unwrap_or_default();
        // A kubelet reports the resolved digest; only a pinned reference tells us one.
        let image_id = if image.contains("@sha256:") {
            image.clone()
        } else {
            String::new()
        };
        json!({
            "name": c.name,
            "image": image,
            "imageID": image_id,
            "restartCount": 0,
        })
    }

    fn container_id(&self, c: &Container) -> String {
        format!("testkit-simulated://{}/{}", self.uid, c.name)
    }

    fn running(&self, c: &Container, ready: bool) -> Value {
        let mut s = self.base(c);
        s["containerID"] = json!(self.container_id(c));
        s["ready"] = json!(ready);
        s["started"] = json!(true);
        s["state"] = json!({"running": {"startedAt": self.started}});
        s
    }

    fn terminated(
        &self,
        c: &Container,
        exit_code: i32,
        reason: &str,
        message: Option<String>,
    ) -> Value {
        let mut s = self.base(c);
        s["containerID"] = json!(self.container_id(c));
        s["ready"] = json!(false);
        s["started"] = json!(false);
        let mut terminated = json!({
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": self.started,
            "finishedAt": self.now,
            "containerID": self.container_id(c),
        });
        if let Some(message) = message {
            terminated["message"] = json!(message);
        }
        s["state"] = json!({ "terminated": terminated });
        s
    }

    fn waiting(&self, c: &Container, reason: &str, message: String) -> Value {
        let mut s = self.base(c);
        s["imageID"] = json!("");
        s["ready"] = json!(false);
        s["started"] = json!(false);
        s["state"] = json!({"waiting": {"reason": reason, "message": message}});
        s
    }

    fn crash_loop(
        &self,
        c: &Container,
        message: String,
        exit_code: i32,
        termination_message: Option<String>,
    ) -> Value {
        let mut s = self.base(c);
        s["containerID"] = json!(self.container_id(c));
        s["ready"] = json!(false);
        s["started"] = json!(false);
        s["restartCount"] = json!(3);
        s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}});
        let mut last = json!({
            "exitCode": exit_code,
            "reason": "Error",
            "startedAt": self.started,
            "finishedAt": self.now,
            "containerID": self.container_id(c),
        });
        if let Some(message) = termination_message {
            last["message"] = json!(message);
        }
        s["lastState"] = json!({ "terminated": last });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::{DELAY_MS, MESSAGE, SIMULATE};

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("pod yaml")
    }

    const BOUND: &str = "
metadata: {name: web-1, namespace: ns, uid: u1}
spec:
  nodeName: sim-node
  initContainers: [{name: init, image: busybox}]
  containers:
  - {name: app, image: 'nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}
  - {name: sidecar, image: 'envoy:1.30'}
status: {phase: Pending}
";

    fn env() -> PodEnv<'static> {
        PodEnv {
            node: "sim-node",
            host_ip: "10.240.0.10",
            now: Timestamp::from_second(1_700_000_000).expect("valid"),
        }
    }

    fn ip() -> impl FnMut() -> String {
        || "10.244.0.7".to_string()
    }

    fn patched(action: PodAction) -> Value {
        match action {
            PodAction::Patch { status, .. } => status,
            other => panic!("expected a patch, got {other:?}"),
        }
    }

    #[test]
    fn unscheduled_pods_are_left_to_the_scheduler() {
        let p = pod("metadata: {name: a}\nspec: {containers: [{name: c}]}");
        assert_eq!(plan(&p, &env(), &mut ip()), PodAction::Ignore);
    }

    #[test]
    fn other_nodes_and_finished_pods_are_left_alone() {
        let p = pod("metadata: {name: a}\nspec: {nodeName: real, containers: [{name: c}]}");
        assert_eq!(plan(&p, &env(), &mut ip()), PodAction::Ignore);
        let p = pod(
            "metadata: {name: a}\nspec: {nodeName: sim-node, containers: [{name: c}]}\nstatus: {phase: Succeeded}",
        );
        assert_eq!(plan(&p, &env(), &mut ip()), PodAction::Ignore);
    }

    #[test]
    fn deleting_pods_on_our_node_are_confirmed() {
        let p = pod(
            "metadata: {name: a, deletionTimestamp: '2023-01-01T00:00:00Z'}\nspec: {nodeName: sim-node, containers: [{name: c}]}",
        );
        assert_eq!(plan(&p, &env(), &mut ip()), PodAction::ForceDelete);
    }

    #[test]
    fn bound_pod_becomes_running_and_ready() {
        let s = patched(plan(&pod(BOUND), &env(), &mut ip()));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.7");
        assert_eq!(s["hostIP"], "10.240.0.10");
        for (i, kind) in ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .iter()
            .enumerate()
        {
            assert_eq!(s["conditions"][i]["type"], *kind);
            assert_eq!(s["conditions"][i]["status"], "True");
        }
        let app = &s["containerStatuses"][0];
        assert_eq!(app["ready"], true);
        assert_eq!(app["started"], true);
        assert!(app["state"]["running"].is_object());
        assert!(
            app["imageID"]
                .as_str()
                .expect("imageID")
                .contains("@sha256:")
        );
        assert_eq!(s["containerStatuses"][1]["imageID"], "");
        let init = &s["initContainerStatuses"][0];
        assert_eq!(init["state"]["terminated"]["exitCode"], 0);
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    }

    #[test]
    fn applied_status_is_not_patched_again() {
        let mut p = pod(BOUND);
        let s = patched(plan(&p, &env(), &mut ip()));
        p.status = Some(serde_json::from_value(s).expect("valid PodStatus"));
        let mut never = || panic!("no new IP for a pod that has one");
        assert_eq!(plan(&p, &env(), &mut never), PodAction::Ignore);
    }

    #[test]
    fn job_pods_succeed() {
        let p = pod("
metadata: {name: j, labels: {job-name: migrate}, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: migrate, uid: x}]}
spec: {nodeName: sim-node, restartPolicy: Never, containers: [{name: c, image: alpine}]}
");
        let s = patched(plan(&p, &env(), &mut ip()));
        assert_eq!(s["phase"], "Succeeded");
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 0);
        assert_eq!(t["reason"], "Completed");
        assert_eq!(s["conditions"][1]["reason"], "PodCompleted");
    }

    #[test]
    fn image_pull_failure_is_reported_like_a_kubelet() {
        let mut p = pod(BOUND);
        let a = p.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(SIMULATE.into(), "ImagePullBackOff".into());
        a.insert(MESSAGE.into(), "manifest unknown".into());
        let s = patched(plan(&p, &env(), &mut ip()));
        assert_eq!(s["phase"], "Pending");
        let app = &s["containerStatuses"][0];
        assert_eq!(app["state"]["waiting"]["reason"], "ImagePullBackOff");
        assert_eq!(app["state"]["waiting"]["message"], "manifest unknown");
        assert_eq!(app["ready"], false);
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(
            s["conditions"][1]["message"],
            "containers with unready status: [app]"
        );
    }

    #[test]
    fn crash_loop_and_fail() {
        let mut p = pod(BOUND);
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SIMULATE.into(), "CrashLoopBackOff".into());
        let s = patched(plan(&p, &env(), &mut ip()));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 3);
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );

        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SIMULATE.into(), "Fail".into());
        let s = patched(plan(&p, &env(), &mut ip()));
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
    }

    #[test]
    fn delay_keeps_the_pod_unready_then_rechecks() {
        let mut p = pod(BOUND);
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DELAY_MS.into(), "3000".into());
        match plan(&p, &env(), &mut ip()) {
            PodAction::Patch { status, recheck_in } => {
                assert_eq!(status["phase"], "Running");
                assert_eq!(status["conditions"][1]["status"], "False");
                assert_eq!(recheck_in, Some(Duration::from_secs(3)));
                p.status = Some(serde_json::from_value(status).expect("valid"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // One second later: nothing to write, look again in two.
        let mut later = env();
        later.now = Timestamp::from_second(1_700_000_001).expect("valid");
        assert_eq!(
            plan(&p, &later, &mut ip()),
            PodAction::Recheck(Duration::from_secs(2))
        );
        // After the delay: Ready.
        later.now = Timestamp::from_second(1_700_000_004).expect("valid");
        let s = patched(plan(&p, &later, &mut ip()));
        assert_eq!(s["conditions"][1]["status"], "True");
    }

    #[test]
    fn pending_annotation_keeps_bound_pods_pending() {
        let mut p = pod(BOUND);
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SIMULATE.into(), "Pending".into());
        assert_eq!(plan(&p, &env(), &mut ip()), PodAction::Ignore);
    }
}
