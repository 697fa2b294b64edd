//! The HTTP API (axum): the only module that knows axum and the JSON wire types.
//!
//! Versioned under `/v1`, one file per resource with its router at the bottom.
//! Every route is tenant-scoped through the [`tenant::Tenant`] extractor; every
//! error is an [`ApiError`] problem document naming the field at fault.

mod body_limit;
mod deliveries;
mod endpoints;
mod error;
mod event_types;
mod events;
mod openapi;
mod plugins;
mod subscriptions;
mod tenant;
mod text;

pub use error::ApiError;
pub use plugins::stored_plugin;

use crate::pipeline::Catalog;
use crate::runtime::PluginRuntime;
use crate::store::{GroupCommit, Store};
use axum::extract::DefaultBodyLimit;
use axum::{Router, middleware};
use std::sync::Arc;
use tokio::sync::Notify;

/// The largest request body accepted: the product sheet's 10 MB payloads plus
/// the envelope around them. Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub plugins: Arc<PluginRuntime>,
    pub catalog: &'static Catalog,
    /// Woken after an ingest so workers pick new deliveries up at once.
    pub wake: Arc<Notify>,
    subscriptions: subscriptions::MatchCache,
    /// Concurrent publishes share transactions.
    capture: GroupCommit,
}

impl AppState {
    /// Must be called within a tokio runtime: it starts the capture tasks.
    pub fn new(store: Store, plugins: Arc<PluginRuntime>, wake: Arc<Notify>) -> Self {
        Self {
            capture: GroupCommit::start(store.clone()),
            store,
            plugins,
            catalog: Catalog::builtin(),
            wake,
            subscriptions: subscriptions::MatchCache::default(),
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/openapi.json", axum::routing::get(openapi::document))
        .merge(events::routes())
        .merge(endpoints::routes())
        .merge(subscriptions::routes())
        .merge(deliveries::routes())
        .merge(event_types::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            MAX_BODY_BYTES,
            body_limit::refuse_declared_oversize,
        ))
        .merge(plugins::routes())
        .with_state(state)
}
