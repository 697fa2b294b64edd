//! No receiver can stall Weft for the others: a receiver that takes 25 s per
//! request holds only its own places, and slow receivers together get as many
//! deliveries in flight as the process allows.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{BACKENDS, TestWeft};

/// Creates an endpoint for `url` that waits `timeout_ms` for an answer, and a
/// subscription of it to `event_type`; returns the endpoint's id.
async fn subscribed(weft: &TestWeft, url: &str, timeout_ms: u32, event_type: &str) -> String {
    let (status, endpoint) = weft
        .post(
            "/v1/endpoints",
            &json!({ "name": "receiver", "url": url, "timeout_ms": timeout_ms }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    weft.subscription(&id, json!({ "event_types": [event_type] }))
        .await;
    id
}

/// Publishes `count` events of `event_type` in batches of 500.
async fn publish_many(weft: &TestWeft, event_type: &str, count: usize) {
    let mut sample = weft_tests::sample_event_json(event_type);
    sample.as_object_mut().unwrap().remove("id");
    sample.as_object_mut().unwrap().remove("tenant");
    let mut left = count;
    while left > 0 {
        let size = left.min(500);
        let events: Vec<Value> = (0..size).map(|_| sample.clone()).collect();
        let (status, body) = weft
            .post("/v1/events/batch", &json!({ "events": events }))
            .await;
        assert_eq!(status, 202, "{body}");
        left -= size;
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_holds_up_only_its_own_deliveries() {
    const SLOW_BACKLOG: usize = 600;
    const HEALTHY_EVENTS: usize = 50;
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let slow = Receiver::start().await;
        slow.answer_all(Reply::status(200).after(Duration::from_secs(25)));
        let healthy = Receiver::start().await;
        subscribed(&weft, &slow.url, 30_000, "stock.updated").await;
        subscribed(&weft, &healthy.url, 5_000, "customer.created").await;

        publish_many(&weft, "stock.updated", SLOW_BACKLOG).await;
        // The slow receiver has its share of the places before the stream starts.
        let deadline = Instant::now() + Duration::from_secs(20);
        while slow.in_flight() < 200 {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the slow receiver got only {} requests",
                slow.in_flight()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A healthy stream of 10 events a second, each timed from its publish
        // to its arrival.
        let mut published = HashMap::new();
        for sequence in 0..HEALTHY_EVENTS {
            let at = Instant::now();
            weft.publish_sample("customer.created", |event| {
                event["data"]["customer"]["sequence"] = json!(sequence);
            })
            .await;
            published.insert(sequence, at);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let arrived = healthy
            .wait_for(HEALTHY_EVENTS, Duration::from_secs(20))
            .await;
        let mut delays: Vec<Duration> = arrived
            .iter()
            .map(|request| {
                let sequence = request.json()["customer"]["sequence"]
                    .as_u64()
                    .expect("the payload carries its sequence")
                    as usize;
                request.at - published[&sequence]
            })
            .collect();
        delays.sort();
        let p90 = percentile(&delays, 0.9);
        println!(
            "{backend:?}: healthy stream beside a 25 s receiver: p50 {:?}, p90 {p90:?}, max {:?}; \
             the slow receiver holds {} requests",
            percentile(&delays, 0.5),
            delays.last().unwrap(),
            slow.most_in_flight()
        );
        assert!(
            p90 <= Duration::from_secs(1),
            "{backend:?}: the healthy endpoint waited {p90:?} (p90) behind the slow one"
        );
        // The slow receiver got its share, and no more.
        assert!(
            slow.most_in_flight() <= weft_engine::delivery::DEFAULT_ENDPOINT_CONCURRENCY as usize,
            "{backend:?}: {} requests at once",
            slow.most_in_flight()
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receivers_get_a_thousand_deliveries_in_flight() {
    const RECEIVERS: usize = 8;
    const PER_RECEIVER: usize = 250;
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let mut receivers = Vec::new();
        for _ in 0..RECEIVERS {
            let receiver = Receiver::start().await;
            receiver.answer_all(Reply::status(200).after(Duration::from_secs(2)));
            subscribed(&weft, &receiver.url, 10_000, "stock.updated").await;
            receivers.push(receiver);
        }
        let started = Instant::now();
        // Each event goes to every receiver.
        publish_many(&weft, "stock.updated", PER_RECEIVER).await;
        let mut most_together = 0;
        let deadline = started + Duration::from_secs(60);
        loop {
            let in_flight: usize = receivers.iter().map(Receiver::in_flight).sum();
            most_together = most_together.max(in_flight);
            if receivers.iter().all(|r| r.count() >= PER_RECEIVER) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: only {} of {} arrived",
                receivers.iter().map(Receiver::count).sum::<usize>(),
                RECEIVERS * PER_RECEIVER
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let received = started.elapsed();
        println!(
            "{backend:?}: {} deliveries held 2 s each all received after {received:?}, \
             {most_together} in flight at once",
            RECEIVERS * PER_RECEIVER
        );
        assert!(
            most_together >= 1_000,
            "{backend:?}: at most {most_together} deliveries were in flight together"
        );
        weft.stop().await;
    }
}
