//! A loaded plugin, and one invocation of it.

use super::bindings::filter::FilterPre;
use super::bindings::integration::IntegrationPre;
use super::bindings::transformer::TransformerPre;
use super::bindings::types::{Event, PluginError, PluginInfo, Request};
use super::error::{ConfigError, InvokeError, World};
use super::guest::{GuestLog, GuestState};
use super::limits::{GUEST_OUTPUT_BYTES, Limits, deadline_ticks};
use super::output::GuestOutput;
use super::validate;
use crate::schema::JsonSchema;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap};

/// A compiled, pre-linked plugin: ready to be instantiated for each event.
pub struct Plugin {
    pub(crate) digest: String,
    pub(crate) world: World,
    pub(crate) contract_version: String,
    pub(crate) info: PluginInfo,
    pub(crate) config_schema: JsonSchema,
    pub(crate) linked: Linked,
    pub(crate) size: usize,
    /// The runtime's places for instances: every invocation takes one.
    pub(crate) slots: Arc<super::slots::InstanceSlots>,
}

/// The pre-linked instance of each world, type-checked against its exports.
pub(crate) enum Linked {
    Filter(FilterPre<GuestState>),
    Transformer(TransformerPre<GuestState>),
    Integration(IntegrationPre<GuestState>),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("world", &self.world)
            .field("digest", &self.digest)
            .finish()
    }
}

impl Plugin {
    /// The sha256 of the component's bytes, hex: the identity caches use.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    pub fn world(&self) -> World {
        self.world
    }
    /// The `weft:plugin` version the component was built against.
    pub fn contract_version(&self) -> &str {
        &self.contract_version
    }
    pub fn name(&self) -> &str {
        &self.info.name
    }
    pub fn version(&self) -> &str {
        &self.info.version
    }
    pub fn description(&self) -> &str {
        &self.info.description
    }
    /// The JSON Schema the plugin declares for its configuration.
    pub fn config_schema(&self) -> serde_json::Value {
        serde_json::from_str(&self.info.config_schema).unwrap_or_default()
    }
    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    fn engine(&self) -> &Engine {
        match &self.linked {
            Linked::Filter(pre) => pre.engine(),
            Linked::Transformer(pre) => pre.engine(),
            Linked::Integration(pre) => pre.engine(),
        }
    }

    /// Checks `config` against the plugin's schema and binds the two, with the
    /// limits its invocations run under.
    pub fn attach(
        self: &Arc<Self>,
        config: &serde_json::Value,
        limits: Limits,
    ) -> Result<AttachedPlugin, ConfigError> {
        self.config_schema
            .validate(config)
            .map_err(|violations| ConfigError {
                plugin: self.info.name.clone(),
                reason: violations.to_string(),
            })?;
        Ok(AttachedPlugin {
            plugin: Arc::clone(self),
            config: config.to_string().into(),
            limits,
        })
    }
}

/// What a successful invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A filter's verdict: `true` keeps the event.
    Filter(bool),
    /// A transform's or template's requests: none means the event is dropped.
    Requests(Vec<Request>),
}

/// The result of one invocation, with what the plugin logged along the way.
#[derive(Debug)]
pub struct Invocation {
    pub outcome: Result<Output, InvokeError>,
    /// Lines logged through `host.log`, at most [`super::limits::MAX_LOG_LINES`].
    pub logs: Vec<GuestLog>,
    /// Log lines past the bound, counted and not kept.
    pub dropped_logs: usize,
    /// What the guest wrote to stdout and stderr, bounded.
    pub stdout: String,
    pub stderr: String,
    /// Wall-clock time from creating the instance to checking its output.
    pub elapsed: Duration,
}

/// A plugin with its validated configuration and limits, as a subscription uses it.
#[derive(Debug, Clone)]
pub struct AttachedPlugin {
    plugin: Arc<Plugin>,
    config: Arc<str>,
    limits: Limits,
}

impl AttachedPlugin {
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs the plugin on `event` in a fresh instance, on this thread, once it
    /// has a place in the instance pool (waiting for one when all are taken).
    /// Async callers go through [`super::PluginRuntime::invoke`], which queues
    /// them without holding a thread.
    pub fn invoke(&self, event: &Event) -> Invocation {
        let _slot = self.plugin.slots.take();
        invoke(&self.plugin, &self.config, self.limits, event)
    }
}

/// Asks a plugin to describe itself, with an empty configuration.
pub(crate) fn describe(linked: &Linked, name_hint: &str) -> Result<PluginInfo, InvokeError> {
    let engine = match linked {
        Linked::Filter(pre) => pre.engine(),
        Linked::Transformer(pre) => pre.engine(),
        Linked::Integration(pre) => pre.engine(),
    };
    let mut sandbox = Sandbox::new(
        engine,
        name_hint.into(),
        "{}".into(),
        Limits::default(),
        "describe",
    );
    let result = match linked {
        Linked::Filter(pre) => pre
            .instantiate(&mut sandbox.store)
            .and_then(|i| i.call_describe(&mut sandbox.store)),
        Linked::Transformer(pre) => pre
            .instantiate(&mut sandbox.store)
            .and_then(|i| i.call_describe(&mut sandbox.store)),
        Linked::Integration(pre) => pre
            .instantiate(&mut sandbox.store)
            .and_then(|i| i.call_describe(&mut sandbox.store)),
    };
    result.map_err(|error| sandbox.classify_trap(error, Limits::default()))
}

fn invoke(plugin: &Plugin, config: &Arc<str>, limits: Limits, event: &Event) -> Invocation {
    let started = Instant::now();
    let name: Arc<str> = plugin.info.name.as_str().into();
    let mut sandbox = Sandbox::new(plugin.engine(), name, Arc::clone(config), limits, &event.id);
    let store = &mut sandbox.store;
    let called = match &plugin.linked {
        Linked::Filter(pre) => pre
            .instantiate(&mut *store)
            .and_then(|i| i.call_filter(&mut *store, event))
            .map(|r| r.map(Output::Filter)),
        Linked::Transformer(pre) => pre
            .instantiate(&mut *store)
            .and_then(|i| i.call_transform(&mut *store, event))
            .map(|r| r.map(Output::Requests)),
        Linked::Integration(pre) => pre
            .instantiate(&mut *store)
            .and_then(|i| i.call_render(&mut *store, event))
            .map(|r| r.map(Output::Requests)),
    };
    let outcome = match called {
        Err(error) => Err(sandbox.classify_trap(error, limits)),
        Ok(Err(plugin_error)) => Err(from_plugin_error(plugin_error)),
        Ok(Ok(output)) => check_output(output, limits),
    };
    sandbox.finish(outcome, started)
}

fn check_output(output: Output, limits: Limits) -> Result<Output, InvokeError> {
    if let Output::Requests(requests) = &output {
        let size = validate::output_size(requests);
        if size > limits.output_bytes {
            return Err(InvokeError::OutputTooLarge {
                size,
                limit: limits.output_bytes,
            });
        }
        validate::check_requests(requests)?;
    }
    Ok(output)
}

fn from_plugin_error(error: PluginError) -> InvokeError {
    match error {
        PluginError::InvalidEvent(m) => InvokeError::InvalidEvent(m),
        PluginError::InvalidConfig(m) => InvokeError::InvalidConfig(m),
        PluginError::Transient(m) => InvokeError::Transient(m),
        PluginError::Internal(m) => InvokeError::Internal(m),
    }
}

/// A fresh store for one invocation, and the guest output it captures.
struct Sandbox {
    store: Store<GuestState>,
    stdout: GuestOutput,
    stderr: GuestOutput,
}

impl Sandbox {
    fn new(
        engine: &Engine,
        plugin: Arc<str>,
        config: Arc<str>,
        limits: Limits,
        event_id: &str,
    ) -> Self {
        let stdout = GuestOutput::new(GUEST_OUTPUT_BYTES);
        let stderr = GuestOutput::new(GUEST_OUTPUT_BYTES);
        let state = GuestState::new(
            plugin,
            config,
            event_id,
            limits.memory_bytes,
            &stdout,
            &stderr,
        );
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.deadline));
        store.epoch_deadline_trap();
        Self {
            store,
            stdout,
            stderr,
        }
    }

    /// Turns a wasmtime error into the limit that caused it, or a trap quoting
    /// what the guest printed (a Rust panic message, a Python traceback).
    fn classify_trap(&self, error: wasmtime::Error, limits: Limits) -> InvokeError {
        if let Some(requested) = self.store.data().limiter.refused {
            return InvokeError::MemoryLimitExceeded {
                limit: limits.memory_bytes,
                requested,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => InvokeError::DeadlineExceeded(limits.deadline),
            Some(trap) => {
                let stderr = self.stderr.text();
                let stderr = stderr.trim();
                if stderr.is_empty() {
                    InvokeError::Trap(trap.to_string())
                } else {
                    InvokeError::Trap(format!("{trap}; the plugin wrote: {stderr}"))
                }
            }
            None => InvokeError::Instantiate(format!("{error:#}")),
        }
    }

    fn finish(self, outcome: Result<Output, InvokeError>, started: Instant) -> Invocation {
        let elapsed = started.elapsed();
        let state = self.store.into_data();
        let (stdout, stderr) = (self.stdout.text(), self.stderr.text());
        if !stdout.is_empty() {
            tracing::debug!(target: "weft::plugin::stdout", "{stdout}");
        }
        if !stderr.is_empty() {
            tracing::debug!(target: "weft::plugin::stderr", "{stderr}");
        }
        Invocation {
            outcome,
            logs: state.logs,
            dropped_logs: state.dropped_logs,
            stdout,
            stderr,
            elapsed,
        }
    }
}
