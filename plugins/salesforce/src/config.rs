//! The template's configuration and the JSON Schema Weft validates it against.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A Salesforce API name: `Phone`, `Weft_Customer_Id__c`.
const API_NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_]*$";
/// A dotted path into the payload: `customer.address.city`.
const PATH_PATTERN: &str = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$";

/// A confirmed sales order is business won; its close date is the order date.
const DEFAULT_OPPORTUNITY_STAGE: &str = "Closed Won";

/// Salesforce field → payload path, for `account_fields` and `opportunity_fields`.
pub type FieldMap = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The org's `https://…my.salesforce.com` URL.
    pub instance_url: String,
    /// The REST API version, `61.0`.
    pub api_version: String,
    /// The Account field holding the platform's customer id.
    pub account_external_id_field: String,
    /// The Opportunity field holding the platform's order id; only orders need it.
    pub opportunity_external_id_field: Option<String>,
    #[serde(default = "default_account_fields")]
    pub account_fields: FieldMap,
    #[serde(default = "default_opportunity_fields")]
    pub opportunity_fields: FieldMap,
    #[serde(default = "default_opportunity_stage")]
    pub opportunity_stage: String,
}

impl Config {
    /// The upsert URL of the `sobject` whose `field` equals `external_id`.
    pub fn upsert_url(&self, sobject: &str, field: &str, external_id: &str) -> String {
        format!(
            "{}/services/data/v{}/sobjects/{sobject}/{field}/{}",
            self.instance_url.trim_end_matches('/'),
            self.api_version,
            encode_path_segment(external_id)
        )
    }
}

fn field_map(pairs: &[(&str, &str)]) -> FieldMap {
    pairs
        .iter()
        .map(|(field, path)| ((*field).to_owned(), (*path).to_owned()))
        .collect()
}

fn default_account_fields() -> FieldMap {
    field_map(&[
        ("Name", "customer.name"),
        ("Phone", "customer.phone"),
        ("BillingStreet", "customer.address.line1"),
        ("BillingCity", "customer.address.city"),
        ("BillingState", "customer.address.state"),
        ("BillingPostalCode", "customer.address.postcode"),
        ("BillingCountry", "customer.address.country"),
    ])
}

fn default_opportunity_fields() -> FieldMap {
    field_map(&[("Name", "order.number"), ("Amount", "order.total")])
}

fn default_opportunity_stage() -> String {
    DEFAULT_OPPORTUNITY_STAGE.to_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so an id
/// with `/`, `?`, `#` or spaces stays one path segment.
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn field_map_schema(description: &str, default: FieldMap) -> Value {
    json!({
        "description": description,
        "type": "object",
        "propertyNames": { "pattern": API_NAME_PATTERN },
        "additionalProperties": { "type": "string", "pattern": PATH_PATTERN },
        "default": default
    })
}

/// The JSON Schema (draft 2020-12) of [`Config`].
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Salesforce org",
        "description": "Which Salesforce org to keep in step and how platform records map to its objects. OAuth credentials are set on the endpoint, never here.",
        "type": "object",
        "additionalProperties": false,
        "required": ["instance_url", "api_version", "account_external_id_field"],
        "properties": {
            "instance_url": {
                "description": "The org's URL, such as `https://acme.my.salesforce.com`.",
                "type": "string",
                "pattern": "^https://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?/?$"
            },
            "api_version": {
                "description": "REST API version, such as `61.0`.",
                "type": "string",
                "pattern": "^[0-9]{2,3}\\.[0-9]$"
            },
            "account_external_id_field": {
                "description": "API name of the Account external id field that holds the platform's customer id, such as `Weft_Customer_Id__c`. Orders also use it to link their Account.",
                "type": "string",
                "pattern": API_NAME_PATTERN
            },
            "opportunity_external_id_field": {
                "description": "API name of the Opportunity external id field that holds the platform's order id, such as `Weft_Order_Id__c`. Required to sync sales_order.created.",
                "type": "string",
                "pattern": API_NAME_PATTERN
            },
            "account_fields": field_map_schema(
                "Account field → dotted payload path, for customer events. Replaces the default map when set. Missing or null values are left out, so a blank platform field never erases Salesforce data.",
                default_account_fields(),
            ),
            "opportunity_fields": field_map_schema(
                "Opportunity field → dotted payload path, for sales_order.created. Replaces the default map when set, and wins over StageName, CloseDate and Account. Missing or null values are left out.",
                default_opportunity_fields(),
            ),
            "opportunity_stage": {
                "description": "StageName given to Opportunities created from sales orders: a stage of the org's sales process.",
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "default": DEFAULT_OPPORTUNITY_STAGE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_unreserved_characters_only() {
        assert_eq!(encode_path_segment("CUST-00042"), "CUST-00042");
        assert_eq!(encode_path_segment("A/B ?#%"), "A%2FB%20%3F%23%25");
        assert_eq!(encode_path_segment("Müller"), "M%C3%BCller");
    }

    #[test]
    fn upsert_urls_ignore_a_trailing_slash_on_the_instance() {
        let config: Config = serde_json::from_value(json!({
            "instance_url": "https://acme.my.salesforce.com/",
            "api_version": "61.0",
            "account_external_id_field": "Weft_Customer_Id__c"
        }))
        .expect("config");
        assert_eq!(
            config.upsert_url("Account", "Weft_Customer_Id__c", "C/1"),
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Account/Weft_Customer_Id__c/C%2F1"
        );
    }

    #[test]
    fn defaults_fill_what_is_not_set() {
        let config: Config = serde_json::from_value(json!({
            "instance_url": "https://acme.my.salesforce.com",
            "api_version": "61.0",
            "account_external_id_field": "Weft_Customer_Id__c"
        }))
        .expect("config");
        assert_eq!(config.account_fields, default_account_fields());
        assert_eq!(config.opportunity_fields, default_opportunity_fields());
        assert_eq!(config.opportunity_stage, "Closed Won");
        assert_eq!(config.opportunity_external_id_field, None);
    }
}
