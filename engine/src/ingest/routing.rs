//! Which subscriptions an event goes to: those of its tenant that are enabled
//! and whose patterns select its type. Each match becomes a pending delivery,
//! with the subscription's ordering key rendered for the event.
//!
//! Ordering keys are rendered while the publisher waits, so their templates
//! are compiled once per read of the tenant's subscriptions and rendered on
//! [`TEXT_TEMPLATE_FUEL`](crate::pipeline::TEXT_TEMPLATE_FUEL), some
//! microseconds of work; a key longer than [`MAX_ORDERING_KEY_BYTES`] is kept
//! as its digest, so that it orders the same and stays small.

use super::matching::pattern_matches;
use crate::model::{Delivery, DeliveryStatus, Event, Subscription, TenantId};
use crate::pipeline::TextTemplate;
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The longest ordering key stored as it is rendered.
pub const MAX_ORDERING_KEY_BYTES: usize = 256;

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
        let subscriptions = store
            .capturing_subscriptions(tenant)
            .await?
            .into_iter()
            .map(|(subscription, endpoint_enabled)| Routed::new(subscription, endpoint_enabled))
            .collect();
        let subscriptions = Arc::new(TenantSubscriptions(subscriptions));
        self.0.insert(tenant.clone(), Arc::clone(&subscriptions));
        Ok(subscriptions)
    }

    pub(super) fn invalidate(&self, tenant: &TenantId) {
        self.0.invalidate(tenant);
    }
}

/// One tenant's enabled subscriptions.
pub(super) struct TenantSubscriptions(Vec<Routed>);

/// A subscription, with its ordering key's template compiled.
struct Routed {
    subscription: Subscription,
    ordering_key: Option<TextTemplate>,
    /// Whether its endpoint is enabled: a disabled one's deliveries are kept
    /// as skipped, for an administrator to recover.
    endpoint_enabled: bool,
}

impl Routed {
    fn new(subscription: Subscription, endpoint_enabled: bool) -> Self {
        let ordering_key = subscription.ordering_key.as_deref().and_then(|source| {
            TextTemplate::compile(source)
                .inspect_err(|error| {
                    tracing::warn!(subscription = %subscription.id, %error, "the ordering key does not compile")
                })
                .ok()
        });
        Self {
            subscription,
            ordering_key,
            endpoint_enabled,
        }
    }

    /// The delivery's ordering key for `event`; none if it cannot be rendered.
    fn ordering_key(&self, event: &Event) -> Option<String> {
        let key = self
            .ordering_key
            .as_ref()?
            .render(event)
            .inspect_err(|error| {
                tracing::warn!(subscription = %self.subscription.id, event = %event.id, %error, "no ordering key for this event")
            })
            .ok()?;
        if key.len() <= MAX_ORDERING_KEY_BYTES {
            return Some(key);
        }
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    }
}

impl TenantSubscriptions {
    /// A delivery for every subscription that selects `event`: pending, or
    /// skipped if its endpoint is disabled.
    pub(super) fn deliveries_for(&self, event: &Event) -> Vec<Delivery> {
        self.0
            .iter()
            .filter(|routed| subscribes_to(&routed.subscription, &event.event_type))
            .map(|routed| {
                let delivery =
                    Delivery::pending(event, &routed.subscription, routed.ordering_key(event));
                if routed.endpoint_enabled {
                    return delivery;
                }
                Delivery {
                    status: DeliveryStatus::Skipped,
                    last_error: Some(format!(
                        "skipped: endpoint {} is disabled",
                        delivery.endpoint_id
                    )),
                    ..delivery
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample_event;

    fn routed(ordering_key: &str) -> Routed {
        use crate::model::{EndpointId, SubscriptionId};
        Routed::new(
            Subscription {
                id: SubscriptionId::generate(),
                tenant: TenantId::parse("acme").unwrap(),
                name: "orders in order".into(),
                endpoint_id: EndpointId::generate(),
                event_types: vec!["sales_order.*".into()],
                filter: None,
                template: None,
                plugins: Vec::new(),
                batching: None,
                ordering_key: Some(ordering_key.to_owned()),
                enabled: true,
                paused: None,
                created_at: 0,
                updated_at: 0,
            },
            true,
        )
    }

    #[test]
    fn ordering_keys_are_rendered_and_long_ones_kept_as_digests() {
        let event = sample_event("sales_order.created");
        assert_eq!(
            routed("{{ order.customer_id }}").ordering_key(&event),
            Some("CUST-00042".to_owned())
        );
        let long = routed("{% for i in range(40) %}{{ order.customer_id }}{% endfor %}")
            .ordering_key(&event)
            .unwrap();
        assert!(
            long.starts_with("sha256:") && long.len() == 7 + 64,
            "{long}"
        );
        // The same long key gives the same digest: it still orders.
        let again = routed("{% for i in range(40) %}{{ order.customer_id }}{% endfor %}")
            .ordering_key(&event);
        assert_eq!(again.as_deref(), Some(long.as_str()));
        // A key that would take more than its fuel gives no key, quickly.
        let started = std::time::Instant::now();
        assert_eq!(
            routed("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}").ordering_key(&event),
            None
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
