//! Turns API errors into [`ProviderError`]s and dry-run outcomes that name the
//! resource, the fields and the other field manager.

use preview_core::observe::DryRun;
use preview_core::provider::ProviderError;
use preview_core::resource::ResourceId;

/// The HTTP status code of an API error, if it is one.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Conflicting fields from a 409 apply answer: `.spec.replicas (conflict with "kubectl" using apps/v1)`.
pub fn conflicts(status: &kube::core::Status) -> Vec<String> {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    let mut out: Vec<String> = causes
        .iter()
        .filter(|c| c.reason == "FieldManagerConflict" || !c.field.is_empty())
        .map(|c| format!("{} ({})", c.field, c.message))
        .collect();
    if out.is_empty() {
        out.push(status.message.clone());
    }
    out
}

/// True when the API server rejected a change to an immutable field.
pub fn is_immutable(status: &kube::core::Status) -> bool {
    status.code == 422
        && (status.message.contains("immutable")
            || status
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.message.contains("immutable"))))
}

/// True when RBAC refused the request itself (`… is forbidden: User "u" cannot
/// patch resource …`), as opposed to a 403 from admission (a quota, a policy).
pub fn is_forbidden_by_rbac(status: &kube::core::Status) -> bool {
    status.code == 403
        && status.message.contains("is forbidden: User \"")
        && status.message.contains(" cannot ")
}

/// Classifies a dry-run apply failure.
pub fn dry_run_outcome(id: &ResourceId, err: kube::Error) -> Result<DryRun, ProviderError> {
    match err {
        kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
            Ok(DryRun::Rejected {
                code: 409,
                message: status.message.clone(),
            })
        }
        kube::Error::Api(status) if status.code == 409 => Ok(DryRun::Conflict {
            conflicts: conflicts(&status),
            message: status.message.clone(),
        }),
        kube::Error::Api(status) if is_immutable(&status) => Ok(DryRun::Immutable {
            message: status.message.clone(),
        }),
        kube::Error::Api(status) if is_forbidden_by_rbac(&status) => Ok(DryRun::Forbidden {
            message: status.message.clone(),
        }),
        kube::Error::Api(status) if matches!(status.code, 400 | 403 | 422) => {
            Ok(DryRun::Rejected {
                code: status.code,
                message: status.message.clone(),
            })
        }
        other => Err(api_error(id, "dry-run apply", other)),
    }
}

/// Wraps any kube error for `verb` on `id`.
pub fn api_error(id: &ResourceId, verb: &'static str, err: kube::Error) -> ProviderError {
    match err {
        kube::Error::Api(status) if status.code == 409 && verb == "apply" => {
            ProviderError::Conflict {
                id: id.clone(),
                conflicts: conflicts(&status),
            }
        }
        kube::Error::Api(status) => ProviderError::Api {
            id: id.clone(),
            verb,
            code: status.code,
            message: status.message.clone(),
        },
        other => ProviderError::failed(id, format!("{verb} failed"), Described::new(other)),
    }
}

/// A client error worded by [`describe`] (one line, no repeated layers),
/// keeping the error itself as its [`source`](std::error::Error::source).
#[derive(Debug)]
struct Described {
    text: String,
    error: kube::Error,
}

impl Described {
    fn new(error: kube::Error) -> Described {
        Described {
            text: describe(&error),
            error,
        }
    }
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Described {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A kube error in one line. An API answer as kube shows it; a transport
/// error (no answer) says so, with its causes once each:
/// `the API server could not be reached (tcp connect error: Connection
/// refused (os error 111))` instead of kube's and hyper's wrappers repeating
/// one another (`ServiceError: client error (Connect): client error (Connect): …`).
pub fn describe(err: &kube::Error) -> String {
    if !matches!(err, kube::Error::Service(_) | kube::Error::HyperError(_)) {
        return err.to_string();
    }
    let mut causes: Vec<String> = Vec::new();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        let text = e.to_string();
        // Wrappers that only name the layer (`client error (Connect)`).
        let wrapper = text.starts_with("client error (") || text.starts_with("ServiceError:");
        if !wrapper && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        cause = e.source();
    }
    // Each cause's text often ends with its own source's: keep what is new.
    let mut shown: Vec<String> = Vec::new();
    for (i, c) in causes.iter().enumerate() {
        let tail = causes.get(i + 1).map(String::as_str).unwrap_or_default();
        let own = if !tail.is_empty() {
            c.strip_suffix(tail)
                .map(|s| s.trim_end_matches([':', ' ']).to_owned())
                .unwrap_or_else(|| c.clone())
        } else {
            c.clone()
        };
        if !own.is_empty() {
            shown.push(own);
        }
    }
    let what = if crate::retry::is_unreachable(err) {
        "the API server could not be reached"
    } else {
        "the connection to the API server failed"
    };
    if shown.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({})", shown.join(": "))
    }
}

/// Whether `err` is a transport error (no answer from the API server), not
/// an API answer.
pub fn is_transport(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Service(_) | kube::Error::HyperError(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusCause, response::StatusDetails};

    fn status(code: u16, message: &str, causes: Vec<StatusCause>) -> Status {
        Status {
            status: None,
            code,
            message: message.to_owned(),
            metadata: None,
            reason: String::new(),
            details: Some(StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes,
                retry_after_seconds: 0,
            }),
        }
    }

    #[test]
    fn conflict_names_field_and_manager() {
        let s = status(
            409,
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas",
            vec![StatusCause {
                reason: "FieldManagerConflict".into(),
                message: "conflict with \"kubectl\" using apps/v1".into(),
                field: ".spec.replicas".into(),
            }],
        );
        assert_eq!(
            conflicts(&s),
            vec![".spec.replicas (conflict with \"kubectl\" using apps/v1)"]
        );
    }

    #[test]
    fn rbac_denials_are_told_from_admission_403s() {
        let rbac = status(
            403,
            "deployments.apps \"web\" is forbidden: User \"testkit:planner\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"preview-pr-1\"",
            vec![],
        );
        assert!(is_forbidden_by_rbac(&rbac));
        let quota = status(
            403,
            "pods \"web\" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=0, limited: cpu=1",
            vec![],
        );
        assert!(!is_forbidden_by_rbac(&quota));
        let id = ResourceId::kubernetes("apps/v1", "Deployment", Some("preview-pr-1"), "web");
        assert!(matches!(
            dry_run_outcome(&id, kube::Error::Api(Box::new(rbac))),
            Ok(DryRun::Forbidden { .. })
        ));
        assert!(matches!(
            dry_run_outcome(&id, kube::Error::Api(Box::new(quota))),
            Ok(DryRun::Rejected { code: 403, .. })
        ));
    }

    #[test]
    fn immutable_is_detected_from_the_message() {
        let s = status(
            422,
            "Job.batch \"migrate\" is invalid: spec.template: Invalid value: ...: field is immutable",
            vec![],
        );
        assert!(is_immutable(&s));
        assert!(!is_immutable(&status(
            422,
            "spec.replicas: Invalid value: -1",
            vec![]
        )));
    }

    #[tokio::test]
    async fn a_transport_error_is_one_line_without_repetition() {
        let refused = crate::test_support::refused_request("/").await;
        let err = kube::Error::Service(Box::new(refused));
        let text = describe(&err);
        assert!(
            text.starts_with("the API server could not be reached (")
                && text.contains("Connection refused"),
            "{text}"
        );
        assert!(!text.contains("client error"), "{text}");
        assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
        assert!(is_transport(&err));
        let api = kube::Error::Api(status(404, "not found", Vec::new()).boxed());
        assert!(!is_transport(&api));
    }
}
