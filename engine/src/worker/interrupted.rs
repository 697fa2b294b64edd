//! Deliveries whose previous claim ran out with no outcome recorded: the
//! process holding them died (a `kill -9`, a crash, a lost machine), maybe
//! after its request reached the receiver. The claim is the durable record
//! that an attempt started, so the next claimer records that attempt, as an
//! [`UNKNOWN_OUTCOME`], before trying again: the history never hides that a
//! receiver may already have the delivery, and the retry counts on from it.

use super::Worker;
use crate::model::{Attempt, AttemptId, Delivery, UNKNOWN_OUTCOME};
use std::collections::BTreeMap;

impl Worker {
    /// Records an attempt of unknown outcome for each of `deliveries` that
    /// was [`Delivery::interrupted`], and counts it. If that cannot be
    /// written, the deliveries go on as they are (logged).
    pub(super) async fn record_interrupted(&self, deliveries: &mut [Delivery]) {
        let mut attempts = Vec::new();
        for delivery in deliveries.iter().filter(|d| d.interrupted.is_some()) {
            attempts.push(self.unknown_outcome(delivery).await);
        }
        if attempts.is_empty() {
            return;
        }
        match self.store.record_unknown_outcomes(&attempts).await {
            Ok(()) => {
                for delivery in deliveries.iter_mut().filter(|d| d.interrupted.is_some()) {
                    delivery.attempts += 1;
                }
                tracing::warn!(
                    count = attempts.len(),
                    "claimed deliveries whose last attempt ended with its process: recorded as unknown outcomes"
                );
            }
            Err(error) => {
                tracing::error!(%error, count = attempts.len(), "cannot record attempts of unknown outcome")
            }
        }
    }

    /// The attempt `delivery`'s interrupted claim may have made: to its
    /// endpoint as configured now, started about when that claim began.
    async fn unknown_outcome(&self, delivery: &Delivery) -> Attempt {
        let lease_ended = delivery.interrupted.unwrap_or_default();
        let endpoint = self
            .endpoint(&delivery.tenant, &delivery.endpoint_id)
            .await
            .ok()
            .flatten();
        let (method, url) = endpoint.map_or_else(Default::default, |endpoint| {
            (
                endpoint.method.clone(),
                crate::delivery::redact_url(&endpoint.url),
            )
        });
        let held_ms = self.lease_ms();
        Attempt {
            id: AttemptId::generate(),
            tenant: delivery.tenant.clone(),
            delivery_id: delivery.id.clone(),
            number: delivery.attempts + 1,
            started_at: lease_ended.saturating_sub(i64::from(held_ms)),
            duration_ms: held_ms,
            request_method: method,
            request_url: url,
            request_headers: BTreeMap::new(),
            response_status: None,
            response_headers: BTreeMap::new(),
            response_body: None,
            error: Some(format!(
                "{UNKNOWN_OUTCOME}: the Weft process sending it stopped before recording \
                 the answer, and its claim ran out at {lease_ended} (unix ms); the receiver \
                 may have received it"
            )),
        }
    }
}
