//! Pure parts of the in-cluster database executor: the Jobs it runs and how their
//! results are read. No IO.
//!
//! A database operation is a `batch/v1` Job in the database server's namespace
//! whose one container runs [`SCRIPT`] (`database-job.sh`) with `psql` from the
//! PostgreSQL image. Credentials come from the server's credentials Secret
//! (`POSTGRES_USER` / `POSTGRES_PASSWORD`, as the official image reads them) via
//! `secretKeyRef`, so they never pass through the engine. Parameters travel as
//! environment variables and reach SQL only as psql variables; the per-PR role
//! travels as `DB_ROLE` (its name, the database's), `DB_ROLE_CONNLIMIT` and
//! `DB_ROLE_VERIFIER` (its SCRAM verifier — the Job never sees the password).
//!
//! | operation | Job name | kept after success |
//! |---|---|---|
//! | [`Operation::Ensure`] | `create-db-<name>-<hash>` | yes: its result is how the executor reads the database |
//! | [`Operation::Drop`] | `drop-db-<name>-<hash>` | no: deleted with the ensure Job once the drop is verified |
//!
//! The result is one JSON line in the container's termination message
//! (`status.containerStatuses[0].state.terminated.message`): `{"owner", "comment"}`
//! after ensure, `{"absent": true}` after drop. On failure the message is the log
//! tail (`terminationMessagePolicy: FallbackToLogsOnError`), i.e. psql's `ERROR:`
//! line, which the Job readiness rule puts into the error. A failed pod is retried
//! once (`backoffLimit: 1`: a server that is still starting gets a second chance).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::sql;
use preview_core::diff::body_hash;
use preview_core::resource::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, ProviderName, Resource, ResourceId, ResourceOptions,
    STACK_LABEL,
};
pub use preview_core::schema::database::JobSettings;
use preview_core::schema::database_role::RoleSpec;

/// The script every database Job runs (`sh -c`).
pub const SCRIPT: &str = include_str!("database-job.sh");

pub use preview_core::schema::database::OPERATION_LABEL;
/// Annotation carrying the database name (names may not fit in a label value).
pub const DATABASE_ANNOTATION: &str = "preview-envs.io/database";
/// Annotation carrying the hash of everything that shapes the Job.
pub const SPEC_HASH_ANNOTATION: &str = "preview-envs.io/spec-hash";
/// The container's termination-message path (the Kubernetes default).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// What a Job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Create the database if missing (marked, via a temporary name), else fix its
    /// owner and drop a leftover temporary database.
    Ensure,
    /// Drop the database if it carries this stack's marker; verify it is gone.
    Drop,
}

impl Operation {
    /// `ensure` / `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Ensure => "ensure",
            Operation::Drop => "drop",
        }
    }

    fn job_prefix(self) -> &'static str {
        match self {
            Operation::Ensure => "create-db",
            Operation::Drop => "drop-db",
        }
    }
}

/// Everything one database Job needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseJob {
    /// The operation.
    pub operation: Operation,
    /// Database name (checked with [`sql::check_identifier`]).
    pub database: String,
    /// Owning role.
    pub owner: String,
    /// The per-PR login role named like the database, when the Job manages one
    /// (see [`super::role`]); the Job carries its verifier, never its password.
    pub role: Option<RoleSpec>,
    /// The owning stack (its name goes into the COMMENT marker).
    pub stack: String,
    /// Server host as pods reach it (a cluster FQDN).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Where and how the Job runs.
    pub settings: JobSettings,
}

/// The Job name for `operation` on `database`: readable, unique by a hash of the
/// database name, at most 63 characters (it is also the pods' `job-name` label).
pub fn job_name(operation: Operation, database: &str) -> String {
    let hash = &body_hash(&json!(database))["sha256:".len()..][..8];
    let prefix = operation.job_prefix();
    let room = 63 - prefix.len() - hash.len() - 2;
    let readable: String = database
        .replace('_', "-")
        .trim_matches('-')
        .chars()
        .take(room)
        .collect();
    let readable = readable.trim_end_matches('-');
    if readable.is_empty() {
        format!("{prefix}-{hash}")
    } else {
        format!("{prefix}-{readable}-{hash}")
    }
}

impl DatabaseJob {
    /// Checks every input that reaches the Job (names, stack, settings).
    pub fn check(&self) -> Result<(), String> {
        sql::check_identifier("database name", &self.database)?;
        sql::check_identifier("database owner", &self.owner)?;
        if let Some(role) = &self.role {
            sql::check_identifier("role name", &self.database)?;
            role.check()?;
            if self.owner != self.database {
                return Err(format!(
                    "database owner {:?} is not the database's own role {:?}",
                    self.owner, self.database
                ));
            }
        }
        let dns_label = |what: &str, v: &str| {
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !v.starts_with('-')
                && !v.ends_with('-');
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{what} {v:?} is not a DNS-1123 label (lowercase letters, digits, '-')"
                ))
            }
        };
        dns_label("stack name", &self.stack)?;
        dns_label("job namespace", &self.settings.namespace)?;
        dns_label("credentials secret", &self.settings.credentials_secret)?;
        if self.settings.image.trim().is_empty() {
            return Err("job image is empty".into());
        }
        if self.host.trim().is_empty() || self.port == 0 {
            return Err(format!(
                "database server {}:{} is invalid",
                self.host, self.port
            ));
        }
        Ok(())
    }

    /// The Job's resource id.
    pub fn id(&self) -> ResourceId {
        ResourceId {
            provider: ProviderName::KUBERNETES,
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: Some(self.settings.namespace.clone()),
            name: job_name(self.operation, &self.database),
        }
    }

    /// The Job (call [`DatabaseJob::check`] first).
    pub fn render(&self) -> Resource {
        let id = self.id();
        let labels = json!({
            MANAGED_BY_LABEL: MANAGED_BY_VALUE,
            STACK_LABEL: self.stack,
            OPERATION_LABEL: self.operation.as_str(),
        });
        let env_value = |name: &str, value: String| json!({"name": name, "value": value});
        let from_secret = |name: &str, key: &str| {
            json!({"name": name, "valueFrom": {"secretKeyRef": {
                "name": self.settings.credentials_secret, "key": key}}})
        };
        let mut container = Map::new();
        container.insert("name".into(), json!("psql"));
        container.insert("image".into(), json!(self.settings.image));
        container.insert("command".into(), json!(["sh", "-c", SCRIPT]));
        container.insert(
            "env".into(),
            json!([
                env_value("OPERATION", self.operation.as_str().into()),
                env_value("DB_NAME", self.database.clone()),
                env_value("DB_OWNER", self.owner.clone()),
                env_value("DB_TEMP", sql::temp_name(&self.database)),
                env_value("DB_COMMENT", sql::marker_comment(&self.stack)),
                env_value("RESULT_PATH", TERMINATION_MESSAGE_PATH.into()),
                env_value(
                    "DB_ROLE",
                    self.role
                        .as_ref()
                        .map(|_| self.database.clone())
                        .unwrap_or_default()
                ),
                env_value(
                    "DB_ROLE_CONNLIMIT",
                    self.role
                        .as_ref()
                        .map(|r| r.connection_limit.to_string())
                        .unwrap_or_default()
                ),
                env_value(
                    "DB_ROLE_VERIFIER",
                    self.role
                        .as_ref()
                        .map(|r| r.password_verifier.clone())
                        .unwrap_or_default()
                ),
                env_value("PGHOST", self.host.clone()),
                env_value("PGPORT", self.port.to_string()),
                env_value("PGDATABASE", "postgres".into()),
                env_value("PGCONNECT_TIMEOUT", "10".into()),
                env_value("PGAPPNAME", "preview-envs".into()),
                from_secret("PGUSER", "POSTGRES_USER"),
                from_secret("PGPASSWORD", "POSTGRES_PASSWORD"),
            ]),
        );
        container.insert(
            "terminationMessagePath".into(),
            json!(TERMINATION_MESSAGE_PATH),
        );
        container.insert(
            "terminationMessagePolicy".into(),
            json!("FallbackToLogsOnError"),
        );
        container.insert(
            "securityContext".into(),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        );
        if let Some(resources) = &self.settings.resources {
            container.insert("resources".into(), resources.clone());
        }
        let mut pod_spec = Map::new();
        pod_spec.insert("restartPolicy".into(), json!("Never"));
        pod_spec.insert("automountServiceAccountToken".into(), json!(false));
        if !self.settings.image_pull_secrets.is_empty() {
            pod_spec.insert(
                "imagePullSecrets".into(),
                self.settings
                    .image_pull_secrets
                    .iter()
                    .map(|n| json!({"name": n}))
                    .collect(),
            );
        }
        pod_spec.insert("containers".into(), json!([Value::Object(container)]));
        let mut body = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": id.name,
                "namespace": self.settings.namespace,
                "labels": labels,
                "annotations": {DATABASE_ANNOTATION: self.database},
            },
            "spec": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {
                        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                        OPERATION_LABEL: self.operation.as_str(),
                    }},
                    "spec": Value::Object(pod_spec),
                },
            },
        });
        // Hash of everything that shapes the Job: one whose annotation differs was
        // made for other parameters, or by another version, and is replaced (a
        // Job's template is immutable).
        let hash = body_hash(&body);
        if let Some(a) = body
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.insert(SPEC_HASH_ANNOTATION.into(), json!(hash));
        }
        Resource {
            id,
            body,
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        }
    }

    /// Recovers the parameters of an existing Job made by [`DatabaseJob::render`]
    /// (a drop copies them from the ensure Job, so it runs with what created the
    /// database). `None` when the object is not such a Job.
    pub fn from_live(job: &Value) -> Option<DatabaseJob> {
        let container = job.pointer("/spec/template/spec/containers/0")?;
        let env = |name: &str| {
            container["env"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == name)?
                .get("value")?
                .as_str()
                .map(str::to_owned)
        };
        let secret = container["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == "PGUSER")?
            .pointer("/valueFrom/secretKeyRef/name")?
            .as_str()?
            .to_owned();
        let operation = match env("OPERATION")?.as_str() {
            "ensure" => Operation::Ensure,
            "drop" => Operation::Drop,
            _ => return None,
        };
        let stack = sql::marker_stack(&env("DB_COMMENT")?)?.to_owned();
        // Jobs made before roles existed have no DB_ROLE: no role.
        let role = match env("DB_ROLE").filter(|r| !r.is_empty()) {
            None => None,
            Some(_) => Some(RoleSpec {
                connection_limit: env("DB_ROLE_CONNLIMIT")?.parse().ok()?,
                password_verifier: env("DB_ROLE_VERIFIER")?,
            }),
        };
        Some(DatabaseJob {
            operation,
            database: env("DB_NAME")?,
            owner: env("DB_OWNER")?,
            role,
            stack,
            host: env("PGHOST")?,
            port: env("PGPORT")?.parse().ok()?,
            settings: JobSettings {
                namespace: job.pointer("/metadata/namespace")?.as_str()?.to_owned(),
                image: container["image"].as_str()?.to_owned(),
                credentials_secret: secret,
                image_pull_secrets: job
                    .pointer("/spec/template/spec/imagePullSecrets")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s["name"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                resources: container.get("resources").cloned(),
            },
        })
    }
}

/// Where a Job stands, from its `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// Not finished yet.
    Running,
    /// Condition `Complete`.
    Complete,
    /// Condition `Failed`, with its reason and message.
    Failed(String),
}

/// The phase of a Job object.
pub fn job_phase(job: &Value) -> JobPhase {
    let conditions = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_true = |c: &Value, kind: &str| c["type"] == kind && c["status"] == "True";
    if conditions.iter().any(|c| is_true(c, "Complete")) {
        return JobPhase::Complete;
    }
    match conditions.iter().find(|c| is_true(c, "Failed")) {
        Some(c) => JobPhase::Failed(format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or("Failed"),
            c["message"].as_str().unwrap_or("")
        )),
        None => JobPhase::Running,
    }
}

/// What an ensure Job reported.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct EnsureResult {
    /// The database's owner.
    pub owner: String,
    /// The database's COMMENT (the ownership marker).
    pub comment: String,
    /// The role named like the database, when there is one.
    #[serde(default)]
    pub role: Option<EnsureRole>,
}

/// The role an ensure Job found after its work.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsureRole {
    /// `rolconnlimit`.
    pub connection_limit: i64,
    /// `rolpassword` (the stored verifier).
    pub password_verifier: String,
    /// The role's COMMENT (the ownership marker).
    pub comment: String,
}

/// The termination message of a pod's first container, if it terminated.
pub fn termination_message(pod: &Value) -> Option<&str> {
    pod.pointer("/status/containerStatuses/0/state/terminated/message")
        .and_then(Value::as_str)
}

/// Parses an ensure Job's result line.
pub fn parse_ensure_result(message: &str) -> Result<EnsureResult, String> {
    serde_json::from_str(message.trim()).map_err(|e| {
        format!(
            "unexpected result {:?} from the database Job ({e})",
            truncate(message, 200)
        )
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(operation: Operation) -> DatabaseJob {
        DatabaseJob {
            operation,
            database: "aphiria_pr_123".into(),
            owner: "aphiria_pr_123".into(),
            role: Some(RoleSpec::new(
                "aphiria_pr_123",
                &preview_core::secret::SecretString::new("job-test-password"),
                10,
            )),
            stack: "preview-pr-123".into(),
            host: "db.default.svc.cluster.local".into(),
            port: 5432,
            settings: JobSettings {
                namespace: "default".into(),
                image: "docker.io/library/postgres:16-alpine@sha256:57c72fd2a128e416c7fcc499958864df5301e940bca0a56f58fddf30ffc07777".into(),
                credentials_secret: "db-credentials".into(),
                image_pull_secrets: vec!["registry-credentials".into()],
                resources: Some(json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}})),
            },
        }
    }

    #[test]
    fn ensure_job_snapshot() {
        let j = job(Operation::Ensure);
        j.check().expect("valid");
        let mut body = j.render().body;
        // The script is its own file (database-job.sh); keep the snapshot about the Job.
        body["spec"]["template"]["spec"]["containers"][0]["command"][2] = json!("<SCRIPT>");
        insta::assert_yaml_snapshot!(body);
    }

    #[test]
    fn names_fit_and_differ() {
        assert_eq!(
            job_name(Operation::Ensure, "aphiria_pr_123"),
            format!(
                "create-db-aphiria-pr-123-{}",
                &body_hash(&json!("aphiria_pr_123"))[7..15]
            )
        );
        let long = "a".repeat(63);
        for op in [Operation::Ensure, Operation::Drop] {
            let n = job_name(op, &long);
            assert!(n.len() <= 63, "{n}");
            assert!(!n.contains("--"), "{n}");
        }
        assert!(job_name(Operation::Drop, "_").starts_with("drop-db-"));
        assert_ne!(
            job_name(Operation::Ensure, "a_b"),
            job_name(Operation::Ensure, "a_b_")
        );
    }

    #[test]
    fn live_job_round_trips() {
        for op in [Operation::Ensure, Operation::Drop] {
            let j = job(op);
            let mut live = j.render().body;
            live["status"] = json!({"succeeded": 1});
            assert_eq!(DatabaseJob::from_live(&live), Some(j));
        }
        assert_eq!(DatabaseJob::from_live(&json!({"kind": "Job"})), None);
        // A Job made before roles existed has no DB_ROLE* variables: no role.
        let mut legacy = job(Operation::Ensure);
        legacy.role = None;
        legacy.owner = "aphiria".into();
        let mut live = legacy.render().body;
        let env = live["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .expect("env");
        env.retain(|e| !e["name"].as_str().is_some_and(|n| n.starts_with("DB_ROLE")));
        assert_eq!(DatabaseJob::from_live(&live), Some(legacy));
    }

    #[test]
    fn checks_name_everything() {
        let mut j = job(Operation::Ensure);
        j.database = "x; DROP DATABASE y".into();
        assert!(j.check().expect_err("bad name").contains("database name"));
        let mut j = job(Operation::Ensure);
        j.stack = "Preview PR".into();
        assert!(j.check().expect_err("bad stack").contains("stack name"));
        let mut j = job(Operation::Ensure);
        j.settings.namespace = String::new();
        assert!(j.check().expect_err("ns").contains("job namespace"));
        let mut j = job(Operation::Ensure);
        j.owner = "aphiria".into();
        assert!(j.check().expect_err("owner").contains("own role"));
        let mut j = job(Operation::Ensure);
        if let Some(r) = j.role.as_mut() {
            r.connection_limit = 0;
        }
        assert!(
            j.check()
                .expect_err("limit")
                .contains("role.connectionLimit")
        );
    }

    #[test]
    fn the_script_grants_the_role_only_login() {
        // The attributes in the script are the documented ones.
        assert_eq!(
            SCRIPT
                .matches(&format!(
                    "{} CONNECTION LIMIT",
                    super::super::role::ATTRIBUTES
                ))
                .count(),
            2
        );
        assert!(SCRIPT.contains("REVOKE ALL ON DATABASE %I FROM PUBLIC"));
        assert!(SCRIPT.contains("REVOKE CONNECT ON DATABASE template1 FROM PUBLIC"));
        // Both executors serialise the system databases' REVOKEs on one key.
        let lock = "pg_advisory_xact_lock(hashtext('preview-envs/system-databases'))";
        assert!(SCRIPT.contains(lock));
        assert!(crate::sql::REVOKE_SYSTEM_DATABASES.contains(lock));
    }

    #[test]
    fn phases_and_results() {
        assert_eq!(job_phase(&json!({})), JobPhase::Running);
        assert_eq!(
            job_phase(&json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})),
            JobPhase::Complete
        );
        assert_eq!(
            job_phase(
                &json!({"status": {"conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}})
            ),
            JobPhase::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        let r = parse_ensure_result(
            "{\"owner\" : \"aphiria\", \"comment\" : \"managed-by=preview-envs stack=s\"}\n",
        )
        .expect("parses");
        assert_eq!(r.owner, "aphiria");
        assert!(parse_ensure_result("garbage").is_err());
    }
}
