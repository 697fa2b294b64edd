//! The variables filters and templates see, the same in both so that an
//! expression that works in one works in the other:
//!
//! - each top-level key of the payload (`order` in `{"order": {...}}`);
//! - `data`: the whole payload;
//! - `event`: what Weft knows of the event: `id`, `type`, `tenant`,
//!   `occurred_at` (unix ms) and `timestamp` (the same instant in RFC 3339, UTC).
//!
//! `data` and `event` win over payload keys of the same name; such a key stays
//! reachable as `data.event` or `data.data`.

use crate::model::{Event, UnixMillis};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The whole payload.
pub(crate) const DATA_VARIABLE: &str = "data";
/// The event's envelope.
pub(crate) const EVENT_VARIABLE: &str = "event";

/// The `event` variable.
pub(crate) fn event_variable(event: &Event) -> Value {
    json!({
        "id": event.id.as_str(),
        "type": event.event_type,
        "tenant": event.tenant.as_str(),
        "occurred_at": event.occurred_at,
        "timestamp": rfc3339_utc(event.occurred_at),
    })
}

/// The payload's top-level keys that become variables of their own: all of
/// them but `data` and `event`. A payload that is not an object has none.
pub(crate) fn payload_variables(payload: &Value) -> impl Iterator<Item = (&str, &Value)> {
    payload
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str(), value))
        .filter(|(name, _)| *name != DATA_VARIABLE && *name != EVENT_VARIABLE)
}

/// `millis` as RFC 3339 in UTC with milliseconds: fixed width, so such
/// timestamps also sort correctly as text. Instants beyond chrono's range (some
/// 260,000 years away) are clamped to it.
pub(crate) fn rfc3339_utc(millis: UnixMillis) -> String {
    let instant = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or(if millis < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_764_403_200_000, "2025-11-29T08:00:00.000Z"),
            (1_764_403_200_123, "2025-11-29T08:00:00.123Z"),
        ];
        for (millis, expected) in cases {
            assert_eq!(rfc3339_utc(millis), expected);
        }
        assert!(rfc3339_utc(i64::MAX).starts_with('+'));
    }

    #[test]
    fn reserved_names_are_not_payload_variables() {
        let payload = json!({ "order": 1, "data": 2, "event": 3 });
        let names: Vec<&str> = payload_variables(&payload).map(|(name, _)| name).collect();
        assert_eq!(names, ["order"]);
        assert_eq!(payload_variables(&json!([1, 2])).count(), 0);
    }
}
