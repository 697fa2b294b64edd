//! Removes or masks personal data in an event's payload before it is delivered.
//!
//! Configured with dotted paths (`customer.email`, `order.items.*.name`): `remove`
//! deletes fields, `mask` replaces their values with asterisks and keeps the last
//! `keep_last` characters. The same plugin exists in JavaScript (`redact-pii-js`)
//! and Python (`redact-pii-py`); the three share `cases.json`, the table of cases
//! their tests check, so they behave the same byte for byte.

mod redact;

use weft_sdk::{Error, Event, PluginInfo, Request, Transform};

struct RedactPii;

impl Transform for RedactPii {
    fn info() -> PluginInfo {
        PluginInfo::new("redact-pii", env!("CARGO_PKG_VERSION"))
            .description("Removes or masks personal data before delivery")
            .config_schema(redact::config_schema())
    }

    fn transform(event: Event) -> Result<Vec<Request>, Error> {
        // Raw text rather than `weft_sdk::config()`: the configuration is checked
        // with the same messages in all three languages.
        let config = weft_sdk::config_json();
        let payload = redact::redact_event(&event.id, &event.data, &config)?;
        Ok(vec![Request::json(&payload)?])
    }
}

weft_sdk::transformer!(RedactPii);
