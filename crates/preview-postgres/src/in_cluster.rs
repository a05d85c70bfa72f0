//! The in-cluster database executor: per-PR databases created and dropped by
//! Kubernetes Jobs in the database server's namespace (the spec's NFR-017: no
//! port-forwarding from CI to a remote cluster's database).
//!
//! The Jobs are described in [`super::job`]; this module runs them. All writes
//! (apply / delete of the Jobs) go through the Kubernetes [`Provider`] — the one
//! module that writes to the cluster — and readiness through its watch-driven
//! waiter, so progress ("pod … ImagePullBackOff") is reported like any other Job.
//! Reads (Job status, the pods' termination messages) use the client directly.
//!
//! How each operation maps:
//!
//! - **read**: the ensure Job `create-db-<name>-<hash>`. Complete → the owner and
//!   marker it reported; missing, failed or still running → `None` (the planner
//!   plans a create, and the idempotent ensure settles it). A database dropped
//!   behind the engine's back is therefore only noticed by the next ensure; the
//!   direct executor reads `pg_database` itself.
//! - **apply**: runs the ensure Job to completion (a Job made for other
//!   parameters, or a failed one, is deleted first — its pod may run on for
//!   the kubelet's grace period, and the scripts of one database take turns, so
//!   the new Job's waits for it; one still running from an interrupted run is
//!   waited for) and returns what it reported. The database
//!   exists when apply returns, with or without `--no-wait`: the migration Job
//!   that depends on it needs it.
//! - **delete**: runs a drop Job with the ensure Job's own parameters (image,
//!   credentials, marker), which drops only a database carrying this stack's
//!   marker and fails unless it is gone from `pg_database` afterwards; then
//!   deletes the ensure Job, then the drop Job (a complete drop Job without an
//!   ensure Job is an interrupted destroy's proof of the drop). Without either the
//!   executor does not know how the database was made and says so (the direct
//!   executor can drop it). The ensure Job is the database's record: do not
//!   delete it by hand or give database Jobs a TTL.
//! - **list_owned**: ensure Jobs labelled with the stack.
//!
//! **The per-PR role** ([`super::role`]) is managed by the same Jobs: the ensure
//! Job checks the role's and the database's markers before its first write
//! (refusing a role of that name without ours, naming it), creates or alters the
//! role, then the database; the drop Job checks both markers, drops the database,
//! then the role, and fails unless both are gone. The Jobs carry the role's SCRAM
//! verifier, never its password. Unlike the direct executor, a create is not
//! dry-run at plan time (that would take a Job): a foreign role stops the ensure
//! Job, before anything changes on the server.
//!
//! **Where Jobs are looked up.** Only in the database server's namespace, given
//! when the executor is made ([`InClusterProvider::new`]) from the stack's own
//! configuration or the base stack's `dbNamespace` output — never from the
//! stack's state, which names databases only. A Job with a database Job's name,
//! labels and annotations planted in any other namespace is never read, reused
//! or parameterised from; a desired `Database` whose `job.namespace` is not that
//! namespace is refused before any Job is written.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::job::EnsureResult;
use super::job::{
    DATABASE_ANNOTATION, DatabaseJob, JobPhase, OPERATION_LABEL, Operation, SPEC_HASH_ANNOTATION,
    job_name, job_phase, parse_ensure_result, termination_message,
};
use super::{check_database_id, desired, live_value, other, role_value, sql};
use preview_core::events::EventSink;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::remedy::{self, Remedy};
use preview_core::resource::{Resource, ResourceId, STACK_LABEL};
use preview_core::schema::database::{DatabaseBody, JobSettings};

/// How long a database Job may take (scheduling, image pull, SQL).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs database operations as Kubernetes Jobs.
pub struct InClusterProvider {
    kube: Arc<dyn Provider>,
    client: kube::Client,
    events: EventSink,
    namespace: Option<String>,
}

impl InClusterProvider {
    /// An executor writing through `kube` (the Kubernetes provider), reading with
    /// `client`, reporting progress to `events`, running and finding its Jobs
    /// only in `server_namespace`, the database server's namespace (from
    /// trusted configuration; `None` when the caller cannot tell, and then every
    /// operation fails saying so).
    pub fn new(
        kube: Arc<dyn Provider>,
        client: kube::Client,
        events: EventSink,
        server_namespace: Option<String>,
    ) -> Self {
        InClusterProvider {
            kube,
            client,
            events,
            namespace: server_namespace,
        }
    }

    /// The server's namespace, or an error naming `id`.
    fn namespace(&self, id: &ResourceId) -> Result<&str, ProviderError> {
        self.namespace.as_deref().ok_or_else(|| {
            other(
                id,
                format!(
                    "the in-cluster database executor does not know the database server's namespace (config `database.namespace`, or output `dbNamespace` of the base stack){}",
                    remedy::suffix("; ", &Remedy::DirectDatabaseExecutor)
                ),
            )
        })
    }

    /// The Jobs API of the server's namespace.
    fn jobs(&self, id: &ResourceId) -> Result<Api<Job>, ProviderError> {
        Ok(Api::namespaced(self.client.clone(), self.namespace(id)?))
    }

    /// The ensure Job of a database, found by name in the server's namespace
    /// (delete and read know only the database's name).
    async fn find_job(
        &self,
        id: &ResourceId,
        op: Operation,
        database: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let api = self.jobs(id)?;
        let name = job_name(op, database);
        let list = api
            .list(
                &ListParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .labels(&format!("{OPERATION_LABEL}={}", op.as_str())),
            )
            .await
            .map_err(|e| kube_error(id, e))?;
        Ok(list
            .items
            .into_iter()
            .filter(|j| {
                j.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DATABASE_ANNOTATION))
                    .is_some_and(|d| d == database)
            })
            .find_map(|j| serde_json::to_value(j).ok()))
    }

    async fn pods_of(&self, job: &Value) -> Result<Vec<Value>, kube::Error> {
        let (Some(ns), Some(name)) = (
            job.pointer("/metadata/namespace").and_then(Value::as_str),
            job.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            return Ok(Vec::new());
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = api
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await?;
        Ok(pods
            .items
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect())
    }

    /// The result line of a complete Job (from its succeeded pod).
    async fn result_of(&self, id: &ResourceId, job: &Value) -> Result<String, ProviderError> {
        let pods = self.pods_of(job).await.map_err(|e| kube_error(id, e))?;
        pods.iter()
            .filter(|p| p.pointer("/status/phase") == Some(&json!("Succeeded")))
            .find_map(|p| termination_message(p).map(str::to_owned))
            .ok_or_else(|| {
                other(
                    id,
                    format!(
                        "Job {} completed but none of its pods reports a result (were they deleted?)",
                        job_label(job)
                    ),
                )
            })
    }

    /// Applies `job`, waits for it, and returns its result line. A failure names the
    /// Job and carries psql's error from the pod's termination message.
    async fn run_job(
        &self,
        id: &ResourceId,
        job: &DatabaseJob,
        timeout: Duration,
    ) -> Result<String, ProviderError> {
        let res = job.render();
        let existing = self.kube.read(&res.id).await?;
        let annotation = |job: &Value| job["metadata"]["annotations"][SPEC_HASH_ANNOTATION].clone();
        let reusable = existing.as_ref().filter(|live| {
            annotation(live) == annotation(&res.body)
                && !matches!(job_phase(live), JobPhase::Failed(_))
        });
        if existing.is_some() && reusable.is_none() {
            // Made for other parameters, or failed: a Job's template is immutable.
            self.delete_job(&res.id, timeout).await?;
        }
        if reusable.is_none() {
            self.kube.apply(&res, false).await?;
        }
        let opts = WaitOptions {
            timeout,
            failure_grace: Duration::from_secs(60),
            force_finalize: false,
        };
        let live = match self.kube.wait_ready(&res, opts, &self.events).await {
            Ok(live) => live,
            Err(e) => {
                // The Job rule's message carries the failed pods' termination
                // messages, i.e. psql's ERROR line.
                return Err(other(id, e.to_string()));
            }
        };
        self.result_of(id, &live).await
    }

    async fn delete_job(&self, job: &ResourceId, timeout: Duration) -> Result<(), ProviderError> {
        self.kube.delete(job).await?;
        let opts = WaitOptions {
            timeout,
            failure_grace: timeout,
            force_finalize: false,
        };
        self.kube.wait_gone(job, opts, &self.events).await
    }

    /// The ensure Job of `res` (its parameters checked; it must run in the
    /// server's namespace).
    fn ensure_job(&self, res: &Resource) -> Result<DatabaseJob, ProviderError> {
        let d = desired(res)?;
        let body = DatabaseBody::from_value(&res.body).map_err(|m| other(&res.id, m))?;
        let settings: JobSettings = body.job.ok_or_else(|| {
            other(
                &res.id,
                "missing field job (namespace, image and credentialsSecret of the in-cluster executor)".into(),
            )
        })?;
        let job = DatabaseJob {
            operation: Operation::Ensure,
            database: res.id.name.clone(),
            owner: d.owner,
            role: d.role,
            stack: d.marker,
            host: body.server.host,
            port: body.server.port,
            settings,
        };
        job.check().map_err(|m| other(&res.id, m))?;
        let server = self.namespace(&res.id)?;
        if job.settings.namespace != server {
            return Err(other(
                &res.id,
                format!(
                    "field job.namespace is {:?}, but database Jobs run only in the database server's namespace {server:?}",
                    job.settings.namespace
                ),
            ));
        }
        Ok(job)
    }

    fn timeout_of(res: &Resource) -> Duration {
        res.options.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

#[async_trait]
impl Provider for InClusterProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        check_database_id(id)?;
        let Some(job) = self.find_job(id, Operation::Ensure, &id.name).await? else {
            return Ok(None);
        };
        if job_phase(&job) != JobPhase::Complete {
            return Ok(None);
        }
        let result =
            parse_ensure_result(&self.result_of(id, &job).await?).map_err(|m| other(id, m))?;
        Ok(Some(live_of(&result)))
    }

    async fn dry_run(&self, res: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        let job = self.ensure_job(res)?;
        match self.read(&res.id).await? {
            Some(live) if live["ownerMarker"] != json!(job.stack) => Ok(DryRun::Rejected {
                code: 409,
                message: format!(
                    "database {} exists and is not marked as owned by stack {}",
                    res.id.name, job.stack
                ),
            }),
            _ => Ok(DryRun::Accepted {
                object: live_value(
                    &job.owner,
                    &job.stack,
                    job.role
                        .as_ref()
                        .map(|r| role_value(i64::from(r.connection_limit), &r.password_verifier)),
                ),
            }),
        }
    }

    async fn apply(&self, res: &Resource, _force: bool) -> Result<Value, ProviderError> {
        check_database_id(&res.id)?;
        let job = self.ensure_job(res)?;
        let line = self.run_job(&res.id, &job, Self::timeout_of(res)).await?;
        let result = parse_ensure_result(&line).map_err(|m| other(&res.id, m))?;
        Ok(live_of(&result))
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        check_database_id(id)?;
        let find = |op| async move { self.find_job(id, op, &id.name).await };
        let Some(ensure) = find(Operation::Ensure).await? else {
            // An interrupted destroy may have removed the ensure Job after a verified
            // drop: the complete drop Job is the proof.
            if let Some(drop) = find(Operation::Drop).await?
                && job_phase(&drop) == JobPhase::Complete
                && self.result_of(id, &drop).await?.contains("\"absent\"")
            {
                let drop_id = DatabaseJob::from_live(&drop)
                    .map(|j| j.render().id)
                    .ok_or_else(|| {
                        other(
                            id,
                            format!("Job {} is not a database Job", job_label(&drop)),
                        )
                    })?;
                return self.delete_job(&drop_id, DEFAULT_TIMEOUT).await;
            }
            return Err(other(
                id,
                format!(
                    "cannot drop database {}: its Job {} (the in-cluster executor's record of how it was created) is gone{}",
                    id.name,
                    job_name(Operation::Ensure, &id.name),
                    remedy::suffix("; ", &Remedy::DirectDatabaseDrop)
                ),
            ));
        };
        let mut job = DatabaseJob::from_live(&ensure).ok_or_else(|| {
            other(
                id,
                format!(
                    "Job {} is not a database Job made by preview-envs; refusing to use it",
                    job_label(&ensure)
                ),
            )
        })?;
        let ensure_id = job.render().id;
        job.operation = Operation::Drop;
        job.check().map_err(|m| other(id, m))?;
        let line = self.run_job(id, &job, DEFAULT_TIMEOUT).await?;
        if !line.contains("\"absent\"") {
            return Err(other(
                id,
                format!("the drop Job reported {line:?} instead of the database's absence"),
            ));
        }
        // Ensure Job first: until the drop Job is gone too, it proves the drop.
        self.delete_job(&ensure_id, DEFAULT_TIMEOUT).await?;
        self.delete_job(&job.render().id, DEFAULT_TIMEOUT).await
    }

    async fn wait_ready(
        &self,
        res: &Resource,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<Value, ProviderError> {
        // apply ran the Job to completion; what it reported is the live state.
        self.read(&res.id)
            .await?
            .ok_or_else(|| ProviderError::NotReady {
                id: res.id.clone(),
                message: format!(
                    "the ensure Job {} is not complete",
                    job_name(Operation::Ensure, &res.id.name)
                ),
            })
    }

    async fn wait_gone(
        &self,
        id: &ResourceId,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        // delete verified the drop inside the server (pg_database) and removed the Jobs.
        match self.find_job(id, Operation::Ensure, &id.name).await? {
            None => Ok(()),
            Some(job) => Err(ProviderError::NotReady {
                id: id.clone(),
                message: format!("the ensure Job {} still exists", job_label(&job)),
            }),
        }
    }

    async fn list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        let Some(probe) = kinds.first() else {
            return Ok(Vec::new());
        };
        let api = self.jobs(probe)?;
        let jobs = api
            .list(&ListParams::default().labels(&format!(
                "{STACK_LABEL}={stack},{OPERATION_LABEL}={}",
                Operation::Ensure.as_str()
            )))
            .await
            .map_err(|e| kube_error(probe, e))?;
        Ok(jobs
            .items
            .iter()
            .filter_map(|j| j.metadata.annotations.as_ref()?.get(DATABASE_ANNOTATION))
            .map(|name| ResourceId {
                name: name.clone(),
                ..probe.clone()
            })
            .collect())
    }
}

/// The live value from an ensure Job's result: the database, with its role
/// when the role carries the database's marker.
fn live_of(result: &EnsureResult) -> Value {
    let marker = sql::marker_stack(&result.comment).unwrap_or("");
    let role = result
        .role
        .as_ref()
        .filter(|r| !marker.is_empty() && sql::marker_stack(&r.comment) == Some(marker))
        .map(|r| role_value(r.connection_limit, &r.password_verifier));
    live_value(&result.owner, marker, role)
}

fn job_label(job: &Value) -> String {
    format!(
        "{}/{}",
        job.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        job.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

fn kube_error(id: &ResourceId, e: kube::Error) -> ProviderError {
    other(id, format!("reading database Jobs: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use preview_core::resource::{ProviderName, ResourceOptions};

    /// A client whose API server answers every request with an empty list and
    /// records the request paths.
    fn recording_client() -> (kube::Client, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            log.lock().expect("lock").push(req.uri().to_string());
            async move {
                let body = serde_json::to_vec(&json!({
                    "apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": []
                }))
                .expect("json");
                http::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body))
            }
        });
        (kube::Client::new(service, "default"), seen)
    }

    /// The Kubernetes provider stand-in: these tests never get as far as a write.
    struct NoWrites;

    fn refused(id: &ResourceId) -> ProviderError {
        other(id, "the test's Kubernetes provider was asked to act".into())
    }

    #[async_trait]
    impl Provider for NoWrites {
        async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
            Err(refused(id))
        }
        async fn dry_run(&self, res: &Resource, _: bool) -> Result<DryRun, ProviderError> {
            Err(refused(&res.id))
        }
        async fn apply(&self, res: &Resource, _: bool) -> Result<Value, ProviderError> {
            Err(refused(&res.id))
        }
        async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
            Err(refused(id))
        }
        async fn wait_ready(
            &self,
            res: &Resource,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<Value, ProviderError> {
            Err(refused(&res.id))
        }
        async fn wait_gone(
            &self,
            id: &ResourceId,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<(), ProviderError> {
            Err(refused(id))
        }
        async fn list_owned(
            &self,
            _: &str,
            kinds: &[ResourceId],
        ) -> Result<Vec<ResourceId>, ProviderError> {
            Err(refused(&kinds[0]))
        }
    }

    fn database(job_namespace: &str) -> Resource {
        Resource {
            id: ResourceId {
                provider: ProviderName::POSTGRES,
                api_version: "postgres.preview-envs.io/v1".into(),
                kind: "Database".into(),
                namespace: None,
                name: "aphiria_pr_5".into(),
            },
            body: json!({
                "owner": "aphiria",
                "ownerMarker": "preview-pr-5",
                "server": {"host": "db.db-server.svc.cluster.local", "port": 5432},
                "job": {"namespace": job_namespace, "image": "postgres:16", "credentialsSecret": "db-credentials"},
            }),
            depends_on: Default::default(),
            options: ResourceOptions::default(),
        }
    }

    fn executor(namespace: Option<&str>) -> (InClusterProvider, Arc<Mutex<Vec<String>>>) {
        let (client, seen) = recording_client();
        let p = InClusterProvider::new(
            Arc::new(NoWrites),
            client,
            EventSink::none(),
            namespace.map(str::to_owned),
        );
        (p, seen)
    }

    #[tokio::test]
    async fn jobs_are_looked_up_only_in_the_server_namespace() {
        let (p, seen) = executor(Some("db-server"));
        let db = database("db-server");
        assert_eq!(p.read(&db.id).await.expect("read"), None);
        assert!(
            p.list_owned("preview-pr-5", std::slice::from_ref(&db.id))
                .await
                .expect("list")
                .is_empty()
        );
        let err = p.delete(&db.id).await.expect_err("no record").to_string();
        assert!(err.contains("is gone"), "{err}");
        let paths = seen.lock().expect("lock").clone();
        assert!(paths.len() >= 4, "{paths:?}");
        for path in &paths {
            assert!(
                path.starts_with("/apis/batch/v1/namespaces/db-server/jobs?"),
                "a request outside the server's namespace: {path}"
            );
        }
    }

    #[tokio::test]
    async fn a_database_job_elsewhere_or_an_unknown_namespace_is_refused_before_any_request() {
        let (p, seen) = executor(Some("db-server"));
        let err = p
            .apply(&database("preview-pr-5"), false)
            .await
            .expect_err("other namespace")
            .to_string();
        assert!(
            err.contains("field job.namespace is \"preview-pr-5\", but database Jobs run only in the database server's namespace \"db-server\""),
            "{err}"
        );
        let err = p
            .dry_run(&database("preview-pr-5"), false)
            .await
            .expect_err("other namespace");
        assert!(err.to_string().contains("job.namespace"), "{err}");
        let (unknown, unknown_seen) = executor(None);
        let db = database("db-server");
        for err in [
            unknown.read(&db.id).await.expect_err("read"),
            unknown.delete(&db.id).await.expect_err("delete"),
            unknown.apply(&db, false).await.expect_err("apply"),
        ] {
            assert!(
                err.to_string()
                    .contains("does not know the database server's namespace"),
                "{err}"
            );
        }
        assert!(seen.lock().expect("lock").is_empty());
        assert!(unknown_seen.lock().expect("lock").is_empty());
    }
}
