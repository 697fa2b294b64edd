//! A transformer built against `weft:plugin@0.2.0`, which this host does not run.

wit_bindgen::generate!({ world: "transformer", path: "wit" });

use weft::plugin::host;

struct Future;

impl Guest for Future {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "future".into(),
            version: "2.0.0".into(),
            description: String::new(),
            config_schema: host::config(),
        }
    }

    fn transform(_: Event) -> Result<Vec<Request>, PluginError> {
        Ok(vec![])
    }
}

export!(Future);
