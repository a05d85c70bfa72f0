//! Dry-runs the credential may not make (RBAC 403, e.g. a plan credential that
//! can only read): the planner falls back to a local diff and marks the step
//! as not validated by the server, instead of failing.

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::id;
use crate::plan::NOT_VALIDATED;
use crate::render;

const DENIED: &str = "deployments.apps \"web\" is forbidden: User \"testkit:planner\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"preview-pr-1\"";

fn web() -> ResourceId {
    id("apps/v1", "Deployment", "web")
}

fn new_image(r: &mut Resource) {
    if r.id == web() {
        r.body["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("ghcr.io/example/web:pr-2");
    }
}

#[test]
fn a_forbidden_dry_run_of_a_change_is_a_local_diff_marked_not_validated() {
    let (state, mut observed) = applied(&graph());
    let g = graph_with(new_image);
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Forbidden {
            message: DENIED.to_owned(),
        },
    );
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Update);
    assert_eq!(step.unvalidated.as_deref(), Some(DENIED));
    assert!(
        step.diff.iter().any(|c| c.path.ends_with(".image")
            && c.new == Some(crate::plan::Shown::Value(json!("ghcr.io/example/web:pr-2")))),
        "{:?}",
        step.diff
    );
    assert_eq!(plan.unvalidated_steps().count(), 1);
    // Every other step was validated (or needed no dry-run).
    assert!(
        plan.steps
            .iter()
            .filter(|s| s.id != web())
            .all(|s| s.unvalidated.is_none())
    );

    let text = render::text(&plan, &render::TextOptions::default());
    assert!(
        text.contains(&format!("! {NOT_VALIDATED} (dry-run forbidden: {DENIED})")),
        "{text}"
    );
    assert!(
        text.contains("1 step(s) not validated by the server"),
        "{text}"
    );
    let markdown = render::markdown(&plan, &render::MarkdownOptions::default());
    assert!(
        markdown.contains(&format!("[{NOT_VALIDATED}]")),
        "{markdown}"
    );
    assert!(
        markdown.contains("> [!WARNING]\n> 1 step(s) not validated by the server"),
        "{markdown}"
    );
    let doc = render::json(&plan);
    let steps = doc["steps"].as_array().expect("steps");
    let marked: Vec<&Value> = steps
        .iter()
        .filter(|s| s.get("serverValidated").is_some())
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["serverValidated"], json!(false));
    assert_eq!(marked[0]["notValidated"], json!(DENIED));
    assert_eq!(marked[0]["resource"]["name"], json!("web"));
    snap!("forbidden_dry_run_text", text);
}

#[test]
fn a_forbidden_dry_run_where_the_live_object_already_matches_is_a_no_op() {
    // The record is stale (another desired body was applied last), but the live
    // object already is the desired one: a dry-run is needed, forbidden, and the
    // local diff finds nothing to change.
    let g = graph();
    let (mut state, mut observed) = applied(&g);
    if let Some(record) = state.resources.get_mut(&web()) {
        record.desired_hash = "sha256:an-older-body".to_owned();
    }
    let desired = g.get(&web()).expect("web");
    assert!(needs_dry_run(
        desired,
        state.resources.get(&web()),
        observed[&web()].live.as_ref(),
        &hasher()
    ));
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Forbidden {
            message: DENIED.to_owned(),
        },
    );
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::NoOp);
    assert!(step.diff.is_empty(), "{:?}", step.diff);
    assert_eq!(step.unvalidated.as_deref(), Some(DENIED));
}

#[test]
fn a_forbidden_dry_run_of_a_create_is_a_create_marked_not_validated() {
    let g = graph();
    let mut observed = nothing_live(&g);
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Forbidden {
            message: DENIED.to_owned(),
        },
    );
    let plan = plan(
        &g,
        &empty_state(),
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Create);
    assert!(step.unvalidated.is_some());
}

#[test]
fn a_rejection_is_still_a_problem() {
    let (state, mut observed) = applied(&graph());
    let g = graph_with(new_image);
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Rejected {
            code: 403,
            message: "exceeded quota".to_owned(),
        },
    );
    let problems = problems(plan(
        &g,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind, ProblemKind::Rejected);
}
