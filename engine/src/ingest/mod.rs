//! Capture: how a published event enters Weft. The mirror of [`crate::worker`],
//! which takes deliveries out.
//!
//! [`Ingest::accept`] checks a publication against its event type (the
//! built-in [`Catalog`] or one of the tenant's own types) and makes it an
//! [`Event`]; [`Ingest::capture`] matches events to the tenant's enabled
//! subscriptions ([`routing`]), builds their pending deliveries, writes events
//! and deliveries in one transaction (shared with concurrent publishes by
//! [`GroupCommit`]) and wakes the workers. The HTTP API only parses requests
//! and answers them; the subscription preview builds its event here too.

mod catalog;
mod matching;
mod routing;

pub use catalog::{Catalog, CatalogError, EventTypeDef, Module, PayloadError};
pub use matching::{
    EventTypeError, MAX_EVENT_TYPE_LEN, OPERATIONAL_PREFIX, PatternError, pattern_matches,
    validate_event_type, validate_pattern,
};
pub use routing::subscribes_to;

use crate::metrics::CaptureLabels;
use crate::model::{Event, EventId, TenantId, now_millis};
use crate::schema::{JsonSchema, SchemaViolations};
use crate::store::{GroupCommit, IngestOutcome, NewEvent, Store, StoreError};
use routing::SubscriptionsByTenant;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::Instrument;

/// An event as its publisher described it, already parsed.
#[derive(Debug, Clone)]
pub struct Publication {
    /// A publisher-chosen id, which deduplicates like an idempotency key.
    pub id: Option<EventId>,
    pub event_type: String,
    /// Unix milliseconds; defaults to the time Weft receives it.
    pub occurred_at: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub data: serde_json::Value,
    pub idempotency_key: Option<String>,
}

/// Why a publication is refused, or could not be captured.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "{0:?} is not a known event type; see GET /v1/event-types or add it with POST /v1/event-types"
    )]
    UnknownEventType(String),
    #[error("the payload does not match the schema of {event_type}: {violations}")]
    SchemaViolation {
        event_type: String,
        violations: SchemaViolations,
    },
    /// A tenant's own event type whose stored schema no longer compiles.
    #[error("the stored schema of {event_type} cannot be used: {reason}")]
    BrokenSchema { event_type: String, reason: String },
    #[error(
        "{0:?} is one of Weft's own operational event types (weft.*), which only Weft publishes"
    )]
    ReservedEventType(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of one captured event, and how many deliveries it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub outcome: IngestOutcome,
    pub deliveries: usize,
}

/// The capture path of one process; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    catalog: &'static Catalog,
    subscriptions: SubscriptionsByTenant,
    capture: GroupCommit,
    /// Woken after a capture that made deliveries, so workers take them at once.
    wake: Arc<Notify>,
}

impl Ingest {
    /// Must be called within a tokio runtime: it starts the capture tasks.
    pub fn new(store: Store, wake: Arc<Notify>) -> Self {
        Self {
            capture: GroupCommit::start(store.clone()),
            store,
            catalog: Catalog::builtin(),
            subscriptions: SubscriptionsByTenant::default(),
            wake,
        }
    }

    /// What wakes the workers when deliveries become due.
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The built-in event types.
    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    /// Checks `publication` against its event type and makes it the event
    /// Weft stores, received now.
    pub async fn accept(
        &self,
        tenant: &TenantId,
        publication: Publication,
    ) -> Result<Event, IngestError> {
        if publication.event_type.starts_with(OPERATIONAL_PREFIX) {
            return Err(IngestError::ReservedEventType(publication.event_type));
        }
        self.validate_payload(tenant, &publication.event_type, &publication.data)
            .await?;
        let received_at = now_millis();
        Ok(Event {
            id: publication.id.unwrap_or_else(EventId::generate),
            tenant: tenant.clone(),
            event_type: publication.event_type,
            occurred_at: publication.occurred_at.unwrap_or(received_at),
            received_at,
            idempotency_key: publication.idempotency_key,
            payload: publication.data.into(),
            metadata: publication.metadata,
        })
    }

    /// Matches `events` to the tenant's enabled subscriptions and writes the
    /// events and their deliveries in one transaction. Returns each event's
    /// outcome, in order.
    pub async fn capture(
        &self,
        tenant: &TenantId,
        events: Vec<Event>,
    ) -> Result<Vec<Captured>, IngestError> {
        let span = tracing::info_span!("capture", %tenant, events = events.len());
        self.capture_events(tenant, events).instrument(span).await
    }

    async fn capture_events(
        &self,
        tenant: &TenantId,
        events: Vec<Event>,
    ) -> Result<Vec<Captured>, IngestError> {
        let started = std::time::Instant::now();
        let subscriptions = self.subscriptions.of(&self.store, tenant).await?;
        let types: Vec<String> = events
            .iter()
            .map(|event| self.metric_type(&event.event_type))
            .collect();
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
        let metrics = crate::metrics::metrics();
        metrics
            .capture_seconds
            .observe(started.elapsed().as_secs_f64());
        for (outcome, event_type) in outcomes.iter().zip(types) {
            let outcome = match outcome {
                IngestOutcome::Created(_) => "created",
                IngestOutcome::Duplicate(_) => "duplicate",
            };
            metrics
                .events_captured
                .get_or_create(&CaptureLabels {
                    event_type,
                    outcome,
                })
                .inc();
        }
        Ok(outcomes
            .into_iter()
            .zip(counts)
            .map(|(outcome, deliveries)| Captured {
                outcome,
                deliveries,
            })
            .collect())
    }

    /// Publishes one of Weft's operational events (`weft.*`) of
    /// `event_type` with payload `data` into `tenant`'s own stream, where
    /// subscriptions route it like any other event.
    pub async fn publish_operational(
        &self,
        tenant: &TenantId,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<Captured, IngestError> {
        debug_assert!(event_type.starts_with(OPERATIONAL_PREFIX));
        if let Err(error) = self.catalog.validate(event_type, &data) {
            return Err(IngestError::BrokenSchema {
                event_type: event_type.to_owned(),
                reason: error.to_string(),
            });
        }
        let now = now_millis();
        let event = Event {
            id: EventId::generate(),
            tenant: tenant.clone(),
            event_type: event_type.to_owned(),
            occurred_at: now,
            received_at: now,
            idempotency_key: None,
            payload: data.into(),
            metadata: BTreeMap::new(),
        };
        let mut captured = self.capture(tenant, vec![event]).await?;
        Ok(captured.remove(0))
    }

    /// `event_type` as a metric's label: built-in types by name, a tenant's
    /// own as `custom` (their number is the tenants' to choose).
    fn metric_type(&self, event_type: &str) -> String {
        match self.catalog.get(event_type) {
            Some(_) => event_type.to_owned(),
            None => "custom".to_owned(),
        }
    }

    /// The tenant's subscriptions changed through this process: the next
    /// capture reads them again. (Other nodes' changes are seen within
    /// [`routing::SUBSCRIPTIONS_TTL`].)
    pub fn subscriptions_changed(&self, tenant: &TenantId) {
        self.subscriptions.invalidate(tenant);
    }

    /// The type must be in the built-in catalog or one of the tenant's own, and
    /// the payload must satisfy its schema.
    async fn validate_payload(
        &self,
        tenant: &TenantId,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<(), IngestError> {
        let violation = |violations| IngestError::SchemaViolation {
            event_type: event_type.to_owned(),
            violations,
        };
        if self.catalog.get(event_type).is_some() {
            return match self.catalog.validate(event_type, payload) {
                Ok(()) => Ok(()),
                Err(PayloadError::Invalid { violations, .. }) => Err(violation(violations)),
                Err(PayloadError::UnknownEventType(name)) => {
                    Err(IngestError::UnknownEventType(name))
                }
            };
        }
        // A name no type can have is not looked up.
        let custom = match validate_event_type(event_type) {
            Ok(()) => self.store.get_event_type(tenant, event_type).await?,
            Err(_) => None,
        };
        let Some(custom) = custom else {
            return Err(IngestError::UnknownEventType(event_type.to_owned()));
        };
        let schema =
            JsonSchema::compile(&custom.schema).map_err(|error| IngestError::BrokenSchema {
                event_type: event_type.to_owned(),
                reason: error.to_string(),
            })?;
        schema.validate(payload).map_err(violation)
    }
}
