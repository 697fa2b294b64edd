//! An endpoint's own limits for a whole cluster. Where several nodes share a
//! PostgreSQL database, an endpoint's `rate_limit` and `max_concurrency` hold
//! for all of them together: before a request leaves, its node asks here.
//!
//! Admissions to one endpoint take turns on its `endpoint_pacing` row's lock.
//! The rate limit is a generic cell rate kept in that row: the time the next
//! request may go, which each admitted request moves on by the limit's
//! period, with room for a burst of the limit's whole count. A request
//! refused by the rate gets a turn of its own, a period after the last turn
//! given, so that a backlog spread over nodes is spread over time too. The
//! deliveries an endpoint has in flight are the queued ones marked `sending`
//! whose lease runs: the mark goes when the delivery is requeued or settled,
//! and a lease that runs out (its node died) stops counting by itself.
//!
//! These transactions commit without waiting for the disk: losing the last
//! admissions to a database crash costs at most a burst past the rate.

use super::Store;
use super::database::{Dialect, Statement, Tx};
use super::error::StoreError;
use crate::model::{DeliveryId, Endpoint, RateLimit, TenantId, UnixMillis};
use std::time::Duration;

/// How long a request that found its endpoint's places taken by the cluster
/// waits before it is tried again.
pub const CLUSTER_CONCURRENCY_RETRY: Duration = Duration::from_millis(100);

/// Why an endpoint's limits do not admit a request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRefusal {
    /// When this request may be tried again, from now.
    pub retry_in: Duration,
    /// How long no request to the endpoint will be admitted, from now: a
    /// node need not ask again before then.
    pub held_for: Duration,
    /// Between two requests refused for the same reason, the time to leave
    /// (the rate limit's period; nothing for a concurrency limit).
    pub spacing: Duration,
    pub reason: String,
}

/// An endpoint's cell rate: when the next request may go (in microseconds),
/// and the last turn given to a refused one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pacing {
    next_free_us: i64,
    last_turn_us: i64,
}

impl Pacing {
    /// Takes one request's place under `limit` at `now_us`, or says when the
    /// refused request may come back.
    fn take(&mut self, limit: RateLimit, now_us: i64) -> Result<(), EndpointRefusal> {
        let period = period_us(limit);
        // A full burst may go at once: the next request is early by at most
        // the rest of the burst.
        let tolerance = period.saturating_mul(i64::from(limit.requests.max(1)) - 1);
        let base = self.next_free_us.max(now_us);
        let earliest = base - tolerance;
        if earliest <= now_us {
            self.next_free_us = base + period;
            return Ok(());
        }
        let turn = self.last_turn_us.saturating_add(period).max(earliest);
        self.last_turn_us = turn;
        Err(EndpointRefusal {
            retry_in: micros(turn - now_us),
            held_for: micros(earliest - now_us),
            spacing: micros(period),
            reason: format!(
                "waiting for the rate limit of the endpoint ({} per {} s, for the whole cluster)",
                limit.requests, limit.per_seconds
            ),
        })
    }
}

/// The time between two requests under `limit`, in microseconds.
fn period_us(limit: RateLimit) -> i64 {
    let window = i64::from(limit.per_seconds.max(1)) * 1_000_000;
    (window / i64::from(limit.requests.max(1))).max(1)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or_default())
}

impl Store {
    /// Whether several nodes may share this database (PostgreSQL does; a
    /// SQLite file has one): endpoints' own limits are then held here, by
    /// [`Store::admit_to_endpoint`], rather than in each process.
    pub fn is_shared(&self) -> bool {
        self.backend.dialect() == Dialect::Postgres
    }

    /// Admits one request of delivery `carrier` (of `tenant`) to `endpoint`
    /// under the endpoint's own limits, held for every node of the database,
    /// at `now_us` (microseconds since the epoch). Admitted under a
    /// concurrency limit, the delivery counts among the endpoint's in flight
    /// until it is requeued or settled, or its lease runs out.
    pub async fn admit_to_endpoint(
        &self,
        endpoint: &Endpoint,
        tenant: &TenantId,
        carrier: &DeliveryId,
        now_us: i64,
    ) -> Result<Result<(), EndpointRefusal>, StoreError> {
        let doing = || format!("admitting a request to endpoint {}", endpoint.id);
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let decided = admit(&mut tx, endpoint, tenant, carrier, now_us, &doing()).await?;
        tx.commit().await.map_err(StoreError::database(doing()))?;
        Ok(decided)
    }
}

async fn admit(
    tx: &mut Tx,
    endpoint: &Endpoint,
    tenant: &TenantId,
    carrier: &DeliveryId,
    now_us: i64,
    doing: &str,
) -> Result<Result<(), EndpointRefusal>, StoreError> {
    let (tenant, id) = (tenant.as_str(), endpoint.id.as_str());
    let failed = || StoreError::database(doing);
    tx.fetch_optional(Statement::new(
        "SELECT set_config('synchronous_commit', 'off', true)",
    ))
    .await
    .map_err(failed())?;
    // Written even when unchanged: the row's lock is what admissions to the
    // endpoint take turns on.
    let row = tx
        .fetch_optional(
            Statement::new(
                "INSERT INTO endpoint_pacing (tenant, endpoint_id, next_free_us, last_turn_us) \
                 VALUES ($1, $2, 0, 0) ON CONFLICT (tenant, endpoint_id) \
                 DO UPDATE SET next_free_us = endpoint_pacing.next_free_us \
                 RETURNING next_free_us, last_turn_us",
            )
            .bind(tenant)
            .bind(id),
        )
        .await
        .map_err(failed())?
        .ok_or_else(|| StoreError::Corrupt(format!("{doing}: no pacing row")))?;
    let before = Pacing {
        next_free_us: row.get("next_free_us")?,
        last_turn_us: row.get("last_turn_us")?,
    };
    if let Some(max) = endpoint.max_concurrency {
        let now_ms: UnixMillis = now_us / 1_000;
        let counted = tx
            .fetch_optional(
                Statement::new(
                    "SELECT COUNT(*) AS sending FROM delivery_queue \
                     WHERE tenant = $1 AND endpoint_id = $2 AND sending AND lease_until > $3 \
                     AND seq <> COALESCE((SELECT seq FROM deliveries \
                         WHERE tenant = $1 AND id = $4), -1)",
                )
                .bind(tenant)
                .bind(id)
                .bind(now_ms)
                .bind(carrier.as_str()),
            )
            .await
            .map_err(failed())?
            .ok_or_else(|| StoreError::Corrupt(format!("{doing}: no count")))?;
        let sending: i64 = counted.get("sending")?;
        if sending >= i64::from(max) {
            return Ok(Err(EndpointRefusal {
                retry_in: CLUSTER_CONCURRENCY_RETRY,
                held_for: CLUSTER_CONCURRENCY_RETRY,
                spacing: Duration::ZERO,
                reason: format!(
                    "endpoint {id} already has {max} deliveries in flight in the whole cluster"
                ),
            }));
        }
    }
    let mut pacing = before;
    let paced = match endpoint.rate_limit {
        Some(limit) => pacing.take(limit, now_us),
        None => Ok(()),
    };
    if paced.is_ok() && endpoint.max_concurrency.is_some() {
        tx.execute(
            Statement::new(
                "UPDATE delivery_queue SET sending = TRUE \
                 WHERE seq = (SELECT seq FROM deliveries WHERE tenant = $1 AND id = $2)",
            )
            .bind(tenant)
            .bind(carrier.as_str()),
        )
        .await
        .map_err(failed())?;
    }
    if pacing != before {
        tx.execute(
            Statement::new(
                "UPDATE endpoint_pacing SET next_free_us = $3, last_turn_us = $4 \
                 WHERE tenant = $1 AND endpoint_id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(pacing.next_free_us)
            .bind(pacing.last_turn_us),
        )
        .await
        .map_err(failed())?;
    }
    Ok(paced)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR_PER_TWO_SECONDS: RateLimit = RateLimit {
        requests: 4,
        per_seconds: 2,
    };

    #[test]
    fn a_burst_goes_at_once_and_the_rest_get_successive_turns() {
        let mut pacing = Pacing {
            next_free_us: 0,
            last_turn_us: 0,
        };
        let now = 1_000_000_000;
        for _ in 0..4 {
            pacing.take(FOUR_PER_TWO_SECONDS, now).unwrap();
        }
        let refused: Vec<EndpointRefusal> = (0..3)
            .map(|_| pacing.take(FOUR_PER_TWO_SECONDS, now).unwrap_err())
            .collect();
        // One request every 500 ms: the next goes in 500 ms, and the refused
        // get turns 500 ms apart from then.
        for (index, refusal) in refused.iter().enumerate() {
            let turn = Duration::from_millis(500 * (index as u64 + 1));
            assert_eq!(refusal.retry_in, turn, "turn {index}");
            assert_eq!(refusal.held_for, Duration::from_millis(500));
            assert_eq!(refusal.spacing, Duration::from_millis(500));
        }
        assert!(
            refused[0].reason.contains("4 per 2 s"),
            "{}",
            refused[0].reason
        );
        // Half a second on, one more request goes; then none.
        pacing.take(FOUR_PER_TWO_SECONDS, now + 500_000).unwrap();
        assert!(pacing.take(FOUR_PER_TWO_SECONDS, now + 500_000).is_err());
    }

    #[test]
    fn an_idle_endpoint_earns_back_its_burst_and_no_more() {
        let mut pacing = Pacing {
            next_free_us: 0,
            last_turn_us: 0,
        };
        let now = 1_000_000_000;
        pacing.take(FOUR_PER_TWO_SECONDS, now).unwrap();
        let later = now + 60_000_000;
        for _ in 0..4 {
            pacing.take(FOUR_PER_TWO_SECONDS, later).unwrap();
        }
        assert!(pacing.take(FOUR_PER_TWO_SECONDS, later).is_err());
    }

    #[test]
    fn a_rate_above_a_million_per_second_keeps_a_period() {
        let fast = RateLimit {
            requests: u32::MAX,
            per_seconds: 1,
        };
        assert_eq!(period_us(fast), 1);
    }
}
