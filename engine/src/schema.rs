//! JSON Schema validation with errors that name the field at fault.
//!
//! Plugins declare the schema of their configuration; event types (later) declare
//! the schema of their payloads. Both are checked here, so every user sees the same
//! kind of message: `/threshold: "ten" is not of type "number"`.

use serde_json::Value;
use std::fmt;

/// A compiled JSON Schema.
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonSchema")
    }
}

/// A schema that is not a valid JSON Schema.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON Schema: {0}")]
pub struct InvalidSchema(String);

/// An instance that does not satisfy a schema: every violation, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .violations.join("; "))]
pub struct SchemaViolations {
    /// One line per violation, `<JSON pointer>: <why>`; the root is `/`.
    pub violations: Vec<String>,
}

impl JsonSchema {
    /// Compiles `schema`. References to other documents are not fetched.
    pub fn compile(schema: &Value) -> Result<Self, InvalidSchema> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| InvalidSchema(e.to_string()))
    }

    /// Checks `instance`, reporting every violation.
    pub fn validate(&self, instance: &Value) -> Result<(), SchemaViolations> {
        let violations: Vec<String> = self
            .validator
            .iter_errors(instance)
            .map(|error| {
                let path = error.instance_path().to_string();
                let path = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                format!("{path}: {error}")
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(SchemaViolations { violations })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn threshold_schema() -> JsonSchema {
        JsonSchema::compile(&json!({
            "type": "object",
            "required": ["threshold"],
            "additionalProperties": false,
            "properties": { "threshold": { "type": "number" } }
        }))
        .unwrap()
    }

    #[test]
    fn violations_name_the_field() {
        let cases = [
            (json!({ "threshold": 10 }), None),
            (
                json!({ "threshold": "ten" }),
                Some("/threshold: \"ten\" is not of type \"number\""),
            ),
            (json!({}), Some("/: \"threshold\" is a required property")),
            (
                json!({ "threshold": 1, "extra": true }),
                Some("/: Additional properties are not allowed ('extra' was unexpected)"),
            ),
        ];
        for (instance, expected) in cases {
            let result = threshold_schema().validate(&instance);
            match expected {
                None => assert_eq!(result, Ok(()), "{instance}"),
                Some(message) => assert_eq!(result.unwrap_err().to_string(), message, "{instance}"),
            }
        }
    }

    #[test]
    fn rejects_a_schema_that_is_not_one() {
        let error = JsonSchema::compile(&json!({ "type": "no-such-type" })).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid JSON Schema"),
            "{error}"
        );
    }
}
