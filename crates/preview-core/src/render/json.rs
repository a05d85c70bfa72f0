//! Machine-readable rendering: a stable, versioned JSON document.
//!
//! Schema (version [`PLAN_SCHEMA_VERSION`]; additive changes keep the version,
//! anything else bumps it):
//!
//! ```text
//! {
//!   "schemaVersion": 1,
//!   "stack": "preview-pr-1",
//!   "summary": {"create": 3, "update": 1, "replace": 0, "delete": 1, "import": 0, "refuse": 0,
//!               "noOp": 12},
//!   "steps": [                                   // execution order, no-ops included
//!     {
//!       "resource": {"provider": "kubernetes", "apiVersion": "apps/v1", "kind": "Deployment",
//!                    "namespace": "preview-pr-1", "name": "web"},   // namespace: null when cluster-scoped
//!       "action": "create" | "update" | "replace" | "delete" | "import" | "no-op"
//!                 | "refuse",                  // a delete refused: not the stack's object
//!       "reason": "…" | null,
//!       "changes": [
//!         {"path": "spec.template.spec.containers[name=web].image",
//!          "kind": "added" | "removed" | "changed",
//!          "old": <JSON value>,                  // absent for "added"
//!          "new": <JSON value>,                  // absent for "removed"
//!          "secret": false,                      // true: old/new are the string "[secret]"
//!          "knownAfterApply": true}              // only when "new" is read from another
//!                                                // resource this plan changes: the string
//!                                                // "(known after apply)"
//!       ],
//!       "after": [<resource>, …],                // steps that must finish first
//!       "serverValidated": false,                // only on a step not validated by the server:
//!       "notValidated": "… cannot patch …"       // its dry-run was forbidden (403); local diff
//!     }
//!   ],
//!   "notes": ["UNTESTED: …"]                    // only when the plan has notes
//! }
//! ```
//!
//! Values are never shortened. Secret values are the string `"[secret]"` with
//! `"secret": true`, so a consumer can tell them from a literal string.

use serde_json::{Map, Value};

use crate::plan::{
    Action, FieldChange, KNOWN_AFTER_APPLY, PLAN_SCHEMA_VERSION, Plan, SECRET_PLACEHOLDER, Shown,
};
use crate::resource::ResourceId;

/// Renders `plan` as the JSON document described in the module documentation.
pub fn json(plan: &Plan) -> Value {
    let summary = plan.summary();
    let mut summary_map = Map::new();
    for (key, count) in [
        ("create", summary.create),
        ("update", summary.update),
        ("replace", summary.replace),
        ("delete", summary.delete),
        ("import", summary.import),
        ("refuse", summary.refuse),
        ("noOp", summary.no_op),
    ] {
        summary_map.insert(key.to_owned(), Value::from(count));
    }
    let steps = plan
        .steps
        .iter()
        .map(|step| {
            let mut map = Map::new();
            map.insert("resource".into(), resource(&step.id));
            map.insert("action".into(), Value::from(action_name(step.action)));
            map.insert(
                "reason".into(),
                step.reason.clone().map_or(Value::Null, Value::from),
            );
            map.insert(
                "changes".into(),
                Value::Array(step.diff.iter().map(change).collect()),
            );
            map.insert(
                "after".into(),
                Value::Array(step.after.iter().map(resource).collect()),
            );
            if let Some(message) = &step.unvalidated {
                map.insert("serverValidated".into(), Value::Bool(false));
                map.insert("notValidated".into(), Value::from(message.clone()));
            }
            Value::Object(map)
        })
        .collect();
    let mut root = Map::new();
    root.insert("schemaVersion".into(), Value::from(PLAN_SCHEMA_VERSION));
    root.insert("stack".into(), Value::from(plan.stack.clone()));
    root.insert("summary".into(), Value::Object(summary_map));
    root.insert("steps".into(), Value::Array(steps));
    if !plan.notes.is_empty() {
        root.insert(
            "notes".into(),
            Value::Array(plan.notes.iter().cloned().map(Value::from).collect()),
        );
    }
    Value::Object(root)
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::NoOp => "no-op",
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::Import => "import",
        Action::Refuse => "refuse",
    }
}

fn resource(id: &ResourceId) -> Value {
    let mut map = Map::new();
    map.insert("provider".into(), Value::from(id.provider.to_string()));
    map.insert("apiVersion".into(), Value::from(id.api_version.clone()));
    map.insert("kind".into(), Value::from(id.kind.clone()));
    map.insert(
        "namespace".into(),
        id.namespace.clone().map_or(Value::Null, Value::from),
    );
    map.insert("name".into(), Value::from(id.name.clone()));
    Value::Object(map)
}

fn change(change: &FieldChange) -> Value {
    let value = |shown: &Shown| match shown {
        Shown::Secret(_) => Value::from(SECRET_PLACEHOLDER),
        Shown::KnownAfterApply(_) => Value::from(KNOWN_AFTER_APPLY),
        Shown::Value(v) => v.clone(),
    };
    let is_secret = |shown: &Option<Shown>| matches!(shown, Some(Shown::Secret(_)));
    let mut map = Map::new();
    map.insert("path".into(), Value::from(change.path.clone()));
    let kind = match change.kind {
        crate::plan::ChangeKind::Added => "added",
        crate::plan::ChangeKind::Removed => "removed",
        crate::plan::ChangeKind::Changed => "changed",
    };
    map.insert("kind".into(), Value::from(kind));
    if let Some(old) = &change.old {
        map.insert("old".into(), value(old));
    }
    if let Some(new) = &change.new {
        map.insert("new".into(), value(new));
    }
    map.insert(
        "secret".into(),
        Value::from(is_secret(&change.old) || is_secret(&change.new)),
    );
    if matches!(change.new, Some(Shown::KnownAfterApply(_))) {
        map.insert("knownAfterApply".into(), Value::Bool(true));
    }
    Value::Object(map)
}
