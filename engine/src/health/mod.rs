//! Endpoint health: how each receiver has been answering, as an operator
//! sees it at a glance.
//!
//! Every request to an endpoint is counted, when its delivery's outcome is
//! recorded, in a per-minute tally of successes and failures by latency
//! bucket (`endpoint_stats`), kept a day; the [`circuit`] beside it decides
//! whether deliveries go at all. [`EndpointHealth`] puts them together with the
//! endpoint's backlog into one of four states:
//!
//! - `disabled`: the endpoint is disabled (by an administrator, a `410 Gone`,
//!   or after failing for longer than its breaker allows);
//! - `failing`: its circuit is open or half-open, or fewer than half of the
//!   last five minutes' attempts succeeded;
//! - `degraded`: fewer than 95 % of the last five minutes' attempts
//!   succeeded, or its last attempt failed;
//! - `healthy`: otherwise, an endpoint with no traffic included.

pub mod circuit;
mod watch;

pub use circuit::{Call, Circuit, CircuitState, LastFailure, Transition};
pub use watch::OpenCircuits;

use crate::model::{Endpoint, UnixMillis};
use serde::{Deserialize, Serialize};

/// The operational event Weft publishes into a tenant's own stream when one
/// of its endpoints is disabled (a catalog type: subscriptions can route it
/// like any other).
pub const ENDPOINT_DISABLED: &str = "weft.endpoint.disabled";

/// The payload of [`ENDPOINT_DISABLED`] for `endpoint`, disabled `by` (the
/// circuit breaker, a `410 Gone`, or an administrator) at `at`.
pub fn endpoint_disabled_event(endpoint: &Endpoint, by: &str, at: UnixMillis) -> serde_json::Value {
    serde_json::json!({
        "endpoint": {
            "id": endpoint.id,
            "name": endpoint.name,
            "url": crate::delivery::redact_url(&endpoint.url),
        },
        "reason": endpoint.disabled_reason.as_deref().unwrap_or("disabled"),
        "disabled_by": by,
        "disabled_at": at,
    })
}

/// The upper bounds, in milliseconds, of the latency buckets attempts are
/// counted in; the last holds everything slower.
pub const LATENCY_BOUNDS_MS: [u32; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000,
];

/// The bucket an attempt that took `duration_ms` is counted in.
pub fn latency_bucket(duration_ms: u32) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&bound| duration_ms <= bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len() - 1)
}

/// The periods health is reported over, shortest first.
pub const PERIODS: [Period; 3] = [Period::FiveMinutes, Period::Hour, Period::Day];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    FiveMinutes,
    Hour,
    Day,
}

impl Period {
    pub fn label(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::Hour => "1h",
            Self::Day => "24h",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::FiveMinutes => 5 * 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// The minute (its first millisecond) an attempt finished in: the grain of
/// the tallies, so "the last five minutes" covers four to five of them.
pub fn minute_of(at: UnixMillis) -> UnixMillis {
    at - at.rem_euclid(60_000)
}

/// Attempts over one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub successes: u64,
    pub failures: u64,
    /// Attempts by [`latency_bucket`].
    pub by_latency: [u64; LATENCY_BOUNDS_MS.len()],
}

impl Tally {
    pub fn add(&mut self, bucket: usize, successes: u64, failures: u64) {
        self.successes += successes;
        self.failures += failures;
        if let Some(count) = self.by_latency.get_mut(bucket) {
            *count += successes + failures;
        }
    }

    pub fn attempts(&self) -> u64 {
        self.successes + self.failures
    }

    /// The share of attempts that succeeded, if there were any.
    pub fn success_rate(&self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.successes as f64 / attempts as f64)
    }

    /// The latency below which a share `q` of attempts fell, interpolated
    /// within its bucket (as Prometheus estimates quantiles from buckets).
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u32> {
        let total = self.by_latency.iter().sum::<u64>();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (bucket, &count) in self.by_latency.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let lower = bucket
                    .checked_sub(1)
                    .map_or(0.0, |b| f64::from(LATENCY_BOUNDS_MS[b]));
                let upper = f64::from(LATENCY_BOUNDS_MS[bucket]);
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                return Some((lower + (upper - lower) * within).round() as u32);
            }
            below += count;
        }
        Some(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1])
    }
}

/// An endpoint's pending deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    pub pending: u64,
    /// Of those, the ones parked until the circuit closes.
    pub waiting_for_circuit: u64,
    /// When the oldest pending delivery was captured.
    pub oldest_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Healthy,
    Degraded,
    Failing,
    Disabled,
}

impl HealthState {
    pub const ALL: [HealthState; 4] =
        [Self::Healthy, Self::Degraded, Self::Failing, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// Below this share of successes over the last five minutes, an endpoint is
/// failing; below [`DEGRADED_BELOW`], degraded.
pub const FAILING_BELOW: f64 = 0.5;
pub const DEGRADED_BELOW: f64 = 0.95;

/// What an operator sees of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    pub state: HealthState,
    pub circuit: Circuit,
    /// One tally per entry of [`PERIODS`].
    pub periods: [Tally; 3],
    pub backlog: Backlog,
}

impl EndpointHealth {
    pub fn new(enabled: bool, circuit: Circuit, periods: [Tally; 3], backlog: Backlog) -> Self {
        let recent = periods[0].success_rate();
        let state = if !enabled {
            HealthState::Disabled
        } else if circuit.state != CircuitState::Closed
            || recent.is_some_and(|rate| rate < FAILING_BELOW)
        {
            HealthState::Failing
        } else if recent.is_some_and(|rate| rate < DEGRADED_BELOW)
            || circuit.consecutive_failures > 0
        {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        };
        Self {
            state,
            circuit,
            periods,
            backlog,
        }
    }

    /// As the API shows it.
    pub fn view(&self, now: UnixMillis) -> serde_json::Value {
        let circuit = &self.circuit;
        let periods: serde_json::Map<String, serde_json::Value> = PERIODS
            .iter()
            .zip(&self.periods)
            .map(|(period, tally)| {
                let view = serde_json::json!({
                    "attempts": tally.attempts(),
                    "successes": tally.successes,
                    "failures": tally.failures,
                    "success_rate": tally.success_rate(),
                    "latency_p50_ms": tally.latency_quantile_ms(0.5),
                    "latency_p99_ms": tally.latency_quantile_ms(0.99),
                });
                (period.label().to_owned(), view)
            })
            .collect();
        serde_json::json!({
            "state": self.state,
            "circuit": {
                "state": circuit.state,
                "consecutive_failures": circuit.consecutive_failures,
                "opened_at": circuit.opened_at,
                "next_probe_at": (circuit.state == CircuitState::Open).then_some(circuit.probe_at).flatten(),
                "probe_delivery": circuit.probe_delivery,
            },
            "failing_since": circuit.failing_since,
            "last_success_at": circuit.last_success_at,
            "last_failure": circuit.last_failure,
            "periods": periods,
            "backlog": {
                "pending": self.backlog.pending,
                "waiting_for_circuit": self.backlog.waiting_for_circuit,
                "oldest_at": self.backlog.oldest_at,
                "oldest_age_ms": self.backlog.oldest_at.map(|at| now.saturating_sub(at).max(0)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(successes: u64, failures: u64) -> Tally {
        let mut tally = Tally::default();
        tally.add(latency_bucket(40), successes, failures);
        tally
    }

    fn state(enabled: bool, circuit: Circuit, recent: Tally) -> HealthState {
        EndpointHealth::new(
            enabled,
            circuit,
            [recent, Tally::default(), Tally::default()],
            Backlog::default(),
        )
        .state
    }

    #[test]
    fn states_follow_the_documented_rules() {
        let closed = Circuit::default();
        assert_eq!(
            state(true, closed.clone(), Tally::default()),
            HealthState::Healthy
        );
        assert_eq!(
            state(true, closed.clone(), tally(99, 1)),
            HealthState::Healthy
        );
        assert_eq!(
            state(true, closed.clone(), tally(94, 6)),
            HealthState::Degraded
        );
        assert_eq!(
            state(true, closed.clone(), tally(49, 51)),
            HealthState::Failing
        );
        let last_failed = Circuit {
            consecutive_failures: 1,
            ..closed.clone()
        };
        assert_eq!(
            state(true, last_failed, tally(99, 1)),
            HealthState::Degraded
        );
        let open = Circuit {
            state: CircuitState::Open,
            ..closed.clone()
        };
        assert_eq!(
            state(true, open.clone(), tally(99, 1)),
            HealthState::Failing
        );
        assert_eq!(state(false, open, tally(99, 1)), HealthState::Disabled);
    }

    #[test]
    fn buckets_hold_what_their_bounds_say() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(120_000), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(latency_bucket(u32::MAX), LATENCY_BOUNDS_MS.len() - 1);
    }

    #[test]
    fn quantiles_are_interpolated_within_their_bucket() {
        let mut tally = Tally::default();
        // 98 attempts of 50 ms or less (bucket 25–50), 2 of up to 1 s.
        tally.add(latency_bucket(40), 98, 0);
        tally.add(latency_bucket(900), 1, 1);
        let p50 = tally.latency_quantile_ms(0.5).unwrap();
        assert!((25..=50).contains(&p50), "{p50}");
        let p99 = tally.latency_quantile_ms(0.99).unwrap();
        assert!((500..=1_000).contains(&p99), "{p99}");
        assert_eq!(Tally::default().latency_quantile_ms(0.5), None);
    }

    #[test]
    fn minutes_start_on_the_minute() {
        assert_eq!(minute_of(1_800_000_059_999), 1_800_000_000_000);
        assert_eq!(minute_of(1_800_000_060_000), 1_800_000_060_000);
    }
}
