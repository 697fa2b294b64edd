//! What an operator sees of a running Weft: request ids and log lines.

use serde_json::Value;
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess, scrape};
use weft_tests::weft::Api;

/// The `x-request-id` of an answer.
fn request_id(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id in {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_names_its_request_and_its_log_lines_carry_the_same_id() {
    let workdir = tempfile::tempdir().unwrap();
    let log = workdir.path().join("weft.log");
    let weft = {
        let (dir, log) = (workdir.path().to_owned(), log.clone());
        tokio::task::spawn_blocking(move || {
            WeftProcess::start_logging(&dir, &["--log-format", "json"], &log)
        })
        .await
        .unwrap()
    };
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);

    // A gateway's id follows the request through.
    let (status, headers, _) = admin
        .exchange(
            "GET",
            "/v1/endpoints",
            Vec::new(),
            &[("x-request-id", "gateway-7f3a")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(request_id(&headers), "gateway-7f3a");
    // One that cannot be logged as it is gets replaced; errors are named too.
    let (status, headers, _) = admin
        .exchange(
            "GET",
            "/v1/endpoints/ep_missing",
            Vec::new(),
            &[("x-request-id", "two words")],
        )
        .await;
    assert_eq!(status, 404);
    let replaced = request_id(&headers);
    assert!(replaced.starts_with("req_"), "{replaced}");
    // Without one (and without a key), each answer gets its own.
    let (status, headers, _) = Api::new(weft.url.clone())
        .exchange("GET", "/v1/endpoints", Vec::new(), &[])
        .await;
    assert_eq!(status, 401);
    let made = request_id(&headers);
    assert!(made.starts_with("req_") && made != replaced, "{made}");

    // Each request's log line, as JSON, names its id, method, path and status.
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for (id, path, status) in [
        ("gateway-7f3a", "/v1/endpoints", 200),
        (replaced.as_str(), "/v1/endpoints/ep_missing", 404),
        (made.as_str(), "/v1/endpoints", 401),
    ] {
        let answered = lines
            .iter()
            .find(|line| {
                line["span"]["request_id"] == id && line["fields"]["message"] == "answered"
            })
            .unwrap_or_else(|| panic!("no log line of request {id} among {} lines", lines.len()));
        assert_eq!(answered["span"]["path"], path, "{answered}");
        assert_eq!(answered["span"]["method"], "GET", "{answered}");
        assert_eq!(answered["fields"]["status"], status, "{answered}");
    }
}

/// A Python that has `prometheus_client`, the format's reference parser,
/// made once per build folder (PyPI must be reachable the first time).
fn python_with_prometheus_client() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-venv");
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let run = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv));
    run(std::process::Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "prometheus-client==0.21.1",
    ]));
    python
}

/// `text` parsed by `prometheus_client`'s OpenMetrics parser: each sample's
/// name and labels (`name{a="x",b="y"}`, labels sorted) and its value.
fn parsed_samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    use std::io::Write;
    const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        samples[f"{sample.name}{{{labels}}}"] = sample.value
print(json.dumps(samples))
"#;
    let mut child = std::process::Command::new(python_with_prometheus_client())
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_as_an_independent_parser_reads_them() {
    use serde_json::json;
    use std::time::{Duration, Instant};
    use weft_tests::receiver::{Receiver, Reply};
    use weft_tests::weft::{BACKENDS, TestDatabase};

    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let workdir = tempfile::tempdir().unwrap();
        // One plugin, which refuses every event it is given (a plugin error).
        let plugins = workdir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::copy(
            weft_tests::guest("misbehave"),
            plugins.join("misbehave.wasm"),
        )
        .unwrap();
        let weft = {
            let (url, dir, plugins) = (
                database.url.clone(),
                workdir.path().to_owned(),
                plugins.display().to_string(),
            );
            tokio::task::spawn_blocking(move || {
                let args = ["--metrics-listen", "127.0.0.1:0", "--plugins-dir", &plugins];
                WeftProcess::start_with(Some(&url), &dir, &args)
            })
            .await
            .unwrap()
        };
        let metrics_url = weft
            .printed
            .iter()
            .find_map(|line| line.strip_prefix("weft metrics on "))
            .unwrap_or_else(|| panic!("no metrics address in {:?}", weft.printed))
            .to_owned();
        let api = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
        let receiver = Receiver::start().await;
        // The first request fails once: one retry.
        receiver.script([Reply::status(500)]);
        let (endpoint, _) = api.endpoint(&receiver.url, 5).await;
        api.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
            .await;
        api.subscription(
            &endpoint,
            json!({
                "name": "refused by its plugin",
                "event_types": ["sales_order.created"],
                "plugins": [{ "plugin": "misbehave", "version": "0.1.0", "config": { "mode": "invalid-event" } }]
            }),
        )
        .await;
        let mut stock = Vec::new();
        for _ in 0..4 {
            stock.push(api.publish_sample("stock.updated", |_| {}).await);
        }
        // The same event again: a duplicate, nothing written.
        let (status, _) = api
            .post(
                "/v1/events",
                &json!({ "id": stock[0], "type": "stock.updated", "data": weft_tests::sample_event_json("stock.updated")["data"] }),
            )
            .await;
        assert_eq!(status, 202);
        let order = api.publish_sample("sales_order.created", |_| {}).await;
        for event in &stock {
            api.wait_for_deliveries(event, Duration::from_secs(60), |d| {
                d.len() == 1 && d[0]["status"] == "succeeded"
            })
            .await;
        }
        api.wait_for_deliveries(&order, Duration::from_secs(60), |d| {
            d.len() == 1 && d[0]["status"] == "failed"
        })
        .await;

        // Counters are recorded just after the outcomes they count.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (text, samples) = loop {
            let (head, text) = scrape(&metrics_url);
            assert!(head.starts_with("HTTP/1.1 200"), "{backend:?}: {head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/openmetrics-text"),
                "{head}"
            );
            let samples = parsed_samples(&text);
            let succeeded = samples
                .get(r#"weft_deliveries_total{outcome="succeeded"}"#)
                .copied();
            if succeeded == Some(4.0) {
                break (text, samples);
            }
            assert!(Instant::now() < deadline, "{backend:?}: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let value = |name: &str| {
            samples
                .get(name)
                .copied()
                .unwrap_or_else(|| panic!("{backend:?}: no {name} in\n{text}"))
        };
        for (sample, expected) in [
            (
                r#"weft_events_captured_total{event_type="stock.updated",outcome="created"}"#,
                4.0,
            ),
            (
                r#"weft_events_captured_total{event_type="stock.updated",outcome="duplicate"}"#,
                1.0,
            ),
            (
                r#"weft_events_captured_total{event_type="sales_order.created",outcome="created"}"#,
                1.0,
            ),
            (r#"weft_capture_seconds_count{}"#, 6.0),
            (r#"weft_deliveries_total{outcome="succeeded"}"#, 4.0),
            (r#"weft_deliveries_total{outcome="retried"}"#, 1.0),
            (r#"weft_deliveries_total{outcome="failed"}"#, 1.0),
            // Four successes and the failed first try; the plugin's refusal
            // made no request.
            (r#"weft_request_seconds_count{}"#, 5.0),
            (r#"weft_attempts_per_delivery_count{}"#, 5.0),
            (r#"weft_attempts_per_delivery_sum{}"#, 5.0),
            (
                r#"weft_plugin_invocation_seconds_count{plugin="misbehave"}"#,
                1.0,
            ),
            (
                r#"weft_plugin_errors_total{kind="plugin_error",plugin="misbehave"}"#,
                1.0,
            ),
            (r#"weft_queue_depth{}"#, 0.0),
            (r#"weft_oldest_due_delivery_seconds{}"#, 0.0),
        ] {
            assert_eq!(value(sample), expected, "{backend:?}: {sample}\n{text}");
        }
        assert!(value(r#"weft_database_transaction_start_seconds_count{}"#) > 0.0);
        assert!(
            samples.contains_key(r#"weft_deliveries_in_flight{}"#),
            "{text}"
        );
        // No id of an event or a delivery is a label.
        for id in stock.iter().chain([&order]) {
            assert!(!text.contains(id.as_str()), "{backend:?}: {id} in\n{text}");
        }
        assert!(!text.contains("dlv_"), "{text}");
        drop(weft);
        database.drop().await;
    }
}
