//! The plan: plain data describing what `up` (or `destroy`) will do.
//!
//! A [`Plan`] is computed by [`crate::planner::plan`] as a pure function of the
//! desired graph, the recorded state and the observations. Apply executes the
//! steps in order and never re-decides; display fields ([`Step::diff`],
//! [`Step::reason`]) never drive apply. Secret values never enter a plan: the
//! diff holds [`Shown::Secret`] in their place; a value read from another
//! resource that this plan creates or changes is [`Shown::KnownAfterApply`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::ResourceId;

/// Version of the JSON plan schema (`render::json`). Bump on incompatible changes.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// What a step does to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing to do: desired, recorded and live agree.
    NoOp,
    /// The object does not exist; create it.
    Create,
    /// The object exists and differs in fields we manage; apply in place.
    Update,
    /// An immutable field changed: delete, wait until gone, create.
    Replace,
    /// Recorded in state but no longer desired: delete and wait until gone.
    Delete,
    /// Adopt an existing object (take field ownership) without recreating it.
    Import,
    /// Recorded and no longer desired, but the live object fails the ownership
    /// checks (it lacks the stack's label, or its uid is not the recorded one):
    /// reported, never deleted, and left recorded for a person to resolve.
    Refuse,
}

impl Action {
    /// True for every action that writes to a provider.
    pub fn is_mutating(self) -> bool {
        !matches!(self, Action::NoOp | Action::Refuse)
    }

    /// The one-character symbol used in text renderings.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "+-",
            Action::Delete => "-",
            Action::Import => "=",
            Action::Refuse => "!",
        }
    }
}

/// A value as it may be shown to a person or a machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shown {
    /// A secret value, rendered as `[secret]`.
    Secret(SecretMarker),
    /// A value read from another resource's live object once that resource is
    /// applied ([`crate::values`]), rendered as `(known after apply)`.
    KnownAfterApply(AfterApplyMarker),
    /// A plain JSON value.
    Value(Value),
}

/// A unit type that (de)serialises as one fixed string.
macro_rules! string_marker {
    ($(#[$doc:meta])* $name:ident = $text:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == $text {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!("not {:?}", $text)))
                }
            }
        }
    };
}

/// The text shown in place of a secret value, everywhere.
pub const SECRET_PLACEHOLDER: &str = "[secret]";

string_marker!(
    /// Serialises as the string `"[secret]"`.
    SecretMarker = SECRET_PLACEHOLDER
);

/// The text shown in place of a value that is known only once the plan is
/// applied ([`Shown::KnownAfterApply`]), everywhere.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

string_marker!(
    /// Serialises as the string `"(known after apply)"`.
    AfterApplyMarker = KNOWN_AFTER_APPLY
);

/// How a field changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// The field is new.
    Added,
    /// The field goes away.
    Removed,
    /// The field's value changes.
    Changed,
}

/// One field-level difference between the live object and what apply will produce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted path, e.g. `spec.template.spec.containers[name=web].image`.
    pub path: String,
    /// Kind of change.
    pub kind: ChangeKind,
    /// Old value (absent for additions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Shown>,
    /// New value (absent for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Shown>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The resource.
    pub id: ResourceId,
    /// What to do.
    pub action: Action,
    /// Why (e.g. "spec.selector is immutable", "deleted outside the engine"). Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Field-level changes. Display only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
    /// Steps that must finish (and be ready) before this one starts; for deletes,
    /// the dependents that must be gone first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<ResourceId>,
    /// Delete and Replace steps: the checked object apply may delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DeleteTarget>,
    /// Set when the API server did not validate this step because the
    /// credential may not even dry-run it (RBAC 403 on the dry-run, e.g. a
    /// read-only plan credential): the diff is the planner's local one (the
    /// live object projected onto the desired body), so an immutable field or
    /// an admission rejection shows only when the plan is applied. Holds the
    /// API server's message. Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unvalidated: Option<String>,
}

/// How every rendering marks a step with [`Step::unvalidated`].
pub const NOT_VALIDATED: &str = "not validated by the server";

/// For a Delete or Replace step: what the planner checked, and so the only thing
/// apply may delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum DeleteTarget {
    /// The object was already gone: apply sends no delete, it only verifies
    /// that the object stays gone (an object that appeared meanwhile is not
    /// the stack's, and is never deleted).
    Absent,
    /// The live object carries the stack's label and, when recorded, the
    /// recorded uid.
    Live {
        /// Its uid, when the provider reports one: the delete is made
        /// conditional on it (Kubernetes `preconditions.uid`), so an object
        /// recreated in between is never deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
}

/// Counts per action, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Creates.
    pub create: usize,
    /// Updates.
    pub update: usize,
    /// Replaces.
    pub replace: usize,
    /// Deletes.
    pub delete: usize,
    /// Imports.
    pub import: usize,
    /// Deletes refused by the ownership checks.
    #[serde(default)]
    pub refuse: usize,
    /// Unchanged.
    pub no_op: usize,
}

/// A whole plan: steps in a valid execution order (creates/updates in dependency
/// order, then deletes in reverse dependency order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Stack name.
    pub stack: String,
    /// Steps, in execution order.
    pub steps: Vec<Step>,
    /// Notes the caller attached for whoever reviews the plan (e.g. `UNTESTED: …`
    /// on a promotion of images no preview ran), shown by every rendering
    /// ([`crate::planner::PlanOptions::notes`]). Display only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Plan {
    /// Counts per action.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in &self.steps {
            match step.action {
                Action::NoOp => s.no_op += 1,
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::Import => s.import += 1,
                Action::Refuse => s.refuse += 1,
            }
        }
        s
    }

    /// True when applying this plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|s| !s.action.is_mutating())
    }

    /// The steps that write.
    pub fn mutating_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action.is_mutating())
    }

    /// The steps the API server did not validate ([`Step::unvalidated`]).
    pub fn unvalidated_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.unvalidated.is_some())
    }

    /// The refused deletes ([`Action::Refuse`]).
    pub fn refused_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Refuse)
    }
}
