//! The HTTP API (axum): the only module that knows axum and the JSON wire types.
//!
//! Versioned under `/v1`, one file per resource with its router at the bottom.
//! Every `/v1` route is authenticated, and each handler is tenant-scoped
//! through the [`caller::Caller`] extractor, which names the access it needs;
//! every error is an [`ApiError`] problem document naming the field at fault.

mod api_keys;
mod audit;
mod caller;
mod connections;
mod deliveries;
mod endpoint_health;
mod endpoints;
mod error;
mod event_types;
mod events;
mod metrics;
mod openapi;
mod pages;
mod plugins;
mod request_id;
mod request_limits;
mod settings;
mod subscriptions;
mod text;

pub use api_keys::{NewApiKey, new_api_key};
pub use connections::{
    ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_PEER, DEFAULT_REQUEST_HEAD_TIMEOUT,
    connections_that_fit, serve,
};
pub use error::ApiError;
pub use metrics::{metrics_router, serve_metrics};
pub use plugins::stored_plugin;

use crate::auth::{Authenticator, DEFAULT_INGEST_PER_SECOND, IngestLimits, TokenIssuer};
use crate::ingest::{Catalog, Ingest};
use crate::runtime::PluginRuntime;
use crate::store::Store;
use axum::extract::DefaultBodyLimit;
use axum::{Router, middleware};
use std::sync::Arc;
use tokio::sync::Notify;

/// The largest request body accepted: the product sheet's 10 MB, as
/// 10,000,000 bytes. Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 10_000_000;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub plugins: Arc<PluginRuntime>,
    pub catalog: &'static Catalog,
    /// Woken when deliveries become due (replays), so workers take them at once.
    pub wake: Arc<Notify>,
    /// Turns each request's credential into its caller.
    pub auth: Arc<Authenticator>,
    /// How fast each credential may publish.
    publish_limits: Arc<IngestLimits>,
    /// Where published events are checked and captured.
    pub ingest: Ingest,
    /// What deliveries may do (plain http, unverified TLS), so that an
    /// endpoint that could never be delivered to is refused when it is saved.
    pub network: crate::delivery::NetworkPolicy,
    /// Days of history kept for a tenant that chose none (`None`: forever).
    pub history_retention_days: Option<u32>,
}

impl AppState {
    /// Captures through `ingest`, whose wake the API notifies too when it
    /// makes deliveries due (replays, recoveries).
    pub fn new(store: Store, plugins: Arc<PluginRuntime>, ingest: Ingest) -> Self {
        let wake = ingest.wake();
        Self {
            auth: Arc::new(Authenticator::new(store.clone(), None)),
            publish_limits: Arc::new(IngestLimits::new(DEFAULT_INGEST_PER_SECOND)),
            store,
            plugins,
            catalog: ingest.catalog(),
            ingest,
            wake,
            network: crate::delivery::NetworkPolicy::default(),
            history_retention_days: Some(crate::store::DEFAULT_RETENTION_DAYS),
        }
    }

    /// Keeps history `days` for tenants that chose no retention of their own
    /// (`None`: forever), as the server's pruning does.
    pub fn keeping_history_for(mut self, days: Option<u32>) -> Self {
        self.history_retention_days = days;
        self
    }

    /// Checks endpoints against the `policy` deliveries run under.
    pub fn delivering_under(mut self, policy: crate::delivery::NetworkPolicy) -> Self {
        self.network = policy;
        self
    }

    /// Lets credentials without a rate of their own publish `per_second`
    /// requests a second.
    pub fn limiting_ingest(mut self, per_second: u32) -> Self {
        self.publish_limits = Arc::new(IngestLimits::new(per_second));
        self
    }

    /// Also accepts the bearer tokens of `issuer`.
    pub fn trusting(mut self, issuer: TokenIssuer) -> Self {
        self.auth = Arc::new(Authenticator::new(self.store.clone(), Some(issuer)));
        self
    }
}

/// The whole API. Serve it with its peers' addresses
/// (`into_make_service_with_connect_info::<SocketAddr>()`): keys limited to
/// some networks are refused without them.
pub fn router(state: AppState) -> Router {
    // Bodies are read by `read_body`, under the size limit of their route.
    let authenticated = Router::new()
        .merge(events::routes())
        .merge(endpoints::routes())
        .merge(endpoint_health::routes())
        .merge(subscriptions::routes())
        .merge(deliveries::routes())
        .merge(event_types::routes())
        .merge(api_keys::routes())
        .merge(audit::routes())
        .merge(settings::routes())
        .layer(middleware::from_fn_with_state(
            MAX_BODY_BYTES,
            request_limits::read_body,
        ))
        .merge(plugins::routes())
        .layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            caller::authenticate,
        ));
    Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/openapi.json", axum::routing::get(openapi::document))
        .merge(authenticated)
        .layer(middleware::from_fn(
            request_limits::refuse_oversized_headers,
        ))
        .layer(middleware::from_fn(request_limits::bound_and_explain))
        .layer(middleware::from_fn(request_id::identify))
        .with_state(state)
}
