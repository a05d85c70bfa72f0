//! An OpenAPI 3.0 description read at run time, and the request / response checks a
//! fake applies to every exchange: operation lookup by method and concrete path,
//! path and query parameters, request bodies, and response bodies per status.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::schema::Validator;

/// Errors loading a description.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read the OpenAPI description at {path} ({source})")]
    Read {
        /// Where we looked.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("the OpenAPI description at {path} is not valid JSON: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Parser message.
        source: serde_json::Error,
    },
    /// The file has no `paths` object.
    #[error("the OpenAPI description at {0} has no `paths`")]
    NoPaths(PathBuf),
}

/// A loaded description.
#[derive(Debug)]
pub struct Spec {
    document: Value,
    path: PathBuf,
    undocumented_error_schema: Option<String>,
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
            undocumented_error_schema: None,
        })
    }

    /// Checks error statuses an operation does not document (APIs such as GitHub's
    /// answer 401/403/5xx on every endpoint without listing them) against the schema
    /// at this JSON pointer, e.g. `/components/schemas/basic-error`. Without it an
    /// undocumented status is a problem.
    pub fn with_undocumented_error_schema(mut self, pointer: &str) -> Self {
        self.undocumented_error_schema = Some(pointer.to_owned());
        self
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

    /// Problems found validating `value` against the schema at JSON pointer
    /// `schema_pointer` (e.g. `/components/schemas/domain_record`).
    pub fn validate_at(&self, schema_pointer: &str, value: &Value) -> Vec<String> {
        match self.document.pointer(schema_pointer) {
            Some(schema) => self.validator().validate(schema, value),
            None => vec![format!("no schema at {schema_pointer}")],
        }
    }

    /// The operation for `method` on a concrete `path`, if the description has one.
    /// Literal segments win over templated ones (`/clusters/upgrades` before
    /// `/clusters/{id}`).
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        let paths = self.document.get("paths")?.as_object()?;
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(usize, Operation<'_>)> = None;
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
            let literal = template_segments
                .iter()
                .filter(|t| !t.starts_with('{'))
                .count();
            if best.as_ref().is_some_and(|(score, _)| *score >= literal) {
                continue;
            }
            let id = object
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or("?");
            best = Some((
                literal,
                Operation {
                    template,
                    id,
                    object,
                    path_item: item,
                },
            ));
        }
        best.map(|(_, operation)| operation)
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
        // Required query parameters.
        for parameter in &parameters {
            let is_query = parameter.get("in").and_then(Value::as_str) == Some("query");
            let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
            if let (true, true, Some(name)) = (
                is_query,
                required,
                parameter.get("name").and_then(Value::as_str),
            ) && !query.iter().any(|(key, _)| key == name)
            {
                problems.push(format!(
                    "required query parameter `{name}` of {} is missing",
                    operation.id
                ));
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

    /// Problems with a JSON response the fake is about to send. A status the
    /// operation does not document (and no `default` response) is checked against
    /// the schema of [`Self::with_undocumented_error_schema`] when it is an error,
    /// and is otherwise itself a problem.
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
        let fallback = self
            .undocumented_error_schema
            .as_deref()
            .and_then(|pointer| self.document.pointer(pointer));
        let schema = match documented {
            Some(response) => response.pointer("/content/application~1json/schema"),
            None if status >= 400 && fallback.is_some() => fallback,
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
                "response {status} of {} must not have a JSON body",
                operation.id
            )],
            (None, None) => Vec::new(),
        }
    }

    /// Problems with a non-JSON response body (e.g. `application/yaml`): the
    /// status must be documented with that media type.
    pub fn check_media_response(
        &self,
        operation: &Operation<'_>,
        status: u16,
        media_type: &str,
    ) -> Vec<String> {
        let documented = operation
            .object
            .get("responses")
            .and_then(|r| r.get(status.to_string()))
            .map(|r| self.deref(r));
        match documented {
            Some(response)
                if response
                    .get("content")
                    .and_then(|c| c.get(media_type))
                    .is_some() =>
            {
                Vec::new()
            }
            Some(_) => vec![format!(
                "response {status} of {} is not documented as {media_type}",
                operation.id
            )],
            None => vec![format!(
                "status {status} is not documented for {}",
                operation.id
            )],
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(document: Value) -> Spec {
        Spec {
            document,
            path: PathBuf::from("test.json"),
            undocumented_error_schema: None,
        }
    }

    #[test]
    fn literal_segments_win_over_templates() {
        let s = spec(json!({"paths": {
            "/v2/things/{id}": {"get": {"operationId": "get_thing"}},
            "/v2/things/upgrades": {"get": {"operationId": "list_upgrades"}},
        }}));
        assert_eq!(
            s.operation("GET", "/v2/things/upgrades").map(|o| o.id),
            Some("list_upgrades")
        );
        assert_eq!(
            s.operation("GET", "/v2/things/7").map(|o| o.id),
            Some("get_thing")
        );
        assert!(s.operation("POST", "/v2/things/7").is_none());
    }

    #[test]
    fn undocumented_statuses() {
        let s = spec(json!({
            "paths": {"/x": {"get": {"operationId": "x", "responses": {"200": {}}}}},
            "components": {"schemas": {"err": {"type": "object", "required": ["message"]}}}
        }));
        let op = s.operation("GET", "/x").expect("op");
        assert_eq!(
            s.check_response(&op, 500, Some(&json!({}))),
            vec!["status 500 is not documented for x".to_owned()]
        );
        let s = s.with_undocumented_error_schema("/components/schemas/err");
        let op = s.operation("GET", "/x").expect("op");
        assert_eq!(
            s.check_response(&op, 500, Some(&json!({}))),
            vec!["response 500 body $: missing required property `message`".to_owned()]
        );
        assert!(
            s.check_response(&op, 500, Some(&json!({"message": "m"})))
                .is_empty()
        );
        assert_eq!(s.check_response(&op, 201, None).len(), 1);
    }

    #[test]
    fn required_query_parameters() {
        let s = spec(
            json!({"paths": {"/x": {"get": {"operationId": "x", "parameters": [
                {"in": "query", "name": "q", "required": true, "schema": {"type": "integer"}}
            ]}}}}),
        );
        let op = s.operation("GET", "/x").expect("op");
        assert_eq!(
            s.check_request(&op, "/x", &[], None, b""),
            vec!["required query parameter `q` of x is missing".to_owned()]
        );
        assert_eq!(
            s.check_request(&op, "/x", &[("q".into(), "a".into())], None, b"")
                .len(),
            1
        );
        assert!(
            s.check_request(&op, "/x", &[("q".into(), "1".into())], None, b"")
                .is_empty()
        );
    }
}
