//! `weft serve` as a process: it starts with no setup, stops cleanly, and a
//! `kill -9` in the middle of a load loses no accepted event.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_tests::process::WeftProcess;
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Api, BACKENDS, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_needs_no_setup_and_stops_on_sigterm() {
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let weft = tokio::task::spawn_blocking(move || WeftProcess::start(None, &dir))
        .await
        .unwrap();
    let api = Api::new(weft.url.clone());
    let (status, types) = api.get("/v1/event-types").await;
    assert_eq!(status, 200);
    assert!(types["event_types"].as_array().unwrap().len() >= 200);
    let (status, openapi) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(
        workdir.path().join("weft.db").exists(),
        "the default database is ./weft.db"
    );
    let stopped = tokio::task::spawn_blocking(move || weft.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(stopped, "weft serve should exit 0 on SIGTERM");
}

/// Publishes batches of sales orders with unique ids until the server goes away;
/// returns the ids of the orders it accepted (answered 202).
async fn publish_until_gone(api: Arc<Api>, accepted: Arc<Mutex<Vec<String>>>) {
    let sample = weft_tests::sample_event_json("sales_order.created");
    for batch in 0.. {
        let events: Vec<Value> = (0..50)
            .map(|n| {
                let mut data = sample["data"].clone();
                data["order"]["id"] = json!(format!("SO-{batch}-{n}"));
                json!({ "type": "sales_order.created", "data": data })
            })
            .collect();
        match api
            .try_post("/v1/events/batch", &json!({ "events": events }))
            .await
        {
            Ok((202, _)) => accepted
                .lock()
                .unwrap()
                .extend((0..50).map(|n| format!("SO-{batch}-{n}"))),
            Ok((status, body)) => panic!("unexpected {status}: {body}"),
            Err(_) => return,
        }
    }
}

const LEASE: &[&str] = &["--lease-seconds", "2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_load_loses_no_accepted_event() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let workdir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start().await;
        let (url, dir) = (database.url.clone(), workdir.path().to_owned());
        // Deliveries leased by the killed process come due again after the lease:
        // a short one keeps the test short.
        let first =
            tokio::task::spawn_blocking(move || WeftProcess::start_with(Some(&url), &dir, LEASE))
                .await
                .unwrap();
        let api = Arc::new(Api::new(first.url.clone()));
        let (endpoint, _) = api.endpoint(&receiver.url, 50).await;
        api.subscription(&endpoint, json!({ "event_types": ["sales_order.created"] }))
            .await;

        let accepted = Arc::new(Mutex::new(Vec::new()));
        let publisher = tokio::spawn(publish_until_gone(Arc::clone(&api), Arc::clone(&accepted)));
        let started = Instant::now();
        while accepted.lock().unwrap().len() < 2000 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{backend:?}: the load did not get going"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::spawn_blocking(move || first.kill_9())
            .await
            .unwrap();
        publisher.await.unwrap();
        let accepted: BTreeSet<String> = accepted.lock().unwrap().iter().cloned().collect();
        let delivered_before = distinct_orders(&receiver).len();

        let (url, dir) = (database.url.clone(), workdir.path().to_owned());
        let second =
            tokio::task::spawn_blocking(move || WeftProcess::start_with(Some(&url), &dir, LEASE))
                .await
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let delivered = distinct_orders(&receiver);
            let missing: Vec<_> = accepted.difference(&delivered).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: {} of {} accepted events never arrived, e.g. {:?}",
                missing.len(),
                accepted.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{backend:?}: {} events accepted before kill -9, {delivered_before} delivered before it, all {} after restart",
            accepted.len(),
            accepted.len()
        );
        drop(second);
        database.drop().await;
    }
}

fn distinct_orders(receiver: &Receiver) -> BTreeSet<String> {
    receiver
        .received()
        .iter()
        .filter_map(|r| r.json()["order"]["id"].as_str().map(str::to_owned))
        .collect()
}
