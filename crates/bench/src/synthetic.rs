//! A synthetic N-resource stack, planned in-process: graph build + no-op plan,
//! with the process's peak memory (VmHWM) read from /proc.

use std::time::{Duration, Instant};

use preview_core::Resource;
use preview_core::graph::DesiredGraph;
use preview_core::observe::{Observation, Observed};
use preview_core::planner::{PlanOptions, plan};
use preview_core::state::auth::RecordHasher;
use preview_core::state::{ResourceRecord, StackState};
use serde_json::{Value, json};

/// 20 resources per namespace, like a preview-pr environment.
fn namespace_set(ns: &str) -> Vec<Value> {
    let mut out = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
    for i in 0..4 {
        out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cfg-{i}"), "namespace": ns},
            "data": {"APP_ENV": "preview", "APP_URL": format!("https://{ns}.example.com"), "LOG_LEVEL": "debug"}}));
    }
    for i in 0..5 {
        out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{i}"), "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                    "spec": {"containers": [{"name": "app", "image": format!("registry.example/app@sha256:{}", "a".repeat(64)),
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "envFrom": [{"configMapRef": {"name": format!("cfg-{}", i % 4)}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}}]}}}}));
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("app-{i}"), "namespace": ns},
            "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}));
    }
    for i in 0..5 {
        out.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("sec-{i}"), "namespace": ns},
            "type": "Opaque", "data": {"TOKEN": "c2VjcmV0"}}));
    }
    out
}

/// What the API server would return: the body plus server-set fields.
fn live_of(body: &Value, n: usize) -> Value {
    let mut live = body.clone();
    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-0000-0000-{n:012}")),
        );
        meta.insert("resourceVersion".into(), json!(n.to_string()));
        meta.insert("creationTimestamp".into(), json!("2026-11-25T00:00:00Z"));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": "preview-envs", "operation": "Apply"}]),
        );
    }
    live.as_object_mut()
        .map(|o| o.insert("status".into(), json!({"observedGeneration": 1})));
    live
}

/// Result of one synthetic measurement.
pub struct SyntheticResult {
    /// Resources planned.
    pub resources: usize,
    /// Median of graph build + plan.
    pub plan: Duration,
    /// Peak resident memory of the process, in KiB.
    pub peak_kib: u64,
}

/// Builds an N-resource (rounded to 20) deployed stack and measures no-op planning.
pub fn run(resources: usize, runs: usize) -> anyhow::Result<SyntheticResult> {
    let namespaces = resources.div_ceil(20);
    let bodies: Vec<Value> = (0..namespaces)
        .flat_map(|i| namespace_set(&format!("pr-{i}")))
        .collect();
    let stack = "synthetic";
    // Record state as a previous `up` would have: hashes of desired and of live.
    let first = DesiredGraph::new(
        stack,
        bodies
            .iter()
            .cloned()
            .map(Resource::kubernetes)
            .collect::<Result<_, _>>()?,
    )?;
    let mut state = StackState::new(stack);
    let hasher = RecordHasher::without_passphrase(&state);
    let mut observed = Observed::new();
    for (n, res) in first.resources().enumerate() {
        let live = live_of(&res.body, n);
        state.resources.insert(
            res.id.clone(),
            ResourceRecord {
                id: res.id.clone(),
                depends_on: first.dependencies(&res.id).iter().cloned().collect(),
                desired_hash: hasher.desired_hash(res),
                live_hash: hasher.live_hash(&live, res),
                uid: None,
                protect: false,
                imported: false,
            },
        );
        observed.insert(
            res.id.clone(),
            Observation {
                live: Some(live),
                dry_run: None,
            },
        );
    }
    drop(first);
    let mut times = Vec::new();
    let mut planned = 0;
    for _ in 0..runs {
        let desired: Vec<Resource> = bodies
            .iter()
            .cloned()
            .map(Resource::kubernetes)
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        let graph = DesiredGraph::new(stack, desired)?;
        let p = plan(&graph, &state, &observed, &hasher, &PlanOptions::default())?;
        times.push(t.elapsed());
        anyhow::ensure!(p.is_empty(), "synthetic no-op plan has changes");
        planned = p.steps.len();
    }
    Ok(SyntheticResult {
        resources: planned,
        plan: crate::stats::median(&mut times),
        peak_kib: peak_rss_kib(),
    })
}

/// VmHWM of this process in KiB (0 when /proc is unavailable).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(vm_hwm_kib)
        .unwrap_or(0)
}

/// The `VmHWM:` line (peak resident set, KiB) of a `/proc/PID/status` text.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
