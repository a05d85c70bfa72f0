//! Saved plans (as Terraform's `plan -out`): what `stacks preview --out FILE`
//! writes and `stacks up --plan FILE` applies exactly, or refuses.
//!
//! A [`SavedPlan`] records what the plan was made from and what it decided:
//! the format version, the stack (and its instance, e.g. the PR number), the
//! state's lineage and serial (or that there was none yet, with the lineage the
//! first state will get), the configuration's hash, the image references, for
//! every step the desired body's hash and a fingerprint of the live object
//! ([`LiveBasis`]: the hash of the live object projected onto the desired body,
//! and its uid), the planned steps themselves, and a plan id: a SHA-256 over
//! all of it ([`SavedPlan::plan_id`]), shown in every rendering so a reviewer
//! and the apply can name the same plan.
//!
//! Applying re-plans from scratch under the stack lock and compares with
//! [`compare`] (pure): every difference is a [`Moved`] naming what moved
//! (state, configuration, images, a desired body, a live object, an action);
//! any difference refuses the apply before its first write. [`SavedPlan::parse`]
//! refuses a file that is not a complete saved plan (truncated), that is of
//! another format version, or whose content no longer matches its id (edited).
//!
//! Hashes of bodies holding secret values are keyed ([`RecordHasher`]), so the
//! file carries no secret and no unkeyed hash of one; the plan's diffs show
//! secrets as `[secret]`, as every rendering does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{canonical_json, sha256_hex};
use crate::graph::DesiredGraph;
use crate::observe::Observed;
use crate::plan::{Action, Plan};
use crate::resource::ResourceId;
use crate::state::StackState;
use crate::state::auth::RecordHasher;

/// The `format` of a saved plan document.
pub const SAVED_PLAN_FORMAT: &str = "preview-envs/saved-plan";
/// Version of the saved plan document; a file of another version is refused.
pub const SAVED_PLAN_VERSION: u32 = 1;

/// The state a plan was made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateBasis {
    /// False when the stack had no state yet: `lineage` is then the lineage
    /// the first state is created with when the plan is applied.
    pub exists: bool,
    /// The state's lineage.
    pub lineage: String,
    /// The state's serial (0 without a state).
    pub serial: u64,
}

/// What the live object was when planned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", deny_unknown_fields)]
pub enum LiveBasis {
    /// It did not exist.
    Absent,
    /// It existed.
    Present {
        /// For a desired resource: the hash of the live object projected onto
        /// the desired body ([`RecordHasher::live_hash`]); absent for an object
        /// that is only deleted (its uid identifies it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
        /// Its uid, when the provider reports one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
}

/// One step's basis: the desired body and the live object it was decided on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceBasis {
    /// The resource.
    pub resource: ResourceId,
    /// The planned action.
    pub action: Action,
    /// Hash of the desired body ([`RecordHasher::desired_hash`]); absent for a
    /// resource that is no longer desired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_hash: Option<String>,
    /// The live object.
    pub live: LiveBasis,
}

/// What the engine saw when it planned: the state and one [`ResourceBasis`]
/// per step, in plan order. Made by [`basis`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Basis {
    /// The state.
    pub state: StateBasis,
    /// Every step's basis.
    pub resources: Vec<ResourceBasis>,
}

/// What the caller knows about the run: which stack instance, from which
/// configuration, with which images.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanMeta {
    /// The kind of stack (`preview-pr`).
    pub kind: String,
    /// The pull request, for a preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    /// Hash of the stack's resolved configuration.
    pub config_hash: String,
    /// Image references by where they run (`web`, `api`, or
    /// `Kind/namespace/name/container`).
    pub images: BTreeMap<String, String>,
    /// For a stack with no state yet: the secrets this plan generated, sealed
    /// (never in clear), so that `up --plan` applies the same values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_secrets: Option<FirstSecrets>,
}

/// What a plan made before the stack's first state generated and sealed: the
/// stack's wrapped data key (unwrapped only with the state passphrase) and the
/// sealed outputs (e.g. the database role's password). `up --plan` starts the
/// new state from them, so the plan's generated values are the applied ones:
/// the same Secret bodies, the same keyed hashes, the same plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirstSecrets {
    /// The wrapped data key the outputs are sealed with.
    pub encryption: crate::state::crypto::Encryption,
    /// Sealed outputs by name.
    pub outputs: BTreeMap<String, crate::state::Output>,
}

/// A saved plan: see the module documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPlan {
    /// [`SAVED_PLAN_FORMAT`].
    pub format: String,
    /// [`SAVED_PLAN_VERSION`].
    pub format_version: u32,
    /// `sha256:<hex>` over the canonical JSON of every other field.
    pub plan_id: String,
    /// The stack's state name (`preview-pr-123`).
    pub stack: String,
    /// Kind, PR number, configuration hash and images.
    pub meta: PlanMeta,
    /// The state and every step's desired and live basis.
    pub basis: Basis,
    /// The plan itself (steps in execution order, their diffs and reasons).
    pub plan: Plan,
}

/// Why a saved plan cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    /// Not JSON, or not a complete document.
    #[error(
        "{origin} is not a complete saved plan ({message}); was it truncated?{}",
        crate::remedy::suffix(" ", &crate::remedy::Remedy::RemakeTruncatedPlan { file: origin })
    )]
    Malformed {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Another format or version.
    #[error(
        "{origin} is {found}, not a saved plan of format {SAVED_PLAN_FORMAT} version {SAVED_PLAN_VERSION}"
    )]
    Version {
        /// The file.
        origin: String,
        /// What it says it is.
        found: String,
    },
    /// The content does not hash to its plan id.
    #[error(
        "{origin} was edited or corrupted: its content hashes to {actual}, not to its plan id {recorded}; a saved plan is applied only as it was reviewed — make a new one"
    )]
    Tampered {
        /// The file.
        origin: String,
        /// The id the file names.
        recorded: String,
        /// The hash of its content.
        actual: String,
    },
}

impl SavedPlan {
    /// A saved plan of `plan`, made from `basis`; computes its id.
    pub fn new(stack: &str, meta: PlanMeta, basis: Basis, plan: Plan) -> SavedPlan {
        let mut saved = SavedPlan {
            format: SAVED_PLAN_FORMAT.to_owned(),
            format_version: SAVED_PLAN_VERSION,
            plan_id: String::new(),
            stack: stack.to_owned(),
            meta,
            basis,
            plan,
        };
        saved.plan_id = saved.content_id();
        saved
    }

    /// The plan id: `sha256:` and the hex SHA-256 of the canonical JSON of
    /// the document without its `planId`.
    pub fn plan_id(&self) -> &str {
        &self.plan_id
    }

    /// The first 12 hex digits of the id, for headlines.
    pub fn short_id(&self) -> &str {
        short_id(&self.plan_id)
    }

    fn content_id(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("planId");
        }
        content_hash(&value)
    }

    /// The document, pretty-printed.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a saved plan from `text` (named `origin` in errors): refuses an
    /// incomplete document, another format or version, and content that does
    /// not match its plan id.
    pub fn parse(text: &str, origin: &str) -> Result<SavedPlan, SavedPlanError> {
        let malformed = |message: String| SavedPlanError::Malformed {
            origin: origin.to_owned(),
            message,
        };
        let mut value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
        let format = value.get("format").and_then(Value::as_str);
        let version = value.get("formatVersion").and_then(Value::as_u64);
        if format != Some(SAVED_PLAN_FORMAT) || version != Some(u64::from(SAVED_PLAN_VERSION)) {
            return Err(SavedPlanError::Version {
                origin: origin.to_owned(),
                found: match (format, version) {
                    (Some(f), Some(v)) => format!("format {f} version {v}"),
                    (Some(f), None) => format!("format {f} without a version"),
                    _ => "a JSON document without a saved-plan format".to_owned(),
                },
            });
        }
        let recorded = match value.as_object_mut().and_then(|m| m.remove("planId")) {
            Some(Value::String(id)) => id,
            _ => return Err(malformed("no planId".to_owned())),
        };
        let actual = content_hash(&value);
        if actual != recorded {
            return Err(SavedPlanError::Tampered {
                origin: origin.to_owned(),
                recorded,
                actual,
            });
        }
        if let Value::Object(map) = &mut value {
            map.insert("planId".to_owned(), Value::String(recorded));
        }
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
    }
}

/// The first 12 hex digits of a `sha256:` id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

fn content_hash(value: &Value) -> String {
    format!("sha256:{}", sha256_hex(canonical_json(value).as_bytes()))
}

/// The basis of `plan`: `state` (`exists`: whether it was read from the
/// backend, or is the new state the first apply creates), and for every step
/// the desired hash and the live fingerprint from `observed`. Pure.
pub fn basis(
    graph: &DesiredGraph,
    state: &StackState,
    exists: bool,
    observed: &Observed,
    hasher: &RecordHasher,
    plan: &Plan,
) -> Basis {
    let resources = plan
        .steps
        .iter()
        .map(|step| {
            let desired = graph.get(&step.id);
            let live = observed.get(&step.id).and_then(|o| o.live.as_ref());
            let live = match live {
                None => LiveBasis::Absent,
                Some(live) => LiveBasis::Present {
                    hash: desired.map(|res| hasher.live_hash(live, res)),
                    uid: live
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
            };
            ResourceBasis {
                resource: step.id.clone(),
                action: step.action,
                desired_hash: desired.map(|res| hasher.desired_hash(res)),
                live,
            }
        })
        .collect();
    Basis {
        state: StateBasis {
            exists,
            lineage: state.lineage.clone(),
            serial: state.serial,
        },
        resources,
    }
}

/// The image of every container in `graph`, keyed
/// `Kind/namespace/name/container` (`Kind/name/container` when cluster-scoped).
pub fn images_of(graph: &DesiredGraph) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    for res in graph.resources() {
        let spec = match res.body.pointer("/spec/template/spec") {
            Some(spec) => spec,
            None => match res.body.pointer("/spec/jobTemplate/spec/template/spec") {
                Some(spec) => spec,
                None => continue,
            },
        };
        for list in ["initContainers", "containers"] {
            for container in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(name), Some(image)) = (
                    container.get("name").and_then(Value::as_str),
                    container.get("image").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let owner = match &res.id.namespace {
                    Some(ns) => format!("{}/{ns}/{}", res.id.kind, res.id.name),
                    None => format!("{}/{}", res.id.kind, res.id.name),
                };
                images.insert(format!("{owner}/{name}"), image.to_owned());
            }
        }
    }
    images
}

/// One thing that moved between a saved plan and the plan made when applying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moved {
    /// The plan is for another stack (or another PR).
    Stack {
        /// What the plan is for.
        planned: String,
        /// What is being applied.
        now: String,
    },
    /// The plan was made without a state; one exists now.
    StateCreated {
        /// Its serial now.
        serial: u64,
    },
    /// The stack had a state when planned; it is gone now.
    StateGone {
        /// The planned serial.
        serial: u64,
    },
    /// The state is another history.
    Lineage {
        /// When planned.
        planned: String,
        /// Now.
        now: String,
    },
    /// The state was written since the plan (the plan is older than the state).
    StateNewer {
        /// When planned.
        planned: u64,
        /// Now.
        now: u64,
    },
    /// The state is older than when planned (rolled back).
    StateOlder {
        /// When planned.
        planned: u64,
        /// Now.
        now: u64,
    },
    /// The configuration changed.
    Config {
        /// When planned.
        planned: String,
        /// Now.
        now: String,
    },
    /// An image reference changed, appeared or went away.
    Image {
        /// Where it runs.
        name: String,
        /// When planned.
        planned: Option<String>,
        /// Now.
        now: Option<String>,
    },
    /// A resource is planned now that was not in the saved plan, or the reverse.
    Resource {
        /// The resource.
        id: ResourceId,
        /// True: only in the new plan; false: only in the saved one.
        added: bool,
    },
    /// A desired body changed.
    Desired {
        /// The resource.
        id: ResourceId,
    },
    /// A live object changed (created, deleted, recreated or edited).
    Live {
        /// The resource.
        id: ResourceId,
        /// How.
        how: String,
    },
    /// The planned action changed.
    Action {
        /// The resource.
        id: ResourceId,
        /// When planned.
        planned: Action,
        /// Now.
        now: Action,
    },
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moved::Stack { planned, now } => {
                write!(f, "stack: the plan is for {planned}, not for {now}")
            }
            Moved::StateCreated { serial } => write!(
                f,
                "state: the stack had no state when planned; it now has one (serial {serial})"
            ),
            Moved::StateGone { serial } => write!(
                f,
                "state: the plan was made against serial {serial}; the stack has no state now"
            ),
            Moved::Lineage { planned, now } => write!(
                f,
                "state: lineage {now} is not the planned lineage {planned} (the state was replaced)"
            ),
            Moved::StateNewer { planned, now } => write!(
                f,
                "state: the plan is older than the state: planned at serial {planned}, the state is at serial {now} (another run wrote it since)"
            ),
            Moved::StateOlder { planned, now } => write!(
                f,
                "state: the state is at serial {now}, older than the planned serial {planned} (rolled back?)"
            ),
            Moved::Config { planned, now } => write!(
                f,
                "config: the stack's configuration changed ({} → {})",
                short_id(planned),
                short_id(now)
            ),
            Moved::Image { name, planned, now } => write!(
                f,
                "image {name}: {} → {}",
                planned.as_deref().unwrap_or("(none)"),
                now.as_deref().unwrap_or("(none)")
            ),
            Moved::Resource { id, added: true } => {
                write!(f, "{id}: planned now, not in the saved plan")
            }
            Moved::Resource { id, added: false } => {
                write!(f, "{id}: in the saved plan, not planned now")
            }
            Moved::Desired { id } => write!(f, "{id}: its desired body changed since the plan"),
            Moved::Live { id, how } => {
                write!(f, "{id}: the live object changed since the plan ({how})")
            }
            Moved::Action { id, planned, now } => write!(
                f,
                "{id}: planned to {}, would now {}",
                action_word(*planned),
                action_word(*now)
            ),
        }
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::NoOp => "stay unchanged",
        Action::Create => "be created",
        Action::Update => "be updated",
        Action::Replace => "be replaced",
        Action::Delete => "be deleted",
        Action::Import => "be imported",
        Action::Refuse => "be refused",
    }
}

/// Everything that moved between `saved` and `fresh` (a saved plan of the
/// plan made now), in the order: stack, state, configuration, images,
/// resources. Empty when `fresh` is exactly the saved plan. Pure.
pub fn compare(saved: &SavedPlan, fresh: &SavedPlan) -> Vec<Moved> {
    let mut moved = Vec::new();
    let name = |p: &SavedPlan| match p.meta.pr {
        Some(pr) => format!("{} (PR {pr})", p.stack),
        None => p.stack.clone(),
    };
    if saved.stack != fresh.stack
        || saved.meta.kind != fresh.meta.kind
        || saved.meta.pr != fresh.meta.pr
    {
        // Nothing else is comparable.
        return vec![Moved::Stack {
            planned: name(saved),
            now: name(fresh),
        }];
    }
    moved.extend(compare_state(&saved.basis.state, &fresh.basis.state));
    if saved.meta.config_hash != fresh.meta.config_hash {
        moved.push(Moved::Config {
            planned: saved.meta.config_hash.clone(),
            now: fresh.meta.config_hash.clone(),
        });
    }
    moved.extend(compare_images(&saved.meta.images, &fresh.meta.images));
    moved.extend(compare_resources(
        &saved.basis.resources,
        &fresh.basis.resources,
    ));
    moved
}

/// The state checks of [`compare`]: `fresh` is the state read now. Pure.
pub fn compare_state(saved: &StateBasis, fresh: &StateBasis) -> Vec<Moved> {
    match (saved.exists, fresh.exists) {
        (false, false) => Vec::new(),
        (false, true) => vec![Moved::StateCreated {
            serial: fresh.serial,
        }],
        (true, false) => vec![Moved::StateGone {
            serial: saved.serial,
        }],
        (true, true) if saved.lineage != fresh.lineage => vec![Moved::Lineage {
            planned: saved.lineage.clone(),
            now: fresh.lineage.clone(),
        }],
        (true, true) if fresh.serial > saved.serial => vec![Moved::StateNewer {
            planned: saved.serial,
            now: fresh.serial,
        }],
        (true, true) if fresh.serial < saved.serial => vec![Moved::StateOlder {
            planned: saved.serial,
            now: fresh.serial,
        }],
        (true, true) => Vec::new(),
    }
}

/// Images that changed, appeared or went away.
pub fn compare_images(
    saved: &BTreeMap<String, String>,
    fresh: &BTreeMap<String, String>,
) -> Vec<Moved> {
    let names: BTreeSet<&String> = saved.keys().chain(fresh.keys()).collect();
    names
        .into_iter()
        .filter(|name| saved.get(*name) != fresh.get(*name))
        .map(|name| Moved::Image {
            name: name.clone(),
            planned: saved.get(name).cloned(),
            now: fresh.get(name).cloned(),
        })
        .collect()
}

fn compare_resources(saved: &[ResourceBasis], fresh: &[ResourceBasis]) -> Vec<Moved> {
    let by_id = |list: &[ResourceBasis]| -> BTreeMap<ResourceId, ResourceBasis> {
        list.iter()
            .map(|r| (r.resource.clone(), r.clone()))
            .collect()
    };
    let (saved, fresh) = (by_id(saved), by_id(fresh));
    let mut moved = Vec::new();
    for (id, planned) in &saved {
        let Some(now) = fresh.get(id) else {
            moved.push(Moved::Resource {
                id: id.clone(),
                added: false,
            });
            continue;
        };
        if planned.desired_hash != now.desired_hash {
            moved.push(Moved::Desired { id: id.clone() });
        }
        if let Some(how) = live_moved(&planned.live, &now.live) {
            moved.push(Moved::Live {
                id: id.clone(),
                how,
            });
        }
        if planned.action != now.action {
            moved.push(Moved::Action {
                id: id.clone(),
                planned: planned.action,
                now: now.action,
            });
        }
    }
    for id in fresh.keys().filter(|id| !saved.contains_key(*id)) {
        moved.push(Moved::Resource {
            id: id.clone(),
            added: true,
        });
    }
    moved
}

fn live_moved(planned: &LiveBasis, now: &LiveBasis) -> Option<String> {
    match (planned, now) {
        (LiveBasis::Absent, LiveBasis::Absent) => None,
        (LiveBasis::Absent, LiveBasis::Present { .. }) => Some("it was created".to_owned()),
        (LiveBasis::Present { .. }, LiveBasis::Absent) => Some("it was deleted".to_owned()),
        (
            LiveBasis::Present {
                hash: planned_hash,
                uid: planned_uid,
            },
            LiveBasis::Present { hash, uid },
        ) => {
            if planned_uid != uid {
                Some(format!(
                    "recreated: uid {} → {}",
                    planned_uid.as_deref().unwrap_or("(none)"),
                    uid.as_deref().unwrap_or("(none)")
                ))
            } else if planned_hash != hash {
                Some("fields the stack manages were edited".to_owned())
            } else {
                None
            }
        }
    }
}

/// The refusal of a saved plan, listing everything that moved.
pub fn refusal(saved: &SavedPlan, moved: &[Moved]) -> String {
    let mut text = format!(
        "saved plan {} no longer matches {}: refusing to apply it (nothing was changed). What moved:",
        saved.short_id(),
        saved.stack
    );
    for m in moved {
        text.push_str("\n  - ");
        text.push_str(&m.to_string());
    }
    text.push_str(&crate::remedy::suffix(
        "\n",
        &crate::remedy::Remedy::RemakeMovedPlan,
    ));
    text
}

#[cfg(test)]
mod tests;
