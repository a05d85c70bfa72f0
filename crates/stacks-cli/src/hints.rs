//! What to do next, by error kind: the libraries name no CLI flag, command or
//! environment variable, so the words that point to one are added here: the
//! wording of each [`Remedy`] the libraries' errors name ([`remedy`], installed
//! at start-up with [`preview_core::remedy::install`]), and the hint lines added
//! to typed engine errors ([`destroy`]).

use preview_core::engine::EngineError;
use preview_core::remedy::Remedy;

/// How this binary words each way out of an error, with its flags, commands
/// and environment variables.
pub fn remedy(remedy: &Remedy<'_>) -> Option<String> {
    Some(match remedy {
        Remedy::ApplyConflict => "re-run with --force-conflicts to take ownership".to_owned(),
        Remedy::PlanConflict => {
            "take them over with --force-conflicts, or stop the other manager".to_owned()
        }
        Remedy::ForgetRefusedRecords => {
            "after the rest is destroyed, `stacks state delete STACK --force` forgets it"
                .to_owned()
        }
        Remedy::RemoveUnreadableState => {
            "remove it with `state delete --force` if the stack's resources are gone".to_owned()
        }
        Remedy::Reauthenticate { stack } => format!(
            "if you trust its content, re-authenticate it once: `stacks state export {stack} FILE --trust-unauthenticated`, review FILE, then `stacks state import {stack} FILE --trust-unauthenticated`"
        ),
        Remedy::SetStatePassphrase => {
            "set PREVIEW_STATE_PASSPHRASE (or PREVIEW_STATE_PASSPHRASE_FILE) to write it"
                .to_owned()
        }
        Remedy::Locked { stack } => format!(
            "wait for it, pass --lock-timeout, or break it with `stacks state break-lock {stack}` if that run is dead"
        ),
        Remedy::RemakeTruncatedPlan { file } => {
            format!("Make a new one with `stacks preview … --out {file}`")
        }
        Remedy::RemakeMovedPlan => {
            "Make a new plan (`stacks preview … --out FILE`), review it, and apply that one."
                .to_owned()
        }
        Remedy::Kubeconfig => "set --kubeconfig or KUBECONFIG".to_owned(),
        Remedy::ClusterConnection => "--kubeconfig, KUBECONFIG or in-cluster config".to_owned(),
        Remedy::DirectDatabaseExecutor => {
            "set PREVIEW_POSTGRES_URL to use the direct executor instead".to_owned()
        }
        Remedy::DirectDatabaseDrop => {
            "set PREVIEW_POSTGRES_URL so the direct executor can drop and verify it".to_owned()
        }
        Remedy::ImportReviewedFile => "if you reviewed this file and trust it, import it with --trust-unauthenticated (it is then stored authenticated with the current passphrase)".to_owned(),
        Remedy::ForceImport => "pass --force to replace the stored state with the file".to_owned(),
        Remedy::DestroyOrForget => "run `stacks destroy` first, or pass --force to forget them (they stay in the cluster, unmanaged)".to_owned(),
        Remedy::ForceDelete => "pass --force to delete it anyway".to_owned(),
        _ => return None,
    })
}

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

    /// With this binary's wording installed, the libraries' messages read as
    /// they always did.
    #[test]
    fn remedies_are_worded_with_the_binary_s_flags() {
        use preview_core::state::StateError;
        preview_core::remedy::install(remedy);
        let locked = StateError::Locked {
            stack: "s".into(),
            holder: "me".into(),
        };
        assert_eq!(
            locked.to_string(),
            "stack s is locked by me; wait for it, pass --lock-timeout, or break it with `stacks state break-lock s` if that run is dead"
        );
        let corrupt = StateError::Corrupt {
            stack: "s".into(),
            location: "file:///x/s.json".into(),
            message: "bad".into(),
        };
        assert_eq!(
            corrupt.to_string(),
            "state of stack s at file:///x/s.json is unreadable: bad; it was not modified (restore it, or remove it with `state delete --force` if the stack's resources are gone)"
        );
        let conflict = preview_core::provider::ProviderError::Conflict {
            id: ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), "c"),
            conflicts: vec![".data.k (owned by \"kubectl\")".into()],
        };
        assert_eq!(
            conflict.to_string(),
            "ConfigMap ns/c: field-manager conflict: .data.k (owned by \"kubectl\"); re-run with --force-conflicts to take ownership"
        );
        let refused = EngineError::Refused {
            refused: vec![(
                ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), "c"),
                "why".into(),
            )],
            residue: Vec::new(),
        };
        assert!(
            refused.to_string().ends_with(
                "if not, its record is wrong (an edited state?): after the rest is destroyed, `stacks state delete STACK --force` forgets it"
            ),
            "{refused}"
        );
        let malformed = preview_core::saved::SavedPlanError::Malformed {
            origin: "plan.json".into(),
            message: "EOF".into(),
        };
        assert_eq!(
            malformed.to_string(),
            "plan.json is not a complete saved plan (EOF); was it truncated? Make a new one with `stacks preview … --out plan.json`"
        );
    }

    /// Every remedy the libraries name has this binary's wording.
    #[test]
    fn every_remedy_is_worded() {
        for r in [
            Remedy::ApplyConflict,
            Remedy::PlanConflict,
            Remedy::ForgetRefusedRecords,
            Remedy::RemoveUnreadableState,
            Remedy::Reauthenticate { stack: "s" },
            Remedy::SetStatePassphrase,
            Remedy::Locked { stack: "s" },
            Remedy::RemakeTruncatedPlan { file: "f" },
            Remedy::RemakeMovedPlan,
            Remedy::Kubeconfig,
            Remedy::ClusterConnection,
            Remedy::DirectDatabaseExecutor,
            Remedy::DirectDatabaseDrop,
            Remedy::ImportReviewedFile,
            Remedy::ForceImport,
            Remedy::DestroyOrForget,
            Remedy::ForceDelete,
        ] {
            assert!(remedy(&r).is_some_and(|t| !t.is_empty()), "{r:?}");
        }
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
