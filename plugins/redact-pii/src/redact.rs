//! The redaction itself, free of host calls so that it runs (and is tested) natively.
//!
//! A path is a list of segments separated by dots. Each segment looks up an object
//! key; on an array, `*` means every element and a decimal segment means that index.
//! A path that leads nowhere is ignored: events of one type do not all carry every
//! optional field.

use serde_json::Value;
use weft_sdk::Error;

/// How many trailing characters `mask` leaves in clear unless configured otherwise.
const DEFAULT_KEEP_LAST: usize = 4;
/// The largest `keep_last` the configuration schema allows.
const MAX_KEEP_LAST: usize = 16;
/// What a masked object or array becomes: its shape and size could be personal too.
const REDACTED: &str = "[redacted]";

/// The canonical configuration schema, shared with the JavaScript and Python builds.
const CONFIG_SCHEMA: &str = include_str!("../config.schema.json");

/// The configuration schema `describe` reports.
pub fn config_schema() -> Value {
    serde_json::from_str(CONFIG_SCHEMA).expect("config.schema.json is valid JSON")
}

/// What to redact, read from the plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub remove: Vec<String>,
    pub mask: Vec<String>,
    pub keep_last: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            remove: Vec::new(),
            mask: Vec::new(),
            keep_last: DEFAULT_KEEP_LAST,
        }
    }
}

impl Config {
    /// Parses and checks the configuration. Weft validates it against the schema
    /// before the plugin runs, but a plugin that silently redacted nothing because
    /// of a misspelt key would leak exactly what it exists to hide, so it checks
    /// again and names the offending key.
    pub fn parse(json: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Error::invalid_config(format!("config is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(Error::invalid_config("config must be a JSON object"));
        };
        let mut config = Self::default();
        for (key, value) in &fields {
            match key.as_str() {
                "remove" => config.remove = paths(key, value)?,
                "mask" => config.mask = paths(key, value)?,
                "keep_last" => config.keep_last = keep_last(value)?,
                _ => {
                    return Err(Error::invalid_config(format!(
                        "unknown config key \"{key}\""
                    )));
                }
            }
        }
        Ok(config)
    }
}

fn paths(key: &str, value: &Value) -> Result<Vec<String>, Error> {
    let invalid = || {
        Error::invalid_config(format!(
            "config \"{key}\" must be an array of non-empty strings"
        ))
    };
    let items = value.as_array().ok_or_else(invalid)?;
    items
        .iter()
        .map(|item| match item {
            Value::String(path) if !path.is_empty() => Ok(path.clone()),
            _ => Err(invalid()),
        })
        .collect()
}

fn keep_last(value: &Value) -> Result<usize, Error> {
    // An integer in JSON Schema's sense, as the host's validator sees it: 4.0 is one.
    value
        .as_f64()
        .filter(|n| n.fract() == 0.0 && (0.0..=MAX_KEEP_LAST as f64).contains(n))
        .map(|n| n as usize)
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "config \"keep_last\" must be an integer from 0 to {MAX_KEEP_LAST}"
            ))
        })
}

/// Parses the event's payload; anything but JSON can never be redacted, so it is
/// an invalid event rather than a transient failure.
pub fn parse_payload(event_id: &str, data: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(data)
        .map_err(|e| Error::invalid_event(format!("event {event_id}: data is not valid JSON: {e}")))
}

/// What the transform does to one event, short of the host calls: checks the
/// configuration first (a bad one fails every event, so it is the error to report),
/// then parses and redacts the payload.
pub fn redact_event(event_id: &str, data: &[u8], config_json: &str) -> Result<Value, Error> {
    let config = Config::parse(config_json)?;
    let mut payload = parse_payload(event_id, data)?;
    redact(&mut payload, &config);
    Ok(payload)
}

/// Applies every removal, then every mask, in the order configured.
pub fn redact(payload: &mut Value, config: &Config) {
    for path in &config.remove {
        remove(payload, path);
    }
    for path in &config.mask {
        mask(payload, path, config.keep_last);
    }
}

/// Deletes the field at `path`. Removing array elements shifts the ones after them,
/// as deleting from a list does; `*` as the last segment empties the array.
fn remove(root: &mut Value, path: &str) {
    let (parents, last) = parents(root, path);
    for parent in parents {
        match parent {
            Value::Object(fields) => {
                // shift_remove, not remove: with preserve_order the latter swaps the
                // last key into the hole and reorders the payload.
                fields.shift_remove(last);
            }
            Value::Array(items) if last == "*" => items.clear(),
            Value::Array(items) => {
                if let Some(i) = index(last).filter(|&i| i < items.len()) {
                    items.remove(i);
                }
            }
            _ => {}
        }
    }
}

fn mask(root: &mut Value, path: &str, keep_last: usize) {
    let (parents, last) = parents(root, path);
    for target in parents
        .into_iter()
        .flat_map(|parent| children(parent, last))
    {
        *target = masked(target, keep_last);
    }
}

/// The values the path's segments before the last lead to, and that last segment.
fn parents<'a>(root: &'a mut Value, path: &'a str) -> (Vec<&'a mut Value>, &'a str) {
    let (init, last) = match path.rsplit_once('.') {
        Some((init, last)) => (Some(init), last),
        None => (None, path),
    };
    let mut level = vec![root];
    for segment in init.into_iter().flat_map(|init| init.split('.')) {
        level = level
            .into_iter()
            .flat_map(|value| children(value, segment))
            .collect();
    }
    (level, last)
}

/// The values one segment leads to from `value`: none, one, or every element.
fn children<'a>(value: &'a mut Value, segment: &str) -> Vec<&'a mut Value> {
    match value {
        Value::Object(fields) => fields.get_mut(segment).into_iter().collect(),
        Value::Array(items) => {
            if segment == "*" {
                items.iter_mut().collect()
            } else {
                index(segment)
                    .and_then(|i| items.get_mut(i))
                    .into_iter()
                    .collect()
            }
        }
        _ => Vec::new(),
    }
}

/// The array index a segment names: ASCII digits only. One too large for `usize`
/// is past the end of any array, so `None` (ignored) is the right answer for it too.
fn index(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| segment.parse().ok()).flatten()
}

fn masked(value: &Value, keep_last: usize) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::String(text) => Value::String(mask_text(text, keep_last)),
        // Their JSON text: `arbitrary_precision` keeps a number's text as written.
        Value::Bool(_) | Value::Number(_) => {
            Value::String(mask_text(&value.to_string(), keep_last))
        }
        Value::Array(_) | Value::Object(_) => Value::String(REDACTED.to_owned()),
    }
}

/// Replaces all but the last `keep_last` code points of `text` with `*`. A text no
/// longer than `keep_last` is hidden whole, or masking would reveal it entirely.
pub fn mask_text(text: &str, keep_last: usize) -> String {
    let count = text.chars().count();
    if count <= keep_last {
        return "*".repeat(count);
    }
    let hidden = count - keep_last;
    let kept = text
        .char_indices()
        .nth(hidden)
        .map_or("", |(i, _)| &text[i..]);
    "*".repeat(hidden) + kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of cases shared with the JavaScript and Python builds.
    const CASES: &str = include_str!("../cases.json");

    #[test]
    fn shared_cases() {
        let table: Value = serde_json::from_str(CASES).expect("cases.json is valid JSON");
        let event_id = table["event_id"].as_str().expect("event_id");
        let cases = table["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| check_case(event_id, case).err())
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    /// Runs one row of the table; `Err` describes how it went wrong.
    fn check_case(event_id: &str, case: &Value) -> Result<(), String> {
        let name = case["name"].as_str().unwrap_or("unnamed");
        let config = match (&case["config_text"], &case["config"]) {
            (Value::String(text), _) => text.clone(),
            (_, Value::Null) => "{}".to_owned(),
            (_, config) => config.to_string(),
        };
        let data = input_bytes(case);
        let outcome = redact_event(event_id, &data, &config).map(|v| v.to_string());
        match (outcome, expectation(case)) {
            (Ok(body), Ok(expected)) if body == expected => Ok(()),
            (Err(error), Err((kind, check))) if error_matches(&error, &kind, &check) => Ok(()),
            (outcome, expected) => Err(format!("{name}: got {outcome:?}, expected {expected:?}")),
        }
    }

    fn input_bytes(case: &Value) -> Vec<u8> {
        if let Some(text) = case["input_text"].as_str() {
            return text.as_bytes().to_vec();
        }
        if let Some(bytes) = case["input_bytes"].as_array() {
            return bytes
                .iter()
                .map(|b| {
                    b.as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .expect("a byte")
                })
                .collect();
        }
        case["input"].to_string().into_bytes()
    }

    /// `Ok(body)` or `Err((kind, message check))`.
    fn expectation(case: &Value) -> Result<String, (String, Value)> {
        if let Some(error) = case.get("error") {
            return Err((
                error["kind"].as_str().unwrap_or("").to_owned(),
                error.clone(),
            ));
        }
        Ok(match &case["expected_text"] {
            Value::String(text) => text.clone(),
            _ => case["expected"].to_string(),
        })
    }

    fn error_matches(error: &Error, kind: &str, check: &Value) -> bool {
        let (actual_kind, message) = match error {
            Error::InvalidEvent(m) => ("invalid-event", m),
            Error::InvalidConfig(m) => ("invalid-config", m),
            Error::Transient(m) => ("transient", m),
            Error::Internal(m) => ("internal", m),
        };
        let message_ok = match (check["message"].as_str(), check["starts_with"].as_str()) {
            (Some(exact), _) => message == exact,
            (None, Some(prefix)) => message.starts_with(prefix),
            (None, None) => true,
        };
        actual_kind == kind && message_ok
    }

    #[test]
    fn masks_by_code_point() {
        assert_eq!(mask_text("4111111111111111", 4), "************1111");
        assert_eq!(mask_text("José", 2), "**sé");
        assert_eq!(mask_text("😀😀😀abc", 4), "**😀abc");
        assert_eq!(mask_text("abcd", 4), "****");
        assert_eq!(mask_text("abc", 0), "***");
        assert_eq!(mask_text("", 4), "");
    }

    #[test]
    fn indexes_are_ascii_digits() {
        assert_eq!(index("0"), Some(0));
        assert_eq!(index("12"), Some(12));
        assert_eq!(index("-1"), None);
        assert_eq!(index("1a"), None);
        assert_eq!(index(""), None);
        assert_eq!(index("٣"), None);
        assert_eq!(index("99999999999999999999999"), None);
    }

    #[test]
    fn schema_is_the_canonical_one() {
        let schema = config_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        let keys: Vec<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["remove", "mask", "keep_last"]);
    }

    #[test]
    fn missing_keys_take_the_defaults() {
        assert_eq!(Config::parse("{}"), Ok(Config::default()));
        assert_eq!(Config::parse(r#"{"keep_last":4.0}"#), Ok(Config::default()));
    }
}
