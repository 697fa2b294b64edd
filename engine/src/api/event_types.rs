//! `/v1/event-types`: the platform's built-in catalog and each tenant's own types.

use super::caller::{Caller, Configure, Read};
use super::error::parse_json;
use super::{ApiError, AppState};
use crate::model::now_millis;
use crate::store::EventTypeRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTypeInput {
    name: String,
    #[serde(default)]
    description: String,
    schema: Value,
}

async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
) -> Result<Json<Value>, ApiError> {
    let builtin: Vec<Value> = state
        .catalog
        .iter()
        .map(|t| json!({ "name": t.name, "module": t.module.title(), "description": t.description, "builtin": true }))
        .collect();
    let custom: Vec<Value> = state
        .store
        .list_event_types(&tenant)
        .await?
        .into_iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "builtin": false }))
        .collect();
    Ok(Json(
        json!({ "event_types": builtin.into_iter().chain(custom).collect::<Vec<_>>() }),
    ))
}

async fn show(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(builtin) = state.catalog.get(&name) {
        return Ok(Json(json!({
            "name": builtin.name, "module": builtin.module.title(), "description": builtin.description,
            "schema": builtin.schema, "builtin": true
        })));
    }
    // A name no type can have is not looked up.
    let custom = match crate::ingest::validate_event_type(&name) {
        Ok(()) => state.store.get_event_type(&tenant, &name).await?,
        Err(_) => None,
    }
    .ok_or_else(|| ApiError::not_found("event type", &name))?;
    Ok(Json(
        json!({ "name": custom.name, "description": custom.description, "schema": custom.schema, "builtin": false }),
    ))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: EventTypeInput = parse_json(&body)?;
    crate::ingest::validate_event_type(&input.name)
        .map_err(|e| ApiError::unprocessable("invalid_field", e.to_string()).at("name"))?;
    if state.catalog.get(&input.name).is_some() {
        return Err(
            ApiError::conflict(format!("{} is a built-in event type", input.name)).at("name"),
        );
    }
    if input.name.starts_with(crate::ingest::OPERATIONAL_PREFIX) {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "{}: names starting with {} are kept for Weft's own operational events",
                input.name,
                crate::ingest::OPERATIONAL_PREFIX
            ),
        )
        .at("name"));
    }
    crate::schema::JsonSchema::compile(&input.schema)
        .map_err(|e| ApiError::unprocessable("invalid_schema", e.to_string()).at("schema"))?;
    let record = EventTypeRecord {
        name: input.name,
        description: input.description,
        schema: input.schema,
        created_at: now_millis(),
    };
    let audit = caller.audit(
        "event_type.put",
        &record.name,
        None,
        Some(json!({ "name": record.name, "description": record.description, "schema": record.schema })),
    );
    state
        .store
        .audited(audit)
        .put_event_type(&caller.tenant, &record)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": record.name, "builtin": false })),
    ))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/event-types", get(list).post(create))
        .route("/v1/event-types/{name}", get(show))
}
