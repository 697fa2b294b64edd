//! Endpoint health, the circuit breaker and disabling, with real receivers
//! that hang, fail and recover: a circuit opens after the breaker's count
//! of failures in a row and parks what comes meanwhile without spending
//! attempts, a probe goes after each pause (doubling while it fails), a
//! success closes it and releases every parked delivery; an endpoint failing
//! for longer than its breaker allows is disabled, says so in the tenant's
//! stream, keeps its deliveries as `skipped`, and delivers them when an
//! administrator enables it and recovers them.

use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{BACKENDS, TestWeft};

const WAIT: Duration = Duration::from_secs(60);

/// An endpoint for `url` under `breaker`, retrying every 50 ms up to 50
/// times, with a short timeout.
async fn endpoint(weft: &TestWeft, name: &str, url: &str, breaker: Value) -> String {
    let (status, endpoint) = weft
        .post(
            "/v1/endpoints",
            &json!({
                "name": name,
                "url": url,
                "timeout_ms": 300,
                "retry": { "max_attempts": 50, "backoff": { "type": "fixed", "delay_ms": 50 } },
                "circuit_breaker": breaker,
            }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    endpoint["id"].as_str().unwrap().to_owned()
}

/// Polls endpoint `id` until `check` holds for it.
async fn wait_for_endpoint(weft: &TestWeft, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, endpoint) = weft.get(&format!("/v1/endpoints/{id}")).await;
        assert_eq!(status, 200, "{endpoint}");
        if check(&endpoint) {
            return endpoint;
        }
        assert!(Instant::now() < deadline, "never got there: {endpoint:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit entries of `action` about endpoint `id`, oldest first.
async fn audited(weft: &TestWeft, action: &str, id: &str) -> Vec<Value> {
    let (_, audit) = weft
        .get(&format!("/v1/audit?action={action}&object={id}"))
        .await;
    let mut entries = audit["entries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    entries
}

fn attempts_of(deliveries: &[Value]) -> u64 {
    deliveries[0]["attempts"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_opens_on_failures_parks_deliveries_probes_and_closes_on_success() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        // It hangs: every attempt times out.
        receiver.answer_all(Reply::status(200).after(Duration::from_secs(30)));
        let breaker = json!({ "failures": 3, "pause_seconds": 1, "max_pause_seconds": 2 });
        let id = endpoint(&weft, "warehouse", &receiver.url, breaker).await;
        weft.subscription(&id, json!({ "event_types": ["stock.updated"] }))
            .await;

        let first = weft.publish_sample("stock.updated", |_| {}).await;
        let open =
            wait_for_endpoint(&weft, &id, |e| e["health"]["circuit"]["state"] != "closed").await;
        let health = &open["health"];
        assert_eq!(health["state"], "failing", "{backend:?}: {health:#}");
        assert_eq!(health["circuit"]["consecutive_failures"], 3, "{health:#}");
        assert!(
            health["last_failure"]["error"]
                .as_str()
                .is_some_and(|error| error.contains("within 300 ms")),
            "{health:#}"
        );
        let opened = audited(&weft, "endpoint.circuit.open", &id).await;
        assert_eq!(opened.len(), 1, "{opened:#?}");
        assert_eq!(opened[0]["after"]["failures"], 3);
        assert_eq!(opened[0]["actor"], "operator:circuit breaker");

        // Deliveries captured while it is open wait, parked, unattempted
        // (unless one of them is taken as a probe).
        receiver.answer_all(Reply::status(503));
        let mut later = Vec::new();
        for _ in 0..5 {
            later.push(weft.publish_sample("stock.updated", |_| {}).await);
        }
        for event in &later {
            weft.wait_for_deliveries(event, WAIT, |d| {
                d.len() == 1
                    && d[0]["status"] == "pending"
                    && ((d[0]["attempts"] == 0
                        && d[0]["last_error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("waiting: the circuit of endpoint")))
                        || d[0]["attempts"].as_u64() >= Some(1))
            })
            .await;
        }
        let parked = wait_for_endpoint(&weft, &id, |e| {
            e["health"]["backlog"]["waiting_for_circuit"].as_u64() >= Some(4)
        })
        .await;
        assert!(
            parked["health"]["backlog"]["pending"].as_u64() >= Some(5),
            "{parked:#}"
        );

        // Probes go after the pause and fail (503): the circuit opens again.
        let reopened = {
            let deadline = Instant::now() + WAIT;
            loop {
                let reopened = audited(&weft, "endpoint.circuit.reopen", &id).await;
                if !reopened.is_empty() {
                    break reopened;
                }
                assert!(Instant::now() < deadline, "{backend:?}: no probe failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        assert!(
            !audited(&weft, "endpoint.circuit.half_open", &id)
                .await
                .is_empty()
        );
        assert!(reopened[0]["after"]["probe_at"].is_i64(), "{reopened:#?}");

        // The receiver recovers: the next probe closes the circuit and every
        // parked delivery goes.
        receiver.answer_all(Reply::status(200));
        for event in [&first].into_iter().chain(&later) {
            weft.wait_for_deliveries(event, WAIT, |d| {
                d.len() == 1 && d[0]["status"] == "succeeded"
            })
            .await;
        }
        let closed =
            wait_for_endpoint(&weft, &id, |e| e["health"]["circuit"]["state"] == "closed").await;
        let health = &closed["health"];
        assert_eq!(health["circuit"]["consecutive_failures"], 0, "{health:#}");
        assert_eq!(health["backlog"]["pending"], 0, "{health:#}");
        assert!(health["last_success_at"].is_i64(), "{health:#}");
        assert_eq!(health["periods"]["5m"]["successes"], 6, "{health:#}");
        assert_eq!(audited(&weft, "endpoint.circuit.close", &id).await.len(), 1);

        // No attempt was spent while the circuit was open: the receiver saw
        // the three that opened it, one per failed probe, and the six that
        // succeeded; the delivery history counts the same.
        let failed_probes = audited(&weft, "endpoint.circuit.reopen", &id).await.len();
        assert_eq!(
            receiver.count(),
            3 + failed_probes + 6,
            "{backend:?}: {failed_probes} failed probes"
        );
        let mut attempts = 0;
        for event in [&first].into_iter().chain(&later) {
            let (_, body) = weft.get(&format!("/v1/deliveries?event_id={event}")).await;
            attempts += attempts_of(body["deliveries"].as_array().unwrap());
        }
        assert_eq!(attempts as usize, receiver.count(), "{backend:?}");
        assert_eq!(
            health["periods"]["5m"]["failures"].as_u64(),
            Some(3 + failed_probes as u64),
            "{health:#}"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_too_long_is_disabled_announced_skipped_and_recovered() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let failing = Receiver::start().await;
        failing.answer_all(Reply::status(503));
        let operations = Receiver::start().await;
        let breaker = json!({
            "failures": 2, "pause_seconds": 1, "max_pause_seconds": 1, "disable_after_seconds": 2
        });
        let id = endpoint(&weft, "erp", &failing.url, breaker).await;
        // The events of one SKU keep their order.
        weft.subscription(
            &id,
            json!({ "event_types": ["stock.updated"], "ordering_key": "{{ stock.sku }}" }),
        )
        .await;
        // The operations team hears of disabled endpoints like of any event.
        let watcher = endpoint(&weft, "ops", &operations.url, json!(null)).await;
        weft.subscription(
            &watcher,
            json!({ "event_types": ["weft.endpoint.disabled"] }),
        )
        .await;

        let started = weft_engine::model::now_millis();
        let mut events = Vec::new();
        for quantity in 0..3 {
            events.push(
                weft.publish_sample("stock.updated", |event| {
                    event["data"]["stock"]["quantity"] = json!(quantity);
                })
                .await,
            );
        }
        let disabled = wait_for_endpoint(&weft, &id, |e| e["enabled"] == false).await;
        assert_eq!(disabled["health"]["state"], "disabled", "{backend:?}");
        let reason = disabled["disabled_reason"].as_str().unwrap();
        assert!(reason.contains("every attempt failed since"), "{reason}");
        assert!(reason.contains("503"), "{reason}");
        let entries = audited(&weft, "endpoint.disable", &id).await;
        assert_eq!(entries.len(), 1, "{entries:#?}");
        assert_eq!(entries[0]["actor"], "operator:circuit breaker");

        // Announced in the tenant's own stream.
        let announced = operations.wait_for(1, WAIT).await;
        let body = announced[0].json();
        assert_eq!(body["endpoint"]["id"], id.as_str(), "{body:#}");
        assert_eq!(body["endpoint"]["name"], "erp");
        assert_eq!(body["disabled_by"], "circuit breaker");
        assert_eq!(body["reason"], reason);

        // Pending deliveries are kept as skipped, not failed or dropped;
        // those captured while it is disabled too.
        events.push(weft.publish_sample("stock.updated", |_| {}).await);
        for event in &events {
            let skipped = weft
                .wait_for_deliveries(event, WAIT, |d| d.len() == 1 && d[0]["status"] == "skipped")
                .await;
            assert!(
                skipped[0]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("is disabled")),
                "{skipped:#?}"
            );
        }
        let sent_before = failing.count();

        // The list filters by health; `weft endpoints` shows it as a table.
        let (_, listed) = weft.get("/v1/endpoints?health=disabled").await;
        let ids: Vec<&str> = listed["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "{listed:#}");
        let (_, listed) = weft.get("/v1/endpoints?health=healthy").await;
        assert_eq!(listed["endpoints"][0]["id"], watcher.as_str(), "{listed:#}");
        let (status, refused) = weft.get("/v1/endpoints?health=sick").await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["detail"].as_str().unwrap().contains("\"sick\""));
        let table = cli(&weft, &["endpoints", "list"]);
        let line = table.lines().find(|line| line.starts_with(&id)).unwrap();
        assert!(line.contains("disabled"), "{table}");
        let shown = cli(&weft, &["endpoints", "show", &id]);
        assert!(shown.contains("every attempt failed since"), "{shown}");
        assert!(shown.contains("5m "), "{shown}");

        // Recovering needs the endpoint enabled first.
        let (status, refused) = weft
            .post(&format!("/v1/endpoints/{id}/recover"), &json!(null))
            .await;
        assert_eq!(status, 409, "{refused}");
        failing.answer_all(Reply::status(200));
        let enabled = cli(&weft, &["endpoints", "enable", &id]);
        assert!(enabled.contains("weft endpoints recover"), "{enabled}");
        let (_, endpoint) = weft.get(&format!("/v1/endpoints/{id}")).await;
        assert_eq!(endpoint["health"]["circuit"]["consecutive_failures"], 0);
        // Enabled, with a closed circuit; its recent failures still count
        // until successes outweigh them.
        assert_eq!(endpoint["health"]["circuit"]["state"], "closed");
        assert_eq!(endpoint["health"]["state"], "failing", "{endpoint:#}");
        let since = started.to_string();
        let recovered = cli(&weft, &["endpoints", "recover", &id, "--since", &since]);
        assert!(recovered.starts_with("4 skipped deliveries"), "{recovered}");
        for event in &events {
            weft.wait_for_deliveries(event, WAIT, |d| {
                d.len() == 1 && d[0]["status"] == "succeeded"
            })
            .await;
        }
        // In capture order (one ordering key), each once.
        let delivered: Vec<i64> = failing.received()[sent_before..]
            .iter()
            .map(|request| request.json()["stock"]["quantity"].as_i64().unwrap())
            .collect();
        assert_eq!(delivered, [0, 1, 2, 138], "{backend:?}");
        assert_eq!(audited(&weft, "endpoint.recover", &id).await.len(), 1);

        // A manual disable is one call, announced too, by the key that did it.
        let disabled = cli(
            &weft,
            &["endpoints", "disable", &id, "--reason", "maintenance"],
        );
        assert!(disabled.contains("maintenance"), "{disabled}");
        let announced = operations.wait_for(2, WAIT).await;
        let body = announced[1].json();
        assert_eq!(body["reason"], "maintenance", "{body:#}");
        assert!(
            body["disabled_by"].as_str().unwrap().starts_with("key_"),
            "{body:#}"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_settings_out_of_bounds_and_weft_event_types_are_refused() {
    let weft = TestWeft::start(weft_tests::weft::Backend::Sqlite).await;
    for (breaker, field) in [
        (json!({ "failures": 10_001 }), "circuit_breaker.failures"),
        (
            json!({ "pause_seconds": 0 }),
            "circuit_breaker.pause_seconds",
        ),
        (
            json!({ "pause_seconds": 60, "max_pause_seconds": 30 }),
            "circuit_breaker.max_pause_seconds",
        ),
    ] {
        let (status, refused) = weft
            .post(
                "/v1/endpoints",
                &json!({ "name": "x", "url": "https://example.com/hook", "circuit_breaker": breaker }),
            )
            .await;
        assert_eq!(status, 422, "{breaker}: {refused}");
        let at = refused["field"].as_str().unwrap_or_default();
        assert!(at.starts_with(field), "{breaker}: {refused}");
    }
    let (status, refused) = weft
        .post(
            "/v1/endpoints",
            &json!({ "name": "x", "url": "https://example.com/hook", "circuit_breaker": { "failure": 3 } }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["field"], "circuit_breaker.failure", "{refused}");
    // Only Weft publishes its operational events, and no tenant type may
    // take their names.
    let (status, refused) = weft
        .post(
            "/v1/events",
            &json!({ "type": "weft.endpoint.disabled", "data": {} }),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["field"], "type", "{refused}");
    let (status, refused) = weft
        .post(
            "/v1/event-types",
            &json!({ "name": "weft.endpoint.enabled", "description": "d", "schema": {} }),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    weft.stop().await;
}

/// Runs the `weft` binary against `weft`'s API as its admin; its stdout.
fn cli(weft: &TestWeft, args: &[&str]) -> String {
    let output = Command::new(weft_tests::weft_binary())
        .args(args)
        .env("WEFT_API_URL", &weft.url)
        .env("WEFT_API_KEY", weft.key.as_deref().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "weft {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
