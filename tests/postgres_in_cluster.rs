//! The in-cluster database executor (NFR-017) against the real API server, the
//! real Job controller and a real PostgreSQL: the Jobs' `psql` commands really
//! run (the node simulator's job runner executes them on the host, with the
//! Secret resolved through the API server and `db.<ns>.svc.cluster.local:5432`
//! routed to the test server).
//!
//! Covered: create through a Job (marker COMMENT, owner) → no-op → refusal to
//! take over a database without our marker (with psql's error in the message,
//! nothing changed) → destroy drops it through a Job and verifies it is gone,
//! leaving no Job behind → a missing credentials Secret fails with the reason →
//! a Job planted in another namespace is never found, reused or dropped with →
//! ensure scripts of one database run at once leave it and no temporary
//! database, and an ensure drops a leftover temporary one → the job runner
//! stops a deleted pod's command (as a kubelet does).

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::{cluster, create_namespace, database_resource};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::provider::Provider;
use preview_core::state::file::FileBackend;
use preview_core::{ProviderName, Resource, ResourceOptions};
use preview_kubernetes::KubeProvider;
use preview_postgres::in_cluster::InClusterProvider;
use serde_json::json;
use testkit::{NodeSimulator, TestCluster, TestPostgres};

const IMAGE: &str = "docker.io/library/postgres:16-alpine@sha256:57c72fd2a128e416c7fcc499958864df5301e940bca0a56f58fddf30ffc07777";

fn database(name: &str, stack: &str, namespace: &str, secret: &str) -> Resource {
    database_resource(
        name,
        json!({
            "owner": "aphiria",
            "server": {"host": format!("db.{namespace}.svc.cluster.local"), "port": 5432},
            "ownerMarker": stack,
            "job": {"namespace": namespace, "image": IMAGE, "credentialsSecret": secret},
        }),
        ResourceOptions::default(),
    )
}

struct World {
    admin: tokio_postgres::Client,
    namespace: String,
    jobs: Api<Job>,
    engine: Engine,
    _state: tempfile::TempDir,
}

/// The Kubernetes provider of the shared cluster and an in-cluster executor on it
/// that knows the database server's `namespace` (or not).
async fn kube_and_executor(
    cluster: &TestCluster,
    namespace: Option<String>,
) -> (Arc<KubeProvider>, InClusterProvider) {
    let kube = Arc::new(
        KubeProvider::connect(Some(cluster.kubeconfig_path()), None)
            .await
            .expect("connect"),
    );
    let executor = InClusterProvider::new(
        kube.clone(),
        kube.client().clone(),
        EventSink::none(),
        namespace,
    );
    (kube, executor)
}

/// A namespace standing for the database server's, its credentials Secret, the
/// service route to the test PostgreSQL, and an engine with the in-cluster executor.
async fn world(pg: &TestPostgres) -> World {
    let cluster = cluster().await.expect("cluster");
    let client = cluster.client().expect("client");
    let namespace = create_namespace(&client, "dbjobs")
        .await
        .expect("namespace");
    NodeSimulator::shared()
        .await
        .expect("simulator")
        .route_service(
            &format!("db.{namespace}.svc.cluster.local:5432"),
            &format!("127.0.0.1:{}", pg.port()),
        );
    let admin = pg.client().await.expect("pg client");
    // As the official image's POSTGRES_USER: the server's superuser.
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE aphiria LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .await
        .expect("role");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let data = BTreeMap::from([
        ("POSTGRES_USER".to_owned(), ByteString(b"aphiria".to_vec())),
        (
            "POSTGRES_PASSWORD".to_owned(),
            ByteString(b"unused-with-trust-auth".to_vec()),
        ),
    ]);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("db-credentials".into()),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            },
        )
        .await
        .expect("secret");
    let (kube, in_cluster) = kube_and_executor(cluster, Some(namespace.clone())).await;
    let state = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(
        Providers::new()
            .with(ProviderName::KUBERNETES, kube)
            .with(ProviderName::POSTGRES, Arc::new(in_cluster)),
        Arc::new(FileBackend::new(state.path())),
        EventSink::none(),
        EngineOptions::default(),
    );
    World {
        admin,
        jobs: Api::namespaced(client, &namespace),
        namespace,
        engine,
        _state: state,
    }
}

async fn comment_of(pg: &tokio_postgres::Client, name: &str) -> Option<String> {
    pg.query_opt(
        "SELECT COALESCE(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1",
        &[&name],
    )
    .await
    .expect("query")
    .map(|r| r.get(0))
}

async fn job_names(jobs: &Api<Job>) -> Vec<String> {
    jobs.list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lifecycle_through_jobs() {
    let pg = TestPostgres::start().await.expect("postgres");
    let w = world(&pg).await;
    let stack = "preview-pr-77";
    let db = database("aphiria_pr_77", stack, &w.namespace, "db-credentials");
    let g = DesiredGraph::new(stack, vec![db.clone()]).expect("graph");

    let report = w.engine.up(&g, BTreeMap::new()).await.expect("create");
    assert_eq!(report.plan.summary().create, 1);
    assert_eq!(
        comment_of(&w.admin, "aphiria_pr_77").await.as_deref(),
        Some("managed-by=preview-envs stack=preview-pr-77")
    );
    let owner: String = w
        .admin
        .query_one(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'aphiria_pr_77'",
            &[],
        )
        .await
        .expect("owner")
        .get(0);
    assert_eq!(owner, "aphiria");
    let created = job_names(&w.jobs).await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        created[0].starts_with("create-db-aphiria-pr-77-"),
        "{created:?}"
    );

    // Nothing changed: no new Job, no write.
    let report = w.engine.up(&g, BTreeMap::new()).await.expect("no-op");
    assert!(report.plan.is_empty(), "{:?}", report.plan);
    assert_eq!(job_names(&w.jobs).await, created);

    let report = w.engine.destroy(stack).await.expect("destroy");
    assert_eq!(report.plan.summary().delete, 1);
    assert_eq!(comment_of(&w.admin, "aphiria_pr_77").await, None);
    assert!(job_names(&w.jobs).await.is_empty(), "no Job is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_our_marker_is_not_taken_over() {
    let pg = TestPostgres::start().await.expect("postgres");
    let w = world(&pg).await;
    for sql in [
        "CREATE DATABASE aphiria_pr_78",
        "COMMENT ON DATABASE aphiria_pr_78 IS 'production data'",
    ] {
        w.admin.batch_execute(sql).await.expect("foreign database");
    }
    let stack = "preview-pr-78";
    let g = DesiredGraph::new(
        stack,
        vec![database(
            "aphiria_pr_78",
            stack,
            &w.namespace,
            "db-credentials",
        )],
    )
    .expect("graph");
    let err = w
        .engine
        .up(&g, BTreeMap::new())
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("aphiria_pr_78"), "{err}");
    assert!(err.contains("refusing to take it over"), "{err}");
    assert!(
        err.contains("create-db-aphiria-pr-78-"),
        "names the Job: {err}"
    );
    assert_eq!(
        comment_of(&w.admin, "aphiria_pr_78").await.as_deref(),
        Some("production data"),
        "the foreign database is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_credentials_secret_is_reported() {
    let pg = TestPostgres::start().await.expect("postgres");
    let w = world(&pg).await;
    let cluster = cluster().await.expect("cluster");
    let (_kube, executor) = kube_and_executor(cluster, Some(w.namespace.clone())).await;
    let db = database(
        "aphiria_pr_79",
        "preview-pr-79",
        &w.namespace,
        "no-such-secret",
    );
    let err = executor
        .apply(&db, false)
        .await
        .expect_err("fails")
        .to_string();
    assert!(err.contains("no-such-secret"), "{err}");
    assert_eq!(comment_of(&w.admin, "aphiria_pr_79").await, None);
}

/// The executor looks for its Jobs only in the database server's namespace: an
/// ensure Job planted in another namespace (same name, labels and annotation,
/// another image) is never found, reused or used to parameterise a drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_planted_in_another_namespace_are_never_used() {
    use preview_postgres::job::{DatabaseJob, JobSettings, Operation, job_name};
    let pg = TestPostgres::start().await.expect("postgres");
    let w = world(&pg).await;
    let stack = "preview-pr-80";
    let db = database("aphiria_pr_80", stack, &w.namespace, "db-credentials");
    let g = DesiredGraph::new(stack, vec![db.clone()]).expect("graph");
    w.engine.up(&g, BTreeMap::new()).await.expect("create");
    let cluster = cluster().await.expect("cluster");
    let client = cluster.client().expect("client");
    let elsewhere = create_namespace(&client, "planted")
        .await
        .expect("namespace");
    // The planted Job: what the executor would render, in another namespace,
    // with another image, suspended so that nothing runs it.
    let planted = DatabaseJob {
        operation: Operation::Ensure,
        database: "aphiria_pr_80".into(),
        owner: "aphiria".into(),
        role: None,
        stack: stack.into(),
        host: format!("db.{elsewhere}.svc.cluster.local"),
        port: 5432,
        settings: JobSettings {
            namespace: elsewhere.clone(),
            image: "registry.invalid/evil:latest".into(),
            credentials_secret: "db-credentials".into(),
            image_pull_secrets: Vec::new(),
            resources: None,
        },
    };
    let mut body = planted.render().body;
    body["spec"]["suspend"] = json!(true);
    let planted_jobs: Api<Job> = Api::namespaced(client.clone(), &elsewhere);
    planted_jobs
        .create(
            &PostParams::default(),
            &serde_json::from_value::<Job>(body).expect("job"),
        )
        .await
        .expect("plant");
    // The real ensure Job (the executor's record) goes away.
    let real = job_names(&w.jobs).await;
    assert_eq!(real, [job_name(Operation::Ensure, "aphiria_pr_80")]);
    w.jobs
        .delete(&real[0], &Default::default())
        .await
        .expect("delete real job");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !job_names(&w.jobs).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the real Job is not gone"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let (kube, executor) = kube_and_executor(cluster, Some(w.namespace.clone())).await;
    assert_eq!(executor.read(&db.id).await.expect("read"), None);
    assert!(
        executor
            .list_owned(stack, std::slice::from_ref(&db.id))
            .await
            .expect("list")
            .is_empty(),
        "the planted Job is not listed as the stack's"
    );
    let err = executor
        .delete(&db.id)
        .await
        .expect_err("no record")
        .to_string();
    assert!(err.contains("is gone"), "{err}");
    // Nothing ran: no drop Job anywhere, the planted Job untouched, the
    // database still there.
    assert!(job_names(&w.jobs).await.is_empty());
    assert_eq!(
        job_names(&planted_jobs).await,
        [job_name(Operation::Ensure, "aphiria_pr_80")]
    );
    assert!(comment_of(&w.admin, "aphiria_pr_80").await.is_some());
    // An executor that does not know the server's namespace says so.
    let unknown =
        InClusterProvider::new(kube.clone(), kube.client().clone(), EventSink::none(), None);
    let err = unknown.read(&db.id).await.expect_err("unknown").to_string();
    assert!(
        err.contains("does not know the database server's namespace"),
        "{err}"
    );
    w.admin
        .batch_execute("DROP DATABASE aphiria_pr_80")
        .await
        .expect("cleanup");
}

/// Runs the Jobs' script (`database-job.sh`) on the host as the job runner does,
/// as `aphiria` against `pg`, ensuring `db` for `stack` (no per-PR role);
/// returns whether it succeeded, with its output.
async fn ensure_script(pg: &TestPostgres, db: &str, stack: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = dir.path().join("termination-log");
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(preview_postgres::job::SCRIPT)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("OPERATION", "ensure")
        .env("DB_NAME", db)
        .env("DB_OWNER", "aphiria")
        .env("DB_TEMP", preview_postgres::sql::temp_name(db))
        .env("DB_COMMENT", preview_postgres::sql::marker_comment(stack))
        .env("RESULT_PATH", &result)
        .env("DB_ROLE", "")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", "aphiria")
        .env("PGDATABASE", "postgres")
        .output()
        .await
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Two ensure Jobs of one database at once — an interrupted run's pod still
/// running after its Job was replaced (a kubelet gives a deleted pod's
/// containers a grace period; `sh` as PID 1 ignores SIGTERM) beside the next
/// run's — both succeed, leaving the database and no temporary database: the
/// scripts of one database take turns (a session advisory lock), and an ensure
/// that finds the database drops a leftover temporary one. Without the lock one
/// script's `CREATE` of the temporary name raced the other's `RENAME`, failed,
/// and left `preview_envs_tmp_…` (the SIGKILL test's in-cluster finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensure_scripts_leave_one_database_and_no_temporary_one() {
    let pg = TestPostgres::start().await.expect("postgres");
    let w = world(&pg).await;
    let stack = "preview-pr-79";
    for round in 0..5 {
        let db = format!("aphiria_pr_79_{round}");
        let tmp = preview_postgres::sql::temp_name(&db);
        let runs = futures::future::join_all((0..6).map(|_| ensure_script(&pg, &db, stack))).await;
        for (ok, text) in &runs {
            assert!(ok, "round {round}: an ensure script failed: {text}");
        }
        assert_eq!(
            comment_of(&w.admin, &db).await.as_deref(),
            Some("managed-by=preview-envs stack=preview-pr-79"),
            "round {round}"
        );
        assert_eq!(
            comment_of(&w.admin, &tmp).await,
            None,
            "round {round}: {tmp} left"
        );
    }

    // A temporary database left beside an existing one (by a script of an older
    // version, or one that lost the race above) is dropped by the next ensure.
    let db = "aphiria_pr_79_0";
    let tmp = preview_postgres::sql::temp_name(db);
    w.admin
        .batch_execute(&format!("CREATE DATABASE {tmp} OWNER aphiria"))
        .await
        .expect("leftover");
    let (ok, text) = ensure_script(&pg, db, stack).await;
    assert!(ok, "{text}");
    assert_eq!(comment_of(&w.admin, &tmp).await, None, "{tmp} left");
}

/// The job runner stops a deleted Job pod's command, as a kubelet stops a
/// deleted pod's containers: the whole process group (here `sh` and its
/// `sleep`), so a replaced database Job's script does not keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_pods_command_is_stopped() {
    let cluster = cluster().await.expect("cluster");
    NodeSimulator::shared().await.expect("simulator");
    let client = cluster.client().expect("client");
    let namespace = create_namespace(&client, "jobstop")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "long"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "psql",
                    "image": IMAGE,
                    "command": ["sh", "-c", "touch \"$DIR/started\"; sleep 4; touch \"$DIR/finished\""],
                    "env": [{"name": "DIR", "value": dir.path().display().to_string()}],
                }],
            }},
        },
    }))
    .expect("job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create");
    let started = dir.path().join("started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    jobs.delete(
        "long",
        &kube::api::DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, &namespace);
    loop {
        let left = pods
            .list(&ListParams::default().labels("job-name=long"))
            .await
            .expect("pods");
        if left.items.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pod was never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert!(
        !dir.path().join("finished").exists(),
        "the deleted pod's command ran to its end"
    );
}
