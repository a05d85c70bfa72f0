//! The official GitHub REST OpenAPI description, read at run time, and the request /
//! response checks the fake applies to every exchange.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::schema::Validator;

/// Environment variable that overrides the location of the OpenAPI description.
pub const OPENAPI_ENV: &str = "PREVIEW_GITHUB_OPENAPI";

/// Errors loading the description.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error(
        "cannot read the GitHub OpenAPI description at {path} ({source}); set {OPENAPI_ENV} to its location"
    )]
    Read {
        /// Where we looked.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("the GitHub OpenAPI description at {path} is not valid JSON: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Parser message.
        source: serde_json::Error,
    },
    /// The file has no `paths` object.
    #[error("the GitHub OpenAPI description at {0} has no `paths`")]
    NoPaths(PathBuf),
}

/// Where the description lives: `$PREVIEW_GITHUB_OPENAPI`, else
/// `<workspace>/../shared/data/openapi/github-subset.json`.
pub fn default_spec_path() -> PathBuf {
    if let Some(path) = std::env::var_os(OPENAPI_ENV) {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/openapi/github-subset.json")
}

/// The loaded description.
#[derive(Debug)]
pub struct Spec {
    document: Value,
    path: PathBuf,
}

/// One operation of the description matched against a request.
#[derive(Debug, Clone)]
pub struct Operation<'a> {
    /// The path template, e.g. `/repos/{owner}/{repo}/deployments`.
    pub template: &'a str,
    /// `operationId`, e.g. `repos/create-deployment`.
    pub id: &'a str,
    /// The operation object.
    pub object: &'a Value,
    /// The path item (for path-level parameters).
    pub path_item: &'a Value,
}

impl Spec {
    /// Reads and parses the description.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let document: Value = serde_json::from_str(&text).map_err(|source| SpecError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if !document.get("paths").is_some_and(Value::is_object) {
            return Err(SpecError::NoPaths(path.to_path_buf()));
        }
        Ok(Self {
            document,
            path: path.to_path_buf(),
        })
    }

    /// Where the description was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole document.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// A validator for schemas of this document.
    pub fn validator(&self) -> Validator<'_> {
        Validator::new(&self.document)
    }

    /// `components/examples/<name>/value`, used as templates for big responses.
    pub fn example(&self, name: &str) -> Option<&Value> {
        self.document
            .pointer(&format!("/components/examples/{name}/value"))
    }

    /// The operation for `method` on a concrete `path`, if the description has one.
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        let paths = self.document.get("paths")?.as_object()?;
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        for (template, item) in paths {
            let template_segments: Vec<&str> = template.split('/').collect();
            if template_segments.len() != segments.len() {
                continue;
            }
            let matches = template_segments
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
            if !matches {
                continue;
            }
            let Some(object) = item.get(method.to_ascii_lowercase()) else {
                continue;
            };
            let id = object
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or("?");
            return Some(Operation {
                template,
                id,
                object,
                path_item: item,
            });
        }
        None
    }

    fn deref<'a>(&'a self, value: &'a Value) -> &'a Value {
        let mut current = value;
        for _ in 0..16 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(reference) => match self.validator().resolve(reference) {
                    Some(target) => current = target,
                    None => return current,
                },
                None => return current,
            }
        }
        current
    }

    fn parameters<'a>(&'a self, operation: &Operation<'a>) -> Vec<&'a Value> {
        let mut all = Vec::new();
        for source in [operation.path_item, operation.object] {
            if let Some(list) = source.get("parameters").and_then(Value::as_array) {
                all.extend(list.iter().map(|p| self.deref(p)));
            }
        }
        all
    }

    /// Problems with a request: path and query parameters, content type and JSON body.
    pub fn check_request(
        &self,
        operation: &Operation<'_>,
        path: &str,
        query: &[(String, String)],
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let validator = self.validator();
        let parameters = self.parameters(operation);

        // Path parameters: `{issue_number}` etc. must parse as their schema's type.
        let template_segments = operation.template.split('/');
        for (template, actual) in template_segments.zip(path.split('/')) {
            let Some(name) = template
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            else {
                continue;
            };
            let declared = parameters.iter().find(|p| {
                p.get("in").and_then(Value::as_str) == Some("path")
                    && p.get("name").and_then(Value::as_str) == Some(name)
            });
            match declared {
                Some(parameter) => {
                    if let Some(schema) = parameter.get("schema") {
                        let value = coerce(self.deref(schema), actual);
                        for problem in validator.validate(schema, &value) {
                            problems.push(format!("path parameter `{name}`: {problem}"));
                        }
                    }
                }
                None => problems.push(format!("path parameter `{name}` is not declared")),
            }
        }

        // Query parameters: only declared ones, each of the declared type.
        for (name, raw) in query {
            let declared = parameters.iter().find(|p| {
                p.get("in").and_then(Value::as_str) == Some("query")
                    && p.get("name").and_then(Value::as_str) == Some(name.as_str())
            });
            match declared {
                Some(parameter) => {
                    if let Some(schema) = parameter.get("schema") {
                        let value = coerce(self.deref(schema), raw);
                        for problem in validator.validate(schema, &value) {
                            problems.push(format!("query parameter `{name}`: {problem}"));
                        }
                    }
                }
                None => problems.push(format!(
                    "query parameter `{name}` is not accepted by {}",
                    operation.id
                )),
            }
        }

        // Body.
        let request_body = operation.object.get("requestBody").map(|b| self.deref(b));
        match request_body {
            None => {
                if !body.is_empty() {
                    problems.push(format!("{} takes no request body", operation.id));
                }
            }
            Some(request_body) => {
                let required = request_body.get("required").and_then(Value::as_bool) == Some(true);
                if body.is_empty() {
                    if required {
                        problems.push(format!("{} requires a JSON request body", operation.id));
                    }
                } else {
                    let is_json = content_type.is_some_and(|ct| {
                        ct.split(';').next().map(str::trim) == Some("application/json")
                    });
                    if !is_json {
                        problems.push(format!(
                            "request body must be sent as application/json (got {})",
                            content_type.unwrap_or("no content-type")
                        ));
                    }
                    match serde_json::from_slice::<Value>(body) {
                        Err(error) => problems.push(format!("request body is not JSON: {error}")),
                        Ok(value) => {
                            if let Some(schema) =
                                request_body.pointer("/content/application~1json/schema")
                            {
                                for problem in validator.validate(schema, &value) {
                                    problems.push(format!("request body {problem}"));
                                }
                            }
                        }
                    }
                }
            }
        }
        problems
    }

    /// Problems with a response the fake is about to send. Undocumented error statuses
    /// (GitHub returns 401/403/5xx on every endpoint) are checked against `basic-error`;
    /// an undocumented success status is itself a problem.
    pub fn check_response(
        &self,
        operation: &Operation<'_>,
        status: u16,
        body: Option<&Value>,
    ) -> Vec<String> {
        let validator = self.validator();
        let responses = operation.object.get("responses");
        let documented = responses
            .and_then(|r| r.get(status.to_string()).or_else(|| r.get("default")))
            .map(|r| self.deref(r));
        let schema = match documented {
            Some(response) => response.pointer("/content/application~1json/schema"),
            None if status >= 400 => self.document.pointer("/components/schemas/basic-error"),
            None => {
                return vec![format!(
                    "status {status} is not documented for {}",
                    operation.id
                )];
            }
        };
        match (schema, body) {
            (Some(schema), Some(body)) => validator
                .validate(schema, body)
                .into_iter()
                .map(|problem| format!("response {status} body {problem}"))
                .collect(),
            (Some(_), None) => vec![format!(
                "response {status} of {} must have a JSON body",
                operation.id
            )],
            (None, Some(_)) => vec![format!(
                "response {status} of {} must not have a body",
                operation.id
            )],
            (None, None) => Vec::new(),
        }
    }
}

/// Interprets a raw path/query string as the JSON type its schema asks for, so type
/// checks apply (a non-numeric `page` becomes a string and fails `integer`).
fn coerce(schema: &Value, raw: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        Some("number") => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}
