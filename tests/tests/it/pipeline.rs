//! The event pipeline end to end, on SQLite and on PostgreSQL: publish through
//! the API, watch real receivers on loopback and the delivery history.

use serde_json::{Value, json};
use std::time::Duration;
use weft_engine::delivery::verify;
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{BACKENDS, TestWeft};

const WAIT: Duration = Duration::from_secs(10);

fn verify_signature(received: &weft_tests::receiver::Received, secret: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_fans_out_to_every_matching_subscription_signed() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let (orders, accounting, inventory) = (
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
        );
        let (orders_ep, orders_secret) = weft.endpoint(&orders.url, 3).await;
        let (accounting_ep, accounting_secret) = weft.endpoint(&accounting.url, 3).await;
        let (inventory_ep, _) = weft.endpoint(&inventory.url, 3).await;
        weft.subscription(
            &orders_ep,
            json!({ "event_types": ["sales_order.created"] }),
        )
        .await;
        weft.subscription(
            &accounting_ep,
            json!({ "event_types": ["sales_order.*", "payment.received"] }),
        )
        .await;
        weft.subscription(&inventory_ep, json!({ "event_types": ["stock.*"] }))
            .await;

        let event_id = weft.publish_sample("sales_order.created", |_| {}).await;

        let to_orders = orders.wait_for(1, WAIT).await;
        let to_accounting = accounting.wait_for(1, WAIT).await;
        verify_signature(&to_orders[0], &orders_secret);
        verify_signature(&to_accounting[0], &accounting_secret);
        assert_eq!(
            to_orders[0].json(),
            weft_tests::sample_event_json("sales_order.created")["data"],
            "{backend:?}"
        );
        assert!(
            to_orders[0]
                .header("webhook-id")
                .unwrap()
                .starts_with("dlv_")
        );
        assert_ne!(
            to_orders[0].header("webhook-id"),
            to_accounting[0].header("webhook-id")
        );
        let deliveries = weft
            .wait_for_deliveries(&event_id, WAIT, |d| {
                d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded")
            })
            .await;
        assert_eq!(deliveries.len(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            inventory.received().is_empty(),
            "{backend:?}: stock subscription got a sales order"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_sheet_filter_and_payload_format_are_applied() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        weft.subscription(
            &endpoint,
            json!({
                "event_types": ["sales_order.created", "sales_order.updated"],
                "filter": "order.total > 100 && order.status != \"draft\"",
                "template": {
                    "order_id": "{{ order.id }}",
                    "customer_id": "{{ order.customer_id }}",
                    "total_amount": "{{ order.total }}",
                    "status": "{{ order.status }}",
                    "items": "{{ order.items }}",
                    "timestamp": "{{ event.timestamp }}"
                }
            }),
        )
        .await;

        let draft = weft
            .publish_sample("sales_order.created", |e| {
                e["data"]["order"]["status"] = json!("draft")
            })
            .await;
        let kept = weft.publish_sample("sales_order.created", |_| {}).await;

        let received = receiver.wait_for(1, WAIT).await;
        let body = received[0].json();
        let order = &weft_tests::sample_event_json("sales_order.created")["data"]["order"];
        assert_eq!(body["order_id"], order["id"], "{backend:?}");
        assert_eq!(body["total_amount"], order["total"]);
        assert_eq!(
            body["items"], order["items"],
            "a lone expression keeps its JSON type"
        );
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        let dropped = weft
            .wait_for_deliveries(&draft, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "dropped")
            })
            .await;
        assert!(
            dropped[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("is false"),
            "{dropped:?}"
        );
        weft.wait_for_deliveries(&kept, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
        assert_eq!(receiver.received().len(), 1);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_chain_filters_then_transforms() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        weft.subscription(
            &endpoint,
            json!({
                "event_types": ["sales_order.*"],
                "plugins": [
                    { "plugin": "high-value-orders", "version": "0.1.0", "config": { "threshold": 1000 } },
                    { "plugin": "redact-pii", "version": "0.1.0", "config": { "remove": ["order.customer.email"], "mask": ["order.customer.phone"] } }
                ]
            }),
        )
        .await;
        let small = weft
            .publish_sample("sales_order.created", |e| {
                e["data"]["order"]["total"] = json!(10)
            })
            .await;
        weft.publish_sample("sales_order.created", |_| {}).await;

        let body = receiver.wait_for(1, WAIT).await[0].json();
        let customer = &body["order"]["customer"];
        assert!(customer.get("email").is_none(), "{backend:?}: {customer}");
        assert!(
            customer["phone"].as_str().unwrap().starts_with("****"),
            "{customer}"
        );
        let dropped = weft
            .wait_for_deliveries(&small, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "dropped")
            })
            .await;
        assert!(
            dropped[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("high-value-orders"),
            "{dropped:?}"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_dead_lettered_and_replay_delivers() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        weft.subscription(&endpoint, json!({ "event_types": ["payment.received"] }))
            .await;

        // Two 500s then a 200: delivered on the third attempt.
        receiver.script([Reply::status(500), Reply::status(500)]);
        let retried = weft.publish_sample("payment.received", |_| {}).await;
        let delivered = weft
            .wait_for_deliveries(&retried, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "succeeded")
            })
            .await;
        assert_eq!(delivered[0]["attempts"], 3, "{backend:?}");
        let webhook_ids: Vec<_> = receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_owned())
            .collect();
        assert_eq!(webhook_ids.len(), 3);
        assert!(
            webhook_ids.iter().all(|id| id == &webhook_ids[0]),
            "webhook-id is stable across retries"
        );
        let (_, shown) = weft
            .get(&format!(
                "/v1/deliveries/{}",
                delivered[0]["id"].as_str().unwrap()
            ))
            .await;
        let statuses: Vec<_> = shown["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["response_status"].clone())
            .collect();
        assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);

        // Three failures exhaust the attempts: dead-lettered, then replayed.
        receiver.script([Reply::status(503), Reply::status(500), Reply::status(502)]);
        let failing = weft.publish_sample("payment.received", |_| {}).await;
        let failed = weft
            .wait_for_deliveries(&failing, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "failed")
            })
            .await;
        assert!(
            failed[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("gave up after 3 attempts"),
            "{failed:?}"
        );
        let (status, _) = weft
            .post(
                &format!(
                    "/v1/deliveries/{}/replay",
                    failed[0]["id"].as_str().unwrap()
                ),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 202);
        weft.wait_for_deliveries(&failing, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_410_disables_the_endpoint() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 5).await;
        weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
            .await;

        receiver.script([Reply::status(429).header("retry-after", "1")]);
        weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(2, WAIT).await;
        let waited = received[1].at - received[0].at;
        assert!(
            waited >= Duration::from_millis(950),
            "{backend:?}: retried after {waited:?}"
        );

        receiver.script([Reply::status(410)]);
        let gone = weft.publish_sample("stock.updated", |_| {}).await;
        weft.wait_for_deliveries(&gone, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "failed")
        })
        .await;
        let (_, shown) = weft.get(&format!("/v1/endpoints/{endpoint}")).await;
        assert_eq!(shown["enabled"], false, "{shown}");
        assert!(shown["disabled_reason"].as_str().unwrap().contains("410"));
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_retried_publish_harmless() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        weft.subscription(&endpoint, json!({ "event_types": ["customer.created"] }))
            .await;
        let mut event = weft_tests::sample_event_json("customer.created");
        event.as_object_mut().unwrap().remove("id");
        event.as_object_mut().unwrap().remove("tenant");
        let key = [("idempotency-key", "customer-42-created")];
        let (first_status, first) = weft.call("POST", "/v1/events", Some(&event), &key).await;
        let (second_status, second) = weft.call("POST", "/v1/events", Some(&event), &key).await;
        assert_eq!((first_status, second_status), (202, 202), "{backend:?}");
        assert_eq!(first["id"], second["id"]);
        assert_eq!(second["duplicate"], true);
        receiver.wait_for(1, WAIT).await;

        // The same key (or event id) for another event is refused, as Stripe
        // does, and the other event is not stored in its place.
        let mut other = event.clone();
        other["data"]["customer"]["name"] = json!("Someone Else Sdn Bhd");
        let (status, problem) = weft.call("POST", "/v1/events", Some(&other), &key).await;
        assert_eq!(status, 409, "{backend:?}: {problem}");
        assert_eq!(problem["type"], "idempotency_conflict", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("customer-42-created")
                && detail.contains(first["id"].as_str().unwrap()),
            "{detail}"
        );
        let mut same_id = other.clone();
        same_id["id"] = first["id"].clone();
        let batch = json!({ "events": [
            { "type": "customer.created", "data": event["data"] },
            same_id
        ] });
        let (status, problem) = weft.post("/v1/events/batch", &batch).await;
        assert_eq!(status, 409, "{backend:?}: {problem}");
        assert_eq!(problem["field"], "events[1]", "{problem}");
        let (_, stored) = weft
            .get(&format!("/v1/events/{}", first["id"].as_str().unwrap()))
            .await;
        assert_eq!(stored["payload"], event["data"], "{backend:?}");

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(receiver.received().len(), 1);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_naming_the_field_and_nothing_is_written() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let cases: Vec<(Vec<u8>, u16, &str, Option<&str>)> = vec![
            (
                b"{\"type\": \"sales_order.created\", ".to_vec(),
                400,
                "invalid_json",
                None,
            ),
            (
                serde_json::to_vec(&json!({ "type": "no_such.thing", "data": {} })).unwrap(),
                422,
                "unknown_event_type",
                Some("type"),
            ),
            (
                serde_json::to_vec(
                    &json!({ "type": "sales_order.created", "data": { "order": { "total": 5 } } }),
                )
                .unwrap(),
                422,
                "schema_violation",
                Some("data"),
            ),
            (
                serde_json::to_vec(
                    &json!({ "type": "stock.updated", "data": {}, "colour": "red" }),
                )
                .unwrap(),
                400,
                "invalid_field",
                None,
            ),
            // PostgreSQL cannot store NUL in text: both backends refuse it up front.
            (
                serde_json::to_vec(
                    &json!({ "type": "stock.updated", "data": {}, "idempotency_key": "k\u{0}" }),
                )
                .unwrap(),
                400,
                "invalid_idempotency_key",
                Some("idempotency_key"),
            ),
            (
                serde_json::to_vec(&json!({ "type": "stock\u{0}.updated", "data": {} })).unwrap(),
                422,
                "unknown_event_type",
                Some("type"),
            ),
        ];
        for (body, status, code, field) in cases {
            let (got, problem) = weft.call_raw("POST", "/v1/events", body, &[]).await;
            assert_eq!(got, status, "{backend:?}: {problem}");
            assert_eq!(problem["type"], code, "{problem}");
            if let Some(field) = field {
                assert_eq!(problem["field"], field, "{problem}");
            }
        }
        let (status, problem) = weft.post_announcing("/v1/events", 11 << 20).await;
        assert_eq!(status, 413, "{problem}");
        assert_eq!(problem["type"], "payload_too_large", "{problem}");

        // One bad event in a batch: the batch is refused whole.
        let good = weft_tests::sample_event_json("stock.updated");
        let batch = json!({ "events": [
            { "type": "stock.updated", "data": good["data"] },
            { "type": "stock.updated", "data": { "stock": 7 } }
        ] });
        let (status, problem) = weft.post("/v1/events/batch", &batch).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "events[1].data");
        let (_, deliveries) = weft.get("/v1/deliveries").await;
        assert_eq!(deliveries["deliveries"], json!([]));

        let (status, problem) = weft
            .post(
                "/v1/endpoints",
                &json!({ "name": "bad\u{0}name", "url": "http://127.0.0.1:9/" }),
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "name", "{problem}");
        let (status, _) = weft.get("/v1/event-types/stock%00.updated").await;
        assert_eq!(status, 404);

        let (status, problem) = weft
            .post("/v1/subscriptions", &json!({ "name": "x", "endpoint_id": "ep_missing", "event_types": ["*"], "filter": "order.total >" }))
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "filter");
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_shows_each_step_and_delivers_nothing() {
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
                    "plugins": [{ "plugin": "slack", "version": "0.1.0", "config": {} }]
                }),
            )
            .await;
        let sample = weft_tests::sample_event_json("sales_order.created");
        let (status, preview) = weft
            .post(
                &format!("/v1/subscriptions/{subscription}/preview"),
                &json!({ "type": sample["type"], "data": sample["data"] }),
            )
            .await;
        assert_eq!(status, 200, "{backend:?}: {preview}");
        assert_eq!(preview["matched"], true);
        assert_eq!(preview["steps"][0]["result"], true);
        assert_eq!(preview["steps"][1]["plugin"], "slack@0.1.0");
        assert!(
            preview["outcome"]["deliver"][0]["body"]["blocks"].is_array(),
            "{preview}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(receiver.received().is_empty());
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_sheet_examples_apply_and_deliver() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let (shop, crm) = (Receiver::start().await, Receiver::start().await);
        let env = [
            ("WEFT_API_URL", weft.url.clone()),
            ("WEFT_API_KEY", weft.key.clone().unwrap()),
            ("ECOMMERCE_WEBHOOK_URL", shop.url.clone()),
            ("ECOMMERCE_API_KEY", "ek_test_123".to_owned()),
            ("CRM_WEBHOOK_URL", crm.url.clone()),
            ("CRM_OAUTH_TOKEN", "crm-token-456".to_owned()),
        ];
        // The CLI blocks while it talks to the server in this process: run it aside.
        let apply = || {
            let env = env.clone();
            tokio::task::spawn_blocking(move || {
                let output = std::process::Command::new(weft_tests::weft_binary())
                    .args(["apply", "-f", "examples/subscriptions.yaml"])
                    .current_dir(weft_tests::repo_root())
                    .envs(env)
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                String::from_utf8_lossy(&output.stdout).into_owned()
            })
        };
        let printed = apply().await.unwrap();
        assert!(
            printed.contains("applied \"E-Commerce Order Integration\""),
            "{printed}"
        );
        apply().await.unwrap(); // a second apply updates in place
        let (_, endpoints) = weft.get("/v1/endpoints").await;
        assert_eq!(endpoints["endpoints"].as_array().unwrap().len(), 2);

        weft.publish_sample("sales_order.created", |_| {}).await;
        weft.publish_sample("customer.created", |_| {}).await;
        let order = &shop.wait_for(1, WAIT).await[0];
        assert_eq!(order.header("x-api-key"), Some("ek_test_123"));
        let sample = weft_tests::sample_event_json("sales_order.created");
        assert_eq!(order.json()["order_id"], sample["data"]["order"]["id"]);
        let customer = &crm.wait_for(1, WAIT).await[0];
        assert_eq!(
            customer.header("authorization"),
            Some("Bearer crm-token-456")
        );
        assert_eq!(
            customer.json()["email"],
            weft_tests::sample_event_json("customer.created")["data"]["customer"]["email"]
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordering_key_keeps_capture_order_and_a_failing_head_delays_only_its_key() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 10).await;
        weft.subscription(
            &endpoint,
            json!({ "event_types": ["sales_order.*"], "ordering_key": "{{ order.customer_id }}" }),
        )
        .await;
        let order_id = |r: &weft_tests::receiver::Received| {
            r.json()["order"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        // The first order of customer A fails three times before it goes through.
        receiver.script_for(
            move |r| r.json()["order"]["id"] == "A-1",
            [Reply::status(500), Reply::status(500), Reply::status(500)],
        );
        for (customer, order) in [
            ("A", "A-1"),
            ("A", "A-2"),
            ("B", "B-1"),
            ("A", "A-3"),
            ("B", "B-2"),
        ] {
            weft.publish_sample("sales_order.updated", |e| {
                e["data"]["order"]["id"] = json!(order);
                e["data"]["order"]["customer_id"] = json!(customer);
            })
            .await;
        }
        let received = receiver.wait_for(8, WAIT).await;
        let sequence: Vec<String> = received.iter().map(order_id).collect();
        let last = |id: &str| sequence.iter().rposition(|o| o == id).unwrap();
        let first = |id: &str| sequence.iter().position(|o| o == id).unwrap();
        assert_eq!(
            sequence.iter().filter(|o| *o == "A-1").count(),
            4,
            "{backend:?}: {sequence:?}"
        );
        assert!(
            last("A-1") < first("A-2") && first("A-2") < first("A-3"),
            "{backend:?}: A out of order: {sequence:?}"
        );
        assert!(
            first("B-2") < last("A-1"),
            "{backend:?}: B waited for A's failing head: {sequence:?}"
        );
        assert!(first("B-1") < first("B-2"), "{backend:?}: {sequence:?}");
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_recorded_and_retried() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (status, endpoint) = weft
            .post(
                "/v1/endpoints",
                &json!({
                    "name": "slow", "url": receiver.url, "timeout_ms": 300,
                    "retry": { "max_attempts": 3, "backoff": { "type": "fixed", "delay_ms": 50 } }
                }),
            )
            .await;
        assert_eq!(status, 201);
        weft.subscription(
            endpoint["id"].as_str().unwrap(),
            json!({ "event_types": ["payment.received"] }),
        )
        .await;
        receiver.script([Reply::status(200).after(Duration::from_secs(2))]);
        let event = weft.publish_sample("payment.received", |_| {}).await;
        let delivered = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "succeeded")
            })
            .await;
        let (_, shown) = weft
            .get(&format!(
                "/v1/deliveries/{}",
                delivered[0]["id"].as_str().unwrap()
            ))
            .await;
        let attempts = shown["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{backend:?}: {attempts:#?}");
        assert!(
            attempts[0]["error"].as_str().unwrap().contains("300"),
            "{:?}",
            attempts[0]
        );
        assert_eq!(attempts[0]["response_status"], Value::Null);
        assert_eq!(attempts[1]["response_status"], 200);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_invalid_event_dead_letters_at_once_and_transient_retries() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
        let misbehave = |mode: &str| json!({ "plugin": "misbehave", "version": "0.1.0", "config": { "mode": mode } });
        weft.subscription(
            &endpoint,
            json!({ "event_types": ["payment.received"], "plugins": [misbehave("invalid-event")] }),
        )
        .await;
        weft.subscription(
            &endpoint,
            json!({ "event_types": ["stock.updated"], "plugins": [misbehave("transient")] }),
        )
        .await;
        let invalid = weft.publish_sample("payment.received", |_| {}).await;
        let transient = weft.publish_sample("stock.updated", |_| {}).await;
        let failed = weft
            .wait_for_deliveries(&invalid, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "failed")
            })
            .await;
        assert_eq!(
            failed[0]["attempts"], 0,
            "{backend:?}: dead-lettered without an attempt: {failed:?}"
        );
        assert!(
            failed[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("order.total is missing"),
            "{failed:?}"
        );
        // A transient plugin failure is retried on the default schedule, so it is
        // still pending, one try in, with the reason recorded.
        let pending = weft
            .wait_for_deliveries(&transient, WAIT, |d| {
                d.first().is_some_and(|d| d["attempts"] == 1)
            })
            .await;
        assert_eq!(pending[0]["status"], "pending", "{backend:?}: {pending:?}");
        assert!(
            pending[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("rate card service is down"),
            "{pending:?}"
        );
        assert!(receiver.received().is_empty());
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_events_and_shows_and_replays_deliveries() {
    let weft = TestWeft::start(weft_tests::weft::Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = weft.endpoint(&receiver.url, 1).await;
    weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
        .await;
    let (url, key) = (weft.url.clone(), weft.key.clone().unwrap());
    let cli = move |args: Vec<String>| {
        let (url, key) = (url.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(weft_tests::weft_binary())
                .args(&args)
                .current_dir(weft_tests::repo_root())
                .env("WEFT_API_URL", url)
                // The sample file names tenant acme; the key's tenant is the one acted for.
                .env("WEFT_API_KEY", key)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<Value>(&output.stdout).unwrap()
        })
    };
    let sent = cli(vec![
        "events".into(),
        "send".into(),
        "examples/events/stock.updated.json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(sent["deliveries"], 1, "{sent}");
    receiver.wait_for(1, WAIT).await;
    let listed = weft
        .wait_for_deliveries(sent["id"].as_str().unwrap(), WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let shown = cli(vec![
        "deliveries".into(),
        "list".into(),
        "--status".into(),
        "succeeded".into(),
    ])
    .await
    .unwrap();
    assert_eq!(shown["deliveries"][0]["id"], id.as_str());
    let detail = cli(vec!["deliveries".into(), "show".into(), id.clone()])
        .await
        .unwrap();
    assert_eq!(detail["attempts"][0]["response_status"], 200);
    let replayed = cli(vec!["deliveries".into(), "replay".into(), id])
        .await
        .unwrap();
    assert_eq!(replayed["delivery"]["status"], "pending");
    receiver.wait_for(2, WAIT).await;
    weft.stop().await;
}
