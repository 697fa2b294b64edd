//! One delivery's attempt: its target, its place under the endpoint's
//! limits, the chain on its event, and each request sent and classified.

use super::outcome::{Step, event_gone, requests_of};
use super::{Processed, RoundEvents, Worker, event_of};
use crate::delivery::{Admitted, Prepared, SendResult, Sent, Wait};
use crate::delivery::{Verdict, attempt_record, classify, prepare, signed};
use crate::model::{AuditEntry, Delivery, Endpoint, now_millis};
use crate::runtime::Request;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a delivery waits when its endpoint's limits could not be checked
/// (the database did not answer).
const ADMISSION_RETRY: Duration = Duration::from_secs(1);

/// Microseconds since the epoch: the cluster's rate limits pace requests
/// finer than milliseconds.
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

impl Worker {
    /// Attempts `delivery` and says what to record of it.
    pub(super) async fn process(&self, delivery: Delivery, events: &RoundEvents) -> Processed {
        let step = self.attempt(&delivery, events).await;
        self.pause_if_asked(&step, &delivery).await;
        let mut processed = Processed::default();
        processed.settle(step, &delivery, delivery.attempts + 1);
        processed
    }

    /// Pauses `delivery`'s subscription if `step` says a plugin found its
    /// configuration wrong: its deliveries are held (this one too) until an
    /// administrator resumes it. Recorded in the audit log.
    pub(super) async fn pause_if_asked(&self, step: &Step, delivery: &Delivery) {
        let Step::Pause(reason) = step else {
            return;
        };
        let (tenant, id) = (&delivery.tenant, &delivery.subscription_id);
        let entry = AuditEntry::by_operator(
            tenant,
            "worker",
            "subscription.pause",
            id,
            Some(serde_json::json!({ "status": "paused", "paused": { "reason": reason } })),
        );
        match self
            .store
            .audited(entry)
            .pause_subscription(tenant, id, reason, now_millis())
            .await
        {
            Ok(true) => {
                tracing::warn!(subscription = %id, %reason, "subscription paused: a plugin reports its configuration wrong")
            }
            Ok(false) => {}
            // The delivery is held all the same; the next one pauses it.
            Err(error) => tracing::error!(%error, subscription = %id, "cannot pause subscription"),
        }
        self.objects.forget_subscription(id).await;
    }

    async fn attempt(&self, delivery: &Delivery, events: &RoundEvents) -> Step {
        let target = match self.target(delivery).await {
            Ok(target) => target,
            Err(step) => return step,
        };
        if let Err(parked) = self
            .circuit_admits(&target.endpoint, std::slice::from_ref(delivery))
            .await
        {
            return parked;
        }
        let _admitted = match self.admit(&target.endpoint, delivery).await {
            Ok(admitted) => admitted,
            Err(wait) => return Step::Defer(wait),
        };
        let event = match events {
            Ok(events) => match event_of(events, delivery) {
                Some(event) => event,
                None => return event_gone(&delivery.event_id),
            },
            Err(error) => return Step::retry_later(error.clone()),
        };
        match requests_of(target.chain.run(&self.runtime, event).await) {
            Ok(requests) => self.send_all(&target.endpoint, delivery, requests).await,
            Err(step) => step,
        }
    }

    /// Admits one request, made for delivery `carrier`, to `endpoint`: a
    /// place among the process's, under the endpoint's own limits. Where
    /// several nodes share the database those limits hold for all of them,
    /// and the database is asked; otherwise the process holds them.
    pub(super) async fn admit(
        &self,
        endpoint: &Endpoint,
        carrier: &Delivery,
    ) -> Result<Admitted, Wait> {
        let throttle = &self.outbound.throttle;
        if !self.store.is_shared() {
            return throttle.admit(endpoint);
        }
        let admitted = throttle.admit_place(endpoint)?;
        if endpoint.rate_limit.is_none() && endpoint.max_concurrency.is_none() {
            return Ok(admitted);
        }
        let asking = throttle.ask_the_cluster().await;
        let decided = self
            .store
            .admit_to_endpoint(endpoint, &carrier.tenant, &carrier.id, now_micros())
            .await;
        drop(asking);
        match decided {
            Ok(Ok(())) => Ok(admitted),
            Ok(Err(refused)) => Err(throttle.hold_back(
                &endpoint.id,
                refused.held_for,
                refused.retry_in,
                refused.spacing,
                refused.reason,
            )),
            Err(error) => Err(Wait {
                duration: ADMISSION_RETRY,
                reason: format!(
                    "cannot check the limits of endpoint {}: {error}",
                    endpoint.id
                ),
            }),
        }
    }

    /// Sends a chain's requests for `delivery`, one after the other; the first
    /// that does not succeed decides the outcome.
    pub(super) async fn send_all(
        &self,
        endpoint: &Endpoint,
        delivery: &Delivery,
        requests: Vec<Request>,
    ) -> Step {
        let count = requests.len();
        let mut last_attempt = None;
        for (index, request) in requests.into_iter().enumerate() {
            let message_id = if count == 1 {
                delivery.id.to_string()
            } else {
                format!("{}_{index}", delivery.id)
            };
            match self.send(endpoint, delivery, &message_id, request).await {
                Step::Delivered(attempt) => last_attempt = attempt,
                other => return other,
            }
        }
        Step::Delivered(last_attempt)
    }

    /// Sends one request signed as message `message_id`, recorded as an
    /// attempt of `delivery` (a batch's members each get a copy). A request
    /// refused with 401 under an OAuth token is sent once more with a new
    /// token.
    pub(super) async fn send(
        &self,
        endpoint: &Endpoint,
        delivery: &Delivery,
        message_id: &str,
        request: Request,
    ) -> Step {
        let prepared = match prepare(endpoint, request) {
            Ok(prepared) => prepared,
            Err(reason) => return Step::Fail(reason),
        };
        let (mut sent, mut result) = match self.exchange(endpoint, message_id, &prepared).await {
            Ok(exchanged) => exchanged,
            Err(step) => return step,
        };
        if result.status == Some(401)
            && let Some(auth) = &endpoint.auth
            && self.outbound.credentials.forget_token(auth).await
        {
            tracing::debug!(endpoint = %endpoint.id, "401 with an OAuth token: fetching a new one");
            (sent, result) = match self.exchange(endpoint, message_id, &prepared).await {
                Ok(exchanged) => exchanged,
                Err(step) => return step,
            };
        }
        let attempt = Box::new(attempt_record(delivery, sent, &result));
        match classify(&result) {
            Verdict::Delivered => Step::Delivered(Some(attempt)),
            Verdict::Gone => {
                let reason = format!(
                    "{} answered 410 Gone: endpoint disabled",
                    crate::delivery::redact_url(&endpoint.url)
                );
                self.disable_gone(endpoint, &reason).await;
                Step::FailWith { reason, attempt }
            }
            Verdict::Retry { not_before } => {
                let reason = attempt.error.clone().unwrap_or_else(|| {
                    format!(
                        "the endpoint answered {}",
                        attempt.response_status.unwrap_or_default()
                    )
                });
                Step::Retry {
                    reason,
                    not_before,
                    attempt: Some(attempt),
                    policy: endpoint.retry,
                }
            }
            Verdict::GiveUp(reason) => Step::FailWith { reason, attempt },
        }
    }

    /// Disables `endpoint`, whose receiver answered 410 Gone: its pending
    /// deliveries are kept as skipped, the audit log and the tenant's stream
    /// (`weft.endpoint.disabled`) say so.
    async fn disable_gone(&self, endpoint: &Endpoint, reason: &str) {
        let (tenant, id) = (&endpoint.tenant, &endpoint.id);
        let entry = AuditEntry::by_operator(
            tenant,
            "worker",
            "endpoint.disable",
            id,
            Some(serde_json::json!({ "enabled": false, "disabled_reason": reason })),
        );
        match self
            .store
            .audited(entry)
            .disable_endpoint(tenant, id, reason, now_millis())
            .await
        {
            Ok(true) => {
                tracing::warn!(%tenant, endpoint = %id, "endpoint disabled: its receiver answered 410 Gone");
                self.announce_disabled(tenant, id, "410 Gone").await;
            }
            Ok(false) => {}
            Err(error) => tracing::error!(%error, endpoint = %id, "cannot disable endpoint"),
        }
        self.objects.endpoints.invalidate(id).await;
    }

    /// Authenticates and signs `prepared`, then sends it. What was sent, as
    /// the attempt records it, and what came back.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        message_id: &str,
        prepared: &Prepared,
    ) -> Result<(Sent, SendResult), Step> {
        let credentials = match &endpoint.auth {
            Some(auth) => self
                .outbound
                .credentials
                .headers(auth, endpoint.tls.as_ref())
                .await
                .map_err(|error| {
                    let reason =
                        format!("cannot authenticate to endpoint {}: {error}", endpoint.id);
                    if error.is_permanent() {
                        return Step::Fail(reason);
                    }
                    // Counted as an attempt on the endpoint's schedule: the
                    // credentials may be fixed, the token server come back.
                    Step::Retry {
                        reason,
                        not_before: None,
                        attempt: None,
                        policy: endpoint.retry,
                    }
                })?,
            None => Vec::new(),
        };
        let (request, sent) =
            signed(endpoint, message_id, prepared, credentials).map_err(Step::Fail)?;
        Ok((sent, self.outbound.sender.send(request).await))
    }
}
