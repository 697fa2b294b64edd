//! The contract is language-neutral: `redact-pii` written in Rust, JavaScript
//! (componentize-js) and Python (componentize-py), each built from source, gives
//! the same output on every sample event.

use serde_json::{Value, json};
use std::sync::Arc;
use weft_engine::runtime::{InvokeError, Limits, Output, Plugin};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Backend, TestWeft};
use weft_tests::{
    guest_bytes, javascript_redact_pii, python_redact_pii, sample_event, sample_event_types,
    shared_runtime,
};

/// Interpreted guests carry their interpreter's heap: give them room.
fn interpreter_limits() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        deadline: std::time::Duration::from_secs(2),
        ..Limits::default()
    }
}

fn implementations() -> Vec<(&'static str, Arc<Plugin>)> {
    let runtime = shared_runtime();
    let load = |bytes: &[u8]| runtime.load(bytes).unwrap();
    vec![
        ("rust", load(&guest_bytes("redact-pii"))),
        (
            "javascript",
            load(&std::fs::read(javascript_redact_pii()).unwrap()),
        ),
        ("python", load(&std::fs::read(python_redact_pii()).unwrap())),
    ]
}

fn redaction_config() -> Value {
    json!({
        "remove": ["order.customer.email", "customer.email", "order.shipping_address"],
        "mask": ["order.customer.phone", "customer.phone", "customer.address", "order.items.*.sku", "customer.credit_limit"],
        "keep_last": 3
    })
}

/// Requests as comparable JSON: bodies parsed, numbers compared by value.
fn normalised(outcome: &Result<Output, InvokeError>) -> Value {
    match outcome {
        Ok(Output::Requests(requests)) => Value::Array(
            requests
                .iter()
                .map(|r| {
                    let body: Value = serde_json::from_slice(&r.body).expect("redact-pii returns JSON");
                    json!({ "method": r.method, "url": r.url, "headers": r.headers, "body": numbers_as_f64(body) })
                })
                .collect(),
        ),
        Ok(Output::Filter(keep)) => json!({ "keep": keep }),
        Err(error) => json!({ "error-kind": format!("{:?}", error.disposition()) }),
    }
}

fn numbers_as_f64(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_f64(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn redact_pii_gives_the_same_output_in_rust_javascript_and_python() {
    let implementations = implementations();
    for (language, plugin) in &implementations {
        assert_eq!(plugin.name(), "redact-pii", "{language}");
        assert_eq!(
            plugin.config_schema(),
            implementations[0].1.config_schema(),
            "{language} schema"
        );
    }
    for event_type in sample_event_types() {
        let event = sample_event(&event_type);
        let outputs: Vec<(&str, Value)> = implementations
            .iter()
            .map(|(language, plugin)| {
                let invocation = plugin
                    .attach(&redaction_config(), interpreter_limits())
                    .unwrap()
                    .invoke(&event);
                assert!(
                    invocation.outcome.is_ok(),
                    "{language} on {event_type}: {:?}",
                    invocation.outcome
                );
                (*language, normalised(&invocation.outcome))
            })
            .collect();
        for (language, output) in &outputs[1..] {
            assert_eq!(
                output, &outputs[0].1,
                "{language} differs from rust on {event_type}"
            );
        }
    }
}

#[test]
fn every_language_reports_a_non_json_payload_as_an_invalid_event() {
    let mut event = sample_event("customer.created");
    event.data = b"<customer/>".to_vec();
    for (language, plugin) in implementations() {
        let outcome = plugin
            .attach(&json!({}), interpreter_limits())
            .unwrap()
            .invoke(&event)
            .outcome;
        assert!(
            matches!(outcome, Err(InvokeError::InvalidEvent(_))),
            "{language}: {outcome:?}"
        );
    }
}

#[test]
fn every_language_refuses_an_unknown_config_key_through_the_schema() {
    for (language, plugin) in implementations() {
        let error = plugin
            .attach(&json!({ "redact": ["x"] }), interpreter_limits())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'redact' was unexpected"),
            "{language}: {error}"
        );
    }
}

/// In the server, an interpreted plugin gets the room it needs from the
/// subscription that attaches it (`limits`), and an override out of range is
/// refused naming its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gives_an_interpreted_plugin_its_limits_in_the_server() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let acme = weft.api_as("acme", "integration-admin").await;
    let javascript = std::fs::read(javascript_redact_pii()).unwrap();
    let (status, info) = acme.call_raw("POST", "/v1/plugins", javascript, &[]).await;
    assert_eq!(status, 201, "{info}");
    let receiver = Receiver::start().await;
    let (endpoint, _) = acme.endpoint(&receiver.url, 1).await;
    let attached = |limits: Value| {
        json!({
            "name": "redacted customers",
            "endpoint_id": endpoint,
            "event_types": ["customer.created"],
            "plugins": [{
                "plugin": "redact-pii", "version": "0.1.0",
                "config": redaction_config(), "limits": limits
            }]
        })
    };

    let refused = [
        (
            json!({ "memory_mib": 4096 }),
            "plugins[0].limits.memory_mib",
        ),
        (json!({ "deadline_ms": 0 }), "plugins[0].limits.deadline_ms"),
        (json!({ "output_mib": 11 }), "plugins[0].limits.output_mib"),
    ];
    for (limits, field) in refused {
        let (status, problem) = acme.post("/v1/subscriptions", &attached(limits)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("out of range"),
            "{problem}"
        );
    }
    let (status, listed) = acme.get("/v1/subscriptions").await;
    assert_eq!(status, 200);
    assert_eq!(listed["subscriptions"], json!([]), "nothing half-written");

    let limits = json!({ "memory_mib": 256, "deadline_ms": 2000 });
    let (status, subscription) = acme
        .post("/v1/subscriptions", &attached(limits.clone()))
        .await;
    assert_eq!(status, 201, "{subscription}");
    assert_eq!(subscription["plugins"][0]["limits"], limits);
    let publisher = weft.api_as("acme", "publisher").await;
    publisher.publish_sample("customer.created", |_| {}).await;
    let received = receiver
        .wait_for(1, std::time::Duration::from_secs(30))
        .await;
    let body = String::from_utf8_lossy(&received[0].body);
    assert!(body.contains("Borneo Aqua Systems"), "{body}");
    assert!(!body.contains("accounts@borneoaqua.com.my"), "{body}");
    weft.stop().await;
}
