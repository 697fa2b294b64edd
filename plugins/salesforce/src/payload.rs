//! Reads values from an event payload, naming the path of anything missing.

use serde_json::Value;
use weft_sdk::Error;

/// The value at a dotted path, if there is one and it is not null.
pub fn lookup<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(payload, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

/// An id at `path`, as a string or an integer, usable as an external id: not
/// empty, and not `.` or `..`, which URL normalisation would turn into a
/// different path.
pub fn external_id(payload: &Value, path: &str) -> Result<String, Error> {
    let id = match required(payload, path)? {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        other => {
            return Err(Error::invalid_event(format!(
                "{path} must be a string or an integer, not {other}"
            )));
        }
    };
    if id.trim().is_empty() || id == "." || id == ".." {
        return Err(Error::invalid_event(format!(
            "{path} is not a usable external id: {id:?}"
        )));
    }
    Ok(id)
}

/// The `YYYY-MM-DD` date an RFC 3339 timestamp (or a bare date) at `path` starts with.
pub fn date(payload: &Value, path: &str) -> Result<String, Error> {
    let value = required(payload, path)?;
    value
        .as_str()
        .and_then(date_prefix)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::invalid_event(format!(
                "{path} must be an RFC 3339 date or timestamp, not {value}"
            ))
        })
}

fn date_prefix(timestamp: &str) -> Option<&str> {
    let date = timestamp.get(..10)?;
    let shaped = date.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        _ => b.is_ascii_digit(),
    });
    let rest_is_time = matches!(
        timestamp.as_bytes().get(10),
        None | Some(b'T' | b't' | b' ')
    );
    (shaped && rest_is_time).then_some(date)
}

fn required<'a>(payload: &'a Value, path: &str) -> Result<&'a Value, Error> {
    lookup(payload, path).ok_or_else(|| Error::invalid_event(format!("{path} is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn external_ids_are_strings_or_integers() {
        let payload = json!({ "a": "CUST-1", "b": 42, "c": 4.5, "d": "..", "e": "" });
        assert_eq!(external_id(&payload, "a"), Ok("CUST-1".to_owned()));
        assert_eq!(external_id(&payload, "b"), Ok("42".to_owned()));
        assert!(external_id(&payload, "c").is_err());
        assert!(external_id(&payload, "d").is_err());
        assert!(external_id(&payload, "e").is_err());
        assert_eq!(
            external_id(&payload, "f.g"),
            Err(Error::invalid_event("f.g is missing"))
        );
    }

    #[test]
    fn dates_come_from_timestamps_or_dates() {
        let payload = json!({
            "ts": "2025-11-29T16:00:00+08:00", "day": "2025-11-29",
            "us": "11/29/2025", "short": "2025-11", "joined": "2025-11-290"
        });
        assert_eq!(date(&payload, "ts"), Ok("2025-11-29".to_owned()));
        assert_eq!(date(&payload, "day"), Ok("2025-11-29".to_owned()));
        assert!(date(&payload, "us").is_err());
        assert!(date(&payload, "short").is_err());
        assert!(date(&payload, "joined").is_err());
    }
}
