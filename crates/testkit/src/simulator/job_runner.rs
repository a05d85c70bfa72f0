//! Job pods whose commands really run: a stand-in for a kubelet's container
//! runtime, for Jobs that only talk to services the host can reach.
//!
//! The rest of the simulator only writes status. For a Job pod whose first
//! container's image contains one of [`JobRunnerOptions::images`] (default:
//! `postgres`, i.e. the database executor's `psql` Jobs), the simulator instead
//! runs the container's `command` + `args` **on the host** (no image is pulled:
//! the host's `sh` and `psql` stand in for the image's), then reports what a
//! kubelet would: phase `Running` while it runs, then `Succeeded` / `Failed` with
//! the exit code and the termination message.
//!
//! What is emulated, and how:
//! * environment: `value`, `valueFrom.secretKeyRef` / `configMapKeyRef` (read
//!   through the API server, as a kubelet does), `fieldRef` for
//!   `metadata.name` / `metadata.namespace`; `PATH` and `HOME` come from the host;
//! * cluster networking (cluster DNS + kube-proxy): libpq's `PGHOST`/`PGPORT`
//!   naming a routed service ([`ServiceRoutes`]) are rewritten to the backend's
//!   host address, e.g. `db.default.svc.cluster.local:5432` → the test PostgreSQL;
//! * the termination message: any environment value equal to the container's
//!   `terminationMessagePath` points at a host file instead; its content (≤ 4 KiB)
//!   becomes `state.terminated.message`; with `FallbackToLogsOnError` and an empty
//!   file, a failed container's last 80 log lines (≤ 2 KiB) are used, as a
//!   kubelet does.
//!
//! * a deleted pod's command is stopped: its process group is SIGKILLed at once
//!   (a kubelet SIGTERMs the container, and SIGKILLs it after the grace period;
//!   `sh` as PID 1 ignores SIGTERM), before the deletion is confirmed.
//!
//! A missing Secret, key or an unsupported `valueFrom` fails the container
//! with the reason in its message (a kubelet would keep it waiting with
//! `CreateContainerConfigError`). Commands time out after
//! [`JobRunnerOptions::timeout`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::pods::{self, PodEnv};
use super::{Ctx, status};

/// Routes from cluster service addresses (`host:port`) to host addresses.
#[derive(Clone, Debug, Default)]
pub struct ServiceRoutes(Arc<RwLock<BTreeMap<String, String>>>);

impl ServiceRoutes {
    /// Routes `service` (`db.default.svc.cluster.local:5432`) to `backend` (`127.0.0.1:5433`).
    pub fn add(&self, service: &str, backend: &str) {
        if let Ok(mut map) = self.0.write() {
            map.insert(service.to_owned(), backend.to_owned());
        }
    }

    fn get(&self, service: &str) -> Option<String> {
        self.0.read().ok()?.get(service).cloned()
    }
}

/// Which Job pods run on the host.
#[derive(Clone, Debug)]
pub struct JobRunnerOptions {
    /// Image substrings selecting the pods whose commands run (default `["postgres"]`).
    pub images: Vec<String>,
    /// Service routes for `PGHOST`/`PGPORT`.
    pub services: ServiceRoutes,
    /// Longest a command may run.
    pub timeout: Duration,
}

impl Default for JobRunnerOptions {
    fn default() -> Self {
        Self {
            images: vec!["postgres".into()],
            services: ServiceRoutes::default(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Whether the simulator runs this pod's command (a Job pod on the simulated
/// node, not finished, whose first container's image is selected).
pub(crate) fn wants(pod: &Pod, node: &str, opts: &JobRunnerOptions) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let image = spec
        .containers
        .first()
        .and_then(|c| c.image.as_deref())
        .unwrap_or_default();
    spec.node_name.as_deref() == Some(node)
        && pod.metadata.deletion_timestamp.is_none()
        && !finished
        && pods::owned_by_job(pod)
        && spec.containers.first().is_some_and(|c| c.command.is_some())
        && opts.images.iter().any(|i| image.contains(i.as_str()))
}

/// Runs the pod's first container and writes its status (Running, then exited).
pub(crate) async fn run(ctx: Arc<Ctx>, pod: Pod) {
    let (Some(namespace), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone())
    else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| ctx.allocate_pod_ip());
    let write = |exit: Option<(i32, Option<String>)>| {
        let env = PodEnv {
            node: &ctx.options.node_name,
            host_ip: &ctx.options.node_ip,
            now: status::now(),
        };
        pods::ran_status(&pod, &env, &ip, exit)
    };
    if let Some(running) = write(None) {
        patch(&api, &name, running).await;
    }
    let (code, message) = match execute(&ctx, &pod, &namespace).await {
        Ok(exit) => exit,
        Err(message) => (1, Some(message)),
    };
    tracing::debug!(%namespace, pod = %name, code, "job pod command finished");
    if let Some(done) = write(Some((code, message))) {
        patch(&api, &name, done).await;
    }
}

async fn patch(api: &Api<Pod>, name: &str, status: serde_json::Value) {
    let body = json!({ "status": status });
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(pod = %name, error = %e, "writing a job pod's status failed");
    }
}

/// Runs the command; returns the exit code and the termination message.
async fn execute(ctx: &Ctx, pod: &Pod, namespace: &str) -> Result<(i32, Option<String>), String> {
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .ok_or("pod has no container")?;
    let runner = &ctx.options.job_runner;
    let mut env = resolve_env(&ctx.client, pod, container, namespace).await?;
    route_postgres(&mut env, &runner.services);

    let dir = tempfile::Builder::new()
        .prefix("testkit-job-")
        .tempdir()
        .map_err(|e| format!("creating a work dir: {e}"))?;
    let message_file = dir.path().join("termination-log");
    std::fs::write(&message_file, b"").map_err(|e| format!("creating the message file: {e}"))?;
    let message_path = container
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    for value in env.values_mut() {
        if *value == message_path {
            *value = message_file.display().to_string();
        }
    }

    let argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect();
    let (program, args) = argv.split_first().ok_or("container command is empty")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", dir.path())
        .envs(&env)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    // The whole container, not only its first process, as a kubelet stops it.
    let group = child.id().map(KillGroupOnDrop);
    let output = match tokio::time::timeout(runner.timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => {
            std::mem::forget(group);
            output
        }
        Ok(Err(e)) => return Err(format!("running {program}: {e}")),
        Err(_) => {
            return Ok((
                137,
                Some(format!(
                    "killed after {}s (testkit job runner timeout)",
                    runner.timeout.as_secs()
                )),
            ));
        }
    };
    let code = output.status.code().unwrap_or(137);
    let mut message = std::fs::read(&message_file).unwrap_or_default();
    message.truncate(4096);
    let mut message = String::from_utf8_lossy(&message).into_owned();
    let fallback = container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if message.trim().is_empty() && code != 0 && fallback {
        let mut logs = String::from_utf8_lossy(&output.stdout).into_owned();
        logs.push_str(&String::from_utf8_lossy(&output.stderr));
        message = log_tail(&logs);
    }
    Ok((code, (!message.is_empty()).then_some(message)))
}

/// SIGKILLs a command's process group when dropped before the command
/// finished: when its pod is deleted (the task is aborted) or it timed out.
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        crate::process::signal_group(self.0, "KILL");
    }
}

/// A kubelet's fallback message: the last 80 lines, at most 2048 bytes.
fn log_tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    let tail = lines[lines.len().saturating_sub(80)..].join("\n");
    let mut start = tail.len().saturating_sub(2048);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    tail[start..].to_owned()
}

/// Rewrites `PGHOST`/`PGPORT` when they name a routed service.
fn route_postgres(env: &mut BTreeMap<String, String>, routes: &ServiceRoutes) {
    let Some(host) = env.get("PGHOST").cloned() else {
        return;
    };
    let port = env.get("PGPORT").cloned().unwrap_or_else(|| "5432".into());
    let Some(backend) = routes.get(&format!("{host}:{port}")) else {
        return;
    };
    if let Some((h, p)) = backend.rsplit_once(':') {
        env.insert("PGHOST".into(), h.to_owned());
        env.insert("PGPORT".into(), p.to_owned());
    }
}

/// The container's environment, resolved as a kubelet would.
async fn resolve_env(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    namespace: &str,
) -> Result<BTreeMap<String, String>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(r) = &from.secret_key_ref {
                    let secret = secrets
                        .get_opt(&r.name)
                        .await
                        .map_err(|e| format!("reading secret {}: {e}", r.name))?
                        .ok_or_else(|| format!("secret \"{}\" not found", r.name))?;
                    let bytes = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(&r.key))
                        .map(|b| b.0.clone())
                        .or_else(|| {
                            secret
                                .string_data
                                .as_ref()
                                .and_then(|d| d.get(&r.key))
                                .map(|s| s.clone().into_bytes())
                        })
                        .ok_or_else(|| {
                            format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                r.key, r.name
                            )
                        })?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else if let Some(r) = &from.config_map_key_ref {
                    let map = maps
                        .get_opt(&r.name)
                        .await
                        .map_err(|e| format!("reading configmap {}: {e}", r.name))?
                        .ok_or_else(|| format!("configmap \"{}\" not found", r.name))?;
                    map.data
                        .as_ref()
                        .and_then(|d| d.get(&r.key))
                        .cloned()
                        .ok_or_else(|| {
                            format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                r.key, r.name
                            )
                        })?
                } else if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                        "metadata.namespace" => namespace.to_owned(),
                        other => {
                            return Err(format!(
                                "fieldRef {other} is not supported by the testkit job runner"
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {}: this valueFrom is not supported by the testkit job runner",
                        var.name
                    ));
                }
            }
        };
        out.insert(var.name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_rewrite_libpq_host_and_port() {
        let routes = ServiceRoutes::default();
        routes.add("db.default.svc.cluster.local:5432", "127.0.0.1:6543");
        let mut env = BTreeMap::from([
            (
                "PGHOST".to_owned(),
                "db.default.svc.cluster.local".to_owned(),
            ),
            ("PGPORT".to_owned(), "5432".to_owned()),
        ]);
        route_postgres(&mut env, &routes);
        assert_eq!(env["PGHOST"], "127.0.0.1");
        assert_eq!(env["PGPORT"], "6543");
        let mut other = BTreeMap::from([("PGHOST".to_owned(), "elsewhere".to_owned())]);
        route_postgres(&mut other, &routes);
        assert_eq!(other["PGHOST"], "elsewhere");
    }

    #[test]
    fn log_tail_keeps_the_end() {
        let logs: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let tail = log_tail(&logs);
        assert!(tail.ends_with("line 199"), "{tail}");
        assert!(tail.starts_with("line 120"), "{tail}");
        let long = "x".repeat(5000);
        assert_eq!(log_tail(&long).len(), 2048);
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("pod yaml")
    }

    #[test]
    fn only_selected_job_pods_run() {
        let opts = JobRunnerOptions::default();
        let job_pod = "
metadata: {name: p, namespace: default, labels: {job-name: create-db-x}}
spec:
  nodeName: sim-node
  containers: [{name: psql, image: 'postgres:16-alpine', command: [sh, -c, 'true']}]
";
        assert!(wants(&pod(job_pod), "sim-node", &opts));
        assert!(!wants(&pod(job_pod), "other-node", &opts));
        let finished = format!("{job_pod}status: {{phase: Succeeded}}\n");
        assert!(!wants(&pod(&finished), "sim-node", &opts));
        let not_a_job = job_pod.replace("labels: {job-name: create-db-x}", "labels: {}");
        assert!(!wants(&pod(&not_a_job), "sim-node", &opts));
        let other_image = job_pod.replace("postgres:16-alpine", "registry.example/api");
        assert!(!wants(&pod(&other_image), "sim-node", &opts));
    }
}
