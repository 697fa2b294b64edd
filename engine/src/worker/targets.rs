//! What a delivery goes through, read through short-lived caches: its
//! subscription, its endpoint and the subscription's built chain.

use super::Worker;
use super::outcome::Step;
use crate::model::{Delivery, Endpoint, EndpointId, Subscription, SubscriptionId, TenantId};
use crate::pipeline::chain::SubscriptionChain;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Subscriptions and endpoints are re-read this often, so edits (and other
/// nodes' edits) reach deliveries quickly without a query per delivery.
const OBJECT_CACHE_TTL: Duration = Duration::from_secs(1);

/// The subscription, endpoint and chain a delivery goes through.
pub(super) struct Target {
    pub(super) subscription: Arc<Subscription>,
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) chain: Arc<SubscriptionChain>,
}

/// A worker's caches of configuration objects.
pub(super) struct ObjectCaches {
    chains: moka::future::Cache<(SubscriptionId, i64), Arc<SubscriptionChain>>,
    /// Shared, not cloned, by the deliveries that use them: a subscription
    /// carries its plugins' configs, and a round touches it hundreds of times.
    subscriptions: moka::future::Cache<SubscriptionId, Option<Arc<Subscription>>>,
    pub(super) endpoints: moka::future::Cache<EndpointId, Option<Arc<Endpoint>>>,
}

impl ObjectCaches {
    /// Reads subscription `id` again on its next use.
    pub(super) async fn forget_subscription(&self, id: &SubscriptionId) {
        self.subscriptions.invalidate(id).await;
    }
}

impl Default for ObjectCaches {
    fn default() -> Self {
        Self {
            chains: moka::future::Cache::builder().max_capacity(10_000).build(),
            subscriptions: fresh_cache(),
            endpoints: fresh_cache(),
        }
    }
}

impl Worker {
    /// The delivery's subscription, endpoint and chain, or how the delivery
    /// settles without them.
    pub(super) async fn target(&self, delivery: &Delivery) -> Result<Target, Step> {
        let (tenant, id) = (&delivery.tenant, &delivery.subscription_id);
        let mut subscription = self
            .subscription(tenant, id)
            .await
            .map_err(Step::retry_later)?;
        // A delivery is held only on the subscription as stored now: one
        // released by a resume must not be held again by a cached pause.
        if subscription.as_ref().is_some_and(|s| s.paused.is_some()) {
            self.objects.forget_subscription(id).await;
            subscription = self
                .subscription(tenant, id)
                .await
                .map_err(Step::retry_later)?;
        }
        let Some(subscription) = subscription else {
            return Err(Step::Drop("the subscription was deleted".into()));
        };
        if !subscription.enabled {
            return Err(Step::Drop("the subscription is disabled".into()));
        }
        if let Some(pause) = &subscription.paused {
            return Err(Step::Hold(format!(
                "the subscription is paused ({})",
                pause.reason
            )));
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
            return Err(Step::Skip(format!(
                "skipped: endpoint {} is disabled ({why})",
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

    pub(super) async fn subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<Subscription>>, String> {
        let store = &self.store;
        self.objects
            .subscriptions
            .try_get_with(id.clone(), async move {
                Ok::<_, StoreError>(store.get_subscription(tenant, id).await?.map(Arc::new))
            })
            .await
            .map_err(|e| e.to_string())
    }

    pub(super) async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Arc<Endpoint>>, String> {
        let store = &self.store;
        self.objects
            .endpoints
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
        self.objects
            .chains
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
