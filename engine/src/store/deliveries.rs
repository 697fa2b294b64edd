//! Deliveries: created with their event, claimed by workers under a lease,
//! finished in batches, and replayed on request. Each write to a delivery's
//! history row brings its row in the queue in line (see `queue.rs`).
//!
//! A claimed delivery stays `pending` with its queue row's `lease_until` set:
//! if its worker dies, it falls due again when the lease ends. A claim writes
//! nothing else but clearing `sending` (a new claim is not yet admitted under
//! its endpoint's limits, see `admission.rs`, and the flag is nearly always
//! clear already), and no index holds `lease_until`, so on PostgreSQL the
//! claim rewrites the queue row on its page without touching the table's
//! indexes (see migration 3). The claim query steps over the deliveries in flight, a
//! few hundred rows.

use super::Store;
use super::attempts::insert_attempts;
use super::database::{Dialect, Row, SqlBuilder, Statement, Tx, Value, recurring_chunks};
use super::error::StoreError;
use super::health::{self, CircuitChange, EndpointCall};
use super::queue::{self, Lease, queue_changes, queue_columns, queue_entry_columns};
use crate::model::{
    Attempt, BatchId, Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, SubscriptionId,
    TenantId, UnixMillis, now_millis,
};
use std::collections::{HashMap, HashSet};

/// What a worker learned about one delivery: its new state, and the attempt
/// it made, if it made one (a plugin may drop or dead-letter without a request).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub tenant: TenantId,
    pub delivery_id: DeliveryId,
    pub status: DeliveryStatus,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    pub next_attempt_at: UnixMillis,
    pub last_error: Option<String>,
    pub attempt: Option<Attempt>,
    /// The batch the delivery belongs to from now on (see
    /// [`Delivery::batch_id`]); `None` for one sent alone or leaving its batch.
    pub batch_id: Option<BatchId>,
}

/// The columns of `deliveries` a [`Delivery`] is made of, as
/// [`insert_deliveries`] writes them.
macro_rules! delivery_columns {
    () => {
        "tenant, id, event_id, event_type, subscription_id, endpoint_id, status, attempts, \
         next_attempt_at, last_error, ordering_key, batched, batch_id, created_at, updated_at"
    };
}
pub(super) use delivery_columns;
const INSERTED_COLUMN_COUNT: usize = 15;

/// Due, unleased queued deliveries, longest overdue first, skipping any whose
/// ordering key has an earlier delivery still queued (that one goes first),
/// batched ones (they leave in batches, see `batches.rs`) and those to the
/// endpoints `$4` names (a JSON array, read by the query `$skipped`).
macro_rules! claimable {
    ($skipped:literal) => {
        concat!(
            "SELECT seq, lease_until FROM delivery_queue AS candidate
         WHERE next_attempt_at <= $1
           AND (lease_until IS NULL OR lease_until <= $1) AND NOT batched
           AND endpoint_id NOT IN (",
            $skipped,
            ")
           AND (ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM delivery_queue AS earlier
                WHERE earlier.tenant = candidate.tenant
                  AND earlier.subscription_id = candidate.subscription_id
                  AND earlier.ordering_key = candidate.ordering_key
                  AND earlier.seq < candidate.seq))
         ORDER BY next_attempt_at, seq
         LIMIT $2"
        )
    };
}

/// SQLite has one writer at a time, so the claimer picks the rows, leases
/// them and reads the leased deliveries in one transaction, and nobody comes
/// between. (Picking apart from leasing is what tells which rows were leased
/// before: SQLite's `RETURNING` gives only the values written.)
const CLAIMABLE_ON_SQLITE: &str = claimable!("SELECT value FROM json_each($4)");

/// On PostgreSQL several nodes claim at once: each locks the rows it picks and
/// skips those another has locked, so no row is claimed twice and no claimer
/// waits for another.
const CLAIM_ON_POSTGRES: &str = concat!(
    "WITH claimed AS (",
    claimable!("SELECT jsonb_array_elements_text($4::jsonb)"),
    " FOR UPDATE OF candidate SKIP LOCKED), \
     leased AS (UPDATE delivery_queue SET lease_until = $1 + $3, sending = FALSE \
         FROM claimed WHERE delivery_queue.seq = claimed.seq \
         RETURNING delivery_queue.seq, claimed.lease_until AS interrupted) \
     SELECT deliveries.seq, leased.interrupted, ",
    delivery_columns!(),
    " FROM deliveries JOIN leased ON deliveries.seq = leased.seq"
);

impl Store {
    /// Leases up to `limit` due deliveries, longest overdue first, for
    /// `lease_ms`: no other claimer gets them until the lease ends or they are
    /// finished. They come back in capture order. Deliveries to the endpoints
    /// in `skipped` (those with no room for more now) are left for later.
    ///
    /// Due means pending, `next_attempt_at <= now`, not leased. A delivery with
    /// an ordering key waits while an earlier delivery (by capture order) of
    /// the same subscription and key is pending, so a failing head delays only
    /// its own key. Batched deliveries are never claimed here: see
    /// [`Store::claim_new_batch`] and [`Store::claim_formed_batch`].
    pub async fn claim_due_deliveries(
        &self,
        now: UnixMillis,
        limit: u32,
        lease_ms: u32,
        skipped: &[EndpointId],
    ) -> Result<Vec<Delivery>, StoreError> {
        let skipped = serde_json::to_string(skipped)
            .map_err(|error| StoreError::Invalid(format!("endpoints to skip: {error}")))?;
        let claim = |sql| {
            Statement::new(sql)
                .bind(now)
                .bind(i64::from(limit))
                .bind(i64::from(lease_ms))
                .bind(skipped.as_str())
        };
        let doing = "claiming due deliveries";
        match self.backend.dialect() {
            Dialect::Postgres => {
                let rows = self
                    .backend
                    .write_returning(claim(CLAIM_ON_POSTGRES))
                    .await
                    .map_err(StoreError::database(doing))?;
                let leases_before = rows
                    .iter()
                    .map(|row| Ok((row.get::<i64>("seq")?, row.get("interrupted")?)))
                    .collect::<Result<_, StoreError>>()?;
                claimed_in_capture_order(&rows, &leases_before)
            }
            Dialect::Sqlite => {
                let mut tx = self
                    .backend
                    .begin()
                    .await
                    .map_err(StoreError::database(doing))?;
                let picked = tx
                    .fetch_all(claim(CLAIMABLE_ON_SQLITE))
                    .await
                    .map_err(StoreError::database(doing))?;
                let mut seqs = Vec::with_capacity(picked.len());
                let mut leases_before = HashMap::with_capacity(picked.len());
                for row in &picked {
                    let seq: i64 = row.get("seq")?;
                    seqs.push(seq);
                    leases_before.insert(seq, row.get("lease_until")?);
                }
                for chunk in recurring_chunks(&seqs) {
                    let lease = SqlBuilder::new(Dialect::Sqlite)
                        .sql("UPDATE delivery_queue SET lease_until = ")
                        .parameter(now + i64::from(lease_ms))
                        .sql(", sending = FALSE")
                        .sql(" WHERE seq IN (")
                        .list(chunk.iter().map(|&seq| Value::from(seq)))
                        .sql(")")
                        .build(true);
                    tx.execute(lease)
                        .await
                        .map_err(StoreError::database(doing))?;
                }
                let claimed = claimed_at(&mut tx, &seqs, &leases_before).await?;
                tx.commit().await.map_err(StoreError::database(doing))?;
                Ok(claimed)
            }
        }
    }

    /// Records what workers did, all in one transaction: inserts each attempt,
    /// sets each delivery's state and ends its lease. When one delivery is
    /// updated twice, the later update wins.
    pub async fn finish_deliveries(&self, results: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        self.record_outcomes(results, &[]).await.map(drop)
    }

    /// Like [`Store::finish_deliveries`], and counts the requests `calls`
    /// made in their endpoints' health, moving their circuits, in the same
    /// transaction. Returns the circuits' changes.
    pub async fn record_outcomes(
        &self,
        results: Vec<DeliveryUpdate>,
        calls: &[EndpointCall],
    ) -> Result<Vec<CircuitChange>, StoreError> {
        for update in &results {
            check_attempt_follows_its_delivery(update)?;
        }
        let mut latest: HashMap<(&TenantId, &DeliveryId), &DeliveryUpdate> = HashMap::new();
        for update in &results {
            latest.insert((&update.tenant, &update.delivery_id), update);
        }
        let mut updates: Vec<&DeliveryUpdate> = latest.into_values().collect();
        // One lock order for every batch: two batches that touch the same
        // deliveries (a worker whose lease ran out, and its successor) cannot
        // deadlock on PostgreSQL.
        updates.sort_by_key(|update| (&update.tenant, &update.delivery_id));
        let attempts: Vec<&Attempt> = results.iter().filter_map(|u| u.attempt.as_ref()).collect();

        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database("starting to finish deliveries"))?;
        let now = now_millis();
        let changes = update_deliveries(&mut tx, &updates, now).await?;
        queue::apply(&mut tx, &changes, Lease::End).await?;
        queue::release_held_unless_paused(&mut tx, &changes, now).await?;
        insert_attempts(&mut tx, &attempts).await?;
        let changes = health::record_calls(&mut tx, calls, now).await?;
        tx.commit()
            .await
            .map_err(StoreError::database("committing finished deliveries"))?;
        Ok(changes)
    }

    /// Sends delivery `id` again: pending, due `now`, unleased. Its
    /// attempt count is kept, so attempt numbers continue. A batched delivery
    /// leaves its batch and joins the next one its subscription forms: a new
    /// request, so a new `webhook-id`, since the old batch's other members are
    /// not necessarily sent again with it. A delivery in flight
    /// (pending and leased) is returned unchanged: its attempt is under way,
    /// and clearing its lease would let a second worker send it concurrently.
    pub async fn replay_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
        now: UnixMillis,
    ) -> Result<Option<Delivery>, StoreError> {
        const REPLAY: &str = concat!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, batch_id = NULL, \
             updated_at = $3 \
             WHERE tenant = $1 AND id = $2 RETURNING seq, ",
            delivery_columns!()
        );
        let doing = || format!("replaying delivery {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let statement = Statement::new(REPLAY)
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now);
        let rows = tx
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(doing()))?;
        let Some(row) = rows.first() else {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return Ok(None);
        };
        let replayed = delivery_from_row(row)?;
        let changes = queue_changes(&rows)?;
        let queued = queue::apply(&mut tx, &changes, Lease::KeepRunningAt(now)).await?;
        if queued == 0 {
            // In flight: the attempt under way decides what happens next.
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return self.get_delivery(tenant, id).await;
        }
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        Ok(Some(replayed))
    }

    /// Replays every failed delivery to `endpoint` created in `since..until`
    /// (`since` included), due `now`; returns how many. Batched ones leave
    /// their batches, as with [`Store::replay_delivery`].
    pub async fn replay_failed(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: UnixMillis,
        until: UnixMillis,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        const REPLAY_FAILED: &str = concat!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $5, batch_id = NULL, \
             updated_at = $5 \
             WHERE tenant = $1 AND endpoint_id = $2 AND status = 'failed' \
               AND created_at >= $3 AND created_at < $4 \
             RETURNING ",
            queue_columns!()
        );
        let doing = || format!("replaying the failed deliveries of endpoint {endpoint}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let statement = Statement::new(REPLAY_FAILED)
            .bind(tenant.as_str())
            .bind(endpoint.as_str())
            .bind(since)
            .bind(until)
            .bind(now);
        let rows = tx
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(doing()))?;
        // Failed deliveries are in no queue and no worker's hands.
        let queued = queue::apply(&mut tx, &queue_changes(&rows)?, Lease::End).await?;
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        Ok(queued)
    }
}

/// Inserts new deliveries (pending or already settled) in multi-row statements.
pub(super) async fn insert_deliveries(
    tx: &mut Tx,
    deliveries: &[&Delivery],
) -> Result<(), StoreError> {
    for chunk in recurring_chunks(deliveries) {
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
                    delivery.batched.into(),
                    delivery.batch_id.as_ref().map(BatchId::as_str).into(),
                    delivery.created_at.into(),
                    delivery.updated_at.into(),
                ]
            });
        let mut statement = SqlBuilder::new(tx.dialect());
        let doing = || format!("inserting {} deliveries", chunk.len());
        match tx.dialect() {
            // One statement queues the pending ones as well.
            Dialect::Postgres => {
                statement
                    .sql("WITH inserted AS (INSERT INTO deliveries (")
                    .sql(delivery_columns!())
                    .sql(") VALUES ")
                    .rows(rows)
                    .sql(concat!(
                        " RETURNING ",
                        queue_columns!(),
                        ") INSERT INTO delivery_queue (",
                        queue_entry_columns!(),
                        ") SELECT ",
                        queue_entry_columns!(),
                        " FROM inserted WHERE status = 'pending'"
                    ));
                tx.execute(statement.build(true))
                    .await
                    .map_err(StoreError::database(doing()))?;
            }
            // SQLite has no writing common table expressions.
            Dialect::Sqlite => {
                statement
                    .sql(concat!(
                        "INSERT INTO deliveries (",
                        delivery_columns!(),
                        ") VALUES "
                    ))
                    .rows(rows)
                    .sql(concat!(" RETURNING ", queue_columns!()));
                let inserted = tx
                    .fetch_all(statement.build(true))
                    .await
                    .map_err(StoreError::database(doing()))?;
                queue::enqueue(tx, &queue_changes(&inserted)?.pending, Lease::End).await?;
            }
        }
    }
    Ok(())
}

/// The deliveries at `seqs`, in capture order.
pub(super) async fn deliveries_at(tx: &mut Tx, seqs: &[i64]) -> Result<Vec<Delivery>, StoreError> {
    in_capture_order(&rows_at(tx, seqs).await?)
}

/// The deliveries at `seqs` just claimed, in capture order, each marked
/// interrupted where `leases_before` (by seq) says so (see
/// [`claimed_in_capture_order`]).
pub(super) async fn claimed_at(
    tx: &mut Tx,
    seqs: &[i64],
    leases_before: &HashMap<i64, Option<UnixMillis>>,
) -> Result<Vec<Delivery>, StoreError> {
    claimed_in_capture_order(&rows_at(tx, seqs).await?, leases_before)
}

/// The history rows at `seqs`.
async fn rows_at(tx: &mut Tx, seqs: &[i64]) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::with_capacity(seqs.len());
    for chunk in recurring_chunks(seqs) {
        let statement = SqlBuilder::new(tx.dialect())
            .sql(concat!(
                "SELECT seq, ",
                delivery_columns!(),
                " FROM deliveries WHERE seq IN ("
            ))
            .list(chunk.iter().map(|&seq| Value::from(seq)))
            .sql(")")
            .build(true);
        rows.extend(
            tx.fetch_all(statement)
                .await
                .map_err(StoreError::database(format!(
                    "reading {} claimed deliveries",
                    chunk.len()
                )))?,
        );
    }
    Ok(rows)
}

/// Deliveries read with their `seq`, sorted by it.
fn in_capture_order(rows: &[Row]) -> Result<Vec<Delivery>, StoreError> {
    claimed_in_capture_order(rows, &HashMap::new())
}

/// Like [`in_capture_order`], for deliveries just claimed: each is marked
/// [`Delivery::interrupted`] if `leases_before` (by seq) says it was leased
/// before, a lease that ran out with no outcome recorded.
fn claimed_in_capture_order(
    rows: &[Row],
    leases_before: &HashMap<i64, Option<UnixMillis>>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut deliveries = rows
        .iter()
        .map(|row| {
            let seq = row.get::<i64>("seq")?;
            let delivery = Delivery {
                interrupted: leases_before.get(&seq).copied().flatten(),
                ..delivery_from_row(row)?
            };
            Ok((seq, delivery))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    deliveries.sort_by_key(|(seq, _)| *seq);
    Ok(deliveries
        .into_iter()
        .map(|(_, delivery)| delivery)
        .collect())
}

/// Applies workers' updates to the history, many per statement, and says what
/// the queue must do; fails with `NotFound` (and the caller's transaction
/// rolls back) if a delivery does not exist.
async fn update_deliveries(
    tx: &mut Tx,
    updates: &[&DeliveryUpdate],
    now: UnixMillis,
) -> Result<queue::QueueChanges, StoreError> {
    let mut written = Vec::with_capacity(updates.len());
    for chunk in recurring_chunks(updates) {
        let rows = chunk.iter().map(|update| -> [Value; 7] {
            [
                update.tenant.as_str().into(),
                update.delivery_id.as_str().into(),
                update.status.as_str().into(),
                update.attempts.into(),
                update.next_attempt_at.into(),
                update.last_error.as_deref().into(),
                update.batch_id.as_ref().map(BatchId::as_str).into(),
            ]
        });
        // `VALUES` columns are named column1, column2, … on both backends.
        let statement = SqlBuilder::new(tx.dialect())
            .sql(
                "UPDATE deliveries SET status = changed.column3, attempts = changed.column4, \
                 next_attempt_at = changed.column5, last_error = changed.column6, \
                 batch_id = changed.column7, updated_at = ",
            )
            .parameter(now)
            .sql(" FROM (VALUES ")
            .rows(rows)
            .sql(concat!(
                ") AS changed \
                 WHERE deliveries.tenant = changed.column1 AND deliveries.id = changed.column2 \
                 RETURNING id, ",
                queue_columns!()
            ))
            .build(true);
        let rows = tx
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "finishing {} deliveries",
                chunk.len()
            )))?;
        if rows.len() < chunk.len() {
            let mut found = HashSet::new();
            for row in &rows {
                found.insert((row.get::<String>("tenant")?, row.get::<String>("id")?));
            }
            let missing = chunk.iter().find(|update| {
                !found.contains(&(
                    update.tenant.as_str().to_owned(),
                    update.delivery_id.as_str().to_owned(),
                ))
            });
            if let Some(missing) = missing {
                return Err(StoreError::not_found("delivery", &missing.delivery_id));
            }
        }
        written.extend(rows);
    }
    queue_changes(&written)
}

/// An attempt filed under another delivery would land in the wrong history.
fn check_attempt_follows_its_delivery(update: &DeliveryUpdate) -> Result<(), StoreError> {
    match &update.attempt {
        Some(attempt)
            if attempt.tenant != update.tenant || attempt.delivery_id != update.delivery_id =>
        {
            Err(StoreError::Invalid(format!(
                "attempt {} of tenant {} is for delivery {}, but it was reported with delivery {} of tenant {}",
                attempt.id, attempt.tenant, attempt.delivery_id, update.delivery_id, update.tenant
            )))
        }
        _ => Ok(()),
    }
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
        batched: row.get("batched")?,
        batch_id: row
            .get::<Option<String>>("batch_id")?
            .map(|text| {
                BatchId::parse(&text)
                    .map_err(|error| StoreError::Corrupt(format!("column batch_id: {error}")))
            })
            .transpose()?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        interrupted: None,
        id,
    })
}
