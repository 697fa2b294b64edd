//! The delivery queue: claiming, leases, ordering keys, finishing, replay.

use super::backends::on_both_backends;
use super::fixtures::{NOW, attempt, configured, delivery, event, tenant};
use crate::model::{Delivery, DeliveryId, DeliveryStatus, Subscription, UnixMillis};
use crate::store::{DeliveryUpdate, NewEvent, Store, StoreError};
use std::collections::HashSet;

const LEASE_MS: u32 = 30_000;

/// Captures one event per entry of `due_at`, each with one delivery to
/// `subscription` due then; returns the deliveries in capture order.
async fn capture(
    store: &Store,
    subscription: &Subscription,
    due_at: &[UnixMillis],
) -> Vec<Delivery> {
    capture_keyed(
        store,
        subscription,
        &due_at.iter().map(|&at| (at, None)).collect::<Vec<_>>(),
    )
    .await
}

/// Like [`capture`], each delivery with an ordering key.
async fn capture_keyed(
    store: &Store,
    subscription: &Subscription,
    deliveries: &[(UnixMillis, Option<&str>)],
) -> Vec<Delivery> {
    let mut batch = Vec::new();
    for &(due_at, key) in deliveries {
        let event = event(&subscription.tenant);
        let mut delivery = delivery(&event, subscription);
        delivery.next_attempt_at = due_at;
        delivery.ordering_key = key.map(str::to_owned);
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

/// What a worker reports after one attempt answered `status`.
fn attempted(
    delivery: &Delivery,
    outcome: DeliveryStatus,
    status: u16,
    next: UnixMillis,
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
        batch_id: delivery.batch_id.clone(),
    }
}

#[tokio::test]
async fn only_due_deliveries_are_claimed_longest_overdue_first() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture(
            &store,
            &subscription,
            &[NOW - 10, NOW + 1, NOW - 30, NOW, NOW - 20],
        )
        .await;

        let first = store
            .claim_due_deliveries(NOW, 2, LEASE_MS, &[])
            .await
            .unwrap();
        let rest = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();

        // The two longest overdue come first; each claim lists capture order.
        assert_eq!(
            ids(&first),
            vec![captured[2].id.clone(), captured[4].id.clone()]
        );
        assert_eq!(
            ids(&rest),
            vec![captured[0].id.clone(), captured[3].id.clone()]
        );
        // A claim changes only the lease: each keeps the time it fell due.
        for claimed in first.iter().chain(&rest) {
            let original = captured.iter().find(|c| c.id == claimed.id).unwrap();
            assert_eq!(claimed.next_attempt_at, original.next_attempt_at);
            assert!(claimed.next_attempt_at <= NOW);
        }
        assert_eq!(
            store
                .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
                .await
                .unwrap(),
            vec![]
        );
        let later = store
            .claim_due_deliveries(NOW + 1, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&later), ids(&captured[1..2]));
    })
    .await;
}

#[tokio::test]
async fn deliveries_to_skipped_endpoints_wait_for_a_later_claim() {
    on_both_backends(|store| async move {
        let (slow, to_slow) = configured(&store, &tenant("acme")).await;
        let (_, to_healthy) = configured(&store, &tenant("acme")).await;
        let (_, elsewhere) = configured(&store, &tenant("globex")).await;
        let backlog = capture(&store, &to_slow, &[NOW - 30, NOW - 20]).await;
        let healthy = capture(&store, &to_healthy, &[NOW]).await;
        let other = capture(&store, &elsewhere, &[NOW]).await;

        let claimed = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, std::slice::from_ref(&slow.id))
            .await
            .unwrap();
        // The older backlog of the full endpoint is stepped over.
        assert_eq!(ids(&claimed), [ids(&healthy), ids(&other)].concat());
        let later = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&later), ids(&backlog));
    })
    .await;
}

#[tokio::test]
async fn a_lease_holds_until_it_ends() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture(&store, &subscription, &[NOW]).await;
        let claimed = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&claimed), ids(&captured));

        let lease_end = NOW + i64::from(LEASE_MS);
        let during = store
            .claim_due_deliveries(lease_end - 1, 10, LEASE_MS, &[])
            .await;
        assert_eq!(during.unwrap(), vec![]);
        // The worker died: the delivery falls due again when its lease ends.
        let after = store
            .claim_due_deliveries(lease_end, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&after), ids(&captured));
        assert_eq!(after[0].status, DeliveryStatus::Pending);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_delivery() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture(&store, &subscription, &[NOW; 400]).await;

        let claimers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let claimed = store
                            .claim_due_deliveries(NOW, 7, LEASE_MS, &[])
                            .await
                            .unwrap();
                        if claimed.is_empty() {
                            return mine;
                        }
                        mine.extend(ids(&claimed));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }

        let distinct: HashSet<&DeliveryId> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "a delivery was claimed twice");
        assert_eq!(distinct, ids(&captured).iter().collect());
    })
    .await;
}

#[tokio::test]
async fn an_ordering_key_holds_back_only_its_own_later_deliveries() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture_keyed(
            &store,
            &subscription,
            &[
                (NOW, Some("SO-1")),
                (NOW, Some("SO-1")),
                (NOW, Some("SO-2")),
                (NOW, None),
                (NOW, Some("SO-1")),
            ],
        )
        .await;
        let (head, second, other_key, unkeyed, third) = (
            &captured[0],
            &captured[1],
            &captured[2],
            &captured[3],
            &captured[4],
        );

        let claimed = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(
            ids(&claimed),
            vec![head.id.clone(), other_key.id.clone(), unkeyed.id.clone()]
        );

        // The head fails and will be retried in an hour: its key waits for it.
        let retry_at = NOW + 3_600_000;
        let failed = attempted(&claimed[0], DeliveryStatus::Pending, 503, retry_at);
        let delivered = [&claimed[1], &claimed[2]]
            .map(|delivery| attempted(delivery, DeliveryStatus::Succeeded, 200, NOW));
        let mut results = vec![failed];
        results.extend(delivered);
        store.finish_deliveries(results).await.unwrap();
        assert_eq!(
            store
                .claim_due_deliveries(NOW + 1, 10, LEASE_MS, &[])
                .await
                .unwrap(),
            vec![]
        );

        // The retry succeeds: the next of its key is released, and only that one.
        let retried = store
            .claim_due_deliveries(retry_at, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&retried), vec![head.id.clone()]);
        let succeeded = attempted(&retried[0], DeliveryStatus::Succeeded, 200, retry_at);
        store.finish_deliveries(vec![succeeded]).await.unwrap();
        let next = store
            .claim_due_deliveries(retry_at, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&next), vec![second.id.clone()]);

        // A dead-lettered delivery releases its key too.
        let dead = attempted(&next[0], DeliveryStatus::Failed, 400, retry_at);
        store.finish_deliveries(vec![dead]).await.unwrap();
        let last = store
            .claim_due_deliveries(retry_at, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&last), vec![third.id.clone()]);
    })
    .await;
}

#[tokio::test]
async fn finishing_records_attempts_and_ends_the_lease() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let captured = capture(&store, &subscription, &[NOW, NOW]).await;
        let claimed = store
            .claim_due_deliveries(NOW, 10, LEASE_MS, &[])
            .await
            .unwrap();

        let retry_at = NOW + 5_000;
        let first = attempted(&claimed[0], DeliveryStatus::Pending, 500, retry_at);
        let dropped = DeliveryUpdate {
            tenant: acme.clone(),
            delivery_id: claimed[1].id.clone(),
            status: DeliveryStatus::Dropped,
            attempts: 0,
            next_attempt_at: NOW,
            last_error: Some("filtered out by high-value-orders".into()),
            attempt: None,
            batch_id: None,
        };
        store
            .finish_deliveries(vec![first.clone(), dropped])
            .await
            .unwrap();

        let retrying = store
            .get_delivery(&acme, &captured[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(retrying.status, DeliveryStatus::Pending);
        assert_eq!(retrying.attempts, 1);
        assert_eq!(retrying.next_attempt_at, retry_at);
        assert_eq!(retrying.last_error.as_deref(), Some("HTTP 500"));
        let gone = store
            .get_delivery(&acme, &captured[1].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.status, DeliveryStatus::Dropped);

        // The lease ended with the attempt: it is due at retry_at, not at the lease's end.
        let again = store
            .claim_due_deliveries(retry_at, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&again), ids(&captured[..1]));
        let second = attempted(&again[0], DeliveryStatus::Succeeded, 204, retry_at);
        store.finish_deliveries(vec![second.clone()]).await.unwrap();

        let attempts = store.list_attempts(&acme, &captured[0].id).await.unwrap();
        assert_eq!(
            attempts,
            vec![first.attempt.unwrap(), second.attempt.unwrap()]
        );
        let delivered = store
            .get_delivery(&acme, &captured[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (delivered.status, delivered.attempts),
            (DeliveryStatus::Succeeded, 2)
        );
        assert_eq!(
            store
                .list_attempts(&tenant("globex"), &captured[0].id)
                .await
                .unwrap(),
            vec![]
        );
    })
    .await;
}

#[tokio::test]
async fn finishing_an_unknown_delivery_changes_nothing() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let captured = capture(&store, &subscription, &[NOW]).await;
        let known = attempted(&captured[0], DeliveryStatus::Succeeded, 200, NOW);
        // Another tenant's delivery is unknown to this one.
        let mut foreign = captured[0].clone();
        foreign.tenant = tenant("globex");
        let unknown = DeliveryUpdate {
            attempt: None,
            ..attempted(&foreign, DeliveryStatus::Succeeded, 200, NOW)
        };

        let result = store.finish_deliveries(vec![known, unknown]).await;

        assert_eq!(
            result,
            Err(StoreError::not_found("delivery", &captured[0].id))
        );
        let untouched = store.get_delivery(&acme, &captured[0].id).await.unwrap();
        assert_eq!(untouched.as_ref(), Some(&captured[0]));
        assert_eq!(
            store.list_attempts(&acme, &captured[0].id).await.unwrap(),
            vec![]
        );
    })
    .await;
}

#[tokio::test]
async fn an_attempt_filed_under_another_delivery_is_refused() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let captured = capture(&store, &subscription, &[NOW, NOW]).await;
        let mut update = attempted(&captured[0], DeliveryStatus::Succeeded, 200, NOW);
        update.attempt = Some(attempt(&captured[1], 1, 200));

        let result = store.finish_deliveries(vec![update]).await;

        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    })
    .await;
}

#[tokio::test]
async fn replaying_a_delivery_sends_it_again_and_keeps_counting() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (_, subscription) = configured(&store, &acme).await;
        let captured = capture(&store, &subscription, &[NOW, NOW]).await;
        let claimed = store
            .claim_due_deliveries(NOW, 1, LEASE_MS, &[])
            .await
            .unwrap();
        let dead = attempted(&claimed[0], DeliveryStatus::Failed, 400, NOW);
        store.finish_deliveries(vec![dead]).await.unwrap();

        // Within the lease of the one in flight, which the pause left to its worker.
        let later = NOW + 1_000;
        let replayed = store
            .replay_delivery(&acme, &captured[0].id, later)
            .await
            .unwrap()
            .unwrap();

        assert_eq!(replayed.status, DeliveryStatus::Pending);
        assert_eq!(replayed.attempts, 1);
        assert_eq!(replayed.next_attempt_at, later);
        let claimed = store
            .claim_due_deliveries(later, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&claimed), ids(&captured));

        // In flight: left alone, or a second worker could send it concurrently.
        let in_flight = store
            .replay_delivery(&acme, &captured[1].id, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(in_flight, claimed[1]);
        let missing = store
            .replay_delivery(&tenant("globex"), &captured[0].id, later)
            .await;
        assert_eq!(missing.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn replaying_failures_picks_the_endpoints_failed_deliveries_in_range() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, subscription) = configured(&store, &acme).await;
        let (_, elsewhere) = configured(&store, &acme).await;
        let mut batch = Vec::new();
        let mut make = |subscription: &Subscription, created_at: UnixMillis, status| {
            let event = event(&acme);
            let mut delivery = delivery(&event, subscription);
            delivery.created_at = created_at;
            delivery.status = status;
            delivery.attempts = 8;
            batch.push(NewEvent {
                event,
                deliveries: vec![delivery.clone()],
            });
            delivery
        };
        let before = make(&subscription, NOW - 1, DeliveryStatus::Failed);
        let first = make(&subscription, NOW, DeliveryStatus::Failed);
        let second = make(&subscription, NOW + 999, DeliveryStatus::Failed);
        let at_end = make(&subscription, NOW + 1_000, DeliveryStatus::Failed);
        let succeeded = make(&subscription, NOW + 1, DeliveryStatus::Succeeded);
        let other_endpoint = make(&elsewhere, NOW + 1, DeliveryStatus::Failed);
        store.insert_events(&batch).await.unwrap();

        // Within the lease of the one in flight, which the pause left to its worker.
        let later = NOW + 1_000;
        let replayed = store
            .replay_failed(&acme, &endpoint.id, NOW, NOW + 1_000, later)
            .await
            .unwrap();

        assert_eq!(replayed, 2);
        let claimed = store
            .claim_due_deliveries(later, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&claimed), vec![first.id.clone(), second.id.clone()]);
        assert!(claimed.iter().all(|delivery| delivery.attempts == 8));
        for untouched in [&before, &at_end, &succeeded, &other_endpoint] {
            let stored = store.get_delivery(&acme, &untouched.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(untouched));
        }
        let foreign = store
            .replay_failed(&tenant("globex"), &endpoint.id, 0, i64::MAX, later)
            .await;
        assert_eq!(foreign.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_paused_subscription_holds_its_deliveries_until_it_is_resumed() {
    on_both_backends(|store| async move {
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        let (tenant, id) = (&subscription.tenant, &subscription.id);
        let captured = capture(&store, &subscription, &[NOW, NOW]).await;
        let in_flight = store
            .claim_due_deliveries(NOW, 1, LEASE_MS, &[])
            .await
            .unwrap();

        assert!(
            store
                .pause_subscription(tenant, id, "bad config", NOW)
                .await
                .unwrap()
        );
        assert!(
            !store
                .pause_subscription(tenant, id, "again", NOW)
                .await
                .unwrap()
        );
        let paused = store.get_subscription(tenant, id).await.unwrap().unwrap();
        assert_eq!(paused.paused.unwrap().reason, "bad config");
        // Within the lease of the one in flight, which the pause left to its worker.
        let later = NOW + 1_000;
        assert_eq!(
            store
                .claim_due_deliveries(later, 10, LEASE_MS, &[])
                .await
                .unwrap(),
            vec![],
            "held deliveries are not due"
        );

        // Resumed while a worker that read the pause still holds one: the
        // hold it records after the resume is released at once.
        assert!(store.resume_subscription(tenant, id, later).await.unwrap());
        let held = DeliveryUpdate {
            tenant: in_flight[0].tenant.clone(),
            delivery_id: in_flight[0].id.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: crate::model::ON_HOLD,
            last_error: Some("held: the subscription is paused (bad config)".into()),
            attempt: None,
            batch_id: None,
        };
        store.finish_deliveries(vec![held]).await.unwrap();
        let released = store
            .claim_due_deliveries(crate::model::now_millis() + 1, 10, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(ids(&released), ids(&captured));
        assert!(
            !store.resume_subscription(tenant, id, later).await.unwrap(),
            "not paused any more"
        );
    })
    .await;
}

/// Waits until the number `query` reads from PostgreSQL's statistics reaches
/// `at_least`: a connection reports its writes to them now and then, and
/// when it ends.
async fn wait_for_statistics(url: &str, query: &'static str, at_least: i64) {
    use sqlx::Connection;
    let mut connection = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let counted: i64 = sqlx::query_scalar(query)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        if counted >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the statistics counted {counted} of {at_least}: {query}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Blocks of shared buffers a claim of due deliveries reads on PostgreSQL,
/// from its plan: what dead queue rows cost it, counted rather than timed.
async fn claim_buffers(url: &str) -> i64 {
    use sqlx::Connection;
    let mut connection = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT seq FROM delivery_queue \
         WHERE next_attempt_at <= 9000000000000 AND lease_until IS NULL AND NOT batched \
         ORDER BY next_attempt_at, seq LIMIT 256",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    shared_buffers_read(&plan)
}

/// The shared buffers (hit or read) an `EXPLAIN (ANALYZE, BUFFERS)` plan
/// counts: its top node's first `Buffers: shared hit=N read=M` line covers
/// the whole plan.
fn shared_buffers_read(plan: &[(String,)]) -> i64 {
    let line = plan
        .iter()
        .map(|(line,)| line.trim())
        .find(|line| line.starts_with("Buffers: shared"))
        .unwrap_or_else(|| panic!("no buffers in {plan:?}"));
    line.split_whitespace()
        .filter_map(|part| {
            let (name, count) = part.split_once('=')?;
            ["hit", "read"]
                .contains(&name)
                .then(|| count.parse::<i64>().ok())
                .flatten()
        })
        .sum()
}

#[tokio::test]
async fn weft_vacuums_a_churned_queue_itself_on_postgresql() {
    super::backends::on_both_databases_alone(|url| async move {
        let store = super::backends::connect(&url).await;
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        // Churn: 12,000 deliveries queued, claimed and settled.
        for _ in 0..12 {
            capture(&store, &subscription, &vec![NOW; 1_000]).await;
            let claimed = store
                .claim_due_deliveries(NOW, 1_000, LEASE_MS, &[])
                .await
                .unwrap();
            let done = claimed
                .iter()
                .map(|delivery| attempted(delivery, DeliveryStatus::Succeeded, 200, NOW))
                .collect();
            store.finish_deliveries(done).await.unwrap();
        }
        if !url.starts_with("postgres") {
            // SQLite rewrites in place: nothing to do, and nothing done.
            assert_eq!(store.maintain().await.unwrap().vacuumed, vec![]);
            return;
        }
        println!(
            "autovacuum off: {}",
            store.autovacuum_is_off().await.unwrap()
        );
        // A connection reports its dead rows to the statistics now and then,
        // and when it ends: closing the churners' connections and waiting for
        // all 12,000 makes the rounds below see the whole churn.
        store.close().await;
        let store = super::backends::connect(&url).await;
        wait_for_statistics(
            &url,
            "SELECT n_dead_tup FROM pg_stat_user_tables \
             WHERE relid = to_regclass('delivery_queue')",
            12_000,
        )
        .await;
        claim_buffers(&url).await;
        let before = claim_buffers(&url).await;
        let vacuumed = store.maintain().await.unwrap().vacuumed;
        let (_, dead) = vacuumed
            .iter()
            .find(|(table, _)| table == "delivery_queue")
            .unwrap_or_else(|| panic!("the queue was not vacuumed: {vacuumed:?}"));
        assert!(*dead >= 5_000, "{dead} dead rows");
        claim_buffers(&url).await;
        let after = claim_buffers(&url).await;
        println!("a claim over the churned queue read {before} blocks, {after} once vacuumed");
        assert!(after * 10 < before, "{before} blocks, then {after}");
        // Nothing left to do: the next round leaves the queue alone.
        let again = store.maintain().await.unwrap().vacuumed;
        assert!(
            !again.iter().any(|(table, _)| table == "delivery_queue"),
            "{again:?}"
        );
    })
    .await;
}

/// Shared buffers one run of the prepared `lookup` (an attempt's foreign-key
/// check: does delivery `id` of tenant `acme` exist?) reads, from its plan.
async fn lookup_buffers(connection: &mut sqlx::postgres::PgConnection, id: &str) -> i64 {
    // EXECUTE takes no bound parameters; `id` is one the store made.
    let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE lookup('acme', '{id}')"
    )))
    .fetch_all(&mut *connection)
    .await
    .unwrap();
    shared_buffers_read(&plan)
}

#[tokio::test]
async fn weft_analyses_growing_tables_so_plans_made_when_they_were_empty_are_replaced() {
    use sqlx::Connection;
    super::backends::on_both_databases_alone(|url| async move {
        let store = super::backends::connect(&url).await;
        let (_, subscription) = configured(&store, &tenant("acme")).await;
        if !url.starts_with("postgres") {
            capture(&store, &subscription, &vec![NOW; 1_000]).await;
            assert_eq!(store.maintain().await.unwrap(), Default::default());
            return;
        }
        // A connection plans the foreign-key check of attempts while the
        // history is empty, as the store's connections do in a fresh
        // database, and keeps that plan as PostgreSQL does for a statement
        // it runs often.
        let mut connection = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        for statement in [
            "SET plan_cache_mode = force_generic_plan",
            "PREPARE lookup(text, text) AS \
             SELECT 1 FROM deliveries WHERE tenant = $1 AND id = $2 FOR KEY SHARE",
        ] {
            sqlx::raw_sql(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        lookup_buffers(&mut connection, "dlv_none").await;
        let mut captured = Vec::new();
        for _ in 0..5 {
            captured.extend(capture(&store, &subscription, &vec![NOW; 1_000]).await);
        }
        let last = captured.last().unwrap().id.to_string();
        let before = lookup_buffers(&mut connection, &last).await;

        // The statistics hear of a connection's writes now and then, and when
        // it ends.
        store.close().await;
        let store = super::backends::connect(&url).await;
        wait_for_statistics(
            &url,
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables \
             WHERE relid = to_regclass('deliveries')",
            5_000,
        )
        .await;
        let done = store.maintain().await.unwrap();
        for table in ["deliveries", "events"] {
            assert!(
                done.analysed
                    .iter()
                    .any(|(analysed, changed)| analysed == table && *changed >= 5_000),
                "{table} was not analysed: {done:?}"
            );
        }
        let after = lookup_buffers(&mut connection, &last).await;
        println!("the check read {before} blocks with the plan of an empty history, {after} once analysed");
        assert!(after * 10 < before, "{before} blocks, then {after}");
        // Nothing changed since: the next round leaves the tables alone.
        let again = store.maintain().await.unwrap();
        assert_eq!(again, Default::default());
    })
    .await;
}
