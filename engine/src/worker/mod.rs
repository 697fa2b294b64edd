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
//! batches. Each time it claims, the worker asks the store which batches are due, claims the ready ones
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
//! The claim loop and the recording of outcomes are here; `attempt` is one
//! delivery's attempt, `batches` the batching lane, `targets` the short-lived
//! caches of subscriptions, endpoints and chains, and `outcome` the rules that
//! turn what happened into the delivery's next state.

mod attempt;
mod batches;
mod circuits;
mod interrupted;
mod outcome;
mod targets;

use crate::delivery::{Outbound, Places};
use crate::ingest::Ingest;
use crate::model::{Delivery, DeliveryStatus, Event, EventId, TenantId, UnixMillis, now_millis};
use crate::runtime::PluginRuntime;
use crate::store::{DeliveryUpdate, EndpointCall, Store};
use outcome::Step;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use targets::ObjectCaches;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

/// How a worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries claimed per round trip to the database, at most (fewer when
    /// fewer places are free); batches claimed at once stop once their
    /// members reach this many too.
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

/// How long the recorder waits for more outcomes to join the first before
/// writing them. Every transaction costs a commit (a disk flush on SQLite,
/// where capture waits for the same writer): outcomes written a few at a time
/// as they trickle in cost a commit each, so under load they are gathered.
const RECORD_LINGER: Duration = Duration::from_millis(5);

/// The least time between two claims that found fewer due deliveries than
/// there were places: claiming again at once would cost a transaction for a
/// handful of deliveries, where a moment later it takes all that came due.
const CLAIM_SPACING: Duration = Duration::from_millis(5);

/// Times the outcomes of deliveries are written before they are left to
/// their leases, and the pause before the second try (growing after).
const FINISH_ATTEMPTS: u32 = 3;
const FINISH_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What processing a delivery (or a batch) left to record: the deliveries'
/// new states and the requests made to their endpoint.
#[derive(Default)]
struct Processed {
    updates: Vec<DeliveryUpdate>,
    calls: Vec<EndpointCall>,
}

impl Processed {
    /// Settles `delivery` by `step`, as its attempt number `tried` (see
    /// [`Step::settle`]), and records the request the step made.
    fn settle(&mut self, step: Step, delivery: &Delivery, tried: u32) {
        self.add_call(&step, delivery);
        self.updates.push(step.settle(tried).update(delivery, None));
    }

    /// Records the request `step` made to `delivery`'s endpoint, if it made one.
    fn add_call(&mut self, step: &Step, delivery: &Delivery) {
        if let Some(call) = step.call() {
            self.calls.push(EndpointCall {
                tenant: delivery.tenant.clone(),
                endpoint_id: delivery.endpoint_id.clone(),
                call,
            });
        }
    }

    fn extend(&mut self, other: Processed) {
        self.updates.extend(other.updates);
        self.calls.extend(other.calls);
    }
}

/// What a delivery (or a batch) left to record, and the place it held.
struct Finished {
    processed: Processed,
    place: Option<Places>,
}

pub struct Worker {
    store: Store,
    runtime: Arc<PluginRuntime>,
    outbound: Outbound,
    wake: Arc<Notify>,
    /// Where operational events (`weft.endpoint.disabled`) are published.
    ingest: Ingest,
    config: WorkerConfig,
    /// Subscriptions, endpoints and built chains, read through briefly.
    objects: ObjectCaches,
    /// When the soonest retry this worker scheduled falls due
    /// ([`NO_RETRY`]: none), so that an idle worker wakes for it rather
    /// than at its next poll.
    next_retry: AtomicI64,
}

/// [`Worker::next_retry`] when no retry is scheduled.
const NO_RETRY: UnixMillis = UnixMillis::MAX;

/// Counts recorded outcomes and requests in the process's metrics.
fn count_outcomes(processed: &Processed) {
    let metrics = crate::metrics::metrics();
    for update in &processed.updates {
        let outcome = match update.status {
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dropped => "dropped",
            DeliveryStatus::Skipped => "skipped",
            DeliveryStatus::Pending if update.attempt.is_some() => "retried",
            DeliveryStatus::Pending => "waiting",
        };
        metrics
            .deliveries
            .get_or_create(&crate::metrics::OutcomeLabels { outcome })
            .inc();
        if matches!(
            update.status,
            DeliveryStatus::Succeeded | DeliveryStatus::Failed
        ) {
            metrics
                .attempts_per_delivery
                .observe(f64::from(update.attempts));
        }
    }
    for call in &processed.calls {
        metrics
            .request_seconds
            .observe(f64::from(call.call.duration_ms) / 1_000.0);
    }
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
        ingest: Ingest,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            runtime,
            outbound,
            wake: ingest.wake(),
            ingest,
            config,
            objects: ObjectCaches::default(),
            next_retry: AtomicI64::new(NO_RETRY),
        }
    }

    /// Delivers until `shutdown` turns true, then lets the deliveries in
    /// flight finish and records them.
    ///
    /// Claiming is continuous: the worker takes free places among the
    /// process's deliveries in flight, claims as many due deliveries (and
    /// ready batches), and starts each on its own; a place frees the moment
    /// its delivery's outcome is recorded, and the worker claims again. No
    /// delivery waits for another, so a slow receiver holds only its own
    /// places, and claims skip endpoints whose places are all taken.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (finished, outcomes) = mpsc::unbounded_channel();
        let recorded = Arc::new(Notify::new());
        let recorder = tokio::spawn(Arc::clone(&self).record(outcomes, Arc::clone(&recorded)));
        let mut in_flight = JoinSet::new();
        // When the last claim that found less than it had room for ran.
        let mut last_partial_claim: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            while in_flight.try_join_next().is_some() {}
            if let Some(at) = last_partial_claim.take() {
                tokio::select! {
                    () = tokio::time::sleep_until(at + CLAIM_SPACING) => {}
                    _ = shutdown.changed() => break,
                }
            }
            self.watch_circuits().await;
            // Registered before claiming, so that a capture committed while
            // the claim runs still wakes the worker.
            let woken = self.wake.notified();
            let progress = recorded.notified();
            tokio::pin!(woken, progress);
            woken.as_mut().enable();
            progress.as_mut().enable();

            let mut places = tokio::select! {
                places = self.outbound.throttle.places(self.config.batch_size as usize) => places,
                _ = shutdown.changed() => break,
            };
            let now = now_millis();
            // A retry due now is among what this claim takes.
            if self.next_retry.load(Ordering::Relaxed) <= now {
                self.next_retry.store(NO_RETRY, Ordering::Relaxed);
            }
            let claimed_at = tokio::time::Instant::now();
            let mut claimed = self.claim(now, places.count()).await;
            let mut batches = self
                .claim_batches(now, places.count().saturating_sub(claimed.len()))
                .await;
            self.record_interrupted(&mut claimed).await;
            for batch in &mut batches.claimed {
                self.record_interrupted(&mut batch.members).await;
            }
            if claimed.len() + batches.claimed.len() < places.count() {
                last_partial_claim = Some(claimed_at);
            }
            if claimed.is_empty() && batches.claimed.is_empty() {
                drop(places);
                let next_retry =
                    Some(self.next_retry.load(Ordering::Relaxed)).filter(|&at| at != NO_RETRY);
                let pause = [batches.next_ready_at, next_retry]
                    .into_iter()
                    .flatten()
                    .fold(self.config.idle_poll, |pause, at| {
                        let until = u64::try_from(at.saturating_sub(now)).unwrap_or_default();
                        pause.min(Duration::from_millis(until))
                    });
                tokio::select! {
                    _ = woken => {}
                    _ = progress => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let events = Arc::new(self.events_of(&claimed).await);
            for delivery in claimed {
                let place = places.take_one();
                let (worker, events, finished) =
                    (Arc::clone(&self), Arc::clone(&events), finished.clone());
                // Every line logged on its way carries what it is about.
                let span = tracing::info_span!(
                    "delivery",
                    tenant = %delivery.tenant,
                    delivery = %delivery.id,
                    event = %delivery.event_id,
                    endpoint = %delivery.endpoint_id,
                );
                in_flight.spawn(
                    async move {
                        let processed = worker.process(delivery, &events).await;
                        let _ = finished.send(Finished { processed, place });
                    }
                    .instrument(span),
                );
            }
            for batch in batches.claimed {
                let place = places.take_one();
                let (worker, finished) = (Arc::clone(&self), finished.clone());
                let span = batch
                    .members
                    .first()
                    .map_or_else(tracing::Span::none, |first| {
                        tracing::info_span!(
                            "batch",
                            tenant = %first.tenant,
                            batch = %batch.id,
                            endpoint = %first.endpoint_id,
                            deliveries = batch.members.len(),
                        )
                    });
                in_flight.spawn(
                    async move {
                        let processed = worker.process_batch(batch).await;
                        let _ = finished.send(Finished { processed, place });
                    }
                    .instrument(span),
                );
            }
        }
        while in_flight.join_next().await.is_some() {}
        drop(finished);
        let _ = recorder.await;
    }

    /// Leases up to `places` due deliveries, skipping endpoints with no room
    /// for more. A failure is logged: the next claim tries again.
    async fn claim(&self, now: UnixMillis, places: usize) -> Vec<Delivery> {
        if places == 0 {
            return Vec::new();
        }
        let limit = u32::try_from(places).unwrap_or(u32::MAX);
        let skipped = self.outbound.throttle.saturated();
        match self
            .store
            .claim_due_deliveries(now, limit, self.lease_ms(), &skipped)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "cannot claim deliveries");
                Vec::new()
            }
        }
    }

    /// Records outcomes as deliveries finish: whatever finishes within
    /// [`RECORD_LINGER`] of the first goes into one short transaction (on
    /// SQLite a publish waits for the writer while a worker holds it), a
    /// batch's members always together.
    /// Their places are freed once recorded, and `recorded` wakes the claimer:
    /// a finished delivery may let the next of its ordering key go.
    async fn record(
        self: Arc<Self>,
        mut outcomes: mpsc::UnboundedReceiver<Finished>,
        recorded: Arc<Notify>,
    ) {
        while let Some(first) = outcomes.recv().await {
            let gathered_until = tokio::time::Instant::now() + RECORD_LINGER;
            let mut processed = first.processed;
            let mut places = vec![first.place];
            while processed.updates.len() < FINISHED_PER_TRANSACTION {
                // What has already arrived is taken even past the deadline.
                let Ok(Some(next)) = tokio::time::timeout_at(gathered_until, outcomes.recv()).await
                else {
                    break;
                };
                processed.extend(next.processed);
                places.push(next.place);
            }
            self.finish(processed).await;
            drop(places);
            recorded.notify_one();
        }
    }

    /// Records `processed`, trying again a few times if the database fails
    /// (a deadlock with another node's transaction, a dropped connection): an
    /// outcome not recorded waits for its lease to end before the delivery is
    /// tried again. Then follows the circuits' changes.
    async fn finish(&self, processed: Processed) {
        for attempt in 1..=FINISH_ATTEMPTS {
            match self
                .store
                .record_outcomes(processed.updates.clone(), &processed.calls)
                .await
            {
                Ok(changes) => {
                    count_outcomes(&processed);
                    self.expect_retries(&processed);
                    return self.circuits_changed(changes).await;
                }
                Err(error) if attempt < FINISH_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "cannot record delivery results; trying again");
                    tokio::time::sleep(FINISH_RETRY_PAUSE * attempt).await;
                }
                // The leases expire and the deliveries are retried: at-least-once.
                Err(error) => tracing::error!(%error, "cannot record delivery results"),
            }
        }
    }

    /// Remembers when the soonest retry `processed` scheduled falls due. (A
    /// delivery parked behind an open circuit is woken by the circuit, not
    /// by a time.)
    fn expect_retries(&self, processed: &Processed) {
        let soonest = processed
            .updates
            .iter()
            .filter(|update| {
                update.status == DeliveryStatus::Pending
                    && update.attempt.is_some()
                    && update.next_attempt_at < crate::model::PARKED
            })
            .map(|update| update.next_attempt_at)
            .min();
        if let Some(at) = soonest {
            self.next_retry.fetch_min(at, Ordering::Relaxed);
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
