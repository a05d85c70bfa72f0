//! Desired resources that are recorded or absent: create, no-op, update, replace,
//! conflicts, rejections and engine-bug guards.

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::{CANARY, CANARY_B64, id};

fn web() -> ResourceId {
    id("apps/v1", "Deployment", "web")
}

#[test]
fn first_run_creates_everything_in_dependency_order() {
    let g = graph();
    let plan = plan(
        &g,
        &empty_state(),
        &nothing_live(&g),
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert!(plan.steps.iter().all(|s| s.action == Action::Create));
    let order: Vec<&ResourceId> = plan.steps.iter().map(|s| &s.id).collect();
    assert_eq!(order, g.order().iter().collect::<Vec<_>>());
    assert_eq!(plan.stack, STACK);
    snap!("first_run", outline(&plan));
}

#[test]
fn unchanged_stack_is_a_no_op_without_any_dry_run() {
    let g = graph();
    let (state, observed) = applied(&g);
    for resource in g.resources() {
        let live = observed[&resource.id].live.as_ref();
        assert!(
            !needs_dry_run(resource, state.resources.get(&resource.id), live, &hasher()),
            "{}",
            resource.id
        );
    }
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    assert_eq!(plan.steps.len(), g.len());
    assert!(plan.is_empty());
    assert_eq!(plan.summary().no_op, g.len());
    // No-ops still carry their dependencies.
    assert_eq!(
        plan.steps
            .iter()
            .find(|s| s.id == web())
            .expect("web")
            .after
            .len(),
        4
    );
}

#[test]
fn needs_dry_run_only_for_changes_drift_and_unrecorded_objects() {
    let g = graph();
    let (state, observed) = applied(&g);
    let desired = g.get(&web()).expect("web");
    let record = state.resources.get(&web());
    let live = observed[&web()].live.clone().expect("live");
    assert!(
        !needs_dry_run(desired, record, None, &hasher()),
        "absent: create, no dry-run"
    );
    assert!(!needs_dry_run(desired, None, None, &hasher()));
    assert!(!needs_dry_run(desired, record, Some(&live), &hasher()));
    assert!(
        needs_dry_run(desired, None, Some(&live), &hasher()),
        "unrecorded object exists"
    );

    let changed = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["replicas"] = json!(2);
        }
    });
    assert!(needs_dry_run(
        changed.get(&web()).expect("web"),
        record,
        Some(&live),
        &hasher()
    ));

    let mut drifted = live.clone();
    drifted["spec"]["replicas"] = json!(5);
    assert!(
        needs_dry_run(desired, record, Some(&drifted), &hasher()),
        "drift of a field we manage"
    );

    let mut defaulted = live.clone();
    defaulted["spec"]["minReadySeconds"] = json!(0);
    defaulted["status"]["observedGeneration"] = json!(7);
    defaulted["metadata"]["resourceVersion"] = json!("43");
    assert!(
        !needs_dry_run(desired, record, Some(&defaulted), &hasher()),
        "fields we do not set are not drift"
    );
}

#[test]
fn changed_image_is_an_update_with_a_field_diff() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let after = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("ghcr.io/example/web:pr-1-b");
        }
    });
    let needing: Vec<&ResourceId> = after
        .resources()
        .filter(|r| {
            needs_dry_run(
                r,
                state.resources.get(&r.id),
                observed[&r.id].live.as_ref(),
                &hasher(),
            )
        })
        .map(|r| &r.id)
        .collect();
    assert_eq!(
        needing,
        vec![&web()],
        "only the changed Deployment needs a dry-run"
    );
    accept_dry_run(&after, &mut observed, &web());
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web step");
    assert_eq!(step.action, Action::Update);
    assert_eq!(plan.summary().update, 1);
    assert_eq!(plan.summary().no_op, after.len() - 1);
    snap!(
        "image_update",
        outline(&Plan {
            stack: plan.stack.clone(),
            steps: vec![step.clone()],
            notes: Vec::new(),
        })
    );
}

#[test]
fn config_change_updates_the_config_map_and_rolls_its_workloads() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let config = id("v1", "ConfigMap", "app-config");
    let after = graph_with(|r| {
        if r.id == config {
            *r = fx::config_map("debug");
        }
    });
    for id in [&config, &web(), &id("apps/v1", "Deployment", "api")] {
        accept_dry_run(&after, &mut observed, id);
    }
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let updated: Vec<String> = plan.mutating_steps().map(|s| s.id.to_string()).collect();
    assert_eq!(
        updated,
        vec![
            "ConfigMap preview-pr-1/app-config",
            "Deployment preview-pr-1/web",
            "Deployment preview-pr-1/api"
        ]
    );
    snap!(
        "config_change",
        outline(&Plan {
            stack: plan.stack,
            steps: plan
                .steps
                .into_iter()
                .filter(|s| s.action.is_mutating())
                .collect(),
            notes: Vec::new(),
        })
    );
}

#[test]
fn accepted_dry_run_that_changes_nothing_is_a_no_op() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    // Setting a field to its server default changes the desired hash, not the object.
    let after = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["revisionHistoryLimit"] = json!(10);
        }
    });
    accept_dry_run(&after, &mut observed, &web());
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert!(plan.is_empty(), "{}", outline(&plan));
}

#[test]
fn immutable_field_change_is_a_replace_with_the_servers_reason() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let after = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
        }
    });
    let message = "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app.kubernetes.io/name\":\"web\",\"tier\":\"front\"}}: field is immutable";
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Immutable {
            message: message.into(),
        },
    );
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Replace);
    assert_eq!(step.reason.as_deref(), Some(message));
    assert_eq!(step.diff.len(), 1);
    assert_eq!(step.diff[0].path, "spec.selector.matchLabels.tier");

    // A protected resource is never replaced.
    let protected = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
            r.options.protect = true;
        }
    });
    let found = problems(super::plan(
        &protected,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::Protected);
    assert!(
        found[0]
            .message
            .starts_with("Deployment preview-pr-1/web is protected but must be replaced")
    );
}

#[test]
fn conflicts_are_a_problem_unless_forced() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let after = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["replicas"] = json!(3);
        }
    });
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Conflict {
            conflicts: vec![".spec.replicas owned by \"kubectl-edit\"".into()],
            message: "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.replicas"
                .into(),
        },
    );
    let found = problems(plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::Conflict);
    assert_eq!(found[0].id, web());
    snap!("conflict_problem", found[0].message.clone());

    let forced = PlanOptions {
        force_conflicts: true,
        ..PlanOptions::default()
    };
    let plan = plan(&after, &state, &observed, &hasher(), &forced).expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Update);
    assert_eq!(
        step.reason.as_deref(),
        Some("forcing ownership of .spec.replicas owned by \"kubectl-edit\"")
    );
    assert_eq!(step.diff.len(), 1, "{:?}", step.diff);
    assert_eq!(step.diff[0].path, "spec.replicas");
}

#[test]
fn rejected_and_missing_observations_are_problems_all_reported() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let api = id("apps/v1", "Deployment", "api");
    let quota = id("v1", "ResourceQuota", "quota");
    let after = graph_with(|r| {
        if r.id == web() || r.id == api {
            r.body["spec"]["replicas"] = json!(-1);
        }
    });
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Rejected {
            code: 422,
            message: "spec.replicas: Invalid value: -1: must be greater than or equal to 0".into(),
        },
    );
    // api changed but the engine forgot its dry-run; quota was not read at all.
    observed.remove(&quota);
    let err = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect_err("problems");
    let PlanError::Problems(found) = &err;
    let kinds: Vec<(String, ProblemKind)> =
        found.iter().map(|p| (p.id.to_string(), p.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (
                "ResourceQuota preview-pr-1/quota".to_owned(),
                ProblemKind::MissingObservation
            ),
            (
                "Deployment preview-pr-1/web".to_owned(),
                ProblemKind::Rejected
            ),
            (
                "Deployment preview-pr-1/api".to_owned(),
                ProblemKind::MissingDryRun
            ),
        ]
    );
    snap!("several_problems", err.to_string());
}

#[test]
fn deleted_outside_the_engine_is_recreated() {
    let g = graph();
    let (state, mut observed) = applied(&g);
    observed.insert(web(), Observation::default());
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Create);
    assert_eq!(step.reason.as_deref(), Some("deleted outside the engine"));
    assert_eq!(plan.summary().create, 1);
}

#[test]
fn secret_changes_are_masked_and_last_applied_copies_ignored() {
    let before = graph();
    let (state, mut observed) = applied(&before);
    let secret = id("v1", "Secret", "app-secrets");
    // kubectl once applied it client-side: the annotation holds a plain copy.
    if let Some(live) = observed.get_mut(&secret).and_then(|o| o.live.as_mut()) {
        live["metadata"]["annotations"] = json!({
            "kubectl.kubernetes.io/last-applied-configuration":
                format!("{{\"stringData\":{{\"DB_PASSWORD\":\"{CANARY}\"}}}}")
        });
    }
    let after = graph_with(|r| {
        if r.id == secret {
            r.body["data"]["DB_PASSWORD"] = json!("bmV3LXBhc3N3b3Jk");
            r.body["data"]["API_TOKEN"] = json!(CANARY_B64);
        }
    });
    for id in [
        &secret,
        &web(),
        &id("apps/v1", "Deployment", "api"),
        &id("batch/v1", "Job", "migrate"),
    ] {
        accept_dry_run(&after, &mut observed, id);
    }
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan.steps.iter().find(|s| s.id == secret).expect("secret");
    assert_eq!(step.action, Action::Update);
    let paths: Vec<&str> = step.diff.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["data.API_TOKEN", "data.DB_PASSWORD"]);
    let text = serde_json::to_string(&plan).expect("json");
    for canary in [CANARY, CANARY_B64, "bmV3LXBhc3N3b3Jk"] {
        assert!(!text.contains(canary), "{canary} leaked: {text}");
    }
}
