//! Batching end to end, on SQLite and on PostgreSQL: a batching subscription's
//! deliveries reach the receiver as JSON arrays, full or after `max_wait_ms`,
//! retried whole, without the events its chain drops.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use weft_engine::delivery::verify;
use weft_tests::receiver::{Received, Receiver, Reply};
use weft_tests::weft::{BACKENDS, TestWeft};

const WAIT: Duration = Duration::from_secs(10);

/// Long enough that only a full batch leaves before the test ends.
const NEVER_MS: u32 = 60_000;

/// How long the receiver stays quiet before a test says nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);

fn verify_signature(received: &Received, secret: &str) {
    let now = weft_engine::model::now_millis() / 1000;
    verify(
        secret,
        &received.headers,
        &received.body,
        now,
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("signature does not verify: {e}"));
}

/// A sales order with id `order` and total `total`.
fn order(id: &str, total: f64) -> Value {
    let mut data = weft_tests::sample_event_json("sales_order.created")["data"].clone();
    data["order"]["id"] = json!(id);
    data["order"]["total"] = json!(total);
    json!({ "type": "sales_order.created", "data": data })
}

/// `count` orders named so that their names sort in capture order.
fn orders(prefix: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| order(&format!("{prefix}-{n:03}"), 500.0))
        .collect()
}

/// Publishes `events` in one request, so they are captured together and in
/// this order; returns their event ids in the same order.
async fn publish_together(weft: &TestWeft, events: Vec<Value>) -> Vec<String> {
    let (status, body) = weft
        .post("/v1/events/batch", &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The order ids of a batch request's elements, in the order they came.
fn order_ids(received: &Received) -> Vec<String> {
    received
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("a batch is a JSON array: {}", received.json()))
        .iter()
        .map(|element| element["order"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn webhook_id(received: &Received) -> String {
    received.header("webhook-id").unwrap().to_owned()
}

/// The subscription's deliveries, by event id.
async fn deliveries_by_event(weft: &TestWeft, subscription: &str) -> HashMap<String, Value> {
    let (status, body) = weft
        .get(&format!(
            "/v1/deliveries?subscription_id={subscription}&limit=500"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| {
            (
                delivery["event_id"].as_str().unwrap().to_owned(),
                delivery.clone(),
            )
        })
        .collect()
}

/// Waits until every delivery of the subscription has left `pending`.
async fn wait_until_settled(
    weft: &TestWeft,
    subscription: &str,
    count: usize,
) -> HashMap<String, Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let deliveries = deliveries_by_event(weft, subscription).await;
        if deliveries.len() == count && deliveries.values().all(|d| d["status"] != "pending") {
            return deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_together_arrive_as_full_arrays_in_capture_order() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, secret) = weft.endpoint(&receiver.url, 3).await;
        let subscription = weft
            .subscription(
                &endpoint,
                json!({
                    "event_types": ["sales_order.created"],
                    "batching": { "max_events": 10, "max_wait_ms": 1000 }
                }),
            )
            .await;
        let events = orders("SO", 25);
        let names: Vec<String> = events
            .iter()
            .map(|e| e["data"]["order"]["id"].as_str().unwrap().to_owned())
            .collect();

        let event_ids = publish_together(&weft, events).await;

        receiver.wait_for(3, WAIT).await;
        tokio::time::sleep(QUIET).await;
        let received = receiver.received();
        assert_eq!(received.len(), 3, "{backend:?}: ceil(25 / 10) requests");
        let mut batches: Vec<Vec<String>> = received.iter().map(order_ids).collect();
        let mut sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![5, 10, 10], "{batches:?}");
        for batch in &batches {
            assert!(batch.is_sorted(), "not in capture order: {batch:?}");
        }
        batches.sort();
        assert_eq!(batches.concat(), names, "every event once, none twice");

        // One signed request per batch, its webhook-id the batch's id, which
        // each delivery records.
        let mut batch_of_order = HashMap::new();
        for request in &received {
            verify_signature(request, &secret);
            let id = webhook_id(request);
            assert!(id.starts_with("batch_"), "{id}");
            for name in order_ids(request) {
                batch_of_order.insert(name, id.clone());
            }
        }
        let deliveries = wait_until_settled(&weft, &subscription, 25).await;
        for (event_id, name) in event_ids.iter().zip(&names) {
            let delivery = &deliveries[event_id];
            assert_eq!(delivery["status"], "succeeded", "{delivery}");
            assert_eq!(
                delivery["batch_id"],
                json!(batch_of_order[name]),
                "{delivery}"
            );
        }
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_than_max_events_leave_together_after_max_wait_ms() {
    const MAX_WAIT_MS: u64 = 1000;
    const MAX_WAIT: Duration = Duration::from_millis(MAX_WAIT_MS);
    // Workers wake for a waiting batch when it is ready, not a poll later;
    // this allows for a loaded machine, not for a missed deadline.
    const LATE: Duration = Duration::from_millis(600);
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        weft.subscription(
            &endpoint,
            json!({
                "event_types": ["sales_order.created"],
                "batching": { "max_events": 10, "max_wait_ms": MAX_WAIT_MS }
            }),
        )
        .await;

        let published = Instant::now();
        publish_together(&weft, orders("SO", 3)).await;

        let received = receiver.wait_for(1, WAIT).await;
        let waited = received[0].at - published;
        // The batch's clock starts when the events are captured, after
        // `published`; milliseconds are whole, so allow for one.
        assert!(
            waited >= MAX_WAIT - Duration::from_millis(1),
            "{backend:?}: sent after {waited:?}"
        );
        assert!(
            waited <= MAX_WAIT + LATE,
            "{backend:?}: sent after {waited:?}"
        );
        assert_eq!(order_ids(&received[0]), ["SO-000", "SO-001", "SO-002"]);
        tokio::time::sleep(QUIET).await;
        assert_eq!(receiver.received().len(), 1);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_whole_and_newcomers_form_their_own() {
    const RETRY_DELAY_MS: u64 = 1000;
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (status, endpoint) = weft
            .post(
                "/v1/endpoints",
                &json!({
                    "name": "receiver",
                    "url": receiver.url,
                    "timeout_ms": 2000,
                    "retry": { "max_attempts": 3, "backoff": { "type": "fixed", "delay_ms": RETRY_DELAY_MS } }
                }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        let secret = endpoint["secret"].as_str().unwrap();
        let subscription = weft
            .subscription(
                endpoint["id"].as_str().unwrap(),
                json!({
                    "event_types": ["sales_order.created"],
                    "batching": { "max_events": 3, "max_wait_ms": NEVER_MS }
                }),
            )
            .await;

        receiver.script([Reply::status(500)]);
        let first = publish_together(&weft, orders("A", 3)).await;
        let failed = receiver.wait_for(1, WAIT).await.remove(0);
        // Captured while the first batch waits for its retry: they must not
        // join it, or its retry would be a different request with its id.
        let second = publish_together(&weft, orders("B", 3)).await;
        receiver.wait_for(3, WAIT).await;
        tokio::time::sleep(QUIET).await;

        let received = receiver.received();
        assert_eq!(received.len(), 3, "{backend:?}");
        let first_id = webhook_id(&failed);
        let (retries, others): (Vec<&Received>, Vec<&Received>) = received[1..]
            .iter()
            .partition(|request| webhook_id(request) == first_id);
        assert_eq!(retries.len(), 1, "{backend:?}: retried once, under its id");
        let (retry, newcomers) = (retries[0], others[0]);
        assert_eq!(retry.body, failed.body, "the same members, the same body");
        assert_eq!(order_ids(retry), ["A-000", "A-001", "A-002"]);
        assert!(retry.at - failed.at >= Duration::from_millis(RETRY_DELAY_MS));
        assert_ne!(webhook_id(newcomers), first_id);
        assert_eq!(order_ids(newcomers), ["B-000", "B-001", "B-002"]);
        for request in &received {
            verify_signature(request, secret);
        }

        let deliveries = wait_until_settled(&weft, &subscription, 6).await;
        for event in &first {
            let delivery = &deliveries[event];
            assert_eq!(delivery["status"], "succeeded", "{delivery}");
            assert_eq!(delivery["attempts"], 2);
            assert_eq!(delivery["batch_id"], json!(first_id));
            let (_, shown) = weft
                .get(&format!(
                    "/v1/deliveries/{}",
                    delivery["id"].as_str().unwrap()
                ))
                .await;
            let attempts = shown["attempts"].as_array().unwrap();
            let statuses: Vec<_> = attempts
                .iter()
                .map(|a| a["response_status"].clone())
                .collect();
            assert_eq!(statuses, vec![json!(500), json!(200)]);
            assert!(
                attempts
                    .iter()
                    .all(|a| a["request_headers"]["webhook-id"] == json!(first_id)),
                "{attempts:?}"
            );
        }
        for event in &second {
            let delivery = &deliveries[event];
            assert_eq!(delivery["status"], "succeeded", "{delivery}");
            assert_eq!(delivery["attempts"], 1);
            assert_eq!(delivery["batch_id"], json!(webhook_id(newcomers)));
        }
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_filter_drops_are_left_out_of_the_array() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        let subscription = weft
            .subscription(
                &endpoint,
                json!({
                    "event_types": ["sales_order.created"],
                    "filter": "order.total > 100",
                    "batching": { "max_events": 4, "max_wait_ms": NEVER_MS }
                }),
            )
            .await;
        let events = vec![
            order("SO-small-1", 50.0),
            order("SO-large-1", 500.0),
            order("SO-small-2", 20.0),
            order("SO-large-2", 700.0),
        ];

        let event_ids = publish_together(&weft, events).await;

        let received = receiver.wait_for(1, WAIT).await;
        assert_eq!(
            order_ids(&received[0]),
            ["SO-large-1", "SO-large-2"],
            "{backend:?}"
        );
        let deliveries = wait_until_settled(&weft, &subscription, 4).await;
        let batch = json!(webhook_id(&received[0]));
        for (index, event) in event_ids.iter().enumerate() {
            let delivery = &deliveries[event];
            if index % 2 == 0 {
                assert_eq!(delivery["status"], "dropped", "{delivery}");
                assert!(
                    delivery["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("is false"),
                    "{delivery}"
                );
                assert_eq!(delivery["batch_id"], Value::Null, "{delivery}");
            } else {
                assert_eq!(delivery["status"], "succeeded", "{delivery}");
                assert_eq!(delivery["batch_id"], batch, "{delivery}");
            }
        }
        tokio::time::sleep(QUIET).await;
        assert_eq!(receiver.received().len(), 1);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_and_ordering_keys_are_refused_together() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let (endpoint, _) = weft.endpoint("https://hooks.example.com/orders", 3).await;
        let (status, problem) = weft
            .post(
                "/v1/subscriptions",
                &json!({
                    "name": "orders",
                    "endpoint_id": endpoint,
                    "event_types": ["sales_order.*"],
                    "batching": { "max_events": 10, "max_wait_ms": 1000 },
                    "ordering_key": "{{ order.id }}"
                }),
            )
            .await;
        assert_eq!(status, 422, "{backend:?}: {problem}");
        assert_eq!(problem["field"], "batching", "{problem}");
        assert_eq!(problem["type"], "invalid_combination", "{problem}");
        let (_, listed) = weft.get("/v1/subscriptions").await;
        assert_eq!(listed["subscriptions"], json!([]), "nothing was written");
        weft.stop().await;
    }
}
