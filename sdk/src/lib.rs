//! Write [Weft](https://example.invalid/weft) plugins in Rust.
//!
//! A Weft plugin is a WebAssembly component that Weft runs for each event of a
//! subscription. It is one of three kinds, each a world of the `weft:plugin` WIT
//! package:
//!
//! | kind | trait | macro | returns |
//! |---|---|---|---|
//! | filter | [`Filter`] | [`filter!`] | keep (`true`) or drop (`false`) the event |
//! | transform | [`Transform`] | [`transformer!`] | the requests to deliver |
//! | integration template | [`Integration`] | [`integration!`] | the requests a receiving system's API expects |
//!
//! A plugin is a type implementing one trait, exported with the matching macro:
//!
//! ```no_run
//! use serde::Deserialize;
//! use weft_sdk::{Error, Event, Filter, PluginInfo};
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     threshold: f64,
//! }
//!
//! #[derive(Deserialize)]
//! struct Payload {
//!     order: Order,
//! }
//!
//! #[derive(Deserialize)]
//! struct Order {
//!     total: f64,
//! }
//!
//! struct BigOrders;
//!
//! impl Filter for BigOrders {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("big-orders", env!("CARGO_PKG_VERSION"))
//!             .description("Keeps orders above a threshold")
//!             .config_schema(serde_json::json!({
//!                 "type": "object",
//!                 "required": ["threshold"],
//!                 "properties": { "threshold": { "type": "number" } }
//!             }))
//!     }
//!
//!     fn filter(event: Event) -> Result<bool, Error> {
//!         let config: Config = weft_sdk::config()?;
//!         let payload: Payload = event.json()?;
//!         Ok(payload.order.total > config.threshold)
//!     }
//! }
//!
//! weft_sdk::filter!(BigOrders);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (with
//! `crate-type = ["cdylib"]` in `Cargo.toml`) and try it on a sample event with
//! `weft plugin run target/wasm32-wasip2/release/big_orders.wasm --event event.json`.
//!
//! Plugins are sandboxed: no files, no network, no environment. Everything a plugin
//! needs arrives in the [`Event`] and its [`config`]; everything it produces is
//! returned. Weft adds signatures and credentials when it delivers, so a plugin
//! never sees a secret.

mod bindings;
mod error;
mod event;
mod info;
pub mod log;
mod request;

pub use error::Error;
pub use event::Event;
pub use info::PluginInfo;
pub use request::Request;

use serde::de::DeserializeOwned;

/// The version of the `weft:plugin` WIT package this SDK builds against.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// A filter decides whether an event goes on to the rest of its subscription's chain.
pub trait Filter {
    /// Describes the plugin and the configuration it accepts.
    fn info() -> PluginInfo;
    /// `Ok(true)` keeps the event, `Ok(false)` drops it.
    fn filter(event: Event) -> Result<bool, Error>;
}

/// A transform reshapes an event into the requests Weft delivers to the endpoint.
pub trait Transform {
    /// Describes the plugin and the configuration it accepts.
    fn info() -> PluginInfo;
    /// An empty list drops the event; several requests fan it out.
    fn transform(event: Event) -> Result<Vec<Request>, Error>;
}

/// An integration template speaks a receiving system's API (Slack, Shopify, …).
pub trait Integration {
    /// Describes the template and the configuration it accepts.
    fn info() -> PluginInfo;
    /// The requests to send to the receiving system; an empty list drops the event.
    fn render(event: Event) -> Result<Vec<Request>, Error>;
}

/// Reads the configuration the administrator attached to this plugin.
///
/// Weft validated it against [`PluginInfo::config_schema`] already; a mismatch
/// between that schema and `T` is reported as [`Error::InvalidConfig`].
pub fn config<T: DeserializeOwned>() -> Result<T, Error> {
    let raw = bindings::host::config();
    serde_json::from_str(&raw).map_err(|e| Error::InvalidConfig(format!("config: {e}")))
}

/// The configuration the administrator attached to this plugin, as the JSON text
/// Weft passed in.
///
/// For plugins that parse it themselves: to keep numbers exactly as written, or to
/// word their own [`Error::InvalidConfig`] messages. Most plugins want [`config`].
pub fn config_json() -> String {
    bindings::host::config()
}

/// Exports a [`Filter`] implementation as this component's entry point.
#[macro_export]
macro_rules! filter {
    ($plugin:ty) => {
        const _: () = {
            struct __WeftFilter;
            impl $crate::__private::filter::Guest for __WeftFilter {
                fn describe() -> $crate::__private::types::PluginInfo {
                    <$plugin as $crate::Filter>::info().into_wit()
                }
                fn filter(
                    event: $crate::__private::types::Event,
                ) -> ::core::result::Result<bool, $crate::__private::types::PluginError> {
                    <$plugin as $crate::Filter>::filter($crate::Event::from_wit(event))
                        .map_err($crate::Error::into_wit)
                }
            }
            $crate::__private::filter::__export_filter_world!(
                __WeftFilter with_types_in $crate::__private::filter
            );
        };
    };
}

/// Exports a [`Transform`] implementation as this component's entry point.
#[macro_export]
macro_rules! transformer {
    ($plugin:ty) => {
        const _: () = {
            struct __WeftTransformer;
            impl $crate::__private::transformer::Guest for __WeftTransformer {
                fn describe() -> $crate::__private::types::PluginInfo {
                    <$plugin as $crate::Transform>::info().into_wit()
                }
                fn transform(
                    event: $crate::__private::types::Event,
                ) -> ::core::result::Result<
                    $crate::__private::Vec<$crate::__private::types::Request>,
                    $crate::__private::types::PluginError,
                > {
                    <$plugin as $crate::Transform>::transform($crate::Event::from_wit(event))
                        .map($crate::Request::many_into_wit)
                        .map_err($crate::Error::into_wit)
                }
            }
            $crate::__private::transformer::__export_transformer_world!(
                __WeftTransformer with_types_in $crate::__private::transformer
            );
        };
    };
}

/// Exports an [`Integration`] implementation as this component's entry point.
#[macro_export]
macro_rules! integration {
    ($plugin:ty) => {
        const _: () = {
            struct __WeftIntegration;
            impl $crate::__private::integration::Guest for __WeftIntegration {
                fn describe() -> $crate::__private::types::PluginInfo {
                    <$plugin as $crate::Integration>::info().into_wit()
                }
                fn render(
                    event: $crate::__private::types::Event,
                ) -> ::core::result::Result<
                    $crate::__private::Vec<$crate::__private::types::Request>,
                    $crate::__private::types::PluginError,
                > {
                    <$plugin as $crate::Integration>::render($crate::Event::from_wit(event))
                        .map($crate::Request::many_into_wit)
                        .map_err($crate::Error::into_wit)
                }
            }
            $crate::__private::integration::__export_integration_world!(
                __WeftIntegration with_types_in $crate::__private::integration
            );
        };
    };
}

/// Items the export macros expand to. Not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{filter, integration, transformer, types};
    pub use std::vec::Vec;
}
