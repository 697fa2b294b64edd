//! `/v1/api-keys`: the keys of the caller's tenant, managed by its admins.
//!
//! A key is shown once, in the response that creates it; afterwards only its
//! hint (last four characters). Keys are revoked, never deleted, so that what
//! they did stays attributable.

use super::caller::{Administer, Caller};
use super::error::parse_json;
use super::{ApiError, AppState};
use crate::auth::{self, AllowedNetworks, Credential};
use crate::model::{ApiKey, ApiKeyId, Role, TenantId, now_millis};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_NAME_CHARS: usize = 200;
const MAX_NETWORKS: usize = 100;
const MAX_INGEST_PER_SECOND: u32 = 1_000_000;

/// What a new key is to be: the body of `POST /v1/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Publish requests a second; without it, the server's default.
    #[serde(default)]
    pub ingest_per_second: Option<u32>,
}

impl NewApiKey {
    /// A key named `name` in `role`, usable from anywhere, at the default rate.
    pub fn new(name: &str, role: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: role.to_owned(),
            allowed_networks: Vec::new(),
            ingest_per_second: None,
        }
    }
}

/// A new key of `tenant`, checked; and the key itself, to show once.
pub fn new_api_key(
    tenant: &TenantId,
    input: NewApiKey,
) -> Result<(ApiKey, auth::IssuedKey), ApiError> {
    let NewApiKey {
        name,
        role,
        allowed_networks,
        ingest_per_second,
    } = input;
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        )
        .at("name"));
    }
    let role = Role::parse(&role)
        .map_err(|e| ApiError::bad_request("invalid_role", e.to_string()).at("role"))?;
    if allowed_networks.len() > MAX_NETWORKS {
        return Err(ApiError::bad_request(
            "invalid_networks",
            format!("at most {MAX_NETWORKS} networks per key"),
        )
        .at("allowed_networks"));
    }
    AllowedNetworks::parse(&allowed_networks)
        .map_err(|e| ApiError::bad_request("invalid_networks", e).at("allowed_networks"))?;
    if ingest_per_second.is_some_and(|rate| rate == 0 || rate > MAX_INGEST_PER_SECOND) {
        return Err(ApiError::bad_request(
            "invalid_rate",
            format!("ingest_per_second is 1 to {MAX_INGEST_PER_SECOND}"),
        )
        .at("ingest_per_second"));
    }
    let issued = auth::issue();
    let key = ApiKey {
        tenant: tenant.clone(),
        id: ApiKeyId::generate(),
        name: name.trim().to_owned(),
        role,
        key_hash: issued.digest.clone(),
        hint: issued.hint.clone(),
        allowed_networks,
        ingest_per_second,
        created_at: now_millis(),
        revoked_at: None,
    };
    Ok((key, issued))
}

fn view(key: &ApiKey) -> Value {
    serde_json::to_value(key).unwrap_or_default()
}

async fn create(
    State(state): State<AppState>,
    caller: Caller<Administer>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (key, issued) = new_api_key(&caller.tenant, parse_json(&body)?)?;
    let audit = caller.audit("api_key.create", &key.id, None, Some(view(&key)));
    state.store.audited(audit).create_api_key(&key).await?;
    let mut shown = view(&key);
    shown["key"] = json!(issued.secret);
    Ok((StatusCode::CREATED, Json(shown)))
}

async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Administer>,
) -> Result<Json<Value>, ApiError> {
    let keys: Vec<Value> = state
        .store
        .list_api_keys(&tenant)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "api_keys": keys })))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller<Administer>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ApiKeyId::parse(&id).map_err(|_| ApiError::not_found("API key", &id))?;
    if caller.principal.credential == Credential::ApiKey(id.clone()) {
        return Err(ApiError::conflict(format!(
            "API key {id} is the key making this request: revoke it with another admin key"
        )));
    }
    let audit = caller.audit("api_key.revoke", &id, None, None);
    let revoked = state
        .store
        .audited(audit)
        .revoke_api_key(&caller.tenant, &id, now_millis())
        .await?;
    state.auth.forget(&revoked.key_hash).await;
    Ok(Json(view(&revoked)))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(revoke))
}
