//! Which subscriptions an event goes to: those of its tenant that are enabled
//! and whose patterns select its type. Each match becomes a pending delivery,
//! with the subscription's ordering key rendered for the event.

use super::matching::pattern_matches;
use crate::model::{Delivery, Event, Subscription, TenantId};
use crate::pipeline::render_text;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// How long a tenant's subscriptions are kept in memory. Changes made through
/// this process invalidate them at once; other nodes' changes are seen
/// within this time.
pub(super) const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(2);

/// Whether `subscription` selects events of `event_type`.
pub fn subscribes_to(subscription: &Subscription, event_type: &str) -> bool {
    subscription
        .event_types
        .iter()
        .any(|pattern| pattern_matches(pattern, event_type))
}

/// Each tenant's enabled subscriptions, kept briefly for capture.
#[derive(Clone)]
pub(super) struct SubscriptionsByTenant(moka::sync::Cache<TenantId, Arc<TenantSubscriptions>>);

impl Default for SubscriptionsByTenant {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SUBSCRIPTIONS_TTL)
                .build(),
        )
    }
}

impl SubscriptionsByTenant {
    pub(super) async fn of(
        &self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<Arc<TenantSubscriptions>, StoreError> {
        if let Some(cached) = self.0.get(tenant) {
            return Ok(cached);
        }
        let subscriptions = Arc::new(TenantSubscriptions(
            store.enabled_subscriptions(tenant).await?,
        ));
        self.0.insert(tenant.clone(), Arc::clone(&subscriptions));
        Ok(subscriptions)
    }

    pub(super) fn invalidate(&self, tenant: &TenantId) {
        self.0.invalidate(tenant);
    }
}

/// One tenant's enabled subscriptions.
pub(super) struct TenantSubscriptions(Vec<Subscription>);

impl TenantSubscriptions {
    /// A pending delivery for every subscription that selects `event`.
    pub(super) fn deliveries_for(&self, event: &Event) -> Vec<Delivery> {
        self.0
            .iter()
            .filter(|subscription| subscribes_to(subscription, &event.event_type))
            .map(|subscription| {
                let ordering_key = subscription.ordering_key.as_ref().and_then(|template| {
                    render_text(template, event)
                        .inspect_err(|error| {
                            tracing::warn!(subscription = %subscription.id, event = %event.id, %error, "no ordering key for this event")
                        })
                        .ok()
                });
                Delivery::pending(event, subscription, ordering_key)
            })
            .collect()
    }
}
