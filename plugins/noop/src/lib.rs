//! Forwards every event unchanged. It is the baseline the per-invocation benchmark
//! measures other plugins against, so it does as little as a transform can: no JSON
//! parsing, no configuration, one request carrying the payload bytes as they came.

use weft_sdk::{Error, Event, PluginInfo, Request, Transform};

struct Noop;

impl Transform for Noop {
    fn info() -> PluginInfo {
        PluginInfo::new("noop", env!("CARGO_PKG_VERSION"))
            .description("Forwards the event's payload unchanged")
    }

    fn transform(event: Event) -> Result<Vec<Request>, Error> {
        Ok(vec![
            Request::bytes(event.data).header("content-type", event.content_type),
        ])
    }
}

weft_sdk::transformer!(Noop);
