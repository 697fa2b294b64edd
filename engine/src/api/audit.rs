//! `/v1/audit`: the tenant's audit log, for its admins: every change made
//! through the API and every refused access by a known credential.

use super::caller::{Administer, Caller};
use super::{ApiError, AppState};
use crate::model::{AuditId, AuditOutcome};
use crate::store::{AuditQuery, MAX_AUDIT_PAGE};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    action: Option<String>,
    actor: Option<String>,
    object: Option<String>,
    outcome: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<String>,
    limit: Option<u32>,
}

impl ListParams {
    fn into_query(self) -> Result<AuditQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(ApiError::invalid_query(
                "limit",
                format!("limit is 1 to {MAX_AUDIT_PAGE}"),
            ));
        }
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(text) => Some(AuditOutcome::parse(text).ok_or_else(|| {
                ApiError::invalid_query("outcome", format!("{text:?} is not one of done, refused"))
            })?),
        };
        Ok(AuditQuery {
            action: self.action,
            actor: self.actor,
            object: self.object,
            outcome,
            since: self.since,
            until: self.until,
            before: self
                .before
                .map(|id| AuditId::parse(&id))
                .transpose()
                .map_err(|e| ApiError::invalid_query("before", e.to_string()))?,
            limit,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller<Administer>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let query = params.into_query()?;
    let entries = state.store.list_audit(&caller.tenant, &query).await?;
    let next = (entries.len() == query.limit as usize)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_before": next })))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}
