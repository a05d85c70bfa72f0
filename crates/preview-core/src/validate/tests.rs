//! Tests of [`validate`] on whole graphs; each check's own rules are unit-tested
//! in its file.

use serde::Deserialize;
use serde_json::Value;

use super::*;

const DIGEST: &str = "0c2f4f3a9d1b8e7c6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9";

/// Resources from multi-document YAML.
fn graph(yaml: &str) -> Vec<Resource> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .map(|v| Resource::kubernetes(v).expect("valid manifest"))
        .collect()
}

fn problems(yaml: &str, policy: &Policy) -> Vec<String> {
    match validate(&graph(yaml), policy) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn strict() -> Policy {
    Policy {
        require_image_digests: true,
        ..Policy::default()
    }
}

/// A small, valid preview stack: namespace with quota, config, web deployment, service.
fn preview_stack() -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: preview-pr-1
  labels: {{app.kubernetes.io/managed-by: preview-envs, preview-envs.io/stack: preview-pr-1}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: preview-quota, namespace: preview-pr-1}}
spec:
  hard: {{limits.cpu: "2", limits.memory: 4Gi, pods: "5"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: env-vars-pr-1, namespace: preview-pr-1}}
data:
  APP_ENV: preview
  APP_API_URL: https://1.pr-api.aphiria.com
  DB_HOST: db.default.svc.cluster.local
  DB_PORT: "5432"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: preview-pr-1
  labels: {{app.kubernetes.io/name: web}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/name: web}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: web}}
    spec:
      initContainers:
      - name: js-config
        image: registry.example.com/aphiria/web@sha256:{DIGEST}
        resources:
          requests: {{cpu: 10m, memory: 16Mi}}
          limits: {{cpu: 50m, memory: 32Mi}}
      containers:
      - name: web
        image: registry.example.com/aphiria/web@sha256:{DIGEST}
        ports:
        - {{name: http, containerPort: 80, protocol: TCP}}
        env:
        - {{name: API_URL, value: "https://1.pr-api.aphiria.com"}}
        resources:
          requests: {{cpu: 50m, memory: 64Mi}}
          limits: {{cpu: 200m, memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: preview-pr-1}}
spec:
  selector: {{app.kubernetes.io/name: web}}
  ports:
  - {{name: http, port: 80, protocol: TCP, targetPort: http}}
"#
    )
}

#[test]
fn valid_preview_stack_passes_strict_policy() {
    assert_eq!(problems(&preview_stack(), &strict()), Vec::<String>::new());
}

#[test]
fn problem_display_names_resource_field_and_message() {
    let yaml = preview_stack().replace(
        &format!("name: web\n        image: registry.example.com/aphiria/web@sha256:{DIGEST}"),
        "name: web\n        image: nginx:1.27",
    );
    assert_eq!(
        problems(&yaml, &strict()),
        vec![
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].image: image \
             \"nginx:1.27\" is not pinned by digest (expected name@sha256:<64 lowercase hex>)"
        ]
    );
    assert!(
        problems(&yaml, &Policy::default()).is_empty(),
        "tags are fine by default"
    );
}

#[test]
fn malformed_digest_fails_by_default() {
    let yaml = preview_stack().replace(
        &format!("sha256:{DIGEST}\n        ports"),
        "sha256:0c2f4f3a9d1b\n        ports",
    );
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].image: image \
             \"registry.example.com/aphiria/web@sha256:0c2f4f3a9d1b\": digest has 12 hex characters, expected 64"
        ]
    );
}

#[test]
fn images_of_cronjobs_jobs_and_pods_are_checked() {
    let yaml = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: cleanup, namespace: ops}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: cleanup, image: ""}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: ops}
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - {name: wait, image: busybox}
      containers:
      - {name: migrate, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: ops}
spec:
  containers:
  - {name: sh, image: busybox}
"#;
    assert_eq!(
        problems(yaml, &Policy::default()),
        vec![
            "CronJob ops/cleanup: spec.jobTemplate.spec.template.spec.containers[name=cleanup].image: image is empty"
        ]
    );
    let strict = problems(yaml, &strict());
    assert_eq!(strict.len(), 4, "{strict:#?}");
    assert!(
        strict[1]
            .starts_with("Job ops/migrate: spec.template.spec.initContainers[name=wait].image")
    );
    assert!(strict[3].starts_with("Pod ops/debug: spec.containers[name=sh].image"));
}

#[test]
fn names_namespaces_and_services() {
    let long = format!("preview-pr-{}", "1".repeat(59));
    let yaml = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {long}}}
---
apiVersion: v1
kind: Service
metadata: {{name: 1web, namespace: preview-pr-1}}
spec: {{ports: [{{port: 80, protocol: TCP}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: Env_Vars, namespace: Preview}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:preview-reader"}}
"#
    );
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![
            format!("Namespace {long}: metadata.name: name \"{long}\" is 70 characters; a DNS-1123 label allows at most 63"),
            "Service preview-pr-1/1web: metadata.name: name \"1web\" is not a valid DNS-1035 label: it must start with a lowercase letter".to_owned(),
            "ConfigMap Preview/Env_Vars: metadata.name: name \"Env_Vars\" is not a valid DNS-1123 subdomain: 'E' (uppercase) at position 1 is not allowed; use lowercase letters, digits, '-' and '.'".to_owned(),
            "ConfigMap Preview/Env_Vars: metadata.namespace: namespace \"Preview\" is not a valid DNS-1123 label: 'P' (uppercase) at position 1 is not allowed; use lowercase letters, digits and '-'".to_owned(),
        ]
    );
}

#[test]
fn job_names_are_limited_to_a_label_value() {
    let name = "migrate-".repeat(9);
    let name = name.trim_end_matches('-');
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: n}}\nspec: {{template: {{spec: {{containers: []}}}}}}\n"
    );
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![format!(
            "Job n/{name}: metadata.name: name \"{name}\" is 71 characters; a Job's name becomes its pods' job-name label value, which allows at most 63"
        )]
    );
}

#[test]
fn labels_in_metadata_templates_and_selectors() {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: n
  labels: {"app.kubernetes.io/name": "web", "bad key": "x"}
spec:
  selector:
    matchLabels: {app: "-web"}
    matchExpressions:
    - {key: "Tier.example.com/x", operator: In, values: ["ok", "not ok"]}
  template:
    metadata:
      labels: {app: "-web", version: "1.2.3_rc"}
    spec:
      containers: [{name: web, image: nginx}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate, namespace: n}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {"kubernetes.io/metadata.name": "nginx gateway"}
"#;
    assert_eq!(
        problems(yaml, &Policy::default()),
        vec![
            "Deployment n/web: metadata.labels[bad key]: label key \"bad key\": name part \"bad key\": ' ' at position 4 is not allowed; use letters, digits, '-', '_' and '.'",
            "Deployment n/web: spec.selector.matchLabels[app]: label value \"-web\" must start and end with a letter or digit",
            "Deployment n/web: spec.selector.matchExpressions[0].key: label key \"Tier.example.com/x\": prefix \"Tier.example.com\" is not a valid DNS-1123 subdomain: 'T' (uppercase) at position 1 is not allowed; use lowercase letters, digits, '-' and '.'",
            "Deployment n/web: spec.selector.matchExpressions[0].values[1]: label value \"not ok\": ' ' at position 4 is not allowed; use letters, digits, '-', '_' and '.'",
            "Deployment n/web: spec.template.metadata.labels[app]: label value \"-web\" must start and end with a letter or digit",
            "NetworkPolicy n/isolate: spec.ingress[0].from[0].namespaceSelector.matchLabels[kubernetes.io/metadata.name]: label value \"nginx gateway\": ' ' at position 6 is not allowed; use letters, digits, '-', '_' and '.'",
        ]
    );
}

#[test]
fn quota_namespace_requires_requests_and_limits() {
    let yaml = preview_stack()
        .replace("          requests: {cpu: 10m, memory: 16Mi}\n", "")
        .replace("limits: {cpu: 200m, memory: 128Mi}", "limits: {cpu: 200m}");
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![
            "Deployment preview-pr-1/web: spec.template.spec.initContainers[name=js-config].resources: \
             container \"js-config\" has no requests.cpu, requests.memory; namespace preview-pr-1 has a \
             ResourceQuota (preview-quota), which rejects pods whose containers do not set cpu and memory \
             requests and limits",
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].resources: \
             container \"web\" has no limits.memory; namespace preview-pr-1 has a ResourceQuota \
             (preview-quota), which rejects pods whose containers do not set cpu and memory requests and limits",
        ]
    );
    let relaxed = Policy {
        require_resources_in_quota_namespaces: false,
        ..Policy::default()
    };
    assert!(problems(&yaml, &relaxed).is_empty());
}

#[test]
fn quota_on_ephemeral_storage_requires_it_on_every_container() {
    let yaml = preview_stack().replace(
        "hard: {limits.cpu: \"2\", limits.memory: 4Gi, pods: \"5\"}",
        "hard: {limits.cpu: \"2\", limits.memory: 4Gi, limits.ephemeral-storage: 4Gi, pods: \"5\"}",
    );
    assert_ne!(yaml, preview_stack(), "the quota was changed");
    let found = problems(&yaml, &Policy::default());
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains(
            "container \"js-config\" has no requests.ephemeral-storage, limits.ephemeral-storage"
        ) && found[0].contains("do not set cpu, memory and ephemeral-storage requests and limits"),
        "{found:#?}"
    );
    let mut with_storage = yaml.clone();
    for values in [
        "cpu: 10m, memory: 16Mi",
        "cpu: 50m, memory: 32Mi",
        "cpu: 50m, memory: 64Mi",
        "cpu: 200m, memory: 128Mi",
    ] {
        with_storage = with_storage.replace(
            &format!("{{{values}}}"),
            &format!("{{{values}, ephemeral-storage: 16Mi}}"),
        );
    }
    let left = problems(&with_storage, &Policy::default());
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn limit_range_defaults_count_as_set() {
    let yaml = preview_stack()
        .replace("          requests: {cpu: 10m, memory: 16Mi}\n", "")
        .replace("limits: {cpu: 200m, memory: 128Mi}", "limits: {cpu: 200m}")
        + r#"---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: preview-pr-1}
spec:
  limits:
  - type: Container
    default: {cpu: 100m, memory: 128Mi}
    defaultRequest: {cpu: 10m, memory: 32Mi}
"#;
    assert!(problems(&yaml, &Policy::default()).is_empty());
}

#[test]
fn quota_outside_the_graph_comes_from_the_policy() {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: postgres, image: postgres}]
"#;
    assert!(problems(yaml, &Policy::default()).is_empty());
    let policy = Policy {
        extra_quota_namespaces: ["default".to_owned()].into(),
        ..Policy::default()
    };
    assert_eq!(
        problems(yaml, &policy),
        vec![
            "Deployment default/db: spec.template.spec.containers[name=postgres].resources: container \
             \"postgres\" has no requests.cpu, requests.memory, limits.cpu, limits.memory; namespace \
             default has a ResourceQuota, which rejects pods whose containers do not set cpu and memory \
             requests and limits"
        ]
    );
}

#[test]
fn cross_namespace_addresses_must_be_fqdns() {
    let yaml = preview_stack()
        .replace(
            "DB_HOST: db.default.svc.cluster.local",
            "DB_HOST: db.default",
        )
        .replace(
            "{name: API_URL, value: \"https://1.pr-api.aphiria.com\"}",
            "{name: GATEWAY, value: \"http://gateway.nginx-gateway.svc:8080/healthz\"}",
        );
    let policy = Policy {
        known_namespaces: ["nginx-gateway".to_owned()].into(),
        ..Policy::default()
    };
    assert_eq!(
        problems(&yaml, &policy),
        vec![
            "ConfigMap preview-pr-1/env-vars-pr-1: data.DB_HOST: \"db.default\" addresses namespace default \
             with the short name \"db.default\"; use the fully qualified \"db.default.svc.cluster.local\" \
             (addresses into another namespace must be FQDNs)",
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].env[name=GATEWAY].value: \
             \"http://gateway.nginx-gateway.svc:8080/healthz\" addresses namespace nginx-gateway with the \
             short name \"gateway.nginx-gateway.svc\"; use the fully qualified \
             \"gateway.nginx-gateway.svc.cluster.local\" (addresses into another namespace must be FQDNs)",
        ]
    );
    // An unknown namespace is not flagged; the check can be turned off.
    assert_eq!(problems(&yaml, &Policy::default()).len(), 1);
    let off = Policy {
        check_cross_namespace_fqdn: false,
        ..policy
    };
    assert!(problems(&yaml, &off).is_empty());
}

#[test]
fn service_selector_must_match_a_pod_template() {
    let yaml = preview_stack().replace(
        "  selector: {app.kubernetes.io/name: web}\n  ports",
        "  selector: {app.kubernetes.io/name: wbe}\n  ports",
    );
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![
            "Service preview-pr-1/web: spec.selector: selector {app.kubernetes.io/name=wbe} matches no pod \
             template in namespace preview-pr-1 (pod labels: Deployment web: {app.kubernetes.io/name=web})"
        ]
    );
    // No workload in the namespace: the pods may come from elsewhere.
    let alone = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: postgres}
  ports: [{port: 5432, protocol: TCP}]
"#;
    assert!(problems(alone, &Policy::default()).is_empty());
}

#[test]
fn duplicate_container_names_and_long_port_names() {
    let yaml = preview_stack()
        .replace("name: js-config", "name: web")
        .replace(
            "{name: http, containerPort: 80",
            "{name: php-fpm-metrics-x, containerPort: 80",
        )
        .replace("targetPort: http}", "targetPort: php-fpm-metrics-x}");
    assert_eq!(
        problems(&yaml, &Policy::default()),
        vec![
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].name: container name \
             \"web\" is already used by spec.template.spec.initContainers[name=web]",
            "Deployment preview-pr-1/web: spec.template.spec.containers[name=web].ports[0].name: port name \
             \"php-fpm-metrics-x\" is 17 characters; a port name allows at most 15",
            "Service preview-pr-1/web: spec.ports[0].targetPort: port name \"php-fpm-metrics-x\" is 17 \
             characters; a port name allows at most 15",
        ]
    );
}

#[test]
fn non_kubernetes_resources_are_skipped() {
    let mut resources = graph(&preview_stack());
    let mut db = resources[0].clone();
    db.id = ResourceId {
        provider: ProviderName::POSTGRES,
        api_version: "postgres/v1".into(),
        kind: "Database".into(),
        namespace: None,
        name: "Aphiria PR 1".into(),
    };
    resources.push(db);
    assert_eq!(validate(&resources, &strict()), Ok(()));
}

/// A graph with five different problems reports all five, in resource order.
fn five_problems() -> String {
    preview_stack()
        .replace(
            "DB_HOST: db.default.svc.cluster.local",
            "DB_HOST: db.default:5432",
        )
        .replace(
            &format!("name: web\n        image: registry.example.com/aphiria/web@sha256:{DIGEST}"),
            "name: web\n        image: nginx:1.27",
        )
        .replace("limits: {cpu: 200m, memory: 128Mi}", "limits: {cpu: 200m}")
        .replace(
            "metadata: {name: web, namespace: preview-pr-1}",
            "metadata: {name: Web, namespace: preview-pr-1}",
        )
        .replace(
            "labels: {app.kubernetes.io/name: web}\n    spec:",
            "labels: {app.kubernetes.io/name: web, release: \"pr-1 (draft)\"}\n    spec:",
        )
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = validate(&graph(&five_problems()), &strict()).expect_err("five problems");
    assert_eq!(err.problems().len(), 5, "{err}");
    let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "data.DB_HOST",
            "spec.template.metadata.labels[release]",
            "spec.template.spec.containers[name=web].image",
            "spec.template.spec.containers[name=web].resources",
            "metadata.name",
        ]
    );
    insta::assert_snapshot!("validation_error_display", err.to_string());
}

#[test]
fn single_problem_summary_is_singular() {
    let err = ValidationError(vec![Problem::new(
        &ResourceId::kubernetes("v1", "Namespace", None, "x"),
        "metadata.name",
        "bad",
    )]);
    assert_eq!(
        err.to_string(),
        "1 problem found, nothing was applied:\n  Namespace x: metadata.name: bad"
    );
}
