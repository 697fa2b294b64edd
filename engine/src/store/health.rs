//! Endpoint health in the database: each endpoint's circuit
//! (`endpoint_circuits`, see [`crate::health::circuit`]) and its per-minute
//! tallies of requests (`endpoint_stats`), both written in the transaction
//! that records the requests' outcomes, so every node of a cluster sees one
//! circuit; the probes that half-open circuits; parking and unparking the
//! deliveries that wait for a circuit; disabling an endpoint (its pending
//! deliveries kept as `skipped`) and recovering what it skipped.

use super::Store;
use super::audit;
use super::database::{Dialect, Row, SqlBuilder, Statement, Tx, Value, recurring_chunks};
use super::error::StoreError;
use super::json::{optional_json_column, to_json};
use super::queue::{self, Lease, queue_changes, queue_columns, queue_entry_columns};
use crate::health::{
    Backlog, Call, Circuit, CircuitState, EndpointHealth, PERIODS, Tally, Transition,
    latency_bucket, minute_of,
};
use crate::model::{
    AuditEntry, CircuitBreaker, DeliveryId, EndpointId, PARKED, TenantId, UnixMillis,
};
use std::collections::{BTreeMap, HashMap};

/// One request to an endpoint and what it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCall {
    pub tenant: TenantId,
    pub endpoint_id: EndpointId,
    pub call: Call,
}

/// A circuit's change, recorded with the outcomes that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitChange {
    pub tenant: TenantId,
    pub endpoint_id: EndpointId,
    pub transition: Transition,
}

/// How long per-minute tallies are kept: the longest period shown, and an
/// hour to spare.
const STATS_KEPT_MS: i64 = 25 * 3_600_000;

/// Deliveries skipped or recovered per transaction: an endpoint may have
/// millions, and on SQLite a capture waits while the writer is held.
const ROWS_PER_CHUNK: usize = 1_000;

/// Who the audit log says changed a circuit.
const CIRCUIT_ACTOR: &str = "circuit breaker";

/// The columns of `endpoint_circuits`.
macro_rules! circuit_columns {
    () => {
        "tenant, endpoint_id, state, consecutive_failures, opened_times, opened_at, probe_at, \
         probe_delivery, probe_until, failing_since, last_success_at, last_failure, updated_at"
    };
}

impl Store {
    /// Endpoint `id`'s circuit (closed if it was never attempted).
    pub async fn get_circuit(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Circuit, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            circuit_columns!(),
            " FROM endpoint_circuits WHERE tenant = $1 AND endpoint_id = $2"
        );
        let statement = Statement::new(GET).bind(tenant.as_str()).bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!(
                "reading the circuit of endpoint {id}"
            )))?;
        row.as_ref()
            .map(circuit_from_row)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The endpoints whose circuit is not closed, across tenants: the ones a
    /// worker checks before sending.
    pub async fn endpoints_with_open_circuits(&self) -> Result<Vec<EndpointId>, StoreError> {
        let statement =
            Statement::new("SELECT endpoint_id FROM endpoint_circuits WHERE state <> 'closed'");
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database("reading the open circuits"))?;
        rows.iter()
            .map(|row| row.get_id("endpoint_id", EndpointId::parse))
            .collect()
    }

    /// The circuits that are not closed, across tenants, with their state:
    /// what the metrics show.
    pub async fn open_circuits(
        &self,
    ) -> Result<Vec<(TenantId, EndpointId, CircuitState)>, StoreError> {
        let statement = Statement::new(
            "SELECT tenant, endpoint_id, state FROM endpoint_circuits WHERE state <> 'closed'",
        );
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database("reading the open circuits"))?;
        rows.iter()
            .map(|row| {
                let state: String = row.get("state")?;
                Ok((
                    row.get_id("tenant", TenantId::parse)?,
                    row.get_id("endpoint_id", EndpointId::parse)?,
                    CircuitState::parse(&state).unwrap_or(CircuitState::Open),
                ))
            })
            .collect()
    }

    /// Half-opens every open circuit whose pause is over (or whose probe's
    /// holder died): its oldest parked delivery becomes due now, as the
    /// probe, held until `now + lease_ms`. On PostgreSQL a circuit another
    /// node is changing is left to it. Returns the circuits half-opened.
    pub async fn start_due_probes(
        &self,
        now: UnixMillis,
        lease_ms: u32,
    ) -> Result<Vec<CircuitChange>, StoreError> {
        let doing = "starting the probes of open circuits";
        let select = match self.backend.dialect() {
            Dialect::Sqlite => concat!(
                "SELECT ",
                circuit_columns!(),
                " FROM endpoint_circuits WHERE state <> 'closed'"
            ),
            Dialect::Postgres => concat!(
                "SELECT ",
                circuit_columns!(),
                " FROM endpoint_circuits WHERE state <> 'closed' FOR UPDATE SKIP LOCKED"
            ),
        };
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing))?;
        let rows = tx
            .fetch_all(Statement::new(select))
            .await
            .map_err(StoreError::database(doing))?;
        let mut changes = Vec::new();
        for row in &rows {
            let mut circuit = circuit_from_row(row)?;
            if !circuit.probe_due(now) {
                continue;
            }
            let tenant = row.get_id("tenant", TenantId::parse)?;
            let endpoint_id = row.get_id("endpoint_id", EndpointId::parse)?;
            let Some(probe) = make_probe_due(&mut tx, &tenant, &endpoint_id, now).await? else {
                // Nothing parked yet: the next delivery to come is parked,
                // and becomes the probe at the next round.
                continue;
            };
            let transition = circuit.half_open(probe, now + i64::from(lease_ms));
            write_circuit(&mut tx, &tenant, &endpoint_id, &circuit, now).await?;
            let change = CircuitChange {
                tenant,
                endpoint_id,
                transition,
            };
            tx.execute(audit::insert(&audit_entry(&change, &circuit)))
                .await
                .map_err(StoreError::database(doing))?;
            changes.push(change);
        }
        tx.commit().await.map_err(StoreError::database(doing))?;
        Ok(changes)
    }

    /// The health of `endpoints` of `tenant` (id and whether enabled), in
    /// their order, at `now`.
    pub async fn endpoint_health(
        &self,
        tenant: &TenantId,
        endpoints: &[(EndpointId, bool)],
        now: UnixMillis,
    ) -> Result<Vec<EndpointHealth>, StoreError> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let doing = || format!("reading the health of the endpoints of tenant {tenant}");
        let ids = || endpoints.iter().map(|(id, _)| Value::from(id.as_str()));
        let circuits = SqlBuilder::new(self.backend.dialect())
            .sql(concat!(
                "SELECT ",
                circuit_columns!(),
                " FROM endpoint_circuits WHERE tenant = "
            ))
            .parameter(tenant.as_str())
            .sql(" AND endpoint_id IN (")
            .list(ids())
            .sql(")")
            .build(false);
        let mut circuit_of: HashMap<String, Circuit> = HashMap::new();
        for row in self
            .backend
            .fetch_all(circuits)
            .await
            .map_err(StoreError::database(doing()))?
        {
            circuit_of.insert(row.get("endpoint_id")?, circuit_from_row(&row)?);
        }

        let since = now - PERIODS[PERIODS.len() - 1].millis();
        let stats = SqlBuilder::new(self.backend.dialect())
            .sql("SELECT endpoint_id, minute, bucket, successes, failures FROM endpoint_stats WHERE tenant = ")
            .parameter(tenant.as_str())
            .sql(" AND minute >= ")
            .parameter(minute_of(since))
            .sql(" AND endpoint_id IN (")
            .list(ids())
            .sql(")")
            .build(false);
        let mut tallies: HashMap<String, [Tally; 3]> = HashMap::new();
        for row in self
            .backend
            .fetch_all(stats)
            .await
            .map_err(StoreError::database(doing()))?
        {
            let minute: i64 = row.get("minute")?;
            let bucket = usize::try_from(row.get::<i64>("bucket")?).unwrap_or(usize::MAX);
            let successes = u64::try_from(row.get::<i64>("successes")?).unwrap_or_default();
            let failures = u64::try_from(row.get::<i64>("failures")?).unwrap_or_default();
            let periods = tallies.entry(row.get("endpoint_id")?).or_default();
            for (period, tally) in PERIODS.iter().zip(periods.iter_mut()) {
                // A minute counts if it ends inside the period.
                if minute + 60_000 > now - period.millis() {
                    tally.add(bucket, successes, failures);
                }
            }
        }

        let backlog = SqlBuilder::new(self.backend.dialect())
            .sql(&format!(
                "SELECT endpoint_id, COUNT(*) AS pending, \
                 SUM(CASE WHEN next_attempt_at = {PARKED} THEN 1 ELSE 0 END) AS parked, \
                 MIN(seq) AS oldest FROM delivery_queue WHERE tenant = "
            ))
            .parameter(tenant.as_str())
            .sql(" AND endpoint_id IN (")
            .list(ids())
            .sql(") GROUP BY endpoint_id")
            .build(false);
        let mut backlogs: HashMap<String, (Backlog, i64)> = HashMap::new();
        for row in self
            .backend
            .fetch_all(backlog)
            .await
            .map_err(StoreError::database(doing()))?
        {
            let count = |column| -> Result<u64, StoreError> {
                Ok(
                    u64::try_from(row.get::<Option<i64>>(column)?.unwrap_or_default())
                        .unwrap_or_default(),
                )
            };
            let backlog = Backlog {
                pending: count("pending")?,
                waiting_for_circuit: count("parked")?,
                oldest_at: None,
            };
            backlogs.insert(row.get("endpoint_id")?, (backlog, row.get("oldest")?));
        }
        if !backlogs.is_empty() {
            let oldest = SqlBuilder::new(self.backend.dialect())
                .sql("SELECT endpoint_id, created_at FROM deliveries WHERE seq IN (")
                .list(backlogs.values().map(|(_, seq)| Value::from(*seq)))
                .sql(")")
                .build(false);
            for row in self
                .backend
                .fetch_all(oldest)
                .await
                .map_err(StoreError::database(doing()))?
            {
                if let Some((backlog, _)) = backlogs.get_mut(&row.get::<String>("endpoint_id")?) {
                    backlog.oldest_at = Some(row.get("created_at")?);
                }
            }
        }

        Ok(endpoints
            .iter()
            .map(|(id, enabled)| {
                EndpointHealth::new(
                    *enabled,
                    circuit_of.remove(id.as_str()).unwrap_or_default(),
                    tallies.remove(id.as_str()).unwrap_or_default(),
                    backlogs
                        .remove(id.as_str())
                        .map(|(backlog, _)| backlog)
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Deletes the per-minute tallies older than the longest period shown.
    pub async fn prune_endpoint_stats(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let statement = Statement::new("DELETE FROM endpoint_stats WHERE minute < $1")
            .bind(now - STATS_KEPT_MS);
        self.backend
            .write(statement)
            .await
            .map_err(StoreError::database("pruning old endpoint statistics"))
    }

    /// Disables endpoint `id` of `tenant`, saying why, and closes its circuit;
    /// then keeps its pending deliveries (those not in flight) as `skipped`
    /// (see [`Store::skip_pending_of_endpoint`]). The change is recorded with
    /// this store's audit entry, if it has one. Returns whether it was
    /// enabled.
    pub async fn disable_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let doing = || format!("disabling endpoint {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let disabled = disable(&mut tx, tenant, id, reason, now).await?;
        if !disabled {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return Ok(false);
        }
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        self.skip_pending_of_endpoint(tenant, id, reason, now)
            .await?;
        Ok(true)
    }

    /// Keeps the pending deliveries of disabled endpoint `id` of `tenant` that
    /// are not in flight as `skipped`, saying why, a thousand per transaction
    /// so that capture is never held up for long. (One in flight is skipped by
    /// its worker when it next comes due; if this stops halfway, the rest wait,
    /// parked or due, until the endpoint is enabled.) Returns how many.
    pub async fn skip_pending_of_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: &str,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let doing = || format!("skipping the pending deliveries of endpoint {id}");
        let note = format!("skipped: endpoint {id} is disabled ({reason})");
        let mut skipped = 0;
        loop {
            let mut tx = self
                .backend
                .begin()
                .await
                .map_err(StoreError::database(doing()))?;
            let waiting = Statement::new(format!(
                "SELECT seq FROM delivery_queue WHERE tenant = $1 AND endpoint_id = $2 \
                 AND (lease_until IS NULL OR lease_until <= $3) ORDER BY seq LIMIT {ROWS_PER_CHUNK}"
            ))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now);
            let seqs = fetch_seqs(&mut tx, waiting, &doing()).await?;
            for chunk in recurring_chunks(&seqs) {
                let skip = SqlBuilder::new(tx.dialect())
                    .sql("UPDATE deliveries SET status = 'skipped', last_error = ")
                    .parameter(note.as_str())
                    .sql(", updated_at = ")
                    .parameter(now)
                    .sql(" WHERE seq IN (")
                    .list(chunk.iter().map(|&seq| Value::from(seq)))
                    .sql(")")
                    .build(true);
                tx.execute(skip)
                    .await
                    .map_err(StoreError::database(doing()))?;
            }
            queue::dequeue(&mut tx, &seqs).await?;
            tx.commit().await.map_err(StoreError::database(doing()))?;
            skipped += seqs.len() as u64;
            if seqs.len() < ROWS_PER_CHUNK {
                return Ok(skipped);
            }
        }
    }

    /// Enables endpoint `id` of `tenant` with its circuit closed. Its skipped
    /// deliveries stay skipped: see [`Store::recover_skipped`]. Recorded with
    /// this store's audit entry, if it has one. Returns whether it was
    /// disabled.
    pub async fn enable_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let doing = || format!("enabling endpoint {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let enable = Statement::new(
            "UPDATE endpoints SET enabled = $3, disabled_reason = NULL, updated_at = $4 \
             WHERE tenant = $1 AND id = $2 AND NOT enabled",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(true)
        .bind(now);
        if tx
            .execute(enable)
            .await
            .map_err(StoreError::database(doing()))?
            == 0
        {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return Ok(false);
        }
        let reset =
            Statement::new("DELETE FROM endpoint_circuits WHERE tenant = $1 AND endpoint_id = $2")
                .bind(tenant.as_str())
                .bind(id.as_str());
        tx.execute(reset)
            .await
            .map_err(StoreError::database(doing()))?;
        unpark(&mut tx, tenant, id, now).await?;
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        Ok(true)
    }

    /// Makes the deliveries endpoint `id` of `tenant` skipped while it was
    /// disabled (those captured at or after `since`, if given) pending and due
    /// `now`, in capture order. Recorded with this store's audit entry, if it
    /// has one. Returns how many.
    pub async fn recover_skipped(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        since: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let doing = || format!("recovering the skipped deliveries of endpoint {id}");
        let mut recovered = 0;
        let mut after = 0_i64;
        loop {
            let mut tx = self
                .backend
                .begin()
                .await
                .map_err(StoreError::database(doing()))?;
            // A thousand at a time, oldest first, so that capture is never
            // held up for long and they fall due in capture order.
            let skipped = Statement::new(format!(
                "SELECT seq FROM deliveries WHERE tenant = $1 AND endpoint_id = $2 \
                 AND status = 'skipped' AND created_at >= $3 AND seq > $4 \
                 ORDER BY seq LIMIT {ROWS_PER_CHUNK}"
            ))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(since.unwrap_or(UnixMillis::MIN))
            .bind(after);
            let seqs = fetch_seqs(&mut tx, skipped, &doing()).await?;
            if seqs.is_empty() {
                tx.rollback().await.map_err(StoreError::database(doing()))?;
                return Ok(recovered);
            }
            let mut rows = Vec::with_capacity(seqs.len());
            for chunk in recurring_chunks(&seqs) {
                let pending = SqlBuilder::new(tx.dialect())
                    .sql(
                        "UPDATE deliveries SET status = 'pending', batch_id = NULL, \
                         last_error = NULL, next_attempt_at = ",
                    )
                    .parameter(now)
                    .sql(", updated_at = ")
                    .parameter(now)
                    .sql(" WHERE seq IN (")
                    .list(chunk.iter().map(|&seq| Value::from(seq)))
                    .sql(concat!(") RETURNING ", queue_columns!()))
                    .build(true);
                rows.extend(
                    tx.fetch_all(pending)
                        .await
                        .map_err(StoreError::database(doing()))?,
                );
            }
            queue::apply(&mut tx, &queue_changes(&rows)?, Lease::End).await?;
            // The audit entry goes with the first chunk.
            if recovered == 0 {
                self.commit_change(tx)
                    .await
                    .map_err(StoreError::database(doing()))?;
            } else {
                tx.commit().await.map_err(StoreError::database(doing()))?;
            }
            recovered += seqs.len() as u64;
            after = seqs[seqs.len() - 1];
            if seqs.len() < ROWS_PER_CHUNK {
                return Ok(recovered);
            }
        }
    }
}

/// Counts `calls` in their endpoints' tallies and moves their circuits, in
/// the transaction that records their deliveries' outcomes. A circuit that
/// closes releases its parked deliveries; an endpoint failing for longer
/// than its breaker allows is disabled. Every change is audited.
pub(super) async fn record_calls(
    tx: &mut Tx,
    calls: &[EndpointCall],
    now: UnixMillis,
) -> Result<Vec<CircuitChange>, StoreError> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    tally(tx, calls).await?;
    // In one order, so that two nodes' transactions cannot deadlock.
    let mut by_endpoint: BTreeMap<(&TenantId, &EndpointId), Vec<Call>> = BTreeMap::new();
    for call in calls {
        by_endpoint
            .entry((&call.tenant, &call.endpoint_id))
            .or_default()
            .push(call.call.clone());
    }
    let mut changes = Vec::new();
    for ((tenant, endpoint_id), calls) in by_endpoint {
        let Some((circuit, breaker)) = circuit_for_update(tx, tenant, endpoint_id).await? else {
            continue; // The endpoint was deleted meanwhile.
        };
        let (circuit, transitions) = circuit.after(&calls, &breaker, now);
        write_circuit(tx, tenant, endpoint_id, &circuit, now).await?;
        for transition in transitions {
            match &transition {
                Transition::Closed => unpark(tx, tenant, endpoint_id, now).await?,
                Transition::Disabled { failing_since } => {
                    let reason = format!(
                        "every attempt failed since {} ({} in a row); the last: {}",
                        shown_time(*failing_since),
                        circuit.consecutive_failures,
                        circuit
                            .last_failure
                            .as_ref()
                            .map_or("", |failure| failure.error.as_str())
                    );
                    disable(tx, tenant, endpoint_id, &reason, now).await?;
                }
                _ => {}
            }
            let change = CircuitChange {
                tenant: tenant.clone(),
                endpoint_id: endpoint_id.clone(),
                transition,
            };
            tx.execute(audit::insert(&audit_entry(&change, &circuit)))
                .await
                .map_err(StoreError::database("recording a circuit's change"))?;
            changes.push(change);
        }
    }
    Ok(changes)
}

/// `at` as an RFC 3339 time, for a message.
fn shown_time(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at).map_or_else(
        || at.to_string(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The audit entry of `change`, with the circuit after it.
fn audit_entry(change: &CircuitChange, circuit: &Circuit) -> AuditEntry {
    let mut after = serde_json::to_value(&change.transition).unwrap_or_default();
    after["circuit"] = serde_json::to_value(circuit).unwrap_or_default();
    AuditEntry::by_operator(
        &change.tenant,
        CIRCUIT_ACTOR,
        change.transition.action(),
        &change.endpoint_id,
        Some(after),
    )
}

/// Adds `calls` to their endpoints' per-minute tallies.
async fn tally(tx: &mut Tx, calls: &[EndpointCall]) -> Result<(), StoreError> {
    let mut counts: BTreeMap<(&str, &str, i64, i64), (i64, i64)> = BTreeMap::new();
    for call in calls {
        let bucket = i64::try_from(latency_bucket(call.call.duration_ms)).unwrap_or_default();
        let key = (
            call.tenant.as_str(),
            call.endpoint_id.as_str(),
            minute_of(call.call.finished_at()),
            bucket,
        );
        let (successes, failures) = counts.entry(key).or_default();
        match call.call.failure {
            None => *successes += 1,
            Some(_) => *failures += 1,
        }
    }
    let rows: Vec<[Value; 6]> = counts
        .into_iter()
        .map(
            |((tenant, endpoint, minute, bucket), (successes, failures))| {
                [
                    tenant.into(),
                    endpoint.into(),
                    minute.into(),
                    bucket.into(),
                    successes.into(),
                    failures.into(),
                ]
            },
        )
        .collect();
    for chunk in recurring_chunks(&rows) {
        let statement = SqlBuilder::new(tx.dialect())
            .sql(
                "INSERT INTO endpoint_stats \
                 (tenant, endpoint_id, minute, bucket, successes, failures) VALUES ",
            )
            .rows(chunk.iter().cloned())
            .sql(
                " ON CONFLICT (tenant, endpoint_id, minute, bucket) DO UPDATE SET \
                 successes = endpoint_stats.successes + excluded.successes, \
                 failures = endpoint_stats.failures + excluded.failures",
            )
            .build(true);
        tx.execute(statement)
            .await
            .map_err(StoreError::database("counting requests to endpoints"))?;
    }
    Ok(())
}

/// Endpoint `id`'s circuit and breaker, locked until the transaction ends
/// on PostgreSQL (SQLite has one writer); `None` if the endpoint is gone.
async fn circuit_for_update(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &EndpointId,
) -> Result<Option<(Circuit, CircuitBreaker)>, StoreError> {
    let doing = || format!("reading the circuit of endpoint {id}");
    let lock = match tx.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let breaker = Statement::new(format!(
        "SELECT circuit_breaker FROM endpoints WHERE tenant = $1 AND id = $2{lock}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str());
    let Some(row) = tx
        .fetch_optional(breaker)
        .await
        .map_err(StoreError::database(doing()))?
    else {
        return Ok(None);
    };
    let breaker: CircuitBreaker =
        optional_json_column(&row, "circuit_breaker", format_args!("endpoint {id}"))?
            .unwrap_or_default();
    let circuit = Statement::new(concat!(
        "SELECT ",
        circuit_columns!(),
        " FROM endpoint_circuits WHERE tenant = $1 AND endpoint_id = $2"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str());
    let circuit = tx
        .fetch_optional(circuit)
        .await
        .map_err(StoreError::database(doing()))?
        .as_ref()
        .map(circuit_from_row)
        .transpose()?
        .unwrap_or_default();
    Ok(Some((circuit, breaker)))
}

async fn write_circuit(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &EndpointId,
    circuit: &Circuit,
    now: UnixMillis,
) -> Result<(), StoreError> {
    const UPSERT: &str = concat!(
        "INSERT INTO endpoint_circuits (",
        circuit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant, endpoint_id) DO UPDATE SET state = excluded.state, \
         consecutive_failures = excluded.consecutive_failures, \
         opened_times = excluded.opened_times, opened_at = excluded.opened_at, \
         probe_at = excluded.probe_at, probe_delivery = excluded.probe_delivery, \
         probe_until = excluded.probe_until, failing_since = excluded.failing_since, \
         last_success_at = excluded.last_success_at, last_failure = excluded.last_failure, \
         updated_at = excluded.updated_at"
    );
    let last_failure = circuit
        .last_failure
        .as_ref()
        .map(|failure| to_json(failure, format_args!("the last failure of endpoint {id}")))
        .transpose()?;
    let statement = Statement::new(UPSERT)
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(circuit.state.as_str())
        .bind(circuit.consecutive_failures)
        .bind(circuit.opened_times)
        .bind(circuit.opened_at)
        .bind(circuit.probe_at)
        .bind(circuit.probe_delivery.as_ref().map(|d| d.as_str()))
        .bind(circuit.probe_until)
        .bind(circuit.failing_since)
        .bind(circuit.last_success_at)
        .bind(last_failure)
        .bind(now);
    tx.execute(statement)
        .await
        .map_err(StoreError::database(format!(
            "writing the circuit of endpoint {id}"
        )))?;
    Ok(())
}

fn circuit_from_row(row: &Row) -> Result<Circuit, StoreError> {
    let state: String = row.get("state")?;
    let owner = || {
        format!(
            "the circuit of endpoint {}",
            row.get::<String>("endpoint_id").unwrap_or_default()
        )
    };
    let count = |column| -> Result<u32, StoreError> { row.get_u32(column) };
    Ok(Circuit {
        state: CircuitState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("{}: state {state:?}", owner())))?,
        consecutive_failures: count("consecutive_failures")?,
        opened_times: count("opened_times")?,
        opened_at: row.get("opened_at")?,
        probe_at: row.get("probe_at")?,
        probe_delivery: row
            .get::<Option<String>>("probe_delivery")?
            .map(|id| {
                DeliveryId::parse(&id)
                    .map_err(|error| StoreError::Corrupt(format!("{}: {error}", owner())))
            })
            .transpose()?,
        probe_until: row.get("probe_until")?,
        failing_since: row.get("failing_since")?,
        last_success_at: row.get("last_success_at")?,
        last_failure: optional_json_column(row, "last_failure", owner())?,
    })
}

/// Makes endpoint `id`'s oldest parked delivery due `now`, and returns it.
async fn make_probe_due(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &EndpointId,
    now: UnixMillis,
) -> Result<Option<DeliveryId>, StoreError> {
    let doing = || format!("choosing the probe of endpoint {id}");
    let lock = match tx.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let oldest = Statement::new(format!(
        "SELECT seq FROM delivery_queue WHERE tenant = $1 AND endpoint_id = $2 \
         AND next_attempt_at = {PARKED} ORDER BY seq LIMIT 1{lock}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str());
    let Some(row) = tx
        .fetch_optional(oldest)
        .await
        .map_err(StoreError::database(doing()))?
    else {
        return Ok(None);
    };
    let seq: i64 = row.get("seq")?;
    for table in ["delivery_queue", "deliveries"] {
        let due = Statement::new(format!(
            "UPDATE {table} SET next_attempt_at = $2 WHERE seq = $1"
        ))
        .bind(seq)
        .bind(now);
        tx.execute(due)
            .await
            .map_err(StoreError::database(doing()))?;
    }
    let probe = Statement::new("SELECT id FROM deliveries WHERE seq = $1").bind(seq);
    let row = tx
        .fetch_optional(probe)
        .await
        .map_err(StoreError::database(doing()))?
        .ok_or_else(|| StoreError::Corrupt(format!("queued delivery {seq} has no history")))?;
    Ok(Some(row.get_id("id", DeliveryId::parse)?))
}

/// Makes endpoint `id`'s parked deliveries due `now`: its circuit closed.
async fn unpark(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &EndpointId,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let doing = || format!("releasing the deliveries waiting for endpoint {id}");
    const PARKED_OF_ENDPOINT: &str = "tenant = $1 AND endpoint_id = $2";
    let history = Statement::new(format!(
        "UPDATE deliveries SET next_attempt_at = $3, last_error = NULL WHERE seq IN \
         (SELECT seq FROM delivery_queue WHERE {PARKED_OF_ENDPOINT} \
         AND next_attempt_at = {PARKED})"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(now);
    tx.execute(history)
        .await
        .map_err(StoreError::database(doing()))?;
    let queued = Statement::new(format!(
        "UPDATE delivery_queue SET next_attempt_at = $3 WHERE {PARKED_OF_ENDPOINT} \
         AND next_attempt_at = {PARKED}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(now);
    tx.execute(queued)
        .await
        .map_err(StoreError::database(doing()))?;
    Ok(())
}

/// The `seq` column of the rows `statement` reads in `tx`.
async fn fetch_seqs(
    tx: &mut Tx,
    statement: Statement,
    doing: &str,
) -> Result<Vec<i64>, StoreError> {
    tx.fetch_all(statement)
        .await
        .map_err(StoreError::database(doing))?
        .iter()
        .map(|row| row.get::<i64>("seq"))
        .collect()
}

/// Disables endpoint `id` with `reason` and closes its circuit; its pending
/// deliveries are skipped after (see [`Store::skip_pending_of_endpoint`]).
/// Returns whether it was enabled.
async fn disable(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &EndpointId,
    reason: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let doing = || format!("disabling endpoint {id}");
    let statement = Statement::new(
        "UPDATE endpoints SET enabled = $3, disabled_reason = $4, updated_at = $5 \
         WHERE tenant = $1 AND id = $2 AND enabled",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(false)
    .bind(reason)
    .bind(now);
    if tx
        .execute(statement)
        .await
        .map_err(StoreError::database(doing()))?
        == 0
    {
        return Ok(false);
    }
    let close = Statement::new(
        "UPDATE endpoint_circuits SET state = 'closed', opened_times = 0, opened_at = NULL, \
         probe_at = NULL, probe_delivery = NULL, probe_until = NULL, updated_at = $3 \
         WHERE tenant = $1 AND endpoint_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(now);
    tx.execute(close)
        .await
        .map_err(StoreError::database(doing()))?;
    Ok(true)
}
