//! A forged state cannot make the engine delete what the stack does not own,
//! against the real control plane.
//!
//! Without a passphrase anyone who can write the state can edit it. The test
//! edits a real stack's state to record (a) another namespace, with no uid and
//! no stack label, (b) an object in that namespace under its real uid, and (c)
//! one of the stack's own objects, deleted and recreated by someone else with
//! the stack's label but another uid. `destroy` reports each (and the stack's
//! Namespace, which holds (c)), deletes only what passes the checks, and the API
//! server's audit log shows no delete request for any of them. With a
//! passphrase the same edit is refused when the state is read, before anything
//! is sent.

use std::sync::Arc;
use std::time::Duration;

use integration_tests::create_namespace;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineError, EngineOptions, Providers};
use preview_core::events::{Event, EventSink};
use preview_core::graph::DesiredGraph;
use preview_core::secret::SecretString;
use preview_core::state::auth::Authenticator;
use preview_core::state::crypto::KdfParams;
use preview_core::state::file::FileBackend;
use preview_core::state::format::{self, Codec};
use preview_core::state::{ResourceRecord, StateBackend, StateError};
use preview_core::{Resource, ResourceId};
use preview_kubernetes::KubeProvider;
use serde_json::json;
use testkit::{ADMIN_USER, NodeSimulator, TestCluster};

fn options() -> EngineOptions {
    EngineOptions {
        timeout: Duration::from_secs(90),
        failure_grace: Duration::from_secs(3),
        ..EngineOptions::default()
    }
}

fn engine(
    kube: &KubeProvider,
    backend: Arc<dyn StateBackend>,
) -> (Engine, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = EventSink::channel();
    let providers = Providers::new().with(ProviderName::KUBERNETES, Arc::new(kube.clone()));
    (Engine::new(providers, backend, events, options()), rx)
}

/// The stack: its namespace and two ConfigMaps.
fn stack_graph(stack: &str, ns: &str) -> DesiredGraph {
    let res = |body| Resource::kubernetes(body).expect("manifest");
    DesiredGraph::new(
        stack,
        vec![
            res(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
            res(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "env", "namespace": ns}, "data": {"A": "1"}})),
            res(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "other", "namespace": ns}, "data": {"B": "2"}})),
        ],
    )
    .expect("graph")
}

/// A record as a forger writes it: the id, maybe a uid, made-up hashes.
fn forged_record(id: &ResourceId, uid: Option<&str>) -> ResourceRecord {
    ResourceRecord {
        id: id.clone(),
        depends_on: Vec::new(),
        desired_hash: "sha256:forged".into(),
        live_hash: "sha256:forged".into(),
        uid: uid.map(str::to_owned),
        protect: false,
        imported: false,
    }
}

/// Delete requests the admin user sent for `namespace`/`name` (a Namespace:
/// `namespace` None) so far.
fn deletes_of(cluster: &TestCluster, resource: &str, namespace: Option<&str>, name: &str) -> usize {
    cluster
        .audit_events_by(ADMIN_USER)
        .expect("audit log")
        .into_iter()
        .filter(|e| e.verb == "delete" && e.resource.as_deref() == Some(resource))
        .filter(|e| e.namespace.as_deref() == namespace && e.name.as_deref() == Some(name))
        .count()
}

async fn configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
    labels: Option<(&str, &str)>,
) -> String {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: labels.map(|(k, v)| [(k.to_owned(), v.to_owned())].into()),
            ..Default::default()
        },
        data: Some([("precious".to_owned(), "data".to_owned())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap")
        .metadata
        .uid
        .expect("uid")
}

async fn still_there(client: &kube::Client, ns: Option<&str>, name: &str) -> bool {
    match ns {
        None => {
            let api: Api<Namespace> = Api::all(client.clone());
            api.get_opt(name)
                .await
                .expect("get")
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none())
        }
        Some(ns) => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            api.get_opt(name)
                .await
                .expect("get")
                .is_some_and(|c| c.metadata.deletion_timestamp.is_none())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_state_never_deletes_what_the_stack_does_not_own() {
    let cluster = TestCluster::shared().await.expect("cluster");
    NodeSimulator::shared().await.expect("simulator");
    let client = cluster.client().expect("client");
    let kube = KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(FileBackend::new(dir.path()));
    let stack = "forged-state";
    let ns = integration_tests::unique_name("forged-state");
    let g = stack_graph(stack, &ns);
    let (eng, _rx) = engine(&kube, backend.clone());
    eng.up(&g, Default::default()).await.expect("up");

    // Someone else's namespace and object, without the stack's label.
    let victim_ns = create_namespace(&client, "victim")
        .await
        .expect("namespace");
    let precious_uid = configmap(&client, &victim_ns, "precious", None).await;
    // The stack's ConfigMap `other`, deleted and recreated by someone else with
    // the stack's label: same id, not the object the stack created.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.delete("other", &DeleteParams::default())
        .await
        .expect("delete other");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt("other").await.expect("get").is_some() {
        assert!(std::time::Instant::now() < deadline, "other is not gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    configmap(
        &client,
        &ns,
        "other",
        Some(("preview-envs.io/stack", stack)),
    )
    .await;

    // The forged state: the victim namespace (no uid), its object (real uid).
    let victim_id = ResourceId::kubernetes("v1", "Namespace", None, victim_ns.as_str());
    let precious_id = ResourceId::kubernetes("v1", "ConfigMap", Some(&victim_ns), "precious");
    let mut state = backend.read(stack).await.expect("read").expect("state");
    state
        .resources
        .insert(victim_id.clone(), forged_record(&victim_id, None));
    state.resources.insert(
        precious_id.clone(),
        forged_record(&precious_id, Some(&precious_uid)),
    );
    state.serial += 1;
    backend.write(&state).await.expect("forge");

    let before = [
        deletes_of(cluster, "namespaces", None, &victim_ns),
        deletes_of(cluster, "configmaps", Some(&victim_ns), "precious"),
        deletes_of(cluster, "configmaps", Some(&ns), "other"),
        deletes_of(cluster, "namespaces", None, &ns),
    ];
    let preview = eng.preview(&DesiredGraph::empty(stack)).await;
    assert!(preview.is_ok(), "{preview:?}");
    let (eng, mut rx) = engine(&kube, backend.clone());
    let err = eng.destroy(stack).await.expect_err("refused");
    let EngineError::Refused { refused, .. } = &err else {
        panic!("{err}");
    };
    let mut ids: Vec<String> = refused.iter().map(|(id, _)| id.to_string()).collect();
    ids.sort();
    let mut expected = vec![
        format!("ConfigMap {victim_ns}/precious"),
        format!("ConfigMap {ns}/other"),
        format!("Namespace {victim_ns}"),
        format!("Namespace {ns}"),
    ];
    expected.sort();
    assert_eq!(ids, expected, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "Namespace {victim_ns} is recorded in the state of stack {stack} but the live object does not carry the label preview-envs.io/stack={stack} (it has no preview-envs.io/stack label)"
        )),
        "{text}"
    );
    assert!(text.contains("but the live object has uid"), "{text}");
    // Reported while running too.
    drop(eng);
    let mut warnings = 0;
    while let Ok(event) = rx.try_recv() {
        if let Event::Warning {
            id: Some(_),
            message,
        } = event
            && message.starts_with("not deleting it: ")
        {
            warnings += 1;
        }
    }
    assert_eq!(warnings, 4);

    // Nothing of them was deleted, or even asked to be.
    assert!(still_there(&client, None, &victim_ns).await);
    assert!(still_there(&client, Some(&victim_ns), "precious").await);
    assert!(still_there(&client, Some(&ns), "other").await);
    assert!(still_there(&client, None, &ns).await);
    let after = [
        deletes_of(cluster, "namespaces", None, &victim_ns),
        deletes_of(cluster, "configmaps", Some(&victim_ns), "precious"),
        deletes_of(cluster, "configmaps", Some(&ns), "other"),
        deletes_of(cluster, "namespaces", None, &ns),
    ];
    assert_eq!(after, before, "no delete request for a refused object");
    // What the stack owns was deleted; the refused records stay.
    assert!(!still_there(&client, Some(&ns), "env").await);
    let stored = backend.read(stack).await.expect("read").expect("state");
    let recorded: Vec<String> = stored.resources.keys().map(ToString::to_string).collect();
    assert_eq!(recorded.len(), 4, "{recorded:?}");

    // With a passphrase, the same kind of edit is refused at read.
    let auth = || {
        Codec::authenticated(Arc::new(Authenticator::with_params(
            SecretString::new("forged-state test passphrase"),
            KdfParams::insecure_for_tests(),
        )))
    };
    let adir = tempfile::tempdir().expect("tempdir");
    let astack = "forged-state-authenticated";
    let ans = integration_tests::unique_name("forged-state-auth");
    let authenticated: Arc<dyn StateBackend> =
        Arc::new(FileBackend::new(adir.path()).with_codec(auth()));
    let (eng, _rx) = engine(&kube, authenticated.clone());
    eng.up(&stack_graph(astack, &ans), Default::default())
        .await
        .expect("authenticated up");
    let path = adir.path().join(format!("{astack}.json"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let mut st = doc["state"].clone();
    st["resources"]
        .as_array_mut()
        .expect("resources")
        .push(serde_json::to_value(forged_record(&victim_id, None)).expect("record"));
    let body = serde_json::to_string_pretty(&st).expect("state");
    let forged = format!(
        "{{\n  \"format\": 3,\n  \"sha256\": \"{}\",\n  \"authentication\": {},\n  \"state\": {body}\n}}\n",
        format::sha256_hex(body.as_bytes()),
        serde_json::to_string(&doc["authentication"]).expect("header")
    );
    std::fs::write(&path, &forged).expect("forge");
    let before = deletes_of(cluster, "namespaces", None, &victim_ns);
    let err = eng.destroy(astack).await.expect_err("not authentic");
    assert!(
        matches!(err, EngineError::State(StateError::NotAuthentic { .. })),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), forged);
    assert!(still_there(&client, None, &victim_ns).await);
    assert!(
        still_there(&client, None, &ans).await,
        "nothing was deleted"
    );
    assert_eq!(deletes_of(cluster, "namespaces", None, &victim_ns), before);

    // Clean up by hand.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [&victim_ns, &ns, &ans] {
        let _ = namespaces.delete(name, &DeleteParams::default()).await;
    }
}

/// A delete is conditional on the uid the planner checked: an object recreated
/// since (same name, another uid) is not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_conditional_on_the_checked_uid() {
    use preview_core::provider::Provider;
    let cluster = TestCluster::shared().await.expect("cluster");
    let client = cluster.client().expect("client");
    let kube = KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
        .await
        .expect("connect");
    let ns = create_namespace(&client, "uid-precondition")
        .await
        .expect("namespace");
    let uid = configmap(&client, &ns, "c", None).await;
    let id = ResourceId::kubernetes("v1", "ConfigMap", Some(&ns), "c");
    let err = kube
        .delete_checked(&id, Some("the-uid-that-was-checked"))
        .await
        .expect_err("another uid")
        .to_string();
    assert!(
        err.contains(&format!(
            "not deleted: the object now has uid {uid}, not the checked the-uid-that-was-checked"
        )),
        "{err}"
    );
    assert!(still_there(&client, Some(&ns), "c").await);
    kube.delete_checked(&id, Some(&uid))
        .await
        .expect("the checked uid");
    assert!(!still_there(&client, Some(&ns), "c").await);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}
