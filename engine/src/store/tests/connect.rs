//! Opening databases: URLs, migrations.

use super::backends::{connect, on_both_databases};
use super::fixtures::{
    NOW, configured, delivery, endpoint, event, new_event, subscription, tenant,
};
use crate::model::{Delivery, DeliveryStatus, Event};
use crate::store::database::Dialect;
use crate::store::migrations::migrator;
use crate::store::{Store, StoreError};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::str::FromStr;

#[tokio::test]
async fn connecting_twice_applies_the_migrations_once() {
    on_both_databases(|url| async move {
        let acme = tenant("acme");
        let first = connect(&url).await;
        let (_, subscription) = configured(&first, &acme).await;
        let stored = event(&acme);
        first
            .insert_events(&[new_event(stored.clone(), &subscription)])
            .await
            .unwrap();

        let second = connect(&url).await;
        assert_eq!(
            second.get_event(&acme, &stored.id).await.unwrap(),
            Some(stored)
        );
    })
    .await;
}

#[tokio::test]
async fn an_in_memory_database_keeps_what_it_is_given() {
    let store = connect("sqlite::memory:").await;
    let acme = tenant("acme");
    let stored = endpoint(&acme);
    store.create_endpoint(&stored).await.unwrap();

    assert_eq!(
        store.get_endpoint(&acme, &stored.id).await.unwrap(),
        Some(stored)
    );
}

#[tokio::test]
async fn an_unknown_database_url_is_refused_without_its_password() {
    let result = Store::connect("mysql://weft:s3cret@db/weft").await;

    let Err(StoreError::Invalid(message)) = result else {
        panic!("expected Invalid, got {result:?}");
    };
    assert!(message.contains("mysql://weft:***@db/weft"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

/// A database that an older release left with deliveries pending: moving the
/// queue into a table of its own (migration 4) keeps each pending delivery due
/// when it was, leased as it was, and settled ones out of the queue.
#[tokio::test]
async fn pending_deliveries_stay_queued_through_the_move_to_a_queue_table() {
    on_both_databases(|url| async move {
        let acme = tenant("acme");
        let subscription = subscription(&endpoint(&acme));
        let stored = event(&acme);
        let due = delivery(&stored, &subscription);
        let leased = delivery(&stored, &subscription);
        let delivered = Delivery {
            status: DeliveryStatus::Succeeded,
            attempts: 1,
            ..delivery(&stored, &subscription)
        };
        let lease_end = NOW + 60_000;
        let as_version_3_left_it = version_3_rows(
            &stored,
            &[(&due, None), (&leased, Some(lease_end)), (&delivered, None)],
        );
        migrate_to_version_3_and_run(&url, as_version_3_left_it).await;

        let store = connect(&url).await;
        let longer = 120_000;
        let claimed = store
            .claim_due_deliveries(NOW, 10, longer, &[])
            .await
            .unwrap();
        assert_eq!(ids(&claimed), ids(&[due]));
        let claimed = store
            .claim_due_deliveries(lease_end, 10, longer, &[])
            .await
            .unwrap();
        assert_eq!(ids(&claimed), ids(&[leased]));
        let settled = store.get_delivery(&acme, &delivered.id).await.unwrap();
        assert_eq!(settled.map(|d| d.status), Some(DeliveryStatus::Succeeded));
    })
    .await;
}

fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.id.to_string()).collect()
}

/// SQL that writes `event` and `deliveries` (each with its lease, if leased)
/// as schema version 3 kept them.
fn version_3_rows(event: &Event, deliveries: &[(&Delivery, Option<i64>)]) -> String {
    let rows: Vec<String> = deliveries
        .iter()
        .map(|(delivery, lease_until)| {
            format!(
                "('{}', '{}', '{}', '{}', '{}', '{}', '{}', {}, {}, {}, FALSE, {NOW}, {NOW})",
                delivery.tenant,
                delivery.id,
                delivery.event_id,
                delivery.event_type,
                delivery.subscription_id,
                delivery.endpoint_id,
                delivery.status.as_str(),
                delivery.attempts,
                delivery.next_attempt_at,
                lease_until.map_or("NULL".to_owned(), |end| end.to_string()),
            )
        })
        .collect();
    format!(
        "INSERT INTO events (tenant, id, event_type, occurred_at, received_at, payload, metadata) \
         VALUES ('{}', '{}', '{}', {NOW}, {NOW}, '{{}}', '{{}}'); \
         INSERT INTO deliveries (tenant, id, event_id, event_type, subscription_id, endpoint_id, \
             status, attempts, next_attempt_at, lease_until, batched, created_at, updated_at) \
         VALUES {};",
        event.tenant,
        event.id,
        event.event_type,
        rows.join(", ")
    )
}

/// Brings the database at `url` to schema version 3, then runs `sql` on it.
async fn migrate_to_version_3_and_run(url: &str, sql: String) {
    let sql = sqlx::AssertSqlSafe(sql);
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrator(Dialect::Sqlite).run_to(3, &pool).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = PgPool::connect(url).await.unwrap();
        migrator(Dialect::Postgres).run_to(3, &pool).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}
