//! What one processing of a delivery decided ([`Step`]) and the state it
//! leaves the delivery in ([`Settled`]): succeeded, failed, dropped, or
//! pending until its next attempt, and whether it counts as an attempt.

use crate::delivery::{Wait, next_attempt_delay};
use crate::health::Call;
use crate::model::{
    Attempt, AttemptId, BatchId, Delivery, DeliveryStatus, EventId, ON_HOLD, PARKED, RetryPolicy,
    UnixMillis, now_millis,
};
use crate::pipeline::chain::ChainOutcome;
use crate::runtime::{Disposition, Request};
use crate::store::DeliveryUpdate;
use std::time::Duration;

pub(super) fn event_gone(id: &EventId) -> Step {
    Step::Fail(format!("event {id} no longer exists"))
}

/// The requests to send, or how the delivery settles when the chain decided
/// there is nothing to send.
pub(super) fn requests_of(outcome: ChainOutcome) -> Result<Vec<Request>, Step> {
    match outcome {
        ChainOutcome::Deliver(requests) => Ok(requests),
        ChainOutcome::Dropped(reason) => Err(Step::Drop(reason)),
        ChainOutcome::Failed {
            disposition: Disposition::Retry,
            reason,
        } => Err(Step::retry_later(reason)),
        ChainOutcome::Failed {
            disposition: Disposition::PauseSubscription,
            reason,
        } => Err(Step::Pause(reason)),
        ChainOutcome::Failed { reason, .. } => Err(Step::Fail(reason)),
    }
}

/// What one processing of a delivery (or of a batch's request) decided.
pub(super) enum Step {
    Delivered(Option<Box<Attempt>>),
    Drop(String),
    Fail(String),
    FailWith {
        reason: String,
        attempt: Box<Attempt>,
    },
    Retry {
        reason: String,
        not_before: Option<Duration>,
        attempt: Option<Box<Attempt>>,
        /// The schedule of the retries.
        policy: RetryPolicy,
    },
    /// Left out of a batch that was full, not attempted: due again at once.
    Requeue(String),
    /// Held back by the endpoint's limits, not attempted: due again after the wait.
    Defer(Wait),
    /// A plugin says the subscription's configuration is wrong: the worker
    /// pauses the subscription, and the delivery is held.
    Pause(String),
    /// Not attempted, and held until its subscription is resumed.
    Hold(String),
    /// Not attempted: its endpoint's circuit is open. Waits, parked, until
    /// the circuit closes.
    Park(String),
    /// Not attempted: its endpoint is disabled. Kept as `skipped`.
    Skip(String),
}

/// The state a step leaves deliveries in, decided once, so that every member
/// of a batch gets the same one (one jitter draw, one `next_attempt_at`).
pub(super) struct Settled {
    status: DeliveryStatus,
    /// Whether it counts as an attempt: a request was made, or the chain
    /// failed in a way worth retrying.
    counted: bool,
    next_attempt_at: UnixMillis,
    last_error: Option<String>,
    attempt: Option<Box<Attempt>>,
}

impl Step {
    /// The database or a cache failed us, not the delivery: try again later
    /// (on the default schedule, as nothing was sent).
    pub(super) fn retry_later(reason: String) -> Self {
        Step::Retry {
            reason,
            not_before: None,
            attempt: None,
            policy: RetryPolicy::default(),
        }
    }

    /// Settles the step as attempt number `tried`, which sets the backoff.
    pub(super) fn settle(self, tried: u32) -> Settled {
        let now = now_millis();
        let settled = |status, counted, next_attempt_at, last_error, attempt| Settled {
            status,
            counted,
            next_attempt_at,
            last_error,
            attempt,
        };
        match self {
            Step::Delivered(attempt) => {
                settled(DeliveryStatus::Succeeded, true, now, None, attempt)
            }
            Step::Drop(reason) => settled(DeliveryStatus::Dropped, false, now, Some(reason), None),
            Step::Skip(reason) => settled(DeliveryStatus::Skipped, false, now, Some(reason), None),
            Step::Park(reason) => settled(
                DeliveryStatus::Pending,
                false,
                PARKED,
                Some(format!("waiting: {reason}")),
                None,
            ),
            Step::Fail(reason) => settled(DeliveryStatus::Failed, false, now, Some(reason), None),
            Step::FailWith { reason, attempt } => settled(
                DeliveryStatus::Failed,
                true,
                now,
                Some(reason),
                Some(attempt),
            ),
            Step::Requeue(reason) => {
                settled(DeliveryStatus::Pending, false, now, Some(reason), None)
            }
            Step::Hold(reason) | Step::Pause(reason) => settled(
                DeliveryStatus::Pending,
                false,
                ON_HOLD,
                Some(format!("held: {reason}")),
                None,
            ),
            Step::Defer(wait) => {
                let due = now
                    .saturating_add(i64::try_from(wait.duration.as_millis()).unwrap_or(i64::MAX));
                settled(DeliveryStatus::Pending, false, due, Some(wait.reason), None)
            }
            Step::Retry {
                reason,
                not_before,
                attempt,
                policy,
            } => match next_attempt_delay(&policy, tried, not_before, &mut rand::rng()) {
                Some(delay) => settled(
                    DeliveryStatus::Pending,
                    true,
                    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                    Some(reason),
                    attempt,
                ),
                None => settled(
                    DeliveryStatus::Failed,
                    true,
                    now,
                    Some(format!("gave up after {tried} attempts: {reason}")),
                    attempt,
                ),
            },
        }
    }
}

impl Step {
    /// The request this step made to its endpoint, for the endpoint's health:
    /// `None` when nothing reached the receiver's side (a chain that dropped
    /// or failed, a credential Weft could not get).
    pub(super) fn call(&self) -> Option<Call> {
        let (attempt, failed) = match self {
            Step::Delivered(Some(attempt)) => (attempt, false),
            Step::FailWith { attempt, .. }
            | Step::Retry {
                attempt: Some(attempt),
                ..
            } => (attempt, true),
            _ => return None,
        };
        Some(Call {
            started_at: attempt.started_at,
            duration_ms: attempt.duration_ms,
            failure: failed.then(|| {
                let error = attempt.error.clone().unwrap_or_else(|| {
                    format!(
                        "the endpoint answered {}",
                        attempt.response_status.unwrap_or_default()
                    )
                });
                (attempt.response_status, error)
            }),
        })
    }
}

impl Settled {
    /// What to record for `delivery`, now in batch `batch_id` (or in none).
    pub(super) fn update(&self, delivery: &Delivery, batch_id: Option<BatchId>) -> DeliveryUpdate {
        DeliveryUpdate {
            tenant: delivery.tenant.clone(),
            delivery_id: delivery.id.clone(),
            status: self.status,
            attempts: delivery.attempts + u32::from(self.counted),
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            attempt: self.attempt.as_deref().map(|attempt| Attempt {
                id: AttemptId::generate(),
                tenant: delivery.tenant.clone(),
                delivery_id: delivery.id.clone(),
                number: delivery.attempts + 1,
                ..attempt.clone()
            }),
            batch_id,
        }
    }
}

/// One outcome for every delivery `step` covered, all of them kept in batch
/// `id`. A batch counts as tried as often as its most-tried member, so no
/// event's request is made more often than its endpoint's policy allows.
pub(super) fn settle_together(
    step: Step,
    members: &[Delivery],
    id: &BatchId,
) -> Vec<DeliveryUpdate> {
    let tried = members
        .iter()
        .map(|member| member.attempts)
        .max()
        .unwrap_or_default()
        + 1;
    let settled = step.settle(tried);
    members
        .iter()
        .map(|member| settled.update(member, Some(id.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Wait;
    use crate::model::{Backoff, DeliveryId, EndpointId, SubscriptionId, TenantId};

    fn delivery(attempts: u32) -> Delivery {
        Delivery {
            id: DeliveryId::generate(),
            tenant: TenantId::parse("acme").unwrap(),
            event_id: EventId::generate(),
            event_type: "sales_order.created".into(),
            subscription_id: SubscriptionId::generate(),
            endpoint_id: EndpointId::generate(),
            status: DeliveryStatus::Pending,
            attempts,
            next_attempt_at: 0,
            last_error: None,
            ordering_key: None,
            batched: false,
            batch_id: None,
            created_at: 0,
            updated_at: 0,
            interrupted: None,
        }
    }

    fn fixed(max_attempts: u32, delay_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff: Backoff::Fixed { delay_ms },
        }
    }

    fn retry(policy: RetryPolicy, not_before: Option<Duration>) -> Step {
        Step::Retry {
            reason: "the endpoint answered 503".into(),
            not_before,
            attempt: None,
            policy,
        }
    }

    /// What a step must leave: status, whether it counted as an attempt, how
    /// long until it is due again (ms, from when it settled), and a fragment
    /// of its last error.
    struct Expected {
        status: DeliveryStatus,
        counted: bool,
        due_in_ms: i64,
        error: Option<&'static str>,
    }

    /// A delivery held until its subscription is resumed.
    const HELD: i64 = -1;
    /// A delivery parked until its endpoint's circuit closes.
    const PARKED_UNTIL_CLOSED: i64 = -2;

    #[test]
    fn each_step_settles_as_the_rules_say() {
        let expect = |status, counted, due_in_ms, error| Expected {
            status,
            counted,
            due_in_ms,
            error,
        };
        let cases: Vec<(&str, Step, u32, Expected)> = vec![
            (
                "delivered",
                Step::Delivered(None),
                1,
                expect(DeliveryStatus::Succeeded, true, 0, None),
            ),
            (
                "dropped by the chain: not an attempt",
                Step::Drop("filter `x` is false".into()),
                1,
                expect(DeliveryStatus::Dropped, false, 0, Some("is false")),
            ),
            (
                "failed before sending: not an attempt",
                Step::Fail("endpoint ep_x no longer exists".into()),
                1,
                expect(DeliveryStatus::Failed, false, 0, Some("no longer")),
            ),
            (
                "left out of a full batch: due again at once, not an attempt",
                Step::Requeue("batch full".into()),
                1,
                expect(DeliveryStatus::Pending, false, 0, Some("batch full")),
            ),
            (
                "held back by the endpoint's limits: due after the wait",
                Step::Defer(Wait {
                    duration: Duration::from_millis(700),
                    reason: "rate limit".into(),
                }),
                1,
                expect(DeliveryStatus::Pending, false, 700, Some("rate limit")),
            ),
            (
                "held while its subscription is paused: never due, not an attempt",
                Step::Hold("the subscription is paused (bad config)".into()),
                1,
                expect(
                    DeliveryStatus::Pending,
                    false,
                    HELD,
                    Some("held: the subscription is paused"),
                ),
            ),
            (
                "parked while its endpoint's circuit is open: never due, not an attempt",
                Step::Park("the circuit of endpoint ep_x is open".into()),
                1,
                expect(
                    DeliveryStatus::Pending,
                    false,
                    PARKED_UNTIL_CLOSED,
                    Some("waiting: the circuit"),
                ),
            ),
            (
                "skipped while its endpoint is disabled: kept, not an attempt",
                Step::Skip("endpoint ep_x is disabled".into()),
                1,
                expect(DeliveryStatus::Skipped, false, 0, Some("disabled")),
            ),
            (
                "a retry within the policy",
                retry(fixed(3, 250), None),
                1,
                expect(DeliveryStatus::Pending, true, 250, Some("503")),
            ),
            (
                "a receiver's Retry-After beyond the policy's delay",
                retry(fixed(3, 250), Some(Duration::from_secs(4))),
                2,
                expect(DeliveryStatus::Pending, true, 4_000, Some("503")),
            ),
            (
                "the last attempt the policy allows",
                retry(fixed(3, 250), None),
                3,
                expect(
                    DeliveryStatus::Failed,
                    true,
                    0,
                    Some("gave up after 3 attempts: the endpoint answered 503"),
                ),
            ),
        ];
        for (name, step, tried, expected) in cases {
            let before = now_millis();
            let settled = step.settle(tried);
            let after = now_millis();
            assert_eq!(settled.status, expected.status, "{name}");
            assert_eq!(settled.counted, expected.counted, "{name}");
            let due = settled.next_attempt_at;
            if expected.due_in_ms == HELD {
                assert_eq!(due, ON_HOLD, "{name}");
            } else if expected.due_in_ms == PARKED_UNTIL_CLOSED {
                assert_eq!(due, PARKED, "{name}");
            } else {
                assert!(
                    due >= before + expected.due_in_ms && due <= after + expected.due_in_ms,
                    "{name}: due at {due}, expected {} ms after {before}",
                    expected.due_in_ms
                );
            }
            match (settled.last_error.as_deref(), expected.error) {
                (None, None) => {}
                (Some(error), Some(fragment)) => {
                    assert!(error.contains(fragment), "{name}: {error}")
                }
                (found, wanted) => panic!("{name}: last error {found:?}, expected {wanted:?}"),
            }
        }
    }

    #[test]
    fn an_update_counts_the_attempt_and_numbers_its_record() {
        let attempt = Attempt {
            id: AttemptId::generate(),
            tenant: TenantId::parse("other").unwrap(),
            delivery_id: DeliveryId::generate(),
            number: 0,
            started_at: 1,
            duration_ms: 2,
            request_method: "POST".into(),
            request_url: "https://crm.example/hooks".into(),
            request_headers: Default::default(),
            response_status: Some(200),
            response_headers: Default::default(),
            response_body: None,
            error: None,
        };
        let third = delivery(2);
        let update = Step::Delivered(Some(Box::new(attempt)))
            .settle(3)
            .update(&third, None);
        assert_eq!(update.attempts, 3);
        let recorded = update.attempt.expect("the attempt is recorded");
        // Filed under the delivery it was made for, whatever it was built with.
        assert_eq!((recorded.number, &recorded.delivery_id), (3, &third.id));
        assert_eq!(recorded.tenant, third.tenant);

        let deferred = Step::Defer(Wait {
            duration: Duration::from_millis(100),
            reason: "busy".into(),
        })
        .settle(3)
        .update(&third, None);
        assert_eq!(deferred.attempts, 2, "a deferral is not an attempt");
    }

    #[test]
    fn a_batch_settles_as_one_counted_as_its_most_tried_member() {
        let members = [delivery(0), delivery(2), delivery(1)];
        let id = BatchId::generate();
        let updates = settle_together(retry(fixed(3, 1_000), None), &members, &id);
        // The most-tried member has had 2: this is the 3rd and last attempt.
        assert!(updates.iter().all(|u| u.status == DeliveryStatus::Failed));
        assert!(
            updates
                .iter()
                .all(|u| u.last_error.as_deref().unwrap().contains("gave up after 3"))
        );

        let updates = settle_together(retry(fixed(5, 1_000), None), &members, &id);
        let due: Vec<UnixMillis> = updates.iter().map(|u| u.next_attempt_at).collect();
        assert!(
            due.windows(2).all(|w| w[0] == w[1]),
            "one retry time: {due:?}"
        );
        assert!(updates.iter().all(|u| u.batch_id.as_ref() == Some(&id)));
        let attempts: Vec<u32> = updates.iter().map(|u| u.attempts).collect();
        assert_eq!(attempts, [1, 3, 2], "each member counts its own attempts");
    }
}
