//! The plugin runtime's benchmark: what one invocation costs (fresh instance +
//! call + output checks) for a no-op transform and for the Slack template, next
//! to the same logic compiled natively; and how long a JavaScript or Python
//! component takes to load cold, from the on-disk artifact, and from memory.
//!
//! `cargo bench -p weft-tests --bench runtime [-- WORD]`: WORD keeps only the
//! sections whose name contains it (`noop`, `slack`, `load`). `WEFT_BENCH_SECONDS`
//! sets the time per measurement (default 3).

use serde_json::json;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use weft_engine::runtime::{
    AttachedPlugin, Event, Limits, LoadSource, Output, PluginRuntime, Request, RuntimeConfig,
};
use weft_tests::{guest_bytes, javascript_redact_pii, python_redact_pii, repo_root, sample_event};

fn main() {
    let seconds: f64 = std::env::var("WEFT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(seconds);
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |section: &str| only.is_empty() || only.iter().any(|word| section.contains(word.as_str()));
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    println!("pooling allocator: {}", runtime.uses_pooling_allocator());
    println!();
    println!("per invocation: fresh instance + call, {seconds} s per row");
    println!(
        "{:<34} {:>7} {:>10} {:>10} {:>12} {:>9}",
        "case", "threads", "p50 µs", "p99 µs", "calls/s", "p50 ratio"
    );

    let event = sample_event("sales_order.created");
    let noop = runtime
        .load(&guest_bytes("noop"))
        .unwrap()
        .attach(&json!({}), Limits::default())
        .unwrap();
    if wanted("noop transform") {
        compare("noop transform", &event, budget, &|e| native_noop(e), &noop);
    }

    let slack_config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("plugins/slack/example-config.json")).unwrap(),
    )
    .unwrap();
    let slack = runtime
        .load(&guest_bytes("slack"))
        .unwrap()
        .attach(&slack_config, Limits::default())
        .unwrap();
    let native_slack_config: slack::config::Config =
        serde_json::from_value(slack_config.clone()).unwrap();
    if wanted("slack template") {
        compare(
            "slack template",
            &event,
            budget,
            &|e| native_slack(&native_slack_config, e),
            &slack,
        );
    }
    if !wanted("load") {
        return;
    }

    println!();
    println!(
        "loading a componentized plugin (ms): cold = compile, disk = map the precompiled artifact"
    );
    println!(
        "{:<24} {:>9} {:>10} {:>10} {:>8} {:>13}",
        "component", "MB", "cold", "disk", "memory", "cold / disk"
    );
    for (name, path) in [
        ("redact-pii (javascript)", javascript_redact_pii()),
        ("redact-pii (python)", python_redact_pii()),
    ] {
        load_times(name, &std::fs::read(path).unwrap());
    }
    load_times("slack (rust)", &guest_bytes("slack"));
}

/// The no-op transform's logic, natively: one request carrying the payload.
fn native_noop(event: &Event) -> Vec<Request> {
    vec![Request {
        method: None,
        url: None,
        headers: vec![("content-type".into(), event.content_type.clone())],
        body: event.data.clone(),
    }]
}

/// The Slack template's own code, compiled natively and called directly.
fn native_slack(config: &slack::config::Config, event: &Event) -> Vec<Request> {
    let sdk_event = weft_sdk::Event {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        tenant: event.tenant.clone(),
        occurred_at: event.occurred_at,
        content_type: event.content_type.clone(),
        data: event.data.clone(),
        metadata: event.metadata.clone(),
    };
    let body = serde_json::to_vec(&slack::message::message(config, &sdk_event).unwrap()).unwrap();
    vec![Request {
        method: None,
        url: None,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    }]
}

fn compare(
    name: &str,
    event: &Event,
    budget: Duration,
    native: &(dyn Fn(&Event) -> Vec<Request> + Sync),
    plugin: &AttachedPlugin,
) {
    let wasm = |e: &Event| match plugin.invoke(e).outcome {
        Ok(Output::Requests(requests)) => requests,
        other => panic!("{name} failed: {other:?}"),
    };
    assert_eq!(
        wasm(event).iter().map(|r| r.body.len()).sum::<usize>(),
        native(event).iter().map(|r| r.body.len()).sum::<usize>(),
        "{name}: the native baseline must produce the same output"
    );
    for threads in [1, 2] {
        let baseline = measure(threads, budget, event, native);
        let measured = measure(threads, budget, event, &wasm);
        baseline.print(&format!("{name} (native)"), threads, None);
        measured.print(&format!("{name} (wasm)"), threads, Some(&baseline));
    }
}

struct Measurement {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

impl Measurement {
    fn print(&self, name: &str, threads: usize, baseline: Option<&Measurement>) {
        let ratio = baseline.map_or(String::from("1.00x"), |b| {
            format!(
                "{:.2}x",
                self.p50.as_secs_f64() / b.p50.as_secs_f64().max(1e-9)
            )
        });
        println!(
            "{name:<34} {threads:>7} {:>10.2} {:>10.2} {:>12.0} {ratio:>9}",
            micros(self.p50),
            micros(self.p99),
            self.per_second
        );
    }
}

/// Calls `call` on `threads` threads for `budget`, timing every call.
fn measure(
    threads: usize,
    budget: Duration,
    event: &Event,
    call: &(dyn Fn(&Event) -> Vec<Request> + Sync),
) -> Measurement {
    for _ in 0..200 {
        std::hint::black_box(call(event));
    }
    let start = Barrier::new(threads);
    let started = Instant::now();
    let mut samples: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let begun = Instant::now();
                    let mut samples = Vec::with_capacity(1 << 16);
                    while begun.elapsed() < budget {
                        let call_started = Instant::now();
                        std::hint::black_box(call(event));
                        samples.push(call_started.elapsed());
                    }
                    samples
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let wall = started.elapsed();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Measurement {
        p50: at(0.50),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

fn load_times(name: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let timed = |runtime: &PluginRuntime, expected: LoadSource| {
        let started = Instant::now();
        let (_, source) = runtime.load_traced(bytes).unwrap();
        assert_eq!(source, expected, "{name}");
        started.elapsed()
    };
    let cold = timed(&PluginRuntime::new(config()).unwrap(), LoadSource::Compiled);
    let restarted = PluginRuntime::new(config()).unwrap();
    let disk = timed(&restarted, LoadSource::Disk);
    let memory = timed(&restarted, LoadSource::Memory);
    println!(
        "{name:<24} {:>9.1} {:>10.1} {:>10.1} {:>8.3} {:>12.0}x",
        bytes.len() as f64 / 1e6,
        millis(cold),
        millis(disk),
        millis(memory),
        cold.as_secs_f64() / disk.as_secs_f64()
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
