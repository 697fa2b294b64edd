//! How fast the store captures events: batches of sample orders, each event
//! with two deliveries (a typical fan-out), written by `insert_events` and
//! timed end to end (one transaction per batch, on disk when it returns).
//!
//! ```text
//! cargo run --release -p weft-engine --example store_ingest -- [DATABASE_URL]
//! ```
//!
//! Without a URL it uses a SQLite file in a temporary directory. Give a
//! PostgreSQL URL with its own schema to keep the benchmark's rows apart:
//! `postgres://postgres@127.0.0.1/test?options[search_path]=weft_bench`.
//! `WEFT_BENCH_EVENTS` sets the events per row of the table (default 50,000).

use std::collections::BTreeMap;
use std::time::Instant;
use weft_engine::model::{
    Delivery, Endpoint, EndpointId, Event, EventId, RetryPolicy, Subscription, SubscriptionId,
    TenantId, now_millis,
};
use weft_engine::store::{NewEvent, Store};

const BATCH_SIZES: [usize; 3] = [100, 500, 1_000];
const PRODUCERS: [usize; 2] = [1, 4];
const DELIVERIES_PER_EVENT: usize = 2;

#[tokio::main]
async fn main() {
    let directory = tempfile::tempdir().expect("creating a temporary directory");
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", directory.path().join("bench.db").display()));
    let events_per_row: usize = std::env::var("WEFT_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(50_000);
    let store = Store::connect(&url)
        .await
        .expect("connecting the store")
        .with_keyring(std::sync::Arc::new(
            weft_engine::secrets::Keyring::ephemeral(),
        ));
    let tenant = TenantId::parse("bench").unwrap();
    let subscriptions = configure(&store, &tenant).await;
    let payload: serde_json::Value = serde_json::from_str(include_str!(
        "../../examples/events/sales_order.created.json"
    ))
    .expect("the sample event is JSON");
    let payload = payload["data"].clone();

    println!("{url}: {events_per_row} events per row, {DELIVERIES_PER_EVENT} deliveries each");
    println!("{:>6} {:>10} {:>12}", "batch", "producers", "events/s");
    for batch_size in BATCH_SIZES {
        for producers in PRODUCERS {
            let batches_per_producer = events_per_row / batch_size / producers;
            let started = Instant::now();
            let tasks: Vec<_> = (0..producers)
                .map(|_| {
                    let store = store.clone();
                    let tenant = tenant.clone();
                    let subscriptions = subscriptions.clone();
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        for _ in 0..batches_per_producer {
                            let batch: Vec<_> = (0..batch_size)
                                .map(|_| new_event(&tenant, &subscriptions, &payload))
                                .collect();
                            store
                                .insert_events(&batch)
                                .await
                                .expect("capturing a batch");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a producer panicked");
            }
            let events = batches_per_producer * batch_size * producers;
            let rate = events as f64 / started.elapsed().as_secs_f64();
            println!("{batch_size:>6} {producers:>10} {rate:>12.0}");
        }
    }
}

/// One endpoint and as many subscriptions to it as each event has deliveries.
async fn configure(store: &Store, tenant: &TenantId) -> Vec<Subscription> {
    let now = now_millis();
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        tenant: tenant.clone(),
        name: "sink".into(),
        url: "http://127.0.0.1:9/sink".into(),
        method: "POST".into(),
        headers: BTreeMap::new(),
        secret_headers: Vec::new(),
        auth: None,
        tls: None,
        rate_limit: None,
        max_concurrency: None,
        circuit_breaker: Default::default(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        timeout_ms: 10_000,
        retry: RetryPolicy::default(),
        enabled: true,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    store.create_endpoint(&endpoint).await.unwrap();
    let mut subscriptions = Vec::new();
    for _ in 0..DELIVERIES_PER_EVENT {
        let subscription = Subscription {
            id: SubscriptionId::generate(),
            tenant: tenant.clone(),
            name: "orders".into(),
            endpoint_id: endpoint.id.clone(),
            event_types: vec!["sales_order.*".into()],
            filter: None,
            template: None,
            plugins: vec![],
            batching: None,
            ordering_key: None,
            enabled: true,
            paused: None,
            created_at: now,
            updated_at: now,
        };
        store.create_subscription(&subscription).await.unwrap();
        subscriptions.push(subscription);
    }
    subscriptions
}

fn new_event(
    tenant: &TenantId,
    subscriptions: &[Subscription],
    payload: &serde_json::Value,
) -> NewEvent {
    let now = now_millis();
    let event = Event {
        id: EventId::generate(),
        tenant: tenant.clone(),
        event_type: "sales_order.created".into(),
        occurred_at: now,
        received_at: now,
        idempotency_key: Some(ulid::Ulid::new().to_string()),
        payload: payload.clone().into(),
        metadata: BTreeMap::new(),
    };
    let deliveries = subscriptions
        .iter()
        .map(|subscription| Delivery::pending(&event, subscription, None))
        .collect();
    NewEvent { event, deliveries }
}
