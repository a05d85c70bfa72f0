//! The desired graph: a stack's resources, stamped with ownership, with their
//! dependencies and a deterministic order. Pure: no IO.
//!
//! [`DesiredGraph::new`]
//! - rejects duplicate ids and explicit dependencies on ids outside the graph
//!   (every problem is reported, see [`GraphError::Multiple`]);
//! - stamps every Kubernetes body with [`MANAGED_BY_LABEL`] and [`STACK_LABEL`], and
//!   the pod template of every workload that uses ConfigMaps/Secrets of the graph
//!   with [`CONFIG_HASH_ANNOTATION`]: the first 16 hex characters of a SHA-256 over
//!   the canonical `data`, `binaryData` and `stringData` of those objects (referenced
//!   from env, envFrom or volumes of containers and initContainers), so a config
//!   change rolls the pods and nothing else does;
//! - adds implied dependencies (references to objects of the graph; references to
//!   objects outside the graph are ignored, they may exist outside the stack):
//!   - a namespaced object → its `Namespace`;
//!   - a pod spec (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)
//!     → the ConfigMaps, Secrets, PersistentVolumeClaims, ServiceAccount and
//!     imagePullSecrets it uses (containers, initContainers, ephemeralContainers,
//!     volumes, projected volumes);
//!   - Gateway API routes (`HTTPRoute`, `GRPCRoute`, `TLSRoute`, `TCPRoute`,
//!     `UDPRoute`) → `parentRefs` (default `Gateway` in the route's namespace) and
//!     `backendRefs` (default `Service`);
//!   - `Gateway` → its `GatewayClass` and the Secrets of `listeners[].tls.certificateRefs`
//!     (or, when that Secret is not in the graph, the cert-manager `Certificate` whose
//!     `spec.secretName` produces it);
//!   - `Ingress` → backend Services and TLS Secrets (or their Certificates);
//!   - cert-manager `Certificate` → `spec.issuerRef` (`Issuer` or `ClusterIssuer`);
//!   - `RoleBinding`/`ClusterRoleBinding` → `roleRef` and ServiceAccount subjects;
//!   - `ServiceAccount` → its imagePullSecrets;
//!   - any object whose group and kind a `CustomResourceDefinition` of the graph
//!     defines → that CRD.
//! - orders the resources with Kahn's algorithm, ties broken by [`ResourceId`]
//!   ordering, and reports a cycle with every member named ([`GraphError::Cycle`]).
//!
//! References are matched on group, kind, namespace and name, whatever the version.
//! The values a resource reads from another ([`crate::values`]) are attached by
//! the engine ([`DesiredGraph::with_values_from`], from the providers'
//! declarations); apply uses the graph with the values known at plan time set
//! ([`DesiredGraph::with_resolutions`]).
//! [`render_graph`] prints the graph as text for snapshot tests (like kapp's change
//! graph tests).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use crate::diff::{canonical_json, sha256_hex};
use crate::resource::{
    CONFIG_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ProviderName, Resource, ResourceId,
    STACK_LABEL,
};
use crate::values::{Resolution, ValueFrom};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
const CERT_MANAGER_GROUP: &str = "cert-manager.io";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const ROUTE_KINDS: [&str; 5] = ["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"];
/// Hex characters of the SHA-256 kept in [`CONFIG_HASH_ANNOTATION`].
const CONFIG_HASH_LEN: usize = 16;

static NO_IDS: BTreeSet<ResourceId> = BTreeSet::new();

/// Errors building a [`DesiredGraph`] or ordering edges.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Two resources share an id.
    #[error("{0} is declared more than once")]
    DuplicateId(ResourceId),
    /// An explicit dependency names a resource that is not in the graph.
    #[error("{from} depends on {to}, which is not part of the stack")]
    MissingDependency {
        /// The dependent resource.
        from: ResourceId,
        /// The missing dependency.
        to: ResourceId,
    },
    /// The dependencies form a cycle; each member depends on the next, the last on the first.
    #[error("dependency cycle: {}", cycle_text(.0))]
    Cycle(Vec<ResourceId>),
    /// Several problems (never nested).
    #[error("{} problems in the resource graph:\n{}", .0.len(), list_text(.0))]
    Multiple(Vec<GraphError>),
}

/// A value read from a resource of the stack that is not a dependency of the
/// reader (so it could be read before that resource is ready).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reader} reads {field} from {source_id}, which it does not depend on")]
pub struct ValueSourceError {
    /// The resource reading the value.
    pub reader: ResourceId,
    /// The reference, e.g. `dataFrom`.
    pub field: String,
    /// The source, part of the stack.
    pub source_id: ResourceId,
}

fn cycle_text(cycle: &[ResourceId]) -> String {
    let mut parts: Vec<String> = cycle.iter().map(ToString::to_string).collect();
    if let Some(first) = cycle.first() {
        parts.push(first.to_string());
    }
    parts.join(" → ")
}

fn list_text(errors: &[GraphError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl GraphError {
    fn from_many(mut errors: Vec<GraphError>) -> Option<GraphError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(GraphError::Multiple(errors)),
        }
    }
}

/// A stack's desired resources with dependencies and a deterministic order.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredGraph {
    stack: String,
    order: Vec<ResourceId>,
    resources: BTreeMap<ResourceId, Resource>,
    dependencies: BTreeMap<ResourceId, BTreeSet<ResourceId>>,
    dependents: BTreeMap<ResourceId, BTreeSet<ResourceId>>,
    /// Values read from other resources ([`crate::values`]), by reader.
    values_from: BTreeMap<ResourceId, Vec<ValueFrom>>,
}

impl DesiredGraph {
    /// Builds the graph of `stack`: validates ids and explicit dependencies, stamps
    /// ownership labels and config hashes, adds implied dependencies and orders it.
    // A one-shot call whose error names resources: the size of the error is irrelevant.
    #[allow(clippy::result_large_err)]
    pub fn new(stack: &str, resources: Vec<Resource>) -> Result<DesiredGraph, GraphError> {
        let mut errors = Vec::new();
        let mut by_id: BTreeMap<ResourceId, Resource> = BTreeMap::new();
        for resource in resources {
            if by_id.contains_key(&resource.id) {
                errors.push(GraphError::DuplicateId(resource.id.clone()));
            } else {
                by_id.insert(resource.id.clone(), resource);
            }
        }
        for resource in by_id.values() {
            for to in &resource.depends_on {
                if !by_id.contains_key(to) {
                    errors.push(GraphError::MissingDependency {
                        from: resource.id.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
        if let Some(error) = GraphError::from_many(errors) {
            return Err(error);
        }

        let index = Index::new(&by_id);
        let mut config_cache: HashMap<ResourceId, String> = HashMap::new();
        let mut dependencies = BTreeMap::new();
        let mut hashes: Vec<(ResourceId, String)> = Vec::new();
        for resource in by_id.values() {
            let mut deps = resource.depends_on.clone();
            if resource.id.provider == ProviderName::KUBERNETES {
                deps.extend(implied_dependencies(&resource.id, &resource.body, &index));
                if let Some(hash) = config_hash(resource, &by_id, &mut config_cache) {
                    hashes.push((resource.id.clone(), hash));
                }
            }
            dependencies.insert(resource.id.clone(), deps);
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

        let order = topological_order(&dependencies)?;
        let mut dependents: BTreeMap<ResourceId, BTreeSet<ResourceId>> = BTreeMap::new();
        for (id, deps) in &dependencies {
            for dep in deps {
                dependents
                    .entry(dep.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
        Ok(DesiredGraph {
            stack: stack.to_owned(),
            order,
            resources: by_id,
            dependencies,
            dependents,
            values_from: BTreeMap::new(),
        })
    }

    /// The graph with the values its resources read from other resources
    /// ([`crate::values`], as the providers declare them), replacing any
    /// declared before. A source that is part of the graph must be a dependency
    /// of the reader; every such problem is reported.
    pub fn with_values_from(
        mut self,
        values: BTreeMap<ResourceId, Vec<ValueFrom>>,
    ) -> Result<DesiredGraph, Vec<ValueSourceError>> {
        let mut errors = Vec::new();
        for (id, froms) in &values {
            for from in froms {
                if self.contains(&from.source) && !self.dependencies(id).contains(&from.source) {
                    errors.push(ValueSourceError {
                        reader: id.clone(),
                        field: crate::values::dotted(&from.reference),
                        source_id: from.source.clone(),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.values_from = values.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        Ok(self)
    }

    /// The values `id` reads from other resources (empty for most).
    pub fn values_from(&self, id: &ResourceId) -> &[ValueFrom] {
        self.values_from.get(id).map_or(&[], Vec::as_slice)
    }

    /// True when some resource reads a value from another.
    pub fn reads_values(&self) -> bool {
        !self.values_from.is_empty()
    }

    /// The graph as apply uses it: the resources whose values are all known
    /// replaced by their resolved bodies (and reading nothing any more); the
    /// others keep their references, resolved when they are applied.
    pub fn with_resolutions(&self, resolutions: &BTreeMap<ResourceId, Resolution>) -> DesiredGraph {
        let mut graph = self.clone();
        for (id, resolution) in resolutions {
            let (Some(res), Resolution::Known(resolved)) =
                (graph.resources.get_mut(id), resolution)
            else {
                continue;
            };
            res.body = resolved.body.clone();
            graph.values_from.remove(id);
        }
        graph
    }

    /// A graph with no resources (what `destroy` plans against).
    pub fn empty(stack: &str) -> DesiredGraph {
        DesiredGraph {
            stack: stack.to_owned(),
            order: Vec::new(),
            resources: BTreeMap::new(),
            dependencies: BTreeMap::new(),
            dependents: BTreeMap::new(),
            values_from: BTreeMap::new(),
        }
    }

    /// The stack name.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// Ids in dependency order (dependencies first).
    pub fn order(&self) -> &[ResourceId] {
        &self.order
    }

    /// The (stamped) resource with this id.
    pub fn get(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.get(id)
    }

    /// True when the graph holds `id`.
    pub fn contains(&self, id: &ResourceId) -> bool {
        self.resources.contains_key(id)
    }

    /// Resources in dependency order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> + '_ {
        self.order.iter().filter_map(|id| self.resources.get(id))
    }

    /// What `id` depends on (explicit and implied); empty for unknown ids.
    pub fn dependencies(&self, id: &ResourceId) -> &BTreeSet<ResourceId> {
        self.dependencies.get(id).unwrap_or(&NO_IDS)
    }

    /// What depends on `id`; empty for unknown ids.
    pub fn dependents(&self, id: &ResourceId) -> &BTreeSet<ResourceId> {
        self.dependents.get(id).unwrap_or(&NO_IDS)
    }

    /// Every resource's dependencies.
    pub fn edges(&self) -> &BTreeMap<ResourceId, BTreeSet<ResourceId>> {
        &self.dependencies
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when the graph has no resources.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Orders the keys of `edges` (each key → the ids it depends on) so that every id
/// comes after its dependencies; ties are broken by [`ResourceId`] ordering (Kahn's
/// algorithm with an ordered ready set). Dependencies that are not keys are ignored.
/// O((V + E) log V).
#[allow(clippy::result_large_err)] // one call per plan; the error names resources
pub fn topological_order(
    edges: &BTreeMap<ResourceId, BTreeSet<ResourceId>>,
) -> Result<Vec<ResourceId>, GraphError> {
    let mut waiting: HashMap<&ResourceId, usize> = HashMap::with_capacity(edges.len());
    let mut dependents: HashMap<&ResourceId, Vec<&ResourceId>> = HashMap::new();
    let mut ready: BTreeSet<&ResourceId> = BTreeSet::new();
    for (id, deps) in edges {
        let mut count = 0;
        for dep in deps.iter().filter(|d| edges.contains_key(*d)) {
            count += 1;
            dependents.entry(dep).or_default().push(id);
        }
        if count == 0 {
            ready.insert(id);
        }
        waiting.insert(id, count);
    }
    let mut order = Vec::with_capacity(edges.len());
    while let Some(id) = ready.pop_first() {
        order.push(id.clone());
        for dependent in dependents.get(id).into_iter().flatten() {
            if let Some(count) = waiting.get_mut(dependent) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if order.len() == edges.len() {
        return Ok(order);
    }
    let remaining: BTreeSet<&ResourceId> = waiting
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(id, _)| id)
        .collect();
    Err(GraphError::Cycle(find_cycle(edges, &remaining)))
}

/// A cycle among `remaining` (ids Kahn's algorithm could not order: each has a
/// dependency among them). Deterministic: starts at the smallest id, follows the
/// smallest remaining dependency, and is rotated to start at its smallest member.
fn find_cycle(
    edges: &BTreeMap<ResourceId, BTreeSet<ResourceId>>,
    remaining: &BTreeSet<&ResourceId>,
) -> Vec<ResourceId> {
    let mut path: Vec<&ResourceId> = Vec::new();
    let mut position: HashMap<&ResourceId, usize> = HashMap::new();
    let mut current = remaining.first().copied();
    while let Some(id) = current {
        if let Some(&start) = position.get(id) {
            let cycle = &path[start..];
            let min_at = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, id)| **id)
                .map_or(0, |(i, _)| i);
            return cycle[min_at..]
                .iter()
                .chain(&cycle[..min_at])
                .map(|id| (*id).clone())
                .collect();
        }
        position.insert(id, path.len());
        path.push(id);
        current = edges
            .get(id)
            .and_then(|deps| deps.iter().find(|d| remaining.contains(d)));
    }
    // Unreachable for a real cycle; report what could not be ordered.
    remaining.iter().map(|id| (*id).clone()).collect()
}

/// Text dump of a graph, one line per resource in order: `id <- dep, dep`.
pub fn render_graph(graph: &DesiredGraph) -> String {
    let mut out = String::new();
    for id in graph.order() {
        out.push_str(&id.to_string());
        let deps = graph.dependencies(id);
        if !deps.is_empty() {
            out.push_str(" <- ");
            let names: Vec<String> = deps.iter().map(ToString::to_string).collect();
            out.push_str(&names.join(", "));
        }
        out.push('\n');
    }
    out
}

impl fmt::Display for DesiredGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_graph(self))
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

#[cfg(test)]
pub(crate) mod test_fixtures;

#[cfg(test)]
mod tests;
