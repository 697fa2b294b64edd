//! Capture: events and their delivery jobs, written together or not at all.
//! This is the ingest hot path, so a batch costs a handful of multi-row
//! statements however many events it holds.

use super::Store;
use super::database::{
    ROWS_PER_STATEMENT, Row, SqlBuilder, Statement, Tx, Value, recurring_chunks,
};
use super::deliveries::insert_deliveries;
use super::error::StoreError;
use super::json::{json_column, to_json};
use crate::model::{Delivery, Event, EventId, Payload, TenantId};
use std::collections::{HashMap, HashSet};

/// An event to capture, with the deliveries its matching subscriptions need.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event: Event,
    /// Each of the event's tenant, naming the event.
    pub deliveries: Vec<Delivery>,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored, with its deliveries.
    Created(EventId),
    /// Already captured, with the same id or idempotency key, before or earlier
    /// in the same batch: nothing was written. Names the event that was kept.
    Duplicate(EventId),
}

/// The columns of `events`, in the order [`event_values`] lists them. A macro
/// so that `concat!` can build constant statements from it.
macro_rules! event_columns {
    () => {
        "tenant, id, event_type, idempotency_key, occurred_at, received_at, payload, metadata"
    };
}
const EVENT_COLUMN_COUNT: usize = 8;

/// Where an event of a batch stands before anything is written.
#[derive(Debug, Clone, Copy)]
enum Occurrence {
    /// The first with its id and idempotency key in the batch: to be inserted.
    First,
    /// Repeats the event at this index (always a `First`) by id or key.
    Repeat(usize),
}

impl Store {
    /// Captures a batch of events and their deliveries in one transaction: all
    /// of it is on disk when this returns `Ok`, none of it when it fails.
    ///
    /// An event whose id or idempotency key its tenant already used, in the
    /// database or earlier in `batch`, is not written again and neither are its
    /// deliveries: its outcome names the event kept. Outcomes follow `batch`'s order.
    pub async fn insert_events(
        &self,
        batch: &[NewEvent],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        check_deliveries_follow_their_event(batch)?;
        let occurrences = occurrences_in_batch(batch);
        for (index, occurrence) in occurrences.iter().enumerate() {
            if let Occurrence::Repeat(first) = *occurrence {
                let (repeat, first) = (&batch[index].event, &batch[first].event);
                if !same_event(repeat, first) {
                    return Err(repeated(index, repeat, first.id.as_str()));
                }
            }
        }
        let firsts: Vec<usize> = (0..batch.len())
            .filter(|&index| matches!(occurrences[index], Occurrence::First))
            .collect();

        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database("starting to capture events"))?;
        let inserted = insert_new_events(&mut tx, batch, &firsts).await?;
        let rejected: Vec<usize> = firsts
            .iter()
            .copied()
            .filter(|&index| !inserted.contains(&index))
            .collect();
        let kept = find_kept_events(&mut tx, batch, &rejected).await?;
        let deliveries: Vec<&Delivery> = firsts
            .iter()
            .filter(|index| inserted.contains(index))
            .flat_map(|&index| &batch[index].deliveries)
            .collect();
        insert_deliveries(&mut tx, &deliveries).await?;
        tx.commit()
            .await
            .map_err(StoreError::database("committing captured events"))?;

        let outcome_of_first = |index: usize| match kept.get(&index) {
            Some(existing) => IngestOutcome::Duplicate(existing.clone()),
            None => IngestOutcome::Created(batch[index].event.id.clone()),
        };
        Ok(occurrences
            .iter()
            .enumerate()
            .map(|(index, occurrence)| match *occurrence {
                Occurrence::First => outcome_of_first(index),
                Occurrence::Repeat(first) => match outcome_of_first(first) {
                    IngestOutcome::Created(id) | IngestOutcome::Duplicate(id) => {
                        IngestOutcome::Duplicate(id)
                    }
                },
            })
            .collect())
    }

    /// The event `id` of `tenant`.
    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<Event>, StoreError> {
        const SELECT_EVENT: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE tenant = $1 AND id = $2"
        );
        let statement = Statement::new(SELECT_EVENT)
            .bind(tenant.as_str())
            .bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading event {id}")))?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// The events of `tenant` among `ids`, in no particular order; ids that
    /// name no event of the tenant are left out. A batch's worker reads its
    /// members' events with this, a few statements instead of one per event.
    pub async fn get_events(
        &self,
        tenant: &TenantId,
        ids: &[&EventId],
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::with_capacity(ids.len());
        for chunk in recurring_chunks(ids) {
            let statement = SqlBuilder::new(self.backend.dialect())
                .sql(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE tenant = "
                ))
                .parameter(tenant.as_str())
                .sql(" AND id IN (")
                .list(chunk.iter().map(|id| Value::from(id.as_str())))
                .sql(")")
                .build(true);
            let rows = self
                .backend
                .fetch_all(statement)
                .await
                .map_err(StoreError::database(format!(
                    "reading {} events of tenant {tenant}",
                    chunk.len()
                )))?;
            for row in &rows {
                events.push(event_from_row(row)?);
            }
        }
        Ok(events)
    }
}

/// A delivery filed under another event would be orphaned by deduplication (or
/// point at nothing), so the batch is refused before anything is written.
fn check_deliveries_follow_their_event(batch: &[NewEvent]) -> Result<(), StoreError> {
    for NewEvent { event, deliveries } in batch {
        for delivery in deliveries {
            if delivery.tenant != event.tenant || delivery.event_id != event.id {
                return Err(StoreError::Invalid(format!(
                    "delivery {} of tenant {} names event {}, but it was filed under event {} of tenant {}",
                    delivery.id, delivery.tenant, delivery.event_id, event.id, event.tenant
                )));
            }
        }
    }
    Ok(())
}

/// Marks each event that repeats an earlier one of the batch (same tenant and
/// id, or same tenant and idempotency key).
fn occurrences_in_batch(batch: &[NewEvent]) -> Vec<Occurrence> {
    let mut first_with_id: HashMap<(&str, &str), usize> = HashMap::new();
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut occurrences = Vec::with_capacity(batch.len());
    for (index, NewEvent { event, .. }) in batch.iter().enumerate() {
        let tenant = event.tenant.as_str();
        let by_id = first_with_id.get(&(tenant, event.id.as_str())).copied();
        let by_key = event
            .idempotency_key
            .as_deref()
            .and_then(|key| first_with_key.get(&(tenant, key)).copied());
        let first = by_id.or(by_key).unwrap_or(index);
        // A repeat's own id and key lead to the same first event too, so a
        // later event sharing only those is a repeat of it as well.
        first_with_id
            .entry((tenant, event.id.as_str()))
            .or_insert(first);
        if let Some(key) = event.idempotency_key.as_deref() {
            first_with_key.entry((tenant, key)).or_insert(first);
        }
        occurrences.push(if first == index {
            Occurrence::First
        } else {
            Occurrence::Repeat(first)
        });
    }
    occurrences
}

/// Inserts the events at `indexes` that do not exist yet; returns the indexes
/// of those it inserted. Conflicts (an id or key already taken, possibly by a
/// concurrent batch) are skipped, not errors.
async fn insert_new_events(
    tx: &mut Tx,
    batch: &[NewEvent],
    indexes: &[usize],
) -> Result<HashSet<usize>, StoreError> {
    let mut position: HashMap<(&str, &str), usize> = HashMap::with_capacity(indexes.len());
    for &index in indexes {
        let event = &batch[index].event;
        position.insert((event.tenant.as_str(), event.id.as_str()), index);
    }
    let mut inserted = HashSet::with_capacity(indexes.len());
    for chunk in recurring_chunks(indexes) {
        let rows = chunk
            .iter()
            .map(|&index| event_values(&batch[index].event))
            .collect::<Result<Vec<_>, _>>()?;
        let statement = SqlBuilder::new(tx.dialect())
            .sql(concat!(
                "INSERT INTO events (",
                event_columns!(),
                ") VALUES "
            ))
            .rows(rows)
            .sql(" ON CONFLICT DO NOTHING RETURNING tenant, id")
            .build(true);
        let rows = tx
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "inserting {} events",
                chunk.len()
            )))?;
        for row in rows {
            let tenant: String = row.get("tenant")?;
            let id: String = row.get("id")?;
            if let Some(&index) = position.get(&(tenant.as_str(), id.as_str())) {
                inserted.insert(index);
            }
        }
    }
    Ok(inserted)
}

/// The columns of `event`, in the order of [`event_columns`].
fn event_values(event: &Event) -> Result<[Value; EVENT_COLUMN_COUNT], StoreError> {
    let owner = || format!("event {}", event.id);
    Ok([
        event.tenant.as_str().into(),
        event.id.as_str().into(),
        event.event_type.as_str().into(),
        event.idempotency_key.as_deref().into(),
        event.occurred_at.into(),
        event.received_at.into(),
        event.payload.json().into_owned().into(),
        to_json(&event.metadata, format_args!("the metadata of {}", owner()))?.into(),
    ])
}

/// For each event at `indexes` that was not inserted, the id of the stored
/// event that took its id or idempotency key.
async fn find_kept_events(
    tx: &mut Tx,
    batch: &[NewEvent],
    indexes: &[usize],
) -> Result<HashMap<usize, EventId>, StoreError> {
    let mut by_tenant: HashMap<&TenantId, Vec<usize>> = HashMap::new();
    for &index in indexes {
        by_tenant
            .entry(&batch[index].event.tenant)
            .or_default()
            .push(index);
    }
    let mut kept = HashMap::with_capacity(indexes.len());
    for (tenant, indexes) in by_tenant {
        for chunk in indexes.chunks(ROWS_PER_STATEMENT) {
            let ids = chunk
                .iter()
                .map(|&index| Value::from(batch[index].event.id.as_str()));
            let keys: Vec<Value> = chunk
                .iter()
                .filter_map(|&index| batch[index].event.idempotency_key.as_deref())
                .map(Value::from)
                .collect();
            let mut statement = SqlBuilder::new(tx.dialect());
            statement
                .sql(
                    "SELECT id, idempotency_key, event_type, payload, metadata \
                     FROM events WHERE tenant = ",
                )
                .parameter(tenant.as_str())
                .sql(" AND (id IN (")
                .list(ids)
                .sql(")");
            if !keys.is_empty() {
                statement
                    .sql(" OR idempotency_key IN (")
                    .list(keys)
                    .sql(")");
            }
            let statement = statement.sql(")").build(false);
            let rows = tx
                .fetch_all(statement)
                .await
                .map_err(StoreError::database(format!(
                    "looking up the stored events that {} events of tenant {tenant} repeat",
                    chunk.len()
                )))?;
            let mut by_id = HashMap::new();
            let mut by_key = HashMap::new();
            for row in &rows {
                let stored = StoredRepeat::from_row(row)?;
                if let Some(key) = row.get::<Option<String>>("idempotency_key")? {
                    by_key.insert(key, stored.clone());
                }
                by_id.insert(stored.id.as_str().to_owned(), stored);
            }
            for &index in chunk {
                let event = &batch[index].event;
                let found = by_id.get(event.id.as_str()).or_else(|| {
                    event
                        .idempotency_key
                        .as_ref()
                        .and_then(|key| by_key.get(key))
                });
                let Some(stored) = found else {
                    return Err(StoreError::Conflict(format!(
                        "event {} of tenant {tenant} conflicts with a stored event that cannot be found",
                        event.id
                    )));
                };
                if !stored.is(event) {
                    return Err(repeated(index, event, stored.id.as_str()));
                }
                kept.insert(index, stored.id.clone());
            }
        }
    }
    Ok(kept)
}

/// What a repeat is compared with: a stored event's id and content.
#[derive(Clone)]
struct StoredRepeat {
    id: EventId,
    event_type: String,
    payload: Payload,
    metadata: std::collections::BTreeMap<String, String>,
}

impl StoredRepeat {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let id = row.get_id("id", EventId::parse)?;
        let owner = format!("event {id}");
        Ok(Self {
            event_type: row.get("event_type")?,
            payload: Payload::from_json(row.get("payload")?)
                .map_err(|error| StoreError::Corrupt(format!("payload of {owner}: {error}")))?,
            metadata: json_column(row, "metadata", &owner)?,
            id,
        })
    }

    fn is(&self, event: &Event) -> bool {
        self.event_type == event.event_type
            && self.metadata == event.metadata
            && self.payload == event.payload
    }
}

/// Whether `repeat` is the same event as `first`: a publisher retrying.
/// When it happened and when it arrived are not compared: a retry that leaves
/// them out gets new ones.
fn same_event(repeat: &Event, first: &Event) -> bool {
    repeat.event_type == first.event_type
        && repeat.metadata == first.metadata
        && repeat.payload == first.payload
}

/// The refusal of event `index`, which repeats event `existing` by its id or
/// key without being the same event.
fn repeated(index: usize, event: &Event, existing: &str) -> StoreError {
    let by = if event.id.as_str() == existing {
        format!("event id {existing}")
    } else {
        match &event.idempotency_key {
            Some(key) => format!("idempotency key {key:?}"),
            None => format!("event id {}", event.id),
        }
    };
    StoreError::Repeated {
        index,
        existing: existing.to_owned(),
        by,
    }
}

fn event_from_row(row: &Row) -> Result<Event, StoreError> {
    let id = row.get_id("id", EventId::parse)?;
    let owner = format!("event {id}");
    Ok(Event {
        tenant: row.get_id("tenant", TenantId::parse)?,
        event_type: row.get("event_type")?,
        occurred_at: row.get("occurred_at")?,
        received_at: row.get("received_at")?,
        idempotency_key: row.get("idempotency_key")?,
        payload: Payload::from_json(row.get("payload")?)
            .map_err(|error| StoreError::Corrupt(format!("payload of {owner}: {error}")))?,
        metadata: json_column(row, "metadata", &owner)?,
        id,
    })
}
