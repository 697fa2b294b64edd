//! `GET /metrics`: the process's metrics (see [`crate::metrics`]) for
//! Prometheus, served on an address of its own (`weft serve
//! --metrics-listen`), apart from the tenants' API: the figures span every
//! tenant, so they are for the operator's network, not for API keys.

use crate::delivery::Throttle;
use crate::health::CircuitState;
use crate::metrics::{CONTENT_TYPE, CircuitLabels, metrics};
use crate::model::now_millis;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The most endpoints the circuit gauge shows, so that a scrape stays small
/// whatever happens to a tenant's receivers.
const MAX_CIRCUIT_SERIES: usize = 10_000;

/// What a scrape reads besides the counters.
#[derive(Clone)]
struct Sources {
    store: Store,
    throttle: Arc<Throttle>,
}

/// The metrics server's routes: `GET /metrics`.
pub fn metrics_router(store: Store, throttle: Arc<Throttle>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Sources { store, throttle })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(sources): State<Sources>) -> Response {
    if let Err(error) = refresh(&sources).await {
        tracing::warn!(%error, "metrics: cannot read the queue or the circuits");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the database: {error}\n"),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().encode()).into_response()
}

/// Sets the gauges that describe the database and the process now.
async fn refresh(sources: &Sources) -> Result<(), crate::store::StoreError> {
    let metrics = metrics();
    let now = now_millis();
    let (depth, oldest_due) = sources.store.queue_stats(now).await?;
    metrics
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    let waited_ms = oldest_due.map_or(0, |due| now.saturating_sub(due).max(0));
    metrics.oldest_due_seconds.set(waited_ms as f64 / 1_000.0);
    metrics
        .in_flight
        .set(i64::try_from(sources.throttle.in_flight()).unwrap_or(i64::MAX));
    let circuits = sources.store.open_circuits().await?;
    metrics.circuit_state.clear();
    for (tenant, endpoint, state) in circuits.into_iter().take(MAX_CIRCUIT_SERIES) {
        let value = match state {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        };
        metrics
            .circuit_state
            .get_or_create(&CircuitLabels {
                tenant: tenant.to_string(),
                endpoint: endpoint.to_string(),
            })
            .set(value);
    }
    Ok(())
}
