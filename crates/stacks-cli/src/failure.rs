//! How a failed command ends: `error: …` on stderr and exit code 1; under
//! `--json` also one JSON document on stdout, `{"error": {"message", "kind"}}`,
//! unless the command already wrote its own document there. A closed stdout
//! (`stacks … | head -1`) ends quietly.

use std::process::ExitCode;

use preview_core::engine::EngineError;
use preview_core::provider::ProviderError;
use preview_core::state::StateError;
use serde_json::json;

use crate::terminal;

/// Reports `error` and gives the exit code.
pub fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    if terminal::is_broken_pipe(error) {
        return ExitCode::FAILURE;
    }
    let message = chain_text(error);
    eprintln!("error: {message}");
    if json && !terminal::stdout_written() {
        let doc = json!({
            "error": {
                "message": message,
                "kind": kind(error),
            }
        });
        let _ = terminal::print_stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    ExitCode::FAILURE
}

/// `error` and its causes, `: `-separated (as anyhow's `{:#}`), except that
/// the causes of a provider error are not repeated: its message ends with them
/// ([`ProviderError::Failed`]).
fn chain_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for (i, cause) in error.chain().enumerate() {
        if i > 0 {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        let provider = cause.downcast_ref::<ProviderError>().is_some()
            || matches!(
                cause.downcast_ref::<EngineError>(),
                Some(EngineError::Provider(_))
            );
        if provider {
            break;
        }
    }
    text
}

/// What kind of failure `error` is, for scripts: the first cause of a known
/// type decides (`connection`, `locked`, `state`, `config`, `plan`,
/// `plan-moved`, `apply`, `destroy`, `interrupted`, `saved-plan`, `io`), else
/// `error`.
pub fn kind(error: &anyhow::Error) -> &'static str {
    for cause in error.chain() {
        if cause
            .downcast_ref::<preview_kubernetes::ConnectError>()
            .is_some()
        {
            return "connection";
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return match e {
                EngineError::Validation(_) | EngineError::Plan(_) => "plan",
                EngineError::State(state) => state_kind(state),
                EngineError::Provider(_) | EngineError::Apply { .. } | EngineError::Outputs(_) => {
                    "apply"
                }
                EngineError::NoSealer(_) => "state",
                EngineError::Residue(_)
                | EngineError::Refused { .. }
                | EngineError::DestroyIncomplete { .. } => "destroy",
                EngineError::PlanMoved(_) => "plan-moved",
                EngineError::NoState(_) => "state",
                EngineError::Cancelled(_) => "interrupted",
            };
        }
        if let Some(e) = cause.downcast_ref::<StateError>() {
            return state_kind(e);
        }
        if cause.downcast_ref::<stacks::StackError>().is_some() {
            return "config";
        }
        if cause
            .downcast_ref::<preview_core::saved::SavedPlanError>()
            .is_some()
        {
            return "saved-plan";
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return "io";
        }
    }
    "error"
}

fn state_kind(error: &StateError) -> &'static str {
    match error {
        StateError::Locked { .. } => "locked",
        _ => "state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_comes_from_the_first_known_cause() {
        let locked = anyhow::Error::new(EngineError::State(StateError::Locked {
            stack: "preview-pr-1".into(),
            holder: Default::default(),
        }))
        .context("running up");
        assert_eq!(kind(&locked), "locked");
        let stack = anyhow::Error::new(stacks::StackError::Invalid("bad".into()));
        assert_eq!(kind(&stack), "config");
        assert_eq!(kind(&anyhow::anyhow!("something")), "error");
        let io = anyhow::Error::new(std::io::Error::other("disk")).context("writing");
        assert_eq!(kind(&io), "io");
    }

    /// A provider error keeps its cause, and its message already ends with it:
    /// it is printed once, as before the cause was kept.
    #[test]
    fn a_provider_error_s_cause_is_printed_once() {
        use std::error::Error as _;
        let id = preview_core::ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), "c");
        let failed = ProviderError::failed(&id, "apply failed", std::io::Error::other("reset"));
        assert!(failed.source().is_some_and(|s| s.to_string() == "reset"));
        let error = anyhow::Error::new(EngineError::Provider(failed)).context("running up");
        assert_eq!(
            chain_text(&error),
            "running up: ConfigMap ns/c: apply failed: reset"
        );
        let plain = anyhow::Error::new(std::io::Error::other("disk")).context("writing");
        assert_eq!(chain_text(&plain), format!("{plain:#}"));
    }
}
