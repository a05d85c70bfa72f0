//! `/v2/kubernetes/clusters[/{cluster_id}[/kubeconfig]]`: DOKS clusters with a
//! provisioning life cycle (`provisioning` → `running` after a configurable number
//! of GETs), and their kubeconfig (`application/yaml`).

use serde_json::{Value, json};

use crate::model::{Cluster, NodePool, State};
use crate::pages::page_of;
use crate::server::{Call, Reply};

/// The version a cluster gets for `latest` (and the patch level for `1.33`).
pub const LATEST_VERSION: &str = "1.33.1-do.0";
/// The regions the fake accepts.
pub const REGIONS: &[&str] = &[
    "nyc1", "nyc3", "ams3", "fra1", "lon1", "sfo3", "sgp1", "tor1",
];

pub(crate) fn handle(state: &mut State, call: &Call<'_>) -> Reply {
    let rest = match call.segments.as_slice() {
        ["v2", "kubernetes", "clusters", rest @ ..] => rest,
        _ => return Reply::not_found(),
    };
    match (call.method, rest) {
        ("GET", []) => list(state, call),
        ("POST", []) => create(state, call),
        ("GET", [id]) => get(state, id),
        ("PUT", [id]) => update(state, call, id),
        ("DELETE", [id]) => delete(state, id),
        ("GET", [id, "kubeconfig"]) => kubeconfig(state, call, id),
        _ => Reply::not_found(),
    }
}

fn list(state: &mut State, call: &Call<'_>) -> Reply {
    let items = state.clusters.iter().map(Cluster::to_json).collect();
    page_of(call, "kubernetes_clusters", items)
}

fn resolve_version(requested: &str) -> Option<String> {
    // `1.33` for `1.33.1-do.0`.
    let minor = LATEST_VERSION
        .split('-')
        .next()
        .and_then(|v| v.rsplit_once('.'))
        .map(|(minor, _)| minor);
    if requested == "latest" || Some(requested) == minor {
        return Some(LATEST_VERSION.to_owned());
    }
    (requested.contains("-do.") && requested.split('.').count() >= 3).then(|| requested.to_owned())
}

fn create(state: &mut State, call: &Call<'_>) -> Reply {
    let body = &call.body;
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let name = text("name");
    let region = text("region");
    let requested = text("version");
    if name.is_empty() || name.len() > 255 {
        return Reply::unprocessable("name must be 1-255 characters");
    }
    if state.clusters.iter().any(|c| c.name == name) {
        return Reply::unprocessable(&format!(
            "a cluster named {name:?} already exists in this account"
        ));
    }
    if !REGIONS.contains(&region.as_str()) {
        return Reply::unprocessable(&format!("region {region:?} is not available"));
    }
    let Some(version) = resolve_version(&requested) else {
        return Reply::unprocessable(&format!(
            "version {requested:?} is not available (try {LATEST_VERSION} or latest)"
        ));
    };
    let mut pools = Vec::new();
    for pool in body
        .get("node_pools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let count = pool.get("count").and_then(Value::as_i64).unwrap_or(0);
        if count < 1 {
            return Reply::unprocessable("a node pool needs at least one node");
        }
        pools.push(NodePool {
            id: state.next_uuid(),
            name: pool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            size: pool
                .get("size")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            count,
        });
    }
    if pools.is_empty() {
        return Reply::unprocessable("a cluster needs at least one node pool");
    }
    let id = state.next_uuid();
    let mut tags: Vec<String> = vec!["k8s".into(), format!("k8s:{id}")];
    for tag in body
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(tag) = tag.as_str()
            && !tags.iter().any(|t| t == tag)
        {
            tags.push(tag.to_owned());
        }
    }
    let cluster = Cluster {
        id,
        name,
        region,
        version,
        tags,
        node_pools: pools,
        state: "provisioning".into(),
        polls_left: state.provision_polls,
    };
    let json = cluster.to_json();
    state.clusters.push(cluster);
    Reply::json(201, json!({ "kubernetes_cluster": json }))
}

fn get(state: &mut State, id: &str) -> Reply {
    let Some(cluster) = state.clusters.iter_mut().find(|c| c.id == id) else {
        return Reply::not_found();
    };
    if cluster.state == "provisioning" {
        if cluster.polls_left == 0 {
            cluster.state = "running".into();
        } else {
            cluster.polls_left -= 1;
        }
    }
    Reply::json(200, json!({"kubernetes_cluster": cluster.to_json()}))
}

fn update(state: &mut State, call: &Call<'_>, id: &str) -> Reply {
    let Some(cluster) = state.clusters.iter_mut().find(|c| c.id == id) else {
        return Reply::not_found();
    };
    if let Some(name) = call.body.get("name").and_then(Value::as_str) {
        cluster.name = name.to_owned();
    }
    if let Some(tags) = call.body.get("tags").and_then(Value::as_array) {
        let mut next: Vec<String> = vec!["k8s".into(), format!("k8s:{}", cluster.id)];
        for tag in tags.iter().filter_map(Value::as_str) {
            if !next.iter().any(|t| t == tag) {
                next.push(tag.to_owned());
            }
        }
        cluster.tags = next;
    }
    Reply::json(202, json!({"kubernetes_cluster": cluster.to_json()}))
}

fn delete(state: &mut State, id: &str) -> Reply {
    let before = state.clusters.len();
    state.clusters.retain(|c| c.id != id);
    if state.clusters.len() == before {
        Reply::not_found()
    } else {
        Reply::no_content()
    }
}

fn kubeconfig(state: &mut State, call: &Call<'_>, id: &str) -> Reply {
    let Some(cluster) = state.clusters.iter().find(|c| c.id == id) else {
        return Reply::not_found();
    };
    if cluster.state != "running" {
        return Reply::error(
            412,
            "precondition_failed",
            &format!(
                "the cluster is {}; its kubeconfig is available once it is running",
                cluster.state
            ),
        );
    }
    let expiry = call
        .query("expiry_seconds")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(7 * 24 * 3600);
    let name = format!("do-{}-{}", cluster.region, cluster.name);
    let yaml = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ZmFrZS1jYQ==\n    server: {endpoint}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {name}-admin\n  name: {name}\ncurrent-context: {name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {name}-admin\n  user:\n    token: fake-doks-token-{id}-{expiry}\n",
        endpoint = cluster.endpoint(),
        id = cluster.id,
    );
    Reply::text(200, "application/yaml", yaml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(resolve_version("latest").as_deref(), Some(LATEST_VERSION));
        assert_eq!(resolve_version("1.33").as_deref(), Some(LATEST_VERSION));
        assert_eq!(
            resolve_version("1.32.5-do.2").as_deref(),
            Some("1.32.5-do.2")
        );
        assert_eq!(resolve_version("2"), None);
    }
}
