//! Test fixtures shared by the graph, planner and render tests: a realistic
//! preview environment for one pull request, built with `serde_json::json!`.

use serde_json::{Value, json};

use crate::resource::{ProviderName, Resource, ResourceId, ResourceOptions};

/// Stack and namespace of the fixture environment.
pub(crate) const STACK: &str = "preview-pr-1";
/// Namespace of the fixture environment.
pub(crate) const NS: &str = "preview-pr-1";
/// A secret value that must never appear in any diff or rendering.
pub(crate) const CANARY: &str = "canary-hunter2-7f3a";
/// `CANARY` base64-encoded, as it appears in a Secret's `data`.
pub(crate) const CANARY_B64: &str = "Y2FuYXJ5LWh1bnRlcjItN2YzYQ==";

/// A Kubernetes resource from a manifest (panics on a bad fixture).
pub(crate) fn k8s(body: Value) -> Resource {
    Resource::kubernetes(body).expect("valid fixture manifest")
}

/// The id of a Kubernetes object in the fixture namespace.
pub(crate) fn id(api_version: &str, kind: &str, name: &str) -> ResourceId {
    ResourceId::kubernetes(api_version, kind, Some(NS), name)
}

/// The PostgreSQL database of the environment (another provider).
pub(crate) fn database_id() -> ResourceId {
    ResourceId {
        provider: ProviderName::POSTGRES,
        api_version: "postgres/v1".into(),
        kind: "Database".into(),
        namespace: None,
        name: "app_pr_1".into(),
    }
}

/// A Deployment named `name` using `app-config` and `app-secrets`.
pub(crate) fn deployment(name: &str, image: &str) -> Resource {
    k8s(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {
                    "serviceAccountName": "app",
                    "containers": [{
                        "name": name,
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "envFrom": [{"configMapRef": {"name": "app-config"}}],
                        "env": [
                            {"name": "APP_NAME", "value": name},
                            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "DB_PASSWORD"}}}
                        ]
                    }]
                }
            }
        }
    }))
}

/// A Service named `name` in front of the Deployment of the same name.
pub(crate) fn service(name: &str) -> Resource {
    k8s(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        }
    }))
}

/// An HTTPRoute for `host` to Service `name` through the environment's Gateway.
pub(crate) fn route(name: &str, host: &str) -> Resource {
    k8s(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "preview", "sectionName": "https"}],
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": name, "port": 80}]}]
        }
    }))
}

/// The ConfigMap of the environment.
pub(crate) fn config_map(log_level: &str) -> Resource {
    k8s(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": NS},
        "data": {"LOG_LEVEL": log_level, "APP_URL": "https://pr-1.preview.example.com"}
    }))
}

/// The Secret of the environment; its password is [`CANARY_B64`].
pub(crate) fn secret() -> Resource {
    k8s(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-secrets", "namespace": NS},
        "type": "Opaque",
        "data": {"DB_PASSWORD": CANARY_B64}
    }))
}

/// Every resource of a preview environment (unordered, as components build them).
pub(crate) fn preview_resources() -> Vec<Resource> {
    let namespace = k8s(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"preview-envs.io/pr": "1"}}
    }));
    let quota = k8s(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "quota", "namespace": NS},
        "spec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "20"}}
    }));
    let netpol = k8s(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": NS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }));
    let service_account = k8s(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": NS}
    }));
    let database = Resource {
        id: database_id(),
        body: json!({"name": "app_pr_1", "owner": "app"}),
        depends_on: Default::default(),
        options: ResourceOptions::default(),
    };
    let migrate = k8s(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": NS},
        "spec": {
            "backoffLimit": 1,
            "template": {"spec": {
                "restartPolicy": "Never",
                "serviceAccountName": "app",
                "containers": [{
                    "name": "migrate",
                    "image": "ghcr.io/example/api:pr-1",
                    "args": ["migrate", "--yes"],
                    "envFrom": [{"secretRef": {"name": "app-secrets"}}]
                }]
            }}
        }
    }))
    .depends_on(&database_id());
    let gateway = k8s(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "preview", "namespace": NS},
        "spec": {
            "gatewayClassName": "nginx",
            "listeners": [{
                "name": "https", "protocol": "HTTPS", "port": 443,
                "hostname": "*.pr-1.preview.example.com",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "preview-tls"}]}
            }]
        }
    }));
    let certificate = k8s(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "preview-tls", "namespace": NS},
        "spec": {
            "secretName": "preview-tls",
            "dnsNames": ["*.pr-1.preview.example.com"],
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}
        }
    }));
    let api =
        deployment("api", "ghcr.io/example/api:pr-1").depends_on(&id("batch/v1", "Job", "migrate"));
    vec![
        route("web", "pr-1.preview.example.com"),
        route("api", "api.pr-1.preview.example.com"),
        service("web"),
        service("api"),
        deployment("web", "ghcr.io/example/web:pr-1"),
        api,
        migrate,
        gateway,
        certificate,
        secret(),
        config_map("info"),
        service_account,
        netpol,
        quota,
        namespace,
        database,
    ]
}
