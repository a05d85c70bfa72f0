//! Planner tests: one file per concern, sharing the world-building helpers below.

mod adoption;
mod deletes;
mod desired;
mod forbidden;
mod scale;
mod values;

use serde_json::{Value, json};

use super::*;
use crate::graph::test_fixtures::{self as fx, STACK};
use crate::observe::Observation;
use crate::state::PendingOperation;

/// Asserts a plain-text snapshot stored in `src/snapshots/`.
macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => true}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}
pub(super) use snap;

/// The fixture environment as a graph.
fn graph() -> DesiredGraph {
    DesiredGraph::new(STACK, fx::preview_resources()).expect("valid graph")
}

/// A graph of the fixture resources with `edit` applied first.
fn graph_with(edit: impl Fn(&mut Resource)) -> DesiredGraph {
    let mut resources = fx::preview_resources();
    resources.iter_mut().for_each(edit);
    DesiredGraph::new(STACK, resources).expect("valid graph")
}

/// The record hasher of the fixture stack (the one its records are made with).
fn hasher() -> RecordHasher {
    RecordHasher::fixed_for_tests()
}

/// What the API server would store for `body`: server metadata, defaults, status.
/// A body without metadata (another provider's) gets the stack label that
/// provider reports for an object the stack owns.
fn server_object(body: &Value, uid: &str) -> Value {
    let mut object = body.clone();
    if object.get("metadata").is_none() {
        object["metadata"] = json!({"labels": {STACK_LABEL: STACK}});
        return object;
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!("42"));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!("2024-05-01T10:00:00Z"));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": "preview-envs", "operation": "Apply"}]),
        );
    }
    if body.get("kind") == Some(&json!("Deployment")) {
        object["spec"]["revisionHistoryLimit"] = json!(10);
        object["spec"]["progressDeadlineSeconds"] = json!(600);
        object["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        object["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
        if let Some(containers) = object
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            for c in containers {
                c["imagePullPolicy"] = json!("IfNotPresent");
                c["terminationMessagePath"] = json!("/dev/termination-log");
            }
        }
        object["status"] = json!({"replicas": 1, "readyReplicas": 1});
    }
    object
}

fn uid_of(id: &ResourceId) -> String {
    format!("uid-{}-{}", id.kind.to_lowercase(), id.name)
}

/// The record the engine writes after applying `resource` and reading back `live`.
fn record(graph: &DesiredGraph, resource: &Resource, live: &Value) -> ResourceRecord {
    ResourceRecord {
        id: resource.id.clone(),
        depends_on: graph.dependencies(&resource.id).iter().cloned().collect(),
        desired_hash: hasher().desired_hash(resource),
        live_hash: hasher().live_hash(live, resource),
        uid: live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        protect: resource.options.protect,
        imported: false,
    }
}

/// A fresh state for the fixture stack.
fn empty_state() -> StackState {
    StackState::new(STACK)
}

/// The state and observations right after a successful `up` of `graph`.
fn applied(graph: &DesiredGraph) -> (StackState, Observed) {
    let mut state = empty_state();
    let mut observed = Observed::new();
    for resource in graph.resources() {
        let live = server_object(&resource.body, &uid_of(&resource.id));
        state
            .resources
            .insert(resource.id.clone(), record(graph, resource, &live));
        observed.insert(
            resource.id.clone(),
            Observation {
                live: Some(live),
                dry_run: None,
            },
        );
    }
    (state, observed)
}

/// Observations where nothing of `graph` exists.
fn nothing_live(graph: &DesiredGraph) -> Observed {
    graph
        .order()
        .iter()
        .map(|id| (id.clone(), Observation::default()))
        .collect()
}

/// The dry-run the engine would observe for `graph`'s version of `id` on top of the
/// live object in `observed`.
fn accept_dry_run(graph: &DesiredGraph, observed: &mut Observed, id: &ResourceId) {
    let desired = graph.get(id).expect("desired");
    let object = server_object(&desired.body, &uid_of(id));
    observed.entry(id.clone()).or_default().dry_run = Some(DryRun::Accepted { object });
}

fn set_dry_run(observed: &mut Observed, id: &ResourceId, dry_run: DryRun) {
    observed.entry(id.clone()).or_default().dry_run = Some(dry_run);
}

fn pending(id: &ResourceId, action: Action) -> PendingOperation {
    PendingOperation {
        id: id.clone(),
        action,
    }
}

/// One line per step: `action id (reason) after: a, b`, then its diff lines.
fn outline(plan: &Plan) -> String {
    let mut out = String::new();
    for step in &plan.steps {
        out.push_str(&format!("{:?} {}", step.action, step.id));
        if let Some(reason) = &step.reason {
            out.push_str(&format!(" ({reason})"));
        }
        if !step.after.is_empty() {
            let after: Vec<String> = step.after.iter().map(ToString::to_string).collect();
            out.push_str(&format!(" after: {}", after.join(", ")));
        }
        out.push('\n');
        for change in &step.diff {
            let show = |s: &Option<crate::plan::Shown>| {
                s.as_ref()
                    .map(|v| serde_json::to_string(v).expect("json"))
                    .unwrap_or_else(|| "-".to_owned())
            };
            out.push_str(&format!(
                "    {:?} {}: {} => {}\n",
                change.kind,
                change.path,
                show(&change.old),
                show(&change.new)
            ));
        }
    }
    out
}

/// The problems of a failed plan.
fn problems(result: Result<Plan, PlanError>) -> Vec<PlanProblem> {
    match result {
        Ok(plan) => panic!("expected problems, got a plan:\n{}", outline(&plan)),
        Err(PlanError::Problems(problems)) => problems,
    }
}
