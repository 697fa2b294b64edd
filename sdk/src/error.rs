use crate::bindings::types::PluginError;
use std::fmt;

/// Why a plugin could not handle an event. The variant tells Weft what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// This event can never succeed: Weft dead-letters the delivery without retrying.
    InvalidEvent(String),
    /// The plugin's configuration is wrong: Weft pauses the subscription and alerts.
    InvalidConfig(String),
    /// A passing condition: Weft retries the delivery later.
    Transient(String),
    /// A bug in the plugin: the delivery fails and is retried.
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidEvent`].
    pub fn invalid_event(message: impl fmt::Display) -> Self {
        Self::InvalidEvent(message.to_string())
    }

    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid_config(message: impl fmt::Display) -> Self {
        Self::InvalidConfig(message.to_string())
    }

    #[doc(hidden)]
    pub fn into_wit(self) -> PluginError {
        match self {
            Self::InvalidEvent(m) => PluginError::InvalidEvent(m),
            Self::InvalidConfig(m) => PluginError::InvalidConfig(m),
            Self::Transient(m) => PluginError::Transient(m),
            Self::Internal(m) => PluginError::Internal(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEvent(m) => write!(f, "invalid event: {m}"),
            Self::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Self::Transient(m) => write!(f, "transient: {m}"),
            Self::Internal(m) => write!(f, "internal: {m}"),
        }
    }
}

impl std::error::Error for Error {}
