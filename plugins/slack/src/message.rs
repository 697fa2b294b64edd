//! Builds the Slack message for an event: pure functions of (configuration, event).

use crate::config::{Config, Field, MAX_FIELDS};
use crate::{text, time};
use minijinja::value::{Serde, Value as TemplateValue};
use minijinja::{Environment, UndefinedBehavior, context};
use serde_json::{Map, Value, json};
use weft_sdk::{Error, Event};

/// Slack's limit on a header's text.
const HEADER_MAX: usize = 150;
/// Slack's limit on a section field's text.
const FIELD_MAX: usize = 2000;
/// Slack's recommended limit on the notification fallback text.
const FALLBACK_MAX: usize = 3000;

/// One labelled value, as the message shows it.
#[derive(Debug)]
struct Shown {
    label: String,
    value: String,
}

/// The incoming-webhook body for `event`: Block Kit `blocks` plus a `text` fallback
/// used by notifications and clients that cannot show blocks.
pub fn message(config: &Config, event: &Event) -> Result<Value, Error> {
    let payload: Map<String, Value> = event.json()?;
    let title = render_title(config.title(), event, &payload)?;
    let fields = match &config.fields {
        Some(fields) => configured_fields(fields, &payload),
        None => default_fields(&payload),
    };

    let mut blocks = vec![header_block(&title)];
    if !fields.is_empty() {
        // Slack rejects a section without text or fields.
        blocks.push(section_block(&fields));
    }
    blocks.push(context_block(event));

    let mut message = Map::new();
    message.insert("text".into(), fallback_text(&title, &fields).into());
    message.insert("blocks".into(), blocks.into());
    let overrides = [
        ("channel", &config.channel),
        ("username", &config.username),
        ("icon_emoji", &config.icon_emoji),
    ];
    for (key, value) in overrides {
        if let Some(value) = value {
            message.insert(key.into(), value.as_str().into());
        }
    }
    Ok(Value::Object(message))
}

/// Renders the title template against the payload plus an `event` object.
///
/// Undefined lookups chain to an empty value, so one template can serve several
/// entities (`{{ order.id }}` on a customer event renders nothing, it does not
/// fail). A template that does not parse is the configuration's fault; one that
/// fails on this event's data is the event's.
fn render_title(
    template: &str,
    event: &Event,
    payload: &Map<String, Value>,
) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    let template = env
        .template_from_str(template)
        .map_err(|e| Error::invalid_config(format!("title template: {e}")))?;
    // `event` comes first, so it shadows a payload key of the same name.
    let context = context! {
        event => event_context(event),
        ..TemplateValue::from(Serde(payload))
    };
    let rendered = template
        .render(context)
        .map_err(|e| Error::invalid_event(format!("title template on {}: {e}", event.id)))?;
    let title = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    // An empty header is rejected by Slack; the event type always says something.
    let title = if title.is_empty() {
        event.event_type.clone()
    } else {
        title
    };
    Ok(text::plain(&title, HEADER_MAX))
}

/// What templates see as `event`: the envelope without the payload.
fn event_context(event: &Event) -> TemplateValue {
    TemplateValue::from(Serde(json!({
        "id": event.id,
        "type": event.event_type,
        "tenant": event.tenant,
        "occurred_at": event.occurred_at,
        "timestamp": time::rfc3339(event.occurred_at),
    })))
}

/// The configured fields this event has; missing and null paths are left out, so
/// one list can serve several event types.
fn configured_fields(fields: &[Field], payload: &Map<String, Value>) -> Vec<Shown> {
    fields
        .iter()
        .filter_map(|field| {
            let value = text::display(lookup(payload, &field.path)?)?;
            Some(Shown {
                label: field.label.clone(),
                value,
            })
        })
        .take(MAX_FIELDS)
        .collect()
}

/// The entity's scalar fields in payload order, at most [`MAX_FIELDS`].
///
/// The entity is the payload's first object (`order` in `{"order": {…}}`); a
/// payload with none shows its own scalar fields.
fn default_fields(payload: &Map<String, Value>) -> Vec<Shown> {
    let entity = payload
        .values()
        .find_map(Value::as_object)
        .unwrap_or(payload);
    entity
        .iter()
        .filter(|(_, value)| text::is_scalar(value))
        .filter_map(|(key, value)| {
            Some(Shown {
                label: text::label(key),
                value: text::display(value)?,
            })
        })
        .take(MAX_FIELDS)
        .collect()
}

/// The value at a dotted path; numeric segments index lists (`items.0.sku`).
fn lookup<'a>(payload: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let first = payload.get(segments.next()?)?;
    segments.try_fold(first, |value, segment| match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

fn header_block(title: &str) -> Value {
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": title, "emoji": true }
    })
}

fn section_block(fields: &[Shown]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|field| {
            let label = text::mrkdwn(&field.label, 100);
            // The label, its asterisks and the newline take their share of the limit.
            let room = FIELD_MAX - label.chars().count() - 3;
            let value = text::mrkdwn(&field.value, room);
            json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") })
        })
        .collect();
    json!({ "type": "section", "fields": fields })
}

/// The event id (what receivers deduplicate on) and when the event happened.
fn context_block(event: &Event) -> Value {
    let line = format!(
        "`{}` · {}",
        text::mrkdwn(&event.id, 200),
        time::rfc3339(event.occurred_at)
    );
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": line }]
    })
}

/// The title and fields as plain lines, for notifications.
fn fallback_text(title: &str, fields: &[Shown]) -> String {
    let mut lines = title.to_owned();
    for field in fields {
        lines.push('\n');
        lines.push_str(&field.label);
        lines.push_str(": ");
        lines.push_str(&field.value);
    }
    text::mrkdwn(&lines, FALLBACK_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(envelope: &str) -> Event {
        Event::from_sample(envelope).expect("sample event")
    }

    macro_rules! sample {
        ($name:literal) => {
            sample(include_str!(concat!(
                "../../../examples/events/",
                $name,
                ".json"
            )))
        };
    }

    fn config(json: Value) -> Config {
        serde_json::from_value(json).expect("valid config")
    }

    fn header(message: &Value) -> &str {
        message["blocks"][0]["text"]["text"]
            .as_str()
            .expect("header text")
    }

    fn field_texts(message: &Value) -> Vec<&str> {
        message["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .find(|block| block["type"] == "section")
            .map(|section| {
                section["fields"]
                    .as_array()
                    .expect("fields")
                    .iter()
                    .map(|field| field["text"].as_str().expect("field text"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn block_types(message: &Value) -> Vec<&str> {
        message["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(|block| block["type"].as_str().expect("block type"))
            .collect()
    }

    #[test]
    fn the_default_title_names_every_entity() {
        let cases = [
            (
                sample!("sales_order.created"),
                "sales_order.created: SO-10421",
            ),
            (
                sample!("sales_order.updated"),
                "sales_order.updated: SO-10421",
            ),
            (
                sample!("sales_order.shipped"),
                "sales_order.shipped: SO-10436",
            ),
            (
                sample!("sales_order.cancelled"),
                "sales_order.cancelled: SO-10429",
            ),
            (sample!("payment.received"), "payment.received: PAY-20931"),
            (
                sample!("stock.updated"),
                "stock.updated: FLT-010-CB at WH-KL-01",
            ),
            (
                sample!("customer.created"),
                "customer.created: Borneo Aqua Systems Sdn Bhd",
            ),
            (
                sample!("customer.updated"),
                "customer.updated: Tan & Sons Trading Sdn Bhd",
            ),
        ];
        for (event, expected) in cases {
            let message = message(&Config::default(), &event).expect("renders");
            assert_eq!(header(&message), expected, "{}", event.event_type);
            assert_eq!(block_types(&message), ["header", "section", "context"]);
        }
    }

    #[test]
    fn a_created_order_shows_its_scalar_fields_in_payload_order() {
        let message =
            message(&Config::default(), &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            field_texts(&message),
            [
                "*ID*\nSO-10421",
                "*Number*\nSO-2025-10421",
                "*Customer ID*\nCUST-00042",
                "*Status*\nconfirmed",
                "*Currency*\nMYR",
                "*Total*\n4062.5",
                "*Payment terms*\nNET30",
                "*Salesperson*\nLim Wei Jie",
                "*Created at*\n2025-11-29T16:00:00+08:00",
            ]
        );
    }

    #[test]
    fn default_fields_stop_at_slacks_limit() {
        let message = message(&Config::default(), &sample!("customer.created")).expect("renders");
        let fields = field_texts(&message);
        assert_eq!(fields.len(), MAX_FIELDS);
        assert_eq!(fields[0], "*ID*\nCUST-01204");
        assert!(
            !fields.iter().any(|f| f.starts_with("*Address*")),
            "objects are not scalar"
        );
    }

    #[test]
    fn the_context_carries_the_event_id_and_utc_time() {
        let message =
            message(&Config::default(), &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            message["blocks"][2]["elements"][0]["text"],
            "`evt_2KqJ7vT9mWcXbR4sLpN8dFh3Ya` · 2025-11-29T08:00:00Z"
        );
    }

    #[test]
    fn the_fallback_text_is_escaped_plain_lines() {
        let config =
            config(json!({ "fields": [{ "label": "Customer", "path": "customer.name" }] }));
        let message = message(&config, &sample!("customer.updated")).expect("renders");
        assert_eq!(
            message["text"],
            "customer.updated: Tan &amp; Sons Trading Sdn Bhd\nCustomer: Tan &amp; Sons Trading Sdn Bhd"
        );
        assert_eq!(
            field_texts(&message),
            ["*Customer*\nTan &amp; Sons Trading Sdn Bhd"]
        );
    }

    #[test]
    fn configured_fields_follow_paths_and_skip_what_is_missing() {
        let config = config(json!({
            "fields": [
                { "label": "Customer", "path": "order.customer.name" },
                { "label": "First SKU", "path": "order.items.0.sku" },
                { "label": "Tracking", "path": "order.shipment.tracking_number" },
                { "label": "Total", "path": "order.total" }
            ]
        }));
        let message = message(&config, &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            field_texts(&message),
            [
                "*Customer*\nTan &amp; Sons Trading Sdn Bhd",
                "*First SKU*\nPMP-200-SS",
                "*Total*\n4062.5"
            ]
        );
    }

    #[test]
    fn no_fields_means_no_section() {
        let config = config(json!({ "fields": [] }));
        let message = message(&config, &sample!("payment.received")).expect("renders");
        assert_eq!(block_types(&message), ["header", "context"]);
    }

    #[test]
    fn a_custom_title_sees_the_payload_and_the_event() {
        let config = config(json!({
            "title": "{{ event.tenant }} {{ order.id }} for {{ order.customer.name }} at {{ event.timestamp }}"
        }));
        let message = message(&config, &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            header(&message),
            "acme SO-10421 for Tan & Sons Trading Sdn Bhd at 2025-11-29T08:00:00Z"
        );
    }

    #[test]
    fn a_title_that_renders_empty_falls_back_to_the_event_type() {
        let config = config(json!({ "title": "{{ order.id }}" }));
        let message = message(&config, &sample!("stock.updated")).expect("renders");
        assert_eq!(header(&message), "stock.updated");
    }

    #[test]
    fn long_titles_are_cut_to_slacks_limit() {
        let config = config(json!({ "title": "{{ 'x' * 400 }}" }));
        let message = message(&config, &sample!("stock.updated")).expect("renders");
        assert_eq!(header(&message).chars().count(), HEADER_MAX);
        assert!(header(&message).ends_with('…'));
    }

    #[test]
    fn overrides_are_sent_only_when_set() {
        let bare = message(&Config::default(), &sample!("stock.updated")).expect("renders");
        assert!(bare.get("channel").is_none() && bare.get("username").is_none());

        let config = config(
            json!({ "channel": "#inventory", "username": "Weft", "icon_emoji": ":package:" }),
        );
        let message = message(&config, &sample!("stock.updated")).expect("renders");
        assert_eq!(message["channel"], "#inventory");
        assert_eq!(message["username"], "Weft");
        assert_eq!(message["icon_emoji"], ":package:");
    }

    #[test]
    fn the_example_config_is_valid_and_renders() {
        let config: Config =
            serde_json::from_str(include_str!("../example-config.json")).expect("example config");
        let message = message(&config, &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            header(&message),
            "New order SO-10421 from Tan & Sons Trading Sdn Bhd"
        );
        assert_eq!(field_texts(&message).len(), 5);
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_an_invalid_event() {
        let mut event = sample!("stock.updated");
        event.data = b"[1, 2, 3]".to_vec();
        let error = message(&Config::default(), &event).expect_err("rejected");
        assert!(matches!(error, Error::InvalidEvent(_)), "{error:?}");
    }

    #[test]
    fn a_title_that_does_not_parse_is_invalid_config() {
        let config = config(json!({ "title": "{{ order.id " }));
        let error = message(&config, &sample!("sales_order.created")).expect_err("rejected");
        assert!(
            matches!(&error, Error::InvalidConfig(m) if m.starts_with("title template")),
            "{error:?}"
        );
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let error =
            serde_json::from_value::<Config>(json!({ "colour": "red" })).expect_err("rejected");
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }

    #[test]
    fn the_schema_describes_every_setting() {
        let schema = crate::config::schema();
        let properties = schema["properties"].as_object().expect("properties");
        for key in ["title", "fields", "channel", "username", "icon_emoji"] {
            assert!(properties[key]["description"].is_string(), "{key}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }
}
