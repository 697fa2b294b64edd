//! Group commit: captures waiting together share a transaction, and each
//! caller hears only its own outcome.

use super::backends::on_both_backends;
use super::fixtures::{configured, delivery, event, new_event, tenant};
use crate::store::{GroupCommit, IngestOutcome, NewEvent, StoreError};

#[tokio::test]
async fn captures_waiting_together_each_hear_their_own_outcomes() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let capture = GroupCommit::start(store.clone());
        let one = vec![new_event(event(&acme), &subscription)];
        let two: Vec<NewEvent> = (0..2)
            .map(|_| new_event(event(&acme), &subscription))
            .collect();
        let mut keyed = new_event(event(&acme), &subscription);
        keyed.event.idempotency_key = Some("order-1001".into());
        let mut same_key = new_event(event(&acme), &subscription);
        same_key.event.idempotency_key = Some("order-1001".into());

        // Joined in one task, all four are queued before the combiner runs.
        let (a, b, c, d) = tokio::join!(
            capture.insert_events(one.clone()),
            capture.insert_events(two.clone()),
            capture.insert_events(vec![keyed.clone()]),
            capture.insert_events(vec![same_key.clone()]),
        );

        let created = |batch: &[NewEvent]| -> Vec<IngestOutcome> {
            batch
                .iter()
                .map(|new| IngestOutcome::Created(new.event.id.clone()))
                .collect()
        };
        assert_eq!(a.unwrap(), created(&one));
        assert_eq!(b.unwrap(), created(&two));
        assert_eq!(c.unwrap(), created(std::slice::from_ref(&keyed)));
        assert_eq!(
            d.unwrap(),
            vec![IngestOutcome::Duplicate(keyed.event.id.clone())]
        );
        for new in one.iter().chain(&two).chain([&keyed]) {
            let stored = store.get_event(&acme, &new.event.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(&new.event));
        }
        assert_eq!(
            store.get_event(&acme, &same_key.event.id).await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_capture_fails_alone_and_the_others_are_written() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let capture = GroupCommit::start(store.clone());
        let before = new_event(event(&acme), &subscription);
        let after = new_event(event(&acme), &subscription);
        let mut bad = new_event(event(&acme), &subscription);
        // The same delivery id twice breaks a unique constraint: the shared
        // transaction fails, and each capture is tried again on its own.
        let mut clash = delivery(&bad.event, &subscription);
        clash.id = bad.deliveries[0].id.clone();
        bad.deliveries.push(clash);

        let (before_outcome, bad_outcome, after_outcome) = tokio::join!(
            capture.insert_events(vec![before.clone()]),
            capture.insert_events(vec![bad.clone()]),
            capture.insert_events(vec![after.clone()]),
        );

        assert!(
            matches!(bad_outcome, Err(StoreError::Database(_))),
            "{bad_outcome:?}"
        );
        assert_eq!(store.get_event(&acme, &bad.event.id).await.unwrap(), None);
        for (new, outcome) in [(&before, before_outcome), (&after, after_outcome)] {
            assert_eq!(
                outcome.unwrap(),
                vec![IngestOutcome::Created(new.event.id.clone())]
            );
            let stored = store.get_event(&acme, &new.event.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(&new.event));
        }
    })
    .await;
}
