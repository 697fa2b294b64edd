//! Typed failures of loading and invoking plugins, each with a message that says
//! what is wrong in the user's terms.

use super::bindings::CONTRACT_VERSION;
use std::time::Duration;

/// Why a plugin could not be loaded. Returned at upload, so the message is the
/// answer the author gets.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(
        "implements no Weft plugin world: it exports {exports}, but a plugin of \
         weft:plugin@{CONTRACT_VERSION} exports `filter` (world filter), `transform` \
         (world transformer) or `render` (world integration), each with `describe`"
    )]
    UnknownWorld { exports: String },
    #[error("built against weft:plugin@{found}; this Weft runs weft:plugin@{CONTRACT_VERSION}")]
    UnsupportedContract { found: String },
    #[error("does not fit the {world} world of weft:plugin@{CONTRACT_VERSION}: {reason}")]
    WorldMismatch { world: World, reason: String },
    #[error("describe() failed: {0}")]
    Describe(InvokeError),
    #[error("describe() returned a config schema that is not valid: {0}")]
    ConfigSchema(String),
    #[error("cannot compile the component: {0}")]
    Compile(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// Why an invocation failed. [`InvokeError::disposition`] says what a delivery
/// should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("exceeded its CPU deadline of {} ms", .0.as_millis())]
    DeadlineExceeded(Duration),
    #[error("exceeded its memory limit of {limit} bytes (it asked for {requested})")]
    MemoryLimitExceeded { limit: usize, requested: usize },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned {size} bytes of requests, over the limit of {limit} bytes")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("returned a malformed request (#{index}): {reason}")]
    MalformedOutput { index: usize, reason: String },
    #[error("could not start: {0}")]
    Instantiate(String),
    #[error("rejected the event: {0}")]
    InvalidEvent(String),
    #[error("rejected its configuration: {0}")]
    InvalidConfig(String),
    #[error("failed transiently: {0}")]
    Transient(String),
    #[error("failed internally: {0}")]
    Internal(String),
}

/// What the delivery pipeline should do after an invocation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The same event will fail the same way: dead-letter without retrying.
    DeadLetter,
    /// The subscription's configuration is wrong: pause it and alert.
    PauseSubscription,
    /// It may pass later: retry with backoff.
    Retry,
}

impl InvokeError {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::InvalidEvent(_) | Self::OutputTooLarge { .. } | Self::MalformedOutput { .. } => {
                Disposition::DeadLetter
            }
            Self::InvalidConfig(_) => Disposition::PauseSubscription,
            Self::DeadlineExceeded(_)
            | Self::MemoryLimitExceeded { .. }
            | Self::Trap(_)
            | Self::Instantiate(_)
            | Self::Transient(_)
            | Self::Internal(_) => Disposition::Retry,
        }
    }
}

/// A configuration that does not satisfy the plugin's declared schema.
#[derive(Debug, thiserror::Error)]
#[error("config for plugin {plugin}: {reason}")]
pub struct ConfigError {
    pub plugin: String,
    pub reason: String,
}

/// The three kinds of plugin, one per world of `wit/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    Filter,
    Transformer,
    Integration,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Transformer => "transformer",
            Self::Integration => "integration",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
