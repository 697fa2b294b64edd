//! An endpoint's health (see [`crate::health`]) in its view, and what an
//! administrator does about it: `POST /v1/endpoints/{id}/disable`, `/enable`
//! and `/recover?since=…`, which delivers, in capture order, what the
//! endpoint skipped while it was disabled.

use super::caller::{Caller, Configure, actor};
use super::endpoints::{find, view};
use super::error::parse_optional_json;
use super::{ApiError, AppState};
use crate::health::{self, EndpointHealth, HealthState};
use crate::model::{Endpoint, EndpointId, TenantId, UnixMillis, now_millis};
use axum::extract::{Path, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

/// The longest reason an administrator may give for disabling an endpoint.
const MAX_REASON_BYTES: usize = 1_000;

/// `endpoints` of `tenant` as the API shows them, each with its health.
pub(super) async fn views_with_health(
    state: &AppState,
    tenant: &TenantId,
    endpoints: &[Endpoint],
) -> Result<Vec<(Value, HealthState)>, ApiError> {
    let now = now_millis();
    let ids: Vec<_> = endpoints
        .iter()
        .map(|endpoint| (endpoint.id.clone(), endpoint.enabled))
        .collect();
    let healths = state.store.endpoint_health(tenant, &ids, now).await?;
    Ok(endpoints
        .iter()
        .zip(healths)
        .map(|(endpoint, health)| (with_health(endpoint, &health, now), health.state))
        .collect())
}

fn with_health(endpoint: &Endpoint, health: &EndpointHealth, now: UnixMillis) -> Value {
    let mut shown = view(endpoint);
    shown["health"] = health.view(now);
    shown
}

/// The `health` filter of the endpoint list.
pub(super) fn parse_state(text: &str) -> Result<HealthState, ApiError> {
    HealthState::parse(text).ok_or_else(|| {
        let states: Vec<&str> = HealthState::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::invalid_query(
            "health",
            format!(
                "{text:?} is not a health state: one of {}",
                states.join(", ")
            ),
        )
    })
}

async fn disable(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Disabling {
        reason: Option<String>,
    }
    let endpoint = find(&state, &caller.tenant, &id).await?;
    let disabling: Disabling = parse_optional_json(&body)?;
    let reason = disabling
        .reason
        .unwrap_or_else(|| "disabled by an administrator".to_owned());
    if reason.len() > MAX_REASON_BYTES || reason.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("the reason is 1 to {MAX_REASON_BYTES} bytes of text"),
        )
        .at("reason"));
    }
    let audit = caller.audit(
        "endpoint.disable",
        &endpoint.id,
        Some(json!({ "enabled": endpoint.enabled })),
        Some(json!({ "enabled": false, "disabled_reason": reason })),
    );
    let disabled = state
        .store
        .audited(audit)
        .disable_endpoint(&caller.tenant, &endpoint.id, &reason, now_millis())
        .await?;
    if disabled {
        announce_disabled(&state, &caller, &endpoint.id).await?;
    }
    let endpoint = find(&state, &caller.tenant, &id).await?;
    shown(&state, &caller.tenant, endpoint).await
}

/// Publishes `weft.endpoint.disabled` for endpoint `id`, which `caller`
/// disabled.
pub(super) async fn announce_disabled<N: super::caller::Needs>(
    state: &AppState,
    caller: &Caller<N>,
    id: &EndpointId,
) -> Result<(), ApiError> {
    let endpoint = find(state, &caller.tenant, id.as_str()).await?;
    let event = health::endpoint_disabled_event(
        &endpoint,
        &actor(&caller.principal.credential),
        now_millis(),
    );
    state
        .ingest
        .publish_operational(&caller.tenant, health::ENDPOINT_DISABLED, event)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(())
}

async fn enable(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = find(&state, &caller.tenant, &id).await?;
    let audit = caller.audit(
        "endpoint.enable",
        &endpoint.id,
        Some(json!({ "enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason })),
        Some(json!({ "enabled": true })),
    );
    if state
        .store
        .audited(audit)
        .enable_endpoint(&caller.tenant, &endpoint.id, now_millis())
        .await?
    {
        state.wake.notify_waiters();
    }
    let endpoint = find(&state, &caller.tenant, &id).await?;
    shown(&state, &caller.tenant, endpoint).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovery {
    /// Unix milliseconds or an RFC 3339 time: only deliveries captured then
    /// or later. All the skipped ones if absent.
    since: Option<String>,
}

async fn recover(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    Query(recovery): Query<Recovery>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = find(&state, &caller.tenant, &id).await?;
    let since = recovery
        .since
        .as_deref()
        .map(|text| parse_instant(text).map_err(|detail| ApiError::invalid_query("since", detail)))
        .transpose()?;
    if !endpoint.enabled {
        return Err(ApiError::conflict(format!(
            "endpoint {} is disabled: enable it first (POST /v1/endpoints/{}/enable), \
             then recover what it skipped",
            endpoint.id, endpoint.id
        )));
    }
    let audit = caller.audit(
        "endpoint.recover",
        &endpoint.id,
        None,
        Some(json!({ "since": since })),
    );
    let recovered = state
        .store
        .audited(audit)
        .recover_skipped(&caller.tenant, &endpoint.id, since, now_millis())
        .await?;
    if recovered > 0 {
        state.wake.notify_waiters();
    }
    Ok(Json(json!({ "recovered": recovered, "since": since })))
}

/// `endpoint` with its health.
async fn shown(
    state: &AppState,
    tenant: &TenantId,
    endpoint: Endpoint,
) -> Result<Json<Value>, ApiError> {
    let mut views = views_with_health(state, tenant, std::slice::from_ref(&endpoint)).await?;
    Ok(Json(views.remove(0).0))
}

/// A time given as unix milliseconds or RFC 3339.
fn parse_instant(text: &str) -> Result<UnixMillis, String> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|error| {
            format!("{text:?} is neither unix milliseconds nor an RFC 3339 time: {error}")
        })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/endpoints/{id}/disable", post(disable))
        .route("/v1/endpoints/{id}/enable", post(enable))
        .route("/v1/endpoints/{id}/recover", post(recover))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_unix_milliseconds_or_rfc3339() {
        assert_eq!(parse_instant("1800000000000"), Ok(1_800_000_000_000));
        assert_eq!(parse_instant("2027-01-15T08:00:00Z"), Ok(1_800_000_000_000));
        assert_eq!(
            parse_instant("2027-01-15T09:00:00+01:00"),
            Ok(1_800_000_000_000)
        );
        let error = parse_instant("yesterday").unwrap_err();
        assert!(error.contains("\"yesterday\""), "{error}");
    }
}
