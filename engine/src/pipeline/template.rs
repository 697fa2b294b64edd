//! Payload templates in Jinja syntax (minijinja), as in the product sheet:
//!
//! ```yaml
//! order_id: "{{ order.id }}"
//! total_amount: "{{ order.total }}"
//! items: "{{ order.items }}"
//! timestamp: "{{ event.timestamp }}"
//! ```
//!
//! A spec is either an object of field → template, nested objects and arrays
//! allowed, or one string for the whole body. A template that is exactly one
//! `{{ expression }}` keeps the value's JSON type (`items` stays a list,
//! `total_amount` a number); any other template renders as text. A whole-body
//! string that renders to JSON is sent as that JSON, otherwise as a JSON string.
//! Values in the spec that are not strings (numbers, booleans, null) are sent
//! as they are.
//!
//! Templates see the variables of [`super::context`]. An undefined variable is an
//! error naming it rather than an empty string: a receiver is better served by a
//! failed delivery it can see than by an order without an id. Rendering is
//! bounded by minijinja's fuel, so a template that loops without end fails
//! instead of spinning, and by a size limit on its output.

use super::context::{DATA_VARIABLE, EVENT_VARIABLE, event_variable, payload_variables};
use crate::model::Event;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

/// Fuel one template string may burn per render. minijinja charges fuel for
/// every instruction and for every byte a template makes (64 bytes a fuel),
/// checking an allocation of known size before it is made, so fuel bounds
/// both the time and the memory of a render: a loop over a few thousand items
/// fits; a template that would run for more than a few milliseconds, or build
/// more than 6 MB, does not.
pub const TEMPLATE_FUEL: u64 = 100_000;

/// Fuel the strings of one payload template share: each gets its part, at
/// most [`TEMPLATE_FUEL`].
pub const PAYLOAD_TEMPLATE_FUEL: u64 = 1_000_000;

/// Fuel of a text template such as an ordering key, which is rendered while
/// an event is captured: a key is an identifier, and this bounds its render to
/// some microseconds.
pub const TEXT_TEMPLATE_FUEL: u64 = 2_000;

/// Template strings in one payload template. With [`TEMPLATE_FUEL`] each, this
/// bounds the CPU one render can take; real mappings have tens of fields.
pub const MAX_TEMPLATE_STRINGS: usize = 256;

/// Total length of the template strings of one payload template.
pub const MAX_TEMPLATE_SOURCE_BYTES: usize = 64 << 10;

/// Text one render may produce: the largest payload Weft delivers.
pub const MAX_RENDERED_BYTES: usize = 10 << 20;

/// Which template of a spec an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// A whole-body (string) payload template.
    Body,
    /// One field of an object payload template: `customer.address`, `lines[0]`.
    Field(String),
    /// A text template such as an ordering key.
    Text,
}

impl fmt::Display for TemplatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body => f.write_str("payload template"),
            Self::Field(path) => write!(f, "payload template field `{path}`"),
            Self::Text => f.write_str("template"),
        }
    }
}

/// A template that cannot be compiled or failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "payload template must be a template string or an object of field templates, not {found}"
    )]
    InvalidSpec { found: &'static str },
    #[error(
        "payload template has {count} template strings, over the limit of \
         {MAX_TEMPLATE_STRINGS}"
    )]
    TooManyStrings { count: usize },
    #[error("payload template is {length} bytes of templates, over the limit of {limit} bytes")]
    TooLong { length: usize, limit: usize },
    #[error("{part}, line {line}: {reason}")]
    Syntax {
        part: TemplatePart,
        line: usize,
        reason: String,
    },
    #[error("{part}, line {line}: {reason}")]
    Render {
        part: TemplatePart,
        line: usize,
        reason: String,
    },
    #[error(
        "{part}: rendering ran out of fuel (each step and each byte it makes burns some); \
         simplify the template"
    )]
    OutOfFuel { part: TemplatePart },
    #[error("{part}: the rendered output exceeds {MAX_RENDERED_BYTES} bytes")]
    OutputTooLarge { part: TemplatePart },
}

/// A compiled payload template: `Send + Sync`, rendered once per delivery.
pub struct PayloadTemplate {
    env: Environment<'static>,
    root: Node,
}

impl fmt::Debug for PayloadTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadTemplate").finish_non_exhaustive()
    }
}

/// The shape of a spec, with its template strings compiled.
enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Literal(serde_json::Value),
    Template(Leaf),
}

/// One template string.
struct Leaf {
    part: TemplatePart,
    kind: LeafKind,
}

enum LeafKind {
    /// Exactly one `{{ expression }}`: the value keeps its type. The expression
    /// is compiled again for each render (about a microsecond): minijinja's
    /// compiled expressions borrow the environment that owns them.
    Expression(String),
    /// Anything else: rendered as text by the environment's template of this name.
    Text { name: String },
}

impl PayloadTemplate {
    /// Compiles `spec`, reporting the field and line of any syntax error.
    pub fn compile(spec: &serde_json::Value) -> Result<Self, TemplateError> {
        let mut compiler = Compiler {
            env: sandboxed_environment(),
            strings: 0,
            source_bytes: 0,
        };
        let root = match spec {
            serde_json::Value::String(source) => compiler.leaf(TemplatePart::Body, source)?,
            serde_json::Value::Object(_) => compiler.node(spec, String::new())?,
            other => {
                return Err(TemplateError::InvalidSpec {
                    found: json_kind(other),
                });
            }
        };
        let strings = u64::try_from(compiler.strings.max(1)).unwrap_or(u64::MAX);
        let mut env = compiler.env;
        env.set_fuel(Some((PAYLOAD_TEMPLATE_FUEL / strings).min(TEMPLATE_FUEL)));
        Ok(Self { env, root })
    }

    /// The payload for `event`.
    pub fn render(&self, event: &Event) -> Result<serde_json::Value, TemplateError> {
        let context = template_context(event);
        let mut budget = MAX_RENDERED_BYTES;
        let payload = self.render_node(&self.root, &context, &mut budget)?;
        match (&self.root, payload) {
            // A whole-body text that is JSON is sent as that JSON.
            (
                Node::Template(Leaf {
                    kind: LeafKind::Text { .. },
                    ..
                }),
                serde_json::Value::String(text),
            ) => Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
            (_, payload) => Ok(payload),
        }
    }

    fn render_node(
        &self,
        node: &Node,
        context: &Value,
        budget: &mut usize,
    ) -> Result<serde_json::Value, TemplateError> {
        Ok(match node {
            Node::Object(fields) => {
                let mut object = serde_json::Map::with_capacity(fields.len());
                for (key, child) in fields {
                    object.insert(key.clone(), self.render_node(child, context, budget)?);
                }
                serde_json::Value::Object(object)
            }
            Node::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|item| self.render_node(item, context, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Literal(value) => value.clone(),
            Node::Template(leaf) => self.render_leaf(leaf, context, budget)?,
        })
    }

    fn render_leaf(
        &self,
        leaf: &Leaf,
        context: &Value,
        budget: &mut usize,
    ) -> Result<serde_json::Value, TemplateError> {
        match &leaf.kind {
            LeafKind::Expression(source) => {
                let expression = self
                    .env
                    .compile_expression_owned(source.clone())
                    .map_err(|error| render_error(&leaf.part, &error))?;
                let value = expression
                    .eval(context)
                    .map_err(|error| render_error(&leaf.part, &error))?;
                if value.is_undefined() {
                    return Err(TemplateError::Render {
                        part: leaf.part.clone(),
                        line: 1,
                        reason: format!("`{source}` is undefined"),
                    });
                }
                serde_json::to_value(&value).map_err(|error| TemplateError::Render {
                    part: leaf.part.clone(),
                    line: 1,
                    reason: format!("`{source}` has no JSON form: {error}"),
                })
            }
            LeafKind::Text { name } => {
                let text = render_text_template(&self.env, name, &leaf.part, context, budget)?;
                Ok(serde_json::Value::String(text))
            }
        }
    }
}

/// A text template, such as an ordering key (`{{ order.id }}`), compiled once.
pub struct TextTemplate {
    env: Environment<'static>,
}

impl fmt::Debug for TextTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextTemplate").finish_non_exhaustive()
    }
}

/// The name of a [`TextTemplate`]'s one template.
const TEXT_TEMPLATE_NAME: &str = "text";

impl TextTemplate {
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if source.len() > MAX_TEMPLATE_SOURCE_BYTES {
            return Err(TemplateError::TooLong {
                length: source.len(),
                limit: MAX_TEMPLATE_SOURCE_BYTES,
            });
        }
        let mut env = sandboxed_environment();
        env.set_fuel(Some(TEXT_TEMPLATE_FUEL));
        env.add_template_owned(TEXT_TEMPLATE_NAME, source.to_owned())
            .map_err(|error| syntax_error(&TemplatePart::Text, &error))?;
        Ok(Self { env })
    }

    pub fn render(&self, event: &Event) -> Result<String, TemplateError> {
        let mut budget = MAX_RENDERED_BYTES;
        render_text_template(
            &self.env,
            TEXT_TEMPLATE_NAME,
            &TemplatePart::Text,
            &template_context(event),
            &mut budget,
        )
    }
}

/// Compiles and renders `template` once: for previews and one-off keys. A
/// template used for every event should be a [`TextTemplate`].
pub fn render_text(template: &str, event: &Event) -> Result<String, TemplateError> {
    TextTemplate::compile(template)?.render(event)
}

/// Builds the [`Node`] tree, registering each text template in `env`.
struct Compiler {
    env: Environment<'static>,
    strings: usize,
    source_bytes: usize,
}

impl Compiler {
    fn node(&mut self, spec: &serde_json::Value, path: String) -> Result<Node, TemplateError> {
        Ok(match spec {
            serde_json::Value::Object(fields) => Node::Object(
                fields
                    .iter()
                    .map(|(key, child)| {
                        let child_path = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        Ok((key.clone(), self.node(child, child_path)?))
                    })
                    .collect::<Result<_, TemplateError>>()?,
            ),
            serde_json::Value::Array(items) => Node::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.node(item, format!("{path}[{index}]")))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::String(source) => self.leaf(TemplatePart::Field(path), source)?,
            literal => Node::Literal(literal.clone()),
        })
    }

    fn leaf(&mut self, part: TemplatePart, source: &str) -> Result<Node, TemplateError> {
        self.strings += 1;
        self.source_bytes += source.len();
        if self.strings > MAX_TEMPLATE_STRINGS {
            return Err(TemplateError::TooManyStrings {
                count: self.strings,
            });
        }
        if self.source_bytes > MAX_TEMPLATE_SOURCE_BYTES {
            return Err(TemplateError::TooLong {
                length: self.source_bytes,
                limit: MAX_TEMPLATE_SOURCE_BYTES,
            });
        }
        let kind = match single_expression(source) {
            Some(expression) => {
                self.env
                    .compile_expression_owned(expression.to_owned())
                    .map_err(|error| syntax_error(&part, &error))?;
                LeafKind::Expression(expression.to_owned())
            }
            None => {
                // Names are positional, not paths: two paths can look alike
                // (`{"a.b": …}` and `{"a": {"b": …}}`).
                let name = format!("#{}", self.strings);
                self.env
                    .add_template_owned(name.clone(), source.to_owned())
                    .map_err(|error| syntax_error(&part, &error))?;
                LeafKind::Text { name }
            }
        };
        Ok(Node::Template(Leaf { part, kind }))
    }
}

/// An environment fit for templates written by tenants: strict about undefined
/// variables, bounded by fuel, no HTML escaping (the output is JSON or text).
fn sandboxed_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Debug mode makes an undefined-value error name the expression
    // (`order.discount` is undefined) instead of just "undefined value". It
    // costs nothing until an error is reported.
    env.set_debug(true);
    env
}

/// `{{ expression }}` alone (surrounding whitespace aside): the expression.
fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    // Whitespace control (`{{- x -}}`) changes nothing for a lone expression.
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    let more_markup = ["{{", "}}", "{%", "%}", "{#", "#}"]
        .iter()
        .any(|marker| inner.contains(marker));
    let inner = inner.trim();
    (!more_markup && !inner.is_empty()).then_some(inner)
}

/// The variables of [`super::context`] as a minijinja value. The payload is
/// converted once; its top-level keys share that conversion.
fn template_context(event: &Event) -> Value {
    let data = Value::from(Serde(&event.payload));
    let mut variables: BTreeMap<String, Value> = payload_variables(&event.payload)
        .map(|(name, _)| {
            let value = data.get_attr(name).unwrap_or(Value::UNDEFINED);
            (name.to_owned(), value)
        })
        .collect();
    variables.insert(
        EVENT_VARIABLE.to_owned(),
        Value::from(Serde(event_variable(event))),
    );
    variables.insert(DATA_VARIABLE.to_owned(), data);
    Value::from(variables)
}

fn render_text_template(
    env: &Environment<'static>,
    name: &str,
    part: &TemplatePart,
    context: &Value,
    budget: &mut usize,
) -> Result<String, TemplateError> {
    let template = env
        .get_template(name)
        .expect("every text leaf's template was added at compile time");
    let mut output = BoundedBuffer {
        bytes: Vec::new(),
        limit: *budget,
        exceeded: false,
    };
    let rendered = template.render_captured_to(context, &mut output);
    if output.exceeded {
        return Err(TemplateError::OutputTooLarge { part: part.clone() });
    }
    rendered.map_err(|error| render_error(part, &error))?;
    *budget -= output.bytes.len();
    // minijinja writes only whole UTF-8 strings.
    Ok(String::from_utf8(output.bytes).expect("minijinja writes UTF-8"))
}

/// Collects output up to `limit` bytes, then refuses more.
struct BoundedBuffer {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for BoundedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn syntax_error(part: &TemplatePart, error: &minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        part: part.clone(),
        line: error.line().unwrap_or(1),
        reason: reason(error),
    }
}

fn render_error(part: &TemplatePart, error: &minijinja::Error) -> TemplateError {
    if error.kind() == ErrorKind::OutOfFuel {
        return TemplateError::OutOfFuel { part: part.clone() };
    }
    TemplateError::Render {
        part: part.clone(),
        line: error.line().unwrap_or(1),
        reason: reason(error),
    }
}

/// minijinja's message without its own location suffix (`(in #3:1)`): the
/// template names are internal, and the part and line are reported separately.
fn reason(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) if error.kind() == ErrorKind::UndefinedError => detail.to_owned(),
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample_event;
    use serde_json::json;

    fn render(spec: serde_json::Value, event: &Event) -> Result<serde_json::Value, TemplateError> {
        PayloadTemplate::compile(&spec)?.render(event)
    }

    #[test]
    fn templates_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PayloadTemplate>();
        assert_send_sync::<TextTemplate>();
    }

    #[test]
    fn renders_the_product_sheets_order_payload() {
        let spec = json!({
            "order_id": "{{ order.id }}",
            "customer_id": "{{ order.customer_id }}",
            "total_amount": "{{ order.total }}",
            "status": "{{ order.status }}",
            "items": "{{ order.items }}",
            "timestamp": "{{ event.timestamp }}"
        });
        let event = sample_event("sales_order.created");
        let payload = render(spec, &event).unwrap();
        assert_eq!(
            payload,
            json!({
                "order_id": "SO-10421",
                "customer_id": "CUST-00042",
                "total_amount": 4062.5,
                "status": "confirmed",
                "items": event.payload["order"]["items"],
                "timestamp": "2025-11-29T08:00:00.000Z"
            })
        );
        // The spec's field order is the payload's.
        let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "order_id",
                "customer_id",
                "total_amount",
                "status",
                "items",
                "timestamp"
            ]
        );
    }

    #[test]
    fn renders_the_product_sheets_customer_payload() {
        let spec = json!({
            "customer_id": "{{ customer.id }}",
            "name": "{{ customer.name }}",
            "email": "{{ customer.email }}",
            "phone": "{{ customer.phone }}",
            "address": "{{ customer.address }}",
            "created_date": "{{ customer.created_date }}"
        });
        for event_type in ["customer.created", "customer.updated"] {
            let event = sample_event(event_type);
            let customer = &event.payload["customer"];
            assert_eq!(
                render(spec.clone(), &event).unwrap(),
                json!({
                    "customer_id": customer["id"],
                    "name": customer["name"],
                    "email": customer["email"],
                    "phone": customer["phone"],
                    "address": customer["address"],
                    "created_date": customer["created_date"]
                }),
                "{event_type}"
            );
        }
    }

    #[test]
    fn text_nesting_literals_and_filters() {
        let event = sample_event("sales_order.shipped");
        let spec = json!({
            "title": "Order {{ order.number }} shipped via {{ order.shipment.carrier }}",
            "summary": {
                "lines": "{{ order.items | length }}",
                "skus": "{{ order.items | map(attribute='sku') | list }}",
                "first": ["{{ order.items[0].sku }}", "{{ order.items[0].quantity * 2 }}"],
                "upper_city": "{{ order.shipping_address.city | upper }}"
            },
            "source": "weft",
            "version": 2,
            "test": false,
            "nothing": null,
            "padded": "  {{ order.total }}\n",
            "trimmed": "{{- order.currency -}}",
            "tenant": "{{ event.tenant }}/{{ event.type }}",
            "whole": "{{ data.order.external_refs }}"
        });
        assert_eq!(
            render(spec, &event).unwrap(),
            json!({
                "title": "Order SO-2025-10436 shipped via DHL eCommerce",
                "summary": {
                    "lines": 2,
                    "skus": ["FLT-010-CB", "HSG-010-CL"],
                    "first": ["FLT-010-CB", 8],
                    "upper_city": "SUBANG JAYA"
                },
                "source": "weft",
                "version": 2,
                "test": false,
                "nothing": null,
                "padded": 347.8,
                "trimmed": "MYR",
                "tenant": "acme/sales_order.shipped",
                "whole": { "shopify_order_id": "6120394857213" }
            })
        );
    }

    #[test]
    fn a_whole_body_template_is_json_when_it_renders_json() {
        let event = sample_event("payment.received");
        let cases = [
            (
                json!(r#"{"ref": "{{ payment.id }}", "amount": {{ payment.amount }}}"#),
                json!({ "ref": "PAY-20931", "amount": 4581.5 }),
            ),
            (
                json!("Payment {{ payment.receipt_number }} received"),
                json!("Payment OR-2025-08817 received"),
            ),
            (
                json!("{{ payment.customer }}"),
                event.payload["payment"]["customer"].clone(),
            ),
            (json!("{{ payment.amount }}"), json!(4581.5)),
            // A lone expression keeps its type: this string stays a string.
            (json!("{{ payment.order_id }}"), json!("SO-10421")),
            (json!("{{ '42' }}"), json!("42")),
            (
                json!("{% for k in ['a', 'b'] %}{{ k }}{% endfor %}"),
                json!("ab"),
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(render(spec.clone(), &event).unwrap(), expected, "{spec}");
        }
    }

    #[test]
    fn undefined_variables_are_errors_naming_them() {
        let event = sample_event("sales_order.created");
        let cases = [
            (
                json!({ "d": "{{ order.discount }}" }),
                "payload template field `d`, line 1: `order.discount` is undefined",
            ),
            (
                json!({ "x": { "y": ["ok", "{{ customer.id }}"] } }),
                "payload template field `x.y[1]`, line 1: `customer` is undefined",
            ),
            (
                json!({ "t": "Order\n{{ order.id }} for {{ order.buyer.name }}" }),
                "payload template field `t`, line 2: `order.buyer` is undefined",
            ),
            (
                json!("{{ nope }}"),
                "payload template, line 1: `nope` is undefined",
            ),
        ];
        for (spec, expected) in cases {
            let error = render(spec.clone(), &event).unwrap_err();
            assert_eq!(error.to_string(), expected, "{spec}");
        }
    }

    #[test]
    fn syntax_errors_name_the_field_and_line() {
        let cases = [
            (
                json!({ "a": "{{ order.id" }),
                "payload template field `a`, line 1: syntax error",
            ),
            (
                json!({ "a": { "b": "x\n{% if %}" } }),
                "payload template field `a.b`, line 2: syntax error",
            ),
            (
                json!({ "a": "{{ order.id | }}" }),
                "payload template field `a`, line 1: syntax error",
            ),
            (json!(42), "not a number"),
            (json!(["{{ order.id }}"]), "not an array"),
        ];
        for (spec, expected) in cases {
            let error = PayloadTemplate::compile(&spec).unwrap_err().to_string();
            assert!(error.contains(expected), "{spec}: {error}");
        }
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let event = sample_event("sales_order.created");
        let nested_loops = concat!(
            "{% for i in range(100000) %}{% for j in range(100000) %}",
            "{{ i }}",
            "{% endfor %}{% endfor %}"
        );
        let spinning = json!({ "spin": nested_loops });
        assert_eq!(
            render(spinning, &event),
            Err(TemplateError::OutOfFuel {
                part: TemplatePart::Field("spin".into())
            })
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_TEMPLATE_STRINGS)
            .map(|i| (format!("f{i}"), json!("{{ order.id }}")))
            .collect();
        assert!(matches!(
            PayloadTemplate::compile(&serde_json::Value::Object(many)),
            Err(TemplateError::TooManyStrings { .. })
        ));
        let long = json!({ "a": "x".repeat(MAX_TEMPLATE_SOURCE_BYTES + 1) });
        assert!(matches!(
            PayloadTemplate::compile(&long),
            Err(TemplateError::TooLong { .. })
        ));
    }

    #[test]
    fn text_templates_render_ordering_keys() {
        let event = sample_event("sales_order.updated");
        assert_eq!(render_text("{{ order.id }}", &event).unwrap(), "SO-10421");
        assert_eq!(
            render_text("{{ event.tenant }}:{{ order.customer_id }}", &event).unwrap(),
            "acme:CUST-00042"
        );
        let compiled = TextTemplate::compile("{{ order.id }}").unwrap();
        assert_eq!(compiled.render(&event).unwrap(), "SO-10421");
        assert_eq!(
            render_text("{{ payment.id }}", &event)
                .unwrap_err()
                .to_string(),
            "template, line 1: `payment` is undefined"
        );
    }

    #[test]
    fn single_expressions_are_recognised() {
        let cases = [
            ("{{ order.id }}", Some("order.id")),
            ("  {{order.items|length}} ", Some("order.items|length")),
            ("{{- order.id -}}", Some("order.id")),
            ("{{ a }} {{ b }}", None),
            ("{{ a }}{{ b }}", None),
            ("x{{ a }}", None),
            ("{{ }}", None),
            ("{% if a %}{{ a }}{% endif %}", None),
            ("plain", None),
        ];
        for (source, expected) in cases {
            assert_eq!(single_expression(source), expected, "{source}");
        }
    }
}
