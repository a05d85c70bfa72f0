//! The pure parts of saved plans: ids, reading a file back, and the comparison
//! of a saved plan with the plan made when applying it.

use serde_json::{Value, json};

use super::*;
use crate::graph::test_fixtures::{self as fx, STACK};
use crate::observe::{DryRun, Observation};
use crate::planner::{self, PlanOptions};
use crate::resource::Resource;
use crate::state::ResourceRecord;

fn hasher() -> RecordHasher {
    RecordHasher::fixed_for_tests()
}

fn graph_with(edit: impl Fn(&mut Resource)) -> DesiredGraph {
    let mut resources = fx::preview_resources();
    resources.iter_mut().for_each(edit);
    DesiredGraph::new(STACK, resources).expect("valid graph")
}

fn graph() -> DesiredGraph {
    graph_with(|_| {})
}

fn live_of(res: &Resource) -> Value {
    let mut live = res.body.clone();
    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "uid".into(),
            json!(format!("uid-{}-{}", res.id.kind, res.id.name)),
        );
        meta.insert("resourceVersion".into(), json!("7"));
    }
    live
}

/// The state and observations after a successful `up` of `graph`.
fn applied(graph: &DesiredGraph) -> (StackState, Observed) {
    let mut state = StackState::new(STACK);
    state.serial = 4;
    let mut observed = Observed::new();
    for res in graph.resources() {
        let live = live_of(res);
        state.resources.insert(
            res.id.clone(),
            ResourceRecord {
                id: res.id.clone(),
                depends_on: graph.dependencies(&res.id).iter().cloned().collect(),
                desired_hash: hasher().desired_hash(res),
                live_hash: hasher().live_hash(&live, res),
                uid: live
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
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
    (state, observed)
}

fn meta() -> PlanMeta {
    PlanMeta {
        kind: "preview-pr".into(),
        pr: Some(1),
        config_hash: "sha256:aaaaaaaaaaaaaaaaaaaa".into(),
        images: BTreeMap::from([
            ("api".to_owned(), "reg/api@sha256:1".to_owned()),
            ("web".to_owned(), "reg/web@sha256:2".to_owned()),
        ]),
        first_secrets: None,
    }
}

/// Plans `graph` against `state`/`observed` (dry-running every body that
/// changed with the desired body accepted as is) and saves it.
fn saved(
    graph: &DesiredGraph,
    state: &StackState,
    observed: &Observed,
    meta: PlanMeta,
) -> SavedPlan {
    let mut observed = observed.clone();
    for res in graph.resources() {
        let o = observed.entry(res.id.clone()).or_default();
        if planner::needs_dry_run(
            res,
            state.resources.get(&res.id),
            o.live.as_ref(),
            &hasher(),
        ) {
            o.dry_run = Some(DryRun::Accepted {
                object: live_of(res),
            });
        }
    }
    let plan =
        planner::plan(graph, state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let basis = basis(graph, state, true, &observed, &hasher(), &plan);
    SavedPlan::new(graph.stack(), meta, basis, plan)
}

fn web() -> ResourceId {
    fx::preview_resources()
        .into_iter()
        .find(|r| r.id.kind == "Deployment")
        .expect("a Deployment")
        .id
}

/// The world where web's image changes: an update is planned.
fn update_world() -> (DesiredGraph, StackState, Observed) {
    let (state, observed) = applied(&graph());
    let changed = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("reg/web@sha256:3");
        }
    });
    (changed, state, observed)
}

#[test]
fn the_same_inputs_make_the_same_plan_and_id() {
    let (graph, state, observed) = update_world();
    let a = saved(&graph, &state, &observed, meta());
    let b = saved(&graph, &state, &observed, meta());
    assert_eq!(a.plan_id(), b.plan_id());
    assert!(a.plan_id().starts_with("sha256:"));
    assert_eq!(a.short_id().len(), 12);
    assert!(compare(&a, &b).is_empty());
    assert!(
        a.plan
            .steps
            .iter()
            .any(|s| s.id == web() && s.action == Action::Update),
        "the fixture plans an update"
    );
    let mut other = meta();
    other.config_hash = "sha256:bbbb".into();
    assert_ne!(
        a.plan_id(),
        saved(&graph, &state, &observed, other).plan_id()
    );
}

#[test]
fn a_saved_plan_reads_back_as_written() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let text = plan.to_json();
    let back = SavedPlan::parse(&text, "plan.json").expect("reads back");
    assert_eq!(back, plan);
    assert!(compare(&plan, &back).is_empty());
    let doc: Value = serde_json::from_str(&text).expect("json");
    for key in [
        "format",
        "formatVersion",
        "planId",
        "stack",
        "meta",
        "basis",
        "plan",
    ] {
        assert!(doc.get(key).is_some(), "{key} in the document");
    }
    assert_eq!(doc["basis"]["state"]["serial"], json!(4));
}

#[test]
fn a_truncated_file_is_refused() {
    let (graph, state, observed) = update_world();
    let text = saved(&graph, &state, &observed, meta()).to_json();
    let cut = &text[..text.len() / 2];
    let err = SavedPlan::parse(cut, "plan.json").expect_err("truncated");
    assert!(matches!(err, SavedPlanError::Malformed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("plan.json is not a complete saved plan"),
        "{err}"
    );
    let err = SavedPlan::parse("", "plan.json").expect_err("empty");
    assert!(matches!(err, SavedPlanError::Malformed { .. }), "{err}");
}

#[test]
fn an_edited_file_no_longer_matches_its_id() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let mut doc: Value = serde_json::from_str(&plan.to_json()).expect("json");
    doc["basis"]["state"]["serial"] = json!(9);
    let edited = serde_json::to_string_pretty(&doc).expect("json");
    let err = SavedPlan::parse(&edited, "plan.json").expect_err("edited");
    let SavedPlanError::Tampered {
        recorded, actual, ..
    } = &err
    else {
        panic!("expected Tampered, got {err}");
    };
    assert_eq!(recorded, plan.plan_id());
    assert_ne!(actual, plan.plan_id());
    assert!(err.to_string().contains("was edited or corrupted"), "{err}");
    // Re-indenting (the same content) is not an edit.
    let compact =
        serde_json::to_string(&serde_json::from_str::<Value>(&plan.to_json()).expect("json"))
            .expect("json");
    assert!(SavedPlan::parse(&compact, "plan.json").is_ok());
}

#[test]
fn another_format_version_is_refused() {
    let (graph, state, observed) = update_world();
    let mut doc: Value =
        serde_json::from_str(&saved(&graph, &state, &observed, meta()).to_json()).expect("json");
    doc["formatVersion"] = json!(2);
    let err = SavedPlan::parse(&doc.to_string(), "p.json").expect_err("version");
    assert!(matches!(err, SavedPlanError::Version { .. }), "{err}");
    let err = SavedPlan::parse(r#"{"schemaVersion":1,"stack":"x","steps":[]}"#, "p.json")
        .expect_err("a rendered plan is not a saved plan");
    assert!(err.to_string().contains("not a saved plan"), "{err}");
}

#[test]
fn a_plan_for_another_stack_or_pr_names_both() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let mut other_pr = meta();
    other_pr.pr = Some(2);
    let fresh = saved(&graph, &state, &observed, other_pr);
    let moved = compare(&plan, &fresh);
    assert_eq!(moved.len(), 1, "{moved:?}");
    let text = moved[0].to_string();
    assert!(text.contains("(PR 1)") && text.contains("(PR 2)"), "{text}");
    let mut other_stack = plan.clone();
    other_stack.stack = "production".into();
    assert!(matches!(
        compare(&other_stack, &plan)[..],
        [Moved::Stack { .. }]
    ));
}

#[test]
fn a_plan_older_than_the_state_is_refused() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let mut newer = state.clone();
    newer.serial = 6;
    let fresh = saved(&graph, &newer, &observed, meta());
    let moved = compare(&plan, &fresh);
    assert_eq!(moved, vec![Moved::StateNewer { planned: 4, now: 6 }]);
    assert!(
        moved[0]
            .to_string()
            .contains("the plan is older than the state")
    );
    let mut rolled_back = state.clone();
    rolled_back.serial = 2;
    assert_eq!(
        compare(&plan, &saved(&graph, &rolled_back, &observed, meta())),
        vec![Moved::StateOlder { planned: 4, now: 2 }]
    );
}

#[test]
fn another_lineage_and_a_state_that_appeared_or_went_are_refused() {
    let planned = StateBasis {
        exists: true,
        lineage: "l1".into(),
        serial: 3,
    };
    let other = StateBasis {
        lineage: "l2".into(),
        ..planned.clone()
    };
    assert!(matches!(
        compare_state(&planned, &other)[..],
        [Moved::Lineage { .. }]
    ));
    let none = StateBasis {
        exists: false,
        lineage: "l1".into(),
        serial: 0,
    };
    assert_eq!(
        compare_state(&none, &planned),
        vec![Moved::StateCreated { serial: 3 }]
    );
    assert_eq!(
        compare_state(&planned, &none),
        vec![Moved::StateGone { serial: 3 }]
    );
    assert!(compare_state(&none, &none).is_empty());
    assert!(compare_state(&planned, &planned).is_empty());
}

#[test]
fn config_and_images_that_moved_are_named() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let mut now = meta();
    now.config_hash = "sha256:cccccccccccccccccccc".into();
    now.images.insert("web".into(), "reg/web@sha256:9".into());
    now.images.remove("api");
    let moved = compare(&plan, &saved(&graph, &state, &observed, now));
    let text: Vec<String> = moved.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].starts_with("config: "), "{text:#?}");
    assert_eq!(text[1], "image api: reg/api@sha256:1 → (none)");
    assert_eq!(text[2], "image web: reg/web@sha256:2 → reg/web@sha256:9");
}

#[test]
fn a_live_object_edited_recreated_or_deleted_since_the_plan_is_named() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let namespace = graph
        .resources()
        .find(|r| r.id.kind == "Namespace")
        .expect("namespace")
        .id
        .clone();

    // Edited: a managed field of the Deployment changed.
    let mut edited = observed.clone();
    if let Some(live) = edited.get_mut(&web()).and_then(|o| o.live.as_mut()) {
        live["spec"]["replicas"] = json!(5);
    }
    let moved = compare(&plan, &saved(&graph, &state, &edited, meta()));
    assert!(
        moved.contains(&Moved::Live {
            id: web(),
            how: "fields the stack manages were edited".into()
        }),
        "{moved:?}"
    );

    // Recreated: same body, another uid.
    let mut recreated = observed.clone();
    if let Some(live) = recreated.get_mut(&namespace).and_then(|o| o.live.as_mut()) {
        live["metadata"]["uid"] = json!("uid-new");
    }
    let moved = compare(&plan, &saved(&graph, &state, &recreated, meta()));
    assert!(
        moved.iter().any(|m| matches!(m, Moved::Live { id, how } if *id == namespace && how.contains("recreated"))),
        "{moved:?}"
    );

    // Deleted: now it would be created.
    let mut deleted = observed.clone();
    if let Some(o) = deleted.get_mut(&namespace) {
        o.live = None;
    }
    let moved = compare(&plan, &saved(&graph, &state, &deleted, meta()));
    assert!(moved.contains(&Moved::Live {
        id: namespace.clone(),
        how: "it was deleted".into()
    }));
    assert!(moved.contains(&Moved::Action {
        id: namespace,
        planned: Action::NoOp,
        now: Action::Create
    }));
}

#[test]
fn a_desired_body_that_changed_is_named() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let again = graph_with(|r| {
        if r.id == web() {
            r.body["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("reg/web@sha256:4");
        }
    });
    let moved = compare(&plan, &saved(&again, &state, &observed, meta()));
    assert_eq!(moved, vec![Moved::Desired { id: web() }]);
}

#[test]
fn a_resource_that_appeared_or_went_away_is_named() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let mut fewer = plan.clone();
    let gone = fewer.basis.resources.remove(0).resource;
    assert_eq!(
        compare(&fewer, &plan),
        vec![Moved::Resource {
            id: gone.clone(),
            added: true
        }]
    );
    assert_eq!(
        compare(&plan, &fewer),
        vec![Moved::Resource {
            id: gone,
            added: false
        }]
    );
}

#[test]
fn the_refusal_lists_every_move_and_what_to_do() {
    let (graph, state, observed) = update_world();
    let plan = saved(&graph, &state, &observed, meta());
    let moved = vec![
        Moved::StateNewer { planned: 4, now: 5 },
        Moved::Desired { id: web() },
    ];
    let text = refusal(&plan, &moved);
    assert!(text.contains(plan.short_id()), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(
        text.contains("serial 4") && text.contains("desired body changed"),
        "{text}"
    );
    // What to do next is the program's to word (a Remedy): no flag here.
    assert!(
        text.ends_with("its desired body changed since the plan"),
        "{text}"
    );
}

#[test]
fn images_are_read_from_every_pod_template() {
    let images = images_of(&graph());
    assert!(!images.is_empty());
    let web = web();
    let key = format!(
        "Deployment/{}/{}/",
        web.namespace.as_deref().unwrap_or_default(),
        web.name
    );
    assert!(images.keys().any(|k| k.starts_with(&key)), "{images:#?}");
}
