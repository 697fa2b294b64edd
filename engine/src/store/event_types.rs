//! Event types a tenant adds to the platform's catalog, each with the JSON
//! Schema its payloads must satisfy.

use super::Store;
use super::database::{Row, Statement};
use super::error::StoreError;
use super::json::{json_column, to_json};
use crate::model::{TenantId, UnixMillis};

/// A custom event type.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeRecord {
    /// `<entity>.<action>`: `loyalty_card.issued`.
    pub name: String,
    pub description: String,
    /// The JSON Schema of its payloads.
    pub schema: serde_json::Value,
    pub created_at: UnixMillis,
}

impl Store {
    /// Adds event type `record.name` to `tenant`, or replaces its description
    /// and schema if it exists (keeping its `created_at`).
    pub async fn put_event_type(
        &self,
        tenant: &TenantId,
        record: &EventTypeRecord,
    ) -> Result<(), StoreError> {
        let name = &record.name;
        let statement = Statement::new(
            "INSERT INTO event_types (tenant, name, description, json_schema, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, name) DO UPDATE \
             SET description = excluded.description, json_schema = excluded.json_schema",
        )
        .bind(tenant.as_str())
        .bind(name.as_str())
        .bind(record.description.as_str())
        .bind(to_json(
            &record.schema,
            format_args!("the schema of event type {name}"),
        )?)
        .bind(record.created_at);
        self.write_change(statement)
            .await
            .map_err(StoreError::database(format!("storing event type {name}")))?;
        Ok(())
    }

    /// `tenant`'s event type `name`.
    pub async fn get_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<EventTypeRecord>, StoreError> {
        let statement = Statement::new(
            "SELECT name, description, json_schema, created_at FROM event_types \
             WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant.as_str())
        .bind(name);
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading event type {name}")))?;
        row.as_ref().map(event_type_from_row).transpose()
    }

    /// `tenant`'s event types, by name.
    pub async fn list_event_types(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<EventTypeRecord>, StoreError> {
        let statement = Statement::new(
            "SELECT name, description, json_schema, created_at FROM event_types \
             WHERE tenant = $1 ORDER BY name",
        )
        .bind(tenant.as_str());
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the event types of tenant {tenant}"
            )))?;
        rows.iter().map(event_type_from_row).collect()
    }
}

fn event_type_from_row(row: &Row) -> Result<EventTypeRecord, StoreError> {
    let name: String = row.get("name")?;
    let schema = json_column(row, "json_schema", format_args!("event type {name}"))?;
    Ok(EventTypeRecord {
        description: row.get("description")?,
        schema,
        created_at: row.get("created_at")?,
        name,
    })
}
