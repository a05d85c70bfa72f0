//! The engine's side of values read from other resources ([`crate::values`]):
//! the providers' declarations attached to the graph, the dry-runs of resolved
//! bodies before planning, and the values read at apply time from the sources'
//! ready objects.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use serde_json::Value;

use super::{Engine, EngineError, READS_IN_FLIGHT};
use crate::graph::DesiredGraph;
use crate::observe::Observed;
use crate::planner::{self, PlanError, PlanProblem, ProblemKind};
use crate::provider::ProviderError;
use crate::resource::{Resource, ResourceId};
use crate::state::StackState;
use crate::state::auth::RecordHasher;
use crate::values::{self, Resolution, ValueFrom};

impl Engine {
    /// `graph` with the values its resources read from others, as their
    /// providers declare them ([`crate::provider::Provider::values_from`]);
    /// borrowed as it is when none reads any.
    pub(super) fn declare_values<'g>(
        &self,
        graph: &'g DesiredGraph,
    ) -> Result<Cow<'g, DesiredGraph>, EngineError> {
        let mut declared: BTreeMap<ResourceId, Vec<ValueFrom>> = BTreeMap::new();
        for res in graph.resources() {
            let froms = self.providers.for_resource(&res.id)?.values_from(res)?;
            if !froms.is_empty() {
                declared.insert(res.id.clone(), froms);
            }
        }
        if declared.is_empty() {
            return Ok(Cow::Borrowed(graph));
        }
        // A reader whose source is not a dependency is a plan problem.
        let graph = graph.clone().with_values_from(declared).map_err(|errors| {
            let problems = errors
                .into_iter()
                .map(|error| PlanProblem {
                    id: error.reader.clone(),
                    kind: ProblemKind::ValueSource,
                    message: error.to_string(),
                })
                .collect();
            EngineError::Plan(PlanError::Problems(problems))
        })?;
        Ok(Cow::Owned(graph))
    }

    /// The sources of values that are not part of the stack: the engine reads
    /// them like the stack's resources.
    pub(super) fn outside_sources(graph: &DesiredGraph) -> BTreeSet<&ResourceId> {
        graph
            .resources()
            .flat_map(|res| graph.values_from(&res.id))
            .map(|from| &from.source)
            .filter(|source| !graph.contains(source))
            .collect()
    }

    /// After the first reads: dry-runs of the resolved bodies of the resources
    /// that read values, where the planner needs them (each at most once;
    /// repeated while resolving one makes another's values known).
    pub(super) async fn observe_resolved(
        &self,
        graph: &DesiredGraph,
        state: &StackState,
        hasher: &RecordHasher,
        observed: &mut Observed,
        force: bool,
    ) -> Result<(), EngineError> {
        let mut tried: BTreeSet<ResourceId> = BTreeSet::new();
        loop {
            let resolutions =
                planner::resolve_values(graph, state, observed, hasher, &self.options.plan);
            let wanted: Vec<Resource> = resolutions
                .into_iter()
                .filter_map(|(id, resolution)| match resolution {
                    Resolution::Known(resolved) => Some((id, resolved)),
                    Resolution::Unknown { .. } => None,
                })
                .filter(|(id, resolved)| {
                    let Some(unresolved) = graph.get(id) else {
                        return false;
                    };
                    let live = observed.get(id).and_then(|o| o.live.as_ref());
                    let needed = match live {
                        Some(_) => planner::needs_dry_run_resolved(
                            unresolved,
                            resolved,
                            state.resources.get(id),
                            live,
                            hasher,
                        ),
                        None => self.creatable(graph, observed, id),
                    };
                    needed && !tried.contains(id)
                })
                .map(|(_, resolved)| resolved)
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            tried.extend(wanted.iter().map(|r| r.id.clone()));
            let seen: &Observed = observed;
            let results = futures::stream::iter(wanted.iter().map(|res| async move {
                let provider = self.providers.for_resource(&res.id)?;
                let live_absent = seen.get(&res.id).is_none_or(|o| o.live.is_none());
                match provider.dry_run(res, force).await {
                    Ok(dry_run) => Ok(Some((res.id.clone(), dry_run))),
                    // Like any create's: a create a dry-run cannot validate is
                    // reported by its apply.
                    Err(e) if live_absent => {
                        tracing::debug!(id = %res.id, error = %e, "create not validated by a dry-run");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }))
            .buffer_unordered(READS_IN_FLIGHT.max(self.options.concurrency * 2))
            .collect::<Vec<Result<_, ProviderError>>>()
            .await;
            for result in results {
                if let Some((id, dry_run)) = result?
                    && let Some(observation) = observed.get_mut(&id)
                {
                    observation.dry_run = Some(dry_run);
                }
            }
        }
    }

    /// `res` with the values it reads set, read from `ready` (the sources this
    /// run applied, as their wait returned them) or else from the sources' live
    /// objects now; `res` itself when it reads none. The error names the
    /// reference, the source and the path.
    pub(super) async fn resolve_now<'r>(
        &self,
        graph: &DesiredGraph,
        res: &'r Resource,
        ready: &BTreeMap<ResourceId, Value>,
    ) -> Result<Cow<'r, Resource>, ProviderError> {
        let froms = graph.values_from(&res.id);
        if froms.is_empty() {
            return Ok(Cow::Borrowed(res));
        }
        let failed = |message: String| ProviderError::Other {
            id: res.id.clone(),
            message,
        };
        let mut known = Vec::with_capacity(froms.len());
        for from in froms {
            let live = match ready.get(&from.source) {
                Some(live) => live.clone(),
                None => self
                    .providers
                    .for_resource(&from.source)?
                    .read(&from.source)
                    .await
                    .map_err(|e| {
                        ProviderError::failed(
                            &res.id,
                            format!("field {}", values::dotted(&from.reference)),
                            e,
                        )
                    })?
                    .ok_or_else(|| failed(from.missing_source()))?,
            };
            let value = from.read(&live).map_err(failed)?;
            known.push((from, value));
        }
        Ok(Cow::Owned(values::resolved(res, &known)))
    }
}
