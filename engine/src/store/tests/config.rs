//! Endpoints, subscriptions and custom event types: round trips, conflicts,
//! tenant isolation.

use super::backends::on_both_backends;
use super::fixtures::{NOW, configured, endpoint, event, new_event, subscription, tenant};
use crate::model::{
    Backoff, Batching, DeliveryStatus, Endpoint, RateLimit, RetryPolicy, Subscription,
};
use crate::store::{EventTypeRecord, StoreError};
use serde_json::json;

#[tokio::test]
async fn endpoints_round_trip() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let mut stored = endpoint(&acme);
        store.create_endpoint(&stored).await.unwrap();
        assert_eq!(
            store.get_endpoint(&acme, &stored.id).await.unwrap(),
            Some(stored.clone())
        );

        stored.url = "https://crm.example.com/v2/hooks".into();
        stored
            .headers
            .insert("authorization".into(), "Bearer t0k".into());
        stored.retry = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Fixed { delay_ms: 1_000 },
        };
        stored.rate_limit = Some(RateLimit {
            requests: 100,
            per_seconds: 60,
        });
        stored.max_concurrency = Some(4);
        stored.enabled = false;
        stored.disabled_reason = Some("paused by an administrator".into());
        stored.updated_at = NOW + 1;
        store.update_endpoint(&stored).await.unwrap();
        let second = Endpoint {
            created_at: NOW + 1,
            ..endpoint(&acme)
        };
        store.create_endpoint(&second).await.unwrap();

        assert_eq!(
            store
                .list_endpoints(&acme, crate::store::Page::first(100))
                .await
                .unwrap(),
            vec![stored.clone(), second]
        );
        assert_eq!(
            store.create_endpoint(&stored).await,
            Err(StoreError::Conflict(format!(
                "endpoint {} already exists",
                stored.id
            )))
        );
    })
    .await;
}

#[tokio::test]
async fn endpoints_of_another_tenant_are_out_of_reach() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let theirs = endpoint(&acme);
        store.create_endpoint(&theirs).await.unwrap();
        let not_found = Err(StoreError::not_found("endpoint", &theirs.id));

        assert_eq!(store.get_endpoint(&globex, &theirs.id).await.unwrap(), None);
        assert_eq!(
            store
                .list_endpoints(&globex, crate::store::Page::first(100))
                .await
                .unwrap(),
            vec![]
        );
        let mut hijacked = theirs.clone();
        hijacked.tenant = globex.clone();
        assert_eq!(store.update_endpoint(&hijacked).await, not_found);
        assert_eq!(store.delete_endpoint(&globex, &theirs.id).await, not_found);
        let disabled = store
            .disable_endpoint(&globex, &theirs.id, "gone", NOW)
            .await;
        assert_eq!(
            disabled,
            Ok(false),
            "another tenant's endpoint is left alone"
        );
        assert_eq!(
            store.get_endpoint(&acme, &theirs.id).await.unwrap(),
            Some(theirs)
        );
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_in_use_cannot_be_deleted() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, first) = configured(&store, &acme).await;
        let second = subscription(&endpoint);
        store.create_subscription(&second).await.unwrap();

        let Err(StoreError::Conflict(message)) = store.delete_endpoint(&acme, &endpoint.id).await
        else {
            panic!("expected a conflict");
        };
        assert!(message.contains(endpoint.id.as_str()), "{message}");
        assert!(message.contains(first.id.as_str()), "{message}");
        assert!(message.contains(second.id.as_str()), "{message}");

        store.delete_subscription(&acme, &first.id).await.unwrap();
        store.delete_subscription(&acme, &second.id).await.unwrap();
        store.delete_endpoint(&acme, &endpoint.id).await.unwrap();
        assert_eq!(store.get_endpoint(&acme, &endpoint.id).await.unwrap(), None);
        assert_eq!(
            store.delete_endpoint(&acme, &endpoint.id).await,
            Err(StoreError::not_found("endpoint", &endpoint.id))
        );
    })
    .await;
}

#[tokio::test]
async fn disabling_an_endpoint_records_why() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let stored = endpoint(&acme);
        store.create_endpoint(&stored).await.unwrap();

        store
            .disable_endpoint(&acme, &stored.id, "410 Gone", NOW + 7)
            .await
            .unwrap();

        let disabled = store
            .get_endpoint(&acme, &stored.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!disabled.enabled);
        assert_eq!(disabled.disabled_reason.as_deref(), Some("410 Gone"));
        assert_eq!(disabled.updated_at, NOW + 7);
    })
    .await;
}

#[tokio::test]
async fn subscriptions_round_trip() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, mut stored) = configured(&store, &acme).await;
        assert_eq!(
            store.get_subscription(&acme, &stored.id).await.unwrap(),
            Some(stored.clone())
        );

        let other_endpoint = super::fixtures::endpoint(&acme);
        store.create_endpoint(&other_endpoint).await.unwrap();
        stored.endpoint_id = other_endpoint.id.clone();
        stored.filter = None;
        stored.template = None;
        stored.plugins = vec![];
        stored.batching = Some(Batching {
            max_events: 50,
            max_wait_ms: 2_000,
        });
        stored.ordering_key = Some("{{ order.id }}".into());
        stored.updated_at = NOW + 1;
        store.update_subscription(&stored).await.unwrap();
        let second = Subscription {
            created_at: NOW + 1,
            ..subscription(&endpoint)
        };
        store.create_subscription(&second).await.unwrap();

        assert_eq!(
            store
                .list_subscriptions(&acme, crate::store::Page::first(100))
                .await
                .unwrap(),
            vec![stored.clone(), second.clone()]
        );
        assert_eq!(
            store.create_subscription(&second).await,
            Err(StoreError::Conflict(format!(
                "subscription {} already exists",
                second.id
            )))
        );
        store.delete_subscription(&acme, &second.id).await.unwrap();
        assert_eq!(
            store.get_subscription(&acme, &second.id).await.unwrap(),
            None
        );
        assert_eq!(
            store.delete_subscription(&acme, &second.id).await,
            Err(StoreError::not_found("subscription", &second.id))
        );
    })
    .await;
}

#[tokio::test]
async fn a_subscription_needs_an_endpoint_of_its_own_tenant() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let (theirs, _) = configured(&store, &acme).await;
        let mut ours = subscription(&theirs);
        ours.tenant = globex.clone();
        let missing = Err(StoreError::not_found("endpoint", &theirs.id));

        assert_eq!(store.create_subscription(&ours).await, missing);
        assert_eq!(
            store.get_subscription(&globex, &ours.id).await.unwrap(),
            None
        );

        let (_, mut existing) = configured(&store, &globex).await;
        existing.endpoint_id = theirs.id.clone();
        assert_eq!(store.update_subscription(&existing).await, missing);
    })
    .await;
}

#[tokio::test]
async fn subscriptions_of_another_tenant_are_out_of_reach() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let (_, theirs) = configured(&store, &acme).await;
        let (globex_endpoint, _) = configured(&store, &globex).await;
        let not_found = Err(StoreError::not_found("subscription", &theirs.id));

        assert_eq!(
            store.get_subscription(&globex, &theirs.id).await.unwrap(),
            None
        );
        let mut hijacked = theirs.clone();
        hijacked.tenant = globex.clone();
        hijacked.endpoint_id = globex_endpoint.id.clone();
        assert_eq!(store.update_subscription(&hijacked).await, not_found);
        assert_eq!(
            store.delete_subscription(&globex, &theirs.id).await,
            not_found
        );
        assert_eq!(
            store
                .list_subscriptions(&globex, crate::store::Page::first(100))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.get_subscription(&acme, &theirs.id).await.unwrap(),
            Some(theirs)
        );
    })
    .await;
}

#[tokio::test]
async fn ingest_matches_enabled_subscriptions_saying_whose_endpoint_is_disabled() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, live) = configured(&store, &acme).await;
        let mut paused = subscription(&endpoint);
        paused.enabled = false;
        store.create_subscription(&paused).await.unwrap();
        let (gone, to_gone) = configured(&store, &acme).await;
        store
            .disable_endpoint(&acme, &gone.id, "410 Gone", NOW)
            .await
            .unwrap();
        configured(&store, &tenant("globex")).await;

        assert_eq!(
            store.capturing_subscriptions(&acme).await.unwrap(),
            vec![(live, true), (to_gone, false)]
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_subscription_drops_its_pending_deliveries() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let new = new_event(event(&acme), &subscription);
        store
            .insert_events(std::slice::from_ref(&new))
            .await
            .unwrap();

        store
            .delete_subscription(&acme, &subscription.id)
            .await
            .unwrap();

        let kept = store
            .get_delivery(&acme, &new.deliveries[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.status, DeliveryStatus::Dropped);
        let reason = format!("subscription {} was deleted", subscription.id);
        assert_eq!(kept.last_error, Some(reason));
        assert_eq!(
            store
                .claim_due_deliveries(NOW, 10, 1_000, &[])
                .await
                .unwrap(),
            vec![]
        );
    })
    .await;
}

#[tokio::test]
async fn custom_event_types_round_trip_per_tenant() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let card = EventTypeRecord {
            name: "loyalty_card.issued".into(),
            description: "A loyalty card was issued".into(),
            schema: json!({ "type": "object", "required": ["card"] }),
            created_at: NOW,
        };
        let audit = EventTypeRecord {
            name: "audit.logged".into(),
            description: "An audit entry".into(),
            schema: json!({ "type": "object" }),
            created_at: NOW,
        };
        store.put_event_type(&acme, &card).await.unwrap();
        store.put_event_type(&acme, &audit).await.unwrap();

        let revised = EventTypeRecord {
            description: "A loyalty card was issued to a customer".into(),
            schema: json!({ "type": "object", "required": ["card", "customer"] }),
            created_at: NOW + 60_000,
            ..card.clone()
        };
        store.put_event_type(&acme, &revised).await.unwrap();

        let kept = EventTypeRecord {
            created_at: NOW,
            ..revised
        };
        assert_eq!(
            store.get_event_type(&acme, &card.name).await.unwrap(),
            Some(kept.clone())
        );
        assert_eq!(
            store.list_event_types(&acme).await.unwrap(),
            vec![audit, kept]
        );
        assert_eq!(
            store.get_event_type(&globex, &card.name).await.unwrap(),
            None
        );
        assert_eq!(store.list_event_types(&globex).await.unwrap(), vec![]);
    })
    .await;
}
