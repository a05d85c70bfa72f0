//! Desired objects that exist but are not recorded: refusal, import, crash-resume.

use serde_json::json;

use super::*;
use crate::graph::test_fixtures::id;

fn web() -> ResourceId {
    id("apps/v1", "Deployment", "web")
}

fn api() -> ResourceId {
    id("apps/v1", "Deployment", "api")
}

/// Nothing recorded; `web` and `api` exist with the given stack label (`None`: none).
fn existing(label: Option<&str>) -> (DesiredGraph, Observed) {
    let g = graph();
    let mut observed = nothing_live(&g);
    for id in [web(), api()] {
        let mut live = server_object(&g.get(&id).expect("desired").body, &uid_of(&id));
        let labels = live["metadata"]["labels"].as_object_mut().expect("labels");
        labels.remove(STACK_LABEL);
        labels.remove(crate::resource::MANAGED_BY_LABEL);
        if let Some(stack) = label {
            labels.insert(STACK_LABEL.to_owned(), json!(stack));
        }
        observed.insert(
            id,
            Observation {
                live: Some(live),
                dry_run: None,
            },
        );
    }
    (g, observed)
}

#[test]
fn existing_unmanaged_objects_are_refused_naming_each_one() {
    let (g, observed) = existing(None);
    let err = plan(
        &g,
        &empty_state(),
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect_err("refused");
    let PlanError::Problems(found) = &err;
    assert_eq!(found.len(), 2, "every problem, not only the first");
    assert_eq!(found[0].id, web());
    assert_eq!(found[1].id, api());
    assert!(found.iter().all(|p| p.kind == ProblemKind::NotManaged));
    assert_eq!(
        found[0].message,
        "Deployment preview-pr-1/web already exists and is not managed by stack preview-pr-1; adopt it with `import` or choose another name"
    );
    snap!("adoption_refused", err.to_string());
}

#[test]
fn objects_of_another_stack_or_a_lost_state_are_refused_with_the_reason() {
    let (g, observed) = existing(Some("preview-pr-2"));
    let found = problems(plan(
        &g,
        &empty_state(),
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert!(
        found[0]
            .message
            .contains("is managed by stack preview-pr-2, not by stack preview-pr-1"),
        "{}",
        found[0].message
    );
    assert!(found[0].message.contains("`import`"));

    // Our label but nothing pending: not a crash-resume; the state may be lost.
    let (g, observed) = existing(Some(STACK));
    let found = problems(plan(
        &g,
        &empty_state(),
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert!(
        found[0]
            .message
            .contains("not recorded in its state (was the state lost?)"),
        "{}",
        found[0].message
    );
}

#[test]
fn import_adopts_selected_objects_with_the_dry_run_diff() {
    let (g, mut observed) = existing(None);
    // The dry-run adds our labels (and would change replicas set by hand).
    for id in [web(), api()] {
        accept_dry_run(&g, &mut observed, &id);
    }
    if let Some(live) = observed.get_mut(&web()).and_then(|o| o.live.as_mut()) {
        live["spec"]["replicas"] = json!(4);
    }
    let only_web = PlanOptions {
        import: ImportSelection::Only([web()].into()),
        ..PlanOptions::default()
    };
    let found = problems(plan(&g, &empty_state(), &observed, &hasher(), &only_web));
    assert_eq!(found.len(), 1, "api is not selected");
    assert_eq!(found[0].id, api());

    let all = PlanOptions {
        import: ImportSelection::All,
        ..PlanOptions::default()
    };
    let plan = plan(&g, &empty_state(), &observed, &hasher(), &all).expect("plan");
    assert_eq!(plan.summary().import, 2);
    assert_eq!(plan.summary().create, g.len() - 2);
    let web_step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(web_step.action, Action::Import);
    snap!(
        "import_web",
        outline(&Plan {
            stack: plan.stack.clone(),
            steps: vec![web_step.clone()],
            notes: Vec::new(),
        })
    );
}

#[test]
fn import_without_dry_run_shows_no_diff_and_says_so() {
    let (g, observed) = existing(None);
    let all = PlanOptions {
        import: ImportSelection::All,
        ..PlanOptions::default()
    };
    let plan = plan(&g, &empty_state(), &observed, &hasher(), &all).expect("plan");
    let step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(step.action, Action::Import);
    assert!(step.diff.is_empty());
    assert_eq!(
        step.reason.as_deref(),
        Some("adopting the existing object; changes not previewed (no dry-run)")
    );
}

#[test]
fn import_problems_unknown_ids_and_replacements() {
    let (g, mut observed) = existing(None);
    set_dry_run(
        &mut observed,
        &web(),
        DryRun::Immutable {
            message: "spec.selector: field is immutable".into(),
        },
    );
    let stranger = id("v1", "ConfigMap", "not-in-stack");
    let opts = PlanOptions {
        import: ImportSelection::Only([web(), api(), stranger.clone()].into()),
        ..PlanOptions::default()
    };
    let found = problems(plan(&g, &empty_state(), &observed, &hasher(), &opts));
    let kinds: Vec<(ResourceId, ProblemKind)> =
        found.iter().map(|p| (p.id.clone(), p.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (stranger, ProblemKind::UnknownImport),
            (web(), ProblemKind::ImportNeedsReplace)
        ]
    );
    assert_eq!(
        found[0].message,
        "import names ConfigMap preview-pr-1/not-in-stack, which is not part of stack preview-pr-1"
    );
}

#[test]
fn crash_between_create_and_state_write_resumes() {
    let (g, mut observed) = existing(Some(STACK));
    let mut state = empty_state();
    state.pending = vec![
        pending(&web(), Action::Create),
        pending(&api(), Action::Create),
    ];
    // web was fully created: the dry-run changes nothing. api got an older body.
    accept_dry_run(&g, &mut observed, &web());
    if let Some(live) = observed.get_mut(&web()).and_then(|o| o.live.as_mut()) {
        // The dry-run object carries both labels; make the live one identical.
        *live = server_object(&g.get(&web()).expect("web").body, &uid_of(&web()));
    }
    accept_dry_run(&g, &mut observed, &api());
    if let Some(live) = observed.get_mut(&api()).and_then(|o| o.live.as_mut()) {
        live["spec"]["replicas"] = json!(0);
    }
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let web_step = plan.steps.iter().find(|s| s.id == web()).expect("web");
    assert_eq!(
        web_step.action,
        Action::Update,
        "an empty diff is still recorded"
    );
    assert!(web_step.diff.is_empty());
    assert_eq!(
        web_step.reason.as_deref(),
        Some("created by an interrupted run; recording it in the state")
    );
    let api_step = plan.steps.iter().find(|s| s.id == api()).expect("api");
    assert_eq!(api_step.action, Action::Update);
    assert!(
        api_step.diff.iter().any(|c| c.path == "spec.replicas"),
        "{:?}",
        api_step.diff
    );

    // An immutable change found while resuming is a replace that keeps the server's reason.
    let mut immutable = observed.clone();
    set_dry_run(
        &mut immutable,
        &api(),
        DryRun::Immutable {
            message: "spec.selector: field is immutable".into(),
        },
    );
    let replan =
        super::plan(&g, &state, &immutable, &hasher(), &PlanOptions::default()).expect("plan");
    let api_step = replan.steps.iter().find(|s| s.id == api()).expect("api");
    assert_eq!(api_step.action, Action::Replace);
    assert_eq!(
        api_step.reason.as_deref(),
        Some("created by an interrupted run; spec.selector: field is immutable")
    );

    // Without its dry-run, a crash-resume cannot be planned (engine bug).
    observed.get_mut(&api()).expect("api").dry_run = None;
    let found = problems(super::plan(
        &g,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::MissingDryRun);
}
