//! Turns events into Salesforce upserts by external id: pure functions of
//! (configuration, event).

use crate::config::{Config, FieldMap};
use crate::payload;
use serde_json::{Map, Value};
use weft_sdk::{Error, Event};

/// A `PATCH` of `body` to an sObject's external id URL: Salesforce creates the
/// record (201) or updates it (204), so replays are harmless.
#[derive(Debug, PartialEq)]
pub struct Upsert {
    pub url: String,
    pub body: Value,
}

/// The upsert that brings Salesforce in step with `event`.
pub fn render(config: &Config, event: &Event) -> Result<Upsert, Error> {
    match event.event_type.as_str() {
        "customer.created" | "customer.updated" => upsert_account(config, event),
        "sales_order.created" => upsert_opportunity(config, event),
        other => Err(Error::invalid_event(format!(
            "salesforce handles customer.created, customer.updated, sales_order.created; not {other}"
        ))),
    }
}

/// A customer as an Account, keyed by the customer id.
fn upsert_account(config: &Config, event: &Event) -> Result<Upsert, Error> {
    let payload: Value = event.json()?;
    let id = payload::external_id(&payload, "customer.id")?;
    let body = mapped_fields("account_fields", &config.account_fields, &payload)?;
    Ok(Upsert {
        url: config.upsert_url("Account", &config.account_external_id_field, &id),
        body: Value::Object(body),
    })
}

/// A new sales order as an Opportunity, keyed by the order id and linked to its
/// customer's Account through the Account's external id.
fn upsert_opportunity(config: &Config, event: &Event) -> Result<Upsert, Error> {
    let external_id_field = config
        .opportunity_external_id_field
        .as_deref()
        .ok_or_else(|| {
            Error::invalid_config(
                "opportunity_external_id_field is required to sync sales_order.created",
            )
        })?;
    let payload: Value = event.json()?;
    let id = payload::external_id(&payload, "order.id")?;
    let customer = payload::external_id(&payload, "order.customer_id")?;
    let close_date = payload::date(&payload, "order.created_at")?;

    let mut body = Map::new();
    body.insert("StageName".into(), config.opportunity_stage.clone().into());
    body.insert("CloseDate".into(), close_date.into());
    let mut account = Map::new();
    account.insert(config.account_external_id_field.clone(), customer.into());
    body.insert("Account".into(), Value::Object(account));
    // Mapped fields come last so that an administrator's mapping wins.
    body.extend(mapped_fields(
        "opportunity_fields",
        &config.opportunity_fields,
        &payload,
    )?);

    Ok(Upsert {
        url: config.upsert_url("Opportunity", external_id_field, &id),
        body: Value::Object(body),
    })
}

/// The mapped fields this payload has. Missing and null values are left out,
/// so a blank platform field never erases data in Salesforce.
///
/// A path that leads to an object or a list is a mapping mistake (Salesforce
/// fields hold scalars), reported against the setting named `setting`.
fn mapped_fields(
    setting: &str,
    fields: &FieldMap,
    payload: &Value,
) -> Result<Map<String, Value>, Error> {
    let mut body = Map::new();
    for (field, path) in fields {
        match payload::lookup(payload, path) {
            None => {}
            Some(value @ (Value::Object(_) | Value::Array(_))) => {
                let kind = if value.is_object() {
                    "an object"
                } else {
                    "a list"
                };
                return Err(Error::invalid_config(format!(
                    "{setting}.{field} maps {path}, which is {kind}; map a single value such as {path}.<field>"
                )));
            }
            Some(value) => {
                body.insert(field.clone(), value.clone());
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(envelope: &str) -> Event {
        Event::from_sample(envelope).expect("sample event")
    }

    macro_rules! sample {
        ($name:literal) => {
            sample(include_str!(concat!(
                "../../../examples/events/",
                $name,
                ".json"
            )))
        };
    }

    fn example_config() -> Config {
        serde_json::from_str(include_str!("../example-config.json")).expect("example config")
    }

    /// A configuration with every optional setting left to its default.
    fn minimal_config() -> Config {
        serde_json::from_value(json!({
            "instance_url": "https://acme.my.salesforce.com",
            "api_version": "61.0",
            "account_external_id_field": "Weft_Customer_Id__c",
            "opportunity_external_id_field": "Weft_Order_Id__c"
        }))
        .expect("config")
    }

    /// The event with its payload edited by `edit`.
    fn edited(mut event: Event, edit: impl FnOnce(&mut Value)) -> Event {
        let mut payload: Value = serde_json::from_slice(&event.data).expect("payload");
        edit(&mut payload);
        event.data = serde_json::to_vec(&payload).expect("payload");
        event
    }

    #[test]
    fn customer_created_upserts_an_account_with_the_default_fields() {
        let upsert = render(&minimal_config(), &sample!("customer.created")).expect("renders");
        assert_eq!(
            upsert.url,
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Account/Weft_Customer_Id__c/CUST-01204"
        );
        assert_eq!(
            upsert.body,
            json!({
                "Name": "Borneo Aqua Systems Sdn Bhd",
                "Phone": "+60 88-255 610",
                "BillingStreet": "Lot 3-11, Block C, Plaza Tanjung Aru",
                "BillingCity": "Kota Kinabalu",
                "BillingState": "Sabah",
                "BillingPostalCode": "88100",
                "BillingCountry": "MY"
            })
        );
    }

    #[test]
    fn customer_updated_upserts_the_same_account_with_configured_fields() {
        let upsert = render(&example_config(), &sample!("customer.updated")).expect("renders");
        assert_eq!(
            upsert.url,
            "https://acme-water.my.salesforce.com/services/data/v61.0/sobjects/Account/Weft_Customer_Id__c/CUST-00042"
        );
        assert_eq!(upsert.body["Name"], "Tan & Sons Trading Sdn Bhd");
        assert_eq!(upsert.body["Credit_Limit__c"], 150000);
        assert_eq!(upsert.body["Customer_Tier__c"], "gold");
        assert_eq!(upsert.body["BillingCity"], "Kuala Lumpur");
    }

    #[test]
    fn sales_order_created_upserts_an_opportunity_linked_to_its_account() {
        let upsert = render(&minimal_config(), &sample!("sales_order.created")).expect("renders");
        assert_eq!(
            upsert.url,
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Opportunity/Weft_Order_Id__c/SO-10421"
        );
        assert_eq!(
            upsert.body,
            json!({
                "Name": "SO-2025-10421",
                "Amount": 4062.5,
                "StageName": "Closed Won",
                "CloseDate": "2025-11-29",
                "Account": { "Weft_Customer_Id__c": "CUST-00042" }
            })
        );
    }

    #[test]
    fn the_example_config_sets_the_stage_and_extra_fields() {
        let upsert = render(&example_config(), &sample!("sales_order.created")).expect("renders");
        assert_eq!(upsert.body["StageName"], "Closed Won");
        assert_eq!(upsert.body["CurrencyIsoCode"], "MYR");
        assert_eq!(
            upsert.body["Account"],
            json!({ "Weft_Customer_Id__c": "CUST-00042" })
        );
    }

    #[test]
    fn mapped_fields_win_over_computed_ones() {
        let mut config = minimal_config();
        config
            .opportunity_fields
            .insert("CloseDate".into(), "order.delivery_date".into());
        let event = edited(sample!("sales_order.created"), |p| {
            p["order"]["delivery_date"] = json!("2025-12-15");
        });
        let upsert = render(&config, &event).expect("renders");
        assert_eq!(upsert.body["CloseDate"], "2025-12-15");
    }

    #[test]
    fn missing_and_null_mapped_values_are_left_out() {
        let event = edited(sample!("customer.created"), |p| {
            p["customer"]["phone"] = Value::Null;
            p["customer"]
                .as_object_mut()
                .expect("customer")
                .remove("address");
        });
        let upsert = render(&minimal_config(), &event).expect("renders");
        assert_eq!(
            upsert.body,
            json!({ "Name": "Borneo Aqua Systems Sdn Bhd" })
        );
    }

    #[test]
    fn ids_are_percent_encoded_as_one_path_segment() {
        let event = edited(sample!("customer.created"), |p| {
            p["customer"]["id"] = json!("KL/00 42")
        });
        let upsert = render(&minimal_config(), &event).expect("renders");
        assert!(
            upsert
                .url
                .ends_with("/Account/Weft_Customer_Id__c/KL%2F00%2042"),
            "{}",
            upsert.url
        );
    }

    #[test]
    fn a_missing_field_is_an_invalid_event_naming_it() {
        let event = edited(sample!("customer.created"), |p| {
            p["customer"]
                .as_object_mut()
                .expect("customer")
                .remove("id");
        });
        assert_eq!(
            render(&minimal_config(), &event),
            Err(Error::invalid_event("customer.id is missing"))
        );

        let event = edited(sample!("sales_order.created"), |p| {
            p["order"]
                .as_object_mut()
                .expect("order")
                .remove("created_at");
        });
        assert_eq!(
            render(&minimal_config(), &event),
            Err(Error::invalid_event("order.created_at is missing"))
        );
    }

    #[test]
    fn an_order_without_an_opportunity_id_field_is_invalid_config() {
        let mut config = minimal_config();
        config.opportunity_external_id_field = None;
        assert_eq!(
            render(&config, &sample!("sales_order.created")),
            Err(Error::invalid_config(
                "opportunity_external_id_field is required to sync sales_order.created"
            ))
        );
    }

    #[test]
    fn a_field_mapped_to_an_object_is_invalid_config() {
        let mut config = minimal_config();
        config
            .account_fields
            .insert("BillingAddress".into(), "customer.address".into());
        let error = render(&config, &sample!("customer.created")).expect_err("rejected");
        assert_eq!(
            error,
            Error::invalid_config(
                "account_fields.BillingAddress maps customer.address, which is an object; \
                 map a single value such as customer.address.<field>"
            )
        );
    }

    #[test]
    fn an_unhandled_event_type_is_an_invalid_event() {
        assert_eq!(
            render(&minimal_config(), &sample!("stock.updated")),
            Err(Error::invalid_event(
                "salesforce handles customer.created, customer.updated, sales_order.created; not stock.updated"
            ))
        );
    }

    #[test]
    fn the_example_config_uses_only_declared_settings() {
        let schema = crate::config::schema();
        let example: Value =
            serde_json::from_str(include_str!("../example-config.json")).expect("example config");
        for key in example.as_object().expect("object").keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{key} is not in the schema"
            );
        }
        for key in schema["required"].as_array().expect("required") {
            assert!(
                example.get(key.as_str().expect("name")).is_some(),
                "{key} is required"
            );
        }
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let error = serde_json::from_value::<Config>(json!({
            "instance_url": "https://acme.my.salesforce.com",
            "api_version": "61.0",
            "account_external_id_field": "Weft_Customer_Id__c",
            "client_secret": "x"
        }))
        .expect_err("rejected");
        assert!(
            error.to_string().contains("unknown field `client_secret`"),
            "{error}"
        );
    }
}
