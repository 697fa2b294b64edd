//! The delivery history: filters, newest first, keyset pages, tenant isolation.

use super::backends::on_both_backends;
use super::fixtures::{NOW, configured, delivery, event, tenant};
use crate::model::{Delivery, DeliveryId, DeliveryStatus, Subscription};
use crate::store::{DeliveryQuery, NewEvent, Store, StoreError};

/// Captures `count` deliveries to `subscription`, the i-th created at `NOW + i`
/// and shaped by `shape`; returns them in capture order.
async fn history(
    store: &Store,
    subscription: &Subscription,
    count: usize,
    shape: impl Fn(usize, &mut Delivery),
) -> Vec<Delivery> {
    let mut batch = Vec::new();
    for i in 0..count {
        let mut event = event(&subscription.tenant);
        if i % 2 == 1 {
            event.event_type = "payment.received".into();
        }
        let mut delivery = delivery(&event, subscription);
        delivery.created_at = NOW + i as i64;
        shape(i, &mut delivery);
        batch.push(NewEvent {
            event,
            deliveries: vec![delivery],
        });
    }
    store.insert_events(&batch).await.unwrap();
    batch.into_iter().flat_map(|new| new.deliveries).collect()
}

fn newest_first<'a>(deliveries: impl IntoIterator<Item = &'a Delivery>) -> Vec<DeliveryId> {
    let mut ids: Vec<DeliveryId> = deliveries.into_iter().map(|d| d.id.clone()).collect();
    ids.reverse();
    ids
}

async fn listed(store: &Store, query: DeliveryQuery) -> Vec<DeliveryId> {
    let tenant = tenant("acme");
    let found = store.list_deliveries(&tenant, &query).await.unwrap();
    found.into_iter().map(|delivery| delivery.id).collect()
}

#[tokio::test]
async fn every_filter_narrows_the_history() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, first) = configured(&store, &acme).await;
        let (second_endpoint, second) = configured(&store, &acme).await;
        let to_first = history(&store, &first, 6, |i, delivery| {
            if i >= 4 {
                delivery.status = DeliveryStatus::Failed;
            }
        })
        .await;
        let to_second = history(&store, &second, 2, |_, _| {}).await;
        configured(&store, &tenant("globex")).await;
        let all = || to_first.iter().chain(&to_second);

        assert_eq!(
            listed(&store, DeliveryQuery::default()).await,
            newest_first(all())
        );
        let failed = DeliveryQuery {
            status: Some(DeliveryStatus::Failed),
            ..DeliveryQuery::default()
        };
        assert_eq!(listed(&store, failed).await, newest_first(&to_first[4..]));
        let by_endpoint = DeliveryQuery {
            endpoint_id: Some(second_endpoint.id.clone()),
            ..DeliveryQuery::default()
        };
        assert_eq!(listed(&store, by_endpoint).await, newest_first(&to_second));
        let by_subscription = DeliveryQuery {
            subscription_id: Some(first.id.clone()),
            ..DeliveryQuery::default()
        };
        assert_eq!(
            listed(&store, by_subscription).await,
            newest_first(&to_first)
        );
        let payments = DeliveryQuery {
            event_type: Some("payment.received".into()),
            ..DeliveryQuery::default()
        };
        let expected = all().filter(|d| d.event_type == "payment.received");
        assert_eq!(listed(&store, payments).await, newest_first(expected));
        let of_event = DeliveryQuery {
            event_id: Some(to_first[2].event_id.clone()),
            ..DeliveryQuery::default()
        };
        assert_eq!(
            listed(&store, of_event).await,
            newest_first(&to_first[2..3])
        );
        let window = DeliveryQuery {
            since: Some(NOW + 1),
            until: Some(NOW + 3),
            subscription_id: Some(first.id.clone()),
            ..DeliveryQuery::default()
        };
        assert_eq!(listed(&store, window).await, newest_first(&to_first[1..3]));
        let combined = DeliveryQuery {
            status: Some(DeliveryStatus::Pending),
            event_type: Some("sales_order.created".into()),
            since: Some(NOW + 1),
            ..DeliveryQuery::default()
        };
        // to_second[0] is a pending order too, but created at NOW.
        assert_eq!(
            listed(&store, combined).await,
            newest_first(&to_first[2..3])
        );
    })
    .await;
}

#[tokio::test]
async fn pages_follow_each_other_without_gaps_or_repeats() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let captured = history(&store, &subscription, 25, |_, _| {}).await;

        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let query = DeliveryQuery {
                limit: 10,
                before: before.clone(),
                ..DeliveryQuery::default()
            };
            let page = listed(&store, query).await;
            if page.is_empty() {
                break;
            }
            before = page.last().cloned();
            pages.push(page);
        }

        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        assert_eq!(pages.concat(), newest_first(&captured));
        let unknown = DeliveryId::generate();
        let query = DeliveryQuery {
            before: Some(unknown.clone()),
            ..DeliveryQuery::default()
        };
        let result = store.list_deliveries(&acme, &query).await;
        assert_eq!(result, Err(StoreError::not_found("delivery", &unknown)));
    })
    .await;
}

#[tokio::test]
async fn another_tenants_history_is_out_of_reach() {
    on_both_backends(|store| async move {
        let (_, theirs) = configured(&store, &tenant("globex")).await;
        let captured = history(&store, &theirs, 3, |_, _| {}).await;
        let acme = tenant("acme");

        assert_eq!(listed(&store, DeliveryQuery::default()).await, vec![]);
        let by_subscription = DeliveryQuery {
            subscription_id: Some(theirs.id.clone()),
            ..DeliveryQuery::default()
        };
        assert_eq!(listed(&store, by_subscription).await, vec![]);
        assert_eq!(
            store.get_delivery(&acme, &captured[0].id).await.unwrap(),
            None
        );
        let cursor = DeliveryQuery {
            before: Some(captured[2].id.clone()),
            ..DeliveryQuery::default()
        };
        let result = store.list_deliveries(&acme, &cursor).await;
        assert_eq!(
            result,
            Err(StoreError::not_found("delivery", &captured[2].id))
        );
    })
    .await;
}
