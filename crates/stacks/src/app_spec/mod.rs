//! The app spec: the application's shape as data, in a file of the user's
//! repository (`preview-app.yaml`; `--app FILE` names another). Without one the
//! stacks deploy [`DEFAULT_SPEC`], the reference project's (Aphiria: a static
//! site, a PHP API behind nginx, its PostgreSQL database and the Phinx migration
//! Job gating the API, two routes), embedded in the binary.
//!
//! - [`model`]: the file as written (YAML, camelCase, unknown keys rejected);
//!   its JSON Schema is `schemas/preview-app.schema.json` ([`schema_json`], kept
//!   equal to the types by a test).
//! - [`template`]: `{placeholder}` templates (`{pr}`, `{domain}`, `{db.host}`,
//!   `{url.api}`, `{service.api.url}`, `{values.logLevel}`, …).
//! - `check`: static checks after parsing (names, kinds, references, every
//!   template's placeholders).
//! - [`render`]: a spec and one stack instance's [`render::Instance`] → the
//!   application's resources (pure).
//!
//! [`App::parse`] is pure; [`App::load`] reads the file and the extra manifests
//! it names. Errors name the file, the key path and what is expected:
//! `preview-app.yaml: services[0].port: invalid type: string "http", expected u16`.

pub mod model;
pub mod network;
pub mod render;
pub mod template;

mod check;

use std::path::{Path, PathBuf};

pub use model::AppSpec;

/// The spec file's default name, looked up in the working directory.
pub const SPEC_FILE: &str = "preview-app.yaml";

/// The reference project's app (Aphiria), the default.
pub const DEFAULT_SPEC: &str = include_str!("aphiria.yaml");

/// Where [`DEFAULT_SPEC`] is said to come from in messages.
pub const DEFAULT_ORIGIN: &str = "the built-in app spec (Aphiria)";

/// An error in an app spec: file, key path, what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: `{path}`: {message}")]
pub struct SpecError {
    /// The file.
    pub origin: String,
    /// The key path (`services[1].env.APP_URL`).
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl From<SpecError> for crate::StackError {
    fn from(err: SpecError) -> Self {
        crate::StackError::Invalid(err.to_string())
    }
}

/// Extra manifests as read (from the files the spec names, or stdin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestSource {
    /// Where they came from (`k8s/`, `stdin`), for messages.
    pub name: String,
    /// The YAML (documents of every file, in order).
    pub bytes: Vec<u8>,
}

/// A checked app spec and what was read with it.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    /// Where it came from, for messages.
    pub origin: String,
    /// The spec.
    pub spec: AppSpec,
    /// The extra manifests, once read.
    pub manifests: Option<ManifestSource>,
}

impl Default for App {
    fn default() -> Self {
        App::builtin()
    }
}

impl App {
    /// The built-in spec ([`DEFAULT_SPEC`]).
    pub fn builtin() -> App {
        match App::parse(DEFAULT_ORIGIN, DEFAULT_SPEC) {
            Ok(app) => app,
            // A test parses it; it is part of the binary.
            Err(err) => unreachable!("the built-in app spec is valid: {err}"),
        }
    }

    /// Parses and checks `text` (from `origin`). Pure.
    pub fn parse(origin: &str, text: &str) -> Result<App, SpecError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let spec: AppSpec = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let message = explain(&err.into_inner().to_string());
            SpecError {
                origin: origin.to_owned(),
                path: if path == "." {
                    "(top)".to_owned()
                } else {
                    path
                },
                message,
            }
        })?;
        check::check(origin, &spec)?;
        Ok(App {
            origin: origin.to_owned(),
            spec,
            manifests: None,
        })
    }

    /// Reads `path`, and the extra manifests it names (relative to its directory).
    pub fn load(path: &Path) -> Result<App, crate::StackError> {
        App::load_from(path, true)
    }

    /// [`App::load`], reading the spec's `manifests.path` only when `manifests`.
    fn load_from(path: &Path, manifests: bool) -> Result<App, crate::StackError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            crate::StackError::Invalid(format!("cannot read the app spec {origin}: {err}"))
        })?;
        let mut app = App::parse(&origin, &text)?;
        let named = app.spec.manifests.as_ref().and_then(|m| m.path.clone());
        if let Some(relative) = named.filter(|_| manifests) {
            let dir = path.parent().unwrap_or(Path::new("."));
            app.manifests = Some(read_manifests(&origin, &dir.join(&relative))?);
        }
        Ok(app)
    }

    /// The app a run deploys: `explicit` (`--app FILE`), else [`SPEC_FILE`] in
    /// `dir` (the repository: the working directory) when it exists, else the
    /// built-in one; with `manifests` (`--manifests PATH`, `-` for stdin:
    /// `helm template … | stacks up …`) instead of the ones the spec names.
    pub fn discover(
        explicit: Option<&Path>,
        dir: &Path,
        manifests: Option<&Path>,
    ) -> Result<App, crate::StackError> {
        let found = dir.join(SPEC_FILE);
        let read_named = manifests.is_none();
        let app = match explicit {
            Some(path) => App::load_from(path, read_named)?,
            None if found.is_file() => App::load_from(&found, read_named)?,
            None => App::builtin(),
        };
        let Some(path) = manifests else {
            return Ok(app);
        };
        let source = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|err| {
                crate::StackError::Invalid(format!("--manifests -: cannot read stdin: {err}"))
            })?;
            ManifestSource {
                name: "stdin".to_owned(),
                bytes,
            }
        } else {
            read_manifests("--manifests", path)?
        };
        Ok(app.with_manifests(source))
    }

    /// These extra manifests instead of the ones the spec names (stdin).
    pub fn with_manifests(mut self, manifests: ManifestSource) -> App {
        self.manifests = Some(manifests);
        self
    }

    /// The image keys `--image KEY=REF` fills, in order of first use.
    pub fn image_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let used = self
            .spec
            .services
            .iter()
            .map(|s| &s.image)
            .chain(self.spec.jobs.iter().map(|j| &j.image));
        for key in used {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }
}

/// Reads a YAML file, or every `*.yaml`/`*.yml` of a directory in name order.
fn read_manifests(origin: &str, path: &Path) -> Result<ManifestSource, crate::StackError> {
    let fail = |what: &Path, err: std::io::Error| {
        crate::StackError::Invalid(format!(
            "{origin}: cannot read the extra manifests {}: {err}",
            what.display()
        ))
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| fail(path, e))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut bytes = Vec::new();
    for file in &files {
        let text = std::fs::read(file).map_err(|e| fail(file, e))?;
        bytes.extend_from_slice(b"---\n");
        bytes.extend_from_slice(&text);
        bytes.push(b'\n');
    }
    Ok(ManifestSource {
        name: path.display().to_string(),
        bytes,
    })
}

/// The YAML error's message without its own path prefix (the key path is
/// reported apart), untagged-enum failures said in words.
fn explain(message: &str) -> String {
    let message = match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.is_empty()
                && !prefix.contains(' ')
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c)) =>
        {
            rest
        }
        _ => message,
    };
    if let Some(rest) = message.strip_prefix("data did not match any variant of untagged enum ") {
        let (name, location) = rest.split_once(' ').unwrap_or((rest, ""));
        let expected = match name {
            "PerStack" => {
                "a string, or a map of stacks (`default`, `local`, `preview-pr`, `production`) to strings"
            }
            "Resources" => {
                "a key of the config's `resources:` (e.g. `web`), or `{requests: {cpu, memory, ephemeralStorage}, limits: {…}}`"
            }
            "RouteLimit" => "`true`, `false`, or `{connectionsPerClient, requestRate, burst}`",
            _ => "another shape",
        };
        let location = location.trim();
        return if location.is_empty() {
            format!("expected {expected}")
        } else {
            format!("expected {expected} ({location})")
        };
    }
    message.to_owned()
}

/// The JSON Schema of the spec file, as checked in (`schemas/preview-app.schema.json`).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(AppSpec);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
