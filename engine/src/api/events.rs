//! `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events/{id}`: capture.
//!
//! Parses publications and answers them; [`crate::ingest`] checks and
//! captures them. A 202 means the event and its delivery jobs are on disk,
//! written in one transaction. An `Idempotency-Key` (or a client-supplied id)
//! makes a retried publish harmless.

use super::caller::{Caller, Publish, Read};
use super::error::parse_json;
use super::text::check_idempotency_key;
use super::{ApiError, AppState};
use crate::ingest::{Captured, IngestError, Publication};
use crate::model::{Event, EventId, TenantId};
use crate::store::{IngestOutcome, StoreError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Events in one batch request, at most.
pub const MAX_BATCH_EVENTS: usize = 1000;
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// An event as a publisher sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedEvent {
    /// Optional: a publisher-chosen `evt_…` id deduplicates like an idempotency key.
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix milliseconds; defaults to the time Weft receives it.
    pub occurred_at: Option<i64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub data: Value,
    /// Per-event idempotency key inside a batch.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedBatch {
    events: Vec<PublishedEvent>,
}

impl AppState {
    /// Takes one publish from the caller's allowance (429 with `Retry-After`
    /// when it is spent) and returns the tenant to publish for.
    fn admit(&self, caller: Caller<Publish>) -> Result<TenantId, ApiError> {
        self.publish_limits
            .admit(&caller.principal)
            .map_err(|wait| {
                ApiError::too_many_requests(
                    format!(
                        "{} publishes faster than it may: try again in {} ms",
                        caller.principal.credential,
                        wait.as_millis()
                    ),
                    wait,
                )
            })?;
        Ok(caller.tenant)
    }
}

async fn publish(
    State(state): State<AppState>,
    caller: Caller<Publish>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = state.admit(caller)?;
    let mut published: PublishedEvent = parse_json(&body)?;
    if published.idempotency_key.is_none() {
        published.idempotency_key = idempotency_header(&headers)?;
    }
    let event = state.accept(&tenant, published, "").await?;
    let outcomes = state.capture(&tenant, vec![event], Shape::Single).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome_json(&outcomes[0]))))
}

async fn publish_batch(
    State(state): State<AppState>,
    caller: Caller<Publish>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = state.admit(caller)?;
    let batch: PublishedBatch = parse_json(&body)?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::unprocessable(
            "invalid_batch",
            format!(
                "a batch holds 1 to {MAX_BATCH_EVENTS} events, this one {}",
                batch.events.len()
            ),
        )
        .at("events"));
    }
    let mut events = Vec::with_capacity(batch.events.len());
    for (index, published) in batch.events.into_iter().enumerate() {
        events.push(
            state
                .accept(&tenant, published, &format!("events[{index}]."))
                .await?,
        );
    }
    let outcomes = state.capture(&tenant, events, Shape::Batch).await?;
    let results: Vec<Value> = outcomes.iter().map(outcome_json).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "events": results }))))
}

async fn get_event(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    let id = EventId::parse(&id).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    state
        .store
        .get_event(&tenant, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("event", id.as_str()))
}

fn outcome_json(captured: &Captured) -> Value {
    match &captured.outcome {
        IngestOutcome::Created(id) => json!({ "id": id, "deliveries": captured.deliveries }),
        IngestOutcome::Duplicate(id) => json!({ "id": id, "duplicate": true }),
    }
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    // Header values are visible ASCII or arbitrary bytes; only the former is a key.
    let key = value.to_str().unwrap_or("\0");
    check_idempotency_key(IDEMPOTENCY_HEADER, key)?;
    Ok(Some(key.to_owned()))
}

impl PublishedEvent {
    /// The publication, its id and idempotency key checked. `field` prefixes
    /// the names of faulty fields (`events[3].`).
    pub(super) fn parsed(self, field: &str) -> Result<Publication, ApiError> {
        let id = self
            .id
            .map(|id| {
                EventId::parse(&id).map_err(|e| {
                    ApiError::bad_request("invalid_id", e.to_string()).at(format!("{field}id"))
                })
            })
            .transpose()?;
        if let Some(key) = &self.idempotency_key {
            check_idempotency_key(&format!("{field}idempotency_key"), key)?;
        }
        Ok(Publication {
            id,
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            metadata: self.metadata,
            data: self.data,
            idempotency_key: self.idempotency_key,
        })
    }
}

impl AppState {
    /// Checks one publication and makes it an event, naming faulty fields
    /// with the prefix `field`.
    pub(super) async fn accept(
        &self,
        tenant: &TenantId,
        published: PublishedEvent,
        field: &str,
    ) -> Result<Event, ApiError> {
        let publication = published.parsed(field)?;
        self.ingest
            .accept(tenant, publication)
            .await
            .map_err(|error| ingest_error(error, field))
    }

    async fn capture(
        &self,
        tenant: &TenantId,
        events: Vec<Event>,
        shape: Shape,
    ) -> Result<Vec<Captured>, ApiError> {
        self.ingest
            .capture(tenant, events)
            .await
            .map_err(|error| match error {
                IngestError::Store(StoreError::Repeated { index, .. }) => {
                    let problem = ApiError::idempotency_conflict(error.to_string());
                    match shape {
                        Shape::Batch => problem.at(format!("events[{index}]")),
                        Shape::Single => problem,
                    }
                }
                other => ingest_error(other, ""),
            })
    }
}

/// Whether a capture is one event or a batch: errors name a batch's events.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Single,
    Batch,
}

/// The problem document of a refused publication; `field` prefixes the name
/// of the field at fault.
fn ingest_error(error: IngestError, field: &str) -> ApiError {
    let detail = error.to_string();
    match error {
        IngestError::UnknownEventType(_) => {
            ApiError::unprocessable("unknown_event_type", detail).at(format!("{field}type"))
        }
        IngestError::SchemaViolation { violations, .. } => {
            ApiError::unprocessable("schema_violation", detail)
                .with_errors(violations.violations)
                .at(format!("{field}data"))
        }
        IngestError::ReservedEventType(_) => {
            ApiError::unprocessable("reserved_event_type", detail).at(format!("{field}type"))
        }
        IngestError::BrokenSchema { .. } => ApiError::internal(detail),
        IngestError::Store(error) => error.into(),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(publish))
        .route("/v1/events/batch", post(publish_batch))
        .route("/v1/events/{id}", get(get_event))
}
