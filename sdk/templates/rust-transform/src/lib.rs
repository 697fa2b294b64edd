//! A Weft transform that wraps each event's payload in an envelope saying which
//! event it is:
//!
//! ```json
//! {"event": "sales_order.created", "id": "evt_2KqJ7vT9mWcXbR4sLpN8dFh3Ya", "data": {"order": {}}}
//! ```
//!
//! Start your own plugin from here: rename it in `Cargo.toml` and `info()`, then
//! change `transform`.

use serde::Serialize;
use serde_json::value::RawValue;
use weft_sdk::{Error, Event, PluginInfo, Request, Transform};

/// The body delivered to the endpoint.
#[derive(Serialize)]
struct Envelope<'a> {
    event: &'a str,
    id: &'a str,
    /// The payload as published: checked to be JSON but not re-serialised, so
    /// numbers and key order reach the receiver untouched.
    data: &'a RawValue,
}

struct EnvelopeTransform;

impl Transform for EnvelopeTransform {
    fn info() -> PluginInfo {
        // No `.config_schema(...)`: this plugin takes no configuration.
        PluginInfo::new("envelope", env!("CARGO_PKG_VERSION"))
            .description("Wraps the payload with the event's type and id")
    }

    fn transform(event: Event) -> Result<Vec<Request>, Error> {
        // A payload that is not JSON fails as an invalid event: Weft dead-letters
        // it instead of retrying something that can never succeed.
        let data: Box<RawValue> = event.json()?;
        let envelope = Envelope {
            event: &event.event_type,
            id: &event.id,
            data: &data,
        };
        Ok(vec![Request::json(&envelope)?])
    }
}

weft_sdk::transformer!(EnvelopeTransform);
