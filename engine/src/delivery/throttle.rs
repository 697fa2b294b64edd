//! How hard Weft presses receivers, and itself: an endpoint's rate limit (a
//! token bucket from governor), an endpoint's maximum of deliveries in flight,
//! and the process's maximum of deliveries in flight.
//!
//! A delivery an endpoint's limits do not admit now is not held: the caller
//! puts it back in the queue for the wait [`Throttle::admit`] names, so the
//! worker's lease and its round are not spent waiting. Deliveries refused by
//! the rate limit are given successive turns (the bucket's period apart), so a
//! backlog is spread over time rather than claimed again all at once. The
//! process-wide maximum is different: it is backpressure, and a delivery waits
//! for a place.

use crate::model::{Endpoint, EndpointId, RateLimit};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Deliveries in flight in one process unless `weft serve --max-in-flight`
/// says otherwise (the product sheet promises 1,000+ concurrent deliveries).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;

/// How long a delivery refused by an endpoint's concurrency limit waits
/// before it is tried again.
const CONCURRENCY_RETRY: Duration = Duration::from_millis(100);

/// Why a delivery must wait, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub duration: Duration,
    pub reason: String,
}

/// The places a delivery holds while it runs; dropping them frees them.
#[derive(Debug)]
pub struct Admitted {
    _endpoint: Option<OwnedSemaphorePermit>,
    _process: OwnedSemaphorePermit,
}

/// An endpoint's token bucket, and the last turn given to a delivery it
/// refused.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    /// The time between two tokens.
    period: Duration,
    last_turn: Mutex<Instant>,
}

/// The limits of every endpoint seen recently, shared by a process's workers.
pub struct Throttle {
    buckets: moka::sync::Cache<(EndpointId, RateLimit), Arc<Bucket>>,
    concurrency: moka::sync::Cache<(EndpointId, u32), Arc<Semaphore>>,
    in_flight: Arc<Semaphore>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("free_in_flight", &self.in_flight.available_permits())
            .finish()
    }
}

impl Throttle {
    /// At most `max_in_flight` deliveries at once in this process (at least one).
    pub fn new(max_in_flight: usize) -> Self {
        let idle = Duration::from_secs(600);
        Self {
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(idle)
                .build(),
            concurrency: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(idle)
                .build(),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one delivery to `endpoint`, waiting for a place among the
    /// process's deliveries in flight; or says how long the delivery should
    /// wait in the queue for the endpoint's own limits.
    pub async fn admit(&self, endpoint: &Endpoint) -> Result<Admitted, Wait> {
        let endpoint_slot = match endpoint.max_concurrency {
            Some(max) => Some(self.endpoint_slot(endpoint, max)?),
            None => None,
        };
        if let Some(limit) = endpoint.rate_limit {
            self.take_token(endpoint, limit)?;
        }
        let process_slot = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        Ok(Admitted {
            _endpoint: endpoint_slot,
            _process: process_slot,
        })
    }

    fn endpoint_slot(&self, endpoint: &Endpoint, max: u32) -> Result<OwnedSemaphorePermit, Wait> {
        let slots = self.concurrency.get_with((endpoint.id.clone(), max), || {
            Arc::new(Semaphore::new(max.max(1) as usize))
        });
        slots.try_acquire_owned().map_err(|_| Wait {
            duration: CONCURRENCY_RETRY,
            reason: format!(
                "endpoint {} already has {max} deliveries in flight",
                endpoint.id
            ),
        })
    }

    fn take_token(&self, endpoint: &Endpoint, limit: RateLimit) -> Result<(), Wait> {
        let bucket = self.buckets.get_with((endpoint.id.clone(), limit), || {
            Arc::new(Bucket::new(limit))
        });
        let Err(not_until) = bucket.limiter.check() else {
            return Ok(());
        };
        let earliest = not_until.wait_time_from(self.clock.now());
        let now = Instant::now();
        let mut last_turn = bucket
            .last_turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let turn = (*last_turn + bucket.period).max(now + earliest);
        *last_turn = turn;
        Err(Wait {
            duration: turn - now,
            reason: format!(
                "waiting for the rate limit of endpoint {} ({} per {} s)",
                endpoint.id, limit.requests, limit.per_seconds
            ),
        })
    }
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        let requests = NonZeroU32::new(limit.requests).unwrap_or(NonZeroU32::MIN);
        let window = Duration::from_secs(u64::from(limit.per_seconds.max(1)));
        let period = window / requests.get();
        let quota = Quota::with_period(period)
            .expect("a period of at least a nanosecond")
            .allow_burst(requests);
        Self {
            limiter: DefaultDirectRateLimiter::direct(quota),
            period,
            last_turn: Mutex::new(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RetryPolicy, TenantId};

    fn endpoint(rate_limit: Option<RateLimit>, max_concurrency: Option<u32>) -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            tenant: TenantId::parse("acme").unwrap(),
            name: "crm".into(),
            url: "https://crm.example/hook".into(),
            method: "POST".into(),
            headers: Default::default(),
            auth: None,
            tls: None,
            rate_limit,
            max_concurrency,
            secret: "whsec_x".into(),
            previous_secret: None,
            timeout_ms: 1000,
            retry: RetryPolicy::default(),
            enabled: true,
            disabled_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test]
    async fn a_burst_past_the_rate_gets_successive_turns() {
        let throttle = Throttle::new(DEFAULT_MAX_IN_FLIGHT);
        let limit = RateLimit {
            requests: 4,
            per_seconds: 2,
        };
        let crm = endpoint(Some(limit), None);
        for _ in 0..4 {
            throttle.admit(&crm).await.unwrap();
        }
        let waits: Vec<Duration> = (0..3)
            .map(|_| futures_now(throttle.admit(&crm)).unwrap_err().duration)
            .collect();
        // One token every 500 ms: the refused get turns 500 ms apart.
        for (index, wait) in waits.iter().enumerate() {
            let expected = Duration::from_millis(500 * (index as u64 + 1));
            assert!(
                wait.abs_diff(expected) < Duration::from_millis(50),
                "turn {index}: {wait:?}"
            );
        }
        let reason = futures_now(throttle.admit(&crm)).unwrap_err().reason;
        assert!(reason.contains("(4 per 2 s)"), "{reason}");
        // Another endpoint has a bucket of its own.
        throttle.admit(&endpoint(Some(limit), None)).await.unwrap();
    }

    #[tokio::test]
    async fn an_endpoints_concurrency_and_the_process_maximum_hold() {
        let throttle = Throttle::new(2);
        let crm = endpoint(None, Some(1));
        let first = throttle.admit(&crm).await.unwrap();
        let refused = futures_now(throttle.admit(&crm)).unwrap_err();
        assert_eq!(refused.duration, CONCURRENCY_RETRY);
        drop(first);
        let _again = throttle.admit(&crm).await.unwrap();

        let other = endpoint(None, None);
        let _second = throttle.admit(&other).await.unwrap();
        // Two in flight: a third waits for a place instead of failing.
        let third = tokio::time::timeout(Duration::from_millis(100), throttle.admit(&other)).await;
        assert!(third.is_err(), "the process maximum let a third through");
    }

    /// The outcome of `admit` when it is decided without waiting.
    fn futures_now<T>(future: impl std::future::Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("admit waited"),
        }
    }
}
