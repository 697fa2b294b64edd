//! The attempt history: one row per request made for a delivery, and what came back.

use super::Store;
use super::database::{Row, SqlBuilder, Statement, Tx, Value, recurring_chunks};
use super::error::StoreError;
use super::json::{json_column, to_json};
use crate::model::{Attempt, AttemptId, DeliveryId, TenantId};

/// The columns of `attempts`, as [`insert_attempts`] writes them.
macro_rules! attempt_columns {
    () => {
        "tenant, id, delivery_id, number, started_at, duration_ms, request_method, request_url, \
         request_headers, response_status, response_headers, response_body, error"
    };
}
const ATTEMPT_COLUMN_COUNT: usize = 13;

impl Store {
    /// The attempts made for delivery `delivery` of `tenant`, oldest first.
    /// Empty if there is no such delivery.
    pub async fn list_attempts(
        &self,
        tenant: &TenantId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        const LIST: &str = concat!(
            "SELECT ",
            attempt_columns!(),
            " FROM attempts WHERE tenant = $1 AND delivery_id = $2 \
             ORDER BY number, started_at, id"
        );
        let statement = Statement::new(LIST)
            .bind(tenant.as_str())
            .bind(delivery.as_str());
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the attempts of delivery {delivery}"
            )))?;
        rows.iter().map(attempt_from_row).collect()
    }
}

impl Store {
    /// Records `attempts`, each of unknown outcome, and counts each in its
    /// delivery's attempts, in one transaction.
    pub async fn record_unknown_outcomes(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        let doing = || format!("recording {} attempts of unknown outcome", attempts.len());
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        for attempt in attempts {
            let count = Statement::new(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE tenant = $1 AND id = $2",
            )
            .bind(attempt.tenant.as_str())
            .bind(attempt.delivery_id.as_str());
            tx.execute(count)
                .await
                .map_err(StoreError::database(doing()))?;
        }
        let attempts: Vec<&Attempt> = attempts.iter().collect();
        insert_attempts(&mut tx, &attempts).await?;
        tx.commit().await.map_err(StoreError::database(doing()))
    }
}

/// Inserts attempts in multi-row statements.
pub(super) async fn insert_attempts(tx: &mut Tx, attempts: &[&Attempt]) -> Result<(), StoreError> {
    for chunk in recurring_chunks(attempts) {
        let rows = chunk
            .iter()
            .map(|attempt| attempt_values(attempt))
            .collect::<Result<Vec<_>, _>>()?;
        let statement = SqlBuilder::new(tx.dialect())
            .sql(concat!(
                "INSERT INTO attempts (",
                attempt_columns!(),
                ") VALUES "
            ))
            .rows(rows)
            .build(true);
        tx.execute(statement)
            .await
            .map_err(StoreError::database(format!(
                "recording {} attempts",
                chunk.len()
            )))?;
    }
    Ok(())
}

/// The columns of `attempt`, in the order of [`attempt_columns`].
fn attempt_values(attempt: &Attempt) -> Result<[Value; ATTEMPT_COLUMN_COUNT], StoreError> {
    let owner = || format!("attempt {}", attempt.id);
    Ok([
        attempt.tenant.as_str().into(),
        attempt.id.as_str().into(),
        attempt.delivery_id.as_str().into(),
        attempt.number.into(),
        attempt.started_at.into(),
        attempt.duration_ms.into(),
        attempt.request_method.as_str().into(),
        attempt.request_url.as_str().into(),
        to_json(
            &attempt.request_headers,
            format_args!("the request headers of {}", owner()),
        )?
        .into(),
        attempt.response_status.map(i64::from).into(),
        to_json(
            &attempt.response_headers,
            format_args!("the response headers of {}", owner()),
        )?
        .into(),
        attempt.response_body.as_deref().into(),
        attempt.error.as_deref().into(),
    ])
}

fn attempt_from_row(row: &Row) -> Result<Attempt, StoreError> {
    let id = row.get_id("id", AttemptId::parse)?;
    let owner = format!("attempt {id}");
    let response_status: Option<i64> = row.get("response_status")?;
    let response_status = response_status
        .map(|status| {
            u16::try_from(status).map_err(|_| {
                StoreError::Corrupt(format!(
                    "response_status of {owner}: {status} is not a status"
                ))
            })
        })
        .transpose()?;
    Ok(Attempt {
        tenant: row.get_id("tenant", TenantId::parse)?,
        delivery_id: row.get_id("delivery_id", DeliveryId::parse)?,
        number: row.get_u32("number")?,
        started_at: row.get("started_at")?,
        duration_ms: row.get_u32("duration_ms")?,
        request_method: row.get("request_method")?,
        request_url: row.get("request_url")?,
        request_headers: json_column(row, "request_headers", &owner)?,
        response_status,
        response_headers: json_column(row, "response_headers", &owner)?,
        response_body: row.get("response_body")?,
        error: row.get("error")?,
        id,
    })
}
