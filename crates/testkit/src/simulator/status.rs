//! Building and comparing status values.
//!
//! The simulator writes whole status sections with JSON merge patches and skips
//! the write when the object already says what it would write. "Already says" is
//! [`is_subset`]: every field the simulator would write is present with the same
//! value, ignoring timestamps (which change on every write and would otherwise
//! make the simulator patch forever) and fields others added.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// Keys whose values are timestamps; never compared.
const TIME_KEYS: &[&str] = &[
    "lastTransitionTime",
    "lastHeartbeatTime",
    "lastProbeTime",
    "startTime",
    "startedAt",
    "finishedAt",
    "renewTime",
    "notBefore",
    "notAfter",
    "renewalTime",
];

/// The current time.
pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}

/// A Kubernetes `Time` string (RFC 3339, whole seconds, UTC).
pub(crate) fn time_string(ts: Timestamp) -> String {
    match serde_json::to_value(Time(ts)) {
        Ok(Value::String(s)) => s,
        _ => ts.to_string(),
    }
}

/// A status condition in the shape Gateway API, cert-manager and core objects use.
pub(crate) fn condition(
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &str,
) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    });
    if let (Some(generation), Some(map)) = (observed_generation, c.as_object_mut()) {
        map.insert("observedGeneration".into(), json!(generation));
    }
    c
}

/// Whether `current` already contains everything in `desired` (timestamps ignored).
/// Arrays must have the same length and match element by element.
pub(crate) fn is_subset(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => d.iter().all(|(key, value)| {
            TIME_KEYS.contains(&key.as_str())
                || c.get(key).is_some_and(|current| is_subset(value, current))
        }),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(d, c)| is_subset(d, c))
        }
        (Value::Number(d), Value::Number(c)) => d.as_f64() == c.as_f64(),
        (d, c) => d == c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_times_and_extra_fields() {
        let desired =
            json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "a"}]});
        let current = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "b", "extra": 1}], "more": true});
        assert!(is_subset(&desired, &current));
    }

    #[test]
    fn subset_detects_differences() {
        let desired =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        assert!(!is_subset(&desired, &json!({"phase": "Pending"})));
        assert!(!is_subset(
            &desired,
            &json!({"phase": "Running", "conditions": []})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]})
        ));
        assert!(!is_subset(&desired, &Value::Null));
    }

    #[test]
    fn times_have_whole_seconds() {
        let s = time_string(Timestamp::from_second(1_700_000_000).expect("valid"));
        assert_eq!(s, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn conditions_carry_observed_generation() {
        let c = condition("Accepted", true, "Accepted", "ok", Some(3), "t");
        assert_eq!(c["observedGeneration"], 3);
        assert_eq!(c["status"], "True");
        let c = condition("Ready", false, "Failed", "no", None, "t");
        assert!(c.get("observedGeneration").is_none());
        assert_eq!(c["status"], "False");
    }
}
