//! History retention: a tenant's events, deliveries, attempts and audit
//! entries older than its retention are deleted; pending deliveries and
//! their events never are.
//!
//! Pruning walks each tenant's history from the oldest, a chunk of rows per
//! short transaction and a pause between chunks, so that capture never waits
//! long behind it (on SQLite a capture waits for the one writer a chunk
//! holds). Each chunk resumes after the last row of the one before, along an
//! index that ends with the row's key, so rows kept (a delivery still
//! pending) are read once per round, not once per chunk. One node of a
//! cluster prunes at a time. SQLite reuses the pages deleted rows leave, so
//! under steady load with retention its file stops growing.

use super::Store;
use super::database::{Dialect, Row, SqlBuilder, Statement, Tx, Value, recurring_chunks};
use super::error::StoreError;
use crate::model::{AuditId, TenantId, UnixMillis};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long history is kept unless the server or a tenant says otherwise:
/// the product sheet's 90 days.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// The longest retention a tenant may ask for (ten years); the shortest is a day.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

const DAY_MS: i64 = 86_400_000;

/// Rows deleted per transaction. A chunk of 250 deliveries, with their
/// attempts and index entries, holds SQLite's writer for about 6 ms.
const ROWS_PER_CHUNK: usize = 250;

/// After each chunk, pruning rests this many times as long as the chunk
/// held its transaction (and at least [`LEAST_REST`]), so that it holds the
/// database at most a quarter of the time. Waiting for the write lock is not
/// counted: it holds nothing, and counted it made pruning slower the busier
/// the database (on SQLite at 1,000 publishes/s, 900 rows/s, less than the
/// history grew). Without the rest, on SQLite, pruning a
/// million rows took two thirds of the writer's time for 20 s, and a steady
/// 1,000 publishes a second fell so far behind that publishers piled up a
/// thousand connections.
const REST_PER_WORK: u32 = 3;
const LEAST_REST: Duration = Duration::from_millis(5);

/// The advisory lock that makes one node at a time prune one schema.
const RETENTION_LOCK: &str = "hashtext('weft retention of ' || current_schema())";

/// Which history a round of pruning removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune<'a> {
    /// What each tenant's retention says: its own number of days, or else
    /// `default_days` (`None`: kept forever).
    ByRetention { default_days: Option<u32> },
    /// Whatever was captured (or audited) before `before`, of `tenant` or
    /// of every tenant, whatever their retention.
    Before {
        before: UnixMillis,
        tenant: Option<&'a TenantId>,
    },
}

/// What a round of pruning deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub audit_entries: u64,
}

impl Pruned {
    fn count_in_metrics(&self) {
        let counts = [
            ("events", self.events),
            ("deliveries", self.deliveries),
            ("attempts", self.attempts),
            ("audit_entries", self.audit_entries),
        ];
        for (kind, count) in counts {
            crate::metrics::metrics()
                .history_pruned
                .get_or_create(&crate::metrics::PrunedLabels { kind })
                .inc_by(count);
        }
    }

    fn add(&mut self, other: Pruned) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.audit_entries += other.audit_entries;
    }
}

impl Store {
    /// The number of days `tenant` keeps its history, if it chose one (else
    /// the server's default applies).
    pub async fn history_retention(&self, tenant: &TenantId) -> Result<Option<u32>, StoreError> {
        let row = self
            .backend
            .fetch_optional(
                Statement::new(
                    "SELECT history_retention_days FROM tenant_settings WHERE tenant = $1",
                )
                .bind(tenant.as_str()),
            )
            .await
            .map_err(StoreError::database(format!(
                "reading the retention of tenant {tenant}"
            )))?;
        match row {
            Some(row) => days(row.get("history_retention_days")?),
            None => Ok(None),
        }
    }

    /// Sets how many days `tenant` keeps its history (`None`: the server's
    /// default), with this store's audit entry.
    pub async fn set_history_retention(
        &self,
        tenant: &TenantId,
        retention_days: Option<u32>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let statement = Statement::new(
            "INSERT INTO tenant_settings (tenant, history_retention_days, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (tenant) DO UPDATE SET \
             history_retention_days = excluded.history_retention_days, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(retention_days.map(i64::from))
        .bind(now);
        self.write_change(statement)
            .await
            .map_err(StoreError::database(format!(
                "setting the retention of tenant {tenant}"
            )))?;
        Ok(())
    }

    /// Deletes the history `prune` names, as of `now`, a chunk at a time.
    /// `None` if another node of the database is pruning it already.
    pub async fn prune_history(
        &self,
        prune: Prune<'_>,
        now: UnixMillis,
    ) -> Result<Option<Pruned>, StoreError> {
        let doing = "pruning the history";
        let locked = match self.backend.dialect() {
            Dialect::Sqlite => None,
            Dialect::Postgres => match self
                .backend
                .try_advisory_lock(RETENTION_LOCK)
                .await
                .map_err(StoreError::database(doing))?
            {
                Some(locked) => Some(locked),
                None => return Ok(None),
            },
        };
        let pruned = self.prune_unlocked(prune, now).await;
        if let Some(locked) = locked {
            locked.unlock().await.map_err(StoreError::database(doing))?;
        }
        pruned.map(Some)
    }

    async fn prune_unlocked(
        &self,
        prune: Prune<'_>,
        now: UnixMillis,
    ) -> Result<Pruned, StoreError> {
        let cutoffs: Vec<(TenantId, UnixMillis)> = match prune {
            Prune::Before {
                before,
                tenant: Some(tenant),
            } => vec![(tenant.clone(), before)],
            Prune::Before {
                before,
                tenant: None,
            } => self
                .tenants_with_history()
                .await?
                .into_iter()
                .map(|tenant| (tenant, before))
                .collect(),
            Prune::ByRetention { default_days } => {
                let chosen = self.retention_settings().await?;
                self.tenants_with_history()
                    .await?
                    .into_iter()
                    .filter_map(|tenant| {
                        let days = chosen.get(&tenant).copied().unwrap_or(default_days)?;
                        Some((tenant, now.saturating_sub(i64::from(days) * DAY_MS)))
                    })
                    .collect()
            }
        };
        let mut pruned = Pruned::default();
        for (tenant, before) in cutoffs {
            let of_tenant = self.prune_tenant(&tenant, before).await?;
            of_tenant.count_in_metrics();
            pruned.add(of_tenant);
        }
        Ok(pruned)
    }

    /// Every tenant with events or audit entries, each found by one index
    /// probe (a walk from one tenant's name to the next), not a scan.
    async fn tenants_with_history(&self) -> Result<BTreeSet<TenantId>, StoreError> {
        let mut tenants = BTreeSet::new();
        for table in ["events", "audit_log"] {
            // The table name is one of ours, not input.
            let walk = Statement::new(format!(
                "WITH RECURSIVE tenants (tenant) AS ( \
                   SELECT (SELECT tenant FROM {table} ORDER BY tenant LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT t.tenant FROM {table} t WHERE t.tenant > tenants.tenant \
                           ORDER BY t.tenant LIMIT 1) \
                   FROM tenants WHERE tenants.tenant IS NOT NULL \
                 ) SELECT tenant FROM tenants WHERE tenant IS NOT NULL"
            ));
            let rows = self
                .backend
                .fetch_all(walk)
                .await
                .map_err(StoreError::database(format!(
                    "listing the tenants of {table}"
                )))?;
            for row in rows {
                tenants.insert(row.get_id("tenant", TenantId::parse)?);
            }
        }
        Ok(tenants)
    }

    /// The retention each tenant chose (`None`: the server's default).
    async fn retention_settings(&self) -> Result<HashMap<TenantId, Option<u32>>, StoreError> {
        let rows = self
            .backend
            .fetch_all(Statement::new(
                "SELECT tenant, history_retention_days FROM tenant_settings",
            ))
            .await
            .map_err(StoreError::database("reading the tenants' retention"))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.get_id("tenant", TenantId::parse)?,
                    days(row.get("history_retention_days")?)?,
                ))
            })
            .collect()
    }

    /// Deletes `tenant`'s history from before `before`: deliveries that are
    /// not pending and their attempts, then events left without deliveries,
    /// then audit entries.
    async fn prune_tenant(
        &self,
        tenant: &TenantId,
        before: UnixMillis,
    ) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let doing = || format!("pruning the history of tenant {tenant}");
        // Deliveries, oldest first, resuming after (created_at, seq).
        let mut after = (UnixMillis::MIN, i64::MIN);
        loop {
            // On PostgreSQL the rows are locked, so that a replay making one
            // pending meanwhile either waits for this chunk or is seen.
            let lock = match self.backend.dialect() {
                Dialect::Postgres => " FOR UPDATE",
                Dialect::Sqlite => "",
            };
            let old = Statement::new(format!(
                "SELECT seq, id, created_at FROM deliveries \
                 WHERE tenant = $1 AND created_at >= $2 AND created_at < $3 \
                 AND (created_at > $2 OR seq > $4) AND status <> 'pending' \
                 ORDER BY created_at, seq LIMIT {ROWS_PER_CHUNK}{lock}"
            ))
            .bind(tenant.as_str())
            .bind(after.0)
            .bind(before)
            .bind(after.1);
            let Some((mut tx, rows, began)) = self.next_chunk(old, &doing()).await? else {
                break;
            };
            let last = &rows[rows.len() - 1];
            after = (last.get("created_at")?, last.get("seq")?);
            let mut ids = Vec::with_capacity(rows.len());
            let mut seqs = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(Value::from(row.get::<String>("id")?));
                seqs.push(Value::from(row.get::<i64>("seq")?));
            }
            pruned.attempts +=
                delete_in(&mut tx, "attempts", Some(tenant), "delivery_id", &ids).await?;
            pruned.deliveries += delete_in(&mut tx, "deliveries", None, "seq", &seqs).await?;
            tx.commit().await.map_err(StoreError::database(doing()))?;
            rest_after(began).await;
            if rows.len() < ROWS_PER_CHUNK {
                break;
            }
        }
        // Events no delivery needs any more, resuming after (received_at, id).
        let mut after = (UnixMillis::MIN, String::new());
        loop {
            let unneeded = Statement::new(format!(
                "SELECT id, received_at FROM events e \
                 WHERE tenant = $1 AND received_at >= $2 AND received_at < $3 \
                 AND (received_at > $2 OR id > $4) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d \
                                 WHERE d.tenant = e.tenant AND d.event_id = e.id) \
                 ORDER BY received_at, id LIMIT {ROWS_PER_CHUNK}"
            ))
            .bind(tenant.as_str())
            .bind(after.0)
            .bind(before)
            .bind(after.1.as_str());
            let Some((mut tx, rows, began)) = self.next_chunk(unneeded, &doing()).await? else {
                break;
            };
            let last = &rows[rows.len() - 1];
            after = (last.get("received_at")?, last.get("id")?);
            let ids = rows
                .iter()
                .map(|row| row.get::<String>("id").map(Value::from))
                .collect::<Result<Vec<_>, _>>()?;
            pruned.events += delete_in(&mut tx, "events", Some(tenant), "id", &ids).await?;
            tx.commit().await.map_err(StoreError::database(doing()))?;
            rest_after(began).await;
            if rows.len() < ROWS_PER_CHUNK {
                break;
            }
        }
        // Audit entries: their ids sort by the time they were recorded.
        let first_kept = AuditId::first_at(before);
        loop {
            let started = Instant::now();
            let old = Statement::new(format!(
                "DELETE FROM audit_log WHERE tenant = $1 AND id IN ( \
                   SELECT id FROM audit_log WHERE tenant = $1 AND id < $2 \
                   ORDER BY id LIMIT {ROWS_PER_CHUNK})"
            ))
            .bind(tenant.as_str())
            .bind(first_kept.as_str());
            let deleted = self
                .backend
                .write(old)
                .await
                .map_err(StoreError::database(doing()))?;
            pruned.audit_entries += deleted;
            if deleted < ROWS_PER_CHUNK as u64 {
                break;
            }
            rest_after(started).await;
        }
        Ok(pruned)
    }
}

impl Store {
    /// Begins a transaction and reads the next chunk of rows to prune with
    /// `statement`, answering also when the transaction began (its write
    /// lock taken); `None`, the transaction rolled back, once there are none.
    async fn next_chunk(
        &self,
        statement: Statement,
        doing: &str,
    ) -> Result<Option<(Tx, Vec<Row>, Instant)>, StoreError> {
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing))?;
        let began = Instant::now();
        let rows = tx
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(doing))?;
        if rows.is_empty() {
            tx.rollback().await.map_err(StoreError::database(doing))?;
            return Ok(None);
        }
        Ok(Some((tx, rows, began)))
    }
}

/// Deletes the rows of `table` (of `tenant`, if given) whose `column` is one
/// of `values`; returns how many.
async fn delete_in(
    tx: &mut Tx,
    table: &str,
    tenant: Option<&TenantId>,
    column: &str,
    values: &[Value],
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for chunk in recurring_chunks(values) {
        let mut statement = SqlBuilder::new(tx.dialect());
        statement.sql(&format!("DELETE FROM {table} WHERE "));
        if let Some(tenant) = tenant {
            statement
                .sql("tenant = ")
                .parameter(tenant.as_str())
                .sql(" AND ");
        }
        statement
            .sql(column)
            .sql(" IN (")
            .list(chunk.iter().cloned())
            .sql(")");
        deleted += tx
            .execute(statement.build(true))
            .await
            .map_err(StoreError::database(format!("pruning {table}")))?;
    }
    Ok(deleted)
}

/// Rests after a chunk of pruning that held the database since `began`
/// (see [`REST_PER_WORK`]).
async fn rest_after(began: Instant) {
    tokio::time::sleep(LEAST_REST.max(began.elapsed() * REST_PER_WORK)).await;
}

/// A stored number of days.
fn days(stored: Option<i64>) -> Result<Option<u32>, StoreError> {
    stored
        .map(|days| {
            u32::try_from(days).map_err(|_| {
                StoreError::Corrupt(format!("history_retention_days: {days} is out of range"))
            })
        })
        .transpose()
}
