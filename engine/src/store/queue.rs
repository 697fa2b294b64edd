//! The delivery queue: one row in `delivery_queue` per pending delivery, with
//! what claims look at (when it falls due, its lease, its ordering key and
//! batch), beside its row in the delivery history (`deliveries`).
//!
//! The two are written in the same transaction: a delivery is queued when it
//! becomes pending (captured, retried, replayed) and leaves the queue when it
//! is settled. The history is then rewritten only where no index looks, which
//! on PostgreSQL lets finishing a delivery update its row in place (see
//! migration 4).

use super::Store;
use super::database::{Row, SqlBuilder, Statement, Tx, Value, recurring_chunks};
use super::error::StoreError;
use crate::model::{DeliveryStatus, ON_HOLD, SubscriptionId, TenantId, UnixMillis};

impl Store {
    /// The pending deliveries of every tenant, and since when the
    /// longest-due unleased one has been due at `now` (if one is).
    pub async fn queue_stats(
        &self,
        now: UnixMillis,
    ) -> Result<(u64, Option<UnixMillis>), StoreError> {
        let statement = Statement::new(
            "SELECT COUNT(*) AS depth, \
             MIN(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                 THEN next_attempt_at END) AS oldest_due \
             FROM delivery_queue",
        )
        .bind(now);
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database("measuring the delivery queue"))?;
        let Some(row) = row else {
            return Ok((0, None));
        };
        let depth: i64 = row.get("depth")?;
        Ok((
            u64::try_from(depth).unwrap_or_default(),
            row.get("oldest_due")?,
        ))
    }
}

/// The columns of a `delivery_queue` row, which its `deliveries` row has too.
macro_rules! queue_entry_columns {
    () => {
        "seq, tenant, subscription_id, endpoint_id, ordering_key, batched, batch_id, \
         next_attempt_at"
    };
}
pub(super) use queue_entry_columns;

/// The columns of a `deliveries` row that say what the queue must do with it
/// (see [`queue_changes`]); `RETURNING` them after writing the row.
macro_rules! queue_columns {
    () => {
        concat!(queue_entry_columns!(), ", status")
    };
}
pub(super) use queue_columns;

/// A pending delivery's row in the queue, read from its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueueEntry {
    seq: i64,
    tenant: String,
    subscription_id: String,
    endpoint_id: String,
    ordering_key: Option<String>,
    batched: bool,
    batch_id: Option<String>,
    next_attempt_at: UnixMillis,
}

const QUEUE_ENTRY_COLUMN_COUNT: usize = 8;

/// What the queue must do after history rows were written: queue (or
/// requeue) the pending deliveries, remove the settled ones.
#[derive(Debug, Default)]
pub(super) struct QueueChanges {
    pub(super) pending: Vec<QueueEntry>,
    pub(super) settled: Vec<i64>,
}

/// Sorts freshly written history rows, read with [`queue_columns`], by what
/// the queue must do with them.
pub(super) fn queue_changes(rows: &[Row]) -> Result<QueueChanges, StoreError> {
    let mut changes = QueueChanges::default();
    for row in rows {
        let seq: i64 = row.get("seq")?;
        let status: String = row.get("status")?;
        if status != DeliveryStatus::Pending.as_str() {
            changes.settled.push(seq);
            continue;
        }
        changes.pending.push(QueueEntry {
            seq,
            tenant: row.get("tenant")?,
            subscription_id: row.get("subscription_id")?,
            endpoint_id: row.get("endpoint_id")?,
            ordering_key: row.get("ordering_key")?,
            batched: row.get("batched")?,
            batch_id: row.get("batch_id")?,
            next_attempt_at: row.get("next_attempt_at")?,
        });
    }
    Ok(changes)
}

/// What queuing does to a delivery that is already queued and leased.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lease {
    /// End the lease: its holder reports that the attempt is over.
    End,
    /// Leave it, and the row, alone if the lease still runs at this time:
    /// the attempt is under way, and a second worker must not start another.
    KeepRunningAt(UnixMillis),
}

/// Queues `entries`, or requeues those already queued: due at their
/// `next_attempt_at`, unleased, in their batch. Returns how many rows were
/// written; fewer than `entries` only where [`Lease::KeepRunningAt`] kept one.
pub(super) async fn enqueue(
    tx: &mut Tx,
    entries: &[QueueEntry],
    lease: Lease,
) -> Result<u64, StoreError> {
    let mut written = 0;
    for chunk in recurring_chunks(entries) {
        let rows = chunk
            .iter()
            .map(|entry| -> [Value; QUEUE_ENTRY_COLUMN_COUNT] {
                [
                    entry.seq.into(),
                    entry.tenant.as_str().into(),
                    entry.subscription_id.as_str().into(),
                    entry.endpoint_id.as_str().into(),
                    entry.ordering_key.as_deref().into(),
                    entry.batched.into(),
                    entry.batch_id.as_deref().into(),
                    entry.next_attempt_at.into(),
                ]
            });
        let mut statement = SqlBuilder::new(tx.dialect());
        statement
            .sql(concat!(
                "INSERT INTO delivery_queue (",
                queue_entry_columns!(),
                ") VALUES "
            ))
            .rows(rows)
            .sql(
                " ON CONFLICT (seq) DO UPDATE SET next_attempt_at = excluded.next_attempt_at, \
                 batch_id = excluded.batch_id, lease_until = NULL, sending = FALSE",
            );
        if let Lease::KeepRunningAt(now) = lease {
            statement
                .sql(
                    " WHERE delivery_queue.lease_until IS NULL \
                     OR delivery_queue.lease_until <= ",
                )
                .parameter(now);
        }
        written += tx
            .execute(statement.build(true))
            .await
            .map_err(StoreError::database(format!(
                "queuing {} deliveries",
                chunk.len()
            )))?;
    }
    Ok(written)
}

/// Removes the deliveries at `seqs` from the queue: they are settled.
pub(super) async fn dequeue(tx: &mut Tx, seqs: &[i64]) -> Result<(), StoreError> {
    for chunk in recurring_chunks(seqs) {
        let statement = SqlBuilder::new(tx.dialect())
            .sql("DELETE FROM delivery_queue WHERE seq IN (")
            .list(chunk.iter().map(|&seq| Value::from(seq)))
            .sql(")")
            .build(true);
        tx.execute(statement)
            .await
            .map_err(StoreError::database(format!(
                "removing {} settled deliveries from the queue",
                chunk.len()
            )))?;
    }
    Ok(())
}

/// Applies `changes`: see [`enqueue`] and [`dequeue`].
pub(super) async fn apply(
    tx: &mut Tx,
    changes: &QueueChanges,
    lease: Lease,
) -> Result<u64, StoreError> {
    dequeue(tx, &changes.settled).await?;
    enqueue(tx, &changes.pending, lease).await
}

/// Makes every pending delivery of subscription `id` of `tenant` that is not
/// in flight due at `due` (those due at `only_due_at` or later, if given),
/// saying why in their history (`note`, or what it said before): holds them,
/// or releases held ones. A delivery in flight (leased at `now`) is left to
/// its worker, which settles it, and whose locks this does not wait on.
pub(super) async fn reschedule_pending_of_subscription(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &SubscriptionId,
    only_due_at: Option<UnixMillis>,
    due: UnixMillis,
    note: Option<&str>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let doing = || format!("rescheduling the pending deliveries of subscription {id}");
    let from = only_due_at.unwrap_or(UnixMillis::MIN);
    // $1 tenant, $2 subscription, $3 due from, $4 due now, $5 lease time.
    const WAITING: &str = "tenant = $1 AND subscription_id = $2 AND next_attempt_at >= $3 \
                           AND (lease_until IS NULL OR lease_until <= $5)";
    let history = Statement::new(format!(
        "UPDATE deliveries SET next_attempt_at = $4, last_error = COALESCE($6, last_error) \
         WHERE seq IN (SELECT seq FROM delivery_queue WHERE {WAITING})"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(from)
    .bind(due)
    .bind(now)
    .bind(note);
    tx.execute(history)
        .await
        .map_err(StoreError::database(doing()))?;
    let queued = Statement::new(format!(
        "UPDATE delivery_queue SET next_attempt_at = $4 WHERE {WAITING}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(from)
    .bind(due)
    .bind(now);
    tx.execute(queued)
        .await
        .map_err(StoreError::database(doing()))?;
    Ok(())
}

/// Releases, due `now`, the deliveries of `changes` just held whose
/// subscription is not paused (any more): a worker that read the pause just
/// before an administrator resumed the subscription must not hold them after
/// the resume released the others. Run in the transaction that held them.
pub(super) async fn release_held_unless_paused(
    tx: &mut Tx,
    changes: &QueueChanges,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let held: Vec<i64> = changes
        .pending
        .iter()
        .filter(|entry| entry.next_attempt_at >= ON_HOLD)
        .map(|entry| entry.seq)
        .collect();
    for chunk in recurring_chunks(&held) {
        for table in ["delivery_queue", "deliveries"] {
            let statement = SqlBuilder::new(tx.dialect())
                .sql("UPDATE ")
                .sql(table)
                .sql(" SET next_attempt_at = ")
                .parameter(now)
                .sql(
                    " WHERE NOT EXISTS (SELECT 1 FROM subscriptions \
                     WHERE subscriptions.tenant = ",
                )
                .sql(table)
                .sql(".tenant AND subscriptions.id = ")
                .sql(table)
                .sql(".subscription_id AND subscriptions.paused_at IS NOT NULL) AND seq IN (")
                .list(chunk.iter().map(|&seq| Value::from(seq)))
                .sql(")")
                .build(true);
            tx.execute(statement)
                .await
                .map_err(StoreError::database(format!(
                    "releasing {} held deliveries of resumed subscriptions",
                    chunk.len()
                )))?;
        }
    }
    Ok(())
}

/// Drops every pending delivery of subscription `id` of `tenant`, giving
/// `reason` as their last error.
pub(super) async fn drop_pending_of_subscription(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &SubscriptionId,
    reason: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let doing = || format!("dropping the pending deliveries of subscription {id}");
    let settle = Statement::new(
        "UPDATE deliveries SET status = 'dropped', last_error = $3, updated_at = $4 \
         WHERE seq IN (SELECT seq FROM delivery_queue WHERE tenant = $1 AND subscription_id = $2)",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(reason)
    .bind(now);
    tx.execute(settle)
        .await
        .map_err(StoreError::database(doing()))?;
    let dequeue =
        Statement::new("DELETE FROM delivery_queue WHERE tenant = $1 AND subscription_id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str());
    tx.execute(dequeue)
        .await
        .map_err(StoreError::database(doing()))?;
    Ok(())
}
