use crate::bindings::types;

/// What a plugin says about itself: shown by `weft plugin inspect`, and its
/// configuration schema is how Weft validates the configuration an administrator
/// attaches.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    name: String,
    version: String,
    description: String,
    config_schema: serde_json::Value,
}

impl PluginInfo {
    /// A plugin called `name` at `version` (semver), accepting any configuration.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            config_schema: serde_json::json!({}),
        }
    }

    /// One sentence saying what the plugin does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The JSON Schema (draft 2020-12) the plugin's configuration must satisfy.
    pub fn config_schema(mut self, schema: serde_json::Value) -> Self {
        self.config_schema = schema;
        self
    }

    #[doc(hidden)]
    pub fn into_wit(self) -> types::PluginInfo {
        types::PluginInfo {
            name: self.name,
            version: self.version,
            description: self.description,
            config_schema: self.config_schema.to_string(),
        }
    }
}
