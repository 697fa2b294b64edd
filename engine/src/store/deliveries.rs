//! The delivery queue: deliveries are created with their event.

use super::database::{ROWS_PER_STATEMENT, Row, SqlBuilder, Tx, Value};
use super::error::StoreError;
use crate::model::{
    Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, SubscriptionId, TenantId,
};

/// The columns of `deliveries` a [`Delivery`] is made of, as
/// [`insert_deliveries`] writes them.
macro_rules! delivery_columns {
    () => {
        "tenant, id, event_id, event_type, subscription_id, endpoint_id, status, attempts, \
         next_attempt_at, last_error, ordering_key, created_at, updated_at"
    };
}
pub(super) use delivery_columns;
const INSERTED_COLUMN_COUNT: usize = 13;

/// Inserts new deliveries (pending or already settled) in multi-row statements.
pub(super) async fn insert_deliveries(
    tx: &mut Tx,
    deliveries: &[&Delivery],
) -> Result<(), StoreError> {
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        let rows = chunk
            .iter()
            .map(|delivery| -> [Value; INSERTED_COLUMN_COUNT] {
                [
                    delivery.tenant.as_str().into(),
                    delivery.id.as_str().into(),
                    delivery.event_id.as_str().into(),
                    delivery.event_type.as_str().into(),
                    delivery.subscription_id.as_str().into(),
                    delivery.endpoint_id.as_str().into(),
                    delivery.status.as_str().into(),
                    delivery.attempts.into(),
                    delivery.next_attempt_at.into(),
                    delivery.last_error.as_deref().into(),
                    delivery.ordering_key.as_deref().into(),
                    delivery.created_at.into(),
                    delivery.updated_at.into(),
                ]
            });
        let statement = SqlBuilder::new(tx.dialect())
            .sql(concat!(
                "INSERT INTO deliveries (",
                delivery_columns!(),
                ") VALUES "
            ))
            .rows(rows)
            .build(chunk.len() == ROWS_PER_STATEMENT);
        tx.execute(statement)
            .await
            .map_err(StoreError::database(format!(
                "inserting {} deliveries",
                chunk.len()
            )))?;
    }
    Ok(())
}

pub(super) fn delivery_from_row(row: &Row) -> Result<Delivery, StoreError> {
    let status: String = row.get("status")?;
    let id = row.get_id("id", DeliveryId::parse)?;
    Ok(Delivery {
        tenant: row.get_id("tenant", TenantId::parse)?,
        event_id: row.get_id("event_id", EventId::parse)?,
        event_type: row.get("event_type")?,
        subscription_id: row.get_id("subscription_id", SubscriptionId::parse)?,
        endpoint_id: row.get_id("endpoint_id", EndpointId::parse)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "status of delivery {id}: unknown status {status:?}"
            ))
        })?,
        attempts: row.get_u32("attempts")?,
        next_attempt_at: row.get("next_attempt_at")?,
        last_error: row.get("last_error")?,
        ordering_key: row.get("ordering_key")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        id,
    })
}
