//! Reads required values from an event payload, naming the path of anything missing.

use serde_json::Value;
use weft_sdk::Error;

/// The value at a dotted path, if there is one and it is not null.
pub fn lookup<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(payload, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

/// A non-empty string at `path`.
pub fn string<'a>(payload: &'a Value, path: &str) -> Result<&'a str, Error> {
    match required(payload, path)? {
        Value::String(s) if !s.trim().is_empty() => Ok(s),
        Value::String(_) => Err(Error::invalid_event(format!("{path} is empty"))),
        other => Err(wrong_type(path, "a string", other)),
    }
}

/// An optional non-empty string at `path`.
pub fn optional_string<'a>(payload: &'a Value, path: &str) -> Option<&'a str> {
    lookup(payload, path)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// An integer at `path` that fits `i32`, the range of GraphQL's `Int`.
pub fn int32(payload: &Value, path: &str) -> Result<i32, Error> {
    let value = required(payload, path)?;
    value
        .as_i64()
        .ok_or_else(|| wrong_type(path, "an integer", value))
        .and_then(|n| {
            i32::try_from(n)
                .map_err(|_| Error::invalid_event(format!("{path} is out of range: {n}")))
        })
}

/// A Shopify numeric id at `path`, given as a number or as a string of digits
/// (ERP systems often keep foreign ids as text).
pub fn shopify_id(payload: &Value, path: &str) -> Result<u64, Error> {
    let value = required(payload, path)?;
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| wrong_type(path, "a numeric Shopify id", value))
}

fn required<'a>(payload: &'a Value, path: &str) -> Result<&'a Value, Error> {
    lookup(payload, path).ok_or_else(|| Error::invalid_event(format!("{path} is missing")))
}

fn wrong_type(path: &str, expected: &str, found: &Value) -> Error {
    Error::invalid_event(format!("{path} must be {expected}, not {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_required_values() {
        let payload = json!({ "stock": { "sku": "A-1", "quantity": 7, "refs": { "id": "123" } } });
        assert_eq!(string(&payload, "stock.sku"), Ok("A-1"));
        assert_eq!(int32(&payload, "stock.quantity"), Ok(7));
        assert_eq!(shopify_id(&payload, "stock.refs.id"), Ok(123));
    }

    #[test]
    fn names_the_path_of_a_missing_or_null_value() {
        let payload = json!({ "stock": { "sku": null } });
        assert_eq!(
            string(&payload, "stock.sku"),
            Err(Error::invalid_event("stock.sku is missing"))
        );
        assert_eq!(
            int32(&payload, "stock.quantity"),
            Err(Error::invalid_event("stock.quantity is missing"))
        );
    }

    #[test]
    fn rejects_values_of_the_wrong_kind() {
        let payload =
            json!({ "quantity": 2.5, "big": 3_000_000_000_i64, "id": "gid://x", "sku": " " });
        assert_eq!(
            int32(&payload, "quantity"),
            Err(Error::invalid_event("quantity must be an integer, not 2.5"))
        );
        assert_eq!(
            int32(&payload, "big"),
            Err(Error::invalid_event("big is out of range: 3000000000"))
        );
        assert!(shopify_id(&payload, "id").is_err());
        assert_eq!(
            string(&payload, "sku"),
            Err(Error::invalid_event("sku is empty"))
        );
    }
}
