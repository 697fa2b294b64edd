//! Capture: schema set-up, batches, idempotency, tenant isolation.

use super::backends::on_both_backends;
use super::fixtures::{configured, delivery, event, new_event, tenant};
use crate::store::{DeliveryQuery, IngestOutcome, NewEvent, StoreError};

#[tokio::test]
async fn a_batch_stores_its_events_and_their_deliveries() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let batch: Vec<NewEvent> = (0..250)
            .map(|_| new_event(event(&acme), &subscription))
            .collect();

        let outcomes = store.insert_events(&batch).await.unwrap();

        let created: Vec<IngestOutcome> = batch
            .iter()
            .map(|new| IngestOutcome::Created(new.event.id.clone()))
            .collect();
        assert_eq!(outcomes, created);
        for new in &batch {
            let stored = store.get_event(&acme, &new.event.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(&new.event));
            let delivery = &new.deliveries[0];
            let stored = store.get_delivery(&acme, &delivery.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(delivery));
        }
    })
    .await;
}

#[tokio::test]
async fn a_batch_that_fails_writes_nothing() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let good = new_event(event(&acme), &subscription);
        let mut bad = new_event(event(&acme), &subscription);
        // The same delivery id twice breaks a unique constraint mid-batch.
        let mut clash = delivery(&bad.event, &subscription);
        clash.id = bad.deliveries[0].id.clone();
        bad.deliveries.push(clash);

        let result = store.insert_events(&[good.clone(), bad.clone()]).await;

        assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
        assert_eq!(store.get_event(&acme, &good.event.id).await.unwrap(), None);
        assert_eq!(store.get_event(&acme, &bad.event.id).await.unwrap(), None);
        let deliveries = store
            .list_deliveries(&acme, &DeliveryQuery::default())
            .await
            .unwrap();
        assert_eq!(deliveries, vec![]);
    })
    .await;
}

#[tokio::test]
async fn an_event_id_seen_before_is_a_duplicate_without_deliveries() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let original = new_event(event(&acme), &subscription);
        store
            .insert_events(std::slice::from_ref(&original))
            .await
            .unwrap();

        // A retry with the same id, in a later batch and twice in this one:
        // received again, later, but the same event.
        let mut retry = new_event(original.event.clone(), &subscription);
        retry.event.received_at += 1_000;
        let fresh = new_event(event(&acme), &subscription);
        let outcomes = store
            .insert_events(&[retry.clone(), fresh.clone(), retry.clone()])
            .await
            .unwrap();

        assert_eq!(
            outcomes,
            vec![
                IngestOutcome::Duplicate(original.event.id.clone()),
                IngestOutcome::Created(fresh.event.id.clone()),
                IngestOutcome::Duplicate(original.event.id.clone()),
            ]
        );
        let kept = store.get_event(&acme, &original.event.id).await.unwrap();
        assert_eq!(kept, Some(original.event.clone()));
        let query = DeliveryQuery {
            event_id: Some(original.event.id.clone()),
            ..DeliveryQuery::default()
        };
        let deliveries = store.list_deliveries(&acme, &query).await.unwrap();
        assert_eq!(deliveries, original.deliveries);
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_seen_before_is_a_duplicate_of_the_first_event() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let keyed = |key: &str| {
            let mut event = event(&acme);
            event.idempotency_key = Some(key.into());
            new_event(event, &subscription)
        };
        let first = keyed("order-1001");
        store
            .insert_events(std::slice::from_ref(&first))
            .await
            .unwrap();

        let again = keyed("order-1001");
        let other = keyed("order-1002");
        let other_again = keyed("order-1002");
        let outcomes = store
            .insert_events(&[again.clone(), other.clone(), other_again.clone()])
            .await
            .unwrap();

        assert_eq!(
            outcomes,
            vec![
                IngestOutcome::Duplicate(first.event.id.clone()),
                IngestOutcome::Created(other.event.id.clone()),
                IngestOutcome::Duplicate(other.event.id.clone()),
            ]
        );
        for ignored in [&again, &other_again] {
            assert_eq!(
                store.get_event(&acme, &ignored.event.id).await.unwrap(),
                None
            );
            let query = DeliveryQuery {
                event_id: Some(ignored.event.id.clone()),
                ..DeliveryQuery::default()
            };
            assert_eq!(store.list_deliveries(&acme, &query).await.unwrap(), vec![]);
        }
    })
    .await;
}

#[tokio::test]
async fn an_id_or_key_reused_for_another_event_is_refused_and_nothing_is_written() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let mut first = new_event(event(&acme), &subscription);
        first.event.idempotency_key = Some("order-1001".into());
        store
            .insert_events(std::slice::from_ref(&first))
            .await
            .unwrap();

        let changed = |mut repeat: NewEvent| {
            repeat.event.payload = serde_json::json!({ "order": { "id": "SO-9999" } }).into();
            repeat
        };
        let by_key = {
            let mut event = event(&acme);
            event.idempotency_key = Some("order-1001".into());
            changed(new_event(event, &subscription))
        };
        let by_id = changed(new_event(first.event.clone(), &subscription));
        let mut other_type = new_event(first.event.clone(), &subscription);
        other_type.event.event_type = "sales_order.cancelled".into();
        for (name, repeat, by) in [
            ("by key", by_key, "idempotency key \"order-1001\""),
            ("by id", by_id, "event id"),
            ("another type", other_type, "event id"),
        ] {
            let fresh = new_event(event(&acme), &subscription);
            let error = store
                .insert_events(&[fresh.clone(), repeat])
                .await
                .unwrap_err();
            match &error {
                StoreError::Repeated {
                    index,
                    existing,
                    by: named,
                } => {
                    assert_eq!(*index, 1, "{name}");
                    assert_eq!(existing, first.event.id.as_str(), "{name}");
                    assert!(named.starts_with(by), "{name}: {named}");
                }
                other => panic!("{name}: {other:?}"),
            }
            // The batch is refused whole.
            assert_eq!(store.get_event(&acme, &fresh.event.id).await.unwrap(), None);
        }
        assert_eq!(
            store.get_event(&acme, &first.event.id).await.unwrap(),
            Some(first.event.clone())
        );

        // Twice in one batch, differently: refused too.
        let mut one = new_event(event(&acme), &subscription);
        one.event.idempotency_key = Some("order-2002".into());
        let mut two = changed(new_event(event(&acme), &subscription));
        two.event.idempotency_key = Some("order-2002".into());
        let error = store.insert_events(&[one, two]).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Repeated { index: 1, .. }),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_repeat_that_only_shares_an_id_with_a_repeat_follows_it() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let mut first = new_event(event(&acme), &subscription);
        first.event.idempotency_key = Some("k1".into());
        // Same key as `first`: a repeat of it, though its id is new…
        let mut second = new_event(event(&acme), &subscription);
        second.event.idempotency_key = Some("k1".into());
        // …and this one shares only that new id: a repeat of `first` too.
        let mut third = new_event(second.event.clone(), &subscription);
        third.event.idempotency_key = Some("k2".into());

        let outcomes = store
            .insert_events(&[first.clone(), second, third])
            .await
            .unwrap();

        let first_id = first.event.id.clone();
        assert_eq!(
            outcomes,
            vec![
                IngestOutcome::Created(first_id.clone()),
                IngestOutcome::Duplicate(first_id.clone()),
                IngestOutcome::Duplicate(first_id),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn tenants_do_not_share_events_ids_or_keys() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let (_, acme_subscription) = configured(&store, &acme).await;
        let (_, globex_subscription) = configured(&store, &globex).await;
        let mut ours = event(&acme);
        ours.idempotency_key = Some("order-1".into());
        let mut theirs = ours.clone();
        theirs.tenant = globex.clone();

        let outcomes = store
            .insert_events(&[
                new_event(ours.clone(), &acme_subscription),
                new_event(theirs.clone(), &globex_subscription),
            ])
            .await
            .unwrap();

        assert_eq!(
            outcomes,
            vec![
                IngestOutcome::Created(ours.id.clone()),
                IngestOutcome::Created(theirs.id.clone()),
            ]
        );
        assert_eq!(
            store.get_event(&acme, &ours.id).await.unwrap(),
            Some(ours.clone())
        );
        assert_eq!(
            store.get_event(&globex, &ours.id).await.unwrap(),
            Some(theirs)
        );
        let stranger = event(&acme);
        store
            .insert_events(&[new_event(stranger.clone(), &acme_subscription)])
            .await
            .unwrap();
        assert_eq!(store.get_event(&globex, &stranger.id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_delivery_filed_under_another_event_is_refused() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let mut new = new_event(event(&acme), &subscription);
        new.deliveries[0].event_id = event(&acme).id;

        let result = store.insert_events(&[new.clone()]).await;

        let Err(StoreError::Invalid(message)) = result else {
            panic!("expected Invalid, got {result:?}");
        };
        assert!(message.contains(new.deliveries[0].id.as_str()), "{message}");
        assert_eq!(store.get_event(&acme, &new.event.id).await.unwrap(), None);
    })
    .await;
}
