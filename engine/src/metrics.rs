//! What a Weft process counts, for Prometheus: served in the OpenMetrics
//! text format by `weft serve --metrics-listen` (an address of the
//! operator's network, apart from the tenants' API, because the figures span
//! every tenant).
//!
//! Counters and histograms are recorded where things happen (capture, the
//! worker's recorder, plugin invocations, the database's transactions) into
//! the process's one [`Metrics`]; gauges that describe the database's state
//! (queue depth, the oldest due delivery, circuits) are read when scraped.
//! Labels never carry ids of events or deliveries: event types are named
//! only if built in (a tenant's own types count as `custom`), and endpoints
//! appear only in the circuit gauge, one series per endpoint whose circuit
//! is not closed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaptureLabels {
    /// A built-in event type, or `custom`.
    pub event_type: String,
    /// `created`, or `duplicate` (already captured: nothing written).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded`, `failed`, `dropped`, `skipped` (settled), `retried` (an
    /// attempt failed, another comes), `waiting` (held back unattempted).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginErrorLabels {
    pub plugin: String,
    /// `deadline`, `memory`, `trap`, `plugin_error`, `bad_output`, `instantiate`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    pub tenant: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabels {
    /// `events`, `deliveries`, `attempts`, `audit_entries`.
    pub kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of a process.
pub struct Metrics {
    registry: Registry,
    pub events_captured: Family<CaptureLabels, Counter>,
    pub capture_seconds: Histogram,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub request_seconds: Histogram,
    pub attempts_per_delivery: Histogram,
    pub in_flight: Gauge,
    pub queue_depth: Gauge,
    pub oldest_due_seconds: Gauge<f64, AtomicU64>,
    /// 0 closed, 1 open, 2 half-open.
    pub circuit_state: Family<CircuitLabels, Gauge>,
    pub plugin_seconds: Histograms<PluginLabels>,
    pub plugin_errors: Family<PluginErrorLabels, Counter>,
    pub transaction_start_seconds: Histogram,
    pub history_pruned: Family<PrunedLabels, Counter>,
}

/// Latency buckets from 1 ms to about 65 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let metrics = Self {
            events_captured: Family::default(),
            capture_seconds: latency_buckets(),
            deliveries: Family::default(),
            request_seconds: latency_buckets(),
            attempts_per_delivery: Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 50.0]),
            in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            oldest_due_seconds: Gauge::default(),
            circuit_state: Family::default(),
            plugin_seconds: Family::new_with_constructor(latency_buckets as fn() -> Histogram),
            plugin_errors: Family::default(),
            transaction_start_seconds: latency_buckets(),
            history_pruned: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_captured",
            "Events captured, by event type (built-in, else custom) and outcome",
            metrics.events_captured.clone(),
        );
        registry.register(
            "capture_seconds",
            "Time from a publish reaching capture to its events being on disk",
            metrics.capture_seconds.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery outcomes recorded: succeeded, failed, dropped, skipped, retried, waiting",
            metrics.deliveries.clone(),
        );
        registry.register(
            "request_seconds",
            "Time a request to a receiver took, answered or not",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "attempts_per_delivery",
            "Attempts a delivery took, counted when it succeeded or failed for good",
            metrics.attempts_per_delivery.clone(),
        );
        registry.register(
            "deliveries_in_flight",
            "Places taken among this process's deliveries in flight",
            metrics.in_flight.clone(),
        );
        registry.register(
            "queue_depth",
            "Pending deliveries in the queue, every node's",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "oldest_due_delivery_seconds",
            "How long the longest-due pending delivery has been due (0 if none is)",
            metrics.oldest_due_seconds.clone(),
        );
        registry.register(
            "circuit_state",
            "Endpoints whose circuit is not closed: 1 open, 2 half-open",
            metrics.circuit_state.clone(),
        );
        registry.register(
            "plugin_invocation_seconds",
            "Time a plugin invocation took, from instantiation to its checked output",
            metrics.plugin_seconds.clone(),
        );
        registry.register(
            "plugin_errors",
            "Plugin invocations that failed, by plugin and kind",
            metrics.plugin_errors.clone(),
        );
        registry.register(
            "database_transaction_start_seconds",
            "Time to get a database connection from the pool and begin a transaction",
            metrics.transaction_start_seconds.clone(),
        );
        registry.register(
            "history_pruned",
            "Rows of history deleted past their retention, by kind",
            metrics.history_pruned.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
