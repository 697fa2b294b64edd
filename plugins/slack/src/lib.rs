//! Posts business events to Slack through an incoming webhook.
//!
//! Every event becomes a Block Kit message: a header rendered from a Jinja title
//! template, a section of labelled fields picked from the payload, and a context
//! line with the event id and time. The endpoint is the webhook URL itself, which
//! is Slack's only credential, so the template sets neither URL nor method.
//!
//! The logic lives in [`message`] as pure functions of (configuration, event), so
//! it is tested natively; the trait impl below only reaches for the host.

pub mod config;
pub mod message;
mod text;
mod time;

use config::Config;
use weft_sdk::{Error, Event, Integration, PluginInfo, Request};

struct Slack;

impl Integration for Slack {
    fn info() -> PluginInfo {
        PluginInfo::new("slack", env!("CARGO_PKG_VERSION"))
            .description(
                "Posts any business event to a Slack incoming webhook as a Block Kit message",
            )
            .config_schema(config::schema())
    }

    fn render(event: Event) -> Result<Vec<Request>, Error> {
        // Every setting is optional, so an absent configuration means the defaults.
        let config = weft_sdk::config::<Option<Config>>()?.unwrap_or_default();
        let message = message::message(&config, &event)?;
        Ok(vec![Request::json(&message)?])
    }
}

weft_sdk::integration!(Slack);
