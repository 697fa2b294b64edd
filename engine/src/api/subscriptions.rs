//! `/v1/subscriptions`: which events go to which endpoint, filtered and
//! transformed how; and `POST /v1/subscriptions/{id}/preview`.
//!
//! A subscription is checked whole before it is stored: patterns, the CEL filter,
//! the payload template, the ordering key, and each plugin's config against the
//! schema the plugin declares. Any fault is a 422 naming the field.

use super::caller::{Caller, Configure, Read};
use super::error::parse_json;
use super::events::PublishedEvent;
use super::pages::{PageParams, page_json};
use super::{ApiError, AppState};
use crate::ingest::{subscribes_to, validate_pattern};
use crate::model::{
    Batching, Pause, PluginRef, Subscription, SubscriptionId, TenantId, now_millis,
};
use crate::pipeline::chain::{ChainBuildError, SubscriptionChain};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Batches hold at most this many events, and wait at most this long.
const MAX_BATCH_EVENTS: u32 = 1000;
const MAX_BATCH_WAIT_MS: u32 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionInput {
    name: String,
    endpoint_id: String,
    event_types: Vec<String>,
    filter: Option<String>,
    template: Option<Value>,
    #[serde(default)]
    plugins: Vec<PluginRef>,
    batching: Option<Batching>,
    ordering_key: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A subscription as the API shows it (and the audit log keeps it): its
/// fields, and where it stands: `active`, `paused` (a plugin reported its
/// configuration wrong; deliveries are held until it is resumed) or `disabled`.
#[derive(Serialize)]
struct SubscriptionView<'a> {
    #[serde(flatten)]
    subscription: &'a Subscription,
    status: &'static str,
}

fn view(subscription: &Subscription) -> Value {
    let status = match (&subscription.paused, subscription.enabled) {
        (Some(_), _) => "paused",
        (None, false) => "disabled",
        (None, true) => "active",
    };
    serde_json::to_value(SubscriptionView {
        subscription,
        status,
    })
    .unwrap_or_default()
}

async fn create(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: SubscriptionInput = parse_json(&body)?;
    let now = now_millis();
    let subscription = state
        .checked(
            &caller.tenant,
            input,
            SubscriptionId::generate(),
            now,
            now,
            None,
        )
        .await?;
    let audit = caller.audit(
        "subscription.create",
        &subscription.id,
        None,
        Some(view(&subscription)),
    );
    state
        .store
        .audited(audit)
        .create_subscription(&subscription)
        .await
        .map_err(endpoint_field)?;
    state.ingest.subscriptions_changed(&caller.tenant);
    Ok((StatusCode::CREATED, Json(view(&subscription))))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let existing = find(&state, &caller.tenant, &id).await?;
    let input: SubscriptionInput = parse_json(&body)?;
    let before = view(&existing);
    let subscription = state
        .checked(
            &caller.tenant,
            input,
            existing.id,
            existing.created_at,
            now_millis(),
            existing.paused,
        )
        .await?;
    let audit = caller.audit(
        "subscription.update",
        &subscription.id,
        Some(before),
        Some(view(&subscription)),
    );
    state
        .store
        .audited(audit)
        .update_subscription(&subscription)
        .await
        .map_err(endpoint_field)?;
    state.ingest.subscriptions_changed(&caller.tenant);
    Ok(Json(view(&subscription)))
}

async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = params.page(SubscriptionId::parse)?;
    let subscriptions = state.store.list_subscriptions(&tenant, page).await?;
    let shown: Vec<Value> = subscriptions.iter().map(view).collect();
    Ok(Json(page_json("subscriptions", shown, page)))
}

async fn show(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &tenant, &id)
        .await
        .map(|subscription| Json(view(&subscription)))
}

/// Resumes a subscription a plugin paused, and releases its held deliveries:
/// for after its configuration (or its plugin) has been fixed.
async fn resume(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let subscription = find(&state, &caller.tenant, &id).await?;
    let resumed = Subscription {
        paused: None,
        ..subscription.clone()
    };
    let audit = caller.audit(
        "subscription.resume",
        &subscription.id,
        Some(view(&subscription)),
        Some(view(&resumed)),
    );
    state
        .store
        .audited(audit)
        .resume_subscription(&caller.tenant, &subscription.id, now_millis())
        .await?;
    state.ingest.subscriptions_changed(&caller.tenant);
    state.wake.notify_waiters();
    Ok(Json(view(&resumed)))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subscription = find(&state, &caller.tenant, &id).await?;
    let audit = caller.audit(
        "subscription.delete",
        &subscription.id,
        Some(view(&subscription)),
        None,
    );
    state
        .store
        .audited(audit)
        .delete_subscription(&caller.tenant, &subscription.id)
        .await?;
    state.ingest.subscriptions_changed(&caller.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a sample event through the subscription's chain and shows each step's
/// output. Nothing is stored or delivered.
async fn preview(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let subscription = find(&state, &tenant, &id).await?;
    let published: PublishedEvent = parse_json(&body)?;
    let event = state.accept(&tenant, published, "").await?;
    if !subscribes_to(&subscription, &event.event_type) {
        return Ok(Json(serde_json::json!({
            "matched": false,
            "steps": [],
            "outcome": { "dropped": format!("{} matches none of {:?}", event.event_type, subscription.event_types) }
        })));
    }
    let chain = SubscriptionChain::build(&subscription, &state.store, &state.plugins)
        .await
        .map_err(chain_field)?;
    let report = chain.preview(&state.plugins, &event).await;
    Ok(Json(
        serde_json::json!({ "matched": true, "steps": report.steps, "outcome": report.outcome }),
    ))
}

async fn find(state: &AppState, tenant: &TenantId, id: &str) -> Result<Subscription, ApiError> {
    let id = SubscriptionId::parse(id)
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    state
        .store
        .get_subscription(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", id.as_str()))
}

fn endpoint_field(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::NotFound { kind, id } => {
            ApiError::unprocessable("unknown_endpoint", format!("no {kind} {id} in this tenant"))
                .at("endpoint_id")
        }
        other => other.into(),
    }
}

fn chain_field(error: ChainBuildError) -> ApiError {
    ApiError::unprocessable(error.code, error.message).at(error.field)
}

impl AppState {
    /// Checks every part of a subscription before anything is stored.
    async fn checked(
        &self,
        tenant: &TenantId,
        input: SubscriptionInput,
        id: SubscriptionId,
        created_at: i64,
        updated_at: i64,
        paused: Option<Pause>,
    ) -> Result<Subscription, ApiError> {
        super::text::check_name("name", &input.name)?;
        let endpoint_id = crate::model::EndpointId::parse(&input.endpoint_id)
            .map_err(|e| ApiError::unprocessable("invalid_id", e.to_string()).at("endpoint_id"))?;
        if input.event_types.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "list at least one event type or pattern (`*` for all)",
            )
            .at("event_types"));
        }
        for (index, pattern) in input.event_types.iter().enumerate() {
            validate_pattern(pattern).map_err(|e| {
                ApiError::unprocessable("invalid_pattern", e.to_string())
                    .at(format!("event_types[{index}]"))
            })?;
        }
        if let Some(batching) = &input.batching
            && (batching.max_events == 0
                || batching.max_events > MAX_BATCH_EVENTS
                || batching.max_wait_ms > MAX_BATCH_WAIT_MS)
        {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("batching takes 1 to {MAX_BATCH_EVENTS} events and at most {MAX_BATCH_WAIT_MS} ms"),
            )
            .at("batching"));
        }
        // Ordering holds a key's next delivery back until the one before it
        // settles; a batch sends many at once and settles them together. Rather
        // than a half-kept promise of either, a subscription chooses one.
        if input.batching.is_some() && input.ordering_key.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_combination",
                "a subscription either batches its deliveries or orders them by key, not both: \
                 drop batching or ordering_key",
            )
            .at("batching"));
        }
        let subscription = Subscription {
            id,
            tenant: tenant.clone(),
            name: input.name,
            endpoint_id,
            event_types: input.event_types,
            filter: input.filter,
            template: input.template,
            plugins: input.plugins,
            batching: input.batching,
            ordering_key: input.ordering_key,
            enabled: input.enabled,
            paused,
            created_at,
            updated_at,
        };
        // Compiles the filter, template and ordering key and attaches every plugin
        // (loading it and validating its config): the same work a worker does.
        SubscriptionChain::build(&subscription, &self.store, &self.plugins)
            .await
            .map_err(chain_field)?;
        Ok(subscription)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/subscriptions", post(create).get(list))
        .route(
            "/v1/subscriptions/{id}",
            get(show).put(update).delete(delete),
        )
        .route("/v1/subscriptions/{id}/preview", post(preview))
        .route("/v1/subscriptions/{id}/resume", post(resume))
}
