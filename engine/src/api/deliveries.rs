//! `/v1/deliveries`: the searchable history, each delivery's attempts, replay.

use super::caller::{Caller, Configure, Read};
use super::{ApiError, AppState};
use crate::model::{
    Attempt, DeliveryId, DeliveryStatus, EndpointId, EventId, SubscriptionId, TenantId, now_millis,
};
use crate::store::DeliveryQuery;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    endpoint_id: Option<String>,
    subscription_id: Option<String>,
    event_type: Option<String>,
    event_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
    before: Option<String>,
}

impl ListParams {
    fn into_query(self) -> Result<DeliveryQuery, ApiError> {
        let status = match self.status.as_deref() {
            None => None,
            Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
                ApiError::invalid_query(
                    "status",
                    format!("{text:?} is not one of pending, succeeded, failed, dropped"),
                )
            })?),
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::invalid_query(
                "limit",
                format!("limit is 1 to {MAX_PAGE}"),
            ));
        }
        Ok(DeliveryQuery {
            status,
            endpoint_id: self
                .endpoint_id
                .map(|id| EndpointId::parse(&id))
                .transpose()
                .map_err(|e| ApiError::invalid_query("endpoint_id", e.to_string()))?,
            subscription_id: self
                .subscription_id
                .map(|id| SubscriptionId::parse(&id))
                .transpose()
                .map_err(|e| ApiError::invalid_query("subscription_id", e.to_string()))?,
            event_type: self.event_type,
            event_id: self
                .event_id
                .map(|id| EventId::parse(&id))
                .transpose()
                .map_err(|e| ApiError::invalid_query("event_id", e.to_string()))?,
            since: self.since,
            until: self.until,
            limit,
            before: self
                .before
                .map(|id| DeliveryId::parse(&id))
                .transpose()
                .map_err(|e| ApiError::invalid_query("before", e.to_string()))?,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let query = params.into_query()?;
    let limit = query.limit as usize;
    let deliveries = state.store.list_deliveries(&tenant, &query).await?;
    let next = (deliveries.len() == limit)
        .then(|| deliveries.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(
        json!({ "deliveries": deliveries, "next_before": next }),
    ))
}

async fn find_id(id: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(id).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

async fn show(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = find_id(&id).await?;
    let delivery = state
        .store
        .get_delivery(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", id.as_str()))?;
    let attempts = state.store.list_attempts(&tenant, &id).await?;
    Ok(Json(
        json!({ "delivery": delivery, "attempts": attempts_view(&attempts) }),
    ))
}

/// Attempts as the API shows them, each with its [`Attempt::outcome`].
fn attempts_view(attempts: &[Attempt]) -> Vec<Value> {
    attempts
        .iter()
        .map(|attempt| {
            let mut shown = json!(attempt);
            shown["outcome"] = json!(attempt.outcome());
            shown
        })
        .collect()
}

async fn attempts(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = find_id(&id).await?;
    exists(&state, &tenant, &id).await?;
    let attempts = state.store.list_attempts(&tenant, &id).await?;
    Ok(Json(json!({ "attempts": attempts_view(&attempts) })))
}

async fn exists(state: &AppState, tenant: &TenantId, id: &DeliveryId) -> Result<(), ApiError> {
    match state.store.get_delivery(tenant, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("delivery", id.as_str())),
    }
}

async fn replay(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = find_id(&id).await?;
    let audit = caller.audit("delivery.replay", &id, None, None);
    let delivery = state
        .store
        .audited(audit)
        .replay_delivery(&caller.tenant, &id, now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", id.as_str()))?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery": delivery }))))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/deliveries", get(list))
        .route("/v1/deliveries/{id}", get(show))
        .route("/v1/deliveries/{id}/attempts", get(attempts))
        .route("/v1/deliveries/{id}/replay", post(replay))
}
