//! `/v1/settings`: the tenant's own settings. Today one: how many days its
//! history (events, deliveries, attempts, audit entries) is kept before it is
//! pruned; without one, the server's `--history-retention-days`.

use super::caller::{Administer, Caller, Read};
use super::error::parse_json;
use super::{ApiError, AppState};
use crate::model::now_millis;
use crate::store::MAX_RETENTION_DAYS;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

/// The body of `PUT /v1/settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsInput {
    /// Days of history kept, 1 to [`MAX_RETENTION_DAYS`]; `null` (or absent):
    /// the server's default.
    #[serde(default)]
    history_retention_days: Option<u32>,
}

/// The settings as the API shows them: the tenant's choice and what applies.
fn view(state: &AppState, chosen: Option<u32>) -> Value {
    json!({
        "history_retention_days": chosen,
        // `null`: kept forever (the server keeps history forever and the
        // tenant chose nothing).
        "effective_history_retention_days": chosen.or(state.history_retention_days),
    })
}

async fn show(
    State(state): State<AppState>,
    caller: Caller<Read>,
) -> Result<Json<Value>, ApiError> {
    let chosen = state.store.history_retention(&caller.tenant).await?;
    Ok(Json(view(&state, chosen)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller<Administer>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let input: SettingsInput = parse_json(&body)?;
    if input
        .history_retention_days
        .is_some_and(|days| days == 0 || days > MAX_RETENTION_DAYS)
    {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "history_retention_days is 1 to {MAX_RETENTION_DAYS} days, or null for the server's default"
            ),
        )
        .at("history_retention_days"));
    }
    let before = state.store.history_retention(&caller.tenant).await?;
    let after = view(&state, input.history_retention_days);
    let audit = caller.audit(
        "settings.update",
        &caller.tenant,
        Some(view(&state, before)),
        Some(after.clone()),
    );
    state
        .store
        .audited(audit)
        .set_history_retention(&caller.tenant, input.history_retention_days, now_millis())
        .await?;
    Ok(Json(after))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/settings", get(show).put(update))
}
