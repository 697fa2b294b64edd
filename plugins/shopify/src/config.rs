//! The template's configuration and the JSON Schema Weft validates it against.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The reasons Shopify accepts for an inventory change.
const INVENTORY_REASONS: [&str; 17] = [
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

const DEFAULT_INVENTORY_REASON: &str = "correction";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store's `*.myshopify.com` domain: the Admin API is served only there.
    pub shop_domain: String,
    /// The Admin API version, `YYYY-MM`.
    pub api_version: String,
    /// Platform warehouse code → Shopify location id.
    pub locations: BTreeMap<String, u64>,
    /// Why inventory changed, as Shopify's adjustment history shows it.
    #[serde(default = "default_inventory_reason")]
    pub inventory_reason: String,
}

fn default_inventory_reason() -> String {
    DEFAULT_INVENTORY_REASON.to_owned()
}

impl Config {
    /// The store's Admin GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!(
            "https://{}/admin/api/{}/graphql.json",
            self.shop_domain, self.api_version
        )
    }
}

/// The JSON Schema (draft 2020-12) of [`Config`].
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Shopify store",
        "description": "Which Shopify store to keep in step, and how platform warehouses map to its locations. The access token is set on the endpoint, never here.",
        "type": "object",
        "additionalProperties": false,
        "required": ["shop_domain", "api_version", "locations"],
        "properties": {
            "shop_domain": {
                "description": "The store's myshopify.com domain, such as `acme.myshopify.com` (not a custom storefront domain).",
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]*\\.myshopify\\.com$"
            },
            "api_version": {
                "description": "Admin API version, such as `2025-07`.",
                "type": "string",
                "pattern": "^\\d{4}-\\d{2}$"
            },
            "locations": {
                "description": "Maps each platform warehouse code (`WH-KL-01`) to the numeric id of a Shopify location. Stock in an unmapped warehouse pauses the subscription.",
                "type": "object",
                "propertyNames": { "minLength": 1 },
                "additionalProperties": { "type": "integer", "minimum": 1 }
            },
            "inventory_reason": {
                "description": "The reason Shopify records for each inventory change.",
                "type": "string",
                "enum": INVENTORY_REASONS,
                "default": DEFAULT_INVENTORY_REASON
            }
        }
    })
}
