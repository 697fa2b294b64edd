//! The WebAssembly plugin host: the only module that knows wasmtime.
//!
//! One [`PluginRuntime`] per process holds the `Engine` (component model, pooling
//! allocator, epoch interruption driven by a ticker thread), the `Linker` with WASI
//! and the `weft:plugin/host` interface, and two caches of compiled plugins: in
//! memory by content digest, and precompiled artifacts on disk.
//!
//! Loading a plugin compiles it (or maps its artifact), works out which world it
//! implements from its exports, pre-links it and asks it to `describe` itself.
//! Each invocation then gets a fresh `Store`: a new sandbox with the plugin's
//! config, its [`Limits`] and captured stdio, dropped when the call returns.
//!
//! Plugins get no filesystem, no sockets and no environment. A plugin that loops,
//! traps, panics, runs out of memory or returns garbage fails its own invocation
//! with an [`InvokeError`]; the runtime and every other plugin carry on.

mod bindings;
mod cache;
mod error;
mod guest;
mod limits;
mod output;
mod plugin;
mod slots;
mod validate;

pub use bindings::types::{Event, Request};
pub use bindings::{CONTRACT_PACKAGE, CONTRACT_VERSION};
pub use error::{ConfigError, Disposition, InvokeError, LoadError, World};
pub use guest::{GuestLog, LogLevel};
pub use limits::{InvalidLimit, Limits};
pub use plugin::{AttachedPlugin, Invocation, Output, Plugin};

use bindings::filter::{Filter, FilterPre};
use bindings::integration::IntegrationPre;
use bindings::transformer::TransformerPre;
use cache::ArtifactCache;
use guest::GuestState;
use plugin::Linked;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the runtime is set up. [`RuntimeConfig::default`] suits a server.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Limits for invocations that do not set their own.
    pub default_limits: Limits,
    /// Invocations running at once through [`PluginRuntime::invoke`]; further
    /// callers wait for a permit rather than fail.
    pub max_concurrent_invocations: u32,
    /// Where compiled plugins are kept between runs; `None` keeps them in memory only.
    pub artifact_dir: Option<PathBuf>,
    /// Compiled plugins kept in memory.
    pub loaded_plugins_capacity: u64,
    /// Whether to use the pooling allocator (falling back to on-demand allocation
    /// where its virtual-memory reservation fails).
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            default_limits: Limits::default(),
            // Invocations are CPU-bound: more at once than cores only adds memory.
            max_concurrent_invocations: std::thread::available_parallelism()
                .map_or(4, |n| n.get() as u32 * 2),
            artifact_dir: None,
            loaded_plugins_capacity: 256,
            pooling: true,
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot open the compiled-plugin directory {path}: {source}")]
    ArtifactDir {
        path: String,
        source: std::io::Error,
    },
}

/// The process-wide plugin host. Cheap to share behind an `Arc`.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<GuestState>,
    loaded: moka::sync::Cache<String, Arc<Plugin>>,
    artifacts: Option<ArtifactCache>,
    /// Async callers queue here, without holding a thread, before they take
    /// one of `slots` on a blocking thread; as many permits as slots.
    permits: Arc<tokio::sync::Semaphore>,
    /// Every instantiation's place in the instance pool.
    slots: Arc<slots::InstanceSlots>,
    config: RuntimeConfig,
    pooling: bool,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("config", &self.config)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

/// How a plugin was obtained by [`PluginRuntime::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Already loaded in this process.
    Memory,
    /// Mapped from a precompiled artifact on disk.
    Disk,
    /// Compiled from the component's bytes.
    Compiled,
}

impl PluginRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let (engine, pooling) = build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        // The three worlds import the same `host` interface: linking it for one links it for all.
        Filter::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let artifacts = match &config.artifact_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine).map_err(|source| {
                RuntimeError::ArtifactDir {
                    path: dir.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
        Ok(Self {
            _ticker: EpochTicker::start(engine.clone()),
            loaded: moka::sync::Cache::new(config.loaded_plugins_capacity),
            permits: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_invocations as usize,
            )),
            slots: slots::InstanceSlots::new(
                (config.max_concurrent_invocations + limits::pool::LOAD_HEADROOM) as usize,
            ),
            engine,
            linker,
            artifacts,
            pooling,
            config,
        })
    }

    /// Whether the pooling allocator is in use (false after a fallback).
    pub fn uses_pooling_allocator(&self) -> bool {
        self.pooling
    }

    pub fn default_limits(&self) -> Limits {
        self.config.default_limits
    }

    /// Loads the component in `bytes`: compiled once per content digest.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        self.load_traced(bytes).map(|(plugin, _)| plugin)
    }

    /// Loads the component in the file at `path`.
    pub fn load_file(&self, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes)
    }

    /// Like [`PluginRuntime::load`], also saying where the compiled code came from.
    pub fn load_traced(&self, bytes: &[u8]) -> Result<(Arc<Plugin>, LoadSource), LoadError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(plugin) = self.loaded.get(&digest) {
            return Ok((plugin, LoadSource::Memory));
        }
        check_component_header(bytes)?;
        let (component, source) = self.compile(&digest, bytes)?;
        let plugin = Arc::new(self.link(digest.clone(), &component, bytes.len())?);
        self.loaded.insert(digest, Arc::clone(&plugin));
        Ok((plugin, source))
    }

    fn compile(&self, digest: &str, bytes: &[u8]) -> Result<(Component, LoadSource), LoadError> {
        if let Some(component) = self
            .artifacts
            .as_ref()
            .and_then(|a| a.load(&self.engine, digest))
        {
            return Ok((component, LoadSource::Disk));
        }
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        tracing::info!(
            digest,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled plugin"
        );
        if let Some(artifacts) = &self.artifacts {
            let stored = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|artifact| artifacts.store(digest, &artifact));
            if let Err(error) = stored {
                tracing::warn!(digest, %error, "cannot keep the compiled plugin on disk; it will be recompiled after a restart");
            }
        }
        Ok((component, LoadSource::Compiled))
    }

    fn link(
        &self,
        digest: String,
        component: &Component,
        size: usize,
    ) -> Result<Plugin, LoadError> {
        let component_type = component.component_type();
        let exports: Vec<&str> = component_type
            .exports(&self.engine)
            .map(|(name, _)| name)
            .collect();
        let world = if exports.contains(&"filter") {
            World::Filter
        } else if exports.contains(&"render") {
            World::Integration
        } else if exports.contains(&"transform") {
            World::Transformer
        } else {
            return Err(LoadError::UnknownWorld {
                exports: describe_names(&exports),
            });
        };
        let contract_version =
            contract_version(component_type.imports(&self.engine).map(|(name, _)| name));
        if let Some(found) = &contract_version
            && found != CONTRACT_VERSION
        {
            return Err(LoadError::UnsupportedContract {
                found: found.clone(),
            });
        }
        let mismatch = |error: wasmtime::Error| LoadError::WorldMismatch {
            world,
            reason: format!("{error:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(component).map_err(mismatch)?;
        let linked = match world {
            World::Filter => Linked::Filter(FilterPre::new(instance_pre).map_err(mismatch)?),
            World::Transformer => {
                Linked::Transformer(TransformerPre::new(instance_pre).map_err(mismatch)?)
            }
            World::Integration => {
                Linked::Integration(IntegrationPre::new(instance_pre).map_err(mismatch)?)
            }
        };
        let info = {
            let _slot = self.slots.take();
            plugin::describe(&linked, &digest).map_err(LoadError::Describe)?
        };
        let schema: serde_json::Value = serde_json::from_str(&info.config_schema)
            .map_err(|e| LoadError::ConfigSchema(format!("not JSON: {e}")))?;
        let config_schema = crate::schema::JsonSchema::compile(&schema)
            .map_err(|e| LoadError::ConfigSchema(e.to_string()))?;
        Ok(Plugin {
            digest,
            world,
            contract_version: contract_version.unwrap_or_else(|| CONTRACT_VERSION.to_owned()),
            info,
            config_schema,
            linked,
            size,
            slots: Arc::clone(&self.slots),
        })
    }

    /// Runs `plugin` on `event` on the blocking thread pool, once an invocation
    /// permit is free: when every permit is taken, callers queue here instead of
    /// failing (and without holding a thread). The invocation then takes its
    /// place in the instance pool as every instantiation does.
    pub async fn invoke(&self, plugin: &AttachedPlugin, event: Event) -> Invocation {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the permit semaphore is never closed");
        let plugin = plugin.clone();
        let name = plugin.plugin().name().to_owned();
        let invocation = tokio::task::spawn_blocking(move || plugin.invoke(&event))
            .await
            .expect("plugin invocations catch guest failures and do not panic");
        count_invocation(name, &invocation);
        invocation
    }

    /// Invocation permits free right now.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Counts `invocation` of plugin `name` in the process's metrics.
fn count_invocation(plugin: String, invocation: &Invocation) {
    let metrics = crate::metrics::metrics();
    metrics
        .plugin_seconds
        .get_or_create(&crate::metrics::PluginLabels {
            plugin: plugin.clone(),
        })
        .observe(invocation.elapsed.as_secs_f64());
    if let Err(error) = &invocation.outcome {
        let kind = match error {
            InvokeError::DeadlineExceeded(_) => "deadline",
            InvokeError::MemoryLimitExceeded { .. } => "memory",
            InvokeError::Trap(_) => "trap",
            InvokeError::OutputTooLarge { .. } | InvokeError::MalformedOutput { .. } => {
                "bad_output"
            }
            InvokeError::Instantiate(_) => "instantiate",
            InvokeError::InvalidEvent(_)
            | InvokeError::InvalidConfig(_)
            | InvokeError::Transient(_)
            | InvokeError::Internal(_) => "plugin_error",
        };
        metrics
            .plugin_errors
            .get_or_create(&crate::metrics::PluginErrorLabels { plugin, kind })
            .inc();
    }
}

/// The engine for plugins: component model, epoch deadlines, and the pooling
/// allocator unless it cannot reserve its address space here.
fn build_engine(config: &RuntimeConfig) -> Result<(Engine, bool), RuntimeError> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true);
    wasm.epoch_interruption(true);
    wasm.parallel_compilation(true);
    if config.pooling {
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(config)));
        match Engine::new(&wasm) {
            Ok(engine) => return Ok((engine, true)),
            Err(error) => {
                tracing::warn!(%error, "pooling allocator unavailable; allocating instances on demand");
                wasm.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            }
        }
    }
    Engine::new(&wasm)
        .map(|engine| (engine, false))
        .map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

fn pooling_config(config: &RuntimeConfig) -> PoolingAllocationConfig {
    use limits::pool::*;
    let instances = config.max_concurrent_invocations + LOAD_HEADROOM;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * MEMORIES_PER_COMPONENT)
        .total_tables(instances * TABLES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .max_component_instance_size(COMPONENT_INSTANCE_BYTES)
        .max_core_instance_size(CORE_INSTANCE_BYTES)
        .max_memory_size(
            config
                .default_limits
                .memory_bytes
                .max(limits::MAX_MEMORY_BYTES),
        )
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // Linux 6.7+: reset only the pages an invocation dirtied (see MEMORY_KEEP_RESIDENT).
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Rejects what is not a component before Cranelift sees it, with a hint.
fn check_component_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const MODULE_LAYER: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotAComponent(
            "the file does not start with the WebAssembly magic number".into(),
        ));
    }
    let layer: [u8; 4] = bytes[4..8].try_into().expect("checked length");
    match layer {
        COMPONENT_LAYER => Ok(()),
        MODULE_LAYER => Err(LoadError::NotAComponent(
            "this is a core WebAssembly module; build for the wasm32-wasip2 target, or wrap it with `wasm-tools component new`"
                .into(),
        )),
        _ => Err(LoadError::NotAComponent("unknown WebAssembly version or layer".into())),
    }
}

/// The `weft:plugin` version named by the component's imports (`weft:plugin/host@0.1.0`).
fn contract_version<'a>(imports: impl Iterator<Item = &'a str>) -> Option<String> {
    imports
        .filter_map(|name| name.strip_prefix(CONTRACT_PACKAGE)?.strip_prefix('/'))
        .find_map(|rest| rest.split_once('@').map(|(_, version)| version.to_owned()))
}

fn describe_names(names: &[&str]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Advances the engine's epoch every [`limits::EPOCH_TICK`] so that CPU deadlines
/// fire. Stops when the runtime is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(limits::EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot start the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_are_not_components_get_a_hint() {
        let cases: [(&[u8], &str); 3] = [
            (b"hello world", "magic number"),
            (b"\0asm\x01\0\0\0", "core WebAssembly module"),
            (b"\0asm\x0d\0\x01\0", ""),
        ];
        for (bytes, expected) in cases {
            match check_component_header(bytes) {
                Ok(()) => assert!(expected.is_empty()),
                Err(error) => assert!(error.to_string().contains(expected), "{error}"),
            }
        }
    }

    #[test]
    fn contract_version_comes_from_weft_imports() {
        let imports = ["wasi:io/streams@0.2.6", "weft:plugin/host@0.1.0"];
        assert_eq!(contract_version(imports.into_iter()), Some("0.1.0".into()));
        assert_eq!(
            contract_version(["wasi:cli/stdout@0.2.6"].into_iter()),
            None
        );
    }
}
