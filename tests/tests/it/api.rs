//! The REST API's resources beyond the delivery path: plugins, custom event
//! types, the delivery history's filters, bulk replay, redaction.

use serde_json::json;
use std::time::Duration;
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{BACKENDS, TestWeft};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_validated_at_upload_and_listed() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let acme = weft.api_as("acme", "integration-admin").await;
        let (status, info) = acme
            .call_raw(
                "POST",
                "/v1/plugins",
                weft_tests::guest_bytes("redact-pii"),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{info}");
        assert_eq!(info["world"], "transformer");
        assert_eq!(info["contract"], "weft:plugin@0.1.0");

        let refused = [
            (b"not wasm at all".to_vec(), "not a WebAssembly component"),
            (b"\0asm\x01\0\0\0".to_vec(), "core WebAssembly module"),
            (
                weft_tests::guest_bytes("wrong-world"),
                "implements no Weft plugin world",
            ),
        ];
        for (bytes, fragment) in refused {
            let (status, problem) = weft.call_raw("POST", "/v1/plugins", bytes, &[]).await;
            assert_eq!(status, 422, "{problem}");
            assert!(
                problem["detail"].as_str().unwrap().contains(fragment),
                "{problem}"
            );
        }
        let (_, listed) = acme.get("/v1/plugins").await;
        let names: Vec<&str> = listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["info"]["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"slack") && names.contains(&"redact-pii"),
            "{names:?}"
        );
        let (status, _) = weft.get("/v1/plugins/no-such-plugin").await;
        assert_eq!(status, 404);

        // A subscription's plugin config is checked against the plugin's schema.
        let receiver = Receiver::start().await;
        let (endpoint, _) = weft.endpoint(&receiver.url, 1).await;
        let (status, problem) = weft
        .post(
            "/v1/subscriptions",
            &json!({
                "name": "bad config", "endpoint_id": endpoint, "event_types": ["*"],
                "plugins": [{ "plugin": "high-value-orders", "version": "0.1.0", "config": { "threshold": "high" } }]
            }),
        )
        .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "plugins[0].config");
        assert!(
            problem["detail"].as_str().unwrap().contains("/threshold"),
            "{problem}"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_adds_its_own_event_type_with_a_schema() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let schema = json!({
            "type": "object", "required": ["ticket"],
            "properties": { "ticket": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } } }
        });
        let (status, created) = weft
            .post(
                "/v1/event-types",
                &json!({ "name": "service_ticket.opened", "schema": schema }),
            )
            .await;
        assert_eq!(status, 201, "{backend:?}: {created}");
        let (status, _) = weft
            .post(
                "/v1/events",
                &json!({ "type": "service_ticket.opened", "data": { "ticket": { "id": "T-1" } } }),
            )
            .await;
        assert_eq!(status, 202);
        let (status, problem) = weft
            .post(
                "/v1/events",
                &json!({ "type": "service_ticket.opened", "data": { "ticket": {} } }),
            )
            .await;
        assert_eq!(status, 422);
        assert!(
            problem["errors"][0]
                .as_str()
                .unwrap()
                .contains("\"id\" is a required property"),
            "{problem}"
        );
        let cases = [
            (json!({ "name": "Bad Name", "schema": {} }), 422, "name"),
            (
                json!({ "name": "x.y", "schema": { "type": 12 } }),
                422,
                "schema",
            ),
            (
                json!({ "name": "sales_order.created", "schema": {} }),
                409,
                "name",
            ),
        ];
        for (body, status, field) in cases {
            let (got, problem) = weft.post("/v1/event-types", &body).await;
            assert_eq!(got, status, "{problem}");
            assert_eq!(problem["field"], field, "{problem}");
        }
        // Another tenant does not have it.
        let other = weft.api_as("other", "viewer").await;
        let (status, _) = other.get("/v1/event-types/service_ticket.opened").await;
        assert_eq!(status, 404);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_filters_redacts_and_replays_an_endpoints_failures() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let (good, bad) = (Receiver::start().await, Receiver::start().await);
        let (good_ep, _) = weft.endpoint(&good.url, 1).await;
        let (status, bad_ep) = weft
            .post(
                "/v1/endpoints",
                &json!({
                    "name": "flaky", "url": bad.url, "headers": { "X-API-Key": "k-123456", "X-Source": "weft" },
                    "retry": { "max_attempts": 1, "backoff": { "type": "fixed", "delay_ms": 10 } }
                }),
            )
            .await;
        assert_eq!(status, 201);
        assert!(bad_ep["secret"].as_str().unwrap().starts_with("whsec_"));
        let bad_ep = bad_ep["id"].as_str().unwrap().to_owned();
        let (_, shown) = weft.get(&format!("/v1/endpoints/{bad_ep}")).await;
        assert!(
            shown["secret"].as_str().unwrap().starts_with("whsec_…"),
            "the secret is shown once: {shown}"
        );
        weft.subscription(&good_ep, json!({ "event_types": ["stock.updated"] }))
            .await;
        weft.subscription(&bad_ep, json!({ "event_types": ["stock.updated"] }))
            .await;
        bad.script([Reply::status(500), Reply::status(500)]);
        let first = weft.publish_sample("stock.updated", |_| {}).await;
        let second = weft.publish_sample("stock.updated", |_| {}).await;
        for event in [&first, &second] {
            weft.wait_for_deliveries(event, WAIT, |d| {
                d.len() == 2 && d.iter().all(|d| d["status"] != "pending")
            })
            .await;
        }
        let (_, failed) = weft
            .get(&format!(
                "/v1/deliveries?status=failed&endpoint_id={bad_ep}"
            ))
            .await;
        let failed = failed["deliveries"].as_array().unwrap().clone();
        assert_eq!(failed.len(), 2, "{backend:?}: {failed:#?}");
        let (_, succeeded) = weft
            .get("/v1/deliveries?status=succeeded&event_type=stock.updated&limit=1")
            .await;
        assert_eq!(succeeded["deliveries"].as_array().unwrap().len(), 1);
        assert!(
            succeeded["next_before"].is_string(),
            "a full page says where the next starts"
        );
        let (status, problem) = weft.get("/v1/deliveries?status=lost").await;
        assert_eq!((status, problem["field"].clone()), (400, json!("status")));

        let (_, shown) = weft
            .get(&format!(
                "/v1/deliveries/{}",
                failed[0]["id"].as_str().unwrap()
            ))
            .await;
        let headers = &shown["attempts"][0]["request_headers"];
        assert_eq!(headers["x-api-key"], "[redacted]", "{headers}");
        assert_eq!(headers["webhook-signature"], "[redacted]");
        assert_eq!(headers["x-source"], "weft");
        assert_eq!(shown["attempts"][0]["response_status"], 500);

        let (status, replayed) = weft
            .post(
                &format!("/v1/endpoints/{bad_ep}/replay-failed"),
                &json!({ "since": 0 }),
            )
            .await;
        assert_eq!((status, replayed["replayed"].clone()), (202, json!(2)));
        for event in [&first, &second] {
            weft.wait_for_deliveries(event, WAIT, |d| {
                d.iter().all(|d| d["status"] == "succeeded")
            })
            .await;
        }
        weft.stop().await;
    }
}
