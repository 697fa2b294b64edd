//! Keeps a Shopify store in step with the platform through the Admin GraphQL API.
//!
//! `stock.updated` sets the available quantity of the item at the Shopify location
//! mapped from the platform's warehouse; `sales_order.shipped` records the
//! shipment on the Shopify order and tags it. The access token never reaches the
//! template: Weft adds `X-Shopify-Access-Token` when it delivers.
//!
//! The logic lives in [`graphql`] as pure functions of (configuration, event), so
//! it is tested natively; the trait impl below only reaches for the host.

mod config;
mod graphql;
mod payload;

use config::Config;
use weft_sdk::{Error, Event, Integration, PluginInfo, Request};

struct Shopify;

impl Integration for Shopify {
    fn info() -> PluginInfo {
        PluginInfo::new("shopify", env!("CARGO_PKG_VERSION"))
            .description("Sets Shopify inventory from stock.updated and marks Shopify orders shipped from sales_order.shipped")
            .config_schema(config::schema())
    }

    fn render(event: Event) -> Result<Vec<Request>, Error> {
        let config: Config = weft_sdk::config()?;
        let call = graphql::render(&config, &event)?;
        Ok(vec![
            Request::json(&call.body)?.method("POST").url(call.url),
        ])
    }
}

weft_sdk::integration!(Shopify);
