//! The delivery worker: claims due deliveries, runs each through its
//! subscription's chain, sends the requests, and records what happened.
//!
//! Workers coordinate only through the database (leases on claimed rows), so
//! several can run in one process and several Weft nodes can share one
//! PostgreSQL. A crash leaves claimed rows leased; the lease expires and another
//! worker retries them: delivery is at-least-once, and receivers deduplicate on
//! `webhook-id`.
//!
//! Deliveries of a batching subscription ([`crate::model::Batching`]) leave in
//! batches. Each round the worker asks the store which batches are due, claims the ready ones
//! whole (full, or their longest-due member has waited `max_wait_ms`), runs
//! every member's event through the chain on its own, and sends the results as
//! one JSON array ([`crate::pipeline::batch`]), signed with the batch's id as
//! `webhook-id`. Every member the request carried gets its outcome: succeeded,
//! failed, or pending with one `next_attempt_at` for all, and an attempt record
//! each. A retried batch carries the same members under the same id; the
//! deliveries captured meanwhile form the next batch. A member the chain
//! dropped or failed on leaves the batch and settles on its own, and one whose
//! requests an array cannot carry is sent alone, as without batching.
//!
//! The claim loop is here; `attempt` is one
//! delivery's attempt, `batches` the batching lane, `targets` the short-lived
//! caches of subscriptions, endpoints and chains, and `outcome` the rules that
//! turn what happened into the delivery's next state.

mod attempt;
mod batches;
mod outcome;
mod targets;

use crate::delivery::Outbound;
use crate::model::{Delivery, Event, EventId, TenantId, now_millis};
use crate::runtime::PluginRuntime;
use crate::store::{DeliveryUpdate, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use targets::ObjectCaches;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// How a worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries claimed per round trip to the database; a round stops
    /// claiming batches once their members reach this many too.
    pub batch_size: u32,
    /// How long a claim holds; a worker that dies releases its rows after this.
    pub lease: Duration,
    /// How long an idle worker sleeps when nothing wakes it (other nodes' events,
    /// retries coming due). It wakes earlier when a waiting batch is ready.
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            // Longer than the longest endpoint timeout plus the chain's plugins.
            lease: Duration::from_secs(150),
            idle_poll: Duration::from_millis(200),
        }
    }
}

/// Delivery outcomes recorded per transaction (a batch's members may take it
/// a little over).
const FINISHED_PER_TRANSACTION: usize = 64;

pub struct Worker {
    store: Store,
    runtime: Arc<PluginRuntime>,
    outbound: Outbound,
    wake: Arc<Notify>,
    config: WorkerConfig,
    /// Subscriptions, endpoints and built chains, read through briefly.
    objects: ObjectCaches,
}

/// Events by tenant and id, as [`Worker::events_of`] reads them.
type EventsByTenant = HashMap<TenantId, HashMap<EventId, Event>>;

/// A round's events, or why they could not be read (every delivery of the
/// round is then retried later).
type RoundEvents = Result<EventsByTenant, String>;

/// The event `delivery` is for, if it still exists.
fn event_of<'a>(events: &'a EventsByTenant, delivery: &Delivery) -> Option<&'a Event> {
    events
        .get(&delivery.tenant)
        .and_then(|of_tenant| of_tenant.get(&delivery.event_id))
}

impl Worker {
    pub fn new(
        store: Store,
        runtime: Arc<PluginRuntime>,
        outbound: Outbound,
        wake: Arc<Notify>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            runtime,
            outbound,
            wake,
            config,
            objects: ObjectCaches::default(),
        }
    }

    /// Delivers until `shutdown` turns true, then finishes the round in hand.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let now = now_millis();
            let claimed = match self
                .store
                .claim_due_deliveries(now, self.config.batch_size, self.lease_ms())
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot claim deliveries");
                    tokio::time::sleep(self.config.idle_poll).await;
                    continue;
                }
            };
            let batches = self.claim_batches(now).await;
            if claimed.is_empty() && batches.claimed.is_empty() {
                let pause = batches.next_ready_at.map_or(self.config.idle_poll, |at| {
                    let until_ready = u64::try_from(at.saturating_sub(now)).unwrap_or_default();
                    self.config
                        .idle_poll
                        .min(Duration::from_millis(until_ready))
                });
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut in_flight = JoinSet::new();
            let events = Arc::new(self.events_of(&claimed).await);
            for delivery in claimed {
                let (worker, events) = (Arc::clone(&self), Arc::clone(&events));
                in_flight.spawn(async move { vec![worker.process(delivery, &events).await] });
            }
            for batch in batches.claimed {
                let worker = Arc::clone(&self);
                in_flight.spawn(async move { worker.process_batch(batch).await });
            }
            // A few short transactions rather than one long one: on SQLite a
            // publish waits for the writer while a worker holds it. A batch's
            // members always share a transaction, so they settle as one.
            let mut updates = Vec::new();
            for settled in in_flight.join_all().await {
                updates.extend(settled);
                if updates.len() >= FINISHED_PER_TRANSACTION {
                    self.finish(std::mem::take(&mut updates)).await;
                }
            }
            if !updates.is_empty() {
                self.finish(updates).await;
            }
        }
    }

    async fn finish(&self, updates: Vec<DeliveryUpdate>) {
        if let Err(error) = self.store.finish_deliveries(updates).await {
            // The leases expire and the deliveries are retried: at-least-once.
            tracing::error!(%error, "cannot record delivery results");
        }
    }

    fn lease_ms(&self) -> u32 {
        u32::try_from(self.config.lease.as_millis()).unwrap_or(u32::MAX)
    }

    /// The events of a round's deliveries (or a batch's members), read a few
    /// statements per tenant rather than one per delivery.
    async fn events_of(&self, deliveries: &[Delivery]) -> RoundEvents {
        let mut wanted: HashMap<&TenantId, Vec<&EventId>> = HashMap::new();
        for delivery in deliveries {
            wanted
                .entry(&delivery.tenant)
                .or_default()
                .push(&delivery.event_id);
        }
        let mut events = HashMap::with_capacity(wanted.len());
        for (tenant, mut ids) in wanted {
            ids.sort_unstable();
            ids.dedup();
            let found = self
                .store
                .get_events(tenant, &ids)
                .await
                .map_err(|error| error.to_string())?;
            let by_id = found
                .into_iter()
                .map(|event| (event.id.clone(), event))
                .collect();
            events.insert(tenant.clone(), by_id);
        }
        Ok(events)
    }
}
