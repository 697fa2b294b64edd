//! The delivery worker: claims due deliveries, runs each through its
//! subscription's chain, sends the requests, and records what happened.
//!
//! Workers coordinate only through the database (leases on claimed rows), so
//! several can run in one process and several Weft nodes can share one
//! PostgreSQL. A crash leaves claimed rows leased; the lease expires and another
//! worker retries them: delivery is at-least-once, and receivers deduplicate on
//! `webhook-id`.
//!
//! Deliveries of a batching subscription ([`Batching`]) leave in batches. Each
//! round the worker asks the store which batches are due, claims the ready ones
//! whole (full, or their longest-due member has waited `max_wait_ms`), runs
//! every member's event through the chain on its own, and sends the results as
//! one JSON array ([`crate::pipeline::batch`]), signed with the batch's id as
//! `webhook-id`. Every member the request carried gets its outcome: succeeded,
//! failed, or pending with one `next_attempt_at` for all, and an attempt record
//! each. A retried batch carries the same members under the same id; the
//! deliveries captured meanwhile form the next batch. A member the chain
//! dropped or failed on leaves the batch and settles on its own, and one whose
//! requests an array cannot carry is sent alone, as without batching.

use crate::delivery::{Outbound, OutboundRequest, SendResult};
use crate::delivery::{REDACTED, redact_headers, webhook_headers};
use crate::delivery::{Verdict, classify, next_attempt_delay};
use crate::model::{
    Attempt, AttemptId, BatchId, Batching, Delivery, DeliveryStatus, Endpoint, EndpointId, Event,
    EventId, MAX_RECORDED_RESPONSE_BYTES, RetryPolicy, Subscription, SubscriptionId, TenantId,
    UnixMillis, now_millis,
};
use crate::pipeline::batch::{
    BatchItem, MAX_BATCH_BODY_BYTES, batch_item, batch_request, elements_that_fit,
};
use crate::pipeline::chain::{ChainOutcome, SubscriptionChain};
use crate::runtime::{Disposition, PluginRuntime, Request};
use crate::store::{DeliveryUpdate, DueBatch, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
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
    chains: moka::future::Cache<(SubscriptionId, i64), Arc<SubscriptionChain>>,
    /// Shared, not cloned, by the deliveries that use them: a subscription
    /// carries its plugins' configs, and a round touches it hundreds of times.
    subscriptions: moka::future::Cache<SubscriptionId, Option<Arc<Subscription>>>,
    endpoints: moka::future::Cache<EndpointId, Option<Arc<Endpoint>>>,
}

/// Subscriptions and endpoints are re-read this often, so edits (and other
/// nodes' edits) reach deliveries quickly without a query per delivery.
const OBJECT_CACHE_TTL: Duration = Duration::from_secs(1);

/// A batch in a worker's hands: its id, which is the request's `webhook-id`,
/// and its members in capture order.
struct Batch {
    id: BatchId,
    members: Vec<Delivery>,
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

/// The batches one round claimed, and when the earliest batch still waiting
/// will be ready (so an idle worker wakes for it, not a poll later).
#[derive(Default)]
struct BatchRound {
    claimed: Vec<Batch>,
    next_ready_at: Option<UnixMillis>,
}

/// The subscription, endpoint and chain a delivery goes through.
struct Target {
    subscription: Arc<Subscription>,
    endpoint: Arc<Endpoint>,
    chain: Arc<SubscriptionChain>,
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
            chains: moka::future::Cache::builder().max_capacity(10_000).build(),
            subscriptions: fresh_cache(),
            endpoints: fresh_cache(),
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

    /// Claims the batches that are ready: formed batches due again, and new
    /// batches of the subscriptions whose waiting deliveries fill one or have
    /// waited long enough. Failures are logged: the next round tries again.
    async fn claim_batches(&self, now: UnixMillis) -> BatchRound {
        let mut round = BatchRound::default();
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
            if members >= budget {
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
            while members < budget {
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

    async fn process(&self, delivery: Delivery, events: &RoundEvents) -> DeliveryUpdate {
        let step = self.attempt(&delivery, events).await;
        step.settle(delivery.attempts + 1).update(&delivery, None)
    }

    async fn attempt(&self, delivery: &Delivery, events: &RoundEvents) -> Step {
        let target = match self.target(delivery).await {
            Ok(target) => target,
            Err(step) => return step,
        };
        let _admitted = match self.outbound.throttle.admit(&target.endpoint).await {
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

    /// Runs every member of `batch` through the chain, sends the batch request
    /// and settles each member.
    async fn process_batch(self: Arc<Self>, batch: Batch) -> Vec<DeliveryUpdate> {
        let Batch { id, members } = batch;
        let Some(first) = members.first() else {
            return Vec::new();
        };
        let target = match self.target(first).await {
            Ok(target) => target,
            // Nothing was sent; the batch settles as one, and is retried as one.
            Err(step) => return settle_together(step, &members, &id),
        };
        if target.subscription.batching.is_none() {
            // Captured while the subscription batched; it no longer does.
            return self.process_alone(members).await;
        }
        // A batch is one request: it takes one place under the limits.
        let _admitted = match self.outbound.throttle.admit(&target.endpoint).await {
            Ok(admitted) => admitted,
            Err(wait) => return settle_together(Step::Defer(wait), &members, &id),
        };
        let events = match self.events_of(&members).await {
            Ok(events) => events,
            Err(error) => return settle_together(Step::retry_later(error), &members, &id),
        };
        let outcomes = self.run_chains(&target.chain, &members, &events).await;

        let mut updates = Vec::with_capacity(members.len());
        let mut elements = Vec::with_capacity(members.len());
        let mut alone = Vec::new();
        for (member, outcome) in members.iter().zip(outcomes) {
            match outcome.map(batch_item) {
                Ok(BatchItem::Element(body)) => elements.push((member, body)),
                Ok(BatchItem::Alone(requests)) => alone.push((member, requests)),
                Err(step) => updates.push(step.settle(member.attempts + 1).update(member, None)),
            }
        }
        let fit = elements_that_fit(elements.iter().map(|(_, body)| body.len()));
        for (member, _) in elements.split_off(fit) {
            let step = Step::Requeue(format!(
                "batch {id} reached {MAX_BATCH_BODY_BYTES} bytes: waiting for the next batch"
            ));
            updates.push(step.settle(member.attempts).update(member, None));
        }
        if let Some(&(first_carried, _)) = elements.first() {
            let request = batch_request(elements.iter().map(|(_, body)| body.as_slice()));
            let step = self
                .send(&target.endpoint, first_carried, id.as_str(), request)
                .await;
            let carried: Vec<Delivery> = elements
                .into_iter()
                .map(|(member, _)| member.clone())
                .collect();
            updates.extend(settle_together(step, &carried, &id));
        }
        for (member, requests) in alone {
            let step = self.send_all(&target.endpoint, member, requests).await;
            updates.push(step.settle(member.attempts + 1).update(member, None));
        }
        updates
    }

    /// Processes each delivery as if it had never been batched.
    async fn process_alone(self: Arc<Self>, deliveries: Vec<Delivery>) -> Vec<DeliveryUpdate> {
        let mut in_flight = JoinSet::new();
        let events = Arc::new(self.events_of(&deliveries).await);
        for delivery in deliveries {
            let (worker, events) = (Arc::clone(&self), Arc::clone(&events));
            in_flight.spawn(async move { worker.process(delivery, &events).await });
        }
        in_flight.join_all().await
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

    /// The delivery's subscription, endpoint and chain, or how the delivery
    /// settles without them.
    async fn target(&self, delivery: &Delivery) -> Result<Target, Step> {
        let Some(subscription) = self
            .subscription(&delivery.tenant, &delivery.subscription_id)
            .await
            .map_err(Step::retry_later)?
        else {
            return Err(Step::Drop("the subscription was deleted".into()));
        };
        if !subscription.enabled {
            return Err(Step::Drop("the subscription is disabled".into()));
        }
        let Some(endpoint) = self
            .endpoint(&delivery.tenant, &delivery.endpoint_id)
            .await
            .map_err(Step::retry_later)?
        else {
            return Err(Step::Fail(format!(
                "endpoint {} no longer exists",
                delivery.endpoint_id
            )));
        };
        if !endpoint.enabled {
            let why = endpoint
                .disabled_reason
                .as_deref()
                .unwrap_or("by an administrator");
            return Err(Step::Fail(format!(
                "endpoint {} is disabled ({why})",
                endpoint.id
            )));
        }
        let chain = self.chain(&subscription).await.map_err(Step::retry_later)?;
        Ok(Target {
            subscription,
            endpoint,
            chain,
        })
    }

    /// Sends a chain's requests for `delivery`, one after the other; the first
    /// that does not succeed decides the outcome.
    async fn send_all(
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
    async fn send(
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
                let reason = format!("{} answered 410 Gone: endpoint disabled", endpoint.url);
                if let Err(error) = self
                    .store
                    .disable_endpoint(&endpoint.tenant, &endpoint.id, &reason, now_millis())
                    .await
                {
                    tracing::error!(%error, endpoint = %endpoint.id, "cannot disable endpoint");
                }
                self.endpoints.invalidate(&endpoint.id).await;
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

    /// Authenticates and signs `prepared`, then sends it. What was sent, as
    /// the attempt records it, and what came back.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        message_id: &str,
        prepared: &Prepared,
    ) -> Result<(Sent, SendResult), Step> {
        let started_at = now_millis();
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
        let outbound = signed(endpoint, message_id, prepared, credentials).map_err(Step::Fail)?;
        let sent = Sent {
            started_at,
            method: outbound.method.clone(),
            url: outbound.url.clone(),
            headers: recorded_headers(endpoint, &outbound.headers),
        };
        Ok((sent, self.outbound.sender.send(outbound).await))
    }

    async fn subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<Subscription>>, String> {
        let store = &self.store;
        self.subscriptions
            .try_get_with(id.clone(), async move {
                Ok::<_, StoreError>(store.get_subscription(tenant, id).await?.map(Arc::new))
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>, String> {
        let store = &self.store;
        self.endpoints
            .try_get_with(id.clone(), async move {
                Ok::<_, StoreError>(store.get_endpoint(tenant, id).await?.map(Arc::new))
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn chain(&self, subscription: &Subscription) -> Result<Arc<SubscriptionChain>, String> {
        let key = (subscription.id.clone(), subscription.updated_at);
        let build = async {
            SubscriptionChain::build(subscription, &self.store, &self.runtime)
                .await
                .map(Arc::new)
                .map_err(|e| {
                    format!(
                        "subscription {} cannot run: {}: {}",
                        subscription.id, e.field, e.message
                    )
                })
        };
        self.chains
            .try_get_with(key, build)
            .await
            .map_err(|e| e.to_string())
    }
}

fn fresh_cache<K, V>() -> moka::future::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(OBJECT_CACHE_TTL)
        .build()
}

fn event_gone(id: &EventId) -> Step {
    Step::Fail(format!("event {id} no longer exists"))
}

/// The requests to send, or how the delivery settles when the chain decided
/// there is nothing to send.
fn requests_of(outcome: ChainOutcome) -> Result<Vec<Request>, Step> {
    match outcome {
        ChainOutcome::Deliver(requests) => Ok(requests),
        ChainOutcome::Dropped(reason) => Err(Step::Drop(reason)),
        ChainOutcome::Failed {
            disposition: Disposition::Retry,
            reason,
        } => Err(Step::retry_later(reason)),
        ChainOutcome::Failed { reason, .. } => Err(Step::Fail(reason)),
    }
}

/// What one processing of a delivery (or of a batch's request) decided.
enum Step {
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
    Defer(crate::delivery::Wait),
}

/// The state a step leaves deliveries in, decided once, so that every member
/// of a batch gets the same one (one jitter draw, one `next_attempt_at`).
struct Settled {
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
    fn retry_later(reason: String) -> Self {
        Step::Retry {
            reason,
            not_before: None,
            attempt: None,
            policy: RetryPolicy::default(),
        }
    }

    /// Settles the step as attempt number `tried`, which sets the backoff.
    fn settle(self, tried: u32) -> Settled {
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

impl Settled {
    /// What to record for `delivery`, now in batch `batch_id` (or in none).
    fn update(&self, delivery: &Delivery, batch_id: Option<BatchId>) -> DeliveryUpdate {
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
fn settle_together(step: Step, members: &[Delivery], id: &BatchId) -> Vec<DeliveryUpdate> {
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

/// A request as the endpoint and the plugin shape it: the endpoint's method,
/// URL and headers, then the plugin's, before authentication and signature.
struct Prepared {
    request: OutboundRequest,
    content_type: String,
}

fn prepare(endpoint: &Endpoint, request: crate::runtime::Request) -> Result<Prepared, String> {
    let url = resolve_url(&endpoint.url, request.url.as_deref())?;
    let method = request.method.unwrap_or_else(|| endpoint.method.clone());
    let content_type = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map_or("application/json", |(_, value)| value.as_str())
        .to_owned();
    let mut headers: Vec<(String, String)> = endpoint
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.extend(
        request
            .headers
            .into_iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type")),
    );
    Ok(Prepared {
        request: OutboundRequest {
            method,
            url,
            headers,
            body: request.body.into(),
            timeout: Duration::from_millis(u64::from(endpoint.timeout_ms)),
            tls: endpoint.tls.clone(),
        },
        content_type,
    })
}

/// The request as it leaves: `prepared`, then the `credentials` headers, then
/// Weft's signature headers, each replacing any header of the same name
/// before it, so that neither a plugin nor a static header can override them.
fn signed(
    endpoint: &Endpoint,
    message_id: &str,
    prepared: &Prepared,
    credentials: Vec<(String, String)>,
) -> Result<OutboundRequest, String> {
    let mut request = prepared.request.clone();
    let now = now_millis();
    let signature = webhook_headers(
        message_id,
        now / 1000,
        &request.body,
        &endpoint.signing_secrets(now),
        &prepared.content_type,
    )
    .map_err(|e| format!("cannot sign for endpoint {}: {e}", endpoint.id))?;
    for added in [credentials, signature] {
        request
            .headers
            .retain(|(name, _)| !added.iter().any(|(own, _)| own.eq_ignore_ascii_case(name)));
        request.headers.extend(added);
    }
    Ok(request)
}

/// The headers of a request as its attempt records them: credentials
/// redacted, the endpoint's own credential header included whatever its name.
fn recorded_headers(
    endpoint: &Endpoint,
    headers: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    let mut recorded = redact_headers(headers);
    if let Some(auth) = &endpoint.auth
        && let Some(value) = recorded.get_mut(&auth.header_name())
    {
        *value = REDACTED.to_owned();
    }
    recorded
}

/// A plugin may name a path (joined to the endpoint's URL) or an absolute URL on
/// the endpoint's own host; any other host is refused.
fn resolve_url(endpoint_url: &str, requested: Option<&str>) -> Result<String, String> {
    let Some(requested) = requested else {
        return Ok(endpoint_url.to_owned());
    };
    let base: http::Uri = endpoint_url
        .parse()
        .map_err(|e| format!("endpoint URL {endpoint_url:?}: {e}"))?;
    let origin = format!(
        "{}://{}",
        base.scheme_str().unwrap_or("https"),
        base.authority().map_or("", |a| a.as_str())
    );
    if requested.starts_with('/') {
        return Ok(format!("{origin}{requested}"));
    }
    let target: http::Uri = requested
        .parse()
        .map_err(|e| format!("plugin URL {requested:?}: {e}"))?;
    if target.scheme() == base.scheme() && target.authority() == base.authority() {
        Ok(requested.to_owned())
    } else {
        Err(format!(
            "the plugin asked to send to {requested}, outside the endpoint's origin {origin}"
        ))
    }
}

/// A request as its attempt records it: when it started, its method and URL,
/// its headers with the credentials redacted.
struct Sent {
    started_at: UnixMillis,
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
}

fn attempt_record(delivery: &Delivery, sent: Sent, result: &SendResult) -> Attempt {
    let body = &result.body[..result.body.len().min(MAX_RECORDED_RESPONSE_BYTES)];
    Attempt {
        id: AttemptId::generate(),
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        number: delivery.attempts + 1,
        started_at: sent.started_at,
        duration_ms: result.duration.as_millis() as u32,
        request_method: sent.method,
        request_url: sent.url,
        request_headers: sent.headers,
        response_status: result.status,
        response_headers: result.headers.iter().cloned().collect(),
        response_body: result
            .status
            .map(|_| String::from_utf8_lossy(body).into_owned()),
        error: result.error.as_ref().map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_urls_stay_on_the_endpoints_origin() {
        let base = "https://api.example.com/hooks/weft";
        let cases = [
            (None, Ok("https://api.example.com/hooks/weft")),
            (
                Some("/services/data/v61.0/x"),
                Ok("https://api.example.com/services/data/v61.0/x"),
            ),
            (
                Some("https://api.example.com/other"),
                Ok("https://api.example.com/other"),
            ),
            (
                Some("https://evil.example.net/x"),
                Err("outside the endpoint's origin"),
            ),
            (
                Some("http://api.example.com/x"),
                Err("outside the endpoint's origin"),
            ),
        ];
        for (requested, expected) in cases {
            match (resolve_url(base, requested), expected) {
                (Ok(url), Ok(expected)) => assert_eq!(url, expected),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                (other, expected) => panic!("{requested:?}: {other:?}, expected {expected:?}"),
            }
        }
    }
}
