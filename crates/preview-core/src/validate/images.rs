//! Container images (containers and init containers of every workload kind).
//!
//! Always an error, whatever the policy — the pull would fail at runtime:
//! an empty image, whitespace in it, uppercase in the repository path, nothing
//! before `@`, or a malformed `sha256` digest (wrong length, uppercase or non-hex
//! characters). With [`Policy::require_image_digests`], every image must also be
//! pinned as `name@sha256:<64 lowercase hex>` (a tag may precede the digest).

use serde_json::Value;

use crate::resource::Resource;

use super::pods::{containers, pod_spec};
use super::{Policy, Problem};

/// Length of a sha256 digest in hex.
const SHA256_HEX: usize = 64;

/// Checks every container image of a workload.
pub(super) fn check(resource: &Resource, policy: &Policy, out: &mut Vec<Problem>) {
    let Some(pod) = pod_spec(resource) else {
        return;
    };
    for container in containers(&pod) {
        let field = format!("{}.image", container.path);
        let image = container
            .value
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(message) = image_problem(image, policy.require_image_digests) {
            out.push(Problem::new(&resource.id, field, message));
        }
    }
}

/// Why `image` is unacceptable, or `None`.
pub(super) fn image_problem(image: &str, require_digest: bool) -> Option<String> {
    if image.trim().is_empty() {
        return Some("image is empty".to_owned());
    }
    if image.chars().any(char::is_whitespace) {
        return Some(format!("image \"{image}\" contains whitespace"));
    }
    let (reference, digest) = match image.split_once('@') {
        Some((reference, digest)) => (reference, Some(digest)),
        None => (image, None),
    };
    if reference.is_empty() {
        return Some(format!(
            "image \"{image}\" has no repository name before '@'"
        ));
    }
    if let Some(repository) = uppercase_repository(reference) {
        return Some(format!(
            "image \"{image}\": repository \"{repository}\" must be lowercase"
        ));
    }
    let Some(digest) = digest else {
        return require_digest.then(|| {
            format!(
                "image \"{image}\" is not pinned by digest (expected name@sha256:<{SHA256_HEX} lowercase hex>)"
            )
        });
    };
    let (algorithm, hex) = match digest.split_once(':') {
        Some(parts) => parts,
        None => {
            return Some(format!(
                "image \"{image}\": digest \"{digest}\" has no algorithm (expected sha256:<{SHA256_HEX} lowercase hex>)"
            ));
        }
    };
    if algorithm != "sha256" {
        return require_digest.then(|| {
            format!("image \"{image}\": digest algorithm \"{algorithm}\" is not accepted; expected sha256")
        });
    }
    let mut issues = Vec::new();
    if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        issues.push(format!(
            "digest contains '{c}', which is not a hex character"
        ));
    } else if hex.chars().any(|c| c.is_ascii_uppercase()) {
        issues.push("digest must be lowercase hex".to_owned());
    }
    let len = hex.chars().count();
    if len != SHA256_HEX {
        issues.push(format!(
            "digest has {len} hex characters, expected {SHA256_HEX}"
        ));
    }
    (!issues.is_empty()).then(|| format!("image \"{image}\": {}", issues.join("; ")))
}

/// The repository path (registry host excluded, tag removed) when it has uppercase
/// letters, which the runtime rejects as `InvalidImageName`.
fn uppercase_repository(reference: &str) -> Option<&str> {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let without_tag = match reference[last_slash..].rfind(':') {
        Some(colon) => &reference[..last_slash + colon],
        None => reference,
    };
    let path = match without_tag.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => without_tag,
    };
    path.chars().any(|c| c.is_ascii_uppercase()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0c2f4f3a9d1b8e7c6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9";

    #[test]
    fn pinned_images_pass() {
        let image = format!("registry.example.com/aphiria/web@sha256:{DIGEST}");
        assert_eq!(image_problem(&image, true), None);
        let tagged = format!("nginx:1.27@sha256:{DIGEST}");
        assert_eq!(image_problem(&tagged, true), None);
        let port = format!("localhost:5000/Web@sha256:{DIGEST}");
        assert!(image_problem(&port, false).is_some(), "uppercase path");
        let port = format!("REGISTRY.local:5000/web@sha256:{DIGEST}");
        assert_eq!(
            image_problem(&port, true),
            None,
            "registry host may be uppercase"
        );
    }

    #[test]
    fn tags_pass_unless_digests_are_required() {
        assert_eq!(image_problem("nginx:1.27", false), None);
        assert_eq!(
            image_problem("nginx:1.27", true).as_deref(),
            Some(
                "image \"nginx:1.27\" is not pinned by digest (expected name@sha256:<64 lowercase hex>)"
            )
        );
    }

    #[test]
    fn malformed_digests_fail_even_when_not_required() {
        assert_eq!(
            image_problem("app@sha256:0c2f4f3a9d1b", false).as_deref(),
            Some("image \"app@sha256:0c2f4f3a9d1b\": digest has 12 hex characters, expected 64")
        );
        let upper = format!("app@sha256:{}", DIGEST.to_uppercase());
        assert_eq!(
            image_problem(&upper, false),
            Some(format!("image \"{upper}\": digest must be lowercase hex"))
        );
        assert_eq!(
            image_problem("app@sha256:xyz", false).as_deref(),
            Some(
                "image \"app@sha256:xyz\": digest contains 'x', which is not a hex character; digest has 3 hex characters, expected 64"
            )
        );
        assert_eq!(
            image_problem("app@0c2f", false).as_deref(),
            Some(
                "image \"app@0c2f\": digest \"0c2f\" has no algorithm (expected sha256:<64 lowercase hex>)"
            )
        );
        let bare = format!("@sha256:{DIGEST}");
        assert!(image_problem(&bare, false).is_some());
    }

    #[test]
    fn other_algorithms_only_fail_when_digests_are_required() {
        let sha512 = format!("app@sha512:{DIGEST}{DIGEST}");
        assert_eq!(image_problem(&sha512, false), None);
        assert!(image_problem(&sha512, true).is_some());
    }

    #[test]
    fn empty_and_whitespace_images_always_fail() {
        assert_eq!(image_problem("", false).as_deref(), Some("image is empty"));
        assert_eq!(
            image_problem("nginx :1", false).as_deref(),
            Some("image \"nginx :1\" contains whitespace")
        );
    }
}
