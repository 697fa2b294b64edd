//! Which event types a subscription's patterns select.
//!
//! Event types are `<entity>.<action>`, each part of `[a-z0-9_]`:
//! `sales_order.created`. A pattern is an event type, `*` (every type), or an
//! event type with one part replaced by `*`: `sales_order.*` (every action on
//! sales orders, but not on `sales_order_line`), `*.created` (that action on
//! every entity).
//!
//! Weft's own operational events live apart, under the prefix `weft.`
//! (`weft.endpoint.disabled`): only patterns that start with it select them
//! (`weft.endpoint.disabled`, `weft.endpoint.*`), never `*` or `*.disabled`,
//! so a subscription to every business event does not start receiving them.

/// Longest event type name accepted. Names are identifiers, not documents, and
/// they are stored and indexed with every event.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

const WILDCARD: &str = "*";

/// The namespace of Weft's own operational event types.
pub const OPERATIONAL_PREFIX: &str = "weft.";

/// `name` without the operational prefix, and whether it had it.
fn namespace(name: &str) -> (bool, &str) {
    match name.strip_prefix(OPERATIONAL_PREFIX) {
        Some(rest) => (true, rest),
        None => (false, name),
    }
}

/// An event type name that is not `<entity>.<action>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event type {name:?} {problem}; event types look like `sales_order.created`: \
     <entity>.<action>, each of lowercase letters, digits and `_`"
)]
pub struct EventTypeError {
    pub name: String,
    pub problem: &'static str,
}

/// A subscription pattern that can never be read as intended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event type pattern {pattern:?} {problem}; patterns are an event type \
     (`sales_order.created`), `*`, `sales_order.*` or `*.created`"
)]
pub struct PatternError {
    pub pattern: String,
    pub problem: &'static str,
}

/// Accepts `name` if it is one of Weft's operational event types:
/// `weft.<entity>.<action>`.
pub fn validate_operational_type(name: &str) -> Result<(), EventTypeError> {
    match namespace(name) {
        (true, rest) => validate_event_type(rest).map_err(|error| EventTypeError {
            name: name.to_owned(),
            ..error
        }),
        (false, _) => Err(EventTypeError {
            name: name.to_owned(),
            problem: "does not start with `weft.`",
        }),
    }
}

/// Accepts `name` if it is `<entity>.<action>` of `[a-z0-9_]`.
pub fn validate_event_type(name: &str) -> Result<(), EventTypeError> {
    let refuse = |problem| {
        Err(EventTypeError {
            name: name.to_owned(),
            problem,
        })
    };
    if name.len() > MAX_EVENT_TYPE_LEN {
        return refuse("is too long");
    }
    let Some((entity, action)) = name.split_once('.') else {
        return refuse("has no `.` between entity and action");
    };
    match (entity, action) {
        ("", _) => refuse("has no entity before the `.`"),
        (_, "") => refuse("has no action after the `.`"),
        _ if action.contains('.') => refuse("has more than one `.`"),
        _ if !is_name_part(entity) || !is_name_part(action) => {
            refuse("has characters other than lowercase letters, digits, `_` and one `.`")
        }
        _ => Ok(()),
    }
}

/// Accepts `pattern` if [`pattern_matches`] can use it.
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    let refuse = |problem| {
        Err(PatternError {
            pattern: pattern.to_owned(),
            problem,
        })
    };
    if pattern == WILDCARD {
        return Ok(());
    }
    if pattern.len() > MAX_EVENT_TYPE_LEN {
        return refuse("is too long");
    }
    let (_, pattern) = namespace(pattern);
    if pattern == WILDCARD {
        return refuse("selects every operational event: name the entity, as in `weft.endpoint.*`");
    }
    let Some((entity, action)) = pattern.split_once('.') else {
        return refuse("is neither `*` nor of the form <entity>.<action>");
    };
    if action.contains('.') {
        return refuse("has more than one `.`");
    }
    for part in [entity, action] {
        if part == WILDCARD {
            continue;
        }
        if part.contains('*') {
            return refuse("uses `*` inside a name: `*` stands only for a whole entity or action");
        }
        if part.is_empty() {
            return refuse("has an empty entity or action");
        }
        if !is_name_part(part) {
            return refuse("has characters other than lowercase letters, digits, `_`, `.` and `*`");
        }
    }
    Ok(())
}

/// Whether `pattern` selects `event_type`. A pattern that
/// [`validate_pattern`] refuses matches nothing but itself.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == event_type {
        return true;
    }
    let ((operational_pattern, pattern), (operational, event_type)) =
        (namespace(pattern), namespace(event_type));
    if operational_pattern != operational {
        return false;
    }
    if pattern == WILDCARD {
        return !operational;
    }
    let (Some((entity_pattern, action_pattern)), Some((entity, action))) =
        (pattern.split_once('.'), event_type.split_once('.'))
    else {
        return false;
    };
    let part_matches =
        |pattern_part: &str, part: &str| pattern_part == WILDCARD || pattern_part == part;
    part_matches(entity_pattern, entity) && part_matches(action_pattern, action)
}

fn is_name_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_event_types() {
        let cases = [
            ("sales_order.created", "sales_order.created", true),
            ("sales_order.created", "sales_order.updated", false),
            ("*", "sales_order.created", true),
            ("*", "payroll.run_completed", true),
            ("sales_order.*", "sales_order.created", true),
            ("sales_order.*", "sales_order.cancelled", true),
            ("sales_order.*", "sales_order_line.created", false),
            ("sales_order.*", "sales.order", false),
            ("*.created", "sales_order.created", true),
            ("*.created", "customer.created", true),
            ("*.created", "customer.created_twice", false),
            ("*.created", "customer.updated", false),
            ("*.*", "customer.updated", true),
            ("customer.*", "customer", false),
            ("customer", "customer.created", false),
            // Operational events: only patterns in their namespace select them.
            ("weft.endpoint.disabled", "weft.endpoint.disabled", true),
            ("weft.endpoint.*", "weft.endpoint.disabled", true),
            ("weft.*.disabled", "weft.endpoint.disabled", true),
            ("*", "weft.endpoint.disabled", false),
            ("*.disabled", "weft.endpoint.disabled", false),
            ("*.*", "weft.endpoint.disabled", false),
            ("weft.endpoint.*", "endpoint.disabled", false),
        ];
        for (pattern, event_type, expected) in cases {
            assert_eq!(
                pattern_matches(pattern, event_type),
                expected,
                "{pattern} vs {event_type}"
            );
        }
    }

    #[test]
    fn patterns_are_validated() {
        let cases = [
            ("*", None),
            ("sales_order.created", None),
            ("sales_order.*", None),
            ("*.created", None),
            ("*.*", None),
            ("sales_*.created", Some("uses `*` inside a name")),
            ("sales_order", Some("is neither `*` nor")),
            ("a.b.c", Some("more than one `.`")),
            (".created", Some("empty entity or action")),
            ("Sales_Order.created", Some("characters other than")),
            ("sales order.created", Some("characters other than")),
            ("", Some("is neither `*` nor")),
            ("**", Some("is neither `*` nor")),
            ("weft.endpoint.disabled", None),
            ("weft.endpoint.*", None),
            ("weft.*", Some("selects every operational event")),
            ("weft.a.b.c", Some("more than one `.`")),
        ];
        for (pattern, expected) in cases {
            match (validate_pattern(pattern), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(problem)) => {
                    let message = error.to_string();
                    assert!(message.contains(problem), "{message}");
                    assert!(message.contains(&format!("{pattern:?}")), "{message}");
                }
                (result, _) => panic!("{pattern:?}: unexpected {result:?}"),
            }
        }
    }

    #[test]
    fn event_types_are_entity_dot_action() {
        let cases = [
            ("sales_order.created", true),
            ("payroll.run_completed", true),
            ("b2b_order.v2", true),
            ("sales_order", false),
            ("sales_order.", false),
            (".created", false),
            ("a.b.c", false),
            ("Sales.created", false),
            ("sales-order.created", false),
            ("sales_order.*", false),
        ];
        for (name, valid) in cases {
            assert_eq!(validate_event_type(name).is_ok(), valid, "{name}");
        }
        let too_long = format!("{}.created", "x".repeat(MAX_EVENT_TYPE_LEN));
        assert!(validate_event_type(&too_long).is_err());
        assert!(validate_event_type("weft.endpoint.disabled").is_err());
        assert!(validate_operational_type("weft.endpoint.disabled").is_ok());
        assert!(validate_operational_type("endpoint.disabled").is_err());
        assert!(validate_operational_type("weft.endpoint").is_err());
    }
}
