//! Loading: what is a plugin and what is not, which world, which contract, config
//! validation, and the compiled-artifact caches.

use serde_json::json;
use weft_engine::runtime::{LoadError, LoadSource, PluginRuntime, RuntimeConfig, World};
use weft_tests::{guest_bytes, load, runtime, shared_runtime};

fn load_error(bytes: &[u8]) -> String {
    runtime().load(bytes).unwrap_err().to_string()
}

#[test]
fn each_first_party_plugin_declares_its_world_and_contract() {
    let cases = [
        ("high-value-orders", World::Filter),
        ("redact-pii", World::Transformer),
        ("noop", World::Transformer),
        ("slack", World::Integration),
        ("shopify", World::Integration),
        ("salesforce", World::Integration),
    ];
    for (name, world) in cases {
        let plugin = load(name);
        assert_eq!(plugin.world(), world, "{name}");
        assert_eq!(plugin.name(), name);
        assert_eq!(plugin.version(), "0.1.0");
        assert_eq!(plugin.contract_version(), "0.1.0");
        assert!(
            !plugin.description().is_empty(),
            "{name} has no description"
        );
        assert!(plugin.config_schema().is_object(), "{name}");
    }
}

#[test]
fn what_is_not_a_component_is_refused_with_a_reason() {
    let cases: [(&[u8], &str); 3] = [
        (b"", "does not start with the WebAssembly magic number"),
        (
            b"{\"not\": \"wasm\"}",
            "does not start with the WebAssembly magic number",
        ),
        (
            b"\0asm\x01\0\0\0",
            "core WebAssembly module; build for the wasm32-wasip2 target",
        ),
    ];
    for (bytes, expected) in cases {
        let message = load_error(bytes);
        assert!(
            message.starts_with("not a WebAssembly component"),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
    let truncated = &guest_bytes("noop")[..2000];
    assert!(load_error(truncated).starts_with("cannot compile the component"));
}

#[test]
fn a_component_of_another_world_is_refused_naming_its_exports() {
    let message = load_error(&guest_bytes("wrong-world"));
    assert!(
        message.contains("implements no Weft plugin world: it exports `greet`"),
        "{message}"
    );
}

#[test]
fn a_component_missing_part_of_its_world_is_refused_naming_the_part() {
    let message = load_error(&guest_bytes("missing-export"));
    assert!(
        message.starts_with("does not fit the transformer world of weft:plugin@0.1.0: "),
        "{message}"
    );
    assert!(message.contains("describe"), "{message}");
}

#[test]
fn a_component_built_against_another_contract_version_is_refused() {
    let message = load_error(&guest_bytes("future-contract"));
    assert_eq!(
        message,
        "built against weft:plugin@0.2.0; this Weft runs weft:plugin@0.1.0"
    );
}

#[test]
fn config_is_validated_against_the_plugins_schema_naming_the_field() {
    let plugin = load("high-value-orders");
    let cases = [
        (json!({ "threshold": 100 }), None),
        (
            json!({ "threshold": "100" }),
            Some("/threshold: \"100\" is not of type \"number\""),
        ),
        (json!({}), Some("\"threshold\" is a required property")),
        (
            json!({ "threshold": 1, "thresold": 2 }),
            Some("'thresold' was unexpected"),
        ),
        (
            json!({ "threshold": -5 }),
            Some("/threshold: -5 is less than the minimum of 0"),
        ),
    ];
    for (config, expected) in cases {
        let result = plugin.attach(&config, Default::default());
        match expected {
            None => assert!(result.is_ok(), "{config}: {:?}", result.err()),
            Some(fragment) => {
                let message = result.unwrap_err().to_string();
                assert!(
                    message.starts_with("config for plugin high-value-orders: "),
                    "{message}"
                );
                assert!(
                    message.contains(fragment),
                    "{message} should say {fragment}"
                );
            }
        }
    }
}

#[test]
fn a_plugin_is_compiled_once_then_served_from_memory() {
    let bytes = guest_bytes("slack");
    let runtime = runtime();
    let (first, source) = runtime.load_traced(&bytes).unwrap();
    assert_eq!(source, LoadSource::Compiled);
    let (second, source) = runtime.load_traced(&bytes).unwrap();
    assert_eq!(source, LoadSource::Memory);
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    assert_eq!(first.digest().len(), 64);
}

#[test]
fn a_restart_maps_the_precompiled_artifact_instead_of_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let bytes = guest_bytes("salesforce");
    let (_, source) = PluginRuntime::new(config())
        .unwrap()
        .load_traced(&bytes)
        .unwrap();
    assert_eq!(source, LoadSource::Compiled);
    let artifacts: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(artifacts.len(), 1, "one artifact on disk");

    let restarted = PluginRuntime::new(config()).unwrap();
    let (plugin, source) = restarted.load_traced(&bytes).unwrap();
    assert_eq!(source, LoadSource::Disk);
    assert_eq!(plugin.name(), "salesforce");
}

#[test]
fn a_corrupt_artifact_is_discarded_and_the_plugin_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let bytes = guest_bytes("noop");
    PluginRuntime::new(config()).unwrap().load(&bytes).unwrap();
    let artifact = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&artifact, b"garbage").unwrap();

    let (_, source) = PluginRuntime::new(config())
        .unwrap()
        .load_traced(&bytes)
        .unwrap();
    assert_eq!(source, LoadSource::Compiled);
}

#[test]
fn the_runtime_uses_the_pooling_allocator_here() {
    assert!(shared_runtime().uses_pooling_allocator());
    let on_demand = PluginRuntime::new(RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert!(!on_demand.uses_pooling_allocator());
    let plugin = on_demand.load(&guest_bytes("noop")).unwrap();
    let invocation = plugin
        .attach(&json!({}), Default::default())
        .unwrap()
        .invoke(&weft_tests::sample_event("stock.updated"));
    assert!(invocation.outcome.is_ok(), "{:?}", invocation.outcome);
}

#[test]
fn load_errors_are_typed() {
    assert!(matches!(
        runtime().load(b"nope"),
        Err(LoadError::NotAComponent(_))
    ));
    assert!(matches!(
        runtime().load(&guest_bytes("wrong-world")),
        Err(LoadError::UnknownWorld { .. })
    ));
}
