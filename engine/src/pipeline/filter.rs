//! Subscription filters in CEL, the Common Expression Language:
//! `order.total > 100 && order.status != "draft"`.
//!
//! An expression is parsed once, when the subscription is saved, and evaluated
//! against each event with the variables of [`super::context`]. CEL always
//! terminates and has no side effects, so a filter cannot hang or leak; the
//! standard library plus the `strings`, `lists` and `math` extensions are
//! available (`order.id.startsWith("SO-")`, `order.status in ["paid", "shipped"]`,
//! `has(order.discount)`, `order.items.exists(i, i.quantity > 10)`).

use super::context::{DATA_VARIABLE, EVENT_VARIABLE, event_variable, payload_variables};
use crate::model::Event;
use cel::{Context, Env, ExecutionError, Program, Value};
use std::sync::{Arc, LazyLock};

/// Longest filter accepted. Filters are a line or two; parsing cost grows with
/// length, and an expression this long is generated, not written.
pub const MAX_FILTER_BYTES: usize = 8 << 10;

/// How much of an unexpected result an error message shows.
const MAX_SHOWN_RESULT_CHARS: usize = 120;

/// The functions and macros filters may use, built once per process.
static CEL_ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    for extension in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
    ] {
        env.add_extension(extension)
            .expect("the CEL extensions declare disjoint functions");
    }
    Arc::new(env)
});

/// A filter expression that cannot be used, or failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter is empty: write a CEL expression such as `order.total > 100`")]
    Empty,
    #[error("filter is {length} bytes long, over the limit of {limit} bytes")]
    TooLong { length: usize, limit: usize },
    #[error("filter `{expression}` is not valid CEL: {problems}")]
    Syntax {
        expression: String,
        /// `line L, column C: what was expected`, one per problem, `; `-separated.
        problems: String,
    },
    #[error("filter `{expression}` failed on event {event_id}: {reason}")]
    Evaluation {
        expression: String,
        event_id: String,
        reason: String,
    },
    #[error("filter `{expression}` returned {found} for event {event_id}, not true or false")]
    NotABool {
        expression: String,
        event_id: String,
        found: String,
    },
}

/// A compiled filter: `Send + Sync`, shared by every delivery of its subscription.
#[derive(Debug)]
pub struct Filter {
    expression: String,
    program: Program,
}

impl Filter {
    /// Parses `expression`, reporting where it goes wrong and what was expected.
    pub fn compile(expression: &str) -> Result<Self, FilterError> {
        if expression.trim().is_empty() {
            return Err(FilterError::Empty);
        }
        if expression.len() > MAX_FILTER_BYTES {
            return Err(FilterError::TooLong {
                length: expression.len(),
                limit: MAX_FILTER_BYTES,
            });
        }
        let program = CEL_ENV.compile(expression).map_err(|errors| {
            let problems = errors
                .errors
                .iter()
                .map(|error| {
                    let (line, column) = error.pos;
                    let message = error
                        .msg
                        .trim_start_matches("Syntax error: ")
                        .replace("'<EOF>'", "the end of the expression");
                    format!("line {line}, column {column}: {message}")
                })
                .collect::<Vec<_>>()
                .join("; ");
            FilterError::Syntax {
                expression: expression.to_owned(),
                problems,
            }
        })?;
        Ok(Self {
            expression: expression.to_owned(),
            program,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `event` passes. A missing field, a type mismatch or a result that
    /// is not a bool is an error naming it, not a silent `false`: the caller
    /// decides what a broken filter means for the delivery.
    pub fn evaluate(&self, event: &Event) -> Result<bool, FilterError> {
        let evaluation_error = |reason: String| FilterError::Evaluation {
            expression: self.expression.clone(),
            event_id: event.id.to_string(),
            reason,
        };
        let mut context = Context::with_env(Arc::clone(&CEL_ENV));
        // Only the variables the expression names are converted: a filter on
        // `order.total` does not pay for the rest of a large payload.
        let references = self.program.references();
        let mut bind = |name: &str, value: &serde_json::Value| -> Result<(), FilterError> {
            if references.has_variable(name) {
                let value = cel::to_value(value).map_err(|error| {
                    evaluation_error(format!("cannot read `{name}` from the event: {error}"))
                })?;
                context.add_variable_from_value(name, value);
            }
            Ok(())
        };
        for (name, value) in payload_variables(&event.payload) {
            bind(name, value)?;
        }
        bind(DATA_VARIABLE, &event.payload)?;
        bind(EVENT_VARIABLE, &event_variable(event))?;

        match self.program.execute(&context) {
            Ok(Value::Bool(passes)) => Ok(passes),
            Ok(other) => Err(FilterError::NotABool {
                expression: self.expression.clone(),
                event_id: event.id.to_string(),
                found: describe_value(&other),
            }),
            Err(error) => Err(evaluation_error(explain(&error, event))),
        }
    }
}

/// An execution error in the terms of the event at hand.
fn explain(error: &ExecutionError, event: &Event) -> String {
    match error {
        ExecutionError::UndeclaredReference(name) => {
            let available: Vec<String> = payload_variables(&event.payload)
                .map(|(key, _)| format!("`{key}`"))
                .chain([format!("`{DATA_VARIABLE}`"), format!("`{EVENT_VARIABLE}`")])
                .collect();
            format!(
                "`{name}` is not defined: this event has {}",
                available.join(", ")
            )
        }
        ExecutionError::NoSuchKey(key) => format!(
            "no field `{key}` in this event (use `has(…{key})` to test for an optional field)"
        ),
        other => other.to_string(),
    }
}

fn describe_value(value: &Value) -> String {
    let shown = format!("{value:?}");
    let shown: String = if shown.chars().count() > MAX_SHOWN_RESULT_CHARS {
        shown
            .chars()
            .take(MAX_SHOWN_RESULT_CHARS)
            .chain(['…'])
            .collect()
    } else {
        shown
    };
    format!("a {} ({shown})", value.type_of())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample_event;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn filters_can_be_shared_across_threads() {
        assert_send_sync::<Filter>();
    }

    #[test]
    fn evaluates_against_sample_events() {
        let created = sample_event("sales_order.created"); // total 4062.5, confirmed
        let cancelled = sample_event("sales_order.cancelled"); // total 1290.0
        let shipped = sample_event("sales_order.shipped"); // total 347.8, shopify
        let cases = [
            // The product sheet's filters, separately and together.
            ("order.total > 100", &created, true),
            (r#"order.status != "draft""#, &created, true),
            (
                r#"order.total > 100 && order.status != "draft""#,
                &created,
                true,
            ),
            (
                r#"order.total > 5000 && order.status != "draft""#,
                &created,
                false,
            ),
            (r#"order.status != "cancelled""#, &cancelled, false),
            // Integers and doubles compare as numbers.
            ("order.total > 347", &shipped, true),
            ("order.total >= 347.8", &shipped, true),
            // Optional fields.
            ("has(order.discount)", &created, false),
            ("has(order.shipment)", &shipped, true),
            (
                "!has(order.discount) || order.discount < 10",
                &created,
                true,
            ),
            // Strings.
            (r#"order.id.startsWith("SO-")"#, &created, true),
            (
                r#"order.customer.email.endsWith("@tansons.com.my")"#,
                &created,
                true,
            ),
            (r#"order.customer.name.contains("Sons")"#, &created, true),
            (
                r#"order.shipping_address.city.lowerAscii() == "klang""#,
                &created,
                true,
            ),
            (
                r#"order.customer_id.matches("^CUST-0+42$")"#,
                &created,
                true,
            ),
            // Lists.
            (
                r#"order.status in ["confirmed", "shipped"]"#,
                &created,
                true,
            ),
            (
                r#"order.status in ["confirmed", "shipped"]"#,
                &cancelled,
                false,
            ),
            (r#""shopify" in [order.channel]"#, &shipped, true),
            ("size(order.items) == 3", &created, true),
            ("order.items.exists(i, i.quantity >= 12)", &created, true),
            ("order.items.all(i, i.unit_price > 50.0)", &created, false),
            // The envelope and the whole payload.
            (r#"event.type == "sales_order.created""#, &created, true),
            (r#"event.tenant == "acme""#, &created, true),
            ("event.occurred_at == 1764403200000", &created, true),
            (
                r#"event.timestamp.startsWith("2025-11-29T08:00:00")"#,
                &created,
                true,
            ),
            (r#"data.order.id == order.id"#, &created, true),
            (r#"event.type.endsWith(".cancelled")"#, &cancelled, true),
        ];
        for (expression, event, expected) in cases {
            let filter = Filter::compile(expression).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                filter.evaluate(event),
                Ok(expected),
                "{expression} on {}",
                event.event_type
            );
        }
    }

    #[test]
    fn bad_expressions_are_refused_naming_the_problem() {
        let cases = [
            ("order.total >", "line 1, column 14"),
            ("order.total > > 5", "line 1, column 15"),
            ("order.(", "line 1, column 7"),
            (r#"order.status == "draft"#, "line 1"),
            ("order.total > 100 &&\n  order.status ==", "line 2"),
        ];
        for (expression, expected) in cases {
            match Filter::compile(expression) {
                Err(FilterError::Syntax {
                    expression: named,
                    problems,
                }) => {
                    assert_eq!(named, expression);
                    assert!(problems.contains(expected), "{expression}: {problems}");
                }
                other => panic!("{expression}: expected a syntax error, got {other:?}"),
            }
        }
        let error = Filter::compile("order.total >").unwrap_err().to_string();
        assert!(error.contains("the end of the expression"), "{error}");
        assert!(matches!(Filter::compile("  "), Err(FilterError::Empty)));
        assert!(matches!(
            Filter::compile(&"a || ".repeat(2_000)),
            Err(FilterError::TooLong { .. })
        ));
    }

    #[test]
    fn evaluation_errors_name_what_is_missing_or_wrong() {
        let created = sample_event("sales_order.created");
        let payment = sample_event("payment.received");
        let cases = [
            ("order.discount > 1", &created, "no field `discount`"),
            (
                "order.total > 100",
                &payment,
                "`order` is not defined: this event has `payment`",
            ),
            ("order.total", &created, "returned a float (Float(4062.5))"),
            ("order.id", &created, "returned a string"),
            ("order.total > \"100\"", &created, "failed on event"),
        ];
        for (expression, event, expected) in cases {
            let error = Filter::compile(expression)
                .unwrap()
                .evaluate(event)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expression}: {error}");
            assert!(error.contains(expression), "{error}");
            assert!(error.contains(event.id.as_str()), "{error}");
        }
    }

    #[test]
    fn a_payload_key_named_event_does_not_hide_the_envelope() {
        let mut event = sample_event("customer.created");
        let mut payload = event.payload.value().clone();
        payload["event"] = serde_json::json!({ "type": "spoofed" });
        event.payload = payload.into();
        let filter =
            Filter::compile(r#"event.type == "customer.created" && data.event.type == "spoofed""#)
                .unwrap();
        assert_eq!(filter.evaluate(&event), Ok(true));
    }
}
