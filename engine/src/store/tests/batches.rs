//! The batch lane of the queue: which batches are due, forming a batch when it
//! is full or has waited long enough, claiming a formed batch again whole, and
//! reading a batch's events at once.

use super::backends::on_both_backends;
use super::fixtures::{NOW, attempt, configured, delivery, event, tenant};
use crate::model::{
    BatchId, Batching, Delivery, DeliveryId, DeliveryStatus, Subscription, UnixMillis,
};
use crate::store::{DeliveryUpdate, DueBatch, NewEvent, Store};
use std::collections::HashSet;

const LEASE_MS: u32 = 30_000;
const GROUPS: u32 = 100;

/// Up to three events, or what has waited a second.
const THREE_OR_A_SECOND: Batching = Batching {
    max_events: 3,
    max_wait_ms: 1_000,
};

/// Captures one event per entry of `due_at`, each with one batched delivery
/// to `subscription` due then; returns the deliveries in capture order.
async fn capture_batched(
    store: &Store,
    subscription: &Subscription,
    due_at: &[UnixMillis],
) -> Vec<Delivery> {
    let mut batch = Vec::new();
    for &due_at in due_at {
        let event = event(&subscription.tenant);
        let mut delivery = delivery(&event, subscription);
        delivery.next_attempt_at = due_at;
        delivery.batched = true;
        batch.push(NewEvent {
            event,
            deliveries: vec![delivery],
        });
    }
    store.insert_events(&batch).await.unwrap();
    batch.into_iter().flat_map(|new| new.deliveries).collect()
}

fn ids(deliveries: &[Delivery]) -> Vec<DeliveryId> {
    deliveries
        .iter()
        .map(|delivery| delivery.id.clone())
        .collect()
}

/// The group of `subscription`'s deliveries that await a batch.
fn awaiting(subscription: &Subscription, due: u32, oldest_due_at: UnixMillis) -> DueBatch {
    DueBatch {
        tenant: subscription.tenant.clone(),
        subscription_id: subscription.id.clone(),
        endpoint_id: subscription.endpoint_id.clone(),
        batch_id: None,
        due,
        oldest_due_at,
    }
}

/// What a worker reports for a member of a batch whose request answered
/// `status`, the member staying in `batch`.
fn attempted(
    delivery: &Delivery,
    outcome: DeliveryStatus,
    status: u16,
    next: UnixMillis,
    batch: Option<&BatchId>,
) -> DeliveryUpdate {
    let number = delivery.attempts + 1;
    DeliveryUpdate {
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        status: outcome,
        attempts: number,
        next_attempt_at: next,
        last_error: (status >= 300).then(|| format!("HTTP {status}")),
        attempt: Some(attempt(delivery, number, status)),
        batch_id: batch.cloned(),
    }
}

#[tokio::test]
async fn batched_deliveries_are_left_to_the_batch_lane() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let batched = capture_batched(&store, &subscription, &[NOW - 10, NOW]).await;
        let event = event(&subscription.tenant);
        let alone = delivery(&event, &subscription);
        store
            .insert_events(&[NewEvent {
                event,
                deliveries: vec![alone.clone()],
            }])
            .await
            .unwrap();

        let claimed = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();
        let due = store.due_batches(NOW, GROUPS).await.unwrap();

        assert_eq!(ids(&claimed), vec![alone.id]);
        assert_eq!(due, vec![awaiting(&subscription, 2, NOW - 10)]);
        let stored = store
            .get_delivery(&subscription.tenant, &batched[0].id)
            .await
            .unwrap();
        assert_eq!(
            stored.as_ref(),
            Some(&batched[0]),
            "batched and batch_id round-trip"
        );
    })
    .await;
}

#[tokio::test]
async fn due_batches_are_grouped_by_subscription_and_formed_batch() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, first) = configured(&store, &acme).await;
        let (_, second) = configured(&store, &acme).await;
        let (_, other_tenant) = configured(&store, &tenant("globex")).await;
        capture_batched(&store, &first, &[NOW - 5, NOW + 1, NOW - 1]).await;
        capture_batched(&store, &second, &[NOW - 20]).await;
        capture_batched(&store, &other_tenant, &[NOW - 10, NOW]).await;

        let due = store.due_batches(NOW, GROUPS).await.unwrap();

        // Longest due first; the delivery due later is not counted.
        assert_eq!(
            due,
            vec![
                awaiting(&second, 1, NOW - 20),
                awaiting(&other_tenant, 2, NOW - 10),
                awaiting(&first, 2, NOW - 5),
            ]
        );
        assert_eq!(store.due_batches(NOW, 1).await.unwrap(), due[..1]);

        // A formed batch is a group of its own; while leased it is not due.
        let id = BatchId::generate();
        let pairs = Batching {
            max_events: 2,
            max_wait_ms: 1_000,
        };
        let formed = store
            .claim_new_batch(&due[2], pairs, &id, NOW, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(formed.len(), 2);
        assert_eq!(
            store.due_batches(NOW + 1, GROUPS).await.unwrap(),
            vec![
                awaiting(&second, 1, NOW - 20),
                awaiting(&other_tenant, 2, NOW - 10),
                awaiting(&first, 1, NOW + 1),
            ]
        );
        let retry_at = NOW + 2_000;
        let failed = formed
            .iter()
            .map(|member| attempted(member, DeliveryStatus::Pending, 503, retry_at, Some(&id)))
            .collect();
        store.finish_deliveries(failed).await.unwrap();
        let later = store.due_batches(retry_at, GROUPS).await.unwrap();
        assert!(
            later.contains(&DueBatch {
                batch_id: Some(id),
                ..awaiting(&first, 2, retry_at)
            }),
            "{later:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_new_batch_forms_when_full_or_when_its_oldest_has_waited() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let waiting = capture_batched(&store, &subscription, &[NOW, NOW + 10]).await;
        let group = awaiting(&subscription, 2, NOW);

        // Two of three, and the oldest has waited 999 ms: not yet.
        let id = BatchId::generate();
        for at in [NOW, NOW + 999] {
            let early = store
                .claim_new_batch(&group, THREE_OR_A_SECOND, &id, at, LEASE_MS)
                .await
                .unwrap();
            assert_eq!(early, vec![], "claimed at {at}");
        }
        let untouched = store
            .get_delivery(&subscription.tenant, &waiting[0].id)
            .await
            .unwrap();
        assert_eq!(untouched.as_ref(), Some(&waiting[0]));

        // A second after the oldest fell due, they go together.
        let at = NOW + 1_000;
        let formed = store
            .claim_new_batch(&group, THREE_OR_A_SECOND, &id, at, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(ids(&formed), ids(&waiting));
        let lease_end = at + i64::from(LEASE_MS);
        for member in &formed {
            assert_eq!(member.batch_id.as_ref(), Some(&id));
            assert_eq!(member.next_attempt_at, lease_end);
        }
        assert_eq!(store.due_batches(at, GROUPS).await.unwrap(), vec![]);

        // Seven at once: two full batches in capture order, then one that waits.
        let burst = capture_batched(&store, &subscription, &[at; 7]).await;
        let group = awaiting(&subscription, 7, at);
        let mut batches = Vec::new();
        for _ in 0..3 {
            let claimed = store
                .claim_new_batch(
                    &group,
                    THREE_OR_A_SECOND,
                    &BatchId::generate(),
                    at,
                    LEASE_MS,
                )
                .await
                .unwrap();
            batches.push(ids(&claimed));
        }
        assert_eq!(
            batches,
            vec![ids(&burst[..3]), ids(&burst[3..6]), Vec::new()]
        );
    })
    .await;
}

#[tokio::test]
async fn a_retried_batch_keeps_its_members_and_newcomers_form_the_next() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let first = capture_batched(&store, &subscription, &[NOW; 3]).await;
        let id = BatchId::generate();
        let formed = store
            .claim_new_batch(
                &awaiting(&subscription, 3, NOW),
                THREE_OR_A_SECOND,
                &id,
                NOW,
                LEASE_MS,
            )
            .await
            .unwrap();
        assert_eq!(ids(&formed), ids(&first));

        // The request failed: two members retry as the batch; the chain
        // dropped the third out of it, back to waiting for a batch.
        let retry_at = NOW + 5_000;
        let mut results: Vec<DeliveryUpdate> = formed[..2]
            .iter()
            .map(|member| attempted(member, DeliveryStatus::Pending, 500, retry_at, Some(&id)))
            .collect();
        results.push(DeliveryUpdate {
            attempt: None,
            attempts: 1,
            last_error: Some("plugin redact-pii@1.0.0 is unavailable".into()),
            ..attempted(&formed[2], DeliveryStatus::Pending, 0, NOW + 10, None)
        });
        store.finish_deliveries(results).await.unwrap();
        let newcomers = capture_batched(&store, &subscription, &[NOW + 10; 2]).await;

        let group = awaiting(&subscription, 3, NOW + 10);
        assert_eq!(
            store.due_batches(NOW + 10, GROUPS).await.unwrap(),
            vec![group.clone()]
        );
        let next = store
            .claim_new_batch(
                &group,
                THREE_OR_A_SECOND,
                &BatchId::generate(),
                NOW + 10,
                LEASE_MS,
            )
            .await
            .unwrap();
        let mut expected = vec![first[2].id.clone()];
        expected.extend(ids(&newcomers));
        assert_eq!(ids(&next), expected);

        for (tenant, at) in [(&acme, retry_at - 1), (&tenant("globex"), retry_at)] {
            let early_or_foreign = store
                .claim_formed_batch(tenant, &id, at, LEASE_MS)
                .await
                .unwrap();
            assert_eq!(early_or_foreign, vec![], "{tenant} at {at}");
        }
        let retried = store
            .claim_formed_batch(&acme, &id, retry_at, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(ids(&retried), ids(&first[..2]));
        assert!(retried.iter().all(|member| member.attempts == 1));
    })
    .await;
}

#[tokio::test]
async fn a_formed_batch_is_claimed_whole_or_not_at_all() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        capture_batched(&store, &subscription, &[NOW; 2]).await;
        let id = BatchId::generate();
        let formed = store
            .claim_new_batch(
                &awaiting(&subscription, 2, NOW),
                THREE_OR_A_SECOND,
                &id,
                NOW + 1_000,
                LEASE_MS,
            )
            .await
            .unwrap();
        // Not how a worker settles a batch, but how a partly due one looks.
        store
            .finish_deliveries(vec![
                attempted(
                    &formed[0],
                    DeliveryStatus::Pending,
                    500,
                    NOW + 2_000,
                    Some(&id),
                ),
                attempted(
                    &formed[1],
                    DeliveryStatus::Pending,
                    500,
                    NOW + 3_000,
                    Some(&id),
                ),
            ])
            .await
            .unwrap();

        let part = store
            .claim_formed_batch(&acme, &id, NOW + 2_000, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(part, vec![]);
        let whole = store
            .claim_formed_batch(&acme, &id, NOW + 3_000, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(ids(&whole), ids(&formed));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_form_only_full_batches_and_never_share_one() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture_batched(&store, &subscription, &[NOW; 60]).await;
        let limits = Batching {
            max_events: 10,
            max_wait_ms: 60_000,
        };
        let group = awaiting(&subscription, 60, NOW);

        let claimers: Vec<_> = (0..4)
            .map(|_| {
                let (store, group) = (store.clone(), group.clone());
                tokio::spawn(async move {
                    let mut batches = Vec::new();
                    // Racing claimers may each lock part of a batch and both
                    // back off; keep trying while deliveries await one.
                    while !store.due_batches(NOW, GROUPS).await.unwrap().is_empty() {
                        let claimed = store
                            .claim_new_batch(&group, limits, &BatchId::generate(), NOW, LEASE_MS)
                            .await
                            .unwrap();
                        if !claimed.is_empty() {
                            batches.push(claimed);
                        }
                    }
                    batches
                })
            })
            .collect();
        let mut batches = Vec::new();
        for claimer in claimers {
            batches.extend(claimer.await.unwrap());
        }

        assert!(
            batches.iter().all(|batch| batch.len() == 10),
            "an early batch"
        );
        let all: Vec<DeliveryId> = batches.iter().flat_map(|batch| ids(batch)).collect();
        let distinct: HashSet<&DeliveryId> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "a delivery was claimed twice");
        assert_eq!(distinct, ids(&captured).iter().collect());
        let position = |delivery: &Delivery| captured.iter().position(|c| c.id == delivery.id);
        for batch in &batches {
            let id = batch[0].batch_id.as_ref().unwrap();
            assert!(
                batch
                    .iter()
                    .all(|member| member.batch_id.as_ref() == Some(id))
            );
            let positions: Vec<_> = batch.iter().map(position).collect();
            assert!(positions.is_sorted(), "not in capture order: {positions:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_of_a_formed_batch_get_it_once_and_whole() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        capture_batched(&store, &subscription, &[NOW; 50]).await;
        let id = BatchId::generate();
        let limits = Batching {
            max_events: 50,
            max_wait_ms: 0,
        };
        let formed = store
            .claim_new_batch(
                &awaiting(&subscription, 50, NOW),
                limits,
                &id,
                NOW,
                LEASE_MS,
            )
            .await
            .unwrap();
        let retry_at = NOW + 1_000;
        let failed = formed
            .iter()
            .map(|member| attempted(member, DeliveryStatus::Pending, 503, retry_at, Some(&id)))
            .collect();
        store.finish_deliveries(failed).await.unwrap();

        let claimers: Vec<_> = (0..4)
            .map(|_| {
                let (store, acme, id) = (store.clone(), acme.clone(), id.clone());
                tokio::spawn(async move {
                    while !store
                        .due_batches(retry_at, GROUPS)
                        .await
                        .unwrap()
                        .is_empty()
                    {
                        let claimed = store
                            .claim_formed_batch(&acme, &id, retry_at, LEASE_MS)
                            .await
                            .unwrap();
                        if !claimed.is_empty() {
                            return claimed;
                        }
                    }
                    Vec::new()
                })
            })
            .collect();
        let mut winners = Vec::new();
        for claimer in claimers {
            let claimed = claimer.await.unwrap();
            if !claimed.is_empty() {
                winners.push(claimed);
            }
        }

        assert_eq!(winners.len(), 1, "claimed by {} claimers", winners.len());
        assert_eq!(ids(&winners[0]), ids(&formed));
    })
    .await;
}

#[tokio::test]
async fn a_replayed_delivery_leaves_its_batch() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, subscription) = configured(&store, &acme).await;
        capture_batched(&store, &subscription, &[NOW; 3]).await;
        let id = BatchId::generate();
        let formed = store
            .claim_new_batch(
                &awaiting(&subscription, 3, NOW),
                THREE_OR_A_SECOND,
                &id,
                NOW,
                LEASE_MS,
            )
            .await
            .unwrap();
        let dead = formed
            .iter()
            .map(|member| attempted(member, DeliveryStatus::Failed, 400, NOW, Some(&id)))
            .collect();
        store.finish_deliveries(dead).await.unwrap();

        let later = NOW + 60_000;
        let replayed = store
            .replay_delivery(&acme, &formed[0].id, later)
            .await
            .unwrap()
            .unwrap();
        let all = store
            .replay_failed(&acme, &endpoint.id, 0, i64::MAX, later)
            .await
            .unwrap();

        assert_eq!(replayed.batch_id, None);
        assert_eq!(all, 2);
        // Replayed, they form a new batch rather than resend the old one.
        assert_eq!(
            store.due_batches(later, GROUPS).await.unwrap(),
            vec![awaiting(&subscription, 3, later)]
        );
    })
    .await;
}

#[tokio::test]
async fn a_batchs_events_are_read_together() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        // More than one statement's worth of ids.
        let captured = capture_batched(&store, &subscription, &[NOW; 150]).await;
        let (_, foreign) = configured(&store, &tenant("globex")).await;
        let elsewhere = capture_batched(&store, &foreign, &[NOW]).await;
        let unknown = event(&acme).id;
        let mut wanted: Vec<_> = captured.iter().map(|d| &d.event_id).collect();
        wanted.push(&elsewhere[0].event_id);
        wanted.push(&unknown);

        let events = store.get_events(&acme, &wanted).await.unwrap();

        let found: HashSet<_> = events.iter().map(|event| &event.id).collect();
        let expected: HashSet<_> = captured.iter().map(|d| &d.event_id).collect();
        assert_eq!(found, expected);
        let first = store
            .get_event(&acme, &captured[0].event_id)
            .await
            .unwrap()
            .unwrap();
        assert!(events.contains(&first));
        assert_eq!(store.get_events(&acme, &[]).await.unwrap(), vec![]);
    })
    .await;
}
