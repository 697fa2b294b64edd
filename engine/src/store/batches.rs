//! The batch lane of the delivery queue. Deliveries of batching subscriptions
//! (`batched`) are never claimed one by one: a worker asks which of them are
//! due ([`Store::due_batches`]), then claims a whole batch at a time.
//!
//! A batch is formed when it is first claimed ([`Store::claim_new_batch`]): its
//! members get its id in `batch_id` (in the queue and in the history), and
//! keep it through the batch's retries,
//! so a retried batch is claimed again as the same members
//! ([`Store::claim_formed_batch`]) and deliveries captured meanwhile form the
//! next batch instead of joining it. A batch is claimed whole or not at all.
//!
//! Readiness (full, or its oldest member waited long enough) is decided on the
//! rows a claimer actually locked, inside the claiming transaction: two
//! PostgreSQL nodes racing for one subscription cannot both send a part of one
//! batch, nor send a batch early because the other took the rest.

use super::Store;
use super::database::{Dialect, SqlBuilder, Statement, Tx, Value};
use super::deliveries::{claimed_at, deliveries_at};
use super::error::StoreError;
use crate::model::{BatchId, Batching, Delivery, EndpointId, SubscriptionId, TenantId, UnixMillis};
use std::collections::HashMap;

/// Due deliveries of batching subscriptions, one group per batch to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBatch {
    pub tenant: TenantId,
    pub subscription_id: SubscriptionId,
    /// A batch goes to one endpoint; a subscription moved to another endpoint
    /// has the deliveries captured before the move in a group of their own.
    pub endpoint_id: EndpointId,
    /// `Some`: a batch formed earlier, due again (a retry, or a lease that ran
    /// out). `None`: deliveries waiting to form the subscription's next batch.
    pub batch_id: Option<BatchId>,
    /// How many of the group's deliveries are due.
    pub due: u32,
    /// When the longest-due of them fell due.
    pub oldest_due_at: UnixMillis,
}

/// The deliveries of one subscription and endpoint that await a batch, due
/// and unleased, in capture order. Its conditions repeat those of the
/// `delivery_queue_awaiting_batch` index, so both backends use it.
macro_rules! candidates_awaiting_batch {
    () => {
        "SELECT seq, next_attempt_at FROM delivery_queue \
         WHERE tenant = $1 AND subscription_id = $2 \
           AND batched AND batch_id IS NULL \
           AND endpoint_id = $3 AND next_attempt_at <= $4 \
           AND (lease_until IS NULL OR lease_until <= $4) \
         ORDER BY seq"
    };
}

/// The members of one batch that are due and unleased.
macro_rules! due_members {
    () => {
        "SELECT seq, lease_until FROM delivery_queue \
         WHERE tenant = $1 AND batch_id = $2 \
           AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
         ORDER BY seq"
    };
}

impl Store {
    /// The groups of due, unleased, queued batched deliveries, longest due
    /// first, at most `limit` of them.
    pub async fn due_batches(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<DueBatch>, StoreError> {
        const DUE: &str = "SELECT tenant, subscription_id, endpoint_id, batch_id, \
                COUNT(*) AS due, MIN(next_attempt_at) AS oldest_due_at \
             FROM delivery_queue \
             WHERE batched AND next_attempt_at <= $1 \
               AND (lease_until IS NULL OR lease_until <= $1) \
             GROUP BY tenant, subscription_id, endpoint_id, batch_id \
             ORDER BY oldest_due_at \
             LIMIT $2";
        let statement = Statement::new(DUE).bind(now).bind(i64::from(limit));
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database("finding due batches"))?;
        rows.iter()
            .map(|row| {
                Ok(DueBatch {
                    tenant: row.get_id("tenant", TenantId::parse)?,
                    subscription_id: row.get_id("subscription_id", SubscriptionId::parse)?,
                    endpoint_id: row.get_id("endpoint_id", EndpointId::parse)?,
                    batch_id: row
                        .get::<Option<String>>("batch_id")?
                        .map(|text| {
                            BatchId::parse(&text).map_err(|error| {
                                StoreError::Corrupt(format!("column batch_id: {error}"))
                            })
                        })
                        .transpose()?,
                    due: row.get_u32("due")?,
                    oldest_due_at: row.get("oldest_due_at")?,
                })
            })
            .collect()
    }

    /// Forms batch `id` from the deliveries of `group` that are in no batch
    /// yet: the first `limits.max_events` due ones in capture order, if there
    /// are that many or the longest-due of them fell due `limits.max_wait_ms`
    /// before `now`. Leases them for `lease_ms` and returns them in capture
    /// order; returns nothing, and changes nothing, if the batch is not ready.
    pub async fn claim_new_batch(
        &self,
        group: &DueBatch,
        limits: Batching,
        id: &BatchId,
        now: UnixMillis,
        lease_ms: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let doing = || {
            format!(
                "forming batch {id} of subscription {}",
                group.subscription_id
            )
        };
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let candidates = Statement::new(match tx.dialect() {
            Dialect::Sqlite => concat!(candidates_awaiting_batch!(), " LIMIT $5"),
            Dialect::Postgres => concat!(
                candidates_awaiting_batch!(),
                " LIMIT $5 FOR UPDATE SKIP LOCKED"
            ),
        })
        .bind(group.tenant.as_str())
        .bind(group.subscription_id.as_str())
        .bind(group.endpoint_id.as_str())
        .bind(now)
        .bind(limits.max_events);
        let rows = tx
            .fetch_all(candidates)
            .await
            .map_err(StoreError::database(doing()))?;
        let mut seqs = Vec::with_capacity(rows.len());
        let mut oldest_due_at = UnixMillis::MAX;
        for row in &rows {
            seqs.push(row.get::<i64>("seq")?);
            oldest_due_at = oldest_due_at.min(row.get("next_attempt_at")?);
        }
        let full = seqs.len() >= limits.max_events as usize;
        let waited = oldest_due_at.saturating_add(i64::from(limits.max_wait_ms)) <= now;
        if seqs.is_empty() || !(full || waited) {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return Ok(Vec::new());
        }
        lease(&mut tx, &seqs, Some(id), now, lease_ms).await?;
        let claimed = deliveries_at(&mut tx, &seqs).await?;
        tx.commit().await.map_err(StoreError::database(doing()))?;
        Ok(claimed)
    }

    /// Claims batch `id` again, every queued member of it, if all of them are
    /// due and unleased (none is in another worker's hands): leases them for
    /// `lease_ms` and returns them in capture order. Returns nothing, and
    /// changes nothing, otherwise.
    pub async fn claim_formed_batch(
        &self,
        tenant: &TenantId,
        id: &BatchId,
        now: UnixMillis,
        lease_ms: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        const MEMBERS: &str = "SELECT COUNT(*) AS members FROM delivery_queue \
             WHERE tenant = $1 AND batch_id = $2";
        let doing = || format!("claiming batch {id} again");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let due = Statement::new(match tx.dialect() {
            Dialect::Sqlite => due_members!(),
            Dialect::Postgres => concat!(due_members!(), " FOR UPDATE SKIP LOCKED"),
        })
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(now);
        let rows = tx
            .fetch_all(due)
            .await
            .map_err(StoreError::database(doing()))?;
        let mut seqs = Vec::with_capacity(rows.len());
        let mut leases_before = HashMap::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.get("seq")?;
            seqs.push(seq);
            leases_before.insert(seq, row.get("lease_until")?);
        }
        let members = tx
            .fetch_optional(
                Statement::new(MEMBERS)
                    .bind(tenant.as_str())
                    .bind(id.as_str()),
            )
            .await
            .map_err(StoreError::database(doing()))?
            .map(|row| row.get::<i64>("members"))
            .transpose()?
            .unwrap_or_default();
        // Fewer locked than pending: another worker holds (or is taking) the
        // rest. Sending a part under the batch's id would be a different
        // request with the same webhook-id.
        if seqs.is_empty() || i64::try_from(seqs.len()).ok() != Some(members) {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return Ok(Vec::new());
        }
        lease(&mut tx, &seqs, None, now, lease_ms).await?;
        // A batch whose last claim ran out unfinished: its request may have
        // reached the receiver.
        let claimed = claimed_at(&mut tx, &seqs, &leases_before).await?;
        tx.commit().await.map_err(StoreError::database(doing()))?;
        Ok(claimed)
    }
}

/// Leases the deliveries at `seqs` until `now + lease_ms`, naming their
/// batch if `batch` is given. They fall due when the lease ends (if their
/// worker dies), and their history says so.
async fn lease(
    tx: &mut Tx,
    seqs: &[i64],
    batch: Option<&BatchId>,
    now: UnixMillis,
    lease_ms: u32,
) -> Result<(), StoreError> {
    let lease_until = now.saturating_add(i64::from(lease_ms));
    for (table, leases) in [("delivery_queue", true), ("deliveries", false)] {
        let mut statement = SqlBuilder::new(tx.dialect());
        statement
            .sql("UPDATE ")
            .sql(table)
            .sql(" SET next_attempt_at = ")
            .parameter(lease_until);
        if leases {
            statement
                .sql(", lease_until = ")
                .parameter(lease_until)
                // A new claim, not admitted under its endpoint's limits yet.
                .sql(", sending = FALSE");
        }
        if let Some(batch) = batch {
            statement.sql(", batch_id = ").parameter(batch.as_str());
        }
        let statement = statement
            .sql(" WHERE seq IN (")
            .list(seqs.iter().map(|&seq| Value::from(seq)))
            .sql(")")
            .build(false);
        tx.execute(statement)
            .await
            .map_err(StoreError::database(format!(
                "leasing a batch of {} deliveries",
                seqs.len()
            )))?;
    }
    Ok(())
}
