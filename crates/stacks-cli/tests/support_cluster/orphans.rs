//! The orphan check of the crash and fault tests: everything a stack left on
//! the cluster and on the PostgreSQL server, listed the same way for every test.

/// Every object of every listable kind the API server serves (aggregated
/// discovery; Events aside) that carries `stack`'s label, cluster-wide:
/// SnippetsFilters, Jobs of the in-cluster database executor and anything else
/// the stack makes included; not what controllers make from those (objects with
/// an owner reference, a Service's Endpoints), nor the state backend's own
/// objects (`preview-envs.io/state-part`).
pub async fn labelled_objects_of_every_kind(client: &kube::Client, stack: &str) -> Vec<String> {
    use kube::discovery::{Discovery, Scope, verbs};
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    let selector = format!("preview-envs.io/stack={stack},!preview-envs.io/state-part");
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || ar.kind == "Event" {
                continue;
            }
            let api: kube::Api<kube::core::DynamicObject> =
                kube::Api::all_with(client.clone(), &ar);
            let list = api
                .list_metadata(&kube::api::ListParams::default().labels(&selector))
                .await
                .unwrap_or_else(|e| panic!("list {}: {e}", ar.plural));
            for o in list.items {
                // Made by controllers from the stack's objects (EndpointSlices of
                // a Service, a Job's pods…): theirs, not the stack's.
                if o.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|r| !r.is_empty())
                    || ar.kind == "Endpoints"
                {
                    continue;
                }
                let ns = match (&caps.scope, o.metadata.namespace) {
                    (Scope::Namespaced, Some(n)) => format!("{n}/"),
                    _ => String::new(),
                };
                found.push(format!(
                    "{} {ns}{}",
                    ar.kind,
                    o.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    found.sort();
    found
}

/// PR `pr`'s databases, their temporary create names and its login role, as
/// the PostgreSQL server has them (`database NAME`, `role NAME`).
pub async fn database_objects(pg: &tokio_postgres::Client, pr: u64) -> Vec<String> {
    let db = format!("aphiria_pr_{pr}");
    let temp = preview_postgres::sql::temp_name(&db);
    let mut found = Vec::new();
    for row in pg
        .query(
            "SELECT 'database ' || datname FROM pg_database WHERE datname IN ($1, $2) \
             UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname = $1",
            &[&db, &temp],
        )
        .await
        .expect("query")
    {
        found.push(row.get::<_, String>(0));
    }
    found.sort();
    found
}

/// What a converged PR stack may have on the cluster: its recorded Kubernetes
/// objects and, for each recorded database, the in-cluster executor's ensure
/// Job in the server's namespace `db_namespace` (its record of the database).
pub fn recorded_objects(
    state: &preview_core::state::StackState,
    db_namespace: &str,
) -> std::collections::BTreeSet<String> {
    let mut recorded: std::collections::BTreeSet<String> = state
        .resources
        .keys()
        .filter(|id| id.provider == preview_core::ProviderName::KUBERNETES)
        .map(ToString::to_string)
        .collect();
    recorded.extend(
        state
            .resources
            .keys()
            .filter(|id| {
                id.provider == preview_core::ProviderName::POSTGRES && id.kind == "Database"
            })
            .map(|id| {
                format!(
                    "Job {db_namespace}/{}",
                    preview_postgres::job::job_name(
                        preview_postgres::job::Operation::Ensure,
                        &id.name
                    )
                )
            }),
    );
    recorded
}
