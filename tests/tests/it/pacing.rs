//! How hard Weft presses receivers: an endpoint's rate limit holds under a
//! burst and loses nothing, an endpoint's concurrency limit and the process's
//! maximum of deliveries in flight cap what a slow receiver has to handle.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use weft_tests::receiver::{Receiver, Reply, most_within};
use weft_tests::weft::{BACKENDS, Backend, TestWeft};

const WAIT: Duration = Duration::from_secs(30);

async fn endpoint(weft: &TestWeft, url: &str, limits: Value) -> String {
    let mut spec = json!({ "name": "paced", "url": url, "timeout_ms": 5000 });
    spec.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let (status, endpoint) = weft.post("/v1/endpoints", &spec).await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    weft.subscription(&id, json!({ "event_types": ["stock.updated"] }))
        .await;
    id
}

/// Publishes `count` events and waits until every delivery succeeded; each
/// was attempted once (waiting for the limits is not an attempt).
async fn publish_and_settle(weft: &TestWeft, count: usize) {
    let mut events = Vec::new();
    for _ in 0..count {
        events.push(weft.publish_sample("stock.updated", |_| {}).await);
    }
    for event in events {
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.len() == 1 && d[0]["status"] == "succeeded"
            })
            .await;
        assert_eq!(deliveries[0]["attempts"], 1, "{deliveries:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_an_endpoints_rate_waits_its_turn_and_none_is_lost() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        for (limits, field) in [
            (
                json!({ "rate_limit": { "requests": 0, "per_seconds": 1 } }),
                "rate_limit.requests",
            ),
            (
                json!({ "rate_limit": { "requests": 5, "per_seconds": 0 } }),
                "rate_limit.per_seconds",
            ),
            (json!({ "max_concurrency": 0 }), "max_concurrency"),
        ] {
            let mut spec = json!({ "name": "bad", "url": receiver.url });
            spec.as_object_mut()
                .unwrap()
                .extend(limits.as_object().unwrap().clone());
            let (status, problem) = weft.post("/v1/endpoints", &spec).await;
            assert_eq!(status, 422, "{problem}");
            assert_eq!(problem["field"], field);
        }

        // Five a second, in a burst of at most five.
        let limits = json!({ "rate_limit": { "requests": 5, "per_seconds": 1 } });
        endpoint(&weft, &receiver.url, limits).await;
        publish_and_settle(&weft, 20).await;

        let received = receiver.received();
        assert_eq!(received.len(), 20, "each event delivered once");
        let ids: BTreeSet<&str> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap())
            .collect();
        assert_eq!(ids.len(), 20);
        let mut arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
        arrivals.sort();
        // A burst of 5, then one every 200 ms: 20 take at least 3 s, and no
        // second holds more than 5 + 5.
        let spread = arrivals[19] - arrivals[0];
        assert!(
            spread >= Duration::from_millis(2_800),
            "{backend:?}: {spread:?}"
        );
        let busiest = most_within(&arrivals, Duration::from_secs(1));
        assert!(
            busiest <= 10,
            "{backend:?}: {busiest} requests within one second"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_cap_what_a_slow_receiver_has_in_hand() {
    const HANDLING: Duration = Duration::from_millis(300);
    // An endpoint that takes two at a time.
    let weft = TestWeft::start(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    receiver.script((0..10).map(|_| Reply::status(200).after(HANDLING)));
    endpoint(&weft, &receiver.url, json!({ "max_concurrency": 2 })).await;
    publish_and_settle(&weft, 10).await;
    let arrivals: Vec<Instant> = receiver.received().iter().map(|r| r.at).collect();
    // Each request is in hand for 300 ms after it arrives.
    let most = most_within(&arrivals, HANDLING - Duration::from_millis(20));
    assert_eq!(most, 2, "at most two at once, and two used");
    weft.stop().await;

    // The process as a whole: three in flight, whatever the endpoints.
    let mut weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    weft.set_max_in_flight(3);
    weft.start_workers(2);
    let receiver = Receiver::start().await;
    receiver.script((0..12).map(|_| Reply::status(200).after(HANDLING)));
    endpoint(&weft, &receiver.url, json!({})).await;
    let started = Instant::now();
    publish_and_settle(&weft, 12).await;
    let arrivals: Vec<Instant> = receiver.received().iter().map(|r| r.at).collect();
    let most = most_within(&arrivals, HANDLING - Duration::from_millis(20));
    assert_eq!(most, 3, "at most three at once, and three used");
    assert!(
        started.elapsed() >= HANDLING * 4,
        "12 at 3 at a time take 4 rounds"
    );
    weft.stop().await;
}
