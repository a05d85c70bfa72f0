//! The database migration `Job`: Phinx migrations, then the LexemeSeeder.
//!
//! The Job runs the API image (which holds the code, the Phinx configuration and
//! the compiled documentation the LexemeSeeder reads) with
//! `sh -c "<command>"`, the default command being the reference project's
//! [`DEFAULT_COMMAND`]. It reads the same env ConfigMap and Secret as the API
//! (`envFrom`), so `DB_HOST`, `DB_NAME`, `DB_USER` and `DB_PASSWORD` match.
//! `restartPolicy: Never`; `backoffLimit` defaults to 2 (not Kubernetes' 6), so a
//! broken migration fails within a minute or two instead of retrying for several
//! minutes; `ttlSecondsAfterFinished` is **not** set — the engine tracks the Job
//! and deletes it when it leaves the graph, and a Job that deletes itself would
//! look like drift.
//!
//! # Naming: `db-migration-<hash>`
//! A Job's pod template is immutable, so applying a changed template to the same
//! Job fails. The name therefore ends in the first 10 hex characters of a SHA-256
//! over the rendered pod template (image digest, command, env references,
//! resources, …) and, when given, the [`MigrationJob::config_fingerprint`] of the
//! ConfigMap/Secret it reads. A new image or new configuration gives a new Job —
//! which runs the migrations again, as FR-004 wants for every push — and the
//! engine deletes the old one; an unchanged push keeps the name, and the
//! completed Job is left alone (no re-run). Pass the fingerprint
//! ([`MigrationJob::with_config`]): the engine stamps a hash of the referenced
//! ConfigMaps/Secrets into every pod template, so without it a configuration change
//! would alter the template of the existing Job and be rejected.
//!
//! The pod is restricted-compliant by default ([`crate::security::Hardening`]; it
//! is part of the template, hence of the name).
//!
//! The API gates on this Job ([`crate::api::Migration::AfterJob`]): the engine
//! applies the API Deployment only after the Job has completed. The Job itself
//! should depend on the logical database (`.depends_on(&database.id())` in the
//! stack), which replaces the reference project's `wait-for-db` init container
//! (and its unpinned `busybox` image).

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use preview_core::diff::canonical_json;
use preview_core::{Resource, ResourceId, ResourceOptions};

use crate::common::{
    ComputeResources, ImagePullPolicy, Labels, check_dns_label, check_not_blank,
    check_not_negative, config_fingerprint, meta, pull_secrets, requirements, short_hash,
    template_meta, to_resource,
};
use crate::error::ComponentError;
use crate::security::{Hardening, harden};

/// Phinx migrations, then the LexemeSeeder (the reference project's Job command,
/// restricted to the LexemeSeeder as the spec asks). The seed spec's variant adds
/// `-e production` to both commands; set [`MigrationJob::command`] for that.
pub const DEFAULT_COMMAND: &str =
    "/app/api/vendor/bin/phinx migrate && /app/api/vendor/bin/phinx seed:run -s LexemeSeeder";

/// Hex characters of the template hash in the Job name.
const NAME_HASH_LEN: usize = 10;

/// The migration Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationJob {
    /// Namespace.
    pub namespace: String,
    /// Name prefix (default `db-migration`); the Job is `<base_name>-<hash>`.
    pub base_name: String,
    /// The API image, pinned by digest (required).
    pub image: String,
    /// Pull policy (default `IfNotPresent`).
    pub image_pull_policy: ImagePullPolicy,
    /// Shell command (default [`DEFAULT_COMMAND`]), run as `sh -c <command>`.
    pub command: String,
    /// A command and its arguments run instead of `sh -c <command>` (default none).
    pub argv: Option<Vec<String>>,
    /// The env ConfigMap (e.g. `env-vars-pr-123`).
    pub env_config_map: String,
    /// The env Secret (e.g. `env-var-secrets-pr-123`).
    pub env_secret: String,
    /// Retries before the Job fails (default 2).
    pub backoff_limit: i32,
    /// Hard time limit of the Job in seconds (default none).
    pub active_deadline_seconds: Option<i64>,
    /// How long the engine waits for completion (default: the engine's).
    pub timeout: Option<Duration>,
    /// Container requests/limits (default none).
    pub resources: Option<ComputeResources>,
    /// Restricted-compliant security settings (default [`Hardening::default`];
    /// `None` renders no security context).
    pub hardening: Option<Hardening>,
    /// `imagePullSecrets` names (default none).
    pub image_pull_secrets: Vec<String>,
    /// Content fingerprint of the ConfigMap/Secret the Job reads (see the module docs).
    pub config_fingerprint: Option<String>,
    /// Extra labels for the Job and its pods.
    pub labels: Labels,
}

impl MigrationJob {
    /// The default migration of `image`, reading `env_config_map` and `env_secret`.
    pub fn new(
        namespace: impl Into<String>,
        image: impl Into<String>,
        env_config_map: impl Into<String>,
        env_secret: impl Into<String>,
    ) -> Self {
        MigrationJob {
            namespace: namespace.into(),
            base_name: "db-migration".to_owned(),
            image: image.into(),
            image_pull_policy: ImagePullPolicy::default(),
            command: DEFAULT_COMMAND.to_owned(),
            argv: None,
            env_config_map: env_config_map.into(),
            env_secret: env_secret.into(),
            backoff_limit: 2,
            active_deadline_seconds: None,
            timeout: None,
            resources: None,
            hardening: Some(Hardening::default()),
            image_pull_secrets: Vec::new(),
            config_fingerprint: None,
            labels: Labels::new(),
        }
    }

    /// Sets [`Self::config_fingerprint`] from the ConfigMap/Secret resources the Job reads.
    pub fn with_config(mut self, config: &[&Resource]) -> Self {
        self.config_fingerprint = Some(config_fingerprint(config));
        self
    }

    fn template(&self) -> PodTemplateSpec {
        let labels = self.labels.component(&self.base_name, "database");
        let mut pod = PodSpec {
            restart_policy: Some("Never".to_owned()),
            containers: vec![Container {
                name: "migrate".to_owned(),
                image: Some(self.image.clone()),
                image_pull_policy: self.image_pull_policy.to_k8s(),
                command: Some(self.argv.clone().unwrap_or_else(|| {
                    vec!["sh".to_owned(), "-c".to_owned(), self.command.clone()]
                })),
                env_from: Some(crate::api::env_from(&self.env_config_map, &self.env_secret)),
                resources: requirements(self.resources.as_ref()),
                ..Container::default()
            }],
            image_pull_secrets: pull_secrets(&self.image_pull_secrets),
            ..PodSpec::default()
        };
        harden(&mut pod, self.hardening.as_ref());
        PodTemplateSpec {
            metadata: Some(template_meta(&labels)),
            spec: Some(pod),
        }
    }

    /// The Job name: `<base_name>-<first 10 hex of SHA-256(template, fingerprint)>`.
    pub fn job_name(&self) -> Result<String, ComponentError> {
        let template = serde_json::to_value(self.template()).map_err(|source| {
            preview_core::resource::ResourceError::Serialize {
                what: "migration pod template".to_owned(),
                source,
            }
        })?;
        let mut input = canonical_json(&template);
        input.push('\n');
        input.push_str(self.config_fingerprint.as_deref().unwrap_or(""));
        Ok(format!(
            "{}-{}",
            self.base_name,
            short_hash(input.as_bytes(), NAME_HASH_LEN)
        ))
    }

    /// The Job's resource id (what the API Deployment depends on).
    pub fn id(&self) -> Result<ResourceId, ComponentError> {
        Ok(ResourceId::kubernetes(
            "batch/v1",
            "Job",
            Some(&self.namespace),
            self.job_name()?,
        ))
    }

    /// Renders the Job.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        check_dns_label("namespace", &self.namespace)?;
        // Leave room for "-" and the hash within 63 characters (pods get a job-name label).
        if self.base_name.len() > 63 - 1 - NAME_HASH_LEN {
            return Err(ComponentError::invalid(
                "migration job name",
                self.base_name.as_str(),
                format!("must be at most {} characters", 63 - 1 - NAME_HASH_LEN),
            ));
        }
        check_dns_label("migration job name", &self.base_name)?;
        check_not_blank("migration image", &self.image)?;
        match &self.argv {
            Some(argv) if argv.first().is_none_or(|c| c.trim().is_empty()) => {
                return Err(ComponentError::invalid(
                    "migration command",
                    argv.join(" "),
                    "must name a program",
                ));
            }
            Some(_) => {}
            None => check_not_blank("migration command", &self.command)?,
        }
        check_not_negative("backoff limit", self.backoff_limit)?;
        let labels = self.labels.component(&self.base_name, "database");
        let job = Job {
            metadata: meta(&self.job_name()?, Some(&self.namespace), &labels),
            spec: Some(JobSpec {
                backoff_limit: Some(self.backoff_limit),
                active_deadline_seconds: self.active_deadline_seconds,
                template: self.template(),
                ..JobSpec::default()
            }),
            ..Job::default()
        };
        Ok(to_resource(&job)?.with_options(ResourceOptions {
            timeout: self.timeout,
            ..ResourceOptions::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvConfigMap, EnvSecret};
    use crate::test_support::{API_IMAGE, NS, labels};
    use preview_core::secret::SecretString;
    use std::collections::BTreeMap;

    fn config(db: &str) -> (Resource, Resource) {
        let cm = EnvConfigMap::new(
            NS,
            "env-vars-pr-123",
            BTreeMap::from([("DB_NAME".to_owned(), db.to_owned())]),
        )
        .build()
        .expect("cm");
        let secret = EnvSecret::new(
            NS,
            "env-var-secrets-pr-123",
            BTreeMap::from([("DB_PASSWORD".to_owned(), SecretString::new("pw"))]),
        )
        .build()
        .expect("secret");
        (cm, secret)
    }

    fn job() -> MigrationJob {
        let (cm, secret) = config("aphiria_pr_123");
        MigrationJob {
            labels: labels(),
            resources: Some(
                ComputeResources::new("100m", "128Mi", "500m", "256Mi")
                    .with_ephemeral_storage("128Mi", "512Mi"),
            ),
            ..MigrationJob::new(NS, API_IMAGE, "env-vars-pr-123", "env-var-secrets-pr-123")
        }
        .with_config(&[&cm, &secret])
    }

    #[test]
    fn snapshot() {
        let job = job().build().expect("builds");
        insta::assert_yaml_snapshot!(job.body);
    }

    #[test]
    fn runs_phinx_then_the_lexeme_seeder_once() {
        let job = job().build().expect("builds");
        let spec = &job.body["spec"];
        assert_eq!(spec["backoffLimit"], 2);
        assert!(spec.get("ttlSecondsAfterFinished").is_none());
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let container = &pod["containers"][0];
        assert_eq!(container["image"], API_IMAGE);
        assert_eq!(
            container["command"],
            serde_json::json!([
                "sh",
                "-c",
                "/app/api/vendor/bin/phinx migrate && /app/api/vendor/bin/phinx seed:run -s LexemeSeeder"
            ])
        );
        assert_eq!(
            container["envFrom"][0]["configMapRef"]["name"],
            "env-vars-pr-123"
        );
        assert_eq!(
            container["envFrom"][1]["secretRef"]["name"],
            "env-var-secrets-pr-123"
        );
    }

    #[test]
    fn name_is_stable_and_follows_image_and_config() {
        let a = job();
        let name = a.job_name().expect("name");
        assert!(name.starts_with("db-migration-"), "{name}");
        assert_eq!(name.len(), "db-migration-".len() + 10);
        assert_eq!(job().job_name().expect("name"), name, "deterministic");
        assert_eq!(a.build().expect("builds").id, a.id().expect("id"));

        let mut new_image = job();
        new_image.image = API_IMAGE.replace("2222", "5555");
        assert_ne!(new_image.job_name().expect("name"), name);

        let (cm, secret) = config("aphiria_pr_124");
        let new_config = job().with_config(&[&cm, &secret]);
        assert_ne!(new_config.job_name().expect("name"), name);

        let mut new_limit = job();
        new_limit.backoff_limit = 5;
        assert_eq!(
            new_limit.job_name().expect("name"),
            name,
            "only the pod template counts"
        );
    }

    #[test]
    fn pod_is_hardened_and_hardening_is_part_of_the_name() {
        let a = job();
        let body = a.build().expect("builds").body;
        let pod = &body["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["containers"][0]["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        let mut loose = job();
        loose.hardening = None;
        assert_ne!(loose.job_name().expect("name"), a.job_name().expect("name"));
    }

    #[test]
    fn engine_timeout_is_an_option() {
        let mut j = job();
        j.timeout = Some(Duration::from_secs(600));
        assert_eq!(
            j.build().expect("builds").options.timeout,
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn invalid_input_is_rejected() {
        let mut j = job();
        j.base_name = "x".repeat(53);
        assert!(j.build().is_err());
        let mut j = job();
        j.command = " ".into();
        assert!(j.build().is_err());
        let mut j = job();
        j.backoff_limit = -1;
        assert!(j.build().is_err());
    }
}
