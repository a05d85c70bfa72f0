//! The PostgreSQL server a stack runs itself (`preview-base`, `local`,
//! `production`): [`components::PostgresServer`] in `database.namespace`
//! (default `default`), Service `db`, credentials Secret `db-credentials` whose
//! `POSTGRES_USER` is `database.user` and `POSTGRES_PASSWORD` the secret
//! `DB_PASSWORD` — the same credentials the applications use (`DB_USER`,
//! `DB_PASSWORD`), as in the reference project.
//!
//! With `protect`, the credentials Secret, the data claim, the Deployment and the
//! Service are protected: the engine refuses to delete them (so `destroy` of the
//! stack fails until `protect: false` is applied).
//!
//! The server runs as the image's `postgres` user under a restricted security
//! context ([`components::postgres_uid`]: 70 for `…-alpine` images, else 999),
//! without a service-account token; `clients` (preview-base) adds the
//! NetworkPolicy admitting only the previews and the database Jobs.
//!
//! [`Server::job`] says how the in-cluster database executor reaches the server:
//! its Jobs run in the server's namespace with the server's own image (it has
//! `psql`), the credentials Secret and the server's pull secrets.

use components::{ComputeResources, Labels, PostgresServer, ServerClients, postgres_uid};
use preview_core::Resource;
use preview_core::schema::database::JobSettings;
use preview_core::secret::SecretString;

use super::inputs::{protect, required};
use crate::StackError;
use crate::config::StackConfig;

/// What [`postgres`] renders.
pub(crate) struct Server {
    /// Secret, claim, Deployment, Service.
    pub resources: Vec<Resource>,
    /// The Service's cluster FQDN (`db.default.svc.cluster.local`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Where database Jobs run (without container resources).
    pub job: JobSettings,
}

/// The server, with `password` as its superuser password.
pub(crate) fn postgres(
    config: &StackConfig,
    labels: &Labels,
    password: SecretString,
    pull_secrets: Vec<String>,
    protected: bool,
    clients: Option<ServerClients>,
) -> Result<Server, StackError> {
    let image = required(config, &config.postgres_image, "postgresImage")?;
    let server = PostgresServer {
        namespace: config.database.namespace.clone(),
        storage: config.database.storage.clone(),
        resources: config.resources.postgres.clone(),
        image_pull_secrets: pull_secrets,
        labels: labels.clone(),
        run_as: Some(postgres_uid(image)),
        clients,
        ..PostgresServer::new(image, config.database.user.as_str(), password)
    };
    let job = JobSettings {
        namespace: server.namespace.clone(),
        image: server.image.clone(),
        credentials_secret: server.credentials_secret.clone(),
        image_pull_secrets: server.image_pull_secrets.clone(),
        resources: None,
    };
    let resources = server
        .build()?
        .into_resources()
        .into_iter()
        .map(|r| protect(r, protected))
        .collect();
    Ok(Server {
        resources,
        host: server.host(),
        port: components::postgres::PORT,
        job,
    })
}

/// `resources` of the database Job's container, from `resources.databaseJob`.
pub(crate) fn job_resources(config: &StackConfig) -> Option<serde_json::Value> {
    config
        .resources
        .database_job
        .as_ref()
        .and_then(ComputeResources::to_k8s)
        .and_then(|r| serde_json::to_value(r).ok())
}
