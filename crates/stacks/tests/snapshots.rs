//! Snapshots of every stack's full manifest set (resources with dependencies and
//! options, outputs, policy), built from the repository's config files with fake
//! canary secrets. Secret values appear only base64-encoded, as in any manifest;
//! the canaries are obviously fake.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use preview_core::graph::{DesiredGraph, render_graph};
use stacks::StackKind;
use support::{ALL, DB_PASSWORD, DO_TOKEN, REGISTRY_TOKEN, manifest, preview, stack};

#[test]
fn preview_pr_123() {
    insta::assert_yaml_snapshot!(manifest(&preview("123")));
}

#[test]
fn preview_pr_7() {
    insta::assert_yaml_snapshot!(manifest(&preview("7")));
}

#[test]
fn preview_base() {
    insta::assert_yaml_snapshot!(manifest(&stack(StackKind::PreviewBase)));
}

#[test]
fn production() {
    insta::assert_yaml_snapshot!(manifest(&stack(StackKind::Production)));
}

/// The DOKS cluster: protected, owned by the stack, outputs known before it runs.
#[test]
fn preview_cluster() {
    let build = stack(StackKind::PreviewCluster);
    let text = serde_json::to_string(&manifest(&build)).expect("json");
    assert!(
        !text.contains(DO_TOKEN),
        "the token is in no resource or output"
    );
    insta::assert_yaml_snapshot!(manifest(&build));
}

#[test]
fn local() {
    insta::assert_yaml_snapshot!(manifest(&stack(StackKind::Local)));
}

/// The order the engine applies preview-pr in, with every dependency (explicit
/// and implied): namespace first, the database before the migration Job, the Job
/// before the API Deployment, filters before routes.
#[test]
fn preview_pr_123_graph() {
    let build = preview("123");
    let graph = DesiredGraph::new(&build.name, build.resources).expect("graph");
    insta::assert_snapshot!(render_graph(&graph));
}

/// Secret values appear nowhere in plain text, only base64-encoded in Secret `data`.
#[test]
fn canaries_appear_only_base64_encoded() {
    for kind in ALL {
        let text = serde_json::to_string(&manifest(&stack(kind))).expect("json");
        for canary in [DB_PASSWORD, DO_TOKEN, REGISTRY_TOKEN] {
            assert!(
                !text.contains(canary),
                "{kind:?} shows {canary} in plain text"
            );
        }
        // Every stack but preview-pr carries the superuser's password (server
        // credentials, or the app's Secret of local/production), only as base64;
        // preview-pr never holds it, only its own role's password.
        if kind == stacks::StackKind::PreviewPr {
            assert!(!text.contains(&STANDARD.encode(DB_PASSWORD)), "{kind:?}");
            assert!(
                text.contains(&STANDARD.encode(support::ROLE_PASSWORD)),
                "{kind:?}"
            );
            assert!(!text.contains(support::ROLE_PASSWORD), "{kind:?}");
        } else {
            assert!(text.contains(&STANDARD.encode(DB_PASSWORD)), "{kind:?}");
        }
    }
}
