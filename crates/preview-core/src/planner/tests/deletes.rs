//! Recorded resources that are no longer desired: delete order, protection, destroy.

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::{NS, id};

fn removed_web_stack() -> DesiredGraph {
    // The PR drops the web frontend: its Deployment, Service and HTTPRoute.
    let gone = [
        id("apps/v1", "Deployment", "web"),
        id("v1", "Service", "web"),
        id("gateway.networking.k8s.io/v1", "HTTPRoute", "web"),
    ];
    let resources = fx::preview_resources()
        .into_iter()
        .filter(|r| !gone.contains(&r.id))
        .collect();
    DesiredGraph::new(STACK, resources).expect("valid")
}

#[test]
fn removed_resources_are_deleted_dependents_first_after_all_other_steps() {
    let before = graph();
    let (state, observed) = applied(&before);
    let after = removed_web_stack();
    let plan = plan(&after, &state, &observed, &PlanOptions::default()).expect("plan");
    let deletes: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(
        plan.steps[plan.steps.len() - 3..]
            .iter()
            .all(|s| s.action == Action::Delete)
    );
    snap!(
        "delete_web",
        outline(&Plan {
            stack: plan.stack.clone(),
            steps: deletes.into_iter().cloned().collect(),
            notes: Vec::new(),
        })
    );
}

#[test]
fn destroy_deletes_everything_in_reverse_dependency_order() {
    let g = graph();
    let (state, observed) = applied(&g);
    let plan = plan(
        &DesiredGraph::empty(STACK),
        &state,
        &observed,
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(plan.summary().delete, g.len());
    let position: BTreeMap<&ResourceId, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.id, i))
        .collect();
    for id in g.order() {
        for dep in g.dependencies(id) {
            assert!(
                position[id] < position[dep],
                "{id} must be deleted before {dep}"
            );
        }
    }
    for step in &plan.steps {
        let dependents: Vec<ResourceId> = g.dependents(&step.id).iter().cloned().collect();
        assert_eq!(step.after, dependents, "{}", step.id);
    }
    assert_eq!(
        plan.steps.last().map(|s| s.id.to_string()),
        Some(format!("Namespace {NS}"))
    );
    snap!("destroy", outline(&plan));
}

#[test]
fn protected_resources_are_never_deleted() {
    let g = graph();
    let (mut state, observed) = applied(&g);
    for id in [id("v1", "Secret", "app-secrets"), fx::database_id()] {
        state.resources.get_mut(&id).expect("recorded").protect = true;
    }
    let err = plan(
        &DesiredGraph::empty(STACK),
        &state,
        &observed,
        &PlanOptions::default(),
    )
    .expect_err("protected");
    let PlanError::Problems(found) = &err;
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|p| p.kind == ProblemKind::Protected));
    // In delete order: the database (depended on by the Job) goes before the Secret.
    assert_eq!(
        found[0].message,
        "postgres Database app_pr_1 is protected; remove `protect` first"
    );
    assert_eq!(
        found[1].message,
        "Secret preview-pr-1/app-secrets is protected; remove `protect` first"
    );
}

#[test]
fn already_gone_is_still_a_delete_step_so_the_state_forgets_it() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    observed.insert(id("v1", "Service", "web"), Observation::default());
    let plan = plan(
        &removed_web_stack(),
        &state,
        &observed,
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan
        .steps
        .iter()
        .find(|s| s.id == id("v1", "Service", "web"))
        .expect("service");
    assert_eq!(step.action, Action::Delete);
    assert_eq!(step.reason.as_deref(), Some("already gone"));
}

#[test]
fn an_object_recreated_by_someone_else_is_not_deleted() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let service = id("v1", "Service", "web");
    if let Some(live) = observed.get_mut(&service).and_then(|o| o.live.as_mut()) {
        live["metadata"]["uid"] = json!("someone-elses-uid");
    }
    let found = problems(plan(
        &removed_web_stack(),
        &state,
        &observed,
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::Recreated);
    assert!(
        found[0]
            .message
            .starts_with("Service preview-pr-1/web was recreated outside the engine")
    );
}

#[test]
fn objects_left_by_an_interrupted_run_and_no_longer_desired_are_deleted() {
    let g = DesiredGraph::empty(STACK);
    let orphan = id("v1", "ConfigMap", "half-created");
    let foreign = id("v1", "ConfigMap", "not-ours");
    let mut state = empty_state();
    state.pending = vec![
        pending(&orphan, Action::Create),
        pending(&foreign, Action::Create),
    ];
    let labelled = |stack: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "x", "namespace": NS, "labels": {STACK_LABEL: stack}}})
    };
    let mut observed = Observed::new();
    observed.insert(
        orphan.clone(),
        Observation {
            live: Some(labelled(STACK)),
            dry_run: None,
        },
    );
    observed.insert(
        foreign,
        Observation {
            live: Some(labelled("other")),
            dry_run: None,
        },
    );
    let plan = plan(&g, &state, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].id, orphan);
    assert_eq!(plan.steps[0].action, Action::Delete);
    assert_eq!(
        plan.steps[0].reason.as_deref(),
        Some("created by an interrupted run and no longer desired")
    );
}

#[test]
fn inconsistent_recorded_dependencies_are_a_problem() {
    let g = graph();
    let (mut state, observed) = applied(&g);
    let ns = ResourceId::kubernetes("v1", "Namespace", None, NS);
    let quota = id("v1", "ResourceQuota", "quota");
    state
        .resources
        .get_mut(&ns)
        .expect("ns")
        .depends_on
        .push(quota.clone());
    let found = problems(plan(
        &DesiredGraph::empty(STACK),
        &state,
        &observed,
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::RecordedCycle);
    snap!("recorded_cycle", found[0].message.clone());
}
