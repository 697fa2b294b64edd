//! Batching subscriptions' deliveries: which batches are ready, claiming
//! them whole, and sending each as one request.

use super::outcome::{Step, event_gone, requests_of, settle_together};
use super::{EventsByTenant, Processed, Worker, event_of};
use crate::model::{BatchId, Batching, Delivery, UnixMillis};
use crate::pipeline::batch::{
    BatchItem, MAX_BATCH_BODY_BYTES, batch_item, batch_request, elements_that_fit,
};
use crate::pipeline::chain::SubscriptionChain;
use crate::runtime::Request;
use crate::store::DueBatch;
use std::sync::Arc;
use tokio::task::JoinSet;

/// A batch in a worker's hands: its id, which is the request's `webhook-id`,
/// and its members in capture order.
pub(super) struct Batch {
    pub(super) id: BatchId,
    pub(super) members: Vec<Delivery>,
}

/// The batches one round claimed, and when the earliest batch still waiting
/// will be ready (so an idle worker wakes for it, not a poll later).
#[derive(Default)]
pub(super) struct BatchRound {
    pub(super) claimed: Vec<Batch>,
    pub(super) next_ready_at: Option<UnixMillis>,
}

impl Worker {
    /// Claims the batches that are ready: formed batches due again, and new
    /// batches of the subscriptions whose waiting deliveries fill one or have
    /// waited long enough. Failures are logged: the next round tries again.
    /// Each batch takes one of the `places` free.
    pub(super) async fn claim_batches(&self, now: UnixMillis, places: usize) -> BatchRound {
        let mut round = BatchRound::default();
        if places == 0 {
            return round;
        }
        let due = match self.store.due_batches(now, self.config.batch_size).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot find due batches");
                return round;
            }
        };
        let budget = self.config.batch_size as usize;
        let mut members = 0;
        for group in due {
            if members >= budget || round.claimed.len() >= places {
                break;
            }
            if let Some(id) = &group.batch_id {
                match self
                    .store
                    .claim_formed_batch(&group.tenant, id, now, self.lease_ms())
                    .await
                {
                    Ok(claimed) if !claimed.is_empty() => {
                        members += claimed.len();
                        round.claimed.push(Batch {
                            id: id.clone(),
                            members: claimed,
                        });
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, batch = %id, "cannot claim batch"),
                }
                continue;
            }
            let limits = match self.batch_limits(&group).await {
                Ok(limits) => limits,
                Err(error) => {
                    tracing::error!(%error, subscription = %group.subscription_id, "cannot batch");
                    continue;
                }
            };
            let ready_at = group
                .oldest_due_at
                .saturating_add(i64::from(limits.max_wait_ms));
            if group.due < limits.max_events && ready_at > now {
                round.next_ready_at =
                    Some(round.next_ready_at.map_or(ready_at, |at| at.min(ready_at)));
                continue;
            }
            // A backlog may fill several batches; the store decides each one's
            // readiness again on the rows it locks.
            while members < budget && round.claimed.len() < places {
                let id = BatchId::generate();
                match self
                    .store
                    .claim_new_batch(&group, limits, &id, now, self.lease_ms())
                    .await
                {
                    Ok(claimed) if !claimed.is_empty() => {
                        let full = claimed.len() >= limits.max_events as usize;
                        members += claimed.len();
                        round.claimed.push(Batch {
                            id,
                            members: claimed,
                        });
                        if !full {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(error) => {
                        tracing::error!(%error, subscription = %group.subscription_id, "cannot form a batch");
                        break;
                    }
                }
            }
        }
        round
    }

    /// How a group's waiting deliveries are batched: as their subscription
    /// says; at once if it stopped batching, is disabled or is gone, so that
    /// they are sent alone or settled without waiting for a batch to fill.
    async fn batch_limits(&self, group: &DueBatch) -> Result<Batching, String> {
        let subscription = self
            .subscription(&group.tenant, &group.subscription_id)
            .await?;
        let at_once = Batching {
            max_events: self.config.batch_size,
            max_wait_ms: 0,
        };
        Ok(match subscription {
            Some(subscription) if subscription.enabled => subscription.batching.unwrap_or(at_once),
            _ => at_once,
        })
    }

    /// Runs every member of `batch` through the chain, sends the batch request
    /// and settles each member.
    pub(super) async fn process_batch(self: Arc<Self>, batch: Batch) -> Processed {
        let Batch { id, members } = batch;
        let Some(first) = members.first() else {
            return Processed::default();
        };
        // Nothing was sent unless the chains ran; the batch settles as one,
        // and is retried as one.
        let unsent = |step| Processed {
            updates: settle_together(step, &members, &id),
            calls: Vec::new(),
        };
        let target = match self.target(first).await {
            Ok(target) => target,
            Err(step) => return unsent(step),
        };
        if target.subscription.batching.is_none() {
            // Captured while the subscription batched; it no longer does.
            return self.process_alone(members).await;
        }
        if let Err(parked) = self.circuit_admits(&target.endpoint, &members).await {
            return unsent(parked);
        }
        // A batch is one request: it takes one place under the limits.
        let _admitted = match self.admit(&target.endpoint, first).await {
            Ok(admitted) => admitted,
            Err(wait) => return unsent(Step::Defer(wait)),
        };
        let events = match self.events_of(&members).await {
            Ok(events) => events,
            Err(error) => return unsent(Step::retry_later(error)),
        };
        let outcomes = self.run_chains(&target.chain, &members, &events).await;

        let mut processed = Processed::default();
        let mut elements = Vec::with_capacity(members.len());
        let mut alone = Vec::new();
        for (member, outcome) in members.iter().zip(outcomes) {
            match outcome.map(batch_item) {
                Ok(BatchItem::Element(body)) => elements.push((member, body)),
                Ok(BatchItem::Alone(requests)) => alone.push((member, requests)),
                Err(step) => {
                    self.pause_if_asked(&step, member).await;
                    processed.settle(step, member, member.attempts + 1);
                }
            }
        }
        let fit = elements_that_fit(elements.iter().map(|(_, body)| body.len()));
        for (member, _) in elements.split_off(fit) {
            let step = Step::Requeue(format!(
                "batch {id} reached {MAX_BATCH_BODY_BYTES} bytes: waiting for the next batch"
            ));
            processed.settle(step, member, member.attempts);
        }
        if let Some(&(first_carried, _)) = elements.first() {
            let request = batch_request(elements.iter().map(|(_, body)| body.as_slice()));
            let step = self
                .send(&target.endpoint, first_carried, id.as_str(), request)
                .await;
            // One request: one call, whichever member carries it.
            processed.add_call(&step, first_carried);
            let carried: Vec<Delivery> = elements
                .into_iter()
                .map(|(member, _)| member.clone())
                .collect();
            processed
                .updates
                .extend(settle_together(step, &carried, &id));
        }
        for (member, requests) in alone {
            let step = self.send_all(&target.endpoint, member, requests).await;
            processed.settle(step, member, member.attempts + 1);
        }
        processed
    }

    /// Processes each delivery as if it had never been batched.
    async fn process_alone(self: Arc<Self>, deliveries: Vec<Delivery>) -> Processed {
        let mut in_flight = JoinSet::new();
        let events = Arc::new(self.events_of(&deliveries).await);
        for delivery in deliveries {
            let (worker, events) = (Arc::clone(&self), Arc::clone(&events));
            in_flight.spawn(async move { worker.process(delivery, &events).await });
        }
        let mut processed = Processed::default();
        for one in in_flight.join_all().await {
            processed.extend(one);
        }
        processed
    }

    /// Runs the chain on each member's event, concurrently (plugins run on the
    /// runtime's own pool), and returns the outcomes in the members' order.
    async fn run_chains(
        &self,
        chain: &Arc<SubscriptionChain>,
        members: &[Delivery],
        events: &EventsByTenant,
    ) -> Vec<Result<Vec<Request>, Step>> {
        let mut runs = JoinSet::new();
        let mut outcomes: Vec<Option<Result<Vec<Request>, Step>>> = Vec::new();
        for (index, member) in members.iter().enumerate() {
            match event_of(events, member) {
                Some(event) => {
                    let (chain, runtime, event) =
                        (Arc::clone(chain), Arc::clone(&self.runtime), event.clone());
                    runs.spawn(async move { (index, chain.run(&runtime, &event).await) });
                    outcomes.push(None);
                }
                None => outcomes.push(Some(Err(event_gone(&member.event_id)))),
            }
        }
        for (index, outcome) in runs.join_all().await {
            outcomes[index] = Some(requests_of(outcome));
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| Err(Step::retry_later("the chain did not run".into())))
            })
            .collect()
    }
}
