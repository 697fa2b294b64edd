//! The sample events of `examples/events/`, as captured events, for tests.

use crate::model::{Event, EventId, TenantId};
use serde::Deserialize;
use std::path::PathBuf;

/// The file format of `examples/events/<type>.json`.
#[derive(Deserialize)]
struct SampleFile {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    tenant: String,
    occurred_at: i64,
    data: serde_json::Value,
}

pub(crate) fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/events")
}

/// `examples/events/<event_type>.json` as an event.
pub(crate) fn sample_event(event_type: &str) -> Event {
    let path = samples_dir().join(format!("{event_type}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let sample: SampleFile =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert_eq!(sample.event_type, event_type, "{}", path.display());
    Event {
        id: EventId::parse(&sample.id).unwrap(),
        tenant: TenantId::parse(&sample.tenant).unwrap(),
        event_type: sample.event_type,
        occurred_at: sample.occurred_at,
        received_at: sample.occurred_at,
        idempotency_key: None,
        payload: sample.data.into(),
        metadata: Default::default(),
    }
}

/// Every sample event, by type.
pub(crate) fn all_sample_events() -> Vec<Event> {
    let mut types: Vec<String> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    types.sort();
    types
        .iter()
        .map(|event_type| sample_event(event_type))
        .collect()
}
