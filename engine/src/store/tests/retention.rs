//! History retention in the store: what is older than a tenant's retention
//! goes, with its attempts; pending deliveries and their events stay; each
//! tenant's own retention is honoured; and a SQLite file pruned under steady
//! load stops growing.

use super::backends::{connect, on_both_backends};
use super::fixtures::{NOW, attempt, configured, delivery, event, tenant};
use crate::model::{
    AuditEntry, AuditId, Delivery, DeliveryStatus, Event, Subscription, TenantId, UnixMillis,
};
use crate::store::{AuditQuery, DeliveryUpdate, NewEvent, Prune, Pruned, Store};

const DAY: i64 = 86_400_000;

/// An event of `subscription`'s tenant captured at `at`, with one delivery
/// to it unless `delivered` is false.
async fn captured(
    store: &Store,
    subscription: &Subscription,
    at: UnixMillis,
    delivered: bool,
) -> (Event, Option<Delivery>) {
    let event = Event {
        received_at: at,
        occurred_at: at,
        ..event(&subscription.tenant)
    };
    let deliveries = if delivered {
        vec![delivery(&event, subscription)]
    } else {
        Vec::new()
    };
    let new = NewEvent {
        event: event.clone(),
        deliveries: deliveries.clone(),
    };
    store.insert_events(&[new]).await.unwrap();
    (event, deliveries.into_iter().next())
}

/// Settles `delivery` as `status` after `attempts` attempts, each recorded
/// (none: settled unattempted, as a filter drops one).
async fn settle(store: &Store, delivery: &Delivery, status: DeliveryStatus, attempts: u32) {
    for number in attempts.min(1)..=attempts {
        let last = number == attempts;
        store
            .finish_deliveries(vec![DeliveryUpdate {
                tenant: delivery.tenant.clone(),
                delivery_id: delivery.id.clone(),
                status: if last {
                    status
                } else {
                    DeliveryStatus::Pending
                },
                attempts: number,
                next_attempt_at: delivery.created_at,
                last_error: None,
                attempt: (number > 0)
                    .then(|| attempt(delivery, number, if last { 200 } else { 503 })),
                batch_id: None,
            }])
            .await
            .unwrap();
    }
}

/// An audit entry of `tenant` recorded at `at`.
async fn audited_at(store: &Store, tenant: &TenantId, at: UnixMillis) {
    let entry = AuditEntry {
        id: AuditId::first_at(at),
        at,
        ..AuditEntry::by_operator(tenant, "test", "endpoint.update", "ep_x", None)
    };
    store.record_audit(&entry).await.unwrap();
}

async fn exists(store: &Store, delivery: &Delivery) -> bool {
    store
        .get_delivery(&delivery.tenant, &delivery.id)
        .await
        .unwrap()
        .is_some()
}

async fn event_exists(store: &Store, event: &Event) -> bool {
    store
        .get_event(&event.tenant, &event.id)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn history_past_its_retention_goes_and_pending_deliveries_stay() {
    on_both_backends(|store| async move {
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let (_, acme_subscription) = configured(&store, &acme).await;
        let (_, globex_subscription) = configured(&store, &globex).await;
        // acme keeps 30 days; globex the server's default, 90.
        store
            .set_history_retention(&acme, Some(30), NOW)
            .await
            .unwrap();
        assert_eq!(store.history_retention(&acme).await.unwrap(), Some(30));
        assert_eq!(store.history_retention(&globex).await.unwrap(), None);

        let (old_event, old) = captured(&store, &acme_subscription, NOW - 40 * DAY, true).await;
        let old = old.unwrap();
        settle(&store, &old, DeliveryStatus::Succeeded, 2).await;
        let (failed_event, failed) =
            captured(&store, &acme_subscription, NOW - 35 * DAY, true).await;
        settle(&store, failed.as_ref().unwrap(), DeliveryStatus::Failed, 1).await;
        // Still being retried (a long retry policy, a circuit open): kept.
        let (pending_event, pending) =
            captured(&store, &acme_subscription, NOW - 40 * DAY, true).await;
        let pending = pending.unwrap();
        settle(&store, &pending, DeliveryStatus::Pending, 1).await;
        // Matched nothing.
        let (unmatched, _) = captured(&store, &acme_subscription, NOW - 31 * DAY, false).await;
        let (recent_event, recent) =
            captured(&store, &acme_subscription, NOW - 29 * DAY, true).await;
        settle(
            &store,
            recent.as_ref().unwrap(),
            DeliveryStatus::Succeeded,
            1,
        )
        .await;
        let (globex_kept_event, globex_kept) =
            captured(&store, &globex_subscription, NOW - 40 * DAY, true).await;
        settle(
            &store,
            globex_kept.as_ref().unwrap(),
            DeliveryStatus::Dropped,
            0,
        )
        .await;
        let (globex_old_event, globex_old) =
            captured(&store, &globex_subscription, NOW - 91 * DAY, true).await;
        settle(
            &store,
            globex_old.as_ref().unwrap(),
            DeliveryStatus::Succeeded,
            1,
        )
        .await;
        audited_at(&store, &acme, NOW - 31 * DAY).await;
        audited_at(&store, &acme, NOW - 29 * DAY).await;

        let pruned = store
            .prune_history(
                Prune::ByRetention {
                    default_days: Some(90),
                },
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(
            pruned,
            Some(Pruned {
                events: 4,
                deliveries: 3,
                attempts: 4,
                audit_entries: 1,
            })
        );
        assert!(!exists(&store, &old).await);
        assert!(
            store
                .list_attempts(&acme, &old.id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!event_exists(&store, &old_event).await);
        assert!(!event_exists(&store, &failed_event).await);
        assert!(!event_exists(&store, &unmatched).await);
        assert!(!event_exists(&store, &globex_old_event).await);
        // Pending: the delivery, its attempt and its event stay.
        assert!(exists(&store, &pending).await);
        assert_eq!(
            store.list_attempts(&acme, &pending.id).await.unwrap().len(),
            1
        );
        assert!(event_exists(&store, &pending_event).await);
        // Within retention.
        assert!(exists(&store, recent.as_ref().unwrap()).await);
        assert!(event_exists(&store, &recent_event).await);
        assert!(exists(&store, globex_kept.as_ref().unwrap()).await);
        assert!(event_exists(&store, &globex_kept_event).await);
        let audit = store
            .list_audit(
                &acme,
                &AuditQuery {
                    limit: 10,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let kept: Vec<_> = audit.iter().map(|entry| entry.at).collect();
        assert!(kept.iter().all(|&at| at >= NOW - 30 * DAY), "{kept:?}");
        assert!(kept.contains(&(NOW - 29 * DAY)), "{kept:?}");

        // A second round finds nothing more.
        let again = store
            .prune_history(
                Prune::ByRetention {
                    default_days: Some(90),
                },
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(again, Some(Pruned::default()));

        // By hand, for one tenant, whatever its retention; still not what
        // is pending.
        let by_hand = store
            .prune_history(
                Prune::Before {
                    before: NOW,
                    tenant: Some(&acme),
                },
                NOW,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((by_hand.deliveries, by_hand.events), (1, 1), "{by_hand:?}");
        assert!(exists(&store, &pending).await);
        assert!(exists(&store, globex_kept.as_ref().unwrap()).await);

        // Kept forever: nothing of a tenant without a retention of its own.
        store.set_history_retention(&acme, None, NOW).await.unwrap();
        let forever = store
            .prune_history(Prune::ByRetention { default_days: None }, NOW + 1_000 * DAY)
            .await
            .unwrap();
        assert_eq!(forever, Some(Pruned::default()));
    })
    .await;
}

#[tokio::test]
async fn pruning_goes_in_chunks_past_deliveries_that_stay() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        // More than a chunk of old deliveries, every third one still pending,
        // all captured within the same few milliseconds.
        let old = NOW - 100 * DAY;
        let mut batch = Vec::new();
        for index in 0..1_300_i64 {
            let event = Event {
                received_at: old + index % 3,
                ..event(&acme)
            };
            let delivery = Delivery {
                status: if index % 3 == 0 {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Succeeded
                },
                ..delivery(&event, &subscription)
            };
            batch.push(NewEvent {
                event,
                deliveries: vec![delivery],
            });
        }
        store.insert_events(&batch).await.unwrap();
        let pruned = store
            .prune_history(
                Prune::ByRetention {
                    default_days: Some(90),
                },
                NOW,
            )
            .await
            .unwrap()
            .unwrap();
        let pending = batch
            .iter()
            .filter(|new| new.deliveries[0].status == DeliveryStatus::Pending)
            .count() as u64;
        assert_eq!(pruned.deliveries, 1_300 - pending);
        assert_eq!(pruned.events, 1_300 - pending);
        for new in &batch {
            let delivery = &new.deliveries[0];
            let pending = delivery.status == DeliveryStatus::Pending;
            assert_eq!(exists(&store, delivery).await, pending, "{delivery:?}");
            assert_eq!(event_exists(&store, &new.event).await, pending);
        }
    })
    .await;
}

/// The pages of a SQLite database, free ones included: what its file
/// takes once the write-ahead log is checkpointed.
async fn sqlite_pages(store: &Store) -> i64 {
    store
        .backend
        .fetch_optional(crate::store::database::Statement::once(
            "SELECT page_count FROM pragma_page_count()",
        ))
        .await
        .unwrap()
        .unwrap()
        .get("page_count")
        .unwrap()
}

#[tokio::test]
async fn a_sqlite_file_stops_growing_under_steady_load_with_retention() {
    let directory = tempfile::tempdir().unwrap();
    let store = connect(&format!(
        "sqlite://{}",
        directory.path().join("weft.db").display()
    ))
    .await;
    let acme = tenant("acme");
    let (_, subscription) = configured(&store, &acme).await;
    // Ten days of the same load, kept two days: each day's 2,000 deliveries
    // (each with an attempt) replace those of three days before.
    let mut pages = Vec::new();
    for day in 0..10 {
        let today = NOW + day * DAY;
        let batch: Vec<NewEvent> = (0..2_000)
            .map(|_| {
                let event = Event {
                    received_at: today,
                    ..event(&acme)
                };
                let deliveries = vec![delivery(&event, &subscription)];
                NewEvent { event, deliveries }
            })
            .collect();
        store.insert_events(&batch).await.unwrap();
        for chunk in batch.chunks(200) {
            let updates = chunk
                .iter()
                .map(|new| {
                    let delivery = &new.deliveries[0];
                    DeliveryUpdate {
                        tenant: acme.clone(),
                        delivery_id: delivery.id.clone(),
                        status: DeliveryStatus::Succeeded,
                        attempts: 1,
                        next_attempt_at: today,
                        last_error: None,
                        attempt: Some(attempt(delivery, 1, 200)),
                        batch_id: None,
                    }
                })
                .collect();
            store.finish_deliveries(updates).await.unwrap();
        }
        store
            .prune_history(
                Prune::ByRetention {
                    default_days: Some(2),
                },
                today,
            )
            .await
            .unwrap();
        pages.push(sqlite_pages(&store).await);
    }
    eprintln!("pages day by day: {pages:?}");
    // Growing while the first days fill it; flat once pruning frees as
    // much as each day adds (a little slack for how B-trees split).
    let settled = pages[3];
    assert!(
        pages[9] <= settled + settled / 20,
        "the file kept growing: {pages:?} pages, day by day"
    );
    assert!(pages[3] > pages[0], "{pages:?}");
}
