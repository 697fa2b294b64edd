//! `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events/{id}`: capture.
//!
//! A 202 means the event and its delivery jobs are on disk, written in one
//! transaction. The payload is validated against its type's schema first, and an
//! `Idempotency-Key` (or a client-supplied id) makes a retried publish harmless.

use super::caller::{Caller, Publish, Read};
use super::error::parse_json;
use super::text::check_idempotency_key;
use super::{ApiError, AppState};
use crate::model::{Event, EventId, TenantId, now_millis};
use crate::store::{IngestOutcome, NewEvent};
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
        self.ingest.admit(&caller.principal).map_err(|wait| {
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
    let outcomes = state.capture(&tenant, vec![event]).await?;
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
    let outcomes = state.capture(&tenant, events).await?;
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

fn outcome_json(outcome: &(IngestOutcome, usize)) -> Value {
    match outcome {
        (IngestOutcome::Created(id), deliveries) => json!({ "id": id, "deliveries": deliveries }),
        (IngestOutcome::Duplicate(id), _) => json!({ "id": id, "duplicate": true }),
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

impl AppState {
    /// Validates one published event and turns it into the event Weft stores.
    /// `field` prefixes the names of faulty fields (`events[3].`).
    async fn accept(
        &self,
        tenant: &TenantId,
        published: PublishedEvent,
        field: &str,
    ) -> Result<Event, ApiError> {
        let id = match &published.id {
            Some(id) => EventId::parse(id).map_err(|e| {
                ApiError::bad_request("invalid_id", e.to_string()).at(format!("{field}id"))
            })?,
            None => EventId::generate(),
        };
        if let Some(key) = &published.idempotency_key {
            check_idempotency_key(&format!("{field}idempotency_key"), key)?;
        }
        self.validate_payload(tenant, &published.event_type, &published.data)
            .await
            .map_err(|e| {
                let at = if e.code == "unknown_event_type" {
                    "type"
                } else {
                    "data"
                };
                e.at(format!("{field}{at}"))
            })?;
        let received_at = now_millis();
        Ok(Event {
            id,
            tenant: tenant.clone(),
            event_type: published.event_type,
            occurred_at: published.occurred_at.unwrap_or(received_at),
            received_at,
            idempotency_key: published.idempotency_key,
            payload: published.data.into(),
            metadata: published.metadata,
        })
    }

    /// The type must be in the built-in catalog or one of the tenant's own, and
    /// the payload must satisfy its schema.
    pub(crate) async fn validate_payload(
        &self,
        tenant: &TenantId,
        event_type: &str,
        payload: &Value,
    ) -> Result<(), ApiError> {
        let violations = if self.catalog.get(event_type).is_some() {
            match self.catalog.validate(event_type, payload) {
                Ok(()) => None,
                Err(crate::pipeline::PayloadError::Invalid { violations, .. }) => Some(violations),
                Err(other) => return Err(ApiError::internal(other.to_string())),
            }
        } else if let Some(custom) = self.custom_event_type(tenant, event_type).await? {
            let schema = crate::schema::JsonSchema::compile(&custom.schema)
                .map_err(|e| ApiError::internal(format!("stored schema of {event_type}: {e}")))?;
            schema.validate(payload).err()
        } else {
            return Err(ApiError::unprocessable(
                "unknown_event_type",
                format!(
                    "{event_type:?} is not a known event type; see GET /v1/event-types or add it with POST /v1/event-types"
                ),
            ));
        };
        match violations {
            None => Ok(()),
            Some(violations) => Err(ApiError::unprocessable(
                "schema_violation",
                format!("the payload does not match the schema of {event_type}: {violations}"),
            )
            .with_errors(violations.violations)),
        }
    }

    /// The tenant's own type of that name; a name no type can have is not looked up.
    pub(super) async fn custom_event_type(
        &self,
        tenant: &TenantId,
        event_type: &str,
    ) -> Result<Option<crate::store::EventTypeRecord>, ApiError> {
        if crate::pipeline::validate_event_type(event_type).is_err() {
            return Ok(None);
        }
        Ok(self.store.get_event_type(tenant, event_type).await?)
    }

    /// Matches the events to the tenant's subscriptions and writes events and
    /// deliveries in one transaction. Returns each event's outcome and how many
    /// deliveries it got.
    async fn capture(
        &self,
        tenant: &TenantId,
        events: Vec<Event>,
    ) -> Result<Vec<(IngestOutcome, usize)>, ApiError> {
        let subscriptions = self.subscriptions.for_tenant(&self.store, tenant).await?;
        let batch: Vec<NewEvent> = events
            .into_iter()
            .map(|event| {
                let deliveries = subscriptions.deliveries_for(&event);
                NewEvent { event, deliveries }
            })
            .collect();
        let counts: Vec<usize> = batch.iter().map(|e| e.deliveries.len()).collect();
        let outcomes = self.capture.insert_events(batch).await?;
        if counts.iter().any(|&n| n > 0) {
            self.wake.notify_waiters();
        }
        Ok(outcomes.into_iter().zip(counts).collect())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(publish))
        .route("/v1/events/batch", post(publish_batch))
        .route("/v1/events/{id}", get(get_event))
}
