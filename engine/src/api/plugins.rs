//! `/v1/plugins`: upload a component (validated: a component, a known world, a
//! valid config schema), list what a tenant can attach.

use super::caller::{Caller, Configure, Read};
use super::{ApiError, AppState};
use crate::model::{TenantId, now_millis};
use crate::store::StoredPlugin;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};

/// Componentized JavaScript and Python plugins weigh 10–20 MB.
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

async fn upload(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let plugins = state.plugins.clone();
    let bytes = body.clone();
    // Compiling a large component takes seconds of CPU: keep it off the async threads.
    let plugin = tokio::task::spawn_blocking(move || plugins.load(&bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::unprocessable("invalid_plugin", format!("the upload {e}")))?;
    let stored = stored_plugin(Some(caller.tenant.clone()), &plugin, body.to_vec());
    let object = format!("{}@{}", stored.name, stored.version);
    let audit = caller.audit("plugin.upload", object, None, Some(stored.info.clone()));
    state.store.audited(audit).put_plugin(&stored).await?;
    Ok((StatusCode::CREATED, Json(stored.info)))
}

/// A loaded plugin as the store keeps it: `tenant` `None` offers it to everyone.
pub fn stored_plugin(
    tenant: Option<TenantId>,
    plugin: &crate::runtime::Plugin,
    bytes: Vec<u8>,
) -> StoredPlugin {
    StoredPlugin {
        tenant,
        name: plugin.name().to_owned(),
        version: plugin.version().to_owned(),
        world: plugin.world().name().to_owned(),
        digest: plugin.digest().to_owned(),
        bytes,
        info: describe(plugin),
        created_at: now_millis(),
    }
}

fn describe(plugin: &crate::runtime::Plugin) -> Value {
    json!({
        "name": plugin.name(),
        "version": plugin.version(),
        "world": plugin.world().name(),
        "contract": format!("weft:plugin@{}", plugin.contract_version()),
        "description": plugin.description(),
        "config_schema": plugin.config_schema(),
        "digest": format!("sha256:{}", plugin.digest()),
        "size": plugin.size(),
    })
}

async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
) -> Result<Json<Value>, ApiError> {
    let plugins: Vec<Value> = state
        .store
        .list_plugins(&tenant)
        .await?
        .into_iter()
        .map(|p| json!({ "info": p.info, "first_party": p.tenant.is_none() }))
        .collect();
    Ok(Json(json!({ "plugins": plugins })))
}

async fn versions(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions: Vec<Value> = state
        .store
        .list_plugins(&tenant)
        .await?
        .into_iter()
        .filter(|p| p.name == name)
        .map(|p| p.info)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::not_found("plugin", &name));
    }
    Ok(Json(json!({ "name": name, "versions": versions })))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/plugins",
            get(list).post(upload).layer(middleware::from_fn_with_state(
                MAX_PLUGIN_BYTES,
                super::request_limits::read_body,
            )),
        )
        .route("/v1/plugins/{name}", get(versions))
}
