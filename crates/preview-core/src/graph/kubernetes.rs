//! The Kubernetes references of the desired graph ([`super::References`]):
//! ownership labels and config hashes stamped on Kubernetes bodies, and the
//! dependencies one Kubernetes object implies by referring to another of the
//! graph (see the module docs of [`super`] for the list). Pure: no IO.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::References;
use crate::diff::{canonical_json, sha256_hex};
use crate::resource::{
    CONFIG_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ProviderName, Resource, ResourceId,
    STACK_LABEL,
};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
const CERT_MANAGER_GROUP: &str = "cert-manager.io";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const ROUTE_KINDS: [&str; 5] = ["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"];
/// Hex characters of the SHA-256 kept in [`CONFIG_HASH_ANNOTATION`].
const CONFIG_HASH_LEN: usize = 16;

/// The references of Kubernetes objects (the built-in hook of
/// [`super::DesiredGraph::new`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesReferences;

impl References for KubernetesReferences {
    fn infer(
        &self,
        stack: &str,
        by_id: &mut BTreeMap<ResourceId, Resource>,
    ) -> BTreeMap<ResourceId, BTreeSet<ResourceId>> {
        let mut dependencies = BTreeMap::new();
        let mut hashes: Vec<(ResourceId, String)> = Vec::new();
        {
            let index = Index::new(by_id);
            let mut config_cache: HashMap<ResourceId, String> = HashMap::new();
            for resource in by_id.values() {
                if resource.id.provider == ProviderName::KUBERNETES {
                    dependencies.insert(
                        resource.id.clone(),
                        implied_dependencies(&resource.id, &resource.body, &index),
                    );
                    if let Some(hash) = config_hash(resource, by_id, &mut config_cache) {
                        hashes.push((resource.id.clone(), hash));
                    }
                }
            }
        }
        for resource in by_id.values_mut() {
            if resource.id.provider == ProviderName::KUBERNETES {
                stamp_labels(&mut resource.body, stack);
            }
        }
        for (id, hash) in hashes {
            if let Some(resource) = by_id.get_mut(&id) {
                stamp_config_hash(&id, &mut resource.body, hash);
            }
        }
        dependencies
    }
}

// ---------------------------------------------------------------------------
// Reference index and implied dependencies
// ---------------------------------------------------------------------------

/// Version-independent lookups into the graph.
struct Index<'a> {
    by_name: HashMap<(&'a str, &'a str, Option<&'a str>, &'a str), &'a ResourceId>,
    crds: HashMap<(&'a str, &'a str), &'a ResourceId>,
    certificate_secrets: HashMap<(Option<&'a str>, &'a str), &'a ResourceId>,
}

impl<'a> Index<'a> {
    fn new(resources: &'a BTreeMap<ResourceId, Resource>) -> Self {
        let mut index = Index {
            by_name: HashMap::with_capacity(resources.len()),
            crds: HashMap::new(),
            certificate_secrets: HashMap::new(),
        };
        for (id, resource) in resources {
            if id.provider != ProviderName::KUBERNETES {
                continue;
            }
            index.by_name.insert(
                (
                    id.group(),
                    id.kind.as_str(),
                    id.namespace.as_deref(),
                    id.name.as_str(),
                ),
                id,
            );
            let body = &resource.body;
            if id.is("apiextensions.k8s.io", "CustomResourceDefinition") {
                let group = body.pointer("/spec/group").and_then(Value::as_str);
                let kind = body.pointer("/spec/names/kind").and_then(Value::as_str);
                if let (Some(group), Some(kind)) = (group, kind) {
                    index.crds.insert((group, kind), id);
                }
            }
            if id.is(CERT_MANAGER_GROUP, "Certificate")
                && let Some(secret) = body.pointer("/spec/secretName").and_then(Value::as_str)
            {
                index
                    .certificate_secrets
                    .insert((id.namespace.as_deref(), secret), id);
            }
        }
        index
    }

    fn find(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&'a ResourceId> {
        self.by_name.get(&(group, kind, namespace, name)).copied()
    }

    /// A TLS Secret, or the Certificate that writes it.
    fn find_tls_secret(&self, namespace: Option<&str>, name: &str) -> Option<&'a ResourceId> {
        self.find("", "Secret", namespace, name)
            .or_else(|| self.certificate_secrets.get(&(namespace, name)).copied())
    }
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn items<'v>(value: &'v Value, pointer: &str) -> impl Iterator<Item = &'v Value> + 'v {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn implied_dependencies<'a>(
    id: &ResourceId,
    body: &Value,
    index: &Index<'a>,
) -> BTreeSet<ResourceId> {
    let ns = id.namespace.as_deref();
    let mut found: Vec<&'a ResourceId> = Vec::new();
    let mut add = |dep: Option<&'a ResourceId>| {
        if let Some(dep) = dep {
            found.push(dep);
        }
    };
    if let Some(ns) = ns {
        add(index.find("", "Namespace", None, ns));
    }
    add(index.crds.get(&(id.group(), id.kind.as_str())).copied());
    if let Some(spec) = pod_spec(id, body) {
        let refs = PodRefs::of(spec);
        for name in &refs.config_maps {
            add(index.find("", "ConfigMap", ns, name));
        }
        for name in refs.secrets.iter().chain(&refs.pull_secrets) {
            add(index.find("", "Secret", ns, name));
        }
        for name in &refs.claims {
            add(index.find("", "PersistentVolumeClaim", ns, name));
        }
        if let Some(name) = &refs.service_account {
            add(index.find("", "ServiceAccount", ns, name));
        }
    }
    let group = id.group();
    if group == GATEWAY_GROUP && ROUTE_KINDS.contains(&id.kind.as_str()) {
        for parent in items(body, "/spec/parentRefs") {
            add(object_ref(parent, GATEWAY_GROUP, "Gateway", ns).and_then(|r| r.find(index)));
        }
        for rule in items(body, "/spec/rules") {
            for backend in items(rule, "/backendRefs") {
                add(object_ref(backend, "", "Service", ns).and_then(|r| r.find(index)));
            }
        }
    }
    if id.is(GATEWAY_GROUP, "Gateway") {
        if let Some(class) = str_at(body, "/spec/gatewayClassName") {
            add(index.find(GATEWAY_GROUP, "GatewayClass", None, class));
        }
        for listener in items(body, "/spec/listeners") {
            for cert in items(listener, "/tls/certificateRefs") {
                if let Some(r) = object_ref(cert, "", "Secret", ns) {
                    if r.group.is_empty() && r.kind == "Secret" {
                        add(index.find_tls_secret(r.namespace, r.name));
                    } else {
                        add(r.find(index));
                    }
                }
            }
        }
    }
    if id.is("networking.k8s.io", "Ingress") {
        for tls in items(body, "/spec/tls") {
            if let Some(secret) = str_at(tls, "/secretName") {
                add(index.find_tls_secret(ns, secret));
            }
        }
        let default = body.pointer("/spec/defaultBackend");
        let paths = items(body, "/spec/rules")
            .flat_map(|rule| items(rule, "/http/paths"))
            .filter_map(|path| path.get("backend"));
        for backend in default.into_iter().chain(paths) {
            if let Some(service) = str_at(backend, "/service/name") {
                add(index.find("", "Service", ns, service));
            }
        }
    }
    if id.is(CERT_MANAGER_GROUP, "Certificate")
        && let Some(issuer) = body.pointer("/spec/issuerRef")
    {
        let kind = str_at(issuer, "/kind").unwrap_or("Issuer");
        let group = str_at(issuer, "/group").unwrap_or(CERT_MANAGER_GROUP);
        if let Some(name) = str_at(issuer, "/name") {
            let scope = if kind == "ClusterIssuer" { None } else { ns };
            add(index.find(group, kind, scope, name));
        }
    }
    if group == RBAC_GROUP && (id.kind == "RoleBinding" || id.kind == "ClusterRoleBinding") {
        if let (Some(kind), Some(name)) =
            (str_at(body, "/roleRef/kind"), str_at(body, "/roleRef/name"))
        {
            let scope = if kind == "Role" { ns } else { None };
            add(index.find(RBAC_GROUP, kind, scope, name));
        }
        for subject in items(body, "/subjects") {
            if str_at(subject, "/kind") == Some("ServiceAccount")
                && let Some(name) = str_at(subject, "/name")
            {
                let scope = str_at(subject, "/namespace").or(ns);
                add(index.find("", "ServiceAccount", scope, name));
            }
        }
    }
    if id.is("", "ServiceAccount") {
        for secret in items(body, "/imagePullSecrets").filter_map(|s| str_at(s, "/name")) {
            add(index.find("", "Secret", ns, secret));
        }
    }
    found
        .into_iter()
        .filter(|dep| *dep != id)
        .cloned()
        .collect()
}

/// A Gateway-API style object reference (`group`, `kind`, `namespace`, `name`).
struct ObjectRef<'v> {
    group: &'v str,
    kind: &'v str,
    namespace: Option<&'v str>,
    name: &'v str,
}

impl ObjectRef<'_> {
    fn find<'a>(&self, index: &Index<'a>) -> Option<&'a ResourceId> {
        index.find(self.group, self.kind, self.namespace, self.name)
    }
}

fn object_ref<'v>(
    value: &'v Value,
    default_group: &'v str,
    default_kind: &'v str,
    default_namespace: Option<&'v str>,
) -> Option<ObjectRef<'v>> {
    Some(ObjectRef {
        group: str_at(value, "/group").unwrap_or(default_group),
        kind: str_at(value, "/kind").unwrap_or(default_kind),
        namespace: str_at(value, "/namespace").or(default_namespace),
        name: str_at(value, "/name")?,
    })
}

/// The pod spec of a workload (or of a Pod).
fn pod_spec<'v>(id: &ResourceId, body: &'v Value) -> Option<&'v Value> {
    match pod_template_pointer(id) {
        Some(template) => body.pointer(&format!("{template}/spec")),
        None if id.is("", "Pod") => body.get("spec"),
        None => None,
    }
}

/// JSON pointer of a workload's pod template.
fn pod_template_pointer(id: &ResourceId) -> Option<&'static str> {
    let apps = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"];
    if id.provider != ProviderName::KUBERNETES {
        None
    } else if (id.group() == "apps" && apps.contains(&id.kind.as_str())) || id.is("batch", "Job") {
        Some("/spec/template")
    } else if id.is("batch", "CronJob") {
        Some("/spec/jobTemplate/spec/template")
    } else {
        None
    }
}

/// Names a pod spec refers to.
#[derive(Default)]
struct PodRefs {
    /// ConfigMaps used by env, envFrom or volumes.
    config_maps: BTreeSet<String>,
    /// Secrets used by env, envFrom or volumes.
    secrets: BTreeSet<String>,
    /// imagePullSecrets (dependencies only; they do not change what pods see).
    pull_secrets: BTreeSet<String>,
    claims: BTreeSet<String>,
    service_account: Option<String>,
}

impl PodRefs {
    fn of(spec: &Value) -> PodRefs {
        let mut refs = PodRefs::default();
        let name = |v: &Value, ptr: &str| str_at(v, ptr).map(str::to_owned);
        for list in ["/containers", "/initContainers", "/ephemeralContainers"] {
            for container in items(spec, list) {
                for env in items(container, "/env") {
                    refs.config_maps
                        .extend(name(env, "/valueFrom/configMapKeyRef/name"));
                    refs.secrets
                        .extend(name(env, "/valueFrom/secretKeyRef/name"));
                }
                for from in items(container, "/envFrom") {
                    refs.config_maps.extend(name(from, "/configMapRef/name"));
                    refs.secrets.extend(name(from, "/secretRef/name"));
                }
            }
        }
        for volume in items(spec, "/volumes") {
            refs.config_maps.extend(name(volume, "/configMap/name"));
            refs.secrets.extend(name(volume, "/secret/secretName"));
            refs.claims
                .extend(name(volume, "/persistentVolumeClaim/claimName"));
            for source in items(volume, "/projected/sources") {
                refs.config_maps.extend(name(source, "/configMap/name"));
                refs.secrets.extend(name(source, "/secret/name"));
            }
        }
        for secret in items(spec, "/imagePullSecrets") {
            refs.pull_secrets.extend(name(secret, "/name"));
        }
        refs.service_account =
            name(spec, "/serviceAccountName").or_else(|| name(spec, "/serviceAccount"));
        refs
    }
}

// ---------------------------------------------------------------------------
// Stamping
// ---------------------------------------------------------------------------

/// The config hash of a workload: SHA-256 (first [`CONFIG_HASH_LEN`] hex chars) over
/// the canonical `data`, `binaryData` and `stringData` of every ConfigMap/Secret of
/// the graph its pod template uses (env, envFrom, volumes; not imagePullSecrets).
/// `None` when it uses none of the graph's ConfigMaps/Secrets.
fn config_hash(
    resource: &Resource,
    graph: &BTreeMap<ResourceId, Resource>,
    cache: &mut HashMap<ResourceId, String>,
) -> Option<String> {
    pod_template_pointer(&resource.id)?;
    let spec = pod_spec(&resource.id, &resource.body)?;
    let refs = PodRefs::of(spec);
    let ns = resource.id.namespace.as_deref();
    let mut used: BTreeSet<ResourceId> = BTreeSet::new();
    for name in &refs.config_maps {
        used.insert(ResourceId::kubernetes("v1", "ConfigMap", ns, name.as_str()));
    }
    for name in &refs.secrets {
        used.insert(ResourceId::kubernetes("v1", "Secret", ns, name.as_str()));
    }
    let mut input = String::new();
    let mut any = false;
    for id in used {
        let Some(config) = graph.get(&id) else {
            continue;
        };
        any = true;
        let content = cache.entry(id.clone()).or_insert_with(|| {
            let mut parts = Map::new();
            for field in ["data", "binaryData", "stringData"] {
                if let Some(v) = config.body.get(field) {
                    parts.insert(field.to_owned(), v.clone());
                }
            }
            canonical_json(&Value::Object(parts))
        });
        input.push_str(&id.kind);
        input.push('/');
        input.push_str(&id.name);
        input.push('\n');
        input.push_str(content);
        input.push('\n');
    }
    if !any {
        return None;
    }
    let mut hash = sha256_hex(input.as_bytes());
    hash.truncate(CONFIG_HASH_LEN);
    Some(hash)
}

/// The object at `path` under `value`, created (replacing `null`) when missing.
/// `None` when something on the way is neither an object nor absent/null.
fn object_at<'v>(value: &'v mut Value, path: &[&str]) -> Option<&'v mut Map<String, Value>> {
    let mut current = value;
    for key in path {
        let map = current.as_object_mut()?;
        let entry = map.entry((*key).to_owned()).or_insert(Value::Null);
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        current = entry;
    }
    current.as_object_mut()
}

fn stamp_labels(body: &mut Value, stack: &str) {
    if let Some(labels) = object_at(body, &["metadata", "labels"]) {
        labels.insert(MANAGED_BY_LABEL.to_owned(), Value::from(MANAGED_BY_VALUE));
        labels.insert(STACK_LABEL.to_owned(), Value::from(stack));
    }
}

fn stamp_config_hash(id: &ResourceId, body: &mut Value, hash: String) {
    let Some(template) = pod_template_pointer(id) else {
        return;
    };
    let mut path: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    path.extend(["metadata", "annotations"]);
    if let Some(annotations) = object_at(body, &path) {
        annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), Value::from(hash));
    }
}
