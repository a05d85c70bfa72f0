//! What a destroy leaves behind ([`Leftover`]): each object of the stack still
//! present after the deletes, whether it is being deleted, and which finalizers
//! hold it. Read from the live object as the providers report it
//! (`metadata.deletionTimestamp`, `metadata.finalizers`, the stack label); pure.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::resource::ResourceId;

/// One object a destroy could not remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    /// The object.
    pub id: ResourceId,
    /// Its deletion was requested (by this destroy, or by its namespace's) but
    /// has not finished: something holds it.
    pub deleting: bool,
    /// The finalizers holding it (`metadata.finalizers`), when it is being deleted.
    pub finalizers: Vec<String>,
}

impl Leftover {
    /// The leftover `id` as its live object shows it (`None`: read as gone
    /// meanwhile; reported as found by the verification).
    pub fn from_live(id: ResourceId, live: Option<&Value>) -> Self {
        let deleting = live
            .and_then(|v| v.pointer("/metadata/deletionTimestamp"))
            .is_some_and(|t| !t.is_null());
        let finalizers = if deleting {
            strings(live.and_then(|v| v.pointer("/metadata/finalizers")))
        } else {
            Vec::new()
        };
        Leftover {
            id,
            deleting,
            finalizers,
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl fmt::Display for Leftover {
    /// `ConfigMap preview-pr-1/held (being deleted, held by finalizer example.com/hold)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        match (self.deleting, self.finalizers.as_slice()) {
            (false, _) => Ok(()),
            (true, []) => f.write_str(" (being deleted)"),
            (true, [one]) => write!(f, " (being deleted, held by finalizer {one})"),
            (true, many) => write!(
                f,
                " (being deleted, held by finalizers {})",
                many.join(", ")
            ),
        }
    }
}

/// `a, b, c` for error messages.
pub fn list(left: &[Leftover]) -> String {
    left.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> ResourceId {
        ResourceId::kubernetes("v1", "ConfigMap", Some("preview-pr-1"), "held")
    }

    #[test]
    fn names_the_object_and_what_holds_it() {
        let live = json!({"metadata": {
        "deletionTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": ["example.com/hold"],
        }});
        let left = Leftover::from_live(cm(), Some(&live));
        assert_eq!(
            left.to_string(),
            "ConfigMap preview-pr-1/held (being deleted, held by finalizer example.com/hold)"
        );
    }

    #[test]
    fn finalizers_of_an_object_not_being_deleted_hold_nothing() {
        let live = json!({"metadata": {"finalizers": ["example.com/hold"]}});
        let left = Leftover::from_live(cm(), Some(&live));
        assert_eq!(left.to_string(), "ConfigMap preview-pr-1/held");
        let gone = Leftover::from_live(cm(), None);
        assert!(!gone.deleting);
        let ns = ResourceId::kubernetes("v1", "Namespace", None, "preview-pr-1");
        let terminating = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            Leftover::from_live(ns, Some(&terminating)).to_string(),
            "Namespace preview-pr-1 (being deleted)"
        );
    }

    #[test]
    fn several_finalizers() {
        let live = json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["a", "b"]}});
        assert_eq!(
            Leftover::from_live(cm(), Some(&live)).to_string(),
            "ConfigMap preview-pr-1/held (being deleted, held by finalizers a, b)"
        );
    }
}
