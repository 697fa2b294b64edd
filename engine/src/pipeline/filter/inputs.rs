//! The sizes of an event's values, as the cost estimate reads them: a path
//! into the payload (`order.items`, `order.items.*.sku`) is measured on the
//! payload itself, so that a filter over a short list of a large event is
//! costed by that list, not by the event.

use super::cost::{Bound, EVERY_ELEMENT, HEADER_BYTES, Inputs, SLOT_BYTES};
use crate::pipeline::context::{DATA_VARIABLE, EVENT_VARIABLE};
use serde_json::Value;

/// The variables of one event: the payload's top-level keys, `data` and `event`.
pub(super) struct EventInputs<'a> {
    pub(super) payload: &'a Value,
    pub(super) envelope: &'a Value,
}

impl Inputs for EventInputs<'_> {
    fn bound(&self, path: &[String]) -> Option<Bound> {
        let (root, rest) = path.split_first()?;
        let value = match root.as_str() {
            DATA_VARIABLE => self.payload,
            EVENT_VARIABLE => self.envelope,
            key => self.payload.as_object()?.get(key)?,
        };
        bound_at(value, rest)
    }
}

/// The bound of the values at `path` under `value`, or `None` if the path
/// leads nowhere (the evaluation then fails, or reads something smaller).
fn bound_at(value: &Value, path: &[String]) -> Option<Bound> {
    let Some((step, rest)) = path.split_first() else {
        return Some(bound_of(value));
    };
    if step == EVERY_ELEMENT {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => return None,
        };
        let mut joined = Some(Bound::SMALLEST);
        for child in children {
            joined = match (joined, bound_at(child, rest)) {
                (Some(so_far), Some(this)) => Some(so_far.either(this)),
                // An element the rest of the path does not reach: fall back
                // to the whole.
                _ => None,
            };
        }
        // Iterating a map gives its keys too.
        if rest.is_empty()
            && let (Some(so_far), Value::Object(fields)) = (joined, value)
        {
            let longest = fields.keys().map(|k| k.len() as u64).max().unwrap_or(0);
            joined = Some(so_far.either(Bound::string(longest)));
        }
        return joined;
    }
    match value {
        Value::Object(fields) => bound_at(fields.get(step.as_str())?, rest),
        _ => None,
    }
}

/// The bound of one JSON value, as the CEL value it becomes.
pub(super) fn bound_of(value: &Value) -> Bound {
    match value {
        Value::Null | Value::Bool(_) => Bound::integer(1),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Bound::integer(int.unsigned_abs()),
            (None, Some(uint)) => Bound::integer(uint),
            _ => Bound::SCALAR,
        },
        Value::String(text) => Bound::string(text.len() as u64),
        Value::Array(items) => {
            let mut bytes = HEADER_BYTES;
            let mut elem = 0;
            for item in items {
                let item = bound_of(item);
                bytes = bytes.saturating_add(item.bytes.saturating_add(SLOT_BYTES));
                elem = elem.max(item.bytes);
            }
            Bound {
                len: items.len() as u64,
                bytes,
                elem,
                int: u64::MAX,
            }
        }
        Value::Object(fields) => {
            let mut bytes = HEADER_BYTES;
            let mut elem = 0;
            for (key, field) in fields {
                let key = Bound::string(key.len() as u64);
                let field = bound_of(field);
                bytes = bytes.saturating_add(
                    key.bytes
                        .saturating_add(field.bytes)
                        .saturating_add(SLOT_BYTES),
                );
                elem = elem.max(field.bytes).max(key.bytes);
            }
            Bound {
                len: fields.len() as u64,
                bytes,
                elem,
                int: u64::MAX,
            }
        }
    }
}
