//! The application in a stack: its images, from the request, for the keys the
//! app spec names ([`crate::app_spec::App::image_keys`]); the spec itself is
//! rendered by [`crate::app_spec::render`], which `local`, `preview-pr` and
//! `production` all call.
//!
//! `--image KEY=REF` gives the image of a key; `--web-image` and `--api-image`
//! are the same for `web` and `api`. Pinned stacks (preview-pr, production)
//! require every image pinned by digest; every stack requires it to come from an
//! `allowedImages` prefix. Errors name the flag.

use std::collections::BTreeMap;

use preview_core::state::Output;

use super::inputs::{pinned_image, plain};
use crate::app_spec::render::Images;
use crate::config::StackConfig;
use crate::{PinnedImage, StackError, StackRequest};

/// The flag, environment variable and description of image `key`, for messages.
fn flag_of(key: &str) -> (String, Option<&'static str>, String) {
    match key {
        "web" => (
            "--web-image".into(),
            Some("PREVIEW_WEB_IMAGE"),
            "web".into(),
        ),
        "api" => (
            "--api-image".into(),
            Some("PREVIEW_API_IMAGE"),
            "API".into(),
        ),
        other => (format!("--image {other}"), None, format!("`{other}`")),
    }
}

/// Refuses an image given for a key the app does not have (a typo would
/// otherwise be ignored).
fn unknown_keys(request: &StackRequest, config: &StackConfig) -> Result<(), StackError> {
    let keys = config.app_spec.image_keys();
    for key in request.images.keys() {
        if !keys.iter().any(|k| k == key) {
            let (flag, _, _) = flag_of(key);
            return Err(StackError::Invalid(format!(
                "{flag}: the app ({}) has no image key `{key}`; its keys: {}",
                config.app_spec.origin,
                keys.join(", ")
            )));
        }
    }
    Ok(())
}

/// Every image of the app, pinned by digest and allowed, by key.
pub(crate) fn pinned_images(
    request: &StackRequest,
    config: &StackConfig,
) -> Result<Vec<(String, PinnedImage)>, StackError> {
    unknown_keys(request, config)?;
    let mut out = Vec::new();
    for key in config.app_spec.image_keys() {
        let (flag, env, what) = flag_of(&key);
        let image = pinned_image(config, &flag, env, &what, request.image(&key))?;
        out.push((key, image));
    }
    Ok(out)
}

/// Every image of the app for `local`: from the request (not necessarily
/// pinned), else the config's `images.<key>` (default `<app>/<key>:local`),
/// allowed by `allowedImages`.
pub(crate) fn local_images(
    request: &StackRequest,
    config: &StackConfig,
) -> Result<BTreeMap<String, String>, StackError> {
    unknown_keys(request, config)?;
    let mut out = BTreeMap::new();
    for key in config.app_spec.image_keys() {
        let (flag, _, _) = flag_of(&key);
        let (source, image) = match request.image(&key) {
            Some(image) => (flag, image.to_owned()),
            None => {
                let image = match key.as_str() {
                    "web" => config.local_web_image.clone(),
                    "api" => config.local_api_image.clone(),
                    other => config
                        .local_images
                        .get(other)
                        .cloned()
                        .unwrap_or_else(|| format!("{}/{other}:local", config.app)),
                };
                (
                    format!("config key `images.{key}` in {}:", config.origin),
                    image,
                )
            }
        };
        config.check_image(&source, &image)?;
        out.insert(key, image);
    }
    Ok(out)
}

/// The outputs of a stack that deploys the app: `<route>Url` per route,
/// `namespace`, `databaseName` with the PostgreSQL add-on, and `<key>Image` per
/// image key (the full pinned references a successful preview records as tested).
pub(crate) fn app_outputs(
    urls: Vec<(String, String)>,
    namespace: &str,
    database: Option<&str>,
    images: &Images,
) -> BTreeMap<String, Output> {
    let mut outputs: BTreeMap<String, Output> = urls
        .into_iter()
        .map(|(route, url)| (format!("{route}Url"), plain(url)))
        .collect();
    outputs.insert("namespace".to_owned(), plain(namespace));
    if let Some(database) = database {
        outputs.insert("databaseName".to_owned(), plain(database));
    }
    for (key, image) in &images.refs {
        outputs.insert(format!("{key}Image"), plain(image.as_str()));
    }
    outputs
}
