//! Inputs every stack checks before composing: images from flags, secrets, the
//! image pull Secret, and small helpers for outputs and options.

use components::{ImagePullSecret, Labels};
use preview_core::secret::SecretString;
use preview_core::state::Output;
use preview_core::{Resource, ResourceOptions};
use serde_json::Value;

use crate::config::StackConfig;
use crate::{PinnedImage, SecretSource, StackError};

/// The image given to `flag` (`--web-image`, `--image worker`), which must be
/// pinned by digest and allowed by the config's `allowedImages`. `env` is the
/// environment variable the CLI also reads for it.
pub(crate) fn pinned_image(
    config: &StackConfig,
    flag: &str,
    env: Option<&str>,
    what: &str,
    raw: Option<&str>,
) -> Result<PinnedImage, StackError> {
    let raw = raw.ok_or_else(|| {
        let example = match flag.strip_prefix("--image ") {
            Some(key) => format!("--image {key}=NAME@sha256:<64 hex>"),
            None => format!("{flag} NAME@sha256:<64 hex>"),
        };
        let env = env.map(|e| format!(" (or set {e})")).unwrap_or_default();
        StackError::Missing {
            what: flag.to_owned(),
            hint: format!("pass the {what} image pinned by digest: {example}{env}"),
        }
    })?;
    let image = PinnedImage::parse(flag, raw).map_err(StackError::Invalid)?;
    config.check_image(flag, image.as_str())?;
    Ok(image)
}

/// The secret `name`, or [`StackError::Missing`] saying how to provide it.
pub(crate) fn secret(secrets: &dyn SecretSource, name: &str) -> Result<SecretString, StackError> {
    match secrets.get(name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(StackError::Missing {
            what: format!("secret {name}"),
            hint: secrets.hint(name),
        }),
    }
}

/// A config value the stack needs (resolution already requires it; this guards
/// configurations built by hand).
pub(crate) fn required<'a>(
    config: &StackConfig,
    value: &'a Option<String>,
    key: &str,
) -> Result<&'a str, StackError> {
    value.as_deref().ok_or_else(|| config.missing(key))
}

/// A plain output.
pub(crate) fn plain(value: impl Into<Value>) -> Output {
    Output::Plain(value.into())
}

/// The labels every component of a stack instance gets.
pub(crate) fn labels(config: &StackConfig, instance: &str) -> Labels {
    Labels::for_instance(config.app.as_str(), instance)
}

/// `resource` with `protect` set when `protect` is true.
pub(crate) fn protect(resource: Resource, protect: bool) -> Resource {
    if !protect {
        return resource;
    }
    let options = ResourceOptions {
        protect: true,
        ..resource.options.clone()
    };
    resource.with_options(options)
}

/// The image pull Secret in `namespace`, when the config asks for one.
pub(crate) fn pull_secret(
    config: &StackConfig,
    namespace: &str,
    labels: &Labels,
    secrets: &dyn SecretSource,
) -> Result<Option<Resource>, StackError> {
    let Some(pull) = &config.pull_secret else {
        return Ok(None);
    };
    let token = secret(secrets, crate::stack::REGISTRY_TOKEN)?;
    let secret = ImagePullSecret {
        labels: labels.clone(),
        ..ImagePullSecret::new(
            namespace,
            config.registry.as_str(),
            pull.user.as_str(),
            token,
        )
    }
    .build()?;
    Ok(Some(secret))
}

/// The `imagePullSecrets` names for workloads (empty without a pull Secret).
pub(crate) fn pull_secret_names(pull: Option<&Resource>) -> Vec<String> {
    pull.map(|r| vec![r.id.name.clone()]).unwrap_or_default()
}
