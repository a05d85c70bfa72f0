//! The residue path of `stacks destroy` against the real control plane (the
//! real API server, namespace controller and garbage collector):
//! - an object of the stack held by a finalizer nobody removes fails the
//!   destroy, named by kind/namespace/name with the finalizer, in the error and
//!   in `--json`, with the binary's hint pointing to `--force-finalize`;
//! - `--force-finalize` removes the finalizers of the stack's own objects only
//!   (a recorded one, and unrecorded content of its namespace carrying its
//!   label); foreign objects with the same finalizer keep it, and a namespace
//!   still held by foreign content is not forced; once that is gone, the next
//!   verification passes;
//! - a verified destroy removes the stack's state in every backend (`file://`,
//!   `kubernetes://`, `postgres://`), `--keep-state` keeps it emptied, and the
//!   tested-image record stays byte for byte.

mod support_cluster;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use preview_core::state::{StateBackend, tested};
use preview_envs::{BackendOptions, open_backend_with};
use serde_json::{Value, json};
use support_cluster::{Stacks, World, backends, pr_args, runner_on, world};

const HOLD: &str = "example.com/hold";

fn with_pr(cmd: &[&str], pr: u64) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
    a.extend(pr_args(pr));
    a
}

fn destroy_args(pr: u64, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--json".to_owned(),
        "destroy".to_owned(),
        "preview-pr".to_owned(),
        "--pr".to_owned(),
        pr.to_string(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn client(world: &World) -> kube::Client {
    world.cluster.client().expect("client")
}

/// A ConfigMap with the hold finalizer and the given labels.
fn held_config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels, "finalizers": [HOLD]},
        "data": {"k": "v"},
    }))
    .expect("config map")
}

async fn finalizers_of(cms: &Api<ConfigMap>, name: &str) -> Option<Vec<String>> {
    cms.get_opt(name)
        .await
        .expect("get")
        .map(|cm| cm.metadata.finalizers.unwrap_or_default())
}

async fn release(cms: &Api<ConfigMap>, name: &str) {
    if cms.get_opt(name).await.expect("get").is_some() {
        cms.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove finalizer");
    }
}

/// Waits until `ns` is gone (bounded).
async fn namespace_gone(client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for _ in 0..120 {
        if namespaces.get_opt(ns).await.expect("get ns").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("namespace {ns} still present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_objects_are_named_and_force_finalize_releases_only_the_stacks_own() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let pr = 985;
    let stack = format!("preview-pr-{pr}");
    let ns = stack.clone();
    stacks.ok(&with_pr(&["up", "preview-pr"], pr));
    let client = client(world).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    // A recorded object of the stack held by a finalizer nobody removes.
    let recorded = cms
        .list(&ListParams::default().labels(&format!("preview-envs.io/stack={stack}")))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .next()
        .expect("the stack records a ConfigMap");
    cms.patch(
        &recorded,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": [HOLD]}})),
    )
    .await
    .expect("hold the recorded ConfigMap");
    // Content of its namespace carrying its label that it did not record, and
    // foreign content with the same finalizer: unlabelled, and another stack's.
    let post = PostParams::default();
    cms.create(
        &post,
        &held_config_map("held-content", json!({"preview-envs.io/stack": stack})),
    )
    .await
    .expect("labelled content");
    cms.create(&post, &held_config_map("foreign-content", json!({})))
        .await
        .expect("foreign content");
    // Foreign objects elsewhere, being deleted and held the same way.
    let elsewhere = format!("residue-foreign-{pr}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": elsewhere}})).expect("ns"),
        )
        .await;
    let foreign: Api<ConfigMap> = Api::namespaced(client.clone(), &elsewhere);
    for (name, labels) in [
        ("unlabelled", json!({})),
        (
            "other-stack",
            json!({"preview-envs.io/stack": "preview-pr-98599"}),
        ),
        ("app-labelled", json!({"app": "x"})),
    ] {
        let _ = foreign.create(&post, &held_config_map(name, labels)).await;
        foreign
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete foreign");
    }

    // 1. Without --force-finalize: fails, naming the held object and its finalizer.
    let out = stacks.run(&destroy_args(pr, &["--timeout", "10s"]));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a held object fails the destroy");
    let named = format!("ConfigMap {ns}/{recorded} (being deleted, held by finalizer {HOLD})");
    assert!(stderr.contains(&named), "names it: {stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("--force-finalize"),
        "the binary points to --force-finalize: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json on failure");
    assert_eq!(report["verified"], false, "{report}");
    let left = report["left"].as_array().expect("left");
    assert!(
        left.iter().any(|l| l["id"]["kind"] == "ConfigMap"
            && l["id"]["namespace"] == ns.as_str()
            && l["id"]["name"] == recorded.as_str()
            && l["deleting"] == true
            && l["finalizers"] == json!([HOLD])),
        "{report}"
    );
    assert!(
        stacks.state.join(format!("{stack}.json")).exists(),
        "an unverified destroy keeps the state"
    );

    // 2. With --force-finalize: the recorded object and the labelled content are
    // released; the foreign content still holds the namespace, which is not forced.
    let out = stacks.run(&destroy_args(pr, &["--timeout", "80s", "--force-finalize"]));
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "foreign content still holds the namespace: {stderr}"
    );
    assert!(
        stderr.contains(&format!("Namespace {ns}")) && stderr.contains("not the stack's own"),
        "names the namespace as held by what is not the stack's: {stderr}"
    );
    assert_eq!(
        finalizers_of(&cms, &recorded).await,
        None,
        "the recorded object was released"
    );
    assert_eq!(
        finalizers_of(&cms, "held-content").await,
        None,
        "the stack's content was released"
    );
    assert_eq!(
        finalizers_of(&cms, "foreign-content").await,
        Some(vec![HOLD.to_owned()]),
        "foreign content keeps its finalizer"
    );
    assert!(
        namespaces.get_opt(&ns).await.expect("get").is_some(),
        "the namespace was not forced away from foreign content"
    );

    // 3. Its owner releases the foreign content; the next destroy verifies.
    release(&cms, "foreign-content").await;
    namespace_gone(&client, &ns).await;
    let out = stacks.ok(&destroy_args(pr, &[]));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verified"], true, "{report}");
    assert!(!stacks.state.join(format!("{stack}.json")).exists());
    for name in ["unlabelled", "other-stack", "app-labelled"] {
        assert_eq!(
            finalizers_of(&foreign, name).await,
            Some(vec![HOLD.to_owned()]),
            "foreign {name} keeps its finalizer"
        );
        release(&foreign, name).await;
    }
    let _ = namespaces
        .delete(&elsewhere, &DeleteParams::default())
        .await;
}

/// The stack's recorded content left after its namespace was removed behind
/// the engine's back (the residue the verification finds): reported by name,
/// and released by `--force-finalize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residue_found_by_verification_is_named_and_released() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let pr = 986;
    let stack = format!("preview-pr-{pr}");
    stacks.ok(&with_pr(&["up", "preview-pr"], pr));
    let client = client(world).await;
    // A ConfigMap of the stack's label in another namespace, being deleted and
    // held: the verification lists every recorded kind cluster-wide.
    let elsewhere = format!("residue-stray-{pr}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let post = PostParams::default();
    let _ = namespaces
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": elsewhere}})).expect("ns"),
        )
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &elsewhere);
    cms.create(
        &post,
        &held_config_map("stray", json!({"preview-envs.io/stack": stack})),
    )
    .await
    .expect("stray");
    cms.create(&post, &held_config_map("foreign", json!({})))
        .await
        .expect("foreign");
    for name in ["stray", "foreign"] {
        cms.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    let out = stacks.run(&destroy_args(pr, &[]));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "residue fails the destroy");
    assert!(
        stderr.contains(&format!(
            "destroy left residue: ConfigMap {elsewhere}/stray (being deleted, held by finalizer {HOLD})"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--force-finalize"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["left"][0]["id"]["name"], "stray", "{report}");
    assert!(stacks.state.join(format!("{stack}.json")).exists());

    let out = stacks.ok(&destroy_args(pr, &["--force-finalize"]));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(
        finalizers_of(&cms, "stray").await,
        None,
        "released and gone"
    );
    assert_eq!(
        finalizers_of(&cms, "foreign").await,
        Some(vec![HOLD.to_owned()]),
        "the foreign object keeps its finalizer"
    );
    release(&cms, "foreign").await;
    let _ = namespaces
        .delete(&elsewhere, &DeleteParams::default())
        .await;
}

async fn open(world: &World, url: &str) -> std::sync::Arc<dyn StateBackend> {
    let client = client(world).await;
    open_backend_with(url, Some(&client), &BackendOptions::default())
        .await
        .expect("open backend")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_destroy_removes_state_in_every_backend_and_keeps_tested_images() {
    let world = world().await;
    for (i, b) in backends(world, "residue").await.into_iter().enumerate() {
        let pr = 987 + i as u64 * 10;
        let stack = format!("preview-pr-{pr}");
        let stacks = runner_on(world, &b.url);
        let backend = open(world, &b.url).await;
        stacks.ok(&with_pr(&["up", "preview-pr"], pr));
        let record = backend
            .read_record(tested::KIND, &tested::record_name(pr))
            .await
            .expect("read record")
            .unwrap_or_else(|| panic!("{}: up recorded the tested images", b.label));

        // --keep-state: verified, the emptied state stays.
        let out = stacks.run(&destroy_args(pr, &["--keep-state"]));
        assert!(
            out.status.success(),
            "{}: destroy --keep-state: {}",
            b.label,
            text(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(report["stateRemoved"], false, "{}: {report}", b.label);
        assert!(
            backend.list().await.expect("list").contains(&stack),
            "{}: --keep-state keeps the state",
            b.label
        );
        let shown: Value =
            serde_json::from_slice(&stacks.ok(&["--json", "state", "show", &stack]).stdout)
                .expect("state json");
        let state = if shown["state"].is_object() {
            &shown["state"]
        } else {
            &shown
        };
        let empty = |key: &str| {
            let v = &state[key];
            v.is_null()
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(serde_json::Map::is_empty)
        };
        assert!(
            empty("resources") && empty("outputs") && empty("pending"),
            "{}: kept emptied: {shown}",
            b.label
        );

        // Without: verified, and the state is removed.
        let out = stacks.run(&destroy_args(pr, &[]));
        assert!(
            out.status.success(),
            "{}: destroy: {}",
            b.label,
            text(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(report["stateRemoved"], true, "{}: {report}", b.label);
        assert!(
            !backend.list().await.expect("list").contains(&stack),
            "{}: the state of {stack} is left",
            b.label
        );
        assert!(backend.read(&stack).await.expect("read").is_none());
        assert_eq!(
            backend
                .read_record(tested::KIND, &tested::record_name(pr))
                .await
                .expect("read record")
                .as_deref(),
            Some(record.as_slice()),
            "{}: the tested-image record is byte-identical after destroy",
            b.label
        );
        // A destroy of a stack without state succeeds and says so.
        let out = stacks.ok(&destroy_args(pr, &[]));
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(report["nothingToDestroy"], true, "{}: {report}", b.label);
    }
}
