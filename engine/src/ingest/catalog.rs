//! The platform's built-in event types, each with the JSON Schema its payloads
//! must satisfy. The catalog is data (`engine/catalog/event-types.json`), compiled
//! into the binary and parsed once.
//!
//! Schemas require the entity object (`order` for `sales_order.*`) and its key
//! (`id`, or `sku` and `warehouse` for stock levels), type the fields publishers
//! commonly send, and allow any others: a publisher adding a field must not
//! break capture.

use super::matching::{EventTypeError, validate_event_type, validate_operational_type};
use crate::schema::{InvalidSchema, JsonSchema, SchemaViolations};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The catalog shipped with Weft.
const BUILTIN_CATALOG: &str = include_str!("../../catalog/event-types.json");

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    Catalog::from_json(BUILTIN_CATALOG)
        .unwrap_or_else(|error| panic!("engine/catalog/event-types.json: {error}"))
});

/// The platform module that publishes an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    SalesCrm,
    Purchasing,
    FinancialAccounting,
    Inventory,
    ECommerce,
    Manufacturing,
    HrPayroll,
    /// Weft's own operational events (`weft.*`), which only Weft publishes.
    Weft,
}

impl Module {
    pub const ALL: [Module; 8] = [
        Self::SalesCrm,
        Self::Purchasing,
        Self::FinancialAccounting,
        Self::Inventory,
        Self::ECommerce,
        Self::Manufacturing,
        Self::HrPayroll,
        Self::Weft,
    ];

    /// The module's name as the platform shows it.
    pub fn title(self) -> &'static str {
        match self {
            Self::SalesCrm => "Sales & CRM",
            Self::Purchasing => "Purchasing",
            Self::FinancialAccounting => "Financial Accounting",
            Self::Inventory => "Inventory",
            Self::ECommerce => "E-Commerce",
            Self::Manufacturing => "Manufacturing",
            Self::HrPayroll => "HR & Payroll",
            Self::Weft => "Weft",
        }
    }
}

/// One event type of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDef {
    /// `<entity>.<action>`.
    pub name: String,
    pub module: Module,
    pub description: String,
    /// JSON Schema (draft 2020-12) of the payload.
    pub schema: serde_json::Value,
}

/// A catalog document that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not a JSON array of event types: {0}")]
    Parse(#[from] serde_json::Error),
    #[error(transparent)]
    InvalidName(#[from] EventTypeError),
    #[error("event type {0:?} is defined more than once")]
    Duplicate(String),
    #[error("event type {name:?} has an unusable schema: {source}")]
    InvalidSchema { name: String, source: InvalidSchema },
}

/// A payload the catalog refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("payload does not match the schema of {event_type}: {violations}")]
    Invalid {
        event_type: String,
        violations: SchemaViolations,
    },
}

/// Event types by name, with their compiled schemas.
pub struct Catalog {
    types: Vec<EventTypeDef>,
    schemas: Vec<JsonSchema>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("event_types", &self.types.len())
            .finish()
    }
}

impl Catalog {
    /// The catalog shipped with Weft, parsed and compiled on first use.
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    /// A catalog from a JSON array of [`EventTypeDef`]s: every name valid and
    /// unique, every schema compiled.
    pub fn from_json(text: &str) -> Result<Self, CatalogError> {
        let types: Vec<EventTypeDef> = serde_json::from_str(text)?;
        let mut by_name = HashMap::with_capacity(types.len());
        let mut schemas = Vec::with_capacity(types.len());
        for (index, event_type) in types.iter().enumerate() {
            // Weft's own types, and only they, are `weft.<entity>.<action>`.
            match event_type.module {
                Module::Weft => validate_operational_type(&event_type.name)?,
                _ => validate_event_type(&event_type.name)?,
            }
            if by_name.insert(event_type.name.clone(), index).is_some() {
                return Err(CatalogError::Duplicate(event_type.name.clone()));
            }
            let schema = JsonSchema::compile(&event_type.schema).map_err(|source| {
                CatalogError::InvalidSchema {
                    name: event_type.name.clone(),
                    source,
                }
            })?;
            schemas.push(schema);
        }
        Ok(Self {
            types,
            schemas,
            by_name,
        })
    }

    pub fn get(&self, name: &str) -> Option<&EventTypeDef> {
        self.by_name.get(name).map(|&index| &self.types[index])
    }

    /// Every event type, grouped by module, in the catalog's order.
    pub fn iter(&self) -> impl Iterator<Item = &EventTypeDef> {
        self.types.iter()
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Checks `payload` against the schema of event type `name`, reporting every
    /// violation with its JSON pointer.
    pub fn validate(&self, name: &str, payload: &serde_json::Value) -> Result<(), PayloadError> {
        let index = *self
            .by_name
            .get(name)
            .ok_or_else(|| PayloadError::UnknownEventType(name.to_owned()))?;
        self.schemas[index]
            .validate(payload)
            .map_err(|violations| PayloadError::Invalid {
                event_type: name.to_owned(),
                violations,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::all_sample_events;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn the_builtin_catalog_covers_every_module_with_200_types() {
        let catalog = Catalog::builtin();
        assert!(catalog.len() >= 200, "{} event types", catalog.len());
        let names: HashSet<&str> = catalog.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), catalog.len(), "names are unique");
        for module in Module::ALL.into_iter().filter(|&m| m != Module::Weft) {
            let count = catalog.iter().filter(|t| t.module == module).count();
            assert!(
                count >= 10,
                "{} has only {count} event types",
                module.title()
            );
        }
        for event_type in catalog.iter() {
            assert!(!event_type.description.is_empty(), "{}", event_type.name);
        }
        // The product sheet's and the examples.
        for name in [
            "sales_order.created",
            "sales_order.updated",
            "sales_order.cancelled",
            "payment.received",
            "stock.updated",
            "customer.created",
            "customer.updated",
            "customer.deleted",
            "work_order.completed",
            "payroll.run_completed",
            "lead.qualified",
            "budget.variance_detected",
            "quality_check.failed",
            "machine.maintenance_due",
            "expense.approved",
            "cart.abandoned",
            "invoice.created",
        ] {
            assert!(catalog.get(name).is_some(), "{name} is missing");
        }
    }

    #[test]
    fn every_sample_event_validates() {
        let catalog = Catalog::builtin();
        let samples = all_sample_events();
        assert!(samples.len() >= 8);
        for event in samples {
            assert_eq!(
                catalog.validate(&event.event_type, &event.payload),
                Ok(()),
                "{}",
                event.event_type
            );
        }
    }

    #[test]
    fn payloads_without_their_entity_or_its_id_are_refused() {
        let catalog = Catalog::builtin();
        let cases = [
            (
                "sales_order.created",
                json!({ "order": { "total": 10 } }),
                "/order: \"id\" is a required property",
            ),
            (
                "sales_order.created",
                json!({ "customer": { "id": "C1" } }),
                "/: \"order\" is a required property",
            ),
            (
                "sales_order.created",
                json!({ "order": { "id": 42 } }),
                "/order/id: 42 is not of type \"string\"",
            ),
            (
                "sales_order.created",
                json!({ "order": { "id": "SO-1", "total": "a lot" } }),
                "/order/total: \"a lot\" is not of type \"number\"",
            ),
            (
                "stock.updated",
                json!({ "stock": { "sku": "FLT-010-CB" } }),
                "/stock: \"warehouse\" is a required property",
            ),
        ];
        for (name, payload, expected) in cases {
            match catalog.validate(name, &payload) {
                Err(PayloadError::Invalid {
                    event_type,
                    violations,
                }) => {
                    assert_eq!(event_type, name);
                    assert!(
                        violations.violations.iter().any(|v| v == expected),
                        "{payload}: {violations:?}"
                    );
                }
                other => panic!("{payload}: expected a violation, got {other:?}"),
            }
        }
        // Extra fields are the publisher's business.
        assert_eq!(
            catalog.validate(
                "sales_order.created",
                &json!({ "order": { "id": "SO-1", "loyalty_points": 12 }, "source": "pos" })
            ),
            Ok(())
        );
        assert_eq!(
            catalog.validate("sales_order.exploded", &json!({})),
            Err(PayloadError::UnknownEventType(
                "sales_order.exploded".into()
            ))
        );
    }

    #[test]
    fn bad_catalogs_are_refused_naming_the_type() {
        let entry = |name: &str, schema: serde_json::Value| {
            json!({
                "name": name,
                "module": "inventory",
                "description": "d",
                "schema": schema
            })
        };
        let cases = [
            (
                json!([entry("a.b", json!({})), entry("a.b", json!({}))]),
                "\"a.b\" is defined more than once",
            ),
            (
                json!([entry("Stock.Updated", json!({}))]),
                "\"Stock.Updated\"",
            ),
            (
                json!([entry("a.b", json!({ "type": 12 }))]),
                "\"a.b\" has an unusable schema",
            ),
            (
                json!([{ "name": "a.b", "module": "space", "description": "d", "schema": {} }]),
                "unknown variant `space`",
            ),
        ];
        for (document, expected) in cases {
            let error = Catalog::from_json(&document.to_string())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
