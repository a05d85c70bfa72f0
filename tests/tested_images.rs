//! Tested-image records on the three state backends against real parts: the
//! file backend in a temp dir, the Kubernetes backend (ConfigMaps) against the
//! test kit's real `kube-apiserver`, the PostgreSQL backend (table
//! `preview_envs_records`) against the kit's real PostgreSQL.
//!
//! One suite per backend: compare-and-swap semantics of `swap_record`, records
//! kept apart from the states (not listed, not deleted with a stack), the
//! append-only history with "unchanged" skips, refusal of a damaged record, and
//! concurrent appends that all land. Backend-specific: a foreign ConfigMap of a
//! record's name is never touched; PostgreSQL creates the records table on the
//! first write and reads nothing before it exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use integration_tests::{create_namespace, fresh_database, store_client};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use preview_core::state::file::FileBackend;
use preview_core::state::tested::{self, Appended, TestedEntry};
use preview_core::state::{StackState, StateBackend, StateError};
use preview_envs::open_backend;
use preview_kubernetes::state::KubeBackend;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Kube,
    Pg,
}

struct Fixture {
    backend: Arc<dyn StateBackend>,
    _dir: Option<tempfile::TempDir>,
    kube: Option<(kube::Client, String)>,
    pg_url: Option<String>,
}

async fn fixture(kind: Kind) -> Fixture {
    match kind {
        Kind::File => {
            let dir = tempfile::tempdir().expect("tempdir");
            Fixture {
                backend: Arc::new(FileBackend::new(dir.path())),
                _dir: Some(dir),
                kube: None,
                pg_url: None,
            }
        }
        Kind::Kube => {
            let client = store_client().await.expect("cluster client");
            let ns = create_namespace(&client, "records")
                .await
                .expect("namespace");
            Fixture {
                backend: Arc::new(KubeBackend::new(client.clone(), &ns)),
                _dir: None,
                kube: Some((client, ns)),
                pg_url: None,
            }
        }
        Kind::Pg => {
            let url = fresh_database("records").await.expect("fresh database");
            Fixture {
                backend: open_backend(&url, None).await.expect("open pg backend"),
                _dir: None,
                kube: None,
                pg_url: Some(url),
            }
        }
    }
}

fn entry(n: u64) -> TestedEntry {
    TestedEntry::now(
        Some(format!("{n:040x}")),
        BTreeMap::from([
            (
                "api".to_owned(),
                format!("registry.example/app/api@sha256:{:064x}", n + 1000),
            ),
            (
                "web".to_owned(),
                format!("registry.example/app/web@sha256:{n:064x}"),
            ),
        ]),
        "preview-pr-5",
        "lineage",
        n,
    )
}

/// The PRs with a tested-images record, as `tested::all` lists them.
async fn recorded_prs(b: &dyn StateBackend) -> Vec<u64> {
    tested::all(b)
        .await
        .expect("all")
        .iter()
        .map(|r| r.pr)
        .collect()
}

async fn suite(kind: Kind) {
    let f = fixture(kind).await;
    let b = f.backend.as_ref();

    // Compare-and-swap (on a kind of its own: tested-images holds only records).
    assert_eq!(b.read_record("scratch", "pr-1").await.expect("read"), None);
    b.swap_record("scratch", "pr-1", None, b"{\"v\":1}")
        .await
        .expect("create");
    for (expected, what) in [(None, "exists"), (Some(&b"{\"v\":0}"[..]), "moved")] {
        let err = b
            .swap_record("scratch", "pr-1", expected, b"{\"v\":2}")
            .await
            .expect_err(what);
        assert!(
            matches!(err, StateError::Stale { .. }),
            "{kind:?} {what}: {err}"
        );
    }
    b.swap_record("scratch", "pr-1", Some(b"{\"v\":1}"), b"{\"v\":2}")
        .await
        .expect("swap");
    assert_eq!(
        b.read_record("scratch", "pr-1").await.expect("read"),
        Some(b"{\"v\":2}".to_vec())
    );
    assert!(b.read_record("scratch", "../pr-1").await.is_err());

    // Apart from the states: not a stack, and not deleted with one.
    let mut state = StackState::new("preview-pr-5");
    state.serial = 1;
    b.write(&state).await.expect("state");
    assert_eq!(b.list().await.expect("list"), ["preview-pr-5"]);
    assert_eq!(
        tested::append(b, 5, entry(1)).await.expect("append"),
        Appended::Added(1)
    );
    b.delete("preview-pr-5").await.expect("delete state");
    assert!(b.list().await.expect("list").is_empty());
    let record = tested::read(b, 5).await.expect("read").expect("kept");
    assert_eq!(record.entries.len(), 1);
    assert!(record.entries[0].same_test(&entry(1)));

    // History: unchanged tests are not written again; others append.
    let before = b.read_record("tested-images", "pr-5").await.expect("read");
    assert_eq!(
        tested::append(b, 5, entry(1)).await.expect("same"),
        Appended::Unchanged
    );
    assert_eq!(
        b.read_record("tested-images", "pr-5").await.expect("read"),
        before
    );
    assert_eq!(
        tested::append(b, 5, entry(2)).await.expect("next"),
        Appended::Added(2)
    );

    // Concurrent appends to one PR's record all land.
    let runs = (10..20u64).map(|n| {
        let backend = f.backend.clone();
        async move { tested::append(backend.as_ref(), 6, entry(n)).await }
    });
    for r in join_all(runs).await {
        assert!(matches!(r.expect("append"), Appended::Added(_)));
    }
    let record = tested::read(b, 6).await.expect("read").expect("record");
    let mut serials: Vec<u64> = record.entries.iter().map(|e| e.serial).collect();
    serials.sort_unstable();
    assert_eq!(serials, (10..20).collect::<Vec<_>>(), "{kind:?}");
    let prs = recorded_prs(b).await;
    assert_eq!(prs, [5, 6], "{kind:?}");
    let found = tested::find_commit(&tested::all(b).await.expect("all"), &format!("{:040x}", 2))
        .expect("unambiguous")
        .expect("found");
    assert_eq!(found.pr, 5);

    // A damaged record is refused and never overwritten by an append.
    let stored = b
        .read_record("tested-images", "pr-5")
        .await
        .expect("read")
        .expect("stored");
    let damaged = String::from_utf8(stored)
        .expect("utf8")
        .replace("\"serial\": 2", "\"serial\": 3")
        .into_bytes();
    let current = b.read_record("tested-images", "pr-5").await.expect("read");
    b.swap_record("tested-images", "pr-5", current.as_deref(), &damaged)
        .await
        .expect("damage");
    let err = tested::read(b, 5).await.expect_err("damaged");
    assert!(
        err.to_string().contains("checksum mismatch"),
        "{kind:?}: {err}"
    );
    assert!(tested::append(b, 5, entry(3)).await.is_err());
    assert_eq!(
        b.read_record("tested-images", "pr-5").await.expect("read"),
        Some(damaged)
    );
    drop(f.kube);
    drop(f.pg_url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_file() {
    suite(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_kubernetes() {
    suite(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_postgres() {
    suite(Kind::Pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_records_are_configmaps_and_a_foreign_one_is_never_touched() {
    let f = fixture(Kind::Kube).await;
    let (client, ns) = f.kube.clone().expect("kube");
    let b = f.backend.as_ref();
    tested::append(b, 3, entry(1)).await.expect("append");
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let cm = cms
        .get("preview-tested-images-pr-3")
        .await
        .expect("configmap");
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("preview-envs.io/record-kind")
            .map(String::as_str),
        Some("tested-images")
    );
    assert_eq!(
        labels
            .get("preview-envs.io/record-name")
            .map(String::as_str),
        Some("pr-3")
    );
    assert!(
        cm.data.unwrap_or_default()["record"].contains("\"kind\": \"tested-images\""),
        "the document is readable with kubectl"
    );

    // Someone else's ConfigMap under a record's name.
    let foreign = ConfigMap {
        metadata: ObjectMeta {
            name: Some("preview-tested-images-pr-4".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("record".into(), "theirs".into())])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &foreign)
        .await
        .expect("foreign");
    let err = tested::append(b, 4, entry(1)).await.expect_err("foreign");
    assert!(
        err.to_string().contains("is not a tested-images record"),
        "{err}"
    );
    let kept = cms.get("preview-tested-images-pr-4").await.expect("kept");
    assert_eq!(kept.data.unwrap_or_default()["record"], "theirs");
    // Not listed either.
    let prs = recorded_prs(b).await;
    assert_eq!(prs, [3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_creates_the_records_table_on_the_first_write() {
    let f = fixture(Kind::Pg).await;
    let url = f.pg_url.clone().expect("url");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let exists = async || -> bool {
        client
            .query_one(
                "SELECT to_regclass('preview_envs_records') IS NOT NULL",
                &[],
            )
            .await
            .expect("query")
            .get(0)
    };
    assert!(!exists().await, "the state tables do not include it");
    let b = f.backend.as_ref();
    assert_eq!(tested::read(b, 1).await.expect("read"), None);
    assert!(tested::all(b).await.expect("all").is_empty());
    assert!(!exists().await, "reads create nothing");
    tested::append(b, 1, entry(1)).await.expect("append");
    assert!(exists().await);
    let row = client
        .query_one("SELECT kind, name FROM preview_envs_records", &[])
        .await
        .expect("row");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("tested-images".to_owned(), "pr-1".to_owned())
    );
    // The state table holds no record.
    let states: i64 = client
        .query_one("SELECT count(*) FROM preview_envs_state", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(states, 0);
}
