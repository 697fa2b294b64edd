//! A plugin that reports its configuration wrong (`invalid-config`) pauses
//! its subscription, as the contract promises: deliveries are held, not
//! dead-lettered, until an administrator fixes the configuration and resumes
//! the subscription; then every held delivery goes out.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{BACKENDS, TestWeft};

const WAIT: Duration = Duration::from_secs(30);

/// The subscription's spec with the misbehaving plugin in `mode`.
fn spec(endpoint: &str, mode: &str) -> Value {
    json!({
        "name": "configured by hand",
        "endpoint_id": endpoint,
        "event_types": ["stock.updated"],
        "plugins": [{ "plugin": "misbehave", "version": "0.1.0", "config": { "mode": mode } }]
    })
}

async fn wait_for_status(weft: &TestWeft, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, subscription) = weft.get(&format!("/v1/subscriptions/{id}")).await;
        if subscription["status"] == status {
            return subscription;
        }
        assert!(Instant::now() < deadline, "never {status}: {subscription}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_pauses_the_subscription_and_holds_its_deliveries() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        let (status, created) = weft
            .post("/v1/subscriptions", &spec(&endpoint, "no-such-mode"))
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["status"], "active");
        let id = created["id"].as_str().unwrap().to_owned();

        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(weft.publish_sample("stock.updated", |_| {}).await);
        }
        let paused = wait_for_status(&weft, &id, "paused").await;
        let reason = paused["paused"]["reason"].as_str().unwrap();
        assert!(reason.contains("no-such-mode"), "{backend:?}: {reason}");

        // Held: pending, never attempted, saying why; nothing dead-lettered.
        for event in &events {
            let deliveries = weft
                .wait_for_deliveries(event, WAIT, |d| {
                    d.len() == 1
                        && d[0]["last_error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("held:"))
                })
                .await;
            assert_eq!(deliveries[0]["status"], "pending", "{backend:?}");
            assert_eq!(deliveries[0]["attempts"], 0, "{backend:?}");
        }
        // One published while paused is held too, unattempted.
        let later = weft.publish_sample("stock.updated", |_| {}).await;
        let held = weft
            .wait_for_deliveries(&later, WAIT, |d| {
                d.len() == 1
                    && d[0]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("the subscription is paused"))
            })
            .await;
        assert_eq!(held[0]["status"], "pending");
        assert_eq!(held[0]["attempts"], 0);
        let (_, audit) = weft.get("/v1/audit?action=subscription.pause").await;
        assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");

        // Fixing the configuration does not resume it by itself…
        let (status, fixed) = weft
            .call(
                "PUT",
                &format!("/v1/subscriptions/{id}"),
                Some(&spec(&endpoint, "ok")),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{fixed}");
        assert_eq!(fixed["status"], "paused");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.count(), 0, "{backend:?}: delivered while paused");

        // …an administrator does, and every held delivery goes out once.
        let (status, resumed) = weft
            .post(&format!("/v1/subscriptions/{id}/resume"), &json!({}))
            .await;
        assert_eq!(status, 200, "{resumed}");
        assert_eq!(resumed["status"], "active");
        assert_eq!(resumed["paused"], Value::Null);
        receiver.wait_for(4, WAIT).await;
        for event in events.iter().chain([&later]) {
            let deliveries = weft
                .wait_for_deliveries(event, WAIT, |d| {
                    d.len() == 1 && d[0]["status"] == "succeeded"
                })
                .await;
            assert_eq!(deliveries[0]["attempts"], 1, "{backend:?}");
        }
        let (_, audit) = weft.get("/v1/audit?action=subscription.resume").await;
        assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
        weft.stop().await;
    }
}
