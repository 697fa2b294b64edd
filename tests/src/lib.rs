//! Helpers for Weft's end-to-end tests and benchmarks, so that each test reads as
//! one statement: where the guests are, sample events, the runtime, and the
//! JavaScript and Python components (built from source on first use).

pub mod load;
pub mod pki;
pub mod process;
pub mod receiver;
pub mod token_server;
pub mod weft;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;
use weft_engine::runtime::{AttachedPlugin, Event, Limits, Plugin, PluginRuntime, RuntimeConfig};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A wasm guest built by this crate's build script, by crate name (`slack`,
/// `misbehave`, …).
pub fn guest(name: &str) -> PathBuf {
    let path = Path::new(env!("WEFT_GUEST_DIR")).join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: the build script should have built it",
        path.display()
    );
    path
}

/// The `weft` binary of this build, next to the test binary's `deps/` folder.
/// `cargo test` does not build binaries of other packages: `tests/run.sh` runs
/// `cargo build --bins` first.
pub fn weft_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("weft");
    assert!(
        binary.exists(),
        "{} is missing: build it first: `cargo build --release -p weft-engine` (tests/run.sh does)",
        binary.display()
    );
    binary
}

/// The bytes of a guest.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).unwrap()
}

/// The sample event of `examples/events/<event_type>.json`.
pub fn sample_event(event_type: &str) -> Event {
    let path = repo_root()
        .join("examples/events")
        .join(format!("{event_type}.json"));
    weft_engine::cli::read_sample_event(&path).unwrap()
}

/// The sample event of `examples/events/<event_type>.json` as Weft captures
/// it (what filters and templates see), in tenant `acme`.
pub fn captured_sample(event_type: &str) -> weft_engine::model::Event {
    let sample = sample_event_json(event_type);
    weft_engine::model::Event {
        id: weft_engine::model::EventId::generate(),
        tenant: weft_engine::model::TenantId::parse("acme").unwrap(),
        event_type: event_type.into(),
        occurred_at: 1_764_664_200_000,
        received_at: 1_764_664_200_000,
        idempotency_key: None,
        payload: sample["data"].clone().into(),
        metadata: std::collections::BTreeMap::new(),
    }
}

/// The sample event file of `examples/events/<event_type>.json`, as JSON.
pub fn sample_event_json(event_type: &str) -> serde_json::Value {
    let path = repo_root()
        .join("examples/events")
        .join(format!("{event_type}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every sample event type in `examples/events`, sorted.
pub fn sample_event_types() -> Vec<String> {
    let mut types: Vec<String> = std::fs::read_dir(repo_root().join("examples/events"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    types.sort();
    types
}

/// A runtime with default settings and no disk cache.
pub fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig::default()).unwrap()
}

/// A runtime shared by the tests of one binary: compiled plugins stay loaded.
pub fn shared_runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(runtime)
}

/// Loads a guest in the shared runtime and attaches `config` with default limits.
pub fn attach(name: &str, config: serde_json::Value) -> AttachedPlugin {
    attach_with_limits(name, config, Limits::default())
}

pub fn attach_with_limits(name: &str, config: serde_json::Value, limits: Limits) -> AttachedPlugin {
    load(name).attach(&config, limits).unwrap()
}

pub fn load(name: &str) -> Arc<Plugin> {
    shared_runtime().load(&guest_bytes(name)).unwrap()
}

/// The `redact-pii` transform built from JavaScript with componentize-js.
pub fn javascript_redact_pii() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            componentize(
                "plugins/redact-pii-js",
                &["src", "build.mjs", "package.json", "package-lock.json"],
            )
        })
        .clone()
}

/// The `redact-pii` transform built from Python with componentize-py.
pub fn python_redact_pii() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            componentize(
                "plugins/redact-pii-py",
                &[
                    "app.py",
                    "redact.py",
                    "plugin_info.py",
                    "requirements.txt",
                    "build.sh",
                ],
            )
        })
        .clone()
}

/// Runs `<project>/build.sh OUT` unless OUT is newer than every source. These
/// builds take tens of seconds and need npm or pip: a missing tool fails the test
/// that needs it, loudly.
fn componentize(project: &str, sources: &[&str]) -> PathBuf {
    let project_dir = repo_root().join(project);
    let name = project.rsplit('/').next().unwrap();
    let out_dir = Path::new(env!("WEFT_GUEST_DIR")).join("componentized");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.wasm"));
    let mut inputs: Vec<PathBuf> = sources.iter().map(|s| project_dir.join(s)).collect();
    inputs.push(repo_root().join("wit"));
    if newest_modification(&inputs) < modified(&out) {
        return out;
    }
    let status = Command::new("bash")
        .arg(project_dir.join("build.sh"))
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {project}/build.sh: {e}"));
    assert!(
        status.success(),
        "{project}/build.sh failed ({status}); it needs node/npm or python3/pip"
    );
    out
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_modification(paths: &[PathBuf]) -> Option<SystemTime> {
    paths
        .iter()
        .flat_map(|path| {
            if path.is_dir() {
                let entries: Vec<PathBuf> = std::fs::read_dir(path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                vec![newest_modification(&entries)]
            } else {
                vec![modified(path)]
            }
        })
        .max()
        .flatten()
}
