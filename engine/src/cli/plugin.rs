//! `weft plugin inspect` and `weft plugin run`: what a plugin author uses before
//! uploading anything.

use crate::runtime::{
    AttachedPlugin, Event, Invocation, Limits, LoadSource, Output, Plugin, PluginRuntime, Request,
    RuntimeConfig,
};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Say which world a component implements, the contract version it was built
    /// against, and what it says about itself (name, version, config schema).
    Inspect {
        /// The component (.wasm).
        component: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a plugin on a sample event and print what Weft would deliver.
    Run {
        /// The component (.wasm).
        component: PathBuf,
        /// A sample event: {"type": "sales_order.created", "data": {...}} plus
        /// optional "id", "tenant", "occurred_at" (unix ms) and "metadata".
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// The plugin's configuration, a JSON file [default: {}].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// CPU deadline for the invocation, in milliseconds.
        #[arg(long, default_value_t = 100, value_name = "MS")]
        deadline_ms: u64,
        /// Memory cap for the invocation, in MiB.
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        memory_mib: usize,
    },
}

pub fn run(command: PluginCommand, artifact_dir: Option<PathBuf>) -> Result<ExitCode> {
    let runtime = PluginRuntime::new(RuntimeConfig {
        artifact_dir,
        max_concurrent_invocations: 1,
        ..RuntimeConfig::default()
    })?;
    match command {
        PluginCommand::Inspect { component, json } => {
            let (plugin, _, _) = load(&runtime, &component)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspection(&plugin))?);
            } else {
                print_inspection(&plugin);
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Run {
            component,
            event,
            config,
            deadline_ms,
            memory_mib,
        } => {
            let (plugin, source, load_time) = load(&runtime, &component)?;
            let event = read_sample_event(&event)?;
            let config = match config {
                Some(path) => read_json(&path)?,
                None => serde_json::json!({}),
            };
            let limits = Limits {
                deadline: Duration::from_millis(deadline_ms),
                memory_bytes: memory_mib << 20,
                ..runtime.default_limits()
            };
            let attached: AttachedPlugin = plugin.attach(&config, limits)?;
            let invocation = attached.invoke(&event);
            println!(
                "{} {} ({}, weft:plugin@{}), loaded in {} ({})",
                plugin.name(),
                plugin.version(),
                plugin.world(),
                plugin.contract_version(),
                millis(load_time),
                match source {
                    LoadSource::Memory => "already loaded",
                    LoadSource::Disk => "precompiled, from disk",
                    LoadSource::Compiled => "compiled",
                },
            );
            Ok(print_invocation(&invocation))
        }
    }
}

fn load(runtime: &PluginRuntime, path: &Path) -> Result<(Arc<Plugin>, LoadSource, Duration)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let started = Instant::now();
    let (plugin, source) = runtime
        .load_traced(&bytes)
        .with_context(|| format!("{} cannot be loaded", path.display()))?;
    Ok((plugin, source, started.elapsed()))
}

fn inspection(plugin: &Plugin) -> serde_json::Value {
    serde_json::json!({
        "world": plugin.world().name(),
        "contract": format!("weft:plugin@{}", plugin.contract_version()),
        "name": plugin.name(),
        "version": plugin.version(),
        "description": plugin.description(),
        "config_schema": plugin.config_schema(),
        "digest": format!("sha256:{}", plugin.digest()),
        "size": plugin.size(),
    })
}

fn print_inspection(plugin: &Plugin) {
    println!("world:       {}", plugin.world());
    println!("contract:    weft:plugin@{}", plugin.contract_version());
    println!("name:        {}", plugin.name());
    println!("version:     {}", plugin.version());
    println!("description: {}", plugin.description());
    println!("digest:      sha256:{}", plugin.digest());
    println!("size:        {} bytes", plugin.size());
    let schema = serde_json::to_string_pretty(&plugin.config_schema()).unwrap_or_default();
    println!("config schema:\n{schema}");
}

/// A sample event file: the event as a publisher sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleEvent {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    tenant: Option<String>,
    occurred_at: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    data: serde_json::Value,
}

/// Reads a sample event file (the shape publishers send) into the event a plugin sees.
pub fn read_sample_event(path: &Path) -> Result<Event> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let sample: SampleEvent = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sample event", path.display()))?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Event {
        id: sample.id.unwrap_or_else(|| format!("evt_local_{now_ms}")),
        event_type: sample.event_type,
        tenant: sample.tenant.unwrap_or_else(|| "local".to_owned()),
        occurred_at: sample.occurred_at.unwrap_or(now_ms),
        content_type: "application/json".to_owned(),
        data: serde_json::to_vec(&sample.data)?,
        metadata: sample.metadata.into_iter().collect(),
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn print_invocation(invocation: &Invocation) -> ExitCode {
    for log in &invocation.logs {
        println!("log [{:?}] {}", log.level, log.message);
    }
    if invocation.dropped_logs > 0 {
        println!("log … {} more lines not kept", invocation.dropped_logs);
    }
    let took = millis(invocation.elapsed);
    match &invocation.outcome {
        Ok(Output::Filter(true)) => println!("kept: the filter passed the event, in {took}"),
        Ok(Output::Filter(false)) => println!("dropped: the filter rejected the event, in {took}"),
        Ok(Output::Requests(requests)) if requests.is_empty() => {
            println!("dropped: the plugin returned no request, in {took}")
        }
        Ok(Output::Requests(requests)) => {
            let plural = if requests.len() == 1 { "" } else { "s" };
            println!("{} request{plural}, in {took}", requests.len());
            for request in requests {
                println!();
                print_request(request);
            }
        }
        Err(error) => {
            println!("failed in {took}: the plugin {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn print_request(request: &Request) {
    let method = request.method.as_deref().unwrap_or("POST");
    let url = request.url.as_deref().unwrap_or("<endpoint URL>");
    println!("{method} {url}");
    for (name, value) in &request.headers {
        println!("{name}: {value}");
    }
    println!();
    match serde_json::from_slice::<serde_json::Value>(&request.body) {
        Ok(json) => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Err(_) => match std::str::from_utf8(&request.body) {
            Ok(text) => println!("{text}"),
            Err(_) => println!("<{} bytes of binary data>", request.body.len()),
        },
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
