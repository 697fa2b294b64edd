//! Objects to store, complete and valid, for tests to adjust.

use crate::model::{
    Attempt, AttemptId, Delivery, Endpoint, EndpointId, Event, EventId, PluginRef, RetryPolicy,
    Subscription, SubscriptionId, TenantId, UnixMillis,
};
use crate::store::NewEvent;
use serde_json::json;
use std::collections::BTreeMap;

/// A fixed "now", so that times in tests read as offsets from it.
pub(crate) const NOW: UnixMillis = 1_700_000_000_000;

pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub(crate) fn endpoint(tenant: &TenantId) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        tenant: tenant.clone(),
        name: "orders to the CRM".into(),
        url: "https://crm.example.com/hooks/orders".into(),
        method: "POST".into(),
        headers: BTreeMap::from([("x-source".into(), "weft".into())]),
        secret_headers: Vec::new(),
        auth: None,
        tls: None,
        rate_limit: None,
        max_concurrency: None,
        circuit_breaker: Default::default(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        timeout_ms: 10_000,
        retry: RetryPolicy::default(),
        enabled: true,
        disabled_reason: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

pub(crate) fn subscription(endpoint: &Endpoint) -> Subscription {
    Subscription {
        id: SubscriptionId::generate(),
        tenant: endpoint.tenant.clone(),
        name: "large orders".into(),
        endpoint_id: endpoint.id.clone(),
        event_types: vec!["sales_order.*".into(), "payment.received".into()],
        filter: Some("order.total > 100".into()),
        template: Some(json!({ "order_id": "{{ order.id }}" })),
        plugins: vec![PluginRef {
            plugin: "redact-pii".into(),
            version: "1.0.0".into(),
            config: json!({ "fields": ["email"] }),
            limits: Default::default(),
        }],
        batching: None,
        ordering_key: None,
        enabled: true,
        paused: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

pub(crate) fn event(tenant: &TenantId) -> Event {
    Event {
        id: EventId::generate(),
        tenant: tenant.clone(),
        event_type: "sales_order.created".into(),
        occurred_at: NOW - 5,
        received_at: NOW,
        idempotency_key: None,
        payload: json!({ "order": { "id": "SO-1001", "total": 250.5, "lines": [1, 2] } }).into(),
        metadata: BTreeMap::from([("source".into(), "sales".into())]),
    }
}

/// A pending delivery of `event` to `subscription`, due now.
pub(crate) fn delivery(event: &Event, subscription: &Subscription) -> Delivery {
    // Not batched, whatever the subscription says: tests that batch say so.
    Delivery {
        batched: false,
        ..Delivery::pending(event, subscription, None)
    }
}

/// `event` with one pending delivery to `subscription`.
pub(crate) fn new_event(event: Event, subscription: &Subscription) -> NewEvent {
    let deliveries = vec![delivery(&event, subscription)];
    NewEvent { event, deliveries }
}

/// Attempt `number` of `delivery`, answered with `status`.
pub(crate) fn attempt(delivery: &Delivery, number: u32, status: u16) -> Attempt {
    Attempt {
        id: AttemptId::generate(),
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        number,
        started_at: NOW + i64::from(number),
        duration_ms: 42,
        request_method: "POST".into(),
        request_url: "https://crm.example.com/hooks/orders".into(),
        request_headers: BTreeMap::from([("webhook-id".into(), delivery.id.to_string())]),
        response_status: Some(status),
        response_headers: BTreeMap::from([("content-type".into(), "text/plain".into())]),
        response_body: Some("busy".into()),
        error: None,
    }
}

/// Stores an endpoint of `tenant` and a subscription to it.
pub(crate) async fn configured(
    store: &crate::store::Store,
    tenant: &TenantId,
) -> (Endpoint, Subscription) {
    let endpoint = endpoint(tenant);
    store.create_endpoint(&endpoint).await.unwrap();
    let subscription = subscription(&endpoint);
    store.create_subscription(&subscription).await.unwrap();
    (endpoint, subscription)
}
