//! Golden tests: each integration template, with its example configuration, on
//! every sample event. The expected requests live in `tests/golden/<template>/`;
//! `WEFT_UPDATE_GOLDEN=1` rewrites them after a deliberate change (review the diff).

use serde_json::{Value, json};
use weft_engine::runtime::{Invocation, InvokeError, Output};
use weft_tests::{attach, repo_root, sample_event, sample_event_types};

const TEMPLATES: [&str; 3] = ["slack", "shopify", "salesforce"];

fn example_config(template: &str) -> Value {
    let path = repo_root()
        .join("plugins")
        .join(template)
        .join("example-config.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// An invocation as a reviewable JSON document: requests with their bodies
/// parsed, or the error.
fn as_golden(invocation: &Invocation) -> Value {
    match &invocation.outcome {
        Ok(Output::Requests(requests)) => json!({
            "requests": requests.iter().map(|r| json!({
                "method": r.method,
                "url": r.url,
                "headers": r.headers,
                "body": serde_json::from_slice::<Value>(&r.body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned())),
            })).collect::<Vec<_>>()
        }),
        Ok(Output::Filter(keep)) => json!({ "keep": keep }),
        Err(error) => json!({ "error": error.to_string() }),
    }
}

#[test]
fn templates_render_every_sample_event_as_recorded() {
    let update = std::env::var_os("WEFT_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for template in TEMPLATES {
        let plugin = attach(template, example_config(template));
        for event_type in sample_event_types() {
            let actual = as_golden(&plugin.invoke(&sample_event(&event_type)));
            let path = repo_root()
                .join("tests/golden")
                .join(template)
                .join(format!("{event_type}.json"));
            let rendered = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, rendered).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != rendered {
                mismatches.push(format!("{}:\n{rendered}", path.display()));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "output differs from the golden files:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn each_template_handles_its_events_and_refuses_the_others() {
    let handled = [
        ("slack", sample_event_types()),
        (
            "shopify",
            vec!["sales_order.shipped".to_owned(), "stock.updated".to_owned()],
        ),
        (
            "salesforce",
            vec![
                "customer.created".to_owned(),
                "customer.updated".to_owned(),
                "sales_order.created".to_owned(),
            ],
        ),
    ];
    for (template, events) in handled {
        let plugin = attach(template, example_config(template));
        for event_type in sample_event_types() {
            let outcome = plugin.invoke(&sample_event(&event_type)).outcome;
            if events.contains(&event_type) {
                let Ok(Output::Requests(requests)) = &outcome else {
                    panic!("{template} on {event_type}: {outcome:?}")
                };
                assert_eq!(requests.len(), 1, "{template} on {event_type}");
            } else {
                assert!(
                    matches!(outcome, Err(InvokeError::InvalidEvent(_))),
                    "{template} on {event_type}: {outcome:?}"
                );
            }
        }
    }
}

#[test]
fn a_bad_template_config_is_refused_naming_the_field() {
    let cases = [
        (
            "shopify",
            json!({ "shop_domain": "acme.myshopify.com", "api_version": "latest", "locations": {} }),
            "/api_version",
        ),
        ("salesforce", json!({ "instance_url": 42 }), "/instance_url"),
        ("slack", json!({ "fields": "order.id" }), "/fields"),
    ];
    for (template, config, field) in cases {
        let error = weft_tests::load(template)
            .attach(&config, Default::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains(field), "{template}: {error}");
    }
}

#[test]
fn templates_never_see_credentials_and_send_none() {
    for template in TEMPLATES {
        let config = example_config(template).to_string().to_lowercase();
        for secret_word in ["token", "secret", "password", "api_key", "apikey"] {
            assert!(
                !config.contains(secret_word),
                "{template} config mentions {secret_word}"
            );
        }
        let plugin = attach(template, example_config(template));
        for event_type in sample_event_types() {
            if let Ok(Output::Requests(requests)) =
                plugin.invoke(&sample_event(&event_type)).outcome
            {
                for request in requests {
                    for (name, _) in &request.headers {
                        let name = name.to_lowercase();
                        assert!(
                            !["authorization", "x-shopify-access-token"].contains(&name.as_str()),
                            "{template} set {name}: auth belongs to the host"
                        );
                    }
                }
            }
        }
    }
}
