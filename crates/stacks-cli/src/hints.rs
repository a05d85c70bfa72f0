//! What to do next, by error kind: the libraries name no CLI flag, so the
//! lines that point to one are added here, from the typed engine error.

use preview_core::engine::EngineError;

/// The hint line for a failed `destroy`, if any: something is being deleted but
/// held (finalizers no controller removes, a namespace stuck Terminating).
/// `forced`: the run already had `--force-finalize`, so what still holds is not
/// the stack's to release.
pub fn destroy(err: &EngineError, forced: bool) -> Option<String> {
    let held: Vec<String> = err
        .leftovers()
        .iter()
        .filter(|l| l.deleting)
        .map(|l| l.id.to_string())
        .collect();
    if held.is_empty() {
        return None;
    }
    Some(if forced {
        format!(
            "hint: still held with --force-finalize: {}; what holds it is not the stack's own (another stack's or a foreign object), inspect it with kubectl",
            held.join(", ")
        )
    } else {
        format!(
            "hint: {} being deleted but held; find out what the finalizer waits for, or re-run `stacks destroy` with --force-finalize to remove the finalizers of the stack's own objects (other objects keep theirs)",
            held.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::ResourceId;
    use preview_core::engine::Leftover;

    fn held() -> EngineError {
        EngineError::Residue(vec![Leftover {
            id: ResourceId::kubernetes("v1", "ConfigMap", Some("preview-pr-1"), "held"),
            deleting: true,
            finalizers: vec!["example.com/hold".into()],
        }])
    }

    #[test]
    fn points_to_force_finalize_only_for_held_objects() {
        let hint = destroy(&held(), false).expect("hint");
        assert!(hint.contains("--force-finalize"), "{hint}");
        assert!(hint.contains("ConfigMap preview-pr-1/held"), "{hint}");
        assert!(!destroy(&held(), true).expect("hint").contains("re-run"));
        let plain = EngineError::Residue(vec![Leftover {
            id: ResourceId::kubernetes("v1", "ConfigMap", Some("preview-pr-1"), "left"),
            deleting: false,
            finalizers: Vec::new(),
        }]);
        assert_eq!(destroy(&plain, false), None);
        assert_eq!(destroy(&EngineError::NoState("s".into()), false), None);
    }
}
