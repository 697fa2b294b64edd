//! The template's configuration and the JSON Schema Weft validates it against.

use serde::Deserialize;
use serde_json::{Value, json};

/// The header when the configuration sets no title: the event type, then what
/// names the entity for each of the platform's entities. Other entities get the
/// event type alone.
pub const DEFAULT_TITLE: &str = "{{ event.type }}\
{% if order %}: {{ order.id }}\
{% elif payment %}: {{ payment.id }}\
{% elif stock %}: {{ stock.sku }} at {{ stock.warehouse }}\
{% elif customer %}: {{ customer.name }}\
{% endif %}";

/// Slack rejects a section with more fields than this.
pub const MAX_FIELDS: usize = 10;

/// What an administrator can set; everything is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A Jinja template for the header; [`DEFAULT_TITLE`] when absent.
    pub title: Option<String>,
    /// The fields to show. Absent shows the entity's scalar fields; empty shows none.
    pub fields: Option<Vec<Field>>,
    /// Overrides the webhook's channel (legacy webhooks only).
    pub channel: Option<String>,
    /// Overrides the webhook's display name (legacy webhooks only).
    pub username: Option<String>,
    /// Overrides the webhook's icon (legacy webhooks only).
    pub icon_emoji: Option<String>,
}

impl Config {
    /// The title template in force.
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or(DEFAULT_TITLE)
    }
}

/// One labelled value in the message's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Shown in bold above the value.
    pub label: String,
    /// A dotted path into the payload: `order.customer.name`, `order.items.0.sku`.
    pub path: String,
}

/// The JSON Schema (draft 2020-12) of [`Config`].
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Slack message",
        "description": "How business events are posted to a Slack incoming webhook. Every setting is optional.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "title": {
                "description": "Jinja template for the message header, rendered against the payload (`order`, `payment`, `stock`, `customer`, …) and `event` (`id`, `type`, `tenant`, `occurred_at` in Unix ms, `timestamp` in RFC 3339). Slack shows at most 150 characters.",
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "default": DEFAULT_TITLE
            },
            "fields": {
                "description": "Labelled values shown in the message. When absent, the entity's scalar fields are shown (at most 10); an empty list shows none. Paths missing from an event are left out.",
                "type": "array",
                "maxItems": MAX_FIELDS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["label", "path"],
                    "properties": {
                        "label": {
                            "description": "Shown in bold above the value.",
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 100
                        },
                        "path": {
                            "description": "Dotted path into the payload, such as `order.customer.name` or `order.items.0.sku`.",
                            "type": "string",
                            "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"
                        }
                    }
                }
            },
            "channel": {
                "description": "Channel to post to instead of the webhook's own (`#sales`). Only legacy incoming webhooks honour it.",
                "type": "string",
                "minLength": 1,
                "maxLength": 80
            },
            "username": {
                "description": "Display name instead of the webhook's own. Only legacy incoming webhooks honour it.",
                "type": "string",
                "minLength": 1,
                "maxLength": 80
            },
            "icon_emoji": {
                "description": "Emoji shown as the sender's icon (`:package:`). Only legacy incoming webhooks honour it.",
                "type": "string",
                "pattern": "^:[a-z0-9_+'-]+:$"
            }
        }
    })
}
