//! The per-PR database as an engine resource, against a real PostgreSQL server:
//! create with an ownership marker → no-op → refuse to adopt or drop a database
//! that is not ours → destroy drops it (`WITH (FORCE)`, with a client still
//! connected) and verifies it is gone from `pg_database`.

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::database_resource;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::secret::SecretString;
use preview_core::state::file::FileBackend;
use preview_core::{ProviderName, Resource, ResourceOptions};
use preview_postgres::PostgresProvider;
use serde_json::json;
use testkit::TestPostgres;

fn database(name: &str, stack: &str) -> Resource {
    database_resource(
        name,
        json!({"owner": "aphiria", "server": {"host": "db.default.svc.cluster.local", "port": 5432}, "ownerMarker": stack}),
        ResourceOptions::default(),
    )
}

async fn exists(pg: &tokio_postgres::Client, name: &str) -> bool {
    pg.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lifecycle_with_ownership_marker() {
    let server = TestPostgres::start().await.expect("postgres");
    let admin = server.client().await.expect("client");
    admin
        .batch_execute("CREATE ROLE aphiria LOGIN")
        .await
        .expect("role");
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = Arc::new(PostgresProvider::new(SecretString::new(server.url())));
    let engine = Engine::new(
        Providers::new().with(ProviderName::POSTGRES, provider),
        Arc::new(FileBackend::new(dir.path())),
        EventSink::none(),
        EngineOptions::default(),
    );
    let stack = "preview-pr-42";
    let g = DesiredGraph::new(stack, vec![database("aphiria_pr_42", stack)]).expect("graph");

    let report = engine.up(&g, BTreeMap::new()).await.expect("create");
    assert_eq!(report.plan.summary().create, 1);
    assert!(exists(&admin, "aphiria_pr_42").await);
    let comment: String = admin
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'aphiria_pr_42'",
            &[],
        )
        .await
        .expect("comment")
        .get(0);
    assert_eq!(comment, "managed-by=preview-envs stack=preview-pr-42");

    let report = engine.up(&g, BTreeMap::new()).await.expect("no-op");
    assert!(report.plan.is_empty(), "{:?}", report.plan);

    // A database that exists without our marker is neither adopted nor dropped.
    admin
        .batch_execute("CREATE DATABASE aphiria_pr_43 OWNER aphiria")
        .await
        .expect("by hand");
    let other = DesiredGraph::new(
        "preview-pr-43",
        vec![database("aphiria_pr_43", "preview-pr-43")],
    )
    .expect("graph");
    let err = engine
        .up(&other, BTreeMap::new())
        .await
        .expect_err("not ours");
    assert!(err.to_string().contains("aphiria_pr_43"), "{err}");
    assert!(exists(&admin, "aphiria_pr_43").await, "left untouched");

    // Destroy drops ours even with a session connected to it, and verifies.
    let (held, conn) =
        tokio_postgres::connect(&server.url_for("aphiria_pr_42"), tokio_postgres::NoTls)
            .await
            .expect("connect to the preview database");
    let conn = tokio::spawn(conn);
    let report = engine.destroy(stack).await.expect("destroy");
    assert_eq!(report.plan.summary().delete, 1);
    assert!(
        !exists(&admin, "aphiria_pr_42").await,
        "gone from pg_database"
    );
    assert!(
        exists(&admin, "aphiria_pr_43").await,
        "the database that was not ours survives"
    );
    drop(held);
    let _ = conn.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_names_never_reach_sql() {
    let server = TestPostgres::shared().await.expect("postgres");
    let provider = PostgresProvider::new(SecretString::new(server.url()));
    use preview_core::provider::Provider;
    let mut bad = database("x", "s");
    bad.id.name = "x\"; DROP DATABASE postgres; --".into();
    let err = provider.read(&bad.id).await.expect_err("rejected");
    assert!(err.to_string().contains("database name"), "{err}");
}
