//! How hard Weft presses receivers, and itself: the process's places for
//! deliveries in flight, each endpoint's share of them (its concurrency
//! limit), and an endpoint's rate limit (a token bucket from governor).
//!
//! A worker takes places among the process's deliveries in flight *before*
//! it claims deliveries ([`Throttle::places`]), one per delivery, and a place
//! frees the moment its delivery's outcome is recorded: a claimed delivery
//! never waits for room while it holds its lease. Each endpoint may fill at
//! most its concurrency limit of them (its `max_concurrency`, or the
//! process's default share), so a slow or hanging receiver costs only its own
//! places: [`Throttle::saturated`] names the endpoints that are full, which
//! claims skip. A delivery that an endpoint's limits do not admit now is not
//! held: the caller puts it back in the queue for the wait
//! [`Throttle::admit`] names. Deliveries refused by the rate limit are given
//! successive turns (the bucket's period apart), so a backlog is spread over
//! time rather than claimed again all at once.
//!
//! Where several nodes share the database, an endpoint's own limits are held
//! there for the whole cluster (see `store::admission`): the process then
//! checks only its places ([`Throttle::admit_place`]), and remembers what the
//! cluster refused ([`Throttle::hold_back`]), so that it neither claims nor
//! asks again for the endpoint before the cluster may admit it.

use crate::model::{Endpoint, EndpointId, RateLimit};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Deliveries in flight in one process unless `weft serve --max-in-flight`
/// says otherwise (the product sheet promises 1,000+ concurrent deliveries).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;

/// The deliveries one endpoint may have in flight in a process unless it sets
/// its own `max_concurrency` (or `weft serve --max-in-flight-per-endpoint`
/// says otherwise): a quarter of the default places, so that receivers that
/// hang can hold up only their own share.
pub const DEFAULT_ENDPOINT_CONCURRENCY: u32 = 256;

/// How long a delivery refused by an endpoint's concurrency limit waits
/// before it is tried again.
const CONCURRENCY_RETRY: Duration = Duration::from_millis(100);

/// Admissions a process asks the database for at once. Each holds one of the
/// pool's connections while it waits for its endpoint's turn, so a busy
/// limited endpoint must not take the connections capture and claims need.
const CLUSTER_ASKS_AT_ONCE: usize = 2;

/// Why a delivery must wait, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub duration: Duration,
    pub reason: String,
}

/// Places among the process's deliveries in flight; dropping frees them.
/// [`Places::take_one`] hands one to each claimed delivery.
#[derive(Debug)]
pub struct Places(Option<OwnedSemaphorePermit>);

impl Places {
    /// How many places are held.
    pub fn count(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// One of the places, for one delivery (or one batch's request).
    pub fn take_one(&mut self) -> Option<Places> {
        let permit = self.0.as_mut()?;
        if permit.num_permits() == 1 {
            return self.0.take().map(|last| Places(Some(last)));
        }
        permit.split(1).map(|one| Places(Some(one)))
    }
}

/// A delivery's place among its endpoint's deliveries in flight; dropping it
/// frees the place.
#[derive(Debug)]
pub struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    endpoint: EndpointId,
    saturated: Arc<Mutex<HashSet<EndpointId>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // Released under the lock that `admit` marks endpoints full under, so
        // that the set never names an endpoint with a free place for long.
        let mut saturated = self
            .saturated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.permit.take();
        saturated.remove(&self.endpoint);
    }
}

/// An endpoint's token bucket, and the last turn given to a delivery it
/// refused.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    /// The time between two tokens.
    period: Duration,
    last_turn: Mutex<Instant>,
}

/// An endpoint whose limits the cluster refused a request: no other is asked
/// for before `until`, and those refused meanwhile get turns `spacing` apart.
struct HeldBack {
    until: Instant,
    spacing: Duration,
    last_turn: Instant,
    reason: String,
}

/// The limits of every endpoint seen recently, shared by a process's workers.
pub struct Throttle {
    buckets: moka::sync::Cache<(EndpointId, RateLimit), Arc<Bucket>>,
    concurrency: moka::sync::Cache<(EndpointId, u32), Arc<Semaphore>>,
    /// Endpoints whose every place is taken.
    saturated: Arc<Mutex<HashSet<EndpointId>>>,
    /// Endpoints the cluster's limits refused a request lately.
    held_back: Mutex<HashMap<EndpointId, HeldBack>>,
    /// Turns to ask the database for an admission (see
    /// [`Throttle::ask_the_cluster`]).
    asking: Semaphore,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    endpoint_default: u32,
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
    /// At most `max_in_flight` deliveries at once in this process (at least
    /// one), and at most `per_endpoint` to an endpoint that sets no limit of
    /// its own.
    pub fn new(max_in_flight: usize, per_endpoint: u32) -> Self {
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
            saturated: Arc::default(),
            held_back: Mutex::default(),
            asking: Semaphore::new(CLUSTER_ASKS_AT_ONCE),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_in_flight: max_in_flight.max(1),
            endpoint_default: per_endpoint.max(1),
            clock: DefaultClock::default(),
        }
    }

    /// Places taken now among the process's deliveries in flight (a
    /// claiming worker holds a few while it claims).
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Waits for a free place among the process's deliveries in flight, then
    /// takes as many more as are free, up to `wanted` in all.
    pub async fn places(&self, wanted: usize) -> Places {
        let mut places = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        let more = wanted
            .saturating_sub(1)
            .min(self.in_flight.available_permits());
        if let Ok(more) = u32::try_from(more)
            && more > 0
            && let Ok(extra) = Arc::clone(&self.in_flight).try_acquire_many_owned(more)
        {
            places.merge(extra);
        }
        Places(Some(places))
    }

    /// The endpoints with no free place now, and those the cluster's limits
    /// hold back: claims skip their deliveries.
    pub fn saturated(&self) -> Vec<EndpointId> {
        let mut skipped: Vec<EndpointId> = {
            let saturated = self
                .saturated
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            saturated.iter().cloned().collect()
        };
        let now = Instant::now();
        let mut held_back = self
            .held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held_back.retain(|_, held| held.until > now);
        skipped.extend(
            held_back
                .keys()
                .filter(|id| !skipped.contains(id))
                .cloned()
                .collect::<Vec<_>>(),
        );
        skipped
    }

    /// Admits one delivery to `endpoint` under its concurrency and rate
    /// limits, or says how long the delivery should wait in the queue.
    pub fn admit(&self, endpoint: &Endpoint) -> Result<Admitted, Wait> {
        let admitted = self.endpoint_place(endpoint)?;
        if let Some(limit) = endpoint.rate_limit {
            self.take_token(endpoint, limit)?;
        }
        Ok(admitted)
    }

    /// Admits one delivery to `endpoint` among the process's places only,
    /// its own limits being held by the cluster: unless the cluster refused
    /// the endpoint a request lately, in which case the delivery waits for
    /// its turn without asking again.
    pub fn admit_place(&self, endpoint: &Endpoint) -> Result<Admitted, Wait> {
        self.held_back_turn(&endpoint.id)?;
        self.endpoint_place(endpoint)
    }

    /// Waits for this process's turn to ask the database to admit a request:
    /// at most a couple at once, whatever the deliveries in flight.
    pub async fn ask_the_cluster(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.asking
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Remembers that the cluster refused `endpoint` a request (it may admit
    /// none for `held_for`, and the refused request comes back in
    /// `retry_in`), and says how long that request waits.
    pub fn hold_back(
        &self,
        endpoint: &EndpointId,
        held_for: Duration,
        retry_in: Duration,
        spacing: Duration,
        reason: String,
    ) -> Wait {
        let now = Instant::now();
        let mut held_back = self
            .held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held_back.insert(
            endpoint.clone(),
            HeldBack {
                until: now + held_for,
                spacing,
                last_turn: now + retry_in,
                reason: reason.clone(),
            },
        );
        Wait {
            duration: retry_in,
            reason,
        }
    }

    fn held_back_turn(&self, endpoint: &EndpointId) -> Result<(), Wait> {
        let now = Instant::now();
        let mut held_back = self
            .held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(held) = held_back.get_mut(endpoint) else {
            return Ok(());
        };
        if held.until <= now {
            held_back.remove(endpoint);
            return Ok(());
        }
        let turn = (held.last_turn + held.spacing).max(held.until);
        held.last_turn = turn;
        Err(Wait {
            duration: turn - now,
            reason: held.reason.clone(),
        })
    }

    fn endpoint_place(&self, endpoint: &Endpoint) -> Result<Admitted, Wait> {
        let max = endpoint.max_concurrency.unwrap_or(self.endpoint_default);
        let places = self.concurrency.get_with((endpoint.id.clone(), max), || {
            Arc::new(Semaphore::new(max.max(1) as usize))
        });
        let mut saturated = self
            .saturated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Ok(permit) = Arc::clone(&places).try_acquire_owned() else {
            saturated.insert(endpoint.id.clone());
            return Err(Wait {
                duration: CONCURRENCY_RETRY,
                reason: format!(
                    "endpoint {} already has {max} deliveries in flight",
                    endpoint.id
                ),
            });
        };
        if places.available_permits() == 0 {
            saturated.insert(endpoint.id.clone());
        }
        Ok(Admitted {
            permit: Some(permit),
            endpoint: endpoint.id.clone(),
            saturated: Arc::clone(&self.saturated),
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
            .unwrap_or_else(PoisonError::into_inner);
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
            secret_headers: Vec::new(),
            auth: None,
            tls: None,
            rate_limit,
            max_concurrency,
            circuit_breaker: Default::default(),
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

    #[test]
    fn a_burst_past_the_rate_gets_successive_turns() {
        let throttle = Throttle::new(DEFAULT_MAX_IN_FLIGHT, DEFAULT_ENDPOINT_CONCURRENCY);
        let limit = RateLimit {
            requests: 4,
            per_seconds: 2,
        };
        let crm = endpoint(Some(limit), None);
        for _ in 0..4 {
            throttle.admit(&crm).unwrap();
        }
        let waits: Vec<Duration> = (0..3)
            .map(|_| throttle.admit(&crm).unwrap_err().duration)
            .collect();
        // One token every 500 ms: the refused get turns 500 ms apart.
        for (index, wait) in waits.iter().enumerate() {
            let expected = Duration::from_millis(500 * (index as u64 + 1));
            assert!(
                wait.abs_diff(expected) < Duration::from_millis(50),
                "turn {index}: {wait:?}"
            );
        }
        let reason = throttle.admit(&crm).unwrap_err().reason;
        assert!(reason.contains("(4 per 2 s)"), "{reason}");
        // Another endpoint has a bucket of its own.
        throttle.admit(&endpoint(Some(limit), None)).unwrap();
    }

    #[test]
    fn a_full_endpoint_is_named_until_a_place_frees() {
        let throttle = Throttle::new(DEFAULT_MAX_IN_FLIGHT, 2);
        let crm = endpoint(None, Some(1));
        let first = throttle.admit(&crm).unwrap();
        assert_eq!(throttle.saturated(), std::slice::from_ref(&crm.id));
        let refused = throttle.admit(&crm).unwrap_err();
        assert_eq!(refused.duration, CONCURRENCY_RETRY);
        drop(first);
        assert!(throttle.saturated().is_empty());
        let _again = throttle.admit(&crm).unwrap();

        // An endpoint without a limit of its own gets the process's default.
        let erp = endpoint(None, None);
        let _one = throttle.admit(&erp).unwrap();
        let _two = throttle.admit(&erp).unwrap();
        assert!(throttle.admit(&erp).is_err());
        assert_eq!(throttle.saturated().len(), 2);
    }

    #[test]
    fn an_endpoint_the_cluster_refused_is_skipped_and_its_deliveries_get_turns() {
        let throttle = Throttle::new(DEFAULT_MAX_IN_FLIGHT, DEFAULT_ENDPOINT_CONCURRENCY);
        let crm = endpoint(None, None);
        let wait = throttle.hold_back(
            &crm.id,
            Duration::from_secs(10),
            Duration::from_secs(12),
            Duration::from_secs(1),
            "waiting for the rate limit".into(),
        );
        assert_eq!(wait.duration, Duration::from_secs(12));
        assert_eq!(throttle.saturated(), std::slice::from_ref(&crm.id));
        // Refused without asking the cluster, each a turn after the last.
        for expected in [13, 14] {
            let refused = throttle.admit_place(&crm).unwrap_err();
            let expected = Duration::from_secs(expected);
            assert!(
                refused.duration <= expected
                    && refused.duration > expected - Duration::from_secs(1),
                "{refused:?}"
            );
            assert_eq!(refused.reason, "waiting for the rate limit");
        }
        // Other endpoints are not held back; once the time is up, neither is this one.
        throttle.admit_place(&endpoint(None, None)).unwrap();
        throttle.hold_back(
            &crm.id,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            String::new(),
        );
        assert!(throttle.saturated().is_empty());
        throttle.admit_place(&crm).unwrap();
    }

    #[tokio::test]
    async fn places_are_taken_before_claiming_and_freed_one_by_one() {
        let throttle = Throttle::new(3, DEFAULT_ENDPOINT_CONCURRENCY);
        let mut places = throttle.places(10).await;
        assert_eq!(places.count(), 3, "as many as are free, up to the wanted");
        let one = places.take_one().unwrap();
        assert_eq!((one.count(), places.count()), (1, 2));
        // None free: the next taker waits until a delivery ends.
        let waiting = tokio::time::timeout(Duration::from_millis(50), throttle.places(1)).await;
        assert!(waiting.is_err(), "a fourth place was given");
        drop(one);
        let freed = throttle.places(5).await;
        assert_eq!(freed.count(), 1);
        let (_a, _b) = (places.take_one().unwrap(), places.take_one().unwrap());
        assert!(places.take_one().is_none());
    }
}
