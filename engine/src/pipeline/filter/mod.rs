//! Subscription filters in CEL, the Common Expression Language:
//! `order.total > 100 && order.status != "draft"`.
//!
//! An expression is parsed once, when the subscription is saved, and evaluated
//! against each event with the variables of [`super::context`]. The standard
//! library plus the `strings`, `lists` and `math` extensions are available (`order.id.startsWith("SO-")`, `order.status in ["paid", "shipped"]`,
//! `has(order.discount)`, `order.items.exists(i, i.quantity > 10)`).
//!
//! Every evaluation runs under a budget ([`cost`]): [`MAX_STEPS`] steps and
//! [`MAX_BYTES`] of values. A filter that is over it whatever the event
//! (`lists.range(10000).all(x, lists.range(10000).all(y, true))`) is refused
//! when it is saved; on each event, the cost is bounded from the sizes of the
//! values the filter reads before it runs, and an evaluation that could pass
//! the budget fails without running, naming what it would have cost.

mod cost;
mod inputs;

pub use cost::{Cost, MAX_BYTES, MAX_STEPS};

use super::context::{DATA_VARIABLE, EVENT_VARIABLE, event_variable, payload_variables};
use crate::model::Event;
use crate::pipeline::off_the_runtime;
use cel::{Context, Env, ExecutionError, Program, Value};
use cost::{SmallestInputs, estimate};
use inputs::EventInputs;
use std::sync::{Arc, LazyLock};

/// Longest filter accepted. Filters are a line or two; parsing cost grows with
/// length, and an expression this long is generated, not written.
pub const MAX_FILTER_BYTES: usize = 8 << 10;

/// Payloads up to this size are measured where the filter is asked for.
const INLINE_PAYLOAD_BYTES: usize = 16 << 10;

/// An evaluation bounded to this many steps (a few tens of microseconds) runs
/// where it is asked for; any other runs on the expression pool.
const INLINE_STEPS: u64 = 200;

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
    #[error("filter `{expression}` cannot be costed: {reason}")]
    Uncostable { expression: String, reason: String },
    #[error("filter `{expression}` would take {excess} on any event: simplify it")]
    TooCostly { expression: String, excess: String },
    #[error("filter `{expression}` was not run on event {event_id}: it could take {excess}")]
    OverBudget {
        expression: String,
        event_id: String,
        excess: String,
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
        match estimate(program.expression(), &SmallestInputs) {
            Err(uncostable) => Err(FilterError::Uncostable {
                expression: expression.to_owned(),
                reason: uncostable.to_string(),
            }),
            Ok(cost) if !cost.fits() => Err(FilterError::TooCostly {
                expression: expression.to_owned(),
                excess: cost.excess(),
            }),
            Ok(_) => Ok(Self {
                expression: expression.to_owned(),
                program,
            }),
        }
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// What evaluating the filter on `event` can cost at most, measured on the
    /// values it reads; an error if that is over the budget.
    pub fn cost_on(&self, event: &Event) -> Result<Cost, FilterError> {
        let envelope = event_variable(event);
        let inputs = EventInputs {
            payload: event.payload.value(),
            envelope: &envelope,
        };
        let over = |excess: String| FilterError::OverBudget {
            expression: self.expression.clone(),
            event_id: event.id.to_string(),
            excess,
        };
        match estimate(self.program.expression(), &inputs) {
            Ok(cost) if cost.fits() => Ok(cost),
            Ok(cost) => Err(over(cost.excess())),
            Err(uncostable) => Err(over(uncostable.to_string())),
        }
    }

    /// Whether `event` passes. A missing field, a type mismatch or a result that
    /// is not a bool is an error naming it, not a silent `false`: the caller
    /// decides what a broken filter means for the delivery. The evaluation is
    /// refused, without running, if it could pass the budget.
    pub fn evaluate(&self, event: &Event) -> Result<bool, FilterError> {
        self.cost_on(event)?;
        self.run(event)
    }

    /// [`Filter::evaluate`] without holding an async thread for more than a
    /// few microseconds: at once when the event is small and the bound on the
    /// filter's cost is a few hundred steps, on the expression pool otherwise.
    pub async fn evaluate_async(self: &Arc<Self>, event: &Event) -> Result<bool, FilterError> {
        if event
            .payload
            .stored_len()
            .is_some_and(|len| len <= INLINE_PAYLOAD_BYTES)
            && self.cost_on(event)?.steps <= INLINE_STEPS
        {
            return self.run(event);
        }
        let (filter, event) = (Arc::clone(self), event.clone());
        off_the_runtime(move || filter.evaluate(&event)).await
    }

    /// Evaluates on `event` once [`Filter::cost_on`] has said it fits.
    fn run(&self, event: &Event) -> Result<bool, FilterError> {
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

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::samples::sample_event;

    /// `sales_order.created` with its `order.items` replaced by `count` items.
    fn order_with_items(count: usize) -> Event {
        let mut event = sample_event("sales_order.created");
        let mut payload = event.payload.value().clone();
        let item = payload["order"]["items"][0].clone();
        payload["order"]["items"] = serde_json::Value::Array(vec![item; count]);
        event.payload = payload.into();
        event
    }

    #[test]
    fn expressions_that_can_never_fit_are_refused_when_saved() {
        let cases = [
            // The two of the isolation report: 10⁸ steps, 10⁹ bytes.
            (
                "lists.range(10000).all(x, lists.range(10000).all(y, true))",
                "steps",
            ),
            (
                "'aaaaaaaaaa'.replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa')\
                 .replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa')\
                 .replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa').replace('a','aaaaaaaaaa') != ''",
                "bytes",
            ),
            ("size(lists.range(1000000).map(x, x * 2)) > 0", "steps"),
            (
                "lists.range(2000).map(x, lists.range(2000).map(y, 'ab')).size() > 0",
                "steps",
            ),
            ("lists.range(5000).distinct() == []", "steps"),
            (
                "lists.range(1000).map(i, 'x').join('abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz').size() > 0 && \
                 ['%.100f%.100f%.100f%.100f%.100f%.100f%.100f%.100f%.100f%.100f'.format([1.0])].map(s, lists.range(10000).map(k, s)).size() > 0",
                "bytes",
            ),
        ];
        for (expression, what) in cases {
            match Filter::compile(expression) {
                Err(FilterError::TooCostly { excess, .. }) => {
                    assert!(excess.contains(what), "{expression}: {excess}")
                }
                other => panic!("{expression}: expected TooCostly, got {other:?}"),
            }
        }
        let message = Filter::compile(cases[0].0).unwrap_err().to_string();
        assert!(message.contains("lists.range(10000)"), "{message}");
        assert!(message.contains("the budget is 1000000"), "{message}");
    }

    #[test]
    fn ordinary_filters_fit_and_stay_cheap() {
        let created = sample_event("sales_order.created");
        let cases = [
            "order.total > 100 && order.status != \"draft\"",
            "order.items.exists(i, i.quantity >= 12)",
            "order.items.all(i, i.unit_price > 0.0)",
            "order.items.map(i, i.sku).exists(s, s.startsWith('PMP'))",
            "order.items.filter(i, i.quantity > 1).size() >= 1",
            "size(order.items) == 3 && order.customer.email.endsWith('.my')",
            "order.id.lowerAscii().contains('so') || order.customer_id.matches('^CUST-0+42$')",
            "order.items.exists_one(i, i.quantity >= 12)",
            "order.items.map(i, i.quantity).sort()[0] == 2",
            "['a', 'b'].join(',').split(',').size() == 2",
            "'%s-%d'.format([order.id, 4]).size() > 0",
            "math.greatest(order.items.map(i, i.quantity)) > 0",
            "lists.range(3).map(i, i * 2).exists(n, n == 4)",
            "math.abs(-order.total) > 1.0 && math.least([1, 2]) == 1",
            "has(order.discount) ? order.discount < 10 : true",
            "int(order.total) > 100 && string(order.total) != '' && double(order.total) > 1.0",
            "timestamp(event.timestamp) > timestamp('2020-01-01T00:00:00Z')",
            "order.items.sortBy(i, i.quantity)[0].sku != ''",
            "{'a': order.id}['a'] == order.id && [1, 2, 3][1] == 2",
            "strings.quote(order.id) != '' && b'abc' + b'd' == b'abcd'",
        ];
        for expression in cases {
            let filter = match Filter::compile(expression) {
                Ok(filter) => filter,
                // A function missing from the library is a plain evaluation
                // error, not a cost problem: only cost refusals fail here.
                Err(error @ (FilterError::TooCostly { .. } | FilterError::Uncostable { .. })) => {
                    panic!("{expression}: {error}")
                }
                Err(other) => panic!("{expression} does not compile: {other}"),
            };
            let cost = filter.cost_on(&created).unwrap();
            assert!(cost.steps < 5_000, "{expression}: {cost:?}");
            assert_eq!(filter.evaluate(&created), Ok(true), "{expression}");
        }
    }

    #[test]
    fn the_cost_follows_the_event_and_an_evaluation_over_budget_does_not_run() {
        let filter =
            Filter::compile("order.items.all(i, order.items.exists(j, j.sku == i.sku))").unwrap();
        let small = filter.cost_on(&order_with_items(10)).unwrap();
        let larger = filter.cost_on(&order_with_items(100)).unwrap();
        assert!(larger.steps > small.steps * 50, "{small:?} then {larger:?}");
        assert_eq!(filter.evaluate(&order_with_items(100)), Ok(true));

        let huge = order_with_items(5_000);
        let started = std::time::Instant::now();
        let error = filter.evaluate(&huge).unwrap_err();
        assert!(matches!(error, FilterError::OverBudget { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("was not run on event"), "{message}");
        assert!(message.contains("steps (the budget is"), "{message}");
        // Refused from its sizes: nothing like 25 million steps ran.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_large_payload_costs_only_the_paths_a_filter_reads() {
        let mut event = sample_event("sales_order.created");
        let mut payload = event.payload.value().clone();
        payload["order"]["notes"] = serde_json::Value::String("n".repeat(5 << 20));
        event.payload = payload.into();
        let filter = Filter::compile("order.items.exists(i, i.quantity >= 12)").unwrap();
        let cost = filter.cost_on(&event).unwrap();
        assert!(cost.steps < 100, "{cost:?}");
        assert_eq!(filter.evaluate(&event), Ok(true));
        // Scanning the 5 MB text is paid by the byte, and fits.
        let scanning = Filter::compile("order.notes.contains('x')").unwrap();
        let cost = scanning.cost_on(&event).unwrap();
        assert!(cost.steps > 100_000, "{cost:?}");
        assert_eq!(scanning.evaluate(&event), Ok(false));
    }
}
