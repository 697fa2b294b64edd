//! Opening databases: URLs, migrations.

use super::backends::{connect, on_both_databases};
use super::fixtures::{configured, endpoint, event, new_event, tenant};
use crate::store::{Store, StoreError};

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
