//! The engine: observe → plan → apply, with state recorded after every step.
//!
//! [`Engine::preview`] reads (GETs, and server-side dry-runs only where the
//! desired body changed or the live object drifted) and returns a pure
//! [`Plan`]. [`Engine::up`] validates first (no side effect on bad input), takes
//! the stack lock, plans, and executes the plan: independent steps run
//! concurrently (bounded), a step starts only when the steps it depends on have
//! finished and are ready, and a failed step skips its dependents. The plan's
//! steps are written to the state as pending operations before the first one
//! starts, and each finished step's record is written while the others run
//! (writes are batched, one in flight at a time), so an interrupted run is
//! detected and resumed; a run that changes nothing writes nothing.
//! Cancellation saves what finished and leaves the steps in flight pending.
//! [`Engine::destroy`] is a plan against an empty graph, followed by
//! verification that nothing is left. [`Engine::preview_with_basis`] also
//! returns what the plan was made from ([`crate::saved::Basis`]), for a saved
//! plan; with [`Engine::with_plan_guard`], `up` checks the plan it makes under
//! the lock against a saved one before its first write
//! ([`EngineError::PlanMoved`] otherwise), and a stack's first state takes the
//! saved plan's lineage.
//!
//! Recorded hashes are made with the stack's [`RecordHasher`] (keyed for bodies
//! holding secrets; from the backend's codec). A delete the planner refused
//! ([`Action::Refuse`]: the live object lacks the stack's label, or has another
//! uid than recorded) is reported as a warning when the run starts; the run does
//! everything else, keeps the refused records, and then fails with
//! [`EngineError::Refused`]. Deletes are sent only for the object the planner
//! checked ([`DeleteTarget`]).
//!
//! Outputs: `up` records the outputs it is given together with the ones the
//! providers compute from the ready resources ([`Provider::outputs`], e.g. a
//! cluster's endpoint and kubeconfig), sealing secret ones with the stack's data
//! key ([`EngineOptions::sealer`]; a run with a resource that has secret outputs
//! and no sealer is refused before anything is sent, [`EngineError::NoSealer`]).
//!
//! Four parts live in their own files: `engine/recorder.rs` (the run's state and
//! its group-committed writes), `engine/scheduler.rs` (which steps may start),
//! `engine/outputs.rs` (the outputs an `up` records) and `engine/leftover.rs`
//! (what a destroy could not remove, and what holds it).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::events::{Event, EventSink};
use crate::graph::DesiredGraph;
use crate::observe::{Observation, Observed};
use crate::plan::{Action, DeleteTarget, Plan, Step};
use crate::planner::{self, PlanOptions};
use crate::provider::{Provider, ProviderError, WaitOptions};
use crate::resource::{ProviderName, Resource, ResourceId};
use crate::saved::{self, Basis};
use crate::state::auth::RecordHasher;
use crate::state::{
    Output, PendingOperation, ResourceRecord, StackState, StateBackend, StateError,
};
use crate::validate::{self, Policy, ValidationError};

pub mod leftover;
mod outputs;
mod recorder;
mod scheduler;
mod values;

pub use leftover::Leftover;

use recorder::Recorder;
use scheduler::Scheduler;

/// The providers of a run, by name: the engine sends every resource to the
/// provider its [`ResourceId::provider`] names. The set is open: a program
/// registers its own next to (or instead of) the built-in ones.
///
/// ```
/// use preview_core::engine::Providers;
/// use preview_core::ProviderName;
///
/// let providers = Providers::new().explain_missing(
///     ProviderName::POSTGRES,
///     "set DATABASE_URL to reach the database server",
/// );
/// assert!(providers.get(&ProviderName::POSTGRES).is_none());
/// ```
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<ProviderName, Arc<dyn Provider>>,
    /// Why a provider may be missing and how to configure it (from the program
    /// that wires the providers: the core does not know its flags or variables).
    missing_help: BTreeMap<ProviderName, String>,
}

impl Providers {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` under `name`, replacing (and returning) any other.
    pub fn register(
        &mut self,
        name: ProviderName,
        provider: Arc<dyn Provider>,
    ) -> Option<Arc<dyn Provider>> {
        self.by_name.insert(name, provider)
    }

    /// [`Providers::register`], builder style.
    pub fn with(mut self, name: ProviderName, provider: Arc<dyn Provider>) -> Self {
        self.register(name, provider);
        self
    }

    /// [`Providers::with`] when `provider` is `Some`.
    pub fn with_optional(self, name: ProviderName, provider: Option<Arc<dyn Provider>>) -> Self {
        match provider {
            Some(p) => self.with(name, p),
            None => self,
        }
    }

    /// What to tell the user when a resource of provider `name` comes up and
    /// no such provider is registered (for example which setting configures it).
    pub fn explain_missing(mut self, name: ProviderName, help: impl Into<String>) -> Self {
        self.missing_help.insert(name, help.into());
        self
    }

    /// The provider registered under `name`.
    pub fn get(&self, name: &ProviderName) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// The names of the registered providers.
    pub fn names(&self) -> impl Iterator<Item = &ProviderName> {
        self.by_name.keys()
    }

    fn for_resource(&self, id: &ResourceId) -> Result<&Arc<dyn Provider>, ProviderError> {
        self.get(&id.provider).ok_or_else(|| {
            let mut message = format!("no {} provider is configured for this run", id.provider);
            if let Some(help) = self.missing_help.get(&id.provider) {
                message.push_str(": ");
                message.push_str(help);
            }
            ProviderError::Other {
                id: id.clone(),
                message,
            }
        })
    }
}

/// Reads (GETs, dry-runs) in flight at once while observing. Reads change
/// nothing and share one HTTP/2 connection, so a ~20-resource stack is read in
/// one round rather than in two or three.
const READS_IN_FLIGHT: usize = 32;

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
    /// Destroy: remove the finalizers of namespaces stuck Terminating, and of the
    /// stack's own objects whose deletion they hold (never a foreign object's).
    pub force_finalize: bool,
    /// Keep the stack's state after a verified destroy (emptied: no resources,
    /// outputs or pending steps). Off: a verified destroy removes the state
    /// (the backend's other records, such as tested images, stay).
    pub keep_state: bool,
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
    /// Seals the secret outputs providers compute ([`Provider::outputs`]) with
    /// the stack's data key. `None`: an `up` of a stack with such a resource is
    /// refused before anything is sent ([`EngineError::NoSealer`]).
    pub sealer: Option<crate::state::crypto::StackSealer>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            concurrency: 8,
            timeout: Duration::from_secs(300),
            failure_grace: Duration::from_secs(30),
            force_conflicts: false,
            force_finalize: false,
            keep_state: false,
            wait: true,
            lock_timeout: Duration::ZERO,
            policy: Policy::default(),
            plan: PlanOptions::default(),
            sealer: None,
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
    #[error("destroy left residue: {}", leftover::list(.0))]
    Residue(Vec<Leftover>),
    /// Destroy steps failed; the state records what was deleted, and `left` is
    /// what the verification found afterwards (what holds each object, if anything).
    #[error("{failed}{}", residue_note(left))]
    DestroyIncomplete {
        /// The failure ([`EngineError::Apply`]).
        failed: Box<EngineError>,
        /// Objects of the stack still present.
        left: Vec<Leftover>,
    },
    /// The run did everything else, but refused to delete recorded objects the
    /// stack cannot prove it owns; they were left in place and stay recorded.
    #[error("refused to delete {} recorded object(s) that fail the ownership checks; they were left untouched and stay recorded:\n{}\nInspect each: if it is the stack's own, restore its label (preview-envs.io/stack) and run again; if not, its record is wrong (an edited state?){}{}", refused.len(), refused.iter().map(|(id, why)| format!("  - {id}: {why}")).collect::<Vec<_>>().join("\n"), crate::remedy::suffix(": ", &crate::remedy::Remedy::ForgetRefusedRecords), residue_note(residue))]
    Refused {
        /// Each refused object and why.
        refused: Vec<(ResourceId, String)>,
        /// Destroy only: other objects carrying the stack's label that remain.
        residue: Vec<Leftover>,
    },
    /// `up` of a saved plan refused: the plan made now is not the saved one
    /// ([`crate::saved::compare`]); nothing was written.
    #[error("{0}")]
    PlanMoved(String),
    /// Destroy refused: the stack has no state.
    #[error("stack {0} has no state in this backend; nothing to do")]
    NoState(String),
    /// `up` refused before anything was sent: the resource's provider computes
    /// secret outputs and the engine has no sealer ([`EngineOptions::sealer`]).
    #[error(
        "{0} has secret outputs, and this run has no sealer to seal them in the stack's state; nothing was changed"
    )]
    NoSealer(ResourceId),
    /// Every step succeeded and is recorded, but a provider failed to compute
    /// the outputs of its resource; the stack's outputs stay as they were.
    #[error("{0}; the changes are recorded, the stack's outputs are as before")]
    Outputs(#[source] ProviderError),
    /// The run was interrupted (SIGTERM / Ctrl-C). Steps that were in flight are
    /// recorded as pending and are resumed by the next run.
    #[error("interrupted: state saved with {0} step(s) in flight; the next run resumes them")]
    Cancelled(usize),
}

fn residue_note(residue: &[Leftover]) -> String {
    if residue.is_empty() {
        String::new()
    } else {
        format!(
            "\nAlso left (carrying the stack's label): {}",
            leftover::list(residue)
        )
    }
}

impl EngineError {
    /// What a failed destroy left, as far as it could tell (empty for other errors).
    pub fn leftovers(&self) -> &[Leftover] {
        match self {
            EngineError::Residue(left)
            | EngineError::DestroyIncomplete { left, .. }
            | EngineError::Refused { residue: left, .. } => left,
            _ => &[],
        }
    }
}

/// Records what a destroy left and did not record as pending deletes, so the
/// next destroy deletes them again (the planner deletes a pending object that
/// carries the stack's label) and verifies their kinds.
async fn remember_leftovers(rec: &mut Recorder, left: &[Leftover]) -> Result<(), EngineError> {
    let mut added = false;
    for l in left {
        if !rec.state.resources.contains_key(&l.id)
            && !rec.state.pending.iter().any(|p| p.id == l.id)
        {
            rec.state.pending.push(PendingOperation {
                id: l.id.clone(),
                action: Action::Delete,
            });
            added = true;
        }
    }
    if added {
        rec.touch();
        rec.flush().await?;
    }
    Ok(())
}

/// The refused steps of `plan` with their reasons.
fn refusals(plan: &Plan) -> Vec<(ResourceId, String)> {
    plan.refused_steps()
        .map(|s| (s.id.clone(), s.reason.clone().unwrap_or_default()))
        .collect()
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
    /// Lineage of the stack's state.
    pub lineage: String,
    /// The stack's outputs after the run (secret ones sealed): for `up`, the
    /// ones given and the ones providers computed.
    pub outputs: BTreeMap<String, Output>,
    /// The outputs providers computed anew in this run (not kept from the
    /// state), by name.
    pub computed: BTreeSet<String>,
}

/// [`PlanGuard::check`]: given the plan made now and its basis; an `Err`
/// (naming what moved) refuses the run.
pub type PlanCheck = Box<dyn Fn(&Plan, &Basis) -> Result<(), String> + Send + Sync>;

/// The check an `up` of a saved plan runs on the plan it made, under the
/// stack lock and before the first write ([`Engine::with_plan_guard`]).
pub struct PlanGuard {
    /// The lineage to create the stack's first state with (the saved plan's),
    /// so that a plan made before the stack had a state applies with the same
    /// keys for the hashes of secret bodies.
    pub lineage: String,
    /// Given the plan made now and its basis; an `Err` (naming what moved)
    /// refuses the run.
    pub check: PlanCheck,
}

/// The engine for one stack backend and set of providers.
///
/// Wired from the [`Providers`] its resources need, a state backend, an event
/// sink (progress) and [`EngineOptions`]; then [`Engine::preview`],
/// [`Engine::up`] and [`Engine::destroy`] take a stack's [`DesiredGraph`] (or
/// its name). A stack with no resources needs no provider, which keeps this
/// example self-contained: the outputs are recorded in the state, a second
/// `up` writes nothing, and `destroy` removes the state. For resources, see
/// `examples/local_files.rs` (a provider of one's own) and
/// `examples/custom_stack.rs` (Kubernetes objects, through `stacks_cli::Driver`).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
///
/// use preview_core::engine::{Engine, EngineOptions, Providers};
/// use preview_core::events::EventSink;
/// use preview_core::graph::DesiredGraph;
/// use preview_core::state::file::FileBackend;
/// use preview_core::state::{Output, StateBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let backend = Arc::new(FileBackend::new(dir.path()));
/// let engine = Engine::new(
///     Providers::new(),
///     backend.clone(),
///     EventSink::none(),
///     EngineOptions::default(),
/// );
/// let graph = DesiredGraph::new("demo", Vec::new())?;
/// assert!(engine.preview(&graph).await?.is_empty());
///
/// let outputs = BTreeMap::from([("greeting".to_owned(), Output::Plain("hello".into()))]);
/// let first = engine.up(&graph, outputs.clone()).await?;
/// assert_eq!(first.outputs["greeting"], Output::Plain("hello".into()));
/// let recorded = backend.read("demo").await?.expect("state");
/// assert_eq!(recorded.outputs, outputs);
///
/// let again = engine.up(&graph, outputs).await?;
/// assert_eq!(again.serial, first.serial, "nothing changed, nothing written");
///
/// engine.destroy("demo").await?;
/// assert!(backend.read("demo").await?.is_none(), "a verified destroy removes the state");
/// # Ok(())
/// # }
/// ```
pub struct Engine {
    providers: Providers,
    backend: Arc<dyn StateBackend>,
    events: EventSink,
    options: EngineOptions,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
    guard: Option<PlanGuard>,
    data_key: Option<crate::state::crypto::Encryption>,
}

/// Result of one step.
struct StepOutcome {
    id: ResourceId,
    action: Action,
    result: Result<Option<Value>, ProviderError>,
    /// The body applied, when its values were read at apply time (else the
    /// graph's).
    applied: Option<Resource>,
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
            guard: None,
            data_key: None,
        }
    }

    /// Makes `up` apply only the plan `guard` accepts: after planning, under
    /// the stack lock, before any write; a refusal is
    /// [`EngineError::PlanMoved`].
    pub fn with_plan_guard(mut self, guard: PlanGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Records `key` as the stack's wrapped data key when its state has none
    /// yet: the caller sealed secret outputs of this run with it
    /// ([`crate::state::crypto::Sealer::open_or_init`] on a copy of the state).
    /// A run whose state meanwhile got another key fails before any step, as
    /// its sealed outputs could not be opened.
    pub fn with_data_key(mut self, key: Option<crate::state::crypto::Encryption>) -> Self {
        self.data_key = key;
        self
    }

    /// Makes runs stop when `cancel` turns true: in-flight steps are abandoned
    /// (they stay recorded as pending), the lock is released, and the run returns
    /// [`EngineError::Cancelled`].
    pub fn with_cancel(mut self, cancel: tokio::sync::watch::Receiver<bool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Resolves when the run is cancelled; never without a cancel signal (or
    /// when its sender is gone without having signalled).
    async fn cancelled(&self) {
        if let Some(mut rx) = self.cancel.clone()
            && rx.wait_for(|c| *c).await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }

    /// Runs `work` unless the run is cancelled first; `in_flight` is what the
    /// stored state then has pending.
    async fn unless_cancelled<T>(
        &self,
        work: impl Future<Output = Result<T, EngineError>>,
        in_flight: usize,
    ) -> Result<T, EngineError> {
        tokio::select! {
            r = work => r,
            () = self.cancelled() => Err(EngineError::Cancelled(in_flight)),
        }
    }

    /// Runs `work` under the stack lock and releases the lock however it ends.
    /// `work` handles cancellation itself ([`Engine::unless_cancelled`], and the
    /// scheduler, which saves what finished before it returns).
    async fn locked<T>(
        &self,
        stack: &str,
        work: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        crate::state::under_lock(
            self.backend.as_ref(),
            stack,
            self.options.lock_timeout,
            work,
        )
        .await
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
        let hasher = self.hasher(&state)?;
        let graph = self.declare_values(graph)?;
        let mut lives: BTreeMap<ResourceId, Value> = BTreeMap::new();
        for id in state.resources.keys() {
            if let Some(live) = self.providers.for_resource(id)?.read(id).await? {
                lives.insert(id.clone(), live);
            }
        }
        let mut drift = Vec::new();
        for (id, record) in &state.resources {
            let Some(live) = lives.get(id) else {
                drift.push(Drift {
                    id: id.clone(),
                    status: DriftStatus::Missing,
                    detail: "deleted outside the engine; `up` recreates it".into(),
                });
                continue;
            };
            let Some(unresolved) = graph.get(id) else {
                continue;
            };
            // A value read from another resource: compared as it is now (a
            // value that cannot be read now decides nothing).
            let Ok(res) = self.resolve_now(&graph, unresolved, &lives).await else {
                continue;
            };
            if hasher.live_hash(live, &res) != record.live_hash
                && !crate::values::legacy_in_sync(record, unresolved, &res, live, &hasher)
            {
                let projected =
                    crate::diff::project(&crate::diff::strip_server_fields(live), &res.body);
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

    /// The record hasher of `state`'s stack (keyed by the passphrase when the
    /// backend has one).
    fn hasher(&self, state: &StackState) -> Result<RecordHasher, EngineError> {
        Ok(self.backend.codec().record_hasher(state)?)
    }

    async fn read_state(&self, stack: &str) -> Result<StackState, EngineError> {
        Ok(self
            .backend
            .read(stack)
            .await?
            .unwrap_or_else(|| StackState::new(stack)))
    }

    /// Server-side dry-runs of the objects the plan will create, where the
    /// provider can validate a create ([`Provider::create_prerequisite`]) and its
    /// prerequisite exists or is not part of the plan (for Kubernetes: objects in
    /// a namespace that exists already; objects in a namespace this plan creates
    /// cannot be validated before it exists). A rejection becomes a plan problem
    /// naming the resource and the field, before any write. A dry-run that fails
    /// for another reason (a kind whose CRD this plan installs, a network error)
    /// leaves the create unvalidated: the apply reports it.
    async fn validate_creates(&self, graph: &DesiredGraph, observed: &mut Observed, force: bool) {
        // Resources reading values are dry-run with their resolved bodies
        // (`observe_resolved`).
        let creates: Vec<&Resource> = graph
            .order()
            .iter()
            .filter(|id| graph.values_from(id).is_empty() && self.creatable(graph, observed, id))
            .filter_map(|id| graph.get(id))
            .collect();
        if creates.is_empty() {
            return;
        }
        let results = futures::stream::iter(creates.into_iter().map(|res| async move {
            let provider = self.providers.for_resource(&res.id).ok()?;
            match provider.dry_run(res, force).await {
                Ok(dry_run) => Some((res.id.clone(), dry_run)),
                Err(e) => {
                    tracing::debug!(id = %res.id, error = %e, "create not validated by a dry-run");
                    None
                }
            }
        }))
        .buffer_unordered(READS_IN_FLIGHT.max(self.options.concurrency * 2))
        .collect::<Vec<_>>()
        .await;
        for (id, dry_run) in results.into_iter().flatten() {
            if let Some(observation) = observed.get_mut(&id) {
                observation.dry_run = Some(dry_run);
            }
        }
    }

    /// True when `id` is to be created and its provider can validate the
    /// create with a dry-run now ([`Provider::create_prerequisite`] exists or
    /// is not part of the plan).
    fn creatable(&self, graph: &DesiredGraph, observed: &Observed, id: &ResourceId) -> bool {
        if observed.get(id).is_none_or(|o| o.live.is_some()) {
            return false;
        }
        let Some(prerequisite) = self
            .providers
            .for_resource(id)
            .ok()
            .and_then(|p| p.create_prerequisite(id))
        else {
            return false;
        };
        !prerequisite.is_some_and(|p| {
            graph.contains(&p) && observed.get(&p).is_none_or(|o| o.live.is_none())
        })
    }

    /// Reads every desired or recorded resource; dry-runs only where needed
    /// (changed bodies, drifted objects, and creates that can be validated).
    /// With the values resources read from others declared on `graph`
    /// ([`DesiredGraph::with_values_from`], as `up` and `preview` do), such
    /// resources are dry-run with their resolved bodies once the sources are
    /// observed, and sources outside the stack are read too.
    pub async fn observe(
        &self,
        graph: &DesiredGraph,
        state: &StackState,
        hasher: &RecordHasher,
    ) -> Result<Observed, EngineError> {
        let mut ids: BTreeSet<&ResourceId> = graph.order().iter().collect();
        ids.extend(state.resources.keys());
        ids.extend(state.pending.iter().map(|p| &p.id));
        ids.extend(Self::outside_sources(graph));
        self.events.emit(Event::Observing {
            resources: ids.len(),
        });
        let force = self.options.force_conflicts
            || !matches!(self.options.plan.import, planner::ImportSelection::None);
        let reads = futures::stream::iter(ids.into_iter().map(|id| async move {
            let provider = self.providers.for_resource(id)?;
            let live = provider.read(id).await?;
            let dry_run = match graph.get(id) {
                Some(res)
                    if graph.values_from(id).is_empty()
                        && planner::needs_dry_run(
                            res,
                            state.resources.get(id),
                            live.as_ref(),
                            hasher,
                        ) =>
                {
                    Some(provider.dry_run(res, force).await?)
                }
                _ => None,
            };
            Ok::<_, ProviderError>((id.clone(), Observation { live, dry_run }))
        }))
        .buffer_unordered(READS_IN_FLIGHT.max(self.options.concurrency * 2))
        .collect::<Vec<_>>()
        .await;
        let mut observed = Observed::new();
        for r in reads {
            let (id, obs) = r?;
            observed.insert(id, obs);
        }
        self.validate_creates(graph, &mut observed, force).await;
        if graph.reads_values() {
            self.observe_resolved(graph, state, hasher, &mut observed, force)
                .await?;
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
        Ok(self.preview_with_basis(graph).await?.0)
    }

    /// [`Engine::preview`], and what the plan was made from (the state and
    /// every step's desired and live fingerprints), for a saved plan
    /// ([`crate::saved`]).
    pub async fn preview_with_basis(
        &self,
        graph: &DesiredGraph,
    ) -> Result<(Plan, Basis), EngineError> {
        self.validate(graph)?;
        let stored = self.backend.read(graph.stack()).await?;
        let exists = stored.is_some();
        let state = stored.unwrap_or_else(|| StackState::new(graph.stack()));
        let hasher = self.hasher(&state)?;
        let graph = self.declare_values(graph)?;
        let observed = self.observe(&graph, &state, &hasher).await?;
        let plan = planner::plan(&graph, &state, &observed, &hasher, &self.options.plan)?;
        let applied = self.applied_graph(&graph, &state, &observed, &hasher);
        let basis = saved::basis(&applied, &state, exists, &observed, &hasher, &plan);
        Ok((plan, basis))
    }

    /// Validates, locks, plans and applies; records `outputs` on success.
    pub async fn up(
        &self,
        graph: &DesiredGraph,
        outputs: BTreeMap<String, Output>,
    ) -> Result<UpReport, EngineError> {
        let start = Instant::now();
        self.validate(graph)?;
        self.check_sealer(graph)?;
        self.locked(graph.stack(), self.up_locked(graph, outputs, start))
            .await
    }

    /// [`Engine::up`], then `after` with the report while the stack lock is still
    /// held, so that what `after` records (e.g. the tested images of a preview)
    /// follows the order of the runs. An error from `after` fails the run; the
    /// applied changes and their state stay recorded.
    pub async fn up_then(
        &self,
        graph: &DesiredGraph,
        outputs: BTreeMap<String, Output>,
        after: impl AsyncFnOnce(&UpReport) -> Result<(), StateError>,
    ) -> Result<UpReport, EngineError> {
        let start = Instant::now();
        self.validate(graph)?;
        self.check_sealer(graph)?;
        self.locked(graph.stack(), async {
            let report = self.up_locked(graph, outputs, start).await?;
            after(&report).await?;
            Ok(report)
        })
        .await
    }

    async fn up_locked(
        &self,
        graph: &DesiredGraph,
        outputs: BTreeMap<String, Output>,
        start: Instant,
    ) -> Result<UpReport, EngineError> {
        let stored = self.backend.read(graph.stack()).await?;
        let exists = stored.is_some();
        let mut state = stored.unwrap_or_else(|| {
            let mut state = StackState::new(graph.stack());
            if let Some(guard) = &self.guard {
                state.lineage.clone_from(&guard.lineage);
            }
            state
        });
        if let Some(key) = &self.data_key {
            match &state.encryption {
                None => state.encryption = Some(key.clone()),
                Some(recorded) if recorded == key => {}
                Some(_) => {
                    return Err(EngineError::State(StateError::Stale {
                        stack: graph.stack().to_owned(),
                        message: "the stack's data key changed while this run was preparing (another run sealed its first secret); run again".into(),
                    }));
                }
            }
        }
        let sealer = self.open_sealer(graph, &mut state)?;
        if !state.pending.is_empty() {
            self.events.emit(Event::Warning {
                id: None,
                message: format!(
                    "the previous run was interrupted with {} step(s) unfinished; resuming",
                    state.pending.len()
                ),
            });
        }
        let hasher = self.hasher(&state)?;
        let declared = self.declare_values(graph)?;
        let observed = self
            .unless_cancelled(
                self.observe(&declared, &state, &hasher),
                state.pending.len(),
            )
            .await?;
        let plan = match planner::plan(&declared, &state, &observed, &hasher, &self.options.plan) {
            Ok(plan) => plan,
            // A saved plan that cannot even be made again: what moved is what
            // the problems name (e.g. a field another manager took over).
            Err(error) if self.guard.is_some() => {
                return Err(EngineError::PlanMoved(format!(
                    "the saved plan cannot be applied: planning it again under the lock fails (nothing was changed): {error}"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        tracing::debug!(steps = plan.steps.len(), "planned");
        // What apply sends and records: values known now are set; the others
        // are read when their resource is applied.
        let applied = self.applied_graph(&declared, &state, &observed, &hasher);
        let graph = applied.as_ref();
        if let Some(guard) = &self.guard {
            let basis = saved::basis(graph, &state, exists, &observed, &hasher, &plan);
            (guard.check)(&plan, &basis).map_err(EngineError::PlanMoved)?;
        }
        self.warn_refused(&plan);
        let mut rec = Recorder::new(self.backend.clone(), state);
        self.refresh_no_op_records(graph, &plan, &observed, &hasher, &mut rec.state);
        let ready = self.execute(graph, &plan, &hasher, &mut rec).await?;
        let recorded = match self
            .record_outputs(
                graph,
                &plan,
                &observed,
                &ready,
                &rec.state.outputs,
                sealer.as_ref(),
                outputs,
            )
            .await
        {
            Ok(recorded) => recorded,
            Err(error) => {
                // The steps' records are kept; the outputs stay as they were.
                rec.state.pending.clear();
                rec.flush().await?;
                return Err(error);
            }
        };
        rec.state.outputs = recorded.outputs;
        rec.state.pending.clear();
        // The last steps' records and the outputs go out in one write; a no-op
        // run whose records and outputs are unchanged writes nothing.
        rec.flush().await?;
        let refused = refusals(&plan);
        if !refused.is_empty() {
            return Err(EngineError::Refused {
                refused,
                residue: Vec::new(),
            });
        }
        Ok(UpReport {
            plan,
            elapsed: start.elapsed(),
            serial: rec.state.serial,
            lineage: rec.state.lineage.clone(),
            outputs: rec.state.outputs.clone(),
            computed: recorded.computed,
        })
    }

    /// Deletes everything the stack recorded, waits until it is gone, verifies
    /// that no object carrying the stack's label remains, and then removes the
    /// stack's state (kept, emptied, with [`EngineOptions::keep_state`]). A
    /// destroy that cannot verify keeps the state, naming what is left.
    pub async fn destroy(&self, stack: &str) -> Result<UpReport, EngineError> {
        let start = Instant::now();
        self.locked(stack, self.destroy_locked(stack, start)).await
    }

    async fn destroy_locked(&self, stack: &str, start: Instant) -> Result<UpReport, EngineError> {
        let Some(state) = self.backend.read(stack).await? else {
            return Err(EngineError::NoState(stack.to_owned()));
        };
        let graph = DesiredGraph::empty(stack);
        let hasher = self.hasher(&state)?;
        let observed = self
            .unless_cancelled(self.observe(&graph, &state, &hasher), state.pending.len())
            .await?;
        let plan = planner::plan(&graph, &state, &observed, &hasher, &self.options.plan)?;
        self.warn_refused(&plan);
        let refused = refusals(&plan);
        // Recorded objects, and what an earlier destroy left (pending deletes):
        // the kinds verified, so a destroy after residue verifies them again.
        let kinds: Vec<ResourceId> = state
            .resources
            .keys()
            .chain(state.pending.iter().map(|p| &p.id))
            .filter(|id| !refused.iter().any(|(r, _)| r == *id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut rec = Recorder::new(self.backend.clone(), state);
        if let Err(failed) = self.execute(&graph, &plan, &hasher, &mut rec).await {
            // The state is written; name what is left and what holds it.
            return Err(match failed {
                EngineError::Apply { .. } => {
                    let left = self
                        .unless_cancelled(self.leftovers(stack, &kinds), rec.state.pending.len())
                        .await
                        .unwrap_or_default();
                    remember_leftovers(&mut rec, &left).await?;
                    EngineError::DestroyIncomplete {
                        failed: Box::new(failed),
                        left,
                    }
                }
                other => other,
            });
        }
        // What was deleted is recorded before verification, which may fail.
        rec.flush().await?;
        let unrefused = |left: Vec<Leftover>| -> Vec<Leftover> {
            left.into_iter()
                .filter(|l| !refused.iter().any(|(r, _)| *r == l.id))
                .collect()
        };
        let mut residue = unrefused(
            self.unless_cancelled(self.leftovers(stack, &kinds), rec.state.pending.len())
                .await?,
        );
        if self.options.force_finalize && self.release_finalizers(stack, &residue).await? {
            // Released objects that were being deleted are gone now; verify again.
            residue = unrefused(
                self.unless_cancelled(self.leftovers(stack, &kinds), rec.state.pending.len())
                    .await?,
            );
        }
        remember_leftovers(&mut rec, &residue).await?;
        if !refused.is_empty() {
            // The refused records stay; the outputs stay with them.
            return Err(EngineError::Refused { refused, residue });
        }
        if !residue.is_empty() {
            return Err(EngineError::Residue(residue));
        }
        if self.options.keep_state {
            rec.state.outputs.clear();
            rec.state.pending.clear();
            rec.flush().await?;
        } else {
            // Verified: nothing of the stack is left, so neither is its state
            // (still under the lock; every record write has finished).
            self.backend.delete(stack).await?;
        }
        Ok(UpReport {
            plan,
            elapsed: start.elapsed(),
            serial: rec.state.serial,
            lineage: rec.state.lineage.clone(),
            outputs: rec.state.outputs.clone(),
            computed: BTreeSet::new(),
        })
    }

    /// [`Engine::verify_gone`], each object read for what holds it.
    async fn leftovers(
        &self,
        stack: &str,
        recorded: &[ResourceId],
    ) -> Result<Vec<Leftover>, EngineError> {
        let left = self.verify_gone(stack, recorded).await?;
        let read = futures::future::try_join_all(left.into_iter().map(|id| async move {
            let live = self.providers.for_resource(&id)?.read(&id).await?;
            Ok::<_, ProviderError>(Leftover::from_live(id, live.as_ref()))
        }))
        .await?;
        Ok(read)
    }

    /// Force-finalize after a destroy: asks each leftover's provider to remove
    /// the finalizers of the objects carrying this stack's label that are being
    /// deleted and held by them (never another stack's or a foreign object).
    /// Whether anything was released.
    async fn release_finalizers(
        &self,
        stack: &str,
        left: &[Leftover],
    ) -> Result<bool, EngineError> {
        let mut released = false;
        for l in left
            .iter()
            .filter(|l| l.deleting && !l.finalizers.is_empty())
        {
            let provider = self.providers.for_resource(&l.id)?;
            let removed = provider.release_finalizers(stack, &l.id).await?;
            if !removed.is_empty() {
                released = true;
                self.events.emit(Event::Warning {
                    id: Some(l.id.clone()),
                    message: format!("removed finalizers {} (force-finalize)", removed.join(", ")),
                });
            }
        }
        Ok(released)
    }

    /// Objects that still exist: recorded ones, and any carrying the stack label.
    async fn verify_gone(
        &self,
        stack: &str,
        recorded: &[ResourceId],
    ) -> Result<Vec<ResourceId>, EngineError> {
        let reads = futures::future::try_join_all(recorded.iter().map(|id| async move {
            let live = self.providers.for_resource(id)?.read(id).await?;
            Ok::<_, ProviderError>(live.is_some().then(|| id.clone()))
        }))
        .await?;
        let mut residue: BTreeSet<ResourceId> = reads.into_iter().flatten().collect();
        let mut by_provider: BTreeMap<&ProviderName, Vec<ResourceId>> = BTreeMap::new();
        for id in recorded {
            by_provider
                .entry(&id.provider)
                .or_default()
                .push(id.clone());
        }
        for of_provider in by_provider.values() {
            if let Some(first) = of_provider.first() {
                residue.extend(
                    self.providers
                        .for_resource(first)?
                        .list_owned(stack, of_provider)
                        .await?,
                );
            }
        }
        Ok(residue.into_iter().collect())
    }

    /// One warning per refused delete, before anything runs.
    fn warn_refused(&self, plan: &Plan) {
        for step in plan.refused_steps() {
            self.events.emit(Event::Warning {
                id: Some(step.id.clone()),
                message: format!(
                    "not deleting it: {}",
                    step.reason
                        .as_deref()
                        .unwrap_or("it fails the ownership checks")
                ),
            });
        }
    }

    /// `graph` as apply uses it: the values known at plan time set
    /// ([`DesiredGraph::with_resolutions`]); borrowed when no resource reads any.
    fn applied_graph<'g>(
        &self,
        graph: &'g DesiredGraph,
        state: &StackState,
        observed: &Observed,
        hasher: &RecordHasher,
    ) -> std::borrow::Cow<'g, DesiredGraph> {
        if !graph.reads_values() {
            return std::borrow::Cow::Borrowed(graph);
        }
        let resolutions =
            planner::resolve_values(graph, state, observed, hasher, &self.options.plan);
        std::borrow::Cow::Owned(graph.with_resolutions(&resolutions))
    }

    /// Records fresh hashes for no-op resources whose record is missing or outdated
    /// (e.g. after a dry-run showed only server-side normalisation). No cluster writes.
    fn refresh_no_op_records(
        &self,
        graph: &DesiredGraph,
        plan: &Plan,
        observed: &Observed,
        hasher: &RecordHasher,
        state: &mut StackState,
    ) {
        for step in plan.steps.iter().filter(|s| s.action == Action::NoOp) {
            let (Some(res), Some(live)) = (
                graph.get(&step.id),
                observed.get(&step.id).and_then(|o| o.live.as_ref()),
            ) else {
                continue;
            };
            let record = record_for(graph, res, live, hasher, state.resources.get(&step.id));
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

    /// Runs one step; returns the object as it is ready (`None` for deletes and
    /// no-ops), and the body applied when its values were read now.
    async fn run_step(
        &self,
        graph: &DesiredGraph,
        step: &Step,
        sources: &BTreeMap<ResourceId, Value>,
    ) -> (Result<Option<Value>, ProviderError>, Option<Resource>) {
        let provider = match self.providers.for_resource(&step.id) {
            Ok(provider) => provider,
            Err(e) => return (Err(e), None),
        };
        let res = match graph.get(&step.id) {
            Some(res) => match self.resolve_now(graph, res, sources).await {
                Ok(resolved) => Some(resolved),
                Err(e) => return (Err(e), None),
            },
            None => None,
        };
        let opts = self.wait_options(res.as_deref());
        let desired = || {
            res.as_deref().ok_or_else(|| ProviderError::Other {
                id: step.id.clone(),
                message: "plan step has no desired resource (engine bug)".into(),
            })
        };
        let result = async {
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
                    self.delete_target(provider.as_ref(), step).await?;
                    provider.wait_gone(&step.id, opts, &self.events).await?;
                    let applied = provider.apply(res, self.options.force_conflicts).await?;
                    self.ready_or_applied(provider, res, applied, opts).await
                }
                Action::Delete => {
                    self.delete_target(provider.as_ref(), step).await?;
                    provider.wait_gone(&step.id, opts, &self.events).await?;
                    Ok(None)
                }
                Action::Refuse => Ok(None),
            }
        }
        .await;
        let applied = match res {
            Some(std::borrow::Cow::Owned(resolved)) => Some(resolved),
            _ => None,
        };
        (result, applied)
    }

    /// Sends the delete of a Delete or Replace step: only for the object the
    /// planner checked (conditional on its uid), none for one that was gone.
    async fn delete_target(
        &self,
        provider: &dyn Provider,
        step: &Step,
    ) -> Result<(), ProviderError> {
        match &step.target {
            Some(DeleteTarget::Live { uid }) => provider.delete_checked(&step.id, uid.as_deref()).await,
            Some(DeleteTarget::Absent) => Ok(()),
            None => Err(ProviderError::Other {
                id: step.id.clone(),
                message: "delete step without a checked target (engine bug: the planner checks ownership before every delete)".into(),
            }),
        }
    }

    /// Executes the mutating steps of `plan`, recording state as steps start and
    /// finish.
    ///
    /// Every mutating step of the plan is recorded as pending in one write before
    /// the first step starts (a write-ahead record of what this run may change),
    /// so a step never waits for a write of its own: it starts as soon as the
    /// steps it depends on have finished. A finished step's record goes into the
    /// next write. Writes go out one at a time while steps run ([`Recorder`]):
    /// whatever finished while one write was in flight goes into the next.
    /// Returns the live objects of the resources it applied (as their wait
    /// returned them), with the last records possibly not yet written (the
    /// caller's [`Recorder::flush`] adds the run's outputs to that write); on failure or
    /// cancellation the pending entries of steps that never started are removed
    /// and everything is written before it returns.
    async fn execute(
        &self,
        graph: &DesiredGraph,
        plan: &Plan,
        hasher: &RecordHasher,
        rec: &mut Recorder,
    ) -> Result<BTreeMap<ResourceId, Value>, EngineError> {
        let mut sched = Scheduler::new(&plan.steps);
        let mut ready = BTreeMap::new();
        let mut failures: Vec<ProviderError> = Vec::new();
        let mut running = FuturesUnordered::new();
        let mut unstarted: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| s.action.is_mutating())
            .collect();
        rec.state
            .pending
            .extend(unstarted.iter().map(|step| PendingOperation {
                id: step.id.clone(),
                action: step.action,
            }));
        if !unstarted.is_empty() {
            rec.touch();
        }
        // Steps may start once this write (recording them all as pending) is done.
        let pending_written = rec.next_write();
        // Steps taken from the scheduler before that.
        let mut blocked: Vec<&Step> = Vec::new();
        let mut done = 0usize;
        let concurrency = self.options.concurrency.max(1);
        loop {
            let room = concurrency.saturating_sub(running.len() + blocked.len());
            blocked.extend(sched.take_ready(room));
            let startable = if rec.is_written(pending_written) {
                std::mem::take(&mut blocked)
            } else {
                Vec::new()
            };
            for step in startable {
                unstarted.retain(|s| !std::ptr::eq(*s, step));
                self.events.emit(Event::StepStarted {
                    id: step.id.clone(),
                    action: step.action,
                });
                // The ready objects of the sources it reads values from (they
                // finished before it starts).
                let sources: BTreeMap<ResourceId, Value> = graph
                    .values_from(&step.id)
                    .iter()
                    .filter_map(|from| {
                        ready
                            .get(&from.source)
                            .map(|live: &Value| (from.source.clone(), live.clone()))
                    })
                    .collect();
                running.push(async move {
                    let t = Instant::now();
                    let (result, applied) = self.run_step(graph, step, &sources).await;
                    StepOutcome {
                        id: step.id.clone(),
                        action: step.action,
                        result,
                        applied,
                        elapsed: t.elapsed(),
                    }
                });
            }
            if running.is_empty() && blocked.is_empty() && !rec.is_writing() {
                break;
            }
            // The next write, when something changed and none is in flight:
            // the first one records every step as pending.
            rec.start_write();
            tokio::select! {
                written = rec.written(), if rec.is_writing() => written?,
                Some(outcome) = running.next(), if !running.is_empty() => {
                    rec.touch();
                    // A failed create may still have made the object (the
                    // database of a create whose last statement failed): it
                    // stays pending, as after an interruption, so the next run
                    // adopts it by its label instead of refusing it as unknown.
                    let may_exist_unrecorded = outcome.result.is_err()
                        && matches!(outcome.action, Action::Create | Action::Replace);
                    if !may_exist_unrecorded {
                        rec.state.pending.retain(|p| p.id != outcome.id);
                    }
                    match outcome.result {
                        Ok(live) => {
                            done += 1;
                            let res = outcome.applied.as_ref().or_else(|| graph.get(&outcome.id));
                            match (outcome.action, res, live) {
                                (Action::Delete, _, _) => {
                                    rec.state.resources.remove(&outcome.id);
                                }
                                (_, Some(res), Some(live)) => {
                                    let mut record = record_for(
                                        graph,
                                        res,
                                        &live,
                                        hasher,
                                        rec.state.resources.get(&outcome.id),
                                    );
                                    record.imported |= outcome.action == Action::Import;
                                    rec.state.resources.insert(outcome.id.clone(), record);
                                    ready.insert(outcome.id.clone(), live);
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
                }
                () = self.cancelled() => {
                    // Steps in flight are abandoned and stay pending; what
                    // finished is saved, and the next run resumes the rest.
                    drop(running);
                    forget_unstarted(&mut rec.state, &unstarted);
                    rec.flush().await?;
                    return Err(EngineError::Cancelled(rec.state.pending.len()));
                }
            }
        }
        if failures.is_empty() {
            Ok(ready)
        } else {
            forget_unstarted(&mut rec.state, &unstarted);
            rec.flush().await?;
            Err(EngineError::Apply {
                failed: failures,
                skipped: sched.skipped,
                done,
            })
        }
    }
}

/// Removes the pending entries of steps that never started (skipped after a
/// failure, or not reached before a cancellation): the last matching entry of
/// each is this run's; an older one from an interrupted run stays.
fn forget_unstarted(state: &mut StackState, unstarted: &[&Step]) {
    for step in unstarted {
        if let Some(i) = state
            .pending
            .iter()
            .rposition(|p| p.id == step.id && p.action == step.action)
        {
            state.pending.remove(i);
        }
    }
}

/// The record of `res` after apply, `live` being what the provider returned
/// (its uid is recorded, so later deletes can check it).
fn record_for(
    graph: &DesiredGraph,
    res: &Resource,
    live: &Value,
    hasher: &RecordHasher,
    old: Option<&ResourceRecord>,
) -> ResourceRecord {
    ResourceRecord {
        id: res.id.clone(),
        depends_on: graph.dependencies(&res.id).iter().cloned().collect(),
        desired_hash: hasher.desired_hash(res),
        live_hash: hasher.live_hash(live, res),
        uid: live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        protect: res.options.protect,
        imported: old.is_some_and(|o| o.imported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::DryRun;
    use crate::state::file::FileBackend;
    use crate::state::{StackLock, WriteRule};
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id(name: &str) -> ResourceId {
        ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), name)
    }

    /// A file backend that counts state writes.
    struct Counted {
        inner: FileBackend,
        writes: AtomicUsize,
    }

    #[async_trait]
    impl StateBackend for Counted {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn codec(&self) -> &crate::state::format::Codec {
            self.inner.codec()
        }
        async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError> {
            self.inner.read(stack).await
        }
        async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.inner.write_with(state, rule).await
        }
        async fn delete(&self, stack: &str) -> Result<(), StateError> {
            self.inner.delete(stack).await
        }
        async fn list(&self) -> Result<Vec<String>, StateError> {
            self.inner.list().await
        }
        async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError> {
            self.inner.lock(stack).await
        }
        async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError> {
            self.inner.break_lock(stack).await
        }
    }

    /// Objects in memory. Every apply first checks that the stored state
    /// already records the resource as pending; `fail` fails, `slow` hangs,
    /// `half` is stored and then fails, the first time only.
    struct Fake {
        objects: Mutex<BTreeMap<ResourceId, Value>>,
        half_done: std::sync::atomic::AtomicBool,
        backend: Arc<Counted>,
        violations: Mutex<Vec<String>>,
        /// Every delete sent, with the uid it was conditional on.
        deletes: Mutex<Vec<(ResourceId, Option<String>)>>,
    }

    #[async_trait]
    impl Provider for Fake {
        async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
            Ok(self.objects.lock().expect("lock").get(id).cloned())
        }
        async fn dry_run(&self, res: &Resource, _: bool) -> Result<DryRun, ProviderError> {
            Ok(DryRun::Accepted {
                object: res.body.clone(),
            })
        }
        async fn apply(&self, res: &Resource, _: bool) -> Result<Value, ProviderError> {
            let stored = self.backend.read("s").await.ok().flatten();
            if !stored.is_some_and(|s| s.pending.iter().any(|p| p.id == res.id)) {
                self.violations.lock().expect("lock").push(format!(
                    "{} applied before it was recorded as pending",
                    res.id
                ));
            }
            match res.id.name.as_str() {
                "fail" => {
                    return Err(ProviderError::Other {
                        id: res.id.clone(),
                        message: "rejected".into(),
                    });
                }
                "slow" => tokio::time::sleep(Duration::from_secs(600)).await,
                "half" if !self.half_done.swap(true, Ordering::SeqCst) => {
                    self.objects
                        .lock()
                        .expect("lock")
                        .insert(res.id.clone(), res.body.clone());
                    return Err(ProviderError::Other {
                        id: res.id.clone(),
                        message: "stored, then failed".into(),
                    });
                }
                _ => {}
            }
            self.objects
                .lock()
                .expect("lock")
                .insert(res.id.clone(), res.body.clone());
            Ok(res.body.clone())
        }
        async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
            self.delete_checked(id, None).await
        }
        async fn delete_checked(
            &self,
            id: &ResourceId,
            uid: Option<&str>,
        ) -> Result<(), ProviderError> {
            self.deletes
                .lock()
                .expect("lock")
                .push((id.clone(), uid.map(str::to_owned)));
            self.objects.lock().expect("lock").remove(id);
            Ok(())
        }
        async fn wait_ready(
            &self,
            _: &Resource,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<Value, ProviderError> {
            Ok(Value::Null)
        }
        async fn wait_gone(
            &self,
            _: &ResourceId,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn list_owned(
            &self,
            _: &str,
            _: &[ResourceId],
        ) -> Result<Vec<ResourceId>, ProviderError> {
            Ok(Vec::new())
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        backend: Arc<Counted>,
        fake: Arc<Fake>,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Arc::new(Counted {
            inner: FileBackend::new(dir.path()),
            writes: AtomicUsize::new(0),
        });
        let fake = Arc::new(Fake {
            objects: Mutex::new(BTreeMap::new()),
            half_done: std::sync::atomic::AtomicBool::new(false),
            backend: backend.clone(),
            violations: Mutex::new(Vec::new()),
            deletes: Mutex::new(Vec::new()),
        });
        World {
            _dir: dir,
            backend,
            fake,
        }
    }

    impl World {
        fn engine(&self) -> Engine {
            let providers = Providers::new().with(ProviderName::KUBERNETES, self.fake.clone());
            Engine::new(
                providers,
                self.backend.clone(),
                EventSink::none(),
                EngineOptions::default(),
            )
        }
        fn writes(&self) -> usize {
            self.backend.writes.load(Ordering::SeqCst)
        }
        async fn stored(&self) -> StackState {
            self.backend.read("s").await.expect("read").expect("state")
        }
        fn violations(&self) -> Vec<String> {
            self.fake.violations.lock().expect("lock").clone()
        }
    }

    /// A namespace and ConfigMaps in it (each depends on the namespace); `extra`
    /// adds one that depends on ConfigMap `after`.
    fn graph(names: &[&str], extra: Option<(&str, &str)>) -> DesiredGraph {
        let cm = |name: &str| {
            Resource::kubernetes(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "ns"}, "data": {"k": name}}))
            .expect("resource")
        };
        let mut resources = vec![
            Resource::kubernetes(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
            )
            .expect("resource"),
        ];
        resources.extend(names.iter().map(|n| cm(n)));
        if let Some((name, after)) = extra {
            resources.push(cm(name).depends_on(&id(after)));
        }
        DesiredGraph::new("s", resources).expect("graph")
    }

    #[tokio::test]
    async fn steps_are_pending_before_they_start_and_writes_are_batched() {
        let w = world();
        let engine = w.engine();
        let g = graph(&["a", "b", "c", "d", "e"], Some(("f", "a")));
        let outputs = BTreeMap::from([("k".to_owned(), Output::Plain(json!("v")))]);
        let report = engine.up(&g, outputs.clone()).await.expect("up");
        assert_eq!(report.plan.summary().create, 7);
        assert!(w.violations().is_empty(), "{:?}", w.violations());
        // Written before the first step, at most once per wave while steps run
        // (one write in flight at a time), and once at the end with the outputs:
        // fewer writes than steps, where two per step used to be written.
        let writes = w.writes();
        assert!((2..=4).contains(&writes), "{writes} writes");
        let stored = w.stored().await;
        assert!(stored.pending.is_empty(), "{:?}", stored.pending);
        assert_eq!(stored.resources.len(), 7);
        assert_eq!(stored.outputs, outputs);
        assert_eq!(stored.serial, writes as u64);
        assert_eq!(report.serial, stored.serial);

        // Nothing changed: nothing is written.
        let again = engine.up(&g, outputs).await.expect("no-op up");
        assert!(again.plan.is_empty());
        assert_eq!(w.writes(), writes, "a no-op up writes no state");
        // Only the outputs changed: one write.
        let other = BTreeMap::from([("k".to_owned(), Output::Plain(json!("w")))]);
        engine.up(&g, other).await.expect("outputs up");
        assert_eq!(w.writes(), writes + 1);
    }

    /// A state edited to point at a foreign object (no label) and at one of ours
    /// recreated by someone else (another uid): destroy deletes the rest, never
    /// those, says so while running and at the end, and keeps their records.
    #[tokio::test]
    async fn destroy_of_a_tampered_state_deletes_nothing_it_cannot_prove_it_owns() {
        let w = world();
        let g = graph(&["a", "b"], None);
        w.engine().up(&g, BTreeMap::new()).await.expect("up");
        // Someone else's ConfigMap in another namespace, without our label.
        let foreign = ResourceId::kubernetes("v1", "ConfigMap", Some("kube-system"), "theirs");
        w.fake.objects.lock().expect("lock").insert(
            foreign.clone(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "theirs", "namespace": "kube-system", "uid": "u-theirs"}}),
        );
        // `b` was recreated outside the engine: our label, another uid.
        if let Some(b) = w.fake.objects.lock().expect("lock").get_mut(&id("b")) {
            b["metadata"]["uid"] = json!("u-b-new");
        }
        let mut edited = w.stored().await;
        edited.resources.insert(
            foreign.clone(),
            ResourceRecord {
                id: foreign.clone(),
                depends_on: Vec::new(),
                desired_hash: "sha256:x".into(),
                live_hash: "sha256:x".into(),
                uid: None,
                protect: false,
                imported: false,
            },
        );
        if let Some(b) = edited.resources.get_mut(&id("b")) {
            b.uid = Some("u-b-old".into());
        }
        edited.serial += 1;
        w.backend.write(&edited).await.expect("edit the state");

        let (events, mut rx) = EventSink::channel();
        let engine = Engine::new(
            Providers::new().with(ProviderName::KUBERNETES, w.fake.clone()),
            w.backend.clone(),
            events,
            EngineOptions::default(),
        );
        let err = engine.destroy("s").await.expect_err("refused");
        let EngineError::Refused { refused, residue } = &err else {
            panic!("{err}");
        };
        let ids: Vec<&ResourceId> = refused.iter().map(|(id, _)| id).collect();
        // `b` lives in namespace `ns`: the Namespace is refused with it.
        assert_eq!(
            ids,
            [
                &id("b"),
                &ResourceId::kubernetes("v1", "Namespace", None, "ns"),
                &foreign
            ]
        );
        assert!(residue.is_empty(), "{residue:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("refused to delete 3 recorded object(s)"),
            "{text}"
        );
        assert!(text.contains("ConfigMap kube-system/theirs: ConfigMap kube-system/theirs is recorded in the state of stack s but the live object does not carry the label preview-envs.io/stack=s"), "{text}");
        assert!(text.contains("has uid u-b-new"), "{text}");
        // Only `a` was deleted, conditional on the uid it was checked with.
        let deletes = w.fake.deletes.lock().expect("lock").clone();
        assert_eq!(deletes, [(id("a"), None)]);
        assert!(w.fake.objects.lock().expect("lock").contains_key(&foreign));
        assert!(w.fake.objects.lock().expect("lock").contains_key(&id("b")));
        // The refused records stay; what was deleted left the state.
        let stored = w.stored().await;
        let recorded: Vec<&str> = stored.resources.keys().map(|i| i.name.as_str()).collect();
        assert_eq!(recorded, ["theirs", "b", "ns"]);
        // Each refusal was reported while running.
        drop(engine);
        let mut warned = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let Event::Warning {
                id: Some(id),
                message,
            } = event
            {
                assert!(message.starts_with("not deleting it: "), "{message}");
                warned.push(id);
            }
        }
        assert_eq!(warned.len(), 3, "{warned:?}");
    }

    /// Secret bodies are recorded with keyed hashes that stay stable across runs
    /// (and processes): a no-op up after a restart still writes nothing.
    #[tokio::test]
    async fn secret_hashes_are_keyed_and_a_no_op_up_still_writes_nothing() {
        use crate::secret::SecretString;
        use crate::state::auth::Authenticator;
        use crate::state::crypto::KdfParams;
        use crate::state::format::Codec;
        let authenticated = || {
            Codec::authenticated(Arc::new(Authenticator::with_params(
                SecretString::new("engine test passphrase, long enough"),
                KdfParams::insecure_for_tests(),
            )))
        };
        let mut w = world();
        let dir = w._dir.path().to_owned();
        w.backend = Arc::new(Counted {
            inner: FileBackend::new(&dir).with_codec(authenticated()),
            writes: AtomicUsize::new(0),
        });
        let fake = Arc::new(Fake {
            objects: Mutex::new(BTreeMap::new()),
            half_done: std::sync::atomic::AtomicBool::new(false),
            backend: w.backend.clone(),
            violations: Mutex::new(Vec::new()),
            deletes: Mutex::new(Vec::new()),
        });
        w.fake = fake;
        let secret = Resource::kubernetes(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "env", "namespace": "ns"}, "stringData": {"DB_PASSWORD": "hunter2-canary"}}))
        .expect("secret");
        let g = DesiredGraph::new("s", vec![secret.clone()]).expect("graph");
        w.engine().up(&g, BTreeMap::new()).await.expect("up");
        let stored = w.stored().await;
        let record = &stored.resources[&secret.id];
        assert!(
            record.desired_hash.starts_with("hmac-sha256:"),
            "{record:?}"
        );
        assert!(record.live_hash.starts_with("hmac-sha256:"), "{record:?}");
        assert_ne!(
            record.desired_hash,
            crate::diff::body_hash(&g.get(&secret.id).expect("res").body),
            "not the plain hash a reader could test guesses against"
        );
        // Another process: a new backend and authenticator over the same files.
        let writes = w.writes();
        w.backend = Arc::new(Counted {
            inner: FileBackend::new(&dir).with_codec(authenticated()),
            writes: AtomicUsize::new(0),
        });
        let again = w.engine().up(&g, BTreeMap::new()).await.expect("no-op up");
        assert!(again.plan.is_empty());
        assert_eq!(w.writes(), 0, "no state write after {writes}");
        assert_eq!(w.stored().await.resources[&secret.id], *record);
    }

    #[tokio::test]
    async fn up_then_runs_after_a_success_under_the_lock_and_its_error_fails_the_run() {
        let w = world();
        let engine = w.engine();
        let g = graph(&["a"], None);
        let backend = w.backend.clone();
        let seen = Mutex::new(None);
        let report = engine
            .up_then(&g, BTreeMap::new(), async |report: &UpReport| {
                // The stack lock is still held.
                let locked = backend.lock("s").await.err().is_some_and(|e| e.is_locked());
                *seen.lock().expect("seen") = Some((report.serial, report.lineage.clone(), locked));
                Ok(())
            })
            .await
            .expect("up");
        let stored = w.stored().await;
        assert_eq!(
            seen.lock().expect("seen").clone(),
            Some((stored.serial, stored.lineage.clone(), true))
        );
        assert_eq!(
            (report.serial, report.lineage),
            (stored.serial, stored.lineage)
        );
        let err = engine
            .up_then(&g, BTreeMap::new(), async |_: &UpReport| {
                Err(StateError::Passphrase("record failed".into()))
            })
            .await
            .expect_err("after failed");
        assert!(err.to_string().contains("record failed"), "{err}");
        // The lock was released all the same.
        assert!(w.backend.lock("s").await.is_ok());
        // A failed up never calls it.
        let failing = graph(&["fail"], None);
        let called = AtomicUsize::new(0);
        let _ = engine
            .up_then(&failing, BTreeMap::new(), async |_: &UpReport| {
                called.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await
            .expect_err("fails");
        assert_eq!(called.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failure_records_what_finished_and_keeps_only_the_failed_create_pending() {
        let w = world();
        let engine = w.engine();
        let g = graph(&["a", "fail"], Some(("after-fail", "fail")));
        let err = engine.up(&g, BTreeMap::new()).await.expect_err("fails");
        let EngineError::Apply {
            failed, skipped, ..
        } = err
        else {
            panic!("{err}");
        };
        assert_eq!(failed.len(), 1);
        assert_eq!(skipped, vec![id("after-fail")]);
        assert!(w.violations().is_empty(), "{:?}", w.violations());
        let stored = w.stored().await;
        // The skipped step is forgotten; the failed create may have left its
        // object, so it stays pending for the next run to find.
        let pending: Vec<&str> = stored.pending.iter().map(|p| p.id.name.as_str()).collect();
        assert_eq!(pending, ["fail"]);
        let recorded: Vec<&str> = stored.resources.keys().map(|i| i.name.as_str()).collect();
        assert_eq!(recorded, ["a", "ns"]);
        assert!(stored.outputs.is_empty(), "outputs only on success");
    }

    #[tokio::test]
    async fn an_object_left_by_a_failed_create_is_adopted_by_the_next_run() {
        let w = world();
        let engine = w.engine();
        let g = graph(&["a", "half"], None);
        engine
            .up(&g, BTreeMap::new())
            .await
            .expect_err("half fails");
        assert!(
            w.fake
                .objects
                .lock()
                .expect("lock")
                .contains_key(&id("half"))
        );
        // The next run finds it carrying the stack's label and recorded as
        // pending: it is taken into the state, not refused as someone else's.
        let report = engine.up(&g, BTreeMap::new()).await.expect("adopted");
        let step = report
            .plan
            .steps
            .iter()
            .find(|s| s.id == id("half"))
            .expect("a step for half");
        assert_eq!(step.action, Action::Update, "{step:?}");
        assert!(
            step.reason
                .as_deref()
                .is_some_and(|r| r.contains("interrupted run")),
            "{step:?}"
        );
        let stored = w.stored().await;
        assert!(stored.pending.is_empty(), "{:?}", stored.pending);
        assert!(stored.resources.contains_key(&id("half")));
        // And destroy removes it with the rest.
        engine.destroy("s").await.expect("destroy");
        assert!(w.fake.objects.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn cancellation_saves_what_finished_and_keeps_steps_in_flight_pending() {
        let w = world();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let engine = w.engine().with_cancel(rx);
        let g = graph(&["a", "slow"], Some(("after-slow", "slow")));
        let run = engine.up(&g, BTreeMap::new());
        let cancel = async {
            // Once `a` is done (namespace and `a` applied), cancel.
            while w.fake.objects.lock().expect("lock").len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(true);
        };
        let (result, ()) = tokio::join!(run, cancel);
        assert!(
            matches!(result, Err(EngineError::Cancelled(1))),
            "{result:?}"
        );
        let stored = w.stored().await;
        let pending: Vec<&str> = stored.pending.iter().map(|p| p.id.name.as_str()).collect();
        assert_eq!(pending, ["slow"], "only the step in flight stays pending");
        let recorded: Vec<&str> = stored.resources.keys().map(|i| i.name.as_str()).collect();
        assert_eq!(recorded, ["a", "ns"]);
        // The lock is released: the next run resumes.
        assert!(w.backend.lock("s").await.is_ok());
    }

    fn step(name: &str, action: Action, after: &[&str]) -> Step {
        Step {
            id: id(name),
            action,
            reason: None,
            diff: Vec::new(),
            after: after.iter().map(|a| id(a)).collect(),
            target: None,
            unvalidated: None,
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
