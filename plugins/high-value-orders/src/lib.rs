//! Keeps sales orders whose total is above a threshold: the product sheet's
//! `order.total > 100 && order.status != "draft"` as a plugin, for chains that need
//! more than a CEL filter (per-currency thresholds, say).

use serde::Deserialize;
use weft_sdk::{Error, Event, Filter, PluginInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Orders with a total strictly above this pass.
    threshold: f64,
    /// Statuses that never pass, whatever the total.
    #[serde(default = "default_excluded_statuses")]
    exclude_statuses: Vec<String>,
}

fn default_excluded_statuses() -> Vec<String> {
    vec!["draft".to_owned()]
}

#[derive(Deserialize)]
struct Payload {
    order: Order,
}

#[derive(Deserialize)]
struct Order {
    total: f64,
    #[serde(default)]
    status: Option<String>,
}

struct HighValueOrders;

impl Filter for HighValueOrders {
    fn info() -> PluginInfo {
        PluginInfo::new("high-value-orders", env!("CARGO_PKG_VERSION"))
            .description(
                "Keeps orders whose total is above a threshold and whose status is not excluded",
            )
            .config_schema(serde_json::json!({
                "type": "object",
                "required": ["threshold"],
                "additionalProperties": false,
                "properties": {
                    "threshold": { "type": "number", "minimum": 0 },
                    "exclude_statuses": {
                        "type": "array",
                        "items": { "type": "string" },
                        "default": ["draft"]
                    }
                }
            }))
    }

    fn filter(event: Event) -> Result<bool, Error> {
        let config: Config = weft_sdk::config()?;
        let order = event.json::<Payload>()?.order;
        let excluded = order
            .status
            .as_ref()
            .is_some_and(|status| config.exclude_statuses.contains(status));
        Ok(order.total > config.threshold && !excluded)
    }
}

weft_sdk::filter!(HighValueOrders);
