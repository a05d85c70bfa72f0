//! Renderer tests on a plan with every action, plus an end-to-end secret canary.

use serde_json::json;

use super::*;
use crate::graph::DesiredGraph;
use crate::graph::test_fixtures::{self as fx, CANARY, CANARY_B64, NS, STACK, id};
use crate::observe::{DryRun, Observation, Observed};
use crate::plan::{Action, ChangeKind, FieldChange, Plan, SecretMarker, Step};
use crate::planner::{PlanOptions, plan};
use crate::resource::ResourceId;
use crate::state::{ResourceRecord, StackState};

fn change(path: &str, kind: ChangeKind, old: Option<Shown>, new: Option<Shown>) -> FieldChange {
    FieldChange {
        path: path.into(),
        kind,
        old,
        new,
    }
}

fn v(value: serde_json::Value) -> Option<Shown> {
    Some(Shown::Value(value))
}

fn secret() -> Option<Shown> {
    Some(Shown::Secret(SecretMarker))
}

fn hasher() -> crate::state::auth::RecordHasher {
    crate::state::auth::RecordHasher::fixed_for_tests()
}

fn step(id: ResourceId, action: Action, reason: Option<&str>, diff: Vec<FieldChange>) -> Step {
    Step {
        id,
        action,
        reason: reason.map(str::to_owned),
        diff,
        after: Vec::new(),
        target: None,
        unvalidated: None,
    }
}

/// A plan with every action, secrets, a long value and a multi-line reason.
fn every_action() -> Plan {
    let namespace = ResourceId::kubernetes("v1", "Namespace", None, NS);
    let long = "x".repeat(300);
    let mut web = step(
        id("apps/v1", "Deployment", "web"),
        Action::Update,
        None,
        vec![
            change(
                "metadata.labels[\"app.kubernetes.io/version\"]",
                ChangeKind::Changed,
                v(json!("1.0")),
                v(json!("1.1")),
            ),
            change(
                "spec.template.spec.containers[name=web].image",
                ChangeKind::Changed,
                v(json!("ghcr.io/example/web:pr-1")),
                v(json!("ghcr.io/example/web:pr-1-b")),
            ),
            change(
                "spec.template.spec.containers[name=web].env[name=FEATURES]",
                ChangeKind::Added,
                None,
                v(json!({"name": "FEATURES", "value": long})),
            ),
            change(
                "spec.template.spec.containers[name=web].args",
                ChangeKind::Removed,
                v(json!(["--debug"])),
                None,
            ),
        ],
    );
    web.after = vec![namespace.clone()];
    let mut old_config = step(
        id("v1", "ConfigMap", "old-config"),
        Action::Delete,
        None,
        vec![],
    );
    old_config.after = vec![id("apps/v1", "Deployment", "legacy")];
    Plan {
        stack: STACK.into(),
        steps: vec![
            step(namespace, Action::NoOp, None, vec![]),
            step(
                id("v1", "ConfigMap", "app-config"),
                Action::NoOp,
                None,
                vec![],
            ),
            step(id("v1", "Service", "api"), Action::Create, None, vec![]),
            step(
                id("v1", "Secret", "app-secrets"),
                Action::Update,
                None,
                vec![
                    change("data.DB_PASSWORD", ChangeKind::Changed, secret(), secret()),
                    change("data.API_TOKEN", ChangeKind::Added, None, secret()),
                ],
            ),
            web,
            step(
                id("v1", "Service", "db"),
                Action::Replace,
                Some(
                    "Service \"db\" is invalid:\nspec.clusterIP: Invalid value: \"10.96.0.9\": field is immutable",
                ),
                vec![change(
                    "spec.clusterIP",
                    ChangeKind::Changed,
                    v(json!("10.96.0.8")),
                    v(json!("10.96.0.9")),
                )],
            ),
            step(
                id("apps/v1", "Deployment", "worker"),
                Action::Import,
                Some("adopting the existing object"),
                vec![change(
                    "metadata.labels[\"preview-envs.io/stack\"]",
                    ChangeKind::Added,
                    None,
                    v(json!(STACK)),
                )],
            ),
            step(
                id("apps/v1", "Deployment", "legacy"),
                Action::Delete,
                None,
                vec![],
            ),
            old_config,
            step(
                fx::database_id(),
                Action::Delete,
                Some("already gone"),
                vec![],
            ),
        ],
        notes: Vec::new(),
    }
}

#[test]
fn text_plain() {
    let plan = every_action();
    let out = text(&plan, &TextOptions::default());
    insta::assert_snapshot!("text_plain", out);
    assert!(!out.contains('\x1b'));
}

#[test]
fn text_colored() {
    let out = text(
        &every_action(),
        &TextOptions {
            color: true,
            show_unchanged: true,
        },
    );
    assert!(
        out.contains("\x1b[32m  + Service preview-pr-1/api\x1b[0m"),
        "{out}"
    );
    insta::assert_snapshot!("text_colored", out.replace('\x1b', "\\e"));
}

#[test]
fn text_of_an_empty_plan() {
    let plan = Plan {
        stack: STACK.into(),
        steps: vec![step(id("v1", "Service", "api"), Action::NoOp, None, vec![])],
        notes: Vec::new(),
    };
    assert_eq!(
        text(&plan, &TextOptions::default()),
        "Plan for stack preview-pr-1:\n\n  no changes\n\nPlan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 unchanged.\n"
    );
    assert_eq!(
        text(
            &plan,
            &TextOptions {
                color: false,
                show_unchanged: true
            }
        ),
        "Plan for stack preview-pr-1:\n\n    Service preview-pr-1/api\n\nPlan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 unchanged.\n"
    );
}

#[test]
fn json_schema() {
    let out = json(&every_action());
    insta::assert_json_snapshot!("json", out);
    assert_eq!(out["schemaVersion"], crate::plan::PLAN_SCHEMA_VERSION);
    // Never shortened.
    let env = &out["steps"][4]["changes"][2]["new"]["value"];
    assert_eq!(env.as_str().map(str::len), Some(300));
    assert_eq!(out["steps"][3]["changes"][0]["secret"], true);
    assert_eq!(
        out["steps"][9]["resource"]["namespace"],
        serde_json::Value::Null
    );
}

#[test]
fn markdown_comment() {
    let out = markdown(&every_action(), &MarkdownOptions::default());
    insta::assert_snapshot!("markdown", out);
}

#[test]
fn markdown_of_an_empty_plan_has_no_details() {
    let plan = Plan {
        stack: STACK.into(),
        steps: vec![],
        notes: Vec::new(),
    };
    let out = markdown(&plan, &MarkdownOptions::default());
    assert!(out.ends_with("\nNo changes.\n"), "{out}");
    assert!(!out.contains("<details>"));
}

#[test]
fn markdown_is_truncated_with_a_visible_note() {
    let steps = (0..2_000)
        .map(|i| {
            step(
                id("v1", "ConfigMap", &format!("config-{i:04}")),
                Action::Update,
                None,
                vec![change(
                    "data.VALUE",
                    ChangeKind::Changed,
                    v(json!(i)),
                    v(json!(i + 1)),
                )],
            )
        })
        .collect();
    let plan = Plan {
        stack: STACK.into(),
        steps,
        notes: Vec::new(),
    };
    for max_chars in [2_000, 10_000, DEFAULT_MAX_CHARS] {
        let out = markdown(&plan, &MarkdownOptions { max_chars });
        assert!(
            out.chars().count() <= max_chars,
            "{} > {max_chars}",
            out.chars().count()
        );
        assert!(
            out.contains("> The plan is too long for a comment"),
            "{out}"
        );
        assert!(
            out.contains("more lines not shown\n```\n\n</details>\n"),
            "{out}"
        );
    }
    let small = markdown(&plan, &MarkdownOptions { max_chars: 2_000 });
    insta::assert_snapshot!("markdown_truncated", small);
}

#[test]
fn markdown_fence_outgrows_backticks_in_values() {
    let plan = Plan {
        stack: STACK.into(),
        steps: vec![step(
            id("v1", "ConfigMap", "readme"),
            Action::Update,
            None,
            vec![change(
                "data[\"README.md\"]",
                ChangeKind::Changed,
                v(json!("```sh\nmake\n```")),
                v(json!("````")),
            )],
        )],
        notes: Vec::new(),
    };
    let out = markdown(&plan, &MarkdownOptions::default());
    assert!(out.contains("\n`````diff\n"), "{out}");
    assert!(out.contains("\n`````\n\n</details>"), "{out}");
}

#[test]
fn summary_mentions_imports_only_when_there_are_some() {
    let plan = every_action();
    assert_eq!(
        summary_line(&plan.summary()),
        "Plan: 1 to create, 2 to update, 1 to replace, 3 to delete, 1 to import, 2 unchanged."
    );
}

/// A refused delete shows in every rendering, never as a delete.
#[test]
fn refused_deletes_are_shown_and_counted() {
    let reason = "ConfigMap kube-system/cluster-info is recorded in the state of stack preview-pr-1 but the live object does not carry the label preview-envs.io/stack=preview-pr-1 (it has no preview-envs.io/stack label): refusing to delete an object the stack cannot prove it owns";
    let plan = Plan {
        stack: STACK.into(),
        steps: vec![step(
            ResourceId::kubernetes("v1", "ConfigMap", Some("kube-system"), "cluster-info"),
            Action::Refuse,
            Some(reason),
            Vec::new(),
        )],
        notes: Vec::new(),
    };
    assert!(plan.is_empty(), "a refusal writes nothing");
    assert_eq!(
        summary_line(&plan.summary()),
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 refused (not the stack's), 0 unchanged."
    );
    let shown = text(&plan, &TextOptions::default());
    assert!(
        shown.contains(
            "  ! ConfigMap kube-system/cluster-info (ConfigMap kube-system/cluster-info is recorded"
        ),
        "{shown}"
    );
    let md = markdown(&plan, &MarkdownOptions::default());
    assert!(md.contains("**1 recorded object(s) refused:**"), "{md}");
    assert!(
        md.contains("\n! ConfigMap kube-system/cluster-info ("),
        "{md}"
    );
    let doc = json(&plan);
    assert_eq!(doc["summary"]["refuse"], 1);
    assert_eq!(doc["steps"][0]["action"], "refuse");
}

#[test]
fn long_values_are_shortened_for_people() {
    assert_eq!(shorten("abc"), "abc");
    let long = "é".repeat(250);
    let short = shorten(&long);
    assert_eq!(short, format!("{}… (250 chars)", "é".repeat(200)));
    assert_eq!(one_line("a\nb\x1b[31m"), "a b [31m");
}

/// A canary secret goes through plan and every renderer without appearing anywhere.
#[test]
fn secret_canary_never_rendered() {
    let before = DesiredGraph::new(STACK, fx::preview_resources()).expect("graph");
    let mut state = StackState::new(STACK);
    let mut observed = Observed::new();
    let secret_id = id("v1", "Secret", "app-secrets");
    for r in before.resources() {
        let mut live = r.body.clone();
        if r.id == secret_id {
            live["metadata"]["annotations"] = json!({
                "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"data\":{{\"OLD\":\"{CANARY}\"}}}}")
            });
            live["data"]["OLD"] = json!(CANARY_B64);
        }
        state.resources.insert(
            r.id.clone(),
            ResourceRecord {
                id: r.id.clone(),
                depends_on: vec![],
                desired_hash: hasher().desired_hash(r),
                live_hash: hasher().live_hash(&live, r),
                uid: None,
                protect: false,
                imported: false,
            },
        );
        observed.insert(
            r.id.clone(),
            Observation {
                live: Some(live),
                dry_run: None,
            },
        );
    }
    let mut resources = fx::preview_resources();
    for r in &mut resources {
        if r.id == secret_id {
            r.body["data"] = json!({"DB_PASSWORD": "cm90YXRlZA==", "NEW_TOKEN": CANARY_B64});
        }
    }
    let after = DesiredGraph::new(STACK, resources).expect("graph");
    for r in after.resources() {
        let o = observed.get_mut(&r.id).expect("observed");
        if crate::planner::needs_dry_run(r, state.resources.get(&r.id), o.live.as_ref(), &hasher())
        {
            o.dry_run = Some(DryRun::Accepted {
                object: r.body.clone(),
            });
        }
    }
    let plan = plan(
        &after,
        &state,
        &observed,
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let secret_step = plan
        .steps
        .iter()
        .find(|s| s.id == secret_id)
        .expect("secret");
    assert_eq!(secret_step.action, Action::Update);
    assert_eq!(secret_step.diff.len(), 3, "{:?}", secret_step.diff);
    let renderings = [
        text(
            &plan,
            &TextOptions {
                color: false,
                show_unchanged: true,
            },
        ),
        text(
            &plan,
            &TextOptions {
                color: true,
                show_unchanged: true,
            },
        ),
        json(&plan).to_string(),
        markdown(&plan, &MarkdownOptions::default()),
        serde_json::to_string(&plan).expect("json"),
    ];
    for out in renderings.iter().chain([&format!("{plan:?}")]) {
        for canary in [CANARY, CANARY_B64, "cm90YXRlZA=="] {
            assert!(!out.contains(canary), "{canary} leaked:\n{out}");
        }
    }
    for out in &renderings {
        assert!(out.contains(crate::plan::SECRET_PLACEHOLDER), "{out}");
    }
}

#[test]
fn notes_show_in_every_rendering_and_only_when_present() {
    let mut plan = every_action();
    let note =
        "UNTESTED: web registry.example/web@sha256:0000 was not recorded by any successful preview";
    plan.notes = vec![format!("{note}\n(second line)")];
    let out = text(&plan, &TextOptions::default());
    assert!(
        out.starts_with(&format!(
            "Plan for stack {STACK}:\n\n  ! {note} (second line)\n\n"
        )),
        "{out}"
    );
    let md = markdown(&plan, &MarkdownOptions::default());
    assert!(
        md.contains(&format!("> [!WARNING]\n> {note} (second line)\n\n|")),
        "{md}"
    );
    let doc = json(&plan);
    assert_eq!(doc["notes"][0], format!("{note}\n(second line)"));

    plan.notes.clear();
    assert!(json(&plan).get("notes").is_none());
    assert!(!text(&plan, &TextOptions::default()).contains("  ! "));
    assert!(!markdown(&plan, &MarkdownOptions::default()).contains("[!WARNING]"));
}
