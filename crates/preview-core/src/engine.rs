//! The engine: observe → plan → apply, with state recorded after every step.
//!
//! [`Engine::preview`] reads (GETs, and server-side dry-runs only where the
//! desired body changed or the live object drifted) and returns a pure
//! [`Plan`]. [`Engine::up`] validates first (no side effect on bad input), takes
//! the stack lock, plans, and executes the plan: independent steps run
//! concurrently (bounded), a step starts only when the steps it depends on have
//! finished and are ready, and a failed step skips its dependents. The state is
//! written when steps start (as pending operations) and when they finish, so an
//! interrupted run is detected and resumed. [`Engine::destroy`] is a plan
//! against an empty graph, followed by verification that nothing is left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::diff::{body_hash, projection_hash};
use crate::events::{Event, EventSink};
use crate::graph::DesiredGraph;
use crate::observe::{Observation, Observed};
use crate::plan::{Action, Plan, Step};
use crate::planner::{self, PlanOptions};
use crate::provider::{Provider, ProviderError, WaitOptions};
use crate::resource::{ProviderKind, Resource, ResourceId};
use crate::state::{
    Output, PendingOperation, ResourceRecord, StackState, StateBackend, StateError,
};
use crate::validate::{self, Policy, ValidationError};

/// Providers by kind.
#[derive(Clone, Default)]
pub struct Providers {
    /// Kubernetes.
    pub kubernetes: Option<Arc<dyn Provider>>,
    /// PostgreSQL databases.
    pub postgres: Option<Arc<dyn Provider>>,
}

impl Providers {
    fn get(&self, id: &ResourceId) -> Result<&Arc<dyn Provider>, ProviderError> {
        let p = match id.provider {
            ProviderKind::Kubernetes => &self.kubernetes,
            ProviderKind::Postgres => &self.postgres,
        };
        p.as_ref().ok_or_else(|| ProviderError::Other {
            id: id.clone(),
            message: match id.provider {
                ProviderKind::Postgres => "no PostgreSQL connection is configured for this run: set PREVIEW_POSTGRES_URL (or PREVIEW_POSTGRES_URL_FILE) to reach the database server".to_owned(),
                ProviderKind::Kubernetes => "no Kubernetes connection is configured for this run".to_owned(),
            },
        })
    }
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Steps running at once.
    pub concurrency: usize,
    /// Default readiness / deletion timeout per resource.
    pub timeout: Duration,
    /// How long a known failure may persist before the step fails.
    pub failure_grace: Duration,
    /// Take ownership of fields other managers hold.
    pub force_conflicts: bool,
    /// Remove finalizers of namespaces stuck Terminating during destroy.
    pub force_finalize: bool,
    /// Wait for readiness after each apply (off: dependents start as soon as the
    /// API server accepted their dependencies).
    pub wait: bool,
    /// How long to wait for another run's lock on the stack (zero: fail fast,
    /// naming the holder).
    pub lock_timeout: Duration,
    /// Static checks run before any side effect.
    pub policy: Policy,
    /// Planner options (import selection…).
    pub plan: PlanOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            concurrency: 8,
            timeout: Duration::from_secs(300),
            failure_grace: Duration::from_secs(30),
            force_conflicts: false,
            force_finalize: false,
            wait: true,
            lock_timeout: Duration::ZERO,
            policy: Policy::default(),
            plan: PlanOptions::default(),
        }
    }
}

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Static checks failed; nothing was applied.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The plan could not be made; nothing was applied.
    #[error(transparent)]
    Plan(#[from] planner::PlanError),
    /// The state backend failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Reading failed while observing.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Some steps failed; the state records what was done.
    #[error("{} step(s) failed ({} skipped, {} done):\n{}", failed.len(), skipped.len(), done, failed.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Apply {
        /// The failures, each naming its resource.
        failed: Vec<ProviderError>,
        /// Steps not started because a dependency failed.
        skipped: Vec<ResourceId>,
        /// Steps that completed.
        done: usize,
    },
    /// Destroy finished but objects remain.
    #[error("destroy left residue: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Residue(Vec<ResourceId>),
    /// Destroy refused: the stack has no state.
    #[error("stack {0} has no state in this backend; nothing to do")]
    NoState(String),
    /// The run was interrupted (SIGTERM / Ctrl-C). Steps that were in flight are
    /// recorded as pending and are resumed by the next run.
    #[error("interrupted: state saved with {0} step(s) in flight; the next run resumes them")]
    Cancelled(usize),
}

/// How a recorded resource drifted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftStatus {
    /// The object no longer exists.
    Missing,
    /// Fields the stack manages were changed by someone else.
    Changed,
}

/// One drifted resource, from [`Engine::refresh`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Resource.
    pub id: ResourceId,
    /// How it drifted.
    pub status: DriftStatus,
    /// Which fields, or what happened.
    pub detail: String,
}

impl Drift {
    /// `-` for missing, `~` for changed.
    pub fn kind_symbol(&self) -> &'static str {
        match self.status {
            DriftStatus::Missing => "-",
            DriftStatus::Changed => "~",
        }
    }
}

/// What `up` did.
#[derive(Clone, Debug)]
pub struct UpReport {
    /// The plan that was executed.
    pub plan: Plan,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
    /// Serial of the state after the run.
    pub serial: u64,
}

/// The engine for one stack backend and set of providers.
pub struct Engine {
    providers: Providers,
    backend: Arc<dyn StateBackend>,
    events: EventSink,
    options: EngineOptions,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Result of one step.
struct StepOutcome {
    id: ResourceId,
    action: Action,
    result: Result<Option<Value>, ProviderError>,
    elapsed: Duration,
}

impl Engine {
    /// An engine.
    pub fn new(
        providers: Providers,
        backend: Arc<dyn StateBackend>,
        events: EventSink,
        options: EngineOptions,
    ) -> Self {
        Engine {
            providers,
            backend,
            events,
            options,
            cancel: None,
        }
    }

    /// Makes runs stop when `cancel` turns true: in-flight steps are abandoned
    /// (they stay recorded as pending), the lock is released, and the run returns
    /// [`EngineError::Cancelled`].
    pub fn with_cancel(mut self, cancel: tokio::sync::watch::Receiver<bool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    async fn cancelled(&self) {
        match self.cancel.clone() {
            Some(mut rx) => {
                let _ = rx.wait_for(|c| *c).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Runs `work` under the stack lock; on cancellation abandons it, counts the
    /// steps left in flight, and still releases the lock.
    async fn locked<T>(
        &self,
        stack: &str,
        work: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let lock = crate::state::lock_with_timeout(
            self.backend.as_ref(),
            stack,
            self.options.lock_timeout,
        )
        .await?;
        let result = tokio::select! {
            r = work => r,
            () = self.cancelled() => {
                let pending = match self.backend.read(stack).await {
                    Ok(Some(state)) => state.pending.len(),
                    _ => 0,
                };
                Err(EngineError::Cancelled(pending))
            }
        };
        let released = lock.release().await;
        let value = result?;
        released?;
        Ok(value)
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The same engine with other options.
    pub fn with_options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Reads every recorded resource and reports drift from what was applied:
    /// objects deleted outside the engine, and objects whose managed fields changed.
    /// Changes nothing; the next `up` repairs what it reports.
    pub async fn refresh(&self, graph: &DesiredGraph) -> Result<Vec<Drift>, EngineError> {
        let state = self.read_state(graph.stack()).await?;
        let mut drift = Vec::new();
        for (id, record) in &state.resources {
            let Some(live) = self.providers.get(id)?.read(id).await? else {
                drift.push(Drift {
                    id: id.clone(),
                    status: DriftStatus::Missing,
                    detail: "deleted outside the engine; `up` recreates it".into(),
                });
                continue;
            };
            let Some(res) = graph.get(id) else { continue };
            if projection_hash(&live, &res.body) != record.live_hash {
                let projected =
                    crate::diff::project(&crate::diff::strip_server_fields(&live), &res.body);
                let changes = crate::diff::diff(&projected, &res.body, &|p| res.is_secret_path(p));
                let fields: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
                drift.push(Drift {
                    id: id.clone(),
                    status: DriftStatus::Changed,
                    detail: if fields.is_empty() {
                        "managed fields changed (normalised by the API server)".into()
                    } else {
                        format!("changed outside the engine: {}", fields.join(", "))
                    },
                });
            }
        }
        Ok(drift)
    }

    async fn read_state(&self, stack: &str) -> Result<StackState, EngineError> {
        Ok(self
            .backend
            .read(stack)
            .await?
            .unwrap_or_else(|| StackState::new(stack)))
    }

    /// Reads every desired or recorded resource; dry-runs only where needed.
    pub async fn observe(
        &self,
        graph: &DesiredGraph,
        state: &StackState,
    ) -> Result<Observed, EngineError> {
        let mut ids: BTreeSet<&ResourceId> = graph.order().iter().collect();
        ids.extend(state.resources.keys());
        ids.extend(state.pending.iter().map(|p| &p.id));
        self.events.emit(Event::Observing {
            resources: ids.len(),
        });
        let force = self.options.force_conflicts
            || !matches!(self.options.plan.import, planner::ImportSelection::None);
        let reads = futures::stream::iter(ids.into_iter().map(|id| async move {
            let provider = self.providers.get(id)?;
            let live = provider.read(id).await?;
            let dry_run = match graph.get(id) {
                Some(res)
                    if planner::needs_dry_run(res, state.resources.get(id), live.as_ref()) =>
                {
                    Some(provider.dry_run(res, force).await?)
                }
                _ => None,
            };
            Ok::<_, ProviderError>((id.clone(), Observation { live, dry_run }))
        }))
        .buffer_unordered(self.options.concurrency.max(1) * 2)
        .collect::<Vec<_>>()
        .await;
        let mut observed = Observed::new();
        for r in reads {
            let (id, obs) = r?;
            observed.insert(id, obs);
        }
        Ok(observed)
    }

    /// The static checks, before any side effect; every problem at once.
    fn validate(&self, graph: &DesiredGraph) -> Result<(), ValidationError> {
        let resources: Vec<Resource> = graph.resources().cloned().collect();
        validate::validate(&resources, &self.options.policy)
    }

    /// Plans without changing anything (no lock, no writes).
    pub async fn preview(&self, graph: &DesiredGraph) -> Result<Plan, EngineError> {
        self.validate(graph)?;
        let state = self.read_state(graph.stack()).await?;
        let observed = self.observe(graph, &state).await?;
        Ok(planner::plan(graph, &state, &observed, &self.options.plan)?)
    }

    /// Validates, locks, plans and applies; records `outputs` on success.
    pub async fn up(
        &self,
        graph: &DesiredGraph,
        outputs: BTreeMap<String, Output>,
    ) -> Result<UpReport, EngineError> {
        let start = Instant::now();
        self.validate(graph)?;
        self.locked(graph.stack(), self.up_locked(graph, outputs, start))
            .await
    }

    async fn up_locked(
        &self,
        graph: &DesiredGraph,
        outputs: BTreeMap<String, Output>,
        start: Instant,
    ) -> Result<UpReport, EngineError> {
        let mut state = self.read_state(graph.stack()).await?;
        if !state.pending.is_empty() {
            self.events.emit(Event::Warning {
                id: None,
                message: format!(
                    "the previous run was interrupted with {} step(s) in flight; resuming",
                    state.pending.len()
                ),
            });
        }
        let observed = self.observe(graph, &state).await?;
        let plan = planner::plan(graph, &state, &observed, &self.options.plan)?;
        let before = state.clone();
        self.refresh_no_op_records(graph, &plan, &observed, &mut state);
        self.execute(graph, &plan, &mut state).await?;
        state.outputs = outputs;
        state.pending.clear();
        if state_changed(&before, &state) {
            self.write(&mut state).await?;
        }
        Ok(UpReport {
            plan,
            elapsed: start.elapsed(),
            serial: state.serial,
        })
    }

    /// Deletes everything the stack recorded, waits until it is gone, and verifies
    /// that no object carrying the stack's label remains.
    pub async fn destroy(&self, stack: &str) -> Result<UpReport, EngineError> {
        let start = Instant::now();
        self.locked(stack, self.destroy_locked(stack, start)).await
    }

    async fn destroy_locked(&self, stack: &str, start: Instant) -> Result<UpReport, EngineError> {
        let Some(mut state) = self.backend.read(stack).await? else {
            return Err(EngineError::NoState(stack.to_owned()));
        };
        let graph = DesiredGraph::empty(stack);
        let observed = self.observe(&graph, &state).await?;
        let plan = planner::plan(&graph, &state, &observed, &self.options.plan)?;
        let kinds: Vec<ResourceId> = state.resources.keys().cloned().collect();
        self.execute(&graph, &plan, &mut state).await?;
        let residue = self.verify_gone(stack, &kinds).await?;
        if !residue.is_empty() {
            return Err(EngineError::Residue(residue));
        }
        state.outputs.clear();
        state.pending.clear();
        self.write(&mut state).await?;
        Ok(UpReport {
            plan,
            elapsed: start.elapsed(),
            serial: state.serial,
        })
    }

    /// Objects that still exist: recorded ones, and any carrying the stack label.
    async fn verify_gone(
        &self,
        stack: &str,
        recorded: &[ResourceId],
    ) -> Result<Vec<ResourceId>, EngineError> {
        let reads = futures::future::try_join_all(recorded.iter().map(|id| async move {
            let live = self.providers.get(id)?.read(id).await?;
            Ok::<_, ProviderError>(live.is_some().then(|| id.clone()))
        }))
        .await?;
        let mut residue: BTreeSet<ResourceId> = reads.into_iter().flatten().collect();
        for kind in [ProviderKind::Kubernetes, ProviderKind::Postgres] {
            let of_kind: Vec<ResourceId> = recorded
                .iter()
                .filter(|id| id.provider == kind)
                .cloned()
                .collect();
            if let Some(first) = of_kind.first() {
                residue.extend(
                    self.providers
                        .get(first)?
                        .list_owned(stack, &of_kind)
                        .await?,
                );
            }
        }
        Ok(residue.into_iter().collect())
    }

    /// Records fresh hashes for no-op resources whose record is missing or outdated
    /// (e.g. after a dry-run showed only server-side normalisation). No cluster writes.
    fn refresh_no_op_records(
        &self,
        graph: &DesiredGraph,
        plan: &Plan,
        observed: &Observed,
        state: &mut StackState,
    ) {
        for step in plan.steps.iter().filter(|s| s.action == Action::NoOp) {
            let (Some(res), Some(live)) = (
                graph.get(&step.id),
                observed.get(&step.id).and_then(|o| o.live.as_ref()),
            ) else {
                continue;
            };
            let record = record_for(graph, res, live, state.resources.get(&step.id));
            if state.resources.get(&step.id) != Some(&record) {
                state.resources.insert(step.id.clone(), record);
            }
        }
        state.pending.retain(|p| {
            !plan
                .steps
                .iter()
                .any(|s| s.id == p.id && s.action == Action::NoOp)
        });
    }

    async fn write(&self, state: &mut StackState) -> Result<(), EngineError> {
        state.serial += 1;
        if let Err(e) = self.backend.write(state).await {
            state.serial -= 1;
            return Err(e.into());
        }
        Ok(())
    }

    fn wait_options(&self, res: Option<&Resource>) -> WaitOptions {
        WaitOptions {
            timeout: res
                .and_then(|r| r.options.timeout)
                .unwrap_or(self.options.timeout),
            failure_grace: self.options.failure_grace,
            force_finalize: self.options.force_finalize,
        }
    }

    async fn ready_or_applied(
        &self,
        provider: &Arc<dyn Provider>,
        res: &Resource,
        applied: Value,
        opts: WaitOptions,
    ) -> Result<Option<Value>, ProviderError> {
        if !self.options.wait {
            return Ok(Some(applied));
        }
        let ready = provider.wait_ready(res, opts, &self.events).await?;
        Ok(Some(if ready.is_null() { applied } else { ready }))
    }

    async fn run_step(
        &self,
        graph: &DesiredGraph,
        step: &Step,
    ) -> Result<Option<Value>, ProviderError> {
        let provider = self.providers.get(&step.id)?;
        let res = graph.get(&step.id);
        let opts = self.wait_options(res);
        let desired = || {
            res.ok_or_else(|| ProviderError::Other {
                id: step.id.clone(),
                message: "plan step has no desired resource (engine bug)".into(),
            })
        };
        match step.action {
            Action::NoOp => Ok(None),
            Action::Create | Action::Update | Action::Import => {
                let res = desired()?;
                let force = self.options.force_conflicts || step.action == Action::Import;
                let applied = provider.apply(res, force).await?;
                self.ready_or_applied(provider, res, applied, opts).await
            }
            Action::Replace => {
                let res = desired()?;
                provider.delete(&step.id).await?;
                provider.wait_gone(&step.id, opts, &self.events).await?;
                let applied = provider.apply(res, self.options.force_conflicts).await?;
                self.ready_or_applied(provider, res, applied, opts).await
            }
            Action::Delete => {
                provider.delete(&step.id).await?;
                provider.wait_gone(&step.id, opts, &self.events).await?;
                Ok(None)
            }
        }
    }

    /// Executes the mutating steps of `plan`, recording state as steps start and finish.
    async fn execute(
        &self,
        graph: &DesiredGraph,
        plan: &Plan,
        state: &mut StackState,
    ) -> Result<(), EngineError> {
        let mut sched = Scheduler::new(&plan.steps);
        let mut failures: Vec<ProviderError> = Vec::new();
        let mut running = FuturesUnordered::new();
        let mut done = 0usize;
        loop {
            let room = self
                .options
                .concurrency
                .max(1)
                .saturating_sub(running.len());
            let newly = sched.take_ready(room);
            if !newly.is_empty() {
                for step in &newly {
                    state.pending.push(PendingOperation {
                        id: step.id.clone(),
                        action: step.action,
                    });
                }
                self.write(state).await?;
                for step in newly {
                    self.events.emit(Event::StepStarted {
                        id: step.id.clone(),
                        action: step.action,
                    });
                    running.push(async move {
                        let t = Instant::now();
                        let result = self.run_step(graph, step).await;
                        StepOutcome {
                            id: step.id.clone(),
                            action: step.action,
                            result,
                            elapsed: t.elapsed(),
                        }
                    });
                }
            }
            let Some(outcome) = running.next().await else {
                break;
            };
            state.pending.retain(|p| p.id != outcome.id);
            match outcome.result {
                Ok(live) => {
                    done += 1;
                    match (outcome.action, graph.get(&outcome.id), live) {
                        (Action::Delete, _, _) => {
                            state.resources.remove(&outcome.id);
                        }
                        (_, Some(res), Some(live)) => {
                            let mut record =
                                record_for(graph, res, &live, state.resources.get(&outcome.id));
                            record.imported |= outcome.action == Action::Import;
                            state.resources.insert(outcome.id.clone(), record);
                        }
                        _ => {}
                    }
                    self.events.emit(Event::StepDone {
                        id: outcome.id.clone(),
                        action: outcome.action,
                        elapsed: outcome.elapsed,
                    });
                    sched.finished(&outcome.id);
                }
                Err(e) => {
                    self.events.emit(Event::StepFailed {
                        id: outcome.id.clone(),
                        action: outcome.action,
                        error: e.to_string(),
                    });
                    sched.failed(&outcome.id);
                    failures.push(e);
                }
            }
            self.write(state).await?;
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Apply {
                failed: failures,
                skipped: sched.skipped,
                done,
            })
        }
    }
}

/// Which steps may start: a step starts once every step it comes `after` has
/// finished; a failed step's dependents (transitively) are skipped. Ids that are
/// not steps of the plan count as finished.
struct Scheduler<'p> {
    steps: &'p [Step],
    /// Unfinished prerequisites per step index.
    waiting_on: Vec<usize>,
    /// Step indexes that come after each step id.
    dependents: BTreeMap<&'p ResourceId, Vec<usize>>,
    /// Steps whose prerequisites are all finished, in plan order.
    ready: BTreeSet<usize>,
    skipped: Vec<ResourceId>,
}

impl<'p> Scheduler<'p> {
    fn new(steps: &'p [Step]) -> Self {
        let index: BTreeMap<&ResourceId, usize> =
            steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
        let mut waiting_on = vec![0; steps.len()];
        let mut dependents: BTreeMap<&ResourceId, Vec<usize>> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            for dep in &step.after {
                if let Some(&d) = index.get(dep)
                    && steps[d].action.is_mutating()
                {
                    waiting_on[i] += 1;
                    dependents.entry(&steps[d].id).or_default().push(i);
                }
            }
        }
        let ready = (0..steps.len())
            .filter(|&i| steps[i].action.is_mutating() && waiting_on[i] == 0)
            .collect();
        Scheduler {
            steps,
            waiting_on,
            dependents,
            ready,
            skipped: Vec::new(),
        }
    }

    fn take_ready(&mut self, room: usize) -> Vec<&'p Step> {
        let take: Vec<usize> = self.ready.iter().copied().take(room).collect();
        take.iter()
            .map(|i| {
                self.ready.remove(i);
                &self.steps[*i]
            })
            .collect()
    }

    fn finished(&mut self, id: &ResourceId) {
        for i in self.dependents.remove(id).unwrap_or_default() {
            self.waiting_on[i] -= 1;
            if self.waiting_on[i] == 0 {
                self.ready.insert(i);
            }
        }
    }

    fn failed(&mut self, id: &ResourceId) {
        let mut stack = self.dependents.remove(id).unwrap_or_default();
        while let Some(i) = stack.pop() {
            if self.waiting_on[i] == usize::MAX {
                continue;
            }
            self.waiting_on[i] = usize::MAX;
            self.skipped.push(self.steps[i].id.clone());
            stack.extend(
                self.dependents
                    .remove(&self.steps[i].id)
                    .unwrap_or_default(),
            );
        }
    }
}

fn record_for(
    graph: &DesiredGraph,
    res: &Resource,
    live: &Value,
    old: Option<&ResourceRecord>,
) -> ResourceRecord {
    ResourceRecord {
        id: res.id.clone(),
        depends_on: graph.dependencies(&res.id).iter().cloned().collect(),
        desired_hash: body_hash(&res.body),
        live_hash: projection_hash(live, &res.body),
        uid: live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        protect: res.options.protect,
        imported: old.is_some_and(|o| o.imported),
    }
}

fn state_changed(a: &StackState, b: &StackState) -> bool {
    a.resources != b.resources
        || a.outputs != b.outputs
        || a.pending != b.pending
        || a.serial != b.serial
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> ResourceId {
        ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), name)
    }

    fn step(name: &str, action: Action, after: &[&str]) -> Step {
        Step {
            id: id(name),
            action,
            reason: None,
            diff: Vec::new(),
            after: after.iter().map(|a| id(a)).collect(),
        }
    }

    #[test]
    fn scheduler_orders_by_dependencies_and_skips_dependents_of_failures() {
        let steps = vec![
            step("ns", Action::Create, &[]),
            step("noop", Action::NoOp, &[]),
            step("a", Action::Create, &["ns", "noop"]),
            step("b", Action::Create, &["a"]),
            step("c", Action::Create, &["b"]),
            step("d", Action::Create, &["ns"]),
        ];
        let mut s = Scheduler::new(&steps);
        let names = |v: Vec<&Step>| v.iter().map(|s| s.id.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(s.take_ready(8)), ["ns"]);
        assert!(s.take_ready(8).is_empty());
        s.finished(&id("ns"));
        assert_eq!(names(s.take_ready(1)), ["a"], "bounded by room");
        assert_eq!(names(s.take_ready(8)), ["d"]);
        s.failed(&id("a"));
        assert!(s.take_ready(8).is_empty());
        assert_eq!(s.skipped, vec![id("b"), id("c")]);
    }
}
