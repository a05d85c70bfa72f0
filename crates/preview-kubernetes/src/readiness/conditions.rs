//! Shared helpers for the per-kind rules: reading `status.conditions`, generations,
//! counters, owner references and `FailedCreate` events from JSON objects.
//!
//! Everything here is lenient: a missing field reads as "absent" (or `0` for
//! counters, as the API server omits zero-valued status integers), never as an error.

use serde_json::Value;

/// One entry of a `conditions` list (the shape shared by built-in kinds,
/// `metav1.Condition` and cert-manager).
#[derive(Clone, Copy, Debug)]
pub(super) struct Condition<'a> {
    /// `type`.
    pub type_: &'a str,
    /// `status`: `True`, `False` or `Unknown`.
    pub status: &'a str,
    /// `reason` (empty when absent).
    pub reason: &'a str,
    /// `message` (empty when absent).
    pub message: &'a str,
    /// `observedGeneration` (metav1.Condition only).
    pub observed_generation: Option<i64>,
}

impl Condition<'_> {
    /// `status == "True"`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    /// `status == "False"`.
    pub fn is_false(&self) -> bool {
        self.status == "False"
    }

    /// False when the condition says it was computed for an older generation.
    pub fn is_current(&self, generation: Option<i64>) -> bool {
        match (self.observed_generation, generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            _ => true,
        }
    }

    /// `Reason: message`, or whichever of the two is present, or `Type=Status`.
    pub fn describe(&self) -> String {
        let message = excerpt(self.message);
        match (self.reason.is_empty(), message.is_empty()) {
            (false, false) => format!("{}: {message}", self.reason),
            (false, true) => self.reason.to_owned(),
            (true, false) => message,
            (true, true) => format!("{}={}", self.type_, self.status),
        }
    }
}

/// The condition of `type_` in a `conditions` array.
pub(super) fn find<'a>(conditions: Option<&'a Value>, type_: &str) -> Option<Condition<'a>> {
    conditions?
        .as_array()?
        .iter()
        .filter_map(parse)
        .find(|c| c.type_ == type_)
}

/// Every parseable condition in a `conditions` array, in order.
pub(super) fn all(conditions: Option<&Value>) -> Vec<Condition<'_>> {
    conditions
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(parse).collect())
        .unwrap_or_default()
}

fn parse(value: &Value) -> Option<Condition<'_>> {
    Some(Condition {
        type_: value.get("type")?.as_str()?,
        status: value
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("Unknown"),
        reason: value.get("reason").and_then(Value::as_str).unwrap_or(""),
        message: value.get("message").and_then(Value::as_str).unwrap_or(""),
        observed_generation: value.get("observedGeneration").and_then(Value::as_i64),
    })
}

/// The condition of `type_` in `obj.status.conditions`.
pub(super) fn status_condition<'a>(obj: &'a Value, type_: &str) -> Option<Condition<'a>> {
    find(obj.pointer("/status/conditions"), type_)
}

/// The string at a JSON pointer.
pub(super) fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// The integer at a JSON pointer.
pub(super) fn int_at(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

/// A status counter: absent means zero (the API server omits zero values).
pub(super) fn count(obj: &Value, pointer: &str) -> i64 {
    int_at(obj, pointer).unwrap_or(0)
}

/// `metadata.name` (empty when absent).
pub(super) fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name").unwrap_or("")
}

/// `metadata.generation`.
pub(super) fn generation(obj: &Value) -> Option<i64> {
    int_at(obj, "/metadata/generation")
}

/// When `status.observedGeneration` is behind `metadata.generation` (or absent while
/// the object has a generation), the message to wait with. `what` names the controller.
pub(super) fn generation_lag(obj: &Value, what: &str) -> Option<String> {
    let generation = generation(obj)?;
    match int_at(obj, "/status/observedGeneration") {
        Some(observed) if observed >= generation => None,
        Some(observed) => Some(format!(
            "waiting for the {what} to observe generation {generation} (observed {observed})"
        )),
        None => Some(format!(
            "waiting for the {what} to observe generation {generation}"
        )),
    }
}

/// True when `child` is controlled by the named owner, or carries no owner
/// references at all (hand-written fixtures, or objects listed by selector only).
pub(super) fn is_owned_by(child: &Value, owner_kind: &str, owner: &Value) -> bool {
    let Some(refs) = child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return true;
    };
    if refs.is_empty() {
        return true;
    }
    let owner_uid = str_at(owner, "/metadata/uid");
    refs.iter().any(|r| {
        let kind_matches = r.get("kind").and_then(Value::as_str) == Some(owner_kind);
        let uid = r.get("uid").and_then(Value::as_str);
        match (owner_uid, uid) {
            (Some(a), Some(b)) => kind_matches && a == b,
            _ => kind_matches && r.get("name").and_then(Value::as_str) == Some(name(owner)),
        }
    })
}

/// True when the object is being deleted.
pub(super) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The most recent Warning event of `reason` about one of `involved` (kind, name),
/// as `Kind name: Reason: message`.
pub(super) fn latest_event(
    events: &[Value],
    reason: &str,
    involved: &[(&str, &str)],
) -> Option<String> {
    events
        .iter()
        .filter(|e| str_at(e, "/reason") == Some(reason))
        .filter(|e| str_at(e, "/type").is_none_or(|t| t == "Warning"))
        .filter_map(|e| {
            let kind =
                str_at(e, "/involvedObject/kind").or_else(|| str_at(e, "/regarding/kind"))?;
            let name =
                str_at(e, "/involvedObject/name").or_else(|| str_at(e, "/regarding/name"))?;
            involved
                .iter()
                .any(|(k, n)| *k == kind && *n == name)
                .then_some((e, kind, name))
        })
        .max_by_key(|(e, _, _)| event_time(e))
        .map(|(e, kind, name)| {
            let message = str_at(e, "/message")
                .or_else(|| str_at(e, "/note"))
                .unwrap_or("");
            format!("{kind} {name}: {reason}: {}", excerpt(message))
        })
}

/// An event's last-seen time as an RFC 3339 string (they sort lexically).
fn event_time(event: &Value) -> &str {
    [
        "/lastTimestamp",
        "/series/lastObservedTime",
        "/eventTime",
        "/firstTimestamp",
    ]
    .iter()
    .find_map(|p| str_at(event, p))
    .unwrap_or("")
}

/// Longest excerpt of a controller or container message kept in a readiness message.
const EXCERPT_CHARS: usize = 400;

/// A message on one line: trimmed, non-empty lines joined with ` / `, cut at
/// [`EXCERPT_CHARS`] characters.
pub(super) fn excerpt(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    match joined.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describe_prefers_reason_and_message() {
        let conditions = json!([
            {"type": "A", "status": "False", "reason": "R", "message": "m"},
            {"type": "B", "status": "False", "reason": "R"},
            {"type": "C", "status": "Unknown"},
        ]);
        assert_eq!(find(Some(&conditions), "A").expect("A").describe(), "R: m");
        assert_eq!(find(Some(&conditions), "B").expect("B").describe(), "R");
        assert_eq!(
            find(Some(&conditions), "C").expect("C").describe(),
            "C=Unknown"
        );
        assert!(find(Some(&conditions), "D").is_none());
    }

    #[test]
    fn excerpt_joins_lines_and_cuts_long_text() {
        assert_eq!(excerpt("  first\n\n second \n"), "first / second");
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn generation_lag_reads_observed_generation() {
        let lagging = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2}});
        assert_eq!(
            generation_lag(&lagging, "controller").as_deref(),
            Some("waiting for the controller to observe generation 3 (observed 2)")
        );
        let current = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 3}});
        assert_eq!(generation_lag(&current, "controller"), None);
    }
}
