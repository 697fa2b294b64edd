//! The delivery worker: claims due deliveries, runs each through its
//! subscription's chain, sends the requests, and records what happened.
//!
//! Workers coordinate only through the database (leases on claimed rows), so
//! several can run in one process and several Weft nodes can share one
//! PostgreSQL. A crash leaves claimed rows leased; the lease expires and another
//! worker retries them: delivery is at-least-once, and receivers deduplicate on
//! `webhook-id`.

use crate::delivery::{HttpSender, OutboundRequest, SendResult};
use crate::delivery::{Verdict, classify, next_attempt_delay};
use crate::delivery::{redact_headers, webhook_headers};
use crate::model::{
    Attempt, AttemptId, Delivery, DeliveryStatus, Endpoint, EndpointId,
    MAX_RECORDED_RESPONSE_BYTES, Subscription, SubscriptionId, now_millis,
};
use crate::pipeline::chain::{ChainOutcome, SubscriptionChain};
use crate::runtime::{Disposition, PluginRuntime};
use crate::store::{DeliveryUpdate, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// How a worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries claimed per round trip to the database.
    pub batch_size: u32,
    /// How long a claim holds; a worker that dies releases its rows after this.
    pub lease: Duration,
    /// How long an idle worker sleeps when nothing wakes it (other nodes' events,
    /// retries coming due).
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

pub struct Worker {
    store: Store,
    runtime: Arc<PluginRuntime>,
    sender: HttpSender,
    wake: Arc<Notify>,
    config: WorkerConfig,
    chains: moka::future::Cache<(SubscriptionId, i64), Arc<SubscriptionChain>>,
    subscriptions: moka::future::Cache<SubscriptionId, Option<Subscription>>,
    endpoints: moka::future::Cache<EndpointId, Option<Endpoint>>,
}

/// Subscriptions and endpoints are re-read this often, so edits (and other
/// nodes' edits) reach deliveries quickly without a query per delivery.
const OBJECT_CACHE_TTL: Duration = Duration::from_secs(1);

impl Worker {
    pub fn new(
        store: Store,
        runtime: Arc<PluginRuntime>,
        sender: HttpSender,
        wake: Arc<Notify>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            runtime,
            sender,
            wake,
            config,
            chains: moka::future::Cache::builder().max_capacity(10_000).build(),
            subscriptions: fresh_cache(),
            endpoints: fresh_cache(),
        }
    }

    /// Delivers until `shutdown` turns true, then finishes the batch in hand.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let claimed = match self
                .store
                .claim_due_deliveries(now_millis(), self.config.batch_size, self.lease_ms())
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot claim deliveries");
                    tokio::time::sleep(self.config.idle_poll).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut in_flight = JoinSet::new();
            for delivery in claimed {
                let worker = Arc::clone(&self);
                in_flight.spawn(async move { worker.process(delivery).await });
            }
            let updates: Vec<DeliveryUpdate> = in_flight.join_all().await;
            if let Err(error) = self.store.finish_deliveries(updates).await {
                // The leases expire and the deliveries are retried: at-least-once.
                tracing::error!(%error, "cannot record delivery results");
            }
        }
    }

    fn lease_ms(&self) -> u32 {
        u32::try_from(self.config.lease.as_millis()).unwrap_or(u32::MAX)
    }

    async fn process(&self, delivery: Delivery) -> DeliveryUpdate {
        match self.attempt(&delivery).await {
            Ok(step) => step.into_update(delivery),
            // The database or a cache failed us, not the delivery: try again later.
            Err(reason) => Step::Retry {
                reason,
                not_before: None,
                attempt: None,
            }
            .into_update(delivery),
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Result<Step, String> {
        let store_error = |e: crate::store::StoreError| e.to_string();
        let Some(event) = self
            .store
            .get_event(&delivery.tenant, &delivery.event_id)
            .await
            .map_err(store_error)?
        else {
            return Ok(Step::Fail(format!(
                "event {} no longer exists",
                delivery.event_id
            )));
        };
        let Some(subscription) = self.subscription(delivery).await? else {
            return Ok(Step::Drop("the subscription was deleted".into()));
        };
        if !subscription.enabled {
            return Ok(Step::Drop("the subscription is disabled".into()));
        }
        let Some(endpoint) = self.endpoint(delivery).await? else {
            return Ok(Step::Fail(format!(
                "endpoint {} no longer exists",
                delivery.endpoint_id
            )));
        };
        if !endpoint.enabled {
            let why = endpoint
                .disabled_reason
                .as_deref()
                .unwrap_or("by an administrator");
            return Ok(Step::Fail(format!(
                "endpoint {} is disabled ({why})",
                endpoint.id
            )));
        }
        let chain = self.chain(&subscription).await?;
        let requests = match chain.run(&self.runtime, &event).await {
            ChainOutcome::Deliver(requests) => requests,
            ChainOutcome::Dropped(reason) => return Ok(Step::Drop(reason)),
            ChainOutcome::Failed {
                disposition: Disposition::Retry,
                reason,
            } => {
                return Ok(Step::Retry {
                    reason,
                    not_before: None,
                    attempt: None,
                });
            }
            ChainOutcome::Failed { reason, .. } => return Ok(Step::Fail(reason)),
        };
        let count = requests.len();
        let mut last_attempt = None;
        for (index, request) in requests.into_iter().enumerate() {
            let message_id = if count == 1 {
                delivery.id.to_string()
            } else {
                format!("{}_{index}", delivery.id)
            };
            let outbound = match outbound(&endpoint, &message_id, request) {
                Ok(outbound) => outbound,
                Err(reason) => return Ok(Step::Fail(reason)),
            };
            let started_at = now_millis();
            let (method, url, headers) = (
                outbound.method.clone(),
                outbound.url.clone(),
                redact_headers(&outbound.headers),
            );
            let result = self.sender.send(outbound).await;
            let attempt = attempt_record(delivery, started_at, method, url, headers, &result);
            match classify(&result) {
                Verdict::Delivered => last_attempt = Some(attempt),
                Verdict::Gone => {
                    let reason = format!("{} answered 410 Gone: endpoint disabled", endpoint.url);
                    if let Err(error) = self
                        .store
                        .disable_endpoint(&delivery.tenant, &endpoint.id, &reason, now_millis())
                        .await
                    {
                        tracing::error!(%error, endpoint = %endpoint.id, "cannot disable endpoint");
                    }
                    self.endpoints.invalidate(&endpoint.id).await;
                    return Ok(Step::FailWith { reason, attempt });
                }
                Verdict::Retry { not_before } => {
                    let reason = attempt.error.clone().unwrap_or_else(|| {
                        format!(
                            "the endpoint answered {}",
                            attempt.response_status.unwrap_or_default()
                        )
                    });
                    return Ok(Step::Retry {
                        reason,
                        not_before,
                        attempt: Some((attempt, endpoint.retry)),
                    });
                }
                Verdict::GiveUp(reason) => return Ok(Step::FailWith { reason, attempt }),
            }
        }
        Ok(Step::Delivered(last_attempt))
    }

    async fn subscription(&self, delivery: &Delivery) -> Result<Option<Subscription>, String> {
        let (store, tenant, id) = (&self.store, &delivery.tenant, &delivery.subscription_id);
        self.subscriptions
            .try_get_with(id.clone(), async move {
                store.get_subscription(tenant, id).await
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn endpoint(&self, delivery: &Delivery) -> Result<Option<Endpoint>, String> {
        let (store, tenant, id) = (&self.store, &delivery.tenant, &delivery.endpoint_id);
        self.endpoints
            .try_get_with(
                id.clone(),
                async move { store.get_endpoint(tenant, id).await },
            )
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

/// What one processing of a delivery decided.
enum Step {
    Delivered(Option<Attempt>),
    Drop(String),
    Fail(String),
    FailWith {
        reason: String,
        attempt: Attempt,
    },
    Retry {
        reason: String,
        not_before: Option<Duration>,
        attempt: Option<(Attempt, crate::model::RetryPolicy)>,
    },
}

impl Step {
    fn into_update(self, delivery: Delivery) -> DeliveryUpdate {
        let now = now_millis();
        let update = |status, attempts, next_attempt_at, last_error, attempt| DeliveryUpdate {
            tenant: delivery.tenant.clone(),
            delivery_id: delivery.id.clone(),
            status,
            attempts,
            next_attempt_at,
            last_error,
            attempt,
        };
        let tried = delivery.attempts + 1;
        match self {
            Step::Delivered(attempt) => {
                update(DeliveryStatus::Succeeded, tried, now, None, attempt)
            }
            Step::Drop(reason) => update(
                DeliveryStatus::Dropped,
                delivery.attempts,
                now,
                Some(reason),
                None,
            ),
            Step::Fail(reason) => update(
                DeliveryStatus::Failed,
                delivery.attempts,
                now,
                Some(reason),
                None,
            ),
            Step::FailWith { reason, attempt } => update(
                DeliveryStatus::Failed,
                tried,
                now,
                Some(reason),
                Some(attempt),
            ),
            Step::Retry {
                reason,
                not_before,
                attempt,
            } => {
                // A chain failure (no request sent) is retried on the default schedule.
                let policy = attempt
                    .as_ref()
                    .map(|(_, policy)| *policy)
                    .unwrap_or_default();
                let attempt = attempt.map(|(attempt, _)| attempt);
                match next_attempt_delay(&policy, tried, not_before, &mut rand::rng()) {
                    Some(delay) => update(
                        DeliveryStatus::Pending,
                        tried,
                        now + delay.as_millis() as i64,
                        Some(reason),
                        attempt,
                    ),
                    None => update(
                        DeliveryStatus::Failed,
                        tried,
                        now,
                        Some(format!("gave up after {tried} attempts: {reason}")),
                        attempt,
                    ),
                }
            }
        }
    }
}

/// The request as it leaves: the endpoint's method, URL and headers, the plugin's
/// additions, then Weft's signature headers last so nothing can override them.
fn outbound(
    endpoint: &Endpoint,
    message_id: &str,
    request: crate::runtime::Request,
) -> Result<OutboundRequest, String> {
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
    let signed = webhook_headers(
        message_id,
        now_millis() / 1000,
        &request.body,
        &[endpoint.secret.as_str()],
        &content_type,
    )
    .map_err(|e| format!("cannot sign for endpoint {}: {e}", endpoint.id))?;
    headers.retain(|(name, _)| !signed.iter().any(|(own, _)| own.eq_ignore_ascii_case(name)));
    headers.extend(signed);
    Ok(OutboundRequest {
        method,
        url,
        headers,
        body: request.body.into(),
        timeout: Duration::from_millis(u64::from(endpoint.timeout_ms)),
    })
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

fn attempt_record(
    delivery: &Delivery,
    started_at: i64,
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    result: &SendResult,
) -> Attempt {
    let body = &result.body[..result.body.len().min(MAX_RECORDED_RESPONSE_BYTES)];
    Attempt {
        id: AttemptId::generate(),
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        number: delivery.attempts + 1,
        started_at,
        duration_ms: result.duration.as_millis() as u32,
        request_method: method,
        request_url: url,
        request_headers: headers,
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
