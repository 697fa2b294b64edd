//! An endpoint's own limits held for a cluster: two stores on one PostgreSQL
//! database stand for two nodes, and what one admits counts for the other.

use super::backends::{connect, on_both_databases};
use super::fixtures::{configured, new_event, tenant};
use crate::model::{Delivery, DeliveryStatus, Endpoint, RateLimit, Subscription, now_millis};
use crate::store::{DeliveryUpdate, EndpointRefusal, Store};

const LEASE_MS: u32 = 30_000;

/// Captures `count` deliveries to `subscription`, due now.
async fn capture(store: &Store, subscription: &Subscription, count: usize) -> Vec<Delivery> {
    let batch: Vec<_> = (0..count)
        .map(|_| {
            let mut new = new_event(super::fixtures::event(&subscription.tenant), subscription);
            new.deliveries[0].next_attempt_at = now_millis() - 1;
            new
        })
        .collect();
    store.insert_events(&batch).await.unwrap();
    batch.into_iter().flat_map(|new| new.deliveries).collect()
}

fn succeeded(delivery: &Delivery) -> DeliveryUpdate {
    DeliveryUpdate {
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        status: DeliveryStatus::Succeeded,
        attempts: 1,
        next_attempt_at: now_millis(),
        last_error: None,
        attempt: None,
        batch_id: None,
    }
}

fn micros(millis: i64) -> i64 {
    millis * 1_000
}

/// Asks `store` (a node) to admit a request of `delivery` to `endpoint` at
/// `at_us` microseconds.
async fn admit(
    store: &Store,
    endpoint: &Endpoint,
    delivery: &Delivery,
    at_us: i64,
) -> Result<(), EndpointRefusal> {
    store
        .admit_to_endpoint(endpoint, &delivery.tenant, &delivery.id, at_us)
        .await
        .unwrap()
}

async fn limited(store: &Store, change: impl FnOnce(&mut Endpoint)) -> (Endpoint, Subscription) {
    let (mut endpoint, subscription) = configured(store, &tenant("acme")).await;
    change(&mut endpoint);
    store.update_endpoint(&endpoint).await.unwrap();
    (endpoint, subscription)
}

#[tokio::test]
async fn a_concurrency_limit_holds_for_two_nodes_and_frees_with_outcomes_and_leases() {
    on_both_databases(|url| async move {
        let (one, two) = (connect(&url).await, connect(&url).await);
        if url.starts_with("sqlite:") {
            // One node per file: the process holds the limits.
            assert!(!one.is_shared());
            return;
        }
        assert!(one.is_shared());
        let (endpoint, subscription) = limited(&one, |e| e.max_concurrency = Some(2)).await;
        capture(&one, &subscription, 3).await;
        let now = now_millis();
        let mine = one
            .claim_due_deliveries(now, 2, LEASE_MS, &[])
            .await
            .unwrap();
        let theirs = two
            .claim_due_deliveries(now, 2, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!((mine.len(), theirs.len()), (2, 1));
        let admit = |store, delivery, at| admit(store, &endpoint, delivery, micros(at));
        for delivery in &mine {
            admit(&one, delivery, now).await.unwrap();
        }
        let refused = admit(&two, &theirs[0], now).await.unwrap_err();
        assert!(
            refused
                .reason
                .contains("already has 2 deliveries in flight in the whole cluster"),
            "{refused:?}"
        );
        // Asking again for one already admitted does not count it twice.
        admit(&one, &mine[0], now).await.unwrap();

        // An outcome recorded frees its place, for the other node too.
        one.finish_deliveries(vec![succeeded(&mine[0])])
            .await
            .unwrap();
        admit(&two, &theirs[0], now).await.unwrap();
        assert!(
            admit(&one, &mine[0], now).await.is_err(),
            "the place was given twice"
        );

        // Once the leases have run out (their nodes died), nothing counts:
        // the deliveries claimed again wait to be admitted like the new ones.
        let later = now + i64::from(LEASE_MS) + 1;
        capture(&one, &subscription, 1).await;
        let claimed = two
            .claim_due_deliveries(later, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3, "the two leased before and the new one");
        admit(&two, &claimed[0], later).await.unwrap();
        admit(&two, &claimed[1], later).await.unwrap();
        assert!(admit(&one, &claimed[2], later).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_holds_for_two_nodes_and_gives_each_refusal_its_own_turn() {
    on_both_databases(|url| async move {
        if url.starts_with("sqlite:") {
            return assert!(!connect(&url).await.is_shared());
        }
        let (one, two) = (connect(&url).await, connect(&url).await);
        let limit = RateLimit {
            requests: 2,
            per_seconds: 60,
        };
        let (endpoint, subscription) = limited(&one, |e| e.rate_limit = Some(limit)).await;
        let deliveries = capture(&one, &subscription, 4).await;
        let now = micros(now_millis());
        let admit = |store, delivery| admit(store, &endpoint, delivery, now);
        // The burst is the cluster's: one node's request and the other's.
        admit(&one, &deliveries[0]).await.unwrap();
        admit(&two, &deliveries[1]).await.unwrap();
        let first = admit(&one, &deliveries[2]).await.unwrap_err();
        let second = admit(&two, &deliveries[3]).await.unwrap_err();
        // One request every 30 s: the next may go in 30 s, and the refused
        // come back one period apart, whichever node refused them.
        assert_eq!(first.held_for.as_secs(), 30, "{first:?}");
        assert_eq!(first.retry_in.as_secs(), 30, "{first:?}");
        assert_eq!(second.retry_in.as_secs(), 60, "{second:?}");
        assert!(first.reason.contains("2 per 60 s"), "{}", first.reason);
    })
    .await;
}

#[tokio::test]
async fn an_idle_endpoint_earns_back_its_burst_and_no_more() {
    on_both_databases(|url| async move {
        if url.starts_with("sqlite:") {
            return assert!(!connect(&url).await.is_shared());
        }
        let store = connect(&url).await;
        let limit = RateLimit {
            requests: 4,
            per_seconds: 2,
        };
        let (endpoint, subscription) = limited(&store, |e| e.rate_limit = Some(limit)).await;
        let deliveries = capture(&store, &subscription, 6).await;
        let admit = |delivery, at| admit(&store, &endpoint, delivery, at);
        let now = micros(now_millis());
        admit(&deliveries[0], now).await.unwrap();
        // A minute idle earns back the whole burst of four, not thirty.
        let later = now + 60_000_000;
        for delivery in &deliveries[1..5] {
            admit(delivery, later).await.unwrap();
        }
        let refused = admit(&deliveries[5], later).await.unwrap_err();
        assert_eq!(refused.held_for.as_millis(), 500, "{refused:?}");
        assert!(refused.reason.contains("4 per 2 s"), "{}", refused.reason);
    })
    .await;
}
