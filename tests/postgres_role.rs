//! The per-PR database role (issue 11), on a real PostgreSQL that checks
//! passwords (`scram-sha-256` for every TCP login but `postgres`), through both
//! executors:
//!
//! - **direct**: the engine with [`PostgresProvider`];
//! - **in-cluster**: the ensure and drop Jobs' own container — the rendered
//!   Job's environment and `sh -c database-job.sh` with `psql` — run on the host
//!   against the same server (what the Job's pod runs; the control-plane tests
//!   in `postgres_in_cluster` add the Job controller around it).
//!
//! With PR 123's credentials: its own database accepts connections and tables;
//! PR 124's database, `postgres` and `template1` refuse the connection; CREATE
//! ROLE, CREATE DATABASE and `COPY … TO PROGRAM` fail. Destroy leaves neither the
//! database nor the role. A role of that name without our marker, and a name
//! longer than 63 bytes, are refused before anything is written, naming them.

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::database_resource;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::schema::database_role::{RoleSpec, generate_password, scram_verifier};
use preview_core::secret::SecretString;
use preview_core::state::file::FileBackend;
use preview_core::{ProviderName, Resource, ResourceOptions};
use preview_postgres::PostgresProvider;
use preview_postgres::job::{DatabaseJob, JobSettings, Operation, SCRIPT, parse_ensure_result};
use serde_json::{Value, json};
use testkit::TestPostgres;

/// A `Database` with its own role, as the preview-pr stack renders it.
fn database(name: &str, stack: &str, password: &SecretString, limit: u32) -> Resource {
    database_resource(
        name,
        json!({
            "owner": name,
            "server": {"host": "db.default.svc.cluster.local", "port": 5432},
            "ownerMarker": stack,
            "role": RoleSpec::new(name, password, limit),
        }),
        ResourceOptions {
            secret_paths: vec!["/role/passwordVerifier".into()],
            ..ResourceOptions::default()
        },
    )
}

/// An engine with the direct PostgreSQL provider on `pg` and file state in `state`.
fn direct_engine(pg: &TestPostgres, state: &std::path::Path) -> Engine {
    Engine::new(
        Providers::new().with(
            ProviderName::POSTGRES,
            Arc::new(PostgresProvider::new(SecretString::new(pg.url()))),
        ),
        Arc::new(FileBackend::new(state)),
        EventSink::none(),
        EngineOptions::default(),
    )
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

async fn exists(admin: &tokio_postgres::Client, catalog: &str, name: &str) -> bool {
    let query = match catalog {
        "pg_database" => "SELECT 1 FROM pg_database WHERE datname = $1",
        _ => "SELECT 1 FROM pg_roles WHERE rolname = $1",
    };
    admin
        .query_opt(query, &[&name])
        .await
        .expect("query")
        .is_some()
}

/// What PR `own`'s role can and cannot do, with its password; `other` is
/// another preview's database.
async fn check_isolation(pg: &TestPostgres, own: &str, password: &SecretString, other: &str) {
    let pw = password.expose();
    // Its own database: connect, create, write, read.
    let client = connect(&pg.conninfo_as(own, pw, own))
        .await
        .unwrap_or_else(|e| panic!("{own} connects to its database: {}", message(&e)));
    client
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'hello')")
        .await
        .unwrap_or_else(|e| panic!("{own} creates tables: {}", message(&e)));
    let body: String = client
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(body, "hello");
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("user")
        .get(0);
    assert_eq!(user, own);

    // Nothing beyond it.
    for (what, sql) in [
        ("CREATE ROLE", "CREATE ROLE pr_escalation LOGIN".to_owned()),
        (
            "CREATE DATABASE",
            "CREATE DATABASE pr_escalation".to_owned(),
        ),
        (
            "COPY TO PROGRAM",
            "COPY (SELECT 1) TO PROGRAM 'id'".to_owned(),
        ),
        (
            "ALTER ROLE SUPERUSER",
            format!("ALTER ROLE {own} SUPERUSER"),
        ),
        (
            "reading pg_authid",
            "SELECT rolpassword FROM pg_authid".to_owned(),
        ),
    ] {
        let err = client
            .batch_execute(&sql)
            .await
            .expect_err(&format!("{own}: {what} must fail"));
        let text = message(&err);
        assert!(
            text.contains("permission denied") || text.contains("42501"),
            "{own}: {what}: {text}"
        );
    }
    drop(client);

    for database in [other, "postgres", "template1"] {
        let err = connect(&pg.conninfo_as(own, pw, database))
            .await
            .err()
            .unwrap_or_else(|| panic!("{own} must not connect to {database}"));
        let text = message(&err);
        assert!(
            text.contains("permission denied for database") || text.contains("CONNECT privilege"),
            "{own} → {database}: {text}"
        );
    }
    // The password is checked: a wrong one is refused.
    let Err(err) = connect(&pg.conninfo_as(own, "not-the-password", own)).await else {
        panic!("{own}: a wrong password must be refused");
    };
    assert!(
        message(&err).contains("password authentication failed"),
        "{}",
        message(&err)
    );
}

/// The role's catalog entry: attributes, limit, marker.
async fn role_row(admin: &tokio_postgres::Client, name: &str) -> Value {
    let row = admin
        .query_one(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, \
             rolconnlimit, COALESCE(shobj_description(oid, 'pg_authid'), ''), \
             (SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1) \
             FROM pg_authid WHERE rolname = $1",
            &[&name],
        )
        .await
        .expect("role row");
    json!({
        "login": row.get::<_, bool>(0), "superuser": row.get::<_, bool>(1),
        "createdb": row.get::<_, bool>(2), "createrole": row.get::<_, bool>(3),
        "replication": row.get::<_, bool>(4), "bypassrls": row.get::<_, bool>(5),
        "connectionLimit": row.get::<_, i32>(6), "comment": row.get::<_, String>(7),
        "owns": row.get::<_, Option<String>>(8),
    })
}

fn expected_role(name: &str, stack: &str, limit: i32) -> Value {
    json!({
        "login": true, "superuser": false, "createdb": false, "createrole": false,
        "replication": false, "bypassrls": false, "connectionLimit": limit,
        "comment": format!("managed-by=preview-envs stack={stack}"), "owns": name,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_executor_gives_each_preview_its_own_role() {
    let pg = TestPostgres::start_with_password_auth()
        .await
        .expect("postgres");
    let admin = pg.client().await.expect("admin");
    let dir = tempfile::tempdir().expect("state");
    let engine = direct_engine(&pg, dir.path());
    let (pw123, pw124) = (generate_password(), generate_password());
    let g123 = DesiredGraph::new(
        "preview-pr-123",
        vec![database("aphiria_pr_123", "preview-pr-123", &pw123, 7)],
    )
    .expect("graph");
    let g124 = DesiredGraph::new(
        "preview-pr-124",
        vec![database("aphiria_pr_124", "preview-pr-124", &pw124, 7)],
    )
    .expect("graph");
    engine.up(&g123, BTreeMap::new()).await.expect("up 123");
    engine.up(&g124, BTreeMap::new()).await.expect("up 124");
    assert_eq!(
        role_row(&admin, "aphiria_pr_123").await,
        expected_role("aphiria_pr_123", "preview-pr-123", 7)
    );

    check_isolation(&pg, "aphiria_pr_123", &pw123, "aphiria_pr_124").await;
    check_isolation(&pg, "aphiria_pr_124", &pw124, "aphiria_pr_123").await;

    // The same password again: nothing to do.
    let again = engine.up(&g123, BTreeMap::new()).await.expect("no-op");
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    // A changed connection limit or password is applied to the role.
    let pw123b = generate_password();
    let changed = DesiredGraph::new(
        "preview-pr-123",
        vec![database("aphiria_pr_123", "preview-pr-123", &pw123b, 9)],
    )
    .expect("graph");
    let report = engine.up(&changed, BTreeMap::new()).await.expect("update");
    assert_eq!(report.plan.summary().update, 1, "{:?}", report.plan);
    assert_eq!(
        role_row(&admin, "aphiria_pr_123").await["connectionLimit"],
        9
    );
    assert!(
        connect(&pg.conninfo_as("aphiria_pr_123", pw123.expose(), "aphiria_pr_123"))
            .await
            .is_err(),
        "the old password no longer works"
    );
    connect(&pg.conninfo_as("aphiria_pr_123", pw123b.expose(), "aphiria_pr_123"))
        .await
        .expect("the new one does");

    // Destroy: database, then role; neither is left. 124 is untouched.
    let (held, conn) = tokio_postgres::connect(
        &pg.conninfo_as("aphiria_pr_123", pw123b.expose(), "aphiria_pr_123"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("a session of the role");
    let conn = tokio::spawn(conn);
    let report = engine.destroy("preview-pr-123").await.expect("destroy");
    assert_eq!(report.plan.summary().delete, 1);
    assert!(!exists(&admin, "pg_database", "aphiria_pr_123").await);
    assert!(!exists(&admin, "pg_roles", "aphiria_pr_123").await);
    assert!(exists(&admin, "pg_database", "aphiria_pr_124").await);
    assert!(exists(&admin, "pg_roles", "aphiria_pr_124").await);
    drop(held);
    let _ = conn.await;

    // A role of the name that is not ours: refused at plan time, before anything
    // is written, naming the role; it is left exactly as it was.
    admin
        .batch_execute("CREATE ROLE aphiria_pr_125 LOGIN")
        .await
        .expect("foreign role");
    let g125 = DesiredGraph::new(
        "preview-pr-125",
        vec![database(
            "aphiria_pr_125",
            "preview-pr-125",
            &generate_password(),
            7,
        )],
    )
    .expect("graph");
    let err = engine
        .up(&g125, BTreeMap::new())
        .await
        .expect_err("not ours");
    let text = err.to_string();
    assert!(
        text.contains("role aphiria_pr_125") && text.contains("ownership marker"),
        "{text}"
    );
    assert!(!exists(&admin, "pg_database", "aphiria_pr_125").await);
    let untouched = admin
        .query_one(
            "SELECT rolpassword IS NULL, rolconnlimit, shobj_description(oid, 'pg_authid') IS NULL \
             FROM pg_authid WHERE rolname = 'aphiria_pr_125'",
            &[],
        )
        .await
        .expect("row");
    assert!(untouched.get::<_, bool>(0));
    assert_eq!(untouched.get::<_, i32>(1), -1);
    assert!(untouched.get::<_, bool>(2));

    // A name longer than 63 bytes never reaches SQL.
    let long = format!("aphiria_pr_{}", "9".repeat(53));
    assert_eq!(long.len(), 64);
    let g = DesiredGraph::new(
        "preview-pr-long",
        vec![database(&long, "preview-pr-long", &generate_password(), 7)],
    )
    .expect("graph");
    let text = engine
        .up(&g, BTreeMap::new())
        .await
        .expect_err("too long")
        .to_string();
    assert!(text.contains(&long) && text.contains("63"), "{text}");
    assert!(!exists(&admin, "pg_roles", &long[..63]).await);
}

/// The admin connection, and a runner of the Job script logging in as the
/// server's superuser the way POSTGRES_USER / POSTGRES_PASSWORD make it
/// (scram-sha-256).
async fn job_runner(pg: &TestPostgres) -> (tokio_postgres::Client, JobRunner<'_>) {
    let admin = pg.client().await.expect("admin");
    admin
        .batch_execute("CREATE ROLE aphiria LOGIN SUPERUSER PASSWORD 'superuser-pw-canary'")
        .await
        .expect("superuser");
    let runner = JobRunner {
        pg,
        superuser: "aphiria",
        superuser_password: "superuser-pw-canary",
    };
    (admin, runner)
}

/// Runs the database Job's container (its env, `sh -c SCRIPT`) on the host.
struct JobRunner<'a> {
    pg: &'a TestPostgres,
    superuser: &'a str,
    superuser_password: &'a str,
}

impl JobRunner<'_> {
    /// Exit status success, and the result line or the error output.
    fn run(&self, job: &DatabaseJob) -> (bool, String) {
        job.check().expect("valid job");
        let body = job.render().body;
        let container = &body["spec"]["template"]["spec"]["containers"][0];
        let result = tempfile::NamedTempFile::new().expect("result file");
        let bin = testkit::bins::pg_bin_dir().expect("pg bin dir");
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(SCRIPT);
        command.env_clear();
        command.env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        for env in container["env"].as_array().expect("env") {
            let name = env["name"].as_str().expect("name");
            match env.get("value").and_then(Value::as_str) {
                Some(value) => {
                    command.env(name, value);
                }
                // The secretKeyRef values, as the kubelet resolves them.
                None => {
                    let value = match name {
                        "PGUSER" => self.superuser,
                        "PGPASSWORD" => self.superuser_password,
                        other => panic!("unexpected secret env {other}"),
                    };
                    command.env(name, value);
                }
            }
        }
        // What the Service and kube-proxy would do.
        command.env("PGHOST", "127.0.0.1");
        command.env("PGPORT", self.pg.port().to_string());
        command.env("RESULT_PATH", result.path());
        let out = command.output().expect("run the Job's script");
        let text = if out.status.success() {
            std::fs::read_to_string(result.path()).expect("result")
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        (out.status.success(), text)
    }
}

fn job(operation: Operation, database: &str, stack: &str, role: Option<RoleSpec>) -> DatabaseJob {
    DatabaseJob {
        operation,
        database: database.into(),
        owner: database.into(),
        role,
        stack: stack.into(),
        host: "db.default.svc.cluster.local".into(),
        port: 5432,
        settings: JobSettings {
            namespace: "default".into(),
            image: "docker.io/library/postgres:16-alpine@sha256:57c72fd2a128e416c7fcc499958864df5301e940bca0a56f58fddf30ffc07777".into(),
            credentials_secret: "db-credentials".into(),
            image_pull_secrets: Vec::new(),
            resources: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_jobs_give_each_preview_its_own_role() {
    let pg = TestPostgres::start_with_password_auth()
        .await
        .expect("postgres");
    let (admin, runner) = job_runner(&pg).await;
    let (pw223, pw224) = (generate_password(), generate_password());
    let spec = |name: &str, pw: &SecretString| Some(RoleSpec::new(name, pw, 5));
    for (name, stack, pw) in [
        ("aphiria_pr_223", "preview-pr-223", &pw223),
        ("aphiria_pr_224", "preview-pr-224", &pw224),
    ] {
        let (ok, out) = runner.run(&job(Operation::Ensure, name, stack, spec(name, pw)));
        assert!(ok, "{out}");
        let result = parse_ensure_result(&out).expect("result");
        assert_eq!(result.owner, name);
        let role = result.role.expect("role reported");
        assert_eq!(role.connection_limit, 5);
        assert_eq!(role.password_verifier, scram_verifier(name, pw));
        assert_eq!(
            role.comment,
            format!("managed-by=preview-envs stack={stack}")
        );
        assert!(
            !out.contains(pw.expose()),
            "the result never carries the password"
        );
    }
    assert_eq!(
        role_row(&admin, "aphiria_pr_223").await,
        expected_role("aphiria_pr_223", "preview-pr-223", 5)
    );
    // Idempotent: a second ensure changes nothing and reports the same.
    let ensure223 = job(
        Operation::Ensure,
        "aphiria_pr_223",
        "preview-pr-223",
        spec("aphiria_pr_223", &pw223),
    );
    let (ok, first) = runner.run(&ensure223);
    let (ok2, second) = runner.run(&ensure223);
    assert!(ok && ok2, "{first} {second}");
    assert_eq!(first, second);
    // The Job carries the verifier, never the password.
    assert!(!ensure223.render().body.to_string().contains(pw223.expose()));

    check_isolation(&pg, "aphiria_pr_223", &pw223, "aphiria_pr_224").await;
    check_isolation(&pg, "aphiria_pr_224", &pw224, "aphiria_pr_223").await;

    // A role without our marker: the Job stops before any write, naming it.
    admin
        .batch_execute("CREATE ROLE aphiria_pr_225 LOGIN")
        .await
        .expect("foreign role");
    let (ok, out) = runner.run(&job(
        Operation::Ensure,
        "aphiria_pr_225",
        "preview-pr-225",
        spec("aphiria_pr_225", &generate_password()),
    ));
    assert!(!ok);
    assert!(
        out.contains("role aphiria_pr_225 exists and does not carry the marker"),
        "{out}"
    );
    assert!(!exists(&admin, "pg_database", "aphiria_pr_225").await);
    let untouched: bool = admin
        .query_one(
            "SELECT rolpassword IS NULL AND shobj_description(oid, 'pg_authid') IS NULL \
             FROM pg_authid WHERE rolname = 'aphiria_pr_225'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert!(untouched, "the foreign role is left as it was");
    // Nor is it dropped by a drop Job.
    let (ok, out) = runner.run(&job(
        Operation::Drop,
        "aphiria_pr_225",
        "preview-pr-225",
        spec("aphiria_pr_225", &generate_password()),
    ));
    assert!(!ok && out.contains("refusing to drop it"), "{out}");
    assert!(exists(&admin, "pg_roles", "aphiria_pr_225").await);

    // A name over 63 bytes is refused by the Job's checks, before it exists.
    let mut long = job(
        Operation::Ensure,
        &format!("aphiria_pr_{}", "9".repeat(53)),
        "preview-pr-long",
        spec("x", &generate_password()),
    );
    long.owner = long.database.clone();
    let err = long.check().expect_err("too long");
    assert!(
        err.contains("64 characters") && err.contains("aphiria_pr_999"),
        "{err}"
    );

    // Drop: database, then role, both verified gone; 224 stays.
    let mut drop223 = ensure223.clone();
    drop223.operation = Operation::Drop;
    let (ok, out) = runner.run(&drop223);
    assert!(ok, "{out}");
    assert!(out.contains("\"absent\""), "{out}");
    assert!(!exists(&admin, "pg_database", "aphiria_pr_223").await);
    assert!(!exists(&admin, "pg_roles", "aphiria_pr_223").await);
    assert!(exists(&admin, "pg_roles", "aphiria_pr_224").await);
    // Idempotent.
    let (ok, out) = runner.run(&drop223);
    assert!(ok, "{out}");
}

/// How many previews are created at the same time below. Without the advisory
/// lock around the system databases' REVOKEs, two of them update the same
/// catalog row at once (`tuple concurrently updated`), as 100 PR stacks applied
/// at once did in the bench: the Job-script test failed in 2 of 2 runs without
/// it. The direct executor's test did not reproduce it at this size (its
/// `CREATE DATABASE`s queue on the template database first, which spreads the
/// REVOKEs out); it checks that many creates at once all succeed.
const AT_ONCE: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_executor_creates_many_previews_at_once() {
    let pg = TestPostgres::start_with_password_auth()
        .await
        .expect("postgres");
    let admin = pg.client().await.expect("admin");
    let dir = tempfile::tempdir().expect("state");
    // One engine and one connection each, as separate `stacks` processes,
    // polled together (their SQL runs at the same time on the server).
    let engines: Vec<(String, Engine, DesiredGraph)> = (0..AT_ONCE)
        .map(|pr| {
            let engine = direct_engine(&pg, dir.path());
            let name = format!("aphiria_pr_{}", 600 + pr);
            let stack = format!("preview-pr-{}", 600 + pr);
            let graph = DesiredGraph::new(
                &stack,
                vec![database(&name, &stack, &generate_password(), 3)],
            )
            .expect("graph");
            (name, engine, graph)
        })
        .collect();
    let results =
        futures::future::join_all(engines.iter().map(|(name, engine, graph)| async move {
            (name, engine.up(graph, BTreeMap::new()).await)
        }))
        .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, result)| result.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {AT_ONCE} failed: {failed:#?}",
        failed.len()
    );
    for pr in 0..AT_ONCE {
        let name = format!("aphiria_pr_{}", 600 + pr);
        assert!(exists(&admin, "pg_database", &name).await, "{name}");
        assert!(exists(&admin, "pg_roles", &name).await, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_jobs_create_many_previews_at_once() {
    let pg = TestPostgres::start_with_password_auth()
        .await
        .expect("postgres");
    let (admin, runner) = job_runner(&pg).await;
    let jobs: Vec<(String, DatabaseJob)> = (0..AT_ONCE)
        .map(|pr| {
            let name = format!("aphiria_pr_{}", 700 + pr);
            let stack = format!("preview-pr-{}", 700 + pr);
            let role = Some(RoleSpec::new(&name, &generate_password(), 3));
            let job = job(Operation::Ensure, &name, &stack, role);
            (name, job)
        })
        .collect();
    let results: Vec<(String, bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(name, job)| {
                let runner = &runner;
                scope.spawn(move || {
                    let (ok, out) = runner.run(job);
                    (name.clone(), ok, out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, _, out)| format!("{name}: {out}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {AT_ONCE} failed: {failed:#?}",
        failed.len()
    );
    for (name, _, _) in &results {
        assert!(exists(&admin, "pg_database", name).await, "{name}");
        assert!(exists(&admin, "pg_roles", name).await, "{name}");
    }
}
