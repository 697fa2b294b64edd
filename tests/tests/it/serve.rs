//! `weft serve` as a process: it starts with no setup, stops cleanly, a
//! `kill -9` in the middle of a load loses no accepted event, and the history
//! shows the attempts a killed process may have made.

use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{Api, BACKENDS, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_needs_no_setup_and_stops_on_sigterm() {
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let weft = tokio::task::spawn_blocking(move || WeftProcess::start(None, &dir))
        .await
        .unwrap();
    let api = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_installation_prints_its_admin_key_once_and_opens_nothing_else() {
    let workdir = tempfile::tempdir().unwrap();
    let start = || {
        let dir = workdir.path().to_owned();
        tokio::task::spawn_blocking(move || WeftProcess::start_without_chosen_key(&dir))
    };
    let weft = start().await.unwrap();
    let key = weft
        .printed
        .iter()
        .find_map(|line| {
            line.trim()
                .strip_prefix("weft_")
                .map(|k| format!("weft_{k}"))
        })
        .unwrap_or_else(|| panic!("no key printed: {:?}", weft.printed));
    let anonymous = Api::new(weft.url.clone());
    assert_eq!(anonymous.get("/health").await.0, 200);
    for path in [
        "/v1/event-types",
        "/v1/endpoints",
        "/v1/deliveries",
        "/v1/api-keys",
    ] {
        let (status, problem) = anonymous.get(path).await;
        assert_eq!(status, 401, "{path}: {problem}");
        assert_eq!(problem["type"], "unauthorized");
    }
    let admin = Api::new(weft.url.clone()).with_key(key.clone());
    let (status, keys) = admin.get("/v1/api-keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys["api_keys"][0]["role"], "admin");
    assert_eq!(keys["api_keys"][0]["hint"], key[key.len() - 4..]);
    let (_, log) = admin.get("/v1/audit").await;
    assert_eq!(log["entries"][0]["action"], "api_key.create", "{log}");
    assert_eq!(log["entries"][0]["actor"], "operator:weft serve");
    let stopped = tokio::task::spawn_blocking(move || weft.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(stopped);

    let again = start().await.unwrap();
    assert!(
        again.printed.iter().all(|line| !line.contains("weft_")),
        "a second start printed a key: {:?}",
        again.printed
    );
    let admin = Api::new(again.url.clone()).with_key(key);
    assert_eq!(admin.get("/v1/api-keys").await.0, 200);
    let mut database = std::fs::read(workdir.path().join("weft.db")).unwrap();
    database.extend(std::fs::read(workdir.path().join("weft.db-wal")).unwrap_or_default());
    let printed_key = admin.key.clone().unwrap();
    assert!(
        !database
            .windows(printed_key.len())
            .any(|window| window == printed_key.as_bytes()),
        "the key itself is stored"
    );
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
        let api = Arc::new(Api::new(first.url.clone()).with_key(BOOTSTRAP_KEY));
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
        // A delivery the killed process sent may arrive twice. Its history
        // says so: an attempt of unknown outcome before the one that went.
        let mut times_received: HashMap<String, usize> = HashMap::new();
        for request in receiver.received() {
            *times_received
                .entry(request.header("webhook-id").unwrap().to_owned())
                .or_default() += 1;
        }
        let twice: Vec<&String> = times_received
            .iter()
            .filter(|(_, times)| **times > 1)
            .map(|(id, _)| id)
            .collect();
        let api = Api::new(second.url.clone()).with_key(BOOTSTRAP_KEY);
        for id in twice.iter().take(20) {
            let (outcomes, shown) = api.delivery_outcomes(id).await;
            assert_eq!(
                outcomes.last().map(String::as_str),
                Some("succeeded"),
                "{backend:?}: {shown:#}"
            );
            assert!(
                outcomes.iter().any(|outcome| outcome == "unknown"),
                "{backend:?}: {shown:#}"
            );
            assert_eq!(shown["delivery"]["attempts"], outcomes.len(), "{shown:#}");
        }
        eprintln!(
            "{backend:?}: {} events accepted before kill -9, {delivered_before} delivered before it, \
             all {} after restart, {} received twice",
            accepted.len(),
            accepted.len(),
            twice.len()
        );
        drop(second);
        database.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_at_kill_9_shows_an_attempt_of_unknown_outcome() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let workdir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start().await;
        // The receiver holds every request: each is in flight at the kill.
        receiver.answer_all(Reply::status(200).after(Duration::from_secs(60)));
        let (url, dir) = (database.url.clone(), workdir.path().to_owned());
        let first =
            tokio::task::spawn_blocking(move || WeftProcess::start_with(Some(&url), &dir, LEASE))
                .await
                .unwrap();
        let api = Api::new(first.url.clone()).with_key(BOOTSTRAP_KEY);
        let (status, endpoint) = api
            .post(
                "/v1/endpoints",
                &json!({ "name": "slow", "url": receiver.url, "timeout_ms": 90_000 }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        let endpoint = endpoint["id"].as_str().unwrap().to_owned();
        api.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
            .await;
        for _ in 0..3 {
            api.publish_sample("stock.updated", |_| {}).await;
        }
        receiver.wait_for(3, Duration::from_secs(60)).await;
        tokio::task::spawn_blocking(move || first.kill_9())
            .await
            .unwrap();

        receiver.answer_all(Reply::status(200));
        let (url, dir) = (database.url.clone(), workdir.path().to_owned());
        let second =
            tokio::task::spawn_blocking(move || WeftProcess::start_with(Some(&url), &dir, LEASE))
                .await
                .unwrap();
        let api = Api::new(second.url.clone()).with_key(BOOTSTRAP_KEY);
        let received = receiver.wait_for(6, Duration::from_secs(60)).await;
        let ids: BTreeSet<&str> = received
            .iter()
            .map(|request| request.header("webhook-id").unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{backend:?}: each delivery sent twice");
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in ids {
            let shown = loop {
                let (_, shown) = api.get(&format!("/v1/deliveries/{id}")).await;
                if shown["delivery"]["status"] == "succeeded" {
                    break shown;
                }
                assert!(Instant::now() < deadline, "{backend:?}: {shown:#}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let attempts = shown["attempts"].as_array().unwrap();
            let outcomes: Vec<&str> = attempts
                .iter()
                .map(|attempt| attempt["outcome"].as_str().unwrap())
                .collect();
            assert_eq!(outcomes, ["unknown", "succeeded"], "{backend:?}: {shown:#}");
            assert_eq!(attempts[0]["number"], 1);
            assert_eq!(attempts[1]["number"], 2);
            assert!(
                attempts[0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("the receiver may have received it"),
                "{shown:#}"
            );
            assert_eq!(attempts[0]["request_url"], receiver.url.as_str());
            assert_eq!(shown["delivery"]["attempts"], 2);
        }
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
