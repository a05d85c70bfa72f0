//! The planner: a pure function from (desired graph, recorded state, observations)
//! to a [`Plan`]. No IO, no clock.
//!
//! Before planning, the engine reads every desired or recorded resource and asks for a
//! server-side dry-run only where [`needs_dry_run`] says so: when the desired body or
//! the live object changed since the last apply (hashes in the [`ResourceRecord`]), or
//! when an unrecorded object already exists. A run where nothing changed costs one GET
//! per resource and no dry-run.
//!
//! Rules for each desired resource, in graph order:
//!
//! | recorded | live | outcome |
//! |---|---|---|
//! | no  | none | **Create**; a dry-run `Rejected` (the engine dry-runs creates whose namespace exists) → a problem with the code and message |
//! | no  | some | selected by [`PlanOptions::import`] → **Import** (diff from the dry-run when there is one; no dry-run → no diff, said in the reason) |
//! | no  | some | labelled with this stack ([`STACK_LABEL`]) *and* a `pending` operation in the state (a crash between create and state write) → planned as if recorded; an empty diff is still an **Update** so that apply records it |
//! | no  | some | otherwise a problem: "… already exists and is not managed by stack S; adopt it with `import` or choose another name" |
//! | yes | none | **Create**, reason "deleted outside the engine" |
//! | yes | some | [`needs_dry_run`] false → **NoOp** |
//! | yes | some | dry-run `Accepted` → field diff of the stripped live object and the would-be object (secrets masked): empty → **NoOp**, else **Update** |
//! | yes | some | dry-run `Immutable` → **Replace** with the API server's message as reason (a problem when protected) |
//! | yes | some | dry-run `Conflict` → a problem naming fields and managers, or with `force_conflicts` an **Update** "forcing ownership of …" |
//! | yes | some | dry-run `Rejected` → a problem with the code and message |
//! | yes | some | dry-run `Forbidden` (RBAC refused the dry-run itself, e.g. a plan credential) → the local diff of the live object projected onto the desired body: empty → **NoOp**, else **Update**, marked [`Step::unvalidated`] (so is a Create whose dry-run was forbidden) |
//! | yes | some | dry-run needed but missing → a problem (engine bug) |
//!
//! A resource that reads values from another ([`crate::values`], e.g. a DNS
//! record's `dataFrom`) is planned with its **resolved** body when every source
//! is unchanged by the plan (its step, planned earlier in graph order, is a
//! no-op; or it is not part of the stack) and its observed object has the value;
//! a record made before values were resolved by the engine is a no-op when the
//! live object has the resolved values ([`needs_dry_run_resolved`]). Otherwise
//! its values are known only after apply: **Create** (or **Import**, or
//! **Update** when it exists), never decided by a dry-run, with each such field
//! in the diff as `(known after apply)`. [`resolve_values`] gives the same
//! view to the engine.
//!
//! Then every recorded resource that is no longer desired is a **Delete** (a problem
//! when protected), in reverse topological order of the recorded `depends_on` edges,
//! each waiting for the recorded dependents that are deleted too. A recorded object
//! that is already gone is still a **Delete** step with reason "already gone" and
//! target [`DeleteTarget::Absent`]: the engine sends no delete, verifies it is absent
//! and drops it from the state (the summary counts it, so nothing leaves the state
//! silently). Deletes come after every create/update/replace step.
//!
//! **Ownership before any delete** ([`ownership`]). The state says what to delete,
//! and the state may have been edited: a live object is deleted only when it
//! carries the stack's label ([`STACK_LABEL`], reported by every provider) and,
//! when the record has a uid, that uid. A recorded object that fails either check
//! is a **Refuse** step (never executed, the record stays, the engine reports it
//! and the run fails at the end); so is a Namespace whose deletion would take a
//! refused object with it. A Delete or Replace carries the checked object's uid
//! ([`DeleteTarget::Live`]) and the Kubernetes provider makes the delete
//! conditional on it, so an object recreated after planning is not deleted either.
//! A Replace of an object that fails the checks is a problem.
//!
//! Problems are collected for the whole plan (never only the first) and returned as
//! [`PlanError::Problems`]. `destroy` is [`plan`] against
//! [`DesiredGraph::empty`](crate::graph::DesiredGraph::empty).
//!
//! Cost: O(n log n) map work plus one canonical hash of each desired body and each
//! projected live object; diffs are computed only for resources with a dry-run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::diff::{diff, project, strip_server_fields};
use crate::graph::{DesiredGraph, GraphError, topological_order};
use crate::observe::{DryRun, Observed};
use crate::plan::{
    Action, AfterApplyMarker, ChangeKind, DeleteTarget, FieldChange, KNOWN_AFTER_APPLY, Plan,
    Shown, Step,
};
use crate::remedy::{Remedy, suffix};
use crate::resource::{Resource, ResourceId, STACK_LABEL};
use crate::state::auth::RecordHasher;
use crate::state::{ResourceRecord, StackState};
use crate::values::{self, Resolution, ValueFrom};

/// The reason of a recorded resource that no longer exists.
const DELETED_OUTSIDE: &str = "deleted outside the engine";
/// The reason of an import.
const ADOPTING: &str = "adopting the existing object";
/// The reason of a step resuming an interrupted create.
const RESUMING: &str = "created by an interrupted run; recording it in the state";

/// True when the planner needs a server-side dry-run of `desired` to decide.
///
/// - `live` is `None` → `false` (the resource will be created);
/// - recorded, and neither the desired body ([`RecordHasher::desired_hash`]) nor the
///   live object ([`RecordHasher::live_hash`], projected onto the desired body)
///   changed since the last apply →
///   `false` (a no-op, decided without asking the API server);
/// - otherwise `true`: the desired body changed, the live object drifted, or an
///   unrecorded object exists. In that last case the dry-run shows what an import or
///   a crash-resume will change; the planner tolerates its absence for an import
///   (no diff shown) and for an adoption refusal (not needed), but requires it to
///   resume after a crash.
///
/// Pass the resource from the [`DesiredGraph`] (stamped with labels and config
/// hash): it is the body the engine applies and records; and the stack's
/// `hasher` (the one its records were made with).
pub fn needs_dry_run(
    desired: &Resource,
    record: Option<&ResourceRecord>,
    live: Option<&Value>,
    hasher: &RecordHasher,
) -> bool {
    let Some(live) = live else {
        return false;
    };
    let Some(record) = record else {
        return true;
    };
    record.desired_hash != hasher.desired_hash(desired)
        || record.live_hash != hasher.live_hash(live, desired)
}

/// The ownership checks before any delete of `id` on behalf of `stack`: the live
/// object must carry the stack's label, and its uid must be the recorded one
/// when one is recorded. `Ok` holds the live uid (the delete is made conditional
/// on it); `Err` a sentence naming the object and the failed check.
pub fn ownership(
    stack: &str,
    id: &ResourceId,
    recorded_uid: Option<&str>,
    live: &Value,
) -> Result<Option<String>, String> {
    let owner = live
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(STACK_LABEL))
        .and_then(Value::as_str);
    let live_uid = live.pointer("/metadata/uid").and_then(Value::as_str);
    if owner != Some(stack) {
        let found = match owner {
            Some(other) => format!("it is labelled {STACK_LABEL}={other}"),
            None => format!("it has no {STACK_LABEL} label"),
        };
        return Err(format!(
            "{id} is recorded in the state of stack {stack} but the live object does not carry the label {STACK_LABEL}={stack} ({found}): refusing to delete an object the stack cannot prove it owns"
        ));
    }
    if let Some(recorded) = recorded_uid
        && live_uid != Some(recorded)
    {
        return Err(format!(
            "{id} is recorded with uid {recorded} but the live object has uid {}: it is not the object this stack created (recreated outside the engine, or the state was edited); refusing to delete it",
            live_uid.unwrap_or("(none)")
        ));
    }
    Ok(live_uid.map(str::to_owned))
}

/// Which existing, unrecorded objects the plan may adopt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ImportSelection {
    /// None: an existing unrecorded object is a problem.
    #[default]
    None,
    /// Every desired object that already exists.
    All,
    /// Only these ids (each must be part of the stack).
    Only(BTreeSet<ResourceId>),
}

impl ImportSelection {
    /// True when `id` may be imported.
    pub fn selects(&self, id: &ResourceId) -> bool {
        match self {
            ImportSelection::None => false,
            ImportSelection::All => true,
            ImportSelection::Only(ids) => ids.contains(id),
        }
    }
}

/// Options of [`plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Take ownership of fields other field managers own (server-side apply `force`).
    pub force_conflicts: bool,
    /// Existing objects to adopt.
    pub import: ImportSelection,
    /// Notes copied into the plan ([`Plan::notes`]), for its renderings.
    pub notes: Vec<String>,
}

/// What kind of problem stopped the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The object exists but this stack does not manage it.
    NotManaged,
    /// Other field managers own fields we set.
    Conflict,
    /// The API server rejected the desired body.
    Rejected,
    /// An object selected for import would have to be replaced.
    ImportNeedsReplace,
    /// A protected resource would be deleted or replaced.
    Protected,
    /// An object that must be replaced fails the ownership checks (label, uid).
    NotOwned,
    /// `import` names a resource that is not part of the stack.
    UnknownImport,
    /// The recorded dependencies of the resources to delete form a cycle.
    RecordedCycle,
    /// A resource was not observed (engine bug).
    MissingObservation,
    /// A needed dry-run is missing (engine bug).
    MissingDryRun,
    /// A value is read from a resource of the stack that is not a dependency
    /// ([`crate::graph::ValueSourceError`]).
    ValueSource,
}

/// One reason the plan cannot be made; the message names the resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanProblem {
    /// The resource concerned.
    pub id: ResourceId,
    /// The kind of problem.
    pub kind: ProblemKind,
    /// A full sentence naming the resource and what to do.
    pub message: String,
}

/// Planning failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Every problem found, in plan order.
    #[error("cannot plan: {}", ProblemList(.0))]
    Problems(Vec<PlanProblem>),
}

struct ProblemList<'a>(&'a [PlanProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Computes the plan. Pure: see the module documentation for the rules.
/// `hasher` is the stack's record hasher (the one the engine records with).
pub fn plan(
    graph: &DesiredGraph,
    state: &StackState,
    observed: &Observed,
    hasher: &RecordHasher,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut planner = Planner::new(graph, state, observed, hasher, opts);
    planner.check_import_selection();
    for resource in graph.resources() {
        planner.plan_desired(resource);
    }
    planner.plan_deletes();
    if planner.problems.is_empty() {
        Ok(Plan {
            stack: graph.stack().to_owned(),
            steps: planner.steps,
            notes: opts.notes.clone(),
        })
    } else {
        Err(PlanError::Problems(planner.problems))
    }
}

/// How [`plan`] sees every resource that reads values from another
/// ([`crate::values`]): resolved when every source is unchanged by the plan,
/// else known only after apply. Pure; the same inputs give [`plan`]'s view.
/// The engine uses it to dry-run resolved bodies before planning, and to apply
/// resolved bodies ([`DesiredGraph::with_resolutions`]). Empty when no resource
/// reads a value.
pub fn resolve_values(
    graph: &DesiredGraph,
    state: &StackState,
    observed: &Observed,
    hasher: &RecordHasher,
    opts: &PlanOptions,
) -> BTreeMap<ResourceId, Resolution> {
    if !graph.reads_values() {
        return BTreeMap::new();
    }
    let mut planner = Planner::new(graph, state, observed, hasher, opts);
    for resource in graph.resources() {
        planner.plan_desired(resource);
    }
    planner.resolutions
}

/// [`needs_dry_run`] for a resource that reads values: `resolved` is the body
/// planned and applied, `unresolved` the graph's (holding the references). A
/// record made before values were resolved by the engine is unchanged when the
/// live object has the resolved values ([`values::legacy_in_sync`]).
pub fn needs_dry_run_resolved(
    unresolved: &Resource,
    resolved: &Resource,
    record: Option<&ResourceRecord>,
    live: Option<&Value>,
    hasher: &RecordHasher,
) -> bool {
    needs_dry_run(resolved, record, live, hasher)
        && !matches!((record, live), (Some(record), Some(live))
            if values::legacy_in_sync(record, unresolved, resolved, live, hasher))
}

struct Planner<'a> {
    graph: &'a DesiredGraph,
    state: &'a StackState,
    observed: &'a Observed,
    hasher: &'a RecordHasher,
    opts: &'a PlanOptions,
    steps: Vec<Step>,
    problems: Vec<PlanProblem>,
    /// Desired resources planned as no-ops so far (sources whose values are known).
    unchanged: BTreeSet<ResourceId>,
    /// How each resource reading values was resolved.
    resolutions: BTreeMap<ResourceId, Resolution>,
}

/// The outcome of planning one resource.
enum Decision {
    Step {
        action: Action,
        reason: Option<String>,
        diff: Vec<FieldChange>,
        /// [`Step::unvalidated`].
        unvalidated: Option<String>,
    },
    Problem(ProblemKind, String),
}

fn step(action: Action, reason: Option<String>, diff: Vec<FieldChange>) -> Decision {
    Decision::Step {
        action,
        reason,
        diff,
        unvalidated: None,
    }
}

/// A step decided without the API server: its dry-run was forbidden
/// (`message`, the server's answer).
fn unvalidated_step(
    action: Action,
    reason: Option<String>,
    diff: Vec<FieldChange>,
    message: &str,
) -> Decision {
    Decision::Step {
        action,
        reason,
        diff,
        unvalidated: Some(message.to_owned()),
    }
}

impl<'a> Planner<'a> {
    fn new(
        graph: &'a DesiredGraph,
        state: &'a StackState,
        observed: &'a Observed,
        hasher: &'a RecordHasher,
        opts: &'a PlanOptions,
    ) -> Self {
        Planner {
            graph,
            state,
            observed,
            hasher,
            opts,
            steps: Vec::with_capacity(graph.len() + state.resources.len()),
            problems: Vec::new(),
            unchanged: BTreeSet::new(),
            resolutions: BTreeMap::new(),
        }
    }

    fn problem(&mut self, id: &ResourceId, kind: ProblemKind, message: String) {
        self.problems.push(PlanProblem {
            id: id.clone(),
            kind,
            message,
        });
    }

    fn check_import_selection(&mut self) {
        if let ImportSelection::Only(ids) = &self.opts.import {
            for id in ids.iter().filter(|id| !self.graph.contains(id)) {
                let message = format!(
                    "import names {id}, which is not part of stack {}",
                    self.graph.stack()
                );
                self.problem(id, ProblemKind::UnknownImport, message);
            }
        }
    }

    fn plan_desired(&mut self, desired: &Resource) {
        let id = &desired.id;
        let Some(observation) = self.observed.get(id) else {
            let message = format!(
                "{id} was not observed (engine bug: every desired or recorded resource must be read before planning)"
            );
            self.problem(id, ProblemKind::MissingObservation, message);
            return;
        };
        let record = self.state.resources.get(id);
        let resolution = self.resolve(desired);
        let decision = match &resolution {
            None => self.decide(desired, desired, record, observation),
            Some(Resolution::Known(resolved)) => {
                self.decide(resolved, desired, record, observation)
            }
            Some(Resolution::Unknown { partial, unknown }) => {
                self.decide_unknown(partial, unknown, record, observation.live.as_ref())
            }
        };
        if let Some(resolution) = resolution {
            self.resolutions.insert(id.clone(), resolution);
        }
        match decision {
            Decision::Step {
                action,
                reason,
                diff,
                unvalidated,
            } => {
                let mut target = None;
                if action == Action::Replace
                    && let Some(live) = &observation.live
                {
                    let recorded_uid = record.and_then(|r| r.uid.as_deref());
                    match ownership(self.graph.stack(), id, recorded_uid, live) {
                        Ok(uid) => target = Some(DeleteTarget::Live { uid }),
                        Err(why) => {
                            let message = format!("{id} must be replaced, but: {why}");
                            self.problem(id, ProblemKind::NotOwned, message);
                            return;
                        }
                    }
                }
                if action == Action::NoOp {
                    self.unchanged.insert(id.clone());
                }
                self.steps.push(Step {
                    id: id.clone(),
                    action,
                    reason,
                    diff,
                    after: self.graph.dependencies(id).iter().cloned().collect(),
                    target,
                    unvalidated,
                });
            }
            Decision::Problem(kind, message) => self.problem(id, kind, message),
        }
    }

    /// The decision for `desired` (resolved when it reads values; `unresolved`
    /// is the graph's body, for records made before values were resolved).
    fn decide(
        &self,
        desired: &Resource,
        unresolved: &Resource,
        record: Option<&ResourceRecord>,
        observation: &crate::observe::Observation,
    ) -> Decision {
        let id = &desired.id;
        match (record, &observation.live) {
            (None, None) => match observation.dry_run.as_ref() {
                // A create the API server refused in its dry-run: a problem now,
                // not a failure halfway through the apply.
                Some(DryRun::Rejected { code, message }) => Decision::Problem(
                    ProblemKind::Rejected,
                    format!("{id} was rejected by the API server ({code}): {message}"),
                ),
                Some(DryRun::Forbidden { message }) => {
                    unvalidated_step(Action::Create, None, Vec::new(), message)
                }
                _ => step(Action::Create, None, Vec::new()),
            },
            (Some(_), None) => step(Action::Create, Some(DELETED_OUTSIDE.to_owned()), Vec::new()),
            (None, Some(live)) => self.plan_unrecorded(desired, live, observation.dry_run.as_ref()),
            (Some(record), Some(live)) => {
                if needs_dry_run_resolved(
                    unresolved,
                    desired,
                    Some(record),
                    Some(live),
                    self.hasher,
                ) {
                    self.plan_changed(desired, record.protect, live, observation.dry_run.as_ref())
                } else {
                    step(Action::NoOp, None, Vec::new())
                }
            }
        }
    }

    /// How `res` reads its values now: `None` when it reads none; known when
    /// every source is unchanged by this plan (a no-op step, or not part of the
    /// stack) and its observed object has the value.
    fn resolve(&self, res: &Resource) -> Option<Resolution> {
        let froms = self.graph.values_from(&res.id);
        if froms.is_empty() {
            return None;
        }
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for from in froms {
            let settled =
                !self.graph.contains(&from.source) || self.unchanged.contains(&from.source);
            let value = settled
                .then(|| self.observed.get(&from.source))
                .flatten()
                .and_then(|o| o.live.as_ref())
                .and_then(|live| from.read(live).ok());
            match value {
                Some(value) => known.push((from, value)),
                None => unknown.push(from.clone()),
            }
        }
        let partial = values::resolved(res, &known);
        Some(if unknown.is_empty() {
            Resolution::Known(partial)
        } else {
            Resolution::Unknown { partial, unknown }
        })
    }

    /// A resource with values known only after apply: created, adopted or
    /// updated (never decided by a dry-run: its body is not complete), the
    /// unknown fields shown as `(known after apply)`.
    fn decide_unknown(
        &self,
        partial: &Resource,
        unknown: &[ValueFrom],
        record: Option<&ResourceRecord>,
        live: Option<&Value>,
    ) -> Decision {
        let diff = unknown_diff(partial, unknown, live);
        match (record, live) {
            (None, None) => step(Action::Create, None, diff),
            (Some(_), None) => step(Action::Create, Some(DELETED_OUTSIDE.to_owned()), diff),
            (None, Some(live)) => {
                if self.opts.import.selects(&partial.id) {
                    step(Action::Import, Some(ADOPTING.to_owned()), diff)
                } else if self.resumable(&partial.id, live) {
                    step(Action::Update, Some(RESUMING.to_owned()), diff)
                } else {
                    self.not_managed(&partial.id, live)
                }
            }
            (Some(_), Some(_)) => step(Action::Update, None, diff),
        }
    }

    /// Desired, not recorded, and the object exists.
    fn plan_unrecorded(
        &self,
        desired: &Resource,
        live: &Value,
        dry_run: Option<&DryRun>,
    ) -> Decision {
        let id = &desired.id;
        if self.opts.import.selects(id) {
            return self.plan_import(desired, live, dry_run);
        }
        if self.resumable(id, live) {
            return match self.plan_changed(desired, false, live, dry_run) {
                Decision::Step {
                    action,
                    reason,
                    diff,
                    unvalidated,
                } => {
                    let action = if action == Action::NoOp {
                        Action::Update
                    } else {
                        action
                    };
                    let reason = match reason {
                        Some(reason) => format!("created by an interrupted run; {reason}"),
                        None => RESUMING.to_owned(),
                    };
                    Decision::Step {
                        action,
                        reason: Some(reason),
                        diff,
                        unvalidated,
                    }
                }
                problem => problem,
            };
        }
        self.not_managed(id, live)
    }

    /// An unrecorded live object this run created before it was interrupted:
    /// labelled with the stack and pending in its state.
    fn resumable(&self, id: &ResourceId, live: &Value) -> bool {
        let owner = live
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(STACK_LABEL))
            .and_then(Value::as_str);
        owner == Some(self.graph.stack()) && self.state.pending.iter().any(|op| op.id == *id)
    }

    /// The problem of an existing object the stack does not manage.
    fn not_managed(&self, id: &ResourceId, live: &Value) -> Decision {
        let stack = self.graph.stack();
        let owner = live
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(STACK_LABEL))
            .and_then(Value::as_str);
        let message = match owner {
            Some(owner) if owner == stack => format!(
                "{id} already exists and carries the label of stack {stack} but is not recorded in its state (was the state lost?); adopt it with `import` or choose another name"
            ),
            Some(other) => format!(
                "{id} already exists and is managed by stack {other}, not by stack {stack}; adopt it with `import` or choose another name"
            ),
            None => format!(
                "{id} already exists and is not managed by stack {stack}; adopt it with `import` or choose another name"
            ),
        };
        Decision::Problem(ProblemKind::NotManaged, message)
    }

    fn plan_import(&self, desired: &Resource, live: &Value, dry_run: Option<&DryRun>) -> Decision {
        let id = &desired.id;
        match dry_run {
            None => step(
                Action::Import,
                Some("adopting the existing object; changes not previewed (no dry-run)".to_owned()),
                Vec::new(),
            ),
            Some(DryRun::Immutable { message }) => Decision::Problem(
                ProblemKind::ImportNeedsReplace,
                format!(
                    "{id} cannot be imported without replacing it: {message}; make the desired object match, or delete the existing one"
                ),
            ),
            Some(other) => match self.plan_changed(desired, false, live, Some(other)) {
                Decision::Step {
                    diff,
                    reason,
                    unvalidated,
                    ..
                } => Decision::Step {
                    action: Action::Import,
                    reason: Some(match reason {
                        Some(reason) => format!("{ADOPTING}; {reason}"),
                        None => ADOPTING.to_owned(),
                    }),
                    diff,
                    unvalidated,
                },
                problem => problem,
            },
        }
    }

    /// Desired and live exist and a dry-run was needed.
    fn plan_changed(
        &self,
        desired: &Resource,
        recorded_protect: bool,
        live: &Value,
        dry_run: Option<&DryRun>,
    ) -> Decision {
        let id = &desired.id;
        let is_secret = |path: &str| desired.is_secret_path(path);
        match dry_run {
            None => Decision::Problem(
                ProblemKind::MissingDryRun,
                format!(
                    "{id} changed or drifted but no dry-run result was observed (engine bug: the engine must dry-run every resource `needs_dry_run` selects)"
                ),
            ),
            Some(DryRun::Accepted { object }) => {
                let changes = diff(
                    &strip_server_fields(live),
                    &strip_server_fields(object),
                    &is_secret,
                );
                if changes.is_empty() {
                    step(Action::NoOp, None, changes)
                } else {
                    step(Action::Update, None, changes)
                }
            }
            Some(DryRun::Immutable { message }) => {
                if desired.options.protect || recorded_protect {
                    return Decision::Problem(
                        ProblemKind::Protected,
                        format!(
                            "{id} is protected but must be replaced ({message}); remove `protect` first"
                        ),
                    );
                }
                step(
                    Action::Replace,
                    Some(message.clone()),
                    projected_diff(desired, live),
                )
            }
            Some(DryRun::Conflict { conflicts, message }) => {
                let fields = if conflicts.is_empty() {
                    message.clone()
                } else {
                    conflicts.join(", ")
                };
                if self.opts.force_conflicts {
                    step(
                        Action::Update,
                        Some(format!("forcing ownership of {fields}")),
                        projected_diff(desired, live),
                    )
                } else {
                    Decision::Problem(
                        ProblemKind::Conflict,
                        format!(
                            "{id} has fields owned by other field managers: {fields}{}",
                            suffix("; ", &Remedy::PlanConflict)
                        ),
                    )
                }
            }
            Some(DryRun::Rejected { code, message }) => Decision::Problem(
                ProblemKind::Rejected,
                format!("{id} was rejected by the API server ({code}): {message}"),
            ),
            // The credential may not dry-run: the local diff, marked.
            Some(DryRun::Forbidden { message }) => {
                let changes = projected_diff(desired, live);
                let action = if changes.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                };
                unvalidated_step(action, None, changes, message)
            }
        }
    }

    fn plan_deletes(&mut self) {
        let graph = self.graph;
        let state = self.state;
        let stack = graph.stack();
        let mut doomed: BTreeMap<&ResourceId, Option<&ResourceRecord>> = state
            .resources
            .iter()
            .filter(|(id, _)| !graph.contains(id))
            .map(|(id, record)| (id, Some(record)))
            .collect();
        // Objects created by an interrupted run and no longer desired, when observed
        // and labelled with this stack.
        for op in &state.pending {
            let ours = self
                .observed
                .get(&op.id)
                .and_then(|o| o.live.as_ref())
                .and_then(|live| live.pointer("/metadata/labels"))
                .and_then(|labels| labels.get(STACK_LABEL))
                .and_then(Value::as_str)
                == Some(stack);
            if ours && !graph.contains(&op.id) {
                doomed.entry(&op.id).or_insert(None);
            }
        }
        let mut edges: BTreeMap<ResourceId, BTreeSet<ResourceId>> = BTreeMap::new();
        for (id, record) in &doomed {
            let deps = record
                .iter()
                .flat_map(|r| &r.depends_on)
                .filter(|dep| doomed.contains_key(dep) && dep != id)
                .cloned()
                .collect();
            edges.insert((*id).clone(), deps);
        }
        let order = match topological_order(&edges) {
            Ok(order) => order,
            Err(error) => {
                let first = match &error {
                    GraphError::Cycle(cycle) => cycle.first().cloned(),
                    _ => None,
                };
                let id = first.or_else(|| edges.keys().next().cloned());
                if let Some(id) = id {
                    let message = format!(
                        "the recorded dependencies of the resources to delete are inconsistent ({error}); repair the state"
                    );
                    self.problem(&id, ProblemKind::RecordedCycle, message);
                }
                edges.keys().cloned().collect()
            }
        };
        let mut dependents: BTreeMap<&ResourceId, Vec<ResourceId>> = BTreeMap::new();
        for (id, deps) in &edges {
            for dep in deps {
                dependents.entry(dep).or_default().push(id.clone());
            }
        }
        for id in order.iter().rev() {
            let record = doomed.get(id).copied().flatten();
            if record.is_some_and(|r| r.protect) {
                let message = format!("{id} is protected; remove `protect` first");
                self.problem(id, ProblemKind::Protected, message);
                continue;
            }
            let Some(observation) = self.observed.get(id) else {
                let message = format!(
                    "{id} was not observed (engine bug: every desired or recorded resource must be read before planning)"
                );
                self.problem(id, ProblemKind::MissingObservation, message);
                continue;
            };
            let (action, reason, target) = match &observation.live {
                None => (
                    Action::Delete,
                    Some("already gone".to_owned()),
                    Some(DeleteTarget::Absent),
                ),
                Some(live) => {
                    let recorded_uid = record.and_then(|r| r.uid.as_deref());
                    match ownership(stack, id, recorded_uid, live) {
                        Ok(uid) => (
                            Action::Delete,
                            record.is_none().then(|| {
                                "created by an interrupted run and no longer desired".to_owned()
                            }),
                            Some(DeleteTarget::Live { uid }),
                        ),
                        Err(why) => (Action::Refuse, Some(why), None),
                    }
                }
            };
            self.steps.push(Step {
                id: id.clone(),
                action,
                reason,
                diff: Vec::new(),
                after: dependents.remove(id).unwrap_or_default(),
                target,
                unvalidated: None,
            });
        }
        self.refuse_namespaces_holding_refused_objects();
    }

    /// Deleting a Namespace deletes everything in it: a Namespace holding a
    /// refused object is refused too.
    fn refuse_namespaces_holding_refused_objects(&mut self) {
        let refused: Vec<ResourceId> = self
            .steps
            .iter()
            .filter(|s| s.action == Action::Refuse)
            .map(|s| s.id.clone())
            .collect();
        for step in &mut self.steps {
            if step.action != Action::Delete || !step.id.is("", "Namespace") {
                continue;
            }
            let held: Vec<String> = refused
                .iter()
                .filter(|r| r.namespace.as_deref() == Some(step.id.name.as_str()))
                .map(ToString::to_string)
                .collect();
            if !held.is_empty() {
                step.action = Action::Refuse;
                step.reason = Some(format!(
                    "{} holds {}, whose delete was refused; deleting the namespace would delete it too",
                    step.id,
                    held.join(", ")
                ));
                step.target = None;
            }
        }
    }
}

/// The fields of a resource whose values are known only after apply: against
/// the live object projected onto it when there is one (every field apply
/// changes), else only the unknown fields; each unknown one `(known after apply)`.
fn unknown_diff(
    partial: &Resource,
    unknown: &[ValueFrom],
    live: Option<&Value>,
) -> Vec<FieldChange> {
    let marker = Value::String(KNOWN_AFTER_APPLY.to_owned());
    let fields: BTreeSet<String> = unknown.iter().map(|u| values::dotted(&u.field)).collect();
    let mut changes = match live {
        Some(live) => {
            let desired = Resource {
                body: values::with_placeholders(partial, unknown, &marker),
                ..partial.clone()
            };
            projected_diff(&desired, live)
        }
        None => fields
            .iter()
            .map(|path| FieldChange {
                path: path.clone(),
                kind: ChangeKind::Added,
                old: None,
                new: None,
            })
            .collect(),
    };
    for change in &mut changes {
        if fields.contains(&change.path) {
            change.new = Some(Shown::KnownAfterApply(AfterApplyMarker));
        }
    }
    changes
}

/// The fields apply will change, without a dry-run object: the live object projected
/// onto the desired body, compared with the desired body (secrets masked).
fn projected_diff(desired: &Resource, live: &Value) -> Vec<FieldChange> {
    let is_secret = |path: &str| desired.is_secret_path(path);
    let projected = project(&strip_server_fields(live), &desired.body);
    diff(&projected, &desired.body, &is_secret)
}

#[cfg(test)]
mod tests;
