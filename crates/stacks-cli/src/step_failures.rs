//! Failure digests of a failed run: for every step that failed or timed out
//! waiting for readiness, what the cluster says about why
//! ([`preview_kubernetes::digest`]), printed on stderr and, with `--json`,
//! as the run's JSON document on stdout (`failed[].failure`; the error report
//! of [`crate::failure`] then adds none).
//!
//! Redacted before anything is shown: the values of the stack's own Secrets
//! (and of any resource's secret paths), the Secrets the failing pods read,
//! and `password=`-like patterns.

use std::io::Write;

use preview_core::engine::EngineError;
use preview_core::provider::ProviderError;
use preview_core::{ProviderName, ResourceId};
use preview_kubernetes::KubeProvider;
use preview_kubernetes::digest::{self, FailureDigest, Redactor};
use serde_json::{Value, json};
use stacks::StackBuild;

/// One failed step of the run.
struct Failed<'a> {
    id: &'a ResourceId,
    error: String,
    digest: Option<FailureDigest>,
}

/// Reports `error` of a run of `build`: digests on stderr; with `json`, the
/// failure document on stdout. Runs that did not fail in steps print nothing.
pub(crate) async fn report(
    kube: &KubeProvider,
    build: &StackBuild,
    error: &EngineError,
    json: bool,
) {
    let EngineError::Apply {
        failed,
        skipped,
        done,
    } = error
    else {
        return;
    };
    let redactor = Redactor::new(
        build
            .resources
            .iter()
            .flat_map(stacks::redact::secret_values),
    );
    let mut steps = Vec::with_capacity(failed.len());
    for e in failed {
        let digest = match e {
            // A readiness failure or timeout of a cluster object: ask the cluster why.
            ProviderError::NotReady { id, message } if id.provider == ProviderName::KUBERNETES => {
                Some(digest::collect(kube, id, message, &redactor).await)
            }
            _ => None,
        };
        steps.push(Failed {
            id: e.id(),
            error: redactor.text(&e.to_string()),
            digest,
        });
    }
    let mut err = std::io::stderr().lock();
    for step in &steps {
        if let Some(d) = &step.digest {
            let _ = write!(err, "{}", digest::render_text(d));
        }
    }
    drop(err);
    if json {
        let doc = json!({
            "stack": build.name,
            "error": redactor.text(&error.to_string()),
            "failed": steps.iter().map(|s| {
                let mut step = json!({"resource": s.id.to_string(), "error": s.error});
                if let Some(d) = &s.digest {
                    step["failure"] = serde_json::to_value(d).unwrap_or(Value::Null);
                }
                step
            }).collect::<Vec<_>>(),
            "skipped": skipped.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "done": done,
        });
        if let Ok(text) = serde_json::to_string_pretty(&doc) {
            // Through the one stdout writer: the error report then knows the
            // run's document is written and adds no second one.
            let _ = crate::terminal::print_stdout(&text);
        }
    }
}
