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
//! Each admission is one statement (`weft_admit_to_endpoint`, migration 13),
//! committed without waiting for the disk: losing the last
//! admissions to a database crash costs at most a burst past the rate.

use super::Store;
use super::database::{Dialect, Row, Statement};
use super::error::StoreError;
use crate::model::{DeliveryId, Endpoint, RateLimit, TenantId};
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
        let doing = format!("admitting a request to endpoint {}", endpoint.id);
        // One statement, committed by itself: the endpoint's pacing row stays
        // locked only while it runs.
        let decision = self
            .backend
            .write_returning(
                Statement::new(
                    "SELECT admitted, refused_by, retry_in_us, held_for_us \
                     FROM weft_admit_to_endpoint($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(tenant.as_str())
                .bind(endpoint.id.as_str())
                .bind(carrier.as_str())
                .bind(now_us)
                .bind(endpoint.max_concurrency.map(i64::from))
                .bind(endpoint.rate_limit.map(period_us))
                .bind(endpoint.rate_limit.map(|limit| i64::from(limit.requests))),
            )
            .await
            .map_err(StoreError::database(doing.as_str()))?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("{doing}: no decision")))?;
        decided(endpoint, &decision, &doing)
    }
}

/// What `weft_admit_to_endpoint` (migration 13) decided, as the worker
/// needs it.
fn decided(
    endpoint: &Endpoint,
    row: &Row,
    doing: &str,
) -> Result<Result<(), EndpointRefusal>, StoreError> {
    if row.get::<bool>("admitted")? {
        return Ok(Ok(()));
    }
    let refused_by: Option<String> = row.get("refused_by")?;
    let (retry_in, held_for) = (
        micros(row.get("retry_in_us")?),
        micros(row.get("held_for_us")?),
    );
    Ok(Err(match (refused_by.as_deref(), endpoint.rate_limit) {
        (Some("rate"), Some(limit)) => EndpointRefusal {
            retry_in,
            held_for,
            spacing: micros(period_us(limit)),
            reason: format!(
                "waiting for the rate limit of the endpoint ({} per {} s, for the whole cluster)",
                limit.requests, limit.per_seconds
            ),
        },
        (Some("concurrency"), _) => EndpointRefusal {
            retry_in: CLUSTER_CONCURRENCY_RETRY,
            held_for: CLUSTER_CONCURRENCY_RETRY,
            spacing: Duration::ZERO,
            reason: format!(
                "endpoint {} already has {} deliveries in flight in the whole cluster",
                endpoint.id,
                endpoint.max_concurrency.unwrap_or_default()
            ),
        },
        (other, _) => {
            return Err(StoreError::Corrupt(format!(
                "{doing}: refused by {other:?}, not a limit of the endpoint"
            )));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_above_a_million_per_second_keeps_a_period() {
        let fast = RateLimit {
            requests: u32::MAX,
            per_seconds: 1,
        };
        assert_eq!(period_us(fast), 1);
        let slow = RateLimit {
            requests: 4,
            per_seconds: 2,
        };
        assert_eq!(period_us(slow), 500_000);
    }
}
