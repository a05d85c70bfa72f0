//! The desired graph: a stack's resources, stamped with ownership, with their
//! dependencies and a deterministic order. Pure: no IO.
//!
//! [`DesiredGraph::new`]
//! - rejects duplicate ids and explicit dependencies on ids outside the graph
//!   (every problem is reported, see [`GraphError::Multiple`]);
//! - asks each provider model's [`References`] hook for the stamps and implied
//!   dependencies of its resources; the built-in one, [`kubernetes`]
//!   (`graph/kubernetes.rs`, the only code here that knows Kubernetes kinds):
//! - stamps every Kubernetes body with [`MANAGED_BY_LABEL`](crate::resource::MANAGED_BY_LABEL) and [`STACK_LABEL`](crate::resource::STACK_LABEL), and
//!   the pod template of every workload that uses ConfigMaps/Secrets of the graph
//!   with [`CONFIG_HASH_ANNOTATION`](crate::resource::CONFIG_HASH_ANNOTATION): the first 16 hex characters of a SHA-256 over
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

use crate::resource::{Resource, ResourceId};
use crate::values::{Resolution, ValueFrom};

pub mod kubernetes;

/// What the graph asks of a provider's model: the dependencies its resources
/// imply by referring to others of the graph (a pod's ConfigMaps, a route's
/// Gateway), and the stamps it puts on their bodies (ownership labels, hashes
/// of the content they use). [`DesiredGraph::new`] uses the Kubernetes one
/// ([`kubernetes::KubernetesReferences`]); another provider's model can add
/// its own ([`DesiredGraph::with_references`]).
pub trait References {
    /// The implied dependencies of the resources of `resources` it knows
    /// (references to objects outside the graph are not dependencies), after
    /// stamping their bodies for `stack`. Called once per graph.
    fn infer(
        &self,
        stack: &str,
        resources: &mut BTreeMap<ResourceId, Resource>,
    ) -> BTreeMap<ResourceId, BTreeSet<ResourceId>>;
}

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
    /// Builds the graph of `stack`: validates ids and explicit dependencies,
    /// stamps ownership labels and config hashes, adds implied dependencies and
    /// orders it, with the built-in Kubernetes references
    /// ([`kubernetes::KubernetesReferences`]).
    // A one-shot call whose error names resources: the size of the error is irrelevant.
    #[allow(clippy::result_large_err)]
    pub fn new(stack: &str, resources: Vec<Resource>) -> Result<DesiredGraph, GraphError> {
        Self::with_references(stack, resources, &[&kubernetes::KubernetesReferences])
    }

    /// [`DesiredGraph::new`] with the given reference hooks (each infers the
    /// dependencies of, and stamps, the resources it knows), in order.
    #[allow(clippy::result_large_err)]
    pub fn with_references(
        stack: &str,
        resources: Vec<Resource>,
        references: &[&dyn References],
    ) -> Result<DesiredGraph, GraphError> {
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

        let mut dependencies: BTreeMap<ResourceId, BTreeSet<ResourceId>> = by_id
            .values()
            .map(|r| (r.id.clone(), r.depends_on.clone()))
            .collect();
        for hook in references {
            for (id, implied) in hook.infer(stack, &mut by_id) {
                if let Some(deps) = dependencies.get_mut(&id) {
                    deps.extend(implied.into_iter().filter(|dep| *dep != id));
                }
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

#[cfg(test)]
pub(crate) mod test_fixtures;

#[cfg(test)]
mod tests;
