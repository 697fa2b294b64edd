//! Turns events into Shopify Admin GraphQL calls: pure functions of (configuration, event).

use crate::config::Config;
use crate::payload;
use serde_json::{Value, json};
use weft_sdk::{Error, Event};

/// Sets absolute quantities: the platform is the source of truth for stock, so
/// replaying an event is harmless and no compare-and-set is needed.
const SET_INVENTORY: &str = "mutation WeftSetInventory($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { reason changes { name delta } }
    userErrors { field message code }
  }
}";

/// Writes the shipment into the order's note and adds a tag. `tagsAdd` rather
/// than `orderUpdate`'s `tags`, which would replace the merchant's own tags.
const MARK_SHIPPED: &str =
    "mutation WeftMarkShipped($input: OrderInput!, $id: ID!, $tags: [String!]!) {
  orderUpdate(input: $input) {
    order { id }
    userErrors { field message }
  }
  tagsAdd(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}";

/// The tag a shipped order gets.
const SHIPPED_TAG: &str = "shipped";

/// A POST of a GraphQL document to the store's Admin API.
#[derive(Debug, PartialEq)]
pub struct GraphqlCall {
    pub url: String,
    /// `{"query": …, "variables": …}`.
    pub body: Value,
}

impl GraphqlCall {
    fn new(config: &Config, query: &str, variables: Value) -> Self {
        Self {
            url: config.graphql_url(),
            body: json!({ "query": query, "variables": variables }),
        }
    }
}

/// The call that brings the store in step with `event`.
pub fn render(config: &Config, event: &Event) -> Result<GraphqlCall, Error> {
    match event.event_type.as_str() {
        "stock.updated" => set_inventory(config, event),
        "sales_order.shipped" => mark_shipped(config, event),
        other => Err(Error::invalid_event(format!(
            "shopify handles stock.updated, sales_order.shipped; not {other}"
        ))),
    }
}

/// `stock.updated`: the item's available quantity at the mapped location.
fn set_inventory(config: &Config, event: &Event) -> Result<GraphqlCall, Error> {
    let payload: Value = event.json()?;
    let warehouse = payload::string(&payload, "stock.warehouse")?;
    let quantity = payload::int32(&payload, "stock.quantity")?;
    let item = payload::shopify_id(&payload, "stock.external_refs.shopify_inventory_item_id")?;
    let location = config.locations.get(warehouse).ok_or_else(|| {
        Error::invalid_config(format!(
            "locations has no Shopify location for warehouse {warehouse}"
        ))
    })?;
    let variables = json!({
        "input": {
            "name": "available",
            "reason": config.inventory_reason,
            "ignoreCompareQuantity": true,
            // Shown in Shopify's adjustment history, pointing back at the event.
            "referenceDocumentUri": format!("gid://weft/Event/{}", event.id),
            "quantities": [{
                "inventoryItemId": gid("InventoryItem", item),
                "locationId": gid("Location", *location),
                "quantity": quantity,
            }],
        }
    });
    Ok(GraphqlCall::new(config, SET_INVENTORY, variables))
}

/// `sales_order.shipped`: the shipment as the order's note, and the shipped tag.
fn mark_shipped(config: &Config, event: &Event) -> Result<GraphqlCall, Error> {
    let payload: Value = event.json()?;
    let order = gid(
        "Order",
        payload::shopify_id(&payload, "order.external_refs.shopify_order_id")?,
    );
    let note = shipment_note(&payload)?;
    let variables = json!({
        "input": { "id": order, "note": note },
        "id": order,
        "tags": [SHIPPED_TAG],
    });
    Ok(GraphqlCall::new(config, MARK_SHIPPED, variables))
}

/// The note merchants read on the order: who carries it and how to track it.
fn shipment_note(payload: &Value) -> Result<String, Error> {
    let carrier = payload::string(payload, "order.shipment.carrier")?;
    let tracking_number = payload::string(payload, "order.shipment.tracking_number")?;
    let mut note = match payload::optional_string(payload, "order.id") {
        Some(order) => format!("Sales order {order} shipped with {carrier}"),
        None => format!("Shipped with {carrier}"),
    };
    if let Some(shipped_at) = payload::optional_string(payload, "order.shipment.shipped_at") {
        note.push_str(&format!(" on {shipped_at}"));
    }
    note.push_str(&format!("\nTracking number: {tracking_number}"));
    if let Some(url) = payload::optional_string(payload, "order.shipment.tracking_url") {
        note.push_str(&format!("\nTracking URL: {url}"));
    }
    Ok(note)
}

/// A Shopify global id: `gid://shopify/Order/6120394857213`.
fn gid(resource: &str, id: u64) -> String {
    format!("gid://shopify/{resource}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The event with its payload edited by `edit`.
    fn edited(mut event: Event, edit: impl FnOnce(&mut Value)) -> Event {
        let mut payload: Value = serde_json::from_slice(&event.data).expect("payload");
        edit(&mut payload);
        event.data = serde_json::to_vec(&payload).expect("payload");
        event
    }

    #[test]
    fn stock_updated_sets_the_available_quantity_at_the_mapped_location() {
        let call = render(&example_config(), &sample!("stock.updated")).expect("renders");
        assert_eq!(
            call.url,
            "https://acme-water.myshopify.com/admin/api/2025-07/graphql.json"
        );
        assert_eq!(call.body["query"], SET_INVENTORY);
        assert_eq!(
            call.body["variables"],
            json!({
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "ignoreCompareQuantity": true,
                    "referenceDocumentUri": "gid://weft/Event/evt_2KqVh1NqC5uBwJ8rFz3PmYt6Dg",
                    "quantities": [{
                        "inventoryItemId": "gid://shopify/InventoryItem/45891203847721",
                        "locationId": "gid://shopify/Location/74382917665",
                        "quantity": 138
                    }]
                }
            })
        );
    }

    #[test]
    fn the_inventory_reason_is_configurable() {
        let mut config = example_config();
        config.inventory_reason = "cycle_count_available".to_owned();
        let call = render(&config, &sample!("stock.updated")).expect("renders");
        assert_eq!(
            call.body["variables"]["input"]["reason"],
            "cycle_count_available"
        );
    }

    #[test]
    fn shipped_orders_get_a_note_and_the_shipped_tag() {
        let call = render(&example_config(), &sample!("sales_order.shipped")).expect("renders");
        assert_eq!(
            call.url,
            "https://acme-water.myshopify.com/admin/api/2025-07/graphql.json"
        );
        assert_eq!(call.body["query"], MARK_SHIPPED);
        assert_eq!(
            call.body["variables"],
            json!({
                "input": {
                    "id": "gid://shopify/Order/6120394857213",
                    "note": "Sales order SO-10436 shipped with DHL eCommerce on 2025-12-01T13:00:00+08:00\n\
                             Tracking number: MYCGU0004178823\n\
                             Tracking URL: https://www.dhl.com/my-en/home/tracking.html?tracking-id=MYCGU0004178823"
                },
                "id": "gid://shopify/Order/6120394857213",
                "tags": ["shipped"]
            })
        );
    }

    #[test]
    fn a_shipment_without_tracking_url_still_has_a_note() {
        let event = edited(sample!("sales_order.shipped"), |p| {
            p["order"]["shipment"]["tracking_url"] = Value::Null;
        });
        let call = render(&example_config(), &event).expect("renders");
        let note = call.body["variables"]["input"]["note"]
            .as_str()
            .expect("note");
        assert!(note.ends_with("Tracking number: MYCGU0004178823"), "{note}");
    }

    #[test]
    fn an_unmapped_warehouse_is_invalid_config_naming_it() {
        let event = edited(sample!("stock.updated"), |p| {
            p["stock"]["warehouse"] = json!("WH-JB-02")
        });
        assert_eq!(
            render(&example_config(), &event),
            Err(Error::invalid_config(
                "locations has no Shopify location for warehouse WH-JB-02"
            ))
        );
    }

    #[test]
    fn a_missing_field_is_an_invalid_event_naming_it() {
        let event = edited(sample!("stock.updated"), |p| {
            p["stock"]["external_refs"]
                .as_object_mut()
                .expect("refs")
                .remove("shopify_inventory_item_id");
        });
        assert_eq!(
            render(&example_config(), &event),
            Err(Error::invalid_event(
                "stock.external_refs.shopify_inventory_item_id is missing"
            ))
        );

        let event = edited(sample!("sales_order.shipped"), |p| {
            p["order"]["shipment"]
                .as_object_mut()
                .expect("shipment")
                .remove("tracking_number");
        });
        assert_eq!(
            render(&example_config(), &event),
            Err(Error::invalid_event(
                "order.shipment.tracking_number is missing"
            ))
        );
    }

    #[test]
    fn an_order_not_from_shopify_is_an_invalid_event() {
        let event = edited(sample!("sales_order.shipped"), |p| {
            p["order"]["external_refs"] = json!({});
        });
        assert_eq!(
            render(&example_config(), &event),
            Err(Error::invalid_event(
                "order.external_refs.shopify_order_id is missing"
            ))
        );
    }

    #[test]
    fn an_unhandled_event_type_is_an_invalid_event() {
        assert_eq!(
            render(&example_config(), &sample!("sales_order.created")),
            Err(Error::invalid_event(
                "shopify handles stock.updated, sales_order.shipped; not sales_order.created"
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
    fn unknown_settings_and_a_missing_shop_are_rejected() {
        let unknown = json!({
            "shop_domain": "acme.myshopify.com", "api_version": "2025-07",
            "locations": {}, "access_token": "shpat_x"
        });
        let error = serde_json::from_value::<Config>(unknown).expect_err("rejected");
        assert!(
            error.to_string().contains("unknown field `access_token`"),
            "{error}"
        );

        let missing = json!({ "api_version": "2025-07", "locations": {} });
        let error = serde_json::from_value::<Config>(missing).expect_err("rejected");
        assert!(
            error.to_string().contains("missing field `shop_domain`"),
            "{error}"
        );
    }
}
