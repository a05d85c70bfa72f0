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
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
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
        &hasher(),
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
        &hasher(),
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
        &hasher(),
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
fn an_object_recreated_by_someone_else_is_refused_not_deleted() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let service = id("v1", "Service", "web");
    if let Some(live) = observed.get_mut(&service).and_then(|o| o.live.as_mut()) {
        live["metadata"]["uid"] = json!("someone-elses-uid");
    }
    let plan = plan(
        &removed_web_stack(),
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan
        .steps
        .iter()
        .find(|s| s.id == service)
        .expect("service");
    assert_eq!(step.action, Action::Refuse);
    assert!(!step.action.is_mutating());
    assert_eq!(step.target, None);
    assert_eq!(
        step.reason.as_deref(),
        Some(
            "Service preview-pr-1/web is recorded with uid uid-service-web but the live object has uid someone-elses-uid: it is not the object this stack created (recreated outside the engine, or the state was edited); refusing to delete it"
        )
    );
    assert_eq!(plan.summary().refuse, 1);
    // The other deletes still go ahead, each pinned to the uid it was checked with.
    let deployment = plan
        .steps
        .iter()
        .find(|s| s.id == id("apps/v1", "Deployment", "web"))
        .expect("deployment");
    assert_eq!(deployment.action, Action::Delete);
    assert_eq!(
        deployment.target,
        Some(DeleteTarget::Live {
            uid: Some("uid-deployment-web".into())
        })
    );
}

/// A state edited to point at objects the stack does not own: another
/// namespace's object without the label, an object labelled for another
/// stack, and one with the label but another uid. None is deleted; the
/// Namespace holding a refused object is refused too.
#[test]
fn destroy_of_an_edited_state_refuses_every_foreign_object() {
    let g = graph();
    let (mut state, mut observed) = applied(&g);
    let victim = ResourceId::kubernetes("v1", "ConfigMap", Some("kube-system"), "cluster-info");
    let other_stack = id("v1", "ConfigMap", "other-stacks");
    let relabelled = id("v1", "ConfigMap", "app-config");
    for (target, live) in [
        (
            &victim,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cluster-info", "namespace": "kube-system", "uid": "u-victim"}}),
        ),
        (
            &other_stack,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "other-stacks", "namespace": NS, "uid": "u-other",
                                "labels": {STACK_LABEL: "preview-pr-2"}}}),
        ),
    ] {
        // Forged records: no uid (the forger does not know it).
        state.resources.insert(
            target.clone(),
            ResourceRecord {
                id: target.clone(),
                depends_on: Vec::new(),
                desired_hash: "sha256:x".into(),
                live_hash: "sha256:x".into(),
                uid: None,
                protect: false,
                imported: false,
            },
        );
        observed.insert(
            target.clone(),
            Observation {
                live: Some(live),
                dry_run: None,
            },
        );
    }
    // Our label, but not the uid we recorded.
    if let Some(live) = observed.get_mut(&relabelled).and_then(|o| o.live.as_mut()) {
        live["metadata"]["uid"] = json!("a-new-uid");
    }
    let plan = plan(
        &DesiredGraph::empty(STACK),
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let mut refused: Vec<String> = plan.refused_steps().map(|s| s.id.to_string()).collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            "ConfigMap kube-system/cluster-info",
            "ConfigMap preview-pr-1/app-config",
            "ConfigMap preview-pr-1/other-stacks",
            "Namespace preview-pr-1",
        ]
    );
    let reason = |id: &ResourceId| {
        plan.steps
            .iter()
            .find(|s| &s.id == id)
            .and_then(|s| s.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason(&victim).contains("does not carry the label preview-envs.io/stack=preview-pr-1 (it has no preview-envs.io/stack label)"),
        "{}",
        reason(&victim)
    );
    assert!(
        reason(&other_stack).contains("(it is labelled preview-envs.io/stack=preview-pr-2)"),
        "{}",
        reason(&other_stack)
    );
    assert!(reason(&relabelled).contains("has uid a-new-uid"));
    assert!(
        reason(&ResourceId::kubernetes("v1", "Namespace", None, NS)).contains(
            "Namespace preview-pr-1 holds ConfigMap preview-pr-1/app-config, ConfigMap preview-pr-1/other-stacks, whose delete was refused"
        ),
        "{}",
        reason(&ResourceId::kubernetes("v1", "Namespace", None, NS))
    );
    // Every delete that does go ahead was checked and is pinned to its uid.
    for step in plan.steps.iter().filter(|s| s.action == Action::Delete) {
        assert!(
            matches!(&step.target, Some(DeleteTarget::Live { uid: Some(_) }))
                || step.id.provider != crate::ProviderName::KUBERNETES,
            "{}",
            step.id
        );
    }
    snap!("destroy_of_an_edited_state", outline(&plan));
}

/// A Namespace recorded without a uid (older state) that lacks the label is
/// refused: deleting it would delete everything in it.
#[test]
fn a_namespace_without_the_label_is_never_deleted() {
    let g = graph();
    let (mut state, mut observed) = applied(&g);
    let ns = ResourceId::kubernetes("v1", "Namespace", None, NS);
    if let Some(record) = state.resources.get_mut(&ns) {
        record.uid = None;
    }
    if let Some(live) = observed.get_mut(&ns).and_then(|o| o.live.as_mut())
        && let Some(meta) = live["metadata"].as_object_mut()
    {
        meta.remove("labels");
    }
    let plan = plan(
        &DesiredGraph::empty(STACK),
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let refused: Vec<&ResourceId> = plan.refused_steps().map(|s| &s.id).collect();
    assert_eq!(refused, [&ns]);
}

#[test]
fn ownership_rules() {
    let id = ResourceId::kubernetes("v1", "Namespace", None, "n");
    let live = |labels: Value, uid: Option<&str>| {
        let mut v = json!({"metadata": {"name": "n", "labels": labels}});
        if let Some(uid) = uid {
            v["metadata"]["uid"] = json!(uid);
        }
        v
    };
    let ours = json!({STACK_LABEL: STACK});
    assert_eq!(
        ownership(STACK, &id, Some("u1"), &live(ours.clone(), Some("u1"))),
        Ok(Some("u1".into()))
    );
    assert_eq!(
        ownership(STACK, &id, None, &live(ours.clone(), Some("u2"))),
        Ok(Some("u2".into())),
        "no recorded uid: the label decides, the live uid pins the delete"
    );
    assert_eq!(
        ownership(STACK, &id, None, &live(ours.clone(), None)),
        Ok(None)
    );
    assert!(ownership(STACK, &id, Some("u1"), &live(ours.clone(), Some("u2"))).is_err());
    assert!(ownership(STACK, &id, Some("u1"), &live(ours, None)).is_err());
    assert!(ownership(STACK, &id, Some("u1"), &live(json!({}), Some("u1"))).is_err());
    assert!(ownership(STACK, &id, None, &live(json!({STACK_LABEL: "x"}), None)).is_err());
    assert!(ownership(STACK, &id, None, &json!({})).is_err());
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
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
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
        &hasher(),
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::RecordedCycle);
    snap!("recorded_cycle", found[0].message.clone());
}
