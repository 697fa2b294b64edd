//! Keeps Salesforce in step with the platform's customers and sales orders.
//!
//! Customers are upserted as Accounts and new sales orders as Opportunities, each
//! by an external id field holding the platform's id, so a replayed event updates
//! the same record instead of creating a duplicate. The OAuth token never reaches
//! the template: Weft obtains it (client credentials) and adds it when it delivers.
//!
//! The logic lives in [`upsert`] as pure functions of (configuration, event), so it
//! is tested natively; the trait impl below only reaches for the host.

mod config;
mod payload;
mod upsert;

use config::Config;
use weft_sdk::{Error, Event, Integration, PluginInfo, Request};

struct Salesforce;

impl Integration for Salesforce {
    fn info() -> PluginInfo {
        PluginInfo::new("salesforce", env!("CARGO_PKG_VERSION"))
            .description("Upserts customers as Salesforce Accounts and new sales orders as Opportunities, by external id")
            .config_schema(config::schema())
    }

    fn render(event: Event) -> Result<Vec<Request>, Error> {
        let config: Config = weft_sdk::config()?;
        let upsert = upsert::render(&config, &event)?;
        Ok(vec![
            Request::json(&upsert.body)?.method("PATCH").url(upsert.url),
        ])
    }
}

weft_sdk::integration!(Salesforce);
