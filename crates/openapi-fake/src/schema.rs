//! A focused JSON-Schema validator for the OpenAPI 3.0 subset used by the GitHub and
//! DigitalOcean descriptions.
//!
//! Supported keywords: `type`, `nullable`, `enum`, `properties`, `required`,
//! `additionalProperties` (boolean or schema), `items`, `allOf`, `oneOf`, `anyOf`,
//! `discriminator` (with or without `mapping`), `$ref` (local `#/...` pointers),
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `maxProperties`,
//! `minimum`/`maximum`. Annotations (`format`, `description`, `example`,
//! `default`, `title`, `deprecated`, `x-*`, …) are ignored. Keywords that would change
//! the outcome but are not implemented (`pattern`, `not`, …) are reported as errors so a
//! schema can never be accepted silently by a validator that does not understand it.

use serde_json::Value;

/// Keywords that only annotate a schema and never affect validation.
const ANNOTATIONS: &[&str] = &[
    "description",
    "example",
    "examples",
    "default",
    "title",
    "deprecated",
    "format",
    "readOnly",
    "writeOnly",
    "externalDocs",
    "xml",
];

/// Keywords handled by [`Validator`].
const SUPPORTED: &[&str] = &[
    "type",
    "nullable",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "discriminator",
    "$ref",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "minProperties",
    "minimum",
    "maximum",
];

/// Maximum `$ref`/combinator nesting, a guard against reference cycles.
const MAX_DEPTH: usize = 64;

/// Validates JSON values against schemas of one OpenAPI document (for `$ref` lookups).
#[derive(Debug, Clone, Copy)]
pub struct Validator<'a> {
    root: &'a Value,
}

impl<'a> Validator<'a> {
    /// A validator resolving `$ref`s inside `root` (the whole OpenAPI document).
    pub fn new(root: &'a Value) -> Self {
        Self { root }
    }

    /// Every problem found when checking `value` against `schema`; empty when valid.
    /// Each problem is one line starting with a JSON path (`$.user.login: …`).
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", 0, &mut errors);
        errors
    }

    /// Resolves a local `$ref` such as `#/components/schemas/simple-user`.
    pub fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        if depth > MAX_DEPTH {
            errors.push(format!(
                "{path}: schema nesting deeper than {MAX_DEPTH} (cycle?)"
            ));
            return;
        }
        let Some(schema) = schema.as_object() else {
            // `true`/`false` schemas (JSON Schema) — OpenAPI 3.0 does not use them, but be exact.
            if schema == &Value::Bool(false) {
                errors.push(format!("{path}: no value is allowed here"));
            }
            return;
        };

        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            // In OpenAPI 3.0 siblings of `$ref` are ignored.
            match self.resolve(reference) {
                Some(target) => self.check(target, value, path, depth + 1, errors),
                None => errors.push(format!("{path}: unresolvable $ref {reference}")),
            }
            return;
        }

        for key in schema.keys() {
            if !SUPPORTED.contains(&key.as_str())
                && !ANNOTATIONS.contains(&key.as_str())
                && !key.starts_with("x-")
            {
                errors.push(format!(
                    "{path}: validator does not support keyword `{key}`"
                ));
            }
        }

        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if value.is_null() && nullable {
            return;
        }

        self.check_combinators(schema, value, path, depth, errors);

        if let Some(expected) = schema.get("type")
            && !type_matches(expected, value)
        {
            errors.push(format!(
                "{path}: expected {}, found {}",
                describe_type(expected),
                kind_of(value)
            ));
            return;
        }

        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!(
                "{path}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }

        match value {
            Value::Object(map) => self.check_object(schema, map, path, depth, errors),
            Value::Array(items) => self.check_array(schema, items, path, depth, errors),
            Value::String(text) => check_string(schema, text, path, errors),
            Value::Number(number) => check_number(schema, number, path, errors),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_combinators(
        &self,
        schema: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, value, path, depth + 1, errors);
            }
        }
        if let Some(chosen) = self.discriminated(schema, value, path, errors) {
            // The discriminator names the one alternative that applies: check it
            // alone, which also gives precise messages instead of "matched none".
            if let Some(target) = chosen {
                self.check(&target, value, path, depth + 1, errors);
            }
            return;
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let matching: Vec<usize> = one
                .iter()
                .enumerate()
                .filter(|(_, sub)| self.matches(sub, value, path, depth))
                .map(|(index, _)| index)
                .collect();
            if matching.len() != 1 {
                errors.push(format!(
                    "{path}: must match exactly one oneOf alternative, matched {} ({matching:?})",
                    matching.len()
                ));
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|sub| self.matches(sub, value, path, depth))
        {
            errors.push(format!("{path}: matches none of the anyOf alternatives"));
        }
    }

    /// With a `discriminator` and an object value carrying its property:
    /// `Some(Some(schema))` for the alternative it names, `Some(None)` when it names
    /// none (reported), `None` when the discriminator does not apply.
    fn discriminated(
        &self,
        schema: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) -> Option<Option<Value>> {
        let discriminator = schema.get("discriminator")?;
        let property = discriminator.get("propertyName")?.as_str()?;
        let tag = value.as_object()?.get(property)?.as_str()?;
        let alternatives: Vec<&Value> = ["oneOf", "anyOf"]
            .iter()
            .filter_map(|key| schema.get(*key).and_then(Value::as_array))
            .flatten()
            .collect();
        let mapped = discriminator
            .get("mapping")
            .and_then(|m| m.get(tag))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                // Implicit mapping: the alternative whose `$ref` ends in the tag.
                alternatives
                    .iter()
                    .filter_map(|a| a.get("$ref").and_then(Value::as_str))
                    .find(|r| r.rsplit('/').next() == Some(tag))
                    .map(str::to_owned)
            });
        match mapped {
            Some(reference) => Some(Some(serde_json::json!({ "$ref": reference }))),
            None => {
                let mut known: Vec<String> = discriminator
                    .get("mapping")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                if known.is_empty() {
                    known = alternatives
                        .iter()
                        .filter_map(|a| a.get("$ref").and_then(Value::as_str))
                        .filter_map(|r| r.rsplit('/').next())
                        .map(str::to_owned)
                        .collect();
                }
                errors.push(format!(
                    "{path}.{property}: {tag:?} is not one of the discriminator values [{}]",
                    known.join(", ")
                ));
                Some(None)
            }
        }
    }

    fn matches(&self, schema: &Value, value: &Value, path: &str, depth: usize) -> bool {
        let mut sub_errors = Vec::new();
        self.check(schema, value, path, depth + 1, &mut sub_errors);
        sub_errors.is_empty()
    }

    fn check_object(
        &self,
        schema: &serde_json::Map<String, Value>,
        map: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    errors.push(format!("{path}: missing required property `{name}`"));
                }
            }
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && map.len() as u64 > max
        {
            errors.push(format!("{path}: more than {max} properties"));
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (map.len() as u64) < min
        {
            errors.push(format!("{path}: fewer than {min} properties"));
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, item) in map {
            let child = format!("{path}.{key}");
            if let Some(property) = properties.and_then(|props| props.get(key)) {
                self.check(property, item, &child, depth + 1, errors);
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => {
                    errors.push(format!("{path}: property `{key}` is not allowed"));
                }
                Some(extra @ Value::Object(_)) => {
                    self.check(extra, item, &child, depth + 1, errors);
                }
                // OpenAPI 3.0 default: additional properties are allowed.
                _ => {}
            }
        }
    }

    fn check_array(
        &self,
        schema: &serde_json::Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            errors.push(format!("{path}: more than {max} items"));
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{path}: fewer than {min} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.check(
                    item_schema,
                    item,
                    &format!("{path}[{index}]"),
                    depth + 1,
                    errors,
                );
            }
        }
    }
}

fn check_string(
    schema: &serde_json::Map<String, Value>,
    text: &str,
    path: &str,
    errors: &mut Vec<String>,
) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errors.push(format!("{path}: longer than {max} characters ({length})"));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        errors.push(format!("{path}: shorter than {min} characters ({length})"));
    }
}

fn check_number(
    schema: &serde_json::Map<String, Value>,
    number: &serde_json::Number,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(actual) = number.as_f64() else {
        return;
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && actual < min
    {
        errors.push(format!("{path}: {number} is below the minimum {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && actual > max
    {
        errors.push(format!("{path}: {number} is above the maximum {max}"));
    }
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(name) => single_type_matches(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| single_type_matches(name, value)),
        _ => false,
    }
}

fn single_type_matches(name: &str, value: &Value) -> bool {
    match name {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

fn describe_type(expected: &Value) -> String {
    match expected {
        Value::String(name) => name.clone(),
        other => other.to_string(),
    }
}

/// The JSON kind of a value, for messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "components": {"schemas": {
                "user": {"type": "object", "required": ["login"], "properties": {
                    "login": {"type": "string"}, "id": {"type": "integer"}
                }},
                "nullable-user": {"type": "object", "nullable": true, "required": ["login"],
                    "properties": {"login": {"type": "string"}}}
            }}
        })
    }

    #[test]
    fn accepts_valid_and_reports_every_problem() {
        let root = doc();
        let validator = Validator::new(&root);
        let schema = json!({"$ref": "#/components/schemas/user"});
        assert!(
            validator
                .validate(&schema, &json!({"login": "a", "id": 1}))
                .is_empty()
        );
        let errors = validator.validate(&schema, &json!({"id": "x"}));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("missing required property `login`"));
        assert!(errors[1].contains("$.id: expected integer, found string"));
    }

    #[test]
    fn nullable_enum_and_combinators() {
        let root = doc();
        let validator = Validator::new(&root);
        let nullable = json!({"$ref": "#/components/schemas/nullable-user"});
        assert!(validator.validate(&nullable, &Value::Null).is_empty());
        let strict = json!({"$ref": "#/components/schemas/user"});
        assert_eq!(validator.validate(&strict, &Value::Null).len(), 1);

        let state = json!({"type": "string", "enum": ["approved", "rejected"]});
        assert!(validator.validate(&state, &json!("approved")).is_empty());
        assert_eq!(validator.validate(&state, &json!("maybe")).len(), 1);

        let payload = json!({"oneOf": [
            {"type": "object", "additionalProperties": true}, {"type": "string"}
        ]});
        assert!(validator.validate(&payload, &json!({"a": 1})).is_empty());
        assert!(validator.validate(&payload, &json!("x")).is_empty());
        assert_eq!(validator.validate(&payload, &json!(3)).len(), 1);

        let either = json!({"anyOf": [{"type": "integer"}, {"type": "boolean"}]});
        assert!(validator.validate(&either, &json!(true)).is_empty());
        assert_eq!(validator.validate(&either, &json!("no")).len(), 1);
    }

    #[test]
    fn discriminator_picks_the_alternative() {
        let root = json!({"components": {"schemas": {
            "a": {"type": "object", "required": ["type", "data"],
                "properties": {"type": {"type": "string"}, "data": {"type": "string"}}},
            "mx": {"type": "object", "required": ["type", "priority"],
                "properties": {"type": {"type": "string"}, "priority": {"type": "integer"}}}
        }}});
        let validator = Validator::new(&root);
        let mapped = json!({
            "anyOf": [{"$ref": "#/components/schemas/a"}, {"$ref": "#/components/schemas/mx"}],
            "discriminator": {"propertyName": "type", "mapping": {
                "A": "#/components/schemas/a", "MX": "#/components/schemas/mx"}}
        });
        assert!(
            validator
                .validate(&mapped, &json!({"type": "A", "data": "1.2.3.4"}))
                .is_empty()
        );
        // The message comes from the named alternative, not "matched none".
        assert_eq!(
            validator.validate(&mapped, &json!({"type": "A", "priority": 1})),
            vec!["$: missing required property `data`".to_owned()]
        );
        assert_eq!(
            validator.validate(&mapped, &json!({"type": "SPF", "data": "x"})),
            vec!["$.type: \"SPF\" is not one of the discriminator values [A, MX]".to_owned()]
        );
        // Without the property the combinator applies as usual.
        assert_eq!(validator.validate(&mapped, &json!({"data": "x"})).len(), 1);
        let implicit = json!({
            "oneOf": [{"$ref": "#/components/schemas/a"}, {"$ref": "#/components/schemas/mx"}],
            "discriminator": {"propertyName": "type"}
        });
        assert!(
            validator
                .validate(&implicit, &json!({"type": "mx", "priority": 10}))
                .is_empty()
        );
    }

    #[test]
    fn additional_properties_and_unsupported_keywords() {
        let root = doc();
        let validator = Validator::new(&root);
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "additionalProperties": false});
        assert_eq!(
            validator
                .validate(&closed, &json!({"a": "x", "b": 1}))
                .len(),
            1
        );
        let typed = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert_eq!(validator.validate(&typed, &json!({"b": 1})).len(), 1);
        let pattern = json!({"type": "string", "pattern": "^a$"});
        assert!(validator.validate(&pattern, &json!("a"))[0].contains("does not support"));
        let items = json!({"type": "array", "items": {"type": "integer"}, "maxItems": 1});
        assert_eq!(validator.validate(&items, &json!([1, "x"])).len(), 2);
    }
}
