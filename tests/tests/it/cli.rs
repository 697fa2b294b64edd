//! The `weft` binary as a plugin author uses it.

use std::process::{Command, Output};
use weft_tests::{guest, repo_root};

fn weft(args: &[&str]) -> Output {
    let binary = weft_tests::weft_binary();
    let artifacts = tempfile::tempdir().unwrap();
    Command::new(binary)
        .args(args)
        .env("WEFT_ARTIFACT_DIR", artifacts.path())
        .current_dir(repo_root())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The README's quick start: the Rust template, built as it ships, run on a
/// sample event.
#[test]
fn the_rust_template_runs_as_the_quick_start_says() {
    let envelope = guest("envelope");
    let output = weft(&[
        "plugin",
        "run",
        envelope.to_str().unwrap(),
        "--event",
        "examples/events/sales_order.created.json",
    ]);
    let printed = stdout(&output);
    assert!(output.status.success(), "{printed}{}", stderr(&output));
    assert!(printed.contains("POST <endpoint URL>"), "{printed}");
    assert!(
        printed.contains("\"event\": \"sales_order.created\""),
        "{printed}"
    );
    let inspected = weft(&["plugin", "inspect", envelope.to_str().unwrap()]);
    let printed = stdout(&inspected);
    assert!(printed.contains("transformer"), "{printed}");
    assert!(printed.contains("envelope"), "{printed}");
}

#[test]
fn plugin_run_prints_the_request_weft_would_deliver() {
    let slack = guest("slack");
    let output = weft(&[
        "plugin",
        "run",
        slack.to_str().unwrap(),
        "--event",
        "examples/events/sales_order.created.json",
        "--config",
        "plugins/slack/example-config.json",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(
        text.starts_with("slack 0.1.0 (integration, weft:plugin@0.1.0), loaded in "),
        "{text}"
    );
    assert!(text.contains("1 request, in "), "{text}");
    assert!(
        text.contains("POST <endpoint URL>\ncontent-type: application/json\n"),
        "{text}"
    );
    assert!(text.contains("\"blocks\": ["), "pretty JSON body: {text}");
}

#[test]
fn plugin_run_reports_a_filter_verdict() {
    let filter = guest("high-value-orders");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), r#"{"threshold": 1000000}"#).unwrap();
    let output = weft(&[
        "plugin",
        "run",
        filter.to_str().unwrap(),
        "--event",
        "examples/events/sales_order.created.json",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert!(output.status.success());
    assert!(
        stdout(&output).contains("dropped: the filter rejected the event, in "),
        "{}",
        stdout(&output)
    );
}

#[test]
fn plugin_run_reports_the_plugins_failure_with_exit_code_1() {
    let misbehave = guest("misbehave");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), r#"{"mode": "panic"}"#).unwrap();
    let output = weft(&[
        "plugin",
        "run",
        misbehave.to_str().unwrap(),
        "--event",
        "examples/events/stock.updated.json",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("the plugin trapped: wasm trap"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("the order total was negative"));
}

#[test]
fn plugin_run_refuses_a_config_that_fails_the_schema_with_exit_code_2() {
    let shopify = guest("shopify");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), r#"{"shop_domain": "acme.myshopify.com"}"#).unwrap();
    let output = weft(&[
        "plugin",
        "run",
        shopify.to_str().unwrap(),
        "--event",
        "examples/events/stock.updated.json",
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(
            "error: config for plugin shopify: /: \"api_version\" is a required property"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn plugin_run_names_what_is_wrong_with_a_bad_event_file() {
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(event.path(), r#"{"data": {}}"#).unwrap();
    let output = weft(&[
        "plugin",
        "run",
        guest("noop").to_str().unwrap(),
        "--event",
        event.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not a sample event: missing field `type`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn plugin_inspect_says_world_contract_and_schema() {
    let output = weft(&[
        "plugin",
        "inspect",
        "--json",
        guest("salesforce").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["world"], "integration");
    assert_eq!(info["contract"], "weft:plugin@0.1.0");
    assert_eq!(info["name"], "salesforce");
    assert_eq!(info["config_schema"]["type"], "object");

    let text = stdout(&weft(&[
        "plugin",
        "inspect",
        guest("high-value-orders").to_str().unwrap(),
    ]));
    assert!(
        text.starts_with(
            "world:       filter\ncontract:    weft:plugin@0.1.0\nname:        high-value-orders\n"
        ),
        "{text}"
    );
}

#[test]
fn plugin_inspect_explains_a_core_module() {
    let module = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(module.path(), b"\0asm\x01\0\0\0").unwrap();
    let output = weft(&["plugin", "inspect", module.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a WebAssembly component: this is a core WebAssembly module"),
        "{}",
        stderr(&output)
    );
}
